"""Remember how the conversation in progress is going: the customer's frustration *now*.

The trends (state/trend.py) remember for days: right for holding marketing after a bad
week, wrong for "is this chat going badly at this turn". Replayed on rated dialogues
(`tactful eval conversations`), a trend that never fades within a conversation ranks
turns by how much trouble came before, not by how the person feels now (turn AUC .62 on
SGD against .88 for the message alone). So the state also keeps the conversation's own
reading, updated on each customer message:

    z     = message * logit(f) + reply * (logit(r) - logit(prior))
            + exchange * (logit(x) - logit(prior)) + memory * M + bias
    level = sigmoid(z)

- ``f``: the message's frustration (the text scorer's, with the earlier messages);
- ``r``: the risk of the bot's or agent's latest reply, scored when it was sent: how
  likely a reply like it leaves the customer dissatisfied (a learned head over reply
  texts; ``prior`` when there was none or the scorer cannot read replies);
- ``x``: the message read with the reply it answers (the exchange head over the pair;
  ``prior`` when there was no recent reply): "No, not now" after "Would you like to book
  it?" declines an offer, after "Booking two tickets, right?" corrects a bot that got it
  wrong. The last reply's text is kept (``reply_text``, at most ``REPLY_CHARS``) so the
  next message can be read against it;
- ``M``: the conversation's earlier frustration evidence, each message's
  ``max(0, logit(f) - logit(prior))``, halved every ``half_life`` of event time.

A message that answers no recent reply (the first of a chat, an email, a conversation
whose bot turns tactful does not see) has no ``x``: it is read with weights of its own
(``alone``: message, memory, bias), fitted on the same turns read without their replies,
so such a message counts in full rather than at the weight it has beside ``x``.

The weights are fitted on task dialogues, where people rarely swear at the bot; what
they learn there must not hide a customer who does. So a message that reads as openly
frustrated (``outright``: its anger or annoyance, or an outright statement such as "third
time I've written", at least ``OUTRIGHT_FLOOR``) sets the level to at least that reading.

The weights are fitted by ``tactful train`` on the USS dev dialogues (after the heads
they read are trained on the train dialogues) and ship in the heads' model card; without
them (the lexical scorer) the level is the message's frustration with a little memory.
The level fades with the same half-life once the conversation goes quiet. Pure: no
clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tactful.instant import Instant

__all__ = [
    "DEFAULT_CONVERSATION",
    "HALF_LIFE_S",
    "OUTRIGHT_FLOOR",
    "REPLY_CHARS",
    "Conversation",
    "ConversationModel",
    "logit",
]

EPS = 1e-4
# Evidence and the level fade by half over a pause this long: a chat's turns are seconds
# to minutes apart; an hour later it is another conversation.
HALF_LIFE_S = 600.0
REPLY_CHARS = 1_000  # of the latest reply's text kept for reading the next message
# An outright reading at least this high is a floor under the level. Chosen on the USS dev
# dialogues: a floor from 0.3 costs their pooled cross-validated turn AUC 0.001 (every
# reading as a floor cost 0.010: the level's small probabilities are easily overtaken).
OUTRIGHT_FLOOR = 0.3


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _same(a: str, b: str) -> bool:
    """Two replies that say the same thing (case and spacing aside)."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def _snippet(text: str, limit: int = 60) -> str:
    """The start of a reply, for a decision card."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _decay(seconds: float, half_life: float) -> float:
    return 0.5 ** (seconds / half_life) if seconds > 0 else 1.0


class Conversation(BaseModel):
    """The conversation in progress, as of its latest customer message (``at``) and the
    latest reply to it (``reply_at``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: Instant | None = None
    frustration: float = 0.0  # the level at ``at``
    evidence: float = 0.0  # M at ``at``, this message's evidence included
    messages: int = 0  # customer messages in this conversation so far
    reply_risk: float | None = None  # the latest reply's risk
    reply_at: Instant | None = None
    reply_text: str | None = None  # the latest reply's text (its first REPLY_CHARS)
    # how the latest message was read: with the reply it answered, alone, or as outright
    # frustration (the floor); what the decision card says of frustration_now
    basis: Literal["exchange", "alone", "outright"] | None = None
    answered: str | None = None  # the start of the reply it answered (basis "exchange")
    # how many times in a row the latest reply said again what the one before it said,
    # the customer having written in between: a bot going in circles
    repeats: int = 0

    def level(self, now: datetime) -> float:
        """The level at ``now``: the latest reading, fading over the pause since."""
        if self.at is None:
            return 0.0
        return self.frustration * _decay((now - self.at).total_seconds(), HALF_LIFE_S)

    def explain(self) -> str | None:
        """How the latest reading came about, in words for a decision card."""
        if self.basis is None:
            return None
        level = f"frustration now {self.frustration:.2f}"
        if self.basis == "outright":
            return f"{level}: said outright (anger, annoyance, or words like 'third time')"
        if self.basis == "exchange":
            return f"{level}: the message read with the reply it answers ({self.answered!r})"
        return f"{level}: the message read on its own (it answers no recent reply)"

    def _reply_current(self, at: datetime) -> bool:
        """Whether the latest reply belongs to the conversation at ``at`` (came within
        HALF_LIFE_S before it)."""
        if self.reply_at is None:
            return False
        return 0 <= (at - self.reply_at).total_seconds() <= HALF_LIFE_S

    def repeating(self, now: datetime) -> int:
        """``repeats`` while the latest reply belongs to the conversation at ``now``."""
        return self.repeats if self._reply_current(now) else 0

    def answering(self, at: datetime) -> str | None:
        """The reply a customer message at ``at`` answers: the latest reply's text, if it
        came in this conversation (within HALF_LIFE_S before)."""
        return self.reply_text if self._reply_current(at) else None


ALONE = ("message", "memory", "bias")  # the weights for a message read alone


def _alone(card: dict[str, Any]) -> tuple[float, float, float]:
    message, memory, bias = (float(card[k]) for k in ALONE)
    return message, memory, bias


@dataclass(frozen=True, slots=True)
class ConversationModel:
    """The weights of the conversation's reading (see the module docstring)."""

    version: str = "lexical"
    message: float = 1.0
    reply: float = 0.0
    exchange: float = 0.0
    memory: float = 0.1
    bias: float = 0.0
    prior: float = 0.06  # the typical message's frustration and reply's risk
    # (message, memory, bias) for a message with no exchange reading; None: the above
    alone: tuple[float, float, float] | None = None

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> ConversationModel:
        alone = card.get("alone")
        return cls(
            version=str(card["version"]),
            message=float(card["message"]),
            reply=float(card["reply"]),
            exchange=float(card.get("exchange", 0.0)),  # heads before the exchange head
            memory=float(card["memory"]),
            bias=float(card["bias"]),
            prior=float(card["prior"]),
            alone=_alone(alone) if alone else None,
        )

    def as_card(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "message": round(self.message, 4),
            "reply": round(self.reply, 4),
            "exchange": round(self.exchange, 4),
            "memory": round(self.memory, 4),
            "bias": round(self.bias, 4),
            "prior": self.prior,
            **(
                {"alone": {k: round(v, 4) for k, v in zip(ALONE, self.alone, strict=True)}}
                if self.alone
                else {}
            ),
        }

    # --- the pure update -----------------------------------------------------------------

    def features(
        self, conv: Conversation, at: datetime, frustration: float, exchange: float | None = None
    ) -> tuple[float, ...]:
        """(logit f, the reply's term, the exchange's term, M before this message): what
        the weights multiply. ``exchange``: the exchange head's reading of this message
        with the reply it answers (None: no recent reply, or no exchange head)."""
        memory = 0.0
        if conv.at is not None:
            memory = conv.evidence * _decay((at - conv.at).total_seconds(), HALF_LIFE_S)
        reply = 0.0
        # a reply to this conversation before the message: not an old one, nor a later one
        # (a message that arrives late is not read against a reply sent after it)
        if conv.reply_risk is not None and conv._reply_current(at):
            reply = logit(conv.reply_risk) - logit(self.prior)
        pair = 0.0
        if exchange is not None and conv.answering(at) is not None:
            pair = logit(exchange) - logit(self.prior)
        return logit(frustration), reply, pair, memory

    def level_logit(self, terms: Sequence[float], answering: bool) -> float:
        """The level's logit from ``features``' terms; ``answering``: the message was read
        with the reply it answers (else, with ``alone`` weights, it is read alone)."""
        f, reply, pair, memory = terms
        if self.alone is not None and not answering:
            message, memory_w, bias = self.alone  # fitted on the message and memory only
            return message * f + memory_w * memory + bias
        return (
            self.message * f
            + self.reply * reply
            + self.exchange * pair
            + self.memory * memory
            + self.bias
        )

    def read(
        self,
        conv: Conversation,
        at: datetime,
        frustration: float,
        exchange: float | None = None,
        outright: float = 0.0,
    ) -> Conversation:
        """The conversation after a customer message with this frustration at ``at``
        (``exchange``: see ``features``; ``outright``: how openly the message shows
        frustration, a floor under the level from OUTRIGHT_FLOOR)."""
        terms = self.features(conv, at, frustration, exchange)
        answered = conv.answering(at) if exchange is not None else None
        z = self.level_logit(terms, answered is not None)
        level = _sigmoid(z)
        basis: Literal["exchange", "alone", "outright"] = "exchange" if answered else "alone"
        if outright >= OUTRIGHT_FLOOR and outright > level:
            level, basis = outright, "outright"
        return conv.model_copy(
            update={
                "at": at,
                "frustration": level,
                "basis": basis,
                "answered": _snippet(answered) if answered else None,
                "evidence": terms[3] + max(0.0, terms[0] - logit(self.prior)),
                "messages": conv.messages + 1,
            }
        )

    def replied(
        self, conv: Conversation, at: datetime, risk: float, text: str | None = None
    ) -> Conversation:
        """The conversation after a reply (bot or agent) whose risk was scored; ``text``:
        the reply's text, kept (its first REPLY_CHARS) for reading the next message."""
        if conv.reply_at is not None and at < conv.reply_at:
            return conv  # a late reply: an earlier one than we already have
        kept = text[:REPLY_CHARS] if text else None
        again = (
            kept is not None
            and conv.answering(at) is not None  # the previous reply, in this conversation
            and conv.at is not None
            and conv.reply_at is not None
            and conv.at >= conv.reply_at  # and the customer answered it
            and _same(kept, conv.reply_text or "")
        )
        return conv.model_copy(
            update={
                "reply_risk": risk,
                "reply_at": at,
                "reply_text": kept,
                "repeats": conv.repeats + 1 if again else 0,
            }
        )


DEFAULT_CONVERSATION = ConversationModel()

"""Remember how the conversation in progress is going: the customer's frustration *now*.

The trends (state/trend.py) remember for days: right for holding marketing after a bad
week, wrong for "is this chat going badly at this turn". Replayed on rated dialogues
(`tactful eval conversations`), a trend that never fades within a conversation ranks
turns by how much trouble came before, not by how the person feels now (turn AUC .62 on
SGD against .88 for the message alone). So the state also keeps the conversation's own
reading, updated on each customer message:

    z     = message * logit(f) + reply * (logit(r) - logit(prior)) + memory * M + bias
    level = sigmoid(z)

- ``f``: the message's frustration (the text scorer's, with the earlier messages);
- ``r``: the risk of the bot's or agent's latest reply, scored when it was sent: how
  likely a reply like it leaves the customer dissatisfied (a learned head over reply
  texts; ``prior`` when there was none or the scorer cannot read replies);
- ``M``: the conversation's earlier frustration evidence, each message's
  ``max(0, logit(f) - logit(prior))``, halved every ``half_life`` of event time.

The weights are fitted by ``tactful train`` on the USS dev dialogues (after the heads
they read are trained on the train dialogues) and ship in the heads' model card; without
them (the lexical scorer) the level is the message's frustration with a little memory.
The level fades with the same half-life once the conversation goes quiet. Pure: no
clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from tactful.instant import Instant

__all__ = [
    "DEFAULT_CONVERSATION",
    "HALF_LIFE_S",
    "Conversation",
    "ConversationModel",
    "logit",
]

EPS = 1e-4
# Evidence and the level fade by half over a pause this long: a chat's turns are seconds
# to minutes apart; an hour later it is another conversation.
HALF_LIFE_S = 600.0


def logit(p: float) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


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

    def level(self, now: datetime) -> float:
        """The level at ``now``: the latest reading, fading over the pause since."""
        if self.at is None:
            return 0.0
        return self.frustration * _decay((now - self.at).total_seconds(), HALF_LIFE_S)


@dataclass(frozen=True, slots=True)
class ConversationModel:
    """The weights of the conversation's reading (see the module docstring)."""

    version: str = "lexical"
    message: float = 1.0
    reply: float = 0.0
    memory: float = 0.1
    bias: float = 0.0
    prior: float = 0.06  # the typical message's frustration and reply's risk

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> ConversationModel:
        return cls(
            version=str(card["version"]),
            message=float(card["message"]),
            reply=float(card["reply"]),
            memory=float(card["memory"]),
            bias=float(card["bias"]),
            prior=float(card["prior"]),
        )

    def as_card(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "message": round(self.message, 4),
            "reply": round(self.reply, 4),
            "memory": round(self.memory, 4),
            "bias": round(self.bias, 4),
            "prior": self.prior,
        }

    # --- the pure update -----------------------------------------------------------------

    def features(self, conv: Conversation, at: datetime, frustration: float) -> tuple[float, ...]:
        """(logit f, the reply's term, M before this message): what the weights multiply."""
        memory = 0.0
        if conv.at is not None:
            memory = conv.evidence * _decay((at - conv.at).total_seconds(), HALF_LIFE_S)
        reply = 0.0
        if conv.reply_risk is not None and conv.reply_at is not None:
            since = (at - conv.reply_at).total_seconds()
            if since <= HALF_LIFE_S:  # a reply to this conversation, not an old one
                reply = logit(conv.reply_risk) - logit(self.prior)
        return logit(frustration), reply, memory

    def read(self, conv: Conversation, at: datetime, frustration: float) -> Conversation:
        """The conversation after a customer message with this frustration at ``at``."""
        f, reply, memory = self.features(conv, at, frustration)
        z = self.message * f + self.reply * reply + self.memory * memory + self.bias
        return conv.model_copy(
            update={
                "at": at,
                "frustration": _sigmoid(z),
                "evidence": memory + max(0.0, f - logit(self.prior)),
                "messages": conv.messages + 1,
            }
        )

    def replied(self, conv: Conversation, at: datetime, risk: float) -> Conversation:
        """The conversation after a reply (bot or agent) whose risk was scored."""
        if conv.reply_at is not None and at < conv.reply_at:
            return conv  # a late reply: an earlier one than we already have
        return conv.model_copy(update={"reply_risk": risk, "reply_at": at})


DEFAULT_CONVERSATION = ConversationModel()

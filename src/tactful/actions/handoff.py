"""Act: the handoff package, so the customer never has to repeat the story. Pure.

A :class:`HandoffPackage` is what the human picking a handoff up reads first: the goal in
one sentence, what was already tried, the account, how the customer's mood is moving, why
tactful handed them over, how sure it is, what to do next, and pointers to the events
behind it (ids, not a transcript). Its JSON Schema is published as
``docs/handoff.schema.json`` (:func:`schema_json` renders it; tests/test_handoff.py keeps
the two in sync). Every piece of free text in it goes through :func:`redact` first; ids
(customer, account, events, tickets) are pointers and are kept.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tactful.actions.redact import redact, redact_counts
from tactful.events import Event
from tactful.signals import DIMENSIONS, Dimension, Signal
from tactful.state.customer import AccountContext, CustomerState, Mark, SignalMark
from tactful.state.trend import POSITIVE_DIMENSIONS, Direction, Slope

__all__ = [
    "SCHEMA_ID",
    "AccountSnapshot",
    "BotStep",
    "Completeness",
    "ContactRecord",
    "EarlierHandoff",
    "EvidencePointer",
    "HandoffPackage",
    "Observation",
    "PageVisit",
    "ReasonCode",
    "TrendEntry",
    "Tried",
    "TriggerEvent",
    "build_handoff",
    "handoff_package",
    "handoff_schema",
    "reason_codes",
    "schema_json",
]

SCHEMA_ID: Final = "urn:tactful:schema:handoff-package:1"
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: Final[tuple[Priority, ...]] = ("low", "normal", "high", "urgent")

# A bad dimension at or above this level is one of the customer's intents.
INTENT_LEVEL: Final = 0.3
# The customer's own words: at most this many recent messages, each cut to this length.
MAX_QUOTES: Final = 2
QUOTE_CHARS: Final = 200
GOAL_QUOTE_CHARS: Final = 120
MAX_EVIDENCE: Final = 12
MAX_CUES: Final = 3
CUE_CHARS: Final = 64

_GOALS = {
    "billing": "sort out a billing problem",
    "refund": "get a refund",
    "account_access": "get back into their account",
    "technical": "get a technical problem fixed",
    "cancellation": "cancel or resolve what is pushing them to cancel",
    "sales_pricing": "understand pricing for a purchase",
    "sales_security": "complete a security review before buying",
    "sales_legal": "agree legal terms before buying",
    "sales_procurement": "get through procurement",
    "other": "get help",
}


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class TriggerEvent(_Model):
    """The event whose decision opened the handoff."""

    event_id: str
    """The event's id (as ingested: the key to look it up)."""
    type: str
    """The event type (message, page_view, payment_failed ...)."""


class AccountSnapshot(_Model):
    """Who the customer is to the business, and what is open or failing for them."""

    name: str | None
    """The company's name, when known."""
    tier: str
    """The account tier ("standard" when nothing said otherwise)."""
    value: float
    """The account's value (as the CRM or identify traits gave it; 0 when unknown)."""
    lifecycle: str | None
    """The lifecycle stage (trial, customer, churning ...), when known."""
    owner: str | None
    """The account manager (Slack handle or email): internal staff, so not redacted."""
    tenure_days: int | None
    """How long they have been a customer, when known."""
    open_tickets: list[str]
    """Ids of the customer's open tickets: reply on these rather than opening another."""
    unresolved_tickets_30d: int = Field(ge=0)
    """Open tickets plus tickets closed unsolved in the last 30 days."""
    payment_failures_30d: int = Field(ge=0)
    """Failed payments in the last 30 days (counted up to 6)."""
    last_payment_failure_at: AwareDatetime | None
    """When the latest of them failed."""


class Observation(_Model):
    """One piece of evidence a trend took in."""

    at: AwareDatetime
    """Its event time."""
    strength: float = Field(ge=0, le=1)
    """Its weighted strength."""


class TrendEntry(_Model):
    """One dimension of the customer's sentiment trend (time-decayed evidence)."""

    level: float = Field(ge=0, le=1)
    """The level now, in [0, 1): one clearly frustrated message reads about 0.6."""
    level_before: float = Field(ge=0, le=1)
    """The level just before its latest piece of evidence."""
    slope: Slope
    """Whether evidence is arriving faster (rising) or slower (falling) than its average."""
    direction: Direction
    """The slope read for this dimension: rising frustration is deteriorating, rising
    gratitude improving."""
    observations: int = Field(ge=0)
    """How many pieces of evidence it has taken in."""
    last: list[Observation]
    """The latest observations (at most 3), oldest first."""


class BotStep(_Model):
    """A bot step the customer went through in the last hour, with its outcomes."""

    step: str
    """The bot's step id."""
    attempts: int = Field(ge=1)
    """How many turns were on this step."""
    failures: int = Field(ge=0)
    """Turns whose outcome was not success (failed, fallback, handoff)."""
    outcomes: list[str]
    """Each turn's outcome, in order."""
    event_ids: list[str]
    """The bot_turn events."""


class PageVisit(_Model):
    """A page the customer viewed in the last hour (a docs/help article or another page)."""

    path: str
    """The page's path (redacted)."""
    visits: int = Field(ge=1)
    """How many times they viewed it."""
    last_at: AwareDatetime
    """When they last viewed it."""
    event_ids: list[str]
    """The page_view events."""


class ContactRecord(_Model):
    """A contact in the last 72 hours: a ticket opened, or a conversation started."""

    at: AwareDatetime
    """When it started."""
    topic: str | None
    """What it was about, when detected."""
    ref: str | None
    """The ticket or conversation id, when there was one."""
    event_id: str
    """The event that started it."""


class EarlierHandoff(_Model):
    """A handoff for this customer that is still open (opened before this one)."""

    handoff_id: str
    """Its id."""
    queue: str
    """The queue it went to."""
    priority: str
    """Its priority."""
    opened_at: AwareDatetime
    """When it was opened."""
    topic: str
    """The customer's topic then."""


class Tried(_Model):
    """What already happened before a human was involved."""

    bot_steps: list[BotStep]
    """Bot steps in the last hour, in order of their first turn."""
    articles: list[PageVisit]
    """Docs and help pages read in the last hour."""
    pages: list[PageVisit]
    """Other pages viewed in the last hour (cancel page, billing settings ...)."""
    customer_messages: int = Field(ge=0)
    """Customer messages in the recent window (tactful keeps the last 5)."""
    failed_calls: list[str]
    """Event ids of the API errors and failed commands in the recent window (its last 15
    minutes of API activity, at most 10 calls)."""
    contacts: list[ContactRecord]
    """Tickets and conversations in the last 72 hours."""
    earlier_handoffs: list[EarlierHandoff]
    """Handoffs still open from before this one."""


class ReasonCode(_Model):
    """One machine-readable piece of why the decision was taken."""

    kind: Literal["rule", "factor", "signal", "note"]
    """rule: the policy rule that fired; factor: a value its condition read; signal: a
    detector finding on the event; note: anything else (e.g. incident mode)."""
    code: str
    """The rule id, factor name (state.frustration, threshold.frustrated) or signal name."""
    detail: str
    """The rule's description, the factor's value, or the signal's reason (redacted)."""


class EvidencePointer(_Model):
    """A signal behind the handoff, pointing at the events it came from."""

    signal: str
    """What fired (frustration, payment_failed, bot_repeat_failure ...)."""
    strength: float = Field(ge=0, le=1)
    """How strongly it fired."""
    at: AwareDatetime
    """The event time it fired at."""
    reason: str
    """The detector's reason (redacted)."""
    event_ids: list[str]
    """The events to open for the full story (empty for text signals from earlier
    messages, whose ids the state does not keep)."""
    cues: list[str]
    """For text signals: the phrases that fired them (redacted, short)."""


class Completeness(_Model):
    """Which parts of the story tactful could fill in."""

    score: float = Field(ge=0, le=1)
    """The share of 8 checked parts present: topic (known, not "other"), quotes (the
    customer's own words), intents, tried (bot steps, pages, messages, failed calls,
    contacts or earlier handoffs), account (an account id or account context), trends,
    evidence, and reason_codes (with the rule that fired)."""
    missing: list[str]
    """The checked parts that are missing, by field name."""


class HandoffPackage(_Model):
    """Everything the human picking up a handoff needs, in one structured object: the
    goal, what was tried, the account, the sentiment trend, why and how sure, what to do
    next, and pointers to the evidence. Personal data and secrets in free text are
    redacted ([email], [phone], [card], [iban], [secret]); ids are kept."""

    package_version: Literal[1]
    """The version of this package's shape."""
    handoff_id: str
    """The handoff's id (handoff:<decision id>)."""
    queue: str
    """The human queue it goes to."""
    priority: Priority
    """How soon it needs picking up."""
    customer_id: str
    """The customer's id."""
    account_id: str | None
    """The customer's account, when known."""
    created_at: AwareDatetime
    """When the handoff was decided."""
    goal: str
    """The customer's goal in one sentence (from the topic), with their last words."""
    topic: str
    """The detected topic (billing, refund, account_access, technical, cancellation,
    sales_pricing, sales_security, sales_legal, sales_procurement, other)."""
    intents: list[Dimension]
    """The bad dimensions at or above 0.3 (frustration, wants_human, churn_intent ...),
    strongest first."""
    quotes: list[str]
    """The customer's latest messages (at most 2, oldest first, redacted and shortened):
    their own words, not a transcript."""
    tried: Tried
    """What already happened, structured."""
    already_tried: list[str]
    """What already happened, one line each: bot steps, articles read, failed calls,
    contacts, earlier handoffs, then the signals of the last 24 hours as "name: reason"."""
    history: dict[str, int]
    """Every signal ever seen for the customer, counted, most frequent first."""
    account: AccountSnapshot
    """The account and what is open or failing for it."""
    trend: dict[Dimension, float]
    """Each dimension's level now (3 decimals)."""
    trends: dict[Dimension, TrendEntry]
    """Each dimension with evidence: level, slope, direction and the latest observations."""
    why: list[str]
    """The decision's reasons, as the audit log has them (redacted)."""
    reason_codes: list[ReasonCode]
    """The same reasons as codes: the rule, each factor, each signal."""
    confidence: float = Field(ge=0, le=1)
    """How sure tactful is that this customer needs a person now: 1 - (1 - e)(1 - t),
    where e is the strongest signal of this event or the last 24 hours (topic and positive
    signals left out) and t the highest intent level (0 when neither exists)."""
    recommended_next_step: str
    """One sentence: what the human should do first."""
    trigger_event: TriggerEvent
    """The event this handoff was decided on: its id and type."""
    evidence: list[EvidencePointer]
    """The signals behind the handoff (this event's and the last 24 hours', at most 12),
    oldest first: pointers to events, not a transcript."""
    redactions: dict[str, int]
    """How many items of each kind (email, phone, card, iban, secret) were redacted from
    the customer's recent messages: what they shared, not its content."""
    completeness: Completeness
    """Which parts of the story are missing."""


# --- pieces --------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def _shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def _quote(text: str, limit: int) -> str:
    """Redacted first, then shortened: a cut never leaves half a card number behind."""
    return _shorten(redact(text), limit)


def _account(state: CustomerState, now: datetime) -> AccountSnapshot:
    a = state.account
    failures = [t for t in state.payment_failures if t <= now]
    return AccountSnapshot(
        name=redact(a.name) if a.name else None,
        tier=a.tier,
        value=a.value,
        lifecycle=a.lifecycle,
        owner=a.owner,
        tenure_days=a.tenure_days,
        open_tickets=list(state.open_tickets),
        unresolved_tickets_30d=state.unresolved_tickets_30d(now),
        payment_failures_30d=state.payment_failures_30d(now),
        last_payment_failure_at=failures[-1] if failures else None,
    )


def _trends(state: CustomerState, now: datetime) -> dict[Dimension, TrendEntry]:
    out: dict[Dimension, TrendEntry] = {}
    for d in DIMENSIONS:
        t = state.trend.get(d)
        if t is None or t.at is None:
            continue
        out[d] = TrendEntry(
            level=round(t.level(now, d), 3),
            level_before=round(t.level_before(d), 3),
            slope=t.slope(now, d),
            direction=t.direction(now, d),
            observations=t.n,
            last=[Observation(at=at, strength=v) for at, v in t.last],
        )
    return out


def _visits(marks: list[Mark]) -> list[PageVisit]:
    """One entry per path, in order of its latest visit."""
    by_path: dict[str, list[Mark]] = {}
    for m in marks:
        by_path.setdefault(m.key or "?", []).append(m)
    ordered = sorted(by_path.items(), key=lambda kv: kv[1][-1].at)
    return [
        PageVisit(
            path=redact(path),
            visits=len(ms),
            last_at=ms[-1].at,
            event_ids=[m.id for m in ms],
        )
        for path, ms in ordered
    ]


def _tried(state: CustomerState, handoff_id: str) -> Tried:
    steps: dict[str, list[Mark]] = {}
    for m in state.bot_turns:
        steps.setdefault(m.key or "?", []).append(m)
    return Tried(
        bot_steps=[
            BotStep(
                step=redact(step),
                attempts=len(ms),
                failures=sum(1 for m in ms if m.tag != "success"),
                outcomes=[m.tag or "unknown" for m in ms],
                event_ids=[m.id for m in ms],
            )
            for step, ms in steps.items()
        ],
        articles=_visits([m for m in state.pages if m.tag == "docs"]),
        pages=_visits([m for m in state.pages if m.tag != "docs"]),
        customer_messages=len(state.recent_messages),
        failed_calls=[m.id for m in state.api_calls if m.ok is False],
        contacts=[
            ContactRecord(at=c.at, topic=c.key, ref=c.tag, event_id=c.id) for c in state.contacts
        ],
        earlier_handoffs=[
            EarlierHandoff(
                handoff_id=h.handoff_id,
                queue=h.queue,
                priority=h.priority,
                opened_at=h.opened_at,
                topic=h.topic,
            )
            for h in state.handoffs
            if h.handoff_id != handoff_id
        ],
    )


def _tried_lines(tried: Tried, marks: list[SignalMark]) -> list[str]:
    lines = [f"bot step {s.step}: {', '.join(s.outcomes)}" for s in tried.bot_steps]
    lines += [
        f"read {p.path}" + (f" ({p.visits} visits)" if p.visits > 1 else "") for p in tried.articles
    ]
    if tried.failed_calls:
        lines.append(f"{len(tried.failed_calls)} failed API call(s) or command(s)")
    lines += [
        "contacted us" + (f" about {c.topic}" if c.topic else "") + (f" ({c.ref})" if c.ref else "")
        for c in tried.contacts
    ]
    lines += [f"already handed to {h.queue} ({h.handoff_id})" for h in tried.earlier_handoffs]
    lines += [redact(f"{m.name}: {m.reason}") for m in marks]
    return list(dict.fromkeys(lines))


_SIGNAL_LINE = re.compile(r"([A-Za-z0-9_]+) ([0-9]+\.[0-9]+): (.*)", re.S)
_RULE_LINE = re.compile(r"([A-Za-z0-9_.-]+): (.*)", re.S)
# The cues the engine appends to a signal line: " ('third time', 'e-12')".
_CUES = re.compile(r""" \((?:'[^']*'|"[^"]*")(?:, (?:'[^']*'|"[^"]*"))*\)$""")
_FACTOR = re.compile(r"([A-Za-z0-9_.]+)=(.*?)(?=, [A-Za-z0-9_.]+=|$)", re.S)


def reason_codes(reasons: tuple[str, ...]) -> list[ReasonCode]:
    """The decision's reasons as codes. The policy engine writes them as
    ``"<rule>: <description>"``, ``"because <factor>=<value>, ..."``, then one line per
    signal ``"<name> <strength>: <reason> ('cue', ...)"`` (and notes such as incident mode)."""
    out: list[ReasonCode] = []
    for line in reasons:
        if line.startswith("because "):
            out += [
                ReasonCode(kind="factor", code=m.group(1), detail=redact(m.group(2).strip()))
                for m in _FACTOR.finditer(line[len("because ") :])
            ]
        elif m := _SIGNAL_LINE.fullmatch(line):
            reason = _CUES.sub("", m.group(3))
            out.append(ReasonCode(kind="signal", code=m.group(1), detail=redact(reason)))
        elif (m := _RULE_LINE.fullmatch(line)) and not out:
            out.append(ReasonCode(kind="rule", code=m.group(1), detail=redact(m.group(2))))
        else:
            out.append(ReasonCode(kind="note", code="note", detail=redact(line)))
    return out


def _pointer(s: Signal, event: Event) -> EvidencePointer:
    text = s.name in DIMENSIONS  # text signals carry cue phrases, the others event ids
    return EvidencePointer(
        signal=s.name,
        strength=round(min(max(s.strength, 0.0), 1.0), 3),
        at=event.timestamp,
        reason=redact(s.reason),
        event_ids=[event.event_id] if text else list(s.evidence),
        cues=[_quote(e, CUE_CHARS) for e in s.evidence[:MAX_CUES]] if text else [],
    )


def _evidence(
    marks: list[SignalMark], signals: list[Signal], event: Event
) -> list[EvidencePointer]:
    """This event's signals (whole) and the earlier ones of the last 24 hours (as the state
    kept them), oldest first."""
    now_names = {s.name for s in signals}
    earlier = [
        EvidencePointer(
            signal=m.name,
            strength=min(max(m.strength, 0.0), 1.0),
            at=m.at,
            reason=redact(m.reason),
            event_ids=([m.event_id] if m.event_id else [])
            if m.name in DIMENSIONS
            else list(m.evidence),
            cues=[_quote(e, CUE_CHARS) for e in m.evidence[:MAX_CUES]]
            if m.name in DIMENSIONS
            else [],
        )
        for m in marks
        if not (m.at == event.timestamp and m.name in now_names)
    ]
    pointers = sorted([*earlier, *(_pointer(s, event) for s in signals)], key=lambda p: p.at)
    return pointers[-MAX_EVIDENCE:]


def _goal(topic: str, intents: list[Dimension], tried: Tried, last_words: str | None) -> str:
    """One sentence from the topic (and what else is known); ``last_words`` redacted."""
    want = _GOALS.get(topic, _GOALS["other"])
    if topic not in _GOALS or topic == "other":
        if any(s.failures for s in tried.bot_steps):
            want = "get past a step the bot could not solve"
        elif "wants_human" in intents:
            want = "talk to a person about their problem"
        elif "churn_intent" in intents:
            want = "resolve what is pushing them to leave"
    goal = f"The customer wants to {want}"
    if last_words:  # the quote closes the sentence
        return goal + f'; last said: "{_shorten(last_words, GOAL_QUOTE_CHARS)}"'
    return goal + "."


def _next_step(
    queue: str, topic: str, intents: list[Dimension], account: AccountSnapshot, tried: Tried
) -> str:
    """One sentence: the first thing to do, by topic and queue, then what is open."""
    failed_bot = next((s.step for s in tried.bot_steps if s.failures), None)
    if account.payment_failures_30d and (
        topic in ("billing", "cancellation", "refund", "other") or queue == "billing"
    ):
        step = (
            f"Check the {account.payment_failures_30d} failed payment(s) and offer to retry "
            "the card or update the payment method"
        )
    elif topic == "refund":
        step = "Review the charge, tell the customer whether a refund applies and when it lands"
    elif topic == "billing" or queue == "billing":
        step = "Review the customer's invoices and charges and fix what is wrong"
    elif topic == "account_access" or queue == "account":
        step = "Verify the customer's identity and restore access to their account"
    elif topic == "technical" or queue == "technical":
        step = "Reproduce the problem from the evidence events and give a fix or a workaround"
    elif topic == "cancellation":
        step = "Acknowledge the frustration and resolve what is pushing them to cancel first"
    elif topic == "sales_security":
        step = "Share the security documentation and offer a call with the security team"
    elif topic.startswith("sales_") or queue == "sales":
        step = "Answer the buying question and offer a call with the account owner"
    elif failed_bot is not None:
        step = f"Take over from the bot, which failed at step {failed_bot}, without repeating it"
    elif "churn_intent" in intents:
        step = "Acknowledge the frustration and resolve what is pushing them to leave"
    else:
        step = "Reply personally, building on what is already known"
    if account.open_tickets:
        step += f", replying on ticket {account.open_tickets[-1]} rather than opening another"
    else:
        step += ", without asking the customer to repeat the story"
    return step + "."


# Signals that say what the customer is about or that things go well, not that they need
# a person: left out of the confidence.
_NOT_DISTRESS = frozenset({"topic", "positive_feedback", *POSITIVE_DIMENSIONS})


def _confidence(
    marks: list[SignalMark],
    signals: list[Signal],
    trends: dict[Dimension, TrendEntry],
    intents: list[Dimension],
) -> float:
    strengths = [s.strength for s in signals if s.name not in _NOT_DISTRESS]
    e = max(strengths + [m.strength for m in marks if m.name not in _NOT_DISTRESS], default=0.0)
    t = max((trends[d].level for d in intents if d in trends), default=0.0)
    e, t = min(max(e, 0.0), 1.0), min(max(t, 0.0), 1.0)
    return round(1 - (1 - e) * (1 - t), 3)


def _completeness(
    topic: str,
    quotes: list[str],
    intents: list[Dimension],
    tried: Tried,
    account_known: bool,
    trends: dict[Dimension, TrendEntry],
    evidence: list[EvidencePointer],
    codes: list[ReasonCode],
) -> Completeness:
    checks = {
        "topic": topic != "other",
        "quotes": bool(quotes),
        "intents": bool(intents),
        "tried": bool(
            tried.bot_steps
            or tried.articles
            or tried.pages
            or tried.customer_messages
            or tried.failed_calls
            or tried.contacts
            or tried.earlier_handoffs
        ),
        "account": account_known,
        "trends": bool(trends),
        "evidence": bool(evidence),
        "reason_codes": any(r.kind == "rule" for r in codes),
    }
    missing = [name for name, ok in checks.items() if not ok]
    return Completeness(score=round(1 - len(missing) / len(checks), 3), missing=missing)


def _priority(value: str) -> Priority:
    for p in PRIORITIES:
        if p == value:
            return p
    raise ValueError(f"priority={value!r}: must be one of {', '.join(PRIORITIES)}")


# --- the package -----------------------------------------------------------------------------


def build_handoff(
    handoff_id: str,
    queue: str,
    priority: str,
    reasons: tuple[str, ...],
    state: CustomerState,
    event: Event,
    signals: list[Signal],
    now: datetime,
) -> HandoffPackage:
    """The package for a handoff decided on ``event``: ``state`` is the customer's state
    after it, ``signals`` its signals, ``reasons`` the decision's reasons."""
    levels = state.levels(now)
    intents = sorted(
        (d for d in DIMENSIONS if d not in POSITIVE_DIMENSIONS and levels[d] >= INTENT_LEVEL),
        key=lambda d: -levels[d],
    )
    marks = state.active_signals(now)
    tried = _tried(state, handoff_id)
    trends = _trends(state, now)
    account = _account(state, now)
    shared: Counter[str] = Counter()
    said: list[str] = []  # the recent messages, redacted
    for message in state.recent_messages:
        text, counts = redact_counts(message)
        said.append(text)
        shared += counts
    quotes = [_shorten(m, QUOTE_CHARS) for m in said[-MAX_QUOTES:]]
    codes = reason_codes(reasons)
    evidence = _evidence(marks, signals, event)
    account_known = state.account_id is not None or state.account != AccountContext()
    return HandoffPackage(
        package_version=1,
        handoff_id=handoff_id,
        queue=queue,
        priority=_priority(priority),
        customer_id=state.customer_id,
        account_id=state.account_id,
        created_at=now,
        goal=_goal(state.topic, intents, tried, said[-1] if said else None),
        topic=state.topic,
        intents=intents,
        quotes=quotes,
        tried=tried,
        already_tried=_tried_lines(tried, marks),
        history=dict(sorted(state.signal_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        account=account,
        trend={d: round(levels[d], 3) for d in DIMENSIONS},
        trends=trends,
        why=[redact(r) for r in reasons],
        reason_codes=codes,
        confidence=_confidence(marks, signals, trends, intents),
        recommended_next_step=_next_step(queue, state.topic, intents, account, tried),
        trigger_event=TriggerEvent(event_id=event.event_id, type=event.type),
        evidence=evidence,
        redactions=dict(sorted(shared.items())),
        completeness=_completeness(
            state.topic, quotes, intents, tried, account_known, trends, evidence, codes
        ),
    )


def handoff_package(
    handoff_id: str,
    queue: str,
    priority: str,
    reasons: tuple[str, ...],
    state: CustomerState,
    event: Event,
    signals: list[Signal],
    now: datetime,
) -> dict[str, Any]:
    """Everything the human picking this up needs, in one structured object (JSON-ready:
    the :class:`HandoffPackage` dumped in JSON mode)."""
    package = build_handoff(handoff_id, queue, priority, reasons, state, event, signals, now)
    return package.model_dump(mode="json")


def handoff_schema() -> dict[str, Any]:
    """The package's JSON Schema (draft 2020-12), as published in docs/handoff.schema.json."""
    schema = HandoffPackage.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "tactful handoff package",
    }


def schema_json() -> str:
    """The schema as docs/handoff.schema.json holds it (2-space indent, final newline)."""
    return json.dumps(handoff_schema(), indent=2, ensure_ascii=False) + "\n"

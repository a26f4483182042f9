"""Remember: what tactful keeps about one customer, and its pure update.

The state is small and bounded (windows keep only what their detectors need), serialised
as JSON by the store. ``remember`` never mutates its input: it returns a new state.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from tactful.events import Event
from tactful.instant import Instant
from tactful.signals import Signal
from tactful.state.conversation import Conversation
from tactful.state.trend import DEFAULT_TREND, EMPTY_TREND, Trend, TrendConfig, Trended

__all__ = [
    "AccountContext",
    "CustomerState",
    "Handoff",
    "Hold",
    "HoldCategory",
    "Mark",
    "MemoryConfig",
    "SignalMark",
    "is_too_late",
    "remember",
]

HoldCategory = Literal["promotional", "educational", "sales", "all"]

# Bounds on the windows kept in state: each detector's window fits inside its retention
# (BehaviorConfig checks), and no window grows past its cap however many events arrive.
MAX_RECENT_MESSAGES = 5
MAX_RECENT_CLICKS = 20
CLICK_RETENTION = timedelta(minutes=2)
MAX_PAGES = 12
PAGE_RETENTION = timedelta(hours=1)
MAX_API_MARKS = 10
# API calls are kept past the streak gap by the default lateness, so a late error can
# still chain onto the ones before it (ten marks at most either way).
API_RETENTION = timedelta(minutes=15) + timedelta(hours=1)
MAX_BOT_TURNS = 4
BOT_RETENTION = timedelta(hours=1)
MAX_CONTACTS = 5
CONTACT_RETENTION = timedelta(hours=72)
MAX_SIGNAL_MARKS = 6
SIGNAL_RETENTION = timedelta(hours=24)
# Payment failures and unsolved tickets are counted over 30 days up to this many (past it
# the count saturates: no detector or rule distinguishes 6 failures from 60).
MAX_DATED = 6
MAX_OPEN_TICKETS = 20
PAYMENT_WINDOW = timedelta(days=30)
# How long the state remembers when each rule last fired: the longest cooldown a policy
# may set (policy files are checked against it).
RULE_MEMORY = timedelta(days=7)
# Evidence mass below this reads as a level under 0.0015: the trend is dropped.
FADED = 1e-3
# Ended and released holds stay this long (shown by the API), then only the audit log has them.
HOLD_AFTERLIFE = timedelta(days=1)
# An open handoff mutes further escalations until it is closed (ticket solved) or this old.
HANDOFF_TTL = timedelta(days=3)
# API errors further apart than this start a new streak ("three in a row" is one episode).
ERROR_STREAK_GAP = timedelta(minutes=15)
# Customer messages further apart than this start a new contact (without conversation ids).
CONTACT_GAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """How events become state: trend decay, per-signal weights, and allowed lateness."""

    trend: TrendConfig = DEFAULT_TREND
    # Multiplier in [0, 1] per signal name on how much it moves the trends (1.0 when not
    # listed): e.g. {"rage_click": 0.5} halves rage clicks' weight against what customers
    # write. (At most 1: a signal adds at most its strength, see trend.py.)
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # Events up to this much older than the customer's latest event update windows and
    # trends as if they had arrived in order; older ones are recorded and flagged late.
    lateness: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        for name, w in self.weights.items():
            if not 0 <= w <= 1:
                raise ValueError(f"weights.{name}={w}: must be between 0 and 1")
        if self.lateness < timedelta(0):
            raise ValueError(f"lateness={self.lateness}: must not be negative")


DEFAULT_MEMORY = MemoryConfig()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountContext(_Model):
    """Who the customer is to the business (from identify/group events or an accounts file)."""

    name: str | None = None
    tier: str = "standard"
    value: float = 0.0
    lifecycle: str | None = None
    owner: str | None = None  # account manager to notify (Slack handle or email)
    tenure_days: int | None = None
    traits: dict[str, Any] = Field(default_factory=dict)

    @property
    def own_fields(self) -> tuple[object, ...]:
        """The account's own fields, without the free-form traits."""
        return (self.name, self.tier, self.value, self.lifecycle, self.owner, self.tenure_days)


# Traits that set the account context's fields. ``name`` in an identify call is the
# person's; the company's name comes as ``account_name`` (Segment group calls' ``name`` is
# mapped to it) or from an accounts file.
ACCOUNT_TRAITS = {
    "account_name": "name",
    "tier": "tier",
    "value": "value",
    "lifecycle": "lifecycle",
    "owner": "owner",
    "tenure_days": "tenure_days",
}


def with_traits(account: AccountContext, traits: Mapping[str, Any]) -> AccountContext:
    """``account`` with ``traits`` applied: known ones set fields, others land in .traits."""
    update = {
        ACCOUNT_TRAITS[k]: v for k, v in traits.items() if k in ACCOUNT_TRAITS and v is not None
    }
    extra = {k: v for k, v in traits.items() if k not in ACCOUNT_TRAITS}
    if not update and not extra:
        return account
    merged = account.model_dump() | update
    merged["traits"] = account.traits | extra
    return AccountContext.model_validate(merged)


class Hold(_Model):
    """A marketing hold, modelled on Alertmanager silences: expired and replaced, not edited."""

    hold_id: str
    categories: list[HoldCategory]
    starts_at: Instant
    ends_at: Instant
    created_by: str  # "rule:<id>" or "person:<who>"
    reason: str
    comment: str = ""
    released_at: Instant | None = None
    released_by: str | None = None  # a person, or "clock" (ended, or the trend recovered)

    def active(self, now: datetime) -> bool:
        return self.released_at is None and self.starts_at <= now < self.ends_at

    def covers(self, category: str) -> bool:
        return "all" in self.categories or category in self.categories


class Handoff(_Model):
    """An open handoff (resolved and rejected ones leave the state; the store lists them)."""

    handoff_id: str
    queue: str
    priority: str
    opened_at: Instant
    topic: str
    status: Literal["open", "accepted"] = "open"
    by: str | None = None  # the agent who accepted it
    updated_at: Instant | None = None
    rule_id: str = ""  # the rule that escalated (outcomes are credited to it)


@dataclass(frozen=True, slots=True)
class Mark:
    """One remembered event in a window, kept in event-time order. (A plain dataclass:
    built on every click and page view; pydantic validates it when a state is loaded.)

    ``key`` is what the detector compares: the element clicked, the page path, the bot's
    step, the contact's topic. ``tag`` qualifies it (a bot turn's outcome, a contact's
    conversation or ticket); ``ok`` is an API call's result.
    """

    at: Instant
    id: str
    key: str | None = None
    tag: str | None = None
    ok: bool | None = None
    x: float | None = None
    y: float | None = None


@dataclass(frozen=True, slots=True)
class SignalMark:
    """A signal that fired recently, with its evidence (the "active signals")."""

    name: str
    at: Instant
    strength: float
    reason: str
    evidence: tuple[str, ...] = ()
    event_id: str = ""  # the event it fired on ("" in states stored before it was kept)


def _insert(window: list[Mark], mark: Mark, retention: timedelta, cap: int) -> list[Mark]:
    """``window`` with ``mark`` in event-time order, minus marks older than ``retention``
    before the newest one, capped at the ``cap`` newest."""
    out = list(window)
    bisect.insort(out, mark, key=lambda m: m.at)
    newest = out[-1].at
    return [m for m in out if newest - m.at <= retention][-cap:]


def _dated(window: list[datetime], at: datetime) -> list[datetime]:
    out = list(window)
    bisect.insort(out, at)
    return [t for t in out if out[-1] - t <= PAYMENT_WINDOW][-MAX_DATED:]


class CustomerState(Trended, _Model):
    customer_id: str
    account_id: str | None = None
    account: AccountContext = Field(default_factory=AccountContext)
    trend: dict[str, Trend] = Field(default_factory=dict)
    topic: str = "other"
    topic_at: Instant | None = None
    first_seen: Instant | None = None
    last_seen: Instant | None = None
    events_seen: int = 0
    late_events: int = 0  # arrived later than the allowed lateness: recorded, not applied
    timezone: str | None = None  # IANA name, from identify traits (quiet hours, local time)
    # behavioural windows (each in event-time order, bounded in time and count)
    recent_messages: list[str] = Field(default_factory=list)
    last_message_at: Instant | None = None
    clicks: list[Mark] = Field(default_factory=list)
    pages: list[Mark] = Field(default_factory=list)
    api_calls: list[Mark] = Field(default_factory=list)
    bot_turns: list[Mark] = Field(default_factory=list)
    contacts: list[Mark] = Field(default_factory=list)
    payment_failures: list[Instant] = Field(default_factory=list)
    unsolved_tickets: list[Instant] = Field(default_factory=list)
    open_tickets: list[str] = Field(default_factory=list)
    # the latest tickets closed (a ticket opened again is a reopening: an outcome)
    closed_tickets: list[str] = Field(default_factory=list)
    docs_page_since: Instant | None = None
    # evidence: recent signals verbatim; older ones summarised as counts per name
    signals: list[SignalMark] = Field(default_factory=list)
    signal_counts: dict[str, int] = Field(default_factory=dict)
    # the conversation in progress: its frustration now (state/conversation.py)
    conversation: Conversation = Field(default_factory=Conversation)
    # what tactful has done
    holds: list[Hold] = Field(default_factory=list)
    handoffs: list[Handoff] = Field(default_factory=list)
    # when each rule last fired, for cooldowns (the decision history is the audit log)
    rule_fired_at: dict[str, Instant] = Field(default_factory=dict)

    def active_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.holds if h.active(now)]

    def payment_failures_30d(self, now: datetime) -> int:
        """Failed payments known in the 30 days up to ``now``, and any already seen after
        it: a failure that arrives late still counts as the second of two, so the count
        each failure gets does not depend on the order they arrived in."""
        oldest = now - PAYMENT_WINDOW
        return sum(1 for t in self.payment_failures if oldest <= t)

    def unresolved_tickets_30d(self, now: datetime) -> int:
        """Open tickets plus tickets closed unsolved in the last 30 days (and any already
        seen after ``now``, as for payments)."""
        oldest = now - PAYMENT_WINDOW
        closed = sum(1 for t in self.unsolved_tickets if oldest <= t)
        return len(self.open_tickets) + closed

    @property
    def last_page(self) -> str | None:
        return self.pages[-1].key if self.pages else None

    def local(self, now: datetime) -> datetime:
        """``now`` on the customer's clock (UTC when their time zone is unknown)."""
        return now.astimezone(ZoneInfo(self.timezone)) if self.timezone else now

    def active_signals(self, now: datetime) -> list[SignalMark]:
        return [s for s in self.signals if now - s.at <= SIGNAL_RETENTION]


def with_message(recent: list[str], text: str) -> list[str]:
    """The recent-messages window after a customer message (the scorer's history)."""
    return [*recent, text[:2_000]][-MAX_RECENT_MESSAGES:]


def error_streak(state: CustomerState, now: datetime) -> list[str]:
    """The event ids of the API-error streak running at ``now``: the errors since the last
    success, none more than ERROR_STREAK_GAP after the one before (empty once quiet)."""
    streak: list[str] = []
    later = now
    for mark in reversed(state.api_calls):
        if mark.at > now:
            continue
        if mark.ok or later - mark.at > ERROR_STREAK_GAP:
            break
        streak.append(mark.id)
        later = mark.at
    return streak[::-1]


def errors_after(state: CustomerState, at: datetime) -> tuple[list[str], datetime]:
    """The errors recorded after ``at`` that would chain onto an error at ``at`` (a late
    error's streak continues into them), up to the next success or gap; and when the last
    of them happened (``at`` when there are none)."""
    run: list[str] = []
    earlier = at
    for mark in state.api_calls:
        if mark.at <= at:
            continue
        if mark.ok or mark.at - earlier > ERROR_STREAK_GAP:
            break
        run.append(mark.id)
        earlier = mark.at
    return run, earlier


def too_late(last_seen: datetime | None, at: datetime, lateness: timedelta) -> bool:
    """An event at ``at`` is older than the customer's latest by more than ``lateness``."""
    return last_seen is not None and last_seen - at > lateness


def is_too_late(state: CustomerState, event: Event, memory: MemoryConfig = DEFAULT_MEMORY) -> bool:
    """Older than the customer's latest event by more than the allowed lateness."""
    return too_late(state.last_seen, event.timestamp, memory.lateness)


def is_docs_page(path: str, category: str | None = None) -> bool:
    """Documentation or help: by its category, or by its path."""
    return category in ("docs", "help") or path.startswith(("/docs", "/help"))


def _event_updates(state: CustomerState, event: Event) -> dict[str, Any]:
    """The behavioural windows the event changes (detectors read these), as new values."""
    now = event.timestamp
    match event.type:
        case "message":
            if event.role == "customer":
                return {
                    "recent_messages": with_message(state.recent_messages, event.text),
                    "last_message_at": max(now, state.last_message_at or now),
                }
        case "click":
            mark = Mark(at=now, id=event.event_id, key=event.element, x=event.x, y=event.y)
            return {"clicks": _insert(state.clicks, mark, CLICK_RETENTION, MAX_RECENT_CLICKS)}
        case "api_error":
            mark = Mark(at=now, id=event.event_id, ok=False)
            return {"api_calls": _insert(state.api_calls, mark, API_RETENTION, MAX_API_MARKS)}
        case "command_run":
            mark = Mark(at=now, id=event.event_id, ok=event.ok)
            out: dict[str, Any] = {
                "api_calls": _insert(state.api_calls, mark, API_RETENTION, MAX_API_MARKS)
            }
            if event.ok:
                out["docs_page_since"] = None
            return out
        case "payment_failed":
            return {"payment_failures": _dated(state.payment_failures, now)}
        case "ticket_opened":
            if event.ticket_id not in state.open_tickets:
                return {"open_tickets": [*state.open_tickets, event.ticket_id][-MAX_OPEN_TICKETS:]}
        case "ticket_closed":
            out = {
                "open_tickets": [t for t in state.open_tickets if t != event.ticket_id],
                "closed_tickets": [
                    *(t for t in state.closed_tickets if t != event.ticket_id),
                    event.ticket_id,
                ][-MAX_OPEN_TICKETS:],
            }
            if event.resolution == "solved":
                out["handoffs"] = []  # the human side closed the loop
            elif event.resolution == "unsolved":
                out["unsolved_tickets"] = _dated(state.unsolved_tickets, now)
            return out
        case "page_view":
            docs = is_docs_page(event.path, event.category)
            mark = Mark(at=now, id=event.event_id, key=event.path, tag="docs" if docs else None)
            pages = _insert(state.pages, mark, PAGE_RETENTION, MAX_PAGES)
            newest = pages[-1] is mark
            if not newest:  # a late page view changes history, not where they are now
                return {"pages": pages}
            since = (state.docs_page_since or now) if docs else None
            return {"pages": pages, "docs_page_since": since}
        case "bot_turn":
            mark = Mark(at=now, id=event.event_id, key=event.step_id, tag=event.outcome)
            return {"bot_turns": _insert(state.bot_turns, mark, BOT_RETENTION, MAX_BOT_TURNS)}
        case "identify":
            out = {"account": with_traits(state.account, event.traits)}
            tz = event.traits.get("timezone")
            if isinstance(tz, str):
                out["timezone"] = tz
            return out
        case _:
            pass
    return {}


def starts_contact(state: CustomerState, event: Event) -> bool:
    """Whether ``event`` opens a new contact: a ticket, or a customer message that opens a
    conversation (a new conversation id, or, without ids, after CONTACT_GAP of silence).
    A follow-up in the same conversation is not a new contact."""
    if event.type == "ticket_opened":
        return True
    if event.type != "message" or event.role != "customer":
        return False
    if event.conversation_id is not None:
        return not any(c.tag == event.conversation_id for c in state.contacts)
    last = state.last_message_at
    return last is None or abs(event.timestamp - last) >= CONTACT_GAP


def _contact(state: CustomerState, event: Event, topic: str | None) -> Mark | None:
    """The contact this event starts, if it starts one."""
    if not starts_contact(state, event):
        return None
    ref = None
    if event.type == "ticket_opened":
        ref = event.ticket_id
    elif event.type == "message":
        ref = event.conversation_id
    return Mark(at=event.timestamp, id=event.event_id, key=topic, tag=ref)


def contact_topic(signals: list[Signal]) -> str | None:
    """The topic a contact is about, from its signals (the strongest that names one)."""
    named = [s for s in signals if s.topic and s.topic != "other"]
    return max(named, key=lambda s: s.strength).topic if named else None


def remember(
    state: CustomerState,
    event: Event,
    signals: list[Signal],
    memory: MemoryConfig = DEFAULT_MEMORY,
) -> CustomerState:
    """Return the customer's state after ``event`` and the ``signals`` detected on it.

    ``state`` is never changed: every field that changes gets a new value (lists and
    dicts are rebuilt) and one shallow copy takes them all. An event later than the allowed
    lateness is counted (the store records it, flagged) and only its order-free facts
    apply: a ticket closed, a failed payment.
    """
    now = event.timestamp
    if is_too_late(state, event, memory):
        late: dict[str, Any] = {
            "events_seen": state.events_seen + 1,
            "late_events": state.late_events + 1,
        }
        # Facts that do not depend on order still count: a ticket closed, a payment that
        # failed (windows and trends would be corrupted, so they are left alone).
        if event.type in ("ticket_closed", "payment_failed"):
            late.update(_event_updates(state, event))
        return state.model_copy(update=late)
    u = _event_updates(state, event)
    if event.account_id:
        u["account_id"] = event.account_id
    u["first_seen"] = min(state.first_seen, now) if state.first_seen else now
    latest = max(state.last_seen, now) if state.last_seen else now
    u["last_seen"] = latest
    u["events_seen"] = state.events_seen + 1

    if any(s.name == "confusion_dwell" for s in signals):
        u["docs_page_since"] = None  # once per visit to the docs
    topic = contact_topic(signals)
    contact = _contact(state, event, topic)
    if contact is not None:
        u["contacts"] = _insert(state.contacts, contact, CONTACT_RETENTION, MAX_CONTACTS)
    if signals:
        trend = dict(state.trend)
        config = memory.trend
        for signal in signals:
            weight = memory.weights.get(signal.name, 1.0)
            when = signal.at or now
            for dim, strength in signal.dimensions.items():
                if weight * strength > 0:
                    prior = trend.get(dim) or EMPTY_TREND
                    trend[dim] = prior.add(weight * strength, when, dim, config)
        u["trend"] = trend
        if topic is not None and (state.topic_at is None or now >= state.topic_at):
            u["topic"] = topic
            u["topic_at"] = now
        marks = [
            *state.signals,
            *(
                SignalMark(
                    name=s.name,
                    at=s.at or now,
                    strength=round(s.strength, 3),
                    reason=s.reason[:80],
                    evidence=tuple(e[:64] for e in s.evidence[:3]),
                    event_id=event.event_id,
                )
                for s in signals
            ),
        ]
        marks.sort(key=lambda m: m.at)
        u["signals"] = [m for m in marks if latest - m.at <= SIGNAL_RETENTION][-MAX_SIGNAL_MARKS:]
        counts = dict(state.signal_counts)
        for s in signals:
            counts[s.name] = counts.get(s.name, 0) + 1
        u["signal_counts"] = counts
    # A dimension whose evidence has faded to nothing is dropped (its count stays). Only
    # trends quiet for several half-lives can have: the cheap test runs first.
    trends = u.get("trend", state.trend)
    faded = [
        d
        for d, t in trends.items()
        if t.at is not None
        and (latest - t.at).total_seconds() > 4 * memory.trend.half_life(d)
        and t.mass_at(latest, memory.trend.half_life(d)) < FADED
    ]
    if faded:
        u["trend"] = {d: t for d, t in trends.items() if d not in faded}
    # Holds end by themselves; drop those long gone to keep state bounded (the store's
    # audit log keeps their history). An open handoff lapses after HANDOFF_TTL.
    cutoff = latest - HOLD_AFTERLIFE
    if any(h.ends_at <= cutoff or h.released_at for h in state.holds):
        u["holds"] = [
            h for h in state.holds if h.ends_at > cutoff and (h.released_at or h.ends_at) > cutoff
        ]
    # When each rule last fired matters only within its cooldown (at most RULE_MEMORY).
    if any(latest - t > RULE_MEMORY for t in state.rule_fired_at.values()):
        u["rule_fired_at"] = {
            r: t for r, t in state.rule_fired_at.items() if latest - t <= RULE_MEMORY
        }
    handoffs = u.get("handoffs", state.handoffs)
    if any(latest - h.opened_at >= HANDOFF_TTL for h in handoffs):
        u["handoffs"] = [h for h in handoffs if latest - h.opened_at < HANDOFF_TTL]
    return state.model_copy(update=u)

"""Remember: what tactful keeps about one customer, and its pure update.

The state is small and bounded (windows keep only what their detectors need), serialised
as JSON by the store. ``remember`` never mutates its input: it returns a new state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tactful.events import Event
from tactful.signals import DIMENSIONS, Signal
from tactful.state.trend import DEFAULT_HALF_LIVES, Trend

__all__ = [
    "AccountContext",
    "ClickMark",
    "CustomerState",
    "Handoff",
    "Hold",
    "HoldCategory",
    "remember",
]

HoldCategory = Literal["promotional", "educational", "sales", "all"]

# Bounds on the windows kept in state.
MAX_RECENT_MESSAGES = 5
MAX_RECENT_CLICKS = 20
MAX_RECENT_SIGNALS = 20
PAYMENT_WINDOW = timedelta(days=30)
# An open handoff mutes further escalations until it is closed (ticket solved) or this old.
HANDOFF_TTL = timedelta(days=3)
# API errors further apart than this start a new streak ("three in a row" is one episode).
ERROR_STREAK_GAP = timedelta(minutes=15)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountContext(_Model):
    """Who the customer is to the business (from identify events)."""

    tier: str = "standard"
    value: float = 0.0
    lifecycle: str | None = None
    owner: str | None = None  # account manager to notify (Slack handle or email)
    tenure_days: int | None = None
    traits: dict[str, Any] = Field(default_factory=dict)


class Hold(_Model):
    """A marketing hold, modelled on Alertmanager silences: expired and replaced, not edited."""

    hold_id: str
    categories: list[HoldCategory]
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str
    reason: str
    released_at: AwareDatetime | None = None

    def active(self, now: datetime) -> bool:
        return self.released_at is None and self.starts_at <= now < self.ends_at

    def covers(self, category: str) -> bool:
        return "all" in self.categories or category in self.categories


class Handoff(_Model):
    handoff_id: str
    queue: str
    priority: str
    opened_at: AwareDatetime
    topic: str


class ClickMark(_Model):
    element: str
    at: AwareDatetime
    event_id: str
    x: float | None = None
    y: float | None = None


class CustomerState(_Model):
    customer_id: str
    account_id: str | None = None
    account: AccountContext = Field(default_factory=AccountContext)
    trend: dict[str, Trend] = Field(default_factory=dict)
    topic: str = "other"
    topic_at: AwareDatetime | None = None
    first_seen: AwareDatetime | None = None
    last_seen: AwareDatetime | None = None
    events_seen: int = 0
    # behavioural windows
    recent_messages: list[str] = Field(default_factory=list)
    recent_clicks: list[ClickMark] = Field(default_factory=list)
    api_error_streak: list[str] = Field(default_factory=list)  # event ids
    last_api_error_at: AwareDatetime | None = None
    payment_failures: list[AwareDatetime] = Field(default_factory=list)
    open_tickets: list[str] = Field(default_factory=list)
    last_page: str | None = None
    docs_page_since: AwareDatetime | None = None
    bot_failed_step: str | None = None
    recent_signals: list[str] = Field(default_factory=list)
    # what tactful has done
    holds: list[Hold] = Field(default_factory=list)
    handoffs: list[Handoff] = Field(default_factory=list)
    # when each rule last fired, for cooldowns (the decision history is the audit log)
    rule_fired_at: dict[str, AwareDatetime] = Field(default_factory=dict)

    def level(self, dimension: str, now: datetime) -> float:
        trend = self.trend.get(dimension)
        if trend is None:
            return 0.0
        return trend.value_at(now, DEFAULT_HALF_LIVES[dimension])

    def levels(self, now: datetime) -> dict[str, float]:
        return {d: self.level(d, now) for d in DIMENSIONS}

    def active_holds(self, now: datetime) -> list[Hold]:
        return [h for h in self.holds if h.active(now)]

    def payment_failures_30d(self, now: datetime) -> int:
        return sum(1 for t in self.payment_failures if now - t <= PAYMENT_WINDOW)


def with_message(recent: list[str], text: str) -> list[str]:
    """The recent-messages window after a customer message (the scorer's history)."""
    return [*recent, text[:2_000]][-MAX_RECENT_MESSAGES:]


def error_streak(state: CustomerState, now: datetime) -> list[str]:
    """The API-error streak still running at ``now`` (empty once it went quiet)."""
    last = state.last_api_error_at
    if last is None or now - last > ERROR_STREAK_GAP:
        return []
    return state.api_error_streak


def _event_updates(state: CustomerState, event: Event) -> dict[str, Any]:
    """The behavioural windows the event changes (detectors read these), as new values."""
    now = event.timestamp
    match event.type:
        case "message":
            if event.role == "customer":
                return {"recent_messages": with_message(state.recent_messages, event.text)}
        case "click":
            window = [c for c in state.recent_clicks if now - c.at <= timedelta(minutes=2)]
            window.append(
                ClickMark(
                    element=event.element, at=now, event_id=event.event_id, x=event.x, y=event.y
                )
            )
            return {"recent_clicks": window[-MAX_RECENT_CLICKS:]}
        case "api_error":
            return {
                "api_error_streak": [*error_streak(state, now), event.event_id][-10:],
                "last_api_error_at": now,
            }
        case "command_run":
            if event.ok:
                return {"api_error_streak": [], "docs_page_since": None}
        case "payment_failed":
            recent_failures = [t for t in state.payment_failures if now - t <= PAYMENT_WINDOW]
            return {"payment_failures": [*recent_failures, now]}
        case "ticket_opened":
            if event.ticket_id not in state.open_tickets:
                return {"open_tickets": [*state.open_tickets, event.ticket_id][-50:]}
        case "ticket_closed":
            out: dict[str, Any] = {
                "open_tickets": [t for t in state.open_tickets if t != event.ticket_id]
            }
            if event.resolution == "solved":
                out["handoffs"] = []  # the human side closed the loop
            return out
        case "page_view":
            is_docs = event.path.startswith("/docs")
            since = (state.docs_page_since or now) if is_docs else None
            return {"last_page": event.path, "docs_page_since": since}
        case "bot_turn":
            return {"bot_failed_step": event.step_id if event.outcome == "failed" else None}
        case "identify":
            return {"account": _with_traits(state.account, event.traits)}
        case _:
            pass
    return {}


def _with_traits(account: AccountContext, traits: dict[str, Any]) -> AccountContext:
    known = {"tier", "value", "lifecycle", "owner", "tenure_days"}
    update: dict[str, Any] = {k: v for k, v in traits.items() if k in known and v is not None}
    extra = {k: v for k, v in traits.items() if k not in known}
    merged = account.model_dump() | update
    merged["traits"] = account.traits | extra
    return AccountContext.model_validate(merged)


def remember(state: CustomerState, event: Event, signals: list[Signal]) -> CustomerState:
    """Return the customer's state after ``event`` and the ``signals`` detected on it.

    ``state`` is never changed: every field that changes gets a new value (lists and
    dicts are rebuilt) and one shallow copy takes them all.
    """
    now = event.timestamp
    u = _event_updates(state, event)
    if event.account_id:
        u["account_id"] = event.account_id
    u["first_seen"] = state.first_seen or now
    u["last_seen"] = max(state.last_seen, now) if state.last_seen else now
    u["events_seen"] = state.events_seen + 1

    if any(s.name == "confusion_dwell" for s in signals):
        u["docs_page_since"] = None  # once per visit to the docs
    if signals:
        trend = dict(state.trend)
        for signal in signals:
            for dim, weight in signal.dimensions.items():
                trend[dim] = trend.get(dim, Trend()).update(weight, now, DEFAULT_HALF_LIVES[dim])
            if signal.topic and signal.topic != "other":
                u["topic"] = signal.topic
                u["topic_at"] = now
        u["trend"] = trend
        recent = [*state.recent_signals, *(s.name for s in signals)]
        u["recent_signals"] = recent[-MAX_RECENT_SIGNALS:]
    # Holds end by themselves; drop those long gone to keep state bounded (the store's
    # audit log keeps their history). An open handoff lapses after HANDOFF_TTL.
    cutoff = now - timedelta(days=30)
    if any(h.ends_at <= cutoff for h in state.holds):
        u["holds"] = [h for h in state.holds if h.ends_at > cutoff]
    handoffs = u.get("handoffs", state.handoffs)
    if any(now - h.opened_at >= HANDOFF_TTL for h in handoffs):
        u["handoffs"] = [h for h in handoffs if now - h.opened_at < HANDOFF_TTL]
    return state.model_copy(update=u)

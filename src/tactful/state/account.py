"""Remember, per account: the customers of one company seen together.

The state graph is customer -> account (``CustomerState.account_id``), account -> customers
(the store's index on it), customer -> tickets and sessions (the customer's windows), and
account -> tickets (here). An account's trend is the sum of its customers' evidence: the
same decayed mass, fed by every signal of every member, so "three people at Acme are
struggling" reads higher than one, and it is as order-independent as a customer's trend.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from tactful.events import Event
from tactful.instant import Instant
from tactful.signals import Signal
from tactful.state.customer import (
    ACCOUNT_TRAITS,
    DEFAULT_MEMORY,
    AccountContext,
    CustomerState,
    MemoryConfig,
    _Model,
    with_traits,
)
from tactful.state.trend import EMPTY_TREND, Trend, Trended

__all__ = ["AccountState", "DecayedCount", "MemberRisk", "remember_account"]

_NO_CONTEXT = AccountContext()


# Event types that change an account even without a signal.
_ACCOUNT_EVENTS = frozenset(
    {"identify", "api_error", "command_run", "ticket_opened", "ticket_closed"}
)
MAX_AT_RISK = 5
AT_RISK_FLOOR = 0.3  # members below this on frustration and churn intent are not listed
MAX_ACCOUNT_TICKETS = 50
ERROR_RATE_HALF_LIFE = timedelta(hours=1)


class DecayedCount(_Model):
    """A count whose units halve every half-life (an hourly rate without a window)."""

    n: float = 0.0
    at: Instant | None = None

    def value_at(self, now: datetime, half_life: timedelta) -> float:
        if self.at is None:
            return 0.0
        elapsed = (now - self.at).total_seconds()
        return self.n * float(0.5 ** max(elapsed / half_life.total_seconds(), 0.0))

    def add(self, when: datetime, half_life: timedelta, amount: float = 1.0) -> DecayedCount:
        if self.at is None or when >= self.at:
            return DecayedCount(n=self.value_at(when, half_life) + amount, at=when)
        late = (self.at - when).total_seconds() / half_life.total_seconds()
        return DecayedCount(n=self.n + amount * float(0.5**late), at=self.at)


class MemberRisk(_Model):
    customer_id: str
    frustration: float
    churn_intent: float
    at: Instant

    @property
    def risk(self) -> float:
        return max(self.frustration, self.churn_intent)


class AccountState(Trended, _Model):
    account_id: str
    context: AccountContext = Field(default_factory=AccountContext)
    trend: dict[str, Trend] = Field(default_factory=dict)
    members: int = 0
    first_seen: Instant | None = None
    last_seen: Instant | None = None
    events_seen: int = 0
    # The members doing worst (frustration or churn intent), as of their latest event.
    at_risk: list[MemberRisk] = Field(default_factory=list)
    api_calls: DecayedCount = Field(default_factory=DecayedCount)
    api_errors: DecayedCount = Field(default_factory=DecayedCount)
    open_tickets: list[str] = Field(default_factory=list)
    signal_counts: dict[str, int] = Field(default_factory=dict)

    def error_rate(self, now: datetime) -> float:
        """API errors / API calls over roughly the last hour (decayed), 0 with no calls."""
        calls = self.api_calls.value_at(now, ERROR_RATE_HALF_LIFE)
        if calls < 1e-9:
            return 0.0
        return min(self.api_errors.value_at(now, ERROR_RATE_HALF_LIFE) / calls, 1.0)


def remember_account(
    account: AccountState,
    before: CustomerState,
    after: CustomerState,
    event: Event,
    signals: list[Signal],
    memory: MemoryConfig = DEFAULT_MEMORY,
) -> AccountState:
    """The account after one of its customers' events (``before``/``after``: that customer's
    state around it). Pure, like :func:`tactful.state.customer.remember`.

    Only events that change the account update it (a signal, identify, API calls,
    tickets, a customer joining); for the rest the same object comes back, unwritten.
    ``events_seen`` counts the events that changed it."""
    joined = before.account_id != account.account_id or before.events_seen == 0
    listed = bool(account.at_risk) and any(
        m.customer_id == after.customer_id for m in account.at_risk
    )
    if not (signals or joined or listed or event.type in _ACCOUNT_EVENTS):
        return account
    now = event.timestamp
    u: dict[str, object] = {
        "events_seen": account.events_seen + 1,
        "first_seen": min(account.first_seen, now) if account.first_seen else now,
        "last_seen": max(account.last_seen, now) if account.last_seen else now,
    }
    if joined:
        u["members"] = account.members + 1
    context = account.context
    if (
        after.account is not context
        and (context is _NO_CONTEXT or context == _NO_CONTEXT)
        and after.account.own_fields != context.own_fields
    ):
        # the account fields this customer brought along (not their personal traits)
        context = u["context"] = after.account.model_copy(update={"traits": {}})
    match event.type:
        case "identify":
            # A person's identify shares only the account's own fields (tier, value,
            # owner ...) with the account; their other traits (email, phone ...) stay
            # theirs. A group call describes the company: all of its traits are shared.
            shared = (
                event.traits
                if event.context.get("call") == "group"
                else {k: v for k, v in event.traits.items() if k in ACCOUNT_TRAITS}
            )
            if shared:
                u["context"] = with_traits(context, shared)
        case "api_error":
            u["api_calls"] = account.api_calls.add(now, ERROR_RATE_HALF_LIFE)
            u["api_errors"] = account.api_errors.add(now, ERROR_RATE_HALF_LIFE)
        case "command_run":
            u["api_calls"] = account.api_calls.add(now, ERROR_RATE_HALF_LIFE)
            if not event.ok:
                u["api_errors"] = account.api_errors.add(now, ERROR_RATE_HALF_LIFE)
        case "ticket_opened" if event.ticket_id not in account.open_tickets:
            u["open_tickets"] = [*account.open_tickets, event.ticket_id][-MAX_ACCOUNT_TICKETS:]
        case "ticket_closed":
            u["open_tickets"] = [t for t in account.open_tickets if t != event.ticket_id]
        case _:
            pass
    if signals:
        trend = dict(account.trend)
        counts = dict(account.signal_counts)
        for signal in signals:
            weight = memory.weights.get(signal.name, 1.0)
            for dim, strength in signal.dimensions.items():
                if weight * strength > 0:
                    prior = trend.get(dim) or EMPTY_TREND
                    trend[dim] = prior.add(weight * strength, now, dim, memory.trend)
            counts[signal.name] = counts.get(signal.name, 0) + 1
        u["trend"] = trend
        u["signal_counts"] = counts
    # The at-risk list: this member's current standing replaces their old entry (looked
    # at when their trends moved, or when they are on it).
    if not listed and not signals:
        return account.model_copy(update=u)
    mine = MemberRisk(
        customer_id=after.customer_id,
        frustration=round(after.level("frustration", now, memory.trend), 3),
        churn_intent=round(after.level("churn_intent", now, memory.trend), 3),
        at=now,
    )
    if listed or mine.risk >= AT_RISK_FLOOR:
        others = [m for m in account.at_risk if m.customer_id != mine.customer_id]
        ranked = sorted([*others, mine], key=lambda m: -m.risk)
        u["at_risk"] = [m for m in ranked if m.risk >= AT_RISK_FLOOR][:MAX_AT_RISK]
    return account.model_copy(update=u)

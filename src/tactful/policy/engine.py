"""Decide: state + event + signals + clock -> decisions with reasons. Pure.

Evaluation order: hard triggers first (the first that matches overrides every other
rule), then the other rules in file order; each match adds its decisions, ``stop`` ends
the walk. The conversation gets one treatment (the strongest of automate < clarify /
offer_choices < assist < escalate); holds, releases, notifications and drafts ride along.
Guards keep it from nagging: a rule in its cooldown does not fire, a hold already in
force is not started again, a second handoff is not opened while one is open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from tactful.events import Event
from tactful.policy.expr import CompiledExpr
from tactful.policy.incident import Incident
from tactful.policy.model import KNOWN_SIGNALS, NAMESPACES, Policy, Rule
from tactful.signals import DIMENSIONS, Signal
from tactful.state.account import AccountState
from tactful.state.customer import CustomerState, error_streak
from tactful.state.trend import DEFAULT_TREND, TrendConfig

__all__ = ["CONVERSATION_RANK", "Decision", "Decisions", "PolicyEngine"]

CONVERSATION_RANK = {"automate": 0, "clarify": 1, "offer_choices": 1, "assist": 2, "escalate": 3}


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    event_id: str
    customer_id: str
    at: datetime
    kind: str
    rule_id: str
    policy_version: str
    params: dict[str, Any]
    reasons: tuple[str, ...]
    factors: dict[str, Any]
    # every rule whose condition matched on this event, in evaluation order
    matched: tuple[str, ...] = ()
    # the rules/decisions that matched but did not act, each with why
    lost: tuple[str, ...] = ()
    # the customer is in the policy's control group: recorded, not acted on
    holdout: bool = False
    # its rule runs in review mode and this one was sampled: it waits for a person
    review: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "rule_id": self.rule_id,
            "policy_version": self.policy_version,
            "params": self.params,
            "reasons": list(self.reasons),
            "factors": self.factors,
            "matched": list(self.matched),
            "lost": list(self.lost),
            "holdout": self.holdout,
            "review": self.review,
        }


class _Pending(NamedTuple):
    """A decision before the event's outranking and explanation are settled."""

    rule_id: str
    kind: str
    params: dict[str, Any]
    reasons: tuple[str, ...]
    factors: dict[str, Any]


@dataclass(slots=True)
class Decisions:
    decisions: list[Decision] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # guard notes, for explanations


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, str) and len(v) > 60:
        return v[:57] + "..."
    return v


_EVENT_FIELDS: dict[type, tuple[str, ...]] = {}


def _event_fields(event: Event) -> dict[str, Any]:
    """The event's readable fields; those its type lacks read as None."""
    cls = type(event)
    names = _EVENT_FIELDS.get(cls)
    if names is None:
        names = _EVENT_FIELDS[cls] = tuple(NAMESPACES["event"] & set(cls.model_fields))
    values = dict.fromkeys(NAMESPACES["event"])
    for name in names:
        values[name] = getattr(event, name)
    return values


def _before(state: CustomerState, dimension: str, now: datetime, config: TrendConfig) -> float:
    """The level just before this event's evidence was added (the trend keeps it)."""
    trend = state.trend.get(dimension)
    if trend is not None and trend.at == now:
        return trend.level_before(dimension, config)
    return state.level(dimension, now, config)


def _slope(state: CustomerState, dimension: str, now: datetime, config: TrendConfig) -> float:
    trend = state.trend.get(dimension)
    return 0.0 if trend is None else round(trend.rate_gap(now, dimension, config), 3)


StateField = Callable[[CustomerState, datetime, TrendConfig], Any]


def _dimension_fields(dim: str) -> dict[str, StateField]:
    return {
        dim: lambda s, now, c: s.level(dim, now, c),
        f"{dim}_slope": lambda s, now, c: _slope(s, dim, now, c),
        f"{dim}_before": lambda s, now, c: _before(s, dim, now, c),
    }


_STATE_FIELDS: dict[str, StateField] = {
    **{k: v for d in DIMENSIONS for k, v in _dimension_fields(d).items()},
    "topic": lambda s, now, c: s.topic,
    "open_tickets": lambda s, now, c: len(s.open_tickets),
    "unresolved_tickets_30d": lambda s, now, c: s.unresolved_tickets_30d(now),
    "payment_failures_30d": lambda s, now, c: s.payment_failures_30d(now),
    "api_error_streak": lambda s, now, c: len(error_streak(s, now)),
    "events_seen": lambda s, now, c: s.events_seen,
    "active_holds": lambda s, now, c: len(s.active_holds(now)),
    "open_handoffs": lambda s, now, c: len(s.handoffs),
    "frustration_now": lambda s, now, c: s.conversation.level(now),
    "bot_repeats": lambda s, now, c: s.conversation.repeating(now),
}
assert set(_STATE_FIELDS) == NAMESPACES["state"]


class _StateView(dict[str, Any]):
    """The ``state`` namespace, computed on first read: most events read few fields."""

    def __init__(
        self,
        state: CustomerState,
        now: datetime,
        config: TrendConfig,
        prior: CustomerState | None = None,
    ) -> None:
        super().__init__()
        self._state = state
        self._now = now
        self._config = config
        self._prior = prior  # the state before this event: exact `<dim>_before` levels

    def __missing__(self, key: str) -> Any:
        if self._prior is not None and key.endswith("_before"):
            value = self._prior.level(key.removesuffix("_before"), self._now, self._config)
        else:
            value = _STATE_FIELDS[key](self._state, self._now, self._config)
        self[key] = value
        return value


_ACCOUNT_FIELDS: dict[
    str, Callable[[CustomerState, AccountState | None, datetime, TrendConfig], Any]
] = {
    "tier": lambda s, a, now, c: s.account.tier,
    "value": lambda s, a, now, c: s.account.value,
    "lifecycle": lambda s, a, now, c: s.account.lifecycle,
    "owner": lambda s, a, now, c: s.account.owner,
    "tenure_days": lambda s, a, now, c: s.account.tenure_days,
    # the account's aggregate over its customers (0 for a customer with none)
    "frustration": lambda s, a, now, c: a.level("frustration", now, c) if a else 0.0,
    "churn_intent": lambda s, a, now, c: a.level("churn_intent", now, c) if a else 0.0,
    "error_rate": lambda s, a, now, c: a.error_rate(now) if a else 0.0,
    "members_at_risk": lambda s, a, now, c: len(a.at_risk) if a else 0,
}
assert set(_ACCOUNT_FIELDS) == NAMESPACES["account"]


class _AccountView(dict[str, Any]):
    """The ``account`` namespace, computed on first read (the aggregates cost a little)."""

    def __init__(
        self, state: CustomerState, account: AccountState | None, now: datetime, c: TrendConfig
    ) -> None:
        super().__init__()
        self._args = (state, account, now, c)

    def __missing__(self, key: str) -> Any:
        value = self[key] = _ACCOUNT_FIELDS[key](*self._args)
        return value


class _Clock(dict[str, Any]):
    """The ``clock`` namespace; the customer's local hour is computed only if read."""

    def __init__(self, now: datetime, state: CustomerState) -> None:
        utc = now.astimezone(UTC)
        super().__init__(hour=utc.hour, weekday=utc.weekday())
        self._now, self._state = now, state

    def __missing__(self, key: str) -> Any:
        if key != "local_hour":
            raise KeyError(key)
        value = self[key] = self._state.local(self._now).hour
        return value


def build_context(
    event: Event,
    state: CustomerState,
    signals: list[Signal],
    now: datetime,
    account: AccountState | None = None,
    trend: TrendConfig = DEFAULT_TREND,
    thresholds: Mapping[str, float] = MappingProxyType({}),
    prior: CustomerState | None = None,
) -> dict[str, Mapping[str, Any]]:
    """The values a condition can read, by namespace (see policy.model.NAMESPACES)."""
    sig: dict[str, Any] = dict.fromkeys(KNOWN_SIGNALS, 0.0)
    for s in signals:
        sig[s.name] = max(sig.get(s.name, 0.0), s.strength)
    return {
        "state": _StateView(state, now, trend, prior),
        "event": _event_fields(event),
        "signal": sig,
        "account": _AccountView(state, account, now, trend),
        "clock": _Clock(now, state),
        "threshold": thresholds,
    }


class PolicyEngine:
    """A policy compiled once; :meth:`decide` is called per event."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules = policy.compiled()
        self.incident_rules = policy.compiled(incident=True)
        self._thresholds = MappingProxyType(dict(policy.thresholds))
        # Each rule's decisions as (kind, params), dumped once here rather than per event.
        self._then = {
            rule.id: [(s.kind, s.params) for s in rule.then]
            for rule, _ in self.rules + self.incident_rules
        }
        self._candidates: dict[
            tuple[str, frozenset[str], bool], list[tuple[Rule, CompiledExpr]]
        ] = {}

    def candidates(
        self, event_type: str, present: frozenset[str], incident: bool = False
    ) -> list[tuple[Rule, CompiledExpr]]:
        """The rules whose conditions can hold for this event type and these signals.

        Rules that need a signal that did not fire, or another event type, are left out
        without being evaluated (see CompiledExpr.requires_*). Memoised: the combinations
        seen in practice are few.
        """
        key = (event_type, present, incident)
        rules = self._candidates.get(key)
        if rules is None:
            rules = [
                (rule, cond)
                for rule, cond in (self.incident_rules if incident else self.rules)
                if (cond.requires_signals is None or not present.isdisjoint(cond.requires_signals))
                and (cond.requires_types is None or event_type in cond.requires_types)
            ]
            if len(self._candidates) < 10_000:
                self._candidates[key] = rules
        return rules

    @property
    def version(self) -> str:
        """The policy's name and content hash, as every decision records it."""
        return self.policy.versioned

    def decide(
        self,
        event: Event,
        state: CustomerState,
        signals: list[Signal],
        now: datetime,
        account: AccountState | None = None,
        trend: TrendConfig = DEFAULT_TREND,
        incident: Incident | None = None,
        queue_load: Mapping[str, int] | None = None,
        prior: CustomerState | None = None,
    ) -> Decisions:
        """``incident``: when on, the policy's incident playbook replaces its ordinary
        rules (hard triggers still first), and every decision's reasons say so.
        ``queue_load``: handoffs per queue in the last hour, for the queues' hourly caps.
        ``prior``: the customer's state before this event, for exact ``<dim>_before``
        levels (without it they come from the trend's own memory of its last update)."""
        in_incident = incident is not None and incident.on
        ctx = build_context(event, state, signals, now, account, trend, self._thresholds, prior)
        out = Decisions()
        matched: list[tuple[Rule, dict[str, Any]]] = []
        present = frozenset(s.name for s in signals if s.strength > 0)
        matched_ids: list[str] = []
        stopped_by: Rule | None = None
        for rule, cond in self.candidates(event.type, present, in_incident):
            if not cond.fn(ctx):
                continue
            matched_ids.append(rule.id)
            if stopped_by is not None:  # evaluated only to explain what it overrode
                why = "hard trigger" if stopped_by.hard else "stop"
                out.suppressed.append(f"{rule.id}: overridden by {stopped_by.id} ({why})")
                continue
            fired = state.rule_fired_at.get(rule.id)
            if fired is not None and rule.cooldown and now - fired < rule.cooldown:
                out.suppressed.append(
                    f"{rule.id}: in cooldown until {(fired + rule.cooldown).isoformat()}"
                )
                continue
            factors = {n: _round(ctx[ns][field]) for n, (ns, field) in cond.fields}
            matched.append((rule, factors))
            if rule.hard or rule.stop:
                stopped_by = rule

        if not matched:
            return out
        evidence = [
            f"{s.name} {s.strength:.2f}: {s.reason}"
            + (f" ({', '.join(repr(e) for e in s.evidence[:3])})" if s.evidence else "")
            for s in signals
        ]
        best_rank = -1
        pending: list[_Pending] = []
        holding: list[list[str]] = []  # categories of holds decided for this event so far
        for rule, factors in matched:
            why = rule.description or rule.id
            factor_text = ", ".join(f"{k}={v}" for k, v in factors.items())
            reasons = (f"{rule.id}: {why}", f"because {factor_text}", *evidence)
            now_read = state.conversation.explain() if "state.frustration_now" in factors else None
            if now_read:
                reasons = (*reasons, now_read)
            if in_incident and incident is not None:
                reasons = (*reasons, incident.note())
            for kind, params in self._then[rule.id]:
                note = self._guard(kind, params, state, now, holding, pending)
                if note:
                    out.suppressed.append(f"{rule.id}/{kind}: {note}")
                    continue
                if kind == "escalate":
                    params = {
                        **params,
                        "queue": self.policy.resolve_queue(params["queue"], state.topic),
                    }
                    params, capped = self._within_cap(params, queue_load, pending)
                    if capped:
                        out.suppressed.append(f"{rule.id}/{kind}: {capped}")
                elif kind == "notify" and params["target"] == "account_owner":
                    owner = state.account.owner or "unassigned-account-owner"
                    params = {**params, "target": owner}
                pending.append(_Pending(rule.id, kind, params, reasons, factors))
                best_rank = max(best_rank, CONVERSATION_RANK.get(kind, -1))
                if kind == "hold":
                    holding.append(params["categories"])
        kept: list[_Pending] = []
        seen: set[tuple[str, str]] = set()
        for p in pending:
            rank = CONVERSATION_RANK.get(p.kind)
            if rank is not None and rank < best_rank:
                out.suppressed.append(f"{p.rule_id}/{p.kind}: outranked by a stronger treatment")
                continue
            if (p.rule_id, p.kind) in seen:
                continue
            seen.add((p.rule_id, p.kind))
            kept.append(p)
        all_matched, lost = tuple(matched_ids), tuple(out.suppressed)
        out.decisions = [
            Decision(
                decision_id=f"{event.event_id}/{p.rule_id}/{p.kind}",
                event_id=event.event_id,
                customer_id=event.customer_id,
                at=now,
                kind=p.kind,
                rule_id=p.rule_id,
                policy_version=self.version,
                params=p.params,
                reasons=p.reasons,
                factors=p.factors,
                matched=all_matched,
                lost=lost,
            )
            for p in kept
        ]
        return out

    def _within_cap(
        self, params: dict[str, Any], load: Mapping[str, int] | None, pending: list[_Pending]
    ) -> tuple[dict[str, Any], str]:
        """Send a handoff past its queue's hourly cap to the overflow queue (once: the
        overflow queue's own cap is not chased further), with a note saying so."""
        queue = params["queue"]
        limit = self.policy.queue_limits.get(queue)
        if limit is None or load is None:
            return params, ""
        used = load.get(queue, 0) + sum(
            1 for p in pending if p.kind == "escalate" and p.params["queue"] == queue
        )
        if used < limit.per_hour:
            return params, ""
        note = f"{queue} queue at its hourly cap ({limit.per_hour}); overflowed to {limit.overflow}"
        return {**params, "queue": limit.overflow, "overflowed_from": queue}, note

    @staticmethod
    def _guard(
        kind: str,
        params: dict[str, Any],
        state: CustomerState,
        now: datetime,
        holding: list[list[str]],
        decided: list[_Pending],
    ) -> str:
        """Why this decision would nag or repeat ("" when it may go ahead)."""
        if kind == "hold":
            active = state.active_holds(now)

            def covered(c: str) -> bool:
                return any(h.covers(c) for h in active) or any(
                    "all" in cats or c in cats for cats in holding
                )

            if all(covered(c) for c in params["categories"]):
                return "a hold covering these categories is already active"
        elif kind == "release" and not state.active_holds(now):
            return "no active hold to release"
        elif kind == "escalate":
            if state.handoffs:
                return f"a handoff is already open ({state.handoffs[-1].queue} queue)"
            if any(d.kind == "escalate" for d in decided):
                return "already escalating on this event"
        return ""

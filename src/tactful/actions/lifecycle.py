"""Act: what happens to holds and handoffs after they start. Pure.

A person places or releases a hold, an agent accepts, resolves or rejects a handoff, the
clock ends a hold or finds the customer recovered. Each is a :class:`Change` to one
customer: the new state, the decision it amounts to (kept in the audit log like any
other, with who and why), the actions to deliver (``hold.released`` reaches the marketing
tool's webhook like ``hold.started`` did) and the outcomes it reveals (a handoff rejected
as unnecessary is a judgement on the rule that escalated).

Holds follow Alertmanager's silences: a hold is never edited. Releasing one expires it
(``released_at``); changing one is releasing it and placing another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tactful.actions.outbox import Action, routed
from tactful.events import Event
from tactful.learn.outcomes import Outcome
from tactful.policy.engine import Decision
from tactful.policy.model import AutoRelease, Policy
from tactful.signals import Signal
from tactful.state.customer import CustomerState, Hold, HoldCategory
from tactful.state.trend import TrendConfig

__all__ = [
    "EDITABLE",
    "Change",
    "HandoffStatus",
    "LifecycleError",
    "approve_review",
    "due_releases",
    "place_hold",
    "reject_review",
    "release_hold",
    "update_handoff",
]

HandoffStatus = Literal["accepted", "resolved", "rejected"]


class LifecycleError(ValueError):
    """A change that cannot apply (no such hold, already released...), saying why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status  # what an HTTP API should answer: 404 or 409


@dataclass(frozen=True, slots=True)
class Change:
    state: CustomerState
    decisions: list[Decision] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def _id(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


def _decision(
    state: CustomerState,
    now: datetime,
    kind: str,
    rule: str,
    reasons: Sequence[str],
    params: Mapping[str, object],
    key: str,
    version: str,
) -> Decision:
    # Not caused by an event: the decision's "event" is the change itself.
    event_id = f"{rule}:{key}"
    return Decision(
        decision_id=f"{event_id}/{kind}",
        event_id=event_id,
        customer_id=state.customer_id,
        at=now,
        kind=kind,
        rule_id=rule,
        policy_version=version,
        params=dict(params),
        reasons=tuple(reasons),
        factors={},
    )


def _released(
    state: CustomerState,
    hold: Hold,
    now: datetime,
    rule: str,
    by: str,
    why: str,
    comment: str,
    policy: Policy,
) -> Change:
    holds = [
        h.model_copy(
            update={"released_at": now, "released_by": by, "comment": comment or h.comment}
        )
        if h.hold_id == hold.hold_id
        else h
        for h in state.holds
    ]
    new = state.model_copy(update={"holds": holds})
    d = _decision(
        state,
        now,
        "release",
        rule,
        [f"{rule}: {why}", *([f"comment: {comment}"] if comment else [])],
        {"hold_id": hold.hold_id, "by": by},
        _id(hold.hold_id, now.isoformat()),
        policy.versioned,
    )
    payload: dict[str, object] = {
        "hold_id": hold.hold_id,
        "categories": list(hold.categories),
        "released_at": now.isoformat(),
        "released_by": by,
        "reason": why,
        "comment": comment,
    }
    return Change(new, [d], routed(d, "hold.released", payload, policy.delivery))


def release_hold(
    state: CustomerState, hold_id: str, now: datetime, by: str, comment: str, policy: Policy
) -> Change:
    """A person ends a hold early, with a comment (kept on the hold and in the audit log)."""
    hold = next((h for h in state.holds if h.hold_id == hold_id), None)
    if hold is None:
        raise LifecycleError(f"customer '{state.customer_id}' has no hold '{hold_id}'", 404)
    if not hold.active(now):
        when = hold.released_at or hold.ends_at
        raise LifecycleError(f"hold '{hold_id}' already ended at {when.isoformat()}")
    return _released(state, hold, now, "manual", by, f"released by {by}", comment, policy)


def place_hold(
    state: CustomerState,
    categories: Sequence[HoldCategory],
    until: datetime,
    now: datetime,
    by: str,
    reason: str,
    comment: str,
    policy: Policy,
) -> Change:
    """A person holds marketing for a customer until ``until``."""
    if until <= now:
        raise LifecycleError(f"until={until.isoformat()} is not in the future", 422)
    key = _id(state.customer_id, now.isoformat(), by, ",".join(categories))
    hold = Hold(
        hold_id=f"hold:manual:{key}",
        categories=list(categories),
        starts_at=now,
        ends_at=until,
        created_by=f"person:{by}",
        reason=reason,
        comment=comment,
    )
    new = state.model_copy(update={"holds": [*state.holds, hold]})
    d = _decision(
        state,
        now,
        "hold",
        "manual",
        [f"manual: {reason} (by {by})", *([f"comment: {comment}"] if comment else [])],
        {"categories": list(categories), "until": until.isoformat(), "by": by},
        key,
        policy.versioned,
    )
    payload = hold.model_dump(mode="json")
    return Change(new, [d], routed(d, "hold.started", payload, policy.delivery))


def due_releases(
    state: CustomerState, now: datetime, policy: Policy, trend: TrendConfig
) -> Change | None:
    """Holds the clock ends: past their end, or (with the policy's ``holds.auto_release``)
    the customer's trend has stayed below the threshold long enough."""
    auto: AutoRelease | None = policy.holds.auto_release
    change: Change | None = None
    for hold in state.holds:
        if hold.released_at is not None:
            continue
        current = change.state if change else state
        if hold.ends_at <= now:
            why = f"ended at {hold.ends_at.isoformat()}"
            step = _released(current, hold, now, "hold_ended", "clock", why, "", policy)
        elif auto is not None and hold.created_by.startswith("rule:"):
            since = hold.starts_at
            for dim in auto.dimensions:
                t = state.trend.get(dim)
                crossed = t.below_since(dim, auto.below, trend) if t is not None else None
                if crossed is not None and crossed > since:
                    since = crossed
            if now - since < auto.after or (auto.no_open_handoff and state.handoffs):
                continue
            why = (
                f"recovered: {', '.join(auto.dimensions)} below {auto.below} since "
                f"{since.isoformat()} (auto_release after {auto.after})"
            )
            step = _released(current, hold, now, "auto_release", "clock", why, "", policy)
        else:
            continue
        change = (
            step
            if change is None
            else Change(
                step.state, change.decisions + step.decisions, change.actions + step.actions
            )
        )
    return change


def update_handoff(
    state: CustomerState,
    handoff_id: str,
    status: HandoffStatus,
    now: datetime,
    by: str,
    reason: str,
    policy: Policy,
) -> Change:
    """An agent accepts, resolves or rejects a handoff. Resolving or rejecting closes it
    (the customer may be escalated again); each is an outcome credited to the rule that
    escalated, a rejection with its reason (the tuner's evidence of a needless handoff)."""
    handoff = next((h for h in state.handoffs if h.handoff_id == handoff_id), None)
    if handoff is None:
        raise LifecycleError(
            f"customer '{state.customer_id}' has no open handoff '{handoff_id}'", 404
        )
    if status == "rejected" and not reason:
        raise LifecycleError("a rejection needs a reason (why was it unnecessary?)", 422)
    if status == "accepted" and handoff.status == "accepted":
        raise LifecycleError(f"handoff '{handoff_id}' was already accepted by {handoff.by}")
    if status == "accepted":
        updated = handoff.model_copy(update={"status": "accepted", "by": by, "updated_at": now})
        handoffs = [updated if h.handoff_id == handoff_id else h for h in state.handoffs]
    else:
        handoffs = [h for h in state.handoffs if h.handoff_id != handoff_id]
    new = state.model_copy(update={"handoffs": handoffs})
    key = _id(handoff_id, status, now.isoformat())
    d = _decision(
        state,
        now,
        f"handoff_{status}",
        "agent",
        [f"agent: handoff {status} by {by}", *([f"reason: {reason}"] if reason else [])],
        {"handoff_id": handoff_id, "status": status, "by": by, "queue": handoff.queue},
        key,
        policy.versioned,
    )
    payload: dict[str, object] = {
        "handoff_id": handoff_id,
        "status": status,
        "by": by,
        "reason": reason,
        "queue": handoff.queue,
        "at": now.isoformat(),
    }
    outcomes = []
    if status != "accepted":
        kind: Literal["handoff_resolved", "handoff_rejected"] = (
            "handoff_resolved" if status == "resolved" else "handoff_rejected"
        )
        outcomes.append(
            Outcome(
                f"{d.event_id}/{kind}",
                d.event_id,
                state.customer_id,
                now,
                kind,
                (now - handoff.opened_at).total_seconds(),
                handoff.rule_id or None,
                {"handoff_id": handoff_id, "queue": handoff.queue, "by": by, "reason": reason},
            )
        )
    return Change(new, [d], routed(d, "handoff.updated", payload, policy.delivery), outcomes)


# What a reviewer may change in a waiting decision, by kind.
EDITABLE: Mapping[str, frozenset[str]] = {
    "escalate": frozenset({"queue", "priority"}),
    "assist": frozenset({"message", "article"}),
    "clarify": frozenset({"question"}),
    "offer_choices": frozenset({"question", "choices"}),
    "notify": frozenset({"target", "message"}),
    "hold": frozenset({"categories", "duration_s"}),
    "draft_message": frozenset({"tone"}),
}


def _verdict(
    state: CustomerState,
    waiting: Mapping[str, Any],
    verdict: Literal["approved", "rejected"],
    now: datetime,
    by: str,
    reason: str,
    edited: Mapping[str, Any],
    policy: Policy,
) -> tuple[Decision, Outcome]:
    kind: Literal["review_approved", "review_rejected"] = (
        "review_approved" if verdict == "approved" else "review_rejected"
    )
    d = _decision(
        state,
        now,
        kind,
        "reviewer",
        [f"reviewer: {waiting['rule_id']}/{waiting['kind']} {verdict} by {by}"]
        + ([f"reason: {reason}"] if reason else [])
        + ([f"edited: {dict(edited)}"] if edited else []),
        {"decision_id": waiting["decision_id"], "by": by, "reason": reason, "edited": dict(edited)},
        _id(waiting["decision_id"], kind),
        policy.versioned,
    )
    outcome = Outcome(
        f"{d.event_id}/{kind}",
        d.event_id,
        state.customer_id,
        now,
        kind,
        None,
        waiting["rule_id"],
        {"decision_id": waiting["decision_id"], "by": by, "reason": reason, "edited": bool(edited)},
    )
    return d, outcome


def approve_review(
    state: CustomerState,
    waiting: Mapping[str, Any],
    event: Event,
    signals: list[Signal],
    now: datetime,
    by: str,
    edits: Mapping[str, Any],
    reason: str,
    policy: Policy,
) -> Change:
    """A person lets a waiting decision act (with ``edits`` to its parameters): its
    actions are planned now, on the customer's current state, as the engine would have."""
    from tactful.actions import plan_actions  # the package imports this module

    allowed = EDITABLE.get(waiting["kind"], frozenset())
    unknown = sorted(set(edits) - allowed)
    if unknown:
        raise LifecycleError(
            f"params: {unknown} cannot be edited on a {waiting['kind']} decision "
            f"(editable: {sorted(allowed) or 'nothing'})",
            422,
        )
    if "queue" in edits and edits["queue"] not in {*policy.queues.values(), policy.fallback_queue}:
        raise LifecycleError(f"params.queue: unknown queue '{edits['queue']}'", 422)
    original = Decision(
        decision_id=waiting["decision_id"],
        event_id=waiting["event_id"],
        customer_id=state.customer_id,
        at=now,
        kind=waiting["kind"],
        rule_id=waiting["rule_id"],
        policy_version=waiting["policy_version"],
        params={**waiting["params"], **edits},
        reasons=tuple(waiting["reasons"]),
        factors=dict(waiting["factors"]),
    )
    trend = policy.memory.config().trend
    new, actions = plan_actions(state, event, signals, [original], now, policy, trend)
    record, outcome = _verdict(state, waiting, "approved", now, by, reason, edits, policy)
    return Change(new, [record], actions, [outcome])


def reject_review(
    state: CustomerState,
    waiting: Mapping[str, Any],
    now: datetime,
    by: str,
    reason: str,
    policy: Policy,
) -> Change:
    """A person stops a waiting decision; the rejection, with its reason, is an outcome
    credited to the rule (its measured precision falls)."""
    if not reason:
        raise LifecycleError("reason: a rejection needs one (what was wrong with it?)", 422)
    record, outcome = _verdict(state, waiting, "rejected", now, by, reason, {}, policy)
    return Change(state, [record], [], [outcome])

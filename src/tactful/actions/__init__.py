"""Act: turn decisions into state changes (holds, handoffs) and outbox actions. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from tactful.actions.drafts import draft
from tactful.actions.grouping import Grouping, group_key
from tactful.actions.handoff import handoff_package
from tactful.actions.outbox import Action, action_for, routed
from tactful.actions.redact import redact
from tactful.events import Event
from tactful.policy.engine import Decision
from tactful.policy.model import DeliveredKind, Notifications, Policy
from tactful.signals import Signal
from tactful.state.customer import CustomerState, Handoff, Hold
from tactful.state.trend import DEFAULT_TREND, TrendConfig

__all__ = ["Action", "handoff_package", "plan_actions"]

CONVERSATION_KINDS = {"clarify", "offer_choices", "assist", "draft_message"}


NO_GROUPING = Notifications()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _grouping(d: Decision, state: CustomerState, notifications: Notifications) -> Grouping:
    channel, target = d.params["channel"], d.params["target"]
    group_by, wait, interval, repeat = notifications.grouping(channel, target)
    values = {
        "channel": channel,
        "target": target,
        "account": state.account_id or f"customer:{d.customer_id}",
        "customer": d.customer_id,
        "rule": d.rule_id,
    }
    return Grouping(
        group_key(group_by, values), f"{d.customer_id}/{d.rule_id}", wait, interval, repeat
    )


def plan_actions(
    state: CustomerState,
    event: Event,
    signals: list[Signal],
    decisions: list[Decision],
    now: datetime,
    policy: Policy | None = None,
    trend: TrendConfig = DEFAULT_TREND,
) -> tuple[CustomerState, list[Action]]:
    """Apply decisions to the customer's state and list the actions to deliver: one per
    channel the policy's ``delivery`` names for its kind (log when none); notifications
    go to their own channel, carrying how the ``notifications`` routes batch them.
    ``trend``: how levels are read (for drafts shaped by the customer's state)."""
    if not decisions:
        return state, []
    notifications = policy.notifications if policy is not None else NO_GROUPING
    delivery: Mapping[DeliveredKind, list[str]] = policy.delivery if policy is not None else {}

    def deliver(
        d: Decision, kind: DeliveredKind, payload: dict[str, object], n: int = 0
    ) -> list[Action]:
        return routed(d, kind, payload, delivery, n)

    # A shallow copy is enough: fields are replaced, never mutated in place, so the
    # caller's state is untouched (deep copies were most of the per-event cost).
    new = state.model_copy()
    actions: list[Action] = []
    for d in decisions:
        new.rule_fired_at = {**new.rule_fired_at, d.rule_id: now}
        if d.kind == "hold":
            hold = Hold(
                hold_id=f"hold:{d.decision_id}",
                categories=d.params["categories"],
                starts_at=now,
                ends_at=now + timedelta(seconds=d.params["duration_s"]),
                created_by=f"rule:{d.rule_id}",
                reason=_shorten(redact(d.reasons[0]), 100),
            )
            new.holds = [*new.holds, hold]
            actions.extend(deliver(d, "hold.started", hold.model_dump(mode="json")))
        elif d.kind == "release":
            holds = list(new.holds)
            for i, h in enumerate(holds):
                if h.active(now):
                    by = f"rule:{d.rule_id}"
                    holds[i] = h.model_copy(update={"released_at": now, "released_by": by})
                    released: dict[str, object] = {
                        "hold_id": h.hold_id,
                        "categories": list(h.categories),
                        "released_at": now.isoformat(),
                        "released_by": by,
                        "reason": redact(d.reasons[0]),
                        "comment": "",
                    }
                    actions.extend(deliver(d, "hold.released", released, i))
            new.holds = holds
        elif d.kind == "escalate":
            handoff_id = f"handoff:{d.decision_id}"
            new.handoffs = [
                *new.handoffs,
                Handoff(
                    handoff_id=handoff_id,
                    queue=d.params["queue"],
                    priority=d.params["priority"],
                    opened_at=now,
                    topic=new.topic,
                    rule_id=d.rule_id,
                ),
            ]
            package = handoff_package(
                handoff_id,
                d.params["queue"],
                d.params["priority"],
                d.reasons,
                new,
                event,
                signals,
                now,
            )
            actions.extend(deliver(d, "handoff.created", package))
        elif d.kind == "notify":
            target = d.params["target"]  # the engine resolved "account_owner" already
            actions.append(
                action_for(
                    d,
                    "notify",
                    d.params["channel"],
                    {
                        "target": target,
                        "message": d.params["message"],
                        "why": [redact(r) for r in d.reasons],  # cues quote the customer
                    },
                    grouping=_grouping(d, new, notifications),
                )
            )
        elif d.kind in CONVERSATION_KINDS:
            payload: dict[str, object] = {"decision": d.kind, **d.params}
            if d.kind == "draft_message":  # the reply itself, shaped by the customer's state
                payload["draft"] = draft(
                    new.levels(now, trend), new.topic, d.params["tone"]
                ).as_dict()
            actions.extend(deliver(d, "message.suggested", payload))
    return new, actions

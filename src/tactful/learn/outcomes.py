"""Learn: what happened after tactful acted, derived from the events that follow.

Outcomes are the raw material for the metrics and the tuner (a later issue): a rating
after a treatment, a ticket solved or left unsolved, a handoff closed and how long it took.
Each is attributed to the rule that last acted on the customer, so a rule's decisions can
be judged by what followed them. Pure: (event, state before it) -> outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from tactful.events import Event
from tactful.signals import Signal
from tactful.state.customer import CustomerState

__all__ = ["ATTRIBUTION_WINDOW", "Outcome", "derive_outcomes", "last_rule"]

OutcomeKind = Literal[
    "csat",  # a rating 1-5 (feedback events, or POST /v1/outcomes)
    "thumbs",  # +1 / -1 on a reply
    "summary_rating",  # an agent's 1-5 for a handoff's package
    "conversion",  # value: the amount, when known
    "churn",
    "ticket_solved",
    "ticket_unsolved",
    "ticket_reopened",
    "handoff_closed",
    "handoff_resolved",  # an agent resolved it (value: seconds since it opened)
    "handoff_rejected",  # an agent found it unnecessary, with a reason
    "repeat_contact",  # back about the same topic within 72 h: automation did not settle it
    "returned_after_hold",  # the first sign of the customer after a hold ended
    "review_approved",  # a person let a rule's waiting decision act (perhaps edited)
    "review_rejected",  # a person stopped it, with a reason
]

# An outcome is credited to the last rule that acted within this window before it.
ATTRIBUTION_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome_id: str
    event_id: str
    customer_id: str
    at: datetime
    kind: OutcomeKind
    value: float | None = None
    rule_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome_id": self.outcome_id,
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "value": self.value,
            "rule_id": self.rule_id,
            "detail": self.detail,
        }


def last_rule(state: CustomerState, now: datetime) -> str | None:
    recent = [
        (at, rule)
        for rule, at in state.rule_fired_at.items()
        if timedelta(0) <= now - at <= ATTRIBUTION_WINDOW
    ]
    return max(recent)[1] if recent else None


def derive_outcomes(
    event: Event, before: CustomerState, signals: Sequence[Signal] = ()
) -> list[Outcome]:
    """Outcomes revealed by ``event``, given the customer's state just before it and the
    signals it raised."""
    now = event.timestamp
    rule = last_rule(before, now)
    out = _derived(event, before, signals, now, rule)
    return out + _by_event(event, before, now, rule)


def _derived(
    event: Event,
    before: CustomerState,
    signals: Sequence[Signal],
    now: datetime,
    rule: str | None,
) -> list[Outcome]:
    """Outcomes any event can reveal: a repeat contact, a return after a hold."""
    out = []
    repeat = next((s for s in signals if s.name == "repeat_contact"), None)
    if repeat is not None:
        out.append(
            Outcome(
                f"{event.event_id}/repeat_contact",
                event.event_id,
                event.customer_id,
                now,
                "repeat_contact",
                None,
                rule,
                {"topic": before.topic, "reason": repeat.reason},
            )
        )
    seen = before.last_seen
    for hold in before.holds:
        ended = hold.released_at or hold.ends_at
        if seen is not None and seen < ended <= now:  # the first event since it ended
            out.append(
                Outcome(
                    f"{event.event_id}/returned_after_hold/{hold.hold_id}",
                    event.event_id,
                    event.customer_id,
                    now,
                    "returned_after_hold",
                    (now - ended).total_seconds(),
                    hold.created_by.removeprefix("rule:")
                    if hold.created_by.startswith("rule:")
                    else rule,
                    {"hold_id": hold.hold_id, "event_type": event.type},
                )
            )
    return out


def _by_event(
    event: Event, before: CustomerState, now: datetime, rule: str | None
) -> list[Outcome]:
    def outcome(kind: OutcomeKind, value: float | None = None, **detail: Any) -> Outcome:
        key = f"{event.event_id}/{kind}"
        if "handoff_id" in detail:
            key += f"/{detail['handoff_id']}"
        return Outcome(key, event.event_id, event.customer_id, now, kind, value, rule, detail)

    match event.type:
        case "ticket_opened" if event.ticket_id in before.closed_tickets:
            return [outcome("ticket_reopened", ticket_id=event.ticket_id)]
        case "feedback":
            return [outcome("csat", float(event.rating), comment=event.comment)]
        case "ticket_closed" if event.resolution in ("solved", "unsolved"):
            out = [
                outcome(
                    "ticket_solved" if event.resolution == "solved" else "ticket_unsolved",
                    ticket_id=event.ticket_id,
                )
            ]
            if event.resolution == "solved":
                out.extend(
                    outcome(
                        "handoff_closed",
                        (now - h.opened_at).total_seconds(),
                        handoff_id=h.handoff_id,
                        queue=h.queue,
                    )
                    for h in before.handoffs
                )
            return out
        case _:
            return []

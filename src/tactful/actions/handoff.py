"""Act: the handoff package, so the customer never has to repeat the story."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tactful.events import Event
from tactful.signals import Signal
from tactful.state.customer import CustomerState

__all__ = ["handoff_package"]

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
    """Everything the human picking this up needs, in one structured object."""
    levels = state.levels(now)
    intents = sorted((d for d, v in levels.items() if v >= 0.3), key=lambda d: -levels[d])
    last_words = state.recent_messages[-1] if state.recent_messages else None
    goal = f"The customer wants to {_GOALS.get(state.topic, _GOALS['other'])}"
    if last_words:
        goal += f'; last said: "{last_words[:200]}"'
    return {
        "handoff_id": handoff_id,
        "queue": queue,
        "priority": priority,
        "customer_id": state.customer_id,
        "account_id": state.account_id,
        "goal": goal + ".",
        "topic": state.topic,
        "intents": intents,
        # what the customer went through in the last day, so nobody asks them again
        "already_tried": list(
            dict.fromkeys(f"{m.name}: {m.reason}" for m in state.active_signals(now))
        ),
        # every signal ever seen for them, counted (the evidence older than a day, summarised)
        "history": dict(sorted(state.signal_counts.items(), key=lambda kv: -kv[1])),
        "recent_messages": state.recent_messages,
        "account": {
            "tier": state.account.tier,
            "value": state.account.value,
            "owner": state.account.owner,
            "open_tickets": state.open_tickets,
            "payment_failures_30d": state.payment_failures_30d(now),
        },
        "trend": {d: round(v, 3) for d, v in levels.items()},
        "slope": {
            d: t.direction(now, d) for d, t in state.trend.items() if levels.get(d, 0) >= 0.1
        },
        "why": list(reasons),
        "trigger_event": {"event_id": event.event_id, "type": event.type},
        "evidence": [s.as_dict() for s in signals],
    }

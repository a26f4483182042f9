"""Act: an action is what a decision asks the outside world to do, written to the outbox.

Actions are written in the same transaction as the state and the decision, then a
dispatcher delivers them. ``idempotency_key`` is stable for a given decision, so a
re-delivery after a crash can be recognised by the receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tactful.actions.grouping import Grouping

__all__ = ["Action"]


@dataclass(frozen=True, slots=True)
class Action:
    action_id: str
    idempotency_key: str
    decision_id: str
    customer_id: str
    channel: str  # which dispatcher channel delivers it ("log" for now)
    kind: str  # hold.started, hold.released, handoff.created, notify, message.suggested
    payload: dict[str, Any]
    created_at: datetime
    # notifications only: how it is batched with others (see actions/grouping.py)
    grouping: Grouping | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "idempotency_key": self.idempotency_key,
            "decision_id": self.decision_id,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "kind": self.kind,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
            **({"grouping": self.grouping.as_dict()} if self.grouping else {}),
        }

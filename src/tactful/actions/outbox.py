"""Act: an action is what a decision asks the outside world to do, written to the outbox.

Actions are written in the same transaction as the state and the decision, then a
dispatcher delivers them. ``idempotency_key`` is stable for a given decision, so a
re-delivery after a crash can be recognised by the receiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tactful.actions.grouping import Grouping

if TYPE_CHECKING:
    from tactful.policy.engine import Decision
    from tactful.policy.model import DeliveredKind

__all__ = ["Action", "action_for", "routed"]


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


def action_for(
    d: Decision,
    kind: str,
    channel: str,
    payload: dict[str, object],
    n: int = 0,
    grouping: Grouping | None = None,
) -> Action:
    """The action ``d`` asks of ``channel``. Its id (and idempotency key) is stable:
    ``<decision>#<kind>#<n>``, plus ``@<channel>`` beyond the log channel."""
    key = f"{d.decision_id}#{kind}#{n}" + ("" if channel == "log" else f"@{channel}")
    return Action(key, key, d.decision_id, d.customer_id, channel, kind, payload, d.at, grouping)


def routed(
    d: Decision,
    kind: DeliveredKind,
    payload: dict[str, object],
    delivery: Mapping[DeliveredKind, list[str]],
    n: int = 0,
) -> list[Action]:
    """One action per channel the policy's ``delivery`` names for ``kind`` (log if none)."""
    return [action_for(d, kind, channel, payload, n) for channel in delivery.get(kind, ["log"])]

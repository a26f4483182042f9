"""The shared vocabulary: the dimensions, the topics, and the signal detectors emit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["DIMENSIONS", "EMOTIONS", "TOPICS", "Dimension", "Signal"]

Dimension = Literal[
    "frustration", "urgency", "confusion", "politeness", "wants_human", "churn_intent", "gratitude"
]
DIMENSIONS: tuple[Dimension, ...] = (
    "frustration",
    "urgency",
    "confusion",
    "politeness",
    "wants_human",
    "churn_intent",
    "gratitude",
)
# The kinds of frustration the learned tier tells apart (GoEmotions' labels, which the
# frustration benchmark pools): a breakdown shown beside the frustration score, so a
# person reads "angry" or "disappointed", not one number.
EMOTIONS: tuple[str, ...] = ("anger", "annoyance", "disappointment", "disapproval")
TOPICS: tuple[str, ...] = (
    "billing",
    "refund",
    "account_access",
    "technical",
    "cancellation",
    "sales_pricing",
    "sales_security",
    "sales_legal",
    "sales_procurement",
    "other",
)


@dataclass(frozen=True, slots=True)
class Signal:
    """One detector finding for one event.

    ``name`` is what fired (``frustration``, ``rage_click``, ``error_streak`` ...);
    ``dimensions`` says how much it moves each trend dimension (0..1 each);
    ``evidence`` holds cue phrases or event ids; ``reason`` is a stable code for audit.
    ``at``: when the pattern completed in event time, where that is after the event that
    found it (a late error completing a streak with errors already seen after it); the
    trend takes the signal at that time, so arrival order does not date it.
    """

    name: str
    strength: float
    reason: str
    evidence: tuple[str, ...] = ()
    dimensions: dict[str, float] = field(default_factory=dict)
    topic: str | None = None
    at: datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signal:
        """A signal as :meth:`as_dict` stored it."""
        return cls(
            data["name"],
            float(data["strength"]),
            data["reason"],
            tuple(data.get("evidence", ())),
            dict(data.get("dimensions", {})),
            data.get("topic"),
            datetime.fromisoformat(data["at"]) if data.get("at") else None,
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "strength": round(self.strength, 3),
            "reason": self.reason,
            "evidence": list(self.evidence),
        }
        if self.dimensions:
            out["dimensions"] = {k: round(v, 3) for k, v in self.dimensions.items()}
        if self.topic:
            out["topic"] = self.topic
        if self.at is not None:
            out["at"] = self.at.isoformat()
        return out

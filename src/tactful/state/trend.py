"""Remember: a time-decayed trend per dimension, not a snapshot.

A trend value halves every ``half_life`` of event time without new evidence, and a new
signal of strength ``s`` moves it towards 1 by noisy-OR: ``v' = 1 - (1 - v) * (1 - s)``.
So repeated evidence accumulates, old evidence fades, and the value stays in [0, 1].
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

__all__ = ["DEFAULT_HALF_LIVES", "Trend"]

# How long it takes each dimension to fade by half without new evidence. Urgency and
# confusion are about this session; churn intent and frustration linger for days.
DEFAULT_HALF_LIVES: dict[str, timedelta] = {
    "frustration": timedelta(days=2),
    "urgency": timedelta(hours=2),
    "confusion": timedelta(minutes=30),
    "politeness": timedelta(days=1),
    "wants_human": timedelta(hours=4),
    "churn_intent": timedelta(days=7),
    "gratitude": timedelta(days=1),
}


class Trend(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: float = 0.0
    at: AwareDatetime | None = None
    # The value just before the last update: lets a decision see direction.
    previous: float = 0.0

    def value_at(self, now: datetime, half_life: timedelta) -> float:
        if self.at is None or now <= self.at:
            return self.value
        elapsed = (now - self.at).total_seconds()
        return self.value * float(0.5 ** (elapsed / half_life.total_seconds()))

    def update(self, strength: float, now: datetime, half_life: timedelta) -> Trend:
        current = self.value_at(now, half_life)
        strength = min(max(strength, 0.0), 1.0)
        value = 1.0 - (1.0 - current) * (1.0 - strength)
        return Trend(value=value, at=max(now, self.at) if self.at else now, previous=current)

"""Remember: a time-decayed trend per dimension, not a snapshot.

A trend keeps the *evidence mass* of its dimension: the sum of every signal's weighted
strength, each halved for every ``half_life`` of event time since it happened. The level a
policy reads is ``1 - exp(-gain * mass)``: in [0, 1), rising with each new piece of evidence
and fading without it. Two properties follow, and tests/test_trend.py checks them with
hypothesis:

* **Repetition outweighs an outlier.** Each signal adds at most its strength (<= 1), so three
  frustrated messages at 0.6 (mass 1.8, level 0.93) weigh more than one furious message at
  0.95 (mass 0.95, level 0.76). Under noisy-OR a single 0.99 would pin the level at 0.99.
* **Order does not matter.** A sum of decayed terms is the same whichever order the terms
  arrive in, so an event that arrives late (within the configured lateness) updates the
  trend exactly as if it had arrived in order: its contribution is decayed from its own
  time to the trend's.

The slope compares a fast copy of the mass (a quarter of the half-life) with the slow one,
as rates: new evidence makes the fast rate run ahead (rising); quiet makes it fall behind
(falling). Direction is then "deteriorating" or "improving" depending on whether the
dimension is a bad one (frustration) or a good one (gratitude).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import PlainSerializer

from tactful.instant import Instant
from tactful.signals import DIMENSIONS

__all__ = [
    "DEFAULT_HALF_LIVES",
    "DEFAULT_TREND",
    "EMPTY_TREND",
    "POSITIVE_DIMENSIONS",
    "Direction",
    "Slope",
    "Trend",
    "TrendConfig",
    "Trended",
]

# How long it takes each dimension to fade by half without new evidence. Urgency and
# confusion are about this session; churn intent and frustration linger for days.
DEFAULT_HALF_LIVES: Mapping[str, timedelta] = MappingProxyType(
    {
        "frustration": timedelta(days=2),
        "urgency": timedelta(hours=2),
        "confusion": timedelta(minutes=30),
        "politeness": timedelta(days=1),
        "wants_human": timedelta(hours=4),
        "churn_intent": timedelta(days=7),
        "gratitude": timedelta(days=1),
    }
)
# Dimensions where a rise is good news (the others: a rise is a deterioration).
POSITIVE_DIMENSIONS = frozenset({"politeness", "gratitude"})

Slope = Literal["rising", "steady", "falling"]
Direction = Literal["improving", "steady", "deteriorating"]


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """How trends decay, saturate and report their slope."""

    half_lives: Mapping[str, timedelta] = field(default_factory=lambda: DEFAULT_HALF_LIVES)
    # level = 1 - exp(-gain * mass): one certain signal reads 0.78, two at 0.5 read 0.78.
    gain: float = 1.5
    # The fast mass decays this much faster than the slow one (the slope's short memory).
    fast_factor: float = 4.0
    # |fast rate - slow rate| / the larger one below this: steady.
    steady_band: float = 0.25
    # Levels below this are noise; their slope is steady.
    slope_floor: float = 0.05
    # How many of the latest observations each trend keeps verbatim.
    keep_last: int = 3

    # the half-lives in seconds, computed once (read for every trend on every event)
    _seconds: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for dim, hl in self.half_lives.items():
            if hl <= timedelta(0):
                raise ValueError(f"half_lives.{dim}={hl}: must be a positive duration")
        seconds = {d: hl.total_seconds() for d, hl in self.half_lives.items()}
        object.__setattr__(self, "_seconds", MappingProxyType(seconds))
        if not self.gain > 0:
            raise ValueError(f"gain={self.gain}: must be positive")
        if not self.fast_factor > 1:
            raise ValueError(f"fast_factor={self.fast_factor}: must be greater than 1")

    def half_life(self, dimension: str) -> float:
        """The dimension's half-life in seconds."""
        return self._seconds[dimension]


DEFAULT_TREND = TrendConfig()


# Stored with 7 significant decimals: a level is read to 3, and 17-digit floats would
# make the trends the largest part of a customer's stored state.
Stored = Annotated[float, PlainSerializer(lambda v: round(v, 7), when_used="json")]


def _decay(elapsed_s: float, half_life_s: float) -> float:
    return float(0.5 ** (elapsed_s / half_life_s)) if elapsed_s > 0 else 1.0


@dataclass(frozen=True, slots=True)
class Trend:
    """One dimension's evidence, decayed to ``at`` (the latest evidence's event time).

    A plain dataclass (built for every signal of every event); pydantic validates it when
    a state is loaded and serialises it when one is stored."""

    mass: Stored = 0.0
    fast: Stored = 0.0
    at: Instant | None = None
    # The slow mass just before the latest piece of evidence, decayed to ``at``: lets a
    # decision compare "before this event" with "now".
    before: Stored = 0.0
    # Observations so far (older ones live on only in the mass: summarised, not kept).
    n: int = 0
    # The latest observations verbatim, oldest first: (event time, weighted strength).
    last: tuple[tuple[Instant, float], ...] = ()

    def mass_at(self, now: datetime, half_life_s: float) -> float:
        if self.at is None:
            return 0.0
        return self.mass * _decay((now - self.at).total_seconds(), half_life_s)

    def level(self, now: datetime, dimension: str, config: TrendConfig = DEFAULT_TREND) -> float:
        return 1.0 - math.exp(-config.gain * self.mass_at(now, config.half_life(dimension)))

    def below_since(
        self, dimension: str, threshold: float, config: TrendConfig = DEFAULT_TREND
    ) -> datetime | None:
        """Since when the level has been below ``threshold`` with no evidence since (a time
        after now: when it will be, if nothing new arrives). None: no evidence at all.

        Without new evidence a level only falls, so the crossing is exact after the latest
        evidence; when that evidence already left it below, ``at`` is the conservative
        answer (it may have been below for longer)."""
        if self.at is None:
            return None
        below_mass = -math.log(1.0 - threshold) / config.gain
        if self.mass <= below_mass:
            return self.at
        return self.at + timedelta(
            seconds=config.half_life(dimension) * math.log2(self.mass / below_mass)
        )

    def level_before(self, dimension: str, config: TrendConfig = DEFAULT_TREND) -> float:
        """The level just before the latest evidence (at its event time)."""
        return 1.0 - math.exp(-config.gain * self.before)

    def rate_gap(self, now: datetime, dimension: str, config: TrendConfig = DEFAULT_TREND) -> float:
        """(fast rate - slow rate) / the larger, in [-1, 1]: > 0 while evidence is arriving
        faster than the long-run average, < 0 once it has gone quiet."""
        if self.at is None:
            return 0.0
        hl = config.half_life(dimension)
        fast_hl = hl / config.fast_factor
        elapsed = (now - self.at).total_seconds()
        slow_rate = self.mass * _decay(elapsed, hl) / hl
        fast_rate = self.fast * _decay(elapsed, fast_hl) / fast_hl
        top = max(slow_rate, fast_rate)
        return 0.0 if top <= 0 else (fast_rate - slow_rate) / top

    def slope(self, now: datetime, dimension: str, config: TrendConfig = DEFAULT_TREND) -> Slope:
        if self.level(now, dimension, config) < config.slope_floor:
            return "steady"
        gap = self.rate_gap(now, dimension, config)
        if gap > config.steady_band:
            return "rising"
        if gap < -config.steady_band:
            return "falling"
        return "steady"

    def direction(
        self, now: datetime, dimension: str, config: TrendConfig = DEFAULT_TREND
    ) -> Direction:
        slope = self.slope(now, dimension, config)
        if slope == "steady":
            return "steady"
        good = (slope == "rising") == (dimension in POSITIVE_DIMENSIONS)
        return "improving" if good else "deteriorating"

    def add(
        self, strength: float, when: datetime, dimension: str, config: TrendConfig = DEFAULT_TREND
    ) -> Trend:
        """The trend with one more observation of ``strength`` at event time ``when``.

        ``when`` may be earlier than ``at`` (a late event): its contribution is decayed to
        ``at`` instead, which is exactly what in-order arrival would have produced.
        """
        s = min(max(strength, 0.0), 1.0)
        hl = config.half_life(dimension)
        fast_hl = hl / config.fast_factor
        if self.at is None or when >= self.at:
            elapsed = 0.0 if self.at is None else (when - self.at).total_seconds()
            prior = self.mass * _decay(elapsed, hl)
            mass, fast, at = prior + s, self.fast * _decay(elapsed, fast_hl) + s, when
        else:
            late = (self.at - when).total_seconds()
            prior = self.mass
            mass, fast, at = (
                prior + s * _decay(late, hl),
                self.fast + s * _decay(late, fast_hl),
                self.at,
            )
        last = list(self.last)
        bisect.insort(last, (when, round(s, 3)))  # ties by strength: order-free
        return Trend(
            mass=mass,
            fast=fast,
            at=at,
            before=prior,
            n=self.n + 1,
            last=tuple(last[-config.keep_last :]),
        )


EMPTY_TREND = Trend()


class Trended:
    """Reading levels off a ``trend`` mapping: customers and accounts both keep one."""

    if TYPE_CHECKING:  # the models declare the field; pydantic must not see it here
        trend: dict[str, Trend]

    def level(self, dimension: str, now: datetime, config: TrendConfig = DEFAULT_TREND) -> float:
        trend = self.trend.get(dimension)
        return 0.0 if trend is None else trend.level(now, dimension, config)

    def levels(self, now: datetime, config: TrendConfig = DEFAULT_TREND) -> dict[str, float]:
        return {d: self.level(d, now, config) for d in DIMENSIONS}

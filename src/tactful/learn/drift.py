"""Learn: has what the detectors see shifted? Population stability against a reference.

Two views, each comparing a current window with a reference window (by default the last
24 hours against the 7 days before them):

- **score distributions**: for each text dimension, the distribution of its score over
  customer messages (0 where it did not fire), in ten bins, compared by the population
  stability index, PSI = sum((c - r) * ln(c / r)). The usual reading: under 0.1 stable,
  0.1-0.25 moderate, over 0.25 drifted. A new product launch, a new language, a broken
  tokeniser upstream all show here before they show in the decisions.
- **signal rates**: each signal per 1,000 events; flagged when it at least doubles or
  halves (with enough events on both sides to mean it).

Pure: ``compare`` takes the two windows' (event type, signals) rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tactful.signals import DIMENSIONS

__all__ = ["MODERATE", "SHIFTED", "compare", "psi"]

BINS = 10
MODERATE, SHIFTED = 0.1, 0.25
MIN_EVENTS = 200  # fewer on either side: too little to call it drift
MIN_SIGNALS = 20
EPSILON = 1e-4

Row = tuple[str, Sequence[dict[str, Any]]]  # (event type, its signals as stored)


def _histogram(values: Sequence[float]) -> list[float]:
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, max(0, int(v * BINS)))] += 1
    total = max(1, len(values))
    return [c / total for c in counts]


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two samples of scores in [0, 1]."""
    r, c = _histogram(reference), _histogram(current)
    return sum(
        (ci - ri) * math.log((ci + EPSILON) / (ri + EPSILON)) for ri, ci in zip(r, c, strict=True)
    )


def _scores(rows: Sequence[Row]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {d: [] for d in DIMENSIONS}
    for type_, signals in rows:
        if type_ != "message":
            continue
        fired = {s["name"]: float(s["strength"]) for s in signals if s["name"] in out}
        for dim, values in out.items():
            values.append(fired.get(dim, 0.0))
    return out


def _level(value: float) -> str:
    return "drifted" if value > SHIFTED else "moderate" if value > MODERATE else "stable"


def compare(reference: Sequence[Row], current: Sequence[Row]) -> dict[str, Any]:
    """Drift of the current window against the reference one."""
    enough = len(reference) >= MIN_EVENTS and len(current) >= MIN_EVENTS
    ref_scores, cur_scores = _scores(reference), _scores(current)
    scores: dict[str, dict[str, Any]] = {}
    for dim in DIMENSIONS:
        r, c = ref_scores[dim], cur_scores[dim]
        if len(r) < MIN_SIGNALS or len(c) < MIN_SIGNALS:
            scores[dim] = {"psi": None, "level": "too little data", "messages": [len(r), len(c)]}
            continue
        value = round(psi(r, c), 4)
        scores[dim] = {
            "psi": value,
            "level": _level(value),
            "mean": [round(sum(r) / len(r), 4), round(sum(c) / len(c), 4)],
            "messages": [len(r), len(c)],
        }
    ref_counts = Counter(s["name"] for _, signals in reference for s in signals)
    cur_counts = Counter(s["name"] for _, signals in current for s in signals)
    rates = {}
    for name in sorted(set(ref_counts) | set(cur_counts)):
        r_rate = 1000 * ref_counts[name] / max(1, len(reference))
        c_rate = 1000 * cur_counts[name] / max(1, len(current))
        counted = ref_counts[name] + cur_counts[name] >= MIN_SIGNALS
        ratio = (c_rate + 0.5) / (r_rate + 0.5)
        rates[name] = {
            "per_1000_events": [round(r_rate, 2), round(c_rate, 2)],
            "ratio": round(ratio, 3),
            "flag": enough and counted and (ratio >= 2 or ratio <= 0.5),
        }
    flagged = sorted(
        [d for d, v in scores.items() if v["level"] == "drifted"]
        + [f"signal:{n}" for n, v in rates.items() if v["flag"]]
    )
    return {
        "events": [len(reference), len(current)],
        "enough_data": enough,
        "scores": scores,
        "signal_rates": rates,
        "flagged": flagged if enough else [],
    }

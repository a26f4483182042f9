"""Learn: propose a threshold from what happened, as a candidate policy. Never the live one.

``tactful tune`` replays the recorded events under each candidate value of one named
threshold (the same engine, in memory: nothing is written or sent), and scores each value
against the outcomes people and systems reported: of the customers who later had a bad
outcome (churned, rated 1-2, gave a thumbs-down, came back about the same thing within
72 h, had a ticket left unsolved or reopened), how many did it escalate *before* that
outcome (the catch rate), at what cost (handoffs, and the busiest hour's handoffs against
the team's capacity: agents x handoffs per agent-hour). The best value is the highest
catch rate within capacity (fewer handoffs breaks ties). It is written as a candidate
policy file, to be compared with ``tactful shadow`` and promoted by a person.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine, TextBatchScorer
from tactful.state.store.sqlite import SQLiteStore

__all__ = ["BAD_OUTCOMES", "Trial", "bad_customers", "choose", "tune", "with_threshold"]

BAD_OUTCOMES = frozenset({"churn", "repeat_contact", "ticket_unsolved", "ticket_reopened"})
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Trial:
    value: float
    handoffs: int
    escalated_customers: int
    caught: int  # customers with a bad outcome escalated before it
    bad: int
    peak_per_hour: int
    within_capacity: bool

    @property
    def catch_rate(self) -> float:
        return self.caught / self.bad if self.bad else 0.0


def bad_customers(outcomes: Iterable[dict[str, Any]]) -> dict[str, datetime]:
    """Each customer's first bad outcome."""
    first: dict[str, datetime] = {}
    for o in outcomes:
        value = o.get("value")
        bad = (
            o["kind"] in BAD_OUTCOMES
            or (o["kind"] == "csat" and value is not None and value <= 2)
            or (o["kind"] == "thumbs" and value is not None and value < 0)
        )
        if bad:
            at = datetime.fromisoformat(o["at"])
            if o["customer_id"] not in first or at < first[o["customer_id"]]:
                first[o["customer_id"]] = at
    return first


def with_threshold(policy_text: str, name: str, value: float, version: str | None = None) -> str:
    """The policy file's text with ``thresholds.<name>`` set to ``value`` (comments and
    layout kept), and its version renamed when ``version`` is given."""
    pattern = re.compile(rf"^(\s+{re.escape(name)}:\s*)(-?[0-9][0-9_.]*)", re.MULTILINE)
    text, n = pattern.subn(lambda m: f"{m.group(1)}{value:g}", policy_text, count=1)
    if n != 1:
        raise ValueError(f"thresholds.{name}: not found in the policy file")
    if version is not None:
        text, n = re.subn(r"^version:.*$", f"version: {version}", text, count=1, flags=re.MULTILINE)
        if n != 1:
            raise ValueError("the policy file has no top-level version line")
    return text


def _peak(times: list[datetime]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= HOUR:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def trial(
    events: Sequence[dict[str, Any]],
    policy_text: str,
    name: str,
    value: float,
    bad: dict[str, datetime],
    capacity: int | None,
    scorer: TextBatchScorer | None,
) -> Trial:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.yaml"
        path.write_text(with_threshold(policy_text, name, value))
        engine = Engine(
            SQLiteStore(":memory:", durability="normal"),
            PolicyEngine(load_policy(path)),
            text_scorer=scorer,
        )
        escalations: list[tuple[str, datetime]] = []
        try:
            for i in range(0, len(events), 1_000):
                for result in engine.ingest(events[i : i + 1_000], source="tune"):
                    if result.processed is None:
                        continue
                    escalations.extend(
                        (d.customer_id, d.at)
                        for d in result.processed.decisions
                        if d.kind == "escalate"
                    )
        finally:
            engine.store.close()
    first: dict[str, datetime] = {}
    for customer, at in escalations:
        first.setdefault(customer, at)
    caught = sum(1 for c, when in bad.items() if c in first and first[c] <= when)
    peak = _peak([at for _, at in escalations])
    return Trial(
        value,
        len(escalations),
        len(first),
        caught,
        len(bad),
        peak,
        capacity is None or peak <= capacity,
    )


def choose(trials: Sequence[Trial]) -> Trial | None:
    """The highest catch rate within capacity; fewer handoffs breaks ties."""
    fitting = [t for t in trials if t.within_capacity]
    if not fitting:
        return None
    return max(fitting, key=lambda t: (t.catch_rate, -t.handoffs))


def tune(
    events: Sequence[dict[str, Any]],
    outcomes: Iterable[dict[str, Any]],
    policy_text: str,
    name: str,
    values: Sequence[float],
    capacity: int | None,
    scorer: TextBatchScorer | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Trial], dict[str, datetime]]:
    """Every value's trial, and the customers with a bad outcome it was judged on."""
    bad = bad_customers(outcomes)
    trials = []
    for value in values:
        trials.append(trial(events, policy_text, name, value, bad, capacity, scorer))
        if progress is not None:
            progress(value)
    return trials, bad

"""Decide, before deploying: what a candidate policy would do differently.

``tactful shadow --candidate NEW.yaml events.jsonl`` runs a recorded stream through the
policy in force and through the candidate, each on its own in-memory store (nothing is
written or sent), and compares them event by event: decisions the candidate gains, loses
and changes (another rule, queue or priority for the same kind of decision), counted by
rule and queue, with example customers for each.

``tactful serve --shadow NEW.yaml`` runs the candidate alongside live traffic instead: on
every event it decides on exactly the state, signals and clock the policy in force saw,
its decisions are recorded (never acted on), and ``tactful shadow --live`` compares them
with what was decided. Its states evolve under the current policy's actions, so it
answers "what would the candidate do now", not "where would it have led".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tactful.policy.engine import Decision

__all__ = ["ShadowReport", "compare"]

MAX_EXAMPLES = 3


# A decision, or one as the audit log returns it (a dict with the same fields).
Decided = Decision | Mapping[str, Any]


def _key(d: Decided) -> tuple[str, str, str]:
    """(kind, what it does for a person: kind and where it goes, rule)."""
    if isinstance(d, Decision):
        kind, params, rule = d.kind, d.params, d.rule_id
    else:
        kind, params, rule = d["kind"], d["params"], d["rule_id"]
    if kind == "escalate":
        label = f"escalate -> {params['queue']} ({params['priority']})"
    elif kind == "notify":
        label = f"notify {params['target']}"
    elif kind == "hold":
        label = f"hold {'+'.join(params['categories'])}"
    else:
        label = kind
    return kind, label, rule


@dataclass
class ShadowReport:
    events: int = 0
    differing_events: int = 0
    gained: Counter[str] = field(default_factory=Counter)  # "label (rule)"
    lost: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)  # "label (rule) -> label (rule)"
    # (gained|lost|changed, key) -> a few customers it happened to
    examples: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))

    def _note(self, name: str, key: str, customer: str) -> None:
        bucket: Counter[str] = getattr(self, name)
        bucket[key] += 1
        seen = self.examples[name, key]
        if customer not in seen and len(seen) < MAX_EXAMPLES:
            seen.append(customer)

    def add(self, customer: str, current: Sequence[Decided], candidate: Sequence[Decided]) -> None:
        self.events += 1
        before = {_key(d) for d in current}
        after = {_key(d) for d in candidate}
        if before == after:
            return
        self.differing_events += 1
        only_before = sorted(before - after)
        only_after = sorted(after - before)
        kinds_after = {k for k, _, _ in only_after}
        kinds_before = {k for k, _, _ in only_before}
        for kind, label, rule in only_before:
            if kind in kinds_after:  # the same kind of decision, made differently
                new = next(f"{lb} ({r})" for k, lb, r in only_after if k == kind)
                self._note("changed", f"{label} ({rule}) -> {new}", customer)
            else:
                self._note("lost", f"{label} ({rule})", customer)
        for kind, label, rule in only_after:
            if kind not in kinds_before:
                self._note("gained", f"{label} ({rule})", customer)

    @property
    def identical(self) -> bool:
        return self.differing_events == 0


def compare(
    pairs: Iterable[tuple[str, Sequence[Decided], Sequence[Decided]]],
) -> ShadowReport:
    """``pairs``: (customer, decisions under the current policy, under the candidate) for
    each event, in stream order."""
    report = ShadowReport()
    for customer, current, candidate in pairs:
        report.add(customer, current, candidate)
    return report

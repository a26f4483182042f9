"""Decide, before deploying: what a candidate policy would do differently.

``tactful shadow --candidate NEW.yaml events.jsonl`` runs a recorded stream through the
policy in force and through the candidate, each on its own in-memory store (nothing is
written or sent), and compares them event by event: decisions the candidate gains, loses
and changes (another rule, queue or priority for the same kind of decision), counted by
rule and queue, with example customers for each.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tactful.policy.engine import Decision

__all__ = ["ShadowReport", "compare"]

MAX_EXAMPLES = 3


def _label(d: Decision) -> str:
    """What the decision does, for a person: kind, and where it goes."""
    if d.kind == "escalate":
        return f"escalate -> {d.params['queue']} ({d.params['priority']})"
    if d.kind == "notify":
        return f"notify {d.params['target']}"
    if d.kind == "hold":
        return f"hold {'+'.join(d.params['categories'])}"
    return d.kind


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

    def add(
        self, customer: str, current: Sequence[Decision], candidate: Sequence[Decision]
    ) -> None:
        self.events += 1
        before = {(d.kind, _label(d), d.rule_id) for d in current}
        after = {(d.kind, _label(d), d.rule_id) for d in candidate}
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
    pairs: Iterable[tuple[str, Sequence[Decision], Sequence[Decision]]],
) -> ShadowReport:
    """``pairs``: (customer, decisions under the current policy, under the candidate) for
    each event, in stream order."""
    report = ShadowReport()
    for customer, current, candidate in pairs:
        report.add(customer, current, candidate)
    return report

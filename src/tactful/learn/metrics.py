"""Learn: what happened, counted. Exposed on /metrics in the Prometheus text format.

Each engine owns its registry (no process-global state), so several engines (tests, a
shadow policy) can run in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tactful.state.store.base import StoreStats

__all__ = ["Metrics"]


class _StoreCollector(Collector):
    def __init__(self, stats: Callable[[], StoreStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        s = self._stats()
        for name, value, doc in (
            ("tactful_customers", s.customers, "Customers with state."),
            ("tactful_outbox_pending", s.outbox_pending, "Actions waiting for delivery."),
            ("tactful_outbox_dead", s.outbox_dead, "Actions that exhausted their retries."),
            ("tactful_quarantine_size", s.quarantined, "Rejected events kept in quarantine."),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "tactful_events",
            "Events received, by type and result.",
            ["type", "status"],
            registry=self.registry,
        )
        self.signals = Counter(
            "tactful_signals", "Signals detected, by name.", ["name"], registry=self.registry
        )
        self.decisions = Counter(
            "tactful_decisions",
            "Decisions made, by kind and rule.",
            ["kind", "rule"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "tactful_outcomes",
            "Outcomes observed after decisions (csat, ticket_solved, handoff_closed ...).",
            ["kind"],
            registry=self.registry,
        )
        self.actions_delivered = Counter(
            "tactful_actions_delivered",
            "Actions delivered, by channel and kind.",
            ["channel", "kind"],
            registry=self.registry,
        )
        self.actions_failed = Counter(
            "tactful_actions_failed",
            "Failed delivery attempts, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tactful_batch_seconds",
            "Time from a batch's arrival to its effects being committed.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

    def watch_store(self, stats: Callable[[], StoreStats]) -> None:
        self.registry.register(_StoreCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)

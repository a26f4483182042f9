"""Learn: what happened, counted. Exposed on /metrics in the Prometheus text format.

Each engine owns its registry (no process-global state), so several engines (tests, a
shadow policy) can run in one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

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


class _Cached:
    """``compute()`` at most every ``ttl`` seconds (a scrape every 15 s must not re-read the
    store each time)."""

    def __init__(self, compute: Callable[[], dict[str, Any]], ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._value: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._value[0] > self._ttl:
                self._value = (now, self._compute())
            return self._value[1]


class _OutcomeCollector(Collector):
    """The outcome metrics of the last ``window`` (learn/summary.py) as gauges, computed at
    most every ``ttl`` seconds (a scrape every 15 s must not re-read the store each time)."""

    def __init__(
        self, summary: Callable[[], dict[str, Any]], window: str, ttl: float = 60.0
    ) -> None:
        self._summary = _Cached(summary, ttl)
        self._window = window

    def collect(self) -> Iterable[Metric]:
        s = self._summary.get()
        w = self._window

        def gauge(name: str, doc: str, value: float | None) -> Metric:
            g = GaugeMetricFamily(name, f"{doc} Over the last {w}.", labels=["window"])
            if value is not None:
                g.add_metric([w], value)
            return g

        yield gauge(
            "tactful_containment_without_regret",
            "Share of customers first treated by automation who did not come back within 72 h.",
            s["containment_without_regret"]["value"],
        )
        yield gauge(
            "tactful_escalation_rate",
            "Customers escalated per customer seen.",
            s["escalation"]["rate"],
        )
        yield gauge(
            "tactful_escalation_precision",
            "Handoffs resolved / (resolved + rejected as unnecessary).",
            s["escalation"]["precision"],
        )
        yield gauge(
            "tactful_sentiment_recovery",
            "Share of customers whose frustration recovered within 24 h of an intervention.",
            s["sentiment_recovery"]["value"],
        )
        yield gauge(
            "tactful_handoff_completeness",
            "Mean completeness score of handoff packages.",
            s["handoff_completeness"]["mean"],
        )
        ttl = GaugeMetricFamily(
            "tactful_time_to_intervention_seconds",
            f"From the first friction signal to the first intervention. Over the last {w}.",
            labels=["window", "quantile"],
        )
        for q in ("p50", "p90"):
            value = s["time_to_intervention_s"][q]
            if value is not None:
                ttl.add_metric([w, q.removeprefix("p")], value)
        yield ttl
        alerts = GaugeMetricFamily(
            "tactful_alerts_per_target_per_day",
            f"Notifications per target (e.g. an account manager) per day. Over the last {w}.",
            labels=["window", "target"],
        )
        for target, value in s["alerts_per_target_per_day"].items():
            alerts.add_metric([w, target], value)
        yield alerts


class _DriftCollector(Collector):
    """Drift (learn/drift.py) as gauges: PSI per text dimension, and how many flags."""

    def __init__(self, report: Callable[[], dict[str, Any]], ttl: float = 300.0) -> None:
        self._report = _Cached(report, ttl)

    def collect(self) -> Iterable[Metric]:
        r = self._report.get()
        psi = GaugeMetricFamily(
            "tactful_drift_psi",
            "Population stability index of each text dimension's scores, last 24 h against "
            "the 7 days before (over 0.25: drifted).",
            labels=["dimension"],
        )
        for dim, v in r["scores"].items():
            if v["psi"] is not None:
                psi.add_metric([dim], v["psi"])
        yield psi
        yield GaugeMetricFamily(
            "tactful_drift_flags",
            "Dimensions and signal rates flagged as drifted (0 when there is too little data).",
            value=len(r["flagged"]),
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._watching_outcomes = False
        self._watching_drift = False
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
        self.refused_signatures = Counter(
            "tactful_source_signatures_refused",
            "Requests to /v1/sources/<name> refused for a missing or wrong signature.",
            ["source"],
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

    def watch_drift(self, report: Callable[[], dict[str, Any]]) -> None:
        if not self._watching_drift:
            self.registry.register(_DriftCollector(report))
            self._watching_drift = True

    def watch_outcomes(self, summary: Callable[[], dict[str, Any]], window: str = "24h") -> None:
        """Expose ``summary()`` (learn/summary.py's over the last ``window``) as gauges
        (once: a second app over the same engine keeps the first's)."""
        if not self._watching_outcomes:
            self.registry.register(_OutcomeCollector(summary, window))
            self._watching_outcomes = True

    def render(self) -> bytes:
        return generate_latest(self.registry)

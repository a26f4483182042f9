"""Act: the dispatcher delivers outbox rows through their channels, with retries.

Decisions never wait on delivery: the engine only writes the outbox; this loop drains it.
A failed delivery is retried with exponential backoff and jitter; after ``max_attempts``
the row is marked dead with its last error (``tactful outbox`` lists them).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tactful.actions.channels import Channel
from tactful.learn.metrics import Metrics
from tactful.state.store.base import Store

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=10)

    def delay(self, attempts: int) -> timedelta:
        backoff = min(self.base * (2**attempts), self.cap)
        jittered: timedelta = backoff * (0.5 + random.random() / 2)
        return jittered


class Dispatcher:
    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        default: str = "log",
        metrics: Metrics | None = None,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if default not in channels:
            raise ValueError(f"default channel '{default}' is not among {sorted(channels)}")
        self.store = store
        self.channels = dict(channels)
        self.default = default
        self.metrics = metrics
        self.retry = retry
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, limit: int = 200) -> tuple[int, int]:
        """Deliver what is due now. Returns (delivered, failed)."""
        now = self.clock()
        delivered: list[str] = []
        failed = 0
        for row in self.store.pending_actions(now, limit):
            channel = self.channels.get(row.channel, self.channels[self.default])
            try:
                channel.deliver(row)
            except Exception as exc:  # a channel's failure must not stop the loop
                failed += 1
                dead = row.attempts + 1 >= self.retry.max_attempts
                self.store.mark_failed(
                    row.action_id,
                    f"{type(exc).__name__}: {exc}",
                    now + self.retry.delay(row.attempts),
                    dead,
                )
                if self.metrics:
                    self.metrics.actions_failed.labels(channel.name).inc()
                log.warning("delivery of %s failed (dead=%s): %s", row.action_id, dead, exc)
                continue
            delivered.append(row.action_id)
            if self.metrics:
                self.metrics.actions_delivered.labels(channel.name, row.kind).inc()
        if delivered:
            self.store.mark_delivered(delivered, self.clock())
        return len(delivered), failed

    def drain(self) -> int:
        """Deliver until nothing is due (for the CLI's one-shot commands)."""
        total = 0
        while True:
            ok, bad = self.run_once()
            total += ok
            if ok + bad == 0 or ok == 0:
                return total

    def start(self, interval: float = 0.2) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    ok, _ = self.run_once()
                except Exception:  # keep the loop alive; the store may be briefly busy
                    log.exception("dispatcher iteration failed")
                    ok = 0
                # Pause even while draining a backlog: ingest shares the store's lock,
                # and a customer waiting for a decision matters more than a delivery.
                self._stop.wait(interval if ok == 0 else 0.01)

        self._thread = threading.Thread(target=loop, name="tactful-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

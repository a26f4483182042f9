"""Act: the dispatcher delivers outbox rows through their channels, with retries.

Decisions never wait on delivery: the engine only writes the outbox; this loop drains it.
A failed delivery is retried with exponential backoff and jitter; after ``max_attempts``
the row is marked dead with its last error (``tactful outbox`` lists them); a channel
that refuses an action outright (HTTP 4xx) sends it there at once.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tactful.actions.channels import Channel, ChannelError
from tactful.learn.metrics import Metrics
from tactful.state.store.base import OutboxRow, Store

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


def _messages(rows: list[OutboxRow]) -> Iterator[tuple[OutboxRow, list[OutboxRow]]]:
    """What to send: each row on its own, except notifications sharing a batch, which go
    out as one message listing them all (idempotency key from its members, so a member
    that joins late is a new message rather than a duplicate the receiver drops)."""
    batches: dict[str, list[OutboxRow]] = {}
    for row in rows:
        if row.batch_id is None:
            yield row, [row]
        else:
            batches.setdefault(row.batch_id, []).append(row)
    for batch_id, members in batches.items():
        if len(members) == 1:
            yield members[0], members
            continue
        first = members[0]
        digest = hashlib.blake2b(
            "\n".join(sorted(m.action_id for m in members)).encode(), digest_size=12
        ).hexdigest()
        customers = sorted({m.customer_id for m in members})
        payload = {
            "target": first.payload.get("target"),
            "message": f"{len(members)} notifications about {len(customers)} customer(s)",
            "group": batch_id.rsplit("@", 1)[0],
            "notifications": [
                {"customer_id": m.customer_id, "action_id": m.action_id, **m.payload}
                for m in members
            ],
        }
        key = f"batch:{digest}"
        yield (
            OutboxRow(
                action_id=key,
                idempotency_key=key,
                customer_id=first.customer_id,
                channel=first.channel,
                kind=first.kind,
                payload=payload,
                attempts=max(m.attempts for m in members),
                created_at=min(m.created_at for m in members),
                batch_id=batch_id,
            ),
            members,
        )


class Dispatcher:
    """Delivers the outbox. Each channel has its own loop and ``concurrency`` workers, so
    a slow or failing channel delays only its own actions; memory stays bounded because
    each loop holds at most ``limit`` rows (the backlog waits in the store)."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        metrics: Metrics | None = None,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        enrich: Callable[[OutboxRow], OutboxRow] | None = None,
    ) -> None:
        """``enrich``: rewrites an action before delivery (e.g. a language model's draft,
        actions/llm.py); it must not raise and runs on the channel's own workers."""
        self.store = store
        self.enrich = enrich
        self.channels = dict(channels)
        self.metrics = metrics
        self.retry = retry
        self.clock = clock
        self._pools = {
            name: ThreadPoolExecutor(max(1, ch.concurrency), thread_name_prefix=f"tactful-{name}")
            for name, ch in self.channels.items()
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self, limit: int = 200, channel: str | None = None) -> tuple[int, int]:
        """Deliver what is due now (on one channel, or all). Returns (delivered, failed),
        counted in outbox rows (notifications batched into one message count one each)."""
        now = self.clock()
        rows = self.store.pending_actions(now, limit, channel)
        if channel is None:  # rows for a channel nobody configured: dead, with why
            self._orphans(now, [r for r in rows if r.channel not in self.channels])
        sending = [
            (row, members, self._pools[row.channel].submit(self._deliver, row))
            for row, members in _messages([r for r in rows if r.channel in self.channels])
        ]
        delivered: list[str] = []
        failed = 0
        for row, members, future in sending:
            name = row.channel
            try:
                future.result()
            except Exception as exc:  # a channel's failure must not stop the loop
                failed += len(members)
                permanent = isinstance(exc, ChannelError) and exc.permanent
                dead = permanent or row.attempts + 1 >= self.retry.max_attempts
                for member in members:
                    self.store.mark_failed(
                        member.action_id,
                        f"{type(exc).__name__}: {exc}",
                        now + self.retry.delay(row.attempts),
                        dead,
                    )
                if self.metrics:
                    self.metrics.actions_failed.labels(name).inc(len(members))
                log.warning("delivery of %s failed (dead=%s): %s", row.action_id, dead, exc)
                continue
            delivered.extend(m.action_id for m in members)
            if self.metrics:
                self.metrics.actions_delivered.labels(name, row.kind).inc(len(members))
        if delivered:
            self.store.mark_delivered(delivered, self.clock())
        return len(delivered), failed

    def _deliver(self, row: OutboxRow) -> None:
        if self.enrich is not None:
            row = self.enrich(row)
        self.channels[row.channel].deliver(row)

    def _orphans(self, now: datetime, rows: list[OutboxRow]) -> None:
        for row in rows:
            why = (
                f"no channel named '{row.channel}' is configured "
                f"(configured: {', '.join(sorted(self.channels))})"
            )
            self.store.mark_failed(row.action_id, why, now, dead=True)
            log.warning("%s: %s", row.action_id, why)

    def drain(self) -> int:
        """Deliver until nothing is due (for the CLI's one-shot commands)."""
        total = 0
        while True:
            ok, bad = self.run_once()
            total += ok
            if ok + bad == 0 or ok == 0:
                return total

    def start(self, interval: float = 0.2) -> None:
        """One loop per channel, plus one that dead-letters rows for unknown channels."""

        def loop(channel: str | None) -> None:
            while not self._stop.is_set():
                try:
                    if channel is None:
                        now = self.clock()
                        rows = self.store.pending_actions(now, 100, exclude=list(self.channels))
                        self._orphans(now, rows)
                        ok = 0
                    else:
                        # A few rounds of its workers at a time: rows are marked delivered
                        # per round, so a crash re-sends little (receivers dedupe anyway).
                        limit = max(8, 4 * self.channels[channel].concurrency)
                        ok, _ = self.run_once(limit, channel)
                except Exception:  # keep the loop alive; the store may be briefly busy
                    log.exception("dispatcher iteration failed")
                    ok = 0
                # Pause even while draining a backlog: ingest shares the store's lock,
                # and a customer waiting for a decision matters more than a delivery.
                self._stop.wait(interval if ok == 0 else 0.01)

        for name in [*self.channels, None]:
            thread = threading.Thread(
                target=loop, args=(name,), name=f"tactful-dispatch-{name or 'orphans'}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

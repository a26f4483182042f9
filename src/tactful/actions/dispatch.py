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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tactful.actions.channels import Channel, ChannelError
from tactful.learn.metrics import Metrics
from tactful.runtime import logs, tracing
from tactful.state.store.base import OutboxRow, Store

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)
# Rows claimed by a round stay claimed this long (or until delivered/failed): longer than
# any channel's delivery with its timeouts, short enough that a dead dispatcher's rows
# move on soon.
DEFAULT_LEASE = timedelta(minutes=2)


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
        lease: timedelta | None = None,
    ) -> None:
        """``enrich``: rewrites an action before delivery (e.g. a language model's draft,
        actions/llm.py); it must not raise and runs on the channel's own workers.
        ``lease``: on a store several processes write (PostgreSQL), a round's rows are
        claimed for this long (default DEFAULT_LEASE) so several dispatchers never send
        one row at once; a dead dispatcher's claimed rows wait out the lease, then any
        dispatcher sends them (same idempotency key). It must outlast a round's
        deliveries with their timeouts. SQLite's single process needs no claims: a
        restarted dispatcher resends at once what its killed predecessor had in flight."""
        self.lease = lease if lease is not None else (DEFAULT_LEASE if store.shared else None)
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
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self, limit: int = 200, channel: str | None = None) -> tuple[int, int]:
        """Deliver what is due now (on one channel, or all). Returns (delivered, failed),
        counted in outbox rows (notifications batched into one message count one each)."""
        delivered, failed, _ = self._round(limit, channel)
        return delivered, failed

    def _round(self, limit: int, channel: str | None) -> tuple[int, int, int]:
        """(delivered, failed, failed for a reason that may pass: a refused connection, a
        5xx, a timeout; not a permanent refusal such as a 4xx)."""
        now = self.clock()
        rows = self.store.pending_actions(now, limit, channel, lease=self.lease)
        if channel is None:  # rows for a channel nobody configured: dead, with why
            self._orphans(now, [r for r in rows if r.channel not in self.channels])
        sending = [
            (row, members, self._pools[row.channel].submit(self._deliver, row))
            for row, members in _messages([r for r in rows if r.channel in self.channels])
        ]
        delivered: list[str] = []
        failures: list[tuple[str, str, datetime, bool]] = []
        errors: Counter[str] = Counter()
        retryable = 0
        for row, members, future in sending:
            name = row.channel
            try:
                future.result()
            except Exception as exc:  # a channel's failure must not stop the loop
                permanent = isinstance(exc, ChannelError) and exc.permanent
                dead = permanent or row.attempts + 1 >= self.retry.max_attempts
                why = f"{type(exc).__name__}: {exc}"
                retry_at = now + self.retry.delay(row.attempts)
                asked = exc.retry_after if isinstance(exc, ChannelError) else None
                if asked is not None:  # the receiver's Retry-After, if later than ours
                    retry_at = max(retry_at, now + timedelta(seconds=asked))
                failures.extend((m.action_id, why, retry_at, dead) for m in members)
                if dead:
                    logs.dead_lettered(members, why)
                retryable += 0 if permanent else len(members)
                errors[f"{name}: {why}" + (" (dead)" if dead else "")] += len(members)
                if self.metrics:
                    self.metrics.actions_failed.labels(name).inc(len(members))
                continue
            delivered.extend(m.action_id for m in members)
            logs.delivered(members)
            if self.metrics:
                self.metrics.actions_delivered.labels(name, row.kind).inc(len(members))
        if failures:  # one transaction and one log line per kind of failure, per round
            self.store.mark_failed_many(failures)
            for why, n in errors.items():
                log.warning("%d deliveries failed: %s", n, why)
        if delivered:
            self.store.mark_delivered(delivered, self.clock())
        return len(delivered), len(failures), retryable

    def _deliver(self, row: OutboxRow) -> None:
        attrs: tracing.Attrs = {
            "tactful.channel": row.channel,
            "tactful.action.id": row.action_id,
            "tactful.action.kind": row.kind,
            "tactful.action.attempt": row.attempts + 1,
        }
        with tracing.span("tactful.dispatch", attrs) as s:
            if self.enrich is not None:
                row = self.enrich(row)
            try:
                self.channels[row.channel].deliver(row)
            except Exception as exc:
                permanent = isinstance(exc, ChannelError) and exc.permanent
                s.set_attribute("tactful.outcome", "refused" if permanent else "failed")
                raise
            s.set_attribute("tactful.outcome", "delivered")

    def _orphans(self, now: datetime, rows: list[OutboxRow]) -> None:
        if not rows:
            return
        configured = ", ".join(sorted(self.channels))
        self.store.mark_failed_many(
            [
                (
                    r.action_id,
                    f"no channel named '{r.channel}' is configured (configured: {configured})",
                    now,
                    True,
                )
                for r in rows
            ]
        )
        log.warning("%d actions for unconfigured channels dead-lettered", len(rows))
        logs.dead_lettered(rows, "no channel of that name is configured")

    def wake(self) -> None:
        """New actions were committed: the channel loops look now, not at their next poll."""
        self._wake.set()

    def drain(self) -> int:
        """Deliver until nothing is due (for the CLI's one-shot commands)."""
        total = 0
        while True:
            ok, bad = self.run_once()
            total += ok
            if ok + bad == 0 or ok == 0:
                return total

    def start(self, interval: float = 0.05, orphan_interval: float = 5.0) -> None:
        """One loop per channel, plus one that dead-letters rows for unknown channels.

        A channel loop delivers rounds of ``8 x concurrency`` rows while there is a
        backlog; idle, it polls every ``interval`` or sooner when :meth:`wake` is called
        (``serve`` calls it after each commit with actions). When every delivery of a
        round fails (the receiver is down), the channel backs off as a whole (0.5 s
        doubling to 30 s) and then probes with one row until a delivery succeeds, so a
        dead receiver costs one attempt per pause, not a round of them. Permanent refusals
        (a 4xx for a bad payload, a rejected recipient) say nothing about the receiver
        being down: they are dead-lettered and do not pause the channel."""

        def channel_loop(name: str) -> None:
            size = 8 * self.channels[name].concurrency
            pause = 0.0  # the circuit breaker's current pause
            while not self._stop.is_set():
                try:
                    ok, bad, retryable = self._round(1 if pause else size, name)
                except Exception:  # keep the loop alive; the store may be briefly busy
                    log.exception("dispatcher iteration failed")
                    ok, bad, retryable = 0, 0, 0
                if retryable and not ok:
                    pause = min(max(0.5, pause * 2), 30.0)
                    log.warning("%s: every delivery failed; pausing %.1fs", name, pause)
                    self._stop.wait(pause)
                    continue
                if ok:  # only a delivery closes the breaker; "nothing due yet" does not
                    pause = 0.0
                if ok + bad >= size:
                    # A backlog: a breath for ingest, which shares the store's lock (a
                    # customer waiting for a decision matters more than a delivery).
                    self._stop.wait(0.002)
                    continue
                self._wake.wait(interval)
                self._wake.clear()

        def orphan_loop() -> None:
            while not self._stop.wait(orphan_interval):
                try:
                    now = self.clock()
                    self._orphans(
                        now, self.store.pending_actions(now, 500, exclude=list(self.channels))
                    )
                except Exception:
                    log.exception("orphan check failed")

        targets: list[tuple[str, Callable[..., None], tuple[str, ...]]] = [
            (f"tactful-dispatch-{name}", channel_loop, (name,)) for name in self.channels
        ]
        targets.append(("tactful-dispatch-orphans", orphan_loop, ()))
        for thread_name, target, args in targets:
            thread = threading.Thread(target=target, args=args, name=thread_name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

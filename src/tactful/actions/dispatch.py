"""Act: the dispatcher delivers outbox rows through their channels, with retries.

Decisions never wait on delivery: the engine only writes the outbox; this loop drains it.
A failed delivery is retried with exponential backoff and jitter; after ``max_attempts``
the row is marked dead with its last error (``tactful outbox`` lists them).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tactful.actions.channels import Channel
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
        """Deliver what is due now. Returns (delivered, failed), counted in outbox rows
        (notifications batched into one message count one each)."""
        now = self.clock()
        delivered: list[str] = []
        failed = 0
        for row, members in _messages(self.store.pending_actions(now, limit)):
            channel = self.channels.get(row.channel, self.channels[self.default])
            try:
                channel.deliver(row)
            except Exception as exc:  # a channel's failure must not stop the loop
                failed += len(members)
                dead = row.attempts + 1 >= self.retry.max_attempts
                for member in members:
                    self.store.mark_failed(
                        member.action_id,
                        f"{type(exc).__name__}: {exc}",
                        now + self.retry.delay(row.attempts),
                        dead,
                    )
                if self.metrics:
                    self.metrics.actions_failed.labels(channel.name).inc(len(members))
                log.warning("delivery of %s failed (dead=%s): %s", row.action_id, dead, exc)
                continue
            delivered.extend(m.action_id for m in members)
            if self.metrics:
                self.metrics.actions_delivered.labels(channel.name, row.kind).inc(len(members))
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

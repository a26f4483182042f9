"""Act: where actions go. A channel has one method, ``deliver``; it raises on failure.

``log`` (a JSON-lines file a person or another tool can tail) always exists; ``slack``
(slack.py, Block Kit through the official slack_sdk) and ``webhook`` (webhook.py, signed
HTTP POSTs) are configured in a channels file (config.py). A channel says how many
deliveries it runs at once (``concurrency``); the dispatcher gives each its own workers,
so a slow channel never holds up the others.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol

from tactful.state.store.base import OutboxRow

__all__ = ["Channel", "ChannelError", "LogChannel"]


class ChannelError(RuntimeError):
    """A delivery that failed. The dispatcher retries it, unless ``permanent`` (the
    receiver refused it, e.g. HTTP 4xx: sending it again would fail the same way), which
    goes straight to the dead-letter list with this message. ``retry_after``: seconds the
    receiver asked to wait (its ``Retry-After``); the next attempt is no sooner."""

    def __init__(
        self, message: str, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str
    concurrency: int  # deliveries in flight at once

    def deliver(self, action: OutboxRow) -> None: ...


class LogChannel:
    """Appends each action as one JSON line, with its idempotency key."""

    name = "log"
    concurrency = 1  # one writer keeps lines whole and in order

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def deliver(self, action: OutboxRow) -> None:
        line = json.dumps(
            {
                "idempotency_key": action.idempotency_key,
                "customer_id": action.customer_id,
                "kind": action.kind,
                "channel": action.channel,
                "payload": action.payload,
            }
        )
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            raise ChannelError(f"cannot write {self.path}: {exc.strerror}") from exc

"""Act: where actions go. A channel has one method, ``deliver``; it raises on failure.

Slack and signed webhooks arrive with the actions issue; for now every action is written
to the log channel, a JSON-lines file a person or another tool can tail.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol

from tactful.state.store.base import OutboxRow

__all__ = ["Channel", "ChannelError", "LogChannel"]


class ChannelError(RuntimeError):
    """A delivery that failed; the dispatcher retries it."""


class Channel(Protocol):
    name: str

    def deliver(self, action: OutboxRow) -> None: ...


class LogChannel:
    """Appends each action as one JSON line, with its idempotency key."""

    name = "log"

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

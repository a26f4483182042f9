"""Decide, in a crisis: incident mode, switched on and off by a person.

During an outage or a breach the ordinary playbook is wrong: every customer who writes in
is frustrated for the same reason, and escalating each one floods the queues. A person
switches incident mode on (``PUT /v1/incident`` or ``tactful incident on``) and the
policy's ``incident:`` playbook replaces the ordinary rules (hard triggers still first)
until they switch it off. Left on for more than a day, its status says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["STALE_AFTER", "Incident"]

# On longer than this, the status warns: incidents end; a forgotten switch should not.
STALE_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Incident:
    on: bool = False
    since: datetime | None = None  # when it was switched to its current value
    by: str = ""
    reason: str = ""

    def status(self, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            "on": self.on,
            "since": self.since.isoformat() if self.since else None,
            "by": self.by,
            "reason": self.reason,
        }
        if self.on and self.since is not None:
            lasted = now - self.since
            out["on_for_s"] = int(lasted.total_seconds())
            if lasted > STALE_AFTER:
                days = lasted / timedelta(days=1)
                out["warning"] = (
                    f"incident mode has been on for {days:.1f} days; the crisis playbook "
                    "replaces the ordinary rules until it is switched off"
                )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "since": self.since.isoformat() if self.since else None,
            "by": self.by,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incident:
        since = data.get("since")
        return cls(
            on=bool(data.get("on")),
            since=datetime.fromisoformat(since) if since else None,
            by=str(data.get("by", "")),
            reason=str(data.get("reason", "")),
        )

    def note(self) -> str:
        """The line a decision's reasons carry while incident mode is on."""
        when = self.since.isoformat() if self.since else "?"
        return f"incident mode on since {when} (by {self.by or '?'}: {self.reason or 'no reason'})"

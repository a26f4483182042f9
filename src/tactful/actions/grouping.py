"""Act: notifications are batched the way Prometheus Alertmanager batches alerts. Pure.

An account manager should get one message saying "three people at Acme are struggling",
not three pings in a minute, and not the same ping again an hour later. Each notification
carries a :class:`Grouping` from the policy's ``notifications`` route that matched it:

- the group key is the channel, the target and the ``group_by`` fields (account by
  default; customer or rule for finer messages);
- ``group_wait``: the first notification of a quiet group waits this long, so the ones
  that follow it closely go out in the same message;
- ``group_interval``: after a message, the group's next one waits at least this long;
- ``repeat_interval``: the same notification (same customer and rule) is not sent to the
  group again within this time; the repeat is recorded as muted, with why.

Times are decision times (event time), so a replay groups exactly as live traffic would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = ["GroupState", "Grouping", "Scheduled", "group_key", "schedule"]


@dataclass(frozen=True, slots=True)
class Grouping:
    key: str  # notifications with the same key go out together
    fingerprint: str  # "the same notification": customer and rule
    wait: timedelta
    interval: timedelta
    repeat: timedelta

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "fingerprint": self.fingerprint,
            "wait_s": self.wait.total_seconds(),
            "interval_s": self.interval.total_seconds(),
            "repeat_s": self.repeat.total_seconds(),
        }


def group_key(group_by: tuple[str, ...], values: Mapping[str, str]) -> str:
    """``channel=log|target=ana@acme.example|account=acme``, in ``group_by``'s order."""
    return "|".join(f"{name}={values[name]}" for name in group_by)


@dataclass(frozen=True, slots=True)
class GroupState:
    """What a group remembers: its latest scheduled message and what went into recent ones."""

    last_flush: datetime | None = None
    sent: Mapping[str, datetime] = field(default_factory=dict)  # fingerprint -> its flush

    def as_dict(self) -> dict[str, Any]:
        return {
            "last_flush": self.last_flush.isoformat() if self.last_flush else None,
            "sent": {k: v.isoformat() for k, v in self.sent.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupState:
        last = data.get("last_flush")
        return cls(
            datetime.fromisoformat(last) if last else None,
            {k: datetime.fromisoformat(v) for k, v in data.get("sent", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Scheduled:
    state: GroupState
    flush_at: datetime | None  # when the group's message goes out; None: muted
    batch_id: str | None = None  # the message it rides in: group key and flush time
    muted_because: str = ""


def schedule(group: GroupState | None, grouping: Grouping, at: datetime) -> Scheduled:
    """Place a notification decided at ``at`` in its group's next message, or mute it."""
    state = group or GroupState()
    previous = state.sent.get(grouping.fingerprint)
    if previous is not None:
        if previous >= at:
            why = f"already in the group's message due {previous.isoformat()}"
            return Scheduled(state, None, muted_because=why)
        if at - previous < grouping.repeat:
            why = (
                f"sent in the group's message at {previous.isoformat()}; not repeated within "
                f"repeat_interval {grouping.repeat}"
            )
            return Scheduled(state, None, muted_because=why)
    last = state.last_flush
    if last is not None and last >= at:
        flush = last  # the group's next message has not gone out yet: join it
    else:
        flush = at + grouping.wait
        if last is not None:
            flush = max(flush, last + grouping.interval)
    # Forget what can no longer mute anything, so a group's memory stays small.
    horizon = at - grouping.repeat
    sent = {k: v for k, v in state.sent.items() if v > horizon}
    sent[grouping.fingerprint] = flush
    return Scheduled(GroupState(flush, sent), flush, f"{grouping.key}@{flush.isoformat()}")

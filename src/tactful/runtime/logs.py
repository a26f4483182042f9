"""Structured logs: ``--log-format json`` writes one JSON object per line to stderr.

Each line has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``msg``, then whatever ids
the call passed with ``extra=`` (``event_id``, ``decision_id``, ``customer_id``,
``action_id``, ``partition`` ...), and ``exc`` with the traceback of a logged exception.
The helpers below are the key lines (events quarantined, decisions, deliveries and dead
letters); they write only when JSON logs are on and return after one check otherwise
(the default ``text`` format leaves logging exactly as it was).

Messages never quote free text (a customer's message, a quarantined payload): ids,
types, rule ids and reasons' field names only.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tactful.runtime.pipeline import Processed
    from tactful.state.store.base import OutboxRow, QuarantineItem

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "LogFormat",
    "Noted",
    "configure",
    "dead_lettered",
    "delivered",
    "noted",
    "processed",
    "quarantined",
]

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

engine_log = logging.getLogger("tactful.engine")
dispatch_log = logging.getLogger("tactful.dispatch")

_structured = False  # configure("json") was called

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(fmt: LogFormat, level: int = logging.INFO) -> None:
    """``json``: the root logger writes JSON lines to stderr from ``level`` up (uvicorn's
    loggers too, given ``log_config=None``). ``text``: logging is left as it was."""
    global _structured
    if fmt != "json":
        return
    _structured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class Noted(str):
    """A message with ids attached, for code that logs through a ``Callable[[str], None]``
    (the broker worker): it is still the plain string, and :func:`noted` reads the ids."""

    ids: dict[str, Any]

    def __new__(cls, msg: str, **ids: Any) -> Noted:
        self = super().__new__(cls, msg)
        self.ids = ids
        return self


def noted(logger: logging.Logger, msg: str, level: int = logging.INFO) -> None:
    """Log ``msg`` with the ids a :class:`Noted` carries."""
    logger.log(level, "%s", msg, extra=getattr(msg, "ids", None))


def quarantined(items: Sequence[QuarantineItem]) -> None:
    if not (items and _structured and engine_log.isEnabledFor(logging.WARNING)):
        return
    for item in items:
        fields = sorted({str(p.get("field")) for p in item.reason})
        engine_log.warning(
            "event quarantined: %d problem(s) in %s",
            len(item.reason),
            ", ".join(fields),
            extra={
                "event_id": item.event_id,
                "customer_id": item.customer_id,
                "source": item.source,
            },
        )


def processed(batch: Iterable[Processed]) -> None:
    """A line per decision committed: ``decision escalated`` (a handoff, with its queue)
    or ``decision made``."""
    if not (_structured and engine_log.isEnabledFor(logging.INFO)):
        return
    for p in batch:
        for d in p.decisions:
            ids = {
                "event_id": p.event.event_id,
                "decision_id": d.decision_id,
                "customer_id": p.event.customer_id,
                "kind": d.kind,
                "rule_id": d.rule_id,
            }
            if d.kind == "escalate":
                queue = d.params.get("queue")
                engine_log.info("decision escalated to %s", queue, extra={**ids, "queue": queue})
            else:
                engine_log.info("decision made: %s", d.kind, extra=ids)


def delivered(members: Sequence[OutboxRow]) -> None:
    if not (_structured and dispatch_log.isEnabledFor(logging.INFO)):
        return
    for m in members:
        dispatch_log.info(
            "action delivered via %s",
            m.channel,
            extra={
                "action_id": m.action_id,
                "customer_id": m.customer_id,
                "channel": m.channel,
                "kind": m.kind,
            },
        )


def dead_lettered(members: Sequence[OutboxRow], why: str) -> None:
    if not (_structured and dispatch_log.isEnabledFor(logging.WARNING)):
        return
    for m in members:
        dispatch_log.warning(
            "action dead-lettered: %s",
            why,
            extra={
                "action_id": m.action_id,
                "customer_id": m.customer_id,
                "channel": m.channel,
                "kind": m.kind,
            },
        )

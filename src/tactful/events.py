"""Ingest: the event model, its validation, and the Segment spec adapter.

Every event that enters tactful passes through :func:`parse_event`. It either returns a
typed, validated event or raises :class:`EventError` listing each problem as
(field, value, why), so the caller can answer with a precise 4xx and quarantine the raw
payload. Timestamps are event time and must carry a timezone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from tactful.instant import Instant

__all__ = [
    "MAX_TEXT_CHARS",
    "ApiError",
    "BotTurn",
    "Click",
    "CommandRun",
    "Custom",
    "Event",
    "EventError",
    "Feedback",
    "FieldProblem",
    "Identify",
    "Message",
    "PageView",
    "PaymentFailed",
    "Search",
    "TicketClosed",
    "TicketOpened",
    "parse_event",
]

MAX_TEXT_CHARS = 10_000
FUTURE_TOLERANCE = timedelta(minutes=5)
# Event time before this is a broken clock or a unit mistake, not history to replay.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

_KNOWN_TRAITS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("tier", str, "must be a string such as 'enterprise'"),
    ("lifecycle", str, "must be a string such as 'active'"),
    ("owner", str, "must be a string (a Slack handle or an email)"),
    ("value", (int, float), "must be a number (the account's value)"),
    ("account_name", str, "must be a string (the company's name)"),
    ("tenure_days", int, "must be a whole number of days"),
)


def valid_timezone(name: object) -> bool:
    """An IANA time zone name this machine knows (the tzdata package ships them)."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable_id(value: str) -> str:
    """Ids end up in URLs, log lines, Slack messages and SQL text columns (PostgreSQL's
    cannot hold NUL): control characters in one are a bug upstream, not an id."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"contains the control character {found.group()!r} at position {found.start()}"
        )
    return value


Id = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable_id)]
ShortText = Annotated[str, Field(max_length=1_000)]


class _Base(BaseModel):
    # NaN and infinity are not amounts or coordinates (and do not survive a JSON round trip).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: Id
    customer_id: Id
    account_id: Id | None = None
    timestamp: Instant
    # Free-form context from the source system (user agent, campaign, raw Segment context).
    context: dict[str, Any] = Field(default_factory=dict)


class Message(_Base):
    """A chat or email message. Only customer-authored text feeds the affect detectors."""

    type: Literal["message"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    channel: Literal["chat", "email", "sms", "social", "other"] = "chat"
    role: Literal["customer", "agent", "bot"] = "customer"
    conversation_id: Id | None = None


# Screen coordinates in CSS pixels; beyond this is a tracker bug, not a screen.
Pixels = Annotated[float, Field(ge=-100_000, le=100_000)]


class Click(_Base):
    """A click. Without an element id (autocapture on a bare <div>) rage clicks are found
    by position when x/y are given, and not at all when neither is."""

    type: Literal["click"]
    element: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    page: ShortText | None = None
    x: Pixels | None = None
    y: Pixels | None = None


# Time on a page as reported by the client: a page open for more than a day is a tracker
# that never saw the tab close, not a reader.
MAX_PAGE_SECONDS = 86_400


class PageView(_Base):
    """A page (or screen) view. ``category`` is free-form (Segment's page category); docs
    and help pages are recognised by ``category`` in ("docs", "help") or by path, and any
    other category is kept and treated as an ordinary page. ``duration_s``: how long the
    page stayed open, when the tracker reports it on leaving."""

    type: Literal["page_view"]
    path: Annotated[str, Field(min_length=1, max_length=2_048)]
    title: ShortText | None = None
    category: Annotated[str, Field(max_length=64)] | None = None
    duration_s: Annotated[float, Field(ge=0, le=MAX_PAGE_SECONDS)] | None = None


class ApiError(_Base):
    type: Literal["api_error"]
    endpoint: Annotated[str, Field(min_length=1, max_length=512)]
    status: Annotated[int, Field(ge=100, le=599)]
    code: ShortText | None = None


class PaymentFailed(_Base):
    type: Literal["payment_failed"]
    amount: Annotated[float, Field(ge=0)] | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    reason: ShortText | None = None


class TicketOpened(_Base):
    type: Literal["ticket_opened"]
    ticket_id: Id
    subject: ShortText | None = None


class TicketClosed(_Base):
    type: Literal["ticket_closed"]
    ticket_id: Id
    resolution: Literal["solved", "unsolved", "duplicate", "spam"] = "solved"


class Search(_Base):
    type: Literal["search"]
    query: Annotated[str, Field(min_length=1, max_length=1_000)]


class CommandRun(_Base):
    type: Literal["command_run"]
    command: Annotated[str, Field(min_length=1, max_length=1_000)]
    ok: bool = True


class BotTurn(_Base):
    type: Literal["bot_turn"]
    step_id: Id
    outcome: Literal["success", "failed", "fallback", "handoff"]
    text: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None


class Feedback(_Base):
    type: Literal["feedback"]
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | None = None


class Identify(_Base):
    """Who the customer is: tier, value, lifecycle, owner. Updates the account context."""

    type: Literal["identify"]
    traits: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("traits")
    @classmethod
    def _known_traits_typed(
        cls, traits: dict[str, str | int | float | bool | None]
    ) -> dict[str, str | int | float | bool | None]:
        """The traits tactful reads must have the right type; others pass through."""
        for name, kinds, why in _KNOWN_TRAITS:
            value = traits.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"traits.{name}={value!r}: {why}")
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"traits.{name}={value!r}: must not be negative")
        tz = traits.get("timezone")
        if tz is not None and not valid_timezone(tz):
            raise ValueError(
                f"traits.timezone={tz!r}: not an IANA time zone name (e.g. 'Europe/Paris')"
            )
        return traits


class Custom(_Base):
    """Any other named action (a Segment track call no rule maps onto a type above, or
    one mapped here on purpose, such as "Order Completed"): kept and counted, not
    interpreted."""

    type: Literal["custom"]
    name: Annotated[str, Field(min_length=1, max_length=256)]
    properties: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    Message
    | Click
    | PageView
    | ApiError
    | PaymentFailed
    | TicketOpened
    | TicketClosed
    | Search
    | CommandRun
    | BotTurn
    | Feedback
    | Identify
    | Custom,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
_NATIVE_MODELS: dict[str, type[_Base]] = {
    "message": Message,
    "click": Click,
    "page_view": PageView,
    "api_error": ApiError,
    "payment_failed": PaymentFailed,
    "ticket_opened": TicketOpened,
    "ticket_closed": TicketClosed,
    "search": Search,
    "command_run": CommandRun,
    "bot_turn": BotTurn,
    "feedback": Feedback,
    "identify": Identify,
    "custom": Custom,
}
EVENT_TYPES: tuple[str, ...] = tuple(_NATIVE_MODELS)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    value: Any
    why: str

    def __str__(self) -> str:
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{self.field}={shown}: {self.why}"

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, str) and len(value) > 200:
            value = value[:200] + "..."
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = repr(value)[:200]
        return {"field": self.field, "value": value, "why": self.why}


class EventError(ValueError):
    """An event that cannot be accepted, with every problem found."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _from_validation_error(exc: ValidationError, raw: dict[str, Any]) -> EventError:
    problems: list[FieldProblem] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Discriminated unions prefix the location with the tag ("message.text"): drop it.
        if loc and loc[0] == raw.get("type") and len(loc) > 1:
            loc = loc[1:]
        field = ".".join(loc) or "event"
        why = err["msg"].removeprefix("Value error, ")
        value = err.get("input") if err["type"] != "missing" else None
        if err["type"] == "union_tag_invalid":
            field = "type"
            why = f"unknown event type; expected one of: {', '.join(EVENT_TYPES)}"
            value = raw.get("type")
        elif err["type"] == "union_tag_not_found":
            field = "type"
            why = "missing; every event needs a type"
            value = None
        elif err["type"] == "extra_forbidden":
            why = "unknown field for this event type (put free-form data under 'context')"
        elif err["type"] == "timezone_aware":
            why = "timestamp needs a timezone, e.g. 2026-11-02T10:00:00Z"
        problems.append(FieldProblem(field, value, why))
    return EventError(problems)


def _lone_surrogate(value: Any, path: str = "") -> str | None:
    """The field holding a lone surrogate (JSON allows "\\ud800"; UTF-8 does not), if any."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "event"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            found = _lone_surrogate(k, path) or _lone_surrogate(v, f"{path}.{k}" if path else k)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _lone_surrogate(v, f"{path}[{i}]")
            if found:
                return found
    return None


# A lone surrogate can only reach us through a JSON escape in this range.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(text: str | bytes) -> bool:
    """Whether JSON text could decode to a lone surrogate (rare: checked before scanning)."""
    if isinstance(text, bytes):
        return SURROGATE_ESCAPE_BYTES.search(text) is not None
    return SURROGATE_ESCAPE.search(text) is not None


def parse_event(raw: Any, now: datetime | None = None, *, check_surrogates: bool = True) -> Event:
    """Validate one raw event (a dict, or a JSON string) and return it typed.

    Segment-spec payloads (``type`` of track/identify/page/group/screen) are mapped onto
    the native types first. ``now`` (timezone-aware) enables the check that event time is
    not in the future beyond a small tolerance for clock skew. ``check_surrogates=False``
    skips the scan for lone surrogates when the caller knows the JSON text had no escape
    that could produce one (see :func:`may_hold_surrogates`).
    """
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EventError([FieldProblem("body", None, f"not valid JSON: {exc}")]) from None
        except UnicodeDecodeError as exc:
            why = f"not valid UTF-8 at byte {exc.start}"
            raise EventError([FieldProblem("body", None, why)]) from None
    if not isinstance(raw, dict):
        raise EventError(
            [FieldProblem("event", raw, f"must be a JSON object, got {type(raw).__name__}")]
        )
    if is_segment(raw):
        raw = from_segment(raw)
    try:
        event = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise _from_validation_error(exc, raw) from None
    if event.timestamp < EARLIEST:
        raise EventError(
            [
                FieldProblem(
                    "timestamp",
                    raw.get("timestamp"),
                    f"is before {EARLIEST.date()}; check the clock or the unit",
                )
            ]
        )
    surrogate = _lone_surrogate(raw) if check_surrogates else None
    if surrogate is not None:
        raise EventError(
            [FieldProblem(surrogate, None, "contains a lone UTF-16 surrogate (not text)")]
        )
    if now is not None and event.timestamp > now + FUTURE_TOLERANCE:
        raise EventError(
            [
                FieldProblem(
                    "timestamp",
                    event.timestamp.isoformat(),
                    f"is in the future (now {now.isoformat(timespec='seconds')}, tolerance "
                    f"{int(FUTURE_TOLERANCE.total_seconds())} s); event time must be when it "
                    "happened",
                )
            ]
        )
    return event


# --- Segment / RudderStack spec -------------------------------------------------------

SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group"})

# Normalised track event name -> native type. Names are lower-cased, non-alphanumerics
# collapsed to "_" ("Payment Failed" -> "payment_failed").
SEGMENT_TRACK_EVENTS: dict[str, str] = {
    "message": "message",
    "message_sent": "message",
    "message_received": "message",
    "chat_message": "message",
    "click": "click",
    "clicked": "click",
    "element_clicked": "click",
    "button_clicked": "click",
    "api_error": "api_error",
    "payment_failed": "payment_failed",
    "charge_failed": "payment_failed",
    "ticket_opened": "ticket_opened",
    "ticket_created": "ticket_opened",
    "ticket_closed": "ticket_closed",
    "ticket_solved": "ticket_closed",
    "search": "search",
    "searched": "search",
    "products_searched": "search",
    "command_run": "command_run",
    "bot_turn": "bot_turn",
    "feedback": "feedback",
    "feedback_submitted": "feedback",
}

_NORMALISE = re.compile(r"[^a-z0-9]+")


def is_segment(raw: dict[str, Any]) -> bool:
    """A Segment call, not a native event? ("identify" is both: natives carry customer_id.)"""
    kind = raw.get("type")
    if kind == "identify":
        return "customer_id" not in raw
    return kind in SEGMENT_TYPES


def _segment_event_id(payload: dict[str, Any]) -> Any:
    message_id = payload.get("messageId")
    if isinstance(message_id, str) and message_id:
        return f"segment:{message_id}"
    return payload.get("event_id")


def _object(payload: dict[str, Any], name: str) -> dict[str, Any]:
    """A Segment field that must be a JSON object (absent or null: empty)."""
    value = payload.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError([FieldProblem(name, value, "must be a JSON object")])
    return dict(value)


def from_segment(payload: dict[str, Any]) -> dict[str, Any]:
    """Map a Segment spec call (as a CDP webhook destination sends it) to a native event.

    The result is validated like any native event, so a missing ``userId`` is reported as
    ``customer_id`` with the hint below.
    """
    kind = payload["type"]
    props = _object(payload, "properties")
    traits = _object(payload, "traits")
    context = _object(payload, "context") or None
    out: dict[str, Any] = {
        "event_id": _segment_event_id(payload),
        "customer_id": payload.get("userId") or payload.get("anonymousId"),
        "timestamp": payload.get("timestamp") or payload.get("originalTimestamp"),
        "context": {"source": "segment", **({"segment": context} if context else {})},
    }
    if out["event_id"] is None:
        raise EventError([FieldProblem("messageId", None, "missing; Segment calls need one")])
    if out["customer_id"] is None:
        raise EventError([FieldProblem("userId", None, "missing; need userId or anonymousId")])
    account_id = props.pop("account_id", None) or (
        (context or {}).get("groupId") if isinstance(context, dict) else None
    )
    if account_id:
        out["account_id"] = account_id
    if kind in ("page", "screen"):
        out["type"] = "page_view"
        out["path"] = props.get("path") or props.get("url") or payload.get("name")
        if props.get("title") or payload.get("name"):
            out["title"] = props.get("title") or payload.get("name")
        if payload.get("category") or props.get("category"):
            out["category"] = payload.get("category") or props.get("category")
        return out
    if kind in ("identify", "group"):
        out["type"] = "identify"
        if kind == "group":
            out["account_id"] = payload.get("groupId")
            out["context"]["call"] = "group"  # traits describe the company, not a person
            if "name" in traits:  # a group's name is the company's
                traits["account_name"] = traits.pop("name")
        out["traits"] = {
            k: v for k, v in traits.items() if isinstance(v, str | int | float | bool | None)
        }
        return out
    # track
    name = payload.get("event")
    if not isinstance(name, str) or not name:
        raise EventError([FieldProblem("event", name, "missing; a track call needs a name")])
    native = SEGMENT_TRACK_EVENTS.get(_NORMALISE.sub("_", name.lower()).strip("_"))
    if native is None:
        raise EventError(
            [
                FieldProblem(
                    "event",
                    name,
                    "track event has no native mapping; known names: "
                    + ", ".join(sorted(SEGMENT_TRACK_EVENTS)),
                )
            ]
        )
    out["type"] = native
    fields = _NATIVE_MODELS[native].model_fields
    extra = {k: v for k, v in props.items() if k not in fields or k in out}
    out.update({k: v for k, v in props.items() if k not in extra})
    if extra:
        out["context"]["properties"] = extra
    return out

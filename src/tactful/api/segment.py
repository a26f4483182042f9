"""Segment's HTTP tracking API, so analytics SDKs (Segment's, RudderStack's) send to
tactful by changing only their host: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/group``, ``/v1/screen``.

Answers as Segment's API does: ``200 {"success": true}`` for every request whose body
could be read, including one whose events are refused one by one (those are kept in the
quarantine with field, value and why, never dropped: ``tactful quarantine``); ``400`` for
a body that is not JSON or over Segment's limits (32 KB a call, 500 KB a batch, 32 KB an
event in it), with Segment's error shape (``code``, ``message``) so the SDKs report it;
``401``/``403``/``429`` from the key check in the same shape. Bodies may be gzipped
(``Content-Encoding: gzip``; the limits apply to the decompressed JSON). The write key is
a tactful API key with the ``ingest`` scope, as the HTTP Basic user name, or (what
Segment's browser SDK, analytics.js, sends: ``Content-Type: text/plain``, no header, to
spare the browser a CORS preflight) as the body's ``writeKey``.

Browsers: the ingest endpoints answer CORS (preflight and ``Access-Control-Allow-Origin``)
for the origins in ``TACTFUL_SEGMENT_ORIGINS`` (default: any; write keys are public in a
web page, and a key is still needed for every call); the management API never does.
analytics.js's short paths (``/v1/t``, ``/v1/p``, ``/v1/i``, ``/v1/g``, ``/v1/s``,
``/v1/a``, ``/v1/b``) are the same endpoints, and the two settings documents the browser
SDKs load before they send are served: Segment's ``GET /v1/projects/{writeKey}/settings``
(its ``cdnURL``) and RudderStack's ``GET /sourceConfig`` (its ``configUrl``), both
pointing the SDK back here.

Track calls become tactful's event types by :class:`SegmentRules` (``serve
--segment-rules``, docs/segment.md): the first rule whose event name and property
conditions match gives the type and where its fields come from. A name no rule knows
becomes a ``custom`` event (kept, counted in ``tactful_segment_unmapped_events_total``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
import weakref
import zlib
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tactful.actions.redact import redact
from tactful.api.auth import Keyring, presented
from tactful.events import (
    _NATIVE_MODELS,
    EventError,
    FieldProblem,
    from_segment,
    may_hold_surrogates,
    parse_event,
)
from tactful.runtime.engine import Engine
from tactful.state.store.base import QuarantineItem

if TYPE_CHECKING:
    from tactful.broker.nats import Publisher

__all__ = [
    "DEFAULT_RULES",
    "MAX_BATCH_BYTES",
    "MAX_CALL_BYTES",
    "ORIGINS_ENV",
    "RulesError",
    "SegmentRules",
    "allowed_origins",
    "load_rules",
    "map_call",
    "segment_routes",
    "use_rules",
]

MAX_CALL_BYTES = 32 * 1024  # one call, or one event in a batch (Segment's documented limit)
MAX_BATCH_BYTES = 500 * 1024  # one batch request
SOURCE = "segment"
# Which web pages' origins may send from a browser: "*" (the default), a comma-separated
# list ("https://app.example.com,https://www.example.com"), or "" for none.
ORIGINS_ENV = "TACTFUL_SEGMENT_ORIGINS"
# analytics.js sends one call to /v1/<first letter of its type>, a batch to /v1/b.
_SHORT = {"t": "track", "p": "page", "i": "identify", "g": "group", "s": "screen", "a": "alias"}
# Distinct unmapped names labelled in the counter; beyond this they count as "(other)".
MAX_UNMAPPED_LABELS = 200

_NORMALISE = re.compile(r"[^a-z0-9*]+")
_FIXED_FIELDS = frozenset({"event_id", "customer_id", "timestamp", "type", "context"})
_ROOTS = ("properties", "context", "traits", "integrations")


def normalise(name: str) -> str:
    """Event names compare without case or punctuation ("Button Clicked" = "button_clicked")."""
    return _NORMALISE.sub("_", name.lower()).strip("_")


# --- mapping rules ----------------------------------------------------------------------


class Condition(BaseModel):
    """A test on one value of the call (a missing value fails every test but
    ``exists: false``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    exists: bool | None = None
    gte: float | None = None
    lt: float | None = None

    def holds(self, found: bool, value: Any) -> bool:
        if self.exists is not None and found != self.exists:
            return False
        if not found:
            return self.exists is False
        if "equals" in self.model_fields_set and value != self.equals:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if self.gte is not None and not (number and value >= self.gte):
            return False
        return self.lt is None or (number and value < self.lt)


def _check_path(path: str) -> str:
    root = path.split(".", 1)[0]
    if root not in _ROOTS or "." not in path:
        raise ValueError(
            f"{path!r}: a path into the call must start with one of "
            f"{', '.join(r + '.' for r in _ROOTS)} (e.g. properties.button_id)"
        )
    return path


Path_ = Annotated[str, Field(min_length=3, max_length=256)]


class Rule(BaseModel):
    """``event`` (one name or several; ``*`` matches any run of characters) and ``where``
    (path -> a value it must equal, or a :class:`Condition`) -> ``type``, with ``fields``
    (native field -> the path, or paths tried in order, it is read from) and ``set``
    (native field -> a constant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str | list[str]
    where: dict[str, Condition | str | int | float | bool] = {}
    type: str
    fields: dict[str, Path_ | list[Path_]] = {}
    set: dict[str, Any] = {}

    @field_validator("event")
    @classmethod
    def _names(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names or any(not normalise(n) for n in names):
            raise ValueError("needs at least one name with a letter or digit in it")
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in _NATIVE_MODELS:
            raise ValueError(f"unknown type; expected one of: {', '.join(_NATIVE_MODELS)}")
        return value

    @field_validator("where")
    @classmethod
    def _where_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            _check_path(path)
        return value

    @model_validator(mode="after")
    def _fields_exist(self) -> Rule:
        known = set(_NATIVE_MODELS[self.type].model_fields) - _FIXED_FIELDS
        for target in [*self.fields, *self.set]:
            if target not in known:
                raise ValueError(
                    f"{target!r} is not a field of {self.type} events (fields: "
                    f"{', '.join(sorted(known))})"
                )
        for sources in self.fields.values():
            for path in [sources] if isinstance(sources, str) else sources:
                _check_path(path)
        model = _NATIVE_MODELS[self.type]
        for target, value in self.set.items():  # a constant is checked now, not per event
            info = model.model_fields[target]
            try:
                shape: Any = (
                    Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
                )
                TypeAdapter(shape).validate_python(value)
            except ValidationError as exc:
                why = "; ".join(e["msg"] for e in exc.errors(include_url=False))
                raise ValueError(f"set.{target}={value!r}: {why}") from None
        return self

    def patterns(self) -> list[str]:
        return [normalise(n) for n in ([self.event] if isinstance(self.event, str) else self.event)]


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = []
    defaults: bool = Field(True, description="the built-in rules apply after these")


class RulesError(ValueError):
    """A rules file that cannot be used: each problem as (field, value, why)."""

    def __init__(self, source: str, problems: list[FieldProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    exact: frozenset[str]
    globs: tuple[str, ...]
    where: tuple[tuple[tuple[str, ...], Condition], ...]
    index: int

    def matches(self, name: str, call: Mapping[str, Any]) -> bool:
        if name not in self.exact and not any(fnmatch.fnmatchcase(name, g) for g in self.globs):
            return False
        return all(cond.holds(*_lookup(call, path)) for path, cond in self.where)


def _lookup(call: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = call
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


class SegmentRules:
    """Ordered mapping rules; the first that matches a track call decides its type."""

    def __init__(self, rules: list[Rule], source: str = "built-in") -> None:
        self.rules = rules
        self.source = source
        compiled = []
        for i, rule in enumerate(rules):
            names = rule.patterns()
            where = tuple(
                (
                    tuple(path.split(".")),
                    cond if isinstance(cond, Condition) else Condition(equals=cond),
                )
                for path, cond in rule.where.items()
            )
            compiled.append(
                _Compiled(
                    rule,
                    frozenset(n for n in names if "*" not in n),
                    tuple(n for n in names if "*" in n),
                    where,
                    i,
                )
            )
        self._compiled = compiled

    def match(self, name: str, call: Mapping[str, Any]) -> Rule | None:
        key = normalise(name)
        for c in self._compiled:
            if c.matches(key, call):
                return c.rule
        return None


# The built-in rules (docs/segment.md lists them): Segment's spec names and the common
# ones, with the properties those specs and SDK plugins use.
DEFAULT_RULES_YAML = """
- event: [Button Clicked, Element Clicked, Link Clicked, CTA Clicked, Clicked, Click]
  type: click
  fields:
    element: [properties.element, properties.button_id, properties.element_id, properties.id,
              properties.name, properties.label, properties.text]
    page: [properties.page, properties.path, context.page.path]
- event: "* Clicked"
  type: click
  fields:
    element: [properties.element, properties.button_id, properties.element_id, properties.id,
              properties.name, properties.label, properties.text]
    page: [properties.page, properties.path, context.page.path]
- event: [Payment Failed, Charge Failed, Invoice Payment Failed, Subscription Payment Failed,
          Order Payment Failed]
  type: payment_failed
  fields:
    amount: [properties.amount, properties.value, properties.total, properties.revenue]
    currency: properties.currency
    reason: [properties.reason, properties.failure_reason, properties.error]
- event: [API Error, API Request Failed, Request Failed, Error Occurred, Error]
  where: {properties.status: {gte: 100, lt: 600}}
  type: api_error
  fields:
    endpoint: [properties.endpoint, properties.path, properties.url, context.page.path]
    status: properties.status
    code: [properties.code, properties.error_code]
- event: [API Error, API Request Failed, Request Failed]
  where: {properties.status_code: {gte: 100, lt: 600}}
  type: api_error
  fields:
    endpoint: [properties.endpoint, properties.path, properties.url, context.page.path]
    status: properties.status_code
    code: [properties.code, properties.error_code]
- event: [Message Sent, Message Received, Chat Message, Chat Message Sent, Message,
          Live Chat Message Sent]
  type: message
  fields:
    text: [properties.text, properties.body, properties.message, properties.content]
    conversation_id: [properties.conversation_id, properties.conversationId]
- event: [Ticket Created, Ticket Opened, Support Ticket Created, Ticket Submitted]
  type: ticket_opened
  fields:
    ticket_id: [properties.ticket_id, properties.ticketId, properties.id]
    subject: [properties.subject, properties.title]
- event: [Ticket Closed, Ticket Solved, Ticket Resolved]
  type: ticket_closed
  fields:
    ticket_id: [properties.ticket_id, properties.ticketId, properties.id]
- event: [Products Searched, Searched, Search, Search Performed, Docs Searched,
          Help Center Searched]
  type: search
  fields:
    query: [properties.query, properties.search, properties.term, properties.q]
- event: [Command Run, Command Executed, CLI Command Run]
  type: command_run
  fields:
    command: [properties.command, properties.name]
- event: [Bot Turn, Bot Step Completed]
  type: bot_turn
  fields:
    step_id: [properties.step_id, properties.step]
- event: [Feedback, Feedback Submitted, Rating Submitted, Review Submitted]
  where: {properties.rating: {gte: 1, lt: 6}}
  type: feedback
  fields:
    rating: properties.rating
    comment: [properties.comment, properties.text, properties.feedback]
- event: [Signed Up, Account Created, User Signed Up]
  type: identify
  set: {traits: {lifecycle: new}}
- event: [Trial Started]
  type: identify
  set: {traits: {lifecycle: trial}}
- event: [Order Completed, Checkout Completed, Subscription Started, Subscription Upgraded,
          Subscription Cancelled, Trial Ended, Product Viewed, Product Added, Cart Viewed,
          Checkout Started, Logged In, Signed In, Logged Out, Signed Out, Invite Sent,
          Application Opened, Application Installed, Application Backgrounded]
  type: custom
"""


def _problems(exc: ValidationError, prefix: str, raw: Any) -> list[FieldProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "union["))]
        # pydantic names the member of a union it tried ("Condition", "str"): not a field
        loc = [p for p in loc if p not in ("Condition", "str", "int", "float", "bool", "list")]
        value: Any = raw
        for part in err["loc"]:
            inside = isinstance(value, dict) and part in value
            at = isinstance(value, list) and isinstance(part, int) and part < len(value)
            if not (inside or at):
                break
            value = value[part]
        why = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            why = "unknown key here"
        problems.append(FieldProblem(".".join([prefix, *loc]).strip("."), value, why))
    return problems


def parse_rules(raw: Any, source: str) -> SegmentRules:
    """Rules from a parsed YAML document; raises :class:`RulesError`."""
    if not isinstance(raw, dict):
        raise RulesError(
            source,
            [FieldProblem("(file)", type(raw).__name__, "must be a mapping with a rules: list")],
        )
    try:
        parsed = RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(source, _problems(exc, "", raw)) from None
    rules = list(parsed.rules)
    if parsed.defaults:
        rules += DEFAULT_RULES.rules
    return SegmentRules(rules, source)


def load_rules(path: Path | str) -> SegmentRules:
    """The rules in a YAML file (``serve --segment-rules``); raises :class:`RulesError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(
            str(path), [FieldProblem("(file)", str(path), exc.strerror or str(exc))]
        ) from None
    except yaml.YAMLError as exc:
        raise RulesError(
            str(path), [FieldProblem("(file)", str(path), f"not YAML: {exc}")]
        ) from None
    return parse_rules(raw, str(path))


DEFAULT_RULES = SegmentRules(
    [Rule.model_validate(r) for r in yaml.safe_load(DEFAULT_RULES_YAML)], "built-in"
)


# --- one call -> one native event -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mapped:
    """A call mapped onto a native event (still to be validated), the rule's sources for
    its fields (so errors can name what the sender sent), and whether a rule knew it."""

    event: dict[str, Any]
    sources: dict[str, str]
    unmapped: str | None = None  # the track name no rule knew


def _message_id(call: Mapping[str, Any]) -> str:
    """A call without a messageId gets one from its content: a retried request is then
    recognised as the same call."""
    digest = hashlib.sha256(
        json.dumps(call, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8", "replace")
    )
    return "h" + digest.hexdigest()[:32]


def _text_only(annotation: Any) -> bool:
    """A field's type that holds text and nothing else (``None`` aside)."""
    if get_origin(annotation) is Annotated:
        return _text_only(get_args(annotation)[0])
    if annotation is str:
        return True
    members = [a for a in get_args(annotation) if a is not type(None)]
    return (
        bool(members)
        and get_origin(annotation) in (Union, UnionType)
        and all(_text_only(a) for a in members)
    )


# Each type's fields that hold text and not numbers.
_TEXT_FIELDS: dict[str, frozenset[str]] = {
    kind: frozenset(n for n, f in model.model_fields.items() if _text_only(f.annotation))
    for kind, model in _NATIVE_MODELS.items()
}


def map_call(call: dict[str, Any], rules: SegmentRules, received: str) -> Mapped:
    """A Segment call (``type`` already set) as a native event dict; ``received``: the
    ISO time it arrived, its timestamp when it has none (as Segment does). Raises
    :class:`EventError` for a call no native event can be made of."""
    call = dict(call)
    for name in ("userId", "anonymousId", "groupId"):  # ids sent as numbers are ids
        value = call.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            call[name] = str(value)
    if not call.get("messageId"):
        call["messageId"] = _message_id(call)
    if not (call.get("timestamp") or call.get("originalTimestamp")):
        call["timestamp"] = received
    kind = call.get("type")
    if kind == "track":
        return _map_track(call, rules)
    if kind in ("page", "screen"):
        props = call.get("properties")
        context = call.get("context")
        page = context.get("page") if isinstance(context, dict) else None
        if isinstance(props, dict | None) and isinstance(page, dict):  # browsers put it here
            props = dict(props or {})
            for key in ("path", "title", "url"):
                if key not in props and isinstance(page.get(key), str):
                    props[key] = page[key]
            call["properties"] = props
    if kind == "identify" and not call.get("traits"):
        context = call.get("context")
        if isinstance(context, dict) and isinstance(context.get("traits"), dict):
            call["traits"] = context["traits"]  # where RudderStack's SDKs put them
    if kind in ("page", "screen", "identify", "group"):
        return Mapped(from_segment(call), {})
    why = (
        "alias calls are not supported: tactful knows a customer by userId (or anonymousId)"
        if kind == "alias"
        else "unknown Segment call type; expected track, identify, page, screen or group"
    )
    raise EventError([FieldProblem("type", kind, why)])


def _map_track(call: dict[str, Any], rules: SegmentRules) -> Mapped:
    name = call.get("event")
    if not isinstance(name, str) or not name.strip():
        raise EventError([FieldProblem("event", name, "missing; a track call needs a name")])
    props = call.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise EventError([FieldProblem("properties", props, "must be a JSON object")])
    # The common part (ids, time, account, context) as the adapter makes it for any call.
    out = from_segment({**call, "type": "identify", "traits": None})
    out.pop("traits", None)
    out["context"]["event"] = name
    rest = {k: v for k, v in props.items() if k != "account_id"}
    rule = rules.match(name, call)
    if rule is None:
        out.update(type="custom", name=name[:256], properties=rest)
        return Mapped(out, {}, name)
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    used: set[str] = set()
    for target, paths in rule.fields.items():
        for path in [paths] if isinstance(paths, str) else paths:
            found, value = _lookup(call, tuple(path.split(".")))
            if found and value is not None:
                fields[target] = value
                sources[target] = path
                if path.startswith("properties."):
                    used.add(path.split(".")[1])
                break
    for target, value in rule.set.items():
        fields[target] = value
        sources[target] = f"set by the rule for {name!r}"
    model_fields = _NATIVE_MODELS[rule.type].model_fields
    texts = _TEXT_FIELDS[rule.type]
    extra: dict[str, Any] = {}
    for key, value in rest.items():
        if key in used:
            continue
        if key in model_fields and key not in fields and key not in _FIXED_FIELDS:
            fields[key] = value  # a property named like the field is that field
            sources[key] = f"properties.{key}"
        else:
            extra[key] = value
    if rule.type == "custom":  # the name and the properties are its content
        fields.setdefault("name", name[:256])
        fields.setdefault("properties", extra)
    elif extra:
        out["context"]["properties"] = extra
    for key in texts & fields.keys():  # ids sent as numbers ({"ticket_id": 7}) are ids
        value = fields[key]
        if isinstance(value, int) and not isinstance(value, bool):
            fields[key] = str(value)
    out.update(fields)
    out["type"] = rule.type
    return Mapped(out, sources)


# --- the routes -------------------------------------------------------------------------


class SegmentOk(BaseModel):
    success: Literal[True] = True


class SegmentRefusal(BaseModel):
    """Segment's error shape (its SDKs read ``code`` and ``message``), with tactful's
    field, value and why."""

    success: Literal[False] = False
    code: str
    message: str
    errors: list[dict[str, Any]] = []


def _refusal(status: int, code: str, problem: FieldProblem, **headers: str) -> JSONResponse:
    body = SegmentRefusal(code=code, message=str(problem), errors=[problem.as_dict()])
    return JSONResponse(body.model_dump(), status, headers=headers or None)


def allowed_origins(value: str | None) -> Collection[str] | Literal["*"]:
    """``TACTFUL_SEGMENT_ORIGINS`` read: ``"*"`` (also when unset) or the origins listed."""
    if value is None or value.strip() == "*":
        return "*"
    return frozenset(o.strip().rstrip("/").lower() for o in value.split(",") if o.strip())


def _cors(request: Request, response: Response) -> Response:
    """The CORS headers for a page on an allowed origin (no credentials: these endpoints
    read no cookie, the write key is the credential)."""
    origin = request.headers.get("origin")
    allowed: Collection[str] | Literal["*"] = request.scope.get("tactful.segment_origins", "*")
    if origin and (allowed == "*" or origin.lower() in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers.append("Vary", "Origin")
        # A browser shows its own sign-in prompt for WWW-Authenticate: Basic; a page's
        # script only needs the status and the body.
        if "www-authenticate" in response.headers:
            del response.headers["www-authenticate"]
    return response


class _SegmentRoute(APIRoute):
    """Key refusals (401, 403, 429 from the ``ingest`` scope check) in Segment's shape,
    which the SDKs log with the reason instead of a KeyError; CORS headers for pages on
    the allowed origins."""

    origins: Collection[str] | Literal["*"] = "*"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            request.scope["tactful.segment_origins"] = self.origins
            origin = request.headers.get("origin")
            if origin and self.origins != "*" and origin.lower() not in self.origins:
                # A page elsewhere: refused before its body is read (a browser's simple
                # text/plain POST would otherwise be taken, its answer merely hidden).
                problem = FieldProblem("Origin", origin, f"not one of {ORIGINS_ENV}")
                return _refusal(403, "forbidden", problem)
            try:
                response = await handler(request)
            except HTTPException as exc:
                code = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}.get(
                    exc.status_code, "invalid_request"
                )
                problem = FieldProblem("writeKey", None, str(exc.detail))
                response = _refusal(exc.status_code, code, problem, **(exc.headers or {}))
            return _cors(request, response)

        return handle


_UNMAPPED: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_UNMAPPED_LOCK = threading.Lock()


def _unmapped_counter(registry: CollectorRegistry) -> Counter:
    with _UNMAPPED_LOCK:
        counter = _UNMAPPED.get(registry)
        if counter is None:
            counter = Counter(
                "tactful_segment_unmapped_events",
                "Segment track calls no mapping rule knew, kept as custom events, by name "
                f"(the first {MAX_UNMAPPED_LABELS} names; later ones as '(other)').",
                ["event"],
                registry=registry,
            )
            _UNMAPPED[registry] = counter
        return counter


def use_rules(app: FastAPI, rules: SegmentRules) -> None:
    """Map track calls with ``rules`` (``serve --segment-rules``) instead of the defaults."""
    app.state.segment_rules = rules


_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Segment spec call (https://segment.com/docs/connections/spec/)",
    "properties": {
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "messageId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "event": {"type": "string", "description": "track: the event's name"},
        "name": {"type": "string", "description": "page, screen: the page's name"},
        "groupId": {"type": "string", "description": "group: the account"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
    },
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {
            "type": "array",
            "items": {
                **_CALL_SCHEMA,
                "properties": {
                    **_CALL_SCHEMA["properties"],
                    "type": {
                        "type": "string",
                        "enum": ["track", "identify", "page", "screen", "group"],
                    },
                },
                "required": ["type"],
            },
        },
        "context": {"type": "object", "description": "merged into every call's context"},
        "sentAt": {"type": "string", "format": "date-time"},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": SegmentRefusal, "description": "serve --broker: the broker is full; retry"},
    400: {"model": SegmentRefusal, "description": "Not JSON, not gzip, or over the limits"},
    401: {"model": SegmentRefusal, "description": "No write key, or not a valid one"},
    403: {"model": SegmentRefusal, "description": "The key lacks the ingest scope"},
    429: {"model": SegmentRefusal, "description": "Over the key's requests a second"},
}


def _ingest_key(request: Request) -> Any:
    """The ``ingest`` key from the request's header; without one (a browser's analytics.js
    puts it in the body), the handler checks the body's ``writeKey`` once it has read it."""
    keyring: Keyring = request.app.state.keyring
    raw = presented(request)
    request.state.key_in_body = raw is None and not keyring.open
    if request.state.key_in_body:
        request.state.api_key = None
        return None
    key = keyring.check(raw, "ingest", request.app.state.clock())
    request.state.api_key = key  # the handler reads its body and batch limits
    return key


def _base_url(request: Request) -> str:
    """This server as the browser reached it (its scheme and host, and any root path)."""
    return str(request.base_url).rstrip("/")


def segment_routes(
    engine: Engine,
    publisher: Publisher | None = None,
    rules: SegmentRules | None = None,
    origins: Collection[str] | Literal["*"] | None = None,
) -> APIRouter:
    """The Segment endpoints over ``engine``. Track calls are mapped with ``rules``, or
    with the app's ``segment_rules`` (:func:`use_rules`), or the built-in rules.
    ``publisher`` (serve --broker): valid events go to JetStream for the workers, as
    ``/v1/events`` sends them; a broker that cannot take them now is a ``503`` with
    ``Retry-After``, which the SDKs retry. ``origins``: the web pages that may send from
    a browser (CORS), by default ``TACTFUL_SEGMENT_ORIGINS``'s, else any."""
    if origins is None:
        origins = allowed_origins(os.environ.get(ORIGINS_ENV))
    route_class = type("_SegmentRoutes", (_SegmentRoute,), {"origins": origins})
    router = APIRouter(route_class=route_class, tags=["segment"])
    store = engine.store
    unmapped = _unmapped_counter(engine.metrics.registry)
    seen_names: set[str] = set()

    def count_unmapped(name: str) -> None:
        if name not in seen_names and len(seen_names) >= MAX_UNMAPPED_LABELS:
            name = "(other)"
        seen_names.add(name)
        unmapped.labels(name).inc()

    def keep_call(raw: str, problems: list[FieldProblem], call: Any = None) -> None:
        """Into the quarantine, with why (redacted like every quarantined payload)."""
        peek = call if isinstance(call, dict) else {}
        event_id, customer = peek.get("messageId"), peek.get("userId") or peek.get("anonymousId")
        store.quarantine(
            [
                QuarantineItem(
                    engine.clock(),
                    SOURCE,
                    [p.as_dict() for p in problems],
                    redact(raw),
                    f"segment:{event_id}" if isinstance(event_id, str) and event_id else None,
                    customer if isinstance(customer, str) else None,
                )
            ]
        )

    keep = keep_call

    async def read(request: Request, limit: int, trusted: bool) -> bytes | JSONResponse:
        """The body, decompressed, at most ``limit`` bytes; or the 400 (what was read of
        it kept in the quarantine when the request's key is known: ``trusted``)."""
        key = getattr(request.state, "api_key", None)
        if key is not None:
            limit = min(limit, key.max_body)

        def keep(raw: str, problems: list[FieldProblem]) -> None:
            if trusted:
                keep_call(raw, problems)

        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            problem = FieldProblem("Content-Encoding", encoding, "only gzip is understood")
            keep(f"[body in {encoding!r} not read]", [problem])
            return _refusal(400, "invalid_request", problem)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:  # compressed or not, the JSON is bigger than this
                break
        body = b"".join(chunks)
        if encoding == "gzip" and size <= limit:
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                plain = inflate.decompress(body, limit + 1)
            except zlib.error as exc:
                problem = FieldProblem("body", f"{size} bytes", f"not valid gzip: {exc}")
                keep(f"[{size} bytes of bad gzip not kept]", [problem])
                return _refusal(400, "invalid_request", problem)
            if not inflate.eof and len(plain) <= limit:
                problem = FieldProblem("body", f"{size} bytes", "gzip stream ends early")
                keep(f"[{size} bytes of truncated gzip not kept]", [problem])
                return _refusal(400, "invalid_request", problem)
            body, size = plain, len(plain)
        if size > limit:
            problem = too_big(limit)
            keep(body[:65_536].decode("utf-8", "replace"), [problem])
            return _refusal(400, "invalid_request", problem)
        return body

    def too_big(limit: int) -> FieldProblem:
        what = "batch request" if limit >= MAX_BATCH_BYTES else "call"
        return FieldProblem(
            "body", f"over {limit} bytes", f"a {what} may be at most {limit // 1024} KB"
        )

    def parse(body: bytes, trusted: bool) -> Any:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = FieldProblem("body", None, f"not valid JSON: {exc}")
            if trusted:
                keep(body.decode("utf-8", "replace"), [problem])
            return _refusal(400, "invalid_request", problem)

    def key_in_body(request: Request, data: Any, body: bytes, limit: int) -> JSONResponse | None:
        """The body's ``writeKey`` checked as the header's would be (raises 401/403/429);
        then the key's own body limit."""
        raw = data.get("writeKey") if isinstance(data, dict) else None
        keyring: Keyring = request.app.state.keyring
        key = keyring.check(raw if isinstance(raw, str) and raw else None, "ingest", engine.clock())
        request.state.api_key = key
        if key is not None and len(body) > min(limit, key.max_body):
            problem = too_big(min(limit, key.max_body))
            keep(body[:65_536].decode("utf-8", "replace"), [problem])
            return _refusal(400, "invalid_request", problem)
        return None

    def ingest(calls: list[Any], check_surrogates: bool, using: SegmentRules) -> None:
        """Map, validate and ingest; what cannot be an event is quarantined as sent."""
        now = engine.clock()
        received = now.isoformat()
        valid: list[dict[str, Any]] = []
        names: list[str | None] = []
        for call in calls:
            mapped: Mapped | None = None
            try:
                if not isinstance(call, dict):
                    raise EventError([FieldProblem("call", call, "must be a JSON object")])
                mapped = map_call(call, using, received)
                parse_event(mapped.event, now=now, check_surrogates=check_surrogates)
            except EventError as exc:
                renamed = mapped.sources if mapped is not None else {}
                problems = [_as_sent(p, renamed) for p in exc.problems]
                keep(json.dumps(call, ensure_ascii=False, default=str), problems, call)
                continue
            valid.append(mapped.event)
            names.append(mapped.unmapped)
        if not valid:
            return
        sink = publisher.ingest if publisher is not None else engine.ingest
        results = sink(valid, SOURCE, check_surrogates=check_surrogates)
        for result, name in zip(results, names, strict=True):
            if name is not None and result.status == "accepted":  # a retry is not counted
                count_unmapped(name)

    async def handle(request: Request, kind: str | None) -> Response:
        app_rules = getattr(request.app.state, "segment_rules", None)
        using = rules or (app_rules if isinstance(app_rules, SegmentRules) else DEFAULT_RULES)
        limit = MAX_BATCH_BYTES if kind is None else MAX_CALL_BYTES
        trusted = not getattr(request.state, "key_in_body", False)
        body = await read(request, limit, trusted)
        if isinstance(body, JSONResponse):
            return body
        data = parse(body, trusted)
        if isinstance(data, JSONResponse):
            return data
        if not trusted:
            unread = key_in_body(request, data, body, limit)
            if unread is not None:
                return unread
        if not isinstance(data, dict):
            problem = FieldProblem("body", type(data).__name__, "must be a JSON object")
            keep(body.decode("utf-8", "replace"), [problem])
            return _refusal(400, "invalid_request", problem)
        data.pop("writeKey", None)  # the credential is not part of the call
        if kind is not None:
            calls: list[Any] = [{**data, "type": kind}]
        else:
            batch = data.get("batch")
            if not isinstance(batch, list):
                problem = FieldProblem("batch", batch, "must be a list of calls")
                keep(body.decode("utf-8", "replace"), [problem])
                return _refusal(400, "invalid_request", problem)
            refused = _too_big(batch, request)
            if refused is not None:
                keep(body.decode("utf-8", "replace"), [refused])
                return _refusal(400, "invalid_request", refused)
            shared = data.get("context")
            calls = [_with_context(_without_key(c), shared) for c in batch]
        if not calls:
            return JSONResponse(SegmentOk().model_dump())
        if publisher is None:
            await run_in_threadpool(ingest, calls, may_hold_surrogates(body), using)
            return JSONResponse(SegmentOk().model_dump())
        from tactful.broker.nats import BrokerBusy

        try:
            await run_in_threadpool(ingest, calls, may_hold_surrogates(body), using)
        except BrokerBusy as exc:
            problem = FieldProblem("broker", publisher.config.stream, f"{exc}; retry")
            return _refusal(503, "unavailable", problem, **{"Retry-After": str(exc.retry_after)})
        return JSONResponse(SegmentOk().model_dump())

    def _too_big(batch: list[Any], request: Request) -> FieldProblem | None:
        key = getattr(request.state, "api_key", None)
        if key is not None and len(batch) > key.max_batch:
            return FieldProblem("batch", len(batch), f"at most {key.max_batch} calls per request")
        for i, call in enumerate(batch):
            size = len(json.dumps(call, separators=(",", ":"), ensure_ascii=False).encode())
            if size > MAX_CALL_BYTES:
                return FieldProblem(
                    f"batch[{i}]",
                    f"{size} bytes",
                    f"a call may be at most {MAX_CALL_BYTES // 1024} KB",
                )
        return None

    async def preflight(request: Request) -> Response:
        """A browser asking whether a page on its origin may post here (CORS)."""
        origin = request.headers.get("origin", "")
        if not origin or (origins != "*" and origin.lower() not in origins):
            return Response(status_code=403)
        asked = request.headers.get("access-control-request-headers", "")
        headers = {
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Max-Age": "600",
        }
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        return Response(status_code=204, headers=headers)

    def register(
        path: str, kind: str | None, summary: str, schema: dict[str, Any], hidden: bool = False
    ) -> None:
        async def endpoint(request: Request) -> Response:
            return await handle(request, kind)

        endpoint.__name__ = f"segment_{kind or 'batch'}"
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            dependencies=[Depends(_ingest_key)],
            response_model=SegmentOk,
            responses=_RESPONSES,
            summary=summary,
            include_in_schema=not hidden,
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                }
            },
        )
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)

    register(
        "/v1/batch", None, "Segment: a batch of calls (up to 500 KB, 32 KB each)", _BATCH_SCHEMA
    )
    register("/v1/b", None, "analytics.js: /v1/batch", _BATCH_SCHEMA, hidden=True)
    for kind in ("track", "identify", "page", "group", "screen"):
        register(f"/v1/{kind}", kind, f"Segment: one {kind} call (up to 32 KB)", _CALL_SCHEMA)
    for short, kind in _SHORT.items():
        register(f"/v1/{short}", kind, f"analytics.js: one {kind} call", _CALL_SCHEMA, hidden=True)

    @router.get("/v1/projects/{write_key}/settings", include_in_schema=False)
    async def segment_settings(write_key: str, request: Request) -> Response:
        """What analytics.js loads before it sends (``cdnURL``): the Segment.io
        integration pointed back here, nothing else (no destinations, plugins or
        middleware to fetch from elsewhere, no metrics). It holds no secret, so the key is
        checked on each call sent, not here."""
        base = _base_url(request)
        scheme, _, host = base.partition("://")
        segment_io = {"apiKey": write_key, "apiHost": f"{host}/v1", "protocol": scheme}
        return JSONResponse(
            {
                "integrations": {"Segment.io": segment_io},
                "remotePlugins": [],
                "enabledMiddleware": {},
                "middlewareSettings": {},
                "metrics": {"sampleRate": 0},
                "legacyVideoPluginsEnabled": False,
            }
        )

    async def source_config(request: Request) -> Response:
        """What RudderStack's JavaScript SDK loads before it sends (``configUrl``): a
        source with no device-mode destinations and no error or metrics reporting."""
        return JSONResponse(
            {
                "isHosted": False,
                "source": {
                    "id": "tactful",
                    "name": "tactful",
                    "workspaceId": "tactful",
                    "enabled": True,
                    "writeKey": request.query_params.get("writeKey", ""),
                    "config": {
                        "statsCollection": {
                            "errors": {"enabled": False},
                            "metrics": {"enabled": False},
                        }
                    },
                    "destinations": [],
                },
            }
        )

    for path in ("/sourceConfig", "/sourceConfig/"):
        router.add_api_route(path, source_config, methods=["GET"], include_in_schema=False)
    for path in ("/v1/projects/{write_key}/settings", "/sourceConfig", "/sourceConfig/"):
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    return router


def _as_sent(problem: FieldProblem, sources: Mapping[str, str]) -> FieldProblem:
    """A problem with a native field a rule filled, named by where the value came from."""
    source = sources.get(problem.field.split(".", 1)[0])
    if source is None:
        return problem
    return FieldProblem(f"{source} (as {problem.field})", problem.value, problem.why)


def _without_key(call: Any) -> Any:
    """A call without the ``writeKey`` analytics.js puts in each (the credential)."""
    if isinstance(call, dict) and "writeKey" in call:
        return {k: v for k, v in call.items() if k != "writeKey"}
    return call


def _with_context(call: Any, shared: Any) -> Any:
    """A batch's own ``context`` applies to each of its calls (the call's own wins)."""
    if not isinstance(call, dict) or not isinstance(shared, dict) or not shared:
        return call
    own = call.get("context")
    if own is not None and not isinstance(own, dict):
        return call  # reported by the adapter: context must be an object
    return {**call, "context": {**shared, **(own or {})}}

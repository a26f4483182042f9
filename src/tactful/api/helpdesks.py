"""Helpdesk webhooks in: Zendesk, Intercom and Freshdesk tell tactful about tickets and
the messages in them (``POST /v1/helpdesks/zendesk``, ``/intercom``, ``/freshdesk``).

The vendor's signature over the raw body is the credential (no API key), checked before
the body is parsed or kept; a request that fails it is ``401`` with why, one log line,
and nothing stored. Secrets come from the environment of ``tactful serve`` (each may have
an ``_OLD`` twin, accepted too, during a rotation):

- Zendesk (``TACTFUL_ZENDESK_WEBHOOK_SECRET``, the webhook's signing secret):
  ``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256 of
  ``X-Zendesk-Webhook-Signature-Timestamp`` + body; the timestamp must be within
  5 minutes of now.
- Intercom (``TACTFUL_INTERCOM_CLIENT_SECRET``, the app's client secret):
  ``X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>``.
- Freshdesk (``TACTFUL_FRESHDESK_WEBHOOK_SECRET``): Freshdesk does not sign webhooks, so
  the automation rule's webhook sends the shared secret, as the password of HTTP Basic
  authentication (any user name) or in an ``X-Tactful-Webhook-Secret`` header.

A vendor without a secret configured answers ``404`` (saying which variable to set).

What becomes which event (docs/helpdesks.md has the details and the payload shapes):
ticket created -> ``ticket_opened`` (Intercom's and Freshdesk's first message also a
``message``); ticket solved or closed -> ``ticket_closed`` (marked as spam: resolution
``spam``); a public comment or reply -> ``message`` with role ``customer``, ``agent`` (or
``bot``), its text without HTML. Ticket ids are ``<vendor>:<id>``. The customer: an
external id the helpdesk holds for them (your own user id) if there is one, else the
requester's email (Freshdesk), else ``<vendor>:<user id>`` (Zendesk's payloads carry no
email). Timestamps are the payload's (Freshdesk's carry none: the time received).

A signed payload is never dropped: what cannot become events (an unknown event type, a
missing requester, a bad field) is kept in the quarantine with why (``tactful
quarantine``). Recognised notifications that carry nothing tactful models (Intercom's
ping, an internal note, a status change to pending, a tag change) are answered
``ignored`` with the reason. With ``serve --broker`` events are published to JetStream
like ``/v1/events``'s (a full stream: ``503`` with ``Retry-After``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from tactful.actions.redact import redact
from tactful.actions.signing import SignatureError
from tactful.api.params import ERRORS_CONTENT
from tactful.events import MAX_TEXT_CHARS, EventError, FieldProblem, parse_event
from tactful.runtime.engine import Engine
from tactful.state.store.base import QuarantineItem

if TYPE_CHECKING:
    from tactful.broker.nats import Publisher

__all__ = [
    "SECRET_ENV",
    "VENDORS",
    "HelpdeskSecrets",
    "Mapped",
    "check_freshdesk",
    "check_intercom",
    "check_zendesk",
    "helpdesk_routes",
    "map_freshdesk",
    "map_intercom",
    "map_zendesk",
    "sign_intercom",
    "sign_zendesk",
]

log = logging.getLogger(__name__)

SECRET_ENV = {
    "zendesk": "TACTFUL_ZENDESK_WEBHOOK_SECRET",
    "intercom": "TACTFUL_INTERCOM_CLIENT_SECRET",
    "freshdesk": "TACTFUL_FRESHDESK_WEBHOOK_SECRET",
}
VENDORS = tuple(SECRET_ENV)
MAX_BODY_BYTES = 1024 * 1024
TOLERANCE_S = 300  # Zendesk's signed timestamp may be this far from now
ZENDESK_SIGNATURE = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INTERCOM_SIGNATURE = "X-Hub-Signature"
FRESHDESK_SECRET = "X-Tactful-Webhook-Secret"


# --- signatures ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HelpdeskSecrets:
    """Each vendor's secrets (current first, then the one being rotated out)."""

    by_vendor: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HelpdeskSecrets:
        env = os.environ if env is None else env
        found: dict[str, tuple[str, ...]] = {}
        for vendor, name in SECRET_ENV.items():
            values = tuple(v for v in (env.get(name), env.get(f"{name}_OLD")) if v)
            if values:
                found[vendor] = values
        return cls(found)


def _b64_hmac_sha256(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_zendesk(secret: str, body: bytes, timestamp: str) -> str:
    """The ``X-Zendesk-Webhook-Signature`` Zendesk sends with ``timestamp``."""
    return _b64_hmac_sha256(secret, timestamp.encode("utf-8") + body)


def sign_intercom(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` Intercom sends."""
    return "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    return (headers.get(name) or headers.get(name.lower()) or "").strip()


def _any_matches(expected: Sequence[str], given: str) -> bool:
    """Compared with every secret's value (no early exit: timing tells nothing)."""
    matched = False
    for value in expected:
        matched |= hmac.compare_digest(value.encode(), given.encode())
    return matched


def check_zendesk(
    secrets: Sequence[str], body: bytes, headers: Mapping[str, str], now: float | None = None
) -> None:
    signature, stamp = _header(headers, ZENDESK_SIGNATURE), _header(headers, ZENDESK_TIMESTAMP)
    if not signature or not stamp:
        raise SignatureError(
            f"no {ZENDESK_SIGNATURE} and {ZENDESK_TIMESTAMP} headers: only signed Zendesk "
            "webhooks are accepted"
        )
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        when = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        raise SignatureError(f"{ZENDESK_TIMESTAMP} {stamp[:40]!r} is not a timestamp") from None
    skew = abs((time.time() if now is None else now) - when)
    if skew > TOLERANCE_S:
        raise SignatureError(
            f"{ZENDESK_TIMESTAMP} is {skew:.0f}s from now (tolerance {TOLERANCE_S}s): "
            "a replay, or a clock far off"
        )
    if not _any_matches([sign_zendesk(s, body, stamp) for s in secrets], signature):
        raise SignatureError(f"{ZENDESK_SIGNATURE}: no signature matches this body and secret")


def check_intercom(secrets: Sequence[str], body: bytes, headers: Mapping[str, str]) -> None:
    signature = _header(headers, INTERCOM_SIGNATURE)
    if not signature:
        raise SignatureError(f"no {INTERCOM_SIGNATURE} header: only signed webhooks are accepted")
    if not signature.startswith("sha1="):
        raise SignatureError(f"{INTERCOM_SIGNATURE} must look like sha1=<hex>")
    if not _any_matches([sign_intercom(s, body) for s in secrets], signature.lower()):
        raise SignatureError(f"{INTERCOM_SIGNATURE}: no signature matches this body and secret")


def check_freshdesk(secrets: Sequence[str], body: bytes, headers: Mapping[str, str]) -> None:
    given = _header(headers, FRESHDESK_SECRET)
    auth = _header(headers, "Authorization")
    if not given and auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise SignatureError("Authorization: not valid HTTP Basic credentials") from None
        given = decoded.partition(":")[2]
    if not given:
        raise SignatureError(
            f"no {FRESHDESK_SECRET} header or HTTP Basic password: set the shared secret in "
            "the automation rule's webhook"
        )
    if not _any_matches(secrets, given):
        raise SignatureError("the shared secret does not match")


# --- mapping ------------------------------------------------------------------------------


@dataclass
class Mapped:
    """What one webhook becomes: native events, or why nothing (``ignored``)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = None
    customer_id: str | None = None


_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|/p|/div|/li)\s*/?\s*>", re.IGNORECASE)
_BLANKS = re.compile(r"[ \t\r\f\v]+")


def _plain(text: Any) -> str:
    """A comment body as text: tags out, entities decoded, spaces folded, at most
    MAX_TEXT_CHARS (the rest of a very long email is cut)."""
    if not isinstance(text, str):
        return ""
    out = html.unescape(_TAG.sub("", _BREAK.sub("\n", text)))
    lines = [_BLANKS.sub(" ", line).strip() for line in out.splitlines()]
    return "\n".join(line for line in lines if line)[:MAX_TEXT_CHARS]


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise EventError([FieldProblem(where, value, "missing: needed to make events")])
    return str(value).strip()


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _unix(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError([FieldProblem(where, value, "must be a Unix time in seconds")])
    return datetime.fromtimestamp(value, UTC).isoformat()


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


_CHANNELS = {
    "email": "email",
    "mail": "email",
    "chat": "chat",
    "messaging": "chat",
    "native_messaging": "chat",
    "web": "chat",
    "conversation": "chat",
    "sms": "sms",
    "twitter": "social",
    "facebook": "social",
    "instagram": "social",
    "whatsapp": "social",
}


def _channel(value: Any) -> str:
    return _CHANNELS.get(str(value or "").lower(), "other")


ZENDESK_READ = (
    "ticket.created",
    "ticket.status_changed",
    "ticket.comment_added",
    "ticket.marked_as_spam",
)


def map_zendesk(payload: Any) -> Mapped:
    """A Zendesk event webhook (``zen:event-type:ticket.*``, schema version 2022-11-06)."""
    if not isinstance(payload, Mapping):
        raise EventError([FieldProblem("body", type(payload).__name__, "must be an object")])
    kind = str(payload.get("type") or "")
    if not kind.startswith("zen:event-type:ticket."):
        raise EventError(
            [FieldProblem("type", payload.get("type"), "not a Zendesk ticket event type")]
        )
    short = kind.removeprefix("zen:event-type:")
    if short not in ZENDESK_READ:
        return Mapped(ignored=f"{short}: not read (tactful reads {', '.join(ZENDESK_READ)})")
    detail = payload.get("detail")
    event = _obj(payload.get("event"))
    ticket = _id(_get(detail, "id"), "detail.id")
    requester = _id(_get(detail, "requester_id"), "detail.requester_id")
    customer = f"zendesk:{requester}"
    base = {
        "customer_id": customer,
        "timestamp": payload.get("time"),
        "context": {"helpdesk": "zendesk", "zendesk_event": short},
    }
    if short == "ticket.created":
        subject = _get(detail, "subject")
        opened = {
            **base,
            "type": "ticket_opened",
            "event_id": f"zendesk:{_id(payload.get('id'), 'id')}",
            "ticket_id": f"zendesk:{ticket}",
        }
        if isinstance(subject, str) and subject.strip():
            opened["subject"] = subject.strip()[:1000]
        return Mapped([opened], customer_id=customer)
    if short in ("ticket.status_changed", "ticket.marked_as_spam"):
        current = event.get("current") if short == "ticket.status_changed" else "spam"
        if isinstance(current, Mapping):
            current = current.get("status")
        status = str(current or "").lower()
        if status not in ("solved", "closed", "spam"):
            return Mapped(ignored=f"{short}: status {current!r} is not solved or closed")
        closed = {
            **base,
            "type": "ticket_closed",
            "event_id": f"zendesk:{_id(payload.get('id'), 'id')}",
            "ticket_id": f"zendesk:{ticket}",
            "resolution": "spam" if status == "spam" else "solved",
        }
        return Mapped([closed], customer_id=customer)
    comment = event.get("comment")
    if not isinstance(comment, Mapping):
        raise EventError([FieldProblem("event.comment", comment, "missing: the comment added")])
    if comment.get("is_public") is False:
        return Mapped(ignored=f"{short}: an internal note, not said to the customer")
    text = _plain(comment.get("body"))
    if not text:
        return Mapped(ignored=f"{short}: no text (attachments only)")
    author = _obj(comment.get("author"))
    is_customer = str(author.get("id")) == requester or author.get("is_staff") is False
    message = {
        **base,
        "type": "message",
        "event_id": f"zendesk:comment:{_id(comment.get('id'), 'event.comment.id')}",
        "text": text,
        "role": "customer" if is_customer else "agent",
        "channel": _channel(_get(detail, "via.channel")),
        "conversation_id": f"zendesk:{ticket}",
    }
    return Mapped([message], customer_id=customer)


_INTERCOM_AUTHORS = {"user": "customer", "lead": "customer", "contact": "customer"}


def _intercom_customer(item: Mapping[str, Any]) -> str:
    contacts = _get(item, "contacts.contacts")
    first = contacts[0] if isinstance(contacts, list) and contacts else None
    if isinstance(first, Mapping):
        external = first.get("external_id")
        if isinstance(external, str) and external.strip():
            return external.strip()
        return f"intercom:{_id(first.get('id'), 'data.item.contacts.contacts[0].id')}"
    author = _get(item, "source.author")
    if isinstance(author, Mapping) and author.get("type") in _INTERCOM_AUTHORS:
        email = author.get("email")
        if isinstance(email, str) and "@" in email:
            return email.strip().lower()
        return f"intercom:{_id(author.get('id'), 'data.item.source.author.id')}"
    raise EventError(
        [FieldProblem("data.item.contacts", contacts, "no contact: cannot tell who it is")]
    )


def map_intercom(payload: Any) -> Mapped:
    """An Intercom webhook notification (``notification_event``) about a conversation."""
    if not isinstance(payload, Mapping):
        raise EventError([FieldProblem("body", type(payload).__name__, "must be an object")])
    topic = str(payload.get("topic") or "")
    if topic == "ping":
        return Mapped(ignored="ping: Intercom checking the endpoint")
    if not topic.startswith("conversation."):
        raise EventError([FieldProblem("topic", payload.get("topic"), "not a conversation topic")])
    item = _get(payload, "data.item")
    if not isinstance(item, Mapping):
        raise EventError([FieldProblem("data.item", item, "missing: the conversation")])
    read = (
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.admin.replied",
        "conversation.admin.closed",
    )
    if topic not in read:
        return Mapped(ignored=f"{topic}: not read (tactful reads {', '.join(read)})")
    conversation = _id(item.get("id"), "data.item.id")
    customer = _intercom_customer(item)
    context = {"helpdesk": "intercom", "intercom_topic": topic}
    base = {"customer_id": customer, "context": context}
    if topic == "conversation.admin.closed":
        closed = {
            **base,
            "type": "ticket_closed",
            "event_id": f"intercom:{_id(payload.get('id'), 'id')}",
            "timestamp": _unix(payload.get("created_at"), "created_at"),
            "ticket_id": f"intercom:{conversation}",
        }
        return Mapped([closed], customer_id=customer)
    events: list[dict[str, Any]] = []
    if topic == "conversation.user.created":
        source = _obj(item.get("source"))
        at = _unix(item.get("created_at"), "data.item.created_at")
        opened: dict[str, Any] = {
            **base,
            "type": "ticket_opened",
            "event_id": f"intercom:conversation:{conversation}:opened",
            "timestamp": at,
            "ticket_id": f"intercom:{conversation}",
        }
        subject = _plain(source.get("subject"))
        if subject:
            opened["subject"] = subject[:1000]
        events.append(opened)
        text = _plain(source.get("body"))
        if text:
            events.append(
                {
                    **base,
                    "type": "message",
                    "event_id": f"intercom:conversation:{conversation}:source",
                    "timestamp": at,
                    "text": text,
                    "role": "customer",
                    "channel": _channel(source.get("type") or source.get("delivered_as")),
                    "conversation_id": f"intercom:{conversation}",
                }
            )
        return Mapped(events, customer_id=customer)
    parts = _get(item, "conversation_parts.conversation_parts")
    if not isinstance(parts, list) or not parts:
        raise EventError(
            [FieldProblem("data.item.conversation_parts", parts, "no parts: nothing was said")]
        )
    for i, part in enumerate(parts):
        where = f"data.item.conversation_parts.conversation_parts[{i}]"
        if not isinstance(part, Mapping) or part.get("part_type") not in ("comment", "open"):
            continue
        text = _plain(part.get("body"))
        if not text:
            continue
        author = str(_get(part, "author.type") or "")
        events.append(
            {
                **base,
                "type": "message",
                "event_id": f"intercom:part:{_id(part.get('id'), f'{where}.id')}",
                "timestamp": _unix(part.get("created_at"), f"{where}.created_at"),
                "text": text,
                "role": _INTERCOM_AUTHORS.get(author, "bot" if author == "bot" else "agent"),
                "channel": "chat",
                "conversation_id": f"intercom:{conversation}",
            }
        )
    if not events:
        return Mapped(ignored=f"{topic}: no comment with text in the parts")
    return Mapped(events, customer_id=customer)


_TRIGGER = re.compile(r"^\{\s*([a-z_]+)\s*:\s*(.*)\}$", re.IGNORECASE)
_STATUS_TO = re.compile(r"to\s*:\s*([^,}]+)", re.IGNORECASE)
_CLOSED = {"4": "solved", "5": "solved", "resolved": "solved", "closed": "solved"}
_AUTHOR_PREFIX = re.compile(r"^\s*([^:<>\n]{1,120}?)\s+:\s+", re.DOTALL)


def map_freshdesk(payload: Any, received: datetime) -> Mapped:
    """A Freshdesk automation-rule webhook with the documented JSON body
    (``{"freshdesk_webhook": {"triggered_event": "{{triggered_event}}", ...}}``)."""
    if not isinstance(payload, Mapping):
        raise EventError([FieldProblem("body", type(payload).__name__, "must be an object")])
    data = payload.get("freshdesk_webhook", payload)
    if not isinstance(data, Mapping):
        raise EventError([FieldProblem("freshdesk_webhook", data, "must be an object")])
    # a placeholder Freshdesk did not fill in ("{{ticket.x}}") is no value
    data = {k: v for k, v in data.items() if not (isinstance(v, str) and "{{" in v)}
    ticket = _id(data.get("ticket_id"), "freshdesk_webhook.ticket_id")
    external = data.get("ticket_contact_unique_external_id")
    email = data.get("requester_email") or data.get("ticket_requester_email")
    if isinstance(external, str) and external.strip():
        customer = external.strip()
    elif isinstance(email, str) and "@" in email:
        customer = email.strip().lower()
    else:
        raise EventError(
            [
                FieldProblem(
                    "freshdesk_webhook.requester_email",
                    email,
                    "missing: put {{ticket.requester.email}} in the webhook's body",
                )
            ]
        )
    trigger = str(data.get("triggered_event") or "").strip()
    found = _TRIGGER.match(trigger)
    what, rest = (found.group(1).lower(), found.group(2)) if found else ("", "")
    at = received.isoformat()
    base = {
        "customer_id": customer,
        "timestamp": at,
        "context": {"helpdesk": "freshdesk", "freshdesk_event": trigger or None},
    }
    if what == "ticket_action" and "created" in rest.lower():
        events: list[dict[str, Any]] = [
            {
                **base,
                "type": "ticket_opened",
                "event_id": f"freshdesk:ticket:{ticket}:opened",
                "ticket_id": f"freshdesk:{ticket}",
            }
        ]
        subject = _plain(data.get("ticket_subject"))
        if subject:
            events[0]["subject"] = subject[:1000]
        text = _plain(data.get("ticket_description"))
        if text:
            events.append(
                {
                    **base,
                    "type": "message",
                    "event_id": f"freshdesk:ticket:{ticket}:description",
                    "text": text,
                    "role": "customer",
                    "channel": _channel(data.get("ticket_source")),
                    "conversation_id": f"freshdesk:{ticket}",
                }
            )
        return Mapped(events, customer_id=customer)
    if what == "status":
        to = _STATUS_TO.search(rest)
        status = to.group(1).strip().lower() if to else ""
        if status not in _CLOSED:
            return Mapped(ignored=f"status changed to {status or '?'}: not resolved or closed")
        closed = {
            **base,
            "type": "ticket_closed",
            "event_id": f"freshdesk:ticket:{ticket}:closed:{_digest(dict(data))}",
            "ticket_id": f"freshdesk:{ticket}",
            "resolution": "solved",
        }
        return Mapped([closed], customer_id=customer)
    if what == "note_type" and "private" in rest.lower():
        return Mapped(ignored="a private note, not said to the customer")
    comment = data.get("ticket_latest_public_comment")
    if not isinstance(comment, str) or not comment.strip():
        raise EventError(
            [
                FieldProblem(
                    "freshdesk_webhook.triggered_event",
                    trigger or None,
                    "not a ticket creation, status change or public comment (and no "
                    "ticket_latest_public_comment)",
                )
            ]
        )
    author = _AUTHOR_PREFIX.match(_plain(comment))
    text = _plain(comment)
    role = data.get("role")
    if author is not None:  # Freshdesk renders the comment as "Name : text"
        text = text[author.end() :]
        if role not in ("customer", "agent"):
            requester = str(data.get("requester_name") or "").strip()
            role = "customer" if requester and author.group(1).strip() == requester else "agent"
    if role not in ("customer", "agent"):
        role = "customer"
    if not text:
        return Mapped(ignored="a comment without text")
    message = {
        **base,
        "type": "message",
        "event_id": f"freshdesk:comment:{ticket}:{_digest(ticket, comment)}",
        "text": text,
        "role": role,
        "channel": _channel(data.get("ticket_source")),
        "conversation_id": f"freshdesk:{ticket}",
    }
    return Mapped([message], customer_id=customer)


# --- the routes ---------------------------------------------------------------------------


class HelpdeskAnswer(BaseModel):
    accepted: int
    duplicates: int
    quarantined: int
    ignored: str | None = None


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Signed, but not JSON (kept in the quarantine)",
        "content": ERRORS_CONTENT,
    },
    401: {
        "description": "Not signed, or not with the configured secret",
        "content": ERRORS_CONTENT,
    },
    404: {"description": "No secret is configured for this helpdesk", "content": ERRORS_CONTENT},
    413: {"description": f"Body over {MAX_BODY_BYTES} bytes", "content": ERRORS_CONTENT},
    503: {
        "description": "With serve --broker: the stream is full; retry after Retry-After",
        "content": ERRORS_CONTENT,
    },
}
_SUMMARIES = {
    "zendesk": "Zendesk event webhooks (ticket created, status changed, comment added)",
    "intercom": "Intercom webhook notifications (conversation created, replied, closed)",
    "freshdesk": "Freshdesk automation-rule webhooks (ticket created, status, comments)",
}


def _problem(status: int, field_: str, value: Any, why: str, **headers: str) -> JSONResponse:
    body = {"errors": [{"field": field_, "value": value, "why": why}]}
    return JSONResponse(body, status, headers=headers or None)


def helpdesk_routes(
    engine: Engine, publisher: Publisher | None = None, secrets: HelpdeskSecrets | None = None
) -> APIRouter:
    """``POST /v1/helpdesks/{zendesk,intercom,freshdesk}`` over ``engine``; ``secrets``:
    by default from the environment (SECRET_ENV), read now."""
    router = APIRouter(tags=["helpdesks"])
    keys = secrets if secrets is not None else HelpdeskSecrets.from_env()
    store = engine.store

    def keep(vendor: str, raw: str, problems: list[FieldProblem], customer: str | None) -> None:
        store.quarantine(
            [
                QuarantineItem(
                    engine.clock(),
                    f"helpdesk:{vendor}",
                    [p.as_dict() for p in problems],
                    redact(raw),
                    None,
                    customer,
                )
            ]
        )

    def check(vendor: str, body: bytes, headers: Mapping[str, str]) -> None:
        found = keys.by_vendor[vendor]
        if vendor == "zendesk":
            check_zendesk(found, body, headers)
        elif vendor == "intercom":
            check_intercom(found, body, headers)
        else:
            check_freshdesk(found, body, headers)

    def ingest(vendor: str, body: bytes, payload: Any) -> HelpdeskAnswer:
        """Map, validate and ingest; what cannot become events goes to the quarantine."""
        now = engine.clock()
        raw = body.decode("utf-8", "replace")
        mapped: Mapped | None = None
        try:
            if vendor == "zendesk":
                mapped = map_zendesk(payload)
            elif vendor == "intercom":
                mapped = map_intercom(payload)
            else:
                mapped = map_freshdesk(payload, now)
            for event in mapped.events:
                parse_event(event, now=now)
        except EventError as exc:
            keep(vendor, raw, exc.problems, mapped.customer_id if mapped else None)
            log.warning("helpdesk %s: payload quarantined: %s", vendor, exc)
            return HelpdeskAnswer(accepted=0, duplicates=0, quarantined=1)
        if not mapped.events:
            log.info("helpdesk %s: ignored: %s", vendor, mapped.ignored)
            return HelpdeskAnswer(accepted=0, duplicates=0, quarantined=0, ignored=mapped.ignored)
        sink = publisher.ingest if publisher is not None else engine.ingest
        results = sink(mapped.events, f"helpdesk:{vendor}")
        return HelpdeskAnswer(
            accepted=sum(r.status == "accepted" for r in results),
            duplicates=sum(r.status == "duplicate" for r in results),
            quarantined=sum(r.status == "rejected" for r in results),
        )

    async def handle(request: Request, vendor: str) -> Response:
        if vendor not in keys.by_vendor:
            return _problem(
                404,
                "vendor",
                vendor,
                f"{vendor} webhooks are not configured: set {SECRET_ENV[vendor]} in the "
                "environment of tactful serve (docs/helpdesks.md)",
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                log.warning("helpdesk %s: refused a body over %d bytes", vendor, MAX_BODY_BYTES)
                return _problem(413, "body", size, f"larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        try:  # before the body is parsed or kept: an unsigned body is not ours to keep
            check(vendor, body, request.headers)
        except SignatureError as exc:
            engine.metrics.refused_signatures.labels(f"helpdesk:{vendor}").inc()
            peer = request.client.host if request.client else "?"
            log.warning("helpdesk %s: refused a webhook from %s: %s", vendor, peer, exc)
            return _problem(401, "signature", None, str(exc))
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = FieldProblem("body", None, f"not valid JSON: {exc}")
            keep(vendor, body.decode("utf-8", "replace"), [problem], None)
            return _problem(400, "body", None, problem.why)
        if publisher is None:
            answer = await run_in_threadpool(ingest, vendor, body, payload)
            return JSONResponse(answer.model_dump())
        from tactful.broker.nats import BrokerBusy

        try:
            answer = await run_in_threadpool(ingest, vendor, body, payload)
        except BrokerBusy as exc:
            return _problem(
                503,
                "broker",
                publisher.config.stream,
                f"{exc}; retry",
                **{"Retry-After": str(exc.retry_after)},
            )
        return JSONResponse(answer.model_dump())

    def register(vendor: str) -> None:
        async def endpoint(request: Request) -> Response:
            return await handle(request, vendor)

        endpoint.__name__ = f"helpdesk_{vendor}"
        router.add_api_route(
            f"/v1/helpdesks/{vendor}",
            endpoint,
            methods=["POST"],
            response_model=HelpdeskAnswer,
            responses=_RESPONSES,
            summary=_SUMMARIES[vendor],
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        )

    for vendor in VENDORS:
        register(vendor)
    return router

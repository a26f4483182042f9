"""Act: a handoff becomes a ticket in the team's helpdesk (Zendesk, Intercom, Freshdesk),
with the handoff package rendered for agents as an internal note, through each vendor's
REST API (docs/helpdesks.md says what each request looks like and where it comes from):

- ``zendesk``: ``POST {base_url}/api/v2/tickets.json`` (HTTP Basic
  ``{email}/token:{token}``), the note as the ticket's first comment with
  ``public: false``, and an ``Idempotency-Key`` header (Zendesk keeps it for 2 hours).
- ``intercom``: ``POST {base_url}/tickets`` (``Authorization: Bearer``, ``Intercom-Version``)
  for a ticket of the configured ``ticket_type_id``, then ``POST
  {base_url}/tickets/{id}/reply`` with ``message_type: note`` by ``admin_id``.
- ``freshdesk``: ``POST {base_url}/api/v2/tickets`` (HTTP Basic ``{api_key}:X``), then
  ``POST {base_url}/api/v2/tickets/{id}/notes`` with ``private: true``.

Only ``handoff.created`` actions make tickets; any other kind routed to a helpdesk channel
is refused as permanent (dead-lettered with why). Failures follow the other channels: 2xx
is a delivery; 408, 425, 429, 5xx, timeouts and connection errors are retried (after the
vendor's ``Retry-After`` when it sends one); any other 4xx is permanent. Where a delivery
takes two requests, the ticket made by the first is remembered by the action's idempotency
key, so a retry after a failed note adds the note to that ticket instead of making another
(within this process: a restart between the two requests can make a second ticket).

The customer on the ticket is found from the customer id: an email address is the
requester's email; ``zendesk:<id>``, ``intercom:<id>`` or ``freshdesk:<id>`` (the ids
helpdesk webhooks give customers, api/helpdesks.py) is that vendor's user id; any other
id is the Intercom ``external_id`` and the Freshdesk ``unique_external_id``; in Zendesk the
ticket then carries the customer id in its subject (the requester is the API user).
"""

from __future__ import annotations

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from tactful.actions.channels import ChannelError
from tactful.actions.channels.webhook import check_response
from tactful.state.store.base import OutboxRow

__all__ = [
    "FreshdeskChannel",
    "IntercomChannel",
    "ZendeskChannel",
    "render_note",
    "retry_after",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Tickets made for actions whose note is still to come, by idempotency key (bounded).
MEMO_SIZE = 10_000
MAX_RETRY_AFTER_S = 3_600.0
PRIORITIES = {"low": 1, "normal": 2, "high": 3, "urgent": 4}  # Freshdesk's numbers
FRESHDESK_OPEN = 2


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date),
    at most an hour; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def _lines(label: str, items: Any, limit: int = 8) -> list[str]:
    if not isinstance(items, list) or not items:
        return []
    return [f"{label}:", *(f"  - {item}" for item in items[:limit])]


def render_note(action: OutboxRow) -> str:
    """The handoff package as plain text for the agent picking it up: who, the goal, why,
    how sure, what to do first, the customer's words, what was tried, the trend, what is
    missing, and the ids behind it. Free text in the package was redacted when it was
    built (actions/handoff.py)."""
    p = action.payload
    out = [
        f"tactful handoff to {p.get('queue', '?')} ({p.get('priority', 'normal')})",
        f"Customer: {action.customer_id}"
        + (f" (account {p['account_id']})" if p.get("account_id") else ""),
    ]
    summary = p.get("summary")
    if isinstance(summary, Mapping) and summary.get("text"):
        out.append(f"Summary: {summary['text']}")
    if p.get("goal"):
        out.append(f"Goal: {p['goal']}")
    if p.get("topic"):
        out.append(f"Topic: {p['topic']}")
    if isinstance(p.get("confidence"), int | float):
        out.append(f"Confidence: {p['confidence']:.2f}")
    if p.get("recommended_next_step"):
        out.append(f"Recommended next step: {p['recommended_next_step']}")
    out.extend(_lines("Why", p.get("why")))
    out.extend(_lines("In their words", [f'"{q}"' for q in p.get("quotes") or []]))
    out.extend(_lines("Already tried", p.get("already_tried")))
    trend = p.get("trend")
    if isinstance(trend, Mapping):
        levels = sorted(
            ((float(v), k) for k, v in trend.items() if isinstance(v, int | float) and v >= 0.1),
            reverse=True,
        )
        if levels:
            out.append("Trend: " + ", ".join(f"{k} {v:.2f}" for v, k in levels[:6]))
    account = p.get("account")
    if isinstance(account, Mapping):
        facts = [
            f"{k} {account[k]}"
            for k in ("tier", "value", "lifecycle", "open_tickets", "payment_failures_30d")
            if account.get(k) not in (None, "", 0)
        ]
        if facts:
            out.append("Account: " + ", ".join(facts))
    completeness = p.get("completeness")
    if isinstance(completeness, Mapping) and completeness.get("missing"):
        out.append("Missing from the story: " + ", ".join(map(str, completeness["missing"])))
    trigger = p.get("trigger_event")
    if isinstance(trigger, Mapping) and trigger.get("event_id"):
        out.append(f"Trigger event: {trigger['event_id']} ({trigger.get('type', '?')})")
    out.append(f"Handoff id: {p.get('handoff_id', action.action_id)}")
    out.append(f"-- tactful ({action.idempotency_key})")
    return "\n".join(str(line) for line in out)


def _as_html(text: str) -> str:
    """Plain text as the HTML Intercom and Freshdesk notes take (escaped, line breaks)."""
    return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines())


def _subject(action: OutboxRow) -> str:
    p = action.payload
    topic = str(p.get("topic") or "support").replace("_", " ")
    return f"Handoff to {p.get('queue', 'support')}: {topic} ({action.customer_id})"[:250]


def _vendor_id(customer_id: str, vendor: str) -> str | None:
    prefix = f"{vendor}:"
    return customer_id[len(prefix) :] if customer_id.startswith(prefix) else None


class _HelpdeskChannel:
    """What the three share: one HTTP client, failures as ChannelError with the vendor's
    Retry-After, and the memo of tickets whose note is still to be added."""

    vendor = "helpdesk"

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None,
        timeout: timedelta,
        concurrency: int,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self._client = httpx.Client(
            timeout=timeout.total_seconds(),
            follow_redirects=False,  # a redirect could carry the credentials elsewhere
            headers={
                "User-Agent": "tactful-helpdesks/1",
                "Accept": "application/json",
                **headers,
            },
            auth=auth,
            limits=httpx.Limits(max_connections=concurrency),
        )
        self._made: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def _post(self, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.post(url, json=body, headers=headers or None)
        except httpx.TimeoutException as exc:
            raise ChannelError(f"{self.name}: {url} timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise ChannelError(f"{self.name}: {url}: {type(exc).__name__}: {exc}") from exc
        try:
            check_response(self.name, response)
        except ChannelError as exc:
            exc.retry_after = retry_after(response.headers.get("Retry-After"))
            raise
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ChannelError(
                f"{self.name}: {url} answered {response.status_code} without a JSON object"
            )
        return data

    def _handoff_only(self, action: OutboxRow) -> None:
        if action.kind != "handoff.created":
            raise ChannelError(
                f"{self.name}: a {self.vendor} channel makes tickets for handoff.created "
                f"actions only, not {action.kind}; route {action.kind} elsewhere in the "
                "policy's delivery:",
                permanent=True,
            )

    def _remembered(self, key: str) -> str | None:
        with self._lock:
            return self._made.get(key)

    def _remember(self, key: str, ticket: str) -> None:
        with self._lock:
            self._made[key] = ticket
            while len(self._made) > MEMO_SIZE:
                self._made.popitem(last=False)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._made.pop(key, None)

    def _ticket_id(self, data: Mapping[str, Any], path: str) -> str:
        found: Any = data
        for part in path.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        if isinstance(found, bool) or not isinstance(found, int | str) or found == "":
            raise ChannelError(f"{self.name}: the answer has no {path}: {str(data)[:200]}")
        return str(found)

    def close(self) -> None:
        self._client.close()


class ZendeskChannel(_HelpdeskChannel):
    """A Zendesk Support ticket whose first comment is the package as an internal note."""

    vendor = "zendesk"

    def __init__(
        self,
        name: str,
        base_url: str,
        email: str,
        token: str,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 2,
        tags: tuple[str, ...] = ("tactful",),
    ) -> None:
        super().__init__(name, base_url, {}, (f"{email}/token", token), timeout, concurrency)
        self.tags = tags

    def deliver(self, action: OutboxRow) -> None:
        self._handoff_only(action)
        p = action.payload
        ticket: dict[str, Any] = {
            "subject": _subject(action),
            "comment": {"body": render_note(action), "public": False},
            "priority": p.get("priority") if p.get("priority") in PRIORITIES else None,
            "external_id": str(p.get("handoff_id") or action.action_id)[:255],
            "tags": [*self.tags, f"queue_{p.get('queue', 'support')}"],
        }
        ticket = {k: v for k, v in ticket.items() if v is not None}
        who = action.customer_id
        user_id = _vendor_id(who, "zendesk")
        if user_id is not None and user_id.isdigit():
            ticket["requester_id"] = int(user_id)
        elif _EMAIL.match(who):
            ticket["requester"] = {"email": who, "name": who.split("@", 1)[0]}
        self._post(
            "/api/v2/tickets.json",
            {"ticket": ticket},
            **{"Idempotency-Key": action.idempotency_key},
        )


class IntercomChannel(_HelpdeskChannel):
    """An Intercom ticket (of ``ticket_type_id``) for the customer, then the package as a
    note on it by ``admin_id``."""

    vendor = "intercom"

    def __init__(
        self,
        name: str,
        token: str,
        admin_id: str,
        ticket_type_id: str,
        base_url: str = "https://api.intercom.io",
        version: str = "2.11",
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 2,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}", "Intercom-Version": version}
        super().__init__(name, base_url, headers, None, timeout, concurrency)
        self.admin_id = admin_id
        self.ticket_type_id = ticket_type_id

    def deliver(self, action: OutboxRow) -> None:
        self._handoff_only(action)
        key = action.idempotency_key
        ticket = self._remembered(key)
        if ticket is None:
            who = action.customer_id
            contact_id = _vendor_id(who, "intercom")
            if contact_id is not None:
                contact = {"id": contact_id}
            elif _EMAIL.match(who):
                contact = {"email": who}
            else:
                contact = {"external_id": who}
            made = self._post(
                "/tickets",
                {
                    "ticket_type_id": self.ticket_type_id,
                    "contacts": [contact],
                    "ticket_attributes": {
                        "_default_title_": _subject(action),
                        "_default_description_": (
                            f"Handed to the {action.payload.get('queue', 'support')} team."
                        ),
                    },
                },
            )
            ticket = self._ticket_id(made, "id")
            self._remember(key, ticket)
        self._post(
            f"/tickets/{ticket}/reply",
            {
                "message_type": "note",
                "type": "admin",
                "admin_id": self.admin_id,
                "body": _as_html(render_note(action)),
            },
        )
        self._forget(key)


class FreshdeskChannel(_HelpdeskChannel):
    """A Freshdesk ticket for the customer, then the package as a private note on it."""

    vendor = "freshdesk"

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 2,
        tags: tuple[str, ...] = ("tactful",),
    ) -> None:
        super().__init__(name, base_url, {}, (api_key, "X"), timeout, concurrency)
        self.tags = tags

    def deliver(self, action: OutboxRow) -> None:
        self._handoff_only(action)
        key = action.idempotency_key
        ticket = self._remembered(key)
        p = action.payload
        if ticket is None:
            body: dict[str, Any] = {
                "subject": _subject(action),
                "description": f"<p>Handed to the {html.escape(str(p.get('queue', 'support')))}"
                " team.</p>",
                "status": FRESHDESK_OPEN,
                "priority": PRIORITIES.get(str(p.get("priority")), 2),
                "tags": [*self.tags, f"queue_{p.get('queue', 'support')}"],
            }
            who = action.customer_id
            contact_id = _vendor_id(who, "freshdesk")
            if contact_id is not None and contact_id.isdigit():
                body["requester_id"] = int(contact_id)
            elif _EMAIL.match(who):
                body["email"] = who
            else:  # Freshdesk needs a requester: the customer id as a unique_external_id
                body["unique_external_id"] = who
            made = self._post("/api/v2/tickets", body)
            ticket = self._ticket_id(made, "id")
            self._remember(key, ticket)
        self._post(
            f"/api/v2/tickets/{ticket}/notes",
            {"body": _as_html(render_note(action)), "private": True},
        )
        self._forget(key)

"""Helpdesks in and out, over real HTTP.

In: signed Zendesk, Intercom and Freshdesk webhooks (tests/fixtures/helpdesks/, shaped as
their documentation shows) sent to a real ``tactful serve`` become events; bad signatures
are 401, logged, and leave nothing behind; signed payloads that cannot become events are
quarantined. Out: a handoff opens a ticket with the package as an internal note in each
helpdesk, against local receivers that check method, path, auth and body as the vendors'
APIs would; a 503 is retried no sooner than its Retry-After, a 401 is permanent."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tactful.actions.channels import ChannelError
from tactful.actions.channels.config import ChannelsError, build_channels, load_channels
from tactful.actions.channels.helpdesk import (
    FreshdeskChannel,
    IntercomChannel,
    ZendeskChannel,
    render_note,
    retry_after,
)
from tactful.actions.dispatch import Dispatcher
from tactful.api.app import create_app
from tactful.api.helpdesks import (
    HelpdeskSecrets,
    check_freshdesk,
    check_intercom,
    check_zendesk,
    map_freshdesk,
    sign_intercom,
    sign_zendesk,
)
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.base import OutboxRow

from .serving import Server, serve

FIXTURES = Path(__file__).parent / "fixtures" / "helpdesks"
SECRETS = {
    "TACTFUL_ZENDESK_WEBHOOK_SECRET": "zd-signing-secret-0123456789",
    "TACTFUL_INTERCOM_CLIENT_SECRET": "ic-client-secret-0123456789",
    "TACTFUL_FRESHDESK_WEBHOOK_SECRET": "fd-shared-secret-0123456789",
}
ZD, IC, FD = SECRETS.values()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def zendesk_headers(body: bytes, secret: str = ZD, at: datetime | None = None) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Id": "01GK8E6BKWMJZD2T8Y5AXJQMG5",
        "X-Zendesk-Webhook-Signature": sign_zendesk(secret, body, stamp),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def intercom_headers(body: bytes, secret: str = IC) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature": sign_intercom(secret, body)}


def freshdesk_basic(secret: str = FD) -> dict[str, str]:
    token = base64.b64encode(f"freshdesk:{secret}".encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


# --- in: a real tactful serve -------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("helpdesks")
    with pytest.MonkeyPatch.context() as mp:  # the server's environment, copied at start
        for name, value in SECRETS.items():
            mp.setenv(name, value)
        running = serve(tmp, tmp / "t.db", tmp / "actions.jsonl")
    yield running
    running.stop()


def post(server: Server, vendor: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/helpdesks/{vendor}", content=body, headers=headers)


def events_of(server: Server, customer: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/customers/{customer}/export")
    if r.status_code == 404:
        return []
    r.raise_for_status()
    rows = r.json()["record"]["events"]
    rank = {"ticket_opened": 0, "message": 1, "ticket_closed": 2}  # within one instant
    return [r["payload"] for r in sorted(rows, key=lambda r: (r["ts"], rank[r["type"]]))]


def role(event: dict[str, Any]) -> str | None:
    """A message's role (the stored event leaves out defaults: customer)."""
    return event.get("role", "customer") if event["type"] == "message" else None


def state_of(server: Server, customer: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/customers/{customer}")
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def quarantine(server: Server) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{server.url}/v1/quarantine").json()["quarantine"]
    return found


def test_zendesk_ticket_comments_and_solving_become_events(server):
    customer = "zendesk:8447388090494"
    for name in ("zendesk_ticket_created.json", "zendesk_comment_added.json"):
        body = fixture(name)
        r = post(server, "zendesk", body, zendesk_headers(body))
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 1, "duplicates": 0, "quarantined": 0, "ignored": None}
    assert state_of(server, customer)["open_tickets"] == ["zendesk:5158"]
    for name in ("zendesk_comment_added_agent.json", "zendesk_status_changed.json"):
        body = fixture(name)
        assert post(server, "zendesk", body, zendesk_headers(body)).json()["accepted"] == 1
    again = fixture("zendesk_comment_added.json")  # Zendesk retries: same comment id
    assert post(server, "zendesk", again, zendesk_headers(again)).json()["duplicates"] == 1

    events = events_of(server, customer)
    assert [(e["type"], role(e)) for e in events] == [
        ("ticket_opened", None),
        ("message", "customer"),
        ("message", "agent"),
        ("ticket_closed", None),
    ]
    opened, said, _, closed = events
    assert opened["ticket_id"] == closed["ticket_id"] == "zendesk:5158"
    assert opened["subject"] == "Charged twice" and closed.get("resolution", "solved") == "solved"
    assert said["text"].startswith("This is the third time I ask")
    assert said["channel"] == "email" and said["conversation_id"] == "zendesk:5158"
    assert said["event_id"] == "zendesk:comment:10001"
    assert said["timestamp"].startswith("2026-11-20T09:05:00")  # the payload's time
    assert state_of(server, customer)["open_tickets"] == []


def test_intercom_conversations_become_tickets_and_messages(server):
    customer = "ana-42"  # the contact's external_id: your own user id
    ping = fixture("intercom_ping.json")
    answer = post(server, "intercom", ping, intercom_headers(ping)).json()
    assert answer["accepted"] == 0 and answer["ignored"].startswith("ping")
    for name, accepted in (
        ("intercom_conversation_user_created.json", 2),  # the ticket and the first message
        ("intercom_conversation_user_replied.json", 1),
        ("intercom_conversation_admin_replied.json", 1),
        ("intercom_conversation_admin_closed.json", 1),
    ):
        body = fixture(name)
        r = post(server, "intercom", body, intercom_headers(body))
        assert r.status_code == 200 and r.json()["accepted"] == accepted, (name, r.text)

    events = events_of(server, customer)
    assert [(e["type"], role(e)) for e in events] == [
        ("ticket_opened", None),
        ("message", "customer"),
        ("message", "customer"),
        ("message", "agent"),
        ("ticket_closed", None),
    ]
    assert events[1]["text"] == "My card was declined three times & I can't log in."
    assert events[2]["text"] == "Still nothing. This is ridiculous, I want a human."
    assert events[0]["timestamp"].startswith("2026-11-20T09:00:00")
    assert {e["ticket_id"] for e in (events[0], events[4])} == {"intercom:1911149811"}
    assert state_of(server, customer)["open_tickets"] == []


def test_freshdesk_rules_with_basic_auth_or_the_secret_header_become_events(server):
    customer = "bob@example.com"  # the requester's email, lower-cased
    created = fixture("freshdesk_ticket_created.json")
    assert post(server, "freshdesk", created, freshdesk_basic()).json()["accepted"] == 2
    comment = fixture("freshdesk_public_comment.json")
    by_header = {"Content-Type": "application/json", "X-Tactful-Webhook-Secret": FD}
    assert post(server, "freshdesk", comment, by_header).json()["accepted"] == 1
    resolved = fixture("freshdesk_status_resolved.json")
    assert post(server, "freshdesk", resolved, freshdesk_basic()).json()["accepted"] == 1

    events = events_of(server, customer)
    assert [(e["type"], role(e)) for e in events] == [
        ("ticket_opened", None),
        ("message", "customer"),
        ("message", "customer"),  # "Bob Stone : ..." is the requester speaking
        ("ticket_closed", None),
    ]
    assert events[1]["text"].startswith("The export button does nothing")
    assert events[2]["text"] == "Still broken. Third time I write about this!"
    assert events[3]["ticket_id"] == "freshdesk:11"


@pytest.mark.parametrize(
    ("vendor", "fixture_name", "headers"),
    [
        ("zendesk", "zendesk_ticket_created.json", lambda b: zendesk_headers(b, "wrong-secret")),
        ("zendesk", "zendesk_ticket_created.json", lambda b: {}),
        (
            "zendesk",
            "zendesk_ticket_created.json",
            lambda b: zendesk_headers(b, at=datetime.now(UTC) - timedelta(minutes=30)),
        ),
        ("zendesk", "zendesk_ticket_created.json", lambda b: zendesk_headers(b + b" ")),
        ("intercom", "intercom_conversation_user_created.json", lambda b: intercom_headers(b, "x")),
        ("intercom", "intercom_conversation_user_created.json", lambda b: {}),
        ("freshdesk", "freshdesk_ticket_created.json", lambda b: freshdesk_basic("guess")),
        ("freshdesk", "freshdesk_ticket_created.json", lambda b: {}),
    ],
    ids=[
        "zd-wrong-secret",
        "zd-unsigned",
        "zd-stale",
        "zd-other-body",
        "ic-wrong-secret",
        "ic-unsigned",
        "fd-wrong-secret",
        "fd-no-secret",
    ],
)
def test_bad_signatures_are_401_and_nothing_is_stored(server, vendor, fixture_name, headers):
    before = (len(quarantine(server)), httpx.get(f"{server.url}/healthz").json()["events"])
    body = fixture(fixture_name)
    r = post(server, vendor, body, headers(body))
    assert r.status_code == 401
    [error] = r.json()["errors"]
    assert error["field"] == "signature" and error["why"]
    after = (len(quarantine(server)), httpx.get(f"{server.url}/healthz").json()["events"])
    assert after == before


def test_a_refusal_over_real_http_is_logged_and_leaves_nothing(server):
    before = len(quarantine(server))
    body = fixture("zendesk_comment_added.json").replace(b"10001", b"99999")
    r = post(server, "zendesk", body, zendesk_headers(body, "not-the-secret"))
    assert r.status_code == 401 and "no signature matches" in r.json()["errors"][0]["why"]
    assert len(quarantine(server)) == before
    ids = [e["event_id"] for e in events_of(server, "zendesk:8447388090494")]
    assert "zendesk:comment:99999" not in ids
    assert "helpdesk zendesk: refused a webhook from 127.0.0.1" in server.output.read_text()


def test_signed_payloads_that_cannot_become_events_are_quarantined_with_why(server):
    user = fixture("zendesk_user_created.json")  # a user event: no ticket, no requester
    r = post(server, "zendesk", user, zendesk_headers(user))
    assert r.status_code == 200 and r.json()["quarantined"] == 1
    no_contact = json.loads(fixture("intercom_conversation_user_replied.json"))
    no_contact["data"]["item"]["contacts"]["contacts"] = []
    no_contact["data"]["item"]["source"]["author"] = {"type": "admin", "id": "1"}
    body = json.dumps(no_contact).encode()
    assert post(server, "intercom", body, intercom_headers(body)).json()["quarantined"] == 1
    garbage = b"{not json"
    r = post(server, "freshdesk", garbage, freshdesk_basic())
    assert r.status_code == 400
    kept = {q["source"]: q for q in quarantine(server)[:3]}
    assert set(kept) == {"helpdesk:zendesk", "helpdesk:intercom", "helpdesk:freshdesk"}
    assert "not a Zendesk ticket event type" in kept["helpdesk:zendesk"]["reason"][0]["why"]
    assert "no contact" in kept["helpdesk:intercom"]["reason"][0]["why"]
    assert "not valid JSON" in kept["helpdesk:freshdesk"]["reason"][0]["why"]


def test_internal_notes_and_other_statuses_are_answered_ignored(server):
    note = json.loads(fixture("zendesk_comment_added.json"))
    note["event"]["comment"].update(is_public=False, id="20001")
    note["id"] = "note-event-1"
    body = json.dumps(note).encode()
    answer = post(server, "zendesk", body, zendesk_headers(body)).json()
    assert answer["accepted"] == 0 and "internal note" in answer["ignored"]
    pending = json.loads(fixture("zendesk_status_changed.json"))
    pending["event"]["current"] = "PENDING"
    body = json.dumps(pending).encode()
    assert (
        "not solved or closed"
        in post(server, "zendesk", body, zendesk_headers(body)).json()["ignored"]
    )


def test_a_freshdesk_placeholder_left_unfilled_is_no_customer_id():
    payload = json.loads(fixture("freshdesk_ticket_created.json"))
    payload["freshdesk_webhook"]["ticket_contact_unique_external_id"] = (
        "{{ticket.contact.unique_external_id}}"
    )
    mapped = map_freshdesk(payload, NOW)
    assert {e["customer_id"] for e in mapped.events} == {"bob@example.com"}
    assert mapped.events[0]["timestamp"] == NOW.isoformat()  # Freshdesk sends no time


def test_a_helpdesk_without_a_secret_is_404_saying_what_to_set(tmp_path):
    store = SQLiteStore(tmp_path / "t.db")
    app = create_app(Engine(store, PolicyEngine(load_policy())))
    with TestClient(app) as client:
        r = client.post("/v1/helpdesks/intercom", content=b"{}")
    assert r.status_code == 404 and "TACTFUL_INTERCOM_CLIENT_SECRET" in r.text
    store.close()


def test_signature_checks_accept_the_vendors_schemes_and_a_rotated_secret():
    body = fixture("zendesk_ticket_created.json")
    check_zendesk(["old-one", ZD], body, zendesk_headers(body))
    check_intercom([IC], body, intercom_headers(body))
    check_freshdesk([FD], body, freshdesk_basic())
    # Zendesk's documented form: base64(HMACSHA256(TIMESTAMP + BODY))
    assert sign_zendesk("s", b"{}", "2026-11-20T09:00:00Z") == (
        "LvAE5mu+30pqGc6w6U99oa6GsuCq2XxUa3+qT0qfpzA="
    )
    secrets = HelpdeskSecrets.from_env(
        {"TACTFUL_ZENDESK_WEBHOOK_SECRET": "a", "TACTFUL_ZENDESK_WEBHOOK_SECRET_OLD": "b"}
    )
    assert secrets.by_vendor == {"zendesk": ("a", "b")}


# --- out: local helpdesk receivers --------------------------------------------------------

ZENDESK_AUTH = "Basic " + base64.b64encode(b"tactful@acme.example/token:zd-api-token").decode()
FRESHDESK_AUTH = "Basic " + base64.b64encode(b"fd-api-key:X").decode()
INTERCOM_AUTH = "Bearer ic-access-token"


@dataclass
class Helpdesk:
    """A fake helpdesk API: what arrived, what was wrong with it, what to answer next."""

    vendor: str
    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tickets: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        """(status, answer) as the vendor's API would give them."""
        auth = headers.get("Authorization", "")
        if self.vendor == "zendesk":
            if auth != ZENDESK_AUTH:
                return 401, {"error": "Couldn't authenticate you"}
            if path != "/api/v2/tickets.json" or not headers.get("Idempotency-Key"):
                return 404, {"error": "InvalidEndpoint"}
            ticket = body.get("ticket", {})
            comment = ticket.get("comment", {})
            if comment.get("public") is not False or not comment.get("body"):
                return 422, {"error": "RecordInvalid", "why": "want an internal note"}
            if ticket.get("priority") not in ("low", "normal", "high", "urgent"):
                return 422, {"error": "RecordInvalid", "why": "priority"}
            self.tickets += 1
            return 201, {"ticket": {"id": 35436 + self.tickets, "subject": ticket["subject"]}}
        if self.vendor == "intercom":
            if auth != INTERCOM_AUTH or not headers.get("Intercom-Version"):
                return 401, {"type": "error.list", "errors": [{"code": "unauthorized"}]}
            if path == "/tickets":
                contacts = body.get("contacts")
                if body.get("ticket_type_id") != "42" or not (
                    isinstance(contacts, list) and len(contacts) == 1
                ):
                    return 400, {"type": "error.list", "errors": [{"code": "parameter_invalid"}]}
                self.tickets += 1
                return 200, {"type": "ticket", "id": str(1294 + self.tickets), "ticket_id": "1390"}
            if path.startswith("/tickets/") and path.endswith("/reply"):
                if (body.get("message_type"), body.get("type"), body.get("admin_id")) != (
                    "note",
                    "admin",
                    "991267",
                ) or not body.get("body"):
                    return 400, {"type": "error.list", "errors": [{"code": "parameter_invalid"}]}
                return 200, {"type": "ticket_part", "id": "1", "part_type": "note"}
            return 404, {"type": "error.list", "errors": [{"code": "not_found"}]}
        if auth != FRESHDESK_AUTH:
            return 401, {"code": "invalid_credentials"}
        if path == "/api/v2/tickets":
            if not all(k in body for k in ("subject", "description", "status", "priority")) or not (
                {"email", "requester_id", "unique_external_id"} & set(body)
            ):
                return 400, {"description": "Validation failed"}
            self.tickets += 1
            return 201, {"id": self.tickets, "subject": body["subject"]}
        if path.endswith("/notes") and path.startswith("/api/v2/tickets/"):
            if body.get("private") is not True or not body.get("body"):
                return 400, {"description": "Validation failed", "why": "want a private note"}
            return 201, {"id": 5, "private": True}
        return 404, {"code": "not_found"}


@contextmanager
def helpdesk(vendor: str) -> Iterator[Helpdesk]:
    hd = Helpdesk(vendor)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = dict(self.headers)
            body = json.loads(raw) if raw else None
            with hd.lock:
                hd.requests.append((self.command, self.path, headers, body))
                if hd.script:
                    status, extra = hd.script.pop(0)
                    answer: Any = {"error": f"scripted {status}"}
                else:
                    extra = {}
                    status, answer = hd.check(self.path, headers, body)
                    if status >= 400:
                        hd.problems.append(f"{self.path}: {status} {answer}")
            data = json.dumps(answer).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **extra}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hd.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hd
    finally:
        server.shutdown()
        server.server_close()


PACKAGE = {
    "package_version": 1,
    "handoff_id": "handoff:d-1",
    "queue": "billing",
    "priority": "high",
    "customer_id": "ana@example.com",
    "account_id": "acme",
    "goal": "The customer wants to sort out a billing problem: 'charged twice'.",
    "topic": "billing",
    "intents": ["frustration", "wants_human"],
    "quotes": ["I was charged twice and nobody answers"],
    "already_tried": ["bot step billing_faq failed", "read /help/invoices"],
    "why": ["explicit_human_request: asked for a person"],
    "trend": {"frustration": 0.82, "wants_human": 0.9, "gratitude": 0.0},
    "account": {"tier": "enterprise", "value": 48000, "open_tickets": 2},
    "confidence": 0.93,
    "recommended_next_step": "Refund the second charge and confirm by email.",
    "trigger_event": {"event_id": "e-77", "type": "message"},
    "completeness": {"score": 0.875, "missing": ["evidence"]},
}


def handoff(customer: str = "ana@example.com", key: str = "handoff:d-1@zendesk") -> OutboxRow:
    return OutboxRow(
        action_id=key,
        idempotency_key=key,
        customer_id=customer,
        channel="helpdesk",
        kind="handoff.created",
        payload={**PACKAGE, "customer_id": customer},
        attempts=0,
        created_at=NOW,
    )


def channels_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, urls: dict[str, str]) -> Any:
    monkeypatch.setenv("ZENDESK_API_TOKEN", "zd-api-token")
    monkeypatch.setenv("INTERCOM_TOKEN", "ic-access-token")
    monkeypatch.setenv("FRESHDESK_API_KEY", "fd-api-key")
    path = tmp_path / "channels.yaml"
    path.write_text(
        f"""
channels:
  zendesk:
    type: zendesk
    base_url: {urls.get("zendesk", "https://acme.zendesk.com")}
    email: tactful@acme.example
    token: ${{ZENDESK_API_TOKEN}}
  intercom:
    type: intercom
    base_url: {urls.get("intercom", "https://api.intercom.io")}
    token: ${{INTERCOM_TOKEN}}
    admin_id: "991267"
    ticket_type_id: "42"
  freshdesk:
    type: freshdesk
    base_url: {urls.get("freshdesk", "https://acme.freshdesk.com")}
    api_key: ${{FRESHDESK_API_KEY}}
"""
    )
    return build_channels(load_channels(path), tmp_path / "log.jsonl")


def test_each_helpdesk_gets_a_ticket_with_the_package_as_an_internal_note(tmp_path, monkeypatch):
    with helpdesk("zendesk") as zd, helpdesk("intercom") as ic, helpdesk("freshdesk") as fd:
        channels = channels_file(
            tmp_path, monkeypatch, {"zendesk": zd.url, "intercom": ic.url, "freshdesk": fd.url}
        )
        for name in ("zendesk", "intercom", "freshdesk"):
            channels[name].deliver(handoff(key=f"handoff:d-1@{name}"))
    assert zd.problems == ic.problems == fd.problems == []

    [(method, path, headers, body)] = zd.requests
    assert (method, path) == ("POST", "/api/v2/tickets.json")
    assert headers["Idempotency-Key"] == "handoff:d-1@zendesk"
    ticket = body["ticket"]
    assert ticket["comment"]["public"] is False and ticket["priority"] == "high"
    assert ticket["requester"] == {"email": "ana@example.com", "name": "ana"}
    assert ticket["external_id"] == "handoff:d-1" and "tactful" in ticket["tags"]
    note = ticket["comment"]["body"]
    for part in (PACKAGE["goal"], PACKAGE["recommended_next_step"], "frustration 0.82"):
        assert part in note
    assert "I was charged twice and nobody answers" in note

    assert [(m, p) for m, p, _, _ in ic.requests] == [
        ("POST", "/tickets"),
        ("POST", "/tickets/1295/reply"),
    ]
    assert ic.requests[0][3]["contacts"] == [{"email": "ana@example.com"}]
    assert "Refund the second charge" in ic.requests[1][3]["body"]

    assert [(m, p) for m, p, _, _ in fd.requests] == [
        ("POST", "/api/v2/tickets"),
        ("POST", "/api/v2/tickets/1/notes"),
    ]
    created, noted = fd.requests[0][3], fd.requests[1][3]
    assert created["email"] == "ana@example.com" and created["priority"] == 3
    assert noted["private"] is True and "Refund the second charge" in noted["body"]


def test_customer_ids_from_helpdesk_webhooks_go_back_as_the_vendors_user_ids():
    with helpdesk("zendesk") as zd, helpdesk("intercom") as ic, helpdesk("freshdesk") as fd:
        ZendeskChannel("z", zd.url, "tactful@acme.example", "zd-api-token").deliver(
            handoff("zendesk:8447388090494")
        )
        IntercomChannel("i", "ic-access-token", "991267", "42", ic.url).deliver(handoff("ana-42"))
        FreshdeskChannel("f", fd.url, "fd-api-key").deliver(handoff("freshdesk:77"))
    assert zd.requests[0][3]["ticket"]["requester_id"] == 8447388090494
    assert ic.requests[0][3]["contacts"] == [{"external_id": "ana-42"}]
    assert fd.requests[0][3]["requester_id"] == 77


def test_a_second_try_after_a_failed_note_adds_the_note_to_the_same_ticket():
    with helpdesk("intercom") as ic:
        channel = IntercomChannel("i", "ic-access-token", "991267", "42", ic.url)
        # the ticket is made, then the note hits a 502
        original = ic.check

        def flaky(path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
            if path.endswith("/reply") and not getattr(flaky, "failed", False):
                flaky.failed = True  # type: ignore[attr-defined]
                return 502, {"error": "bad gateway"}
            return original(path, headers, body)

        ic.check = flaky  # type: ignore[method-assign]
        with pytest.raises(ChannelError, match="will retry") as first:
            channel.deliver(handoff())
        assert not first.value.permanent
        channel.deliver(handoff())
    assert ic.tickets == 1
    assert [p for _, p, _, _ in ic.requests] == [
        "/tickets",
        "/tickets/1295/reply",
        "/tickets/1295/reply",
    ]


ROUTED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text() + (
    "\nchannels: [zendesk]\ndelivery:\n  handoff.created: [zendesk]\n"
)


def test_the_dispatcher_waits_out_retry_after_on_503_and_dead_letters_a_401(
    tmp_path, monkeypatch, make_event
):
    policy = tmp_path / "p.yaml"
    policy.write_text(ROUTED)
    store = SQLiteStore(tmp_path / "d.db")
    Engine(store, PolicyEngine(load_policy(policy)), clock=lambda: NOW).ingest(
        [
            make_event(customer_id=c, text="I want to speak to a human", at="2026-11-20T11:00:00Z")
            for c in ("ana@example.com", "ben@example.com")
        ]
    )
    clock = [NOW]
    with helpdesk("zendesk") as zd:
        channels = channels_file(tmp_path, monkeypatch, {"zendesk": zd.url})
        zendesk = channels["zendesk"]
        zendesk.concurrency = 1  # in order: the first handoff meets the 503
        dispatcher = Dispatcher(store, {"zendesk": zendesk}, clock=lambda: clock[0])
        zd.script = [(503, {"Retry-After": "120"}), (401, {})]
        assert dispatcher.run_once(channel="zendesk") == (0, 2)
        dead = store.list_outbox("dead")
        assert len(dead) == 1 and "answered 401" in dead[0]["last_error"]
        clock[0] += timedelta(seconds=60)  # past the dispatcher's own backoff, not 120 s
        assert dispatcher.run_once(channel="zendesk") == (0, 0)
        clock[0] += timedelta(seconds=61)
        assert dispatcher.run_once(channel="zendesk") == (1, 0)
        dispatcher.stop()
    assert zd.problems == [] and zd.tickets == 1
    assert len(zd.requests) == 3
    store.close()


def test_retry_after_reads_seconds_and_dates_and_other_kinds_are_refused():
    assert retry_after("120") == 120.0 and retry_after(None) is None
    assert retry_after("soon") is None and retry_after("99999") == 3600.0
    then = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
    assert retry_after("Fri, 20 Nov 2026 12:00:30 GMT", now=then - timedelta(seconds=30)) == 30.0
    hold = OutboxRow("a", "a", "ana", "zendesk", "hold.started", {}, 0, NOW)
    with pytest.raises(ChannelError, match=r"handoff\.created actions only") as refused:
        ZendeskChannel("zendesk", "https://acme.zendesk.com", "a@b.c", "t").deliver(hold)
    assert refused.value.permanent
    assert "Refund the second charge" in render_note(handoff())


def test_the_channels_file_refuses_a_helpdesk_without_its_credentials(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n  zendesk:\n    type: zendesk\n    base_url: https://acme.zendesk.com\n"
        "    email: tactful@acme.example\n  ic:\n    type: intercom\n    token: x\n"
    )
    with pytest.raises(ChannelsError) as bad:
        load_channels(path)
    text = str(bad.value)
    assert "channels.zendesk.zendesk.token: Field required" in text
    assert "admin_id" in text and "ticket_type_id" in text

"""The official Segment and RudderStack Python SDKs (segment-analytics-python,
rudder-sdk-python; versions pinned in constraints.txt), unchanged but for their host,
against a real `tactful serve`: what they send arrives, is stored and moves the
customer's state; their bodies are gzipped; a bad write key, a body over Segment's limits
and unknown event names get what Segment's API would give them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import rudderstack.analytics.request as rudder_request
import segment.analytics.request as segment_request
from prometheus_client.parser import text_string_to_metric_families
from requests import Response
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient
from segment.analytics.request import APIError

from tactful.access import ApiKey, new_key
from tactful.state.store import SQLiteStore

from .serving import Launch, Server

DEADLINE = 15.0
RULES = """
rules:
  - event: Plan Downgraded
    type: ticket_opened
    fields: {ticket_id: properties.case, subject: properties.reason}
"""


def add_key(db: Path, *scopes: str) -> str:
    store = SQLiteStore(db)
    key_id, key, secret_hash = new_key()
    store.add_key(ApiKey(key_id, "sdk", frozenset(scopes), secret_hash, datetime.now(UTC)))
    store.close()
    return key


@pytest.fixture
def served(tmp_path: Path, launch: Launch) -> Iterator[tuple[Server, str, str]]:
    """A server with Segment rules, an ingest key (the SDKs' write key) and a read key."""
    db = tmp_path / "sdk.db"
    write_key, read_key = add_key(db, "ingest"), add_key(db, "read")
    rules = tmp_path / "segment.yaml"
    rules.write_text(RULES)
    server = launch(
        db, tmp_path / "actions.jsonl", "--segment-rules", str(rules), "--text-scorer", "lexical"
    )
    yield server, write_key, read_key


@pytest.fixture
def encodings() -> Iterator[list[str | bytes | None]]:
    """The Content-Encoding of each request the SDKs' own sessions send (a response hook
    on their requests.Session: observed, not replaced)."""
    seen: list[str | bytes | None] = []

    def hook(response: Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response.request.headers.get("Content-Encoding"))

    sessions = (segment_request._session, rudder_request._session)
    for session in sessions:
        session.hooks["response"].append(hook)
    yield seen
    for session in sessions:
        session.hooks["response"].remove(hook)


def customer(server: Server, read_key: str, customer_id: str, ready: Callable[[Any], bool]) -> Any:
    """The customer's state once ``ready`` holds (the SDKs send from a thread)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        r = httpx.get(
            f"{server.url}/v1/customers/{customer_id}",
            headers={"Authorization": f"Bearer {read_key}"},
            timeout=5,
        )
        state = r.json() if r.status_code == 200 else None
        if state is not None and ready(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"{customer_id} not as expected within {DEADLINE} s: {r.text}")
        time.sleep(0.05)


def send_journey(sdk: Any, user: str, account: str) -> None:
    """What a product instrumented with Segment's spec sends about a customer in trouble."""
    sdk.identify(user, {"tier": "enterprise", "email": f"{user}@example.com"})
    sdk.group(user, account, {"name": "Acme", "employees": 300})
    sdk.page(user, "account", "Cancel", {"path": "/account/cancel"})
    sdk.screen(user, "mobile", "Billing")
    for amount in (49, 49, 49):
        sdk.track(user, "Payment Failed", {"amount": amount, "currency": "USD"})
    sdk.track(user, "Button Clicked", {"button_id": "retry-payment"})
    sdk.track(user, "Plan Downgraded", {"case": "C-17", "reason": "card keeps failing"})
    sdk.track(user, "Pricing Page Loitered", {"seconds": 40})  # no rule knows this one


def check_journey(server: Server, read_key: str, user: str, account: str) -> None:
    state = customer(server, read_key, user, lambda s: s["events_seen"] >= 10)
    assert state["events_seen"] == 10  # every call became an event: none lost, none doubled
    assert state["account_id"] == account
    assert state["payment_failures_30d"] == 3
    assert state["open_tickets"] == ["C-17"]  # by the rule in --segment-rules
    names = {s["name"] for s in state["active_signals"]}
    assert {"cancel_page", "payment_failed"} <= names
    assert state["account"]["tier"] == "enterprise"


def unmapped(server: Server, read_key: str) -> dict[str, float]:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {read_key}"}, timeout=5
    ).text
    return {
        s.labels["event"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "tactful_segment_unmapped_events"
        for s in f.samples
        if s.name.endswith("_total")
    }


def test_segments_python_sdk_unchanged_but_its_host(served, encodings):
    server, write_key, read_key = served
    errors: list[Exception] = []
    sdk = SegmentClient(
        write_key,
        host=server.url,
        gzip=True,
        upload_interval=0.05,
        on_error=lambda e, batch: errors.append(e),
    )
    send_journey(sdk, "ben", "acme")
    sdk.flush()
    sdk.join()
    assert errors == []
    check_journey(server, read_key, "ben", "acme")
    assert encodings and set(encodings) == {"gzip"}
    assert unmapped(server, read_key) == {"Pricing Page Loitered": 1.0}


def test_rudderstacks_python_sdk_unchanged_but_its_host(served, encodings):
    server, write_key, read_key = served
    errors: list[Exception] = []
    sdk = RudderClient(
        write_key,
        host=server.url,
        upload_interval=0.05,
        on_error=lambda e, batch: errors.append(e),
    )  # gzip is its default
    send_journey(sdk, "ana", "globex")
    sdk.flush()
    sdk.join()
    assert errors == []
    check_journey(server, read_key, "ana", "globex")
    assert encodings and set(encodings) == {"gzip"}


def test_what_the_sdks_are_told_when_segment_would_refuse(served):
    server, write_key, read_key = served
    # a write key that is not a key: 401, which the SDK reports (and does not retry)
    wrong = SegmentClient("not-a-key", host=server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as refused:
        wrong.track("ben", "Button Clicked")
    assert refused.value.status == 401 and refused.value.code == "unauthorized"
    assert "not valid" in refused.value.message
    reader = SegmentClient(read_key, host=server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as forbidden:
        reader.track("ben", "Button Clicked")
    assert forbidden.value.status == 403 and "ingest" in forbidden.value.message
    # over Segment's limits: the SDK's own request function gets Segment's 400
    call = {"type": "track", "userId": "ben", "event": "Export Done", "messageId": "big"}
    fat = {**call, "properties": {"log": "x" * 33_000}}
    with pytest.raises(APIError) as too_big:
        segment_request.post(write_key, server.url, gzip=True, batch=[fat])
    assert too_big.value.status == 400 and too_big.value.code == "invalid_request"
    assert "batch[0]" in too_big.value.message and "32 KB" in too_big.value.message
    many = [{**call, "messageId": f"m{i}", "properties": {"log": "y" * 30_000}} for i in range(18)]
    with pytest.raises(rudder_request.APIError) as batch_too_big:
        rudder_request.post(write_key, server.url, batch=many)
    assert batch_too_big.value.status == 400 and "500 KB" in batch_too_big.value.message
    ok = segment_request.post(write_key, server.url, gzip=True, batch=many[:10])
    assert ok.status_code == 200 and ok.json() == {"success": True}
    state = customer(server, read_key, "ben", lambda s: s["events_seen"] >= 10)
    assert state["events_seen"] == 10
    assert unmapped(server, read_key) == {"Export Done": 10.0}

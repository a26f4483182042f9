"""Segment's HTTP tracking API, in process: answers, limits, gzip, write keys, and the
mapping rules (defaults, a rules file, its errors). The real SDKs against a real server:
tests/test_segment_sdks.py."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tactful.access import ApiKey, new_key
from tactful.api.app import create_app
from tactful.api.segment import (
    DEFAULT_RULES,
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    RulesError,
    load_rules,
    map_call,
    parse_rules,
    use_rules,
)
from tactful.events import EventError, parse_event
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
OK = {"success": True}


@pytest.fixture
def client(store: SQLiteStore) -> Iterator[TestClient]:
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    with TestClient(create_app(engine)) as c:
        yield c


def track(event: str, user: str = "ana", msg: str | None = None, **props: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "userId": user,
        "event": event,
        "properties": props,
        "timestamp": "2026-11-02T11:00:00Z",
    }
    if msg:
        call["messageId"] = msg
    return call


def events(store: SQLiteStore, customer: str) -> list[dict[str, Any]]:
    return [e["event"] for e in store.list_events(customer)]


def unmapped(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        s.labels["event"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "tactful_segment_unmapped_events"
        for s in f.samples
        if s.name.endswith("_total")
    }


def test_track_maps_by_the_default_rules_and_answers_as_segment(client, store):
    r = client.post(
        "/v1/track", json=track("Payment Failed", total=49.0, currency="EUR", plan="pro")
    )
    assert r.status_code == 200 and r.json() == OK
    (stored,) = events(store, "ana")
    assert stored["type"] == "payment_failed" and stored["amount"] == 49.0
    assert stored["currency"] == "EUR"
    assert stored["context"]["event"] == "Payment Failed"
    assert stored["context"]["properties"] == {"plan": "pro"}  # nothing the rule left is lost
    assert client.get("/v1/customers/ana").json()["payment_failures_30d"] == 1
    clicked = client.post("/v1/track", json=track("Pricing CTA Clicked", button_id="upgrade"))
    assert clicked.json() == OK
    click = next(e for e in events(store, "ana") if e["type"] == "click")
    assert click["element"] == "upgrade"  # "* Clicked", from properties.button_id


def test_every_call_type_batch_gzip_and_batch_context(client, store):
    batch = {
        "batch": [
            {"type": "identify", "userId": "ben", "traits": {"tier": "enterprise"}},
            {"type": "group", "userId": "ben", "groupId": "acme", "traits": {"name": "Acme"}},
            {"type": "page", "userId": "ben", "name": "Cancel"},  # path from context.page
            {"type": "screen", "userId": "ben", "name": "Settings"},
            {"type": "track", "userId": "ben", "event": "Ticket Created", "properties": {"id": 7}},
        ],
        "context": {"page": {"path": "/account/cancel"}, "library": {"name": "analytics-x"}},
        "sentAt": "2026-11-02T11:59:00Z",
    }
    body = gzip.compress(json.dumps(batch).encode())
    r = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json() == OK
    got = {e["type"]: e for e in events(store, "ben")}
    assert set(got) == {"identify", "page_view", "ticket_opened"}
    page = next(e for e in events(store, "ben") if e.get("title") == "Cancel")
    assert page["path"] == "/account/cancel"
    assert page["context"]["segment"]["library"] == {"name": "analytics-x"}
    assert got["ticket_opened"]["ticket_id"] == "7"  # from properties.id, as an id
    state = client.get("/v1/customers/ben").json()
    assert state["account_id"] == "acme" and len(state["open_tickets"]) == 1
    for kind in ("identify", "page", "group", "screen"):  # the single-call endpoints
        one = {"userId": "cy", "name": "Home", "groupId": "g1", "properties": {"path": "/"}}
        assert client.post(f"/v1/{kind}", json=one).json() == OK
    assert len(events(store, "cy")) == 4


def test_unknown_names_are_kept_as_custom_and_counted(client, store):
    for i in range(2):
        client.post("/v1/track", json=track("Pricing Page Loitered", seconds=40))
        client.post("/v1/track", json=track("Pricing Page Loitered", f"u{i}", seconds=40))
    client.post("/v1/track", json=track("Order Completed", revenue=10))  # known: not counted
    kept = events(store, "ana")
    assert len(kept) == 2  # the second call is the first again (no messageId: same content)
    custom = [e for e in kept if e["name"] == "Pricing Page Loitered"]
    assert custom and custom[0]["type"] == "custom" and custom[0]["properties"] == {"seconds": 40}
    assert unmapped(client) == {"Pricing Page Loitered": 3.0}  # ana twice: once


def test_a_retried_call_without_message_id_is_the_same_call(client, store):
    call = {**track("Button Clicked", element="save"), "timestamp": "2026-11-02T11:00:00.123Z"}
    for _ in range(3):
        assert client.post("/v1/track", json=call).json() == OK
    assert len(events(store, "ana")) == 1
    with_id = track("Button Clicked", msg="m-1", element="save")
    client.post("/v1/track", json=with_id)
    client.post("/v1/batch", json={"batch": [{**with_id, "type": "track"}]})
    assert [e["event_id"] for e in events(store, "ana")].count("segment:m-1") == 1


def test_bad_calls_are_answered_200_and_kept_in_quarantine_as_sent(client, store):
    batch = [
        {"type": "track", "event": "Payment Failed", "properties": {"total": -3}, "userId": "ana"},
        {"type": "track", "event": "Button Clicked"},  # nobody
        {"type": "alias", "userId": "ana", "previousId": "x"},
        {"type": "track", "userId": "ana", "event": "Button Clicked", "timestamp": "yesterday"},
        "not a call",
        {"type": "track", "userId": "ana", "event": "Searched", "properties": {"query": "sso"}},
    ]
    r = client.post("/v1/batch", json={"batch": batch})
    assert r.status_code == 200 and r.json() == OK  # as Segment: the debugger is the quarantine
    assert [e["type"] for e in events(store, "ana")] == ["search"]
    rows = store.list_quarantine(10)
    assert all(row["source"] == "segment" for row in rows) and len(rows) == 5
    reasons = {row["reason"][0]["field"]: row for row in rows}
    amount = reasons["properties.total (as amount)"]
    assert (
        amount["reason"][0]["value"] == -3
        and "greater than or equal to 0" in (amount["reason"][0]["why"])
    )
    assert json.loads(amount["raw"])["properties"] == {"total": -3}  # what was sent
    assert "alias calls are not supported" in reasons["type"]["reason"][0]["why"]
    assert "userId" in reasons and "timestamp" in reasons and "call" in reasons


def test_limits_as_segment_documents_them(client, store):
    big = track("Button Clicked", note="x" * MAX_CALL_BYTES)
    r = client.post("/v1/track", json=big)
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False and body["code"] == "invalid_request"
    assert body["errors"][0]["field"] == "body" and "32 KB" in body["message"]
    # a batch: 500 KB in all, 32 KB a call
    one_big = {"batch": [{**track("Button Clicked"), "type": "track"}, {**big, "type": "track"}]}
    r = client.post("/v1/batch", json=one_big)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "batch[1]"
    calls = [
        {**track("Button Clicked", f"m{i}", note="y" * 20_000), "type": "track"} for i in range(30)
    ]
    r = client.post("/v1/batch", json={"batch": calls})
    assert r.status_code == 400 and "500 KB" in r.json()["message"]
    # the limit is on the JSON: a small gzip that inflates past it is refused too
    bomb = gzip.compress(json.dumps({"batch": calls}).encode())
    assert len(bomb) < MAX_CALL_BYTES
    r = client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "500 KB" in r.json()["message"]
    fits = gzip.compress(json.dumps({"batch": calls[:20]}).encode())
    r = client.post("/v1/batch", content=fits, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(json.dumps(calls[:20])) < MAX_BATCH_BYTES
    assert len(events(store, "m1")) == 1 and len(events(store, "m19")) == 1
    for bad, headers, why in [
        (b"{not json", {}, "not valid JSON"),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, "not valid gzip"),
        (gzip.compress(b'{"batch": []}')[:-12], {"Content-Encoding": "gzip"}, "ends early"),
        (b"{}", {"Content-Encoding": "br"}, "only gzip"),
        (b"[1, 2]", {}, "must be a JSON object"),
    ]:
        r = client.post("/v1/batch", content=bad, headers=headers)
        assert r.status_code == 400 and why in r.json()["message"], (bad, r.text)
    assert client.post("/v1/batch", json={"batch": "x"}).status_code == 400
    refused = [row for row in store.list_quarantine(50) if row["reason"][0]["field"] == "body"]
    assert len(refused) >= 7  # every refused body is kept (its first 64 KiB), not dropped


def make_key(store: SQLiteStore, *scopes: str) -> str:
    key_id, key, secret_hash = new_key()
    store.add_key(ApiKey(key_id, "segment", frozenset(scopes), secret_hash, NOW))
    return key


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_the_write_key_is_an_ingest_key_as_basic_user_name(client, store):
    ingest, read = make_key(store, "ingest"), make_key(store, "read")
    client.app.state.keyring.refresh()
    call = track("Button Clicked", element="x")
    assert client.post("/v1/track", json=call, headers=basic(ingest)).json() == OK
    for headers, status, code in [
        ({}, 401, "unauthorized"),
        (basic(ingest[:-2] + "zz"), 401, "unauthorized"),
        (basic("not-a-key"), 401, "unauthorized"),
        (basic(read), 403, "forbidden"),
    ]:
        r = client.post("/v1/batch", json={"batch": [{**call, "type": "track"}]}, headers=headers)
        assert r.status_code == status and r.json()["code"] == code, r.text
        assert r.json()["message"] and r.json()["success"] is False
    assert client.post("/v1/track", json=call).headers["www-authenticate"].startswith("Basic")


RULES = """
rules:
  - event: Plan Changed
    where: {properties.direction: downgrade}
    type: message
    fields: {text: properties.reason}
    set: {channel: other}
  - event: [Export Failed, "Import * Failed"]
    where: {properties.http_status: {gte: 500}}
    type: api_error
    fields: {endpoint: [properties.endpoint, context.page.path], status: properties.http_status}
  - event: Payment Failed     # before the default: this team sends the amount in cents
    type: payment_failed
    fields: {amount: properties.cents}
"""


def test_a_rules_file_comes_first_and_falls_back_to_the_defaults(tmp_path: Path):
    path = tmp_path / "segment.yaml"
    path.write_text(RULES)
    rules = load_rules(path)

    def mapped(call: dict[str, Any]) -> dict[str, Any]:
        return map_call({**call, "type": "track"}, rules, NOW.isoformat()).event

    down = mapped(track("Plan Changed", direction="downgrade", reason="too expensive"))
    assert down["type"] == "message" and down["text"] == "too expensive"
    assert down["channel"] == "other" and down["context"]["properties"] == {
        "direction": "downgrade"
    }
    up = mapped(track("Plan Changed", direction="upgrade"))
    assert up["type"] == "custom"  # the condition failed: no rule knew it
    err = mapped(track("Import CSV Failed", http_status=502, endpoint="/imports"))
    assert err["type"] == "api_error" and err["status"] == 502 and err["endpoint"] == "/imports"
    assert mapped(track("Import CSV Failed", http_status=404))["type"] == "custom"
    assert mapped(track("Payment Failed", cents=500))["amount"] == 500
    assert mapped(track("Button Clicked", id="b"))["element"] == "b"  # the defaults still apply
    no_defaults = parse_rules({"rules": [], "defaults": False}, "inline")
    assert (
        map_call({**track("Button Clicked"), "type": "track"}, no_defaults, NOW.isoformat()).event[
            "type"
        ]
        == "custom"
    )


@pytest.mark.parametrize(
    ("text", "field", "why"),
    [
        ("rules: [{event: X, type: purchase}]", "rules.0.type", "unknown type"),
        ("rules: [{event: X, type: click, fields: {amount: properties.a}}]", "rules.0", "amount"),
        ("rules: [{event: X, type: click, fields: {element: button}}]", "rules.0", "must start"),
        ("rules: [{event: X, type: click, where: {plan: pro}}]", "rules.0.where", "must start"),
        ("rules: [{event: X, type: click, colour: red}]", "rules.0.colour", "unknown key"),
        ("rules: [{event: '--', type: click}]", "rules.0.event", "letter or digit"),
        ("rules: [{event: X, type: click, where: {properties.a: {gte: x}}}]", "rules.0.where", ""),
        ("- just a list", "(file)", "mapping"),
        ("rules: [: bad", "(file)", "not YAML"),
    ],
)
def test_a_bad_rules_file_says_field_value_and_why(tmp_path, text, field, why):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    problem = caught.value.problems[0]
    assert problem.field.startswith(field) and why in problem.why, caught.value
    assert str(path) in str(caught.value)


def test_rules_set_on_the_app_are_used(store):
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    app = create_app(engine)
    use_rules(
        app,
        parse_rules({"rules": [{"event": "Ping", "type": "search", "set": {"query": "p"}}]}, "t"),
    )
    with TestClient(app) as c:
        assert c.post("/v1/track", json=track("Ping")).json() == OK
    assert events(store, "ana")[0]["type"] == "search"
    assert DEFAULT_RULES.match("Ping", {}) is None


def test_the_rules_file_in_the_docs_loads_and_maps():
    import re

    import yaml

    docs = Path(__file__).resolve().parents[1] / "docs" / "segment.md"
    (block,) = re.findall(r"```yaml\n(.*?)```", docs.read_text(), re.S)
    rules = parse_rules(yaml.safe_load(block), "docs/segment.md")
    call = {
        **track("Plan Changed", direction="downgrade", seats=12, reason="cost"),
        "type": "track",
    }
    assert map_call(call, rules, NOW.isoformat()).event["text"] == "cost"


def test_set_constants_are_checked_when_the_rules_load():
    with pytest.raises(RulesError, match=r"set.amount=-1: Input should be greater"):
        parse_rules(
            {"rules": [{"event": "X", "type": "payment_failed", "set": {"amount": -1}}]}, "t"
        )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
_calls = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"])
        | _json,
        "userId": st.text(max_size=10) | st.integers() | _json,
        "anonymousId": st.text(max_size=10),
        "messageId": st.text(max_size=10) | _json,
        "event": st.sampled_from(["Payment Failed", "Button Clicked", "API Error", "Signed Up"])
        | st.text(max_size=20)
        | _json,
        "properties": st.dictionaries(
            st.sampled_from(["amount", "total", "status", "id", "rating", "path", "text", "x"]),
            _json,
        )
        | _json,
        "traits": _json,
        "context": st.fixed_dictionaries({}, optional={"page": _json, "traits": _json}) | _json,
        "timestamp": st.sampled_from(["2026-11-02T10:00:00Z", "yesterday", ""]) | _json,
        "groupId": st.text(max_size=10) | _json,
        "name": st.text(max_size=10) | _json,
    },
)


@given(_calls)
@settings(max_examples=300, deadline=None)
def test_any_call_maps_or_says_why(call):
    """The mapping and the validation after it raise nothing but field/value/why errors."""
    try:
        mapped = map_call(call, DEFAULT_RULES, NOW.isoformat())
        parse_event(mapped.event, now=NOW)
    except EventError as exc:
        assert exc.problems and all(p.field and p.why for p in exc.problems)

"""The HTTP API, in process: ingest, quarantine, limits, idempotency, Segment, the demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tactful.api.app import MAX_BATCH, MAX_BODY_BYTES, create_app
from tactful.events import SEGMENT_TRACK_EVENTS
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.signals import DIMENSIONS
from tactful.state.store import SQLiteStore

NOW = datetime(2026, 10, 21, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[1] / "examples" / "two_customers.jsonl"


def event(**fields: Any) -> dict[str, Any]:
    """A valid message event, with ``fields`` overriding the defaults."""
    base: dict[str, Any] = {
        "event_id": "ev-1",
        "type": "message",
        "customer_id": "zoe",
        "timestamp": "2026-10-20T10:00:00Z",
        "text": "This is useless. Can I talk to a real person please?",
    }
    return base | fields


def demo_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEMO.read_text().splitlines() if line.strip()]


@pytest.fixture
def client(store: SQLiteStore) -> Iterator[TestClient]:
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    with TestClient(create_app(engine)) as c:
        yield c


def post(client: TestClient, body: Any) -> Any:
    return client.post("/v1/events", json=body)


def quarantine(client: TestClient) -> list[dict[str, Any]]:
    r = client.get("/v1/quarantine")
    assert r.status_code == 200
    rows: list[dict[str, Any]] = r.json()["quarantine"]
    return rows


def decisions(client: TestClient, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/decisions", params=params)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["decisions"]
    return rows


def events_count(client: TestClient) -> int:
    return int(client.get("/healthz").json()["events"])


# --- one event -------------------------------------------------------------------------


def test_one_event_is_accepted_with_its_decisions(client: TestClient) -> None:
    r = post(client, event())
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 0)
    [result] = body["results"]
    assert result["index"] == 0
    assert result["status"] == "accepted"
    assert result["event_id"] == "ev-1"
    assert result["errors"] == []
    assert "wants_human" in result["signals"]
    kinds = {(d["kind"], d["rule_id"]) for d in result["decisions"]}
    assert ("escalate", "human_requested") in kinds
    assert ("hold", "human_requested") in kinds
    hold = next(d for d in result["decisions"] if d["kind"] == "hold")
    assert hold["params"]["categories"] == ["promotional"]

    r = client.get("/v1/customers/zoe")
    assert r.status_code == 200
    state = r.json()
    assert state["customer_id"] == "zoe"
    assert state["events_seen"] == 1
    assert set(state["trend"]) == set(DIMENSIONS)
    assert state["trend"]["wants_human"] > 0
    assert all(0 <= v <= 1 for v in state["trend"].values())
    assert [h["queue"] for h in state["open_handoffs"]] == ["general"]
    assert [h["active"] for h in state["holds"]] == [True]
    assert {d["rule_id"] for d in state["recent_decisions"]} == {"human_requested"}


def test_unknown_customer_is_404(client: TestClient) -> None:
    r = client.get("/v1/customers/nobody")
    assert r.status_code == 404
    assert "nobody" in r.json()["detail"]


# --- validation and quarantine -----------------------------------------------------------

BAD_EVENTS: dict[str, tuple[dict[str, Any], str, Any, str]] = {
    # event_id: (payload, field, value reported, words in why)
    "bad-no-customer": (
        {k: v for k, v in event(event_id="bad-no-customer").items() if k != "customer_id"},
        "customer_id",
        None,
        "required",
    ),
    "bad-type": (
        event(event_id="bad-type", type="telepathy"),
        "type",
        "telepathy",
        "unknown event type",
    ),
    "bad-future": (
        event(event_id="bad-future", timestamp="2026-10-21T00:10:00Z"),
        "timestamp",
        "2026-10-21T00:10:00+00:00",
        "future",
    ),
    "bad-naive": (
        event(event_id="bad-naive", timestamp="2026-10-20T10:00:00"),
        "timestamp",
        "2026-10-20T10:00:00",
        "timezone",
    ),
    "bad-long": (
        event(event_id="bad-long", text="x" * 10_001),
        "text",
        "x" * 200 + "...",
        "10000",
    ),
}


def test_a_mixed_batch_accepts_the_good_and_reports_each_bad_one(client: TestClient) -> None:
    good = [
        event(event_id="good-1", customer_id="gus", text="hello there"),
        # within the 5 minute clock-skew tolerance
        event(event_id="good-2", customer_id="gus", timestamp="2026-10-21T00:04:00Z", text="hi"),
    ]
    bad = [payload for payload, *_ in BAD_EVENTS.values()]
    batch = [good[0], *bad, good[1]]
    r = post(client, batch)
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, len(bad))
    results = body["results"]
    assert [x["index"] for x in results] == list(range(len(batch)))
    assert results[0]["status"] == results[-1]["status"] == "accepted"

    for result in results[1:-1]:
        assert result["status"] == "rejected"
        assert result["decisions"] == []
        _, field, value, why = BAD_EVENTS[result["event_id"]]
        [error] = result["errors"]
        assert error["field"] == field, result
        assert error["value"] == value
        assert why in error["why"], error

    type_error = next(x for x in results if x["event_id"] == "bad-type")["errors"][0]
    assert "message" in type_error["why"] and "payment_failed" in type_error["why"]

    assert client.get("/v1/customers/gus").json()["events_seen"] == 2
    assert events_count(client) == 2

    rows = quarantine(client)
    assert len(rows) == len(bad)
    by_id = {row["event_id"]: row for row in rows}
    assert set(by_id) == set(BAD_EVENTS)
    for event_id, (payload, field, _, why) in BAD_EVENTS.items():
        row = by_id[event_id]
        assert row["source"] == "api"
        assert row["reason"][0]["field"] == field
        assert why in row["reason"][0]["why"]
        assert json.loads(row["raw"]) == payload  # the whole raw payload is kept
    assert by_id["bad-type"]["customer_id"] == "zoe"
    assert by_id["bad-no-customer"]["customer_id"] is None


def test_unknown_type_error_names_the_type_as_its_value(client: TestClient) -> None:
    r = post(client, [event(event_id="t-1", type="telepathy"), event(event_id="t-2", type=None)])
    errors = [x["errors"][0] for x in r.json()["results"]]
    assert [e["field"] for e in errors] == ["type", "type"]
    assert [e["value"] for e in errors] == ["telepathy", None]


def test_a_request_whose_events_are_all_bad_is_422(client: TestClient) -> None:
    bad = [BAD_EVENTS["bad-naive"][0], BAD_EVENTS["bad-future"][0]]
    r = post(client, bad)
    assert r.status_code == 422
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [x["errors"][0]["field"] for x in body["results"]] == ["timestamp", "timestamp"]
    assert {row["event_id"] for row in quarantine(client)} == {"bad-naive", "bad-future"}
    assert events_count(client) == 0


def test_bad_json_is_400_and_quarantined(client: TestClient) -> None:
    raw = '[{"event_id": "broken", "type": "message",'
    r = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert error["value"] == raw
    assert error["why"].startswith("not valid JSON")
    [row] = quarantine(client)
    assert row["raw"] == raw
    assert row["reason"][0]["field"] == "body"
    assert "not valid JSON" in row["reason"][0]["why"]


def test_a_body_over_5_mib_is_413_and_quarantined(client: TestClient) -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    r = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert error["value"] == len(body)
    assert str(MAX_BODY_BYTES) in error["why"]
    [row] = quarantine(client)
    assert "size limit" in row["reason"][0]["why"]
    assert str(len(body)) in row["raw"]
    assert events_count(client) == 0


def _chunked(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    yield b'[{"event_id": "huge", "text": "'
    sent = 0
    while sent < total:
        yield b"y" * chunk
        sent += chunk


def test_a_streamed_body_over_5_mib_is_413_and_quarantined(client: TestClient) -> None:
    # No content-length: the limit is enforced while reading the stream.
    r = client.post("/v1/events", content=_chunked(MAX_BODY_BYTES + 1))
    assert r.status_code == 413
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert error["value"] > MAX_BODY_BYTES
    [row] = quarantine(client)
    assert "size limit" in row["reason"][0]["why"]
    assert events_count(client) == 0


def test_a_streamed_body_over_5_mib_keeps_its_first_64_kib(client: TestClient) -> None:
    # The test client delivers a streamed body as one ASGI message.
    r = client.post("/v1/events", content=_chunked(MAX_BODY_BYTES + 1))
    assert r.status_code == 413
    [row] = quarantine(client)
    assert row["raw"].startswith('[{"event_id": "huge"')
    assert len(row["raw"]) == 65_536


def test_a_batch_over_the_limit_is_413_naming_the_limit(client: TestClient) -> None:
    batch = [event(event_id=f"big-{i}") for i in range(MAX_BATCH + 1)]
    r = post(client, batch)
    assert r.status_code == 413
    [error] = r.json()["errors"]
    assert error["field"] == "batch"
    assert error["value"] == MAX_BATCH + 1
    assert f"at most {MAX_BATCH} events" in error["why"]
    assert events_count(client) == 0
    [row] = quarantine(client)
    assert f"batch of {MAX_BATCH + 1} events" in row["reason"][0]["why"]

    # exactly at the limit is fine
    r = post(client, batch[:MAX_BATCH])
    assert r.status_code == 202
    assert r.json()["accepted"] == MAX_BATCH


def test_an_empty_array_is_422(client: TestClient) -> None:
    r = post(client, [])
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "batch"
    assert "empty" in error["why"]


def test_a_non_object_event_is_rejected(client: TestClient) -> None:
    r = post(client, [42])
    assert r.status_code == 422
    [error] = r.json()["results"][0]["errors"]
    assert error["field"] == "event"
    assert "JSON object" in error["why"]


# --- idempotency -------------------------------------------------------------------------


def test_duplicates_in_a_batch_and_across_requests_have_no_second_effect(
    client: TestClient,
) -> None:
    r = post(client, [event(event_id="d-1"), event(event_id="d-1", text="changed")])
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    first, second = body["results"]
    assert first["status"] == "accepted" and first["decisions"]
    assert second == {
        "index": 1,
        "status": "duplicate",
        "event_id": "d-1",
        "errors": [],
        "signals": [],
        "decisions": [],
    }
    before = decisions(client, customer_id="zoe")
    assert before
    assert client.get("/v1/customers/zoe").json()["events_seen"] == 1

    r = post(client, event(event_id="d-1"))
    assert r.status_code == 202
    assert r.json()["results"][0]["status"] == "duplicate"
    assert r.json()["duplicates"] == 1

    assert client.get("/v1/customers/zoe").json()["events_seen"] == 1
    after = decisions(client, customer_id="zoe")
    assert after == before
    assert len({d["decision_id"] for d in after}) == len(after)
    assert events_count(client) == 1
    assert quarantine(client) == []


# --- the Segment spec --------------------------------------------------------------------

SEGMENT_TRACK = {
    "type": "track",
    "event": "Payment Failed",
    "messageId": "msg-1",
    "userId": "sam",
    "timestamp": "2026-10-20T10:00:00Z",
    "properties": {"amount": 20, "currency": "EUR", "reason": "expired_card", "plan": "pro"},
}
SEGMENT_PAGE = {
    "type": "page",
    "name": "Billing",
    "messageId": "msg-2",
    "userId": "sam",
    "timestamp": "2026-10-20T10:01:00Z",
    "properties": {"path": "/settings/billing", "title": "Billing"},
}
SEGMENT_IDENTIFY = {
    "type": "identify",
    "messageId": "msg-3",
    "userId": "sam",
    "timestamp": "2026-10-20T10:02:00Z",
    "traits": {"tier": "enterprise", "value": 50_000, "email": "sam@example.com"},
    "context": {"groupId": "acme"},
}


def test_segment_calls_map_to_native_events(client: TestClient) -> None:
    r = post(client, {"batch": [SEGMENT_TRACK, SEGMENT_PAGE, SEGMENT_IDENTIFY]})
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 3
    results = body["results"]
    assert [x["event_id"] for x in results] == ["segment:msg-1", "segment:msg-2", "segment:msg-3"]
    assert results[0]["signals"] == ["payment_failed"]

    state = client.get("/v1/customers/sam").json()
    assert state["events_seen"] == 3
    assert state["payment_failures_30d"] == 1
    assert state["account_id"] == "acme"
    assert state["account"]["tier"] == "enterprise"
    assert state["account"]["value"] == 50_000
    assert state["account"]["traits"] == {"email": "sam@example.com"}
    assert state["topic"] == "billing"

    # resending the same messageId is a duplicate, alone or in a batch
    r = post(client, SEGMENT_TRACK)
    assert r.status_code == 202
    assert r.json()["results"][0] == {
        "index": 0,
        "status": "duplicate",
        "event_id": "segment:msg-1",
        "errors": [],
        "signals": [],
        "decisions": [],
    }
    r = post(client, {"batch": [SEGMENT_PAGE, SEGMENT_IDENTIFY]})
    assert r.json()["duplicates"] == 2
    assert client.get("/v1/customers/sam").json()["events_seen"] == 3


def test_a_segment_track_with_an_unknown_name_lists_the_known_ones(client: TestClient) -> None:
    unknown = {**SEGMENT_TRACK, "event": "Order Completed", "messageId": "msg-9"}
    r = post(client, [unknown, SEGMENT_TRACK])
    assert r.status_code == 202
    rejected = r.json()["results"][0]
    assert rejected["status"] == "rejected"
    [error] = rejected["errors"]
    assert error["field"] == "event"
    assert error["value"] == "Order Completed"
    assert "no native mapping" in error["why"]
    for name in SEGMENT_TRACK_EVENTS:
        assert name in error["why"]
    [row] = quarantine(client)
    assert json.loads(row["raw"]) == unknown
    assert row["reason"] == [error]


def test_a_segment_call_without_a_user_is_rejected(client: TestClient) -> None:
    anonymous = {k: v for k, v in SEGMENT_PAGE.items() if k != "userId"}
    r = post(client, anonymous)
    assert r.status_code == 422
    [error] = r.json()["results"][0]["errors"]
    assert error["field"] == "userId"


# --- the demo: customers A (ana) and B (ben) ---------------------------------------------


@pytest.fixture
def demo(client: TestClient) -> dict[str, Any]:
    events = demo_events()
    r = post(client, events)
    assert r.status_code == 202
    body: dict[str, Any] = r.json()
    bad = [e for e in events if "customer_id" not in e]
    assert body["accepted"] == len(events) - len(bad)
    assert body["rejected"] == len(bad) == 1
    return body


def test_ben_is_held_from_marketing_and_handed_to_billing(
    client: TestClient, demo: dict[str, Any]
) -> None:
    ben = client.get("/v1/customers/ben").json()
    assert ben["payment_failures_30d"] == 3
    assert len(ben["open_tickets"]) == 2
    active_holds = {h["hold_id"]: h for h in ben["holds"] if h["active"]}

    for category in ("promotional", "educational"):
        r = client.get("/v1/customers/ben/eligibility", params={"category": category})
        assert r.status_code == 200
        answer = r.json()
        assert answer["customer_id"] == "ben"
        assert answer["category"] == category
        assert answer["eligible"] is False
        assert answer["hold_id"] in active_holds
        assert category in active_holds[answer["hold_id"]]["categories"]
        assert answer["reason"].startswith("on hold until")
        assert datetime.fromisoformat(answer["hold_ends_at"]) > NOW

    edu = client.get("/v1/customers/ben/eligibility", params={"category": "educational"}).json()
    assert "billing_breakdown" in edu["reason"]

    escalations = [d for d in decisions(client, customer_id="ben") if d["kind"] == "escalate"]
    assert [d["params"]["queue"] for d in escalations] == ["billing"]
    assert escalations[0]["rule_id"] == "billing_breakdown"
    assert escalations[0]["reasons"]
    assert escalations[0]["factors"]["state.payment_failures_30d"] == 3
    assert [h["queue"] for h in ben["open_handoffs"]] == ["billing"]


def test_ana_gets_a_pointer_not_a_pitch(client: TestClient, demo: dict[str, Any]) -> None:
    r = client.get("/v1/customers/ana/eligibility", params={"category": "promotional"})
    assert r.json()["eligible"] is True
    assert r.json()["hold_id"] is None

    ana = decisions(client, customer_id="ana")
    assert ana
    assert {d["customer_id"] for d in ana} == {"ana"}
    assert "escalate" not in {d["kind"] for d in ana}
    assert "discount" not in json.dumps(ana).lower()
    assert {d["rule_id"] for d in ana} == {"cancel_page_without_history", "invoice_pointer"}


def test_eligibility_of_an_unseen_customer(client: TestClient) -> None:
    answer = client.get("/v1/customers/nobody/eligibility").json()
    assert answer["eligible"] is True
    assert answer["category"] == "promotional"
    assert "not seen" in answer["reason"]
    assert client.get("/v1/customers/x/eligibility", params={"category": "spam"}).status_code == 422


def test_decisions_since_filters_by_time(client: TestClient, demo: dict[str, Any]) -> None:
    everything = decisions(client)
    assert len(everything) == sum(len(x["decisions"]) for x in demo["results"])
    cut = datetime(2026, 10, 14, 9, 5, tzinfo=UTC)
    later = decisions(client, since="2026-10-14T09:05:00Z")
    assert later
    assert len(later) < len(everything)
    assert all(datetime.fromisoformat(d["at"]) >= cut for d in later)
    assert [d for d in everything if datetime.fromisoformat(d["at"]) >= cut] == later
    # the same instant in another timezone
    assert decisions(client, since="2026-10-14T11:05:00+02:00") == later
    ben_later = decisions(client, customer_id="ben", since="2026-10-14T09:05:00Z")
    assert {d["customer_id"] for d in ben_later} == {"ben"}
    assert "escalate" in {d["kind"] for d in ben_later}
    assert decisions(client, since="2027-01-01T00:00:00Z") == []


def test_decisions_filter_by_policy_version_rule_and_kind(
    client: TestClient, demo: dict[str, Any]
) -> None:
    everything = decisions(client)
    version = everything[0]["policy_version"]
    assert decisions(client, policy_version=version) == everything
    assert decisions(client, policy_version="other-1+0000000000") == []
    holds = decisions(client, kind="hold")
    assert holds and holds == [d for d in everything if d["kind"] == "hold"]
    rule = holds[0]["rule_id"]
    assert decisions(client, rule_id=rule, kind="hold") == [
        d for d in holds if d["rule_id"] == rule
    ]


def test_decisions_since_without_a_timezone_is_422(client: TestClient) -> None:
    r = client.get("/v1/decisions", params={"since": "2026-10-14T09:05:00"})
    assert r.status_code == 422
    assert "timezone" in r.json()["detail"][0]["msg"]


# --- operations ----------------------------------------------------------------------------


def test_healthz_reports_ok_and_counts(client: TestClient, demo: dict[str, Any]) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "ok"
    assert health["events"] == demo["accepted"]
    assert health["policy_version"] == load_policy().versioned
    assert health["outbox_pending"] > 0  # nothing delivers in this test
    assert datetime.fromisoformat(health["time"]).tzinfo is not None


def test_metrics_count_events_and_decisions(client: TestClient, demo: dict[str, Any]) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "tactful_events_total" in text
    assert "tactful_decisions_total" in text

    samples = {
        family.name: [s for s in family.samples if s.name.endswith("_total")]
        for family in text_string_to_metric_families(text)
    }
    events = samples["tactful_events"]
    accepted = sum(s.value for s in events if s.labels["status"] == "accepted")
    rejected = sum(s.value for s in events if s.labels["status"] == "rejected")
    assert (accepted, rejected) == (demo["accepted"], demo["rejected"])

    seen: dict[str, int] = {}
    for result in demo["results"]:
        for d in result["decisions"]:
            seen[d["kind"]] = seen.get(d["kind"], 0) + 1
    counted: dict[str, float] = {}
    for s in samples["tactful_decisions"]:
        counted[s.labels["kind"]] = counted.get(s.labels["kind"], 0) + s.value
    assert counted == seen
    assert {"escalate", "hold", "clarify", "assist", "notify"} <= set(counted)


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "tactful"
    assert {
        "/v1/events",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/eligibility",
        "/v1/decisions",
        "/v1/quarantine",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    assert {"202", "400", "413", "422"} <= set(spec["paths"]["/v1/events"]["post"]["responses"])


def test_a_decision_is_explained_with_its_event_and_what_lost(
    client: TestClient, demo: dict[str, Any]
) -> None:
    r = client.get("/v1/decisions/demo-012/billing_breakdown/escalate")
    assert r.status_code == 200
    d = r.json()
    assert d["rule_id"] == "billing_breakdown" and d["kind"] == "escalate"
    assert d["factors"]["threshold.payment_failures"] == 2
    assert d["matched"][0] == "billing_breakdown"
    assert any(line.startswith("frustration_rising/hold") for line in d["lost"])
    assert d["event"]["event"]["path"] == "/account/cancel"
    assert {"kind": "hold", "rule_id": "billing_breakdown"}.items() <= d["also_decided"][0].items()
    assert client.get("/v1/decisions/no/such/decision").status_code == 404


def test_decide_answers_a_bot_with_the_next_move(client: TestClient) -> None:
    r = client.post("/v1/decide", json=event())  # "useless ... talk to a real person"
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "accepted"
    assert body["policy_version"].startswith("default-")
    g = body["guidance"]
    assert g["next"] == "handoff" and g["stop_automation"] is True
    assert g["rule_id"] == "human_requested" and g["priority"] == "high"
    assert g["queue"] in g["say"] and g["hold_marketing"] is True
    assert any(d["kind"] == "escalate" for d in body["decisions"])
    assert any(s["name"] == "wants_human" for s in body["signals"])
    assert body["took_ms"] >= 0

    # A retried call gets the same decisions and has no second effect.
    before = len(decisions(client, customer_id="zoe"))
    again = client.post("/v1/decide", json=event()).json()
    assert again["status"] == "duplicate"
    assert [d["decision_id"] for d in again["decisions"]] == [
        d["decision_id"] for d in body["decisions"]
    ]
    assert again["guidance"] == g
    assert len(decisions(client, customer_id="zoe")) == before


def test_decide_asks_one_question_or_carries_on(client: TestClient) -> None:
    confused = event(
        event_id="q1",
        customer_id="yan",
        text="I'm confused, I don't understand where the webhook settings are? How do I?",
    )
    g = client.post("/v1/decide", json=confused).json()["guidance"]
    assert g["next"] == "clarify" and g["say"].endswith("?")
    calm = event(event_id="q2", customer_id="xia", text="Thanks, all good now.")
    g = client.post("/v1/decide", json=calm).json()["guidance"]
    assert g == {"next": "continue", "tone": "neutral", "hold_marketing": False}


def test_decide_rejects_what_it_cannot_take(client: TestClient) -> None:
    r = client.post("/v1/decide", json=event(timestamp="yesterday"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "timestamp"
    r = client.post("/v1/decide", json=[event(), event(event_id="ev-2")])
    assert r.status_code == 422 and "one event per call" in r.json()["errors"][0]["why"]
    r = client.post("/v1/decide", content=b"{not json")
    assert r.status_code == 400
    assert len(quarantine(client)) == 2  # the bad event and the bad body


def test_incident_mode_swaps_in_the_crisis_playbook(store: SQLiteStore) -> None:
    clock = [NOW]
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: clock[0])
    with TestClient(create_app(engine)) as client:
        assert client.get("/v1/incident").json()["on"] is False
        r = client.put("/v1/incident", json={"on": True, "by": "olga", "reason": "EU outage"})
        assert r.status_code == 200 and r.json()["on"] is True

        angry = event(event_id="i1", customer_id="ann", text="Your app is down again, awful!!")
        body = client.post("/v1/decide", json=angry).json()
        rules = {d["rule_id"] for d in body["decisions"]}
        assert rules == {"incident_notice"}
        assert body["guidance"]["next"] == "assist" and body["guidance"]["tone"] == "apologetic"
        draft = body["guidance"]["draft"]  # the incident rule asked for a drafted reply
        assert draft["tone"] == "apologetic" and draft["mood"] == "frustrated" and draft["text"]
        assert any("incident mode on since" in line for line in body["decisions"][0]["reasons"])
        # the hard triggers still come first
        human = event(event_id="i2", customer_id="bo", text="Let me talk to a human agent now")
        body = client.post("/v1/decide", json=human).json()
        assert "human_requested" in {d["rule_id"] for d in body["decisions"]}

        clock[0] = NOW + timedelta(days=3)
        status = client.get("/healthz").json()["incident"]
        assert status["on"] is True and "on for 3.0 days" in status["warning"]

        client.put("/v1/incident", json={"on": False, "by": "olga", "reason": "resolved"})
        back = event(event_id="i3", customer_id="cy", text="Your app is down again, awful!!")
        body = client.post("/v1/decide", json=back).json()
        assert "incident_notice" not in {d["rule_id"] for d in body["decisions"]}
        history = client.get("/v1/incident").json()["history"]
        assert [h["on"] for h in history] == [False, True]
        assert history[1]["reason"] == "EU outage"
        bad = client.put("/v1/incident", json={"on": True})
        assert bad.status_code == 422  # who switched it is required


def identify(event_id: str, customer: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "identify",
        "customer_id": customer,
        "timestamp": "2026-10-20T10:00:00Z",
        "traits": traits,
    }


def test_quiet_hours_follow_the_customers_clock(store: SQLiteStore, tmp_path: Path) -> None:
    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(
        shipped.replace(
            "fallback_queue: general\n",
            'fallback_queue: general\nquiet_hours: {start: "21:00", end: "08:00"}\n',
        )
    )
    engine = Engine(store, PolicyEngine(load_policy(quiet)), clock=lambda: NOW)  # 00:00 UTC
    with TestClient(create_app(engine)) as client:
        for i, (customer, tz) in enumerate(
            [("kenji", "Asia/Tokyo"), ("marie", "Europe/Paris"), ("ola", None)]
        ):
            traits = {"timezone": tz} if tz else {"tier": "pro"}
            r = post(client, identify(f"tz{i}", customer, traits))
            assert r.status_code == 202, r.text

        def eligible(customer: str, category: str = "promotional") -> dict[str, Any]:
            url = f"/v1/customers/{customer}/eligibility"
            body: dict[str, Any] = client.get(url, params={"category": category}).json()
            return body

        assert eligible("kenji")["eligible"] is True  # 09:00 in Tokyo
        paris = eligible("marie")
        assert paris["eligible"] is False
        assert paris["reason"] == "quiet hours 21:00-08:00 in Europe/Paris (their time now 02:00)"
        assert eligible("ola")["eligible"] is False  # no time zone: UTC, midnight
        bad = post(client, identify("tz9", "zed", {"timezone": "Mars/Olympus"}))
        assert bad.status_code == 422
        assert "not an IANA time zone name" in bad.json()["results"][0]["errors"][0]["why"]

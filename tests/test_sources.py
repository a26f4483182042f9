"""Inbound webhooks: senders that sign (Segment's Webhooks destination, GitHub-style
hub signatures, tactful's own scheme) push events to /v1/sources/<name>; a missing or
wrong signature is refused with the reason and nothing of the body is kept."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tactful.actions.channels.config import ChannelsError, SourceSpec, load_channels
from tactful.api.app import create_app
from tactful.inbound import SCHEMES, Scheme, SignatureError, check_signature, sign_for
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

from .test_auth import make_key

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECRET = "s3cret-shared-with-segment"
OLD = "the-previous-secret-value"
SEGMENT_TRACK = {
    "type": "track",
    "event": "Payment Failed",
    "messageId": "ajs-next-1",
    "userId": "ana",
    "timestamp": "2026-11-02T11:00:00Z",
    "properties": {"reason": "card_declined", "amount": 49.0},
}


def body_of(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize("scheme", ["segment", "hub-sha256", "tactful"])
def test_each_scheme_accepts_its_signature_and_refuses_anything_else(scheme: Scheme):
    body = b'{"type":"track"}'
    header = SCHEMES[scheme]
    now = time.time()
    good = {header: sign_for(scheme, SECRET, body, int(now))}
    check_signature(scheme, [SECRET], body, good, now=now)
    check_signature(scheme, [SECRET, OLD], body, good, now=now)  # rotation: any one matches
    old = {header: sign_for(scheme, OLD, body, int(now))}
    check_signature(scheme, [SECRET, OLD], body, old, now=now)
    with pytest.raises(SignatureError, match="no signature matches"):
        check_signature(scheme, [SECRET], body, old, now=now)
    with pytest.raises(SignatureError, match="no signature matches"):
        check_signature(scheme, [SECRET], body + b" ", good, now=now)  # one byte changed
    with pytest.raises(SignatureError, match=f"no {header} header"):
        check_signature(scheme, [SECRET], body, {}, now=now)


def test_the_segment_signature_is_what_segment_documents():
    # X-Signature: hex HMAC-SHA1 of the raw body under the shared secret
    import hashlib
    import hmac

    body = b'{"userId":"ana"}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert sign_for("segment", SECRET, body) == expected
    check_signature("segment", [SECRET], body, {"x-signature": expected.upper()})


def test_a_signed_timestamp_outside_the_tolerance_is_a_replay():
    body = b"{}"
    header = {"Tactful-Signature": sign_for("tactful", SECRET, body, 1_000)}
    with pytest.raises(SignatureError, match="replay"):
        check_signature("tactful", [SECRET], body, header, tolerance_s=300, now=2_000)
    check_signature("tactful", [SECRET], body, header, tolerance_s=300, now=1_200)


def test_a_malformed_hub_header_says_what_it_should_look_like():
    with pytest.raises(SignatureError, match="sha256=<hex>"):
        check_signature("hub-sha256", [SECRET], b"{}", {"X-Hub-Signature-256": "sha1=abc"})


@pytest.fixture
def client(store: SQLiteStore) -> Iterator[TestClient]:
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    sources = {
        "segment": SourceSpec(type="segment", secret=SECRET, old_secret=OLD),
        "hooks": SourceSpec(type="tactful", secret=SECRET),
    }
    with TestClient(create_app(engine, sources)) as c:
        yield c


def test_signed_segment_events_are_ingested_without_an_api_key(client, store):
    make_key(store, "ingest")  # keys exist: /v1/events is closed to strangers
    body = body_of(SEGMENT_TRACK)
    r = client.post("/v1/events", content=body)
    assert r.status_code == 401
    r = client.post(
        "/v1/sources/segment",
        content=body,
        headers={"X-Signature": sign_for("segment", SECRET, body)},
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    (event,) = store.list_events("ana")
    assert event["type"] == "payment_failed" and event["event_id"] == "segment:ajs-next-1"
    # the same delivery again (Segment retries): a duplicate, no second effect
    r = client.post(
        "/v1/sources/segment", content=body, headers={"X-Signature": sign_for("segment", OLD, body)}
    )
    assert r.status_code == 202 and r.json()["duplicates"] == 1


def test_unsigned_or_forged_requests_are_refused_and_nothing_is_kept(client, store):
    body = body_of({**SEGMENT_TRACK, "messageId": "forged"})
    before = store.stats()
    for headers in ({}, {"X-Signature": sign_for("segment", "someone-elses-secret", body)}):
        r = client.post("/v1/sources/segment", content=body, headers=headers)
        assert r.status_code == 401
        assert "X-Signature" in r.json()["detail"]
    # not signed: not ours to keep, not even in quarantine
    assert store.stats() == before
    assert store.list_quarantine() == []
    metrics = client.get("/metrics").text
    assert 'tactful_source_signatures_refused_total{source="segment"} 2.0' in metrics


def test_a_signed_body_that_is_not_json_or_not_an_event_is_quarantined(client, store):
    body = b"{not json"
    r = client.post(
        "/v1/sources/segment",
        content=body,
        headers={"X-Signature": sign_for("segment", SECRET, body)},
    )
    assert r.status_code == 400
    body = body_of({"type": "track", "userId": "ana"})  # no messageId, no timestamp
    r = client.post(
        "/v1/sources/segment",
        content=body,
        headers={"X-Signature": sign_for("segment", SECRET, body)},
    )
    assert r.status_code == 422
    rows = store.list_quarantine()
    assert len(rows) == 2
    assert {row["source"] for row in rows} == {"api", "source:segment"}


def test_an_unknown_source_is_404_naming_the_configured_ones(client):
    r = client.post("/v1/sources/zendesk", content=b"{}")
    assert r.status_code == 404
    assert "hooks, segment" in r.json()["detail"]


def test_a_tactful_signed_batch_is_accepted(client, store):
    events = [
        {
            "event_id": f"m{i}",
            "type": "message",
            "customer_id": "bo",
            "timestamp": f"2026-11-02T11:0{i}:00Z",
            "text": "hello",
        }
        for i in range(3)
    ]
    body = body_of(events)
    headers = {"Tactful-Signature": sign_for("tactful", SECRET, body)}
    r = client.post("/v1/sources/hooks", content=body, headers=headers)
    assert r.status_code == 202 and r.json()["accepted"] == 3


def test_the_sources_section_of_the_channels_file_is_checked(tmp_path, monkeypatch):
    path = tmp_path / "channels.yaml"
    monkeypatch.setenv("SEGMENT_SHARED_SECRET", SECRET)
    path.write_text(
        "sources:\n  segment:\n    type: segment\n    secret: ${SEGMENT_SHARED_SECRET}\n"
    )
    assert load_channels(path).sources["segment"].secrets == (SECRET,)
    path.write_text("sources:\n  segment:\n    type: zendesk\n    secret: short\n")
    with pytest.raises(ChannelsError) as info:
        load_channels(path)
    message = str(info.value)
    assert "sources.segment.type" in message and "sources.segment.secret" in message


def test_served_with_a_channels_file_a_signed_push_lands(launch, tmp_path: Path, monkeypatch):
    """Over real HTTP: `tactful serve --channels` reads sources: and the route verifies."""
    channels = tmp_path / "channels.yaml"
    channels.write_text(f"sources:\n  segment:\n    type: segment\n    secret: {SECRET}\n")
    server = launch(tmp_path / "t.db", tmp_path / "actions.jsonl", "--channels", str(channels))
    body = body_of(SEGMENT_TRACK)
    url = f"{server.url}/v1/sources/segment"
    assert httpx.post(url, content=body).status_code == 401
    r = httpx.post(url, content=body, headers={"X-Signature": sign_for("segment", SECRET, body)})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    customer = httpx.get(f"{server.url}/v1/customers/ana").json()
    assert customer["signal_counts"]

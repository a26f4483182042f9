"""API keys and scopes: 401 without a valid key, 403 without the scope, every endpoint
declares one; keys made, listed, rotated and revoked from the CLI."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tactful.access import ApiKey, new_key
from tactful.api.app import create_app
from tactful.cli import app as cli
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
EVENT = {
    "event_id": "e1",
    "type": "message",
    "customer_id": "ana",
    "timestamp": "2026-11-02T10:00:00Z",
    "text": "hello",
}


def make_key(store: SQLiteStore, *scopes: str, **fields: Any) -> str:
    key_id, key, secret_hash = new_key()
    store.add_key(
        ApiKey(key_id, f"test-{'-'.join(scopes)}", frozenset(scopes), secret_hash, NOW, **fields)
    )
    return key


@pytest.fixture
def client(store: SQLiteStore) -> Iterator[TestClient]:
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    with TestClient(create_app(engine)) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_keys_means_open_and_the_first_key_closes_it(client, store):
    assert client.post("/v1/events", json=EVENT).status_code == 202
    key = make_key(store, "ingest")
    client.app.state.keyring.refresh()
    r = client.post("/v1/events", json={**EVENT, "event_id": "e2"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    assert (
        client.post("/v1/events", json={**EVENT, "event_id": "e2"}, headers=bearer(key)).status_code
        == 202
    )


def test_scopes_401_403_and_every_way_to_present_a_key(client, store):
    ingest, read, admin = (make_key(store, s) for s in ("ingest", "read", "admin"))
    client.app.state.keyring.refresh()
    basic = base64.b64encode(f"{ingest}:".encode()).decode()
    assert (
        client.post(
            "/v1/events", json=EVENT, headers={"Authorization": f"Basic {basic}"}
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/v1/decide", json={**EVENT, "event_id": "e2"}, headers={"X-API-Key": ingest}
        ).status_code
        == 200
    )
    denied = client.post("/v1/events", json={**EVENT, "event_id": "e3"}, headers=bearer(read))
    assert denied.status_code == 403 and "lacks the 'ingest' scope" in denied.json()["detail"]
    assert client.get("/v1/decisions", headers=bearer(ingest)).status_code == 403
    assert client.get("/v1/decisions", headers=bearer(read)).status_code == 200
    assert client.post("/v1/policy/reload", headers=bearer(read)).status_code == 403
    assert client.post("/v1/policy/reload", headers=bearer(admin)).status_code == 200
    hold = {"categories": ["all"], "duration": "1d", "by": "x", "reason": "y"}
    assert (
        client.post("/v1/customers/ana/holds", json=hold, headers=bearer(read)).status_code == 403
    )
    assert (
        client.post("/v1/customers/ana/holds", json=hold, headers=bearer(admin)).status_code == 201
    )
    wrong = client.get("/v1/decisions", headers=bearer(read[:-3] + "xyz"))
    assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
    assert client.get("/v1/decisions", headers=bearer("garbage")).status_code == 401
    assert client.get("/healthz").status_code == 200  # liveness stays open
    page = client.get("/", follow_redirects=False)  # a browser: to the sign-in form
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
    browser = base64.b64encode(f"{read}:".encode()).decode()
    assert client.get("/", headers={"Authorization": f"Basic {browser}"}).status_code == 200
    assert client.get("/metrics", headers=bearer(read)).status_code == 200


def test_revoked_and_lapsed_keys_are_refused(client, store):
    revoked = make_key(store, "read", revoked_at=NOW - timedelta(minutes=1))
    lapsed = make_key(store, "read", expires_at=NOW - timedelta(seconds=1))
    grace = make_key(store, "read", expires_at=NOW + timedelta(hours=1))
    client.app.state.keyring.refresh()
    assert client.get("/v1/decisions", headers=bearer(revoked)).status_code == 401
    assert client.get("/v1/decisions", headers=bearer(lapsed)).status_code == 401
    assert client.get("/v1/decisions", headers=bearer(grace)).status_code == 200


def test_every_endpoint_declares_its_scope(client):
    public = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    undeclared = []
    for route in client.app.routes:
        if not isinstance(route, APIRoute) or route.path in public:
            continue
        names = {d.call.__name__ for d in route.dependant.dependencies if d.call is not None}
        # a pushed source's credential is the sender's signature (tests/test_sources.py)
        signed = route.path.startswith("/v1/sources/") and "signed_source" in names
        if not signed and not any(n.startswith("scope_") for n in names):
            undeclared.append(f"{sorted(route.methods or ())} {route.path}")
    assert undeclared == []


def test_keys_from_the_cli_are_shown_once_listed_rotated_and_revoked(tmp_path):
    db = tmp_path / "k.db"
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--name", "segment", "--scope", "ingest", "--db", str(db)]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("tk_")
    listed = runner.invoke(cli, ["keys", "list", "--db", str(db)], env={"COLUMNS": "200"})
    assert "segment" in listed.output and "ingest" in listed.output and key not in listed.output
    key_id = key.split("_")[1]
    store = SQLiteStore(db)
    assert key.split("_", 2)[2] not in str(store.list_keys())  # only the hash is kept
    store.close()
    rotated = runner.invoke(cli, ["keys", "rotate", key_id, "--grace", "0s", "--db", str(db)])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("tk_") and new != key
    store = SQLiteStore(db)
    states = {k.key_id: k.valid(datetime.now(UTC)) for k in store.list_keys()}
    store.close()
    assert states == {key_id: False, new.split("_")[1]: True}
    assert runner.invoke(cli, ["keys", "revoke", new.split("_")[1], "--db", str(db)]).exit_code == 0
    assert runner.invoke(cli, ["keys", "revoke", "nope", "--db", str(db)]).exit_code == 1
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--scope", "root", "--db", str(db)])
    assert bad.exit_code == 2 and "scopes are" in bad.output


def test_serve_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["serve", "--db", str(tmp_path / "s.db"), "--host", "0.0.0.0", "--text-scorer", "lexical"],
    )
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0 with no API keys" in result.output


def test_per_key_limits_rate_body_and_batch(client, store):
    small = make_key(store, "ingest", max_body=4096, max_batch=2)
    slow = make_key(store, "ingest", rps=0.1)  # a burst of one, then one every 10 s
    client.app.state.keyring.refresh()
    events = [{**EVENT, "event_id": f"r{i}"} for i in range(3)]
    too_many = client.post("/v1/events", json=events, headers=bearer(small))
    assert too_many.status_code == 413 and "at most 2 events" in too_many.text
    big = {**EVENT, "event_id": "big", "text": "x" * 5000}
    assert client.post("/v1/events", json=big, headers=bearer(small)).status_code == 413
    assert client.post("/v1/events", json=events[:2], headers=bearer(small)).status_code == 202
    first = client.post("/v1/events", json={**EVENT, "event_id": "q1"}, headers=bearer(slow))
    assert first.status_code == 202
    second = client.post("/v1/events", json={**EVENT, "event_id": "q2"}, headers=bearer(slow))
    assert second.status_code == 429
    assert 5 <= int(second.headers["retry-after"]) <= 10
    assert "over its limit of 0.1 requests a second" in second.json()["detail"]

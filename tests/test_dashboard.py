"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a
`tactful serve` the test starts on the demo's data. Screenshots land in test-artifacts/.

Without /usr/bin/chromium (`apt-get install -y chromium`) the browser test is skipped,
unless TACTFUL_REQUIRE_BROWSER=1 (CI sets it), when it fails instead."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tactful.api.app import create_app
from tactful.dashboard import trend_series
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.customer import DEFAULT_MEMORY
from tactful.state.store import SQLiteStore

from .browsers import launch_chromium
from .serving import Launch
from .test_auth import make_key

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_the_trend_chart_replays_the_trend_the_state_holds(store, make_event):
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    texts = ["ugh, not working", "still broken!!", "thanks, that fixed it"]
    engine.ingest(
        [make_event(text=t, at=f"2026-11-02T0{i + 8}:00:00Z") for i, t in enumerate(texts)]
    )
    state = store.get_state("c1")
    assert state is not None
    series = trend_series(store.list_events("c1"), DEFAULT_MEMORY, NOW)
    assert series["frustration"][-1]["x"] == NOW.isoformat()
    assert series["frustration"][-1]["y"] == pytest.approx(
        state.level("frustration", NOW), abs=1e-4
    )
    ys = [p["y"] for p in series["frustration"]]
    assert ys[1] > ys[0]  # the second complaint raised it


def test_pages_render_and_unknown_customers_are_404(store, make_event):
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    engine.ingest([make_event(text="Let me speak to a human", at="2026-11-02T10:00:00Z")])
    with TestClient(create_app(engine)) as client:
        home = client.get("/")
        assert home.status_code == 200 and "escalation precision" in home.text
        assert 'id="m-precision">—' in home.text  # no verdicts yet
        page = client.get("/customers/c1")
        assert page.status_code == 200
        # the conversation's reading now, and how it came about (lexical scorer: alone)
        assert 'id="frustration-now"' in page.text and "read on its own" in page.text
        assert client.get("/customers/nobody").status_code == 404
        queue = client.get("/queue")
        assert "Resolve" in queue.text and "c1" in queue.text
        assert client.get("/static/chart-4.6.1.umd.min.js").status_code == 200


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from launch_chromium("the dashboard test")


LEAD = ["keys", "create", "--name", "lead", "--scope", "read", "--scope", "act"]


def test_a_lead_and_an_agent_use_the_dashboard_in_a_browser(tmp_path, launch: Launch, browser):
    db = tmp_path / "demo.db"
    made = subprocess.run(
        [sys.executable, "-m", "tactful.cli", "demo", "--db", str(db)],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr.decode()
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "tactful.cli",
            *LEAD,
            "--db",
            str(db),
        ],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr.decode()
    key = made.stdout.decode().strip().splitlines()[-1]
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})

    page.goto(f"{server.url}/")  # not signed in: the sign-in form, then back here
    assert page.url == f"{server.url}/login?next=/"
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/")
    assert page.title() == "tactful · overview"
    assert page.locator("#m-precision").inner_text() == "—"
    page.wait_for_function("Chart.getChart(document.getElementById('per-day')) !== undefined")
    page.screenshot(path=ARTIFACTS / "overview.png", full_page=True)

    page.goto(f"{server.url}/customers/ben")
    page.wait_for_function(
        "(() => { const c = Chart.getChart(document.getElementById('trend'));"
        " return c && c.data.datasets.length > 0 && c.data.datasets[0].data.length > 0; })()"
    )
    dims = page.evaluate(
        "Chart.getChart(document.getElementById('trend')).data.datasets.map(d => d.label)"
    )
    assert "frustration" in dims
    assert page.get_by_text("Goal:").is_visible()  # the handoff package as the agent sees it
    page.screenshot(path=ARTIFACTS / "customer-ben.png", full_page=True)

    page.goto(f"{server.url}/queue")
    # hugo's handoff is the demo's most recent (ben's lapsed days ago, unanswered)
    row = page.locator("tr", has=page.get_by_role("link", name="hugo"))
    assert row.count() == 1
    row.get_by_role("button", name="Resolve").focus()
    page.keyboard.press("Enter")  # keyboard-usable: the focused button submits
    page.wait_for_function(
        "document.querySelector('#queue').innerText.includes('resolved')", timeout=10_000
    )
    assert "resolved" in page.locator("tr", has=page.get_by_role("link", name="hugo")).inner_text()
    page.screenshot(path=ARTIFACTS / "queue-resolved.png", full_page=True)

    page.goto(f"{server.url}/")
    assert page.locator("#m-precision").inner_text() == "100%"  # the metric moved
    page.screenshot(path=ARTIFACTS / "overview-after.png", full_page=True)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server.url}/login")
    page.goto(f"{server.url}/queue")
    assert page.url.startswith(f"{server.url}/login")
    page.close()


def _signed_in_client(store: SQLiteStore, *scopes: str) -> tuple[TestClient, str]:
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    engine.ingest([make_message("Let me speak to a human")])
    key = make_key(store, *scopes)
    return TestClient(create_app(engine), follow_redirects=False), key


def app_of(client: TestClient) -> FastAPI:
    app = client.app
    assert isinstance(app, FastAPI)
    return app


def make_message(text: str) -> dict[str, Any]:
    return {
        "event_id": "m1",
        "type": "message",
        "customer_id": "c1",
        "timestamp": "2026-11-02T10:00:00Z",
        "text": text,
    }


def test_pages_send_strangers_to_sign_in_and_a_session_lets_them_in(store):
    client, key = _signed_in_client(store, "read")
    with client:
        r = client.get("/customers/c1?x=1")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/customers/c1%3Fx%3D1"
        assert "Sign in" in client.get("/login?next=/queue").text
        wrong = client.post("/login", data={"key": "tk_nope_nope", "next": "/queue"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        assert "tactful_session" not in wrong.headers.get("set-cookie", "")
        r = client.post("/login", data={"key": key, "next": "/queue"})
        assert r.status_code == 303 and r.headers["location"] == "/queue"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and key not in cookie
        page = client.get("/queue")
        assert page.status_code == 200 and "Sign out" in page.text
        # the session is the dashboard's only: the JSON API still wants a key
        assert client.get("/v1/customers/c1").status_code == 401
        # a read session cannot press the buttons (act)
        [handoff] = store.list_handoffs()
        r = client.post(f"/ui/handoffs/{handoff['handoff_id']}/resolve", data={"by": "ana"})
        assert r.status_code == 403 and "'act' scope" in r.text
        out = client.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert client.get("/queue").status_code == 303


def test_an_ingest_key_cannot_sign_in_and_next_never_leaves_the_site(store):
    client, _ = _signed_in_client(store, "read")
    ingest = make_key(store, "ingest")
    app_of(client).state.keyring.refresh()
    with client:
        r = client.post("/login", data={"key": ingest, "next": "/"})
        assert r.status_code == 403 and "lacks the &#39;read&#39; scope" in r.text
        reader = make_key(store, "read")
        app_of(client).state.keyring.refresh()
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            r = client.post("/login", data={"key": reader, "next": target})
            assert r.status_code == 303 and r.headers["location"] == "/", target


def test_tampered_expired_or_revoked_sessions_are_refused(store, monkeypatch):
    client, key = _signed_in_client(store, "read")
    with client:
        client.post("/login", data={"key": key})
        assert client.get("/").status_code == 200
        good = client.cookies["tactful_session"]

        def use(cookie: str) -> None:
            client.cookies.clear()
            client.cookies.set("tactful_session", cookie)

        use(good[:-2] + ("AA" if good[-2:] != "AA" else "BB"))
        assert client.get("/").status_code == 303  # tampered: back to sign in
        # signed 13 hours ago: past the 12-hour session
        past = time.time() - 13 * 3600
        monkeypatch.setattr(time, "time", lambda: past)  # what itsdangerous stamps with
        old = app_of(client).state.sessions.issue(key.split("_")[1])
        monkeypatch.undo()
        use(old)
        assert client.get("/").status_code == 303
        # a valid session whose key is then revoked
        use(good)
        assert client.get("/").status_code == 200
        store.end_key(key.split("_")[1], NOW - timedelta(seconds=1))
        app_of(client).state.keyring.refresh()
        r = client.get("/")
        assert r.status_code == 401 and "revoked" in r.text

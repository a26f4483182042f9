"""The official browser SDKs, Segment's analytics.js (@segment/analytics-next) and
RudderStack's JavaScript SDK (@rudderstack/analytics-js), unchanged but for their host, in
Debian's Chromium against a real `tactful serve`: a page on another origin (another port:
real CORS) loads the SDK, identifies a customer and sends page and track calls; tactful
stores them as its own event types for that customer. A wrong write key is refused (401)
and nothing of it is stored.

The SDKs are the packages' own prebuilt browser bundles, committed unchanged under
tests/fixtures/browser-sdks/ (README.md there: versions, files, checksums), so the test
needs no node and downloads nothing. Without /usr/bin/chromium it is skipped, unless
TACTFUL_REQUIRE_BROWSER=1 (CI sets it). The CORS and write-key rules themselves are
tested in-process below too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tactful.api.app import create_app
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

from .browsers import launch_chromium
from .serving import Launch, Server, free_port
from .test_auth import make_key
from .test_segment_sdks import RULES, add_key, customer, unmapped

SDKS = Path(__file__).parent / "fixtures" / "browser-sdks"
SEGMENT_JS = "analytics-next-1.84.3.umd.js"
RUDDER_JS = "rudderstack-analytics-js-3.34.1.bundled.umd.js"
# The bundles as the npm packages ship them (tests/fixtures/browser-sdks/README.md).
SHA256 = {
    SEGMENT_JS: "e0bed4badf9ec12029a63ef13f22acb9d26d7c7b38d721da8e4e552e7bd33088",
    RUDDER_JS: "0ebffa54477f56fd3b70f168f455642126ed3fb6f8073bc740851513a357c960",
}
DEADLINE = 15.0
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title><link rel="icon" href="data:,">
<script src="/{script}"></script></head>
<body><h1>shop</h1></body></html>
"""

# What a product's page does, written as each SDK's README shows; the only tactful
# setting is the host (Segment: cdnURL, where it loads its settings, which point it at
# tactful's API; RudderStack: the data plane URL and configUrl).
SEGMENT_JOURNEY = """async ([host, key, user, account]) => {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({ writeKey: key, cdnURL: host })
  await analytics.identify(user, { tier: 'enterprise', email: user + '@example.com' })
  await analytics.group(account, { name: 'Acme', employees: 300 })
  await analytics.page('account', 'Cancel', { path: '/account/cancel' })
  for (let i = 0; i < 3; i++) {
    await analytics.track('Payment Failed', { amount: 49, currency: 'USD' })
  }
  await analytics.track('Button Clicked', { button_id: 'retry-payment' })
  await analytics.track('Plan Downgraded', { case: 'C-17', reason: 'card keeps failing' })
  await analytics.track('Pricing Page Loitered', { seconds: 40 })
  return analytics.VERSION
}"""

RUDDER_JOURNEY = """([host, key, user, account]) => new Promise((resolve, reject) => {
  setTimeout(() => reject(new Error('the SDK did not load within 10 s')), 10000)
  const rudder = new rudderanalytics.RudderAnalytics()
  rudder.load(key, host, {
    configUrl: host, logLevel: 'ERROR', polyfillIfRequired: false,
    onLoaded: () => resolve('loaded'),
  })
  rudder.identify(user, { tier: 'enterprise', email: user + '@example.com' })
  rudder.group(account, { name: 'Acme', employees: 300 })
  rudder.page('account', 'Cancel', { path: '/account/cancel' })
  for (let i = 0; i < 3; i++) {
    rudder.track('Payment Failed', { amount: 49, currency: 'USD' })
  }
  rudder.track('Button Clicked', { button_id: 'retry-payment' })
  rudder.track('Plan Downgraded', { case: 'C-17', reason: 'card keeps failing' })
  rudder.track('Pricing Page Loitered', { seconds: 40 })
})"""

JOURNEYS = {"segment": (SEGMENT_JS, SEGMENT_JOURNEY), "rudder": (RUDDER_JS, RUDDER_JOURNEY)}


def test_the_bundles_are_the_packages_own():
    for name, digest in SHA256.items():
        assert hashlib.sha256((SDKS / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium("the browser SDK test")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[str]:
    """A product's web site: a page per SDK and the SDK bundles, on its own origin."""
    site = tmp_path / "site"
    site.mkdir()
    for kind, (script, _) in JOURNEYS.items():
        (site / f"{kind}.html").write_text(PAGE.format(script=script))
        (site / script).write_bytes((SDKS / script).read_bytes())
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def served(tmp_path: Path, launch: Launch) -> tuple[Server, str, str, Path]:
    db = tmp_path / "browser.db"
    write_key, read_key = add_key(db, "ingest"), add_key(db, "read")
    rules = tmp_path / "segment.yaml"
    rules.write_text(RULES)
    server = launch(
        db, tmp_path / "actions.jsonl", "--segment-rules", str(rules), "--text-scorer", "lexical"
    )
    return server, write_key, read_key, db


def stored_types(db: Path, customer_id: str) -> list[str]:
    """The tactful types of the customer's stored events (read from the database)."""
    store = SQLiteStore(db)
    try:
        return sorted(e["type"] for e in store.list_events(customer_id))
    finally:
        store.close()


def quarantined(server: Server, read_key: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.url}/v1/quarantine", headers={"Authorization": f"Bearer {read_key}"}, timeout=5
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["quarantine"]
    return items


def open_shop(chromium: Any, shop: str, kind: str) -> tuple[Any, Any, list[str], list[str]]:
    """A fresh browser context on the SDK's page; every request's URL and every console
    error are recorded."""
    context = chromium.new_context()
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{shop}/{kind}.html")
    return context, page, requests, errors


@pytest.mark.parametrize(
    ("kind", "user", "account"), [("segment", "ben", "acme"), ("rudder", "ana", "globex")]
)
def test_the_browser_sdks_unchanged_but_their_host(
    chromium: Any,
    shop: str,
    served: tuple[Server, str, str, Path],
    kind: str,
    user: str,
    account: str,
) -> None:
    server, write_key, read_key, db = served
    context, page, requests, errors = open_shop(chromium, shop, kind)
    try:
        page.evaluate(JOURNEYS[kind][1], [server.url, write_key, user, account])
        state = customer(server, read_key, user, lambda s: s["events_seen"] >= 9)
    finally:
        context.close()
    assert state["events_seen"] == 9  # each call once: none lost, none doubled
    assert state["account_id"] == account
    assert state["payment_failures_30d"] == 3
    assert state["open_tickets"] == ["C-17"]  # by the rule in --segment-rules
    assert {"cancel_page", "payment_failed"} <= {s["name"] for s in state["active_signals"]}
    assert state["account"]["tier"] == "enterprise"
    types = stored_types(db, user)
    # identify and group both update the customer (identify); page and screen: page_view
    expected = ["identify", "identify", "page_view", *["payment_failed"] * 3, "click"]
    assert types == sorted([*expected, "ticket_opened", "custom"]), types
    assert unmapped(server, read_key) == {"Pricing Page Loitered": 1.0}
    # The page talked to its own site and to tactful only: nothing else was fetched.
    elsewhere = [r for r in requests if not r.split(" ", 1)[1].startswith((shop, server.url))]
    assert elsewhere == []
    assert errors == []
    assert quarantined(server, read_key) == []


@pytest.mark.parametrize("kind", ["segment", "rudder"])
def test_a_wrong_write_key_is_refused_and_nothing_stored(
    chromium: Any, shop: str, served: tuple[Server, str, str, Path], kind: str
) -> None:
    server, write_key, read_key, db = served
    wrong = write_key[:-4] + ("aaaa" if not write_key.endswith("aaaa") else "bbbb")
    context, page, _, _ = open_shop(chromium, shop, kind)
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda r: statuses.append((r.url, r.status)))
    try:
        page.evaluate(JOURNEYS[kind][1], [server.url, wrong, "eve", "evil"])
        deadline = time.monotonic() + DEADLINE
        while not any(s == 401 for _, s in statuses) and time.monotonic() < deadline:
            page.wait_for_timeout(50)
    finally:
        context.close()
    refused = [u for u, s in statuses if s == 401]
    assert refused and all(u.startswith(f"{server.url}/v1/") for u in refused), statuses
    assert not any(s == 200 and "/v1/" in u and "/projects/" not in u for u, s in statuses)
    r = httpx.get(
        f"{server.url}/v1/customers/eve",
        headers={"Authorization": f"Bearer {read_key}"},
        timeout=5,
    )
    assert r.status_code == 404
    assert stored_types(db, "eve") == []
    assert quarantined(server, read_key) == []


# --- the same rules in-process ----------------------------------------------------------


@pytest.fixture
def app_parts(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore, str]]:
    store = SQLiteStore(tmp_path / "t.db")
    key = make_key(store, "ingest")
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    with TestClient(create_app(engine)) as client:
        yield client, store, key
    store.close()


PAGE_ORIGIN = "https://shop.example"


def test_analytics_js_body_key_text_plain_and_short_paths(app_parts):
    client, store, key = app_parts
    text = {"Content-Type": "text/plain", "Origin": PAGE_ORIGIN}
    call = {"userId": "ben", "event": "Button Clicked", "properties": {"button_id": "b"}}
    r = client.post("/v1/t", content=_json({**call, "writeKey": key}), headers=text)
    assert r.status_code == 200 and r.json() == {"success": True}
    assert r.headers["access-control-allow-origin"] == PAGE_ORIGIN
    batch = {
        "writeKey": key,
        "batch": [{**call, "type": "page", "writeKey": key, "properties": {"path": "/x"}}],
    }
    assert client.post("/v1/b", content=_json(batch), headers=text).status_code == 200
    kinds = [e["type"] for e in store.list_events("ben")]
    assert sorted(kinds) == ["click", "page_view"]
    stored = repr(store.list_events("ben"))
    assert key not in stored  # the credential is not kept with the call


def test_a_wrong_body_key_is_401_without_a_sign_in_prompt_and_kept_nowhere(app_parts):
    client, store, key = app_parts
    text = {"Content-Type": "text/plain", "Origin": PAGE_ORIGIN}
    for body in [
        {"userId": "eve", "event": "Button Clicked", "writeKey": key[:-2] + "xx"},
        {"userId": "eve", "event": "Button Clicked"},
        "not json at all",
    ]:
        raw = body if isinstance(body, str) else _json(body)
        r = client.post("/v1/t", content=raw, headers=text)
        assert r.status_code in (400, 401), r.text
        if r.status_code == 401:
            assert r.json()["code"] == "unauthorized"
            assert "www-authenticate" not in r.headers  # a browser would prompt for it
            assert r.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert store.list_events("eve") == []
    assert store.list_quarantine(100, 0) == []


def test_preflight_and_origins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = SQLiteStore(tmp_path / "t.db")
    key = make_key(store, "ingest")
    read = make_key(store, "read")
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    asked = {
        "Origin": PAGE_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,sentat",
    }
    with TestClient(create_app(engine)) as client:  # the default: any origin
        r = client.options("/v1/track", headers=asked)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == PAGE_ORIGIN
        assert r.headers["access-control-allow-headers"] == "authorization,content-type,sentat"
        assert "POST" in r.headers["access-control-allow-methods"]
        # the management API: no CORS at all
        r = client.get("/v1/quarantine", headers={"Origin": PAGE_ORIGIN, **_bearer(read)})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert client.options("/v1/quarantine", headers=asked).status_code == 405
        settings = client.get(f"/v1/projects/{key}/settings", headers={"Origin": PAGE_ORIGIN})
        assert settings.headers["access-control-allow-origin"] == PAGE_ORIGIN
        segment_io = settings.json()["integrations"]["Segment.io"]
        assert segment_io["apiHost"] == "testserver/v1" and segment_io["protocol"] == "http"
        source = client.get("/sourceConfig/?writeKey=x", headers={"Origin": PAGE_ORIGIN}).json()
        assert source["source"]["destinations"] == [] and source["source"]["enabled"]
    monkeypatch.setenv("TACTFUL_SEGMENT_ORIGINS", "https://app.example, https://www.example/")
    with TestClient(create_app(engine)) as client:
        assert client.options("/v1/track", headers=asked).status_code == 403
        ok = {**asked, "Origin": "https://www.example"}
        assert client.options("/v1/track", headers=ok).status_code == 204
        call = _json({"userId": "ben", "event": "Button Clicked", "writeKey": key})
        r = client.post("/v1/t", content=call, headers={"Origin": PAGE_ORIGIN})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        assert "access-control-allow-origin" not in r.headers
        assert store.list_events("ben") == []
        r = client.post("/v1/t", content=call, headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and len(store.list_events("ben")) == 1
        r = client.post("/v1/t", content=call.replace(b"ben", b"cli"))  # no Origin: not a page
        assert r.status_code == 200
    store.close()


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}

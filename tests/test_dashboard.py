"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a
`tactful serve` the test starts on the demo's data. Screenshots land in test-artifacts/.

Without /usr/bin/chromium (`apt-get install -y chromium`) the browser test is skipped,
unless TACTFUL_REQUIRE_BROWSER=1 (CI sets it), when it fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tactful.api.app import create_app
from tactful.dashboard import trend_series
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.customer import DEFAULT_MEMORY

from .serving import Launch

CHROMIUM = Path("/usr/bin/chromium")
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
        assert client.get("/customers/c1").status_code == 200
        assert client.get("/customers/nobody").status_code == 404
        queue = client.get("/queue")
        assert "Resolve" in queue.text and "c1" in queue.text
        assert client.get("/static/chart-4.6.1.umd.min.js").status_code == 200


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("TACTFUL_REQUIRE_BROWSER") == "1":
            pytest.fail("the dashboard test needs /usr/bin/chromium: apt-get install -y chromium")
        pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def test_a_lead_and_an_agent_use_the_dashboard_in_a_browser(tmp_path, launch: Launch, browser):
    db = tmp_path / "demo.db"
    made = subprocess.run(
        [sys.executable, "-m", "tactful.cli", "demo", "--db", str(db)],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr.decode()
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})

    page.goto(f"{server.url}/")
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
    page.close()

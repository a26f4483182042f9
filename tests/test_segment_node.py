"""The official Node SDKs (@segment/analytics-node, @rudderstack/rudder-sdk-node; exact
versions below), unchanged but for their host, against a real `tactful serve`.

The test setup installs them with npm into a cache directory (``TACTFUL_NODE_SDKS``, by
default .venv/node-sdks) once; the product never downloads anything. Without node and npm,
or without the npm registry, the test is skipped, unless ``TACTFUL_REQUIRE_NODE_SDKS=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .serving import Launch
from .test_segment_sdks import RULES, add_key, check_journey, unmapped

SDKS = {"@segment/analytics-node": "3.1.0", "@rudderstack/rudder-sdk-node": "3.0.13"}
ROOT = Path(__file__).resolve().parents[1]
REQUIRE = "TACTFUL_REQUIRE_NODE_SDKS"

JOURNEY = """
const [kind, url, key, user, account] = process.argv.slice(2)
const errors = []
let sdk
if (kind === 'segment') {
  const { Analytics } = require('@segment/analytics-node')
  sdk = new Analytics({ writeKey: key, host: url, flushInterval: 50, maxRetries: 0 })
  sdk.on('error', (e) => errors.push(String((e && (e.reason || e.message)) || e)))
} else {
  const Analytics = require('@rudderstack/rudder-sdk-node')
  sdk = new Analytics(key, {
    dataPlaneUrl: url, flushInterval: 50, retryCount: 0, logLevel: 'error',
    errorHandler: (e) => errors.push(String((e && e.message) || e)),
  })
}
sdk.identify({ userId: user, traits: { tier: 'enterprise', email: user + '@example.com' } })
sdk.group({ userId: user, groupId: account, traits: { name: 'Acme', employees: 300 } })
sdk.page({
  userId: user, category: 'account', name: 'Cancel', properties: { path: '/account/cancel' },
})
sdk.screen({ userId: user, category: 'mobile', name: 'Billing' })
for (let i = 0; i < 3; i++) {
  sdk.track({ userId: user, event: 'Payment Failed', properties: { amount: 49, currency: 'USD' } })
}
sdk.track({ userId: user, event: 'Button Clicked', properties: { button_id: 'retry-payment' } })
sdk.track({
  userId: user, event: 'Plan Downgraded',
  properties: { case: 'C-17', reason: 'card keeps failing' },
})
sdk.track({ userId: user, event: 'Pricing Page Loitered', properties: { seconds: 40 } })
const done = kind === 'segment'
  ? sdk.closeAndFlush({ timeout: 10000 })
  : new Promise((resolve) => sdk.flush(() => resolve()))
done.then(() => {
  console.log(JSON.stringify({ errors }))
  process.exit(0)
})
"""


@pytest.fixture(scope="module")
def node_sdks() -> Path:
    """The directory holding node_modules with the pinned SDKs (installed once)."""
    required = os.environ.get(REQUIRE) == "1"
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if required:
            pytest.fail("node and npm are needed for the Node SDK tests")
        pytest.skip("node and npm not installed")
    where = Path(os.environ.get("TACTFUL_NODE_SDKS", ROOT / ".venv" / "node-sdks"))
    where.mkdir(parents=True, exist_ok=True)
    manifest = {"private": True, "dependencies": SDKS}
    stamp = where / "installed.json"
    if stamp.exists() and json.loads(stamp.read_text()) == manifest:
        return where
    (where / "package.json").write_text(json.dumps(manifest, indent=2))
    run = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if run.returncode != 0:
        if required:
            pytest.fail(f"npm install failed:\n{run.stderr[-2000:]}")
        pytest.skip(f"npm install failed (no registry?): {run.stderr[-300:]}")
    stamp.write_text(json.dumps(manifest))
    return where


@pytest.mark.parametrize(
    ("kind", "user", "account"), [("segment", "ben", "acme"), ("rudder", "ana", "globex")]
)
def test_the_node_sdks_unchanged_but_their_host(
    node_sdks: Path, tmp_path: Path, launch: Launch, kind: str, user: str, account: str
) -> None:
    db = tmp_path / "node.db"
    write_key, read_key = add_key(db, "ingest"), add_key(db, "read")
    rules = tmp_path / "segment.yaml"
    rules.write_text(RULES)
    server = launch(
        db, tmp_path / "actions.jsonl", "--segment-rules", str(rules), "--text-scorer", "lexical"
    )
    script = tmp_path / "journey.js"
    script.write_text(JOURNEY)
    run = subprocess.run(
        ["node", str(script), kind, server.url, write_key, user, account],
        cwd=node_sdks,
        env={**os.environ, "NODE_PATH": str(node_sdks / "node_modules")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"errors": []}, run.stdout
    check_journey(server, read_key, user, account)
    assert unmapped(server, read_key) == {"Pricing Page Loitered": 1.0}

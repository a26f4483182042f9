"""`tactful serve` as a real process: background delivery, and durability across SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from .serving import Launch

DEMO = Path(__file__).resolve().parents[1] / "examples" / "two_customers.jsonl"
DELIVERY_DEADLINE = 10.0
POLL = 0.05

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="needs POSIX signals to kill the server"
)


def wait_for(check: Callable[[], Any], deadline_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(POLL)


def read_actions(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # A line being appended may be incomplete; only complete lines count.
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def test_demo_scenario_hands_ben_to_billing_through_the_actions_log(
    tmp_path: Path, launch: Launch
) -> None:
    actions_log = tmp_path / "actions.jsonl"
    server = launch(tmp_path / "t.db", actions_log)
    lines = [line for line in DEMO.read_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]

    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        r = http.post("/v1/events", json=events)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == len(events) - 1
        assert body["rejected"] == 1
        assert body["results"][-1]["errors"][0]["field"] == "customer_id"

        def ben_handoff() -> dict[str, Any] | None:
            for action in read_actions(actions_log):
                if action["kind"] == "handoff.created" and action["customer_id"] == "ben":
                    return action
            return None

        action = wait_for(ben_handoff, DELIVERY_DEADLINE, "ben's handoff in the actions log")
        package = action["payload"]
        assert action["channel"] == "log"
        assert action["idempotency_key"]
        assert package["queue"] == "billing"
        assert package["priority"] == "high"
        assert package["customer_id"] == "ben"
        assert package["account_id"] == "northwind"
        assert package["goal"].startswith("The customer wants to")
        assert package["topic"]
        assert package["account"]["tier"] == "starter"
        assert package["account"]["payment_failures_30d"] == 3
        assert package["account"]["open_tickets"] == ["T-1001", "T-1017"]
        assert set(package["trend"]) >= {"frustration", "churn_intent"}
        assert package["why"] and package["why"][0].startswith("billing_breakdown")
        assert package["trigger_event"] == {"event_id": "demo-012", "type": "page_view"}

        # The dispatcher drains the whole outbox; ana is never handed off.
        wait_for(
            lambda: http.get("/healthz").json()["outbox_pending"] == 0,
            DELIVERY_DEADLINE,
            "the outbox to drain",
        )
        delivered = read_actions(actions_log)
        keys = [a["idempotency_key"] for a in delivered]
        assert len(keys) == len(set(keys))  # each action delivered once
        ana = [a for a in delivered if a["customer_id"] == "ana"]
        assert ana
        assert "handoff.created" not in {a["kind"] for a in ana}
        assert "discount" not in json.dumps(ana).lower()

        metrics = http.get("/metrics").text
        assert 'tactful_actions_delivered_total{channel="log",kind="handoff.created"}' in metrics


def test_acknowledged_events_survive_sigkill(tmp_path: Path, launch: Launch) -> None:
    db = tmp_path / "durable.db"
    actions_log = tmp_path / "actions.jsonl"
    batch = [
        {
            "event_id": f"dur-{i:03d}",
            "type": "page_view" if i % 2 else "message",
            "customer_id": f"dur-{i % 3}",
            "timestamp": f"2026-10-20T10:{i:02d}:00Z",
            **({"path": f"/docs/page-{i}"} if i % 2 else {"text": f"question number {i}"}),
        }
        for i in range(30)
    ]
    per_customer = {f"dur-{c}": sum(1 for i in range(30) if i % 3 == c) for c in range(3)}

    server = launch(db, actions_log)
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        r = http.post("/v1/events", json=batch)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == len(batch)
    server.stop(signal.SIGKILL)
    assert server.proc.returncode == -signal.SIGKILL

    restarted = launch(db, actions_log)
    with httpx.Client(base_url=restarted.url, timeout=10.0) as http:
        assert http.get("/healthz").json()["events"] == len(batch)
        for customer_id, n in per_customer.items():
            r = http.get(f"/v1/customers/{customer_id}")
            assert r.status_code == 200, r.text
            assert r.json()["events_seen"] == n

        r = http.post("/v1/events", json=batch)
        assert r.status_code == 202, r.text
        body = r.json()
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, len(batch), 0)
        assert {x["status"] for x in body["results"]} == {"duplicate"}
        assert http.get("/v1/customers/dur-0").json()["events_seen"] == per_customer["dur-0"]


def test_a_running_server_reloads_its_policy_and_keeps_the_old_one_if_invalid(
    tmp_path: Path, launch: Launch
) -> None:
    policy = tmp_path / "policy.yaml"
    text = resources.files("tactful.policy").joinpath("default.yaml").read_text("utf-8")
    policy.write_text(text)
    server = launch(tmp_path / "p.db", tmp_path / "actions.jsonl", "--policy", str(policy))
    first = httpx.get(f"{server.url}/v1/policy").json()
    assert first["source"] == str(policy) and first["version"].startswith("default-")

    # An edit (same name, new content) is picked up on SIGHUP: a new content hash.
    policy.write_text(text.replace("calm: 0.4 ", "calm: 0.35"))
    os.kill(server.proc.pid, signal.SIGHUP)
    second = wait_for(
        lambda: (
            (p := httpx.get(f"{server.url}/v1/policy").json())["version"] != first["version"] and p
        ),
        10,
        "the reloaded policy",
    )
    assert second["name"] == first["name"] and second["thresholds"]["calm"] == 0.35

    # A broken file is refused, over HTTP and on SIGHUP; the policy in force stays.
    policy.write_text(text.replace("state.frustration", "state.frustraton", 1))
    r = httpx.post(f"{server.url}/v1/policy/reload")
    assert r.status_code == 422
    assert r.json()["kept"] == second["version"]
    assert "unknown field 'state.frustraton'" in r.json()["errors"][0]["why"]
    os.kill(server.proc.pid, signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in server.output.read_text(), 10, "the refusal")
    assert httpx.get(f"{server.url}/v1/policy").json()["version"] == second["version"]
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"

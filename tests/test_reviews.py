"""Supervised rollout: a rule's decisions wait for a person, who approves (maybe edits)
or rejects them; both are outcomes that measure the rule's precision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tactful.api.app import create_app
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SHIPPED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
REVIEWED = SHIPPED.replace(
    "  - id: human_requested\n", "  - id: human_requested\n    review: 1.0\n", 1
)


def human(customer: str, n: int = 1) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{n}",
        "type": "message",
        "customer_id": customer,
        "timestamp": (T0 + timedelta(minutes=n)).isoformat(),
        "text": "This is useless, let me talk to a human now",
    }


@pytest.fixture
def client(store: SQLiteStore, tmp_path: Path) -> Iterator[TestClient]:
    assert REVIEWED != SHIPPED
    path = tmp_path / "policy.yaml"
    path.write_text(REVIEWED)
    engine = Engine(store, PolicyEngine(load_policy(path)), clock=lambda: T0 + timedelta(hours=1))
    with TestClient(create_app(engine)) as c:
        yield c


def test_a_reviewed_rule_waits_then_acts_as_approved_and_edited(client, store):
    client.post("/v1/events", json=[human("ana")])
    waiting = client.get("/v1/reviews").json()["reviews"]
    assert {w["kind"] for w in waiting} == {"escalate", "hold"}
    assert all(w["rule_id"] == "human_requested" and w["status"] == "pending" for w in waiting)
    assert store.list_outbox(limit=100) == []  # nothing acted yet
    assert client.get("/v1/handoffs").json()["handoffs"] == []
    assert client.get("/v1/customers/ana/eligibility").json()["eligible"] is True
    decisions = client.get("/v1/decisions", params={"customer_id": "ana"}).json()["decisions"]
    assert all(d["review"] for d in decisions if d["rule_id"] == "human_requested")

    escalate = next(w for w in waiting if w["kind"] == "escalate")
    not_editable = client.post(
        f"/v1/reviews/{escalate['decision_id']}/approve",
        json={"by": "lead", "params": {"message": "hi"}},
    )
    assert not_editable.status_code == 422 and "cannot be edited" in not_editable.text
    bad_queue = client.post(
        f"/v1/reviews/{escalate['decision_id']}/approve",
        json={"by": "lead", "params": {"queue": "nowhere"}},
    )
    assert bad_queue.status_code == 422 and "unknown queue" in bad_queue.text
    ok = client.post(
        f"/v1/reviews/{escalate['decision_id']}/approve",
        json={"by": "lead", "params": {"queue": "billing", "priority": "urgent"}},
    )
    assert ok.status_code == 200, ok.text
    [handoff] = client.get("/v1/handoffs").json()["handoffs"]
    assert (handoff["queue"], handoff["priority"]) == ("billing", "urgent")
    assert {r["kind"] for r in store.list_outbox(limit=100)} == {"handoff.created"}
    again = client.post(f"/v1/reviews/{escalate['decision_id']}/approve", json={"by": "x"})
    assert again.status_code == 409 and "already approved by lead" in again.text

    hold = next(w for w in waiting if w["kind"] == "hold")
    no_reason = client.post(f"/v1/reviews/{hold['decision_id']}/reject", json={"by": "lead"})
    assert no_reason.status_code == 422
    rejected = client.post(
        f"/v1/reviews/{hold['decision_id']}/reject",
        json={"by": "lead", "reason": "no marketing goes to this segment anyway"},
    )
    assert rejected.status_code == 200
    assert client.get("/v1/reviews").json()["reviews"] == []
    done = client.get("/v1/reviews", params={"status": "rejected"}).json()["reviews"]
    assert [d["decision_id"] for d in done] == [hold["decision_id"]]
    assert client.get("/v1/customers/ana/eligibility").json()["eligible"] is False  # a handoff
    assert client.post("/v1/reviews/nope/approve", json={"by": "x"}).status_code == 404

    summary = client.get("/v1/metrics/summary").json()
    rule = summary["by_rule"]["human_requested"]
    assert rule["outcomes"] == {"review_approved": 1, "review_rejected": 1}
    assert rule["review_precision"] == 0.5


def test_a_review_share_samples_decisions_stably(store, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        SHIPPED.replace(
            "  - id: human_requested\n", "  - id: human_requested\n    review: 0.3\n", 1
        )
    )
    engine = Engine(store, PolicyEngine(load_policy(path)), clock=lambda: T0)
    engine.ingest([human(f"c{i}") for i in range(200)])
    escalations = store.list_decisions(limit=1000, kind="escalate")
    reviewed = [d for d in escalations if d["review"]]
    assert 30 <= len(reviewed) <= 90  # about 30% of 200
    handoffs = {h["customer_id"] for h in store.list_handoffs(limit=1000)}
    assert handoffs == {d["customer_id"] for d in escalations if not d["review"]}


def test_the_dashboard_review_page_approves_and_rejects_in_place(client):
    client.post("/v1/events", json=[human("bo")])
    page = client.get("/reviews")
    assert page.status_code == 200 and "human_requested" in page.text
    waiting = {w["kind"]: w for w in client.get("/v1/reviews").json()["reviews"]}
    approved = client.post(
        f"/ui/reviews/{waiting['escalate']['decision_id']}/approve", data={"by": "lead"}
    )
    assert approved.status_code == 200 and "approved" in approved.text
    no_reason = client.post(
        f"/ui/reviews/{waiting['hold']['decision_id']}/reject", data={"by": "x"}
    )
    assert "needs one" in no_reason.text and 'role="alert"' in no_reason.text
    twice = client.post(
        f"/ui/reviews/{waiting['escalate']['decision_id']}/approve", data={"by": "other"}
    )
    assert "already approved by lead" in twice.text
    assert len(client.get("/v1/handoffs").json()["handoffs"]) == 1

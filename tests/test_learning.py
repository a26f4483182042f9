"""Outcomes reported from outside, the metrics summary over them, and the holdout group."""

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
from tactful.runtime.pipeline import in_holdout
from tactful.state.store import SQLiteStore

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SHIPPED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()


def msg(customer: str, text: str, minutes: float = 0, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{n}",
        "type": "message",
        "customer_id": customer,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        "text": text,
        **extra,
    }


def make_client(store: SQLiteStore, policy_text: str, tmp_path: Path) -> TestClient:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text)
    engine = Engine(store, PolicyEngine(load_policy(path)), clock=lambda: T0 + timedelta(days=5))
    return TestClient(create_app(engine))


@pytest.fixture
def client(store: SQLiteStore, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(store, SHIPPED, tmp_path) as c:
        yield c


def outcome(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/outcomes", json=body)


def test_reported_outcomes_are_credited_validated_and_idempotent(client):
    client.post("/v1/events", json=[msg("ana", "I want to talk to a human now", n=1)])
    decision = client.get("/v1/decisions", params={"customer_id": "ana"}).json()["decisions"][0]
    r = outcome(client, customer_id="ana", kind="csat", value=2, outcome_id="survey-1")
    assert r.status_code == 201, r.text
    assert r.json()["rule_id"] == decision["rule_id"]  # the last rule that acted
    again = outcome(client, customer_id="ana", kind="csat", value=5, outcome_id="survey-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    sold = outcome(
        client,
        customer_id="ana",
        kind="conversion",
        value=120.0,
        decision_id=decision["decision_id"],
    )
    assert sold.status_code == 201 and sold.json()["rule_id"] == decision["rule_id"]
    kinds = {o["kind"]: o for o in client.get("/v1/outcomes").json()["outcomes"]}
    assert kinds["csat"]["value"] == 2.0  # the first report stands
    assert kinds["conversion"]["detail"]["decision_id"] == decision["decision_id"]

    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"customer_id": "ghost", "kind": "churn"}, 404, "no customer 'ghost'"),
        ({"customer_id": "ana", "kind": "churn", "decision_id": "nope"}, 404, "decision_id"),
        ({"customer_id": "ana", "kind": "thumbs", "value": 0}, 422, "+1 or -1"),
        ({"customer_id": "ana", "kind": "csat", "value": 9}, 422, "1 to 5"),
        ({"customer_id": "ana", "kind": "summary_rating", "value": 4}, 422, "handoff_id"),
        ({"customer_id": "ana", "kind": "refund"}, 422, "kind"),
        (
            {"customer_id": "ana", "kind": "churn", "at": "2026-11-02T09:00:00"},
            422,
            "timezone",
        ),
    ]
    for body, status, why in bad:
        r = outcome(client, **body)
        assert r.status_code == status, (body, r.text)
        assert why in r.text


def test_a_handoff_verdict_reported_as_an_outcome_closes_it(client):
    client.post("/v1/events", json=[msg("ben", "Let me speak to an agent please", n=1)])
    [handoff] = client.get("/v1/handoffs").json()["handoffs"]
    missing_reason = outcome(
        client, customer_id="ben", kind="handoff_rejected", handoff_id=handoff["handoff_id"], by="a"
    )
    assert missing_reason.status_code == 422
    r = outcome(
        client,
        customer_id="ben",
        kind="handoff_rejected",
        handoff_id=handoff["handoff_id"],
        by="agent-3",
        reason="the FAQ answers it",
    )
    assert r.status_code == 201, r.text
    assert r.json()["rule_id"] == "human_requested"
    assert client.get(f"/v1/handoffs/{handoff['handoff_id']}").json()["status"] == "rejected"
    rated = outcome(
        client, customer_id="ben", kind="summary_rating", value=4, handoff_id=handoff["handoff_id"]
    )
    assert rated.status_code == 201 and rated.json()["rule_id"] == "human_requested"


def test_the_summary_measures_what_happened_afterwards(client):
    client.post(
        "/v1/events",
        json=[
            # automated and settled: an invoice question answered
            msg("cal", "Where can I download my invoices?", 0, 1),
            # automated, then back about the same topic a day later: regret
            msg("dan", "How do I change my billing address?", 0, 1),
            msg("dan", "My billing address is still wrong, I told you already!!", 60 * 24, 2),
            # escalated twice over: one handoff resolved, one rejected as unnecessary
            msg("eve", "This is useless, get me a human", 5, 1),
            msg("fay", "I want to talk to a person", 6, 1),
        ],
    )
    handoffs = {h["customer_id"]: h for h in client.get("/v1/handoffs").json()["handoffs"]}
    client.post(f"/v1/handoffs/{handoffs['eve']['handoff_id']}/resolve", json={"by": "a"})
    client.post(
        f"/v1/handoffs/{handoffs['fay']['handoff_id']}/reject",
        json={"by": "a", "reason": "asked by mistake"},
    )
    s = client.get("/v1/metrics/summary").json()
    assert s["customers_seen"] == 4
    c = s["containment_without_regret"]
    # cal and dan were first treated by automation; dan came back the next day
    assert (c["automated_customers"], c["came_back_within_72h"], c["value"]) == (2, 1, 0.5)
    e = s["escalation"]
    assert e["precision"] == 0.5 and e["resolved"] == 1 and e["rejected_as_unnecessary"] == 1
    assert sum(q["handoffs"] for q in e["by_queue"].values()) == 3  # dan's regret too
    assert s["time_to_intervention_s"]["n"] >= 2 and s["time_to_intervention_s"]["p50"] == 0.0
    assert s["handoff_completeness"]["n"] == 3 and 0 < s["handoff_completeness"]["mean"] <= 1
    assert s["holds"]["started"] >= 2
    assert "human_requested" in s["by_rule"]
    assert s["by_rule"]["human_requested"]["outcomes"]["handoff_rejected"] == 1
    assert s["holdout"] is None

    for queue, counts in e["by_queue"].items():
        only = client.get("/v1/metrics/summary", params={"queue": queue}).json()["escalation"]
        assert only["escalations"] == counts["handoffs"]
        assert list(only["by_queue"]) == [queue]
    empty = client.get(
        "/v1/metrics/summary",
        params={"since": "2030-01-01T00:00:00Z", "until": "2030-02-01T00:00:00Z"},
    )
    assert empty.status_code == 200
    body = empty.json()
    assert body["customers_seen"] == 0 and body["escalation"]["precision"] is None
    assert body["containment_without_regret"]["value"] is None
    naive = client.get("/v1/metrics/summary", params={"since": "2026-11-01T00:00:00"})
    assert naive.status_code == 422
    assert (
        client.get("/v1/metrics/summary", params={"tier": "enterprise"}).json()["customers_seen"]
        == 0
    )


def test_the_holdout_group_is_decided_for_and_left_alone(store, tmp_path):
    policy = SHIPPED + "\nholdout: {share: 0.5}\n"
    customers = [f"h{i}" for i in range(40)]
    with make_client(store, policy, tmp_path) as client:
        events = [msg(c, "This is useless, let me talk to a human!", 0, 1) for c in customers]
        client.post("/v1/events", json=events)
        loaded = load_policy(tmp_path / "policy.yaml")
        control = {c for c in customers if in_holdout(c, loaded)}
        assert 8 <= len(control) <= 32
        decisions = client.get("/v1/decisions", params={"limit": 1000}).json()["decisions"]
        assert {d["customer_id"] for d in decisions if d["holdout"]} == control
        assert {d["customer_id"] for d in decisions} == set(customers)  # all decided for
        actions = {r["customer_id"] for r in store.list_outbox(limit=1000)}
        assert actions == set(customers) - control  # only the treated were acted on
        someone = sorted(control)[0]
        assert client.get(f"/v1/customers/{someone}/eligibility").json()["eligible"] is True
        handoff_customers = {
            h["customer_id"] for h in client.get("/v1/handoffs").json()["handoffs"]
        }
        assert handoff_customers == set(customers) - control
        turn = client.post("/v1/decide", json=msg(someone, "Still waiting for a human!!", 1, 2))
        assert turn.json()["guidance"]["next"] == "continue"
        s = client.get("/v1/metrics/summary").json()
        assert s["holdout"]["control"]["customers"] == len(control)
        assert s["holdout"]["treated"]["customers"] == len(customers) - len(control)


def test_gauges_show_the_last_day(store, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    path = tmp_path / "policy.yaml"
    path.write_text(SHIPPED)
    engine = Engine(store, PolicyEngine(load_policy(path)), clock=lambda: T0 + timedelta(hours=2))
    with TestClient(create_app(engine)) as client:
        client.post("/v1/events", json=[msg("eve", "This is useless, get me a human", 5, 1)])
        [handoff] = client.get("/v1/handoffs").json()["handoffs"]
        client.post(f"/v1/handoffs/{handoff['handoff_id']}/resolve", json={"by": "a"})
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [precision] = families["tactful_escalation_precision"].samples
    assert precision.value == 1.0 and precision.labels == {"window": "24h"}
    [rate] = families["tactful_escalation_rate"].samples
    assert rate.value == 1.0
    quantiles = {
        s.labels["quantile"] for s in families["tactful_time_to_intervention_seconds"].samples
    }
    assert quantiles == {"50", "90"}


def test_summary_ranges_outside_1970_9000_are_refused(client):
    r = client.get("/v1/metrics/summary", params={"since": "0001-01-01T00:00:00+01:00"})
    assert r.status_code == 422 and "outside 1970-9000" in r.text

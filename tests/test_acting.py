"""Holds and handoffs after they start: people, the clock, eligibility, the handoff queue."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tactful.actions.lifecycle import LifecycleError, due_releases, release_hold
from tactful.api.acting import MAX_SEND_LIST
from tactful.api.app import create_app
from tactful.events import parse_event
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.runtime.pipeline import process
from tactful.state.customer import CustomerState, Handoff, Hold
from tactful.state.store import SQLiteStore
from tactful.state.trend import DEFAULT_TREND, Trend

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SHIPPED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
AUTO = SHIPPED + "\nholds:\n  auto_release: {below: 0.15, after: 12h}\n"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(minutes=5))


@pytest.fixture
def engine(store: SQLiteStore, clock: Clock, tmp_path: Path) -> Engine:
    path = tmp_path / "policy.yaml"
    path.write_text(AUTO)
    return Engine(store, PolicyEngine(load_policy(path)), clock=clock)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def msg(customer: str, text: str, at: datetime = T0, n: int = 0) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{n}",
        "type": "message",
        "customer_id": customer,
        "timestamp": at.isoformat(),
        "text": text,
    }


def eligible(client: TestClient, customer: str, category: str = "promotional") -> Any:
    r = client.get(f"/v1/customers/{customer}/eligibility", params={"category": category})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_person_holds_and_releases_marketing_with_who_and_why(client, store):
    client.post("/v1/events", json=[msg("ana", "Where are my invoices?")])
    assert eligible(client, "ana")["eligible"] is True
    r = client.post(
        "/v1/customers/ana/holds",
        json={
            "categories": ["promotional", "sales"],
            "duration": "3d",
            "by": "maria@support",
            "reason": "escalated by phone",
            "comment": "VIP; no nudges this week",
        },
    )
    assert r.status_code == 201, r.text
    [decision] = r.json()["decisions"]
    assert decision["kind"] == "hold" and decision["rule_id"] == "manual"
    assert "maria@support" in " ".join(decision["reasons"])
    answer = eligible(client, "ana", "sales")
    assert answer["eligible"] is False and "escalated by phone" in answer["reason"]
    assert eligible(client, "ana", "educational")["eligible"] is True
    [hold] = client.get("/v1/customers/ana/holds").json()["holds"]
    assert hold["created_by"] == "person:maria@support"
    assert hold["comment"] == "VIP; no nudges this week"
    assert [h["hold_id"] for h in client.get("/v1/holds").json()["holds"]] == [hold["hold_id"]]

    released = client.post(
        f"/v1/customers/ana/holds/{hold['hold_id']}/release",
        json={"by": "maria@support", "comment": "customer asked for the newsletter back"},
    )
    assert released.status_code == 200, released.text
    assert eligible(client, "ana", "sales")["eligible"] is True
    [after] = client.get("/v1/customers/ana/holds").json()["holds"]
    assert after["released_by"] == "maria@support"
    assert after["comment"] == "customer asked for the newsletter back"
    assert client.get("/v1/holds").json()["holds"] == []
    kinds = [a["kind"] for a in store.list_outbox(limit=100)]
    assert "hold.started" in kinds and "hold.released" in kinds
    again = client.post(
        f"/v1/customers/ana/holds/{hold['hold_id']}/release", json={"by": "maria@support"}
    )
    assert again.status_code == 409 and "already ended" in again.json()["detail"]
    missing = client.post("/v1/customers/ana/holds/hold:nope/release", json={"by": "x"})
    assert missing.status_code == 404
    nobody = client.post(
        "/v1/customers/ghost/holds",
        json={"categories": ["all"], "duration": "1d", "by": "x", "reason": "y"},
    )
    assert nobody.status_code == 404 and "no customer 'ghost'" in nobody.json()["detail"]


@pytest.mark.parametrize(
    "body, why",
    [
        ({"categories": ["all"], "by": "x", "reason": "y"}, "until or duration"),
        ({"categories": ["all"], "duration": "soon", "by": "x", "reason": "y"}, "duration"),
        ({"categories": ["spam"], "duration": "1d", "by": "x", "reason": "y"}, "categories"),
        (
            {"categories": ["all"], "until": "2026-12-01T00:00:00", "by": "x", "reason": "y"},
            "timezone",
        ),
    ],
)
def test_a_bad_hold_request_says_what_is_wrong(client, body, why):
    client.post("/v1/events", json=[msg("ana", "hi")])
    r = client.post("/v1/customers/ana/holds", json=body)
    assert r.status_code == 422
    assert why in r.text


def test_send_list_eligibility_in_one_call_and_over_the_limit_is_413(client):
    client.post(
        "/v1/events",
        json=[msg("ben", "I want to speak to a human right now", n=1), msg("cy", "thanks!")],
    )
    r = client.post(
        "/v1/eligibility", json={"category": "promotional", "customer_ids": ["ben", "cy", "new"]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    by_id = {x["customer_id"]: x for x in body["results"]}
    assert by_id["ben"]["eligible"] is False
    assert by_id["cy"]["eligible"] is True
    assert by_id["new"]["eligible"] is True and "unknown customer" in by_id["new"]["reason"]
    assert (body["eligible"], body["held"]) == (2, 1)
    too_many = client.post(
        "/v1/eligibility", json={"customer_ids": [f"c{i}" for i in range(MAX_SEND_LIST + 1)]}
    )
    assert too_many.status_code == 413
    assert too_many.json()["errors"][0]["field"] == "customer_ids"


def test_the_handoff_queue_accept_resolve_reject_become_outcomes(client, store):
    client.post(
        "/v1/events",
        json=[
            msg("ben", "This is useless, I want to talk to a human now", n=1),
            msg("dee", "Let me speak to an agent please", n=1),
        ],
    )
    listed = client.get("/v1/handoffs", params={"status": "open"}).json()["handoffs"]
    assert {h["customer_id"] for h in listed} == {"ben", "dee"}
    ben = next(h for h in listed if h["customer_id"] == "ben")
    assert ben["package"]["handoff_id"] == ben["handoff_id"]
    queue = ben["queue"]
    assert all(
        h["queue"] == queue for h in client.get(f"/v1/handoffs?queue={queue}").json()["handoffs"]
    )
    # an open handoff mutes marketing even where no hold covers the category
    assert eligible(client, "ben", "educational")["eligible"] is False

    hid = ben["handoff_id"]
    accepted = client.post(f"/v1/handoffs/{hid}/accept", json={"by": "agent-7"})
    assert accepted.status_code == 200, accepted.text
    assert client.get(f"/v1/handoffs/{hid}").json()["status"] == "accepted"
    twice = client.post(f"/v1/handoffs/{hid}/accept", json={"by": "agent-8"})
    assert twice.status_code == 409 and "agent-7" in twice.json()["detail"]
    resolved = client.post(f"/v1/handoffs/{hid}/resolve", json={"by": "agent-7"})
    assert resolved.status_code == 200
    assert client.get(f"/v1/handoffs/{hid}").json()["status"] == "resolved"

    did = next(h for h in listed if h["customer_id"] == "dee")["handoff_id"]
    no_reason = client.post(f"/v1/handoffs/{did}/reject", json={"by": "agent-7"})
    assert no_reason.status_code == 422
    assert "needs a reason" in no_reason.json()["detail"][0]["msg"]
    rejected = client.post(
        f"/v1/handoffs/{did}/reject", json={"by": "agent-7", "reason": "bot could answer"}
    )
    assert rejected.status_code == 200
    outcomes = {o["kind"]: o for o in store.list_outcomes(limit=100)}
    assert outcomes["handoff_resolved"]["rule_id"] == ben["package"]["why"][0].split(":")[0]
    assert outcomes["handoff_rejected"]["detail"]["reason"] == "bot could answer"
    assert client.post("/v1/handoffs/handoff:nope/accept", json={"by": "x"}).status_code == 404
    closed = client.get("/v1/handoffs", params={"status": "open"}).json()["handoffs"]
    assert closed == []


def test_holds_end_by_themselves_at_their_end_or_when_the_customer_recovers(
    client, engine, clock, store
):
    text = "This is the third time it's broken, I'm furious and fed up!!"
    client.post("/v1/events", json=[msg("eve", text, n=i) for i in range(2)])
    holds = client.get("/v1/customers/eve/holds").json()["holds"]
    assert holds and all(h["released_at"] is None for h in holds)
    assert engine.sweep_holds() == 0  # still frustrated: nothing ends
    clock.at = T0 + timedelta(days=30)
    assert engine.sweep_holds() == len(holds)
    after = client.get("/v1/customers/eve/holds").json()["holds"]
    assert all(h["released_by"] == "clock" for h in after)
    assert eligible(client, "eve")["eligible"] is True
    releases = store.list_decisions("eve", kind="release", limit=100)
    assert releases and {d["rule_id"] for d in releases} <= {"auto_release", "hold_ended"}
    assert engine.sweep_holds() == 0  # nothing left to end


def test_auto_release_waits_for_the_recovery_to_last(engine):
    """A rule's 30-day hold ends 12 h after frustration and churn intent fell below 0.15,
    not before, and not while a handoff is open; a person's hold waits for its end."""
    policy, trend = engine.policy.policy, engine.memory.trend
    state = CustomerState(customer_id="fay")
    for i in range(2):
        e = parse_event(msg("fay", "This is broken again, I'm so angry!!", T0, i))
        state = process(e, state, engine.policy, T0).state
    hold = Hold(
        hold_id="hold:rule",
        categories=["promotional"],
        starts_at=T0,
        ends_at=T0 + timedelta(days=30),
        created_by="rule:frustration_rising",
        reason="frustrated",
    )
    state = state.model_copy(update={"holds": [hold], "handoffs": []})
    crossed = state.trend["frustration"].below_since("frustration", 0.15, trend)
    assert crossed is not None and crossed > T0 + timedelta(days=1)
    assert due_releases(state, crossed + timedelta(hours=11), policy, trend) is None
    done = due_releases(state, crossed + timedelta(hours=12, minutes=1), policy, trend)
    assert done is not None
    [decision] = done.decisions
    assert decision.rule_id == "auto_release" and "recovered" in decision.reasons[0]
    assert done.state.holds[0].released_by == "clock"
    busy = state.model_copy(
        update={
            "handoffs": [
                Handoff(
                    handoff_id="h", queue="billing", priority="high", opened_at=T0, topic="billing"
                )
            ]
        }
    )
    assert due_releases(busy, crossed + timedelta(hours=13), policy, trend) is None
    by_hand = state.model_copy(
        update={"holds": [hold.model_copy(update={"created_by": "person:maria"})]}
    )
    assert due_releases(by_hand, crossed + timedelta(hours=13), policy, trend) is None
    with pytest.raises(LifecycleError, match="no hold"):
        release_hold(state, "hold:none", T0, "x", "", policy)


@given(
    st.floats(0.2, 5.0),
    st.floats(0.05, 0.9),
    st.sampled_from(["frustration", "churn_intent", "confusion"]),
)
def test_below_since_is_where_the_level_crosses_the_threshold(mass, threshold, dim):
    trend = Trend(mass=mass, fast=mass, at=T0, n=1)
    since = trend.below_since(dim, threshold, DEFAULT_TREND)
    assert since is not None
    if trend.level(T0, dim) <= threshold:
        assert since == T0
    else:
        assert math.isclose(trend.level(since, dim), threshold, abs_tol=1e-6)
        assert trend.level(since - timedelta(seconds=1), dim) > threshold - 1e-6
    assert Trend().below_since(dim, threshold) is None

"""Learn: outcomes derived from later events, attributed to the rule that acted, stored."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tactful.api.app import create_app
from tactful.events import parse_event
from tactful.learn.outcomes import derive_outcomes
from tactful.runtime.engine import Engine
from tactful.state.customer import CustomerState
from tactful.state.store import SQLiteStore

from .conftest import process_all

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_rating_is_credited_to_the_rule_that_acted(policy, make_event):
    results = process_all(
        policy,
        [
            make_event(text="I want to talk to a human", at="2026-10-01T10:00:00Z"),
            make_event("feedback", at="2026-10-01T12:00:00Z", rating=2, comment="slow"),
        ],
    )
    [csat] = results[1].outcomes
    assert (csat.kind, csat.value, csat.rule_id) == ("csat", 2.0, "human_requested")
    assert csat.detail == {"comment": "slow"}


def test_no_credit_outside_the_attribution_window(policy, make_event):
    results = process_all(
        policy,
        [
            make_event(text="I want to talk to a human", at="2026-10-01T10:00:00Z"),
            make_event("feedback", at="2026-10-20T12:00:00Z", rating=5),
        ],
    )
    csat = next(o for o in results[1].outcomes if o.kind == "csat")
    assert csat.rule_id is None


def test_solving_the_ticket_closes_the_handoff_with_its_duration(policy, make_event):
    results = process_all(
        policy,
        [
            make_event("ticket_opened", at="2026-10-01T09:00:00Z", ticket_id="T1"),
            make_event(text="Let me speak to a real person", at="2026-10-01T10:00:00Z"),
            make_event("ticket_closed", at="2026-10-01T12:30:00Z", ticket_id="T1"),
        ],
    )
    kinds = {o.kind: o for o in results[2].outcomes}
    assert set(kinds) == {"ticket_solved", "handoff_closed"}
    assert kinds["handoff_closed"].value == 2.5 * 3600
    assert kinds["handoff_closed"].detail["queue"] == "general"
    assert results[2].state.handoffs == []


def test_a_repeat_contact_a_reopened_ticket_and_a_return_after_a_hold(policy, make_event):
    results = process_all(
        policy,
        [
            make_event(text="My invoice shows the wrong amount", at="2026-10-01T10:00:00Z"),
            make_event("ticket_opened", at="2026-10-01T10:05:00Z", ticket_id="T1"),
            make_event("ticket_closed", at="2026-10-01T11:00:00Z", ticket_id="T1"),
            make_event(text="The invoice is STILL wrong!!", at="2026-10-02T09:00:00Z"),
            make_event("ticket_opened", at="2026-10-02T09:05:00Z", ticket_id="T1"),
            make_event("page_view", path="/pricing", at="2026-10-20T09:00:00Z"),
        ],
    )
    kinds = [[o.kind for o in r.outcomes] for r in results]
    assert "repeat_contact" in kinds[3]  # back about billing within 72 h
    assert kinds[4] == ["ticket_reopened"]
    # a hold that ended while the customer was away (not one released on their own event)
    holds = [h for h in results[4].state.holds if h.released_at is None]
    assert holds, "the frustrated repeat started a hold"
    returned = [o for o in results[5].outcomes if o.kind == "returned_after_hold"]
    assert [o.detail["hold_id"] for o in returned] == [h.hold_id for h in holds]
    assert returned[0].rule_id == holds[0].created_by.removeprefix("rule:")
    later = parse_event(make_event("page_view", path="/x", at="2026-10-21T09:00:00Z"))
    assert derive_outcomes(later, results[5].state) == []  # once per hold


def test_other_events_reveal_nothing(make_event):
    event = parse_event(make_event("page_view", path="/pricing"))
    assert derive_outcomes(event, CustomerState(customer_id="c1")) == []


def test_outcomes_are_stored_counted_and_served(tmp_path, policy, make_event):
    store = SQLiteStore(tmp_path / "o.db")
    engine = Engine(store, policy, clock=lambda: NOW)
    client = TestClient(create_app(engine))
    r = client.post(
        "/v1/events",
        json=[
            make_event(text="I want a human now", at="2026-10-01T10:00:00Z"),
            make_event("feedback", at="2026-10-02T10:00:00Z", rating=4),
        ],
    )
    assert r.status_code == 202
    [row] = client.get("/v1/outcomes", params={"customer_id": "c1"}).json()["outcomes"]
    assert (row["kind"], row["value"], row["rule_id"]) == ("csat", 4.0, "human_requested")
    later = client.get("/v1/outcomes", params={"since": "2026-10-03T00:00:00Z"}).json()
    assert later["outcomes"] == []
    assert 'tactful_outcomes_total{kind="csat"} 1.0' in client.get("/metrics").text
    store.close()

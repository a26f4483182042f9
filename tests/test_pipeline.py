"""The pure core on the demo scenario: the two-customer problem, guards and purity."""

from __future__ import annotations

import json
from collections import defaultdict

from tactful.events import parse_event
from tactful.runtime.pipeline import Processed, process
from tactful.state.customer import CustomerState


def replay(events, policy) -> dict[str, list[Processed]]:
    states: dict[str, CustomerState] = {}
    out: dict[str, list[Processed]] = defaultdict(list)
    for event in events:
        state = states.get(event.customer_id) or CustomerState(customer_id=event.customer_id)
        result = process(event, state, policy, event.timestamp)
        states[event.customer_id] = result.state
        out[event.customer_id].append(result)
    return out


def decisions(results: list[Processed]) -> list[tuple[str, str]]:
    return [(d.kind, d.rule_id) for r in results for d in r.decisions]


def at_cancel_page(results: list[Processed]) -> Processed:
    return next(r for r in results if getattr(r.event, "path", "") == "/account/cancel")


def test_customer_a_gets_a_pointer_to_invoices_and_no_pitch(scenario_events, policy):
    ana = replay(scenario_events, policy)["ana"]
    cancel = at_cancel_page(ana)
    assert [d.kind for d in cancel.decisions] == ["clarify"]
    assert "invoices" in cancel.decisions[0].params["question"]
    kinds = [k for k, _ in decisions(ana)]
    assert "assist" in kinds
    assist = next(d for r in ana for d in r.decisions if d.kind == "assist")
    assert "Invoices" in assist.params["message"]
    assert not {"escalate", "hold", "offer_choices"} & set(kinds)
    everything = json.dumps([d.as_dict() for r in ana for d in r.decisions]).lower()
    assert "discount" not in everything
    assert ana[-1].state.active_holds(ana[-1].event.timestamp) == []


def test_customer_b_is_held_and_handed_to_billing_with_the_story(scenario_events, policy):
    ben = replay(scenario_events, policy)["ben"]
    cancel = at_cancel_page(ben)
    by_kind = {d.kind: d for d in cancel.decisions}
    assert by_kind["escalate"].params["queue"] == "billing"
    assert set(by_kind["hold"].params["categories"]) == {"promotional", "educational"}
    assert by_kind["escalate"].factors["state.payment_failures_30d"] == 3
    assert by_kind["escalate"].factors["state.open_tickets"] == 2

    handoff = next(a for a in cancel.actions if a.kind == "handoff.created")
    package = handoff.payload
    assert package["queue"] == "billing"
    assert package["account"]["payment_failures_30d"] == 3
    assert package["account"]["open_tickets"] == ["T-1001", "T-1017"]
    assert (
        "payment_failed: 3 failed payment(s) in 30 days (card_declined)" in package["already_tried"]
    )
    assert package["history"]["payment_failed"] == 3
    assert package["trend"]["churn_intent"] > 0.5
    assert package["why"][0].startswith("billing_breakdown")

    final = ben[-1]
    now = final.event.timestamp
    covered = {c for h in final.state.active_holds(now) for c in h.categories}
    assert {"promotional", "educational"} <= covered
    # His angry message after the handoff does not open a second one.
    assert not [d for d in final.decisions if d.kind == "escalate"]
    assert any("handoff is already open" in s for s in final.suppressed)


def test_same_page_different_treatment(scenario_events, policy):
    """The two-customer problem: a behaviour-only system treats A and B the same."""
    results = replay(scenario_events, policy)
    a = {d.kind for d in at_cancel_page(results["ana"]).decisions}
    b = {d.kind for d in at_cancel_page(results["ben"]).decisions}
    assert a == {"clarify"}
    assert {"hold", "escalate"} <= b


def test_other_journeys(scenario_events, policy):
    results = replay(scenario_events, policy)
    eve = decisions(results["eve"])
    assert ("escalate", "vip_error_streak") in eve and ("notify", "vip_error_streak") in eve
    notify = next(d for r in results["eve"] for d in r.decisions if d.kind == "notify")
    assert notify.params["target"] == "@dana"
    assert ("clarify", "confused") in decisions(results["chen"])
    assert ("assist", "rage_click") in decisions(results["dara"])
    farid = decisions(results["farid"])
    assert farid.count(("notify", "high_value_intent")) == 1  # cooldown: one alert, not three
    assert decisions(results["gia"]) == []
    hugo = decisions(results["hugo"])
    assert ("escalate", "bot_going_in_circles") in hugo
    escalate = next(d for r in results["hugo"] for d in r.decisions if d.kind == "escalate")
    assert escalate.params["queue"] == "account"


def test_process_is_pure_and_deterministic(scenario_events, policy):
    first = replay(scenario_events, policy)
    second = replay(scenario_events, policy)
    for cid in first:
        a = [(r.state.model_dump(), [d.as_dict() for d in r.decisions]) for r in first[cid]]
        b = [(r.state.model_dump(), [d.as_dict() for d in r.decisions]) for r in second[cid]]
        assert a == b

    # No step changes the state it was given (the core copies shallowly: a stray in-place
    # mutation would show up here).
    states: dict[str, CustomerState] = {}
    for event in scenario_events:
        state = states.get(event.customer_id) or CustomerState(customer_id=event.customer_id)
        before = state.model_dump()
        result = process(event, state, policy, event.timestamp)
        assert state.model_dump() == before, event.event_id
        states[event.customer_id] = result.state


def test_every_decision_explains_itself(scenario_events, policy):
    for results in replay(scenario_events, policy).values():
        for r in results:
            for d in r.decisions:
                assert d.policy_version == policy.version  # name + content hash
                assert d.reasons[0].startswith(d.rule_id)
                assert d.factors, d.rule_id
                assert d.decision_id == f"{d.event_id}/{d.rule_id}/{d.kind}"


def test_one_hold_per_category_per_event(make_event, policy):
    # Three failed payments: payments_failing and frustration_rising both want a
    # promotional hold on the same event; only one is started.
    state = CustomerState(customer_id="c1")
    for day in (1, 2, 3):
        event = parse_event(make_event("payment_failed", at=f"2026-10-0{day}T10:00:00Z"))
        result = process(event, state, policy, event.timestamp)
        holds = [d for d in result.decisions if d.kind == "hold"]
        covered = [c for d in holds for c in d.params["categories"]]
        assert len(covered) == len(set(covered))
        state = result.state


def test_one_angry_message_is_not_a_repeated_failure(make_event, policy):
    state = CustomerState(customer_id="c1")
    kinds = []
    for at, text in [
        ("2026-10-01T10:00:00Z", "This is ridiculous, nothing works!!"),
        ("2026-10-01T10:05:00Z", "Still broken, third time I ask!!"),
    ]:
        event = parse_event(make_event(text=text, at=at))
        result = process(event, state, policy, event.timestamp)
        kinds.append({(d.kind, d.rule_id) for d in result.decisions})
        state = result.state
    assert ("escalate", "repeated_failure") not in kinds[0]
    assert ("escalate", "repeated_failure") in kinds[1]
    escalation = next(
        d for d in result.decisions if d.rule_id == "repeated_failure" and d.kind == "escalate"
    )
    assert escalation.factors["state.frustration_before"] >= 0.4

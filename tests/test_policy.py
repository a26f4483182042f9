from __future__ import annotations

import re
from pathlib import Path

import pytest

from tactful.policy import PolicyEngine, PolicyError, load_policy
from tactful.policy.expr import ExprError, compile_expr
from tactful.policy.model import NAMESPACES, parse_duration

from .conftest import process_all

FIXTURES = Path(__file__).parent / "fixtures" / "policies"


def ctx(**ns):
    base: dict[str, dict[str, object]] = {k: {} for k in NAMESPACES}
    base.update(ns)
    return base


@pytest.mark.parametrize(
    ("source", "context", "expected"),
    [
        ("state.frustration > 0.6", ctx(state={"frustration": 0.7}), True),
        ("state.frustration > 0.6", ctx(state={"frustration": 0.5}), False),
        ('account.tier in ["enterprise", "vip"]', ctx(account={"tier": "vip"}), True),
        ('account.tier not in ["enterprise"]', ctx(account={"tier": "pro"}), True),
        ("0.2 < state.confusion <= 0.5", ctx(state={"confusion": 0.5}), True),
        ("0.2 < state.confusion <= 0.5", ctx(state={"confusion": 0.6}), False),
        ("not signal.rage_click > 0", ctx(signal={"rage_click": 0.0}), True),
        ('"refund" in event.text', ctx(event={"text": "I want a refund"}), True),
        ('"refund" in event.text', ctx(event={"text": None}), False),
        ('matches(event.path, "/cancel|/close")', ctx(event={"path": "/account/cancel"}), True),
        ('matches(event.path, "/cancel")', ctx(event={"path": None}), False),
        ("account.value >= 1000", ctx(account={"value": None}), False),
        (
            "state.frustration > 0.5 and (account.tier == 'vip' or account.value > 10)",
            ctx(state={"frustration": 0.9}, account={"tier": "pro", "value": 50}),
            True,
        ),
    ],
)
def test_conditions_evaluate(source, context, expected):
    assert compile_expr(source, NAMESPACES)(context) is expected


def test_compiled_condition_reports_the_names_it_reads():
    expr = compile_expr("state.frustration > 0.5 and account.tier == 'vip'", NAMESPACES)
    assert expr.names == ("state.frustration", "account.tier")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("state.frustraton > 0.5", "unknown field 'state.frustraton'"),
        ("stat.frustration > 0.5", "unknown namespace 'stat'"),
        ("frustration > 0.5", "unknown name 'frustration'"),
        ("state > 0.5", "needs a field"),
        ("state.frustration + 1 > 0.5", "arithmetic is not supported"),
        ('__import__("os")', "only these functions may be called"),
        ("state.frustration.real > 0", "only namespace.field"),
        ("lambda: 1", "not allowed"),
        ("state.frustration >", "syntax error"),
        ('matches(event.path, "(")', "invalid regular expression"),
        ("state.frustration > 0.5 && true", "syntax error"),
        ("", "empty condition"),
    ],
)
def test_bad_conditions_fail_at_compile_time_with_a_caret(source, message):
    with pytest.raises(ExprError) as info:
        compile_expr(source, NAMESPACES)
    assert message in str(info.value)
    if info.value.col is not None:
        assert "^" in str(info.value)


def test_caret_points_at_the_problem():
    with pytest.raises(ExprError) as info:
        compile_expr("state.frustration > 0.5 and state.angr > 1", NAMESPACES)
    source_line, caret_line = str(info.value).splitlines()[1:3]
    assert source_line[caret_line.index("^") :].startswith("state.angr")


def test_default_policy_loads_with_hard_triggers_first():
    policy = load_policy()
    assert policy.version.startswith("default-")
    ordered = [rule for rule, _ in policy.compiled()]
    hard = [r.hard for r in ordered]
    assert hard == sorted(hard, reverse=True) and any(hard)
    assert policy.queue_for("billing") == "billing"
    assert policy.queue_for("other") == policy.fallback_queue


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("unknown_field.yaml", "rules[0] (typo).when: unknown field 'state.frustraton'"),
        ("unknown_key.yaml", "rules[0] (extra).severity: Extra inputs are not permitted"),
        ("duplicate_id.yaml", "rule id 'same' is used twice"),
        ("bad_duration.yaml", "'forever' is not a duration"),
        ("two_kinds.yaml", "exactly one kind"),
        ("unknown_topic_queue.yaml", "unknown topic(s) ['billling']"),
        ("python_escape.yaml", "only these functions may be called"),
        ("bad_category.yaml", "rules[0] (hold_it).then.0.hold.categories.0"),
        ("unknown_weight.yaml", "memory.weights: unknown signal(s) ['rage_clik']"),
        ("bad_half_life.yaml", "half_lives.frustration: must be a positive duration"),
        ("window_too_long.yaml", "rage_window=0:10:00: must be positive and at most 0:02:00"),
        ("bad_exclude_regex.yaml", "'toggle(' is not a regex"),
        (
            "unknown_threshold.yaml",
            "unknown field 'threshold.frustated'; threshold has: frustrated",
        ),
        ("unused_threshold.yaml", "thresholds: ['forgotten'] defined but no rule reads them"),
        ("never_matches.yaml", "(impossible).when: can never match"),
        ("unknown_queue.yaml", "escalate.queue: unknown queue 'biling'; queues are: billing"),
        (
            "unknown_queue_topic.yaml",
            "escalate.queue: unknown topic 'cancelation' in 'topic:cancelation'; topics are: ",
        ),
        ("unknown_channel.yaml", "notify.channel: unknown channel 'pager'; channels are: log"),
        ("unreachable.yaml", "rule catch_all: always true and stop, so these rules are"),
        ("conflicting_override.yaml", "rule human_again: same condition as hard trigger"),
        ("bad_queue_limit.yaml", "billing.overflow 'billing' must be another known queue"),
        ("long_cooldown.yaml", "longer than the 7 days a customer's state remembers"),
        ("two_of_a_kind.yaml", "notify appears twice; a rule makes each kind of decision once"),
        ("heavy_weight.yaml", "memory.weights.rage_click: Input should be less than or equal to 1"),
    ],
)
def test_policy_mistakes_are_refused_at_load(fixture, message):
    with pytest.raises(PolicyError) as info:
        load_policy(FIXTURES / fixture)
    assert message in str(info.value)
    # each problem says where: file:line:column
    assert re.search(rf"{re.escape(fixture)}:\d+:\d+: ", str(info.value)), str(info.value)


@pytest.mark.parametrize(
    ("fixture", "line"),
    [("unknown_field.yaml", 4), ("unknown_queue.yaml", 7), ("conflicting_override.yaml", 10)],
)
def test_policy_errors_point_at_the_line(fixture, line):
    with pytest.raises(PolicyError) as info:
        load_policy(FIXTURES / fixture)
    assert f"{fixture}:{line}:" in str(info.value)


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("rules: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800)]
)
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("source", "signals", "types"),
    [
        ("signal.rage_click > 0", {"rage_click"}, None),
        (
            "signal.rage_click >= 0.5 or signal.error_streak > 0",
            {"rage_click", "error_streak"},
            None,
        ),
        ("signal.rage_click > 0 or state.frustration > 0.5", None, None),
        ("state.frustration > 0.5 and signal.rage_click > 0", {"rage_click"}, None),
        ("signal.rage_click >= 0", None, None),
        ("signal.rage_click > -1", None, None),
        ("not signal.rage_click > 0", None, None),
        (
            'event.type in ["message", "search"] and state.topic == "billing"',
            None,
            {"message", "search"},
        ),
        ('event.type == "click"', None, {"click"}),
        ('event.type != "click"', None, None),
    ],
)
def test_conditions_know_what_they_need(source, signals, types):
    expr = compile_expr(source, NAMESPACES)
    assert expr.requires_signals == (frozenset(signals) if signals is not None else None)
    assert expr.requires_types == (frozenset(types) if types is not None else None)


def test_skipping_rules_never_changes_a_decision(scenario_events, policy):
    """The pre-checks are an optimisation only: the same decisions with them switched off."""
    import dataclasses

    from tactful.runtime.pipeline import process
    from tactful.state.customer import CustomerState

    unfiltered = PolicyEngine(policy.policy)
    unfiltered.rules = [
        (rule, dataclasses.replace(cond, requires_signals=None, requires_types=None))
        for rule, cond in unfiltered.rules
    ]
    assert all(len(unfiltered.candidates(t, frozenset())) == len(policy.rules) for t in "ab")
    states: dict[str, CustomerState] = {}
    checked = 0
    for event in scenario_events:
        state = states.get(event.customer_id) or CustomerState(customer_id=event.customer_id)
        a = process(event, state, policy, event.timestamp)
        b = process(event, state, unfiltered, event.timestamp)
        assert [d.as_dict() for d in a.decisions] == [d.as_dict() for d in b.decisions]
        assert a.suppressed == b.suppressed
        states[event.customer_id] = a.state
        checked += len(a.decisions)
    assert checked > 10


def test_matches_needs_exactly_two_arguments():
    with pytest.raises(ExprError, match="two arguments"):
        compile_expr('matches(event.text, "a", 1)', NAMESPACES)


def test_clock_conditions_read_utc(make_event, policy):
    from tactful.events import parse_event
    from tactful.policy.engine import build_context
    from tactful.state.customer import CustomerState

    a = parse_event(make_event(at="2026-10-01T23:30:00+02:00"))
    b = parse_event(make_event(at="2026-10-01T21:30:00Z"))
    state = CustomerState(customer_id="c1")
    ctx_a = build_context(a, state, [], a.timestamp)["clock"]
    ctx_b = build_context(b, state, [], b.timestamp)["clock"]
    assert ctx_a == ctx_b == {"hour": 21, "weekday": 3}


def test_an_agent_warning_about_fraud_does_not_escalate(make_event, policy):
    from tactful.events import parse_event
    from tactful.runtime.pipeline import process
    from tactful.state.customer import CustomerState

    text = "Tip: we never ask for your password; report fraud to us."
    for role, escalates in (("agent", False), ("customer", True)):
        event = parse_event(make_event(text=text, role=role))
        result = process(event, CustomerState(customer_id="c1"), policy, event.timestamp)
        assert any(d.kind == "escalate" for d in result.decisions) is escalates, role


def _decide_all(policy, raws):
    """(kind, rule) of each event's decisions, the events processed in turn."""
    return [{(d.kind, d.rule_id) for d in r.decisions} for r in process_all(policy, raws)]


def test_a_stalled_bot_changes_strategy_and_a_looping_one_escalates(make_event, policy):
    stalled = _decide_all(
        policy,
        [
            make_event("bot_turn", at="2026-10-01T10:00:00Z", step_id="verify", outcome="fallback"),
            make_event("bot_turn", at="2026-10-01T10:01:00Z", step_id="reset", outcome="failed"),
        ],
    )
    assert stalled[0] == set()
    assert stalled[1] == {("offer_choices", "bot_stalled")}
    looping = _decide_all(
        policy,
        [
            make_event("bot_turn", at="2026-10-01T10:00:00Z", step_id="reset", outcome="failed"),
            make_event("bot_turn", at="2026-10-01T10:01:00Z", step_id="reset", outcome="failed"),
        ],
    )
    assert ("escalate", "bot_going_in_circles") in looping[1]
    assert ("offer_choices", "bot_stalled") not in looping[1]


def test_telling_the_same_story_again_reaches_a_person(make_event, policy):
    first = "I can't find where to download my invoice. This is annoying."
    again = "I'm writing again about downloading my invoice. Still can't find it!"
    decided = _decide_all(
        policy,
        [
            make_event(text=first, at="2026-10-01T10:00:00Z", conversation_id="v1"),
            make_event(text=again, at="2026-10-02T09:00:00Z", conversation_id="v2"),
        ],
    )
    assert not any(kind == "escalate" for kind, _ in decided[0])
    assert ("escalate", "told_us_before") in decided[1]


def test_the_policy_file_tunes_memory_and_detectors(tmp_path, make_event):
    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(
        "version: tuned\n"
        "memory:\n  weights: {rage_click: 0}\n  half_lives: {frustration: 1h}\n"
        "  lateness: 5m\n"
        "detectors:\n  rage_clicks: 2\n  rage_window: 2s\n"
        "rules:\n  - id: any\n    when: signal.rage_click > 0\n    then: [automate]\n"
    )
    store = SQLiteStore(tmp_path / "t.db")
    try:
        engine = Engine(store, PolicyEngine(load_policy(tuned)))
        assert engine.behavior.rage_clicks == 2
        assert engine.memory.lateness.total_seconds() == 300
        assert engine.memory.trend.half_life("frustration") == 3600
        assert engine.memory.trend.half_life("confusion") == 1800  # the default, kept
        clicks = [
            make_event("click", at=f"2026-10-01T10:00:0{i}Z", element="#save") for i in (0, 1)
        ]
        results = engine.ingest(clicks)
        assert [r.as_dict()["signals"] for r in results] == [[], ["rage_click"]]
        state = store.get_state("c1")
        assert state is not None and "frustration" not in state.trend  # weighed at 0
    finally:
        store.close()


def test_the_default_policy_spells_out_the_built_in_defaults():
    """default.yaml shows users the values; they must be the code's defaults."""
    from tactful.detect.behavior import BehaviorConfig
    from tactful.state.customer import DEFAULT_MEMORY

    shipped = load_policy()
    assert shipped.detectors.config() == BehaviorConfig()
    assert shipped.memory.config() == DEFAULT_MEMORY


def test_decisions_record_each_threshold_next_to_the_value_it_judged(make_event, policy):
    from tactful.events import parse_event
    from tactful.runtime.pipeline import process
    from tactful.state.customer import CustomerState

    event = parse_event(make_event(text="This is useless. I want to talk to a human now!"))
    result = process(event, CustomerState(customer_id="c1"), policy, event.timestamp)
    human = next(d for d in result.decisions if d.rule_id == "human_requested")
    assert human.factors["threshold.asks_for_human"] == 0.5
    assert human.factors["signal.wants_human"] >= 0.5
    assert "threshold.asks_for_human=0.5" in human.reasons[1]


def test_named_thresholds_compile_to_constants_the_prechecks_see_through():
    shipped = load_policy()
    compiled = dict((r.id, c) for r, c in shipped.compiled())
    # `signal.wants_human >= threshold.asks_for_human` still needs wants_human to fire,
    # so the rule is skipped without evaluation on every other event.
    assert compiled["human_requested"].requires_signals == frozenset({"wants_human"})
    assert compiled["payments_failing"].requires_signals == frozenset({"payment_failed"})


def test_shadow_compare_counts_gained_lost_and_changed():
    from datetime import UTC, datetime

    from tactful.policy.engine import Decision
    from tactful.policy.shadow import compare

    def d(kind, rule, **params):
        at = datetime(2026, 10, 1, tzinfo=UTC)
        return Decision(f"e/{rule}/{kind}", "e", "c", at, kind, rule, "v", params, (), {})

    esc = d("escalate", "r1", queue="billing", priority="high")
    esc_tech = d("escalate", "r1", queue="technical", priority="high")
    hold = d("hold", "r2", categories=["promotional"], duration_s=60.0)
    report = compare(
        [
            ("ann", [esc], [esc_tech]),  # changed: another queue
            ("bob", [esc, hold], [esc]),  # lost: the hold
            ("cy", [], [hold]),  # gained
            ("dee", [hold], [hold]),  # the same
        ]
    )
    assert report.events == 4 and report.differing_events == 3
    assert report.changed == {
        "escalate -> billing (high) (r1) -> escalate -> technical (high) (r1)": 1
    }
    assert report.lost == {"hold promotional (r2)": 1}
    assert report.gained == {"hold promotional (r2)": 1}
    assert report.examples["lost", "hold promotional (r2)"] == ["bob"]
    assert report.examples["gained", "hold promotional (r2)"] == ["cy"]


@pytest.mark.parametrize(
    ("text", "rule", "kind"),
    [
        ("I'm locked out of my account after too many attempts", "lockout", "escalate"),
        ("How do I reset my password?", "password_reset", "assist"),
        ("Can I get my money back for the annual plan?", "refund_request", "assist"),
        ("I was charged twice this month, I want to dispute it", "billing_dispute", "escalate"),
        ("You charged my card after I cancelled", "billing_dispute", "escalate"),
        ("We are still being billed even though we downgraded", "billing_dispute", "escalate"),
        ("Do you offer custom terms and a DPA for our procurement?", "sales_question", "escalate"),
        ("I feel like I might hurt myself", "safety", "escalate"),
        (
            "This is the worst service ever, I'm furious. Cancel my account, I'm done.",
            "leaving_for_sure",
            "escalate",
        ),
        ("How do I cancel my subscription?", "leaving_calmly", "offer_choices"),
    ],
)
def test_the_routing_matrix_of_the_seeds(make_event, policy, text, rule, kind):
    (decided,) = _decide_all(policy, [make_event(text=text)])
    assert (kind, rule) in decided, decided


def test_mfa_failing_twice_in_the_bot_is_a_lockout(make_event, policy):
    turns = [
        make_event("bot_turn", at=f"2026-10-01T10:0{i}:00Z", step_id="verify_mfa", outcome="failed")
        for i in range(2)
    ]
    decided = _decide_all(policy, turns)
    assert ("escalate", "lockout") in decided[1]
    assert ("escalate", "bot_going_in_circles") not in decided[1]  # one handoff, not two


def test_a_late_message_is_judged_against_the_level_before_it(make_event, policy):
    """<dim>_before is the level before this event's evidence, also for a late event
    (whose own evidence is already in the trend by the time the policy reads it)."""
    angry = "This is the third time it broke. Still not working, I'm furious!!"
    decided = _decide_all(
        policy,
        [
            # a failed payment: a little frustration (0.2) at 10:00
            make_event("payment_failed", at="2026-10-01T10:00:00Z", reason="card_declined"),
            make_event(at="2026-10-01T09:30:00Z", text=angry),  # late, within the hour
        ],
    )
    # before this message the level was 0.2, under the 0.4 that makes it a repeat
    assert ("escalate", "repeated_failure") not in decided[1]


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("I will call my LAWYER", "lawyer|legal action", True),
        ("We will SUE you", r"\bsue\b", True),
        ("we pursue it", r"\bsue\b", False),
        ("Need the SOC 2 report", "soc ?2", True),
        ("Need the soc 2 report", "SOC 2", True),  # capitals in the pattern: still caseless
        ("STRASSE", "straße", False),  # as re.IGNORECASE: no full case folding
    ],
)
def test_matches_is_case_insensitive(text, pattern, expected):
    from tactful.policy.expr import FUNCTIONS

    assert FUNCTIONS["matches"](text, pattern) is expected


def test_rules_can_read_the_customers_local_hour(make_event, policy):
    from tactful.events import parse_event
    from tactful.policy.engine import build_context
    from tactful.state.customer import CustomerState

    event = parse_event(make_event(at="2026-10-01T23:30:00Z"))
    tokyo = CustomerState(customer_id="c1", timezone="Asia/Tokyo")
    clock = build_context(event, tokyo, [], event.timestamp)["clock"]
    assert clock["hour"] == 23 and clock["local_hour"] == 8  # 08:30 the next day in Tokyo
    unknown = build_context(event, CustomerState(customer_id="c2"), [], event.timestamp)
    assert unknown["clock"]["local_hour"] == 23


@pytest.mark.parametrize(
    ("start", "end", "hh_mm", "quiet"),
    [
        ("21:00", "08:00", "23:59", True),
        ("21:00", "08:00", "07:59", True),
        ("21:00", "08:00", "08:00", False),
        ("21:00", "08:00", "20:59", False),
        ("12:00", "14:00", "13:00", True),
        ("12:00", "14:00", "14:00", False),
    ],
)
def test_quiet_hours_span_midnight(start, end, hh_mm, quiet):
    from datetime import UTC, datetime

    from tactful.policy.model import QuietHours

    hours = QuietHours(start=start, end=end)
    h, m = (int(x) for x in hh_mm.split(":"))
    assert hours.covers(datetime(2026, 10, 1, h, m, tzinfo=UTC)) is quiet
    with pytest.raises(ValueError, match="not a time of day"):
        QuietHours(start="9pm")


def test_a_rule_can_route_by_a_named_topic_whatever_the_customers_topic():
    """queue "topic:cancellation": the queue the policy's `queues` gives cancellations,
    though the message that said it was about SSO (sales_security)."""
    policy = load_policy(None)
    assert (
        policy.resolve_queue("topic:cancellation", "sales_security")
        == policy.queues["cancellation"]
    )
    assert policy.resolve_queue("auto", "sales_security") == policy.queues["sales_security"]
    assert policy.resolve_queue("technical", "billing") == "technical"
    assert policy.resolve_queue("topic:other", "billing") == policy.fallback_queue

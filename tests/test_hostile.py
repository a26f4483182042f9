"""The bad-input campaign, bounded in time: fuzzed events, Segment payloads and policy
files never crash the parsers (only their own, explained errors), and policy expressions
cannot reach Python, files or the network, nor hang evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tactful.events import EventError, parse_event
from tactful.policy import load_policy
from tactful.policy.expr import ExprError, compile_expr
from tactful.policy.model import NAMESPACES, PolicyError

FAST = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
EVENT_KEYS = [
    "event_id",
    "type",
    "customer_id",
    "timestamp",
    "text",
    "messageId",
    "userId",
    "event",
    "properties",
    "traits",
    "context",
    "path",
    "element",
    "x",
    "y",
    "rating",
    "status",
]
TYPES = [
    "message",
    "click",
    "page_view",
    "api_error",
    "identify",
    "track",
    "page",
    "group",
    "screen",
    "feedback",
    "bot_turn",
    "ticket_opened",
    "nonsense",
]


def only_event_errors(raw: Any) -> None:
    started = time.perf_counter()
    try:
        parse_event(raw)
    except EventError as exc:
        assert exc.problems, "an error must say what is wrong"
        for p in exc.problems:
            assert p.why
    assert time.perf_counter() - started < 0.5


@FAST
@given(st.binary(max_size=2_000))
def test_random_bytes_are_refused_with_reasons(raw):
    only_event_errors(raw)


@FAST
@given(st.text(max_size=2_000))
def test_random_text_is_refused_with_reasons(raw):
    only_event_errors(raw)


@FAST
@given(
    st.dictionaries(st.sampled_from(EVENT_KEYS), json_values, max_size=10),
    st.sampled_from(TYPES),
)
def test_event_shaped_dicts_native_and_segment(fields, type_):
    only_event_errors({**fields, "type": type_})
    only_event_errors(json.dumps({**fields, "type": type_}, default=str))


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=500) | st.builds(lambda v: "version: x\nrules:\n" + v, st.text(max_size=300))
)
def test_random_policy_files_are_refused_with_reasons(tmp_path_factory, text):
    path = Path(tmp_path_factory.mktemp("p")) / "p.yaml"
    path.write_text(text)
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(exc)


HOSTILE = [
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "state.__class__",
    "state.frustration.__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "getattr(state, 'frustration')",
    "(lambda: 1)()",
    "[x for x in range(10**9)]",
    "event.text.upper() == 'X'",
    "f'{state}'",
    "state['frustration'] > 0",
    "exec('1')",
    "eval('1')",
    "globals()",
    "2 ** 2 ** 2 ** 2 ** 2 ** 2",
    "len(event.text) > 10**100",
    "state.frustration > 0.5; import os",
]


@pytest.mark.parametrize("expr", HOSTILE)
def test_expressions_cannot_reach_python(expr):
    with pytest.raises(ExprError):
        compile_expr(expr, NAMESPACES)


def test_deep_nesting_is_an_error_not_a_crash():
    # nesting a person might write still compiles and evaluates
    nested = compile_expr("(" * 100 + "state.frustration > 0" + ")" * 100, NAMESPACES)
    assert nested.fn({"state": {"frustration": 1.0}}) is True
    assert (
        compile_expr("not " * 100 + "state.frustration > 0", NAMESPACES).fn(
            {"state": {"frustration": 1.0}}
        )
        is True
    )
    # beyond the parser's limits or the length cap: an error that says so, not a crash
    for text in (
        "(" * 5_000 + "state.frustration > 0" + ")" * 5_000,
        "not " * 5_000 + "state.frustration > 0",
        " or ".join(["state.frustration > 0"] * 1_000),
    ):
        with pytest.raises(ExprError):
            compile_expr(text, NAMESPACES)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$", "(.*a){20}", "([a-z]+)*x"])
def test_regexes_that_can_backtrack_forever_are_refused_at_load(pattern):
    with pytest.raises(ExprError, match="backtrack"):
        compile_expr(f'matches(event.text, "{pattern}")', NAMESPACES)


def test_a_long_condition_still_evaluates_fast():
    clauses = " or ".join(f'matches(event.text, "word{i}")' for i in range(100))
    compiled = compile_expr(clauses, NAMESPACES)
    ctx = {"event": {"text": "x" * 10_000}}
    started = time.perf_counter()
    assert not compiled.fn(ctx)
    assert time.perf_counter() - started < 0.5

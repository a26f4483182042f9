from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tactful.events import MAX_TEXT_CHARS, EventError, Identify, Message, PageView, parse_event

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def problems(raw: object, now: datetime | None = NOW) -> dict[str, str]:
    with pytest.raises(EventError) as info:
        parse_event(raw, now=now)
    return {p.field: p.why for p in info.value.problems}


def test_valid_message_is_typed(make_event):
    event = parse_event(make_event(text="It broke again"), now=NOW)
    assert isinstance(event, Message)
    assert event.text == "It broke again"
    assert event.timestamp.tzinfo is not None


def test_json_string_is_accepted(make_event):
    import json

    event = parse_event(json.dumps(make_event("page_view", path="/pricing")), now=NOW)
    assert isinstance(event, PageView)
    assert event.path == "/pricing"


def test_missing_customer_id_names_the_field(make_event):
    raw = make_event()
    del raw["customer_id"]
    assert "customer_id" in problems(raw)


def test_unknown_type_lists_the_known_ones(make_event):
    why = problems(make_event("mouse_wiggle"))["type"]
    assert "unknown event type" in why
    assert "page_view" in why and "payment_failed" in why


@pytest.mark.parametrize("field", ["event_id", "customer_id"])
@pytest.mark.parametrize("bad", ["a\x00b", "line\nbreak", "tab\there", "del\x7f"])
def test_ids_with_control_characters_are_refused_saying_where(make_event, field, bad):
    why = problems({**make_event(), field: bad})[field]
    assert "control character" in why and "position" in why
    # printable non-ASCII is an id like any other
    assert getattr(parse_event({**make_event(), field: "josé·例"}, now=NOW), field) == "josé·例"


def test_naive_timestamp_is_refused(make_event):
    why = problems(make_event(at="2026-10-01T10:00:00"))["timestamp"]
    assert "timezone" in why


def test_future_timestamp_beyond_tolerance_is_refused(make_event):
    why = problems(make_event(at="2026-11-01T00:10:00Z"))["timestamp"]
    assert "future" in why
    # within the clock-skew tolerance it is fine
    parse_event(make_event(at="2026-11-01T00:04:00Z"), now=NOW)


def test_text_over_the_limit_is_refused(make_event):
    why = problems(make_event(text="x" * (MAX_TEXT_CHARS + 1)))["text"]
    assert str(MAX_TEXT_CHARS) in why


def test_unknown_field_points_to_context(make_event):
    why = problems(make_event(colour="blue"))["colour"]
    assert "context" in why


def test_bad_json_and_non_objects():
    assert "not valid JSON" in problems("{not json")["body"]
    assert "JSON object" in problems([1, 2])["event"]


def test_problem_values_are_capped_for_reports(make_event):
    with pytest.raises(EventError) as info:
        parse_event(make_event(text="y" * 20_000), now=NOW)
    reported = info.value.problems[0].as_dict()
    assert reported["field"] == "text"
    assert len(reported["value"]) < 300


def test_segment_track_maps_to_native_and_keeps_extras():
    event = parse_event(
        {
            "type": "track",
            "event": "Payment Failed",
            "messageId": "m-123",
            "userId": "u1",
            "timestamp": "2026-10-01T10:00:00Z",
            "properties": {"amount": 49, "currency": "USD", "invoice": "INV-9"},
            "context": {"groupId": "acct-1"},
        },
        now=NOW,
    )
    assert event.type == "payment_failed"
    assert event.event_id == "segment:m-123"
    assert event.customer_id == "u1"
    assert event.account_id == "acct-1"
    assert event.amount == 49
    assert event.context["properties"] == {"invoice": "INV-9"}


def test_segment_page_identify_group():
    page = parse_event(
        {
            "type": "page",
            "messageId": "m1",
            "anonymousId": "anon-1",
            "timestamp": "2026-10-01T10:00:00Z",
            "properties": {"path": "/docs/sso"},
        },
        now=NOW,
    )
    assert page.type == "page_view" and page.path == "/docs/sso"
    ident = parse_event(
        {
            "type": "identify",
            "messageId": "m2",
            "userId": "u1",
            "timestamp": "2026-10-01T10:00:00Z",
            "traits": {"tier": "enterprise", "nested": {"x": 1}},
        },
        now=NOW,
    )
    assert ident.type == "identify" and ident.traits == {"tier": "enterprise"}
    group = parse_event(
        {
            "type": "group",
            "messageId": "m3",
            "userId": "u1",
            "groupId": "acme",
            "timestamp": "2026-10-01T10:00:00Z",
            "traits": {"value": 1000},
        },
        now=NOW,
    )
    assert group.type == "identify" and group.account_id == "acme"


def test_native_identify_is_not_mistaken_for_segment(make_event):
    event = parse_event(make_event("identify", traits={"tier": "pro"}), now=NOW)
    assert event.type == "identify" and event.traits == {"tier": "pro"}


def test_segment_unknown_track_name_lists_known_names():
    why = problems(
        {
            "type": "track",
            "event": "Wiggled Mouse",
            "messageId": "m",
            "userId": "u",
            "timestamp": "2026-10-01T10:00:00Z",
        }
    )["event"]
    assert "payment_failed" in why


def test_segment_without_user_is_refused():
    assert "userId" in problems(
        {"type": "track", "event": "Search", "messageId": "m", "timestamp": "2026-10-01T10:00:00Z"}
    )


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"tenure_days": 2.5}, "whole number"),
        ({"value": "high"}, "must be a number"),
        ({"owner": 5}, "must be a string"),
        ({"value": -3}, "negative"),
        ({"value": float("nan")}, "finite"),
        ({"value": float("inf")}, "finite"),
    ],
)
def test_traits_tactful_reads_must_have_their_type(make_event, traits, words):
    why = problems(make_event("identify", traits=traits))
    assert any(field.startswith("traits") for field in why)
    assert any(words in w for w in why.values()), why


def test_other_traits_pass_through(make_event):
    event = parse_event(make_event("identify", traits={"value": 10, "plan": "team"}), now=NOW)
    assert isinstance(event, Identify)
    assert event.traits == {"value": 10, "plan": "team"}


def test_non_finite_numbers_are_refused(make_event):
    assert "finite" in problems(make_event("payment_failed", amount=float("inf")))["amount"]


def test_lone_surrogates_are_refused_with_the_field(make_event):
    why = problems(make_event(text="hi", context={"ua": "\ud800x"}))
    assert "surrogate" in why["context.ua"]


def test_ancient_timestamps_are_refused(make_event):
    assert "before 2000" in problems(make_event(at="0001-01-01T00:00:00+01:00"))["timestamp"]

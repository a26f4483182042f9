"""The handoff package: redaction, its contents on a realistic journey, completeness, and
its published JSON Schema."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tactful.actions.handoff import (
    HandoffPackage,
    build_handoff,
    handoff_package,
    handoff_schema,
    reason_codes,
    schema_json,
)
from tactful.actions.redact import luhn_valid, mod97_valid, redact, redact_counts, redact_value
from tactful.events import parse_event
from tactful.state.customer import CustomerState

from .conftest import ROOT, process_all, ts

SCHEMA_FILE = ROOT / "docs" / "handoff.schema.json"
REGENERATE = (
    '.venv/bin/python -c "from tactful.actions.handoff import schema_json; '
    "open('docs/handoff.schema.json', 'w').write(schema_json())\""
)

# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ana.lopez+billing@example.co.uk today", "write to [email] today"),
        ("card 4111 1111 1111 1111, exp 12/27", "card [card], exp 12/27"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 378282246310005.", "amex [card]."),
        ("two: 4111111111111111 5500 0000 0000 0004", "two: [card] [card]"),
        ("on 2026-10-14 4111 1111 1111 1111", "on 2026-10-14 [card]"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [iban] please"),
        ("IBAN GB82WEST12345698765432.", "IBAN [iban]."),
        ("call +44 20 7946 0958 or +1 (555) 123-4567", "call [phone] or [phone]"),
        ("US (555) 123-4567, 555-123-4567, 555.123.4567", "US [phone], [phone], [phone]"),
        ("UK 020 7946 0958, FR 06 12 34 56 78", "UK [phone], FR [phone]"),
        ("phone: 5551234", "phone: [phone]"),
        ("my number is 0612345678", "my number is [phone]"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx123", "key [secret]"),
        ("stripe sk_live_51Habcdefghijklmn", "stripe [secret]"),
        ("gh ghp_" + "a1" * 18, "gh [secret]"),
        ("slack xoxb-123456789012-abcdefghij", "slack [secret]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [secret]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
            "jwt [secret]",
        ),
        ("Authorization: Bearer abc123def456ghi789", "Authorization: Bearer [secret]"),
        ("api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "api_key=[secret]"),
        ("my token is AbC123dEf456GhI789.", "my token is [secret]."),
        ("password: swordfish", "password: [secret]"),
        ("my password is hunter22", "my password is [secret]"),
    ],
)
def test_redacts_each_kind(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 (one digit off: not Luhn-valid)",
        "order #12345 and order #4111111111111111",
        "it cost $1,299.00 (or 1.299,00 EUR), invoice 2026-10-14 at 10:15:30",
        "dates 14/10/2026, 01.02.2026 10:15, the year 2025, version 1.2.3.4",
        "ticket T-1001, build 20261014, 3 of 4 steps",
        "IBAN GB82 WEST 1234 5698 7654 33 (check digits wrong)",
        "5500 0000 0000 0005 is not a card and not a phone",
        "Bearer authentication failed",
        "the token expired and the key is in the drawer",
        "my password is wrong",
        "order number 1234567890",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert redact(text) == text


def test_counts_what_it_redacted() -> None:
    text, counts = redact_counts(
        "ana@example.com, bob@example.com, 4111 1111 1111 1111, +44 20 7946 0958, "
        "DE89 3704 0044 0532 0130 00, ghp_" + "x9" * 18
    )
    assert counts == Counter(email=2, card=1, phone=1, iban=1, secret=1)
    assert text == "[email], [email], [card], [phone], [iban], [secret]"
    assert redact_counts("nothing to see")[1] == Counter()


def test_redact_value_goes_through_containers() -> None:
    value = {
        "email": "ana@example.com",
        "nested": [{"card": "4111111111111111"}, ("+44 20 7946 0958", 3)],
        "n": 4111111111111111,
        "none": None,
    }
    assert redact_value(value) == {
        "email": "[email]",
        "nested": [{"card": "[card]"}, ("[phone]", 3)],
        "n": 4111111111111111,  # numbers are not text
        "none": None,
    }


def test_check_digit_functions() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert mod97_valid("DE89370400440532013000") and not mod97_valid("DE88370400440532013000")
    assert not mod97_valid("de89370400440532013000")  # compact upper case only


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    """A Luhn-valid number of 13 to 19 digits, written compact or in groups of four."""
    length = draw(st.integers(13, 19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    number = next(body + d for d in "0123456789" if luhn_valid(body + d))
    sep = draw(st.sampled_from(["", " ", "-"]))
    if sep and length == 16:
        number = sep.join(number[i : i + 4] for i in range(0, 16, 4))
    return number


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A German IBAN with correct check digits, compact or in groups of four."""
    bban = draw(st.text("0123456789", min_size=18, max_size=18))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    iban = f"DE{check:02d}{bban}"
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


# Text around the items: words, digits, punctuation, and pieces of the other patterns.
PIECES = st.sampled_from(
    [
        *"abcXYZ0123456789 -+.,:@#$[]()_=/\n",
        *("sk-", "key ", "Bearer ", "token: ", "DE89 ", "+1 ", "phone ", "@example.com"),
        *("password: ", "call me at ", "(0", "555-123-", "€", "٣"),
    ]
)
TEXT = st.one_of(st.lists(PIECES, max_size=30).map("".join), st.text(max_size=60))


@settings(max_examples=300)
@given(TEXT)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=300)
@given(TEXT, card_numbers(), TEXT)
def test_valid_card_numbers_never_survive(before: str, card: str, after: str) -> None:
    out = redact(f"{before} {card} {after}")
    assert card not in out
    assert card.replace(" ", "").replace("-", "") not in out.replace(" ", "").replace("-", "")


@settings(max_examples=200)
@given(TEXT, ibans(), TEXT)
def test_valid_ibans_never_survive(before: str, iban: str, after: str) -> None:
    assert iban not in redact(f"{before} {iban} {after}")


# --- the package on a realistic journey ----------------------------------------------------

CARD = "4111 1111 1111 1111"
EMAIL = "ana.lopez@example.com"
PHONE = "+44 20 7946 0958"


def journey(make_event: Any) -> list[dict[str, Any]]:
    """Ana at Acme: two failed payments, a message sharing her card, email and phone, the
    docs page on updating a card, then the billing bot fails the same step twice."""
    return [
        make_event(
            "identify",
            at="2026-10-01T09:00:00Z",
            event_id="id-1",
            account_id="acme",
            traits={"tier": "pro", "value": 1200, "account_name": "Acme"},
        ),
        make_event("payment_failed", at="2026-10-01T09:05:00Z", event_id="pay-1", reason="nsf"),
        make_event("payment_failed", at="2026-10-03T09:05:00Z", event_id="pay-2", reason="nsf"),
        make_event(
            text=f"My payment failed again. I updated the card to {CARD} yesterday. "
            f"Write to {EMAIL} or call {PHONE}.",
            at="2026-10-03T09:08:00Z",
            event_id="msg-1",
        ),
        make_event(
            "page_view", at="2026-10-03T09:10:00Z", event_id="doc-1", path="/docs/billing/card"
        ),
        make_event(
            "bot_turn", at="2026-10-03T09:12:00Z", event_id="bot-1", step_id="update_card",
            outcome="failed",
        ),
        make_event(
            "bot_turn", at="2026-10-03T09:13:00Z", event_id="bot-2", step_id="update_card",
            outcome="failed",
        ),
    ]  # fmt: skip


@pytest.fixture
def package(policy: Any, make_event: Any) -> dict[str, Any]:
    results = process_all(policy, journey(make_event))
    handoffs = [a for r in results for a in r.actions if a.kind == "handoff.created"]
    assert len(handoffs) == 1, [(r.event.event_id, r.decisions) for r in results]
    return handoffs[0].payload


def test_customer_data_is_redacted_everywhere(package: dict[str, Any]) -> None:
    dumped = json.dumps(package)
    for secret in (CARD, CARD.replace(" ", ""), EMAIL, PHONE, "7946"):
        assert secret not in dumped
    assert package["quotes"] == [
        "My payment failed again. I updated the card to [card] yesterday. "
        "Write to [email] or call [phone]."
    ]
    assert package["goal"].startswith("The customer wants to sort out a billing problem")
    assert "[card]" in package["goal"]
    assert package["redactions"] == {"card": 1, "email": 1, "phone": 1}


def test_package_tells_the_story(package: dict[str, Any]) -> None:
    assert package["queue"] == "billing"
    assert package["topic"] == "billing"
    assert package["trigger_event"] == {"event_id": "bot-2", "type": "bot_turn"}
    tried = package["tried"]
    assert tried["bot_steps"] == [
        {
            "step": "update_card",
            "attempts": 2,
            "failures": 2,
            "outcomes": ["failed", "failed"],
            "event_ids": ["bot-1", "bot-2"],
        }
    ]
    assert [(a["path"], a["event_ids"]) for a in tried["articles"]] == [
        ("/docs/billing/card", ["doc-1"])
    ]
    assert tried["customer_messages"] == 1
    assert [c["event_id"] for c in tried["contacts"]] == ["msg-1"]
    assert "bot step update_card: failed, failed" in package["already_tried"]
    assert "read /docs/billing/card" in package["already_tried"]

    account = package["account"]
    assert (account["name"], account["tier"], account["value"]) == ("Acme", "pro", 1200.0)
    assert account["payment_failures_30d"] == 2
    assert account["last_payment_failure_at"] == "2026-10-03T09:05:00Z"

    assert "frustration" in package["intents"]
    frustration = package["trends"]["frustration"]
    assert frustration["direction"] == "deteriorating"
    assert frustration["level"] == package["trend"]["frustration"] > frustration["level_before"]
    assert 1 <= len(frustration["last"]) <= 3

    codes = package["reason_codes"]
    assert codes[0] == {
        "kind": "rule",
        "code": "bot_going_in_circles",
        "detail": package["why"][0].split(": ", 1)[1],
    }
    assert {"kind": "factor", "code": "signal.bot_repeat_failure", "detail": "0.7"} in codes
    assert ("signal", "bot_repeat_failure") in {(c["kind"], c["code"]) for c in codes}

    evidence = {e["signal"]: e for e in package["evidence"]}
    assert evidence["bot_repeat_failure"]["event_ids"] == ["bot-1", "bot-2"]
    assert evidence["payment_failed"]["event_ids"] == ["pay-2"]
    assert [e["at"] for e in package["evidence"]] == sorted(e["at"] for e in package["evidence"])

    assert package["recommended_next_step"].startswith("Check the 2 failed payment(s)")
    # the strongest distress signal of the last day is bot_repeat_failure at 0.7 (the
    # message's topic signal does not count), the strongest intent frustration
    assert 1 - (1 - 0.7) * (1 - frustration["level"]) == pytest.approx(
        package["confidence"], abs=1e-3
    )
    assert package["completeness"] == {"score": 1.0, "missing": []}


def test_package_is_a_summary_not_a_transcript(policy: Any, make_event: Any) -> None:
    said = [f"message number {i} about my invoice, " + "blah " * 100 for i in range(5)]
    raws = [make_event(text=t, at=f"2026-10-01T10:0{i}:00Z") for i, t in enumerate(said)]
    raws.append(make_event(text="I want to speak to a human now", at="2026-10-01T10:06:00Z"))
    results = process_all(policy, raws)
    package = next(a.payload for r in results for a in r.actions if a.kind == "handoff.created")
    assert len(package["quotes"]) == 2
    assert all(len(q) <= 200 for q in package["quotes"])
    dumped = json.dumps(package)
    assert "message number 0" not in dumped and "message number 3" not in dumped
    assert package["goal"].endswith('"I want to speak to a human now"')
    assert len(package["goal"]) < 200


def test_completeness_names_what_is_missing_for_a_bare_state(make_event: Any) -> None:
    event = parse_event(make_event("page_view", path="/pricing"))
    state = CustomerState(customer_id="c1")
    package = handoff_package(
        "h1", "general", "normal", (), state, event, [], ts("2026-10-01T10:00:00Z")
    )
    assert package["completeness"] == {
        "score": 0.0,
        "missing": [
            "topic",
            "quotes",
            "intents",
            "tried",
            "account",
            "trends",
            "evidence",
            "reason_codes",
        ],
    }
    assert package["goal"] == "The customer wants to get help."
    assert package["confidence"] == 0.0
    assert package["trend"] == dict.fromkeys(package["trend"], 0.0)
    assert package["trends"] == {} and package["intents"] == [] and package["evidence"] == []


def test_unknown_priority_is_refused(make_event: Any) -> None:
    event = parse_event(make_event())
    with pytest.raises(ValueError, match="priority='asap'"):
        build_handoff(
            "h1", "general", "asap", (), CustomerState(customer_id="c1"), event, [],
            ts("2026-10-01T10:00:00Z"),
        )  # fmt: skip


def test_reason_codes_parse_the_engines_reasons() -> None:
    codes = reason_codes(
        (
            "human_requested: They asked for a person: hand over.",
            "because signal.wants_human=0.82, state.frustration=0.4, event.path=/a, b",
            "wants_human 0.82: message text (lexical-3) ('speak to a human', \"don't\")",
            "incident mode on since 2026-10-01T09:00:00+00:00 (by ops: EU outage)",
            "card on file 4111 1111 1111 1111: declined",
        )
    )
    assert [(c.kind, c.code, c.detail) for c in codes] == [
        ("rule", "human_requested", "They asked for a person: hand over."),
        ("factor", "signal.wants_human", "0.82"),
        ("factor", "state.frustration", "0.4"),
        ("factor", "event.path", "/a, b"),
        ("signal", "wants_human", "message text (lexical-3)"),
        ("note", "note", "incident mode on since 2026-10-01T09:00:00+00:00 (by ops: EU outage)"),
        ("note", "note", "card on file [card]: declined"),
    ]


# --- the schema -------------------------------------------------------------------------------


def test_package_validates_against_its_model(package: dict[str, Any]) -> None:
    """The dump parses back (strictly, from JSON) into the same package; jsonschema is not
    a dependency, so the schema's own shape is checked against the dump instead."""
    again = HandoffPackage.model_validate_json(json.dumps(package))
    assert again.model_dump(mode="json") == package
    schema = handoff_schema()
    assert set(schema["required"]) == set(schema["properties"]) == set(package)
    assert schema["additionalProperties"] is False
    with pytest.raises(ValueError, match="confidence"):
        HandoffPackage.model_validate_json(json.dumps({**package, "confidence": 1.5}))
    with pytest.raises(ValueError, match="extra"):
        HandoffPackage.model_validate_json(json.dumps({**package, "transcript": []}))


def test_schema_is_published_and_in_sync() -> None:
    published = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    assert published == schema_json(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is out of date with HandoffPackage; "
        f"regenerate it from the repository root with:\n{REGENERATE}"
    )
    schema = json.loads(published)
    assert schema["$id"] and schema["$schema"].endswith("2020-12/schema")
    assert schema["title"] == "tactful handoff package"
    props = schema["properties"]
    assert "1 - (1 - e)(1 - t)" in props["confidence"]["description"]
    assert all("description" in p for p in props.values()), [
        name for name, p in props.items() if "description" not in p
    ]

"""The conversation's frustration now (state/conversation.py): how a message, the reply
it answers and earlier evidence combine, how it fades, and that the engine keeps it and
the policy can read it as ``state.frustration_now``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tactful.detect.learned import load_scorer
from tactful.policy import PolicyEngine
from tactful.policy.model import Policy
from tactful.runtime.engine import Engine
from tactful.state.conversation import (
    DEFAULT_CONVERSATION,
    HALF_LIFE_S,
    OUTRIGHT_FLOOR,
    REPLY_CHARS,
    Conversation,
    ConversationModel,
    logit,
)
from tactful.state.store import SQLiteStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODEL = ConversationModel(version="t", message=1.0, reply=0.5, memory=0.2, bias=0.0, prior=0.06)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_a_message_alone_reads_as_its_own_frustration():
    conv = MODEL.read(Conversation(), T0, 0.3)
    assert conv.frustration == pytest.approx(0.3)
    assert conv.at == T0 and conv.messages == 1
    assert conv.evidence == pytest.approx(logit(0.3) - logit(0.06))


def test_a_risky_reply_and_earlier_evidence_raise_the_next_reading():
    first = MODEL.read(Conversation(), T0, 0.3)
    replied = MODEL.replied(first, T0 + timedelta(seconds=10), 0.4)
    second = MODEL.read(replied, T0 + timedelta(seconds=20), 0.1)
    decayed = first.evidence * 0.5 ** (20 / HALF_LIFE_S)
    expected = sigmoid(logit(0.1) + 0.5 * (logit(0.4) - logit(0.06)) + 0.2 * decayed)
    assert second.frustration == pytest.approx(expected)
    assert second.frustration > 0.1
    # a calm reply (below the prior) lowers it instead
    calm = MODEL.read(MODEL.replied(first, T0, 0.01), T0 + timedelta(seconds=20), 0.1)
    assert calm.frustration < second.frustration


def test_a_calm_message_adds_no_evidence():
    conv = MODEL.read(Conversation(), T0, 0.02)
    assert conv.evidence == 0.0


def test_the_level_fades_over_a_pause_and_old_replies_stop_counting():
    conv = MODEL.read(Conversation(), T0, 0.8)
    assert conv.level(T0) == pytest.approx(0.8)
    assert conv.level(T0 + timedelta(seconds=HALF_LIFE_S)) == pytest.approx(0.4)
    assert Conversation().level(T0) == 0.0
    replied = MODEL.replied(Conversation(), T0, 0.9)
    later = T0 + timedelta(seconds=HALF_LIFE_S + 1)
    assert MODEL.features(replied, later, 0.2)[1] == 0.0  # another conversation by now
    assert MODEL.features(replied, T0 + timedelta(seconds=5), 0.2)[1] > 0
    # a message that arrives late, written before the reply, is not read against it
    assert MODEL.features(replied, T0 - timedelta(seconds=5), 0.2)[1] == 0.0


def test_the_exchange_counts_only_for_a_message_answering_a_recent_reply():
    model = ConversationModel(
        version="t", message=1.0, reply=0.0, exchange=0.8, memory=0.0, bias=0.0, prior=0.06
    )
    asked = model.replied(Conversation(), T0, 0.1, "Booking 2 tickets for 7 pm, right?")
    assert asked.reply_text == "Booking 2 tickets for 7 pm, right?"
    soon = T0 + timedelta(seconds=20)
    assert asked.answering(soon) == asked.reply_text
    f, _, pair, _ = model.features(asked, soon, 0.2, 0.7)
    assert pair == pytest.approx(logit(0.7) - logit(0.06))
    corrected = model.read(asked, soon, 0.2, 0.7)
    assert corrected.frustration == pytest.approx(sigmoid(f + 0.8 * pair))
    # no reply to answer (the first message, or one long after the reply): no exchange term
    assert model.features(Conversation(), soon, 0.2, 0.7)[2] == 0.0
    later = T0 + timedelta(seconds=HALF_LIFE_S + 1)
    assert asked.answering(later) is None
    assert model.features(asked, later, 0.2, 0.7)[2] == 0.0
    # the scorer had no exchange head: nothing to weigh
    assert model.features(asked, soon, 0.2, None)[2] == 0.0


def test_an_openly_frustrated_message_is_a_floor_under_the_level():
    """Weights fitted on task dialogues must not hide a customer who swears at the bot."""
    quiet = ConversationModel(
        version="t", message=0.1, reply=0.0, exchange=0.0, memory=0.0, bias=-3.0, prior=0.06
    )
    fitted = quiet.read(Conversation(), T0, 0.9)
    assert fitted.frustration < 0.1
    assert quiet.read(Conversation(), T0, 0.9, outright=0.8).frustration == pytest.approx(0.8)
    below = quiet.read(Conversation(), T0, 0.9, outright=OUTRIGHT_FLOOR - 0.01)
    assert below.frustration == pytest.approx(fitted.frustration)


def test_each_reading_says_how_it_came_about():
    model = ConversationModel(
        version="t", message=0.0, exchange=1.0, memory=0.0, bias=-3.0, alone=(1.0, 0.0, 0.0)
    )
    assert Conversation().explain() is None  # nothing read yet
    asked = model.replied(Conversation(), T0, 0.1, "Please confirm:   a table for 2 " + "x" * 80)
    soon = T0 + timedelta(seconds=20)
    paired = model.read(asked, soon, 0.2, 0.4)
    assert paired.basis == "exchange" and paired.answered is not None
    assert (
        paired.answered.startswith("Please confirm: a table for 2 x") and len(paired.answered) == 60
    )
    assert "read with the reply it answers ('Please confirm" in (paired.explain() or "")
    alone = model.read(asked, soon, 0.2, None)
    assert alone.basis == "alone" and alone.answered is None
    assert "answers no recent reply" in (alone.explain() or "")
    floored = model.read(asked, soon, 0.2, 0.01, outright=0.6)
    assert floored.basis == "outright" and floored.frustration == pytest.approx(0.6)
    assert "said outright" in (floored.explain() or "")


def test_a_reply_said_again_after_the_customer_answered_counts_as_a_repeat():
    ask = "Sure! What is your order number?"
    conv = MODEL.replied(Conversation(), T0, 0.1, ask)
    assert conv.repeats == 0
    # said again with no answer in between: the bot double-posted, not a repeat
    assert MODEL.replied(conv, T0 + timedelta(seconds=2), 0.1, ask).repeats == 0
    t = T0
    for n in (1, 2):
        t += timedelta(seconds=20)
        conv = MODEL.read(conv, t, 0.1)  # the customer answers
        t += timedelta(seconds=5)
        conv = MODEL.replied(conv, t, 0.1, ask.upper().replace(" ", "  "))  # case, spacing
        assert conv.repeats == n and conv.repeating(t + timedelta(seconds=10)) == n
    # the conversation has gone quiet: no longer going in circles
    assert conv.repeating(t + timedelta(seconds=HALF_LIFE_S + 1)) == 0
    # a different reply starts the count again
    conv = MODEL.read(conv, t + timedelta(seconds=20), 0.1)
    assert MODEL.replied(conv, t + timedelta(seconds=25), 0.1, "Found it!").repeats == 0


def test_only_the_start_of_a_long_reply_is_kept():
    replied = MODEL.replied(Conversation(), T0, 0.1, "x" * (REPLY_CHARS + 500))
    assert replied.reply_text == "x" * REPLY_CHARS
    assert MODEL.replied(Conversation(), T0, 0.1).reply_text is None


def test_a_late_reply_does_not_replace_a_newer_one():
    newer = MODEL.replied(Conversation(), T0 + timedelta(seconds=30), 0.2)
    assert MODEL.replied(newer, T0, 0.9) is newer


def test_the_weights_round_trip_through_the_model_card():
    assert ConversationModel.from_card(MODEL.as_card()) == MODEL
    paired = ConversationModel(
        version="t", message=0.0, exchange=1.0, memory=0.0, bias=-2.7, alone=(0.97, 0.09, -0.16)
    )
    assert ConversationModel.from_card(paired.as_card()) == paired
    assert DEFAULT_CONVERSATION.reply == 0.0  # the lexical scorer reads no replies
    # a card from before the exchange head: no exchange weight, one set of weights
    old = {"version": "h", "message": 0.84, "reply": 0.69, "memory": 0.13, "bias": -0.57}
    read = ConversationModel.from_card({**old, "prior": 0.06})
    assert read.exchange == 0.0 and read.alone is None and read.reply == 0.69


def test_a_message_answering_no_reply_is_read_with_its_own_weights():
    model = ConversationModel(
        version="t",
        message=0.0,
        reply=0.0,
        exchange=1.0,
        memory=0.0,
        bias=-3.0,
        alone=(1.0, 0.5, 0.0),
    )
    asked = model.replied(Conversation(), T0, 0.1, "Please confirm: a table for 2.")
    soon = T0 + timedelta(seconds=20)
    # answering the reply: the exchange reading, not the words alone
    paired = model.read(asked, soon, 0.9, 0.2)
    assert paired.frustration == pytest.approx(sigmoid(logit(0.2) - logit(0.06) - 3.0))
    # no exchange reading (none to read, or nothing to go on): the words, at full weight
    alone = model.read(asked, soon, 0.9, None)
    assert alone.frustration == pytest.approx(0.9)
    first = model.read(Conversation(), T0, 0.9, 0.2)  # no reply to answer at all
    assert first.frustration == pytest.approx(0.9)


def souring_policy() -> PolicyEngine:
    return PolicyEngine(
        Policy.model_validate(
            {
                "version": "t",
                "rules": [
                    {
                        "id": "souring",
                        "when": 'event.type == "message" and state.frustration_now >= 0.3',
                        "then": [
                            {
                                "offer_choices": {
                                    "question": "How shall we go on?",
                                    "choices": ["A person", "Try again"],
                                }
                            }
                        ],
                    }
                ],
            }
        )
    )


def test_the_engine_keeps_the_conversation_and_the_policy_reads_it(tmp_path):
    policy = souring_policy()
    engine = Engine(SQLiteStore(tmp_path / "t.db"), policy, text_scorer=load_scorer())
    base = {"customer_id": "c1"}
    events = [
        {
            **base,
            "event_id": "e1",
            "type": "message",
            "text": "Book a table for two at 7.",
            "timestamp": "2026-03-01T12:00:00Z",
        },
        {
            **base,
            "event_id": "e2",
            "type": "bot_turn",
            "step_id": "book",
            "outcome": "failed",
            "text": "Sorry, I could not find any restaurant matching that.",
            "timestamp": "2026-03-01T12:00:10Z",
        },
        {
            **base,
            "event_id": "e3",
            "type": "message",
            "text": "This is ridiculous, you never find anything. Useless!",
            "timestamp": "2026-03-01T12:00:30Z",
        },
    ]
    results = engine.ingest(events)
    states = [r.processed.state for r in results if r.processed is not None]
    calm, replied, upset = (s.conversation for s in states)
    assert calm.messages == 1 and calm.frustration < 0.3
    assert replied.reply_risk is not None and replied.reply_at is not None
    assert replied.reply_text == "Sorry, I could not find any restaurant matching that."
    assert upset.messages == 2 and upset.frustration >= 0.3
    decided = results[2].processed.decisions if results[2].processed else []
    assert [d.rule_id for d in decided] == ["souring"]
    assert decided[0].factors["state.frustration_now"] == pytest.approx(upset.frustration, abs=1e-3)
    # and the card says how that reading came about
    assert upset.explain() in decided[0].reasons
    assert (upset.explain() or "").startswith(f"frustration now {upset.frustration:.2f}: ")
    # kept in the store, as the rest of the state is
    stored = engine.store.load_states(["c1"])["c1"]
    assert stored.conversation.messages == 2


def test_the_engine_reads_a_message_with_the_reply_it_answers_across_batches(tmp_path):
    """A customer's answer is read against the bot's turn before it whether the two come
    in one batch or the bot's turn was stored by an earlier one."""
    scorer = load_scorer()
    assert scorer.reads_exchanges
    offer = "Would you like me to book it for you?"
    events = [
        {
            "customer_id": "c1",
            "event_id": "b1",
            "type": "bot_turn",
            "step_id": "offer",
            "outcome": "success",
            "text": offer,
            "timestamp": "2026-03-01T12:00:00Z",
        },
        {
            "customer_id": "c1",
            "event_id": "m1",
            "type": "message",
            "text": "No, not now.",
            "timestamp": "2026-03-01T12:00:20Z",
        },
    ]
    policy = souring_policy()
    together = Engine(SQLiteStore(tmp_path / "a.db"), policy, text_scorer=scorer)
    one = together.ingest(events)[1].processed
    first = SQLiteStore(tmp_path / "b.db")
    Engine(first, policy, text_scorer=scorer).ingest(events[:1])
    first.close()
    # a new engine: the bot's turn comes back from the store, not a cache
    apart = Engine(SQLiteStore(tmp_path / "b.db"), policy, text_scorer=scorer)
    two = apart.ingest(events[1:])[0].processed
    assert one is not None and two is not None
    assert one.state.conversation.frustration == pytest.approx(two.state.conversation.frustration)
    # and the exchange made a difference: without the bot's turn the reading differs
    alone = Engine(SQLiteStore(tmp_path / "c.db"), policy, text_scorer=scorer)
    bare = alone.ingest(events[1:])[0].processed
    assert bare is not None
    assert bare.state.conversation.frustration != pytest.approx(one.state.conversation.frustration)


def test_an_agent_s_message_is_a_reply_and_a_late_reply_is_not_answered(tmp_path):
    """Replies come as bot turns or as bot/agent messages; a reply that arrives after the
    customer's answer (an older timestamp than the reply already kept) is not what the
    next message answers."""
    engine = Engine(SQLiteStore(tmp_path / "t.db"), souring_policy(), text_scorer=load_scorer())
    base = {"customer_id": "c1", "type": "message"}
    results = engine.ingest(
        [
            {
                **base,
                "event_id": "a1",
                "role": "agent",
                "text": "I have refunded the duplicate charge.",
                "timestamp": "2026-03-01T12:00:00Z",
            },
            {
                **base,
                "event_id": "m1",
                "text": "Thanks, that was quick.",
                "timestamp": "2026-03-01T12:00:30Z",
            },
            {
                **base,
                "event_id": "a0",
                "role": "agent",
                "text": "Let me check that for you.",
                "timestamp": "2026-03-01T11:59:50Z",
            },
            {
                **base,
                "event_id": "m2",
                "text": "Will it show on this month's statement?",
                "timestamp": "2026-03-01T12:00:40Z",
            },
        ]
    )
    states = [r.processed.state.conversation for r in results if r.processed is not None]
    assert states[0].reply_text == "I have refunded the duplicate charge."
    assert states[1].basis == "exchange"
    assert states[1].answered == "I have refunded the duplicate charge."
    # the late reply (11:59:50) did not replace the newer one
    assert states[2].reply_text == "I have refunded the duplicate charge."
    assert states[3].answered == "I have refunded the duplicate charge."

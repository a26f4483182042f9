from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tactful.detect import detect, score_text
from tactful.detect.text import CALM_CEILING, SARCASM_CEILING, STAYING_CEILING, read_text
from tactful.events import parse_event
from tactful.state.customer import CustomerState, remember


def test_frustration_cues_carry_evidence():
    scores = score_text("This is the THIRD time it's STILL NOT working!!! Already tried that.")
    assert scores.scores["frustration"] > 0.9
    evidence = scores.evidence["frustration"]
    assert "third time" in evidence
    assert any(e.startswith("already tried") for e in evidence)
    assert any(e.startswith("!!!") for e in evidence)
    assert any(e.startswith("CAPS") for e in evidence)


def test_calm_polite_message_scores_low_on_frustration():
    scores = score_text("Could you please tell me how to export my data? Thanks in advance.")
    assert scores.scores["frustration"] < 0.2
    assert scores.scores["politeness"] > 0.3


def test_each_dimension_has_cues():
    cases = {
        "urgency": "Production is down, we need this fixed ASAP",
        "confusion": "I don't understand which plan I should pick",
        "wants_human": "Let me speak to a real person",
        "churn_intent": "I'm done, please cancel my subscription",
        "gratitude": "Thank you, that fixed it!",
    }
    for dim, text in cases.items():
        assert score_text(text).scores[dim] >= 0.5, (dim, text)


def test_dampers_cancel_a_dimension():
    assert score_text("No rush, whenever you can: is it urgent to upgrade?").scores["urgency"] < 0.2


def test_repeating_an_earlier_message_is_frustration():
    earlier = ["my invoice shows the wrong company name"]
    alone = score_text("my invoice shows the wrong company name").scores["frustration"]
    again = score_text("my invoice shows the wrong company name", earlier)
    assert alone == 0
    assert again.scores["frustration"] >= 0.4
    assert "repeats an earlier message" in again.evidence["frustration"]


def test_topics():
    assert score_text("Where can I download my invoices?").topic == "billing"
    assert score_text("I want my money back, refund please").topic == "refund"
    assert score_text("Locked out, the password reset link fails").topic == "account_access"
    assert score_text("Do you have a SOC 2 report?").topic == "sales_security"
    assert score_text("hello there").topic == "other"


T0 = datetime(2026, 10, 1, 12, tzinfo=UTC)


def run(events, config=None):
    """Detect and remember each event in turn; the final state and each event's signals."""
    state = CustomerState(customer_id="c")
    all_signals = []
    for raw in events:
        event = parse_event(raw)
        signals = detect(event, state, config) if config else detect(event, state)
        state = remember(state, event, signals)
        all_signals.append(signals)
    return state, all_signals


def ev(i, type, seconds, **fields):
    return {
        "event_id": f"e{i}",
        "type": type,
        "customer_id": "c",
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(),
        **fields,
    }


def names(signals):
    return [s.name for s in signals]


def test_rage_click_needs_three_on_the_same_element_within_the_window():
    _, sigs = run(
        [
            ev(1, "click", 0, element="#save"),
            ev(2, "click", 2, element="#other"),
            ev(3, "click", 4, element="#save"),
            ev(4, "click", 30, element="#save"),  # outside 10 s of the first two
            ev(5, "click", 31, element="#save"),
            ev(6, "click", 32, element="#save"),
        ]
    )
    assert [("rage_click" in names(s)) for s in sigs] == [False] * 5 + [True]
    rage = next(s for s in sigs[5] if s.name == "rage_click")
    assert rage.evidence == ("e4", "e5", "e6")


def test_error_streak_resets_on_success():
    _, sigs = run(
        [
            ev(1, "api_error", 0, endpoint="/v1/x", status=500),
            ev(2, "api_error", 1, endpoint="/v1/x", status=500),
            ev(3, "command_run", 2, command="retry", ok=True),
            ev(4, "api_error", 3, endpoint="/v1/x", status=500),
            ev(5, "api_error", 4, endpoint="/v1/x", status=502),
            ev(6, "api_error", 5, endpoint="/v1/x", status=503),
        ]
    )
    assert [("error_streak" in names(s)) for s in sigs] == [False] * 5 + [True]


def test_payment_failures_and_open_tickets_accumulate():
    state, sigs = run(
        [
            ev(1, "payment_failed", 0),
            ev(2, "ticket_opened", 10, ticket_id="T1"),
            ev(3, "payment_failed", 86_400),
            ev(4, "ticket_opened", 86_500, ticket_id="T2"),
            ev(5, "ticket_closed", 86_600, ticket_id="T1"),
        ]
    )
    assert next(s for s in sigs[2] if s.name == "payment_failed").strength == 0.6
    assert "unresolved_tickets" in names(sigs[3])
    assert state.open_tickets == ["T2"]
    assert state.payment_failures_30d(T0 + timedelta(days=2)) == 2
    assert state.payment_failures_30d(T0 + timedelta(days=40)) == 0


def test_docs_dwell_without_running_the_command():
    _, sigs = run(
        [
            ev(1, "page_view", 0, path="/docs/auth"),
            ev(2, "search", 400, query="token header"),
        ]
    )
    assert "confusion_dwell" in names(sigs[1])
    _, sigs = run(
        [
            ev(1, "page_view", 0, path="/docs/auth"),
            ev(2, "command_run", 100, command="login"),
            ev(3, "search", 400, query="token header"),
        ]
    )
    assert "confusion_dwell" not in names(sigs[2])


def test_high_value_intent_from_search_and_pages():
    _, sigs = run(
        [
            ev(1, "search", 0, query="SOC 2 report"),
            ev(2, "page_view", 5, path="/pricing"),
            ev(3, "search", 10, query="how to export csv"),
        ]
    )
    hv = [s for s in sigs[0] if s.name == "high_value_intent"]
    assert hv and hv[0].topic == "sales_security"
    assert "high_value_intent" in names(sigs[1])
    assert "high_value_intent" not in names(sigs[2])


def test_bot_repeating_a_failed_step():
    _, sigs = run(
        [
            ev(1, "bot_turn", 0, step_id="reset_password", outcome="failed"),
            ev(2, "bot_turn", 5, step_id="reset_password", outcome="failed"),
        ]
    )
    repeat = [s for s in sigs[1] if s.name == "bot_repeat_failure"]
    assert repeat and repeat[0].topic == "account_access"
    assert not sigs[0]


def test_agent_messages_do_not_feed_customer_affect():
    _, sigs = run([ev(1, "message", 0, text="This is terrible!!!", role="agent")])
    assert sigs == [[]]


CORPUS = [
    "This is the 3rd time, for the fifth time: already told you, still not fixed!!!",
    "it doesn't work, won't work, stopped working; nothing works, it keeps crashing",
    "the page does nothing, nothing happens, the email never arrived",
    "ridiculous, unacceptable, a waste of money, I'm fed up and sick of this joke",
    "I'm frustrated and annoyed, no one has helped, nobody answers",
    "you charged me twice, I was double charged and overcharged",
    "urgent: production is down, outage, critical, we are blocked and losing money today",
    "I can't figure out where is the setting, I'm confused, this makes no sense",
    "how do I export? what does 'seat' mean? not sure which plan should I pick",
    "please, would you kindly help; thanks in advance, sorry to bother you",
    "let me speak to a real person, a live agent, your manager or a supervisor; stop the bot",
    "get me a manager; I want a supervisor; can I get a real agent? agent please, escalate this",
    "I'm done, cancel everything, close my account, we're switching to a competitor",
    "we won't renew, unsubscribe me; refund and cancel",
    "thanks! thank you, cheers, much appreciated; works now, that fixed it, love it",
    "no rush, not urgent; no worries, not frustrated; I don't want to cancel",
    "invoice, billing, receipt, card, VAT; refund, chargeback; password reset link, 2FA, login",
    "API error 500 on the webhook endpoint; SOC 2, SSO/SAML, pen test; DPA, GDPR, MSA, RFP",
    "purchase order and vendor onboarding; pricing quote for enterprise plan seats",
    "im done. were done. Im done with you",
    "Hello, can you help me with my account settings",
]


def test_cue_pre_checks_never_skip_a_match():
    from tactful.detect.text import _AFFECT_CUES, _DAMPERS, _TOPIC_CUES

    patterns = [c.pattern for c in _AFFECT_CUES]
    patterns += [p for p, _ in _DAMPERS]
    patterns += list(_TOPIC_CUES.values())
    hit: set[str] = set()
    for text in CORPUS:
        low = text.lower()
        for p in patterns:
            expected = p.regex.search(low) is not None
            assert (p.search(low) is not None) == expected, (p.regex.pattern, text)
            assert p.count(low) == len(p.regex.findall(low))
            if expected:
                hit.add(p.regex.pattern)
    missed = [p.regex.pattern for p in patterns if p.regex.pattern not in hit]
    assert len(missed) <= 3, missed  # the corpus exercises (nearly) every cue


ASKS_FOR_A_PERSON = [
    "get me a manager",
    "connect me with an agent",
    "escalate this to a manager",
    "put me through to someone",
    "can I get a real agent",
    "I want a supervisor",
    "agent please",
    "I want to escalate this",
    "agent",
    "Operator!!",
    "a human please",
    "let me speak to a real person",
    "I want to speak to your manager",
    "let me speak with the supervisor",
    "I don't want to wait, get me a manager",
]
MENTIONS_A_ROLE = [
    "ask an agent where I can create an account",  # bitext: create_account, not a handover
    "my travel agent booked this",
    "the manager page doesn't load",
    "I am the account manager for our team",
    "how do I add a user agent header",
    "the password manager won't autofill",
    "which plan includes a dedicated account manager?",
    "Can we get a manager account for our team?",
    "We need an agent installed on every server",
    "Open the password manager please",
    "the manager",
]
# no word of a role at all, or the wish for one denied: nothing to read
NOT_ASKING = [
    "We need someone to approve the invoice",
    "need a rep number for the return?",
    "Send me a human-readable export",
    "someone",
    "the person",
]


@pytest.mark.parametrize("text", ASKS_FOR_A_PERSON)
def test_asking_for_a_person_reaches_the_policys_threshold(text):
    # default.yaml's human_requested fires at asks_for_human 0.5
    assert score_text(text).scores["wants_human"] >= 0.6, text


@pytest.mark.parametrize("text", MENTIONS_A_ROLE)
def test_mentioning_an_agent_or_a_manager_is_only_a_hint(text):
    result = score_text(text)
    assert result.scores["wants_human"] == pytest.approx(0.15), text
    assert result.evidence.get("wants_human"), text  # still shown as evidence


def test_an_outright_statement_is_quoted_in_whole_words():
    from tactful.detect.text import explicit_cues

    said = explicit_cues("This is the third time I am writing about this. Thanks.")
    assert said["frustration"] == (0.6, "third time i am writing")
    assert explicit_cues("It still hasn't been resolved")["frustration"][1] == (
        "still hasn't been resolved"
    )


@pytest.mark.parametrize(
    "text",
    [
        "The MFA code never arrives. I have tried 4 times.",
        "we've asked you three times already",
        "I've reset it several times and it still fails",
        "I have tried to log in 5 times",
        "I've called you guys 3 times",
    ],
)
def test_saying_how_many_times_one_tried_is_outright_frustration(text):
    from tactful.detect.text import explicit_cues

    assert explicit_cues(text)["frustration"][0] == 0.6


@pytest.mark.parametrize(
    "text", ["I tried 2 times and it worked", "I've tried this many times before, love it"]
)
def test_once_or_twice_or_many_times_is_not_outright_frustration(text):
    from tactful.detect.text import explicit_cues

    assert "frustration" not in explicit_cues(text)


def test_emoji_alone_are_read_and_beside_words_are_left_to_the_words():
    rage = score_text("😡 😡 😡 😡 😡")
    assert rage.scores["frustration"] == pytest.approx(1 - 0.5**3)  # three count at most
    assert rage.evidence["frustration"] == ("😡",)
    assert score_text("🙏").scores["gratitude"] == pytest.approx(0.45)
    assert score_text("🎉").scores == score_text("").scores  # no cue, no reading
    assert "frustration" not in score_text("ok 😡").evidence


@pytest.mark.parametrize("text", NOT_ASKING)
def test_a_person_not_asked_for_reads_nothing(text):
    assert score_text(text).scores["wants_human"] == 0.0, text


@pytest.mark.parametrize(
    "text", ["I don't want a manager, just fix it", "I don't need a human, the bot is fine"]
)
def test_declining_a_person_damps_the_wish(text):
    result = score_text(text)
    assert result.scores["wants_human"] < 0.3, text
    assert any(e.startswith("damped by") for e in result.evidence["wants_human"])


def test_api_errors_far_apart_are_not_a_streak():
    _, sigs = run(
        [
            ev(1, "api_error", 0, endpoint="/v1/x", status=500),
            ev(2, "api_error", 86_400, endpoint="/v1/x", status=500),
            ev(3, "api_error", 2 * 86_400, endpoint="/v1/x", status=500),
            ev(4, "api_error", 2 * 86_400 + 60, endpoint="/v1/x", status=500),
            ev(5, "api_error", 2 * 86_400 + 120, endpoint="/v1/x", status=500),
        ]
    )
    assert [("error_streak" in names(s)) for s in sigs] == [False] * 4 + [True]


def test_docs_dwell_fires_once_per_visit_and_not_across_sessions():
    _, sigs = run(
        [
            ev(1, "page_view", 0, path="/docs/auth"),
            ev(2, "search", 400, query="token header"),
            ev(3, "search", 500, query="token again"),
        ]
    )
    assert ["confusion_dwell" in names(s) for s in sigs] == [False, True, False]
    _, sigs = run(
        [
            ev(1, "page_view", 0, path="/docs/auth"),
            ev(2, "message", 7 * 86_400, text="hello again"),
            ev(3, "message", 400, text="our agent note", role="agent"),
        ]
    )
    assert not any("confusion_dwell" in names(s) for s in sigs)


def test_a_flood_of_clicks_is_one_rage_signal_with_bounded_state():
    from tactful.detect import BehaviorConfig

    clicks = [ev(i, "click", i / 10_000, element="#pay") for i in range(10_000)]
    state, sigs = run(clicks, BehaviorConfig())
    fired = [i for i, s in enumerate(sigs) if "rage_click" in names(s)]
    assert fired == [2]
    assert len(state.clicks) <= 20


def test_rage_click_window_is_inclusive_at_exactly_t():
    _, sigs = run(
        [
            ev(1, "click", 0, element="#save"),
            ev(2, "click", 5, element="#save"),
            ev(3, "click", 10, element="#save"),  # exactly 10 s after the first
        ]
    )
    assert "rage_click" in names(sigs[2])
    _, sigs = run(
        [
            ev(1, "click", 0, element="#save"),
            ev(2, "click", 5, element="#save"),
            ev(3, "click", 10.001, element="#save"),
        ]
    )
    assert "rage_click" not in names(sigs[2])


def test_posthog_preset_counts_clicks_within_30_px_in_one_second():
    from tactful.detect.behavior import posthog_preset

    config = posthog_preset()
    near = [
        ev(1, "click", 0.0, element="a", x=100, y=100),
        ev(2, "click", 0.3, element="b", x=110, y=105),
        ev(3, "click", 0.6, element="c", x=120, y=118),  # 28.4 px from the first
    ]
    assert "rage_click" in names(run(near, config)[1][2])
    far = [*near[:2], ev(3, "click", 0.6, element="c", x=140, y=100)]
    assert "rage_click" not in names(run(far, config)[1][2])
    slow = [*near[:2], ev(3, "click", 1.2, element="c", x=120, y=118)]
    assert "rage_click" not in names(run(slow, config)[1][2])


def test_toggles_and_steppers_are_not_rage():
    clicks = [ev(i, "click", i, element="button.quantity-increment") for i in range(5)]
    _, sigs = run(clicks)
    assert not any("rage_click" in names(s) for s in sigs)


def _explicit_unfiltered(text: str) -> dict[str, tuple[float, str]]:
    """explicit_cues without its pre-check: every cue on every sentence."""
    import re

    from tactful.detect.text import (
        _REST_OF_WORD,
        EXPLICIT_CUES,
        _with_broken_promise,
        _with_clock_and_fault,
    )

    out: dict[str, tuple[float, str]] = {}
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        for pattern, dim, strength, _ in EXPLICIT_CUES:
            m = pattern.search(sentence)
            if m is not None and strength > out.get(dim, (0.0, ""))[0]:
                rest = _REST_OF_WORD.match(sentence, m.end())
                out[dim] = (strength, (m.group(0) + (rest.group(0) if rest else "")).lower())
    low = text.lower()
    return _with_broken_promise(low, _with_clock_and_fault(low, out))


_OUTRIGHT = [
    "Our helpdesk was migrated to Zendesk. This is it for us, goodbye and good luck.",
    "Leadership signed off on moving to Close.com. I'd rather not migrate, but here we are.",
    "We've signed with Gusto and our last payroll through you will be the Dec 15 run.",
    "We've started trials with two competitors. Fix the sync or we cancel.",
    "Honestly expected better. For what we pay, this should not be this hard.",
    "Could we set up a 30-minute call with someone from your security team? Ring me back.",
    "The report says 1,204 visitors but the dashboard tile says 987. Which one's right?",
    "Am I misunderstanding round robin? Did I set the order wrong? Do I use both?",
    "We've decided to switch to another vendor when our contract renews.",
    "Please don't auto-renew, we're leaving.",
    "To be clear: cancel our subscription at renewal.",
    "We are moving to a competitor next month.",
    "We're switching to Intercom at the end of the quarter.",
    "We won't be renewing our contract. We do not plan to renew.",
    "Honestly thinking about leaving for another provider.",
    "I'm done with this product, looking at alternatives.",
    "We'll probably go with someone else. We're going with another vendor.",
    "How do I export all my data? We're migrating off your platform.",
    "We are evaluating other vendors. We're leaving your service.",
    "This is the third time I am writing about this. It still hasn't been resolved",
    "This is ridiculous. I already told you. Are you even listening?",
    "I'm fed up, what a waste of time. Nobody has answered.",
    "I have tried to log in 5 times. I've been waiting three days. I'm still waiting.",
    "We've emailed you four times about it.",
    "This is the worst support ever. Your app deleted all my data!!!",
    "Great, another outage. Oh wonderful, it crashed again. Thanks for nothing.",
    "I guess I'll figure it out myself then. Whatever.",
    "I'm lost, which page? Huh? That makes no sense. Wait, what? I don't understand this.",
    "I need to speak with billing directly. Can I talk to someone in sales?",
    "Can I get a call back? Transfer me. Stop sending me bot answers. I'll wait for an agent.",
    "Can you call me a cab? Does the Zapier agent support webhooks?",
    "Thanks, but that didn't help at all. I still can't log in. That doesn't help.",
    "I still can't believe it, I still can't wait.",
    "P1 - all logins failing. The API is completely down. Nobody on my team can log in.",
    "This is time sensitive: payroll runs in an hour, we go live tomorrow, need it by EOD.",
    "This is not time sensitive. Slow everything down, I'll be there in 20 minutes.",
    "UNBELIEVABLE. WE ARE LEAVING. FED UP.",
    "How do I cancel a single invoice? Why is my plan not renewing automatically?",
    "I'm thinking about leaving a review. We're moving to Berlin next month.",
    "Can I talk to the billing settings page? I lost my phone.",
    "I was promised a callback and nobody called. You said it was fixed but it's still down.",
    "I've been trying to connect Slack for an hour. Fix it now, I need it fixed today.",
    "Before our board meeting tomorrow, please. Your update broke our checkout.",
    "Our customers can't pay. He was told in no uncertain terms. Trying for fun.",
    "I'm not happy with the new pricing. I was not disappointed in the least.",
    "This is the fourth email I'm sending. Nobody from your side has replied.",
    "Invoices are still showing the wrong VAT number. We will reconsider our subscription.",
    "If this is not fixed by Friday we will cancel. I'll review my notes.",
    "This is taking way too long. It's been 2 weeks and the bug is still there.",
    "Thanks, but that didn't fix it. Our SSO is down, failing for everyone.",
    "We need this before Monday's launch.",
    "Please connect me to support. Is there a phone number I can call? A real engineer?",
    "Our checkout has been down for an hour, blocking our whole team. I've explained it 3 times.",
    "We've decided not to continue with your service. How do I export it before we leave?",
    "I can't believe I'm paying for this. Why is this so hard? I don't see the option.",
    "We're no longer using the product. Please stop billing us. If it fails again, we're out.",
    "I'm about to lose my mind. Third outage this week. Not cool.",
    "Need someone from engineering on a call. Is anyone there? What does 'pending' mean?",
    "Someone logged into our account from an IP in Peru. Payroll is in 2 hours.",
    "What's the difference between a workspace and an org? Which one is right?",
    "The update wiped all my saved filters. Every project is empty.",
    "If this isn't fixed by end of month we won't be renewing.",
    "It's been 21 days since my refund and nothing. Your support keeps telling me to wait.",
    "My sixth email about this. Support told me to contact billing. I give up.",
    "We've signed with another vendor. Please start the offboarding. We've outgrown the tool.",
    "Is there an actual person here? Could someone from your sales team reach out?",
    "Rush starts in 20 min, the warehouse is sitting idle. I can't find where to change it.",
    "We are not renewing. We hereby give notice of termination. Please stop the subscription.",
    "We've started looking for a replacement. I'm recommending we rip your API out.",
    "Six weeks of broken sync and nobody cares. Who tests this? A canned response again.",
    "I've wasted an entire day on this. What am I paying you for? Do your job.",
    "Thanks in advance for ignoring this. I'm genuinely puzzled, I have no idea what a webhook is.",
    "Please escalate to a manager. Have someone call me at 555-0148. Who do I talk to?",
    "Can you call me back? Could an account manager call me tomorrow? Get me a human.",
    "Our account will be suspended tomorrow. The pipeline has been down since 6am.",
    "I've reset my password four times today. Am I missing a step? I don't really understand this.",
    "Locked out of my account for 4 days. Support took 9 days to reply. Every update breaks it.",
    "Am I on the wrong page? Where should I start? Which one is the real one?",
    "If this isn't fixed by Friday we're switching to Asana. I want to cancel and move on.",
    "Please call me back within the hour. Third breaking change to the API in two months.",
    "This is getting old. Am I doing something wrong? We're confused. Renewal charges tomorrow.",
    "We'll be closing our video account with you. Third ticket about the same sync bug.",
    "We'll stop using the tool. Thinking of jumping ship. The app crashed again. Not happy.",
    "The docs contradict each other. Puzzled. Need eyes on this now. It's payday.",
    "Can we jump on a quick Zoom? Please have your account manager reach out.",
    "",
    "ok",
]


@pytest.mark.parametrize("text", _OUTRIGHT)
def test_the_outright_cues_pre_check_never_skips_a_cue_that_matches(text):
    """explicit_cues runs only the cues whose cover (literal strings every match contains)
    is in the message; it finds exactly what running every cue finds."""
    from tactful.detect.text import explicit_cues

    assert explicit_cues(text) == _explicit_unfiltered(text)


def test_every_outright_cue_has_a_cover_found_in_what_it_matches():
    """Each cue's cover is derived from its regex; a match always contains one of its
    strings (the property the pre-check relies on), and none is left without a cover
    (it would run on every message)."""
    from tactful.detect.text import _EXPLICIT_COVERS, EXPLICIT_CUES

    assert all(_EXPLICIT_COVERS)
    matched = set()
    for text in _OUTRIGHT:
        for k, ((pattern, *_), cover) in enumerate(
            zip(EXPLICIT_CUES, _EXPLICIT_COVERS, strict=True)
        ):
            for m in pattern.finditer(text):
                assert cover is not None and any(s in m.group(0).lower() for s in cover), (
                    pattern.pattern,
                    m.group(0),
                )
                matched.add(k)
    assert len(matched) == len(EXPLICIT_CUES)  # every cue is exercised above


def test_the_lexical_cues_pre_check_never_skips_a_cue_that_matches():
    """score_text's cues run only when the message holds their anchors (now the cover of
    each regex: strings every match contains); a cue whose regex matches a message always
    has one of its anchors in it."""
    from tactful.detect.text import _AFFECT_CUES, _anchors_in

    texts = [
        *_OUTRIGHT,
        "I was charged twice!! This is URGENT, production is down, losing money",
        "How do I export invoices? Where is the billing page? I can't find it",
        "Thanks a lot, really appreciate it. Could you please help? Sorry to bother you",
        "Get me a manager. I want to talk to a real person, agent please",
        "It keeps crashing again and again, still broken, doesn't work, error 500",
        "cancel my subscription, refund, chargeback, not sure which plan should I pick",
    ]
    fired = 0
    for text in texts:
        low = text.lower()
        present = _anchors_in(low)
        for cue in _AFFECT_CUES:
            if cue.pattern.regex.search(low) is not None:
                fired += 1
                assert not cue.pattern.anchors.isdisjoint(present), (cue.pattern.regex, text)
                assert cue.pattern.search(low, present) is not None
    assert fired > 30


@pytest.mark.parametrize(
    ("text", "at_least"),
    [
        ("P1 - all logins failing", 0.6),
        ("Sev 1: checkout down", 0.6),
        ("All our customers are getting 500 errors.", 0.55),
        ("Nobody on my team can log in.", 0.55),
        ("Payroll runs in an hour and the export is broken.", 0.45),
        ("We go live tomorrow and SSO isn't working.", 0.45),
        ("This is time sensitive.", 0.45),
        ("Need an answer by EOD.", 0.45),
        ("Our customers can't check out since this morning.", 0.55),
        ("Your latest update broke our checkout page.", 0.55),
        ("I need this resolved before our board meeting tomorrow.", 0.45),
        ("Fix it now.", 0.45),
    ],
)
def test_urgency_the_lexicon_missed_is_read_outright(text, at_least):
    """Severities, outages of what customers use and running clocks: urgency has no
    labeled corpus, so these are read as said (each read 0 before)."""
    from tactful.detect.text import explicit_cues

    assert explicit_cues(text)["urgency"][0] >= at_least


@pytest.mark.parametrize(
    "text",
    [
        "This is not time sensitive.",
        "They just slow everything down.",
        "I got to work in 20 minutes today",
        "Can you tell me the priority of my ticket?",
    ],
)
def test_no_clock_no_outage_no_urgency(text):
    from tactful.detect.text import explicit_cues

    assert "urgency" not in explicit_cues(text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("This is now the fourth email I'm sending.", {"asked_before"}),
        ("Nobody from your side has replied.", {"asked_before"}),
        ("We've emailed you four times about it.", {"asked_before"}),
        ("I already told you that.", {"asked_before"}),
        ("I have tried to log in 5 times.", set()),  # tried, not asked
        ("P1 - checkout is down for all our customers.", {"stoppage"}),
        ("Your latest update broke our checkout page.", {"stoppage"}),
        ("Your app deleted all my data and nobody has answered.", {"stoppage", "asked_before"}),
        ("The checkout button is a bit small.", set()),
        ("You've lost a customer.", {"leaving"}),
        ("We won't be renewing our contract.", {"leaving"}),
        ("We are evaluating other vendors.", set()),  # weighing it, not said as done
    ],
)
def test_what_a_customer_says_happened_becomes_a_signal_the_policy_reads(text, said):
    """STATEMENTS are named outright cues: the policy reads signal.asked_before,
    signal.stoppage and signal.leaving instead of restating their words, and a decision's
    reason quotes what was said."""
    from tactful.detect import text_signals
    from tactful.detect.text import STATEMENTS, score_text
    from tactful.policy.model import KNOWN_SIGNALS

    assert STATEMENTS <= KNOWN_SIGNALS
    scores = score_text(text)
    assert set(scores.said) == said
    signals = {s.name: s for s in text_signals(scores, "e1")}
    for name in said:
        assert signals[name].strength == 1.0
        assert signals[name].evidence == (scores.said[name],)
        assert scores.said[name] in text.lower()


# The lexical tier on its own (no learned scorer: `--text-scorer lexical`, detect() called
# without scores) answers with read_text: the cues, what the message says outright, and the
# learned scorer's ceilings. score_text stays the heads' feature and reads none of these.
_SAID_OUTRIGHT = [
    ("I give up.", "frustration", 0.5),
    ("Please connect me to support", "wants_human", 0.6),
    ("We won't be renewing our contract", "churn_intent", 0.7),
    ("You've lost a customer.", "churn_intent", 0.7),
]


@pytest.mark.parametrize(("text", "dim", "floor"), _SAID_OUTRIGHT)
def test_the_lexical_tier_reads_what_is_said_outright(text, dim, floor):
    assert score_text(text).scores[dim] < floor  # the cues alone miss it
    read = read_text(text)
    assert read.scores[dim] >= floor
    assert read.evidence[dim]  # and says which words


def test_the_lexical_tier_holds_the_learned_scorers_ceilings():
    staying = "Please cancel the duplicate charge, we are staying with you"
    assert score_text(staying).scores["churn_intent"] > STAYING_CEILING
    read = read_text(staying)
    assert read.scores["churn_intent"] <= STAYING_CEILING
    assert "churn_intent" not in read.evidence
    assert read.topic != "cancellation"
    sarcasm = read_text("Thanks for nothing.")
    assert sarcasm.scores["gratitude"] <= SARCASM_CEILING
    assert sarcasm.scores["frustration"] >= 0.5
    assert sarcasm.outright >= 0.5  # a floor under the conversation's frustration now
    denied = read_text("I'm not upset, just want to understand the charge")
    assert denied.scores["frustration"] <= CALM_CEILING
    assert denied.outright == 0.0


def test_the_lexical_tier_files_leaving_under_cancellation():
    assert score_text("We won't be renewing our contract").topic == "sales_legal"
    assert read_text("We won't be renewing our contract").topic == "cancellation"


def test_detect_without_a_learned_scorer_reads_outright_statements():
    _, sigs = run([ev(1, "message", 0, text="Please connect me to support")])
    wants = [s for s in sigs[0] if s.name == "wants_human"]
    assert wants and wants[0].strength >= 0.6


# The probe sets of 2026-11-25 (bench/probes/): what support customers write, read as said.
_READ_AS_SAID = [
    ("We are not renewing.", "churn_intent", 0.7),
    ("Dear Support, we hereby give notice of termination of our agreement.", "churn_intent", 0.7),
    ("We've started looking for a replacement.", "churn_intent", 0.6),
    ("I'm done. Six weeks of broken sync and nobody cares.", "frustration", 0.5),
    (
        "I've wasted an entire day on this. Either the docs are wrong or it's broken.",
        "frustration",
        0.5,
    ),
    ("Thanks in advance for ignoring this like the last three emails.", "frustration", 0.5),
    ("I've reset my password four times today and the link is always expired.", "frustration", 0.6),
    ("I have no idea what a webhook is or where I would get one.", "confusion", 0.6),
    ("I'm not angry at all, just genuinely puzzled by the totals.", "confusion", 0.6),
    (
        "I've explained this to four different agents. Please escalate to a manager.",
        "wants_human",
        0.6,
    ),
    ("on the road, can someone call me back within the hour? 555-0143", "wants_human", 0.6),
    ("Our card expired and the account will be suspended tomorrow.", "urgency", 0.5),
    ("Our entire webhook pipeline has been down since 6am.", "urgency", 0.55),
    ("I have been locked out of my account for 4 days.", "frustration", 0.5),
    ("Every update breaks something new and support takes a week to reply.", "frustration", 0.5),
    ("So we're paying for something we can't even use.", "frustration", 0.5),
    (
        "Hi, I followed the guide but there's no such button. Am I on the wrong page?",
        "confusion",
        0.55,
    ),
    ("the help article and the pricing page say different things", "confusion", 0.55),
    ("If this isn't fixed by Friday we're switching to Asana.", "churn_intent", 0.6),
    ("One more mistake and I'm going back to paper.", "churn_intent", 0.6),
    ("I want to cancel and I don't want to do it through a chatbot.", "churn_intent", 0.6),
    ("can someone call me back within the hour?", "urgency", 0.5),
    ("Cancel my plan before it auto-renews TOMORROW.", "urgency", 0.5),
    (
        "Please turn off auto-renewal on our account, we have decided not to continue.",
        "churn_intent",
        0.7,
    ),
    (
        "We'll be closing our video conferencing account with you at the end of the month.",
        "churn_intent",
        0.7,
    ),
    (
        "third ticket about the same sync bug. nobody has actually fixed anything",
        "frustration",
        0.5,
    ),
    ("This is the third billing mistake this year.", "frustration", 0.5),
    ("We're getting nowhere.", "frustration", 0.5),
    ("the conversion rate is 140%?? is it a bug or am i reading it wrong", "confusion", 0.5),
    ("Which one governs? We're confused.", "confusion", 0.5),
    ("The firm has decided to discontinue the software at renewal.", "churn_intent", 0.7),
    ("I want to discuss ending our subscription, not with a bot please.", "churn_intent", 0.7),
    ("Hey, heads-up that we'll be letting the subscription lapse.", "churn_intent", 0.7),
    (
        "Me and my partner decided we'll stop using the booking system after this season.",
        "churn_intent",
        0.7,
    ),
    (
        "That's it. After today's outage I'm pulling our store off your platform.",
        "churn_intent",
        0.7,
    ),
    ("One more failed payroll run and I'm switching providers, I mean it.", "churn_intent", 0.6),
    ("honestly thinking of jumping ship", "churn_intent", 0.6),
    ("We're evaluating Zendesk and Freshdesk as replacements.", "churn_intent", 0.6),
    ("I've sent this same request five times now.", "frustration", 0.6),
    ("I'm losing my patience.", "frustration", 0.5),
    ("ugh. the mobile app crashed AGAIN in the middle of a checkout", "frustration", 0.5),
    ("The two sets of instructions contradict each other.", "confusion", 0.5),
    ("What counts as an active user?", "confusion", 0.5),
    ("Hello, I am not understand the webhook signature.", "confusion", 0.5),
    ("Production is throwing 500s. Need eyes on this now.", "urgency", 0.5),
    ("The webinar is in 20 minutes and registration is broken.", "urgency", 0.5),
    ("Could someone from your team jump on a quick Zoom with our developer?", "wants_human", 0.6),
    ("Can we get 20 minutes with someone on your security team?", "wants_human", 0.6),
    ("Please route my ticket to a supervisor.", "wants_human", 0.6),
    (
        "export all our contacts please. we've moved everything over to Pipedrive",
        "churn_intent",
        0.7,
    ),
    ("Our contract is up in March and we won't be extending it.", "churn_intent", 0.7),
    (
        "export all our deals please, we're switching to pipedrive friday",
        "churn_intent",
        0.7,
    ),
    ("double bookings AGAIN. next time it happens im moving us to Jane App.", "churn_intent", 0.6),
    ("we're piloting Amplitude alongside you for the next 30 days", "churn_intent", 0.6),
    (
        "Correct the invoice or we'll take our business somewhere that can count.",
        "churn_intent",
        0.6,
    ),
]


@pytest.mark.parametrize(
    "text",
    [
        "We're currently on Pipedrive and considering switching to you. What would it cost?",
        "We moved to the annual plan last month, can you send the invoice?",
        "I recently made a transfer that I would like to cancel",  # BANKING77: not leaving
        "Why is my plan not renewing automatically?",
        "If I'm going to use a disposable card, are there limits?",
        "Superb! But if I need to cancel, how do I go about that?",  # a hotel's guest
    ],
)
def test_what_only_looks_like_leaving_is_not_read_as_it(text):
    from tactful.detect.text import explicit_cues

    assert "churn_intent" not in explicit_cues(text)


@pytest.mark.parametrize(("text", "dim", "floor"), _READ_AS_SAID)
def test_support_phrasings_are_read_as_said(text, dim, floor):
    from tactful.detect.text import explicit_cues

    strength, words = explicit_cues(text)[dim]
    assert strength >= floor, (text, strength)
    assert words in text.lower()


@pytest.mark.parametrize(
    ("text", "dim", "strength_name"),
    [
        # a clock and a fault in one message
        (
            "We launch our new store tomorrow at 9am and the checkout page is throwing a 500.",
            "urgency",
            "CLOCK_AND_FAULT",
        ),
        (
            "first patients are due in at 8:30, that's an hour from now. the calendar is blank",
            "urgency",
            "CLOCK_AND_FAULT",
        ),
        (
            "The SSL certificate expires on Thursday and the auto-renewal shows an error.",
            "urgency",
            "CLOCK_AND_FAULT",
        ),
        (
            "12 warehouse staff are standing around, the picking app won't sync. Fix by noon?",
            "urgency",
            "CLOCK_AND_FAULT",
        ),
        # a promise and then its breach
        (
            "you told me on the 3rd the extra charge would be removed. it wasn't. still there.",
            "frustration",
            "BROKEN_PROMISE",
        ),
        (
            "We reported the trigger bug two weeks ago and were told it was fixed. It was not.",
            "frustration",
            "BROKEN_PROMISE",
        ),
        (
            "I was told I'd get a credit for the outage. I got a coupon. Not the same thing.",
            "frustration",
            "BROKEN_PROMISE",
        ),
    ],
)
def test_what_a_message_says_across_its_sentences_is_read(text, dim, strength_name):
    """Two parts, each common and calm alone, that together say the dimension (they are
    read over the whole message, not one sentence at a time)."""
    import tactful.detect.text as lexicon

    strength = getattr(lexicon, strength_name)
    said, words = lexicon.explicit_cues(text)[dim]
    assert said == strength and words in text.lower()
    assert read_text(text).scores[dim] >= strength


@pytest.mark.parametrize(
    "text",
    [
        "Can you book a table for tomorrow at 7pm? Not 8, that won't work.",  # a booking
        "The export is empty since Monday. No rush, whenever you get a chance.",
        "Not urgent: the logo on today's newsletter is the wrong size.",
        "feel free to answer tomorrow or later in the week. Does the app work offline?",
    ],
)
def test_a_clock_beside_a_calm_or_booking_message_is_not(text):
    assert read_text(text).scores["urgency"] < 0.3


def test_a_promise_kept_or_only_reported_is_not():
    from tactful.detect.text import explicit_cues

    assert "frustration" not in explicit_cues("You told me the fix ships Friday and it did!")
    assert "frustration" not in explicit_cues("I was told to email billing. Is this it?")


@pytest.mark.parametrize(
    "text",
    [
        'Oh great, thanks so much for "fixing" the export, now it doesn\'t download at all.',
        'thanks a bunch for the "quick" reply, only took 9 days',
        "Wow, thanks for charging us twice this month, very cool.",
        "\"Thank you for your patience.\" That's the fifth time I've been told that.",
    ],
)
def test_thanks_for_a_harm_or_in_scare_quotes_is_not_gratitude(text):
    from tactful.detect.text import SARCASM_CEILING

    assert read_text(text).scores["gratitude"] <= SARCASM_CEILING


def test_the_pipeline_down_since_morning_is_a_stoppage():
    assert "stoppage" in read_text("Our webhook pipeline has been down since 6am").said
    assert "stoppage" in read_text("we've lost hundreds of orders").said
    assert "stoppage" in read_text("HTTP 500 on checkout, we are losing sales").said
    assert read_text("I can't afford to lose more money!").said == {}


@pytest.mark.parametrize(
    "text",
    [
        "Is there an API endpoint for assigning tickets to a human agent?",
        "How do I configure the bot to hand off to a human agent after two failed answers?",
        "Can the chatbot transfer conversations to a live agent in our helpdesk?",
        "We need a routing rule that sends VIP chats to a human representative.",
        "Does your product support escalation to a supervisor queue?",
    ],
)
def test_a_person_named_as_what_a_product_does_is_not_asked_for(text):
    """A helpdesk's or a chatbot's buyers ask how it hands work to people: each of these
    read wants_human 0.6-0.66 from "human agent" and "live agent"."""
    from tactful.detect.text import DECLINED_CEILING

    assert read_text(text).scores["wants_human"] <= DECLINED_CEILING


@pytest.mark.parametrize(
    "text",
    [
        "Your chatbot should hand off to a human agent, I want to talk to someone now.",
        "The bot can't help. Transfer me to a human agent.",
        "Please route my ticket to a supervisor.",
    ],
)
def test_a_person_asked_for_beside_a_product_question_still_is(text):
    assert read_text(text).scores["wants_human"] >= 0.6


@pytest.mark.parametrize(
    "text",
    [
        "Your bot actually answered my question perfectly, no need for a human. Thanks!",
        "Please don't escalate this or schedule a call, I just need the link to the API docs.",
    ],
)
def test_a_person_declined_holds_wants_human_whatever_the_cues_say(text):
    from tactful.detect.text import DECLINED_CEILING

    read = read_text(text)
    assert read.scores["wants_human"] <= DECLINED_CEILING
    assert "wants_human" not in read.evidence


def test_no_hurry_said_holds_urgency_unless_said_outright():
    from tactful.detect.text import UNHURRIED_CEILING

    tag = '"URGENT" is the name of one of our tags. Not a big deal, just cosmetic.'
    assert score_text(tag).scores["urgency"] > UNHURRIED_CEILING  # the word alone
    assert read_text(tag).scores["urgency"] <= UNHURRIED_CEILING
    # an outage said outright outranks "no rush" elsewhere in the message
    down = "Checkout is down for all our customers. No rush on the invoice question."
    assert read_text(down).scores["urgency"] >= 0.55


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("How do I delete a user who left the company?", "account_access"),
        ("An ex-employee still has access, remove jane.doe@acme.com", "account_access"),
        ("Hi, how do I transfer ownership of a board to another user?", "account_access"),
        ("Are your plans priced by user or by contact?", "sales_pricing"),
        ("Is the trial full-featured or limited?", "sales_pricing"),
        ("Can you provide a W-8BEN-E for our supplier onboarding?", "sales_procurement"),
        ("The tracking snippet shows not detected on my site", "technical"),
        ("Our emails are going to spam since yesterday", "technical"),
        ("firmware OTA update stuck at 0% for 57 devices", "technical"),
        ("Shared prototype link shows a blank white screen on Safari", "technical"),
        (
            "my colleague can see the dashboards but cant edit them, what role does she need",
            "account_access",
        ),
        ("Paralegal needs access to the Henderson matter only", "account_access"),
        ("Do you offer a price lock for 3 years if we commit now?", "sales_pricing"),
        (
            "PO 7781-22 has been issued for the 50 licences, where should I send it?",
            "sales_procurement",
        ),
        ("Is the governing law negotiable? We prefer Ontario law.", "sales_legal"),
        ("Are you HIPAA compliant? What controls do you have for PHI?", "sales_security"),
        ("Do you host in Canada? Our clients demand their data stay in Canada.", "sales_security"),
        ("turn off auto renew pls", "cancellation"),
    ],
)
def test_a_software_customers_words_name_the_topic(text, topic):
    assert score_text(text).topic_scores[topic] > 0.0, score_text(text).topic_scores
    assert read_text(text).topic == topic


def test_deleting_ones_own_user_account_is_still_leaving():
    assert read_text("I want to delete my user account").topic != "account_access"
    assert score_text("I want to delete my user account").topic_scores["account_access"] == 0.0


def test_closing_an_account_considered_is_not_leaving_said():
    """Weighed, not done: the message keeps its own topic (a BANKING77 customer unhappy
    with an exchange rate, filed under billing)."""
    from tactful.detect.text import LEAVING_SAID, explicit_cues

    weighed = "The exchange rate is really bad. I'm considering closing my account because of it."
    assert explicit_cues(weighed).get("churn_intent", (0.0, ""))[0] < LEAVING_SAID
    done = "We'll be closing our account with you at the end of the month."
    assert explicit_cues(done)["churn_intent"][0] >= LEAVING_SAID


def test_a_point_of_sale_is_not_a_purchase_order():
    assert score_text("Our POS system is not syncing with inventory").topic != "sales_procurement"
    assert score_text("Could you split the purchase across two POs?").topic == "sales_procurement"

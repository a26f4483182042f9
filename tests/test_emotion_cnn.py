"""The default mode's emotion reader (detect/emotion_cnn.py): its numpy forward pass
against a plain per-message reading of the same weights, and its checks at load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tactful.detect.embedder import load_embedder
from tactful.detect.emotion_cnn import EMOTION_CNN, WEIGHTS, EmotionCNN, load_emotion_cnn

DIM, WIDTH, MAX_TOKENS = 6, 5, 7


def _write(folder: Path, rng: np.random.Generator, vocabulary: str = "") -> dict[str, np.ndarray]:
    embedder = load_embedder()
    table = rng.normal(size=(embedder.vocabulary_size, DIM)).astype(np.float32)
    scale = (np.abs(table).max(axis=1, keepdims=True) / 127.0).astype(np.float32)
    weights = {
        "table": np.round(table / scale).astype(np.int8),
        "table.scale": scale,
        "conv.weight": rng.normal(size=(WIDTH, DIM, 3)).astype(np.float32),
        "conv.bias": rng.normal(size=WIDTH).astype(np.float32),
        "out.weight": rng.normal(size=(28, 2 * WIDTH + DIM)).astype(np.float32),
        "out.bias": rng.normal(size=28).astype(np.float32),
    }
    folder.mkdir()
    save_file(weights, str(folder / WEIGHTS))
    sha = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    card = {
        "version": f"{EMOTION_CNN}-{sha[:12]}",
        "vocabulary": vocabulary or embedder.name,
        "parameters": {"max_tokens": MAX_TOKENS},
        "files": {WEIGHTS: sha},
    }
    (folder / "model_card.json").write_text(json.dumps(card))
    return weights


def _reference(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """One message, the way torch's Conv1d(padding=1) reads it: zeros beyond each end."""
    table = weights["table"].astype(np.float32) * weights["table.scale"]
    ids = ids[:MAX_TOKENS]
    if not ids:
        return weights["out.bias"]
    x = np.vstack([np.zeros(DIM), table[ids], np.zeros(DIM)])
    conv = weights["conv.weight"]
    hidden = np.array(
        [
            np.maximum(sum(conv[:, :, k] @ x[t + k] for k in range(3)) + weights["conv.bias"], 0.0)
            for t in range(len(ids))
        ]
    )
    pooled = np.concatenate([hidden.max(0), hidden.mean(0), table[ids].mean(0)])
    logits: np.ndarray = weights["out.weight"] @ pooled + weights["out.bias"]
    return logits


def test_the_batched_pass_reads_each_message_as_it_would_alone(tmp_path: Path) -> None:
    weights = _write(tmp_path / "m", np.random.default_rng(0))
    model = EmotionCNN(tmp_path / "m", load_embedder())
    texts = [
        "I am so annoyed",
        "",
        "what? no idea what this means",
        "ok",
        "this is a much longer message than seven word pieces, so it is cut",
    ]
    ids = load_embedder().token_ids(texts)
    got = model.encode_ids(ids)
    assert got.shape == (len(texts), 28)
    for i, row in enumerate(ids):
        np.testing.assert_allclose(got[i], _reference(weights, list(row)), rtol=1e-4, atol=1e-4)
    # alone or in a batch, and from text or from ids, the same
    np.testing.assert_allclose(model.encode(texts[2:3])[0], got[2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.encode(texts), got, rtol=1e-5, atol=1e-5)


def test_it_refuses_weights_that_are_not_its_cards(tmp_path: Path) -> None:
    _write(tmp_path / "m", np.random.default_rng(1))
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    card["files"][WEIGHTS] = "0" * 64
    (tmp_path / "m" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        EmotionCNN(tmp_path / "m", load_embedder())


def test_it_refuses_another_vocabulary_and_says_how_to_train_a_missing_one(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "m", np.random.default_rng(2), vocabulary="some-other-vectors")
    with pytest.raises(ValueError, match="some-other-vectors's word pieces"):
        EmotionCNN(tmp_path / "m", load_embedder())
    with pytest.raises(FileNotFoundError, match=r"python -m tactful\.train\.emotion_cnn"):
        EmotionCNN(tmp_path / "nothing", load_embedder())


def test_the_shipped_model_matches_its_card_and_reads_feelings() -> None:
    model = load_emotion_cnn()
    card = model.card
    assert model.name == card["version"]
    assert card["teacher"].startswith("minilm-goemotions-encoder-")
    logits = model.encode(
        [
            "Thank you so much, that was really helpful!",
            "I have no idea what you mean, I'm confused",
            "This is infuriating, stop wasting my time",
        ]
    )
    gratitude, confusion, anger = 15, 6, 2
    assert logits[:, gratitude].argmax() == 0
    assert logits[:, confusion].argmax() == 1
    assert logits[:, anger].argmax() == 2
    # the export was checked against torch when it was trained
    assert card["export_check"]["mean_abs_logit_difference"] < 0.05


def test_the_distillation_variants_are_new_reproducible_and_made_of_the_texts_words() -> None:
    from tactful.train.emotion_cnn import augmented_texts

    texts = [
        "i am so disappointed in this show",
        "why would you do that to me",
        "thanks a lot friend",
        "ok",
    ]
    variants = augmented_texts(texts, copies=3, seed=7)
    assert variants == augmented_texts(texts, copies=3, seed=7)
    assert variants != augmented_texts(texts, copies=3, seed=8)
    assert 0 < len(variants) <= 3 * len(texts)
    assert len(set(variants)) == len(variants)
    assert not set(variants) & set(texts)
    vocabulary = {w for t in texts for w in t.split()}
    for v in variants:
        assert v.strip() == v and v
        assert set(v.split()) <= vocabulary
    assert augmented_texts(texts, copies=0) == []

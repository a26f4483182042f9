"""Detect, text: GoEmotions' 28 label logits at static-vector cost (the default mode's
emotion reader).

The tuned transformer (detect/transformer.EmotionClassifier) reads emotions best but runs
at ~130 messages/s. This is its student: one convolution (three word pieces wide) over
the word pieces' vectors, then the max and the mean of its outputs and the mean of the
vectors, then a linear layer to the 28 labels. It was trained (``python -m
tactful.train.emotion_cnn``) to give the transformer's probabilities on the train texts
of every benchmark task, so it reads word order a bag of vectors cannot ("not happy",
"no idea"), for the price of a few small matrix products per message. The default
heads' emotion columns are fused with its logits, as the transformer mode's are with the
transformer's (train/heads.fuse_emotions; the frustration emotion expert is left alone,
see train/heads.STATIC_FUSED).

Shipped in ``detect/models/minilm-goemotions-cnn``: the word pieces' table int8 with one
scale per row (the static embedder's vocabulary), the convolution and the output layer at
float32; the card holds its version (the weights' hash), how it was trained and its dev
scores. numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tactful.detect.digest import file_sha256
from tactful.detect.embedder import MODELS_DIR, StaticEmbedder, load_embedder

__all__ = ["EMOTION_CNN", "EmotionCNN", "load_emotion_cnn"]

EMOTION_CNN = "minilm-goemotions-cnn"  # the folder in detect/models
WEIGHTS = "model.safetensors"
LABELS = 28

Matrix = NDArray[np.float32]


class EmotionCNN:
    """One logit per GoEmotions label for each text. It has ``name``, ``dim`` and
    ``encode`` as a sentence encoder has (the fusion and the evaluation read it so); its
    name is its version, so heads fused with one export refuse another."""

    dim = LABELS

    def __init__(self, folder: Path, embedder: StaticEmbedder) -> None:
        card_file = folder / "model_card.json"
        if not card_file.is_file():
            raise FileNotFoundError(
                f"no emotion model in {folder} (no model_card.json); train one with "
                "python -m tactful.train.emotion_cnn --out " + str(folder)
            )
        self.card: dict[str, Any] = json.loads(card_file.read_text(encoding="utf-8"))
        self.name: str = self.card["version"]
        weights_file = folder / WEIGHTS
        if file_sha256(weights_file) != self.card["files"][WEIGHTS]:
            raise ValueError(f"{weights_file} is not the file its card names (SHA-256 differs)")
        if self.card["vocabulary"] != embedder.name:
            raise ValueError(
                f"{folder} reads {self.card['vocabulary']}'s word pieces, not {embedder.name}'s"
            )
        from safetensors.numpy import load_file

        w = load_file(str(weights_file))
        table = w["table"].astype(np.float32) * w["table.scale"]
        if table.shape[0] != embedder.vocabulary_size:
            raise ValueError(
                f"{folder}: {table.shape[0]} word pieces, the embedder has "
                f"{embedder.vocabulary_size}"
            )
        # one zero row at the end: the padding between messages
        self._table: Matrix = np.vstack([table, np.zeros((1, table.shape[1]), np.float32)])
        conv = w["conv.weight"].astype(np.float32)  # (width, dim, 3), as torch's Conv1d
        self._taps: list[Matrix] = [np.ascontiguousarray(conv[:, :, k].T) for k in range(3)]
        self._conv_bias: Matrix = w["conv.bias"].astype(np.float32)
        self._out: Matrix = np.ascontiguousarray(w["out.weight"].T.astype(np.float32))
        self._out_bias: Matrix = w["out.bias"].astype(np.float32)
        self.max_tokens: int = int(self.card["parameters"]["max_tokens"])
        self._embedder = embedder

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Each text's 28 logits, in GoEmotions' label order."""
        return self.encode_ids(self._embedder.token_ids(texts))

    def encode_ids(self, ids: Sequence[Sequence[int]]) -> Matrix:
        """The same for texts already tokenised by the static embedder (the scorer
        tokenises each message once). A text with no word pieces gets the output bias."""
        out = np.tile(self._out_bias, (len(ids), 1))
        rows = [list(r[: self.max_tokens]) for r in ids]
        kept = [i for i, r in enumerate(rows) if r]
        if not kept:
            return out
        pad = self._table.shape[0] - 1
        # every message's word pieces one after another, one padding row before each and
        # after the last: a window of three never reaches into a neighbour
        flat: list[int] = [pad]
        starts: list[int] = []
        for i in kept:
            starts.append(len(flat))
            flat.extend(rows[i])
            flat.append(pad)
        vectors = self._table[np.array(flat, dtype=np.int64)]
        hidden = vectors[:-2] @ self._taps[0]
        hidden += vectors[1:-1] @ self._taps[1]
        hidden += vectors[2:] @ self._taps[2]
        hidden += self._conv_bias
        np.maximum(hidden, 0.0, out=hidden)
        # hidden[t] is centred on flat[t + 1]: each message's own rows, padding left out
        lengths = np.array([len(rows[i]) for i in kept], dtype=np.int64)
        counts = lengths.astype(np.float32)[:, None]  # float32: the means stay float32
        first = np.array(starts, dtype=np.int64) - 1
        token_rows = np.concatenate(
            [np.arange(s, s + n) for s, n in zip(first, lengths, strict=True)]
        )
        bounds = np.r_[0, np.cumsum(lengths)[:-1]]
        h = hidden[token_rows]
        e = vectors[token_rows + 1]
        pooled = np.hstack(
            [
                np.maximum.reduceat(h, bounds, axis=0),
                np.add.reduceat(h, bounds, axis=0) / counts,
                np.add.reduceat(e, bounds, axis=0) / counts,
            ]
        )
        out[kept] = pooled @ self._out + self._out_bias
        return out


@cache
def load_emotion_cnn(name: str = EMOTION_CNN) -> EmotionCNN:
    """The shipped student (cached), over the default static embedder's word pieces."""
    return EmotionCNN(MODELS_DIR / name, load_embedder())

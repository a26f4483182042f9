"""Detect, text: the feature vector both the trainer and the scorer build for a message.

One function, used by `tactful train` and at run time alike, so a head always sees the
features it was trained on:

    [ sentence embedding (d) | lexical cue scores (7) | context (3) ]

The lexical tier's scores enter the learned tier as features (the fusion is learned, not
hand-weighted); the context features carry the conversation: how many earlier messages,
how frustrated the earliest of them read, and whether this message repeats the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from tactful.detect.text import score_text
from tactful.signals import DIMENSIONS

__all__ = ["CONTEXT_FEATURES", "Embedder", "features"]

CONTEXT_FEATURES = ("history_turns", "history_frustration", "repeats_last")

Matrix = NDArray[np.float32]


class Embedder(Protocol):
    def encode(self, texts: Sequence[str]) -> Matrix:
        """One row per text."""
        ...


def _cosine_rows(a: Matrix, b: Matrix) -> NDArray[np.float32]:
    num = np.einsum("ij,ij->i", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    out: NDArray[np.float32] = np.where(den > 0, num / np.maximum(den, 1e-9), 0.0).astype(
        np.float32
    )
    return out


def features(
    embedder: Embedder, texts: Sequence[str], histories: Sequence[Sequence[str]]
) -> Matrix:
    """The feature matrix for messages and their earlier messages (oldest first)."""
    if len(texts) != len(histories):
        raise ValueError(f"{len(texts)} texts but {len(histories)} histories")
    emb = embedder.encode(list(texts)).astype(np.float32)
    lex = np.zeros((len(texts), len(DIMENSIONS)), dtype=np.float32)
    ctx = np.zeros((len(texts), len(CONTEXT_FEATURES)), dtype=np.float32)
    last = ["" for _ in texts]
    for i, (text, history) in enumerate(zip(texts, histories, strict=True)):
        scores = score_text(text, list(history)).scores
        lex[i] = [scores[d] for d in DIMENSIONS]
        if history:
            ctx[i, 0] = min(len(history), 5) / 5
            ctx[i, 1] = max(score_text(h).scores["frustration"] for h in history[-5:])
            last[i] = history[-1]
    with_history = [i for i, h in enumerate(histories) if h]
    if with_history:
        previous = embedder.encode([last[i] for i in with_history]).astype(np.float32)
        ctx[with_history, 2] = _cosine_rows(emb[with_history], previous)
    return np.hstack([emb, lex, ctx])

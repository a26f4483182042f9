"""Detect, text: the feature vector both the trainer and the scorer build for a message.

One function, used by `tactful train` and at run time alike, so a head always sees the
features it was trained on:

    dense:  [ sentence embedding (d) | lexical cue scores (7) ]
    tokens: the message's word pieces as a normalised bag (vocabulary size, sparse)

The bag of word pieces lets a head learn its own lexicon from labeled data (a weight per
word piece, shown as evidence); the embedding carries meaning the exact words miss.

The lexical tier's scores enter the learned tier as features (the fusion is learned, not
hand-weighted). The conversation enters twice: through the lexical cues (repeating an
earlier message) and through ``context_boost``. A learned context feature was tried and
dropped: in the training data only dialogues have earlier turns, and the heads learned
"a dialogue" (mostly satisfied turns), not "a long struggle".
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tactful.detect.text import TextScores, score_text
from tactful.signals import DIMENSIONS

__all__ = ["TOKEN_SCALE", "Embedder", "context_boost", "features", "token_bag"]


Matrix = NDArray[np.float32]


class Embedder(Protocol):
    vocabulary_size: int

    def encode(self, texts: Sequence[str]) -> Matrix:
        """One row per text."""
        ...

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids (no special tokens, truncated as encode does)."""
        ...


# Bag-of-word-piece values are scaled so their weights regularise like the dense ones.
TOKEN_SCALE = 4.0


def token_bag(embedder: Embedder, texts: Sequence[str]) -> Any:
    """A scipy CSR matrix: row i holds text i's word-piece frequencies x TOKEN_SCALE."""
    from scipy import sparse

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, ids in enumerate(embedder.token_ids(texts)):
        if not ids:
            continue
        unique, counts = np.unique(ids, return_counts=True)
        rows.extend([i] * len(unique))
        cols.extend(unique.tolist())
        vals.extend((counts * (TOKEN_SCALE / len(ids))).tolist())
    return sparse.csr_matrix(
        (vals, (rows, cols)), shape=(len(texts), embedder.vocabulary_size), dtype=np.float32
    )


def features(
    embedder: Embedder,
    texts: Sequence[str],
    histories: Sequence[Sequence[str]],
    lexical: Sequence[TextScores] | None = None,
    embeddings: Matrix | None = None,
) -> Matrix:
    """The dense feature matrix for messages and their earlier messages (oldest first).

    ``lexical``: the texts' lexical scores, if already computed (scored here otherwise).
    The history reaches the heads through the lexical tier (repeating an earlier message
    is a cue); its weight across a conversation is applied by the scorer (context_boost).
    """
    if len(texts) != len(histories):
        raise ValueError(f"{len(texts)} texts but {len(histories)} histories")
    emb = embeddings if embeddings is not None else embedder.encode(list(texts))
    lex = np.zeros((len(texts), len(DIMENSIONS)), dtype=np.float32)
    for i, (text, history) in enumerate(zip(texts, histories, strict=True)):
        scores = (lexical[i] if lexical is not None else score_text(text, list(history))).scores
        lex[i] = [scores[d] for d in DIMENSIONS]
    return np.hstack([emb, lex])


def context_boost(history: Sequence[str]) -> float:
    """How much earlier messages raise frustration now, in [0, 0.5]: half the mean lexical
    frustration of the last three (a missing one counts as calm). Three frustrated messages
    in a row weigh more than one angry outlier, and the same words mean more after failed
    attempts."""
    if not history:
        return 0.0
    return 0.5 * sum(_frustration(h) for h in history[-3:]) / 3


@lru_cache(maxsize=65_536)
def _frustration(text: str) -> float:
    """A past message's lexical frustration: cached, as each message is history for the
    customer's next few."""
    return score_text(text).scores["frustration"]

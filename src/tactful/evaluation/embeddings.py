"""Sentence embeddings kept on disk between runs, per text.

Encoding the benchmark's ~110,000 texts with the full transformer (detect/transformer.py,
numpy) takes ~30 minutes on two cores; the evaluation and ``tactful train --transformer``
need the same vectors every run. This cache keeps each text's vector under the SHA-1 of
the text, in append-only shards (``hashes.npy`` + ``vectors.npy``) under
``$TACTFUL_CACHE`` (default ``~/.cache/tactful``) / the encoder's name. A text is only
ever encoded once; deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["EmbeddingCache", "SentenceEncoder", "cache_dir"]

Matrix = NDArray[np.float32]
CHUNK = 2_048  # texts encoded between saves, so an interrupted run keeps its work


class SentenceEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> Matrix: ...


def cache_dir() -> Path:
    return Path(os.environ.get("TACTFUL_CACHE", Path.home() / ".cache" / "tactful"))


def _key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()


class EmbeddingCache:
    def __init__(
        self,
        encoder: SentenceEncoder,
        root: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.encoder = encoder
        self.name = encoder.name  # it encodes as the encoder does
        self.dim = encoder.dim
        self.dir = (root or cache_dir()) / "embeddings" / encoder.name
        self._log = log
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[Matrix] = []
        if self.dir.is_dir():
            for hashes_file in sorted(self.dir.glob("*.hashes.npy")):
                vectors_file = hashes_file.with_name(
                    hashes_file.name.replace(".hashes.", ".vectors.")
                )
                if not vectors_file.exists():
                    continue
                hashes = np.load(hashes_file)
                vectors = np.load(vectors_file)
                if len(hashes) != len(vectors) or vectors.shape[1:] != (encoder.dim,):
                    continue  # a shard cut short by an interrupted write
                shard = len(self._shards)
                self._shards.append(vectors)
                for row, h in enumerate(hashes):
                    self._index[bytes(h)] = (shard, row)

    def __len__(self) -> int:
        return len(self._index)

    def encode(self, texts: Sequence[str]) -> Matrix:
        """One row per text, encoded only if not cached before."""
        keys = [_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._index}
        if todo:
            items = list(todo.items())
            start = time.perf_counter()
            for i in range(0, len(items), CHUNK):
                chunk = items[i : i + CHUNK]
                self._add([k for k, _ in chunk], self.encoder.encode([t for _, t in chunk]))
                if self._log:
                    done = i + len(chunk)
                    rate = done / (time.perf_counter() - start)
                    self._log(
                        f"  encoded {done:,}/{len(items):,} texts with {self.encoder.name} "
                        f"({rate:.0f}/s)"
                    )
        out = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            shard, row = self._index[k]
            out[i] = self._shards[shard][row]
        return out

    def _add(self, keys: list[bytes], vectors: Matrix) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}"
        hashes = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 20)
        # Vectors first, hashes last: a shard without its hashes file is never read.
        np.save(self.dir / f"{name}.vectors.npy", vectors.astype(np.float32))
        np.save(self.dir / f"{name}.hashes.npy", hashes)
        shard = len(self._shards)
        self._shards.append(vectors.astype(np.float32))
        for row, k in enumerate(keys):
            self._index[k] = (shard, row)

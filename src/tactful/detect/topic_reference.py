"""Detect, text: how far a message is from the requests the topic head learned from.

The topic head learned its topics from e-commerce (bitext) and banking (BANKING77)
requests. Its "other" there is a shop's shipping, a bank's ATM, "how do I contact
customer service": what those requests hold beyond the nine named topics. A software
product's customers write about other things, and the head reads most of what it has
never seen as other: "The quiz results page gives 0% to everyone" (0.70), "Tickets from
our contact form stopped coming in" (0.89). Near its own requests the head's "other" is
right; far from them it only says "none of what I know".

This module says which messages are far: the cosine similarity of a message's static
embedding to the nearest of K centroids of the head's train requests (k-means over their
embeddings), under a threshold: the FAR_PERCENTILE-th percentile of the head's own dev
requests' similarity (95 of 100 of them are nearer). A far message the head reads as other
is technical when it reports a problem with the product (text.reports_problem): learned.py
``TextScorer._topics``.

Shipped in ``detect/models/topic-reference``: the centroids (float16) and a card with the
threshold, the data's SHA-256 and how it was fitted (``python -m
tactful.train.topic_reference``; ``tactful train`` fits it too). numpy only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tactful.detect.digest import file_sha256
from tactful.detect.embedder import MODELS_DIR

__all__ = ["TOPIC_REFERENCE", "TopicReference", "load_topic_reference"]

TOPIC_REFERENCE = "topic-reference"  # the folder in detect/models
CENTROIDS = "centroids.npz"


class TopicReference:
    """The centroids of the topic head's train requests and the similarity under which a
    message is far from them."""

    def __init__(self, folder: Path) -> None:
        card_file = folder / "model_card.json"
        if not card_file.is_file():
            raise FileNotFoundError(
                f"no topic reference in {folder} (no model_card.json); fit one with "
                f"python -m tactful.train.topic_reference --out {folder}"
            )
        self.card: dict[str, Any] = json.loads(card_file.read_text(encoding="utf-8"))
        self.version: str = self.card["version"]
        path = folder / CENTROIDS
        digest = file_sha256(path)
        if digest != self.card["files"][CENTROIDS]:
            raise ValueError(
                f"{path} does not match its card (SHA-256 {digest[:12]}, the card says "
                f"{self.card['files'][CENTROIDS][:12]}): refit it with python -m "
                "tactful.train.topic_reference"
            )
        with np.load(path) as arrays:
            centroids = arrays["centroids"].astype(np.float32)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self.centroids: NDArray[np.float32] = centroids / np.maximum(norms, 1e-12)
        self.threshold = float(self.card["threshold"])
        self.embedder: str = self.card["embedder"]

    def similarity(self, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
        """Each row's cosine similarity to the nearest centroid (rows: the static
        embedder's embeddings, L2-normalised as it gives them; an empty text's zero row
        is 0)."""
        if len(embeddings) == 0:
            return np.zeros(0, dtype=np.float32)
        sims: NDArray[np.float32] = (embeddings @ self.centroids.T).max(axis=1)
        return sims

    def far(self, embeddings: NDArray[np.float32]) -> NDArray[np.bool_]:
        """Which rows are far from the head's requests (similarity under the threshold)."""
        return self.similarity(embeddings) < self.threshold


@cache
def load_topic_reference() -> TopicReference | None:
    """The shipped reference, or None where it was not fitted (the scorer then leaves the
    head's "other" as it is)."""
    folder = MODELS_DIR / TOPIC_REFERENCE
    if not (folder / "model_card.json").is_file():
        return None
    return TopicReference(folder)

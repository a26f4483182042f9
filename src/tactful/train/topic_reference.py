"""Fit the topic reference (detect/topic_reference.py): centroids of the topic head's
train requests in the static embedder's space, and the similarity under which a message
is far from all of them.

Run (``tactful train`` runs it too)::

    python -m tactful.train.topic_reference --out src/tactful/detect/models/topic-reference

Recipe (fixed; ~30 s on 2 cores): the topic head's train requests (bitext and BANKING77,
train.heads._topic_examples), cleaned as the scorer cleans them, each once; their static
embeddings (detect/models/minilm-static-256, L2-normalised); k-means with K centroids
(scikit-learn's MiniBatchKMeans, seed train.heads.SEED, N_INIT starts, batches of BATCH);
the threshold is the FAR_PERCENTILE-th percentile of the head's dev requests' similarity
to their nearest centroid. The test split is not read.

Chosen on the head's dev requests (2026-11-25): K = 1024 (512 centroids sit further from
the requests, so the threshold falls and fewer software messages count as far; 2048
doubles the cost for the same split) and FAR_PERCENTILE = 5 (at 1, the threshold is at
0.76 and half of the software messages of the probe sets are nearer than that; at 10,
more of the head's own requests with typos count as far). Of the dev requests the
scorer's topic moved on 6 of 2,587 (see the CHANGELOG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tactful.detect.digest import file_sha256
from tactful.detect.topic_reference import CENTROIDS, TOPIC_REFERENCE, TopicReference
from tactful.evaluation.tasks import DataError, data_dir

K = 1024
N_INIT = 3
BATCH = 2048
FAR_PERCENTILE = 5.0
DATA_FILES = ("bitext/train.csv", "bitext/dev.csv", "banking77/train.csv")


def fit_topic_reference(out: Path, root: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Fit the reference on ``root``'s topic requests and write it to ``out``; returns its
    card."""
    from sklearn.cluster import MiniBatchKMeans

    from tactful.detect.embedder import load_embedder
    from tactful.detect.learned import clean_text
    from tactful.train.heads import SEED, _topic_examples

    root = data_dir(root)
    embedder = load_embedder()

    def embed(split: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        texts, _ = _topic_examples(root, split)  # type: ignore[arg-type]
        cleaned = list(dict.fromkeys(clean_text(t)[0] for t in texts))
        return embedder.encode([t for t in cleaned if t])

    train = embed("train")
    log(f"topic reference: {len(train):,} train requests, k-means with {K} centroids")
    kmeans = MiniBatchKMeans(n_clusters=K, random_state=SEED, n_init=N_INIT, batch_size=BATCH)
    centroids = kmeans.fit(train).cluster_centers_.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CENTROIDS
    np.savez_compressed(path, centroids=centroids.astype(np.float16))
    # the threshold, on the float16 centroids as written (not renormalised: the runtime
    # class renormalises them, which would move this percentile from 0.79490 to 0.79495)
    dev = embed("dev")
    sims = (dev @ np.load(path)["centroids"].astype(np.float32).T).max(axis=1)
    threshold = float(np.percentile(sims, FAR_PERCENTILE))
    digest = file_sha256(path)
    card: dict[str, Any] = {
        "name": TOPIC_REFERENCE,
        "version": f"{TOPIC_REFERENCE}-{digest[:12]}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedder": embedder.version,
        "method": (
            "k-means centroids of the static embeddings of the topic head's train requests "
            "(bitext and BANKING77, cleaned as the scorer cleans them, each once); a message "
            "whose cosine similarity to the nearest centroid is under the threshold is far "
            "from what the head learned"
        ),
        "parameters": {
            "k": K,
            "n_init": N_INIT,
            "batch_size": BATCH,
            "seed": SEED,
            "far_percentile": FAR_PERCENTILE,
        },
        "threshold": round(threshold, 4),
        "threshold_from": (
            f"the {FAR_PERCENTILE:g}th percentile of the head's {len(dev):,} dev requests' "
            "similarity to their nearest centroid"
        ),
        "dev_similarity_percentiles": {
            str(q): round(float(np.percentile(sims, q)), 4) for q in (1, 5, 10, 50)
        },
        "data": {
            "files": {name: file_sha256(root / name) for name in DATA_FILES},
            "train_requests": len(train),
            "dev_requests": len(dev),
        },
        "files": {CENTROIDS: digest},
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for name in (CENTROIDS, "model_card.json"):
        (out / name).chmod(0o644)
    TopicReference(out)  # it loads as the scorer will load it
    log(f"topic reference: threshold {threshold:.4f}, written to {out}")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    from tactful.detect.embedder import MODELS_DIR

    parser = argparse.ArgumentParser(
        prog="python -m tactful.train.topic_reference",
        description="Fit the topic reference: centroids of the topic head's train requests "
        "and the similarity under which a message is far from them (offline, ~30 s).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=MODELS_DIR / TOPIC_REFERENCE,
        help="folder to write it to (default: the shipped folder)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TACTFUL_DATA", "../shared/data")),
        help="the labeled data folder (default: $TACTFUL_DATA or ../shared/data)",
    )
    args = parser.parse_args(argv)
    try:
        card = fit_topic_reference(args.out, args.data)
    except (FileNotFoundError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "version": card["version"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the default mode's emotion reader (detect/emotion_cnn.py) by distilling the tuned
transformer into a convolution over static word pieces.

Run, in the distillation environment (see :mod:`tactful.train.distill`; it needs torch)::

    PYTHONPATH=src /tmp/distill-venv/bin/python -m tactful.train.emotion_cnn \\
        --out src/tactful/detect/models/minilm-goemotions-cnn

Why: the default heads read a message as a bag (of vectors, word pieces and character
n-grams), and GoEmotions' finer labels (confusion, disappointment, annoyance) turn on
short phrases and word order a bag does not keep. The tuned transformer reads them
(GoEmotions dev F1 confusion .47 against the default heads' .39) but at ~130 messages/s.
A student that reads three word pieces at a time keeps much of that at static cost.

Recipe (fixed; ~10 minutes on 2 cores once the teacher's logits are cached):

- the teacher: the shipped GoEmotions-tuned transformer
  (detect/models/minilm-goemotions-encoder, run by tactful's numpy encoder, so what is
  shipped is what teaches), its 28 logits on each text as the scorer cleans it, kept in
  the embedding cache (``$TACTFUL_CACHE``); the first run encodes ~80,000 texts (~12 min);
- the texts: the train split of GoEmotions and of every other benchmark task (support
  requests, bank queries, dialogue turns, Wikipedia requests), so the student learns how
  the teacher reads the kinds of text tactful scores, not only Reddit comments; dev and
  test splits are never trained on (GoEmotions dev is read for the card's scores);
- the student: the static embedder's word pieces (first MAX_TOKENS), each a vector
  initialised from the emotion-tuned static vectors (minilm-goemotions-128) and trained;
  a convolution of width WIDTH over windows of three word pieces, ReLU; the max and the
  mean of its outputs over the text and the mean of the vectors, concatenated; a linear
  layer to the 28 labels;
- the loss: binary cross-entropy against the teacher's probabilities; Adam, learning
  rate 1e-3, batch 64, EPOCHS epochs, seed 0, 2 threads; the epoch kept is the one with
  the best mean GoEmotions dev AUC over the five labels the eval reports.

Chosen on GoEmotions dev (2026-11-24, fusion with the default heads, 5-fold out-of-fold
AUC / best F1): the vectors trained rather than frozen (confusion .936/.426 against
.934/.414); a bag of trained vectors without the convolution read far less (confusion
alone .856/.310 against the convolution's .928/.445).

Tried on GoEmotions dev (2026-11-24, the same fusion, 3 x 5-fold; anger / annoyance /
disappointment / confusion fused AUC) and not adopted, each within .004 of the recipe
(.932 / .879 / .863 / .932) and none better on every label: ``--width 512`` (.934 /
.883 / .866 / .931, at twice the convolution's cost); ``--augment 1`` (77,530 variants,
.934 / .879 / .866 / .929); GoEmotions' own labels mixed into its texts' targets at
weight 0.5 (.932 / .877 / .864 / .930; it overfits after epoch 3); the average of two
students (.934 / .882 / .866 / .932).

The export writes the table int8 with one scale per row, the rest float32, and checks
numpy's logits against torch's on GoEmotions dev texts; the card records the data's
SHA-256, the recipe, the teacher's version, the check and the dev AUC per label.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tactful.detect.digest import file_sha256
from tactful.evaluation.tasks import TASKS, DataError, data_dir
from tactful.evaluation.text import GOEMOTIONS_LABEL_COUNT, load_goemotions_labels
from tactful.train.distill import (
    _INSTALL_MODEL2VEC,
    _INSTALL_TORCH,
    SEED,
    MissingDependencyError,
    _require,
    _seed_everything,
    int8_rows,
)

MAX_TOKENS = 128
WIDTH = 256
EPOCHS = 8
# Variants of each train text the teacher also reads (see augmented_texts): more of the
# teacher's readings than the labeled texts alone give.
AUGMENT = 0
DROP = 0.2  # a word dropout variant drops each word with this chance
BATCH = 64
LEARNING_RATE = 1e-3
THREADS = 2
CHECK_TEXTS = 1000  # GoEmotions dev texts the export is checked on
WEIGHTS = "model.safetensors"
REPORTED = {"anger": 2, "annoyance": 3, "confusion": 6, "disappointment": 9, "gratitude": 15}


def distillation_texts(root: Path) -> list[str]:
    """Every benchmark task's train texts (GoEmotions' first), cleaned as the scorer
    cleans them, each once."""
    from tactful.detect.learned import clean_text

    texts = [text for text, _ in load_goemotions_labels("train", root)]
    for name, task in TASKS.items():
        if not name.startswith("goemotions/"):
            texts.extend(e.text for e in task.load("train", root))
    return list(dict.fromkeys(clean_text(t)[0] for t in texts))


def augmented_texts(texts: Sequence[str], copies: int, seed: int = SEED) -> list[str]:
    """``copies`` variants of each text, for the teacher to read and the student to learn:
    half drop each word with chance DROP, half join the text's start to the end of another
    text (cut at random words). Variants already among ``texts``, empty or repeated are
    left out. The teacher labels every variant, so none needs a label of its own."""
    rng = np.random.default_rng(seed)
    words = [t.split() for t in texts]
    seen = set(texts)
    out: list[str] = []
    for _ in range(copies):
        for w in words:
            if rng.random() < 0.5:
                kept = [x for x in w if rng.random() >= DROP]
            else:
                other = words[int(rng.integers(len(words)))]
                head = w[: int(rng.integers(1, len(w) + 1))] if w else []
                tail = other[int(rng.integers(len(other))) :] if other else []
                kept = head + tail
            variant = " ".join(kept)
            if variant and variant not in seen:
                seen.add(variant)
                out.append(variant)
    return out


def teacher_logits(texts: Sequence[str], log: Any = print) -> tuple[np.ndarray, str]:
    """The tuned transformer's 28 logits for each text (cached), and its version."""
    from tactful.detect.transformer import load_emotion_classifier
    from tactful.evaluation.embeddings import EmbeddingCache

    teacher = EmbeddingCache(load_emotion_classifier(), log=log)
    return teacher.encode(list(texts)), teacher.name


def _network(torch: Any, table: np.ndarray, width: int = WIDTH) -> Any:
    class Student(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            dim = table.shape[1]
            self.table = torch.nn.Embedding.from_pretrained(
                torch.tensor(table, dtype=torch.float32), freeze=False
            )
            self.conv = torch.nn.Conv1d(dim, width, 3, padding=1)
            self.out = torch.nn.Linear(2 * width + dim, GOEMOTIONS_LABEL_COUNT)

        def forward(self, ids: Any, mask: Any) -> Any:
            vectors = self.table(ids) * mask.unsqueeze(-1)
            hidden = torch.relu(self.conv(vectors.transpose(1, 2))).transpose(1, 2)
            hidden = hidden * mask.unsqueeze(-1)
            n = mask.sum(1, keepdim=True).clamp(min=1)
            # ReLU outputs are >= 0, so masked zeros never win the max over real ones
            return self.out(
                torch.cat([hidden.max(1).values, hidden.sum(1) / n, vectors.sum(1) / n], 1)
            )

    return Student()


def _batch(torch: Any, rows: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1.0
    return ids, mask


def _predict(torch: Any, net: Any, rows: Sequence[Sequence[int]]) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        out = [net(*_batch(torch, rows[i : i + 512])).numpy() for i in range(0, len(rows), 512)]
    net.train()
    return np.concatenate(out).astype(np.float32)


def _dev_aucs(scores: np.ndarray, labels: list[set[int]]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {
        name: round(float(roc_auc_score([j in s for s in labels], scores[:, j])), 4)
        for name, j in REPORTED.items()
    }


def train(
    out: Path,
    data: Path,
    log: Any = print,
    width: int = WIDTH,
    epochs: int = EPOCHS,
    threads: int = THREADS,
    augment: int = AUGMENT,
) -> dict[str, Any]:
    """Distil the tuned transformer into the student, export it into ``out`` with its
    card, and check the export against torch; returns a summary. ``width``: the
    convolution's outputs; ``augment``: variants of each text the teacher reads too
    (augmented_texts)."""
    if width < 1 or epochs < 1 or threads < 1 or augment < 0:
        raise ValueError(
            f"width {width}, epochs {epochs}, threads {threads}: each must be >= 1; "
            f"augment {augment}: must be >= 0"
        )
    torch = _require("torch", _INSTALL_TORCH, "torch trains the student")
    st = _require("safetensors.numpy", _INSTALL_MODEL2VEC, "safetensors writes the weights")
    from tactful.detect.embedder import TUNED_EMBEDDER, load_embedder
    from tactful.detect.emotion_cnn import EMOTION_CNN, EmotionCNN
    from tactful.detect.learned import clean_text

    root = data_dir(data)
    _seed_everything(torch, SEED)
    torch.set_num_threads(threads)
    embedder, tuned = load_embedder(), load_embedder(TUNED_EMBEDDER)
    texts = distillation_texts(root)
    variants = augmented_texts(texts, augment)
    log(
        f"{len(texts):,} train texts and {len(variants):,} variants; the teacher's logits "
        "(cached after the first run)"
    )
    originals = len(texts)
    texts += variants
    targets, teacher = teacher_logits(texts, log)
    rows = [r[:MAX_TOKENS] for r in embedder.token_ids(texts)]
    dev = load_goemotions_labels("dev", root)
    dev_rows = [r[:MAX_TOKENS] for r in embedder.token_ids([clean_text(t)[0] for t, _ in dev])]
    dev_labels = [set(ids) for _, ids in dev]
    net = _network(torch, tuned._table, width)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    probabilities = torch.sigmoid(torch.tensor(targets))
    generator = torch.Generator().manual_seed(SEED)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, Any] | None = None
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(rows), generator=generator).tolist()
        total = 0.0
        for b in range(0, len(order), BATCH):
            idx = order[b : b + BATCH]
            logits = net(*_batch(torch, [rows[i] for i in idx]))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, probabilities[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        aucs = _dev_aucs(_predict(torch, net, dev_rows), dev_labels)
        history.append({"epoch": epoch + 1, "loss": round(total / len(rows), 5), "dev_auc": aucs})
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(rows):.4f}, dev AUC {aucs}")
        mean = float(np.mean(list(aucs.values())))
        if best is None or mean > best[0]:
            best = (mean, epoch + 1, copy.deepcopy(net.state_dict()))
    seconds = time.perf_counter() - start
    assert best is not None
    net.load_state_dict(best[2])
    log(f"kept epoch {best[1]} (mean dev AUC {best[0]:.4f})")

    table, scale = int8_rows(net.table.weight.detach().numpy())
    weights = {
        "table": table,
        "table.scale": scale,
        "conv.weight": net.conv.weight.detach().numpy().astype(np.float32),
        "conv.bias": net.conv.bias.detach().numpy().astype(np.float32),
        "out.weight": net.out.weight.detach().numpy().astype(np.float32),
        "out.bias": net.out.bias.detach().numpy().astype(np.float32),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_card.json").unlink(missing_ok=True)  # a card from before would not match
    st.save_file(weights, str(out / WEIGHTS))
    sha = file_sha256(out / WEIGHTS)
    files = {
        str(p.relative_to(root)): file_sha256(p)
        for p in sorted(root.rglob("*train*"))
        if p.is_file()
    }
    card: dict[str, Any] = {
        "name": EMOTION_CNN,
        # a heads card's fusion names the model by this prefix, and the scorer then loads
        # detect/models/minilm-goemotions-cnn: copy an export there before training heads
        "version": f"{EMOTION_CNN}-{sha[:12]}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "vocabulary": embedder.name,
        "initial_vectors": tuned.version,
        "teacher": teacher,
        "method": "a convolution (3 word pieces wide, ReLU) over trained word-piece vectors; "
        "the max and mean of its outputs and the mean of the vectors; a linear layer to the "
        "28 GoEmotions labels; trained on the teacher's probabilities (binary "
        "cross-entropy). Table int8 with one float32 scale per row; the rest float32",
        "outputs": "one logit per GoEmotions label, in labels.txt order",
        "parameters": {
            "max_tokens": MAX_TOKENS,
            "width": width,
            "epochs": epochs,
            "augment": augment,
            "word_dropout": DROP,
            "batch_size": BATCH,
            "learning_rate": LEARNING_RATE,
            "optimizer": "Adam",
            "seed": SEED,
            "threads": threads,
        },
        "data": {"files": files, "texts": originals, "variants": len(variants)},
        "training": {"seconds": round(seconds, 1), "epochs": history, "kept_epoch": best[1]},
        "files": {WEIGHTS: sha},
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    # the export, read back by the runtime class, against torch
    check = dev_rows[:CHECK_TEXTS]
    ours = EmotionCNN(out, embedder).encode_ids(check)
    theirs = _predict(torch, net, check)
    diff = np.abs(ours - theirs)
    card["export_check"] = {
        "texts": len(check),
        "mean_abs_logit_difference": round(float(diff.mean()), 5),
        "max_abs_logit_difference": round(float(diff.max()), 5),
    }
    card["dev_auc"] = _dev_aucs(EmotionCNN(out, embedder).encode_ids(dev_rows), dev_labels)
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for name in (WEIGHTS, "model_card.json"):
        (out / name).chmod(0o644)
    return {"out": str(out), "version": card["version"], "check": card["export_check"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tactful.train.emotion_cnn",
        description="Distil the GoEmotions-tuned transformer into the default mode's emotion "
        "reader (offline; in the distillation environment, see tactful.train.distill).",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the model to")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TACTFUL_DATA", "../shared/data")),
        help="the labeled data folder (default: $TACTFUL_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--width", type=int, default=WIDTH, help=f"the convolution's outputs (default {WIDTH})"
    )
    parser.add_argument(
        "--epochs", type=int, default=EPOCHS, help=f"epochs; the best on dev is kept ({EPOCHS})"
    )
    parser.add_argument(
        "--augment",
        type=int,
        default=AUGMENT,
        help=f"variants of each train text for the teacher to read too (default {AUGMENT})",
    )
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"torch threads (default {THREADS})"
    )
    args = parser.parse_args(argv)
    try:
        summary = train(
            args.out,
            args.data,
            width=args.width,
            epochs=args.epochs,
            threads=args.threads,
            augment=args.augment,
        )
    except (MissingDependencyError, FileNotFoundError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

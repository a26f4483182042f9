"""Train the learned tier's heads on ../shared/data, reproducibly.

For each dimension with labeled data, a logistic-regression head over the shared
features (sentence embedding | lexical cue scores | bag of word pieces | character
n-grams; see detect/features.py), trained on the train splits of every benchmark task
that dimension answers, each task given a share of the weight whatever its size (so no
single corpus decides what "frustration" means): equal shares or one task's doubled,
and the regularisation, chosen on the dev splits by mean AUC across those tasks, then
Platt-calibrated on dev. Test splits are never read here.

What a head learns from is chosen on dev too. Where several people rated every example
(the USS dialogue turns, each rated by three to seven), the share of them who called a
turn dissatisfied is a softer label than their majority: a turn two of five people found
unsatisfying is not the same as one nobody did. On the raters' shares a head over the
embeddings and word pieces alone reached dev AUC .884 (SGD) and .806 (MultiWOZ) against
.877 and .792 on the majority labels, the best C of each. A head that learns from a
teacher (below) may also take the mean of the teacher's probability and the raters' share.
The reply and exchange heads may learn from the shares of the user turn that answers.

Frustration is a mixture of experts (``EXPERTS``): one such head per kind of text
(Reddit emotion, support complaints, task-oriented dialogue turns) and a multinomial
gate trained to tell the kinds apart; a message's frustration is the gate-weighted mean
of the experts' calibrated probabilities. One pooled head had to trade the corpora off
against each other (GoEmotions dev AUC .816 pooled vs .839 for a GoEmotions-only head).
Confusion is read through the same gate (``GATED``): Reddit-like text by a GoEmotions-only
expert, every other kind by the head that also learned from USS user turns.
A multinomial head predicts the topic from bitext intents and BANKING77 categories
mapped onto tactful's topics.

All heads are stacked into one matrix (features x columns) so scoring a message costs
one matrix product. The result is written with a model card: data files and their
SHA-256, parameters, seed, and each head's dev scores.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from tactful.detect.digest import file_sha256
from tactful.detect.embedder import StaticEmbedder
from tactful.detect.features import (
    CHAR_RANGE,
    TOKEN_SCALE,
    CharGrams,
    Embedder,
    exchange_dense,
    features,
    token_bag,
)
from tactful.detect.learned import SentenceEncoder, TextScorer, clean_text
from tactful.evaluation.tasks import TASKS, Example, Split, data_dir
from tactful.signals import DIMENSIONS, EMOTIONS

__all__ = [
    "BANKING_TOPICS",
    "BITEXT_TOPICS",
    "NEGATIVES",
    "TrainedHeads",
    "heads_digest",
    "planned_heads",
    "train_heads",
]

SEED = 20261123
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
GATE_C_GRID = (0.3, 3.0)
# The emotion heads (signals.EMOTIONS) answer one GoEmotions label each; they are read as
# labels (is this comment angry?), so their C is chosen on dev F1, from fewer values (each
# fit is on all 43,410 GoEmotions train comments).
EMOTION_C_GRID = (0.3, 1.0, 3.0)
EMOTION_SOURCE = "goemotions/frustration"  # the task whose texts the emotion heads read
# Experts that learn from a teacher (the transformer mode's same expert) when one is given:
# its calibrated probability on each train text is the target (the soft label), where the
# label alone says only yes or no. The full transformer reads these dialogue turns better
# than static embeddings can (its expert: USS-SGD dev AUC .886 against .875). Distilling
# the emotion expert too moved the mixture's dev AUCs by .001 at most: left out.
DISTILLED = ("frustration/dialogue",)
CHAR_FEATURES = 100_000  # character n-grams kept (those in the most train texts)

# Dimensions answered by a mixture of experts: one head per kind of text, since what
# frustration looks like in a Reddit comment, a support request and a task-oriented
# dialogue differs, and one pooled head had to trade them off (GoEmotions dev AUC .816
# pooled vs .839 alone).
EXPERTS: dict[str, dict[str, list[str]]] = {
    "frustration": {
        "emotion": ["goemotions/frustration"],
        "complaint": ["bitext/complaint"],
        "dialogue": ["uss-sgd/dissatisfied", "uss-mwoz/dissatisfied"],
    }
}

# Out-of-domain negatives: texts that, by what their corpus says of them, are not the
# dimension, pooled into a head's train and dev rows. Trained on bitext alone, wants_human
# learned that "address" or "phone number" means "get me a person" (bitext's agent
# requests mention them; its other intents rarely do): "What is the address?" scored 1.0
# and the default policy escalated half of the calm USS task dialogues. People asking a
# task bot for a restaurant's address (USS user turns) and banking customers' queries
# (none of BANKING77's 77 intents asks for a person) say otherwise. Confusion, trained on
# Reddit comments alone, read plain questions to a bot as confusion ("What else can you
# find?" 0.37). A text whose lexical cues already show the dimension (help-seeking words,
# "what do you mean") is left out of its negatives: those are the corpora's unlabeled
# positives, not evidence against.
NEGATIVES: dict[str, tuple[str, ...]] = {
    "wants_human": ("uss-user-turns", "banking77-queries"),
    "confusion": ("uss-user-turns",),
}

# Dimensions read through another mixture's gate (which kind of text a message is), with
# an expert per kind. Confusion's negatives taught it that a plain question to a task bot
# is not confusion, and cost it on Reddit comments, where a question often is ("What do
# you mean?"): its "emotion" expert learns from GoEmotions alone, and every other kind of
# text keeps the head that learned from the negatives ("support"). Kept only if the
# mixture's dev AUC (the negatives' dev rows pooled in) beats that one head's.
GATED: dict[str, tuple[str, dict[str, str]]] = {
    "confusion": ("frustration", {"emotion": "emotion"}),
}

BITEXT_TOPICS: dict[str, str] = {
    "payment_issue": "billing",
    "check_invoices": "billing",
    "get_invoice": "billing",
    "check_payment_methods": "billing",
    "get_refund": "refund",
    "track_refund": "refund",
    "check_refund_policy": "refund",
    "recover_password": "account_access",
    "registration_problems": "account_access",
    "edit_account": "account_access",
    "switch_account": "account_access",
    "create_account": "account_access",
    "delete_account": "cancellation",
    "check_cancellation_fee": "cancellation",
}
BANKING_TOPICS: dict[str, str] = {
    **dict.fromkeys(
        [
            "card_payment_fee_charged",
            "extra_charge_on_statement",
            "transaction_charged_twice",
            "card_payment_wrong_exchange_rate",
            "direct_debit_payment_not_recognised",
            "card_payment_not_recognised",
            "declined_card_payment",
            "pending_card_payment",
            "exchange_charge",
            "transfer_fee_charged",
            "top_up_by_card_charge",
            "cash_withdrawal_charge",
            "top_up_by_bank_transfer_charge",
            "wrong_amount_of_cash_received",
            "cash_withdrawal_not_recognised",
        ],
        "billing",
    ),
    **dict.fromkeys(
        ["request_refund", "Refund_not_showing_up", "reverted_card_payment?"], "refund"
    ),
    **dict.fromkeys(
        [
            "passcode_forgotten",
            "pin_blocked",
            "change_pin",
            "verify_my_identity",
            "unable_to_verify_identity",
            "why_verify_identity",
            "edit_personal_details",
            "lost_or_stolen_phone",
        ],
        "account_access",
    ),
    **dict.fromkeys(
        [
            "card_not_working",
            "contactless_not_working",
            "virtual_card_not_working",
            "apple_pay_or_google_pay",
            "top_up_failed",
            "failed_transfer",
            "declined_transfer",
            "card_swallowed",
            "balance_not_updated_after_bank_transfer",
            "balance_not_updated_after_cheque_or_cash_deposit",
        ],
        "technical",
    ),
    "terminate_account": "cancellation",
}
# Topics the data can teach; the sales topics come from the lexical tier only.
LEARNED_TOPICS = ("billing", "refund", "account_access", "technical", "cancellation", "other")

Log = Callable[[str], None]


@dataclass
class TrainedHeads:
    """Linear heads over [dense features | bag of word pieces], split for fast scoring."""

    dimensions: list[str]  # the columns: a dimension, an expert or a gate
    dense: NDArray[np.float32]  # dense features x columns
    tokens: NDArray[np.float32]  # vocabulary x dimensions
    bias: NDArray[np.float32]  # dimensions
    topics: list[str]
    topic_dense: NDArray[np.float32]
    topic_tokens: NDArray[np.float32]
    topic_bias: NDArray[np.float32]
    card: dict[str, Any] = field(default_factory=dict)
    chars: CharGrams | None = None  # the character n-grams and their weights
    char_weights: NDArray[np.float32] | None = None  # n-grams x columns
    topic_chars: NDArray[np.float32] | None = None
    # the exchange head: [message | reply | product] weights, each side's word pieces
    exchange_dense: NDArray[np.float32] | None = None
    exchange_message: NDArray[np.float32] | None = None
    exchange_reply: NDArray[np.float32] | None = None
    exchange_bias: float = 0.0
    # fusion with an emotion model's label logits (fuse_emotions): per column a
    # scale of its own logit, weights over the labels' logits (labels x columns), a shift
    fusion_scale: NDArray[np.float32] | None = None
    fusion_weights: NDArray[np.float32] | None = None
    fusion_shift: NDArray[np.float32] | None = None

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {}
        if self.chars is not None:
            assert self.char_weights is not None and self.topic_chars is not None
            extra = {
                "char_grams": np.array(self.chars.grams),
                "char_idf": self.chars.idf,
                "chars": self.char_weights.astype(np.float16),
                "topic_chars": self.topic_chars.astype(np.float16),
            }
        if self.exchange_dense is not None:
            assert self.exchange_message is not None and self.exchange_reply is not None
            extra |= {
                "exchange_dense": self.exchange_dense,
                "exchange_tokens": np.stack(
                    [self.exchange_message, self.exchange_reply], axis=1
                ).astype(np.float16),
                "exchange_bias": np.float32(self.exchange_bias),
            }
        if self.fusion_scale is not None:
            extra |= {
                "fusion_scale": self.fusion_scale,
                "fusion_weights": self.fusion_weights,
                "fusion_shift": self.fusion_shift,
            }
        np.savez_compressed(
            path / "heads.npz",
            dense=self.dense,
            tokens=self.tokens.astype(np.float16),
            bias=self.bias,
            topic_dense=self.topic_dense,
            topic_tokens=self.topic_tokens.astype(np.float16),
            topic_bias=self.topic_bias,
            **extra,
        )
        # The version names the weights, so two trainings on one day differ in it (and a
        # decision's detector version says which weights scored it).
        day = datetime.fromisoformat(self.card["created"])
        self.card["version"] = f"heads-{day:%Y%m%d}-{heads_digest(path / 'heads.npz')[:8]}"
        (path / "model_card.json").write_text(json.dumps(self.card, indent=2) + "\n")


def heads_digest(path: Path) -> str:
    """SHA-256 over the arrays in a heads.npz (name, dtype, shape and bytes, in name
    order): the file itself carries the zip's timestamps, the arrays only the weights."""
    digest = hashlib.sha256()
    with np.load(path) as arrays:
        for name in sorted(arrays.files):
            array = np.ascontiguousarray(arrays[name])
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def _auc(y: NDArray[np.int_], s: NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _topic_examples(root: Path, split: Split) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    with (root / "bitext" / f"{split}.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            texts.append(row["utterance"])
            labels.append(BITEXT_TOPICS.get(row["intent"], "other"))
    from tactful.evaluation.tasks import _banking_rows

    for text, category in _banking_rows(root, split):
        texts.append(text)
        labels.append(BANKING_TOPICS.get(category, "other"))
    return texts, labels


def _negative_texts(name: str, dimension: str, root: Path, split: Split) -> list[str]:
    """One out-of-domain negative set's texts (see NEGATIVES), without those whose
    lexical cues show ``dimension``."""
    from tactful.detect.text import score_text
    from tactful.evaluation.tasks import USS_CORPORA, _banking_rows

    texts: list[str] = []
    if name == "uss-user-turns":
        for prefix in USS_CORPORA.values():
            with (root / "uss" / f"{prefix}.{split}.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    texts += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "USER"]
    elif name == "banking77-queries":
        texts = [text for text, _ in _banking_rows(root, split)]
    else:
        raise ValueError(f"unknown negative set {name!r}")
    unique = dict.fromkeys(t for t in texts if t.strip())
    return [t for t in unique if score_text(t).scores[dimension] == 0.0]


REPLIES = "replies:uss"  # the reply head's training set (see _reply_examples)
EXCHANGES = "exchanges:uss"  # the exchange head's training set (see _exchange_examples)


class _Answered(NamedTuple):
    """A USS system turn and the rated user turn answering it."""

    reply: str
    message: str
    label: int  # the user turn is dissatisfied: majority rating <= 2
    share: float  # the share of its raters who rated it 1 or 2


def _answered_turns(root: Path, split: Split) -> Iterator[_Answered]:
    """Every USS system turn followed by a rated user turn."""
    from tactful.evaluation.tasks import USS_CORPORA, rated_dissatisfied

    for prefix in USS_CORPORA.values():
        with (root / "uss" / f"{prefix}.{split}.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                turns = json.loads(line)["turns"]
                for turn, nxt in itertools.pairwise(turns):
                    if turn["role"] == "SYSTEM" and nxt["role"] == "USER" and nxt.get("ratings"):
                        label, share = rated_dissatisfied(nxt["ratings"])
                        yield _Answered(turn["text"], nxt["text"], label, share)


def _reply_rows(root: Path, split: Split) -> list[_Answered]:
    """The reply head's rows: turns followed by no rated user turn are left out."""
    return [r for r in _answered_turns(root, split) if r.reply.strip()]


def _exchange_rows(root: Path, split: Split) -> list[_Answered]:
    """The exchange head's rows: both sides have text."""
    return [r for r in _answered_turns(root, split) if r.reply.strip() and r.message.strip()]


def _reply_examples(root: Path, split: Split) -> tuple[list[str], list[int]]:
    """USS system turns, each labeled by whether the user's next turn is dissatisfied;
    turns followed by no rated user turn are left out."""
    rows = _reply_rows(root, split)
    return [r.reply for r in rows], [r.label for r in rows]


def _exchange_examples(root: Path, split: Split) -> tuple[list[str], list[str], list[int]]:
    """USS rated user turns that answer a system turn: (the system turn, the user turn,
    whether the user turn is dissatisfied)."""
    rows = _exchange_rows(root, split)
    return [r.reply for r in rows], [r.message for r in rows], [r.label for r in rows]


def _best_f1(y: NDArray[np.int_], s: NDArray[np.float64]) -> float:
    """The best F1 over every threshold on ``s``."""
    from sklearn.metrics import precision_recall_curve

    if not 0 < y.sum() < len(y):
        return float("nan")
    precision, recall, _ = precision_recall_curve(y, s)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def _emotion_labels(root: Path, emotion: str, split: Split) -> NDArray[np.int_]:
    """1 where a GoEmotions comment carries ``emotion``, in file order (the order of
    EMOTION_SOURCE's examples)."""
    from tactful.evaluation.text import load_goemotions_labels

    names = (root / "goemotions" / "labels.txt").read_text(encoding="utf-8").split()
    if emotion not in names:
        raise ValueError(f"goemotions/labels.txt has no label {emotion!r}")
    label = names.index(emotion)
    return np.array([label in ids for _, ids in load_goemotions_labels(split, root)], np.int_)


# Columns fused with an emotion model's logits for these labels (GoEmotions label ids): the
# transformer mode's tuned transformer (detect/transformer.EmotionClassifier), the default
# mode's emotion CNN (detect/emotion_cnn.py; STATIC_FUSED below). Each column's target on
# GoEmotions dev is "any of these labels", as the column learned it.
FUSED: dict[str, tuple[int, ...]] = {
    "frustration/emotion": (2, 3, 9, 10),  # anger, annoyance, disappointment, disapproval
    "confusion/emotion": (6,),
    "gratitude": (15,),
    "emotion:anger": (2,),
    "emotion:annoyance": (3,),
    "emotion:disappointment": (9,),
    "emotion:disapproval": (10,),
}
# The default heads' fusion (with the emotion CNN) leaves the frustration emotion expert
# alone. Fused on GoEmotions dev (frustration has no out-of-domain negatives to pool in)
# its dev AUC rose from 0.852 to 0.869, but it learned Reddit's base rate and read support
# exasperation lower ("This is the third time, still broken!!" 0.365 to 0.311; the gate
# sends such text to it), which changed two gold-set journeys' decisions (2026-11-24).
STATIC_FUSED = tuple(c for c in FUSED if c != "frustration/emotion")
FUSION_FOLDS = 5
# A column is fused only if its out-of-fold dev AUC gains at least this much: a label
# logit that carries nothing can still move it by a few ten-thousandths either way.
FUSION_MARGIN = 0.002


def fuse_emotions(
    heads: TrainedHeads,
    scorer: TextScorer,
    classifier: SentenceEncoder,
    root: Path | None = None,
    log: Log = print,
    columns: Sequence[str] = tuple(FUSED),
) -> dict[str, Any]:
    """Fuse each of ``columns`` (FUSED columns of ``heads``; ``scorer`` reads them,
    unfused) with ``classifier``'s logits for its labels: a logistic regression on
    GoEmotions dev over [the column's logit, the labels' logits], which also recalibrates
    the column. Where the column's dimension has out-of-domain negatives (NEGATIVES), their
    dev rows are pooled into the fit (the dimension's other heads train on them; the
    GoEmotions-only experts of GATED do not, but the gate sends support text to them
    too): GoEmotions labels a plain question "confusion" often enough that, fitted on
    GoEmotions alone, the default mode's confusion read "How do I get a refund for the
    annual plan?" at 0.49 (0.21 unfused; 0.26 with the negatives). It is kept where its
    GoEmotions dev AUC, out of fold (FUSION_FOLDS folds), beats the column's own by
    FUSION_MARGIN (the negatives' rows do not vote: pooled in, the default confusion
    expert's AUC was 0.8791 fused against 0.8795 alone); elsewhere the column stays as
    it is. Sets the heads' fusion arrays and card; returns the card's
    record.

    Measured on 2026-11-24 (transformer heads, 5x5-fold dev F1 at the fold's threshold):
    this stacking .514 / .408 / .315 / .442 (anger, annoyance, disappointment, confusion)
    against .452 / .380 / .283 / .387 for the heads alone, and above averaging the two
    probabilities with a weight chosen on dev F1 (.486 / .401 / .307 / .439) or stacking
    over all 28 logits (.513 / .399 / .296 / .443)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from tactful.evaluation.text import GOEMOTIONS_LABEL_COUNT, load_goemotions_labels

    root = data_dir(root)
    if scorer.columns != heads.dimensions:
        raise ValueError("the scorer does not read these heads' columns")
    unknown = [c for c in columns if c not in FUSED]
    if unknown:
        raise ValueError(f"no GoEmotions labels for {', '.join(unknown)}; fusable: {list(FUSED)}")
    rows = load_goemotions_labels("dev", root)
    texts = [text for text, _ in rows]
    log(f"fusion: {len(texts):,} GoEmotions dev texts through {classifier.name}")

    def read(texts: list[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The heads' own logits (never a fusion already there), and the model's on the
        text as the scorer reads it."""
        own = scorer.column_logits(texts, [() for _ in texts], fuse=False)
        tuned = classifier.encode([clean_text(t)[0] for t in texts])
        return own.astype(np.float64), tuned.astype(np.float64)

    own, tuned = read(texts)
    negatives: dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    scale = np.ones(len(heads.dimensions), np.float32)
    weights = np.zeros((GOEMOTIONS_LABEL_COUNT, len(heads.dimensions)), np.float32)
    shift = np.zeros(len(heads.dimensions), np.float32)
    record: dict[str, Any] = {}
    for column in columns:
        labels = FUSED[column]
        if column not in heads.dimensions:
            continue
        j = heads.dimensions.index(column)
        y = np.array([any(label in ids for label in labels) for _, ids in rows], np.int_)
        x = np.column_stack([own[:, j], tuned[:, list(labels)]])
        dimension = column.split("/")[0]
        pooled = NEGATIVES.get(dimension, ())
        for name in pooled:  # a set's texts depend on the dimension (its cues leave some out)
            if (name, dimension) not in negatives:
                negatives[name, dimension] = read(_negative_texts(name, dimension, root, "dev"))
            n_own, n_tuned = negatives[name, dimension]
            x = np.vstack([x, np.column_stack([n_own[:, j], n_tuned[:, list(labels)]])])
            y = np.concatenate([y, np.zeros(len(n_own), np.int_)])
        n_go = len(rows)  # the AUCs that decide are GoEmotions' own rows'
        positives = int(y[:n_go].sum())
        if min(positives, n_go - positives) < FUSION_FOLDS:  # no out-of-fold AUC to go by
            record[column] = {"labels": list(labels), "dev_positives": positives, "fused": False}
            log(f"  {column}: {positives} dev positives of {n_go}: left alone")
            continue
        out_of_fold = np.zeros(len(y))
        folds = StratifiedKFold(FUSION_FOLDS, shuffle=True, random_state=SEED)
        for fit_rows, held in folds.split(x, y):
            lr = LogisticRegression(C=100.0, max_iter=1000).fit(x[fit_rows], y[fit_rows])
            out_of_fold[held] = lr.decision_function(x[held])
        alone, fused = _auc(y[:n_go], own[:, j]), _auc(y[:n_go], out_of_fold[:n_go])
        helps = fused >= alone + FUSION_MARGIN
        entry: dict[str, Any] = {
            "labels": list(labels),
            "dev_auc": round(alone, 4),
            "dev_auc_fused_out_of_fold": round(fused, 4),
            **(
                {"negatives_pooled": {n: len(negatives[n, dimension][0]) for n in pooled}}
                if pooled
                else {}
            ),
            "fused": helps,
        }
        if helps:
            lr = LogisticRegression(C=100.0, max_iter=1000).fit(x, y)
            scale[j] = lr.coef_[0, 0]
            weights[list(labels), j] = lr.coef_[0, 1:]
            shift[j] = lr.intercept_[0]
            entry["weights"] = [round(float(w), 4) for w in lr.coef_[0]]
            entry["bias"] = round(float(lr.intercept_[0]), 4)
        record[column] = entry
        log(
            f"  {column}: dev AUC {alone:.4f} alone, {fused:.4f} fused (out of fold)"
            + ("" if helps else ": left alone")
        )
    heads.fusion_scale, heads.fusion_weights, heads.fusion_shift = scale, weights, shift
    heads.card["fusion"] = {
        "model": classifier.name,
        "method": "logistic regression on GoEmotions dev (and the dimension's out-of-domain "
        "negatives' dev rows) over [the column's logit, the model's logits for the "
        "column's labels]; kept where its out-of-fold GoEmotions dev AUC beats the "
        f"column's by {FUSION_MARGIN}",
        "columns": record,
    }
    return record


def planned_heads() -> list[str]:
    """The heads train_heads fits, in the order it fits them (what a progress bar counts;
    train_heads reports each through ``step`` as it starts it)."""
    plan: list[str] = []
    for dim in DIMENSIONS:
        if not any(t.dimension == dim for t in TASKS.values()):
            continue
        families = EXPERTS.get(dim)
        plan += [f"{dim}/{f}" for f in families] + [f"{dim} gate"] if families else [dim]
        if dim in GATED:
            plan += [f"{dim}/{kind}" for kind in dict.fromkeys(GATED[dim][1].values())]
    return [*plan, "reply_risk", "exchange", *(f"emotion:{e}" for e in EMOTIONS), "topic"]


def _mixes(n: int) -> list[tuple[float, ...]]:
    """Task weightings to choose from on dev: all equal, or one task counting double
    (corpora differ in how hard and how far from support conversations they are)."""
    equal = (1.0,) * n
    if n == 1:
        return [equal]
    return [equal] + [tuple(2.0 if i == j else 1.0 for i in range(n)) for j in range(n)]


def train_heads(
    embedder: Embedder,
    embedder_name: str,
    root: Path | None = None,
    log: Log = print,
    encoder: SentenceEncoder | None = None,
    teacher: TextScorer | None = None,
    step: Callable[[str], None] = lambda head: None,
    tuned: StaticEmbedder | None = None,
) -> TrainedHeads:
    """``encoder``: where the embedding features come from when not ``embedder`` (the
    full transformer, through an embedding cache); the bag of word pieces is always
    ``embedder``'s. ``teacher``: a scorer whose DISTILLED experts the same experts here
    learn from (soft labels on the train texts); without one they learn from labels.
    ``step``: called with each head's name (as in planned_heads) as its fitting starts.
    ``tuned``: emotion-tuned vectors of ``embedder``'s word pieces, read beside the
    embedding (the card names them, and the scorer loads them)."""
    from sklearn.linear_model import LogisticRegression

    root = data_dir(root)
    by_dimension: dict[str, list[str]] = {}
    for task in TASKS.values():
        by_dimension.setdefault(task.dimension, []).append(task.name)

    log("character n-grams: vocabulary from every task's train texts")
    train_texts = list(
        dict.fromkeys(e.text for task in TASKS.values() for e in task.load("train", root))
    )
    chars = CharGrams.fit(train_texts, max_features=CHAR_FEATURES)
    log(f"  {len(chars):,} n-grams from {len(train_texts):,} texts")

    cache: dict[tuple[str, Split], tuple[Any, NDArray[np.int_]]] = {}

    def embed(texts: list[str]) -> NDArray[np.float32]:
        """The embedding features, as TextScorer._embed builds them."""
        base = encoder.encode(texts) if encoder is not None else embedder.encode(texts)
        return base if tuned is None else np.hstack([base, tuned.encode(texts)])

    def matrix(texts: list[str], histories: list[tuple[str, ...]]) -> Any:
        dense = features(embedder, texts, histories, embeddings=embed(texts))
        blocks = [sparse.csr_matrix(dense), token_bag(embedder, texts), chars.matrix(texts)]
        return sparse.hstack(blocks).tocsr()

    def load(task_name: str, split: Split) -> tuple[Any, NDArray[np.int_]]:
        key = (task_name, split)
        if key not in cache and task_name == REPLIES:
            texts, labels = _reply_examples(root, split)
            cache[key] = (matrix(texts, [() for _ in texts]), np.array(labels, dtype=np.int_))
            log(f"  features {task_name}/{split}: {len(texts)} replies")
        if key not in cache and task_name == EXCHANGES:
            replies, messages, labels = _exchange_examples(root, split)
            m_emb, r_emb = embed(messages), embed(replies)
            blocks = [
                sparse.csr_matrix(exchange_dense(m_emb, r_emb)),
                token_bag(embedder, messages),
                token_bag(embedder, replies),
            ]
            cache[key] = (sparse.hstack(blocks).tocsr(), np.array(labels, dtype=np.int_))
            log(f"  features {task_name}/{split}: {len(labels)} (reply, message) pairs")
        if key not in cache and task_name.startswith("emotion:"):
            x = load(EMOTION_SOURCE, split)[0]
            y = _emotion_labels(root, task_name.split(":")[1], split)
            if len(y) != x.shape[0]:
                raise ValueError(f"{task_name}/{split}: {len(y)} labels for {x.shape[0]} texts")
            cache[key] = (x, y)
            log(f"  labels {task_name}/{split}: {int(y.sum())} of {len(y)}")
        if key not in cache and task_name.startswith("neg:"):
            _, dimension, name = task_name.split(":")
            texts = _negative_texts(name, dimension, root, split)
            cache[key] = (matrix(texts, [() for _ in texts]), np.zeros(len(texts), np.int_))
            log(f"  features {task_name}/{split}: {len(texts)} negatives")
        if key not in cache:
            examples: list[Example] = TASKS[task_name].load(split, root)
            x = matrix([e.text for e in examples], [e.history for e in examples])
            y = np.array([e.label for e in examples], dtype=np.int_)
            cache[key] = (x, y)
            log(f"  features {task_name}/{split}: {x.shape[0]} x {x.shape[1]}")
        return cache[key]

    def weighted(tasks: list[str], mix: tuple[float, ...]) -> tuple[Any, Any, Any]:
        """The tasks' train rows, each task's total weight its share of the mix."""
        x = sparse.vstack([load(name, "train")[0] for name in tasks]).tocsr()
        y = np.concatenate([load(name, "train")[1] for name in tasks])
        sizes = [len(load(name, "train")[1]) for name in tasks]
        w = np.concatenate([np.full(n, share / n) for n, share in zip(sizes, mix, strict=True)])
        return x, y, w * (len(y) / sum(mix))

    def dev_set(name: str, negatives: list[str]) -> tuple[Any, NDArray[np.int_]]:
        """A task's dev rows, with the out-of-domain negatives' dev rows pooled in."""
        if not negatives:
            return load(name, "dev")
        parts = [load(name, "dev"), *(load(n, "dev") for n in negatives)]
        x = sparse.vstack([p[0] for p in parts]).tocsr()
        return x, np.concatenate([p[1] for p in parts])

    soft_cache: dict[str, NDArray[np.float64]] = {}

    def soft_labels(task_name: str, column: str) -> NDArray[np.float64]:
        """The teacher's probability for ``column`` on the task's train texts."""
        assert teacher is not None
        if task_name not in soft_cache:
            examples = TASKS[task_name].load("train", root)
            soft_cache[task_name] = teacher.column_probabilities(
                [e.text for e in examples], [e.history for e in examples], column
            ).astype(np.float64)
        return soft_cache[task_name]

    share_cache: dict[str, NDArray[np.float64] | None] = {}

    def rater_shares(task_name: str) -> NDArray[np.float64] | None:
        """The share of raters who said yes, per train example, where every example of
        the task has one (the USS turns); None otherwise."""
        if task_name not in share_cache:
            shares: list[float | None] = [None]
            if task_name in TASKS:
                shares = [e.share for e in TASKS[task_name].load("train", root)]
            elif task_name in (REPLIES, EXCHANGES):  # the rated user turn's raters
                rows = (_reply_rows if task_name == REPLIES else _exchange_rows)(root, "train")
                shares = [r.share for r in rows]
            share_cache[task_name] = (
                None if any(v is None for v in shares) else np.array(shares, dtype=np.float64)
            )
        return share_cache[task_name]

    def label_sources(tasks: list[str], distil: bool) -> list[str]:
        """What a head may learn from, each tried on dev: the labels (or, ``distil``, the
        teacher's probabilities), and where several people rated every example, the share
        of them who said yes (alone, and averaged with the teacher's)."""
        sources = ["teacher" if distil else "labels"]
        if all(rater_shares(t) is not None for t in tasks):
            sources += ["raters", "teacher+raters"] if distil else ["raters"]
        return sources

    def targets(source: str, tasks: list[str], column: str) -> NDArray[np.float64] | None:
        """The soft labels for ``source`` over the tasks' train rows (None: the labels)."""
        if source == "labels":
            return None
        parts: list[NDArray[np.float64]] = []
        for t in tasks:
            raters = rater_shares(t)
            if source == "teacher":
                parts.append(soft_labels(t, column))
            elif source == "raters" and raters is not None:
                parts.append(raters)
            elif source == "teacher+raters" and raters is not None:
                parts.append((soft_labels(t, column) + raters) / 2)
            else:
                raise ValueError(f"{column}: no {source} labels for {t}")
        return np.concatenate(parts)

    def fit_head(
        label: str,
        tasks: list[str],
        negatives: list[str] | None = None,
        select: str = "auc",
        c_grid: tuple[float, ...] = C_GRID,
        distil: bool = False,
    ) -> tuple[NDArray[np.float32], float, dict[str, Any]]:
        """A calibrated head over the tasks: mix and C chosen on dev (by mean AUC, or
        with ``select="f1"`` by mean best F1), Platt on dev.
        ``negatives``: out-of-domain negative sets, trained on as one more task (its own
        share of the weight) and pooled into every task's dev rows, so choices and
        calibration see them too."""
        negatives = negatives or []
        step(label)
        metric = _best_f1 if select == "f1" else _auc
        best: tuple[float, float, tuple[float, ...], str, Any] | None = None
        sources = label_sources(tasks, distil)
        for source, mix in itertools.product(sources, _mixes(len(tasks))):
            x_train, y_train, w_train = weighted(
                [*tasks, *negatives], (*mix, *(1.0,) * len(negatives))
            )
            balance: str | None = "balanced"
            p = targets(source, tasks, label)
            if p is not None:
                # Soft labels: each row once as a positive weighted by its probability
                # and once as a negative weighted by the rest, the two sides' totals
                # balanced as class_weight="balanced" balances hard labels.
                pos, neg = w_train * p, w_train * (1.0 - p)
                total = w_train.sum()
                x_train = sparse.vstack([x_train, x_train]).tocsr()
                y_train = np.r_[np.ones(len(p), np.int_), np.zeros(len(p), np.int_)]
                w_train = np.r_[pos * total / (2 * pos.sum()), neg * total / (2 * neg.sum())]
                balance = None
            for c in c_grid:
                model = LogisticRegression(
                    C=c, class_weight=balance, max_iter=3000, random_state=SEED
                )
                model.fit(x_train, y_train, sample_weight=w_train)
                aucs = {}
                for name in tasks:
                    x_dev, y_dev = dev_set(name, negatives)
                    aucs[name] = metric(y_dev, model.decision_function(x_dev))
                mean = float(np.nanmean(list(aucs.values())))
                log(
                    f"{label}: {source} mix={mix} C={c} dev {select.upper()} "
                    + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
                )
                if best is None or mean > best[0]:
                    best = (mean, c, mix, source, (model, aucs))
        assert best is not None
        mean, c, mix, source, (model, aucs) = best
        # Calibrate on dev (Platt): class weighting shifts the raw probabilities, so a
        # one-feature logistic fit on the head's logit maps them back to frequencies.
        dev_parts = [load(name, "dev") for name in [*tasks, *negatives]]
        dev_x = sparse.vstack([p[0] for p in dev_parts]).tocsr()
        dev_y = np.concatenate([p[1] for p in dev_parts])
        dev_logit = model.decision_function(dev_x).reshape(-1, 1)
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(dev_logit, dev_y)
        a, s = float(platt.coef_[0][0]), float(platt.intercept_[0])
        log(f"{label}: chose {source}, C={c}, mix {mix} (mean dev {select.upper()} {mean:.3f})")
        info = {
            "C": c,
            "task_mix": dict(zip(tasks, mix, strict=True)),
            **({"learned_from": source} if len(sources) > 1 else {}),
            **(
                {"distilled_from": teacher.version}
                if "teacher" in source and teacher is not None
                else {}
            ),
            **(
                {
                    "negatives": {
                        n.split(":")[2]: {
                            "train": len(load(n, "train")[1]),
                            "dev": len(load(n, "dev")[1]),
                        }
                        for n in negatives
                    },
                    "dev_auc_with": "each task's dev rows pooled with the negatives' dev rows",
                }
                if negatives
                else {}
            ),
            f"dev_{select}": {k: round(v, 4) for k, v in aucs.items()},
            f"dev_{select}_mean": round(mean, 4),
            "platt": [round(a, 4), round(s, 4)],
        }
        return (model.coef_[0] * a).astype(np.float32), float(model.intercept_[0] * a + s), info

    n_dense = len(features(embedder, ["x"], [()], embeddings=embed(["x"]))[0])
    n_tokens = embedder.vocabulary_size
    columns: list[str] = []
    weights: list[NDArray[np.float32]] = []
    biases: list[float] = []
    dev_scores: dict[str, dict[str, Any]] = {}
    mixtures: dict[str, dict[str, list[str]]] = {}
    dims: list[str] = []

    def gated_experts(
        dim: str,
        tasks: list[str],
        negatives: list[str],
        head_w: NDArray[np.float32],
        head_b: float,
        info: dict[str, Any],
    ) -> dict[str, Any] | None:
        """A dimension in GATED read through its gate's mixture: its experts' columns and
        the mixture added, and the card's entry returned; None (nothing added) when the
        gate is not trained or the mixture does not beat the one head on dev."""
        if dim not in GATED or GATED[dim][0] not in mixtures:
            return None
        gate_dim, own = GATED[dim]
        gates = mixtures[gate_dim]["gates"]
        kinds = [g.split("/", 1)[1] for g in gates]
        experts: dict[str, tuple[NDArray[np.float32], float, dict[str, Any]]] = {}
        for kind in dict.fromkeys(own.values()):
            # one corpus's label, as the emotion heads are: their grid of C
            experts[kind] = fit_head(f"{dim}/{kind}", tasks, c_grid=EMOTION_C_GRID)
        experts["support"] = (head_w, head_b, info)
        reads = [own.get(k, "support") for k in kinds]
        at = {c: j for j, c in enumerate(columns)}
        gate_w = np.stack([weights[at[g]] for g in gates], axis=1)
        gate_b = np.array([biases[at[g]] for g in gates])
        aucs: dict[str, dict[str, float]] = {}
        for name in tasks:
            x_dev, y_dev = dev_set(name, negatives)
            g = x_dev @ gate_w + gate_b
            g = np.exp(g - g.max(axis=1, keepdims=True))
            g /= g.sum(axis=1, keepdims=True)
            p = {k: 1.0 / (1.0 + np.exp(-(x_dev @ w + b))) for k, (w, b, _) in experts.items()}
            mixed = np.sum([g[:, i] * p[r] for i, r in enumerate(reads)], axis=0)
            aucs[name] = {"mixture": _auc(y_dev, mixed), "support": _auc(y_dev, p["support"])}
        mixture = float(np.mean([a["mixture"] for a in aucs.values()]))
        alone = float(np.mean([a["support"] for a in aucs.values()]))
        log(f"{dim}: through the {gate_dim} gate, dev AUC {mixture:.4f} (one head {alone:.4f})")
        if mixture <= alone:
            return None
        for kind, (w, b, _) in experts.items():
            columns.append(f"{dim}/{kind}")
            weights.append(w)
            biases.append(b)
        mixtures[dim] = {"experts": [f"{dim}/{r}" for r in reads], "gates": list(gates)}
        return {
            "mixture_of_experts": {
                "experts": {k: e[2] for k, e in experts.items()},
                "gate": f"{gate_dim}'s",
                "reads": dict(zip(kinds, reads, strict=True)),
            },
            "dev_auc": {k: round(a["mixture"], 4) for k, a in aucs.items()},
            "dev_auc_one_head": {k: round(a["support"], 4) for k, a in aucs.items()},
            "dev_auc_with": "each task's dev rows pooled with the negatives' dev rows",
            "dev_auc_mean": round(mixture, 4),
        }

    for dim in DIMENSIONS:
        tasks = by_dimension.get(dim, [])
        if not tasks:
            log(f"{dim}: no labeled data; the lexical tier answers alone")
            continue
        dims.append(dim)
        families = EXPERTS.get(dim)
        if families is None:
            negatives = [f"neg:{dim}:{n}" for n in NEGATIVES.get(dim, ())]
            head_w, head_b, info = fit_head(dim, tasks, negatives)
            gated = gated_experts(dim, tasks, negatives, head_w, head_b, info)
            if gated is not None:
                dev_scores[dim] = gated
                continue
            columns.append(dim)
            weights.append(head_w)
            biases.append(head_b)
            dev_scores[dim] = info
            continue
        # A mixture of experts: one head per kind of text, and a gate that says which
        # kind a message resembles; the score is the gate-weighted mean of the experts'
        # calibrated probabilities.
        experts: dict[str, Any] = {}
        expert_columns: list[str] = []
        for family, family_tasks in families.items():
            column = f"{dim}/{family}"
            head_w, head_b, info = fit_head(
                column, family_tasks, distil=teacher is not None and column in DISTILLED
            )
            expert_columns.append(f"{dim}/{family}")
            columns.append(f"{dim}/{family}")
            weights.append(head_w)
            biases.append(head_b)
            experts[family] = info
        family_of = {t: f for f, ts in families.items() for t in ts}
        x_gate = sparse.vstack([load(t, "train")[0] for t in tasks]).tocsr()
        g_gate = np.concatenate([np.full(len(load(t, "train")[1]), family_of[t]) for t in tasks])
        # Each kind of text weighs the same, whatever its corpora's size.
        counts = {f: int((g_gate == f).sum()) for f in families}
        w_gate = np.array([len(g_gate) / (len(families) * counts[f]) for f in g_gate])
        best_gate: tuple[float, float, Any, dict[str, float]] | None = None
        step(f"{dim} gate")
        for c in GATE_C_GRID:
            gate = LogisticRegression(C=c, max_iter=3000, random_state=SEED)
            gate.fit(x_gate, g_gate, sample_weight=w_gate)
            order = [list(gate.classes_).index(f) for f in families]
            aucs = {}
            for t in tasks:
                x_dev, y_dev = load(t, "dev")
                g = gate.predict_proba(x_dev)[:, order]
                logits = x_dev @ np.stack(weights[-len(families) :], axis=1) + np.array(
                    biases[-len(families) :]
                )
                aucs[t] = _auc(y_dev, np.sum(g / (1.0 + np.exp(-logits)), axis=1))
            mean = float(np.nanmean(list(aucs.values())))
            log(
                f"{dim}: gate C={c} mixture dev AUC "
                + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
            )
            if best_gate is None or mean > best_gate[0]:
                best_gate = (mean, c, gate, aucs)
        assert best_gate is not None
        mean, c, gate, aucs = best_gate
        gate_columns = [f"gate:{dim}/{f}" for f in families]
        for f, col in zip(families, gate_columns, strict=True):
            k = list(gate.classes_).index(f)
            columns.append(col)
            weights.append(gate.coef_[k].astype(np.float32))
            biases.append(float(gate.intercept_[k]))
        mixtures[dim] = {"experts": expert_columns, "gates": gate_columns}
        dev_scores[dim] = {
            "mixture_of_experts": {
                "experts": {f: {"tasks": families[f], **experts[f]} for f in families},
                "gate_C": c,
            },
            "dev_auc": {k: round(v, 4) for k, v in aucs.items()},
            "dev_auc_mean": round(mean, 4),
        }
        log(f"{dim}: mixture of {len(families)} experts, gate C={c} (mean dev AUC {mean:.3f})")

    log("reply_risk: how likely a bot's reply leaves the user dissatisfied (USS system turns)")
    head_w, head_b, info = fit_head("reply_risk", [REPLIES])
    columns.append("reply_risk")
    weights.append(head_w)
    biases.append(head_b)
    replies = {"column": "reply_risk", **info}

    log("exchange: how likely a customer message is dissatisfied, read with the reply it answers")
    ex_w, ex_b, info = fit_head("exchange", [EXCHANGES])
    n_emb = n_dense - len(DIMENSIONS)
    ex_dense, ex_message, ex_reply = np.split(ex_w, [3 * n_emb, 3 * n_emb + n_tokens])
    exchange = {
        "features": "[message | reply | message * reply] embeddings, both word-piece bags",
        **info,
    }

    emotions: dict[str, dict[str, Any]] = {}
    for emotion in EMOTIONS:
        column = f"emotion:{emotion}"
        if any(len(set(load(column, split)[1].tolist())) < 2 for split in ("train", "dev")):
            log(f"{column}: its train or dev split lacks positives or negatives; no head")
            continue
        head_w, head_b, info = fit_head(column, [column], select="f1", c_grid=EMOTION_C_GRID)
        columns.append(column)
        weights.append(head_w)
        biases.append(head_b)
        emotions[emotion] = {"column": column, **info}

    w = np.stack(weights, axis=1)
    b = np.array(biases, dtype=np.float32)

    step("topic")
    log("topic: multinomial head on bitext intents and BANKING77 categories")
    topic_texts, topic_labels = _topic_examples(root, "train")
    topic_model = LogisticRegression(C=1.0, max_iter=3000, random_state=SEED)
    topic_model.fit(matrix(topic_texts, [() for _ in topic_texts]), topic_labels)
    dev_texts, dev_labels = _topic_examples(root, "dev")
    dev_pred = topic_model.predict(matrix(dev_texts, [() for _ in dev_texts]))
    topic_acc = float(np.mean(dev_pred == np.array(dev_labels)))
    log(f"topic: dev accuracy {topic_acc:.3f} over {len(dev_labels)} utterances")
    topics = [str(t) for t in topic_model.classes_]

    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in {".csv", ".tsv", ".jsonl"}
        and ".test." not in p.name
        and p.stem != "test"
    )
    card = {
        "name": "tactful-text-heads",
        "version": f"heads-{datetime.now(UTC):%Y%m%d}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "embedder": encoder.name if encoder is not None else embedder_name,
        "token_vocabulary": embedder_name,
        "static_embedder_version": getattr(embedder, "version", embedder_name),
        **(
            {"tuned_vectors": {"name": tuned.name, "version": tuned.version, "dim": tuned.dim}}
            if tuned is not None
            else {}
        ),
        "features": {
            "embedding": int(n_dense - len(DIMENSIONS)),
            "lexical": list(DIMENSIONS),
            "token_bag": {"vocabulary": int(n_tokens), "scale": TOKEN_SCALE},
            "char_ngrams": {"range": list(CHAR_RANGE), "vocabulary": len(chars)},
        },
        "dimensions": dims,
        "columns": columns,
        "mixtures": mixtures,
        # a column that reads replies, not a dimension; the conversation's weights are
        # added by train/conversation.py once these heads can score
        "replies": replies,
        # the kinds of frustration (signals.EMOTIONS), one GoEmotions label each
        "emotions": emotions,
        # the exchange head (its own features; train/conversation.py weighs it)
        "exchange": exchange,
        "lexical_only": [d for d in DIMENSIONS if d not in dims],
        "topics": topics,
        "training": {
            "method": "logistic regression, class_weight=balanced; task mix and C chosen on "
            "dev; Platt calibration on dev; frustration: a mixture of experts (one head per "
            "kind of text) with a multinomial gate, its C chosen on dev; wants_human and "
            "confusion also learn from out-of-domain negatives (USS user turns, BANKING77 "
            "queries) pooled into their train and dev rows; confusion is read through "
            "frustration's gate, Reddit-like text by a GoEmotions-only expert, where that "
            "beats the one head on dev; the emotion heads (anger, annoyance, "
            "disappointment, disapproval) are one GoEmotions label each, C chosen on dev F1",
            "C_grid": list(C_GRID),
            "gate_C_grid": list(GATE_C_GRID),
            "seed": SEED,
            "heads": dev_scores,
            "topic_dev_accuracy": round(topic_acc, 4),
        },
        "data": {str(p.relative_to(root)): file_sha256(p) for p in files},
        "environment": {"python": platform.python_version(), "numpy": np.__version__},
    }
    topic_w = topic_model.coef_.T.astype(np.float32)
    split = [n_dense, n_dense + n_tokens]
    dense, tokens, char_w = np.split(w, split)
    topic_dense, topic_tokens, topic_chars = np.split(topic_w, split)
    return TrainedHeads(
        columns,
        dense,
        tokens,
        b,
        topics,
        topic_dense,
        topic_tokens,
        topic_model.intercept_.astype(np.float32),
        card,
        chars=chars,
        char_weights=char_w,
        topic_chars=topic_chars,
        exchange_dense=ex_dense,
        exchange_message=ex_message,
        exchange_reply=ex_reply,
        exchange_bias=ex_b,
    )

"""Train the learned tier's heads on ../shared/data, reproducibly.

For each dimension with labeled data, one logistic-regression head over the shared
features (sentence embedding | lexical cue scores | context; see detect/features.py),
trained on the train splits of every benchmark task that dimension answers, each task
given a share of the weight whatever its size (so no single corpus decides what
"frustration" means): equal shares or one task's doubled, and the regularisation, chosen
on the dev splits by mean AUC across those tasks. Test splits are
never read here. A multinomial head predicts the topic from bitext intents and BANKING77
categories mapped onto tactful's topics.

The heads are stacked into one matrix (features x dimensions) so scoring a message costs
one matrix product. The result is written with a model card: data files and their
SHA-256, parameters, seed, and each head's dev scores.
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from tactful.detect.features import TOKEN_SCALE, Embedder, features, token_bag
from tactful.detect.learned import SentenceEncoder
from tactful.evaluation.tasks import TASKS, Example, Split, data_dir
from tactful.signals import DIMENSIONS

__all__ = ["BANKING_TOPICS", "BITEXT_TOPICS", "TrainedHeads", "train_heads"]

SEED = 20261123
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)

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

    dimensions: list[str]
    dense: NDArray[np.float32]  # dense features x dimensions
    tokens: NDArray[np.float32]  # vocabulary x dimensions
    bias: NDArray[np.float32]  # dimensions
    topics: list[str]
    topic_dense: NDArray[np.float32]
    topic_tokens: NDArray[np.float32]
    topic_bias: NDArray[np.float32]
    card: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path / "heads.npz",
            dense=self.dense,
            tokens=self.tokens.astype(np.float16),
            bias=self.bias,
            topic_dense=self.topic_dense,
            topic_tokens=self.topic_tokens.astype(np.float16),
            topic_bias=self.topic_bias,
        )
        (path / "model_card.json").write_text(json.dumps(self.card, indent=2) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
) -> TrainedHeads:
    """``encoder``: where the embedding features come from when not ``embedder`` (the
    full transformer, through an embedding cache); the bag of word pieces is always
    ``embedder``'s."""
    from sklearn.linear_model import LogisticRegression

    root = data_dir(root)
    by_dimension: dict[str, list[str]] = {}
    for task in TASKS.values():
        by_dimension.setdefault(task.dimension, []).append(task.name)

    cache: dict[tuple[str, Split], tuple[Any, NDArray[np.int_]]] = {}

    def matrix(texts: list[str], histories: list[tuple[str, ...]]) -> Any:
        emb = encoder.encode(texts) if encoder is not None else None
        dense = features(embedder, texts, histories, embeddings=emb)
        return sparse.hstack([sparse.csr_matrix(dense), token_bag(embedder, texts)]).tocsr()

    def load(task_name: str, split: Split) -> tuple[Any, NDArray[np.int_]]:
        key = (task_name, split)
        if key not in cache:
            examples: list[Example] = TASKS[task_name].load(split, root)
            x = matrix([e.text for e in examples], [e.history for e in examples])
            y = np.array([e.label for e in examples], dtype=np.int_)
            cache[key] = (x, y)
            log(f"  features {task_name}/{split}: {x.shape[0]} x {x.shape[1]}")
        return cache[key]

    probe = encoder.encode(["x"]) if encoder is not None else None
    n_dense = len(features(embedder, ["x"], [()], embeddings=probe)[0])
    n_features: int | None = None
    weights: dict[str, NDArray[np.float32]] = {}
    biases: dict[str, float] = {}
    dev_scores: dict[str, dict[str, Any]] = {}
    for dim in DIMENSIONS:
        tasks = by_dimension.get(dim, [])
        if not tasks:
            log(f"{dim}: no labeled data; the lexical tier answers alone")
            continue
        x_train = sparse.vstack([load(name, "train")[0] for name in tasks]).tocsr()
        y_train = np.concatenate([load(name, "train")[1] for name in tasks])
        sizes = [len(load(name, "train")[1]) for name in tasks]
        n_features = x_train.shape[1]
        best: tuple[float, float, tuple[float, ...], Any] | None = None
        for mix in _mixes(len(tasks)):
            # Each task's total weight is its share of the mix, whatever its size.
            w_train = np.concatenate(
                [np.full(n, share / n) for n, share in zip(sizes, mix, strict=True)]
            ) * (len(y_train) / sum(mix))
            for c in C_GRID:
                model = LogisticRegression(
                    C=c, class_weight="balanced", max_iter=3000, random_state=SEED
                )
                model.fit(x_train, y_train, sample_weight=w_train)
                aucs = {
                    name: _auc(load(name, "dev")[1], model.decision_function(load(name, "dev")[0]))
                    for name in tasks
                }
                mean = float(np.nanmean(list(aucs.values())))
                log(
                    f"{dim}: mix={mix} C={c} dev AUC "
                    + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items())
                )
                if best is None or mean > best[0]:
                    best = (mean, c, mix, (model, aucs))
        assert best is not None
        mean, c, mix, (model, aucs) = best
        # Calibrate on dev (Platt): class weighting shifts the raw probabilities, so a
        # one-feature logistic fit on the head's logit maps them back to frequencies.
        dev_x = sparse.vstack([load(name, "dev")[0] for name in tasks]).tocsr()
        dev_y = np.concatenate([load(name, "dev")[1] for name in tasks])
        dev_logit = model.decision_function(dev_x).reshape(-1, 1)
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(dev_logit, dev_y)
        a, s = float(platt.coef_[0][0]), float(platt.intercept_[0])
        weights[dim] = (model.coef_[0] * a).astype(np.float32)
        biases[dim] = float(model.intercept_[0] * a + s)
        dev_scores[dim] = {
            "C": c,
            "task_mix": dict(zip(tasks, mix, strict=True)),
            "dev_auc": {k: round(v, 4) for k, v in aucs.items()},
            "dev_auc_mean": round(mean, 4),
            "platt": [round(a, 4), round(s, 4)],
        }
        log(f"{dim}: chose C={c} (mean dev AUC {mean:.3f})")

    assert n_features is not None
    dims = list(weights)
    w = np.stack([weights[d] for d in dims], axis=1)
    b = np.array([biases[d] for d in dims], dtype=np.float32)

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
        "features": {
            "embedding": int(n_dense - len(DIMENSIONS)),
            "lexical": list(DIMENSIONS),
            "token_bag": {"vocabulary": int(n_features - n_dense), "scale": TOKEN_SCALE},
        },
        "dimensions": dims,
        "lexical_only": [d for d in DIMENSIONS if d not in dims],
        "topics": topics,
        "training": {
            "method": "logistic regression, class_weight=balanced; task mix and C chosen on dev",
            "C_grid": list(C_GRID),
            "seed": SEED,
            "heads": dev_scores,
            "topic_dev_accuracy": round(topic_acc, 4),
        },
        "data": {str(p.relative_to(root)): _sha256(p) for p in files},
        "environment": {"python": platform.python_version(), "numpy": np.__version__},
    }
    topic_w = topic_model.coef_.T.astype(np.float32)
    return TrainedHeads(
        dims,
        w[:n_dense],
        w[n_dense:],
        b,
        topics,
        topic_w[:n_dense],
        topic_w[n_dense:],
        topic_model.intercept_.astype(np.float32),
        card,
    )

"""Fit the conversation's weights (state/conversation.py) on the USS dev dialogues.

The heads it reads (the message's frustration, the reply head) are trained on the train
dialogues; what is fitted here is four numbers, how much the message, the reply it
answers and the conversation's earlier evidence each weigh, and a bias: a logistic
regression on the dev dialogues' rated user turns, with each turn's features computed
exactly as the engine computes them (the scorer's history is the customer's recent
messages; replies scored by the reply head; turns 20 seconds apart, as
``tactful eval conversations`` replays them). Test splits are never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tactful.detect.learned import TextScorer
from tactful.evaluation.conversations import CORPORA, START, TURN_GAP, load_dialogues
from tactful.state.conversation import DEFAULT_CONVERSATION, Conversation, ConversationModel
from tactful.state.customer import with_message

__all__ = ["conversation_features", "fit_conversation"]

SEED = 20261123


def conversation_features(
    scorer: TextScorer, root: Path, split: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(features, labels) for every rated user turn of both USS corpora's ``split``:
    (logit of the message's frustration, the reply term, the earlier evidence)."""
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    reading = DEFAULT_CONVERSATION  # the features do not depend on the weights
    for corpus in CORPORA:
        dialogues, _ = load_dialogues(corpus, split, root)  # type: ignore[arg-type]
        replies = [t.text for d in dialogues for t in d.turns if t.role == "SYSTEM"]
        risks = iter(scorer.score_replies(replies))
        texts: list[str] = []
        histories: list[tuple[str, ...]] = []
        for d in dialogues:
            recent: list[str] = []
            for t in d.turns:
                if t.role == "USER":
                    texts.append(t.text)
                    histories.append(tuple(recent))
                    recent = with_message(recent, t.text)
        frustration = iter(s.scores["frustration"] for s in scorer.score_batch(texts, histories))
        for d in dialogues:
            conv = Conversation()
            at = START
            for t in d.turns:
                if t.role == "SYSTEM":
                    conv = reading.replied(conv, at, next(risks))
                else:
                    f = next(frustration)
                    if t.dissatisfied is not None:
                        rows.append(reading.features(conv, at, f))
                        labels.append(int(t.dissatisfied))
                    conv = reading.read(conv, at, f)
                at += TURN_GAP
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.int_)


def fit_conversation(
    scorer: TextScorer, root: Path, version: str
) -> tuple[ConversationModel, dict[str, Any]]:
    """The weights, and what to put in the model card about them (dev AUC of the
    conversation's level against the message's frustration alone)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = conversation_features(scorer, root, "dev")
    model = LogisticRegression(C=1.0, max_iter=2000, random_state=SEED).fit(x, y)
    message, reply, memory = (float(v) for v in model.coef_[0])
    fitted = ConversationModel(
        version=version,
        message=message,
        reply=reply,
        memory=memory,
        bias=float(model.intercept_[0]),
        prior=DEFAULT_CONVERSATION.prior,
    )
    info = {
        "fitted_on": "USS SGD + MultiWOZ dev user turns (heads trained on train)",
        "turns": len(y),
        "dissatisfied": int(y.sum()),
        "dev_auc": round(float(roc_auc_score(y, model.decision_function(x))), 4),
        "dev_auc_message_alone": round(float(roc_auc_score(y, x[:, 0])), 4),
    }
    return fitted, info

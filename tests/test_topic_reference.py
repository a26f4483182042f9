"""The topic reference: which messages are far from the requests the topic head learned
from, and what the scorer does with the head's "other" for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tactful.detect.embedder import MODELS_DIR, load_embedder
from tactful.detect.learned import load_scorer
from tactful.detect.text import reports_problem
from tactful.detect.topic_reference import (
    CENTROIDS,
    TOPIC_REFERENCE,
    TopicReference,
    load_topic_reference,
)
from tactful.evaluation.tasks import DEFAULT_DATA_DIR

SHIPPED = MODELS_DIR / TOPIC_REFERENCE


@pytest.fixture(scope="module")
def scorer():
    return load_scorer()


def test_the_shipped_reference_says_a_banks_request_is_near_and_a_products_fault_far():
    reference = load_topic_reference()
    assert reference is not None
    embedder = load_embedder()
    assert reference.embedder == embedder.version
    near, far = embedder.encode(
        [
            "I tried to top up my card but it was declined",  # BANKING77's kind of request
            "Tickets from our contact form stopped coming in sometime Tuesday",
        ]
    )
    sims = reference.similarity(np.stack([near, far]))
    assert sims[0] >= reference.threshold > sims[1]
    assert reference.far(np.stack([near, far])).tolist() == [False, True]
    assert reference.similarity(np.zeros((0, embedder.dim), np.float32)).shape == (0,)


def test_a_far_message_reporting_a_problem_is_technical_not_other(scorer):
    """The head read each of these other, and no topic cue names them: none of what it
    learned."""
    faults = [
        "Call recordings from yesterday afternoon are missing in the queue history, the "
        "calls are listed but the play button is grey.",
        "hello, could you please tell me how to change the colours on the quiz page so it "
        "matches our school's branding? thanks a lot",
    ]
    for read in scorer.score_batch(faults):
        assert read.topic == "technical", read.topic_scores
        assert read.topic_scores["other"] == 0.0
    # what a software company's other holds stays other, far or not
    for text in (
        "Are you hiring backend engineers in Lisbon?",
        "How can I contact customer service?",
    ):
        assert scorer.score(text).topic == "other", text
    reference = load_topic_reference()
    assert reference is not None and scorer.version.endswith(reference.version)


def test_what_reports_a_problem():
    assert reports_problem("the calendar never shows my new appointments")
    assert reports_problem("how do I get the quiz page in our school colours?")
    assert not reports_problem("Feature request: let us pick the reminder time")  # other
    assert not reports_problem("I'd like to talk to someone, the export is broken")
    assert not reports_problem("My transfer is not showing up")  # money: the head's to read
    assert not reports_problem("Thanks, all sorted now!")


def test_a_reference_that_does_not_match_its_card_is_refused(tmp_path: Path):
    folder = tmp_path / TOPIC_REFERENCE
    shutil.copytree(SHIPPED, folder)
    with np.load(folder / CENTROIDS) as arrays:
        centroids = arrays["centroids"].copy()
    centroids[0] = -centroids[0]
    np.savez_compressed(folder / CENTROIDS, centroids=centroids)
    with pytest.raises(ValueError, match="does not match its card"):
        TopicReference(folder)
    (folder / "model_card.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"python -m tactful\.train\.topic_reference"):
        TopicReference(folder)


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="shared/data is not checked out")
def test_fitting_the_reference_again_gives_the_shipped_one(tmp_path: Path):
    from tactful.train.topic_reference import fit_topic_reference

    card = fit_topic_reference(tmp_path / "ref", DEFAULT_DATA_DIR, log=lambda _: None)
    shipped = json.loads((SHIPPED / "model_card.json").read_text(encoding="utf-8"))
    assert card["version"] == shipped["version"]
    assert card["threshold"] == shipped["threshold"]

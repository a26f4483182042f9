"""The benchmark tasks of ../shared/data/README.md, loaded the same way everywhere.

Every report of detection quality uses these definitions, so numbers stay comparable:
score = the named dimension's score for the text; metric = ROC AUC on the test split and
F1 at the threshold chosen on the dev split. BANKING77 ships no dev split: its dev examples
are the train rows whose md5 of the lower-cased text starts with "1" (the rule the data's
README uses for bitext and politeness), and those rows are left out of its train split.

Each example carries the customer's earlier messages (``history``, oldest first) where the
data has them: USS dialogues are scored turn by turn with the earlier user turns.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "AGREEMENT_RATERS",
    "DEFAULT_DATA_DIR",
    "TASKS",
    "USS_CORPORA",
    "DataError",
    "Example",
    "Split",
    "Task",
    "data_dir",
    "load_task",
]

Split = Literal["train", "dev", "test"]

# Where the labeled data sets live: $TACTFUL_DATA, else ../shared/data from the repo root.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"

GOEMOTIONS_FRUSTRATION = {2, 3, 9, 10}  # anger, annoyance, disappointment, disapproval
GOEMOTIONS_CONFUSION = {6}
GOEMOTIONS_GRATITUDE = {15}


class DataError(RuntimeError):
    """A data set that is missing or not in the expected format."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int
    history: tuple[str, ...] = ()
    # where several people rated the text: the share of them who said yes (USS: rated it
    # 1 or 2), the label's softer form; None where there is one label only
    share: float | None = None


@dataclass(frozen=True, slots=True)
class Task:
    name: str  # "goemotions/frustration"
    dimension: str  # the scorer's dimension that answers it
    loader: Callable[[Path, Split], Iterator[Example]]
    description: str

    def load(self, split: Split, root: Path | None = None) -> list[Example]:
        return load_task(self, split, root)


def data_dir(root: Path | None = None) -> Path:
    path = root or Path(os.environ.get("TACTFUL_DATA", DEFAULT_DATA_DIR))
    if not path.is_dir():
        raise DataError(
            f"labeled data not found at {path}; pass --data DIR or set TACTFUL_DATA "
            "(the folder with goemotions/, bitext/, banking77/, politeness/, uss/)"
        )
    return path


def _open(path: Path) -> Iterator[str]:
    if not path.exists():
        raise DataError(f"missing data file {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        yield from fh


def _md5_bucket(text: str) -> str:
    return hashlib.md5(text.lower().encode("utf-8")).hexdigest()[0]  # the data README's split rule


# --- GoEmotions -------------------------------------------------------------------------


def _goemotions(labels: set[int]) -> Callable[[Path, Split], Iterator[Example]]:
    def load(root: Path, split: Split) -> Iterator[Example]:
        for line in _open(root / "goemotions" / f"{split}.tsv"):
            text, ids, _ = line.rstrip("\n").split("\t")
            positive = bool(labels & {int(i) for i in ids.split(",") if i})
            yield Example(text, int(positive))

    return load


# --- Bitext -----------------------------------------------------------------------------


def _bitext_rows(root: Path, split: Split) -> Iterator[dict[str, str]]:
    path = root / "bitext" / f"{split}.csv"
    if not path.exists():
        raise DataError(f"missing data file {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _bitext(intents: set[str]) -> Callable[[Path, Split], Iterator[Example]]:
    def load(root: Path, split: Split) -> Iterator[Example]:
        for row in _bitext_rows(root, split):
            yield Example(row["utterance"], int(row["intent"] in intents))

    return load


# --- BANKING77 --------------------------------------------------------------------------


def _banking_rows(root: Path, split: Split) -> Iterator[tuple[str, str]]:
    source = "test" if split == "test" else "train"
    path = root / "banking77" / f"{source}.csv"
    if not path.exists():
        raise DataError(f"missing data file {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text, category = row["text"], row["category"]
            if split != "test" and (_md5_bucket(text) == "1") != (split == "dev"):
                continue
            yield text, category


def _banking(categories: set[str]) -> Callable[[Path, Split], Iterator[Example]]:
    def load(root: Path, split: Split) -> Iterator[Example]:
        for text, category in _banking_rows(root, split):
            yield Example(text, int(category in categories))

    return load


# --- Stanford Politeness (Wikipedia) ----------------------------------------------------


def _politeness_scores(root: Path) -> dict[Split, list[tuple[str, float]]]:
    out: dict[Split, list[tuple[str, float]]] = {}
    for split in ("train", "dev", "test"):
        path = root / "politeness" / f"wikipedia.{split}.csv"
        if not path.exists():
            raise DataError(f"missing data file {path}")
        with path.open(encoding="utf-8", newline="") as fh:
            out[split] = [(r["Request"], float(r["Normalized Score"])) for r in csv.DictReader(fh)]
    return out


def _politeness(root: Path, split: Split) -> Iterator[Example]:
    """Top quartile of all Wikipedia requests = polite (1), bottom quartile = 0; the
    middle half is left out (the paper's setup)."""
    scores = _politeness_scores(root)
    everything = sorted(s for rows in scores.values() for _, s in rows)
    q1 = everything[len(everything) // 4]
    q3 = everything[(3 * len(everything)) // 4]
    for text, score in scores[split]:
        if score >= q3:
            yield Example(text, 1)
        elif score <= q1:
            yield Example(text, 0)


# --- USS dialogues ----------------------------------------------------------------------


# The USS corpora by the name reports use, and their file prefix.
USS_CORPORA: dict[str, str] = {"uss-sgd": "SGD", "uss-mwoz": "MWOZ"}
# A USS turn with this many ratings leaves at least three others to take a majority of,
# when one rater is set against the rest (the reports' human reference).
AGREEMENT_RATERS = 4


def majority_rating(ratings: list[int]) -> int:
    """The most common rating; ties go to the lower value."""
    counts: dict[int, int] = {}
    for r in ratings:
        counts[r] = counts.get(r, 0) + 1
    best = max(counts.values())
    return min(r for r, n in counts.items() if n == best)


def rated_dissatisfied(ratings: list[int]) -> tuple[int, float]:
    """A rated USS turn's label, dissatisfied (1) when the majority rating is 1 or 2, and
    the share of its raters who rated it 1 or 2."""
    return int(majority_rating(ratings) <= 2), sum(r <= 2 for r in ratings) / len(ratings)


def _uss(corpus: str) -> Callable[[Path, Split], Iterator[Example]]:
    def load(root: Path, split: Split) -> Iterator[Example]:
        for line in _open(root / "uss" / f"{corpus}.{split}.jsonl"):
            dialogue = json.loads(line)
            earlier: list[str] = []
            for turn in dialogue["turns"]:
                if turn["role"] != "USER":
                    continue
                if ratings := turn.get("ratings"):
                    label, share = rated_dissatisfied(ratings)
                    yield Example(turn["text"], label, tuple(earlier[-5:]), share)
                earlier.append(turn["text"])

    return load


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "goemotions/frustration",
            "frustration",
            _goemotions(GOEMOTIONS_FRUSTRATION),
            "Reddit comments: anger, annoyance, disappointment or disapproval",
        ),
        Task(
            "goemotions/confusion",
            "confusion",
            _goemotions(GOEMOTIONS_CONFUSION),
            "Reddit comments labeled confusion",
        ),
        Task(
            "goemotions/gratitude",
            "gratitude",
            _goemotions(GOEMOTIONS_GRATITUDE),
            "Reddit comments labeled gratitude",
        ),
        Task(
            "bitext/wants_human",
            "wants_human",
            _bitext({"contact_human_agent", "contact_customer_service"}),
            "support utterances asking for a human agent or customer service",
        ),
        Task(
            "bitext/churn_intent",
            "churn_intent",
            _bitext({"delete_account", "check_cancellation_fee"}),
            "support utterances about deleting the account or the cancellation fee",
        ),
        Task(
            "bitext/complaint",
            "frustration",
            _bitext({"complaint"}),
            "support utterances filing a complaint",
        ),
        Task(
            "banking77/churn_intent",
            "churn_intent",
            _banking({"terminate_account"}),
            "banking queries about closing the account",
        ),
        Task(
            "uss-sgd/dissatisfied",
            "frustration",
            _uss("SGD"),
            "SGD dialogue user turns rated 1-2 for satisfaction (with earlier turns)",
        ),
        Task(
            "uss-mwoz/dissatisfied",
            "frustration",
            _uss("MWOZ"),
            "MultiWOZ dialogue user turns rated 1-2 for satisfaction (with earlier turns)",
        ),
        Task(
            "politeness-wiki/polite",
            "politeness",
            _politeness,
            "Wikipedia editors' requests: top vs bottom quartile of rated politeness",
        ),
    ]
}


def load_task(task: Task, split: Split, root: Path | None = None) -> list[Example]:
    examples = list(task.loader(data_dir(root), split))
    if not examples:
        raise DataError(f"{task.name}: the {split} split is empty")
    return examples

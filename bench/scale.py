"""tactful scale: workers on NATS JetStream + PostgreSQL against the embedded default.

All in one run, on this machine, with real servers started here (Debian's ``nats-server``
with JetStream and PostgreSQL's binaries, on loopback ports with temporary directories,
as the tests start them):

* **Embedded** (the baseline): the same events through one in-process engine on SQLite
  (durability full, batches of 50, the default learned text scorer): events/s.
* **Workers** 1, 2 and 4: for each, a fresh PostgreSQL database and stream; the events are
  published through ``tactful serve --broker`` (HTTP, batches of 50, 4 senders), the API
  stopped, then W ``tactful worker`` processes started on the backlog. Events/s is timed
  from 10% to 90% of the events applied (start-up and the tail left out), read from the
  database. Also: RSS of nats-server, PostgreSQL and the workers; the stream's bytes and
  the database's size.
* **Latency at half the maximum**: a fresh database and stream, ``serve --broker`` and the
  best worker count running, events sent open loop at half that count's rate for
  ``--latency-seconds``; per event, from sending its batch to its row's ``received_at``
  (stamped by the worker's engine in the transaction that decided it): p50 and p99.

On a 2-core machine the API, nats-server, PostgreSQL and every worker share two cores:
more workers cannot add CPU here, so these figures are per-worker costs and the overhead
of the broker shape, not the scaling a cluster would show (docs/scale.md models that).

The last line is one JSON object::

    {"workers": {"1": ..., "2": ..., "4": ...}, "embedded_events_per_s",
     "p99_ms_at_half", ...}

Usage: ``python bench/scale.py [--events N] [--customers N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]  # no stubs in the dev extras
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' server fixtures, reused as plain functions

from tests.natsserver import NatsServer, start_nats  # noqa: E402
from tests.pgserver import PgServer, start_server  # noqa: E402

from benchkit import free_port, machine, percentile, stop_server, wait_healthy  # noqa: E402
from soak import BATCH, EventGen  # noqa: E402

WORKER_COUNTS = (1, 2, 4)
POLL_S = 0.25


def servers() -> tuple[PgServer, NatsServer] | None:
    """PostgreSQL and nats-server started as the tests start them; None (and why, on
    stderr) when either cannot be (the fixtures skip or fail through pytest's
    exceptions). A PostgreSQL already started is stopped again then."""
    try:
        pg = start_server()
    except BaseException as exc:
        print(f"cannot start PostgreSQL: {exc}", file=sys.stderr)
        return None
    try:
        return pg, start_nats()
    except BaseException as exc:
        pg.stop()
        print(f"cannot start nats-server: {exc}", file=sys.stderr)
        return None


def events_for(n: int, customers: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    gen = EventGen(seed, customers, prefix)
    return [e for _ in range(max(1, n // BATCH)) for e in gen.batch(BATCH)]


def embedded(events: list[dict[str, Any]], tmp: Path) -> float:
    """Events/s of the in-process engine on SQLite (the embedded default)."""
    from tactful.detect.learned import load_scorer
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    store = SQLiteStore(tmp / "embedded.db", durability="full")
    engine = Engine(store, PolicyEngine(load_policy()), text_scorer=load_scorer())
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        engine.ingest(events[i : i + BATCH], "bench")
    took = time.perf_counter() - started
    store.close()
    return len(events) / took


def serve(
    db: str, nats: NatsServer, stream: str, tmp: Path, *extra: str, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``tactful serve --broker`` on ``port`` (a free one by default), healthy; (process,
    its URL). Its output is appended to ``serve-STREAM.log`` (a restart adds to it)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / f"serve-{stream}.log"
    cmd = [sys.executable, "-m", "tactful.cli", "serve", "--db", db, "--port", str(port)]
    cmd += ["--broker", nats.url, "--stream", stream, "--actions-log", str(tmp / "a.jsonl")]
    with log.open("ab") as fh:
        proc = subprocess.Popen([*cmd, *extra], stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    wait_healthy(proc, url, log, deadline_s=60)
    return proc, url


def start_worker(
    db: str, nats: NatsServer, stream: str, tmp: Path, name: str, *extra: str
) -> subprocess.Popen[bytes]:
    """One ``tactful worker``, its output in ``worker-NAME.log``."""
    cmd = [sys.executable, "-m", "tactful.cli", "worker", "--broker", nats.url]
    cmd += ["--db", db, "--stream", stream, "--interval", "0.5", *extra]
    with (tmp / f"worker-{name}.log").open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)


def workers(
    db: str, nats: NatsServer, stream: str, n: int, tmp: Path
) -> list[subprocess.Popen[bytes]]:
    return [start_worker(db, nats, stream, tmp, f"{stream}-{i}") for i in range(n)]


def publish(url: str, events: list[dict[str, Any]], senders: int = 4) -> float:
    """Post every event (closed loop, ``senders`` at once); events/s accepted by the API."""
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]

    def send(chunk: list[list[dict[str, Any]]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for batch in chunk:
                r = http.post("/v1/events", json=batch)
                if r.status_code != 202:
                    raise SystemExit(f"publish refused: {r.status_code} {r.text[:300]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, [batches[k::senders] for k in range(senders)]))
    return len(events) / (time.perf_counter() - started)


def count(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def postgres_pids(pg: PgServer) -> list[int]:
    """This server's postmaster (its command line names the data directory) and its
    children (backends, checkpointer, WAL writer ...); other PostgreSQL servers on the
    machine are not counted."""
    for p in psutil.process_iter(["cmdline"]):
        if str(pg.data) in " ".join(p.info["cmdline"] or []) and "postgres" in (p.name() or ""):
            return [p.pid, *(c.pid for c in p.children(recursive=True))]
    return []


async def stream_bytes(nats_url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.bytes)
    finally:
        await nc.close()


def db_bytes(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def run_workers(
    n: int, events: list[dict[str, Any]], pg: PgServer, nats: NatsServer, tmp: Path
) -> dict[str, Any]:
    stream = f"SCALE{n}"
    with pg.database() as db:
        api, url = serve(db, nats, stream, tmp)
        published = publish(url, events)
        stop_server(api)
        backlog = asyncio.run(stream_bytes(nats.url, stream))
        procs = workers(db, nats, stream, n, tmp)
        total, lo, hi = len(events), 0.1 * len(events), 0.9 * len(events)
        t_lo = t_hi = None
        peak = {"workers": 0.0, "postgres": 0.0, "nats": 0.0}
        deadline = time.monotonic() + max(120.0, total / 50)
        try:
            while time.monotonic() < deadline:
                done = count(db)
                now = time.perf_counter()
                if t_lo is None and done >= lo:
                    t_lo = (now, done)
                if done >= hi:
                    t_hi = (now, done)
                    break
                peak["workers"] = max(peak["workers"], rss_mb([p.pid for p in procs]))
                peak["postgres"] = max(peak["postgres"], rss_mb(postgres_pids(pg)))
                peak["nats"] = max(peak["nats"], rss_mb([nats.proc.pid] if nats.proc else []))
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"a worker exited; see {tmp}/worker-{stream}-*.log")
                time.sleep(POLL_S)
            if t_lo is None or t_hi is None:
                raise SystemExit(f"{n} workers did not apply 90% of the events in time")
            rate = (t_hi[1] - t_lo[1]) / max(t_hi[0] - t_lo[0], 1e-9)
            size = db_bytes(db)
        finally:
            for p in procs:
                stop_server(p, grace_s=15)
    row = {
        "events_per_s": round(rate, 1),
        "publish_events_per_s": round(published, 1),
        "stream_mb": round(backlog / 1e6, 1),
        "db_mb": round(size / 1e6, 1),
        "workers_rss_mb": round(peak["workers"], 1),
        "postgres_rss_mb": round(peak["postgres"], 1),
        "nats_rss_mb": round(peak["nats"], 1),
    }
    print(f"  {n} worker(s): {json.dumps(row)}", flush=True)
    return row


def latency(
    n: int, rate: float, seconds: float, customers: int, pg: PgServer, nats: NatsServer, tmp: Path
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, events) from sending to the worker's commit, open loop at ``rate``."""
    stream = "SCALELAT"
    gen = EventGen(11, customers, "lat")
    sent_at: dict[str, float] = {}
    with pg.database() as db:
        api, url = serve(db, nats, stream, tmp)
        procs = workers(db, nats, stream, n, tmp)
        try:
            interval = BATCH / rate
            started = time.time()
            with httpx.Client(base_url=url, timeout=60) as http, ThreadPoolExecutor(8) as pool:
                futures = []
                k = 0
                while time.time() - started < seconds:
                    due = started + k * interval
                    time.sleep(max(0.0, due - time.time()))
                    batch = gen.batch(BATCH)
                    stamp = time.time()
                    for e in batch:
                        sent_at[e["event_id"]] = stamp
                    futures.append(pool.submit(http.post, "/v1/events", json=batch))
                    k += 1
                for f in futures:
                    if f.result().status_code != 202:
                        raise SystemExit(f"latency run refused: {f.result().text[:300]}")
            deadline = time.monotonic() + 120
            while count(db) < len(sent_at) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            with psycopg.connect(db) as conn:
                rows = conn.execute(
                    "SELECT event_id, extract(epoch FROM received_at) FROM events"
                ).fetchall()
        finally:
            for p in procs:
                stop_server(p, grace_s=15)
            stop_server(api)
    lat = [(float(at) - sent_at[eid]) * 1000 for eid, at in rows if eid in sent_at]
    return percentile(lat, 0.5), percentile(lat, 0.99), len(lat)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=20_000, help="events per run (20,000)")
    ap.add_argument("--customers", type=int, default=2_000, help="distinct customers (2,000)")
    ap.add_argument(
        "--latency-seconds", type=float, default=30.0, help="open-loop latency run (30 s)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 3,000 events, 10 s")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.latency_seconds = 3_000, 10.0
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="tactful-scale-"))
    started = servers()
    if started is None:
        return 2
    pg, nats = started
    try:
        events = events_for(args.events, args.customers, 7, "sc")
        print(f"{len(events):,} events from {args.customers:,} customers", flush=True)
        base = embedded(events, tmp)
        print(f"  embedded (in-process, SQLite): {base:,.0f} events/s", flush=True)
        rows = {str(n): run_workers(n, events, pg, nats, tmp) for n in WORKER_COUNTS}
        best = max(WORKER_COUNTS, key=lambda n: rows[str(n)]["events_per_s"])
        half = rows[str(best)]["events_per_s"] / 2
        p50, p99, measured = latency(
            best, half, args.latency_seconds, args.customers, pg, nats, tmp
        )
        print(
            f"  latency with {best} worker(s) at {half:,.0f} events/s (half its maximum): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {measured:,} events",
            flush=True,
        )
    finally:
        nats.stop()
        pg.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "workers": {n: r["events_per_s"] for n, r in rows.items()},
        "embedded_events_per_s": round(base, 1),
        "ratio_to_embedded": {n: round(r["events_per_s"] / base, 3) for n, r in rows.items()},
        "p99_ms_at_half": round(p99, 1),
        "p50_ms_at_half": round(p50, 1),
        "latency_workers": best,
        "latency_rate": round(half, 1),
        "events": len(events),
        "customers": args.customers,
        "detail": rows,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

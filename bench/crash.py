"""tactful crash: kill -9 workers, the API, nats-server or PostgreSQL while events flow;
nothing lost, nothing doubled, every customer as in a single process, every action
delivered to a receiver.

With real servers started here (nats-server with JetStream, PostgreSQL; as the tests
start them), one **reference** first: the events through one embedded engine on SQLite,
what every customer should end with (state, decisions with their reasons, actions). Then
one **run per target** (``--kill worker|api|nats|postgres``, repeatable or a comma list,
``all`` for the four; each run is counted in ``runs``), each on a fresh stream and
database:

1. ``tactful serve --broker`` (its dispatcher delivering every action, through a
   channels file that makes the default policy's ``log`` channel a webhook, to a local
   HTTP receiver this script runs) and ``--workers`` ``tactful worker`` processes start;
   one sender posts the events in requests of 50, in the reference's order, retrying a
   request until it is answered 202 (same body, same event ids: JetStream drops what it
   holds by ``Nats-Msg-Id``, the store by event id).
2. At ``--kills`` random moments (by progress, 2%-95% of the way) the target dies:
   *worker*: SIGKILL to a random worker, a new one started at once; *api*: SIGKILL to
   ``serve --broker`` (its dispatcher with it), restarted on the same port after 0-1 s;
   *nats*: SIGKILL to nats-server, restarted on the same port and JetStream store
   directory after 0.5-3 s; *postgres*: ``pg_ctl stop -m immediate`` (a crash: recovery
   at the next start), started again after 0.5-3 s. Default kills: 20 for worker, 5 for
   the others (each restart costs seconds, and every worker then waits ``--ack-wait``).
3. When every event is in the database the workers stop, and the outbox is left to drain
   to the receiver (at most ``--drain`` s: a dispatcher killed holding claimed rows
   leaves them for its 2-minute lease first).
4. **Compare**, customer by customer (floats within 2e-5: a state read back from the
   store carries 7 significant digits). ``lost`` = events and actions of the reference
   missing from the run's store, plus actions the receiver never got; ``duplicated`` =
   actions and decisions beyond the reference's, plus *duplicated effects* at the
   receiver (an action received under two different idempotency keys, or one the
   reference never made: what a receiver deduping on the key would still act on twice);
   ``mismatched_customers`` = customers whose state, decisions or actions differ. The
   same action delivered again under the *same* key (a dispatcher that died, or lost
   PostgreSQL, between the receiver's 200 and marking the row delivered) is counted
   apart, ``redelivered_keys``: delivery is at least once, the key makes it one effect.

The events are published by one sender, so the stream holds them in the reference's
order: this measures crashes, not arrival order (the engine decides at arrival, so
events of one customer arriving in another order within the lateness window end with
the same trends but may be decided differently). Both sides use the lexical text tier
(the learned one gives the same answer on both; the lexical one keeps a 100,000-event
run within minutes on 2 cores). Workers run with ``--sweep-interval 0``: the events are
dated 2026-11-02, so the wall clock has ended every hold they start, and the reference
never sweeps.

The last line is one JSON object (sums over the runs, then each run's details)::

    {"runs", "lost", "duplicated", "mismatched_customers", "kills", "events", ...,
     "targets": {"api": {..., "deliveries": {"expected", "received", "lost",
                 "redelivered_keys", "duplicated_effects", ...}}, ...}}

Usage: ``python bench/crash.py [--kill all] [--events N] [--workers W] [--kills K]
[--seed S] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' servers and comparison, reused as functions

from tests.natsserver import NatsServer  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402
from tests.test_broker import make_events, outcome, reference  # noqa: E402

from benchkit import free_port, machine, stop_server  # noqa: E402
from scale import count, serve, servers, start_worker  # noqa: E402
from tactful.state.store.postgres import PostgresStore  # noqa: E402

TARGETS = ("worker", "api", "nats", "postgres")
# Kills per run by default: a worker is back in ~1 s; the API (a new Python process),
# nats-server and PostgreSQL (crash recovery, then every worker waits --ack-wait for
# what it had fetched) take several seconds each, so fewer of those.
KILLS = {"worker": 20, "api": 5, "nats": 5, "postgres": 5}
QUICK_KILLS = {"worker": 5, "api": 3, "nats": 3, "postgres": 3}
SHOW = 5  # mismatched customers printed with where they differ
BATCH = 50  # events per request, as the reference ingests them
SECRET = "crash-bench-webhook-secret"


class Receiver:
    """The local webhook receiver: a threaded HTTP server recording every delivery's
    ``Idempotency-Key`` and the action ids it carries (its body's ``id``; a batched
    notification lists its members' under ``data.notifications``), answering 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.keys: Counter[str] = Counter()  # deliveries per idempotency key
        self.actions: dict[str, set[str]] = {}  # action id -> the keys it came under
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                try:
                    doc = json.loads(body)
                    members = doc.get("data", {}).get("notifications")
                    ids = [m["action_id"] for m in members] if members else [doc["id"]]
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.requests += 1
                    receiver.keys[key] += 1
                    for action_id in ids:
                        receiver.actions.setdefault(action_id, set()).add(key)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a dispatcher killed mid-request: its connection is gone, nothing else

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tactful"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, expected: set[str]) -> dict[str, int]:
        """Deliveries against the reference's actions. ``lost``: expected, never
        received. ``redelivered_keys``: keys received more than once (at-least-once
        delivery; a receiver deduping on the key acts once, so no second effect).
        ``duplicated_effects``: what a deduping receiver would still act on twice or
        wrongly: an action that arrived under two different keys, or one the reference
        never made."""
        with self.lock:
            received = set(self.actions)
            twice = sum(1 for keys in self.actions.values() if len(keys) > 1)
            return {
                "expected": len(expected),
                "received": len(received & expected),
                "requests": self.requests,
                "lost": len(expected - received),
                "unexpected": len(received - expected),
                "redelivered_keys": sum(1 for n in self.keys.values() if n > 1),
                "duplicated_effects": twice + len(received - expected),
            }


class Sender(threading.Thread):
    """The bench's one publisher: requests of 50 events in the reference's order, each
    retried (same body, so same event ids) until it is answered 202: a refused
    connection or a cut one (the API killed), a timeout, a 503 (nats-server down: wait
    its Retry-After, at most 1 s here) are all retried; anything else stops the run."""

    def __init__(self, url: str, events: list[dict[str, Any]], deadline: float) -> None:
        super().__init__(daemon=True)
        self.url, self.events, self.deadline = url, events, deadline
        self.sent = 0  # events answered 202
        self.retries = 0
        self.error: str | None = None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            for i in range(0, len(self.events), BATCH):
                batch = self.events[i : i + BATCH]
                while True:
                    if time.monotonic() > self.deadline:
                        self.error = f"not every event published in time ({self.sent:,})"
                        return
                    try:
                        r = http.post("/v1/events", json=batch)
                    except httpx.HTTPError:
                        self.retries += 1
                        time.sleep(0.2)
                        continue
                    if r.status_code == 202:
                        break
                    if r.status_code in (502, 503, 504):
                        self.retries += 1
                        time.sleep(min(1.0, float(r.headers.get("Retry-After") or 0.5)))
                        continue
                    self.error = f"publish refused: {r.status_code} {r.text[:300]}"
                    return
                self.sent += len(batch)


def _count(db: str, last: int) -> int:
    """Events in the database; ``last`` while PostgreSQL cannot answer."""
    try:
        return count(db)
    except psycopg.Error:
        return last


def _undelivered(db: str) -> dict[str, int] | None:
    """Outbox rows by status other than delivered; None while PostgreSQL cannot answer."""
    try:
        with psycopg.connect(db, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT status, count(*) FROM outbox WHERE status <> 'delivered' GROUP BY 1"
            ).fetchall()
    except psycopg.Error:
        return None
    return {str(s): int(n) for s, n in rows}


class Run:
    """One campaign's processes: ``serve --broker`` (it also runs the dispatcher, with
    the channels file sending everything to the receiver) and the workers."""

    def __init__(
        self, db: str, nats: NatsServer, stream: str, tmp: Path, channels: Path, workers: int
    ) -> None:
        self.db, self.nats, self.stream, self.tmp, self.channels = db, nats, stream, tmp, channels
        self.made = 0
        self.port = free_port()
        self.api = self.start_api()
        self.url = f"http://127.0.0.1:{self.port}"
        self.live = [self.worker() for _ in range(workers)]

    def start_api(self) -> subprocess.Popen[bytes]:
        extra = ("--text-scorer", "lexical", "--channels", str(self.channels))
        proc, _ = serve(self.db, self.nats, self.stream, self.tmp, *extra, port=self.port)
        return proc

    def worker(self) -> subprocess.Popen[bytes]:
        # --sweep-interval 0: no clock sweeps. The events are dated 2026-11-02, so by
        # the wall clock every hold they start has ended, and a sweep would release
        # them; the reference never sweeps (found by the first runs long enough to
        # reach the 30 s default: 2 releases per customer more than the reference).
        extra: tuple[str, ...] = ("--text-scorer", "lexical", "--ack-wait", "3", "--batch", "100")
        extra += ("--sweep-interval", "0")
        self.made += 1
        return start_worker(
            self.db, self.nats, self.stream, self.tmp, f"{self.stream}-{self.made}", *extra
        )

    def check(self) -> None:
        for proc in self.live:
            if proc.poll() is not None:
                raise SystemExit(f"a worker exited by itself; see {self.tmp}/worker-*.log")
        if self.api.poll() is not None:
            raise SystemExit(f"serve exited by itself; see {self.tmp}/serve-{self.stream}.log")

    def stop_workers(self) -> None:
        for proc in self.live:
            stop_server(proc, grace_s=15)
        self.live = []

    def stop(self) -> None:
        self.stop_workers()
        stop_server(self.api, grace_s=15)


def kill(target: str, run: Run, pg: PgServer, nats: NatsServer, rng: random.Random) -> str:
    """One kill of ``target`` and its restart; what was done, for the log."""
    if target == "worker":
        victim = rng.choice(run.live)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        run.live.remove(victim)
        run.live.append(run.worker())
        return "SIGKILL to a worker, a new one started"
    if target == "api":
        run.api.send_signal(signal.SIGKILL)
        run.api.wait(timeout=10)
        down = rng.uniform(0.0, 1.0)
        time.sleep(down)
        run.api = run.start_api()
        return f"SIGKILL to serve --broker, restarted on port {run.port} after {down:.1f} s"
    down = rng.uniform(0.5, 3.0)
    if target == "nats":
        assert nats.proc is not None
        nats.proc.send_signal(signal.SIGKILL)
        nats.proc.wait(timeout=10)
        time.sleep(down)
        nats.restart()
        return f"SIGKILL to nats-server, restarted (same port and store) after {down:.1f} s"
    pg.halt("immediate")
    time.sleep(down)
    pg.resume()
    return f"PostgreSQL stopped -m immediate, started again after {down:.1f} s"


def campaign(
    target: str,
    kills: int,
    pg: PgServer,
    nats: NatsServer,
    events: list[dict[str, Any]],
    customers: list[str],
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    """Publish and apply the events with ``target`` killed at random moments, wait for
    the outbox to drain to the receiver; what every customer ended with and what the
    receiver got."""
    rng = random.Random(f"{args.seed}-{target}")
    total = len(events)
    stream = f"CRASH_{target.upper()}"
    receiver = Receiver()
    channels = tmp / f"channels-{target}.yaml"
    # The default policy sends every action to the channel named log; naming a webhook
    # "log" here sends them all to the receiver instead of the JSON-lines file.
    channels.write_text(
        f"channels:\n  log:\n    type: webhook\n    url: {receiver.url}\n"
        f"    secret: {SECRET}\n    timeout: 5s\n"
    )
    started = time.monotonic()
    deadline = started + max(600.0, total / 20)
    # Kill moments by progress, not by the clock (the run's length is not known ahead):
    # K random points between 2% and 95% of the way. The way: events answered 202 for
    # the API (it is what publishes); for nats-server, which both publishing and
    # applying need, the mean of events answered 202 and events applied (publishing
    # runs ahead, so early moments fall while it goes on); events applied for workers
    # and PostgreSQL (publishing needs no PostgreSQL).
    moments = sorted(rng.uniform(0.02, 0.95) * total for _ in range(kills))
    done = kills_done = 0
    with pg.database() as db:
        run = Run(db, nats, stream, tmp, channels, args.workers)
        sender = Sender(run.url, events, deadline)
        sender.start()
        try:
            while time.monotonic() < deadline:
                done = _count(db, done)
                if done >= total and not sender.is_alive():
                    break
                if sender.error:
                    raise SystemExit(sender.error)
                progress = {"api": sender.sent, "nats": (sender.sent + done) / 2}.get(target, done)
                if moments and progress >= moments[0]:
                    moments.pop(0)
                    what = kill(target, run, pg, nats, rng)
                    kills_done += 1
                    now = time.monotonic() - started
                    print(
                        f"  t={now:6.1f} s: {what} ({sender.sent:,} published, {done:,} applied)",
                        flush=True,
                    )
                run.check()
                time.sleep(0.1)
            else:
                raise SystemExit(f"not every event applied in time ({done:,} of {total:,})")
            if sender.error:
                raise SystemExit(sender.error)
            applied = time.monotonic() - started
            run.stop_workers()  # every event is in; only the dispatcher has work left
            # The outbox drains to the receiver through serve's dispatcher; a dispatcher
            # killed with rows claimed leaves them for its lease (2 minutes) first.
            drain_deadline = time.monotonic() + args.drain
            left: dict[str, int] | None = None
            while time.monotonic() < drain_deadline:
                left = _undelivered(db)
                if left is not None and not left.get("pending"):
                    break
                run.check()
                time.sleep(0.5)
            drained = time.monotonic() - started - applied
        finally:
            run.stop()
            receiver.close()
        store = PostgresStore(db)
        got = outcome(store, customers)
        store.close()
    return {
        "got": got,
        "receiver": receiver,
        "kills": kills_done,
        "apply_seconds": round(applied, 1),
        "drain_seconds": round(drained, 1),
        "undelivered": left or {},
        "publish_retries": sender.retries,
    }


def compare(ref: dict[str, Any], got: dict[str, Any]) -> dict[str, int]:
    lost = duplicated = mismatched = 0
    for cid, want in ref.items():
        have = got.get(cid) or {"events": 0, "actions": [], "decisions": [], "state": None}
        lost += max(0, want["events"] - have["events"])
        want_actions, have_actions = set(want["actions"]), set(have["actions"])
        lost += len(want_actions - have_actions)
        duplicated += len(have_actions - want_actions)
        duplicated += max(0, len(have["decisions"]) - len(want["decisions"]))
        if not _same(want, have):
            mismatched += 1
            if mismatched <= SHOW:
                print(f"  {cid} differs: {_diff(want, have)}", flush=True)
    return {"lost": lost, "duplicated": duplicated, "mismatched_customers": mismatched}


def _same(a: Any, b: Any) -> bool:
    """Equal, floats within 2e-5: the outcomes carry floats rounded to 5 places, and a
    value read back from the store (7 significant digits) can round to the neighbour of
    the one kept in memory all along."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 2e-5
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(want: Any, have: Any, path: str = "") -> str:
    """The first place two outcomes differ, and both values there (cut short)."""
    if isinstance(want, dict) and isinstance(have, dict):
        for key in sorted(set(want) | set(have)):
            if not _same(want.get(key), have.get(key)):
                return _diff(want.get(key), have.get(key), f"{path}.{key}")
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            if not _same(w, h):
                return _diff(w, h, f"{path}[{i}]")
    return f"{path or '.'}: reference {str(want)[:200]} / broker run {str(have)[:200]}"


def targets(given: list[str] | None) -> list[str]:
    """``--kill`` values (repeatable, comma lists, ``all``) in order, each once."""
    out: list[str] = []
    for value in given or ["worker"]:
        for name in value.split(","):
            name = name.strip()
            for t in TARGETS if name == "all" else (name,):
                if t not in TARGETS:
                    raise SystemExit(f"--kill {t}: one of {', '.join(TARGETS)} or all")
                if t not in out:
                    out.append(t)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=100_000, help="events (100,000)")
    ap.add_argument("--customers", type=int, default=2_000, help="customers (2,000)")
    ap.add_argument("--workers", type=int, default=3, help="workers alive at once (3)")
    ap.add_argument(
        "--kill",
        action="append",
        metavar="TARGET",
        help="what to kill: worker (default), api, nats, postgres, or all (one run each); "
        "repeatable or a comma list",
    )
    ap.add_argument(
        "--kills",
        type=int,
        default=None,
        help="kills per run (default: 20 for worker, 5 for api, nats, postgres; --quick: 5, 3)",
    )
    ap.add_argument(
        "--drain", type=float, default=300.0, help="seconds to wait for the outbox (300)"
    )
    ap.add_argument("--seed", type=int, default=7, help="random seed (events and kills)")
    ap.add_argument("--quick", action="store_true", help="5,000 events, 250 customers")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    chosen = targets(args.kill)
    if args.quick:
        args.events, args.customers = 5_000, 250
    print(machine())
    per_customer = max(1, args.events // args.customers)
    events = make_events(args.customers, per_customer, seed=args.seed)
    customers = sorted({e["customer_id"] for e in events})
    print(f"{len(events):,} events from {len(customers):,} customers", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="tactful-crash-"))
    started = servers()
    if started is None:
        return 2
    pg, nats = started
    per_target: dict[str, Any] = {}
    totals = {"lost": 0, "duplicated": 0, "mismatched_customers": 0}
    try:
        t0 = time.perf_counter()
        ref_store = reference(events, tmp)
        want = outcome(ref_store, customers)
        ref_store.close()
        expected = {a for c in want.values() for a, _ in c["actions"]}
        print(
            f"  reference (embedded, SQLite): {time.perf_counter() - t0:.0f} s, "
            f"{len(expected):,} actions",
            flush=True,
        )
        for target in chosen:
            kills = args.kills
            if kills is None:
                kills = (QUICK_KILLS if args.quick else KILLS)[target]
            print(f"kill {target}: {kills} times", flush=True)
            got = campaign(target, kills, pg, nats, events, customers, args, tmp)
            result = compare(want, got["got"])
            deliveries = got["receiver"].count(expected)
            lost = result["lost"] + deliveries["lost"]
            duplicated = result["duplicated"] + deliveries["duplicated_effects"]
            row = {
                "lost": lost,
                "duplicated": duplicated,
                "mismatched_customers": result["mismatched_customers"],
                "kills": got["kills"],
                "store": result,
                "deliveries": deliveries,
                "undelivered": got["undelivered"],
                "publish_retries": got["publish_retries"],
                "apply_seconds": got["apply_seconds"],
                "drain_seconds": got["drain_seconds"],
            }
            print(f"  {target}: {json.dumps(row)}", flush=True)
            per_target[target] = row
            totals["lost"] += lost
            totals["duplicated"] += duplicated
            totals["mismatched_customers"] += result["mismatched_customers"]
    finally:
        nats.stop()
        pg.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "runs": len(per_target),
        **totals,
        "kills": sum(r["kills"] for r in per_target.values()),
        "events": len(events),
        "customers": len(customers),
        "workers": args.workers,
        "targets": per_target,
    }
    print(json.dumps(summary), flush=True)
    return 0 if not any(totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

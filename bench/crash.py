"""tactful crash: kill -9 workers while they apply a stream; nothing lost, nothing doubled.

One run, with real servers started here (nats-server with JetStream, PostgreSQL; as the
tests start them):

1. **Reference.** The events through one embedded engine on SQLite: what every customer
   should end with (state, decisions with their reasons, actions).
2. **Broker.** The same events published through ``tactful serve --broker`` into a fresh
   stream and database; then ``--workers`` ``tactful worker`` processes apply them while
   this script sends SIGKILL to a random live worker at ``--kills`` random moments and
   starts a replacement at once (the dead worker's partitions pass on through
   PostgreSQL's advisory locks; what it had fetched but not acknowledged is delivered
   again). When every event is in the database, the workers are stopped.
3. **Compare**, customer by customer (floats within 2e-5: a state read back from the
   store carries 7 significant digits): ``lost`` = events and actions of the reference
   missing from the broker run; ``duplicated`` = actions and decisions beyond the
   reference's; ``mismatched_customers`` = customers whose state, decisions or actions
   differ.

The events are published by one sender, so the stream holds them in the reference's
order: this measures crashes, not arrival order (the engine decides at arrival, so
events of one customer arriving in another order within the lateness window end with
the same trends but may be decided differently). Both sides use the lexical text tier
(the learned one gives the same answer on both; the lexical one keeps a 100,000-event
run within minutes on 2 cores). Not yet here: kills of the API process, nats-server and
PostgreSQL (restarted), and delivered actions counted at a receiver (the outbox rows are
compared instead).

The last line is one JSON object::

    {"runs", "lost", "duplicated", "mismatched_customers", "kills", "events", ...}

Usage: ``python bench/crash.py [--events N] [--workers W] [--kills K] [--seed S]``.
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' servers and comparison, reused as functions

from tests.natsserver import NatsServer  # noqa: E402
from tests.test_broker import make_events, outcome, reference  # noqa: E402

from benchkit import machine, stop_server  # noqa: E402
from scale import count, serve, servers, start_worker  # noqa: E402
from scale import publish as publish_all  # noqa: E402
from tactful.state.store.postgres import PostgresStore  # noqa: E402

STREAM = "CRASH"
SHOW = 5  # mismatched customers printed with where they differ


def publish(db: str, nats: NatsServer, events: list[dict[str, Any]], tmp: Path) -> None:
    api, url = serve(db, nats, STREAM, tmp, "--text-scorer", "lexical")
    try:
        # One sender: the stream then holds the events in the reference's order. (With
        # several, one customer's events from two batches can enter the stream in either
        # order; the engine decides at arrival, so decisions and the latest messages
        # would differ from the reference for reasons that have nothing to do with
        # crashes.)
        publish_all(url, events, senders=1)
    finally:
        stop_server(api)


def worker(db: str, nats: NatsServer, tmp: Path, n: int) -> subprocess.Popen[bytes]:
    extra = ("--text-scorer", "lexical", "--ack-wait", "3", "--batch", "100")
    return start_worker(db, nats, STREAM, tmp, f"crash-{n}", *extra)


def campaign(
    db: str, nats: NatsServer, total: int, args: argparse.Namespace, tmp: Path
) -> tuple[int, float]:
    """Apply the stream with workers killed at random moments; (kills done, seconds)."""
    rng = random.Random(args.seed)
    started = time.monotonic()
    live = [worker(db, nats, tmp, n) for n in range(args.workers)]
    made = len(live)
    # Kill moments by progress, not by the clock (the run's length is not known ahead):
    # K random points between 2% and 95% of the events applied, one kill at each.
    moments = sorted(rng.uniform(0.02, 0.95) * total for _ in range(args.kills))
    kills = 0
    last_count = -1
    deadline = started + max(600.0, total / 20)
    try:
        while time.monotonic() < deadline:
            done = count(db)
            if done >= total:
                break
            now = time.monotonic() - started
            if moments and done >= moments[0] and done > last_count:
                moments.pop(0)
                victim = rng.choice(live)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                live.remove(victim)
                live.append(worker(db, nats, tmp, made))
                made += 1
                kills += 1
                last_count = done
                print(f"  t={now:6.1f} s: killed a worker at {done:,} events applied", flush=True)
            for proc in live:
                if proc.poll() is not None:
                    raise SystemExit(f"a worker exited by itself; see {tmp}/worker-*.log")
            time.sleep(0.1)
        else:
            raise SystemExit(f"not every event applied in time ({count(db):,} of {total:,})")
    finally:
        for proc in live:
            stop_server(proc, grace_s=15)
    return kills, time.monotonic() - started


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=100_000, help="events (100,000)")
    ap.add_argument("--customers", type=int, default=2_000, help="customers (2,000)")
    ap.add_argument("--workers", type=int, default=3, help="workers alive at once (3)")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs during the run (20)")
    ap.add_argument("--seed", type=int, default=7, help="random seed (events and kills)")
    ap.add_argument("--quick", action="store_true", help="5,000 events, 5 kills")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.kills, args.customers = 5_000, 5, 250
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
    try:
        t0 = time.perf_counter()
        ref_store = reference(events, tmp)
        want = outcome(ref_store, customers)
        ref_store.close()
        print(f"  reference (embedded, SQLite): {time.perf_counter() - t0:.0f} s", flush=True)
        with pg.database() as db:
            t0 = time.perf_counter()
            publish(db, nats, events, tmp)
            print(f"  published: {time.perf_counter() - t0:.0f} s", flush=True)
            kills, took = campaign(db, nats, len(events), args, tmp)
            print(f"  applied with {kills} kills in {took:.0f} s", flush=True)
            store = PostgresStore(db)
            got = outcome(store, customers)
            store.close()
    finally:
        nats.stop()
        pg.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = compare(want, got)
    summary = {
        "runs": 1,
        **result,
        "kills": kills,
        "events": len(events),
        "customers": len(customers),
        "workers": args.workers,
        "seconds": round(took, 1),
    }
    print(json.dumps(summary), flush=True)
    return 0 if not any(result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

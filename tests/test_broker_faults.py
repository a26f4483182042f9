"""The scale-out shape's outages, on real servers (issue 9): PostgreSQL stopped (or
crashed) and started again under a running worker; nats-server restarted (same port, same
JetStream store) under a running `serve --broker` and worker; nats-server gone between a
worker's commit and its acks; both gone, PostgreSQL back first. Each test runs the
processes as they run in production (subprocesses), stops the server for real, keeps
sending events meanwhile, and then checks that the worker recovered by itself (the same
process, never restarted) and that every event was applied exactly once: the events
table, and each customer's state, decisions (with their reasons) and actions, equal a
single-process SQLite run of the same events. (A worker killed mid-stream is
tests/test_broker.py's test_a_killed_worker_passes_its_partitions_on_nothing_lost_or_doubled.)

Each test starts its own server of the kind it stops, so the session's shared servers
never go away under other tests."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tactful.broker.ownership import ACCOUNT_NAMESPACE
from tactful.state.store.postgres import PostgresStore

from .natsserver import NatsServer, nats_server, start_nats  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server, start_server  # noqa: F401  (the fixture)
from .serving import Launch
from .test_broker import (
    POLL,
    Workers,
    assert_same,
    deployment,
    make_events,
    outcome,
    owners,
    reference,
    wait_for,
    workers,  # noqa: F401  (the fixture)
)

PARTITIONS = 4


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server of this test's own (the test stops it)."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_nats() -> Iterator[NatsServer]:
    """A nats-server of this test's own (the test stops it)."""
    server = start_nats()
    try:
        yield server
    finally:
        server.stop()


def post_all(url: str, events: list[dict[str, Any]], size: int = 20) -> None:
    for i in range(0, len(events), size):
        chunk = events[i : i + size]
        r = httpx.post(f"{url}/v1/events", json=chunk, timeout=30)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] + r.json()["duplicates"] == len(chunk), r.text


def applied(url: str) -> int:
    """Events in the store (0 while it is unreachable)."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return 0


def explain(
    url: str, nats_url: str, stream: str, pool: Workers, events: list[dict[str, Any]]
) -> Callable[[], str]:
    """What a failed wait shows: the events missing from the store, the store's and each
    partition's counts (`tactful status`), the workers' logs."""

    def show() -> str:
        from tactful.broker.status import collect

        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                rows = conn.execute("SELECT event_id FROM events").fetchall()
            missing = sorted({e["event_id"] for e in events} - {str(r[0]) for r in rows})
            store = PostgresStore(url, startup_wait=1)
            try:
                report = json.dumps(collect(store, url, stream, nats_url), default=str)
            finally:
                store.close()
        except Exception as exc:  # the server is down: the logs are all there is
            return f"(no report: {type(exc).__name__}: {exc})\n{pool.logs()}"
        return f"missing {missing}\n{report}\n{pool.logs()}"

    return show


def assert_exactly_once(url: str, events: list[dict[str, Any]], tmp_path: Path) -> None:
    """Every event in the store once, none else; each customer's state, decisions and
    actions as one process on SQLite decides them."""
    with psycopg.connect(url) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT event_id FROM events").fetchall()]
        decided = conn.execute(
            "SELECT count(*) FROM decisions GROUP BY event_id, rule_id, kind HAVING count(*) > 1"
        ).fetchall()
    assert len(ids) == len(set(ids)), "an event stored twice"
    assert set(ids) == {e["event_id"] for e in events}, "events lost or unknown ones stored"
    assert not decided, "an event decided twice"
    customers = sorted({e["customer_id"] for e in events})
    expected = outcome(reference(events, tmp_path), customers)
    store = PostgresStore(url)
    try:
        got = outcome(store, customers)
    finally:
        store.close()
    assert_same(got, expected)


def assert_counted(pool: Workers, events: int) -> None:
    """Stop the workers (before the test's database goes); each prints what it applied
    when it stops: the events, each once, and it stopped cleanly (exit 0)."""
    pool.stop()
    logs = pool.logs()
    assert all(proc.returncode == 0 for proc in pool.procs), logs
    done = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) applied", logs)]
    assert sum(done) == events, logs


def all_applied_once(
    url: str,
    nats_url: str,
    stream: str,
    pool: Workers,
    worker: Any,
    events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The end of every fault test: every event applied (waiting up to 45 s), the worker
    still the one started (it recovered by itself, not restarted), each event once with
    the outcome one process on SQLite decides, and each counted once by the workers."""
    why = explain(url, nats_url, stream, pool, events)
    wait_for(lambda: applied(url) == len(events), 45, "every event applied", why)
    assert worker.poll() is None, pool.logs()
    assert_exactly_once(url, events, tmp_path)
    assert_counted(pool, len(events))


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stops_and_starts_under_a_running_worker(
    mode: str,
    launch: Launch,
    own_pg: PgServer,
    nats_server: NatsServer,  # noqa: F811
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
):
    """PostgreSQL shut down (``fast``: every session ended; ``immediate``: as a crash, with
    recovery at the next start) while a worker applies and the API keeps publishing;
    started again on the same port and data: the same worker process takes its
    partitions back and applies the rest, each event once."""
    events = make_events(customers=16, per_customer=9, seed=21)
    first, during, after = events[:50], events[50:110], events[110:]
    stream = nats_server.stream()
    with own_pg.database() as url:
        server, pool = deployment(
            launch, workers, tmp_path, url, nats_server, stream, partitions=PARTITIONS
        )
        worker = pool.start("--batch", "10")
        post_all(server.url, first)
        wait_for(lambda: applied(url) == len(first), 30, "the first events applied", pool.logs)

        own_pg.halt(mode)
        # publishing needs no PostgreSQL (valid events are not stored by the API)
        post_all(server.url, during)
        wait_for(
            lambda: "PostgreSQL not reachable" in pool.logs() or "not applied" in pool.logs(),
            15,
            "the worker noticed PostgreSQL is gone",
            pool.logs,
        )
        assert worker.poll() is None, pool.logs()
        own_pg.resume()

        post_all(server.url, after)
        all_applied_once(url, nats_server.url, stream, pool, worker, events, tmp_path)


def test_nats_restarts_under_serve_and_a_worker(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    own_nats: NatsServer,
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
):
    """nats-server stopped and started again (same port, same JetStream store) under a
    running `serve --broker` and worker: while it is down the API answers 503 with
    Retry-After, promptly, and never 202; once it is back the client's retries get 202
    (what JetStream took before the 503 is reported duplicate), the worker resumes by
    itself, and every event is applied once."""
    events = make_events(customers=16, per_customer=9, seed=23)
    first, during, after = events[:50], events[50:110], events[110:]
    stream = own_nats.stream()
    with pg_server.database() as url:
        server, pool = deployment(
            launch,
            workers,
            tmp_path,
            url,
            own_nats,
            stream,
            "--publish-timeout",
            "1",
            partitions=PARTITIONS,
        )
        worker = pool.start("--batch", "10")
        post_all(server.url, first)
        wait_for(lambda: applied(url) == len(first), 30, "the first events applied", pool.logs)

        own_nats.stop_process()
        refused: list[list[dict[str, Any]]] = []
        for i in range(0, len(during), 20):
            chunk = during[i : i + 20]
            started = time.monotonic()
            r = httpx.post(f"{server.url}/v1/events", json=chunk, timeout=30)
            took = time.monotonic() - started
            assert r.status_code == 503, r.text  # never 202 while nothing can take it
            assert int(r.headers["retry-after"]) >= 1
            assert took < 10, f"a 503 took {took:.1f} s"
            refused.append(chunk)
        assert worker.poll() is None, pool.logs()

        own_nats.restart()
        for chunk in refused:  # the client retries after Retry-After, as told
            deadline = time.monotonic() + 30
            while True:
                r = httpx.post(f"{server.url}/v1/events", json=chunk, timeout=30)
                if r.status_code == 202:
                    assert r.json()["accepted"] + r.json()["duplicates"] == len(chunk), r.text
                    break
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, f"still 503 after the restart: {r.text}"
                time.sleep(POLL)
        post_all(server.url, after)
        all_applied_once(url, own_nats.url, stream, pool, worker, events, tmp_path)


def test_nats_goes_down_between_a_workers_commit_and_its_acks(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    own_nats: NatsServer,
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
):
    """The worker's batch is held at its account lock (the test holds it) while
    nats-server stops; released, the batch commits with nowhere to send its acks. The
    worker must outlive that (not die on the unconfirmed acks), and once nats-server is
    back every event is applied once: acks that never arrived mean redeliveries, which the
    store reports as duplicates."""
    events = make_events(customers=8, per_customer=8, seed=29, account="acme")
    first, rest = events[:40], events[40:]
    stream = own_nats.stream()
    with pg_server.database() as url:
        server, pool = deployment(
            launch, workers, tmp_path, url, own_nats, stream, partitions=PARTITIONS
        )
        worker = pool.start("--batch", "10")
        wait_for(lambda: len(owners(url)) == PARTITIONS, 15, "the worker owns all", pool.logs)
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, hashtext('acme'))", (ACCOUNT_NAMESPACE,))
            post_all(server.url, first)
            wait_for(lambda: account_lock_waiters(url) > 0, 15, "a batch waits", pool.logs)
            own_nats.stop_process()
            holder.execute("SELECT pg_advisory_unlock_all()")
        wait_for(lambda: applied(url) > 0, 15, "the held batch committed", pool.logs)
        time.sleep(0.3)  # the acks and their flush meet the closed connection
        assert worker.poll() is None, pool.logs()
        own_nats.restart()
        post_all(server.url, rest)
        all_applied_once(url, own_nats.url, stream, pool, worker, events, tmp_path)


def account_lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = %s AND NOT granted",
            (ACCOUNT_NAMESPACE,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_both_down_postgres_back_first(
    launch: Launch,
    own_pg: PgServer,
    own_nats: NatsServer,
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
):
    """PostgreSQL and nats-server both go (a network cut, a host restart); PostgreSQL comes
    back first, so the worker takes its partitions again while JetStream cannot yet
    answer for their consumers. The worker must wait for it, not die; once nats-server is
    back it applies the rest, each event once."""
    events = make_events(customers=12, per_customer=8, seed=31)
    first, rest = events[:40], events[40:]
    stream = own_nats.stream()
    with own_pg.database() as url:
        server, pool = deployment(
            launch, workers, tmp_path, url, own_nats, stream, partitions=PARTITIONS
        )
        worker = pool.start("--batch", "10")
        post_all(server.url, first)
        wait_for(lambda: applied(url) == len(first), 30, "the first events applied", pool.logs)
        own_nats.stop_process()
        own_pg.halt("fast")
        wait_for(
            lambda: "PostgreSQL not reachable" in pool.logs(),
            15,
            "the worker noticed PostgreSQL is gone",
            pool.logs,
        )
        own_pg.resume()
        wait_for(lambda: worker.poll() is not None or retaking(pool), 20, "a retake", pool.logs)
        time.sleep(0.3)
        assert worker.poll() is None, pool.logs()
        own_nats.restart()
        wait_for(lambda: len(owners(url)) == PARTITIONS, 20, "partitions owned", pool.logs)
        post_all(server.url, rest)
        all_applied_once(url, own_nats.url, stream, pool, worker, events, tmp_path)


def retaking(pool: Workers) -> bool:
    """The worker has tried to take a partition again since PostgreSQL came back."""
    logs = pool.logs()
    back = logs.rfind("PostgreSQL not reachable")
    return back >= 0 and ("took partition" in logs[back:] or "cannot take" in logs[back:])

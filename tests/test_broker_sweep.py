"""Holds in broker mode: the API process does not sweep (it would write states the
workers own), so each worker ends the holds of its own partitions' customers; a sweep
touches no customer another process owns."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from tactful.broker.partition import partition_of
from tactful.policy import PolicyEngine
from tactful.policy.model import Policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

from .natsserver import NatsServer, nats_server  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .serving import Launch
from .test_broker import PARTITIONS, Workers, deployment, events_in, post, wait_for, workers  # noqa: F401

HOLD = {
    "version": "short-holds",
    "rules": [
        {
            "id": "pause",
            "when": 'event.type == "message"',
            "then": [{"hold": {"categories": ["promotional"], "duration": "2s"}}],
        }
    ],
}


def messages(customers: list[str], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{cid}-m",
            "customer_id": cid,
            "type": "message",
            "text": "please stop the newsletters for now",
            "timestamp": at.isoformat(),
        }
        for cid in customers
    ]


def test_a_sweep_ends_only_the_holds_of_the_customers_it_owns(tmp_path: Path) -> None:
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    clock = [now]
    store = SQLiteStore(tmp_path / "t.db")
    engine = Engine(store, PolicyEngine(Policy.model_validate(HOLD)), clock=lambda: clock[0])
    engine.ingest(messages(["mine", "theirs"], now))
    assert {cid for _, cid in store.active_holds()} == {"mine", "theirs"}
    clock[0] = now + timedelta(seconds=5)  # both holds are over
    assert engine.sweep_holds(owns=lambda cid: cid == "mine") == 1
    assert {cid for _, cid in store.active_holds()} == {"theirs"}
    assert engine.sweep_holds() == 1  # no filter: every customer (the embedded engine)
    assert store.active_holds() == []


def holds(url: str, active: bool) -> int:
    where = "WHERE released_at IS NULL" if active else ""
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM holds {where}").fetchone()
        return int(row[0]) if row else 0


def test_workers_end_their_partitions_holds_in_broker_mode(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(HOLD))
    customers = [f"c{i}" for i in range(12)]
    assert len({partition_of(c, PARTITIONS) for c in customers}) > 2  # spread out
    stream = nats_server.stream()
    with pg_server.database() as url:
        server, pool = deployment(launch, workers, tmp_path, url, nats_server, stream)
        for _ in range(2):
            pool.start("--policy", str(policy), "--sweep-interval", "0.2")
        # the holds last 2 s from the events' time: now
        post(server.url, messages(customers, datetime.now(UTC)))
        wait_for(lambda: events_in(url) == len(customers), 30, "events applied", pool.logs)
        assert holds(url, active=False) == len(customers)  # one each, placed by the workers
        wait_for(lambda: holds(url, active=True) == 0, 20, "every hold ended", pool.logs)
        pool.stop()
        ended = re.findall(r"ended (\d+) holds of partitions", pool.logs())
        assert sum(map(int, ended)) == len(customers), pool.logs()  # by the workers' sweeps


def test_a_worker_stops_when_the_store_is_migrated_past_its_schema(
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A newer tactful migrated the store while this worker ran: it stops (exit 3, saying
    why) and gives its partitions back, rather than write rows the new schema may not
    mean; a process started on such a store refuses to start (store/postgres.py)."""
    stream = nats_server.stream()
    with pg_server.database() as url:
        pool = Workers(tmp_path, url, nats_server.url, stream)
        workers.append(pool)
        proc = pool.start()
        wait_for(lambda: "took partition" in pool.logs(), 20, "the worker running", pool.logs)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (999)")
        wait_for(lambda: proc.poll() is not None, 20, "the worker stopping", pool.logs)
        assert proc.returncode == 3, pool.logs()
        logs = pool.logs()
        assert "migrated to schema version 999, newer than this worker's" in logs


def test_peoples_changes_and_a_workers_batches_lose_nothing_of_each_other(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A person places holds through the API (its own process) while a worker applies a
    stream of events for the same customer: each waits for the other (the customer's
    lock) and reads what the other wrote, so the final state has every hold and every
    event. Before, the worker's cached state overwrote the API's holds, and the API
    changed a state it had cached before the worker's events."""
    stream = nats_server.stream()
    start = datetime.now(UTC)
    events = [
        {
            "event_id": f"race-{i}",
            "customer_id": "race",
            "type": "page_view",
            "path": f"/docs/page-{i}",
            "timestamp": (start + timedelta(milliseconds=10 * i)).isoformat(),
        }
        for i in range(120)
    ]
    with pg_server.database() as url:
        server, pool = deployment(launch, workers, tmp_path, url, nats_server, stream)
        pool.start("--batch", "5")
        post(server.url, events[:5])
        wait_for(lambda: events_in(url) == 5, 30, "the customer known", pool.logs)
        holds_placed = 0
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(5, len(events), 5):
                post(server.url, events[i : i + 5])
                if i % 15 == 0:  # while the worker applies what was just sent
                    r = http.post(
                        "/v1/customers/race/holds",
                        json={
                            "categories": ["promotional"],
                            "duration": "3d",
                            "by": "agent:kim",
                            "reason": f"hold {i}",
                        },
                    )
                    assert r.status_code == 201, r.text
                    holds_placed += 1
            wait_for(lambda: events_in(url) == len(events), 30, "every event applied", pool.logs)
            state = http.get("/v1/customers/race").json()
        assert state["events_seen"] == len(events)
        reasons = sorted(h["reason"] for h in state["holds"])
        assert len(reasons) == holds_placed, reasons  # no person's hold overwritten


def test_an_api_process_stops_when_the_store_is_migrated_past_its_schema(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("TACTFUL_SCHEMA_CHECK_S", "0.2")
    stream = nats_server.stream()
    with pg_server.database() as url:
        server = launch(url, tmp_path / "actions.jsonl", *nats_server.serve_args(stream))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (999)")
        wait_for(lambda: server.proc.poll() is not None, 20, "the API stopping")
        assert server.proc.returncode == 3
        assert "migrated to schema version 999" in server.output.read_text()

"""Poison events in `tactful worker` (issue 9), on a real nats-server and PostgreSQL: an
event that makes the pipeline raise is quarantined (with the exception, its id, the
partition and the delivery count) and acked, the rest of its batch and partition is
applied; a message delivered more than --max-deliveries times is quarantined unapplied.
The worker runs in-process so the failure can be injected into the pure core."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tactful.broker.nats import BrokerConfig, Publisher
from tactful.broker.partition import agree_partitions, partition_of
from tactful.broker.status import collect
from tactful.broker.worker import QUARANTINE_SOURCE, Worker, WorkerOptions, consumer_config
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.runtime.pipeline import process as real_process
from tactful.state.store.postgres import PostgresStore

from .natsserver import NatsServer, nats_server  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .test_broker import _drained, assert_same, make_events, outcome, reference, wait_for

PARTITIONS = 2


def _engine(url: str) -> Engine:
    return Engine(PostgresStore(url), PolicyEngine(load_policy()))


def _publish(url: str, config: BrokerConfig, events: list[dict[str, Any]]) -> None:
    engine = _engine(url)
    publisher = Publisher(config, engine)
    try:
        results = publisher.ingest(events)
        assert [r.status for r in results] == ["accepted"] * len(events)
    finally:
        publisher.close()
        engine.store.close()


@contextmanager
def _worker(url: str, config: BrokerConfig, options: WorkerOptions) -> Iterator[Worker]:
    """A worker running in a thread of this process; stopped (batch in hand finished)."""
    engine = _engine(url)
    logs: list[str] = []
    worker = Worker(config, engine, url, options, logs.append)
    loop: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []

    async def main() -> None:
        loop.append(asyncio.get_running_loop())
        await worker.run()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by the test
            errors.append(exc)

    thread = threading.Thread(target=target, name="poison-test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        if loop:
            loop[0].call_soon_threadsafe(worker.stopping.set)
        thread.join(timeout=15)
        engine.store.close()
        assert not thread.is_alive(), "\n".join(logs)
        assert not errors, errors


def _applied(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT event_id FROM events").fetchall()}


def _quarantined(url: str) -> list[tuple[str, str, list[dict[str, Any]], str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, source, reason::text, raw FROM quarantine ORDER BY id"
        ).fetchall()
    return [
        (e, s, json.loads(r), bytes(raw).decode() if not isinstance(raw, str) else raw)
        for e, s, r, raw in rows
    ]


def test_a_poison_event_is_quarantined_and_its_partition_moves_on(
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
):
    events = make_events(customers=8, per_customer=6, seed=3)
    poison = "cust-002-2"  # mid-stream for its customer: events after it must be applied
    good = [e for e in events if e["event_id"] != poison]
    customers = sorted({e["customer_id"] for e in events})
    expected = outcome(reference(good, tmp_path), customers)

    def process(event, *args, **kwargs):  # the pure core, crashing on one event
        if event.event_id == poison:
            raise ValueError(f"injected core failure on {event.event_id}")
        return real_process(event, *args, **kwargs)

    monkeypatch.setattr("tactful.runtime.engine.process", process)
    stream = nats_server.stream()
    with pg_server.database() as url:
        store = PostgresStore(url)
        try:
            count = agree_partitions(store, PARTITIONS, stream, datetime.now(UTC))
        finally:
            store.close()
        config = BrokerConfig(nats_server.url, stream=stream, partitions=count)
        _publish(url, config, events)
        # (no clock sweep: the reference never sweeps, and a sweep would end the weeks-old
        # events' holds; see Workers.start in test_broker.py)
        options = WorkerOptions(batch=20, interval=0.2, ack_wait=2, retry_max=0.2, sweep_interval=0)
        with _worker(url, config, options) as worker:
            wait_for(
                lambda: (
                    _applied(url) == {e["event_id"] for e in good}
                    and _drained(url, nats_server.url, stream)
                ),
                30,
                "every good event applied, the partition drained",
            )
            # the whole batch was tried batch_retries + 1 times, then event by event
            assert worker.stats.failures == options.batch_retries + 1
            assert worker.stats.quarantined == 1
            assert worker.stats.accepted == len(good)
        (row,) = _quarantined(url)
        event_id, source, reason, raw = row
        assert (event_id, source) == (poison, QUARANTINE_SOURCE)
        why = reason[0]["why"]
        p = partition_of("cust-002", count)
        assert "ValueError" in why and "injected core failure" in why
        assert f"event {poison}" in why and f"partition {p}" in why and "delivery 1" in why
        assert json.loads(raw)["event_id"] == poison  # kept, nothing lost
        store = PostgresStore(url)
        try:
            report = collect(store, url, stream, nats_server.url)
            assert report["quarantined_by_workers"] == 1
            got = outcome(store, customers)
        finally:
            store.close()
        assert_same(got, expected)  # the same as a run of the good events alone


def test_a_message_delivered_too_often_is_quarantined_unapplied(
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
):
    """Workers that died holding a message (here: a consumer that naks it three times,
    which JetStream counts as deliveries the same way) make it worn out: the next worker
    quarantines it without running it, and applies the rest."""
    events = make_events(customers=1, per_customer=4, seed=9)
    stream = nats_server.stream()
    with pg_server.database() as url:
        store = PostgresStore(url)
        try:
            count = agree_partitions(store, PARTITIONS, stream, datetime.now(UTC))
        finally:
            store.close()
        config = BrokerConfig(nats_server.url, stream=stream, partitions=count)
        _publish(url, config, events)
        # one unacked at a time, so the nak'ed message is the next one delivered
        options = WorkerOptions(
            batch=20, interval=0.2, ack_wait=1, max_deliveries=2, max_ack_pending=1
        )
        p = partition_of("cust-000", count)
        first = asyncio.run(_deliver_and_nak(config, p, options, times=3))
        assert first == events[0]["event_id"]
        with _worker(url, config, options) as worker:
            wait_for(
                lambda: (
                    len(_applied(url)) == len(events) - 1 and _drained(url, nats_server.url, stream)
                ),
                20,
                "the other events applied, the partition drained",
            )
            assert worker.stats.quarantined == 1
        assert _applied(url) == {e["event_id"] for e in events[1:]}
        (row,) = _quarantined(url)
        assert row[0] == first and row[1] == QUARANTINE_SOURCE
        why = row[2][0]["why"]
        assert "delivered 4 times" in why and "--max-deliveries 2" in why
        assert f"event {first}" in why and f"partition {p}" in why


async def _deliver_and_nak(config: BrokerConfig, p: int, options: WorkerOptions, times: int) -> str:
    import nats

    nc = await nats.connect(config.url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            config.subject(p),
            durable=config.durable(p),
            stream=config.stream,
            config=consumer_config(config, p, options),
        )
        ids = set()
        for _ in range(times):
            (msg,) = await sub.fetch(1, timeout=2)
            ids.add(json.loads(msg.data)["event_id"])
            await msg.nak()
        await nc.flush()
        (only,) = ids
        return str(only)
    finally:
        await nc.close()

"""A store restored from a backup carries on with nothing lost or doubled (issue 9): after
`pg_restore` of a dump taken mid-stream, `tactful rewind --since` (a moment before the
dump) has the workers re-apply what the dump lacks; what it holds comes back as
duplicates. The restored store ends equal to the original: every customer's state,
decisions and actions. Real nats-server and PostgreSQL, as everywhere in the broker
tests."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from tactful.cli import app
from tactful.state.store.postgres import PostgresStore

from .natsserver import NatsServer, nats_server  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .serving import Launch
from .test_broker import (
    PARTITIONS,
    Workers,
    assert_same,
    deployment,
    events_in,
    make_events,
    outcome,
    post,
    wait_for,
    workers,  # noqa: F401  (the fixture)
)


def test_a_restored_store_replays_the_stream_from_before_its_backup(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    workers: list[Workers],  # noqa: F811
    tmp_path: Path,
) -> None:
    events = make_events(customers=20, per_customer=8, seed=5)
    customers = sorted({e["customer_id"] for e in events})
    half = len(events) // 2
    stream = nats_server.stream()
    dump = tmp_path / "backup.dump"
    cli = CliRunner()
    with pg_server.database() as original, pg_server.database() as restored:
        server, pool = deployment(launch, workers, tmp_path, original, nats_server, stream)
        pool.start()
        post(server.url, events[:half])
        wait_for(lambda: events_in(original) == half, 30, "the first half applied", pool.logs)
        since = datetime.now(UTC)  # before the backup: every later event is after it
        subprocess.run(
            [str(pg_server.bindir / "pg_dump"), "--format=custom", "--file", str(dump), original],
            check=True,
            capture_output=True,
        )
        post(server.url, events[half:])
        wait_for(lambda: events_in(original) == len(events), 30, "all applied", pool.logs)

        args = ["rewind", "--since", since.isoformat(), "--broker", nats_server.url]
        args += ["--db", restored, "--stream", stream]
        subprocess.run(
            [str(pg_server.bindir / "pg_restore"), "--dbname", restored, str(dump)],
            check=True,
            capture_output=True,
        )
        assert events_in(restored) == half  # the disaster: what came after the backup
        pool.stop()
        # the restored deployment's workers: a rewind is refused while they own partitions
        (tmp_path / "replay").mkdir()
        replay = Workers(tmp_path / "replay", restored, nats_server.url, stream)
        workers.append(replay)
        replay.start()
        wait_for(lambda: "took partition" in replay.logs(), 20, "a worker running", replay.logs)
        assert events_in(restored) == half  # the consumers are past the lost events
        refused = cli.invoke(app, args, env={"COLUMNS": "200"})
        assert refused.exit_code == 2 and "stop them before rewinding" in refused.output
        replay.stop()
        done = cli.invoke(app, args, env={"COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        assert f"rewound {PARTITIONS} partitions" in done.output
        replay.procs.clear()
        replay.start()
        wait_for(lambda: events_in(restored) == len(events), 30, "replayed", replay.logs)
        a, b = PostgresStore(original), PostgresStore(restored)
        try:
            assert_same(outcome(b, customers), outcome(a, customers))
        finally:
            a.close()
            b.close()

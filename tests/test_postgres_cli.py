"""The CLI and the server on PostgreSQL (issue 9's store, wired): `--db postgresql://...`
replays, exports and serves exactly as on SQLite, against a real PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tactful.cli import app
from tactful.state.store import SQLiteStore, open_store
from tactful.state.store.postgres import PostgresStore

from .conftest import SCENARIO
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .serving import Launch


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_open_store_picks_the_backend_from_the_target(pg_server: PgServer, tmp_path):  # noqa: F811
    sqlite = open_store(tmp_path / "x.db")
    assert isinstance(sqlite, SQLiteStore)
    sqlite.close()
    with pg_server.database() as url:
        postgres = open_store(url)
        assert isinstance(postgres, PostgresStore)
        postgres.close()


def test_replay_and_export_on_postgres_match_sqlite(cli, pg_server: PgServer, tmp_path):  # noqa: F811
    sqlite_db = tmp_path / "r.db"
    with pg_server.database() as url:
        outputs = {}
        for name, target in (("sqlite", str(sqlite_db)), ("postgres", url)):
            log = tmp_path / f"{name}.jsonl"
            args = ["replay", str(SCENARIO), "--db", target, "--actions-log", str(log)]
            first = cli.invoke(app, args)
            assert first.exit_code == 0, first.output
            again = cli.invoke(app, args)  # idempotent on both
            assert again.exit_code == 0, again.output
            line = next(x for x in again.output.splitlines() if "duplicates" in x)
            assert line.split()[-1] == "39"
            exported = cli.invoke(app, ["export", "ben", "--db", target, "--json"])
            assert exported.exit_code == 0, exported.output
            outputs[name] = (
                json.loads(exported.stdout),
                sorted(json.loads(x)["kind"] for x in log.read_text().splitlines()),
            )
        (sqlite_record, sqlite_sent), (pg_record, pg_sent) = outputs["sqlite"], outputs["postgres"]
        assert pg_sent == sqlite_sent and sqlite_sent  # the same actions delivered
        for section in ("events", "decisions", "holds", "handoffs", "outcomes"):
            assert len(pg_record["record"][section]) == len(sqlite_record["record"][section]), (
                section
            )
        assert pg_record["record"]["decisions"] == sqlite_record["record"]["decisions"]


def test_serve_on_postgres(launch: Launch, pg_server: PgServer, tmp_path):  # noqa: F811
    with pg_server.database() as url:
        server = launch(url, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
        event = {
            "event_id": "m1",
            "type": "message",
            "customer_id": "ana",
            "timestamp": "2026-11-02T10:00:00Z",
            "text": "let me talk to a human now, this is useless",
        }
        r = httpx.post(f"{server.url}/v1/events", json=event)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
        customer = httpx.get(f"{server.url}/v1/customers/ana").json()
        assert customer["signal_counts"]
        decisions = httpx.get(f"{server.url}/v1/decisions", params={"customer_id": "ana"}).json()
        assert decisions
        server.stop()
        store = PostgresStore(url)  # it is all in PostgreSQL, not in a file
        try:
            assert store.stats().events == 1
            assert store.get_state("ana") is not None
        finally:
            store.close()
        assert not list(Path(tmp_path).glob("*.db"))


def test_an_unreachable_server_is_retried_then_a_clear_error_without_the_password(
    cli, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TACTFUL_STORE_WAIT", "0.5")
    from .pgserver import _free_port

    url = f"postgresql://tactful:hunter2@127.0.0.1:{_free_port()}/tactful"
    result = cli.invoke(app, ["export", "ana", "--db", url])
    assert result.exit_code == 2
    assert "cannot reach PostgreSQL at 127.0.0.1" in result.output
    assert "tried for 0.5s" in result.output
    assert "hunter2" not in result.output

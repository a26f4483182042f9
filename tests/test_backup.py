"""`tactful backup`: a consistent copy of a store that is serving, and a restored store
that carries on with nothing lost or doubled."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tactful.actions.channels import LogChannel
from tactful.actions.dispatch import Dispatcher
from tactful.policy import PolicyEngine
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.backup import BackupError, backup_sqlite

from .serving import Launch
from .test_serve import wait_for

ASKS = ["I want to speak to a human", "This is the third time, still broken!!", "hello"]


def events(prefix: str, customers: int, per_customer: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{c}-{i}",
            "type": "message",
            "customer_id": f"{prefix}c{c}",
            "timestamp": f"2026-10-01T10:{i:02d}:{c % 60:02d}Z",
            "text": ASKS[(c + i) % len(ASKS)],
        }
        for i in range(per_customer)
        for c in range(customers)
    ]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_backup_while_serving_is_one_consistent_snapshot(tmp_path: Path, launch: Launch) -> None:
    db = tmp_path / "live.db"
    server = launch(db, tmp_path / "actions.jsonl")
    batches = [events(f"b{k}", 10, 2) for k in range(40)]
    posted: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            for batch in batches:
                assert http.post("/v1/events", json=batch).status_code == 202
                posted.append(len(batch))

    sender = threading.Thread(target=send)
    sender.start()
    wait_for(lambda: len(posted) >= 5, 10, "the first batches")
    copy = tmp_path / "copy.db"
    done = subprocess.run(
        [sys.executable, "-m", "tactful.cli", "backup", str(copy), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    sender.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"written to {copy}" in " ".join(done.stdout.split())  # rich wraps lines
    assert not copy.with_name("copy.db.partial").exists()
    assert rows(copy, "PRAGMA integrity_check") == [("ok",)]
    backed = {r[0] for r in rows(copy, "SELECT event_id FROM events")}
    final = {r[0] for r in rows(db, "SELECT event_id FROM events")}
    assert backed and backed <= final  # taken mid-stream: some of the events, all real
    # One snapshot of whole commits: every event in the copy has its customer's state,
    # and every batch (one request, one commit here) is all in or all out.
    customers = {r[0] for r in rows(copy, "SELECT customer_id FROM customers")}
    assert {r[0] for r in rows(copy, "SELECT customer_id FROM events")} <= customers
    for k in range(40):
        ids = {e["event_id"] for e in batches[k]}
        assert ids <= backed or not ids & backed, f"batch {k} split by the backup"


def test_a_restored_store_carries_on_with_nothing_lost_or_doubled(
    tmp_path: Path, policy: PolicyEngine
) -> None:
    before = events("a", 6, 3)  # asks for humans: handoffs, holds
    after = events("z", 6, 3)
    log = tmp_path / "receiver.jsonl"  # what the receiving side saw, line by line

    def run(store: SQLiteStore, batch: list[dict[str, Any]]) -> None:
        Engine(store, policy).ingest(batch)
        Dispatcher(store, {"log": LogChannel(log)}).drain()

    live = SQLiteStore(tmp_path / "live.db")
    run(live, before)
    backup_sqlite(tmp_path / "live.db", tmp_path / "backup.db")
    run(live, after)
    expected_keys = {r["idempotency_key"] for r in live.list_outbox(limit=10_000)}
    expected_decisions = sorted(
        (d["event_id"], d["kind"], d["rule_id"]) for d in live.list_decisions(limit=10_000)
    )
    expected_states = live.load_states([f"{p}c{c}" for p in "az" for c in range(6)])
    live.close()

    # The disk is lost; the backup comes back, and the sender re-sends what it sent since
    # (at least once: it cannot know exactly where the backup stopped).
    shutil.copy(tmp_path / "backup.db", tmp_path / "restored.db")
    restored = SQLiteStore(tmp_path / "restored.db")
    run(restored, before + after)

    keys = {r["idempotency_key"] for r in restored.list_outbox(limit=10_000)}
    assert keys == expected_keys  # the same actions, planned again with the same keys
    decisions = sorted(
        (d["event_id"], d["kind"], d["rule_id"]) for d in restored.list_decisions(limit=10_000)
    )
    assert decisions == expected_decisions  # the resent "before" events were duplicates
    states = restored.load_states(list(expected_states))
    assert {c: s.events_seen for c, s in states.items()} == {
        c: s.events_seen for c, s in expected_states.items()
    }
    restored.close()

    seen = [json.loads(line)["idempotency_key"] for line in log.read_text().splitlines()]
    assert set(seen) == expected_keys  # nothing lost
    twice = {k for k in seen if seen.count(k) > 1}
    first_keys = {r[0] for r in rows(tmp_path / "backup.db", "SELECT idempotency_key FROM outbox")}
    # Delivered before the backup: recorded as delivered in it, never sent again. Sent
    # twice: only actions planned after the backup, with the same key both times, so a
    # receiver that honours Idempotency-Key acts once.
    assert not twice & first_keys
    assert twice and twice <= expected_keys - first_keys


def test_backup_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "a.db").close()
    backup_sqlite(tmp_path / "a.db", tmp_path / "b.db")
    with pytest.raises(BackupError, match="exists; choose another path or pass --force"):
        backup_sqlite(tmp_path / "a.db", tmp_path / "b.db")
    assert backup_sqlite(tmp_path / "a.db", tmp_path / "b.db", force=True).schema_version > 0
    with pytest.raises(BackupError, match="no such database file"):
        backup_sqlite(tmp_path / "missing.db", tmp_path / "c.db")
    with pytest.raises(BackupError, match="is the database itself"):
        backup_sqlite(tmp_path / "a.db", tmp_path / "a.db", force=True)
    done = subprocess.run(
        [sys.executable, "-m", "tactful.cli", "backup", "x.dump", "--db", "postgresql://u:pw@h/d"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "pg_dump" in done.stderr and "pw" not in done.stderr

"""The store conformance suite: every backend must pass it (SQLite now, PostgreSQL next)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tactful.events import parse_event
from tactful.runtime.pipeline import Processed, process
from tactful.state.customer import CustomerState
from tactful.state.store import DuplicateEventError, QuarantineItem, SQLiteStore, Store
from tactful.state.store.base import MAX_QUARANTINE_BYTES
from tactful.state.store.sqlite import MIGRATIONS

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
def store(request, tmp_path) -> Iterator[Store]:
    backend = SQLiteStore(tmp_path / "store.db")
    yield backend
    backend.close()


def processed(policy, raws) -> list[Processed]:
    states: dict[str, CustomerState] = {}
    out = []
    for raw in raws:
        event = parse_event(raw)
        state = states.get(event.customer_id) or CustomerState(customer_id=event.customer_id)
        result = process(event, state, policy, event.timestamp)
        states[event.customer_id] = result.state
        out.append(result)
    return out


def escalating(make_event):
    """Events that make one decision with actions: a request for a human."""
    return [
        make_event(
            "identify", "c1", "2026-10-01T09:00:00Z", account_id="a1", traits={"tier": "enterprise"}
        ),
        make_event("message", "c1", "2026-10-01T10:00:00Z", text="Let me talk to a human now"),
        make_event("page_view", "c2", "2026-10-01T10:05:00Z", path="/pricing"),
    ]


def test_commit_writes_every_effect(store, policy, make_event):
    batch = processed(policy, escalating(make_event))
    store.commit(batch, NOW)
    stats = store.stats()
    assert stats.events == 3 and stats.customers == 2
    assert stats.decisions == sum(len(p.decisions) for p in batch) > 0
    assert stats.outbox_pending == sum(len(p.actions) for p in batch) > 0
    state = store.get_state("c1")
    assert state is not None
    assert state == batch[1].state
    assert store.seen_event_ids([p.event.event_id for p in batch] + ["nope"]) == {
        p.event.event_id for p in batch
    }
    decisions = store.list_decisions(customer_id="c1")
    assert {d["kind"] for d in decisions} >= {"escalate", "hold"}
    assert all(d["policy_version"] == policy.version for d in decisions)
    events = store.list_events("c1")
    assert [e["type"] for e in events] == ["identify", "message"]
    assert events[1]["signals"][0]["name"] in {"wants_human", "frustration", "urgency"}


def test_commit_is_all_or_nothing_on_a_duplicate(store, policy, make_event):
    batch = processed(policy, escalating(make_event))
    store.commit(batch[:1], NOW)
    before = store.stats()
    with pytest.raises(DuplicateEventError) as info:
        store.commit(batch, NOW)
    assert info.value.event_ids == [batch[0].event.event_id]
    assert store.stats() == before
    assert store.get_state("c2") is None


def test_load_states_round_trips(store, policy, make_event):
    batch = processed(policy, escalating(make_event))
    store.commit(batch, NOW)
    loaded = store.load_states(["c1", "c2", "missing"])
    assert set(loaded) == {"c1", "c2"}
    assert loaded["c1"].account.tier == "enterprise"
    assert loaded["c1"].handoffs and loaded["c1"].holds


def test_decisions_since_filter(store, policy, make_event):
    store.commit(processed(policy, escalating(make_event)), NOW)
    all_rows = store.list_decisions()
    assert all_rows
    cutoff = datetime(2026, 10, 1, 10, 0, 1, tzinfo=UTC)
    assert store.list_decisions(since=cutoff) == [
        d for d in all_rows if d["at"] >= cutoff.isoformat()
    ]
    assert store.list_decisions(limit=1) == all_rows[:1]


def test_quarantine_keeps_reason_and_capped_raw(store):
    store.quarantine(
        [
            QuarantineItem(
                NOW,
                "api",
                [{"field": "text", "value": None, "why": "too long"}],
                "x" * (MAX_QUARANTINE_BYTES * 2),
                "e1",
                "c1",
            ),
            QuarantineItem(
                NOW,
                "replay:f.jsonl",
                [{"field": "body", "value": None, "why": "not JSON"}],
                "{oops",
            ),
        ]
    )
    rows = store.list_quarantine()
    assert [r["source"] for r in rows] == ["replay:f.jsonl", "api"]  # newest first
    assert rows[1]["reason"][0]["why"] == "too long"
    assert rows[1]["event_id"] == "e1"
    assert len(rows[1]["raw"]) <= MAX_QUARANTINE_BYTES + 20
    assert rows[0]["raw"] == "{oops"
    assert store.stats().quarantined == 2


def test_outbox_delivery_retry_and_dead_letter(store, policy, make_event):
    store.commit(processed(policy, escalating(make_event)), NOW)
    pending = store.pending_actions(NOW)
    assert pending and all(r.attempts == 0 for r in pending)
    first, *rest = pending
    store.mark_failed(first.action_id, "boom", NOW + timedelta(minutes=1), dead=False)
    due_now = store.pending_actions(NOW)
    assert first.action_id not in [r.action_id for r in due_now]
    later = store.pending_actions(NOW + timedelta(minutes=2))
    assert [r.attempts for r in later if r.action_id == first.action_id] == [1]
    store.mark_failed(first.action_id, "boom again", NOW, dead=True)
    dead = store.list_outbox("dead")
    assert [(r["action_id"], r["last_error"], r["attempts"]) for r in dead] == [
        (first.action_id, "boom again", 2)
    ]
    store.mark_delivered([r.action_id for r in rest], NOW)
    assert store.pending_actions(NOW + timedelta(days=1)) == []
    assert store.stats().outbox_dead == 1


def test_sqlite_migrations_are_versioned(tmp_path):
    path = tmp_path / "m.db"
    SQLiteStore(path).close()
    reopened = SQLiteStore(path)
    assert reopened.schema_version == len(MIGRATIONS)
    reopened.close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this tactful"):
        SQLiteStore(path)


def test_sqlite_is_in_wal_mode_with_the_stated_durability(tmp_path):
    for durability, level in (("full", 2), ("normal", 1)):
        store = SQLiteStore(tmp_path / f"{durability}.db", durability=durability)  # type: ignore[arg-type]
        assert store._query("PRAGMA journal_mode")[0][0] == "wal"
        assert store._query("PRAGMA synchronous")[0][0] == level
        store.close()


def test_outcomes_are_written_with_their_batch(store, policy, make_event):
    raws = [
        *escalating(make_event),
        make_event("feedback", "c1", "2026-10-01T11:00:00Z", rating=1, comment="useless"),
    ]
    store.commit(processed(policy, raws), NOW)
    [row] = store.list_outcomes()
    assert (row["customer_id"], row["kind"], row["value"]) == ("c1", "csat", 1.0)
    assert row["rule_id"] == "human_requested"
    assert row["detail"] == {"comment": "useless"}
    assert store.list_outcomes(customer_id="c2") == []
    assert store.list_outcomes(since=datetime(2026, 10, 2, tzinfo=UTC)) == []


def test_latest_decisions_are_the_newest(store, policy, make_event):
    raws = [
        make_event(text="I want a human", at=f"2026-10-0{day}T10:00:00Z") for day in range(1, 6)
    ]
    store.commit(processed(policy, raws), NOW)
    everything = store.list_decisions(customer_id="c1")
    latest = store.list_decisions(customer_id="c1", limit=2, latest=True)
    assert latest == everything[-2:]
    assert store.list_decisions(customer_id="c1", limit=2) == everything[:2]

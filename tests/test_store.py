"""The store conformance suite: every backend must pass it (SQLite and PostgreSQL).

The PostgreSQL backend runs against a real server the tests start (tests/pgserver.py),
one fresh database per test; without PostgreSQL's binaries those tests are skipped.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tactful.access import ApiKey
from tactful.actions.lifecycle import place_hold, reject_review, release_hold, update_handoff
from tactful.events import parse_event
from tactful.learn.outcomes import Outcome
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.pipeline import Processed, process
from tactful.state.account import AccountState
from tactful.state.customer import AccountContext, CustomerState
from tactful.state.store import DuplicateEventError, QuarantineItem, SQLiteStore, Store
from tactful.state.store import postgres as pg
from tactful.state.store.base import MAX_QUARANTINE_BYTES, MetricRows, StoreStats
from tactful.state.store.postgres import PostgresStore
from tactful.state.store.sqlite import MIGRATIONS
from tests.pgserver import PgServer
from tests.pgserver import pg_server as pg_server  # the session's PostgreSQL server

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        backend: Store = SQLiteStore(tmp_path / "store.db")
        yield backend
        backend.close()
        return
    server: PgServer = request.getfixturevalue("pg_server")
    with server.database() as conninfo:
        backend = PostgresStore(conninfo, max_size=4)
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


def with_accounts(policy, raws, shadow=None) -> tuple[list[Processed], dict[str, AccountState]]:
    """As the engine runs the core: each event with its customer's account."""
    states: dict[str, CustomerState] = {}
    accounts: dict[str, AccountState] = {}
    batch = []
    for raw in raws:
        event = parse_event(raw)
        state = states.get(event.customer_id) or CustomerState(customer_id=event.customer_id)
        aid = event.account_id or state.account_id
        account = (accounts.get(aid) or AccountState(account_id=aid)) if aid else None
        result = process(event, state, policy, event.timestamp, account=account, shadow=shadow)
        states[event.customer_id] = result.state
        if result.account is not None:
            accounts[result.account.account_id] = result.account
        batch.append(result)
    return batch, accounts


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


def test_a_batch_repeating_an_event_id_is_refused_whole(store, policy, make_event):
    batch = processed(policy, escalating(make_event))
    with pytest.raises(DuplicateEventError) as info:
        store.commit([*batch, batch[1]], NOW)
    assert info.value.event_ids == [batch[1].event.event_id]
    assert store.stats() == StoreStats(0, 0, 0, 0, 0, 0)
    why = [{"field": "body", "value": None, "why": "not JSON"}]
    store.commit([], NOW, rejected=[QuarantineItem(NOW, "api", why, "{")])  # rejected only
    store.commit([], NOW)
    assert store.stats() == StoreStats(0, 0, 0, 1, 0, 0)


def test_commits_from_many_threads_land_exactly_once(store, policy, make_event):
    """The engine commits from several threads: each batch lands whole, and of two
    commits of the same event one wins and the other is told it is a duplicate."""
    batches = [processed(policy, [make_event(customer_id=f"c{i}")]) for i in range(8)]
    contested = processed(policy, [make_event(customer_id="cx", text="I want a human")])
    refused: list[list[str]] = []

    def run(batch: list[Processed]) -> None:
        try:
            store.commit(batch, NOW)
        except DuplicateEventError as exc:
            refused.append(exc.event_ids)

    threads = [threading.Thread(target=run, args=(b,)) for b in [*batches, contested, contested]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert refused == [[contested[0].event.event_id]]
    stats = store.stats()
    assert (stats.events, stats.customers) == (9, 9)
    assert len(store.list_decisions(customer_id="cx")) == len(contested[0].decisions) > 0


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


def test_claimed_rows_wait_out_their_lease_unless_settled(store, policy, make_event):
    raws = [
        make_event("message", f"c{i}", "2026-10-01T10:00:00Z", text="Let me talk to a human now")
        for i in range(3)
    ]
    store.commit(processed(policy, raws), NOW)
    everything = [r.action_id for r in store.pending_actions(NOW, limit=100)]
    assert len(everything) >= 4
    lease = timedelta(minutes=2)
    first = store.pending_actions(NOW, limit=2, lease=lease)
    second = store.pending_actions(NOW, limit=100, lease=lease)
    # In order, and disjoint: what one dispatcher claimed, the next does not see.
    assert [r.action_id for r in first + second] == everything
    assert store.pending_actions(NOW + timedelta(minutes=1), limit=100, lease=lease) == []
    store.mark_delivered([first[0].action_id], NOW)
    store.mark_failed(first[1].action_id, "503", NOW + timedelta(seconds=30), dead=False)
    # A failure's retry time ends the claim; a dispatcher that died leaves the rest claimed
    # until the lease is over, then anyone may send them (same rows, same keys).
    assert [r.action_id for r in store.pending_actions(NOW + timedelta(minutes=1))] == [
        first[1].action_id
    ]
    after = store.pending_actions(NOW + lease, limit=100)
    assert {r.action_id for r in after} == set(everything) - {first[0].action_id}
    assert {r.idempotency_key for r in after} >= {r.idempotency_key for r in second}


def test_dispatchers_sharing_postgres_deliver_each_action_once(
    pg_server: PgServer, policy, make_event, tmp_path
):
    from tactful.actions.channels import ChannelError
    from tactful.actions.dispatch import Dispatcher
    from tactful.state.store.base import OutboxRow

    class Slow:
        """A receiver that takes its time and notes every delivery (and refuses some)."""

        name = "log"
        concurrency = 2

        def __init__(self) -> None:
            self.seen: list[str] = []
            self.lock = threading.Lock()
            self.calls = 0

        def deliver(self, row: OutboxRow) -> None:
            with self.lock:
                self.calls += 1
                refuse = self.calls % 7 == 0
            threading.Event().wait(0.005)
            if refuse:
                raise ChannelError("503 from the receiver")
            with self.lock:
                self.seen.append(row.idempotency_key)

    raws = [
        make_event("message", f"c{i}", "2026-10-01T10:00:00Z", text="Let me talk to a human now")
        for i in range(30)
    ]
    with pg_server.database() as conninfo:
        writer = PostgresStore(conninfo, max_size=2)
        writer.commit(processed(policy, raws), NOW)
        expected = {r.idempotency_key for r in writer.pending_actions(NOW, limit=1000)}
        writer.close()
        receiver = Slow()
        clock = [NOW]
        stores = [PostgresStore(conninfo, max_size=2) for _ in range(3)]
        dispatchers = [Dispatcher(s, {"log": receiver}, clock=lambda: clock[0]) for s in stores]
        assert all(d.lease is not None for d in dispatchers)  # PostgreSQL: rows are claimed
        for _ in range(20):  # rounds of three dispatchers at once, then time moves on
            if set(receiver.seen) == expected:
                break
            rounds = [threading.Thread(target=d.run_once, args=(8,)) for d in dispatchers]
            for t in rounds:
                t.start()
            for t in rounds:
                t.join()
            clock[0] += timedelta(minutes=5)  # past retries' backoff
        for s in stores:
            s.close()
    assert len(expected) == 60  # a handoff and a hold each
    assert sorted(receiver.seen) == sorted(expected)  # each once: none lost, none twice


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


# -- what the suite checks beyond the first steps -------------------------------------------
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def at(value: str) -> str:
    """A timestamp as every backend hands it back: UTC ISO 8601 with microseconds."""
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="microseconds")


def test_outbox_by_channel_requeue_drop_and_failures_in_one_go(store, policy, make_event):
    store.commit(processed(policy, escalating(make_event)), NOW)
    pending = store.pending_actions(NOW)
    # due order: c2's grouped notification flushes first; then the rest in written order
    assert [r.kind for r in pending] == ["notify", "handoff.created", "hold.started"]
    assert pending[0].batch_id and pending[1].batch_id is None
    assert pending[1].created_at == NOW and pending[1].created_at.utcoffset() == timedelta(0)
    assert [r.kind for r in store.pending_actions(NOW, limit=1)] == ["notify"]
    assert store.pending_actions(NOW, channel="log", exclude=["slack"]) == pending
    assert store.pending_actions(NOW, channel="slack") == []
    assert store.pending_actions(NOW, exclude=["log"]) == []
    notify, handoff, hold = (r.action_id for r in pending)

    store.mark_failed_many([(handoff, "HTTP 500", NOW + MINUTE, False), (hold, "gone", NOW, True)])
    assert [r.action_id for r in store.pending_actions(NOW)] == [notify]
    [dead] = store.list_outbox("dead")
    assert (dead["action_id"], dead["attempts"], dead["last_error"]) == (hold, 1, "gone")
    # only dead actions go back, due now, their attempts reset
    assert store.requeue_actions([hold, notify, "nope"], NOW + 2 * MINUTE) == [hold]
    assert store.requeue_actions(None, NOW) == []
    again = {r.action_id: r for r in store.pending_actions(NOW + 2 * MINUTE)}
    assert again[hold].attempts == 0 and again[handoff].attempts == 1

    # dropped: the pending or dead ones named; with None, every dead one
    store.mark_failed(handoff, "still down", NOW, dead=True)
    assert store.drop_actions([notify, "nope"], "not needed") == [notify]
    assert store.drop_actions(None, "given up") == [handoff]
    dropped = {r["action_id"]: r["last_error"] for r in store.list_outbox("dropped")}
    assert dropped == {notify: "not needed", handoff: "given up"}

    # delivered: pending rows only, once
    store.mark_delivered([hold, notify, hold], NOW + 3 * MINUTE)
    rows = {r["action_id"]: r for r in store.list_outbox()}
    assert (rows[hold]["status"], rows[hold]["attempts"]) == ("delivered", 1)
    assert rows[hold]["delivered_at"] == "2026-11-01T00:03:00.000000+00:00"
    assert (rows[notify]["status"], rows[notify]["delivered_at"]) == ("dropped", None)
    assert store.stats().outbox_pending == 0 and store.stats().outbox_dead == 0
    assert store.pending_actions(NOW + DAY) == []


def test_holds_and_handoffs_follow_people_and_the_clock(store, policy, make_event):
    store.commit(processed(policy, escalating(make_event)), NOW)
    rules = policy.policy
    [hold] = store.list_holds(customer_id="c1")
    assert hold["categories"] == ["promotional"] and hold["released_at"] is None
    assert store.active_holds() == [(hold["hold_id"], "c1")]
    starts, ends = (
        datetime.fromisoformat(hold["starts_at"]),
        datetime.fromisoformat(hold["ends_at"]),
    )
    assert store.list_holds(active_at=starts + HOUR) == [hold]
    assert store.list_holds(active_at=ends) == []
    [handoff] = store.list_handoffs(status="open")
    hid = handoff["handoff_id"]
    assert handoff["package"]["handoff_id"] == hid and handoff["customer_id"] == "c1"
    assert store.get_handoff(hid) == handoff
    assert store.get_handoff("handoff:nope") is None
    assert store.list_handoffs(queue=handoff["queue"]) == [handoff]
    assert store.list_handoffs(queue=handoff["queue"], customer_id="c2") == []

    # an agent accepts, then resolves: the list follows, the resolution is an outcome
    later = datetime(2026, 10, 1, 11, tzinfo=UTC)  # while the rule's hold is on
    state = store.get_state("c1")
    assert state is not None
    accepted = update_handoff(state, hid, "accepted", later, "agent-7", "", rules)
    store.commit_changes([accepted], later)
    got = store.get_handoff(hid)
    assert got is not None
    assert (got["status"], got["updated_by"], got["updated_at"]) == (
        "accepted",
        "agent-7",
        "2026-10-01T11:00:00.000000+00:00",
    )
    resolved = update_handoff(accepted.state, hid, "resolved", later + HOUR, "agent-7", "", rules)
    store.commit_changes([resolved], later + HOUR)
    assert store.list_handoffs(status="open") == []
    assert [h["status"] for h in store.list_handoffs()] == ["resolved"]
    [outcome] = store.list_outcomes(customer_id="c1")
    assert (outcome["kind"], outcome["rule_id"]) == ("handoff_resolved", "human_requested")
    assert outcome["detail"]["by"] == "agent-7"
    kinds = [d["kind"] for d in store.list_decisions(customer_id="c1", rule_id="agent")]
    assert kinds == ["handoff_accepted", "handoff_resolved"]

    # a person releases the rule's hold and places another, in one commit
    released = release_hold(resolved.state, hold["hold_id"], later, "maria", "spoke to them", rules)
    placed = place_hold(
        released.state, ["promotional", "sales"], NOW + 10 * DAY, later, "maria", "VIP", "", rules
    )
    store.commit_changes([released, placed], later)
    assert store.get_state("c1") == placed.state
    new, old = store.list_holds(customer_id="c1")  # newest first
    assert old["hold_id"] == hold["hold_id"]
    assert (old["released_at"], old["released_by"], old["comment"]) == (
        "2026-10-01T11:00:00.000000+00:00",
        "maria",
        "spoke to them",
    )
    assert old["release_reason"] == "released by maria"
    assert new["categories"] == ["promotional", "sales"] and new["created_by"] == "person:maria"
    assert new["released_at"] is None and new["reason"] == "VIP"
    assert store.active_holds() == [(new["hold_id"], "c1")]
    assert store.active_holds(after=new["hold_id"]) == []
    assert store.list_holds(active_at=later + DAY) == [new]
    manual = store.list_decisions(customer_id="c1", rule_id="manual")
    assert sorted(d["kind"] for d in manual) == ["hold", "release"]
    assert store.commit_changes([], later) is None


def test_a_solved_ticket_resolves_the_customers_handoffs(store, policy, make_event):
    raws = [
        *escalating(make_event),
        make_event("ticket_closed", "c1", "2026-10-01T12:00:00Z", ticket_id="T-9"),
    ]
    store.commit(processed(policy, raws), NOW)
    [handoff] = store.list_handoffs()
    assert (handoff["status"], handoff["updated_by"]) == ("resolved", "ticket:T-9")
    assert handoff["updated_at"] == "2026-10-01T12:00:00.000000+00:00"


def test_export_then_erase_leaves_nothing_of_the_customer(store, policy, make_event):
    raws = [
        *escalating(make_event),
        make_event("feedback", "c1", "2026-10-01T11:00:00Z", rating=1, comment="useless"),
    ]
    why = [{"field": "type", "value": "x", "why": "unknown type"}]
    rejected = QuarantineItem(NOW, "api", why, '{"customer_id": "c1", "type": "x"}', "q1", "c1")
    store.commit(processed(policy, raws), NOW, rejected=[rejected])
    store.quarantine(
        [
            QuarantineItem(NOW, "api", why, '{"customer_id": "c1", "text": "broken'),
            QuarantineItem(NOW, "api", why, '{"customer_id": "c2", "text": "broken'),
        ]
    )
    record = store.export_customer("c1")
    assert list(record) == [
        "events",
        "customers",
        "decisions",
        "outcomes",
        "outbox",
        "quarantine",
        "shadow_events",
        "holds",
        "handoffs",
        "reviews",
    ]
    assert [e["type"] for e in record["events"]] == ["identify", "message", "feedback"]
    assert record["events"][1]["payload"]["text"] == "Let me talk to a human now"
    assert record["events"][1]["ts"] == "2026-10-01T10:00:00.000000+00:00"
    assert record["customers"][0]["state"]["customer_id"] == "c1"
    assert record["holds"][0]["categories"] == ["promotional"]
    assert record["handoffs"][0]["package"]["customer_id"] == "c1"
    assert [o["kind"] for o in record["outcomes"]] == ["csat"]
    assert {r["kind"] for r in record["outbox"]} >= {"handoff.created", "hold.started"}
    # a kept body that reads as JSON is decoded too
    assert [q["raw"] for q in record["quarantine"]] == [{"customer_id": "c1", "type": "x"}]

    removed = store.erase_customer("c1")
    assert removed["events"] == 3 and removed["customers"] == 1 and removed["holds"] == 1
    assert removed["decisions"] == len(record["decisions"]) > 0
    assert removed["quarantine"] == 2  # its own, and the broken one that names it
    assert all(rows == [] for rows in store.export_customer("c1").values())
    assert store.get_state("c1") is None and store.get_state("c2") is not None
    assert [q["raw"] for q in store.list_quarantine()] == ['{"customer_id": "c2", "text": "broken']
    assert store.list_holds() == [] and store.list_handoffs() == []
    assert store.erase_customer("c1")["events"] == 0
    # c2's grouped notification: its group's memory goes with it
    assert store.erase_customer("c2")["notify_groups"] == 1
    assert store.stats().events == 0


def test_erase_finds_a_non_ascii_customer_however_json_wrote_the_id(store, policy, make_event):
    """An id like "josé" is stored escaped by json.dumps and unescaped by pydantic and most
    senders; erasure must find both (it once missed the account's members at risk and the
    unattributed quarantine rows)."""
    who = "josé"
    raws = [
        make_event("identify", who, "2026-10-01T09:00:00Z", account_id="a1", traits={}),
        make_event("message", who, "2026-10-01T10:00:00Z", text="This is useless!! I quit"),
        make_event("message", who, "2026-10-01T10:01:00Z", text="Let me talk to a human NOW"),
    ]
    store.commit(with_accounts(policy, raws)[0], NOW)
    why = [{"field": "type", "value": "x", "why": "unknown type"}]
    store.quarantine(
        [
            QuarantineItem(NOW, "api", why, '{"customer_id": "josé", "text": "broken'),
            QuarantineItem(NOW, "api", why, '{"customer_id": "jos\\u00e9", "text": "broken'),
        ]
    )
    account = store.get_account("a1")
    assert account is not None and [m.customer_id for m in account.at_risk] == [who]
    removed = store.erase_customer(who)
    assert removed["quarantine"] == 2
    assert removed["accounts (members at risk)"] == 1
    account = store.get_account("a1")
    assert account is not None and account.at_risk == []
    assert store.list_quarantine() == []
    assert all(rows == [] for rows in store.export_customer(who).values())


def test_retention_forgets_old_text_and_keeps_the_rest(store, policy, make_event):
    store.commit(processed(policy, escalating(make_event)), NOW)
    why = [{"field": "body", "value": None, "why": "not JSON"}]
    store.quarantine([QuarantineItem(NOW - 40 * DAY, "api", why, "my email is x@y.z")])
    nothing = store.forget_text(NOW - 60 * DAY, ["text"])
    assert nothing == {"events": 0, "customers": 0, "handoffs": 0, "outbox": 0, "quarantine": 0}

    changed = store.forget_text(NOW + MINUTE, ["text", "comment"])
    assert changed == {"events": 1, "customers": 1, "handoffs": 1, "outbox": 1, "quarantine": 1}
    message = store.list_events("c1")[1]
    assert "text" not in message["event"] and message["event"]["customer_id"] == "c1"
    assert message["signals"]  # the scores stay
    state = store.get_state("c1")
    assert state is not None and state.recent_messages == [] and state.trend
    [handoff] = store.list_handoffs()
    assert "quotes" not in handoff["package"] and handoff["package"]["why"]
    assert all("quotes" not in r["payload"] for r in store.list_outbox())
    assert store.list_quarantine()[0]["raw"] == "[expired: past the retention period]"
    assert len(store.list_decisions()) == 3
    again = store.forget_text(NOW + MINUTE, ["text", "comment"])
    assert set(again.values()) == {0}
    assert "events" not in store.forget_text(NOW + MINUTE, [])


def test_text_round_trips_exactly(store, policy, make_event):
    """NUL, non-ASCII and an emoji in a message, and in a quarantined body, come back as
    they went in (PostgreSQL's text type cannot hold NUL; the JSON and the body can)."""
    text = 'nul \x00 here, caf\u00e9 \U0001f642 \\ "quoted"'
    store.commit(processed(policy, [make_event(text=text)]), NOW)
    [event] = store.list_events("c1")
    assert event["event"]["text"] == text
    state = store.get_state("c1")
    assert state is not None and state.recent_messages == [text]
    store.quarantine([QuarantineItem(NOW, "api", [], "raw \x00 body \u00e9")])
    assert store.list_quarantine()[0]["raw"] == "raw \x00 body \u00e9"
    assert store.forget_text(NOW + MINUTE, ["text"])["events"] == 1


def test_api_keys_are_added_listed_and_ended(store):
    k1 = ApiKey("k1", "ingest", frozenset({"ingest", "read"}), "h1", NOW)
    k2 = ApiKey(
        "k2", "ops", frozenset({"admin"}), "h2", NOW + MINUTE, None, NOW + 30 * DAY, 5.5, 1024, 10
    )
    store.add_key(k2)
    store.add_key(k1)
    assert store.list_keys() == [k1, k2]
    assert all(k.created_at.utcoffset() == timedelta(0) for k in store.list_keys())
    assert store.end_key("k1", NOW + HOUR, revoke=False) is True  # lapses then
    assert store.end_key("k1", NOW + 2 * HOUR) is True
    assert store.end_key("k1", NOW + 3 * HOUR) is False  # already revoked
    assert store.end_key("nope", NOW) is False
    keys = {k.key_id: k for k in store.list_keys()}
    assert (keys["k1"].expires_at, keys["k1"].revoked_at) == (NOW + HOUR, NOW + 2 * HOUR)
    assert keys["k2"] == k2 and keys["k2"].valid(NOW + 2 * HOUR)
    assert not keys["k1"].valid(NOW + 2 * HOUR)


def test_recorded_outcomes_are_idempotent_on_their_id(store):
    o1 = Outcome("o1", "e1", "c1", NOW, "csat", 4.0, "r1", {"comment": "ok"})
    o2 = Outcome("o2", "e2", "c1", NOW + MINUTE, "conversion")
    assert store.record_outcomes([o1, o2]) == 2
    o1_again = Outcome("o1", "e1", "c1", NOW, "csat", 1.0, "r1", {})
    o3 = Outcome("o3", "e3", "c2", NOW + HOUR, "churn")
    assert store.record_outcomes([o1_again, o2, o3, o3]) == 1
    assert store.record_outcomes([]) == 0
    assert store.get_outcome("o1") == {
        "outcome_id": "o1",
        "event_id": "e1",
        "customer_id": "c1",
        "at": "2026-11-01T00:00:00.000000+00:00",
        "kind": "csat",
        "value": 4.0,
        "rule_id": "r1",
        "detail": {"comment": "ok"},
    }
    assert store.get_outcome("nope") is None
    assert [o["outcome_id"] for o in store.list_outcomes()] == ["o1", "o2", "o3"]
    assert [o["outcome_id"] for o in store.list_outcomes(customer_id="c1")] == ["o1", "o2"]
    assert [o["outcome_id"] for o in store.list_outcomes(since=NOW + MINUTE)] == ["o2", "o3"]
    assert [o["outcome_id"] for o in store.list_outcomes(limit=1)] == ["o1"]


def test_quarantine_pages_newest_first(store):
    bodies = [f'{{"n": {i}' for i in range(6)]
    store.quarantine(
        [
            QuarantineItem(NOW + i * MINUTE, "api", [{"field": "body", "why": str(i)}], body)
            for i, body in enumerate(bodies)
        ]
    )
    store.quarantine([])
    rows = store.list_quarantine(limit=2)
    assert [r["raw"] for r in rows] == [bodies[5], bodies[4]]
    assert [r["raw"] for r in store.list_quarantine(limit=2, offset=2)] == [bodies[3], bodies[2]]
    assert list(rows[0]) == [
        "id",
        "received_at",
        "source",
        "event_id",
        "customer_id",
        "reason",
        "raw",
    ]
    assert rows[0]["received_at"] == "2026-11-01T00:05:00.000000+00:00"
    assert rows[0]["reason"] == [{"field": "body", "why": "5"}]
    ids = [r["id"] for r in store.list_quarantine()]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert store.stats().quarantined == 6


def test_settings_keep_every_change(store):
    assert store.get_setting("incident") is None and store.setting_history("incident") == []
    store.set_setting("incident", {"on": True, "by": "ana", "note": "outage"}, NOW)
    store.set_setting("other", {"x": 1}, NOW)
    store.set_setting("incident", {"on": False, "by": "ben"}, NOW + HOUR)
    assert store.get_setting("incident") == {"on": False, "by": "ben"}
    history = store.setting_history("incident")
    assert history == [
        {"at": "2026-11-01T01:00:00.000000+00:00", "on": False, "by": "ben"},
        {"at": "2026-11-01T00:00:00.000000+00:00", "on": True, "by": "ana", "note": "outage"},
    ]
    assert store.setting_history("incident", limit=1) == history[:1]
    assert store.get_setting("other") == {"x": 1}


def test_decisions_filter_and_read_back_one_by_one(store, policy, make_event):
    batch = processed(policy, escalating(make_event))
    store.commit(batch, NOW)
    everything = store.list_decisions()
    assert len(everything) == 3
    assert all(d["holdout"] is False and d["review"] is False for d in everything)
    escalations = store.list_decisions(kind="escalate")
    assert [d["kind"] for d in escalations] == ["escalate"]
    human = [d for d in everything if d["rule_id"] == "human_requested"]
    assert store.list_decisions(rule_id="human_requested") == human
    assert store.list_decisions(policy_version=policy.version) == everything
    assert store.list_decisions(policy_version="nope") == []
    assert store.list_decisions(customer_id="c2", kind="notify") == everything[-1:]
    for d in everything:
        assert store.get_decision(d["decision_id"]) == d
    assert store.get_decision("nope") is None
    message = batch[1].event.event_id
    found = store.decisions_for_event(message)
    assert [d["decision_id"] for d in found] == [d.decision_id for d in batch[1].decisions]
    assert store.decisions_for_event("nope") == []
    event = store.get_event(message)
    assert event is not None
    assert list(event) == [
        "event_id",
        "customer_id",
        "type",
        "ts",
        "received_at",
        "event",
        "signals",
        "late",
    ]
    assert (event["ts"], event["received_at"], event["late"]) == (
        "2026-10-01T10:00:00.000000+00:00",
        "2026-11-01T00:00:00.000000+00:00",
        False,
    )
    assert event["event"]["text"] == "Let me talk to a human now" and event["signals"]
    assert store.get_event("nope") is None


def test_account_contexts_and_members(store, policy, make_event):
    store.save_account_contexts(
        {"a1": AccountContext(tier="enterprise", owner="@maria"), "a2": AccountContext(name="B")},
        NOW,
    )
    a1 = store.get_account("a1")
    assert a1 is not None and (a1.context.tier, a1.context.owner) == ("enterprise", "@maria")
    assert set(store.load_accounts(["a1", "a2", "zz"])) == {"a1", "a2"}
    assert store.get_account("zz") is None
    store.save_account_contexts({"a1": AccountContext(tier="startup")}, NOW + HOUR)
    a1 = store.get_account("a1")
    assert a1 is not None and (a1.context.tier, a1.context.owner) == ("startup", None)
    store.commit(processed(policy, escalating(make_event)), NOW)
    assert store.list_account_customers("a1") == (
        1,
        [{"customer_id": "c1", "updated_at": "2026-11-01T00:00:00.000000+00:00"}],
    )
    assert store.list_account_customers("zz") == (0, [])


REVIEWED = (
    (Path(__file__).parents[1] / "src/tactful/policy/default.yaml")
    .read_text()
    .replace("  - id: human_requested\n", "  - id: human_requested\n    review: 1.0\n", 1)
)


def test_the_review_queue_waits_then_settles(store, make_event, tmp_path):
    path = tmp_path / "reviewed.yaml"
    path.write_text(REVIEWED)
    reviewed = PolicyEngine(load_policy(path))
    store.commit(processed(reviewed, escalating(make_event)), NOW)
    waiting = store.list_reviews()
    assert [(w["kind"], w["status"]) for w in waiting] == [
        ("escalate", "pending"),
        ("hold", "pending"),
    ]
    first = waiting[0]
    assert list(first)[:11] == [
        "decision_id",
        "customer_id",
        "event_id",
        "rule_id",
        "kind",
        "at",
        "status",
        "decided_by",
        "decided_at",
        "reason",
        "edited",
    ]
    assert first["edited"] is None and first["params"]["queue"] and first["reasons"]
    assert first["policy_version"] == reviewed.version
    assert store.get_review(first["decision_id"]) == first
    assert store.get_review("nope") is None
    state = store.get_state("c1")
    assert state is not None
    change = reject_review(state, first, NOW + HOUR, "lead", "not needed", reviewed.policy)
    store.commit_changes([change], NOW + HOUR)
    settled = store.get_review(first["decision_id"])
    assert settled is not None
    assert (settled["status"], settled["decided_by"], settled["reason"], settled["edited"]) == (
        "rejected",
        "lead",
        "not needed",
        {},
    )
    assert settled["decided_at"] == "2026-11-01T01:00:00.000000+00:00"
    assert store.list_reviews() == waiting[1:]
    assert len(store.list_reviews(status=None)) == 2
    assert store.list_reviews(rule_id="nope") == []


def test_metric_rows_signals_and_payloads_by_time(store, policy, make_event):
    raws = [
        *escalating(make_event),
        make_event("feedback", "c1", "2026-10-01T11:00:00Z", rating=2),
    ]
    store.commit(processed(policy, raws), NOW)
    day = datetime(2026, 10, 1, tzinfo=UTC)
    rows = store.metric_rows(day, day + DAY)
    assert [(e[1], e[2]) for e in rows.events] == [
        ("identify", "2026-10-01T09:00:00.000000+00:00"),
        ("message", "2026-10-01T10:00:00.000000+00:00"),
        ("page_view", "2026-10-01T10:05:00.000000+00:00"),
        ("feedback", "2026-10-01T11:00:00.000000+00:00"),
    ]
    key = "decision_id"
    assert sorted(rows.decisions, key=lambda d: d[key]) == sorted(
        store.list_decisions(), key=lambda d: d[key]
    )
    assert rows.outcomes == store.list_outcomes() and len(rows.outcomes) == 1
    assert rows.handoffs == store.list_handoffs()
    assert [h["categories"] for h in rows.holds] == ['["promotional"]']  # JSON text, as kept
    assert store.metric_rows(day + DAY, day + 2 * DAY) == MetricRows([], [], [], [], [])
    assert store.metric_rows(None, None) == rows
    signals = store.event_signals(day, day + DAY)
    assert [t for t, _ in signals] == ["identify", "message", "page_view", "feedback"]
    assert any(s["name"] == "wants_human" for s in signals[1][1])
    assert store.event_signals(day + DAY, day + 2 * DAY) == []
    payloads = store.event_payloads()
    assert [p["type"] for p in payloads] == ["identify", "message", "page_view", "feedback"]
    window = store.event_payloads(day + 10 * HOUR, day + 10 * HOUR + MINUTE)
    assert [p["type"] for p in window] == ["message"]


# -- the two backends side by side; PostgreSQL's own concerns --------------------------------
def _history(store: Any, batch: list[Processed], policy: PolicyEngine) -> dict[str, Any]:
    """Write one history through every kind of write, and read it back every way."""
    rules = policy.policy
    why = [{"field": "type", "value": "x", "why": "unknown type"}]
    store.commit(batch, NOW, [QuarantineItem(NOW, "api", why, '{"customer_id": "c1"}', "q", "c1")])
    store.quarantine([QuarantineItem(NOW, "replay:f", why, 'broken "c1" \x00 caf\u00e9')])
    store.save_account_contexts({"a2": AccountContext(tier="enterprise", traits={"x": 1})}, NOW)
    store.set_setting("incident", {"on": True, "by": "ana"}, NOW)
    store.add_key(ApiKey("k1", "ingest", frozenset({"ingest", "read"}), "h", NOW))
    store.record_outcomes([Outcome("o1", "e", "c1", NOW, "csat", 5.0, None, {"a": [1]})])
    state = store.get_state("c1")
    change = update_handoff(state, state.handoffs[0].handoff_id, "accepted", NOW, "x", "", rules)
    store.commit_changes([change], NOW + HOUR)
    pending = store.pending_actions(NOW)
    store.mark_failed_many([(pending[0].action_id, "boom", NOW + MINUTE, False)])
    store.mark_delivered([pending[1].action_id], NOW)
    reads: dict[str, Any] = {
        "stats": store.stats(),
        "pending": store.pending_actions(NOW + DAY),
        "outbox": store.list_outbox(limit=1000),
        "decisions": store.list_decisions(limit=1000),
        "latest": store.list_decisions(limit=2, latest=True),
        "for event": store.decisions_for_event(batch[1].event.event_id),
        "outcomes": store.list_outcomes(limit=1000),
        "events": store.list_events("c1"),
        "event": store.get_event(batch[1].event.event_id),
        "holds": store.list_holds(),
        "active": store.active_holds(),
        "handoffs": store.list_handoffs(),
        "quarantine": store.list_quarantine(),
        "metrics": dataclasses.asdict(store.metric_rows(None, None)),
        "signals": store.event_signals(NOW - 60 * DAY, NOW),
        "payloads": store.event_payloads(),
        "keys": store.list_keys(),
        "settings": store.setting_history("incident"),
        "states": {
            c: s.model_dump(mode="json") for c, s in store.load_states(["c1", "c2"]).items()
        },
        "accounts": {
            a: s.model_dump(mode="json") for a, s in store.load_accounts(["a1", "a2"]).items()
        },
        "members": store.list_account_customers("a1"),
        "shadow": store.shadow_log(),
        "reviews": store.list_reviews(None),
        "export": store.export_customer("c1"),
        "forget": store.forget_text(NOW + MINUTE, ["text"]),
        "forgotten": store.export_customer("c1"),
        "erase": store.erase_customer("c1"),
        "erased": store.export_customer("c1"),
        "account after": store.load_accounts(["a1"]),
        "left": store.stats(),
    }
    return reads


def test_both_backends_answer_alike(pg_server: PgServer, tmp_path, policy, make_event):
    """One history written to SQLite and to PostgreSQL reads back the same way, down to
    the keys' order and the timestamps' text."""
    raws = [
        *escalating(make_event),
        make_event("message", "c1", "2026-10-01T10:01:00Z", text="This is broken, I'm furious!!"),
        make_event("feedback", "c1", "2026-10-01T11:00:00Z", rating=1, comment="useless"),
        make_event("page_view", "c3", "2026-10-01T10:06:00Z", path="/pricing"),
    ]
    batch, accounts = with_accounts(policy, raws, shadow=policy)
    assert any(a.at_risk for a in accounts.values())  # erase has a member to remove
    with pg_server.database() as conninfo:
        sqlite, postgres = SQLiteStore(tmp_path / "s.db"), PostgresStore(conninfo, max_size=2)
        try:
            mine, theirs = (_history(s, batch, policy) for s in (sqlite, postgres))
        finally:
            sqlite.close()
            postgres.close()
    assert mine["erase"]["accounts (members at risk)"] == 1
    for name in mine:
        expected = json.dumps(mine[name], default=repr, indent=1).splitlines()
        assert json.dumps(theirs[name], default=repr, indent=1).splitlines() == expected, name


def test_postgres_migrations_run_once_when_processes_start_at_once(pg_server: PgServer):
    with pg_server.database() as conninfo:
        barrier = threading.Barrier(4)
        started: list[PostgresStore | BaseException] = []

        def start() -> None:
            barrier.wait(timeout=30)
            try:
                started.append(PostgresStore(conninfo, max_size=1))
            except BaseException as exc:
                started.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stores = [s for s in started if isinstance(s, PostgresStore)]
        for s in stores:
            assert s.schema_version == len(pg.MIGRATIONS)
            s.close()
        assert len(stores) == 4, [s for s in started if not isinstance(s, PostgresStore)]
        with psycopg.connect(conninfo) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY version")
            assert [v for (v,) in versions] == list(range(1, len(pg.MIGRATIONS) + 1))


def test_postgres_refuses_a_database_newer_than_the_code(pg_server: PgServer):
    newer = len(pg.MIGRATIONS) + 1
    with pg_server.database() as conninfo:
        PostgresStore(conninfo).close()
        reopened = PostgresStore(conninfo)  # an up-to-date database opens as it is
        assert reopened.schema_version == len(pg.MIGRATIONS)
        reopened.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (newer,))
        with pytest.raises(
            RuntimeError,
            match=rf"schema version {newer}, newer than this tactful \({newer - 1}\); upgrade",
        ):
            PostgresStore(conninfo)

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path, policy):
    store = SQLiteStore(tmp_path / "e.db")
    yield Engine(store, policy, clock=lambda: NOW)
    store.close()


def test_good_events_pass_bad_ones_are_quarantined(engine, make_event):
    good = make_event(text="Where are my invoices?")
    bad = make_event(text="")
    del bad["customer_id"]
    results = engine.ingest([good, bad, "{broken json"], source="test")
    assert [r.status for r in results] == ["accepted", "rejected", "rejected"]
    assert results[1].event_id == bad["event_id"]
    assert {e["field"] for e in results[1].errors} == {"customer_id", "text"}
    assert results[2].errors[0]["field"] == "body"
    rows = engine.store.list_quarantine()
    assert len(rows) == 2
    assert {r["source"] for r in rows} == {"test"}
    assert json.loads(rows[1]["raw"])["event_id"] == bad["event_id"]


def test_duplicates_have_no_second_effect(engine, make_event):
    first = make_event(text="This is the third time, still not working!!")
    results = engine.ingest([first, first])
    assert [r.status for r in results] == ["accepted", "duplicate"]
    decisions = engine.store.list_decisions(customer_id="c1")
    again = engine.ingest([first])
    assert again[0].status == "duplicate"
    state = engine.store.get_state("c1")
    assert state is not None and state.events_seen == 1
    assert engine.store.list_decisions(customer_id="c1") == decisions


def test_state_survives_a_restart(tmp_path, policy, make_event):
    path = tmp_path / "r.db"
    first = Engine(SQLiteStore(path), policy, clock=lambda: NOW)
    first.ingest([make_event("payment_failed", at="2026-10-01T10:00:00Z")])
    first.store.close()
    second = Engine(SQLiteStore(path), policy, clock=lambda: NOW)
    results = second.ingest([make_event("payment_failed", at="2026-10-02T10:00:00Z")])
    assert results[0].processed is not None
    signal = next(s for s in results[0].processed.signals if s.name == "payment_failed")
    assert "2 failed payment" in signal.reason
    second.store.close()


def test_a_failed_commit_leaves_cache_and_store_unchanged(engine, make_event, monkeypatch):
    engine.ingest([make_event("payment_failed", at="2026-10-01T10:00:00Z")])

    def boom(batch, received_at, rejected=()):
        raise OSError("disk full")

    monkeypatch.setattr(engine.store, "commit", boom)
    with pytest.raises(OSError):
        engine.ingest([make_event("payment_failed", at="2026-10-02T10:00:00Z")])
    monkeypatch.undo()
    results = engine.ingest([make_event("payment_failed", at="2026-10-03T10:00:00Z")])
    assert results[0].processed is not None
    signal = next(s for s in results[0].processed.signals if s.name == "payment_failed")
    assert "2 failed payment" in signal.reason  # the failed batch left no trace


def test_metrics_count_what_happened(engine, make_event):
    engine.ingest([make_event(text="Let me talk to a human"), {"type": "message"}])
    text = engine.metrics.render().decode()
    assert 'tactful_events_total{status="accepted",type="message"} 1.0' in text
    assert 'tactful_events_total{status="rejected",type="message"} 1.0' in text
    assert 'tactful_decisions_total{kind="escalate",rule="human_requested"} 1.0' in text
    assert "tactful_outbox_pending 2.0" in text


def test_invalid_utf8_is_quarantined_not_a_crash(engine, make_event):
    good = json.dumps(make_event(text="hello")).encode()
    results = engine.ingest([good, b'{"event_id": "x\xff"}'])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert "UTF-8" in results[1].errors[0]["why"]
    assert len(engine.store.list_quarantine()) == 1


def test_a_retried_batch_does_not_quarantine_twice(engine, make_event, monkeypatch):
    bad = {"event_id": "b1", "type": "message"}
    real_commit = engine.store.commit
    calls = []

    def fail_once(batch, received_at, rejected=()):
        calls.append(len(rejected))
        if len(calls) == 1:
            raise OSError("disk full")
        real_commit(batch, received_at, rejected)

    monkeypatch.setattr(engine.store, "commit", fail_once)
    with pytest.raises(OSError):
        engine.ingest([make_event(), bad])
    engine.ingest([make_event(event_id="again"), bad])
    assert calls == [1, 1]
    assert [r["event_id"] for r in engine.store.list_quarantine()] == ["b1"]


def test_lone_surrogates_from_json_escapes_are_quarantined(engine, make_event, tmp_path):
    from fastapi.testclient import TestClient

    from tactful.api.app import create_app

    good = make_event(text="fine")
    line = json.dumps(make_event(text="x", context={"ua": "\ud800"}))  # JSON escapes it
    assert "\\ud800" in line
    results = engine.ingest([json.dumps(good), line])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert results[1].errors[0]["field"] == "context.ua"
    body = json.dumps([make_event(text="ok"), make_event(text="y", context={"k": "\udfff"})])
    r = TestClient(create_app(engine)).post("/v1/events", content=body)
    assert r.status_code == 202
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"]


def test_a_canary_policy_decides_for_a_stable_share_of_customers(tmp_path, make_event):
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import canary_bucket

    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(shipped.replace("version: default-", "version: candidate-"))
    store = SQLiteStore(tmp_path / "c.db")
    try:
        current, canary = PolicyEngine(load_policy()), PolicyEngine(load_policy(candidate))
        engine = Engine(store, current, canary=canary, canary_share=0.25)
        customers = [f"cust-{i}" for i in range(400)]
        text = "This is useless, let me talk to a human now!"
        engine.ingest([make_event(customer_id=c, text=text) for c in customers])
        versions = {
            d["customer_id"]: d["policy_version"]
            for d in store.list_decisions(limit=10_000)
            if d["rule_id"] == "human_requested"
        }
        assert set(versions) == set(customers)
        on_canary = {c for c, v in versions.items() if v.startswith("candidate-")}
        assert on_canary == {c for c in customers if canary_bucket(c) < 0.25}
        assert 60 <= len(on_canary) <= 140  # about a quarter of 400
        # the same customers, every time
        assert all(engine.policy_for(c) is canary for c in on_canary)
        # the audit log answers "what did the canary decide?"
        by_canary = store.list_decisions(
            limit=10_000, policy_version=canary.version, rule_id="human_requested"
        )
        assert {d["customer_id"] for d in by_canary} == on_canary
        assert store.list_decisions(policy_version="nope") == []
        escalations = store.list_decisions(limit=10_000, kind="escalate")
        assert escalations and all(d["kind"] == "escalate" for d in escalations)
        with pytest.raises(ValueError, match="canary_share"):
            Engine(store, current, canary=canary, canary_share=1.5)
    finally:
        store.close()


def _capped_policy(tmp_path: Path, per_hour: int) -> Path:
    """The shipped policy with the billing queue capped at ``per_hour`` handoffs."""
    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    capped = tmp_path / "capped.yaml"
    limit = f"queue_limits:\n  billing: {{per_hour: {per_hour}, overflow: general}}\n"
    capped.write_text(
        shipped.replace("fallback_queue: general\n", f"fallback_queue: general\n{limit}")
    )
    return capped


def test_a_queue_past_its_hourly_cap_overflows(tmp_path, make_event):
    from tactful.policy import PolicyEngine, load_policy

    capped = _capped_policy(tmp_path, per_hour=2)
    store = SQLiteStore(tmp_path / "q.db")
    try:
        engine = Engine(store, PolicyEngine(load_policy(capped)))
        text = "My invoice is wrong and I was charged twice. Let me talk to a human!"

        def ask(customer: str, at: str) -> dict[str, Any]:
            (r,) = engine.ingest([make_event(customer_id=customer, at=at, text=text)])
            assert r.processed is not None
            (esc,) = [d for d in r.processed.decisions if d.kind == "escalate"]
            return {"queue": esc.params["queue"], "lost": esc.lost, **esc.params}

        first = [ask(f"c{i}", f"2026-10-01T10:{10 * i:02d}:00Z") for i in range(4)]
        assert [e["queue"] for e in first] == ["billing", "billing", "general", "general"]
        assert first[2]["overflowed_from"] == "billing"
        assert any("billing queue at its hourly cap (2)" in n for n in first[2]["lost"])
        # an hour after the first two, billing has room again
        assert ask("c9", "2026-10-01T11:10:01Z")["queue"] == "billing"
        assert ask("c8", "2026-10-01T11:12:00Z")["queue"] == "billing"

        # a fresh engine on the same store counts the last hour from the audit log
        again = Engine(store, PolicyEngine(load_policy(capped)))
        (r,) = again.ingest([make_event(customer_id="c10", at="2026-10-01T11:15:00Z", text=text)])
        assert r.processed is not None
        (esc,) = [d for d in r.processed.decisions if d.kind == "escalate"]
        assert esc.params["queue"] == "general"  # c9 (11:10) and c8 (11:12) fill billing
    finally:
        store.close()


def test_reloading_keeps_a_users_own_default_yaml(tmp_path):
    from tactful.policy import PolicyEngine, load_policy

    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    mine = tmp_path / "default.yaml"  # the same file name as the shipped one
    mine.write_text(shipped.replace("version: default-", "version: mine-"))
    store = SQLiteStore(tmp_path / "r.db")
    try:
        engine = Engine(store, PolicyEngine(load_policy(mine)))
        engine.reload_policy()
        assert engine.policy.version.startswith("mine-")
        builtin = Engine(store, PolicyEngine(load_policy()))
        builtin.reload_policy()
        assert builtin.policy.version.startswith("default-")
    finally:
        store.close()


def test_queue_caps_count_late_events_where_they_belong(tmp_path, make_event):
    from tactful.policy import PolicyEngine, load_policy

    capped = _capped_policy(tmp_path, per_hour=1)
    store = SQLiteStore(tmp_path / "q.db")
    try:
        engine = Engine(store, PolicyEngine(load_policy(capped)))
        text = "My invoice is wrong and I was charged twice. Let me talk to a human!"
        engine.ingest([make_event(customer_id="a", at="2026-10-01T10:00:00Z", text=text)])
        engine.ingest(
            [make_event("page_view", customer_id="b", at="2026-10-01T11:10:00Z", path="/")]
        )
        # another customer's message from 10:30 arrives now: billing's hour is already used
        (r,) = engine.ingest([make_event(customer_id="c", at="2026-10-01T10:30:00Z", text=text)])
        assert r.processed is not None
        (esc,) = [d for d in r.processed.decisions if d.kind == "escalate"]
        assert esc.params["queue"] == "general" and esc.params["overflowed_from"] == "billing"
    finally:
        store.close()


def wait_until(condition: Any, seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def concurrently(engine: Engine, calls: list[Any], commits: list[int], gate: Any) -> None:
    """Run the first call until its commit starts (and waits on ``gate``), then the others,
    which queue behind it; open the gate once all are queued."""
    import threading

    threads = [threading.Thread(target=c) for c in calls]
    threads[0].start()
    wait_until(lambda: commits)  # the first call is committing
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(engine._queue) == len(calls) - 1)
    gate.set()
    for t in threads:
        t.join(10)


def test_concurrent_calls_are_committed_together_and_each_gets_its_own_results(
    engine, make_event, monkeypatch
):
    """Group commit: while one call holds the engine, the others queue; the next to get
    it commits them all in one transaction, and each caller still gets exactly its own
    results, indexed from 0, only after they are committed."""
    import threading

    commits: list[int] = []
    real_commit = engine.store.commit
    gate = threading.Event()

    def slow_commit(batch, received_at, rejected=()):
        commits.append(len(batch) + len(rejected))
        gate.wait(5)  # the first commit holds the lock until every other call is queued
        real_commit(batch, received_at, rejected)

    monkeypatch.setattr(engine.store, "commit", slow_commit)
    calls = [
        [make_event(customer_id=f"c{i}", text="hello"), make_event(customer_id=f"c{i}")]
        for i in range(8)
    ]
    calls[3].append({"type": "message"})  # a bad event: only this caller sees it rejected
    out: dict[int, list[Any]] = {}

    def call(i: int) -> None:
        out[i] = engine.ingest(calls[i])

    concurrently(engine, [lambda i=i: call(i) for i in range(8)], commits, gate)
    assert commits == [2, 15]  # the first call alone, then the seven waiting ones together
    for i, results in out.items():
        assert [r.index for r in results] == list(range(len(calls[i])))
        accepted = [r for r in results if r.status == "accepted"]
        assert [r.event_id for r in accepted] == [e["event_id"] for e in calls[i][:2]]
        assert all(r.processed.event.customer_id == f"c{i}" for r in accepted)
    assert [r.status for r in out[3]][-1] == "rejected"
    assert engine.store.stats().events == 16
    assert len(engine.store.list_quarantine()) == 1


def test_a_failed_group_commit_fails_every_call_in_it(engine, make_event, monkeypatch):
    import threading

    gate, commits = threading.Event(), []

    def failing(batch, received_at, rejected=()):
        commits.append(len(batch))
        gate.wait(5)
        raise OSError("disk full")

    monkeypatch.setattr(engine.store, "commit", failing)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            engine.ingest([make_event(customer_id=f"c{i}")])
        except OSError as exc:
            errors.append(exc)

    concurrently(engine, [lambda i=i: call(i) for i in range(4)], commits, gate)
    assert commits == [1, 3] and len(errors) == 4
    assert engine.store.stats().events == 0

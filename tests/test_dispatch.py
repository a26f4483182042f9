from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tactful.actions.channels import ChannelError, LogChannel
from tactful.actions.dispatch import Dispatcher, RetryPolicy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.base import OutboxRow

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class Flaky:
    name = "flaky"
    concurrency = 1

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[str] = []

    def deliver(self, action: OutboxRow) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ChannelError("receiver returned 503")
        self.delivered.append(action.idempotency_key)


def seeded(tmp_path, policy, make_event):
    store = SQLiteStore(tmp_path / "d.db")
    Engine(store, policy, clock=lambda: NOW).ingest(
        [make_event(text="I want to speak to a human", at="2026-10-01T10:00:00Z")]
    )
    return store


def test_log_channel_writes_each_action_once(tmp_path, policy, make_event):
    store = seeded(tmp_path, policy, make_event)
    log = tmp_path / "actions.jsonl"
    dispatcher = Dispatcher(store, {"log": LogChannel(log)}, clock=lambda: NOW)
    assert dispatcher.drain() == 2
    assert dispatcher.drain() == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["kind"] for line in lines) == ["handoff.created", "hold.started"]
    handoff = next(line for line in lines if line["kind"] == "handoff.created")
    assert handoff["payload"]["goal"].startswith("The customer wants to")
    assert len({line["idempotency_key"] for line in lines}) == 2


def test_failures_back_off_then_succeed(tmp_path, policy, make_event):
    store = seeded(tmp_path, policy, make_event)
    clock = [NOW]
    flaky = Flaky(failures=2)
    dispatcher = Dispatcher(store, {"log": flaky}, clock=lambda: clock[0])
    assert dispatcher.run_once() == (0, 2)
    assert dispatcher.run_once() == (0, 0)  # not due yet: backing off
    clock[0] += timedelta(seconds=2)
    assert dispatcher.run_once() == (2, 0)
    assert len(flaky.delivered) == 2
    assert store.stats().outbox_pending == 0


def test_exhausted_retries_go_to_the_dead_letter_list(tmp_path, policy, make_event):
    store = seeded(tmp_path, policy, make_event)
    clock = [NOW]
    dispatcher = Dispatcher(
        store,
        {"log": Flaky(failures=100)},
        retry=RetryPolicy(max_attempts=3),
        clock=lambda: clock[0],
    )
    for _ in range(3):
        dispatcher.run_once()
        clock[0] += timedelta(hours=1)
    dead = store.list_outbox("dead")
    assert len(dead) == 2
    assert all(r["attempts"] == 3 and "503" in r["last_error"] for r in dead)
    assert store.stats().outbox_pending == 0


def test_backoff_grows_and_is_capped():
    retry = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=60))
    assert timedelta(seconds=0.5) <= retry.delay(0) <= timedelta(seconds=1)
    assert timedelta(seconds=4) <= retry.delay(3) <= timedelta(seconds=8)
    assert retry.delay(30) <= timedelta(seconds=60)


class Refusing:
    """Refuses its first ``refusals`` deliveries for good (a 4xx: a bad payload, not a
    receiver that is down), then accepts."""

    name = "log"
    concurrency = 1

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.delivered: list[str] = []

    def deliver(self, action: OutboxRow) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise ChannelError("receiver returned 400 (bad payload)", permanent=True)
        self.delivered.append(action.idempotency_key)


def test_permanent_refusals_do_not_pause_the_channel(tmp_path, policy, make_event, caplog):
    import logging
    import time

    store = seeded(tmp_path, policy, make_event)  # one customer: a handoff and a hold
    channel = Refusing(refusals=2)
    dispatcher = Dispatcher(store, {"log": channel})
    engine = Engine(store, policy)
    engine.on_actions.append(dispatcher.wake)
    with caplog.at_level(logging.WARNING, logger="tactful.actions.dispatch"):
        dispatcher.start(interval=30.0)
        deadline = time.monotonic() + 5
        while len(store.list_outbox("dead")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.ingest([make_event(customer_id="next", text="I want to speak to a human")])
        while len(channel.delivered) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        dispatcher.stop()
    assert len(store.list_outbox("dead")) == 2  # the refused ones, with the receiver's why
    assert all("400" in r["last_error"] for r in store.list_outbox("dead"))
    assert len(channel.delivered) == 2  # the next customer's, without a breaker pause
    assert not [r for r in caplog.records if "pausing" in r.getMessage()]

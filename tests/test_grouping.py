"""Notifications batched Alertmanager-style: group_wait, group_interval, repeat_interval."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tactful.actions.channels import LogChannel
from tactful.actions.dispatch import Dispatcher
from tactful.actions.grouping import Grouping, GroupState, schedule
from tactful.policy import PolicyEngine, load_policy
from tactful.policy.model import PolicyError
from tactful.runtime.engine import Engine

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
G = Grouping("channel=log|target=am|account=acme", "c1/r", 30 * S, 300 * S, 4 * 3600 * S)


def test_first_notification_waits_group_wait_and_followers_join_it():
    first = schedule(None, G, T0)
    assert first.flush_at == T0 + 30 * S
    other = Grouping(G.key, "c2/r", G.wait, G.interval, G.repeat)
    second = schedule(first.state, other, T0 + 10 * S)
    assert second.flush_at == first.flush_at
    assert second.batch_id == first.batch_id


def test_after_a_message_the_next_waits_group_interval():
    sent = schedule(None, G, T0).state  # message at T0+30s
    later = Grouping(G.key, "c2/r", G.wait, G.interval, G.repeat)
    nxt = schedule(sent, later, T0 + 60 * S)
    assert nxt.flush_at == T0 + 30 * S + 300 * S
    # a quiet group long after its last message only waits group_wait
    much_later = schedule(sent, later, T0 + 3600 * S)
    assert much_later.flush_at == T0 + 3600 * S + 30 * S


def test_the_same_notification_is_muted_within_repeat_interval_then_sent_again():
    sent = schedule(None, G, T0).state
    again = schedule(sent, G, T0 + 5 * S)
    assert again.flush_at is None and "already in the group's message" in again.muted_because
    repeat = schedule(sent, G, T0 + 3600 * S)
    assert repeat.flush_at is None and "repeat_interval" in repeat.muted_because
    assert repeat.state == sent  # a muted repeat changes nothing
    after = schedule(sent, G, T0 + 30 * S + 4 * 3600 * S)
    assert after.flush_at is not None


def test_group_memory_forgets_what_can_no_longer_mute():
    state = GroupState()
    for i in range(50):
        g = Grouping(G.key, f"c{i}/r", G.wait, G.interval, G.repeat)
        state = schedule(state, g, T0 + i * 3600 * S).state
    assert len(state.sent) <= 5
    assert GroupState.from_dict(json.loads(json.dumps(state.as_dict()))) == state


POLICY = """
version: grouping-test
notifications:
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
rules:
  - id: tell_owner
    when: signal.frustration > 0.3
    then:
      - notify: {target: account_owner, message: "A key customer is struggling."}
"""


def ingest_messages(store, policy, events):
    Engine(store, policy, clock=lambda: T0 + timedelta(days=1)).ingest(events)


@pytest.fixture
def notify_policy(tmp_path) -> PolicyEngine:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    return PolicyEngine(load_policy(path))


def angry(make_event, customer, at, account="acme"):
    """A customer of ``account`` (owned by am@vendor.example) says they are furious."""
    return [
        make_event(
            "identify",
            customer_id=customer,
            at="2026-11-01T00:00:00Z",
            account_id=account,
            traits={"owner": "am@vendor.example"},
        ),
        make_event(
            customer_id=customer,
            at=at,
            text="This is the third time it's broken and I am furious!!",
        ),
    ]


def test_three_struggling_people_at_one_account_are_one_message(
    store, notify_policy, make_event, tmp_path
):
    events = [
        *angry(make_event, "ana", "2026-11-02T09:00:00Z"),
        *angry(make_event, "ben", "2026-11-02T09:00:10Z"),
        *angry(make_event, "cy", "2026-11-02T09:00:20Z"),
        *angry(make_event, "dee", "2026-11-02T09:00:05Z", account="globex"),
    ]
    ingest_messages(store, notify_policy, events)
    log = tmp_path / "a.jsonl"
    Dispatcher(store, {"log": LogChannel(log)}, clock=lambda: T0 + timedelta(days=1)).drain()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 2
    acme = next(x for x in lines if "notifications" in x["payload"])
    assert acme["payload"]["group"] == "channel=log|target=am@vendor.example|account=acme"
    assert sorted(n["customer_id"] for n in acme["payload"]["notifications"]) == [
        "ana",
        "ben",
        "cy",
    ]
    assert acme["idempotency_key"].startswith("batch:")
    globex = next(x for x in lines if "notifications" not in x["payload"])
    assert globex["customer_id"] == "dee"
    assert all(r["status"] == "delivered" for r in store.list_outbox())


def test_a_repeat_within_repeat_interval_is_muted_with_why(store, notify_policy, make_event):
    ingest_messages(
        store,
        notify_policy,
        [
            *angry(make_event, "ana", "2026-11-02T09:00:00Z"),
            *angry(make_event, "ana", "2026-11-02T10:00:00Z")[1:],
            *angry(make_event, "ana", "2026-11-02T14:00:31Z")[1:],
        ],
    )
    rows = store.list_outbox()
    assert [r["status"] for r in rows] == ["pending", "muted", "pending"]
    assert "repeat_interval 4:00:00" in rows[1]["last_error"]
    # the first waits group_wait (event time), the third is a fresh message
    assert rows[0]["next_attempt_at"].startswith("2026-11-02T09:00:30")
    assert rows[2]["next_attempt_at"].startswith("2026-11-02T14:01:01")


def test_a_message_not_yet_due_waits_for_its_time(store, notify_policy, make_event, tmp_path):
    ingest_messages(store, notify_policy, angry(make_event, "ana", "2026-11-02T09:00:00Z"))
    log = tmp_path / "a.jsonl"
    clock = [T0 + 10 * S]
    dispatcher = Dispatcher(store, {"log": LogChannel(log)}, clock=lambda: clock[0])
    assert dispatcher.run_once() == (0, 0)
    clock[0] = T0 + 30 * S
    assert dispatcher.run_once() == (1, 0)


def test_routes_override_the_default_and_unknown_channels_are_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert policy.notifications.grouping("log", "x") == (
        ("channel", "target", "account"),
        30 * S,
        300 * S,
        4 * 3600 * S,
    )
    routed = POLICY.replace(
        "  repeat_interval: 4h\n",
        "  repeat_interval: 4h\n  routes:\n"
        "    - {target: sales, group_by: [rule], group_wait: 0s}\n",
    )
    path.write_text(routed)
    policy = load_policy(path)
    assert policy.notifications.grouping("log", "sales") == (
        ("channel", "target", "rule"),
        timedelta(0),
        300 * S,
        4 * 3600 * S,
    )
    assert policy.notifications.grouping("log", "am")[0] == ("channel", "target", "account")
    path.write_text(routed.replace("{target: sales,", "{channel: pager,"))
    with pytest.raises(PolicyError, match=r"p.yaml:\d+:\d+: notifications: routes\[0\].channel"):
        load_policy(path)
    path.write_text(routed.replace("{target: sales,", "{"))
    with pytest.raises(PolicyError, match="names neither"):
        load_policy(path)

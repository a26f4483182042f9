"""Channels over real HTTP: signed webhooks, Slack Block Kit, 4xx/5xx/timeouts, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tactful.actions.channels import ChannelError
from tactful.actions.channels.config import (
    ChannelsError,
    build_channels,
    check_url,
    load_channels,
)
from tactful.actions.channels.slack import SlackChannel, render
from tactful.actions.channels.webhook import WebhookChannel
from tactful.actions.dispatch import Dispatcher
from tactful.actions.signing import SignatureError, sign, signature_header, verify
from tactful.policy import PolicyEngine, load_policy
from tactful.policy.model import PolicyError
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.base import OutboxRow

from .receivers import SECRET, receiver

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SHIPPED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
ROUTED = SHIPPED + (
    "\nchannels: [crm, slack]\ndelivery:\n  handoff.created: [crm, slack]\n  hold.started: [crm]\n"
)


CRM_ONLY = ROUTED.replace("channels: [crm, slack]", "channels: [crm]").replace(
    "[crm, slack]", "[crm]"
)


def routed(
    tmp_path: Path, make_event: Any, policy_text: str = ROUTED, customers: int = 1
) -> tuple[SQLiteStore, Path]:
    """A store where ``customers`` people asked for a human under ``policy_text``, whose
    actions wait in the outbox; and the policy file."""
    policy = tmp_path / "p.yaml"
    policy.write_text(policy_text)
    store = SQLiteStore(tmp_path / "d.db")
    Engine(store, PolicyEngine(load_policy(policy)), clock=lambda: NOW).ingest(
        [
            make_event(
                customer_id=f"c{i}", text="I want to speak to a human", at="2026-10-01T10:00:00Z"
            )
            for i in range(customers)
        ]
    )
    return store, policy


def row(
    kind: str = "handoff.created", payload: dict[str, Any] | None = None, key: str = "k1"
) -> OutboxRow:
    return OutboxRow(
        action_id=key,
        idempotency_key=key,
        customer_id="ben",
        channel="crm",
        kind=kind,
        payload=payload
        or {
            "queue": "billing",
            "priority": "high",
            "goal": "The customer wants to sort out a billing problem.",
            "why": ["repeated_failure: payments keep failing", "because x=1"],
            "trend": {"frustration": 0.82, "churn_intent": 0.41, "gratitude": 0.0},
            "account": {"tier": "enterprise", "value": 48000},
            "recommended_next_step": "Check the failed payments and offer to retry the card.",
            "topic": "billing",
        },
        attempts=0,
        created_at=NOW,
    )


# --- signing ------------------------------------------------------------------------------


def test_signatures_verify_and_refuse_tampering_replays_and_garbage():
    body = b'{"id":"k1"}'
    header = signature_header(SECRET, body, timestamp=1_700_000_000)
    assert verify(SECRET, body, header, now=1_700_000_100) == 1_700_000_000
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(SECRET, body + b" ", header, now=1_700_000_100)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify("another-secret-entirely", body, header, now=1_700_000_100)
    with pytest.raises(SignatureError, match="tolerance 300s"):
        verify(SECRET, body, header, now=1_700_000_000 + 301)
    with pytest.raises(SignatureError, match="must look like"):
        verify(SECRET, body, "v1=abc", now=1_700_000_000)
    with pytest.raises(SignatureError, match="no Tactful-Signature"):
        verify(SECRET, body, None)
    # during a rotation, any one matching signature is enough
    rotated = f"t=1700000000,v1={'0' * 64},v1={sign(SECRET, body, 1_700_000_000)}"
    assert verify(SECRET, body, rotated, now=1_700_000_000)


# --- webhooks -----------------------------------------------------------------------------


def test_webhook_delivers_signed_json_with_an_idempotency_key():
    with receiver() as rx:
        WebhookChannel("crm", rx.url, SECRET).deliver(row())
    assert rx.problems == []
    [body] = rx.received
    assert body["id"] == "k1" and body["type"] == "handoff.created"
    assert body["data"]["queue"] == "billing"
    assert rx.headers[0]["Idempotency-Key"] == "k1"
    assert rx.headers[0]["Tactful-Event"] == "handoff.created"


def test_4xx_is_permanent_5xx_and_timeouts_are_retried():
    with receiver() as rx:
        rx.script = [422]
        with pytest.raises(ChannelError, match="answered 422") as refused:
            WebhookChannel("crm", rx.url, SECRET).deliver(row())
        assert refused.value.permanent
        for status in (503, 429):
            rx.script = [status]
            with pytest.raises(ChannelError, match="will retry") as later:
                WebhookChannel("crm", rx.url, SECRET).deliver(row())
            assert not later.value.permanent
        rx.delay_s = 0.5
        with pytest.raises(ChannelError, match="timed out") as slow:
            WebhookChannel("crm", rx.url, SECRET, timeout=timedelta(seconds=0.2)).deliver(row())
        assert not slow.value.permanent


def test_the_dispatcher_dead_letters_a_4xx_at_once_and_retries_a_5xx(tmp_path, make_event):
    store, _ = routed(tmp_path, make_event, CRM_ONLY)
    clock = [NOW]
    with receiver() as rx:
        crm = WebhookChannel("crm", rx.url, SECRET, concurrency=1)  # in order
        dispatcher = Dispatcher(
            store, {"crm": crm, **build_channels_log(tmp_path)}, clock=lambda: clock[0]
        )
        rx.script = [410, 503]  # the handoff is refused outright, the hold hits a 503
        ok, failed = dispatcher.run_once(channel="crm")
        assert (ok, failed) == (0, 2)
        dead = store.list_outbox("dead")
        assert len(dead) == 1 and "answered 410" in dead[0]["last_error"]
        clock[0] += timedelta(minutes=15)
        assert dispatcher.run_once(channel="crm") == (1, 0)
        assert [b["type"] for b in rx.received] == ["hold.started"]
        dispatcher.stop()
    store.close()


def build_channels_log(tmp_path):
    from tactful.actions.channels.config import ChannelsConfig

    return build_channels(ChannelsConfig(), tmp_path / "log.jsonl")


# --- Slack --------------------------------------------------------------------------------


def test_slack_webhook_gets_valid_block_kit_with_who_why_trend_summary_and_link():
    with receiver("slack", "/services/T0/B0/xyz") as rx:
        slack = SlackChannel(
            "slack", webhook_url=rx.url, link="https://support.example/customers/{customer_id}"
        )
        slack.deliver(row())
    assert rx.problems == []
    [message] = rx.received
    text = json.dumps(message)
    assert message["blocks"][0]["text"]["text"] == "Handoff to billing (high)"
    for expected in ("*Who*", "enterprise", "*Why*", "repeated_failure", "frustration 0.82"):
        assert expected in text
    assert "*Summary* The customer wants to sort out a billing problem." in text
    assert "*Recommended* Check the failed payments" in text
    assert "https://support.example/customers/ben" in text
    assert "gratitude" not in text  # levels under 0.1 are noise


def test_slack_chat_post_message_routes_handoffs_to_their_queue_channel():
    with receiver("slack", "/api/") as rx:
        base = rx.url
        slack = SlackChannel(
            "slack",
            token="xoxb-test-token",
            channel="#support",
            queue_channels={"billing": "#billing-escalations"},
            base_url=base,
        )
        slack.deliver(row())
        slack.deliver(row(payload={"queue": "technical", "why": ["x"]}, key="k2"))
        assert [m["channel"] for m in rx.received] == ["#billing-escalations", "#support"]
        bad = SlackChannel("slack", token="xoxb-wrong", channel="#support", base_url=base)
        with pytest.raises(ChannelError, match="invalid_auth") as refused:
            bad.deliver(row())
        assert refused.value.permanent


def test_slack_renders_batched_notifications_and_holds():
    batch = row(
        "notify",
        {
            "target": "am@vendor.example",
            "message": "3 notifications about 3 customer(s)",
            "notifications": [
                {"customer_id": c, "message": "A key customer is struggling.", "why": ["r: d"]}
                for c in ("ana", "ben", "cy")
            ],
        },
    )
    text, blocks = render(batch)
    dumped = json.dumps([b.to_dict() for b in blocks])
    assert text.startswith("3 notifications")
    assert all(f"`{c}`" in dumped for c in ("ana", "ben", "cy"))
    hold = row("hold.started", {"categories": ["promotional"], "reason": "frustrated"})
    text, blocks = render(hold)
    assert text.startswith("Marketing paused for ben")


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, why",
    [
        ("ftp://example.com/x", "only http and https"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://0.0.0.0:8080/", "cannot receive"),
        ("https:///nohost", "no host"),
    ],
)
def test_unsafe_urls_are_refused(url, why):
    with pytest.raises(ValueError, match=why):
        check_url(url)


def test_safe_urls_pass():
    for url in ("https://hooks.slack.com/services/T/B/x", "http://127.0.0.1:9000/hook"):
        assert check_url(url) == url


def test_channels_file_reads_secrets_from_the_environment_and_says_what_is_wrong(
    tmp_path, monkeypatch
):
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n  crm: {type: webhook, url: 'http://127.0.0.1:9/h', secret: '${CRM_SECRET}'}\n"
    )
    monkeypatch.delenv("CRM_SECRET", raising=False)
    with pytest.raises(ChannelsError, match="CRM_SECRET is not set"):
        load_channels(path)
    monkeypatch.setenv("CRM_SECRET", SECRET)
    config = load_channels(path)
    assert config.channels["crm"].secret == SECRET  # type: ignore[union-attr]
    channels = build_channels(config, tmp_path / "log.jsonl", frozenset({"crm"}))
    assert set(channels) == {"log", "crm"}
    with pytest.raises(ChannelsError, match=r"channel\(s\) \['slack'\]"):
        build_channels(config, tmp_path / "log.jsonl", frozenset({"crm", "slack"}))
    path.write_text(
        "channels:\n"
        "  crm: {type: webhook, url: 'http://169.254.169.254/', secret: short}\n"
        "  chat: {type: slack, token: xoxb-1}\n"
    )
    with pytest.raises(ChannelsError) as bad:
        load_channels(path)
    message = str(bad.value)
    assert "link-local" in message
    assert "at least 16 characters" in message
    assert "needs a channel" in message


def test_a_policy_must_declare_the_channels_it_sends_to(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(SHIPPED + "\ndelivery: {handoff.created: [crm]}\n")
    with pytest.raises(PolicyError, match=r"delivery: handoff\.created: unknown channel 'crm'"):
        load_policy(path)
    path.write_text(ROUTED)
    assert load_policy(path).channels_used == {"crm", "slack"}


# --- end to end ---------------------------------------------------------------------------


def test_routed_actions_reach_every_channel_the_policy_names(tmp_path, make_event):
    store, _ = routed(tmp_path, make_event)
    with receiver() as crm, receiver("slack", "/services/x") as slack:
        channels = {
            **build_channels_log(tmp_path),
            "crm": WebhookChannel("crm", crm.url, SECRET),
            "slack": SlackChannel("slack", webhook_url=slack.url),
        }
        dispatcher = Dispatcher(store, channels, clock=lambda: NOW)
        assert dispatcher.drain() == 3
        dispatcher.stop()
    assert sorted(b["type"] for b in crm.received) == ["handoff.created", "hold.started"]
    [message] = slack.received  # handoffs go to Slack; holds only to the CRM
    assert message["blocks"][0]["text"]["text"].startswith("Handoff to ")
    assert crm.problems == [] and slack.problems == []
    store.close()


def test_an_unconfigured_channel_is_dead_lettered_with_why(tmp_path, make_event):
    store, _ = routed(tmp_path, make_event)
    dispatcher = Dispatcher(store, build_channels_log(tmp_path), clock=lambda: NOW)
    dispatcher.run_once()
    dead = store.list_outbox("dead")
    assert {r["channel"] for r in dead} == {"crm", "slack"}
    assert all("no channel named" in r["last_error"] for r in dead)
    dispatcher.stop()
    store.close()


def test_killed_mid_delivery_then_restarted_every_action_arrives_once(tmp_path, make_event):
    """SIGKILL the dispatcher process while a slow receiver is mid-request; a restart
    delivers the rest. The receiver sees every action, and acts on each exactly once
    (a request cut short may come again: its Idempotency-Key is the same)."""
    db = tmp_path / "d.db"
    store, policy = routed(tmp_path, make_event, CRM_ONLY, customers=12)
    expected = {
        r["idempotency_key"] for r in store.list_outbox(limit=1000) if r["channel"] == "crm"
    }
    assert len(expected) == 24
    store.close()
    with receiver() as rx:
        rx.delay_s = 0.15
        channels = tmp_path / "channels.yaml"
        channels.write_text(
            f"channels:\n  crm: {{type: webhook, url: '{rx.url}', secret: '{SECRET}', "
            "concurrency: 2}\n"
        )
        cmd = [
            sys.executable,
            "-m",
            "tactful.cli",
            "dispatch",
            "--db",
            str(db),
            "--policy",
            str(policy),
            "--channels",
            str(channels),
            "--actions-log",
            str(tmp_path / "a.jsonl"),
        ]
        env = {**os.environ, "COLUMNS": "200"}
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while len(rx.keys) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)  # mid-delivery: requests in flight are cut
        first.wait(timeout=10)
        assert 0 < len(rx.effects) < 24
        rx.delay_s = 0.0
        second = subprocess.run([*cmd, "--once"], env=env, capture_output=True, timeout=60)
        assert second.returncode == 0, second.stdout + second.stderr
    assert set(rx.effects) == expected  # every action arrived
    assert len(rx.effects) == len(expected)  # and took effect once
    store = SQLiteStore(db)
    assert all(r["status"] == "delivered" for r in store.list_outbox(limit=1000))
    store.close()


# --- email --------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler: keeps what arrives; refuses two addresses the way servers do."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def test_email_reaches_the_account_owner_or_the_team_over_real_smtp():
    import socket

    from aiosmtpd.controller import Controller

    from tactful.actions.channels.email import EmailChannel

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mail = EmailChannel(
            "am_mail",
            "127.0.0.1",
            port,
            "tactful@vendor.example",
            "leads@vendor.example",
            starttls=False,
        )
        notify = row(
            "notify",
            {
                "target": "am@vendor.example",
                "message": "A key customer is struggling.",
                "why": ["vip_error_streak: repeated API errors"],
                "trend": {"frustration": 0.7},
            },
            key="n1",
        )
        mail.deliver(notify)
        mail.deliver(row())  # a handoff: to the team address
        [(to1, m1), (to2, m2)] = box.messages
        assert to1 == ["am@vendor.example"] and to2 == ["leads@vendor.example"]
        assert m1["Subject"] == "A key customer is struggling. (ben)"
        assert m1["Tactful-Idempotency-Key"] == "n1" and "n1" in m1["Message-ID"]
        body = m1.get_payload()
        assert "vip_error_streak" in body and "frustration 0.70" in body
        assert m2["Subject"] == "Handoff to billing (high): ben"
        assert "Recommended next step: Check the failed payments" in m2.get_payload()
        for address, permanent in (("gone@vendor.example", True), ("busy@vendor.example", False)):
            bounced = row("notify", {"target": address, "message": "x"}, key="n2")
            with pytest.raises(ChannelError) as refused:
                mail.deliver(bounced)
            assert refused.value.permanent is permanent
    finally:
        controller.stop()
    with pytest.raises(ChannelError, match="ConnectionRefusedError") as down:
        mail.deliver(row())
    assert not down.value.permanent


def test_a_down_receiver_is_probed_not_hammered_and_a_commit_wakes_the_dispatcher(
    tmp_path, make_event
):
    import socket

    store, policy = routed(tmp_path, make_event, CRM_ONLY, customers=12)
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    down = WebhookChannel("crm", f"http://127.0.0.1:{dead_port}/h", SECRET, concurrency=4)
    dispatcher = Dispatcher(store, {"crm": down, **build_channels_log(tmp_path)})
    started = time.monotonic()
    dispatcher.start()

    def attempts() -> int:
        return sum(r["attempts"] for r in store.list_outbox(limit=1000) if r["channel"] == "crm")

    deadline = started + 10
    while attempts() < 24 + 2 and time.monotonic() < deadline:  # the round, then 2 probes
        time.sleep(0.02)
    waited = time.monotonic() - started
    dispatcher.stop()
    rows = [r for r in store.list_outbox(limit=1000) if r["channel"] == "crm"]
    # one round of 24 failures, then the breaker: one probe after 0.5 s, one after 1 s more
    assert 24 + 2 <= attempts() <= 24 + 3, attempts()
    assert waited >= 1.4  # the probes waited out the breaker's pauses (0.5 s, then 1 s)
    assert all(r["status"] == "pending" for r in rows)

    # a commit with actions wakes an idle dispatcher long before its 30 s poll
    with receiver() as rx:
        up = WebhookChannel("crm", rx.url, SECRET)
        live = Dispatcher(store, {"crm": up, **build_channels_log(tmp_path)})
        engine = Engine(store, PolicyEngine(load_policy(policy)))
        engine.on_actions.append(live.wake)
        live.start(interval=30.0)
        time.sleep(0.3)  # the first (startup) round is over; the loops are idle
        before = len(rx.effects)
        engine.ingest([make_event(customer_id="new", text="I want to speak to a human")])
        deadline = time.monotonic() + 5
        while len(rx.effects) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        live.stop()
        assert len(rx.effects) >= before + 2  # the new customer's handoff and hold
    store.close()

"""Helpdesk webhooks in the scale-out shape (serve --broker): signed events go to
JetStream for the workers like /v1/events sends them, and a stream that cannot take them
is a 503 with Retry-After, which the helpdesks retry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .natsserver import NatsServer, nats_server  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .serving import Launch
from .test_helpdesks import SECRETS, fixture, intercom_headers


def test_helpdesk_events_are_published_and_a_full_stream_is_503(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    stream = nats_server.stream()
    with pg_server.database() as url:
        server = launch(
            url, tmp_path / "actions.jsonl", *nats_server.serve_args(stream, "--max-msgs", "2")
        )
        created = fixture("intercom_conversation_user_created.json")  # two events
        r = httpx.post(
            f"{server.url}/v1/helpdesks/intercom",
            content=created,
            headers=intercom_headers(created),
        )
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
        assert httpx.get(f"{server.url}/v1/customers/ana-42").status_code == 404  # workers' job
        replied = fixture("intercom_conversation_user_replied.json")
        r = httpx.post(
            f"{server.url}/v1/helpdesks/intercom",
            content=replied,
            headers=intercom_headers(replied),
        )
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        [error] = r.json()["errors"]
        assert error["field"] == "broker" and "full" in error["why"]

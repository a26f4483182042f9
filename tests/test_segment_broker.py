"""The Segment endpoints in the scale-out shape (serve --broker): valid calls go to
JetStream for the workers like /v1/events sends them (the API process applies none
itself), and a broker that cannot take them is a 503 with Retry-After in Segment's
error shape, which the SDKs retry."""

from __future__ import annotations

from pathlib import Path

import httpx

from .natsserver import NatsServer, nats_server  # noqa: F401  (the fixture)
from .pgserver import PgServer, pg_server  # noqa: F401  (the fixture)
from .serving import Launch


def test_segment_calls_are_published_and_a_full_stream_is_503(
    launch: Launch,
    pg_server: PgServer,  # noqa: F811
    nats_server: NatsServer,  # noqa: F811
    tmp_path: Path,
):
    stream = nats_server.stream()
    with pg_server.database() as url:
        server = launch(
            url, tmp_path / "actions.jsonl", *nats_server.serve_args(stream, "--max-msgs", "2")
        )
        calls = [
            {"type": "track", "userId": "ben", "event": "Payment Failed", "messageId": f"m{i}"}
            for i in range(3)
        ]
        r = httpx.post(f"{server.url}/v1/batch", json={"batch": calls[:2]})
        assert r.status_code == 200 and r.json() == {"success": True}, r.text
        assert httpx.get(f"{server.url}/v1/customers/ben").status_code == 404  # workers' job
        r = httpx.post(f"{server.url}/v1/track", json=calls[2])
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        body = r.json()
        assert body["success"] is False and body["code"] == "unavailable"
        assert "full" in body["message"]

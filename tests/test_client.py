"""tactful.Client and tactful.AsyncClient against a real `tactful serve`: batches, the
buffer, bounded retries with backoff and Retry-After, a server that is down (a clear
exception, nothing lost up to the bound, delivered once it is back), eligibility, state,
outcomes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import tactful
from tactful.access import ApiKey, new_key
from tactful.client import (
    AsyncClient,
    BufferFull,
    Client,
    RequestRefused,
    ServerUnavailable,
    _retry_after,
)
from tactful.state.store import SQLiteStore

from .serving import Launch, free_port, serve


def add_key(db: Path, *scopes: str, **limits: Any) -> str:
    store = SQLiteStore(db)
    key_id, key, secret_hash = new_key()
    store.add_key(
        ApiKey(key_id, "client", frozenset(scopes), secret_hash, datetime.now(UTC), **limits)
    )
    store.close()
    return key


def message(customer: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "message", "customer_id": customer, "text": text, **fields}


def test_the_names_on_the_package():
    assert tactful.Client is Client and tactful.AsyncClient is AsyncClient


def test_the_outcome_kinds_are_the_ones_the_server_takes():
    from typing import get_args

    from tactful import client
    from tactful.api.learning import Reported

    assert get_args(client.OutcomeKind) == get_args(Reported)


def test_send_in_batches_then_ask_for_state_eligibility_and_report_outcomes(tmp_path, launch):
    db = tmp_path / "c.db"
    key = add_key(db, "admin")
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    with Client(server.url, key, batch_size=100) as client:
        client.send_many(message(f"c{i % 10}", f"hello {i}") for i in range(150))
        assert client.buffered == 50  # the first full batch went out as it filled
        client.send(message("ben", "This is the third time I ask. I want a human NOW!"))
        client.send({"type": "message", "customer_id": "ben", "text": ""})  # rejected
        client.send({"type": "track", "userId": "ben", "event": "Payment Failed"})  # Segment
        result = client.flush()
        assert client.buffered == 0
        assert (result.accepted, result.duplicates, result.batches) == (52, 0, 1)
        (bad,) = result.rejected
        assert bad["errors"][0]["field"] == "text" and bad["errors"][0]["why"]
        ben = client.customer("ben")
        assert ben is not None and ben["events_seen"] == 2
        assert ben["payment_failures_30d"] == 1
        assert client.customer("nobody") is None
        answers = client.eligibility(["ben", "c1", "nobody"], "promotional")
        assert set(answers) == {"ben", "c1", "nobody"}
        assert answers["c1"]["eligible"] is True and answers["nobody"]["eligible"] is True
        assert isinstance(answers["ben"]["eligible"], bool) and answers["ben"]["reason"]
        first = client.outcome("c1", "csat", 5, outcome_id="survey-1", by="survey")
        again = client.outcome("c1", "csat", 5, outcome_id="survey-1", by="survey")
        assert first["outcome_id"] == again["outcome_id"] and again.get("duplicate") is True
        with pytest.raises(RequestRefused) as refused:
            client.outcome("c1", "csat", 9)
        assert refused.value.status == 422 and "1 to 5" in str(refused.value)
    r = httpx.get(f"{server.url}/healthz").json()
    assert r["events"] == 152


def test_a_server_that_is_down_keeps_the_events_and_says_so(tmp_path):
    db = tmp_path / "down.db"
    key = add_key(db, "admin")
    port = free_port()  # nothing listens here yet
    client = Client(
        f"http://127.0.0.1:{port}",
        key,
        batch_size=10,
        max_buffer=20,
        max_retries=3,
        backoff=0.01,
        max_backoff=0.05,
    )
    client.send_many(message("ana", f"where is my invoice {i}") for i in range(5))
    started = time.monotonic()
    with pytest.raises(ServerUnavailable) as down:
        client.flush()
    assert time.monotonic() - started < 5  # bounded: 4 attempts with short waits
    error = down.value
    assert error.attempts == 4 and error.buffered == 5 and client.buffered == 5
    assert f"127.0.0.1:{port}" in str(error) and "ConnectError" in str(error)
    assert "5 events kept" in str(error)
    client.send_many(message("ana", f"more {i}") for i in range(15))  # fills the buffer
    assert client.buffered == 20  # the full batch could not go: kept, no exception here
    with pytest.raises(BufferFull) as full:
        client.send(message("ana", "one too many"))
    assert full.value.bound == 20 and isinstance(full.value.__cause__, ServerUnavailable)
    assert client.buffered == 20  # the refused one was not taken; none of the others lost
    server = serve(  # the server comes back, on the port the client was given
        tmp_path, db, tmp_path / "actions.jsonl", "--text-scorer", "lexical", port=port
    )
    try:
        result = client.flush()
        assert (result.accepted, result.batches, client.buffered) == (20, 2, 0)
        again = client.flush()  # nothing left, nothing sent twice
        assert again.batches == 0
        state = httpx.get(
            f"{server.url}/v1/customers/ana", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert state["events_seen"] == 20
    finally:
        client.close()
        server.stop()


def test_429_is_retried_after_what_the_server_asks(tmp_path, launch):
    db = tmp_path / "rate.db"
    slow = add_key(db, "ingest", rps=4.0)  # a burst of 8, then 4 a second; Retry-After: 1
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    # Retry-After is whole seconds: capped at 0.3 s here so no wait reaches 0.5 s
    with Client(server.url, slow, batch_size=1, max_retries=20, max_retry_after=0.3) as client:
        started = time.monotonic()
        for i in range(12):
            client.send(message("cy", f"m{i}"))  # each a full batch: sent at once
        took = time.monotonic() - started
        assert client.buffered == 0
    total = httpx.get(f"{server.url}/healthz").json()["events"]
    assert total == 12  # every event arrived, once
    assert took >= 0.3  # it did wait: 12 requests at 4 a second after a burst of 8
    impatient = Client(server.url, slow, batch_size=1, max_retries=0)
    for i in range(30):
        impatient.send(message("cy", f"now {i}"))
        try:
            impatient.flush()
        except ServerUnavailable as exc:  # 429 through its one attempt
            assert "429" in exc.last and "over its limit" in exc.last and exc.attempts == 1
            assert impatient.buffered == 1  # kept for later
            break
    else:
        pytest.fail("never rate limited")
    impatient.close()


def test_refusals_are_not_retried_and_say_why(tmp_path, launch):
    db = tmp_path / "refused.db"
    add_key(db, "ingest")
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    with Client(server.url, "tk_nope_nope", max_retries=5, backoff=5) as client:
        client.send(message("dee", "hi"))
        started = time.monotonic()
        with pytest.raises(RequestRefused) as refused:
            client.flush()
        assert time.monotonic() - started < 2  # not retried with a 5 s backoff
        assert refused.value.status == 401 and "not valid" in str(refused.value)
        assert client.buffered == 1  # not delivered: still here
        client._core.buffer.clear()  # so leaving the block does not try again


def test_retry_after_as_seconds_or_a_date():
    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert _retry_after(answer("3"), 60) == 3
    assert _retry_after(answer("300"), 60) == 60
    soon = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    waited = _retry_after(answer(soon), 60)
    assert waited is not None and 25 <= waited <= 30
    assert _retry_after(answer("soon"), 60) is None
    with pytest.raises(ValueError, match="batch_size"):
        Client("http://127.0.0.1:1", batch_size=0)


def test_the_async_client(tmp_path, launch: Launch):
    db = tmp_path / "a.db"
    key = add_key(db, "admin")
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")

    async def scenario() -> None:
        async with AsyncClient(server.url, key, batch_size=5) as client:
            await client.send_many(message("eve", f"question {i}") for i in range(7))
            assert client.buffered == 2
            await client.send({"type": "page", "userId": "eve", "properties": {"path": "/cancel"}})
            result = await client.flush()
            assert result.accepted == 3 and client.buffered == 0
            eve = await client.customer("eve")
            assert eve is not None and eve["events_seen"] == 8
            assert (await client.eligibility(["eve"]))["eve"]["customer_id"] == "eve"
            assert (await client.outcome("eve", "thumbs", 1))["outcome_id"]
        down = AsyncClient(f"http://127.0.0.1:{free_port()}", key, max_retries=2, backoff=0.01)
        await down.send(message("eve", "anyone?"))
        with pytest.raises(ServerUnavailable) as error:
            await down.flush()
        assert error.value.attempts == 3 and down.buffered == 1
        await down.aclose()

    asyncio.run(scenario())


def test_the_example_in_the_docs_runs(tmp_path, launch):
    import os
    import re

    docs = Path(__file__).resolve().parents[1] / "docs" / "client.md"
    example = re.findall(r"```python\n(.*?)```", docs.read_text(), re.S)[0]
    db = tmp_path / "docs.db"
    key = add_key(db, "admin")
    server = launch(db, tmp_path / "actions.jsonl", "--text-scorer", "lexical")
    env = {**os.environ, "TACTFUL_URL": server.url, "TACTFUL_KEY": key}
    run = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "6 accepted; 0 rejected" in run.stdout
    state = httpx.get(
        f"{server.url}/v1/customers/ben", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert state["payment_failures_30d"] == 3

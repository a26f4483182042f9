"""Next-message drafts from the customer's state, and the optional language model that
rewrites them (a local OpenAI-compatible server, over real HTTP)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tactful.actions.channels import LogChannel
from tactful.actions.channels.config import load_channels
from tactful.actions.dispatch import Dispatcher
from tactful.actions.drafts import draft, mood
from tactful.actions.llm import ChatModel
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.base import OutboxRow

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_the_draft_follows_mood_and_topic():
    frustrated = {"frustration": 0.7}
    tech = draft(frustrated, "technical")
    assert tech.mood == "frustrated" and tech.tone == "empathetic"
    assert "troubleshooting" in tech.text and "bring in" in tech.text and "person" in tech.text
    money = draft(frustrated, "refund", "apologetic")
    assert money.tone == "apologetic" and "refund" in money.text and "billing team" in money.text
    confused = draft({"confusion": 0.5}, "billing", values={"question": "Which invoice?"})
    assert confused.text == "Which invoice?" and confused.template == "confused/any"
    happy = draft({"gratitude": 0.8}, "other")
    assert happy.text.startswith("Glad") and happy.tone == "upbeat"
    assert draft({}, "other").mood == "neutral"
    assert mood({"frustration": 0.2, "churn_intent": 0.6}) == "frustrated"


def test_a_frustrated_customer_gets_a_drafted_reply_in_the_outbox(tmp_path, policy, make_event):
    store = SQLiteStore(tmp_path / "d.db")
    text = "The export is broken AGAIN, third time this week, this is ridiculous!!"
    Engine(store, policy, clock=lambda: NOW).ingest(
        [make_event(text=text, at=f"2026-10-01T10:0{i}:00Z") for i in range(3)]
    )
    suggested = [r for r in store.list_outbox(limit=100) if r["kind"] == "message.suggested"]
    drafts = [r["payload"]["draft"] for r in suggested if "draft" in r["payload"]]
    assert drafts, [r["payload"] for r in suggested]
    assert drafts[0]["mood"] == "frustrated" and drafts[0]["source"] == "template"
    store.close()


# --- the language model ---------------------------------------------------------------------


class FakeModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.mode = "ok"  # ok | error | slow | garbage
        self.release = threading.Event()  # "slow" answers only once the test sets it


@contextmanager
def chat_server() -> Iterator[tuple[str, FakeModel]]:
    fake = FakeModel()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(body)
            fake.auth.append(self.headers.get("Authorization"))
            answer: dict[str, Any]
            if self.path != "/v1/chat/completions":
                status, answer = 404, {"error": "not found"}
            elif fake.mode == "error":
                status, answer = 500, {"error": "overloaded"}
            elif fake.mode == "garbage":
                status, answer = 200, {"nothing": True}
            else:
                if fake.mode == "slow":
                    fake.release.wait(10)  # past the client's timeout, until released
                status = 200
                answer = {
                    "choices": [{"message": {"role": "assistant", "content": " Rewritten. "}}],
                    "usage": {"total_tokens": 40},
                }
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()


def suggested(text: str = "I'm sorry this has been frustrating.") -> OutboxRow:
    payload = {
        "decision": "draft_message",
        "tone": "empathetic",
        "draft": {
            "text": text,
            "tone": "empathetic",
            "mood": "frustrated",
            "template": "frustrated/any",
            "source": "template",
        },
    }
    return OutboxRow("a1", "a1", "ben", "log", "message.suggested", payload, 0, NOW)


def test_the_model_rewrites_a_draft_and_falls_back_on_any_failure():
    with chat_server() as (url, fake):
        model = ChatModel(url, "local-model", api_key="sk-test", timeout=timedelta(seconds=0.3))
        done = model.enrich(suggested())
        assert done.payload["draft"]["text"] == "Rewritten."
        assert done.payload["draft"]["source"] == "llm"
        assert done.payload["draft"]["template_text"].startswith("I'm sorry")
        assert fake.auth == ["Bearer sk-test"]
        sent = fake.requests[0]
        assert sent["model"] == "local-model" and sent["messages"][0]["role"] == "system"
        assert "empathetic" in sent["messages"][1]["content"]
        for mode, why in (
            ("error", "answered 500"),
            ("slow", "timed out"),
            ("garbage", "not a chat-completions answer"),
        ):
            fake.mode = mode
            fell = model.enrich(suggested())
            assert fell.payload["draft"]["source"] == "template"
            assert fell.payload["draft"]["text"].startswith("I'm sorry")
            assert why in fell.payload["draft"]["fallback_reason"]


def test_the_budget_stops_calls_and_other_kinds_pass_untouched():
    with chat_server() as (url, fake):
        model = ChatModel(url, "m", calls_per_hour=1)
        assert model.enrich(suggested()).payload["draft"]["source"] == "llm"
        over = model.enrich(suggested())
        assert "budget: 1 calls in the last hour" in over.payload["draft"]["fallback_reason"]
        assert len(fake.requests) == 1
        hold = OutboxRow("h", "h", "ben", "log", "hold.started", {"hold_id": "x"}, 0, NOW)
        assert model.enrich(hold) is hold
        tokens = ChatModel(url, "m", tokens_per_day=30)
        tokens.enrich(suggested())  # 40 tokens spent
        assert "tokens today" in tokens.enrich(suggested()).payload["draft"]["fallback_reason"]


def test_handoff_summaries_go_through_the_dispatcher(tmp_path, policy, make_event):
    store = SQLiteStore(tmp_path / "d.db")
    Engine(store, policy, clock=lambda: NOW).ingest(
        [make_event(text="I want to speak to a human", at="2026-10-01T10:00:00Z")]
    )
    with chat_server() as (url, fake):
        channels_file = tmp_path / "channels.yaml"
        channels_file.write_text(f"llm: {{base_url: '{url}', model: m, timeout: 2s}}\n")
        enrich = load_channels(channels_file).enricher()
        log = tmp_path / "a.jsonl"
        dispatcher = Dispatcher(store, {"log": LogChannel(log)}, clock=lambda: NOW, enrich=enrich)
        assert dispatcher.drain() >= 2
        dispatcher.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    handoff = next(x for x in lines if x["kind"] == "handoff.created")
    assert handoff["payload"]["summary"] == {"text": "Rewritten.", "source": "llm", "model": "m"}
    assert json.loads(fake.requests[0]["messages"][1]["content"])["handoff_id"]
    store.close()


def test_an_unsafe_model_url_is_refused(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text("llm: {base_url: 'http://169.254.169.254/v1', model: m}\n")
    with pytest.raises(ValueError, match="link-local"):
        load_channels(path)

"""Local HTTP receivers the tests start: a signed-webhook receiver that verifies
signatures and dedupes on Idempotency-Key, and a Slack-shaped one (incoming webhook and
chat.postMessage) that checks the Block Kit payload. Real sockets, real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tactful.actions.signing import HEADER, SignatureError, verify

SECRET = "whsec_test_0123456789abcdef"
BLOCK_TYPES = {"header", "section", "context", "actions", "divider"}


@dataclass
class Receiver:
    """What arrived, and how the next requests should be answered."""

    url: str = ""
    # status codes to answer with, in turn (then 200 for ever); a float is a delay in s
    script: list[int | float] = field(default_factory=list)
    delay_s: float = 0.0  # before every answer
    received: list[dict[str, Any]] = field(default_factory=list)  # accepted bodies
    keys: Counter[str] = field(default_factory=Counter)  # every Idempotency-Key seen
    effects: list[str] = field(default_factory=list)  # keys acted on (first time only)
    problems: list[str] = field(default_factory=list)  # requests refused, with why
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            while self.script:
                step = self.script.pop(0)
                if isinstance(step, float):
                    time.sleep(step)
                    continue
                return step
        return 200


def _check_blocks(payload: dict[str, Any]) -> list[str]:
    """Block Kit rules Slack enforces that a payload could break."""
    problems = []
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        problems.append("no fallback text")
    blocks = payload.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return [*problems, "blocks must be a list of 1..50"]
    for i, b in enumerate(blocks):
        if b.get("type") not in BLOCK_TYPES:
            problems.append(f"blocks[{i}]: type {b.get('type')!r}")
        if b.get("type") == "header" and (
            b["text"]["type"] != "plain_text" or len(b["text"]["text"]) > 150
        ):
            problems.append(f"blocks[{i}]: header must be plain_text <= 150")
        if b.get("type") == "section":
            if "text" not in b and "fields" not in b:
                problems.append(f"blocks[{i}]: section without text or fields")
            if len(b.get("fields", [])) > 10:
                problems.append(f"blocks[{i}]: more than 10 fields")
            if len(b.get("text", {}).get("text", "")) > 3000:
                problems.append(f"blocks[{i}]: text over 3000")
    return problems


def _handler(rx: Receiver, kind: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout, or the test killed it)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if rx.delay_s:
                time.sleep(rx.delay_s)
            status = rx.next_status()
            with rx.lock:
                rx.headers.append(dict(self.headers))
            if status != 200:
                self._answer(status, {"error": f"scripted {status}"})
                return
            if kind == "webhook":
                key = self.headers.get("Idempotency-Key", "")
                try:
                    verify(SECRET, raw, self.headers.get(HEADER))
                except SignatureError as exc:
                    with rx.lock:
                        rx.problems.append(str(exc))
                    self._answer(400, {"error": str(exc)})
                    return
                body = json.loads(raw)
                with rx.lock:
                    rx.keys[key] += 1
                    if rx.keys[key] == 1:  # honour the idempotency key: act once
                        rx.effects.append(key)
                        rx.received.append(body)
                self._answer(200, {"ok": True})
                return
            body = json.loads(raw) if raw[:1] == b"{" else {}
            if self.path.endswith("/chat.postMessage"):
                if self.headers.get("Authorization") != "Bearer xoxb-test-token":
                    self._answer(200, {"ok": False, "error": "invalid_auth"})
                    return
                if not body.get("channel"):
                    self._answer(200, {"ok": False, "error": "channel_not_found"})
                    return
            problems = _check_blocks(body)
            with rx.lock:
                if problems:
                    rx.problems.extend(problems)
                else:
                    rx.received.append(body)
            if problems:
                self._answer(400, {"ok": False, "error": "invalid_blocks", "why": problems})
            elif self.path.endswith("/chat.postMessage"):
                self._answer(200, {"ok": True, "channel": body["channel"], "ts": "1.2"})
            else:
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(data)

    return Handler


@contextmanager
def receiver(kind: str = "webhook", path: str = "/hook") -> Iterator[Receiver]:
    """``kind``: webhook (verifies signatures) or slack (checks Block Kit)."""
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx, kind))
    server.daemon_threads = True
    rx.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        server.shutdown()
        server.server_close()

"""Act, optionally: a language model rewrites drafts and handoff summaries.

Any OpenAI-compatible chat-completions endpoint works (a hosted one, or a local server
such as vLLM, llama.cpp or Ollama): ``POST {base_url}/chat/completions``. It is never
required and never in the way: it runs in the dispatcher, after the decision is
committed, with a timeout and a budget (calls per hour, tokens per day); on any failure
the templated draft (actions/drafts.py) or the package's own goal goes out instead, with
the reason recorded in ``fallback_reason``. Only redacted text is sent (the handoff
package and drafts are built from redacted text).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx

from tactful.state.store.base import OutboxRow

__all__ = ["ChatModel", "LLMError"]

SYSTEM_DRAFT = (
    "You write the next message of a customer support conversation, as the support team. "
    "Rewrite the draft you are given in the requested tone, in at most 80 words. Keep every "
    "link and offer it makes; promise nothing it does not (no refunds, no dates). Reply with "
    "the message only."
)
SYSTEM_SUMMARY = (
    "You brief a support agent taking over a conversation. From the JSON handoff package, "
    "write two sentences: what the customer wants and what already happened. Reply with "
    "the two sentences only."
)


class LLMError(RuntimeError):
    """The model could not be used; the template stands."""


@dataclass
class _Budget:
    calls_per_hour: int
    tokens_per_day: int
    calls: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, now: float) -> None:
        with self.lock:
            while self.calls and now - self.calls[0] > 3600:
                self.calls.popleft()
            while self.tokens and now - self.tokens[0][0] > 86_400:
                self.tokens.popleft()
            if len(self.calls) >= self.calls_per_hour:
                raise LLMError(f"budget: {self.calls_per_hour} calls in the last hour")
            used = sum(n for _, n in self.tokens)
            if used >= self.tokens_per_day:
                raise LLMError(f"budget: {used:,} of {self.tokens_per_day:,} tokens today")
            self.calls.append(now)

    def spend(self, now: float, tokens: int) -> None:
        with self.lock:
            self.tokens.append((now, tokens))


class ChatModel:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: timedelta = timedelta(seconds=5),
        calls_per_hour: int = 600,
        tokens_per_day: int = 500_000,
        max_tokens: int = 200,
        client: httpx.Client | None = None,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.max_tokens = max_tokens
        self.budget = _Budget(calls_per_hour, tokens_per_day)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout.total_seconds(), headers=headers)

    def complete(self, system: str, user: str) -> str:
        """The model's reply, or LLMError saying why not."""
        now = time.time()
        self.budget.check(now)
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": self.max_tokens,
            "temperature": 0.3,
        }
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise LLMError("timed out") from None
        except httpx.HTTPError as exc:
            raise LLMError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise LLMError(f"answered {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            text = str(data["choices"][0]["message"]["content"]).strip()
            tokens = int(data.get("usage", {}).get("total_tokens", 0))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"not a chat-completions answer: {exc}") from None
        self.budget.spend(now, tokens)
        if not text:
            raise LLMError("empty reply")
        return text

    def enrich(self, row: OutboxRow) -> OutboxRow:
        """A draft or handoff with the model's text, or unchanged with why (never raises)."""
        payload: dict[str, Any] = dict(row.payload)
        try:
            if row.kind == "message.suggested" and isinstance(payload.get("draft"), dict):
                template = payload["draft"]
                ask = json.dumps({"tone": template.get("tone"), "draft": template.get("text")})
                text = self.complete(SYSTEM_DRAFT, ask)
                payload["draft"] = {
                    **template,
                    "text": text,
                    "source": "llm",
                    "template": f"{self.model} (from {template.get('template')})",
                    "template_text": template.get("text"),
                }
            elif row.kind == "handoff.created":
                payload["summary"] = {
                    "text": self.complete(SYSTEM_SUMMARY, json.dumps(payload)[:12_000]),
                    "source": "llm",
                    "model": self.model,
                }
            else:
                return row
        except LLMError as exc:
            if row.kind == "message.suggested" and isinstance(payload.get("draft"), dict):
                payload["draft"] = {**payload["draft"], "fallback_reason": str(exc)}
            else:
                payload["summary"] = {
                    "text": payload.get("goal", ""),
                    "source": "template",
                    "fallback_reason": str(exc),
                }
        return replace(row, payload=payload)

    def close(self) -> None:
        self._client.close()

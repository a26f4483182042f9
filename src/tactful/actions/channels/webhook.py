"""Act: generic webhooks, signed with HMAC-SHA256 (see actions/signing.py).

Each action is POSTed as JSON::

    {"id": "<idempotency key>", "type": "hold.started", "customer_id": "...",
     "created_at": "...", "data": {...the action's payload...}}

with headers ``Idempotency-Key`` (the same for every retry of one action: receivers
dedupe on it), ``Tactful-Signature: t=...,v1=...`` and ``Tactful-Event``. A 2xx answer
is a delivery; 408, 429 and 5xx, timeouts and connection errors are retried; any other
4xx is permanent (dead-lettered with the receiver's answer).
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from tactful.actions.channels import ChannelError
from tactful.actions.signing import HEADER, signature_header
from tactful.state.store.base import OutboxRow

__all__ = ["WebhookChannel", "check_response", "envelope"]

RETRYABLE = frozenset({408, 425, 429})


def envelope(action: OutboxRow) -> bytes:
    return json.dumps(
        {
            "id": action.idempotency_key,
            "type": action.kind,
            "customer_id": action.customer_id,
            "created_at": action.created_at.isoformat(),
            "data": action.payload,
        },
        separators=(",", ":"),
    ).encode("utf-8")


def check_response(channel: str, response: httpx.Response) -> None:
    """Raise ChannelError unless 2xx; permanent for 4xx other than 408/425/429."""
    if 200 <= response.status_code < 300:
        return
    body = response.text[:300].strip()
    status = response.status_code
    permanent = 400 <= status < 500 and status not in RETRYABLE
    raise ChannelError(
        f"{channel}: {response.request.url} answered {status}"
        + (f": {body}" if body else "")
        + ("" if permanent else " (will retry)"),
        permanent=permanent,
    )


class WebhookChannel:
    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 4,
        client: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.concurrency = concurrency
        self._secret = secret
        self._client = client or httpx.Client(
            timeout=timeout.total_seconds(),
            follow_redirects=False,  # a redirect could lead the signed body elsewhere
            headers={"User-Agent": "tactful-webhooks/1"},
            limits=httpx.Limits(max_connections=concurrency),
        )

    def deliver(self, action: OutboxRow) -> None:
        body = envelope(action)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": action.idempotency_key,
            "Tactful-Event": action.kind,
            HEADER: signature_header(self._secret, body),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ChannelError(f"{self.name}: {self.url} timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise ChannelError(f"{self.name}: {self.url}: {type(exc).__name__}: {exc}") from exc
        check_response(self.name, response)

    def close(self) -> None:
        self._client.close()

"""A Python client for tactful's HTTP API: :class:`Client` (blocking) and
:class:`AsyncClient` (asyncio), both on httpx.

- **Send events** with :meth:`Client.send`: they wait in a local buffer (at most
  ``max_buffer`` events) and go out in batches of ``batch_size`` to ``POST /v1/events``,
  when a batch is full or on :meth:`Client.flush`. An event leaves the buffer only once the
  server has answered for it (accepted, a duplicate, or rejected with its reasons and
  kept in the server's quarantine): while the server is down nothing is lost up to the
  bound. Each event gets an ``event_id`` (and a ``timestamp``) if it has none, so a retry
  is recognised as the same event.
- **Retries** are bounded: connection failures, timeouts, ``429`` and ``5xx`` are tried
  again up to ``max_retries`` times with exponential backoff and jitter, waiting as long as
  the server's ``Retry-After`` asks (up to ``max_retry_after``). When the server stays
  down, :meth:`Client.flush` raises :class:`ServerUnavailable` (the events stay buffered);
  :meth:`Client.send` raises :class:`BufferFull` only when the buffer is at its bound.
- **Ask and tell**: :meth:`Client.eligibility` for a send list, :meth:`Client.customer`
  for a customer's state, :meth:`Client.outcome` to report what followed.

Other refusals (a bad key, a malformed request) raise :class:`RequestRefused` with the
status and the server's errors (field, value, why); they are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

import httpx

__all__ = [
    "AsyncClient",
    "BufferFull",
    "Client",
    "ClientError",
    "RequestRefused",
    "SendResult",
    "ServerUnavailable",
]

Category = Literal["promotional", "educational", "sales", "all"]
# What POST /v1/outcomes takes (api/learning.py's Reported): a copy, so that the client
# imports nothing of the server; tests/test_client.py keeps the two equal.
OutcomeKind = Literal[
    "csat",
    "thumbs",
    "summary_rating",
    "conversion",
    "churn",
    "handoff_resolved",
    "handoff_rejected",
]

RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_SEND_LIST = 10_000  # the server's bound for one eligibility request
MAX_BATCH = 1_000  # the server's bound for one POST /v1/events


class ClientError(Exception):
    """Anything the client gives up on."""


class RequestRefused(ClientError):
    """The server refused a request in a way a retry will not change (400, 401, 403, 404,
    413, 422 ...). ``errors``: its reasons, each with field, value and why when it gave
    them."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.errors: list[dict[str, Any]] = []
        if isinstance(body, dict):
            if isinstance(body.get("errors"), list):
                self.errors = body["errors"]
            elif "detail" in body:
                detail = body["detail"]
                self.errors = detail if isinstance(detail, list) else [{"why": str(detail)}]
        why = (
            "; ".join(": ".join(str(e[k]) for k in ("field", "why") if k in e) for e in self.errors)
            or str(body)[:300]
        )
        super().__init__(f"{method} {path}: {status} {why}")


class ServerUnavailable(ClientError):
    """The server could not be reached, or kept answering 429/5xx, through every retry.
    ``buffered``: events still waiting in the client's buffer (none were dropped)."""

    def __init__(self, url: str, attempts: int, waited: float, last: str, buffered: int) -> None:
        self.url = url
        self.attempts = attempts
        self.waited = waited
        self.last = last
        self.buffered = buffered
        super().__init__(
            f"{url} unavailable after {attempts} attempts over {waited:.1f} s (last: {last}); "
            f"{buffered} events kept in the client's buffer, send them with flush() later"
        )


class BufferFull(ClientError):
    """The local buffer holds ``max_buffer`` events that the server has not taken (it is
    down or refusing): this event was not buffered. The cause, if known, is chained."""

    def __init__(self, bound: int, rejected: int) -> None:
        self.bound = bound
        self.rejected = rejected
        super().__init__(
            f"the client's buffer is full ({bound} events not yet delivered): {rejected} new "
            "event(s) not accepted; flush() once the server is back, or raise max_buffer"
        )


@dataclass
class SendResult:
    """What the server said about the events a flush delivered. ``rejected``: each
    rejected event's result (index in its batch, event_id, errors with field, value, why);
    the server keeps them in its quarantine."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0

    def add(self, body: Mapping[str, Any]) -> None:
        self.accepted += int(body.get("accepted", 0))
        self.duplicates += int(body.get("duplicates", 0))
        self.rejected += [r for r in body.get("results", []) if r.get("status") == "rejected"]
        self.batches += 1


def _ready(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with an id (so a retry is the same event) and a time, if it lacked them."""
    out = dict(event)
    segment = out.get("type") in ("track", "page", "screen", "group") or (
        out.get("type") == "identify" and "customer_id" not in out
    )
    id_key = "messageId" if segment else "event_id"
    if not out.get(id_key):
        out[id_key] = str(uuid.uuid4())
    if not out.get("timestamp"):
        out["timestamp"] = datetime.now(UTC).isoformat()
    return out


def _retry_after(response: httpx.Response | None, cap: float) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date), capped."""
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class _Core:
    """What both clients share: the buffer, the retry schedule, the answers' meaning."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        batch_size: int,
        max_buffer: int,
        max_retries: int,
        backoff: float,
        max_backoff: float,
        max_retry_after: float,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size={batch_size}: must be 1 to {MAX_BATCH}")
        if max_buffer < batch_size:
            raise ValueError(f"max_buffer={max_buffer}: must be at least batch_size")
        if max_retries < 0 or backoff < 0 or max_backoff < 0 or max_retry_after < 0:
            raise ValueError("max_retries, backoff, max_backoff, max_retry_after: not negative")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.buffer: deque[dict[str, Any]] = deque()
        self.lock = threading.Lock()  # the buffer, for both clients (cheap, never awaited)
        self.last_failure: ServerUnavailable | None = None
        # After the server stayed down, send() leaves it alone this long (monotonic time)
        # instead of blocking every caller through another round of retries.
        self.quiet_until = 0.0

    def put(self, events: Iterable[Mapping[str, Any]]) -> bool:
        """Buffer ``events`` (all or none); whether a batch is now full."""
        ready = [_ready(e) for e in events]
        with self.lock:
            if len(self.buffer) + len(ready) > self.max_buffer:
                error = BufferFull(self.max_buffer, len(ready))
                raise error from self.last_failure
            self.buffer.extend(ready)
            return len(self.buffer) >= self.batch_size

    def may_try(self) -> bool:
        """May a full batch be sent from send() (not right after the server stayed down)?"""
        return time.monotonic() >= self.quiet_until

    def next_batch(self, full_only: bool) -> list[dict[str, Any]]:
        """The next batch to send (the buffer's head), if any (only a full one if asked)."""
        with self.lock:
            if full_only and len(self.buffer) < self.batch_size:
                return []
            return [self.buffer[i] for i in range(min(self.batch_size, len(self.buffer)))]

    def delivered(self, batch: Sequence[dict[str, Any]]) -> None:
        """The server answered for ``batch``: out of the buffer (it is the buffer's head:
        only one flush runs at a time)."""
        with self.lock:
            for sent in batch:
                if self.buffer and self.buffer[0] is sent:
                    self.buffer.popleft()

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        asked = _retry_after(response, self.max_retry_after)
        if asked is not None:
            return asked
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter: not all at once

    @staticmethod
    def retried(response: httpx.Response) -> bool:
        return response.status_code in RETRIED_STATUS

    def unavailable(self, attempts: int, waited: float, last: str) -> ServerUnavailable:
        error = ServerUnavailable(self.base_url, attempts, waited, last, len(self.buffer))
        self.last_failure = error
        self.quiet_until = time.monotonic() + self.max_backoff
        return error

    @staticmethod
    def describe(response: httpx.Response | None, exc: Exception | None) -> str:
        if exc is not None:
            return f"{type(exc).__name__}: {exc}"
        assert response is not None
        return f"{response.status_code} {str(_body(response))[:200]}"

    def answer(self, method: str, path: str, response: httpx.Response, ok: Iterable[int]) -> Any:
        if response.status_code not in ok:
            raise RequestRefused(method, path, response.status_code, _body(response))
        return _body(response)


class Client:
    """tactful's API, blocking. Use as a context manager (``with Client(...) as c``): on
    exit the buffer is flushed (raising :class:`ServerUnavailable` if it cannot be) and
    the connections closed.

    ``base_url``: where ``tactful serve`` listens. ``api_key``: a key with the scopes the
    calls need (``ingest`` to send, ``read`` for state and eligibility, ``act`` for
    outcomes). ``batch_size``: events per request. ``max_buffer``: events kept while they
    cannot be delivered. ``max_retries``: tries after the first, for each request.
    ``backoff``/``max_backoff``: the first wait and the longest, doubling in between.
    ``max_retry_after``: the longest ``Retry-After`` honoured. ``timeout``: per request,
    seconds. ``transport``: an httpx transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        batch_size: int = 100,
        max_buffer: int = 10_000,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _Core(
            base_url,
            api_key,
            batch_size,
            max_buffer,
            max_retries,
            backoff,
            max_backoff,
            max_retry_after,
        )
        self._http = httpx.Client(
            base_url=self._core.base_url,
            headers=self._core.headers,
            timeout=timeout,
            transport=transport,
        )
        self._flushing = threading.Lock()

    # -- sending -------------------------------------------------------------------------
    def send(self, event: Mapping[str, Any]) -> None:
        """Buffer one event (a native tactful event or a Segment call); a full batch is
        sent at once. Raises :class:`BufferFull` when ``max_buffer`` events are waiting."""
        self.send_many([event])

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Buffer events (all, or none if they do not fit); full batches are sent. A
        server that is down is not an error here (the events wait): see :meth:`flush`.
        Raises :class:`BufferFull`, or :class:`RequestRefused` if the server refuses a
        full batch outright (a bad key ...; the batch stays buffered)."""
        if self._core.put(events) and self._core.may_try():
            with contextlib.suppress(ServerUnavailable):  # kept: flush() says so, send()
                self._flush(full_only=True)  # once the buffer is full

    def flush(self) -> SendResult:
        """Send every buffered event, in batches, in order. Raises
        :class:`ServerUnavailable` when the server stays down (what was not delivered
        stays buffered) and :class:`RequestRefused` when it refuses a batch outright."""
        return self._flush(full_only=False)

    def _flush(self, full_only: bool) -> SendResult:
        result = SendResult()
        with self._flushing:
            while batch := self._core.next_batch(full_only):
                body = self._request("POST", "/v1/events", (202, 422), json=batch)
                self._core.delivered(batch)
                result.add(body)
            self._core.last_failure, self._core.quiet_until = None, 0.0
        return result

    @property
    def buffered(self) -> int:
        """Events waiting in the buffer."""
        return len(self._core.buffer)

    # -- asking and telling --------------------------------------------------------------
    def eligibility(
        self, customer_ids: Iterable[str], category: Category = "promotional"
    ) -> dict[str, dict[str, Any]]:
        """May marketing send to these customers now? customer_id -> the answer
        (``eligible``, ``reason``, the hold and when it ends). Lists longer than the
        server's bound are asked in parts."""
        ids = list(dict.fromkeys(customer_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_SEND_LIST):
            part = ids[start : start + MAX_SEND_LIST]
            body = self._request(
                "POST", "/v1/eligibility", (200,), json={"category": category, "customer_ids": part}
            )
            out.update({r["customer_id"]: r for r in body["results"]})
        return out

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """A customer's state (trend, signals, holds, handoffs, recent decisions), or
        ``None`` if tactful has not seen them."""
        path = f"/v1/customers/{_segment(customer_id)}"
        response = self._send("GET", path)
        if response.status_code == 404:
            return None
        return self._core.answer("GET", path, response, (200,))  # type: ignore[no-any-return]

    def outcome(
        self,
        customer_id: str,
        kind: OutcomeKind,
        value: float | None = None,
        *,
        outcome_id: str | None = None,
        decision_id: str | None = None,
        handoff_id: str | None = None,
        by: str = "",
        reason: str = "",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Report what followed (a CSAT, a conversion, an agent's verdict on a handoff).
        Give ``outcome_id`` to make a retried report count once."""
        body = _outcome(
            customer_id, kind, value, outcome_id, decision_id, handoff_id, by, reason, at
        )
        return self._request("POST", "/v1/outcomes", (200, 201), json=body)  # type: ignore[no-any-return]

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error = exc
            if response is not None and not self._core.retried(response):
                return response
            if attempt >= self._core.max_retries:
                raise self._core.unavailable(
                    attempt + 1,
                    time.monotonic() - started,
                    self._core.describe(response, error),
                )
            time.sleep(self._core.delay(attempt, response))
            attempt += 1

    def _request(self, method: str, path: str, ok: Iterable[int], **kwargs: Any) -> Any:
        return self._core.answer(method, path, self._send(method, path, **kwargs), ok)

    def close(self) -> None:
        """Close the connections (the buffer is not flushed: call :meth:`flush` first)."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None and self.buffered:
                self.flush()
        finally:
            self.close()


class AsyncClient:
    """tactful's API for asyncio: the same calls as :class:`Client`, awaited (``async
    with AsyncClient(...) as c``; ``await c.send(...)``, ``await c.flush()``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        batch_size: int = 100,
        max_buffer: int = 10_000,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _Core(
            base_url,
            api_key,
            batch_size,
            max_buffer,
            max_retries,
            backoff,
            max_backoff,
            max_retry_after,
        )
        self._http = httpx.AsyncClient(
            base_url=self._core.base_url,
            headers=self._core.headers,
            timeout=timeout,
            transport=transport,
        )
        self._flushing = asyncio.Lock()

    async def send(self, event: Mapping[str, Any]) -> None:
        """See :meth:`Client.send`."""
        await self.send_many([event])

    async def send_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """See :meth:`Client.send_many`."""
        if self._core.put(events) and self._core.may_try():
            with contextlib.suppress(ServerUnavailable):
                await self._flush(full_only=True)

    async def flush(self) -> SendResult:
        """See :meth:`Client.flush`."""
        return await self._flush(full_only=False)

    async def _flush(self, full_only: bool) -> SendResult:
        result = SendResult()
        async with self._flushing:
            while batch := self._core.next_batch(full_only):
                body = await self._request("POST", "/v1/events", (202, 422), json=batch)
                self._core.delivered(batch)
                result.add(body)
            self._core.last_failure, self._core.quiet_until = None, 0.0
        return result

    @property
    def buffered(self) -> int:
        return len(self._core.buffer)

    async def eligibility(
        self, customer_ids: Iterable[str], category: Category = "promotional"
    ) -> dict[str, dict[str, Any]]:
        """See :meth:`Client.eligibility`."""
        ids = list(dict.fromkeys(customer_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_SEND_LIST):
            part = ids[start : start + MAX_SEND_LIST]
            body = await self._request(
                "POST", "/v1/eligibility", (200,), json={"category": category, "customer_ids": part}
            )
            out.update({r["customer_id"]: r for r in body["results"]})
        return out

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        """See :meth:`Client.customer`."""
        path = f"/v1/customers/{_segment(customer_id)}"
        response = await self._send("GET", path)
        if response.status_code == 404:
            return None
        return self._core.answer("GET", path, response, (200,))  # type: ignore[no-any-return]

    async def outcome(
        self,
        customer_id: str,
        kind: OutcomeKind,
        value: float | None = None,
        *,
        outcome_id: str | None = None,
        decision_id: str | None = None,
        handoff_id: str | None = None,
        by: str = "",
        reason: str = "",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Client.outcome`."""
        body = _outcome(
            customer_id, kind, value, outcome_id, decision_id, handoff_id, by, reason, at
        )
        return await self._request("POST", "/v1/outcomes", (200, 201), json=body)  # type: ignore[no-any-return]

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error = exc
            if response is not None and not self._core.retried(response):
                return response
            if attempt >= self._core.max_retries:
                raise self._core.unavailable(
                    attempt + 1,
                    time.monotonic() - started,
                    self._core.describe(response, error),
                )
            await asyncio.sleep(self._core.delay(attempt, response))
            attempt += 1

    async def _request(self, method: str, path: str, ok: Iterable[int], **kwargs: Any) -> Any:
        return self._core.answer(method, path, await self._send(method, path, **kwargs), ok)

    async def aclose(self) -> None:
        """Close the connections (the buffer is not flushed)."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None and self.buffered:
                await self.flush()
        finally:
            await self.aclose()


def _segment(customer_id: str) -> str:
    """A customer id as one URL path segment."""
    from urllib.parse import quote

    return quote(customer_id, safe="")


def _outcome(
    customer_id: str,
    kind: str,
    value: float | None,
    outcome_id: str | None,
    decision_id: str | None,
    handoff_id: str | None,
    by: str,
    reason: str,
    at: datetime | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": customer_id, "kind": kind, "by": by, "reason": reason}
    optional = {
        "value": value,
        "outcome_id": outcome_id,
        "decision_id": decision_id,
        "handoff_id": handoff_id,
        "at": at.isoformat() if at is not None else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body

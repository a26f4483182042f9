"""Who may call what: API keys with scopes (the keys themselves: tactful/access.py),
compared in constant time. Scopes:

- ``ingest``: send events (``/v1/events``, ``/v1/decide``, the Segment endpoints);
- ``read``: state, decisions, metrics, the dashboard;
- ``act``: holds, handoffs, reviews, outcomes, incident mode;
- ``admin``: the policy (reload), and everything else.

Every endpoint declares its scope with ``Depends(scope("read"))``. A request without a
valid key is ``401``; with a key lacking the scope, ``403``; past the key's requests per
second, ``429`` with ``Retry-After``; its body and batch limits are the handler's to check
(``request.state.api_key``). Keys go in ``Authorization:
Bearer <key>``, ``X-API-Key: <key>``, or HTTP Basic with the key as the user name (what
analytics SDKs send, and what a browser asks for on the dashboard).

While no key exists at all, the API is open, and ``tactful serve`` refuses to listen
beyond 127.0.0.1 in that state (create a key first: ``tactful keys create``).
"""

from __future__ import annotations

import base64
import hmac
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request

from tactful.access import ApiKey, Scope, hash_secret, parse_key

__all__ = ["Keyring", "presented", "scope"]


def presented(request: Request) -> str | None:
    """The key a request carries, however it carries it."""
    header = request.headers.get("authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer" and value:
        return value.strip()
    if kind.lower() == "basic" and value:
        try:
            user, _, _ = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return request.headers.get("x-api-key") or None


class _Bucket:
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``."""

    __slots__ = ("at", "tokens")

    def __init__(self, burst: float) -> None:
        self.tokens = burst
        self.at = time.monotonic()


class Keyring:
    """The keys, read from the store and cached for a few seconds (``tactful keys`` in
    another process takes effect without a restart)."""

    def __init__(self, load: Callable[[], list[ApiKey]], ttl: float = 5.0) -> None:
        self._load = load
        self._ttl = ttl
        self._keys: dict[str, ApiKey] = {}
        self._at = -float("inf")
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _fresh(self) -> dict[str, ApiKey]:
        if time.monotonic() - self._at > self._ttl:
            self._keys = {k.key_id: k for k in self._load()}
            self._at = time.monotonic()
        return self._keys

    def refresh(self) -> None:
        self._at = -float("inf")

    @property
    def open(self) -> bool:
        """No key exists: nothing to check against (loopback only, see serve)."""
        return not self._fresh()

    def check(self, raw: str | None, needed: str, now: datetime) -> ApiKey | None:
        """The key if it is valid and allows ``needed``; raises 401/403 otherwise."""
        keys = self._fresh()
        if not keys:
            return None
        parsed = parse_key(raw) if raw else None
        key = keys.get(parsed[0]) if parsed else None
        # Compare even when the id is unknown, so timing does not tell ids apart.
        expected = key.secret_hash if key else hash_secret("no such key")
        given = hash_secret(parsed[1]) if parsed else hash_secret("")
        if key is None or not hmac.compare_digest(expected, given) or not key.valid(now):
            raise HTTPException(
                401,
                "a valid API key is needed: Authorization: Bearer <key>, X-API-Key, or "
                "HTTP Basic with the key as user name"
                if raw is None
                else "this API key is not valid (unknown, revoked or expired)",
                headers={"WWW-Authenticate": 'Basic realm="tactful", charset="UTF-8"'},
            )
        if not key.allows(needed):
            raise HTTPException(
                403,
                f"key '{key.name}' ({key.key_id}) lacks the '{needed}' scope "
                f"(it has: {', '.join(sorted(key.scopes))})",
            )
        self._spend(key)
        return key

    def _spend(self, key: ApiKey) -> None:
        """One request from ``key``'s bucket, or 429 saying when to come back."""
        burst = max(1.0, 2 * key.rps)
        with self._lock:
            bucket = self._buckets.setdefault(key.key_id, _Bucket(burst))
            now = time.monotonic()
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * key.rps)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            wait = (1 - bucket.tokens) / key.rps
        raise HTTPException(
            429,
            f"key '{key.name}' is over its limit of {key.rps:g} requests a second",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def scope(needed: Scope) -> Any:
    """A FastAPI dependency: this endpoint needs ``needed`` (``Depends(scope("read"))``)."""
    from fastapi import Depends

    def check(request: Request) -> ApiKey | None:
        keyring: Keyring = request.app.state.keyring
        clock: Callable[[], datetime] = request.app.state.clock
        key = keyring.check(presented(request), needed, clock())
        request.state.api_key = key  # the handler reads its body and batch limits
        return key

    check.__name__ = f"scope_{needed}"
    return Depends(check)

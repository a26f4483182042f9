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

The dashboard's pages also accept a session: ``/login`` takes a key with the ``read``
scope once and sets a signed, expiring, HttpOnly, SameSite=Strict cookie holding the key's
id (never the key); every page checks that the key is still valid, so revoking it ends its
sessions. Without a key or session a page redirects to ``/login``. The cookie is signed
with ``TACTFUL_SESSION_SECRET`` (set it when several processes serve one dashboard), or
with a secret made at start (sessions then end with the process).

While no key exists at all, the API is open, and ``tactful serve`` refuses to listen
beyond 127.0.0.1 in that state (create a key first: ``tactful keys create``).
"""

from __future__ import annotations

import base64
import hmac
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from tactful.access import ApiKey, Scope, hash_secret, parse_key

__all__ = ["SESSION_COOKIE", "Keyring", "Sessions", "presented", "scope"]

SESSION_COOKIE = "tactful_session"
SESSION_MAX_AGE = timedelta(hours=12)


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

    def check(
        self, raw: str | None, needed: str, now: datetime, session: str | None = None
    ) -> ApiKey | None:
        """The key if it is valid and allows ``needed``; raises 401/403 otherwise.
        ``session``: the id of a key that signed in to the dashboard (already verified by
        :class:`Sessions`), used when the request presents no key itself."""
        keys = self._fresh()
        if not keys:
            return None
        if raw is None and session is not None:
            key = keys.get(session)
            if key is None or not key.valid(now):
                raise HTTPException(401, "this session's key was revoked or has expired")
            return self._allowed(key, needed)
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
        return self._allowed(key, needed)

    def _allowed(self, key: ApiKey, needed: str) -> ApiKey:
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


class Sessions:
    """The dashboard's signed session cookies (itsdangerous: HMAC-signed, timestamped)."""

    def __init__(self, secret: str | None = None, max_age: timedelta = SESSION_MAX_AGE) -> None:
        secret = secret or os.environ.get("TACTFUL_SESSION_SECRET") or secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(secret, salt="tactful-dashboard-session")
        self.max_age = max_age

    def issue(self, key_id: str) -> str:
        return self._signer.dumps({"key": key_id})

    def key_id(self, cookie: str | None) -> str | None:
        """The key id a cookie carries, if it is ours, untampered and not expired."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=int(self.max_age.total_seconds()))
        except BadSignature:  # also SignatureExpired
            return None
        found = data.get("key") if isinstance(data, dict) else None
        return found if isinstance(found, str) else None


def scope(needed: Scope, session: bool = False) -> Any:
    """A FastAPI dependency: this endpoint needs ``needed`` (``Depends(scope("read"))``).
    ``session``: a dashboard route, which also accepts the signed session cookie and sends
    a browser without credentials to ``/login``."""
    from fastapi import Depends

    def check(request: Request) -> ApiKey | None:
        keyring: Keyring = request.app.state.keyring
        clock: Callable[[], datetime] = request.app.state.clock
        raw = presented(request)
        signed_in = None
        if session and raw is None:
            sessions: Sessions = request.app.state.sessions
            signed_in = sessions.key_id(request.cookies.get(SESSION_COOKIE))
            if signed_in is None and request.method == "GET" and not keyring.open:
                target = quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                )
                raise HTTPException(
                    303, "sign in first", headers={"Location": f"/login?next={target}"}
                )
        key = keyring.check(raw, needed, clock(), signed_in)
        request.state.api_key = key  # the handler reads its body and batch limits
        return key

    check.__name__ = f"scope_{needed}"
    return Depends(check)

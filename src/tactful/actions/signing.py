"""Act: signed webhooks, so a receiver knows a request came from tactful, unaltered, now.

Every webhook carries ``Tactful-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 with the shared secret over ``"<t>.<raw body>"`` (the scheme Stripe made
familiar). A receiver recomputes it over the raw bytes it received (before any JSON
parsing), compares in constant time, and refuses timestamps outside its tolerance, which
stops a captured request from being replayed later::

    from tactful.actions.signing import verify, SignatureError

    try:
        verify(secret, request.body, request.headers["Tactful-Signature"])
    except SignatureError as exc:
        return 400, str(exc)

During a secret rotation the header may carry several ``v1=`` values; any one matching is
enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["HEADER", "SignatureError", "sign", "signature_header", "verify"]

HEADER = "Tactful-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The request is not signed by the secret, or not recently."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, body, t)}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a ``Tactful-Signature`` header; returns its timestamp, raises SignatureError."""
    if not header:
        raise SignatureError(f"no {HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"{HEADER}: t={value!r} is not unix seconds") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"{HEADER} must look like t=<unix seconds>,v1=<hex>; got {header!r}")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(
            f"{HEADER}: timestamp {timestamp} is {abs(current - timestamp):.0f}s from now "
            f"(tolerance {tolerance_s}s): a replay, or a clock out of sync"
        )
    expected = sign(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError(f"{HEADER}: no signature matches this body and secret")
    return timestamp

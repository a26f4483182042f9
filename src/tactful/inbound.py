"""Ingest: webhooks that senders sign, checked before anything is read.

A CDP or helpdesk that pushes events to tactful signs each request with a shared secret;
``POST /v1/sources/<name>`` recomputes the signature over the raw bytes received and
refuses (401, saying why) what does not match, so the signature is the credential and no
API key needs to be pasted into the sender. The schemes, by the sender that uses them:

- ``segment``: Segment's Webhooks destination (and Customer.io's, RudderStack's):
  ``X-Signature: <hex HMAC-SHA1 of the body>``. No timestamp: Segment does not send one,
  so a captured request can be replayed; event ids make a replay a duplicate, not a
  second effect.
- ``hub-sha256``: GitHub-style ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.
- ``tactful``: ``Tactful-Signature: t=<unix seconds>,v1=<hex>`` (actions/signing.py), the
  scheme tactful's own webhooks use, with a timestamp tolerance against replays.

During a secret rotation a source may accept its previous secret too (``old_secret``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Literal

from tactful.actions import signing
from tactful.actions.signing import SignatureError

__all__ = ["SCHEMES", "Scheme", "SignatureError", "check_signature", "sign_for"]

Scheme = Literal["segment", "hub-sha256", "tactful"]
SCHEMES: dict[str, str] = {  # scheme -> the header it reads
    "segment": "X-Signature",
    "hub-sha256": "X-Hub-Signature-256",
    "tactful": signing.HEADER,
}


def _hex(secret: str, body: bytes, digest: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, digest).hexdigest()


def check_signature(
    scheme: Scheme,
    secrets: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    tolerance_s: int = signing.DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` (its message says what is wrong) unless ``body`` was
    signed under one of ``secrets`` by ``scheme``. ``headers`` are case-insensitive."""
    name = SCHEMES[scheme]
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise SignatureError(f"no {name} header: this source only accepts signed requests")
    value = value.strip()
    if scheme == "tactful":
        for secret in secrets:
            try:
                signing.verify(secret, body, value, tolerance_s, now)
                return
            except SignatureError as exc:
                problem = exc
        raise problem
    if scheme == "segment":
        given, algorithm = value, "sha1"
    else:
        prefix, _, given = value.partition("=")
        if prefix != "sha256" or not given:
            raise SignatureError(f"{name} must look like sha256=<hex>; got {value[:80]!r}")
        algorithm = "sha256"
    # compare against every secret (no early exit), so timing does not tell which matched
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_hex(secret, body, algorithm), given.lower())
    if not matched:
        raise SignatureError(f"{name}: no signature matches this body and the source's secret")


def sign_for(scheme: Scheme, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender using ``scheme`` would send (for tests and examples)."""
    if scheme == "tactful":
        return signing.signature_header(secret, body, timestamp)
    if scheme == "segment":
        return _hex(secret, body, "sha1")
    return "sha256=" + _hex(secret, body, "sha256")

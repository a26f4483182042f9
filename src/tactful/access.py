"""Access: API keys and their scopes, independent of the HTTP layer (the store keeps them,
the CLI makes them, api/auth.py checks them).

A key looks like ``tk_<id>_<secret>``; only a SHA-256 of the secret is stored (a key is
random and 43 characters long, so a slow password hash adds nothing), and the whole key is
shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["PREFIX", "SCOPES", "ApiKey", "Scope", "hash_secret", "new_key", "parse_key"]

Scope = Literal["ingest", "read", "act", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "act", "admin")
PREFIX = "tk_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # a rotated key's grace period ends here
    # Limits: requests per second (a burst of twice that is allowed), bytes per request
    # body, events per request.
    rps: float = 100.0
    max_body: int = 5 * 1024 * 1024
    max_batch: int = 1_000

    def valid(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    def allows(self, needed: str) -> bool:
        return "admin" in self.scopes or needed in self.scopes


def new_key() -> tuple[str, str, str]:
    """(key_id, the whole key to show once, the hash to store)."""
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret)


def parse_key(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(PREFIX):
        return None
    key_id, sep, secret = raw[len(PREFIX) :].partition("_")
    return (key_id, secret) if sep and key_id and secret else None

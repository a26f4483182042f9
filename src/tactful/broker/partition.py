"""Which partition a customer's events go to: a stable hash of the customer id, mod P.

Stable across processes, machines and Python versions (blake2b, not ``hash()``), so every
API process publishes one customer's events to the same subject, and the worker owning
that subject's consumer is the only one applying them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tactful.state.store.base import Store

__all__ = [
    "DEFAULT_PARTITIONS",
    "PartitionMismatch",
    "agree_partitions",
    "partition_of",
]

DEFAULT_PARTITIONS = 8
MAX_PARTITIONS = 1024
SETTING = "broker"  # the store's setting that every process reads: {"partitions": P, ...}


class PartitionMismatch(ValueError):
    """A process was told another partition count than the one the store records."""


def partition_of(customer_id: str, partitions: int) -> int:
    digest = hashlib.blake2b(customer_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def agree_partitions(store: Store, asked: int | None, stream: str, at: Any) -> int:
    """The partition count every process of this deployment uses: the one the store
    records for ``stream``; the first process to start records ``asked`` (or the default).
    Asking for another count than the recorded one raises :class:`PartitionMismatch`
    (re-partitioning would send a customer's events to two partitions at once)."""
    if asked is not None and not 1 <= asked <= MAX_PARTITIONS:
        raise PartitionMismatch(f"partitions={asked}: must be between 1 and {MAX_PARTITIONS}")
    recorded = store.get_setting(SETTING)
    if recorded is not None and recorded.get("stream") == stream:
        have = int(recorded["partitions"])
        if asked is not None and asked != have:
            raise PartitionMismatch(
                f"partitions={asked}, but the store records {have} for stream {stream}; "
                f"every process must use {have} (changing it needs an empty stream)"
            )
        return have
    chosen = asked or DEFAULT_PARTITIONS
    store.set_setting(SETTING, {"partitions": chosen, "stream": stream}, at)
    return chosen

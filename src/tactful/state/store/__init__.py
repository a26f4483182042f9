"""Remember, durable: store backends behind one interface."""

import os
from pathlib import Path

from tactful.state.store.base import (
    DuplicateEventError,
    Durability,
    QuarantineItem,
    Store,
    StoreStats,
    StoreUnavailable,
)
from tactful.state.store.sqlite import SQLiteStore

__all__ = [
    "DuplicateEventError",
    "QuarantineItem",
    "SQLiteStore",
    "Store",
    "StoreStats",
    "StoreUnavailable",
    "is_postgres",
    "open_store",
]


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path, durability: Durability = "full") -> Store:
    """The store at ``target``: a ``postgresql://`` URL (PostgresStore; psycopg is imported
    only then), or a SQLite file path (``durability`` applies to SQLite only: PostgreSQL
    commits are always durable). A PostgreSQL server that is not up yet is retried for
    ``TACTFUL_STORE_WAIT`` seconds (default 10), then :class:`StoreUnavailable`."""
    if is_postgres(target):
        from tactful.state.store.postgres import PostgresStore

        wait = float(os.environ.get("TACTFUL_STORE_WAIT", "10"))
        return PostgresStore(str(target), startup_wait=wait)
    return SQLiteStore(target, durability=durability)

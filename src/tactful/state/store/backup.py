"""Backups of the embedded store, taken while it serves.

SQLite's online backup API copies the database page by page through a connection of its
own. Done in one step (``pages=-1``) it reads inside one read transaction: in WAL mode
that is a consistent snapshot of the last commit, and it does not block the server's
writer (readers and the writer do not wait for each other in WAL mode). The copy goes to
``DEST.partial``, is checked (``PRAGMA integrity_check``), synced, then renamed to DEST:
a backup that exists is a whole one.

Restoring is copying the file back while nothing is serving it (docs/backup.md). Events
accepted after the backup must be sent again (the API is idempotent on ``event_id``); the
actions they cause are planned again with the same idempotency keys, so a receiver that
honours the key acts once.

PostgreSQL has its own tools for this (pg_dump, base backups and WAL archiving for
point-in-time recovery); docs/backup.md says how.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BackupError", "BackupReport", "backup_sqlite"]


class BackupError(Exception):
    """The backup could not be taken; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    path: Path
    bytes: int
    schema_version: int
    events: int
    customers: int
    outbox: int


def backup_sqlite(source: str | Path, dest: str | Path, *, force: bool = False) -> BackupReport:
    """Copy the SQLite database ``source`` to ``dest`` (consistent, online)."""
    src_path, dest_path = Path(source), Path(dest)
    if not src_path.is_file():
        raise BackupError(f"{src_path}: no such database file")
    if dest_path.exists() and not force:
        raise BackupError(f"{dest_path} exists; choose another path or pass --force")
    if dest_path.resolve() == src_path.resolve():
        raise BackupError(f"{dest_path} is the database itself")
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    partial = dest_path.with_name(dest_path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # pages=-1: one step, one read transaction, one snapshot
                report = _check(dst, dest_path)
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, dest_path)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {src_path} failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    version, events, customers, outbox = report
    return BackupReport(dest_path, dest_path.stat().st_size, version, events, customers, outbox)


def _check(db: sqlite3.Connection, dest: Path) -> tuple[int, int, int, int]:
    """(schema version, events, customers, outbox rows) of a copy that is whole."""
    problems = [r[0] for r in db.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"the copy for {dest} failed its integrity check: {problems[:5]}")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    (events,) = db.execute("SELECT count(*) FROM events").fetchone()
    (customers,) = db.execute("SELECT count(*) FROM customers").fetchone()
    (outbox,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    return int(version), int(events), int(customers), int(outbox)

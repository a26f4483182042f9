"""Who applies which partition: PostgreSQL session advisory locks, one per partition, held
on a connection each worker keeps for nothing else. When a worker dies, its connection
closes and PostgreSQL releases its locks at once; the others take the partitions at their
next look (a look every ``interval`` seconds).

Live workers beat in ``broker_workers`` (their partitions, their lock connection's pid); a
worker takes at most ceil(P / live workers) partitions and gives back what it holds beyond
that, so a second worker gets half of the first one's.

Accounts span partitions: the members of one account may be applied by two workers at
once, and an account's state is read, changed and written whole. So a worker also holds,
around each batch, a session advisory lock per account the batch touches (taken in key
order on a second connection: no deadlock between workers) and reads those accounts from
the store again (its cache dropped), making each account's read-modify-write one at a
time across workers. It first locks the batch's customers the same way: a person's change
to a customer through the API (``customer_lock``) waits for the batch, and a batch after
such a change reads that customer from the store again.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg

__all__ = [
    "CUSTOMER_NAMESPACE",
    "LOCK_NAMESPACE",
    "Ownership",
    "customer_lock",
    "ensure_tables",
    "owners",
]

# pg_advisory_lock(int4, int4) keys: (namespace, partition) and (namespace + 1, account hash).
# The store's own advisory locks use other keys (migrations: one bigint; notification
# groups: their own int4 namespace).
LOCK_NAMESPACE = 0x7AC7_0009
ACCOUNT_NAMESPACE = LOCK_NAMESPACE + 1
# (namespace + 2, customer hash): held by a worker around each batch for its customers,
# and by the API process around a person's change to one customer (customer_lock), so the
# two never read-modify-write the same customer at once.
CUSTOMER_NAMESPACE = LOCK_NAMESPACE + 2

_TABLES = """
CREATE TABLE IF NOT EXISTS broker_workers (
    worker_id     text COLLATE "C" PRIMARY KEY,
    stream        text NOT NULL,
    host          text NOT NULL,
    pid           integer NOT NULL,
    lock_pid      integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    partitions    integer[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS broker_handovers (
    stream        text NOT NULL,
    partition     integer NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, partition)
)
"""


@contextlib.contextmanager
def customer_lock(dsn: str, customer_id: str) -> Iterator[None]:
    """Hold one customer's lock (the one workers take around a batch) while a person's
    change to that customer is read, applied and committed by another process."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (CUSTOMER_NAMESPACE, customer_id))
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))", (CUSTOMER_NAMESPACE, customer_id)
                )


def ensure_tables(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_NAMESPACE,))  # DDL races
        for statement in _TABLES.split(";"):
            conn.execute(statement)


def owners(conn: psycopg.Connection[Any], stream: str) -> dict[int, str]:
    """Partition -> worker id, from the locks PostgreSQL holds right now (not from what
    workers last reported)."""
    rows = conn.execute(
        "SELECT l.objid::int, coalesce(w.worker_id, 'pid ' || l.pid) FROM pg_locks l "
        "LEFT JOIN broker_workers w ON w.lock_pid = l.pid AND w.stream = %s "
        "WHERE l.locktype = 'advisory' AND l.classid::bigint = %s AND l.objsubid = 2 "
        "AND l.granted AND l.database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database())",
        (stream, LOCK_NAMESPACE),
    ).fetchall()
    return {int(p): str(w) for p, w in rows}


class Ownership:
    """One worker's partitions and its heartbeat (blocking calls; the worker runs them in
    a thread)."""

    def __init__(
        self, dsn: str, stream: str, partitions: int, interval: float, worker_id: str = ""
    ) -> None:
        self.stream = stream
        self.partitions = partitions
        self.interval = interval
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.accounts_conn = psycopg.connect(dsn, autocommit=True)
        ensure_tables(self.conn)
        self.lock_pid = int(self.conn.info.backend_pid)
        self.owned: set[int] = set()

    def close(self) -> None:
        """Leave: the heartbeat row goes (the others re-balance at once), then the locks
        (closing the connection releases them)."""
        with contextlib.suppress(psycopg.Error):
            if not self.conn.closed:
                sql = "DELETE FROM broker_workers WHERE worker_id = %s"
                self.conn.execute(sql, (self.worker_id,))
        self.conn.close()
        self.accounts_conn.close()

    def beat(self) -> int:
        """Record that this worker lives (and what it holds); how many live now. Rows not
        beaten for 3 intervals are not counted; for 20, removed."""
        stale = 3 * self.interval
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO broker_workers (worker_id, stream, host, pid, lock_pid, partitions) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (worker_id) DO UPDATE SET "
                "heartbeat_at = now(), partitions = EXCLUDED.partitions, "
                "lock_pid = EXCLUDED.lock_pid",
                (
                    self.worker_id,
                    self.stream,
                    socket.gethostname(),
                    os.getpid(),
                    self.lock_pid,
                    sorted(self.owned),
                ),
            )
            self.conn.execute(
                "DELETE FROM broker_workers WHERE heartbeat_at < now() - make_interval(secs => %s)",
                (20 * self.interval,),
            )
            row = self.conn.execute(
                "SELECT count(*) FROM broker_workers WHERE stream = %s "
                "AND heartbeat_at >= now() - make_interval(secs => %s)",
                (self.stream, stale),
            ).fetchone()
        return max(int(row[0]) if row else 1, 1)

    def target(self, live: int) -> int:
        return math.ceil(self.partitions / live)

    def holding(self) -> bool:
        """Whether the lock connection (and so every partition lock) is still ours."""
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def try_take(self, partition: int) -> bool:
        row = self.conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, partition)
        ).fetchone()
        taken = bool(row and row[0])
        if taken:
            self.owned.add(partition)
        return taken

    def give_back(self, partition: int, clean: bool = False) -> None:
        """Release a partition; ``clean``: nothing of it is in flight anywhere (the next
        owner need not wait for redeliveries)."""
        if clean:
            self.conn.execute(
                "INSERT INTO broker_handovers (stream, partition) VALUES (%s, %s) "
                "ON CONFLICT (stream, partition) DO UPDATE SET at = now()",
                (self.stream, partition),
            )
        self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, partition))
        self.owned.discard(partition)

    def handed_over(self, partition: int) -> bool:
        """Whether the previous owner left the partition cleanly (consumes the mark: a
        crash of this owner must not look clean to the next)."""
        row = self.conn.execute(
            "DELETE FROM broker_handovers WHERE stream = %s AND partition = %s RETURNING 1",
            (self.stream, partition),
        ).fetchone()
        return row is not None

    def candidates(self) -> list[int]:
        """Partitions to try, starting at a place of this worker's own (so two workers
        starting together do not race for the same ones first)."""
        start = sum(self.worker_id.encode()) % self.partitions
        order = [(start + i) % self.partitions for i in range(self.partitions)]
        return [p for p in order if p not in self.owned]

    # -- accounts ------------------------------------------------------------------------
    def lock_accounts(
        self, customer_ids: Sequence[str], account_ids: Sequence[str]
    ) -> tuple[list[str], dict[str, datetime]]:
        """Lock a batch's customers (a person's change through the API takes the same
        lock), then the accounts it touches (its events' account ids and its customers'
        recorded ones), each in key order. Returns the accounts (to drop from the engine's
        cache) and when each known customer's state was last written (read under the
        lock: a write by another process shows as a time the engine did not write)."""
        self.accounts_conn.execute(
            "SELECT pg_advisory_lock(%s, k) FROM (SELECT DISTINCT hashtext(c) AS k "
            "FROM unnest(%s::text[]) AS c ORDER BY k) AS keys",
            (CUSTOMER_NAMESPACE, list(customer_ids)),
        )
        rows = self.accounts_conn.execute(
            "SELECT customer_id, account_id, updated_at FROM customers WHERE customer_id = ANY(%s)",
            (list(customer_ids),),
        ).fetchall()
        written = {str(r[0]): r[2] for r in rows}
        ids = sorted({str(r[1]) for r in rows if r[1] is not None} | set(account_ids))
        if ids:
            self.accounts_conn.execute(
                "SELECT pg_advisory_lock(%s, k) FROM (SELECT DISTINCT hashtext(a) AS k "
                "FROM unnest(%s::text[]) AS a ORDER BY k) AS keys",
                (ACCOUNT_NAMESPACE, ids),
            )
        return ids, written

    def unlock_accounts(self) -> None:
        self.accounts_conn.execute("SELECT pg_advisory_unlock_all()")

"""Remember, durable: the scale-out store, PostgreSQL through psycopg 3 and a pool.

The same semantics as :class:`~tactful.state.store.sqlite.SQLiteStore`, seen through the
:class:`~tactful.state.store.base.Store` protocol (``tests/test_store.py`` runs on both):
one transaction per commit, a duplicate event id aborts the whole batch, the same return
values. The engine calls the store from several threads; each call borrows a connection
from a :class:`psycopg_pool.ConnectionPool` (autocommit; writes open a transaction).

Schema choices, made so results are identical to SQLite's:

- timestamps are ``timestamptz`` and come back as the UTC ISO 8601 strings SQLite stores
  (``2026-11-01T00:00:00.000000+00:00``); PostgreSQL keeps microseconds, as they do;
- JSON columns are ``json``, not ``jsonb``: the text is kept as written (key order, and a
  ``\\u0000`` escape, which ``jsonb`` refuses), psycopg decodes it with ``json.loads``
  as SQLite's reader does, and a query can still cast it (``payload::jsonb``);
- text columns use the ``"C"`` collation: ids order and compare by code point, like
  SQLite's BINARY collation (``active_holds`` pages by id), whatever the database's
  locale;
- flags (late, holdout, review) are integers, as SQLite returns them in an export;
- append-only tables carry a hidden ``seq`` column where SQLite relies on its rowid
  (insertion order: ties in the outbox's due order, a customer's export);
- a quarantined body is ``bytea``: it may hold NUL, which PostgreSQL ``text`` cannot.
  Free text written from elsewhere (receivers' errors, people's comments) has NUL
  replaced by U+FFFD for the same reason; ids never are (a NUL in an id fails loudly).

Migrations are an append-only list whose position is the version, recorded in the
``schema_version`` table. They run in one transaction under an advisory lock, so two
processes starting at once do not race; a database newer than this code is refused.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from tactful.access import ApiKey
from tactful.actions.grouping import GroupState
from tactful.actions.lifecycle import Change
from tactful.actions.outbox import Action
from tactful.learn.outcomes import Outcome
from tactful.policy.engine import Decision
from tactful.runtime.pipeline import Processed
from tactful.state.account import AccountState
from tactful.state.customer import AccountContext, CustomerState
from tactful.state.store.base import (
    DuplicateEventError,
    MetricRows,
    OutboxRow,
    QuarantineItem,
    StoreStats,
    StoreUnavailable,
)
from tactful.state.store.sqlite import (
    _account,
    _account_row,
    _cap,
    _decision_rows,
    _dump,
    _outcome_rows,
    _ts,
    batch_rows,
    placed_rows,
)

__all__ = ["MIGRATIONS", "PostgresStore"]

# pg_advisory_xact_lock keys: the migrations (one bigint), and each notification group
# (this namespace, hashtext(group key)) while a transaction schedules into it.
_MIGRATION_LOCK = 0x74616374_66756C31  # "tactful1"
_GROUP_LOCKS = 0x74616374  # "tact"

MIGRATIONS: list[str] = [
    # 1: the schema SQLite reached in its eleven steps, in PostgreSQL's types.
    """
    CREATE TABLE events (
        event_id     text COLLATE "C" PRIMARY KEY,
        customer_id  text COLLATE "C" NOT NULL,
        type         text COLLATE "C" NOT NULL,
        ts           timestamptz NOT NULL,
        received_at  timestamptz NOT NULL,
        payload      json NOT NULL,
        signals      json NOT NULL,
        late         integer NOT NULL DEFAULT 0,
        seq          bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX events_customer ON events (customer_id, ts, seq);
    CREATE INDEX events_ts ON events (ts);

    CREATE TABLE customers (
        customer_id  text COLLATE "C" PRIMARY KEY,
        account_id   text COLLATE "C",
        state        json NOT NULL,
        updated_at   timestamptz NOT NULL
    );
    CREATE INDEX customers_account ON customers (account_id);

    CREATE TABLE accounts (
        account_id   text COLLATE "C" PRIMARY KEY,
        traits       json NOT NULL,
        updated_at   timestamptz NOT NULL,
        state        json NOT NULL
    );

    CREATE TABLE decisions (
        decision_id    text COLLATE "C" PRIMARY KEY,
        event_id       text COLLATE "C" NOT NULL,
        customer_id    text COLLATE "C" NOT NULL,
        at             timestamptz NOT NULL,
        kind           text COLLATE "C" NOT NULL,
        rule_id        text COLLATE "C" NOT NULL,
        policy_version text COLLATE "C" NOT NULL,
        params         json NOT NULL,
        reasons        json NOT NULL,
        factors        json NOT NULL,
        matched        json NOT NULL DEFAULT '[]',
        lost           json NOT NULL DEFAULT '[]',
        holdout        integer NOT NULL DEFAULT 0,
        review         integer NOT NULL DEFAULT 0,
        seq            bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX decisions_customer ON decisions (customer_id, at);
    CREATE INDEX decisions_at ON decisions (at);
    CREATE INDEX decisions_event ON decisions (event_id);

    CREATE TABLE outbox (
        action_id        text COLLATE "C" PRIMARY KEY,
        idempotency_key  text COLLATE "C" NOT NULL,
        decision_id      text COLLATE "C" NOT NULL,
        customer_id      text COLLATE "C" NOT NULL,
        channel          text COLLATE "C" NOT NULL,
        kind             text COLLATE "C" NOT NULL,
        payload          json NOT NULL,
        status           text COLLATE "C" NOT NULL DEFAULT 'pending',
        attempts         integer NOT NULL DEFAULT 0,
        next_attempt_at  timestamptz NOT NULL,
        last_error       text COLLATE "C",
        created_at       timestamptz NOT NULL,
        delivered_at     timestamptz,
        batch_id         text COLLATE "C",
        seq              bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at, seq);
    CREATE INDEX outbox_channel_due ON outbox (channel, status, next_attempt_at, seq);
    CREATE INDEX outbox_customer ON outbox (customer_id);

    CREATE TABLE outcomes (
        outcome_id   text COLLATE "C" PRIMARY KEY,
        event_id     text COLLATE "C" NOT NULL,
        customer_id  text COLLATE "C" NOT NULL,
        at           timestamptz NOT NULL,
        kind         text COLLATE "C" NOT NULL,
        value        double precision,
        rule_id      text COLLATE "C",
        detail       json NOT NULL,
        seq          bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX outcomes_at ON outcomes (at);
    CREATE INDEX outcomes_customer ON outcomes (customer_id, at);

    CREATE TABLE quarantine (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at  timestamptz NOT NULL,
        source       text COLLATE "C" NOT NULL,
        event_id     text COLLATE "C",
        customer_id  text COLLATE "C",
        reason       json NOT NULL,
        raw          bytea NOT NULL
    );
    CREATE INDEX quarantine_customer ON quarantine (customer_id);

    CREATE TABLE settings (
        key          text COLLATE "C" PRIMARY KEY,
        value        json NOT NULL,
        updated_at   timestamptz NOT NULL
    );
    CREATE TABLE settings_log (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key          text COLLATE "C" NOT NULL,
        value        json NOT NULL,
        at           timestamptz NOT NULL
    );
    CREATE INDEX settings_log_key ON settings_log (key, id);

    CREATE TABLE notify_groups (
        group_key    text COLLATE "C" PRIMARY KEY,
        state        json NOT NULL
    );

    CREATE TABLE shadow_events (
        event_id       text COLLATE "C" PRIMARY KEY,
        customer_id    text COLLATE "C" NOT NULL,
        at             timestamptz NOT NULL,
        policy_version text COLLATE "C" NOT NULL,
        decisions      json NOT NULL,
        seq            bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX shadow_events_at ON shadow_events (at);
    CREATE INDEX shadow_events_customer ON shadow_events (customer_id);

    CREATE TABLE holds (
        hold_id        text COLLATE "C" PRIMARY KEY,
        customer_id    text COLLATE "C" NOT NULL,
        categories     json NOT NULL,
        starts_at      timestamptz NOT NULL,
        ends_at        timestamptz NOT NULL,
        created_by     text COLLATE "C" NOT NULL,
        reason         text COLLATE "C" NOT NULL,
        comment        text COLLATE "C" NOT NULL DEFAULT '',
        released_at    timestamptz,
        released_by    text COLLATE "C",
        release_reason text COLLATE "C",
        seq            bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX holds_customer ON holds (customer_id, starts_at);
    CREATE INDEX holds_active ON holds (ends_at) WHERE released_at IS NULL;
    CREATE INDEX holds_active_id ON holds (hold_id) WHERE released_at IS NULL;

    CREATE TABLE handoffs (
        handoff_id   text COLLATE "C" PRIMARY KEY,
        customer_id  text COLLATE "C" NOT NULL,
        queue        text COLLATE "C" NOT NULL,
        priority     text COLLATE "C" NOT NULL,
        status       text COLLATE "C" NOT NULL,
        opened_at    timestamptz NOT NULL,
        updated_at   timestamptz NOT NULL,
        updated_by   text COLLATE "C",
        reason       text COLLATE "C",
        package      json NOT NULL,
        seq          bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX handoffs_queue ON handoffs (queue, status, opened_at);
    CREATE INDEX handoffs_customer ON handoffs (customer_id, opened_at);

    CREATE TABLE reviews (
        decision_id  text COLLATE "C" PRIMARY KEY,
        customer_id  text COLLATE "C" NOT NULL,
        event_id     text COLLATE "C" NOT NULL,
        rule_id      text COLLATE "C" NOT NULL,
        kind         text COLLATE "C" NOT NULL,
        at           timestamptz NOT NULL,
        status       text COLLATE "C" NOT NULL DEFAULT 'pending',
        decided_by   text COLLATE "C",
        decided_at   timestamptz,
        reason       text COLLATE "C",
        edited       json,
        seq          bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX reviews_status ON reviews (status, at);
    CREATE INDEX reviews_customer ON reviews (customer_id);

    CREATE TABLE api_keys (
        key_id       text COLLATE "C" PRIMARY KEY,
        name         text COLLATE "C" NOT NULL,
        scopes       json NOT NULL,
        secret_hash  text COLLATE "C" NOT NULL,
        created_at   timestamptz NOT NULL,
        revoked_at   timestamptz,
        expires_at   timestamptz,
        rps          double precision NOT NULL DEFAULT 100,
        max_body     integer NOT NULL DEFAULT 5242880,
        max_batch    integer NOT NULL DEFAULT 1000
    );
    """,
]

_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

# Each table's columns as the protocol returns them (SQLite's order; ``seq`` left out).
_COLUMNS: dict[str, str] = {
    "events": "event_id, customer_id, type, ts, received_at, payload, signals, late",
    "customers": "customer_id, account_id, state, updated_at",
    "decisions": "decision_id, event_id, customer_id, at, kind, rule_id, policy_version, "
    "params, reasons, factors, matched, lost, holdout, review",
    "outbox": "action_id, idempotency_key, decision_id, customer_id, channel, kind, payload, "
    "status, attempts, next_attempt_at, last_error, created_at, delivered_at, batch_id",
    "outcomes": "outcome_id, event_id, customer_id, at, kind, value, rule_id, detail",
    "quarantine": "id, received_at, source, event_id, customer_id, reason, raw",
    "shadow_events": "event_id, customer_id, at, policy_version, decisions",
    "holds": "hold_id, customer_id, categories, starts_at, ends_at, created_by, reason, "
    "comment, released_at, released_by, release_reason",
    "handoffs": "handoff_id, customer_id, queue, priority, status, opened_at, updated_at, "
    "updated_by, reason, package",
    "reviews": "decision_id, customer_id, event_id, rule_id, kind, at, status, decided_by, "
    "decided_at, reason, edited",
    "api_keys": "key_id, name, scopes, secret_hash, created_at, revoked_at, expires_at, rps, "
    "max_body, max_batch",
}

# Every table that holds a customer's rows, and the order SQLite reads them in (its
# customer index, then rowid).
_CUSTOMER_TABLES: dict[str, str] = {
    "events": "ts, seq",
    "customers": "customer_id",
    "decisions": "at, seq",
    "outcomes": "at, seq",
    "outbox": "seq",
    "quarantine": "id",
    "shadow_events": "seq",
    "holds": "starts_at, seq",
    "handoffs": "opened_at, seq",
    "reviews": "seq",
}

_EXPIRED = b"[expired: past the retention period]"


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def _insert(table: str, conflict: str = "") -> str:
    columns = _COLUMNS[table]
    sql = f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns.count(',') + 1)})"
    return f"{sql} ON CONFLICT ({conflict}) DO NOTHING" if conflict else sql


_INSERT_EVENT = (
    "INSERT INTO events (event_id, customer_id, type, ts, received_at, payload, signals, late) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_UPSERT_CUSTOMER = (
    "INSERT INTO customers (customer_id, account_id, state, updated_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (customer_id) DO UPDATE SET account_id = excluded.account_id, "
    "state = excluded.state, updated_at = excluded.updated_at"
)
_UPSERT_ACCOUNT = (
    "INSERT INTO accounts (account_id, traits, updated_at, state) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (account_id) DO UPDATE SET traits = excluded.traits, state = excluded.state, "
    "updated_at = excluded.updated_at"
)
# The aggregates only: the context (traits) in the row stays as an import may have set it.
_UPSERT_AGGREGATES = (
    "INSERT INTO accounts (account_id, traits, updated_at, state) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, "
    "updated_at = excluded.updated_at"
)
_INSERT_DECISION = _insert("decisions")
_INSERT_OUTCOME = _insert("outcomes")
_INSERT_OUTBOX = (
    "INSERT INTO outbox (action_id, idempotency_key, decision_id, customer_id, channel, kind, "
    "payload, status, next_attempt_at, last_error, created_at, batch_id) "
    f"VALUES ({_marks(12)})"
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, source, event_id, customer_id, reason, raw) "
    f"VALUES ({_marks(6)})"
)
_INSERT_SHADOW = _insert("shadow_events")

Cursor = psycopg.Cursor[tuple[Any, ...]]


def _text(value: str) -> str:
    """Free text for a ``text`` column, which cannot hold NUL."""
    return value.replace("\x00", "\ufffd")


def _maybe_text(value: Any) -> Any:
    return _text(value) if isinstance(value, str) else value


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as SQLite returns it: timestamps as UTC ISO strings, raw bodies as text."""
    for k, v in row.items():
        if isinstance(v, datetime):
            row[k] = _ts(v)
        elif isinstance(v, bytes):
            row[k] = v.decode("utf-8")
    return row


def _when(value: datetime | None, default: str) -> str:
    return _ts(value) if value is not None else default


def _quarantine_rows(items: Sequence[QuarantineItem]) -> list[tuple[Any, ...]]:
    return [
        (
            _ts(q.received_at),
            _text(q.source),
            q.event_id,
            q.customer_id,
            json.dumps(q.reason),
            _cap(q.raw).encode("utf-8"),
        )
        for q in items
    ]


def _decision_row(row: dict[str, Any]) -> dict[str, Any]:
    row["holdout"], row["review"] = bool(row["holdout"]), bool(row["review"])
    return row


def _rows(cur: Cursor) -> list[dict[str, Any]]:
    """The cursor's rows as dicts, SQLite's way (see _plain)."""
    names = [c.name for c in cur.description or ()]
    return [_plain(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def _outbox_rows(cur: Cursor, actions: Sequence[Action], received: str) -> list[tuple[Any, ...]]:
    """Outbox rows; a notification is placed in its group's next message, or muted as a
    repeat (see actions/grouping.py), against the groups' memory in this transaction.
    Each group is locked (in key order) until the transaction ends, so two workers never
    schedule into the same group from the same memory."""
    keys = sorted({a.grouping.key for a in actions if a.grouping})
    groups: dict[str, GroupState] = {}
    if keys:
        cur.executemany(
            "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))",
            [(_GROUP_LOCKS, k) for k in keys],
        )
        cur.execute("SELECT group_key, state FROM notify_groups WHERE group_key = ANY(%s)", (keys,))
        groups = {key: GroupState.from_dict(state) for key, state in cur.fetchall()}
    rows = placed_rows(actions, groups, received, _text)
    if keys:
        cur.executemany(
            "INSERT INTO notify_groups (group_key, state) VALUES (%s, %s) "
            "ON CONFLICT (group_key) DO UPDATE SET state = excluded.state",
            [(k, json.dumps(groups[k].as_dict())) for k in keys],
        )
    return rows


def _project(cur: Cursor, actions: Sequence[Action], batch: Sequence[Processed]) -> None:
    """Keep the holds and handoffs tables in step with the actions that start and end
    them (one action per delivery channel: the statements are idempotent)."""
    for a in actions:
        p = a.payload
        if a.kind == "hold.started":
            cur.execute(
                "INSERT INTO holds (hold_id, customer_id, categories, starts_at, ends_at, "
                "created_by, reason, comment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (hold_id) DO NOTHING",
                (
                    p["hold_id"],
                    a.customer_id,
                    json.dumps(p["categories"]),
                    _ts(datetime.fromisoformat(p["starts_at"])),
                    _ts(datetime.fromisoformat(p["ends_at"])),
                    _text(p["created_by"]),
                    _text(p["reason"]),
                    _text(p.get("comment", "")),
                ),
            )
        elif a.kind == "hold.released":
            comment = _text(p.get("comment", ""))
            cur.execute(
                "UPDATE holds SET released_at = %s, released_by = %s, release_reason = %s, "
                "comment = CASE WHEN %s::text <> '' THEN %s::text ELSE comment END "
                "WHERE hold_id = %s AND released_at IS NULL",
                (
                    _ts(a.created_at),
                    _text(p.get("released_by", "rule")),
                    _text(p.get("reason", "")),
                    comment,
                    comment,
                    p["hold_id"],
                ),
            )
        elif a.kind == "handoff.created":
            at = _ts(a.created_at)
            cur.execute(
                "INSERT INTO handoffs (handoff_id, customer_id, queue, priority, status, "
                "opened_at, updated_at, updated_by, reason, package) "
                "VALUES (%s, %s, %s, %s, 'open', %s, %s, NULL, NULL, %s) "
                "ON CONFLICT (handoff_id) DO NOTHING",
                (p["handoff_id"], a.customer_id, p["queue"], p["priority"], at, at, json.dumps(p)),
            )
        elif a.kind == "handoff.updated":
            cur.execute(
                "UPDATE handoffs SET status = %s, updated_at = %s, updated_by = %s, reason = %s "
                "WHERE handoff_id = %s",
                (
                    p["status"],
                    _ts(a.created_at),
                    _text(p["by"]),
                    _maybe_text(p.get("reason")),
                    p["handoff_id"],
                ),
            )
    for item in batch:  # a solved ticket closes the customer's handoffs (see remember)
        e = item.event
        if e.type == "ticket_closed" and e.resolution == "solved":
            cur.execute(
                "UPDATE handoffs SET status = 'resolved', updated_at = %s, updated_by = %s "
                "WHERE customer_id = %s AND status IN ('open', 'accepted')",
                (_ts(e.timestamp), _text(f"ticket:{e.ticket_id}"), e.customer_id),
            )


def _project_reviews(cur: Cursor, decisions: Sequence[Decision]) -> None:
    """Decisions waiting for a person join the review queue; a person's verdict (a
    ``review_approved`` / ``review_rejected`` decision) settles its entry."""
    for d in decisions:
        if d.review:
            cur.execute(
                "INSERT INTO reviews (decision_id, customer_id, event_id, rule_id, kind, at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (decision_id) DO NOTHING",
                (d.decision_id, d.customer_id, d.event_id, d.rule_id, d.kind, _ts(d.at)),
            )
        elif d.kind in ("review_approved", "review_rejected"):
            cur.execute(
                "UPDATE reviews SET status = %s, decided_by = %s, decided_at = %s, "
                "reason = %s, edited = %s WHERE decision_id = %s AND status = 'pending'",
                (
                    d.kind.removeprefix("review_"),
                    _text(d.params["by"]),
                    _ts(d.at),
                    _text(d.params.get("reason", "")),
                    json.dumps(d.params.get("edited") or {}),
                    d.params["decision_id"],
                ),
            )


def _without(document: str, keys: Sequence[str]) -> str | None:
    """A JSON object's text without the top-level ``keys`` (the rest as it was, compact),
    or None if it has none of them."""
    data = json.loads(document)
    if not isinstance(data, dict) or not any(k in data for k in keys):
        return None
    for k in keys:
        data.pop(k, None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Timestamps are read back in UTC (they are converted anyway; this keeps it cheap).
    conn.execute("SET TIME ZONE 'UTC'")
    # A commit must be durable when it returns: a worker acks the broker right after it,
    # and the API answers 202. With synchronous_commit off a PostgreSQL crash loses the
    # last commits, already acked: lost events (tests/test_broker_faults.py caught it).
    # Only "off" is raised; local, remote_write, remote_apply are durable enough.
    row = conn.execute("SHOW synchronous_commit").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit TO on")


class PostgresStore:
    """The store on PostgreSQL: ``conninfo`` is a ``postgresql://`` URL (or a libpq
    key=value string); the pool keeps ``min_size`` to ``max_size`` connections and waits
    up to ``timeout`` seconds for a free one."""

    shared = True  # API processes, workers and dispatchers write it at once

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        startup_wait: float = 10.0,
    ) -> None:
        """``startup_wait``: how long to keep trying (with backoff) to reach a server that
        is not up yet before giving up with :class:`StoreUnavailable`."""
        # libpq waits for an unreachable host forever unless told otherwise
        given = conninfo_to_dict(conninfo)
        limit = "connect_timeout" in given or "PGCONNECT_TIMEOUT" in os.environ
        self._connect: dict[str, Any] = {} if limit else {"connect_timeout": max(2, int(timeout))}
        self._conninfo = conninfo
        self._migrate_when_reachable(startup_wait)
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, **self._connect},
            configure=_configure,
            open=False,
            name="tactful",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except BaseException:
            self._pool.close()
            raise

    # -- plumbing -------------------------------------------------------------------------
    def _migrate_when_reachable(self, wait: float) -> None:
        """Apply the schema, retrying an unreachable server with backoff for ``wait``
        seconds; then :class:`StoreUnavailable` naming the server (not the password)."""
        deadline = time.monotonic() + wait
        pause = 0.1
        while True:
            try:
                self._migrate()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() + pause > deadline:
                    info = conninfo_to_dict(self._conninfo)
                    where = (
                        f"{info.get('host', 'localhost')}:{info.get('port', 5432)}"
                        f"/{info.get('dbname', '')}"
                    )
                    reason = str(exc).strip().splitlines()[0]
                    raise StoreUnavailable(
                        f"cannot reach PostgreSQL at {where} (tried for {wait:g}s): {reason}"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _migrate(self) -> None:
        connect = psycopg.connect(self._conninfo, autocommit=True, **self._connect)
        with connect as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (_MIGRATION_LOCK,))
            conn.execute(_SCHEMA_VERSION)
            row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                info = conn.info
                raise StoreUnavailable(
                    f"PostgreSQL database {info.dbname!r} on {info.host}:{info.port} has "
                    f"schema version {version}, newer than this tactful ({len(MIGRATIONS)}); "
                    "upgrade tactful"
                )
            for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (i,))

    @property
    def schema_version(self) -> int:
        (row,) = self._tuples("SELECT coalesce(max(version), 0) FROM schema_version")
        return int(row[0])

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction on a pooled connection: committed if the block returns, rolled
        back if it raises."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn.cursor()

    def _query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            return _rows(conn.execute(sql, params))

    def _tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    # -- ingest ---------------------------------------------------------------------------
    def seen_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        rows = self._tuples(
            "SELECT event_id FROM events WHERE event_id = ANY(%s)", (list(event_ids),)
        )
        return {r[0] for r in rows}

    def load_states(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        if not customer_ids:
            return {}
        rows = self._tuples(
            "SELECT customer_id, state::text FROM customers WHERE customer_id = ANY(%s)",
            (list(customer_ids),),
        )
        return {cid: CustomerState.model_validate_json(state) for cid, state in rows}

    @staticmethod
    def _accounts(cur: Cursor, account_ids: Sequence[str], lock: bool) -> dict[str, AccountState]:
        if not account_ids:
            return {}
        cur.execute(
            "SELECT account_id, traits::text, state::text FROM accounts "
            "WHERE account_id = ANY(%s) ORDER BY account_id" + (" FOR UPDATE" if lock else ""),
            (list(account_ids),),
        )
        return {aid: _account(aid, traits, state) for aid, traits, state in cur.fetchall()}

    def load_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountState]:
        with self._pool.connection() as conn:
            return self._accounts(conn.cursor(), account_ids, lock=False)

    def save_account_contexts(
        self, contexts: Mapping[str, AccountContext], updated_at: datetime
    ) -> None:
        if not contexts:
            return
        with self._tx() as cur:  # read (locked) and write in one transaction
            existing = self._accounts(cur, list(contexts), lock=True)
            at = _ts(updated_at)
            rows = [
                _account_row(
                    (existing.get(aid) or AccountState(account_id=aid)).model_copy(
                        update={"context": context}
                    ),
                    at,
                )
                for aid, context in sorted(contexts.items())
            ]
            cur.executemany(_UPSERT_ACCOUNT, rows)

    def commit(
        self,
        batch: Sequence[Processed],
        received_at: datetime,
        rejected: Sequence[QuarantineItem] = (),
    ) -> None:
        if not batch and not rejected:
            return
        rows = batch_rows(batch, received_at)  # in key order: commits lock rows alike
        events, received, actions, decisions = (
            rows.events,
            rows.received,
            rows.actions,
            rows.decisions,
        )
        with self._tx() as cur:
            # 1. the events' processed marks (a duplicate id aborts the whole batch)
            if events:
                cur.executemany(_INSERT_EVENT, events, returning=True)
                inserted: set[str] = set()
                while True:
                    row = cur.fetchone()
                    if row is not None:
                        inserted.add(row[0])
                    if not cur.nextset():
                        break
                if len(inserted) != len(events):  # raising rolls the transaction back
                    ids = [e[0] for e in events]
                    dupes = (set(ids) - inserted) | {i for i, n in Counter(ids).items() if n > 1}
                    raise DuplicateEventError(sorted(dupes))
            # 2. the customers' new states
            cur.executemany(_UPSERT_CUSTOMER, rows.states)
            # 3. the accounts' new states
            cur.executemany(_UPSERT_ACCOUNT, rows.accounts)
            cur.executemany(_UPSERT_AGGREGATES, rows.account_aggregates)
            # 4. the audit log and 5. the outbox, in the same transaction
            cur.executemany(_INSERT_DECISION, _decision_rows(decisions))
            cur.executemany(_INSERT_OUTBOX, _outbox_rows(cur, actions, received))
            # 6. what the events revealed about earlier decisions
            cur.executemany(_INSERT_OUTCOME, rows.outcomes)
            # 7. the batch's rejected events, so a retried batch does not add them twice
            cur.executemany(_INSERT_QUARANTINE, _quarantine_rows(rejected))
            # 8. what a shadow policy would have decided
            cur.executemany(_INSERT_SHADOW, rows.shadowed)
            # 9. the holds and handoffs lists, and the review queue
            _project(cur, actions, batch)
            _project_reviews(cur, decisions)

    def commit_changes(self, changes: Sequence[Change], at: datetime) -> None:
        """What people and the clock did to customers (holds placed or released, handoffs
        accepted, resolved or rejected): states, audit log, outbox and outcomes in one
        transaction, like an event's."""
        if not changes:
            return
        received = _ts(at)
        states = {c.state.customer_id: c.state for c in changes}
        actions = [a for c in changes for a in c.actions]
        decisions = [d for c in changes for d in c.decisions]
        with self._tx() as cur:
            cur.executemany(
                _UPSERT_CUSTOMER,
                [(cid, s.account_id, _dump(s), received) for cid, s in sorted(states.items())],
            )
            cur.executemany(_INSERT_DECISION, _decision_rows(decisions))
            cur.executemany(_INSERT_OUTBOX, _outbox_rows(cur, actions, received))
            cur.executemany(
                _INSERT_OUTCOME, _outcome_rows([o for c in changes for o in c.outcomes])
            )
            _project(cur, actions, ())
            _project_reviews(cur, decisions)

    def active_holds(self, limit: int = 500, after: str = "") -> list[tuple[str, str]]:
        """(hold_id, customer_id) of holds not yet released, by id from ``after`` (pages)."""
        rows = self._tuples(
            "SELECT hold_id, customer_id FROM holds WHERE released_at IS NULL AND hold_id > %s "
            "ORDER BY hold_id LIMIT %s",
            (after, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def list_holds(
        self,
        customer_id: str | None = None,
        active_at: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Holds newest first; ``active_at``: only those in force then."""
        where: list[str] = []
        params: list[Any] = []
        if customer_id is not None:
            where.append("customer_id = %s")
            params.append(customer_id)
        if active_at is not None:
            where.append("released_at IS NULL AND starts_at <= %s AND ends_at > %s")
            params += [_ts(active_at), _ts(active_at)]
        sql = f"SELECT {_COLUMNS['holds']} FROM holds"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._query(sql + " ORDER BY starts_at DESC, hold_id LIMIT %s", [*params, limit])

    def list_handoffs(
        self,
        queue: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Handoffs newest first, with their packages."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("queue", queue), ("status", status), ("customer_id", customer_id)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        sql = f"SELECT {_COLUMNS['handoffs']} FROM handoffs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._query(sql + " ORDER BY opened_at DESC, handoff_id LIMIT %s", [*params, limit])

    def get_handoff(self, handoff_id: str) -> dict[str, Any] | None:
        found = self.list_handoffs_by_id([handoff_id])
        return found[0] if found else None

    def list_handoffs_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._query(
            f"SELECT {_COLUMNS['handoffs']} FROM handoffs WHERE handoff_id = ANY(%s) "
            "ORDER BY handoff_id",
            (list(ids),),
        )

    def quarantine(self, items: Sequence[QuarantineItem]) -> None:
        if not items:
            return
        with self._tx() as cur:
            cur.executemany(_INSERT_QUARANTINE, _quarantine_rows(items))

    # -- read side ------------------------------------------------------------------------
    def get_state(self, customer_id: str) -> CustomerState | None:
        return self.load_states([customer_id]).get(customer_id)

    def get_setting(self, key: str) -> dict[str, Any] | None:
        rows = self._tuples("SELECT value FROM settings WHERE key = %s", (key,))
        return dict(rows[0][0]) if rows else None

    def set_setting(self, key: str, value: dict[str, Any], at: datetime) -> None:
        text = json.dumps(value)
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (key, text, _ts(at)),
            )
            cur.execute(
                "INSERT INTO settings_log (key, value, at) VALUES (%s, %s, %s)",
                (key, text, _ts(at)),
            )

    def setting_history(self, key: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT value, at FROM settings_log WHERE key = %s ORDER BY id DESC LIMIT %s",
            (key, limit),
        )
        return [{"at": r["at"], **r["value"]} for r in rows]

    def get_account(self, account_id: str) -> AccountState | None:
        return self.load_accounts([account_id]).get(account_id)

    def list_account_customers(
        self, account_id: str, limit: int = 100
    ) -> tuple[int, list[dict[str, Any]]]:
        count = self._tuples("SELECT count(*) FROM customers WHERE account_id = %s", (account_id,))
        rows = self._query(
            "SELECT customer_id, updated_at FROM customers WHERE account_id = %s "
            "ORDER BY updated_at DESC, customer_id LIMIT %s",
            (account_id, limit),
        )
        return int(count[0][0]), rows

    def _log(
        self,
        table: str,
        key: str,
        customer_id: str | None,
        since: datetime | None,
        limit: int,
        latest: bool = False,
        equal: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of an append-only log (decisions, outcomes), oldest first; ``latest``: the
        last ``limit`` rows (still oldest first); ``equal``: column = value filters (the
        column names come from code, never from a request)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in {"customer_id": customer_id, **(equal or {})}.items():
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("at >= %s")
            params.append(_ts(since))
        sql = f"SELECT {_COLUMNS[table]} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if latest else "ASC"
        sql += f" ORDER BY at {order}, {key} {order} LIMIT %s"
        rows = self._query(sql, [*params, limit])
        if latest:
            rows.reverse()
        return rows

    def list_decisions(
        self,
        customer_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        latest: bool = False,
        policy_version: str | None = None,
        rule_id: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        equal = {"policy_version": policy_version, "rule_id": rule_id, "kind": kind}
        rows = self._log("decisions", "decision_id", customer_id, since, limit, latest, equal)
        return [_decision_row(r) for r in rows]

    def list_reviews(
        self,
        status: str | None = "pending",
        rule_id: str | None = None,
        limit: int = 100,
        decision_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The review queue, oldest first, each with its decision."""
        where: list[str] = []
        params: list[Any] = []
        filters = (("r.status", status), ("r.rule_id", rule_id), ("r.decision_id", decision_id))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        review = ", ".join(f"r.{c.strip()}" for c in _COLUMNS["reviews"].split(","))
        sql = (
            f"SELECT {review}, d.params, d.reasons, d.factors, d.matched, d.lost, "
            "d.policy_version FROM reviews r JOIN decisions d ON d.decision_id = r.decision_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._query(sql + " ORDER BY r.at, r.decision_id LIMIT %s", [*params, limit])

    def get_review(self, decision_id: str) -> dict[str, Any] | None:
        found = self.list_reviews(None, limit=1, decision_id=decision_id)
        return found[0] if found else None

    def shadow_log(
        self, since: datetime | None = None, limit: int = 100_000
    ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
        """(customer, live decisions, shadow decisions) per shadowed event, oldest first."""
        rows = self._query(
            "SELECT event_id, customer_id, decisions FROM shadow_events WHERE at >= %s "
            "ORDER BY at, event_id LIMIT %s",
            (_when(since, "-infinity"), limit),
        )
        live: dict[str, list[dict[str, Any]]] = {}
        if rows:
            for r in self._query(
                f"SELECT {_COLUMNS['decisions']} FROM decisions WHERE event_id = ANY(%s) "
                "ORDER BY seq",
                ([r["event_id"] for r in rows],),
            ):
                live.setdefault(r["event_id"], []).append(_decision_row(r))
        return [(r["customer_id"], live.get(r["event_id"], []), r["decisions"]) for r in rows]

    def event_payloads(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The recorded events as they were accepted, in event-time order (for replaying
        them, e.g. ``tactful tune``)."""
        rows = self._tuples(
            "SELECT payload FROM events WHERE ts >= %s AND ts < %s ORDER BY ts, event_id",
            (_when(since, "-infinity"), _when(until, "infinity")),
        )
        return [r[0] for r in rows]

    def event_signals(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """(event type, its signals) for the events in [since, until), for drift."""
        rows = self._tuples(
            "SELECT type, signals FROM events WHERE ts >= %s AND ts < %s AND late = 0 "
            "ORDER BY ts, seq",
            (_ts(since), _ts(until)),
        )
        return [(r[0], r[1]) for r in rows]

    # -- a customer's data: export and erase -----------------------------------------------
    def export_customer(self, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the customer, by table (JSON columns decoded; like SQLite's,
        a text value that reads as a JSON array or object is decoded too)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            for table, order in _CUSTOMER_TABLES.items():
                cur.execute(
                    f"SELECT {_COLUMNS[table]} FROM {table} WHERE customer_id = %s "
                    f"ORDER BY {order}",
                    (customer_id,),
                )
                decoded = []
                for row in _rows(cur):
                    for k, v in row.items():
                        if isinstance(v, str) and v[:1] in "[{":
                            with suppress(ValueError):
                                row[k] = json.loads(v)
                    decoded.append(row)
                out[table] = decoded
        return out

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        """Remove the customer from every table, from the accounts' lists of members at
        risk and from notification groups' memory, in one transaction. Returns the rows
        removed (or changed) per table."""
        removed: dict[str, int] = {}
        # How the id appears in JSON text: escaped (json.dumps), or as written (pydantic);
        # SQLite's store looks for the escaped form only, and so misses a non-ASCII id.
        needles = (json.dumps(customer_id), json.dumps(customer_id, ensure_ascii=False))
        with self._tx() as cur:
            for table in _CUSTOMER_TABLES:
                cur.execute(f"DELETE FROM {table} WHERE customer_id = %s", (customer_id,))
                removed[table] = cur.rowcount
            # rejected events too broken to say whose they were, that name the customer
            cur.execute(
                "DELETE FROM quarantine WHERE customer_id IS NULL "
                "AND (position(%s in raw) > 0 OR position(%s in raw) > 0)",
                [n.encode("utf-8") for n in needles],
            )
            removed["quarantine"] += cur.rowcount
            changed = 0
            cur.execute(
                "SELECT account_id, state::text FROM accounts "
                "WHERE strpos(state::text, %s) > 0 OR strpos(state::text, %s) > 0 "
                "ORDER BY account_id FOR UPDATE",
                needles,
            )
            for aid, state in cur.fetchall():
                account = AccountState.model_validate_json(state)
                kept = [m for m in account.at_risk if m.customer_id != customer_id]
                if len(kept) != len(account.at_risk):
                    cur.execute(
                        "UPDATE accounts SET state = %s WHERE account_id = %s",
                        (_dump(account.model_copy(update={"at_risk": kept})), aid),
                    )
                    changed += 1
            removed["accounts (members at risk)"] = changed
            groups = 0
            cur.execute(
                "SELECT group_key, state FROM notify_groups WHERE strpos(group_key, %s) > 0 "
                "OR strpos(state::text, %s) > 0 OR strpos(state::text, %s) > 0 "
                "ORDER BY group_key FOR UPDATE",
                (customer_id, customer_id, needles[0][1:-1]),  # the memory is json.dumps'd
            )
            for key, memory in cur.fetchall():
                if (
                    f"customer:{customer_id}" in key.split("|")[-1]
                    or f"customer={customer_id}" in key
                ):
                    cur.execute("DELETE FROM notify_groups WHERE group_key = %s", (key,))
                else:
                    memory["sent"] = {
                        k: v
                        for k, v in memory["sent"].items()
                        if not k.startswith(f"{customer_id}/")
                    }
                    cur.execute(
                        "UPDATE notify_groups SET state = %s WHERE group_key = %s",
                        (json.dumps(memory), key),
                    )
                groups += 1
            removed["notify_groups"] = groups
        return removed

    def forget_text(self, before: datetime, fields: Sequence[str]) -> dict[str, int]:
        """Retention: remove free text older than ``before`` (events' text fields, the
        latest messages kept in states, quotes in handoff packages, quarantined raw
        bodies); scores, signals and decisions stay. Returns rows changed per table.

        The JSON is edited here rather than in SQL: ``jsonb``'s operators would reorder
        the documents' keys and refuse a ``\\u0000`` in them."""
        cut = _ts(before)
        changed: dict[str, int] = {}
        with self._tx() as cur:
            if fields:
                changed["events"] = self._forget(
                    cur, "events", "event_id", "payload", "ts", cut, list(fields)
                )
            changed["customers"] = self._forget(
                cur, "customers", "customer_id", "state", "updated_at", cut, ["recent_messages"]
            )
            changed["handoffs"] = self._forget(
                cur, "handoffs", "handoff_id", "package", "opened_at", cut, ["quotes"]
            )
            changed["outbox"] = self._forget(
                cur, "outbox", "action_id", "payload", "created_at", cut, ["quotes"]
            )
            cur.execute(
                "UPDATE quarantine SET raw = %s WHERE received_at < %s AND raw <> %s",
                (_EXPIRED, cut, _EXPIRED),
            )
            changed["quarantine"] = cur.rowcount
        return changed

    @staticmethod
    def _forget(
        cur: Cursor, table: str, key: str, column: str, at: str, cut: str, fields: list[str]
    ) -> int:
        """Remove the top-level ``fields`` from the JSON ``column`` of ``table``'s rows
        older than ``cut``, 1,000 rows at a time (by ``key``); how many rows changed.

        The text is searched for the fields' names, then each candidate is parsed here:
        PostgreSQL's JSON operators would fail on a row holding ``\\u0000``."""
        present = " OR ".join([f"strpos({column}::text, %s) > 0"] * len(fields))
        select = (
            f"SELECT {key}, {column}::text FROM {table} WHERE {at} < %s AND {key} > %s "
            f"AND ({present}) ORDER BY {key} LIMIT 1000"
        )
        update = f"UPDATE {table} SET {column} = %s WHERE {key} = %s"
        names = [json.dumps(f) for f in fields]
        total, after = 0, ""
        while True:
            cur.execute(select, (cut, after, *names))
            rows = cur.fetchall()
            if not rows:
                return total
            edits = [(_without(text, fields), k) for k, text in rows]
            cur.executemany(update, [(text, k) for text, k in edits if text is not None])
            total += sum(text is not None for text, _ in edits)
            after = rows[-1][0]

    # -- API keys ---------------------------------------------------------------------------
    def add_key(self, key: ApiKey) -> None:
        with self._tx() as cur:
            cur.execute(
                _insert("api_keys"),
                (
                    key.key_id,
                    key.name,
                    json.dumps(sorted(key.scopes)),
                    key.secret_hash,
                    _ts(key.created_at),
                    _ts(key.revoked_at) if key.revoked_at else None,
                    _ts(key.expires_at) if key.expires_at else None,
                    key.rps,
                    key.max_body,
                    key.max_batch,
                ),
            )

    def list_keys(self) -> list[ApiKey]:
        return [
            ApiKey(
                r["key_id"],
                r["name"],
                frozenset(r["scopes"]),
                r["secret_hash"],
                datetime.fromisoformat(r["created_at"]),
                datetime.fromisoformat(r["revoked_at"]) if r["revoked_at"] else None,
                datetime.fromisoformat(r["expires_at"]) if r["expires_at"] else None,
                r["rps"],
                r["max_body"],
                r["max_batch"],
            )
            for r in self._query(
                f"SELECT {_COLUMNS['api_keys']} FROM api_keys ORDER BY created_at, key_id"
            )
        ]

    def end_key(self, key_id: str, at: datetime, revoke: bool = True) -> bool:
        """Revoke a key now (``revoke``), or let it lapse at ``at`` (a rotation's grace)."""
        column = "revoked_at" if revoke else "expires_at"
        with self._tx() as cur:
            cur.execute(
                f"UPDATE api_keys SET {column} = %s WHERE key_id = %s AND revoked_at IS NULL",
                (_ts(at), key_id),
            )
            return cur.rowcount == 1

    def get_outcome(self, outcome_id: str) -> dict[str, Any] | None:
        rows = self._query(
            f"SELECT {_COLUMNS['outcomes']} FROM outcomes WHERE outcome_id = %s", (outcome_id,)
        )
        return rows[0] if rows else None

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        """Outcomes reported from outside; one already recorded (same id) is left as it
        is. Returns how many were new."""
        if not outcomes:
            return 0
        with self._tx() as cur:
            cur.executemany(_insert("outcomes", "outcome_id"), _outcome_rows(outcomes))
            return cur.rowcount

    def metric_rows(self, since: datetime | None, until: datetime | None) -> MetricRows:
        """What the metrics summary reads, for events and decisions in [since, until) and
        outcomes up to 72 h after (a repeat contact is judged after the fact)."""
        lo = _when(since, "-infinity")
        hi = _when(until, "infinity")
        later = _ts(until + timedelta(hours=72)) if until else "infinity"
        decisions = [
            _decision_row(r)
            for r in self._query(
                f"SELECT {_COLUMNS['decisions']} FROM decisions WHERE at >= %s AND at < %s "
                "ORDER BY at, seq",
                (lo, hi),
            )
        ]
        outcomes = self._query(
            f"SELECT {_COLUMNS['outcomes']} FROM outcomes WHERE at >= %s AND at < %s "
            "ORDER BY at, seq",
            (lo, later),
        )
        events = [
            (r["customer_id"], r["type"], r["ts"], r["signals"])
            for r in self._query(
                "SELECT customer_id, type, ts, signals FROM events WHERE ts >= %s AND ts < %s "
                "AND late = 0 ORDER BY ts, seq",
                (lo, hi),
            )
        ]
        handoffs = self._query(
            f"SELECT {_COLUMNS['handoffs']} FROM handoffs WHERE opened_at >= %s "
            "AND opened_at < %s ORDER BY seq",
            (lo, hi),
        )
        # categories as JSON text, as SQLite hands them here
        hold_columns = _COLUMNS["holds"].replace("categories", "categories::text AS categories")
        holds = self._query(
            f"SELECT {hold_columns} FROM holds WHERE (starts_at >= %s AND starts_at < %s) "
            "OR (released_at >= %s AND released_at < %s) ORDER BY seq",
            (lo, hi, lo, hi),
        )
        return MetricRows(decisions, outcomes, events, handoffs, holds)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._query(
            f"SELECT {_COLUMNS['decisions']} FROM decisions WHERE decision_id = %s",
            (decision_id,),
        )
        return _decision_row(rows[0]) if rows else None

    def decisions_for_event(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._query(
            f"SELECT {_COLUMNS['decisions']} FROM decisions WHERE event_id = %s ORDER BY seq",
            (event_id,),
        )
        return [_decision_row(r) for r in rows]

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        rows = self._query(
            f"SELECT {_COLUMNS['events']} FROM events WHERE event_id = %s", (event_id,)
        )
        if not rows:
            return None
        r = rows[0]
        return {
            **{k: r[k] for k in ("event_id", "customer_id", "type", "ts", "received_at")},
            "event": r["payload"],
            "signals": r["signals"],
            "late": bool(r["late"]),
        }

    def list_outcomes(
        self, customer_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._log("outcomes", "outcome_id", customer_id, since, limit)

    def list_events(self, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT event_id, type, ts, payload, signals, late FROM events "
            "WHERE customer_id = %s ORDER BY ts, event_id LIMIT %s",
            (customer_id, limit),
        )
        return [
            {
                "event_id": r["event_id"],
                "type": r["type"],
                "timestamp": r["ts"],
                "event": r["payload"],
                "signals": r["signals"],
                "late": bool(r["late"]),
            }
            for r in rows
        ]

    def list_quarantine(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self._query(
            f"SELECT {_COLUMNS['quarantine']} FROM quarantine ORDER BY id DESC LIMIT %s OFFSET %s",
            (limit, offset),
        )

    def stats(self) -> StoreStats:
        (row,) = self._tuples(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM customers), "
            "(SELECT count(*) FROM decisions), (SELECT count(*) FROM quarantine), "
            "(SELECT count(*) FROM outbox WHERE status = 'pending'), "
            "(SELECT count(*) FROM outbox WHERE status = 'dead')"
        )
        return StoreStats(*(int(n) for n in row))

    # -- outbox ---------------------------------------------------------------------------
    def pending_actions(
        self,
        now: datetime,
        limit: int = 100,
        channel: str | None = None,
        exclude: Sequence[str] = (),
        lease: timedelta | None = None,
    ) -> list[OutboxRow]:
        where = ""
        params: list[Any] = [_ts(now)]
        if channel is not None:
            where = " AND channel = %s"
            params.append(channel)
        if exclude:
            where += " AND NOT (channel = ANY(%s))"
            params.append(list(exclude))
        columns = (
            "action_id, idempotency_key, customer_id, channel, kind, payload, attempts, "
            "created_at, batch_id"
        )
        due = (
            "FROM outbox WHERE status = 'pending' AND next_attempt_at <= %s"
            f"{where} ORDER BY next_attempt_at, seq LIMIT %s"  # the outbox_due index's order
        )
        if lease is None:
            rows = self._query(f"SELECT {columns} {due}", [*params, limit])
        else:
            # Claimed in one statement; rows another dispatcher is claiming right now are
            # skipped, not waited for. RETURNING has no order: sorted again below.
            with self._tx() as cur:
                cur.execute(
                    f"WITH due AS (SELECT action_id, next_attempt_at AS due_at, seq {due} "
                    "FOR UPDATE SKIP LOCKED) UPDATE outbox o SET next_attempt_at = %s "
                    f"FROM due WHERE o.action_id = due.action_id RETURNING "
                    + ", ".join(f"o.{c.strip()}" for c in columns.split(","))
                    + ", due.due_at, due.seq",
                    [*params, limit, _ts(now + lease)],
                )
                rows = sorted(_rows(cur), key=lambda r: (r["due_at"], r["seq"]))
        return [
            OutboxRow(
                action_id=r["action_id"],
                idempotency_key=r["idempotency_key"],
                customer_id=r["customer_id"],
                channel=r["channel"],
                kind=r["kind"],
                payload=r["payload"],
                attempts=r["attempts"],
                created_at=datetime.fromisoformat(r["created_at"]),
                batch_id=r["batch_id"],
            )
            for r in rows
        ]

    def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        if not action_ids:
            return
        with self._tx() as cur:
            cur.execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = %s, "
                "attempts = attempts + 1 WHERE action_id = ANY(%s) AND status = 'pending'",
                (_ts(at), list(action_ids)),
            )

    def mark_failed(
        self, action_id: str, error: str, next_attempt_at: datetime, dead: bool
    ) -> None:
        self.mark_failed_many([(action_id, error, next_attempt_at, dead)])

    def mark_failed_many(self, failures: Sequence[tuple[str, str, datetime, bool]]) -> None:
        """(action_id, error, next attempt, dead) for each, in one transaction."""
        if not failures:
            return
        with self._tx() as cur:
            cur.executemany(
                "UPDATE outbox SET status = %s, attempts = attempts + 1, last_error = %s, "
                "next_attempt_at = %s WHERE action_id = %s AND status = 'pending'",
                [
                    ("dead" if dead else "pending", _text(error[:2_000]), _ts(at), action_id)
                    for action_id, error, at, dead in failures
                ],
            )

    def requeue_actions(self, action_ids: Sequence[str] | None, now: datetime) -> list[str]:
        """Dead actions (these, or all with None) back to pending, due now, attempts 0."""
        return self._set_status(
            action_ids,
            "status = 'dead'",
            "status = 'pending', attempts = 0, next_attempt_at = %s",
            [_ts(now)],
        )

    def drop_actions(self, action_ids: Sequence[str] | None, reason: str) -> list[str]:
        """Pending or dead actions (these, or all dead with None) to 'dropped', with why."""
        where = "status IN ('pending', 'dead')" if action_ids is not None else "status = 'dead'"
        return self._set_status(
            action_ids, where, "status = 'dropped', last_error = %s", [_text(reason[:2_000])]
        )

    def _set_status(
        self, action_ids: Sequence[str] | None, where: str, update: str, values: list[Any]
    ) -> list[str]:
        with self._tx() as cur:
            if action_ids is None:
                cur.execute(
                    f"SELECT action_id FROM outbox WHERE {where} "
                    "ORDER BY next_attempt_at, seq FOR UPDATE"
                )
                ids = [r[0] for r in cur.fetchall()]
            else:
                cur.execute(
                    f"SELECT action_id FROM outbox WHERE action_id = ANY(%s) AND {where} "
                    "ORDER BY action_id FOR UPDATE",
                    (list(action_ids),),
                )
                found = {r[0] for r in cur.fetchall()}
                ids = [a for a in action_ids if a in found]
            if ids:
                cur.execute(
                    f"UPDATE outbox SET {update} WHERE action_id = ANY(%s)",
                    (*values, ids),
                )
        return ids

    def list_outbox(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = f"SELECT {_COLUMNS['outbox']} FROM outbox"
        params: list[Any] = []
        if status:
            sql += " WHERE status = %s"
            params.append(status)
        sql += " ORDER BY created_at, action_id LIMIT %s"
        return self._query(sql, [*params, limit])

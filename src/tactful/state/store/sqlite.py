"""Remember, durable: the embedded default store, SQLite in WAL mode.

One file holds events, customer states, accounts, the decision audit log, the outbox and
the quarantine. Schema changes are an append-only list of migrations whose position is the
version (kept in ``PRAGMA user_version``). One connection, guarded by a lock: SQLite has
one writer anyway, and the engine batches its writes.

Durability is a stated setting: ``full`` (synchronous=FULL) makes every commit survive
power loss before it returns; ``normal`` (synchronous=NORMAL, WAL) cannot corrupt the
database but may lose the last commits on power loss, for several times the throughput.
``tactful serve`` uses ``full`` (a 202 means durable); replay defaults to ``normal``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tactful.access import ApiKey
from tactful.actions.grouping import GroupState, schedule
from tactful.actions.lifecycle import Change
from tactful.actions.outbox import Action
from tactful.learn.outcomes import Outcome
from tactful.policy.engine import Decision
from tactful.runtime.pipeline import Processed
from tactful.state.account import AccountState
from tactful.state.customer import AccountContext, CustomerState, with_traits
from tactful.state.store.base import (
    MAX_QUARANTINE_BYTES,
    DuplicateEventError,
    Durability,
    MetricRows,
    OutboxRow,
    QuarantineItem,
    StoreStats,
)

__all__ = ["MIGRATIONS", "SQLiteStore"]

MIGRATIONS: list[str] = [
    # 1: the first schema. Rowid tables throughout: rows are large (JSON), which
    # WITHOUT ROWID tables store poorly.
    """
    CREATE TABLE events (
        event_id     TEXT PRIMARY KEY,
        customer_id  TEXT NOT NULL,
        type         TEXT NOT NULL,
        ts           TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        payload      TEXT NOT NULL,
        signals      TEXT NOT NULL
    );
    CREATE INDEX events_customer ON events (customer_id, ts);

    CREATE TABLE customers (
        customer_id  TEXT PRIMARY KEY,
        account_id   TEXT,
        state        TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE INDEX customers_account ON customers (account_id);

    CREATE TABLE accounts (
        account_id   TEXT PRIMARY KEY,
        traits       TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );

    CREATE TABLE decisions (
        decision_id    TEXT PRIMARY KEY,
        event_id       TEXT NOT NULL,
        customer_id    TEXT NOT NULL,
        at             TEXT NOT NULL,
        kind           TEXT NOT NULL,
        rule_id        TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        params         TEXT NOT NULL,
        reasons        TEXT NOT NULL,
        factors        TEXT NOT NULL
    );
    CREATE INDEX decisions_customer ON decisions (customer_id, at);
    CREATE INDEX decisions_at ON decisions (at);

    CREATE TABLE outbox (
        action_id        TEXT PRIMARY KEY,
        idempotency_key  TEXT NOT NULL,  -- equals action_id today; receivers dedupe on it
        decision_id      TEXT NOT NULL,
        customer_id      TEXT NOT NULL,
        channel          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        payload          TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  TEXT NOT NULL,
        last_error       TEXT,
        created_at       TEXT NOT NULL,
        delivered_at     TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

    CREATE TABLE outcomes (
        outcome_id   TEXT PRIMARY KEY,
        event_id     TEXT NOT NULL,
        customer_id  TEXT NOT NULL,
        at           TEXT NOT NULL,
        kind         TEXT NOT NULL,
        value        REAL,
        rule_id      TEXT,
        detail       TEXT NOT NULL
    );
    CREATE INDEX outcomes_at ON outcomes (at);
    CREATE INDEX outcomes_customer ON outcomes (customer_id, at);

    CREATE TABLE quarantine (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  TEXT NOT NULL,
        source       TEXT NOT NULL,
        event_id     TEXT,
        customer_id  TEXT,
        reason       TEXT NOT NULL,
        raw          TEXT NOT NULL
    );
    """,
    # 2: account state (the aggregate over its customers) next to the traits, and a flag
    # on events that arrived later than the allowed lateness (recorded, not applied).
    """
    ALTER TABLE accounts ADD COLUMN state TEXT;
    ALTER TABLE events ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: the explanation of a decision: every rule whose condition matched on its event,
    # and the ones that matched but lost (cooldown, outranked, a guard) with why.
    """
    ALTER TABLE decisions ADD COLUMN matched TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE decisions ADD COLUMN lost TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX decisions_event ON decisions (event_id);
    """,
    # 4: switches a person flips (incident mode), with every change kept.
    """
    CREATE TABLE settings (
        key          TEXT PRIMARY KEY,
        value        TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE settings_log (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        at           TEXT NOT NULL
    );
    """,
    # 5: notifications batched Alertmanager-style: the message (batch) each one rides in,
    # and each group's memory (its latest message, what went into recent ones). A muted
    # repeat is kept with status 'muted' and why in last_error.
    """
    ALTER TABLE outbox ADD COLUMN batch_id TEXT;
    CREATE TABLE notify_groups (
        group_key    TEXT PRIMARY KEY,
        state        TEXT NOT NULL
    );
    """,
    # 6: a shadow policy running alongside live traffic: per event, what it would have
    # decided (never acted on), for `tactful shadow --live`.
    """
    CREATE TABLE shadow_events (
        event_id       TEXT PRIMARY KEY,
        customer_id    TEXT NOT NULL,
        at             TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        decisions      TEXT NOT NULL
    );
    CREATE INDEX shadow_events_at ON shadow_events (at);
    """,
    # 7: holds and handoffs as lists a marketing tool or an agent can query (the states
    # keep only what decisions need); kept from the actions that start and end them.
    """
    CREATE TABLE holds (
        hold_id        TEXT PRIMARY KEY,
        customer_id    TEXT NOT NULL,
        categories     TEXT NOT NULL,
        starts_at      TEXT NOT NULL,
        ends_at        TEXT NOT NULL,
        created_by     TEXT NOT NULL,
        reason         TEXT NOT NULL,
        comment        TEXT NOT NULL DEFAULT '',
        released_at    TEXT,
        released_by    TEXT,
        release_reason TEXT
    );
    CREATE INDEX holds_customer ON holds (customer_id, starts_at);
    CREATE INDEX holds_active ON holds (ends_at) WHERE released_at IS NULL;
    CREATE TABLE handoffs (
        handoff_id   TEXT PRIMARY KEY,
        customer_id  TEXT NOT NULL,
        queue        TEXT NOT NULL,
        priority     TEXT NOT NULL,
        status       TEXT NOT NULL,
        opened_at    TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        updated_by   TEXT,
        reason       TEXT,
        package      TEXT NOT NULL
    );
    CREATE INDEX handoffs_queue ON handoffs (queue, status, opened_at);
    CREATE INDEX handoffs_customer ON handoffs (customer_id, opened_at);
    """,
    # 8: each channel's loop reads its own due rows (a backlog on one channel must not
    # make the others scan it).
    """
    CREATE INDEX outbox_channel_due ON outbox (channel, status, next_attempt_at);
    """,
    # 9: metrics read events by time range; a decision for a customer in the policy's
    # control group (holdout) is recorded and marked, and was not acted on.
    """
    CREATE INDEX events_ts ON events (ts);
    ALTER TABLE decisions ADD COLUMN holdout INTEGER NOT NULL DEFAULT 0;
    """,
    # 10: supervised rollout: decisions of a rule in review mode wait here for a person.
    """
    ALTER TABLE decisions ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE reviews (
        decision_id  TEXT PRIMARY KEY,
        customer_id  TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        rule_id      TEXT NOT NULL,
        kind         TEXT NOT NULL,
        at           TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'pending',
        decided_by   TEXT,
        decided_at   TEXT,
        reason       TEXT,
        edited       TEXT
    );
    CREATE INDEX reviews_status ON reviews (status, at);
    """,
    # 11: API keys: a hash of each secret, never the secret; revoked keys are kept.
    """
    CREATE TABLE api_keys (
        key_id       TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        scopes       TEXT NOT NULL,
        secret_hash  TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        revoked_at   TEXT,
        expires_at   TEXT,
        rps          REAL NOT NULL DEFAULT 100,
        max_body     INTEGER NOT NULL DEFAULT 5242880,
        max_batch    INTEGER NOT NULL DEFAULT 1000
    );
    """,
]


def _ts(dt: datetime) -> str:
    """Timestamps are stored as UTC ISO 8601 strings, which sort as text."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _cap(raw: str) -> str:
    data = raw.encode("utf-8", "replace")
    if len(data) <= MAX_QUARANTINE_BYTES:
        return raw
    return data[:MAX_QUARANTINE_BYTES].decode("utf-8", "ignore") + "...[truncated]"


_INSERT_OUTBOX = (
    "INSERT INTO outbox (action_id, idempotency_key, decision_id, customer_id, channel, kind, "
    "payload, status, next_attempt_at, last_error, created_at, batch_id) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received_at, source, event_id, customer_id, reason, raw)"
    " VALUES (?,?,?,?,?,?)"
)


def _quarantine_rows(items: Sequence[QuarantineItem]) -> list[tuple[Any, ...]]:
    return [
        (_ts(q.received_at), q.source, q.event_id, q.customer_id, json.dumps(q.reason), _cap(q.raw))
        for q in items
    ]


UPSERT_CUSTOMER = (
    "INSERT INTO customers VALUES (?,?,?,?) ON CONFLICT (customer_id) DO UPDATE "
    "SET account_id=excluded.account_id, state=excluded.state, updated_at=excluded.updated_at"
)
_UPSERT_ACCOUNT = (
    "INSERT INTO accounts (account_id, traits, updated_at, state) VALUES (?,?,?,?) "
    "ON CONFLICT (account_id) DO UPDATE SET traits=excluded.traits, state=excluded.state, "
    "updated_at=excluded.updated_at"
)


# The aggregates only: the context (traits) in the row stays as an import may have set it.
_UPSERT_AGGREGATES = (
    "INSERT INTO accounts (account_id, traits, updated_at, state) VALUES (?,?,?,?) "
    "ON CONFLICT (account_id) DO UPDATE SET state=excluded.state, "
    "updated_at=excluded.updated_at"
)


def _dump(state: CustomerState | AccountState) -> str:
    """Stored JSON: defaults left out (most fields of most states are empty)."""
    return state.model_dump_json(exclude_defaults=True)


def _account_row(account: AccountState, updated_at: str) -> tuple[str, str, str, str]:
    """An accounts row: id, context (the ``traits`` column), time, state."""
    context = account.context.model_dump_json(exclude_defaults=True)
    return (account.account_id, context, updated_at, _dump(account))


def _context(traits: str) -> AccountContext:
    try:
        return AccountContext.model_validate_json(traits)
    except ValidationError:  # written before schema 2: an identify's raw traits
        return with_traits(AccountContext(), json.loads(traits))


def _account(account_id: str, traits: str, state: str | None) -> AccountState:
    """The ``traits`` column holds the account's context and is authoritative: an accounts
    file writes it, and an engine writes it only when an event changed the context, so an
    engine's cached copy never undoes an import."""
    context = _context(traits)
    if state is None:  # written before schema 2: traits only
        return AccountState(account_id=account_id, context=context)
    account = AccountState.model_validate_json(state)
    return (
        account if account.context == context else account.model_copy(update={"context": context})
    )


_DECISION_JSON = ("params", "reasons", "factors", "matched", "lost")


def _in_chunks(
    run: Callable[[str, Sequence[Any]], Iterable[Any]], sql: str, keys: Sequence[str]
) -> Iterator[Any]:
    """Rows of ``sql`` (ending in ``IN ({marks})``) for ``keys``, 500 at a time (SQLite
    caps the number of parameters), through ``run`` (a connection's execute, inside a
    transaction, or the store's locked query)."""
    ids = list(dict.fromkeys(keys))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        yield from run(sql.format(marks=",".join("?" * len(chunk))), chunk)


def placed_rows(
    actions: Sequence[Action],
    groups: dict[str, GroupState],
    received: str,
    clean: Callable[[str], str] = lambda text: text,
) -> list[tuple[Any, ...]]:
    """Outbox rows for ``actions``, whatever the backend: each notification is placed in
    its group's next message or muted as a repeat (actions/grouping.py), updating
    ``groups`` (the groups' memory, for the caller to save); ``clean``: how free text
    (why a repeat was muted) must be written for the backend."""
    rows = []
    for a in actions:
        status, due, error, batch = "pending", received, None, None
        if a.grouping is not None:
            placed = schedule(groups.get(a.grouping.key), a.grouping, a.created_at)
            groups[a.grouping.key] = placed.state
            if placed.flush_at is None:
                status, error = "muted", clean(placed.muted_because)
            else:
                due, batch = _ts(placed.flush_at), placed.batch_id
        rows.append(
            (
                a.action_id,
                a.idempotency_key,
                a.decision_id,
                a.customer_id,
                a.channel,
                a.kind,
                json.dumps(a.payload),
                status,
                due,
                error,
                received,
                batch,
            )
        )
    return rows


def _outbox_rows(
    db: sqlite3.Connection, actions: Sequence[Action], received: str
) -> list[tuple[Any, ...]]:
    """Outbox rows; a notification is placed in its group's next message, or muted as a
    repeat (see actions/grouping.py), against the groups' memory in this transaction."""
    keys = sorted({a.grouping.key for a in actions if a.grouping})
    groups: dict[str, GroupState] = {
        key: GroupState.from_dict(json.loads(state))
        for key, state in _in_chunks(
            db.execute,
            "SELECT group_key, state FROM notify_groups WHERE group_key IN ({marks})",
            keys,
        )
    }
    rows = placed_rows(actions, groups, received)
    if keys:
        db.executemany(
            "INSERT INTO notify_groups VALUES (?, ?) "
            "ON CONFLICT (group_key) DO UPDATE SET state = excluded.state",
            [(k, json.dumps(groups[k].as_dict())) for k in keys],
        )
    return rows


def _project(db: sqlite3.Connection, actions: Sequence[Action], batch: Sequence[Processed]) -> None:
    """Keep the holds and handoffs tables in step with the actions that start and end
    them (one action per delivery channel: the statements are idempotent)."""
    for a in actions:
        p = a.payload
        if a.kind == "hold.started":
            db.execute(
                "INSERT OR IGNORE INTO holds (hold_id, customer_id, categories, starts_at, "
                "ends_at, created_by, reason, comment) VALUES (?,?,?,?,?,?,?,?)",
                (
                    p["hold_id"],
                    a.customer_id,
                    json.dumps(p["categories"]),
                    _ts(datetime.fromisoformat(p["starts_at"])),
                    _ts(datetime.fromisoformat(p["ends_at"])),
                    p["created_by"],
                    p["reason"],
                    p.get("comment", ""),
                ),
            )
        elif a.kind == "hold.released":
            db.execute(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ?, "
                "comment = CASE WHEN ? != '' THEN ? ELSE comment END "
                "WHERE hold_id = ? AND released_at IS NULL",
                (
                    _ts(a.created_at),
                    p.get("released_by", "rule"),
                    p.get("reason", ""),
                    p.get("comment", ""),
                    p.get("comment", ""),
                    p["hold_id"],
                ),
            )
        elif a.kind == "handoff.created":
            at = _ts(a.created_at)
            db.execute(
                "INSERT OR IGNORE INTO handoffs VALUES (?,?,?,?,'open',?,?,NULL,NULL,?)",
                (
                    p["handoff_id"],
                    a.customer_id,
                    p["queue"],
                    p["priority"],
                    at,
                    at,
                    json.dumps(p),
                ),
            )
        elif a.kind == "handoff.updated":
            db.execute(
                "UPDATE handoffs SET status = ?, updated_at = ?, updated_by = ?, reason = ? "
                "WHERE handoff_id = ?",
                (p["status"], _ts(a.created_at), p["by"], p.get("reason"), p["handoff_id"]),
            )
    for item in batch:  # a solved ticket closes the customer's handoffs (see remember)
        e = item.event
        if e.type == "ticket_closed" and e.resolution == "solved":
            db.execute(
                "UPDATE handoffs SET status = 'resolved', updated_at = ?, updated_by = ? "
                "WHERE customer_id = ? AND status IN ('open', 'accepted')",
                (_ts(e.timestamp), f"ticket:{e.ticket_id}", e.customer_id),
            )


def _decision_rows(decisions: Sequence[Decision]) -> list[tuple[Any, ...]]:
    return [
        (
            d.decision_id,
            d.event_id,
            d.customer_id,
            _ts(d.at),
            d.kind,
            d.rule_id,
            d.policy_version,
            json.dumps(d.params),
            json.dumps(list(d.reasons)),
            json.dumps(d.factors),
            json.dumps(list(d.matched)),
            json.dumps(list(d.lost)),
            int(d.holdout),
            int(d.review),
        )
        for d in decisions
    ]


def _project_reviews(db: sqlite3.Connection, decisions: Sequence[Decision]) -> None:
    """Decisions waiting for a person join the review queue; a person's verdict (a
    ``review_approved`` / ``review_rejected`` decision) settles its entry."""
    for d in decisions:
        if d.review:
            db.execute(
                "INSERT OR IGNORE INTO reviews (decision_id, customer_id, event_id, rule_id, "
                "kind, at) VALUES (?,?,?,?,?,?)",
                (d.decision_id, d.customer_id, d.event_id, d.rule_id, d.kind, _ts(d.at)),
            )
        elif d.kind in ("review_approved", "review_rejected"):
            db.execute(
                "UPDATE reviews SET status = ?, decided_by = ?, decided_at = ?, reason = ?, "
                "edited = ? WHERE decision_id = ? AND status = 'pending'",
                (
                    d.kind.removeprefix("review_"),
                    d.params["by"],
                    _ts(d.at),
                    d.params.get("reason", ""),
                    json.dumps(d.params.get("edited") or {}),
                    d.params["decision_id"],
                ),
            )


def _outcome_rows(outcomes: Sequence[Outcome]) -> list[tuple[Any, ...]]:
    return [
        (
            o.outcome_id,
            o.event_id,
            o.customer_id,
            _ts(o.at),
            o.kind,
            o.value,
            o.rule_id,
            json.dumps(o.detail),
        )
        for o in outcomes
    ]


def _decision_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        **dict(row),
        **{c: json.loads(row[c]) for c in _DECISION_JSON},
        "holdout": bool(row["holdout"]),
        "review": bool(row["review"]),
    }


@dataclass(frozen=True, slots=True)
class BatchRows:
    """What one committed batch writes, as rows, whatever the backend's SQL: the events'
    marks, each customer's and account's last state (in key order, so two writers lock
    rows in the same order), decisions, actions, shadow decisions and outcomes."""

    received: str
    events: list[tuple[Any, ...]]
    states: list[tuple[Any, ...]]
    accounts: list[tuple[Any, ...]]  # accounts whose context (traits) changed
    account_aggregates: list[tuple[Any, ...]]  # accounts whose aggregate alone changed
    decisions: list[Decision]
    actions: list[Action]
    shadowed: list[tuple[Any, ...]]
    outcomes: list[tuple[Any, ...]]


def batch_rows(batch: Sequence[Processed], received_at: datetime) -> BatchRows:
    received = _ts(received_at)
    events = [
        (
            p.event.event_id,
            p.event.customer_id,
            p.event.type,
            _ts(p.event.timestamp),
            received,
            p.event.model_dump_json(exclude_defaults=True),
            json.dumps([s.as_dict() for s in p.signals]) if p.signals else "[]",
            int(p.late),
        )
        for p in batch
    ]
    last_state = {p.state.customer_id: p.state for p in batch}
    states = [(cid, s.account_id, _dump(s), received) for cid, s in sorted(last_state.items())]
    changed = {p.account.account_id for p in batch if p.account and p.account_changed}
    context_changed = {
        p.account.account_id for p in batch if p.account and p.account_context_changed
    }
    last_account: dict[str, AccountState] = {}
    for p in batch:
        if p.account is not None and p.account.account_id in changed:
            last_account[p.account.account_id] = p.account
    rows = [_account_row(a, received) for _, a in sorted(last_account.items())]
    shadowed = [
        (
            p.event.event_id,
            p.event.customer_id,
            _ts(p.event.timestamp),
            p.shadow[0].policy_version if p.shadow else "",
            json.dumps([d.as_dict() for d in p.shadow]),
        )
        for p in batch
        if p.shadow is not None
    ]
    return BatchRows(
        received,
        events,
        states,
        [r for r in rows if r[0] in context_changed],
        [r for r in rows if r[0] not in context_changed],
        [d for p in batch for d in p.decisions],
        [a for p in batch for a in p.actions],
        shadowed,
        _outcome_rows([o for p in batch for o in p.outcomes]),
    )


class SQLiteStore:
    shared = False  # one process writes it (see Store.shared)

    def __init__(self, path: str | Path = "tactful.db", durability: Durability = "full") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self.durability = durability
        self._migrate()

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this tactful "
                    f"({len(MIGRATIONS)}); upgrade tactful"
                )
            for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={i};\nCOMMIT;")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    # -- ingest ---------------------------------------------------------------------------
    def _where_in(self, sql: str, keys: Sequence[str]) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (ending in ``IN ({marks})``) for ``keys`` (see _in_chunks)."""
        return _in_chunks(self._query, sql, keys)

    def seen_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        sql = "SELECT event_id FROM events WHERE event_id IN ({marks})"
        return {r[0] for r in self._where_in(sql, event_ids)}

    def load_states(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]:
        sql = "SELECT customer_id, state FROM customers WHERE customer_id IN ({marks})"
        return {
            cid: CustomerState.model_validate_json(state)
            for cid, state in self._where_in(sql, customer_ids)
        }

    def load_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountState]:
        sql = "SELECT account_id, traits, state FROM accounts WHERE account_id IN ({marks})"
        return {
            aid: _account(aid, traits, state)
            for aid, traits, state in self._where_in(sql, account_ids)
        }

    def save_account_contexts(
        self, contexts: Mapping[str, AccountContext], updated_at: datetime
    ) -> None:
        with self._tx() as db:  # read and write in one transaction (the lock is re-entrant)
            existing = self.load_accounts(list(contexts))
            at = _ts(updated_at)
            rows_out = [
                _account_row(
                    (existing.get(aid) or AccountState(account_id=aid)).model_copy(
                        update={"context": context}
                    ),
                    at,
                )
                for aid, context in contexts.items()
            ]
            db.executemany(_UPSERT_ACCOUNT, rows_out)

    def commit(
        self,
        batch: Sequence[Processed],
        received_at: datetime,
        rejected: Sequence[QuarantineItem] = (),
    ) -> None:
        if not batch and not rejected:
            return
        rows = batch_rows(batch, received_at)
        events, received, actions = rows.events, rows.received, rows.actions
        try:
            with self._tx() as db:
                # 1. the events' processed marks (a duplicate id aborts the whole batch)
                db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", events)
                # 2. the customers' new states
                db.executemany(UPSERT_CUSTOMER, rows.states)
                # 3. the accounts' new states
                db.executemany(_UPSERT_ACCOUNT, rows.accounts)
                db.executemany(_UPSERT_AGGREGATES, rows.account_aggregates)
                # 4. the audit log and 5. the outbox, in the same transaction
                db.executemany(
                    "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    _decision_rows(rows.decisions),
                )
                db.executemany(_INSERT_OUTBOX, _outbox_rows(db, actions, received))
                # 6. what the events revealed about earlier decisions
                db.executemany("INSERT INTO outcomes VALUES (?,?,?,?,?,?,?,?)", rows.outcomes)
                # 7. the batch's rejected events, so a retried batch does not add them twice
                db.executemany(_INSERT_QUARANTINE, _quarantine_rows(rejected))
                # 8. what a shadow policy would have decided
                db.executemany("INSERT INTO shadow_events VALUES (?,?,?,?,?)", rows.shadowed)
                # 9. the holds and handoffs lists, and the review queue
                _project(db, actions, batch)
                _project_reviews(db, rows.decisions)
        except sqlite3.IntegrityError:
            ids = [e[0] for e in events]
            dupes = self.seen_event_ids(ids) | {i for i, n in Counter(ids).items() if n > 1}
            if dupes:
                raise DuplicateEventError(sorted(dupes)) from None
            raise

    def commit_changes(self, changes: Sequence[Change], at: datetime) -> None:
        """What people and the clock did to customers (holds placed or released, handoffs
        accepted, resolved or rejected): states, audit log, outbox and outcomes in one
        transaction, like an event's."""
        if not changes:
            return
        received = _ts(at)
        states = {c.state.customer_id: c.state for c in changes}
        actions = [a for c in changes for a in c.actions]
        with self._tx() as db:
            db.executemany(
                UPSERT_CUSTOMER,
                [(cid, s.account_id, _dump(s), received) for cid, s in states.items()],
            )
            db.executemany(
                "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _decision_rows([d for c in changes for d in c.decisions]),
            )
            db.executemany(_INSERT_OUTBOX, _outbox_rows(db, actions, received))
            db.executemany(
                "INSERT INTO outcomes VALUES (?,?,?,?,?,?,?,?)",
                _outcome_rows([o for c in changes for o in c.outcomes]),
            )
            _project(db, actions, ())
            _project_reviews(db, [d for c in changes for d in c.decisions])

    def active_holds(self, limit: int = 500, after: str = "") -> list[tuple[str, str]]:
        """(hold_id, customer_id) of holds not yet released, by id from ``after`` (pages)."""
        rows = self._query(
            "SELECT hold_id, customer_id FROM holds WHERE released_at IS NULL AND hold_id > ? "
            "ORDER BY hold_id LIMIT ?",
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
        where, params = [], []
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if active_at is not None:
            where.append("released_at IS NULL AND starts_at <= ? AND ends_at > ?")
            params += [_ts(active_at), _ts(active_at)]
        sql = "SELECT * FROM holds" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY starts_at DESC, hold_id LIMIT ?", [*params, limit])
        return [{**dict(r), "categories": json.loads(r["categories"])} for r in rows]

    def list_handoffs(
        self,
        queue: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Handoffs newest first, with their packages."""
        where, params = [], []
        for column, value in (("queue", queue), ("status", status), ("customer_id", customer_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM handoffs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY opened_at DESC, handoff_id LIMIT ?", [*params, limit])
        return [{**dict(r), "package": json.loads(r["package"])} for r in rows]

    def get_handoff(self, handoff_id: str) -> dict[str, Any] | None:
        found = self.list_handoffs_by_id([handoff_id])
        return found[0] if found else None

    def list_handoffs_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        rows = self._where_in("SELECT * FROM handoffs WHERE handoff_id IN ({marks})", ids)
        return [{**dict(r), "package": json.loads(r["package"])} for r in rows]

    def quarantine(self, items: Sequence[QuarantineItem]) -> None:
        if not items:
            return
        with self._tx() as db:
            db.executemany(_INSERT_QUARANTINE, _quarantine_rows(items))

    # -- read side ------------------------------------------------------------------------
    def get_state(self, customer_id: str) -> CustomerState | None:
        return self.load_states([customer_id]).get(customer_id)

    def get_setting(self, key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_setting(self, key: str, value: dict[str, Any], at: datetime) -> None:
        text = json.dumps(value)
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings VALUES (?,?,?) ON CONFLICT (key) DO UPDATE "
                "SET value=excluded.value, updated_at=excluded.updated_at",
                (key, text, _ts(at)),
            )
            db.execute(
                "INSERT INTO settings_log (key, value, at) VALUES (?,?,?)", (key, text, _ts(at))
            )

    def setting_history(self, key: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT value, at FROM settings_log WHERE key = ? ORDER BY id DESC LIMIT ?",
            (key, limit),
        )
        return [{"at": r["at"], **json.loads(r["value"])} for r in rows]

    def get_account(self, account_id: str) -> AccountState | None:
        return self.load_accounts([account_id]).get(account_id)

    def list_account_customers(
        self, account_id: str, limit: int = 100
    ) -> tuple[int, list[dict[str, Any]]]:
        count = self._query("SELECT count(*) FROM customers WHERE account_id = ?", (account_id,))
        rows = self._query(
            "SELECT customer_id, updated_at FROM customers WHERE account_id = ? "
            "ORDER BY updated_at DESC LIMIT ?",
            (account_id, limit),
        )
        return int(count[0][0]), [dict(r) for r in rows]

    def _log(
        self,
        table: str,
        key: str,
        json_columns: tuple[str, ...],
        customer_id: str | None,
        since: datetime | None,
        limit: int,
        latest: bool = False,
        equal: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of an append-only log (decisions, outcomes), oldest first; ``latest``: the
        last ``limit`` rows (still oldest first); ``equal``: column = value filters (the
        column names come from code, never from a request)."""
        where, params = [], []
        for column, value in {"customer_id": customer_id, **(equal or {})}.items():
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(_ts(since))
        sql = f"SELECT * FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "DESC" if latest else "ASC"
        sql += f" ORDER BY at {order}, {key} {order} LIMIT ?"
        rows = self._query(sql, [*params, limit])
        if latest:
            rows.reverse()
        return [{**dict(r), **{c: json.loads(r[c]) for c in json_columns}} for r in rows]

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
        columns = _DECISION_JSON
        rows = self._log(
            "decisions", "decision_id", columns, customer_id, since, limit, latest, equal
        )
        for r in rows:
            r["holdout"], r["review"] = bool(r["holdout"]), bool(r["review"])
        return rows

    def list_reviews(
        self,
        status: str | None = "pending",
        rule_id: str | None = None,
        limit: int = 100,
        decision_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The review queue, oldest first, each with its decision."""
        where, params = [], []
        filters = (("r.status", status), ("r.rule_id", rule_id), ("r.decision_id", decision_id))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = (
            "SELECT r.*, d.params, d.reasons, d.factors, d.matched, d.lost, d.policy_version "
            "FROM reviews r JOIN decisions d ON d.decision_id = r.decision_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY r.at, r.decision_id LIMIT ?", [*params, limit])
        out = []
        for r in rows:
            row = dict(r)
            for c in ("params", "reasons", "factors", "matched", "lost"):
                row[c] = json.loads(row[c])
            row["edited"] = json.loads(row["edited"]) if row["edited"] else None
            out.append(row)
        return out

    def get_review(self, decision_id: str) -> dict[str, Any] | None:
        found = self.list_reviews(None, limit=1, decision_id=decision_id)
        return found[0] if found else None

    def shadow_log(
        self, since: datetime | None = None, limit: int = 100_000
    ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
        """(customer, live decisions, shadow decisions) per shadowed event, oldest first."""
        rows = self._query(
            "SELECT event_id, customer_id, decisions FROM shadow_events WHERE at >= ? "
            "ORDER BY at, event_id LIMIT ?",
            (_ts(since) if since else "", limit),
        )
        live: dict[str, list[dict[str, Any]]] = {}
        for r in self._where_in(
            "SELECT * FROM decisions WHERE event_id IN ({marks})", [r["event_id"] for r in rows]
        ):
            live.setdefault(r["event_id"], []).append(_decision_row(r))
        return [
            (r["customer_id"], live.get(r["event_id"], []), json.loads(r["decisions"]))
            for r in rows
        ]

    def event_payloads(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The recorded events as they were accepted, in event-time order (for replaying
        them, e.g. ``tactful tune``)."""
        rows = self._query(
            "SELECT payload FROM events WHERE ts >= ? AND ts < ? ORDER BY ts, event_id",
            (_ts(since) if since else "", _ts(until) if until else "9999"),
        )
        return [json.loads(r[0]) for r in rows]

    def event_signals(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """(event type, its signals) for the events in [since, until), for drift."""
        rows = self._query(
            "SELECT type, signals FROM events WHERE ts >= ? AND ts < ? AND late = 0",
            (_ts(since), _ts(until)),
        )
        return [(r[0], json.loads(r[1])) for r in rows]

    # -- a customer's data: export and erase -----------------------------------------------
    # Every table that holds a customer's rows, by its customer column.
    _CUSTOMER_TABLES = (
        "events",
        "customers",
        "decisions",
        "outcomes",
        "outbox",
        "quarantine",
        "shadow_events",
        "holds",
        "handoffs",
        "reviews",
    )

    def export_customer(self, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the customer, by table (JSON columns decoded)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for table in self._CUSTOMER_TABLES:
            rows = self._query(f"SELECT * FROM {table} WHERE customer_id = ?", (customer_id,))
            decoded = []
            for r in rows:
                row = dict(r)
                for k, v in row.items():
                    if isinstance(v, str) and v[:1] in "[{":
                        with contextlib.suppress(ValueError):
                            row[k] = json.loads(v)
                decoded.append(row)
            out[table] = decoded
        return out

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        """Remove the customer from every table, from the accounts' lists of members at
        risk and from notification groups' memory, in one transaction. Returns the rows
        removed (or changed) per table."""
        removed: dict[str, int] = {}
        with self._tx() as db:
            for table in self._CUSTOMER_TABLES:
                n = db.execute(f"DELETE FROM {table} WHERE customer_id = ?", (customer_id,))
                removed[table] = n.rowcount
            # rejected events too broken to say whose they were, that name the customer
            # as JSON writes it: escaped (json.dumps) or not (pydantic, most senders)
            needles = (json.dumps(customer_id), json.dumps(customer_id, ensure_ascii=False))
            n = db.execute(
                "DELETE FROM quarantine WHERE customer_id IS NULL "
                "AND (instr(raw, ?) > 0 OR instr(raw, ?) > 0)",
                needles,
            )
            removed["quarantine"] += n.rowcount
            changed = 0
            for aid, state in db.execute(
                "SELECT account_id, state FROM accounts WHERE instr(state, ?) > 0 "
                "OR instr(state, ?) > 0",
                needles,
            ).fetchall():
                account = AccountState.model_validate_json(state)
                kept = [m for m in account.at_risk if m.customer_id != customer_id]
                if len(kept) != len(account.at_risk):
                    db.execute(
                        "UPDATE accounts SET state = ? WHERE account_id = ?",
                        (_dump(account.model_copy(update={"at_risk": kept})), aid),
                    )
                    changed += 1
            removed["accounts (members at risk)"] = changed
            groups = 0
            for key, state in db.execute(
                "SELECT group_key, state FROM notify_groups WHERE instr(group_key, ?) > 0 "
                "OR instr(state, ?) > 0 OR instr(state, ?) > 0",
                (customer_id, customer_id, needles[0][1:-1]),
            ).fetchall():
                if (
                    f"customer:{customer_id}" in key.split("|")[-1]
                    or f"customer={customer_id}" in key
                ):
                    db.execute("DELETE FROM notify_groups WHERE group_key = ?", (key,))
                else:
                    memory = json.loads(state)
                    memory["sent"] = {
                        k: v
                        for k, v in memory["sent"].items()
                        if not k.startswith(f"{customer_id}/")
                    }
                    db.execute(
                        "UPDATE notify_groups SET state = ? WHERE group_key = ?",
                        (json.dumps(memory), key),
                    )
                groups += 1
            removed["notify_groups"] = groups
        return removed

    def forget_text(self, before: datetime, fields: Sequence[str]) -> dict[str, int]:
        """Retention: remove free text older than ``before`` (events' text fields, the
        latest messages kept in states, quotes in handoff packages, quarantined raw
        bodies); scores, signals and decisions stay. Returns rows changed per table."""
        cut = _ts(before)
        paths = ", ".join(f"'$.{f}'" for f in fields)
        present = " OR ".join(f"json_type(payload, '$.{f}') IS NOT NULL" for f in fields)
        changed: dict[str, int] = {}
        with self._tx() as db:
            if fields:
                changed["events"] = db.execute(
                    f"UPDATE events SET payload = json_remove(payload, {paths}) "
                    f"WHERE ts < ? AND ({present})",
                    (cut,),
                ).rowcount
            changed["customers"] = db.execute(
                "UPDATE customers SET state = json_remove(state, '$.recent_messages') "
                "WHERE updated_at < ? AND json_type(state, '$.recent_messages') IS NOT NULL",
                (cut,),
            ).rowcount
            changed["handoffs"] = db.execute(
                "UPDATE handoffs SET package = json_remove(package, '$.quotes') "
                "WHERE opened_at < ? AND json_type(package, '$.quotes') IS NOT NULL",
                (cut,),
            ).rowcount
            changed["outbox"] = db.execute(
                "UPDATE outbox SET payload = json_remove(payload, '$.quotes') "
                "WHERE created_at < ? AND json_type(payload, '$.quotes') IS NOT NULL",
                (cut,),
            ).rowcount
            changed["quarantine"] = db.execute(
                "UPDATE quarantine SET raw = '[expired: past the retention period]' "
                "WHERE received_at < ? AND raw != '[expired: past the retention period]'",
                (cut,),
            ).rowcount
        return changed

    # -- API keys ---------------------------------------------------------------------------
    def add_key(self, key: ApiKey) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                frozenset(json.loads(r["scopes"])),
                r["secret_hash"],
                datetime.fromisoformat(r["created_at"]),
                datetime.fromisoformat(r["revoked_at"]) if r["revoked_at"] else None,
                datetime.fromisoformat(r["expires_at"]) if r["expires_at"] else None,
                r["rps"],
                r["max_body"],
                r["max_batch"],
            )
            for r in self._query("SELECT * FROM api_keys ORDER BY created_at, key_id")
        ]

    def end_key(self, key_id: str, at: datetime, revoke: bool = True) -> bool:
        """Revoke a key now (``revoke``), or let it lapse at ``at`` (a rotation's grace)."""
        column = "revoked_at" if revoke else "expires_at"
        with self._tx() as db:
            done = db.execute(
                f"UPDATE api_keys SET {column} = ? WHERE key_id = ? AND revoked_at IS NULL",
                (_ts(at), key_id),
            )
            return done.rowcount == 1

    def get_outcome(self, outcome_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM outcomes WHERE outcome_id = ?", (outcome_id,))
        return {**dict(rows[0]), "detail": json.loads(rows[0]["detail"])} if rows else None

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        """Outcomes reported from outside; one already recorded (same id) is left as it
        is. Returns how many were new."""
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO outcomes VALUES (?,?,?,?,?,?,?,?)", _outcome_rows(outcomes)
            )
            return db.total_changes - before

    def metric_rows(self, since: datetime | None, until: datetime | None) -> MetricRows:
        """What the metrics summary reads, for events and decisions in [since, until) and
        outcomes up to 72 h after (a repeat contact is judged after the fact)."""
        lo = _ts(since) if since else ""
        hi = _ts(until) if until else "9999"
        later = _ts(until + timedelta(hours=72)) if until else "9999"
        decisions = [
            _decision_row(r)
            for r in self._query(
                "SELECT * FROM decisions WHERE at >= ? AND at < ? ORDER BY at", (lo, hi)
            )
        ]
        outcomes = [
            {**dict(r), "detail": json.loads(r["detail"])}
            for r in self._query(
                "SELECT * FROM outcomes WHERE at >= ? AND at < ? ORDER BY at", (lo, later)
            )
        ]
        events = [
            (r["customer_id"], r["type"], r["ts"], json.loads(r["signals"]))
            for r in self._query(
                "SELECT customer_id, type, ts, signals FROM events WHERE ts >= ? AND ts < ? "
                "AND late = 0 ORDER BY ts",
                (lo, hi),
            )
        ]
        handoffs = [
            {**dict(r), "package": json.loads(r["package"])}
            for r in self._query(
                "SELECT * FROM handoffs WHERE opened_at >= ? AND opened_at < ?", (lo, hi)
            )
        ]
        holds = [
            dict(r)
            for r in self._query(
                "SELECT * FROM holds WHERE (starts_at >= ? AND starts_at < ?) "
                "OR (released_at >= ? AND released_at < ?)",
                (lo, hi, lo, hi),
            )
        ]
        return MetricRows(decisions, outcomes, events, handoffs, holds)

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM decisions WHERE decision_id = ?", (decision_id,))
        return _decision_row(rows[0]) if rows else None

    def decisions_for_event(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM decisions WHERE event_id = ? ORDER BY rowid", (event_id,))
        return [_decision_row(r) for r in rows]

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT event_id, customer_id, type, ts, received_at, payload, signals, late "
            "FROM events WHERE event_id = ?",
            (event_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return {
            **{k: r[k] for k in ("event_id", "customer_id", "type", "ts", "received_at")},
            "event": json.loads(r["payload"]),
            "signals": json.loads(r["signals"]),
            "late": bool(r["late"]),
        }

    def list_outcomes(
        self, customer_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._log("outcomes", "outcome_id", ("detail",), customer_id, since, limit)

    def list_events(self, customer_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT event_id, type, ts, payload, signals, late FROM events WHERE customer_id = ? "
            "ORDER BY ts, event_id LIMIT ?",
            (customer_id, limit),
        )
        return [
            {
                "event_id": r["event_id"],
                "type": r["type"],
                "timestamp": r["ts"],
                "event": json.loads(r["payload"]),
                "signals": json.loads(r["signals"]),
                "late": bool(r["late"]),
            }
            for r in rows
        ]

    def list_quarantine(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT * FROM quarantine ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [{**dict(r), "reason": json.loads(r["reason"])} for r in rows]

    def stats(self) -> StoreStats:
        row = self._query(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM customers), "
            "(SELECT count(*) FROM decisions), (SELECT count(*) FROM quarantine), "
            "(SELECT count(*) FROM outbox WHERE status = 'pending'), "
            "(SELECT count(*) FROM outbox WHERE status = 'dead')"
        )[0]
        return StoreStats(*row)

    # -- outbox ---------------------------------------------------------------------------
    def pending_actions(
        self,
        now: datetime,
        limit: int = 100,
        channel: str | None = None,
        exclude: Sequence[str] = (),
        lease: timedelta | None = None,
    ) -> list[OutboxRow]:
        where, params = "", [_ts(now)]
        if channel is not None:
            where, params = " AND channel = ?", [*params, channel]
        if exclude:
            where += f" AND channel NOT IN ({','.join('?' * len(exclude))})"
            params.extend(exclude)
        select = (
            "SELECT action_id, idempotency_key, customer_id, channel, kind, payload, attempts, "
            "created_at, batch_id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            f"{where} ORDER BY next_attempt_at, rowid LIMIT ?"  # the outbox_due index's order
        )
        if lease is None:
            rows = self._query(select, [*params, limit])
        else:  # one writer at a time: the select and the claim in one transaction suffice
            with self._tx() as db:
                cur = db.execute(select, [*params, limit])
                cur.row_factory = sqlite3.Row
                rows = cur.fetchall()
                db.executemany(
                    "UPDATE outbox SET next_attempt_at = ? WHERE action_id = ?",
                    [(_ts(now + lease), r["action_id"]) for r in rows],
                )
        return [
            OutboxRow(
                action_id=r["action_id"],
                idempotency_key=r["idempotency_key"],
                customer_id=r["customer_id"],
                channel=r["channel"],
                kind=r["kind"],
                payload=json.loads(r["payload"]),
                attempts=r["attempts"],
                created_at=datetime.fromisoformat(r["created_at"]),
                batch_id=r["batch_id"],
            )
            for r in rows
        ]

    def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE outbox SET status='delivered', delivered_at=?, attempts=attempts+1 "
                "WHERE action_id=? AND status='pending'",
                [(_ts(at), a) for a in action_ids],
            )

    def mark_failed(
        self, action_id: str, error: str, next_attempt_at: datetime, dead: bool
    ) -> None:
        self.mark_failed_many([(action_id, error, next_attempt_at, dead)])

    def mark_failed_many(self, failures: Sequence[tuple[str, str, datetime, bool]]) -> None:
        """(action_id, error, next attempt, dead) for each, in one transaction."""
        with self._tx() as db:
            db.executemany(
                "UPDATE outbox SET status=?, attempts=attempts+1, last_error=?, "
                "next_attempt_at=? WHERE action_id=? AND status='pending'",
                [
                    ("dead" if dead else "pending", error[:2_000], _ts(at), action_id)
                    for action_id, error, at, dead in failures
                ],
            )

    def requeue_actions(self, action_ids: Sequence[str] | None, now: datetime) -> list[str]:
        """Dead actions (these, or all with None) back to pending, due now, attempts 0."""
        return self._set_status(
            action_ids,
            "status = 'dead'",
            "status='pending', attempts=0, next_attempt_at=?",
            [_ts(now)],
        )

    def drop_actions(self, action_ids: Sequence[str] | None, reason: str) -> list[str]:
        """Pending or dead actions (these, or all dead with None) to 'dropped', with why."""
        where = "status IN ('pending', 'dead')" if action_ids is not None else "status = 'dead'"
        return self._set_status(
            action_ids, where, "status='dropped', last_error=?", [reason[:2_000]]
        )

    def _set_status(
        self, action_ids: Sequence[str] | None, where: str, update: str, values: list[Any]
    ) -> list[str]:
        with self._tx() as db:
            if action_ids is None:
                ids = [r[0] for r in db.execute(f"SELECT action_id FROM outbox WHERE {where}")]
            else:
                ids = []
                for a in action_ids:
                    found = db.execute(
                        f"SELECT 1 FROM outbox WHERE action_id = ? AND {where}", (a,)
                    ).fetchone()
                    if found:
                        ids.append(a)
            db.executemany(
                f"UPDATE outbox SET {update} WHERE action_id = ?", [(*values, a) for a in ids]
            )
        return ids

    def list_outbox(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT * FROM outbox"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY created_at, action_id LIMIT ?"
        rows = self._query(sql, [*params, limit])
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

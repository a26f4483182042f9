"""Remember, durable: the interface every store backend implements.

The engine loads state, calls the pure core, and hands the results to :meth:`Store.commit`,
which writes events, states, decisions and outbox rows in ONE transaction: either all of a
batch's effects are durable or none are. ``tests/test_store.py`` is the conformance suite
a backend must pass (SQLite now; PostgreSQL in the scale-out shape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tactful.state.account import AccountState
from tactful.state.customer import AccountContext, CustomerState

if TYPE_CHECKING:  # the store writes what the core produced; the core never needs the store
    from tactful.access import ApiKey
    from tactful.actions.lifecycle import Change
    from tactful.learn.outcomes import Outcome
    from tactful.runtime.pipeline import Processed

__all__ = [
    "MAX_QUARANTINE_BYTES",
    "MetricRows",
    "OutboxRow",
    "QuarantineItem",
    "Store",
    "StoreStats",
    "StoreUnavailable",
]

# Raw payloads kept in quarantine are capped: enough to debug, not a disk-filling vector.
MAX_QUARANTINE_BYTES = 64 * 1024

Durability = Literal["full", "normal"]


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    received_at: datetime
    source: str  # "api", "replay:<file>", ...
    reason: list[dict[str, Any]]  # [{field, value, why}]
    raw: str
    event_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    action_id: str
    idempotency_key: str
    customer_id: str
    channel: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    # notifications batched into one message share it (see actions/grouping.py)
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetricRows:
    """The rows the metrics summary is computed from (see learn/summary.py)."""

    decisions: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    events: list[tuple[str, str, str, list[dict[str, Any]]]]  # customer, type, ts, signals
    handoffs: list[dict[str, Any]]
    holds: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class StoreStats:
    events: int
    customers: int
    decisions: int
    quarantined: int
    outbox_pending: int
    outbox_dead: int


class Store(Protocol):
    # Several processes may write this store at once (PostgreSQL: API processes, workers,
    # dispatchers); SQLite's is written by one process.
    shared: bool

    def close(self) -> None: ...

    # -- ingest ---------------------------------------------------------------------------
    def seen_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """The subset of ``event_ids`` already processed (ingest is idempotent on them)."""
        ...

    def load_states(self, customer_ids: Sequence[str]) -> dict[str, CustomerState]: ...

    def load_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountState]: ...

    def save_account_contexts(
        self, contexts: Mapping[str, AccountContext], updated_at: datetime
    ) -> None:
        """Set accounts' context (tier, value, owner ...) from an accounts file, keeping
        their aggregates; customers pick it up with their next event."""
        ...

    def commit(
        self,
        batch: Sequence[Processed],
        received_at: datetime,
        rejected: Sequence[QuarantineItem] = (),
    ) -> None:
        """Write every effect of ``batch``, and the batch's ``rejected`` events to the
        quarantine, in one transaction.

        Raises :class:`DuplicateEventError` (and writes nothing) if any event id in the
        batch was already committed.
        """
        ...

    def quarantine(self, items: Sequence[QuarantineItem]) -> None: ...

    @property
    def schema_version(self) -> int:
        """The schema version the store is at (``tactful migrate`` prints it)."""
        ...

    # -- read side ------------------------------------------------------------------------
    def get_state(self, customer_id: str) -> CustomerState | None: ...

    def get_account(self, account_id: str) -> AccountState | None: ...

    # -- switches a person flips (incident mode) ---------------------------------------------
    def get_setting(self, key: str) -> dict[str, Any] | None: ...

    def set_setting(self, key: str, value: dict[str, Any], at: datetime) -> None:
        """Set ``key`` and append the change to its history, in one transaction."""
        ...

    def setting_history(self, key: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest changes of ``key``, newest first."""
        ...

    def list_account_customers(
        self, account_id: str, limit: int = 100
    ) -> tuple[int, list[dict[str, Any]]]:
        """How many customers the account has, and the ``limit`` most recently updated."""
        ...

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
        """Oldest first; ``latest``: the last ``limit`` decisions. The other arguments
        filter: only decisions of that policy version, rule or kind."""
        ...

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """One decision as the audit log holds it (with matched and lost rules)."""
        ...

    def decisions_for_event(self, event_id: str) -> list[dict[str, Any]]: ...

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """A processed event: its payload, signals, and whether it arrived too late."""
        ...

    def list_outcomes(
        self, customer_id: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def list_events(self, customer_id: str, limit: int = 100) -> list[dict[str, Any]]: ...

    def list_quarantine(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]: ...

    def stats(self) -> StoreStats: ...

    # -- outbox ---------------------------------------------------------------------------
    def pending_actions(
        self,
        now: datetime,
        limit: int = 100,
        channel: str | None = None,
        exclude: Sequence[str] = (),
        lease: timedelta | None = None,
    ) -> list[OutboxRow]:
        """Due rows, oldest first: of one channel, and/or not of the ``exclude``d ones.

        With a ``lease``, the rows are claimed: they are not due again until ``now +
        lease`` (marking them delivered or failed ends the claim), so several dispatchers
        on one store never deliver the same row at once, and a row whose dispatcher died
        is delivered by another after the lease (same idempotency key)."""
        ...

    def mark_delivered(self, action_ids: Sequence[str], at: datetime) -> None: ...

    def mark_failed(
        self, action_id: str, error: str, next_attempt_at: datetime, dead: bool
    ) -> None: ...

    def commit_changes(self, changes: Sequence[Change], at: datetime) -> None:
        """What people and the clock did to customers, in one transaction: states, audit
        log, outbox, outcomes, and the holds/handoffs lists."""
        ...

    def active_holds(self, limit: int = 500, after: str = "") -> list[tuple[str, str]]:
        """(hold_id, customer_id) of unreleased holds, ordered by id, after ``after``."""
        ...

    def list_holds(
        self, customer_id: str | None = None, active_at: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def list_handoffs(
        self,
        queue: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    def get_handoff(self, handoff_id: str) -> dict[str, Any] | None: ...

    def get_outcome(self, outcome_id: str) -> dict[str, Any] | None: ...

    def export_customer(self, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row about the customer, by table."""
        ...

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        """Remove the customer everywhere; rows removed or changed per table."""
        ...

    def forget_text(self, before: datetime, fields: Sequence[str]) -> dict[str, int]:
        """Retention: free text older than ``before`` removed; rows changed per table."""
        ...

    def add_key(self, key: ApiKey) -> None: ...

    def list_keys(self) -> list[ApiKey]: ...

    def end_key(self, key_id: str, at: datetime, revoke: bool = True) -> bool:
        """Revoke a key now, or (``revoke=False``) let it lapse at ``at``."""
        ...

    def event_signals(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, list[dict[str, Any]]]]: ...

    def event_payloads(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]: ...

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> int:
        """Outcomes reported from outside (idempotent on the id); how many were new."""
        ...

    def metric_rows(self, since: datetime | None, until: datetime | None) -> MetricRows: ...

    def list_reviews(
        self,
        status: str | None = "pending",
        rule_id: str | None = None,
        limit: int = 100,
        decision_id: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def get_review(self, decision_id: str) -> dict[str, Any] | None: ...

    def requeue_actions(self, action_ids: Sequence[str] | None, now: datetime) -> list[str]:
        """Dead actions (these, or all with None) back to pending, due now; their ids."""
        ...

    def drop_actions(self, action_ids: Sequence[str] | None, reason: str) -> list[str]:
        """Pending or dead actions (these; all dead with None) to 'dropped'; their ids."""
        ...

    def mark_failed_many(self, failures: Sequence[tuple[str, str, datetime, bool]]) -> None:
        """(action_id, error, next attempt, dead) for each, in one transaction."""
        ...

    def list_outbox(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def shadow_log(
        self, since: datetime | None = None, limit: int = 100_000
    ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
        """(customer, live decisions, shadow decisions) per shadowed event, oldest first."""
        ...


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or used (unreachable after retries, a schema newer than
    this code): the message says which store and why, without its password."""


class DuplicateEventError(RuntimeError):
    def __init__(self, event_ids: Sequence[str]) -> None:
        self.event_ids = list(event_ids)
        super().__init__(f"already committed: {', '.join(self.event_ids[:5])}")

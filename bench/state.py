"""tactful state benchmark: the "remember" layer at scale, against its load/write floor.

N customers (default 1,000,000), each with a realistic event history (default ~8 events on
average, skewed: most customers have a few, some have dozens), are run through
``detect`` + ``remember`` chunk by chunk (default 5,000 customers a chunk), and each
chunk's final states are written to SQLite in one transaction, serialised as the store
serialises them (``model_dump_json(exclude_defaults=True)`` into its ``customers`` table,
with its upsert). Memory holds one customer's events and state at a time, plus the chunk's
serialised rows, so the worker's RSS should stay flat however many customers there are.

* **State size.** Bytes of stored state JSON per customer (target <= 2 KB), its p99, the
  database file per customer, and which fields the bytes go to (on a sample).
* **RSS.** The worker's resident set after imports and warm-up, at every tenth of the run,
  and at the end; flat means within 10 MB over the second half. (The first few thousand
  customers fill the lexical tier's token cache, 4,096 texts of at most 2,000 chars.)
* **Update cost.** ``detect`` + ``remember`` per event, in microseconds: only those two
  calls are timed (event generation and the SQLite writes are not). Messages are scored by
  the lexical text tier (``detect(..., text=None)``), not the learned model.
* **Floor.** In the same run, interleaved with it (at every tenth), the bare round trip per
  event on customers already written: ``SELECT`` the state row by customer id,
  ``CustomerState.model_validate_json``, serialise it again and upsert it back, in
  transactions of 1,000 events (the engine's batch size).

Events: page views (including /docs and /pricing, with dwell), clicks (with occasional
rage bursts), API errors (streaks when the customer is having a bad time) and command runs,
customer messages (chat lines and longer emails, support-style text), agent replies, bot
turns, searches, occasional tickets, failed payments, feedback, and an ``identify`` for the
few percent of customers with an account. Event ids are UUIDs, timestamps are tz-aware at
millisecond precision, spread over days, and about 3% of events arrive after the next one
when it is within 10 minutes (well inside the allowed lateness). The wording of messages,
pages, elements and the like is shared with bench/throughput.py.

Last line of output: one JSON object::

    {"state_bytes_per_customer", "rss_start_mb", "rss_end_mb", "update_us", "floor_us", ...}

Usage: ``python bench/state.py [--customers N] [--events-per-customer K] [--chunk C]
[--floor-events N] [--db PATH] [--keep] [--seed S]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]  # no stubs in the dev extras

from benchkit import machine
from tactful.detect import detect
from tactful.detect.text import _cached_words
from tactful.events import (
    ApiError,
    BotTurn,
    Click,
    CommandRun,
    Event,
    Feedback,
    Identify,
    Message,
    PageView,
    PaymentFailed,
    Search,
    TicketClosed,
    TicketOpened,
)
from tactful.state.customer import CustomerState, is_too_late, remember
from tactful.state.store import SQLiteStore
from tactful.state.store.sqlite import UPSERT_CUSTOMER as UPSERT  # the store's own upsert
from tactful.state.store.sqlite import _dump  # and serialisation
from throughput import (
    AGENT_TEXTS,
    BOT_TEXTS,
    COMMANDS,
    ELEMENTS,
    ENDPOINTS,
    MOODS,
    OWNERS,
    PAGES,
    QUERIES,
    STEPS,
    SUBJECTS,
    TIERS,
    message_text,
)

TARGET_STATE_BYTES = 2_048
FLOOR_BATCH = 1_000  # events per transaction in the floor (the engine's batch size)
# RSS growth over the second half of the run that still counts as flat. The first half may
# grow: the lexical tier's token cache (4,096 texts) fills over the first few thousand
# customers, then stays.
FLAT_MB = 10.0
CHECKPOINTS = 10  # progress lines, RSS samples and floor slices: every tenth of the run
START = datetime(2026, 1, 5, tzinfo=UTC)
FIRST_SEEN_SPREAD_S = 120 * 86_400  # customers first appear over ~4 months
ACCOUNT_SHARE = 0.04  # customers that belong to an account (and send an identify)
OUT_OF_ORDER = 0.03  # events delivered after the next one, if it is close in event time
OUT_OF_ORDER_WITHIN = timedelta(minutes=10)  # well inside the default lateness (1 h)
UPDATED_AT = "2026-06-01T00:00:00.000000+00:00"
SELECT = "SELECT state FROM customers WHERE customer_id = ?"

# Share of events by kind (percent); bursts (rage clicks, error streaks) add to these.
KINDS: dict[str, float] = {
    "page_view": 27.0,
    "click": 16.0,
    "message": 18.0,
    "api_error": 7.0,
    "command_run": 6.0,
    "bot_turn": 6.0,
    "search": 5.0,
    "agent_message": 5.0,
    "ticket_opened": 1.5,
    "ticket_closed": 3.0,  # a ticket_opened when the customer has none open
    "payment_failed": 1.5,
    "feedback": 1.5,
    "identify": 1.0,
}
TROUBLED = frozenset({"frustrated", "urgent", "churn", "human"})
GREETINGS = ["Hi,", "Hello team,", "Hi there,", "Good morning,", "Dear support,"]
SIGNOFFS = [
    "Best regards,\nJamie Rivera\nOperations Lead, Northwind Traders\n+1 415 555 0134",
    "Thanks,\nAlex\n\nSent from my iPhone",
    "Kind regards,\nPriya Natarajan | Finance | Contoso Ltd.",
    "Cheers,\nSam",
    "Regards,\nM. Keller\nIT Administrator\nThis e-mail may contain confidential information.",
]


def source_revision() -> str:
    """The tactful checkout this run measures (git describe), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if proc.returncode == 0:
            return proc.stdout.strip()
    return "unknown"


def _customer_id(i: int) -> str:
    return f"cust-{i:07d}"


@dataclass
class HistoryGen:
    """One customer's event history: sessions spread over days, a mood per session."""

    rng: random.Random
    mean_events: float
    _moods: list[str] = field(init=False)
    _mood_w: list[float] = field(init=False)
    _kinds: list[str] = field(init=False)
    _kind_w: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._moods, self._mood_w = list(MOODS), list(MOODS.values())
        self._kinds, self._kind_w = list(KINDS), list(KINDS.values())

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _text(self, mood: str, channel: str) -> str:
        rng = self.rng
        body = message_text(rng, mood)
        if rng.random() < 0.3:  # an order or invoice number: most real texts are unique
            body += f" Ref {rng.choice(['order', 'invoice', 'case'])} #{rng.randint(10**5, 10**7)}."
        if channel != "email":
            return body
        extra = [message_text(rng, rng.choice([mood, mood, "neutral", "polite"])) for _ in range(2)]
        more = " ".join(extra[: rng.randint(0, 2)])
        parts = [rng.choice(GREETINGS), body, more, rng.choice(SIGNOFFS)]
        return "\n\n".join(p for p in parts if p)

    def history(self, index: int) -> list[Event]:
        """The customer's events in delivery order (event time, but for a few swaps)."""
        rng = self.rng
        cid = _customer_id(index)
        account = f"acct-{index // 7:06d}" if rng.random() < ACCOUNT_SHARE else None
        mean = max(self.mean_events - 0.5, 0.5)  # 1 + int(expovariate) has ~mean + 0.5
        n = min(1 + int(rng.expovariate(1 / mean)), int(12 * self.mean_events) + 1)
        t = FIRST_SEEN_SPREAD_S * rng.random()
        mood = rng.choices(self._moods, self._mood_w)[0]
        open_tickets: list[str] = []
        out: list[Event] = []
        kind = ""

        def base(extra_s: float = 0.0) -> dict[str, Any]:
            at = START + timedelta(milliseconds=int((t + extra_s) * 1000))
            ev: dict[str, Any] = {"event_id": self._uuid(), "customer_id": cid, "timestamp": at}
            if account is not None and rng.random() < 0.2:
                ev["account_id"] = account
            return ev

        if account is not None:
            tier, value = rng.choice(TIERS)
            traits: dict[str, str | int | float | bool | None] = {
                "tier": tier,
                "value": value,
                "lifecycle": rng.choice(["trial", "active", "active", "at_risk"]),
                "tenure_days": rng.randint(1, 1_500),
            }
            if tier == "enterprise":
                traits["owner"] = rng.choice(OWNERS)
            out.append(Identify(type="identify", traits=traits, **base() | {"account_id": account}))
        while len(out) < n:
            if rng.random() < 0.3:
                mood = rng.choices(self._moods, self._mood_w)[0]
            troubled = mood in TROUBLED
            session = min(n - len(out), 1 + int(rng.expovariate(1 / 4.5)))
            conversation = f"conv-{self._uuid()[:13]}" if rng.random() < 0.9 else None
            element, step = rng.choice(ELEMENTS), rng.choice(STEPS)
            endpoint = rng.choice(ENDPOINTS)
            end = len(out) + session
            while len(out) < end:
                previous, kind = kind, rng.choices(self._kinds, self._kind_w)[0]
                if previous == "page_view" and out and isinstance(out[-1], PageView):
                    docs = out[-1].path.startswith("/docs")
                    t += rng.uniform(300, 900) if docs and rng.random() < 0.25 else 0.0
                t += rng.uniform(10, 120) if kind.endswith("message") else rng.uniform(1, 45)
                if kind == "page_view":
                    path, title = rng.choice(PAGES)
                    docs = path.startswith("/docs")
                    ev = base()
                    if docs and rng.random() < 0.3:
                        ev["duration_s"] = round(rng.uniform(20, 900), 1)
                    out.append(
                        PageView(
                            type="page_view",
                            path=path,
                            title=title,
                            category="docs" if docs else None,
                            **ev,
                        )
                    )
                elif kind == "click":
                    burst = rng.randint(3, 5) if rng.random() < (0.3 if troubled else 0.06) else 1
                    target = element if burst > 1 else rng.choice(ELEMENTS)
                    xy = (
                        {"x": float(rng.randint(0, 1440)), "y": float(rng.randint(0, 900))}
                        if rng.random() < 0.3
                        else {}
                    )
                    for k in range(min(burst, end - len(out))):
                        t += rng.uniform(0.2, 1.5) if k else 0.0
                        out.append(Click(type="click", element=target, **xy, **base()))
                elif kind == "api_error":
                    streak = rng.randint(2, 4) if troubled and rng.random() < 0.5 else 1
                    for k in range(min(streak, end - len(out))):
                        t += rng.uniform(2, 30) if k else 0.0
                        status = rng.choice([500, 502, 503] if troubled else [400, 401, 404, 429])
                        out.append(
                            ApiError(
                                type="api_error",
                                endpoint=endpoint,
                                status=status,
                                code="internal" if status >= 500 else "bad_request",
                                **base(),
                            )
                        )
                elif kind == "command_run":
                    ok = not (troubled and rng.random() < 0.3)
                    out.append(
                        CommandRun(
                            type="command_run", command=rng.choice(COMMANDS), ok=ok, **base()
                        )
                    )
                elif kind == "bot_turn":
                    outcome = (
                        rng.choice(["failed", "failed", "fallback"])
                        if troubled
                        else rng.choices(["success", "fallback", "handoff"], [85, 10, 5])[0]
                    )
                    out.append(
                        BotTurn(
                            type="bot_turn",
                            step_id=step,
                            outcome=outcome,
                            text=rng.choice(BOT_TEXTS),
                            **base(),
                        )
                    )
                elif kind == "search":
                    out.append(Search(type="search", query=rng.choice(QUERIES), **base()))
                elif kind == "message":
                    channel = rng.choices(["chat", "email", "sms", "social"], [66, 26, 5, 3])[0]
                    out.append(
                        Message(
                            type="message",
                            text=self._text(mood, channel),
                            channel=channel,
                            role="customer",
                            conversation_id=conversation,
                            **base(),
                        )
                    )
                elif kind == "agent_message":
                    out.append(
                        Message(
                            type="message",
                            text=rng.choice(AGENT_TEXTS),
                            role="agent",
                            conversation_id=conversation,
                            **base(),
                        )
                    )
                elif kind == "ticket_closed" and open_tickets:
                    resolution = rng.choices(
                        ["solved", "unsolved", "duplicate", "spam"], [75, 15, 7, 3]
                    )[0]
                    out.append(
                        TicketClosed(
                            type="ticket_closed",
                            ticket_id=open_tickets.pop(0),
                            resolution=resolution,
                            **base(),
                        )
                    )
                elif kind in ("ticket_opened", "ticket_closed"):
                    ticket = f"T-{rng.randint(10**6, 10**8)}"
                    open_tickets.append(ticket)
                    subject = rng.choice(SUBJECTS)
                    out.append(
                        TicketOpened(
                            type="ticket_opened", ticket_id=ticket, subject=subject, **base()
                        )
                    )
                elif kind == "payment_failed":
                    out.append(
                        PaymentFailed(
                            type="payment_failed",
                            amount=rng.choice([49.0, 59.0, 99.0, 480.0]),
                            currency=rng.choice(["USD", "EUR", "GBP"]),
                            reason=rng.choice(["card_declined", "insufficient_funds"]),
                            **base(),
                        )
                    )
                elif kind == "feedback":
                    rating = rng.randint(1, 2) if troubled else rng.randint(3, 5)
                    comment = rng.choice([None, "Smooth setup" if rating >= 4 else "Took too long"])
                    out.append(Feedback(type="feedback", rating=rating, comment=comment, **base()))
                else:  # identify: traits again (a plan change), for anyone
                    tier, value = rng.choice(TIERS)
                    traits = {"tier": tier, "value": value}
                    out.append(Identify(type="identify", traits=traits, **base()))
            t += 1_800 + rng.expovariate(1 / (1.5 * 86_400))  # the next session, hours or days on
        for i in range(len(out) - 1):  # a few events delivered after the one that follows
            if (
                rng.random() < OUT_OF_ORDER
                and out[i + 1].timestamp - out[i].timestamp <= OUT_OF_ORDER_WITHIN
            ):
                out[i], out[i + 1] = out[i + 1], out[i]
        return out


def run_history(customer_id: str, events: list[Event]) -> CustomerState:
    """One customer's events through detect + remember, as the pipeline runs them."""
    state = CustomerState(customer_id=customer_id)
    for event in events:
        if is_too_late(state, event):
            state = remember(state, event, [])
        else:
            state = remember(state, event, detect(event, state))
    return state


def floor_round_trips(db: sqlite3.Connection, ids: list[str]) -> float:
    """Seconds for the bare round trip on each id: load, parse, serialise, write back."""
    started = time.perf_counter()
    for i in range(0, len(ids), FLOOR_BATCH):
        db.execute("BEGIN IMMEDIATE")
        for cid in ids[i : i + FLOOR_BATCH]:
            (raw,) = db.execute(SELECT, (cid,)).fetchone()
            state = CustomerState.model_validate_json(raw)
            db.execute(UPSERT, (cid, state.account_id, _dump(state), UPDATED_AT))
        db.execute("COMMIT")
    return time.perf_counter() - started


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / (1024 * 1024)


def percentile_of_histogram(hist: array[int], total: int, p: float) -> int:
    """The smallest size with at least ``p`` of the customers at or below it."""
    need = p * total
    seen = 0
    for size, count in enumerate(hist):
        seen += count
        if count and seen >= need:
            return size
    return len(hist) - 1


@dataclass
class FieldSizes:
    """Bytes per top-level field of the stored JSON, on a sample of states."""

    states: int = 0
    total: int = 0
    bytes: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)

    def add(self, raw: str) -> None:
        self.states += 1
        self.total += len(raw.encode())
        for key, value in json.loads(raw).items():
            size = len(key) + 3 + len(json.dumps(value, separators=(",", ":")).encode())
            self.bytes[key] = self.bytes.get(key, 0) + size
            self.present[key] = self.present.get(key, 0) + 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--customers", type=int, default=1_000_000, help="customers to simulate")
    ap.add_argument(
        "--events-per-customer", type=float, default=8.0, help="mean events per customer"
    )
    ap.add_argument("--chunk", type=int, default=5_000, help="customers per chunk")
    ap.add_argument(
        "--floor-events", type=int, default=20_000, help="round trips in the floor sample"
    )
    ap.add_argument("--db", type=Path, help="SQLite file (default: in a temp dir, deleted)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    ap.add_argument("--seed", type=int, default=7, help="random seed for the histories")
    args = ap.parse_args(argv)
    if args.customers < 1 or args.chunk < 1:
        ap.error("--customers and --chunk must be positive")

    wall_started = time.perf_counter()
    print(machine())
    print(f"tactful {source_revision()}")
    print(
        f"state: {args.customers:,} customers, ~{args.events_per_customer:g} events each, "
        f"chunks of {args.chunk:,}; text tier: lexical (detect(..., text=None)); "
        f"floor: {args.floor_events:,} load/parse/serialise/write round trips"
    )
    tmp = Path(tempfile.mkdtemp(prefix="tactful-state-")) if args.db is None else None
    db_path: Path = args.db if args.db is not None else (tmp or Path(".")) / "state.db"
    if db_path.exists():
        raise SystemExit(f"{db_path} exists: give a new path (the run fills an empty store)")
    proc = psutil.Process()
    try:
        SQLiteStore(db_path, durability="normal").close()  # the store's schema and pragmas
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")

        gen = HistoryGen(random.Random(args.seed), args.events_per_customer)
        # Warm-up, untimed and unwritten: imports, regexes, pydantic's validators.
        warm = HistoryGen(random.Random(args.seed + 1), args.events_per_customer)
        for i in range(300):
            state = run_history(_customer_id(10**7 + i), warm.history(10**7 + i))
            CustomerState.model_validate_json(_dump(state))
        rss_start = rss_mb(proc)
        rss_max = rss_start
        print(f"RSS after imports and warm-up: {rss_start:.1f} MB")

        floor_rng = random.Random(args.seed + 2)
        hist = array("Q", [0] * 65_536)  # state sizes in bytes (exact up to 64 KB)
        fields = FieldSizes()
        sample_every = max(1, args.customers // 2_000)
        largest = ("", 0)
        events = state_bytes = 0
        update_s = gen_s = write_s = floor_s = 0.0
        floor_done = 0
        marks = [round(args.customers * k / CHECKPOINTS) for k in range(1, CHECKPOINTS + 1)]
        last_mark = (0, 0.0, time.perf_counter())  # events, update_s, wall clock
        rss_marks: list[float] = []
        check: list[CustomerState] = []
        print(
            f"{'customers':>11} {'events':>12} {'update µs/ev':>12} {'wall ev/s':>10} "
            f"{'floor µs/ev':>11} {'RSS MB':>8}"
        )
        done = 0
        while done < args.customers:
            size = min(args.chunk, args.customers - done)
            rows: list[tuple[str, str | None, str, str]] = []
            last_chunk = done + size == args.customers
            for index in range(done, done + size):
                # Only detect + remember are timed; a chunk keeps only its serialised rows.
                t0 = time.perf_counter()
                history = gen.history(index)
                t1 = time.perf_counter()
                state = run_history(_customer_id(index), history)
                t2 = time.perf_counter()
                raw = _dump(state)
                rows.append((state.customer_id, state.account_id, raw, UPDATED_AT))
                t3 = time.perf_counter()
                gen_s += t1 - t0
                update_s += t2 - t1
                write_s += t3 - t2
                events += len(history)
                n = len(raw.encode())
                state_bytes += n
                hist[min(n, len(hist) - 1)] += 1
                if n > largest[1]:
                    largest = (state.customer_id, n)
                if index % sample_every == 0:
                    fields.add(raw)
                if last_chunk and index % max(1, size // 20) == 0:
                    check.append(state)
            t0 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(UPSERT, rows)
            db.execute("COMMIT")
            write_s += time.perf_counter() - t0
            done += size
            del rows
            rss_max = max(rss_max, rss_mb(proc))
            if not marks or done < marks[0]:
                continue
            while marks and done >= marks[0]:
                marks.pop(0)
            # This tenth's slice of the floor, on customers already written.
            want = args.floor_events * (CHECKPOINTS - len(marks)) // CHECKPOINTS
            ids = [_customer_id(floor_rng.randrange(done)) for _ in range(want - floor_done)]
            slice_s = floor_round_trips(db, ids) if ids else 0.0
            floor_s += slice_s
            floor_done = want
            rss_now = rss_mb(proc)
            rss_max = max(rss_max, rss_now)
            rss_marks.append(rss_now)
            e0, u0, w0 = last_mark
            now = time.perf_counter()
            wall_rate = (events - e0) / max(now - w0 - slice_s, 1e-9)
            upd = (update_s - u0) / max(events - e0, 1) * 1e6
            flo = slice_s / len(ids) * 1e6 if ids else float("nan")
            print(
                f"{done:>11,} {events:>12,} {upd:>12.1f} {wall_rate:>10,.0f} "
                f"{flo:>11.1f} {rss_now:>8.1f}",
                flush=True,
            )
            last_mark = (events, update_s, now)

        # The store reads back what was written (a sample of the last chunk). Not compared
        # with the in-memory states: trend floats are stored rounded to 7 decimals.
        store = SQLiteStore(db_path, durability="normal")
        loaded = store.load_states([s.customer_id for s in check])
        store.close()
        mismatched = [
            s.customer_id
            for s in check
            if loaded.get(s.customer_id) != CustomerState.model_validate_json(_dump(s))
        ]
        rss_end = rss_mb(proc)
        rss_max = max(rss_max, rss_end)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        db_bytes = sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists())
    finally:
        if tmp is not None:
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - wall_started

    customers = args.customers
    per_customer = state_bytes / customers
    p50 = percentile_of_histogram(hist, customers, 0.50)
    p99 = percentile_of_histogram(hist, customers, 0.99)
    update_us = update_s / max(events, 1) * 1e6
    floor_us = floor_s / max(floor_done, 1) * 1e6
    ratio = update_us / floor_us if floor_us else float("nan")
    cache = _cached_words.cache_info()
    halfway = rss_marks[len(rss_marks) // 2 - 1] if len(rss_marks) >= 2 else rss_start
    late_growth = rss_end - halfway

    print()
    print("== state (SQLite, durability=normal) ==")
    print(
        f"  customers           {customers:>12,}   events {events:,} "
        f"({events / customers:.2f} per customer)"
    )
    print(
        f"  state JSON          {per_customer:>12,.0f} bytes/customer  (p50 {p50:,}, "
        f"p99 {p99:,}, max {largest[1]:,} for {largest[0]})"
    )
    print(
        f"  database file       {db_bytes / customers:>12,.0f} bytes/customer  "
        f"({db_bytes / 1e6:,.1f} MB)"
    )
    print(
        f"  target <= {TARGET_STATE_BYTES:,} bytes/customer: "
        f"{'met' if per_customer <= TARGET_STATE_BYTES else 'NOT MET'}"
    )
    print(f"  bytes by field (sample of {fields.states:,} states, share of their bytes):")
    for key, n in sorted(fields.bytes.items(), key=lambda kv: -kv[1])[:10]:
        print(
            f"    {key:<18} {n / fields.states:>8,.0f} avg  {n / max(fields.total, 1):>6.1%}  "
            f"(in {fields.present[key] / fields.states:.0%} of states)"
        )
    print("== RSS (psutil) ==")
    print(
        f"  start {rss_start:.1f} MB (after imports and warm-up), end {rss_end:.1f} MB, "
        f"max {rss_max:.1f} MB; growth {rss_end - rss_start:+.1f} MB over {customers:,} "
        f"customers"
    )
    print("  at each progress line: " + ", ".join(f"{r:.1f}" for r in rss_marks) + " MB")
    print(
        f"  over the second half: {late_growth:+.1f} MB "
        f"({'flat' if late_growth <= FLAT_MB else 'GROWING'}: within {FLAT_MB:g} MB)"
    )
    print(
        f"  lexical tier token cache (lru_cache, bounded): {cache.currsize:,} of "
        f"{cache.maxsize:,} entries"
    )
    print("== cost per event ==")
    print(f"  detect + remember   {update_us:>10.1f} µs  (lexical text tier, in memory)")
    print(
        f"  floor               {floor_us:>10.1f} µs  (SELECT + model_validate_json + "
        f"model_dump_json + upsert, {FLOOR_BATCH:,} per transaction; {floor_done:,} events)"
    )
    print(f"  ratio update/floor  {ratio:>10.2f}")
    print(
        f"  untimed parts: generating events {gen_s:.1f} s, serialising + writing states "
        f"{write_s:.1f} s ({write_s / customers * 1e6:.1f} µs/customer), floor {floor_s:.1f} s"
    )
    print(f"  total {seconds:.1f} s")
    if mismatched:
        print(
            f"  WARNING: {len(mismatched)} of {len(check)} states read back differently: "
            f"{mismatched[:3]}"
        )
    summary = {
        "state_bytes_per_customer": round(per_customer, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "update_us": round(update_us, 2),
        "floor_us": round(floor_us, 2),
        "ratio": round(ratio, 3),
        "rss_max_mb": round(rss_max, 1),
        "rss_growth_second_half_mb": round(late_growth, 1),
        "state_bytes_p99": p99,
        "db_bytes_per_customer": round(db_bytes / customers, 1),
        "customers": customers,
        "events": events,
        "seconds": round(seconds, 1),
        "text_scorer": "lexical",
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tactful throughput benchmark: the full pipeline against its I/O floor, and served latency.

Two parts, each compared in the same run with its floor or target:

* **Replay.** N synthetic events (default 100,000: ~70% behavioural, ~30% messages, 10,000
  customers), generated deterministically, go through the full pipeline on SQLite
  (``Engine(SQLiteStore(path, durability="normal"), PolicyEngine(load_policy()),
  text_scorer=load_scorer())`` fed in batches of 1,000 lines, which is what
  ``tactful replay`` does with its default learned text scorer), and the same lines go
  through the floor: ``json.loads`` plus an ``executemany`` insert of the raw event into one
  SQLite table (WAL, synchronous=NORMAL, one transaction per 1,000). Each runs in a fresh
  subprocess so its peak RSS is its own. Target: >= 5,000 events/s through the pipeline.
* **Served.** ``tactful serve --durability full`` on loopback, on the replayed database,
  and an open-loop load generator offering ``--rate`` events/s (default 1,000, as 20 batches
  of 50 a second) for ``--served-seconds``. Latency is from sending a batch to its 202,
  which the API answers only once the batch's decisions are committed (on disk, with
  ``full``). Targets: p99 <= 50 ms, nothing lost (every event acknowledged, and every
  acknowledged event found in the database after the server has stopped).

The last line printed is one JSON object::

    {"events_per_s", "raw_events_per_s", "ratio", "peak_rss_mb", "db_bytes_per_customer",
     "served_p50_ms", "served_p99_ms", "served_lost"}

``ratio`` is ``events_per_s / raw_events_per_s``: the share of the floor's rate the full
pipeline reaches. ``peak_rss_mb`` is the replay process's peak RSS. ``db_bytes_per_customer``
is the database file plus its WAL, after a checkpoint, over the distinct customers.

Usage: ``python bench/throughput.py [--events N] [--customers N] [--served-seconds S]
[--rate R] [--text-scorer learned|lexical] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchkit import free_port, machine, percentile, stop_server, wait_healthy

BATCH = 1_000
SERVED_BATCH = 50
MAX_ATTEMPTS = 3  # per served batch, on transport errors only
TARGET_EVENTS_PER_S = 5_000.0
TARGET_P99_MS = 50.0
# uvicorn re-raises the SIGINT it caught once its graceful shutdown is done: 130 is clean.
CLEAN_EXITS = (0, 130, -signal.SIGINT)
START = datetime(2026, 9, 1, tzinfo=UTC)
SPAN_DAYS = 45

# --- synthetic events ------------------------------------------------------------------

# Behavioural types and their share of all events (percent); messages make up the other 30.
BEHAVIOUR_WEIGHTS: dict[str, float] = {
    "page_view": 22.0,
    "click": 18.0,
    "search": 6.0,
    "command_run": 6.0,
    "api_error": 5.0,
    "bot_turn": 4.0,
    "identify": 3.0,
    "ticket_opened": 2.0,
    "ticket_closed": 1.5,
    "feedback": 1.5,
    "payment_failed": 1.0,
}
MESSAGE_SHARE = 0.30

MOODS: dict[str, float] = {
    "neutral": 30.0,
    "polite": 18.0,
    "confused": 16.0,
    "frustrated": 14.0,
    "happy": 8.0,
    "urgent": 5.0,
    "churn": 5.0,
    "human": 4.0,
}

FEATURES = [
    "the export",
    "SSO",
    "the webhook",
    "the dashboard",
    "two-factor login",
    "the billing page",
    "the CSV import",
    "the mobile app",
    "the search",
    "team invites",
]
ACTIONS = [
    "upload a file",
    "save my profile",
    "invite a teammate",
    "export my data",
    "log in",
    "change my plan",
    "connect Slack",
    "reset my password",
]
TASKS = [
    "download last quarter's invoices",
    "add a second admin",
    "rotate my API key",
    "move my workspace to the EU region",
    "change the billing email",
    "set up SAML with Okta",
    "increase my rate limit",
    "merge two accounts",
]
PLACES = ["a header", "the query string", "the request body", "the settings page", "the CLI"]
ENDPOINTS = [
    "POST /v1/orders",
    "GET /v1/orders",
    "POST /v1/payments",
    "GET /v1/me",
    "PUT /v1/webhooks",
    "POST /v1/files",
]
ORDINALS = ["third", "fourth", "fifth", "3rd", "4th"]

MESSAGES: dict[str, list[str]] = {
    "neutral": [
        "Where can I download my invoices?",
        "Is there an API for {feature}?",
        "Do you support SSO with Okta?",
        "Hi, what is the rate limit on {endpoint}?",
        "I'd like to {task}. What's the best way?",
        "Does the Pro plan include {feature}?",
        "Quick question about {feature}: is it available in the EU region?",
    ],
    "polite": [
        "Hi, could you help me {task}? Thanks in advance!",
        "Good morning, would it be possible to {task}? Thank you.",
        "Sorry to bother you, could you check why {feature} is slow today? Appreciate it.",
        "Hello, kindly let me know how to {task}. Many thanks.",
        "Could you please confirm whether {feature} supports custom domains? Thanks a lot.",
    ],
    "confused": [
        "I don't understand where the token goes. Is it in {place}?",
        "How do I {task}? The docs say one thing but I see another.",
        "What does error {code} mean? Not sure what to do next.",
        "I'm lost, which plan should I pick if I need {feature}?",
        "I can't figure out how to {action}. Where is the option?",
        "This is confusing: {feature} shows a different number than the report. No idea why.",
    ],
    "frustrated": [
        "This is the {ordinal} time {feature} failed. Nothing works!!",
        "I've been waiting {hours} hours and no one has answered my ticket. Ridiculous.",
        "The app keeps crashing when I {action}. I already tried reinstalling.",
        "Why was I charged twice?? Fix this.",
        "Seriously, {feature} is broken again. Unacceptable.",
        "I'm fed up. I already explained this to your colleague yesterday.",
        "STILL NOT WORKING. {feature} does nothing when I click save!!!",
        "The save button does nothing!!",
    ],
    "happy": [
        "Thanks, that worked perfectly. Great docs!",
        "That fixed it, thank you so much!",
        "Love it, {feature} works great now. Cheers!",
        "Much appreciated, the import is working now.",
    ],
    "urgent": [
        "{endpoint} is returning 500s and production is down for us. Urgent.",
        "Our checkout is blocked since this morning, we are losing sales. ASAP please.",
        "Critical: {feature} outage, we have a deadline today.",
        "Emergency, the site is down right now. Please respond immediately.",
    ],
    "churn": [
        "I'm done. Cancel my account.",
        "We're switching to a competitor next month. How do I close my account?",
        "Please cancel my subscription and refund the last invoice.",
        "We won't renew. {feature} never worked for us.",
        "Third failed payment and nobody answers. I'm done with this, cancel it.",
    ],
    "human": [
        "Can I talk to a real person please?",
        "Please connect me with an agent, the bot isn't helping.",
        "I want to speak to a human, not a bot.",
        "Is there a live agent available? This bot keeps looping.",
    ],
}
AGENT_TEXTS = [
    "Thanks for reaching out, I'm looking into it now.",
    "I've escalated this to our engineers and will update you within the hour.",
    "Could you send me a screenshot of the error?",
    "This should be fixed now, could you try again?",
]
BOT_TEXTS = [
    "I sent you a reset link.",
    "Here is an article that might help.",
    "Did that answer your question?",
    "I can help with billing, login or API questions.",
]
PAGES = [
    ("/dashboard", "Dashboard"),
    ("/settings/profile", "Profile"),
    ("/settings/billing", "Billing"),
    ("/settings/plan", "Your plan"),
    ("/docs/quickstart", "Quickstart"),
    ("/docs/api/authentication", "Authentication"),
    ("/docs/api/webhooks", "Webhooks"),
    ("/reports", "Reports"),
    ("/integrations", "Integrations"),
    ("/pricing", "Pricing"),
    ("/security", "Security"),
    ("/account/cancel", "Cancel subscription"),
]
ELEMENTS = [
    "button#save-profile",
    "button#export",
    "a#upgrade",
    "button#invite",
    "button#pay-now",
    "tab#reports",
    "button#submit-ticket",
    "link#docs",
]
QUERIES = [
    "invoice",
    "how do i send the api token",
    "SOC 2 report",
    "security whitepaper",
    "enterprise pricing",
    "webhook retries",
    "cancel subscription",
    "reset password",
    "export csv",
    "rate limit",
    "sso okta",
]
COMMANDS = [
    "example init",
    "example deploy --prod",
    "example login",
    "curl -H 'Authorization: Bearer ***' https://api.example.com/v1/me",
    "example export --format csv",
]
TIERS = [("free", 0), ("starter", 600), ("pro", 4_800), ("enterprise", 120_000)]
OWNERS = ["@dana", "@li", "@sam", "@priya"]
STEPS = ["reset_password", "update_card", "find_invoice", "api_key", "change_plan"]
SUBJECTS = [
    "Card declined but my bank says it's fine",
    "Late fee after a failed payment?",
    "Export stuck at 99%",
    "Cannot log in after password reset",
    "Webhook deliveries failing",
    "Question about my invoice",
]


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _start_for(span: timedelta) -> datetime:
    """2026-09-01, or earlier if the run's clock would put the last events in the future."""
    latest = datetime.now(UTC) - span * 1.5 - timedelta(days=1)
    return min(START, latest.replace(hour=0, minute=0, second=0, microsecond=0))


@dataclass
class _Session:
    customer: str
    mood: str
    remaining: int
    element: str
    endpoint: str
    step: str


def message_text(rng: random.Random, mood: str) -> str:
    """One customer message in ``mood``: a template filled with product words."""
    return rng.choice(MESSAGES[mood]).format(
        feature=rng.choice(FEATURES),
        action=rng.choice(ACTIONS),
        task=rng.choice(TASKS),
        place=rng.choice(PLACES),
        endpoint=rng.choice(ENDPOINTS),
        ordinal=rng.choice(ORDINALS),
        hours=rng.randint(3, 72),
        code=rng.choice(["E1042", "401", "429", "ERR_CERT", "422"]),
    )


@dataclass
class EventGen:
    """Deterministic, realistic-ish event stream: customers act in short sessions.

    Sessions follow one another in time (gaps of seconds inside a session, so rage clicks
    and error streaks happen; minutes between sessions) and spread over ``span`` so a
    customer's trend decays between visits. Every customer is introduced at a steady
    rate; on top, a Zipf-like skew makes some customers much busier than others.
    """

    seed: int
    customers: int
    total: int
    id_prefix: str = "ev"
    start: datetime = START
    span: timedelta = timedelta(days=SPAN_DAYS)
    _rng: random.Random = field(init=False)
    _ids: list[str] = field(init=False)
    _cum: list[float] = field(init=False)
    _open_tickets: dict[str, list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._ids = [f"cust-{i:06d}" for i in range(self.customers)]
        self._rng.shuffle(self._ids)
        acc = 0.0
        self._cum = []
        for rank in range(1, self.customers + 1):
            acc += 1.0 / rank**0.9
            self._cum.append(acc)

    def account_of(self, customer: str) -> str:
        return f"acct-{int(customer.rsplit('-', 1)[1]) // 5:05d}"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = self._rng
        moods, mood_w = list(MOODS), list(MOODS.values())
        mean_len = 5.5
        # ~25 s per event inside a session; the rest of the span goes between sessions.
        between = max(1.0, self.span.total_seconds() * mean_len / max(self.total, 1) - 25 * 5)
        introduced = 0
        t = 0.0
        n = 0
        while n < self.total:
            sessions_left = max(1.0, (self.total - n) / mean_len)
            to_introduce = self.customers - introduced
            if to_introduce > 0 and rng.random() < to_introduce / sessions_left:
                customer = self._ids[introduced]
                introduced += 1
            else:
                customer = self._ids[rng.choices(range(self.customers), cum_weights=self._cum)[0]]
            mood = rng.choices(moods, mood_w)[0]
            s = _Session(
                customer=customer,
                mood=mood,
                remaining=min(40, 1 + int(rng.expovariate(1 / (mean_len - 1)))),
                element=rng.choice(ELEMENTS),
                endpoint=rng.choice(ENDPOINTS),
                step=rng.choice(STEPS),
            )
            t += rng.expovariate(1 / between)
            previous = ""
            while s.remaining > 0 and n < self.total:
                kind = self._kind()
                t += self._gap(kind, previous)
                yield self._event(s, kind, n, self.start + timedelta(seconds=t))
                previous = kind
                s.remaining -= 1
                n += 1

    def _kind(self) -> str:
        if self._rng.random() < MESSAGE_SHARE:
            return "message"
        return self._rng.choices(list(BEHAVIOUR_WEIGHTS), list(BEHAVIOUR_WEIGHTS.values()))[0]

    def _gap(self, kind: str, previous: str) -> float:
        rng = self._rng
        if kind == "click" and previous == "click":
            return rng.uniform(0.3, 3.0)
        if kind == "api_error" and previous == "api_error":
            return rng.uniform(2.0, 30.0)
        if kind == "message":
            return rng.uniform(10.0, 120.0)
        return rng.uniform(1.0, 45.0)

    def _text(self, mood: str) -> str:
        return message_text(self._rng, mood)

    def _event(self, s: _Session, kind: str, n: int, at: datetime) -> dict[str, Any]:
        rng = self._rng
        ev: dict[str, Any] = {
            "event_id": f"{self.id_prefix}-{self.seed}-{n:08d}",
            "type": kind,
            "customer_id": s.customer,
            "timestamp": _iso(at),
        }
        troubled = s.mood in ("frustrated", "urgent", "churn", "human")
        if kind == "identify" or rng.random() < 0.2:
            ev["account_id"] = self.account_of(s.customer)
        if kind == "message":
            role = rng.choices(["customer", "agent", "bot"], [85, 10, 5])[0]
            ev["role"] = role
            ev["channel"] = rng.choices(["chat", "email", "sms", "social"], [70, 22, 5, 3])[0]
            if role == "customer":
                ev["text"] = self._text(s.mood)
            else:
                ev["text"] = rng.choice(AGENT_TEXTS if role == "agent" else BOT_TEXTS)
            ev["conversation_id"] = f"conv-{s.customer}-{int(at.timestamp()) // 86_400}"
        elif kind == "click":
            stuck = s.mood == "frustrated" and rng.random() < 0.8
            ev["element"] = s.element if stuck else rng.choice(ELEMENTS)
            ev["page"] = rng.choice(PAGES)[0]
            ev["x"] = round(rng.uniform(0, 1440), 1)
            ev["y"] = round(rng.uniform(0, 900), 1)
        elif kind == "page_view":
            if s.mood == "churn" and rng.random() < 0.5:
                path, title = "/account/cancel", "Cancel subscription"
            else:
                path, title = rng.choice(PAGES)
            ev["path"] = path
            ev["title"] = title
        elif kind == "api_error":
            ev["endpoint"] = s.endpoint
            ev["status"] = rng.choice([500, 502, 503] if troubled else [400, 401, 404, 429])
            ev["code"] = "internal" if ev["status"] >= 500 else rng.choice(["bad_request", "auth"])
        elif kind == "payment_failed":
            ev["amount"] = rng.choice([49.0, 59.0, 99.0, 480.0])
            ev["currency"] = rng.choice(["USD", "EUR", "GBP"])
            ev["reason"] = rng.choice(["card_declined", "insufficient_funds", "expired_card"])
        elif kind in ("ticket_opened", "ticket_closed"):
            tickets = self._open_tickets.setdefault(s.customer, [])
            if kind == "ticket_closed" and tickets:
                ev["ticket_id"] = tickets.pop(0)
                ev["resolution"] = rng.choices(
                    ["solved", "unsolved", "duplicate", "spam"], [75, 15, 7, 3]
                )[0]
            else:
                ev["type"] = "ticket_opened"
                ticket = f"T-{self.seed}-{n:08d}"
                tickets.append(ticket)
                ev["ticket_id"] = ticket
                ev["subject"] = rng.choice(SUBJECTS)
        elif kind == "search":
            ev["query"] = rng.choice(QUERIES)
        elif kind == "command_run":
            ev["command"] = rng.choice(COMMANDS)
            ev["ok"] = not (troubled and rng.random() < 0.5)
        elif kind == "bot_turn":
            ev["step_id"] = s.step
            ev["outcome"] = (
                rng.choice(["failed", "failed", "fallback"])
                if troubled
                else rng.choices(["success", "fallback", "handoff"], [85, 10, 5])[0]
            )
            ev["text"] = rng.choice(BOT_TEXTS)
        elif kind == "feedback":
            ev["rating"] = rng.randint(1, 2) if troubled else rng.randint(3, 5)
            if rng.random() < 0.5:
                ev["comment"] = "Smooth setup" if ev["rating"] >= 4 else "Took too long"
        elif kind == "identify":
            tier, value = rng.choice(TIERS)
            traits: dict[str, Any] = {
                "tier": tier,
                "value": value,
                "lifecycle": rng.choice(["trial", "active", "active", "at_risk"]),
                "tenure_days": rng.randint(1, 1_500),
            }
            if tier == "enterprise":
                traits["owner"] = rng.choice(OWNERS)
            ev["traits"] = traits
        return ev


def write_events(path: Path, events: int, customers: int, seed: int) -> Counter[str]:
    span = timedelta(days=SPAN_DAYS)
    gen = EventGen(seed, customers, events, start=_start_for(span), span=span)
    kinds: Counter[str] = Counter()
    with path.open("w", encoding="utf-8") as fh:
        for ev in gen:
            kinds[ev["type"]] += 1
            fh.write(json.dumps(ev))
            fh.write("\n")
    return kinds


# --- the two replay runs, each in its own process ---------------------------------------


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def child_replay(events_file: Path, db: Path, text_scorer: str = "learned") -> dict[str, Any]:
    from tactful.actions.channels import LogChannel
    from tactful.actions.dispatch import Dispatcher
    from tactful.cli import run_replay
    from tactful.detect.learned import load_scorer
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    # As `tactful replay --text-scorer ...` does: learned (the default) fuses the lexical
    # cues with the trained heads; lexical is the cues alone.
    engine = Engine(
        SQLiteStore(db, durability="normal"),
        PolicyEngine(load_policy()),
        text_scorer=load_scorer() if text_scorer == "learned" else None,
    )
    stats, seconds = run_replay(engine, events_file, batch=BATCH, progress=sys.stderr.isatty())
    peak_rss_mb = _peak_rss_mb()
    # As `tactful replay` does after its timed part: deliver the outbox, so the served part
    # starts from a database without a backlog of pending actions.
    drain_started = time.perf_counter()
    log = LogChannel(db.parent / "replay-actions.jsonl")
    actions = Dispatcher(engine.store, {"log": log}).drain()
    drain_seconds = time.perf_counter() - drain_started
    engine.store.close()
    return {
        "seconds": seconds,
        "lines": stats.lines,
        "accepted": stats.accepted,
        "duplicates": stats.duplicates,
        "rejected": stats.rejected,
        "signals": sum(stats.signals.values()),
        "decisions": dict(stats.decisions.most_common()),
        "actions": actions,
        "drain_seconds": drain_seconds,
        "peak_rss_mb": peak_rss_mb,
    }


def child_floor(events_file: Path, db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE raw_events (event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
        "type TEXT NOT NULL, ts TEXT NOT NULL, payload TEXT NOT NULL) WITHOUT ROWID"
    )
    sql = "INSERT INTO raw_events VALUES (?,?,?,?,?)"

    def flush(rows: list[tuple[str, str, str, str, str]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")

    started = time.perf_counter()
    lines = 0
    rows: list[tuple[str, str, str, str, str]] = []
    with events_file.open("rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8").strip()
            if not line:
                continue
            ev = json.loads(line)
            rows.append((ev["event_id"], ev["customer_id"], ev["type"], ev["timestamp"], line))
            lines += 1
            if len(rows) >= BATCH:
                flush(rows)
                rows = []
    if rows:
        flush(rows)
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "lines": lines, "peak_rss_mb": _peak_rss_mb()}


def run_child(
    part: str, events_file: Path, db: Path, text_scorer: str = "learned"
) -> dict[str, Any]:
    """Run one part in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", part]
    cmd += ["--child-file", str(events_file), "--child-db", str(db)]
    cmd += ["--text-scorer", text_scorer]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{part} run failed (exit {proc.returncode}); output:\n{proc.stdout}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def db_footprint(db: Path) -> tuple[int, int]:
    """(bytes of the database file plus WAL after a checkpoint, distinct customers)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (customers,) = conn.execute("SELECT count(*) FROM customers").fetchone()
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    return size, int(customers)


# --- served ------------------------------------------------------------------------------


@dataclass
class LoadResult:
    batches: int = 0
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    late: int = 0
    max_lag_ms: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)  # requests given up on
    transport_errors: Counter[str] = field(default_factory=Counter)  # attempts resent
    latencies_ms: list[float] = field(default_factory=list)
    acked_ids: list[str] = field(default_factory=list)
    engine_batches: int = 0  # server side, from tactful_batch_seconds on /metrics
    engine_mean_ms: float = float("nan")
    engine_within_target: float = float("nan")  # share of batches committed within 50 ms
    seconds: float = 0.0  # the sending phase
    drain_seconds: float = 0.0  # from the last send to the last response


async def offer_load(
    url: str, events: Iterator[dict[str, Any]], seconds: float, rate: float
) -> LoadResult:
    """Open loop: a batch every ``SERVED_BATCH / rate`` seconds, whatever the responses."""
    import httpx

    out = LoadResult()
    interval = SERVED_BATCH / rate
    n_batches = max(1, round(seconds * rate / SERVED_BATCH))
    headers = {"content-type": "application/json"}
    # Drop idle connections well before uvicorn's 5 s keep-alive timeout closes them, so a
    # request is not sent on a connection the server is closing.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2.0)

    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:

        async def send(batch: list[dict[str, Any]]) -> None:
            now = datetime.now(UTC)
            for i, ev in enumerate(batch):
                ev["timestamp"] = _iso(now + timedelta(microseconds=i))
            body = json.dumps(batch)
            out.sent += len(batch)
            t0 = time.perf_counter()
            resp: httpx.Response | None = None
            # Ingest is idempotent on event_id, so a client may resend a batch whose request
            # failed in transport (e.g. a keep-alive connection the server had just closed):
            # events already committed come back as duplicates. The wait includes resends.
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    resp = await client.post("/v1/events", content=body, headers=headers)
                    break
                except httpx.TransportError as exc:
                    out.transport_errors[type(exc).__name__] += 1
                    if attempt == MAX_ATTEMPTS:
                        out.failures[type(exc).__name__] += 1
                        return
                except httpx.HTTPError as exc:
                    out.failures[type(exc).__name__] += 1
                    return
            assert resp is not None
            elapsed_ms = (time.perf_counter() - t0) * 1000
            if resp.status_code != 202:
                out.failures[f"HTTP {resp.status_code}"] += 1
                return
            out.latencies_ms.append(elapsed_ms)
            data = resp.json()
            out.acked += int(data["accepted"]) + int(data["duplicates"])
            out.rejected += int(data["rejected"])
            out.acked_ids.extend(
                r["event_id"] for r in data["results"] if r["status"] in ("accepted", "duplicate")
            )

        # Warm the connection and the server's code paths; not counted.
        warm = [next(events) for _ in range(SERVED_BATCH)]
        for ev in warm:
            ev["event_id"] = "warm-" + ev["event_id"]
        await send(warm)
        warm_ids = set(out.acked_ids)
        out = LoadResult()
        engine_before = await batch_histogram(client)

        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        started = loop.time() + 0.05
        report_every = max(1, round(5.0 / interval))
        for k in range(n_batches):
            due = started + k * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - due
            out.max_lag_ms = max(out.max_lag_ms, lag * 1000)
            if lag > interval:
                out.late += 1
            batch = [next(events) for _ in range(SERVED_BATCH)]
            tasks.append(asyncio.create_task(send(batch)))
            out.batches += 1
            if (k + 1) % report_every == 0:
                done = sorted(out.latencies_ms)
                p99 = done[max(0, math.ceil(0.99 * len(done)) - 1)] if done else float("nan")
                print(
                    f"  served t={(k + 1) * interval:5.1f}s sent={out.sent:,} "
                    f"acked={out.acked:,} p99 so far={p99:.1f} ms",
                    flush=True,
                )
        last_send = loop.time()
        out.seconds = last_send - started + interval  # the last batch's slot included
        await asyncio.gather(*tasks)
        out.drain_seconds = loop.time() - last_send
        out.acked_ids = [i for i in out.acked_ids if i not in warm_ids]
        engine_after = await batch_histogram(client)
    if engine_before and engine_after:
        count = engine_after["count"] - engine_before["count"]
        if count > 0:
            out.engine_batches = int(count)
            out.engine_mean_ms = (engine_after["sum"] - engine_before["sum"]) / count * 1000
            within = engine_after["le_0.05"] - engine_before["le_0.05"]
            out.engine_within_target = within / count
    return out


async def batch_histogram(client: Any) -> dict[str, float]:
    """The engine's own batch timer (lock wait + validate + process + commit), scraped."""
    import httpx

    try:
        resp = await client.get("/metrics")
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in resp.text.splitlines():
        if line.startswith("tactful_batch_seconds_count"):
            out["count"] = float(line.split()[-1])
        elif line.startswith("tactful_batch_seconds_sum"):
            out["sum"] = float(line.split()[-1])
        elif line.startswith('tactful_batch_seconds_bucket{le="0.05"}'):
            out["le_0.05"] = float(line.split()[-1])
    return out if len(out) == 3 else {}


def missing_on_disk(db: Path, ids: list[str]) -> int:
    conn = sqlite3.connect(db)
    try:
        found = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT count(*) FROM events WHERE event_id IN ({marks})"
            found += int(conn.execute(sql, chunk).fetchone()[0])
    finally:
        conn.close()
    return len(set(ids)) - found


def count_events(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def run_served(
    tmp: Path,
    db: Path,
    customers: int,
    seconds: float,
    rate: float,
    seed: int,
    text_scorer: str = "learned",
) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    before = count_events(db) if db.exists() else 0
    cmd = [sys.executable, "-m", "tactful.cli", "serve", "--db", str(db), "--port", str(port)]
    cmd += ["--durability", "full", "--actions-log", str(tmp / "actions.jsonl")]
    cmd += ["--text-scorer", text_scorer]
    total = int(seconds * rate) + 10 * SERVED_BATCH
    events = iter(EventGen(seed + 1, customers, total, id_prefix="srv"))
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
        try:
            wait_healthy(proc, url, log, deadline_s=60)
            load = asyncio.run(offer_load(url, events, seconds, rate))
        finally:
            code = stop_server(proc)
    if code not in CLEAN_EXITS:
        print(log.read_text(errors="replace")[-4_000:])
    missing = missing_on_disk(db, load.acked_ids)
    after = count_events(db)
    unacked = load.sent - load.acked
    return {
        "load": load,
        "server_exit": code,
        "missing_on_disk": missing,
        "unacked": unacked,
        "lost": unacked + missing,
        "events_before": before,
        "events_after": after,
        "p50": percentile(load.latencies_ms, 0.50),
        "p99": percentile(load.latencies_ms, 0.99),
        "max": max(load.latencies_ms, default=float("nan")),
    }


# --- report -------------------------------------------------------------------------------


def ok(flag: bool) -> str:
    return "met" if flag else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=100_000, help="events to replay")
    ap.add_argument("--customers", type=int, default=10_000, help="distinct customers")
    ap.add_argument("--served-seconds", type=float, default=30.0, help="served load duration")
    ap.add_argument("--rate", type=float, default=1_000.0, help="served events per second")
    ap.add_argument("--seed", type=int, default=7, help="random seed for the events")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 events, 3 s served")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    ap.add_argument(
        "--text-scorer",
        choices=["learned", "lexical"],
        default="learned",
        help="the engine's text scorer, as `tactful replay/serve --text-scorer` (default learned)",
    )
    ap.add_argument("--child", choices=["replay", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--child-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-db", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        if args.child == "replay":
            result = child_replay(args.child_file, args.child_db, args.text_scorer)
        else:
            result = child_floor(args.child_file, args.child_db)
        print(json.dumps(result), flush=True)
        return 0

    if args.quick:
        args.events, args.customers, args.served_seconds = 5_000, 500, 3.0

    print(machine())
    print(
        f"replay: {args.events:,} events, {args.customers:,} customers, batches of {BATCH:,}; "
        f"served: {args.rate:,.0f} events/s for {args.served_seconds:g} s"
    )
    tmp = Path(tempfile.mkdtemp(prefix="tactful-bench-"))
    try:
        events_file = tmp / "events.jsonl"
        t0 = time.perf_counter()
        kinds = write_events(events_file, args.events, args.customers, args.seed)
        messages = kinds["message"] / max(args.events, 1)
        print(
            f"generated {args.events:,} events ({events_file.stat().st_size / 1e6:.1f} MB, "
            f"{messages:.0%} messages) in {time.perf_counter() - t0:.1f} s"
        )
        print("  " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))

        print("floor: json.loads + executemany insert ...", flush=True)
        floor = run_child("floor", events_file, tmp / "floor.db")
        raw_rate = floor["lines"] / floor["seconds"]
        print(f"  {floor['lines']:,} events in {floor['seconds']:.2f} s: {raw_rate:,.0f} ev/s")

        print("replay: full pipeline ...", flush=True)
        db = tmp / "tactful.db"
        rep = run_child("replay", events_file, db, args.text_scorer)
        rate = rep["lines"] / rep["seconds"]
        size, customers = db_footprint(db)
        per_customer = size / max(customers, 1)
        print(
            f"  {rep['lines']:,} events in {rep['seconds']:.2f} s: {rate:,.0f} ev/s "
            f"(accepted {rep['accepted']:,}, duplicates {rep['duplicates']:,}, "
            f"rejected {rep['rejected']:,}; {rep['signals']:,} signals)"
        )
        print("  decisions: " + ", ".join(f"{k} {n:,}" for k, n in rep["decisions"].items()))
        print(
            f"  then, untimed as in `tactful replay`: {rep['actions']:,} outbox actions "
            f"delivered in {rep['drain_seconds']:.1f} s"
        )
        if rep["rejected"] or rep["accepted"] != args.events:
            print(f"  WARNING: {args.events - rep['accepted']:,} events not accepted")

        print(
            f"served: tactful serve --durability full, {args.rate:,.0f} ev/s in batches of "
            f"{SERVED_BATCH} for {args.served_seconds:g} s ...",
            flush=True,
        )
        srv = run_served(
            tmp, db, args.customers, args.served_seconds, args.rate, args.seed, args.text_scorer
        )
        load: LoadResult = srv["load"]

        ratio = rate / raw_rate
        replay_ok = rate >= TARGET_EVENTS_PER_S
        served_ok = srv["p99"] <= TARGET_P99_MS and srv["lost"] == 0
        print()
        print("== replay (SQLite, durability=normal) ==")
        print(f"  full pipeline      {rate:>10,.0f} events/s")
        print(f"  floor (parse+insert){raw_rate:>9,.0f} events/s")
        print(
            f"  ratio              {ratio:>10.3f}  (pipeline at {ratio:.1%} of the floor; "
            f"floor {1 / ratio:.1f}x faster)"
        )
        print(
            f"  peak RSS           {rep['peak_rss_mb']:>10.1f} MB  "
            f"(floor process: {floor['peak_rss_mb']:.1f} MB)"
        )
        print(
            f"  database           {size / 1e6:>10.1f} MB for {customers:,} customers: "
            f"{per_customer:,.0f} bytes/customer"
        )
        print(f"  target >= {TARGET_EVENTS_PER_S:,.0f} events/s: {ok(replay_ok)}")
        print("== served (loopback, durability=full, open loop) ==")
        achieved = load.sent / load.seconds if load.seconds else 0.0
        print(
            f"  offered {args.rate:,.0f} ev/s, sent {load.sent:,} in {load.batches:,} batches "
            f"over {load.seconds:.1f} s ({achieved:,.0f} ev/s); last response "
            f"{load.drain_seconds * 1000:.0f} ms after the last send"
        )
        print(
            f"  acknowledged {load.acked:,}, rejected {load.rejected:,}, failed requests "
            f"{sum(load.failures.values()):,}"
            + (f" {dict(load.failures)}" if load.failures else "")
            + (
                f"; resent after transport errors: {dict(load.transport_errors)}"
                if load.transport_errors
                else ""
            )
        )
        print(
            f"  send-to-202 latency p50 {srv['p50']:.1f} ms, p99 {srv['p99']:.1f} ms, "
            f"max {srv['max']:.1f} ms"
        )
        print(
            f"  server side (engine.ingest: lock wait + process + commit): "
            f"{load.engine_batches:,} batches, mean {load.engine_mean_ms:.1f} ms, "
            f"{load.engine_within_target:.1%} within {TARGET_P99_MS:.0f} ms"
        )
        print(
            f"  batches sent late (> {SERVED_BATCH / args.rate * 1000:.0f} ms behind schedule): "
            f"{load.late:,}; max lag {load.max_lag_ms:.1f} ms"
        )
        if srv["server_exit"] not in CLEAN_EXITS:
            print(f"  WARNING: server exit code {srv['server_exit']}; see its log above")
        print(
            f"  on disk after shutdown (exit {srv['server_exit']}): events "
            f"{srv['events_before']:,} -> {srv['events_after']:,}; acknowledged but missing "
            f"{srv['missing_on_disk']:,}; lost {srv['lost']:,}"
        )
        print(f"  target p99 <= {TARGET_P99_MS:.0f} ms and nothing lost: {ok(served_ok)}")
        print()
        summary = {
            "events_per_s": round(rate, 1),
            "raw_events_per_s": round(raw_rate, 1),
            "ratio": round(ratio, 4),
            "peak_rss_mb": round(rep["peak_rss_mb"], 1),
            "db_bytes_per_customer": round(per_customer, 1),
            "served_p50_ms": round(srv["p50"], 2),
            "served_p99_ms": round(srv["p99"], 2),
            "served_lost": srv["lost"],
            "text_scorer": args.text_scorer,
        }
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

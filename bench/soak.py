"""tactful soak: ``tactful serve`` at a share of its measured maximum for minutes, watched.

Three phases against one real server (``tactful serve --durability full``, the default, in a
subprocess on a free loopback port, with a fresh temp database; real HTTP with httpx):

* **Prefill.** ``--prefill`` events (default 30 per customer) from 4 closed-loop senders,
  not counted: a server that has been running for a while holds customers whose windows
  are full and a full state cache, and that working size is what the soak should watch
  (from a cold start, RSS grows while the windows fill: bounded, but not flat for the
  first few hundred thousand events; ``--prefill 0`` shows that).
* **Calibrate.** Closed loop: K concurrent senders, each posting a batch of 50 events to
  ``POST /v1/events`` and waiting for its 202 before the next. First ``--warm-up`` seconds
  (default 15) with K = 2, not counted, so customers have some history and the database
  some rows (a fresh server is faster than one that has been running: the maximum would
  be overstated); then K = 1, 2, 4, 8 (and 16 if 8 was the best), ``--calibrate-seconds``
  each (default 5, after 1 s of their own warm-up). The accepted events/s of the best K is
  the server's maximum for this load shape (group commit lets more concurrency share an
  fsync; on a small machine the extra threads and connections can cost more than that).
  Caveat: this closed-loop maximum can overstate what the server sustains for long: a
  closed loop of many senders hands it big group commits, and the cost per event grows
  as customers' windows fill and the database grows. So the ladder is followed by open
  loops (an even stream, as the soak sends) offered from that maximum down in steps of
  15%, twice ``--calibrate-seconds`` each: the highest the server keeps up with
  (acknowledges 95% of the offered rate, p99 under 1 s) is the **sustained maximum**, and
  the soak's share is of that. ``--rate`` pins the soak's rate.
* **Soak.** Open loop at ``--share`` (default 0.8) of the sustained maximum (or at ``--rate``) for
  ``--minutes`` (default 10): a batch of 50 every ``50 / rate`` seconds, whatever the
  responses. Every ``--every`` seconds (default 10) one row: events sent and acknowledged
  so far, the interval's acknowledged rate, its latency p99 and max, requests in flight,
  the server's RSS, open file descriptors, TCP connections and threads (psutil on the
  server's pid), its CPU, this load generator's and the machine's, the database size (file
  plus WAL), the outbox backlog (counted on a read-only connection of the bench's own, not
  through the server), errors so far, and the customers seen so far.

The events are a realistic mix from many customers (``--customers``, default 10,000, all
of them introduced during the first minute or so, then picked with a Zipf-like skew):
about 30% messages (neutral, polite, confused, frustrated, happy, urgent, churn, asking for
a human; agents and bots too), page views, clicks (rage clicks when frustrated), searches,
commands, API errors, bot turns, identifies, tickets, feedback, failed payments. About
1,500 customer sessions are open at a time and events interleave across them, so one
customer's events are seconds apart. Timestamps are the wall clock at sending.

**Checks.** Every event sent must be acknowledged (202: accepted or duplicate), explicitly
rejected in the response, or in a request that failed visibly (non-2xx, transport error):
anything else is a silent drop. After the server has stopped (SIGINT, graceful), the
database is opened read-only and every acknowledged event id looked up: ``lost`` is
acknowledged events not stored (both phases) plus silent drops. **Flat**: the mean RSS of
the soak's second half is within 5% of its first half (``rss_flat``); file descriptors
other than sockets do not grow (``fds_flat``; sockets come and go with the connections in
flight and are reported apart); the outbox backlog does not grow. The database grows with
the data, as it should: reported as MB per minute and bytes per event.

The last line printed is one JSON object::

    {"events_sent", "events_processed", "lost", "rss_start_mb", "rss_end_mb", "p99_ms",
     "p50_ms", "max_ms", "rate", "max_rate", "share", "duration_s", "rss_flat", ...}

``events_sent`` and ``events_processed`` (acknowledged and found in the database) are the
soak phase's; ``p99_ms`` is from sending a batch to its 202 over the whole soak.

Usage: ``python bench/soak.py [--minutes M] [--share S | --rate R] [--quick] [--customers N]
[--prefill N] [--every S] [--text-scorer learned|lexical] [--cache-customers N] [--seed N]
[--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]  # no stubs in the dev extras

from benchkit import free_port, machine, percentile, stop_server, wait_healthy

BATCH = 50
MAX_ATTEMPTS = 3  # per batch, on transport errors only (ingest is idempotent on event_id)
RSS_FLAT_PCT = 5.0
SUSTAINED_P99_MS = 1000.0
OPEN_SESSIONS = 1_500
# uvicorn re-raises the SIGINT it caught once its graceful shutdown is done: 130 is clean.
CLEAN_EXITS = (0, 130, -signal.SIGINT)

# --- synthetic events (after bench/throughput.py) ----------------------------------------

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
    ],
    "happy": [
        "Thanks, that worked perfectly. Great docs!",
        "That fixed it, thank you so much!",
        "Love it, {feature} works great now. Cheers!",
    ],
    "urgent": [
        "{endpoint} is returning 500s and production is down for us. Urgent.",
        "Our checkout is blocked since this morning, we are losing sales. ASAP please.",
        "Critical: {feature} outage, we have a deadline today.",
    ],
    "churn": [
        "I'm done. Cancel my account.",
        "We're switching to a competitor next month. How do I close my account?",
        "Please cancel my subscription and refund the last invoice.",
        "We won't renew. {feature} never worked for us.",
    ],
    "human": [
        "Can I talk to a real person please?",
        "Please connect me with an agent, the bot isn't helping.",
        "I want to speak to a human, not a bot.",
    ],
}
AGENT_TEXTS = [
    "Thanks for reaching out, I'm looking into it now.",
    "I've escalated this to our engineers and will update you within the hour.",
    "Could you send me a screenshot of the error?",
]
BOT_TEXTS = [
    "I sent you a reset link.",
    "Here is an article that might help.",
    "Did that answer your question?",
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
]
QUERIES = [
    "invoice",
    "how do i send the api token",
    "SOC 2 report",
    "enterprise pricing",
    "webhook retries",
    "cancel subscription",
    "reset password",
    "rate limit",
]
COMMANDS = ["example init", "example deploy --prod", "example login", "example export --csv"]
TIERS = [("free", 0), ("starter", 600), ("pro", 4_800), ("enterprise", 120_000)]
STEPS = ["reset_password", "update_card", "find_invoice", "api_key", "change_plan"]
SUBJECTS = [
    "Card declined but my bank says it's fine",
    "Export stuck at 99%",
    "Cannot log in after password reset",
    "Webhook deliveries failing",
]


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Session:
    customer: str
    mood: str
    remaining: int
    element: str
    endpoint: str
    step: str
    previous: str = ""


class EventGen:
    """An endless, seeded stream of events from ``customers`` customers in open sessions.

    ``OPEN_SESSIONS`` sessions are open at once; each event goes to a random one, and a
    finished session is replaced by a new one. The first ``customers`` sessions introduce
    every customer once (in a shuffled order); later ones pick a customer with a Zipf-like
    skew, so some are much busier than others.
    """

    def __init__(self, seed: int, customers: int, prefix: str) -> None:
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.ids = [f"cust-{i:06d}" for i in range(customers)]
        self.rng.shuffle(self.ids)
        self.introduced = 0
        acc = 0.0
        self.cum: list[float] = []
        for rank in range(1, customers + 1):
            acc += 1.0 / rank**0.9
            self.cum.append(acc)
        self.n = 0
        self.kinds: Counter[str] = Counter()
        self.open_tickets: dict[str, list[str]] = {}
        self.sessions = [self._session() for _ in range(min(OPEN_SESSIONS, customers))]

    def _customer(self) -> str:
        if self.introduced < len(self.ids):
            self.introduced += 1
            return self.ids[self.introduced - 1]
        x = self.rng.random() * self.cum[-1]
        return self.ids[min(bisect.bisect_left(self.cum, x), len(self.ids) - 1)]

    def _session(self) -> _Session:
        rng = self.rng
        return _Session(
            customer=self._customer(),
            mood=rng.choices(list(MOODS), list(MOODS.values()))[0],
            remaining=min(40, 1 + int(rng.expovariate(1 / 4.5))),
            element=rng.choice(ELEMENTS),
            endpoint=rng.choice(ENDPOINTS),
            step=rng.choice(STEPS),
        )

    def batch(self, size: int = BATCH) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        return [self.event(now + timedelta(microseconds=i)) for i in range(size)]

    def event(self, at: datetime) -> dict[str, Any]:
        rng = self.rng
        k = rng.randrange(len(self.sessions))
        s = self.sessions[k]
        kind = self._kind(s)
        ev = self._event(s, kind, at)
        s.previous = kind
        s.remaining -= 1
        if s.remaining <= 0:
            self.sessions[k] = self._session()
        self.n += 1
        self.kinds[ev["type"]] += 1
        return ev

    def _kind(self, s: _Session) -> str:
        rng = self.rng
        # Rage clicks and error streaks: a frustrated session repeats what just failed.
        if s.previous in ("click", "api_error") and s.mood == "frustrated" and rng.random() < 0.6:
            return s.previous
        if rng.random() < MESSAGE_SHARE:
            return "message"
        return rng.choices(list(BEHAVIOUR_WEIGHTS), list(BEHAVIOUR_WEIGHTS.values()))[0]

    def _text(self, mood: str) -> str:
        rng = self.rng
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

    def _event(self, s: _Session, kind: str, at: datetime) -> dict[str, Any]:
        rng = self.rng
        ev: dict[str, Any] = {
            "event_id": f"{self.prefix}-{self.n:09d}",
            "type": kind,
            "customer_id": s.customer,
            "timestamp": _iso(at),
        }
        troubled = s.mood in ("frustrated", "urgent", "churn", "human")
        if kind == "identify" or rng.random() < 0.2:
            ev["account_id"] = f"acct-{int(s.customer.rsplit('-', 1)[1]) // 5:05d}"
        if kind == "message":
            role = rng.choices(["customer", "agent", "bot"], [85, 10, 5])[0]
            ev["role"] = role
            ev["channel"] = rng.choices(["chat", "email", "sms"], [70, 25, 5])[0]
            if role == "customer":
                ev["text"] = self._text(s.mood)
            else:
                ev["text"] = rng.choice(AGENT_TEXTS if role == "agent" else BOT_TEXTS)
            ev["conversation_id"] = f"conv-{s.customer}-{at.toordinal()}"
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
            tickets = self.open_tickets.setdefault(s.customer, [])
            if kind == "ticket_closed" and tickets:
                ev["ticket_id"] = tickets.pop(0)
                ev["resolution"] = rng.choices(["solved", "unsolved", "duplicate"], [80, 15, 5])[0]
            else:
                ev["type"] = "ticket_opened"
                ticket = f"T-{self.prefix}-{self.n:09d}"
                tickets.append(ticket)
                del tickets[:-5]  # keep the generator's memory bounded
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
        elif kind == "identify":
            tier, value = rng.choice(TIERS)
            ev["traits"] = {
                "tier": tier,
                "value": value,
                "lifecycle": rng.choice(["trial", "active", "active", "at_risk"]),
                "tenure_days": rng.randint(1, 1_500),
            }
        return ev


# --- sending, and what came back ----------------------------------------------------------


@dataclass
class Tally:
    """What one phase sent and what the server said about it, event by event."""

    sent: int = 0
    acked: int = 0  # in a 202 as accepted or duplicate
    duplicates: int = 0
    rejected: int = 0  # in a 2xx/422 answer as rejected, with the server's reasons
    failed_events: int = 0  # in a request that failed visibly (non-2xx, transport)
    requests: int = 0
    http_errors: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)  # given up on
    resent: Counter[str] = field(default_factory=Counter)  # attempts resent
    reject_reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    acked_ids: list[str] = field(default_factory=list)
    inflight: int = 0

    @property
    def unaccounted(self) -> int:
        """Events neither acknowledged, rejected nor in a failed request: silent drops."""
        return self.sent - self.acked - self.rejected - self.failed_events - self.inflight

    @property
    def failed_requests(self) -> int:
        return sum(self.http_errors.values()) + sum(self.transport_errors.values())


async def post_batch(
    client: httpx.AsyncClient, batch: list[dict[str, Any]], t: Tally
) -> tuple[int, float | None]:
    """Send one batch (resent on transport errors); (events acknowledged, ms to a 202)."""
    body = json.dumps(batch)
    t.sent += len(batch)
    t.requests += 1
    t.inflight += len(batch)
    try:
        t0 = time.perf_counter()
        resp: httpx.Response | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                resp = await client.post(
                    "/v1/events", content=body, headers={"content-type": "application/json"}
                )
                break
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS:
                    t.transport_errors[type(exc).__name__] += 1
                    t.failed_events += len(batch)
                    return 0, None
                t.resent[type(exc).__name__] += 1
        assert resp is not None
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if resp.status_code not in (202, 422):
            t.http_errors[f"HTTP {resp.status_code}"] += 1
            t.failed_events += len(batch)
            return 0, None
        try:
            data = resp.json()
            results = data["results"]
        except (ValueError, KeyError, TypeError):
            t.http_errors[f"HTTP {resp.status_code} unreadable body"] += 1
            t.failed_events += len(batch)
            return 0, None
        latency: float | None = None
        if resp.status_code == 422:
            t.http_errors["HTTP 422 (whole batch rejected)"] += 1
        else:
            latency = elapsed_ms
            t.latencies_ms.append(elapsed_ms)
        acked = 0
        if len(results) != len(batch):
            t.http_errors[f"{len(results)} results for {len(batch)} events"] += 1
        for r in results:
            if r["status"] in ("accepted", "duplicate"):
                t.acked += 1
                acked += 1
                t.duplicates += r["status"] == "duplicate"
                t.acked_ids.append(r["event_id"])
            else:
                t.rejected += 1
                for e in r.get("errors") or [{}]:
                    t.reject_reasons[f"{e.get('field')}: {e.get('why')}"[:120]] += 1
        # results missing from the answer count as failed, so nothing goes unaccounted
        t.failed_events += max(0, len(batch) - len(results))
        return acked, latency
    finally:
        t.inflight -= len(batch)


def new_client(url: str) -> httpx.AsyncClient:
    # Drop idle connections well before uvicorn's 5 s keep-alive timeout closes them, so a
    # request is not sent on a connection the server is closing.
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2.0)
    return httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits)


# --- phase 1: calibrate --------------------------------------------------------------------


async def closed_loop(
    client: httpx.AsyncClient, gen: EventGen, t: Tally, senders: int, seconds: float, warm: float
) -> tuple[float, float]:
    """(acknowledged events/s, p99 ms) of ``senders`` back-to-back senders after ``warm`` s."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    window_start, end = started + warm, started + warm + seconds
    acked_in_window = 0
    lat: list[float] = []

    async def sender() -> None:
        nonlocal acked_in_window
        while loop.time() < end:
            acked, ms = await post_batch(client, gen.batch(), t)
            if loop.time() >= window_start:
                acked_in_window += acked
                if ms is not None:
                    lat.append(ms)

    await asyncio.gather(*(sender() for _ in range(senders)))
    # the window closes when the last sender's last request comes back
    return acked_in_window / max(loop.time() - window_start, 1e-9), percentile(lat, 0.99)


async def calibrate(
    client: httpx.AsyncClient, gen: EventGen, t: Tally, seconds: float, warm_up: float
) -> tuple[float, int]:
    """(best accepted events/s, its senders): a warm-up, then the ladder of senders."""
    rate, _ = await closed_loop(client, gen, t, 2, warm_up, 0.0)
    print(
        f"  warm-up (2 senders, not counted): {t.acked:,} events in {warm_up:g} s "
        f"({rate:,.0f}/s), {gen.introduced:,} customers seen",
        flush=True,
    )
    best, best_k = 0.0, 0
    warm = min(1.0, seconds / 4)
    for k in (1, 2, 4, 8, 16):
        if k == 16 and best_k != 8:
            break
        psutil.cpu_percent(None)
        rate, p99 = await closed_loop(client, gen, t, k, seconds, warm)
        print(
            f"  {k:>2} senders: {rate:8,.0f} events/s accepted, p99 {p99:7.1f} ms "
            f"(machine CPU {psutil.cpu_percent(None):.0f}%)",
            flush=True,
        )
        if rate > best:
            best, best_k = rate, k
    return best, best_k


async def prefill(client: httpx.AsyncClient, gen: EventGen, t: Tally, events: int) -> None:
    """Closed loop (4 senders) until ``events`` are sent: customers' windows and the
    server's caches reach their working size before anything is measured (a server that
    has run for a day holds full states; a fresh one grows while they fill)."""
    if events <= 0:
        return
    loop = asyncio.get_running_loop()
    started, goal = loop.time(), t.sent + events
    next_note = started + 30

    async def sender() -> None:
        nonlocal next_note
        while t.sent < goal:
            await post_batch(client, gen.batch(), t)
            if loop.time() >= next_note:
                next_note += 30
                print(f"    {t.sent:,} of {goal:,} sent", flush=True)

    await asyncio.gather(*(sender() for _ in range(4)))
    took = loop.time() - started
    print(
        f"  prefill (4 senders, not counted): {events:,} events in {took:.0f} s "
        f"({events / took:,.0f}/s), {gen.introduced:,} customers seen",
        flush=True,
    )


async def open_loop(
    client: httpx.AsyncClient, gen: EventGen, t: Tally, rate: float, seconds: float
) -> tuple[float, float]:
    """Offer ``rate`` events/s for ``seconds`` whatever the answers; (acknowledged
    events/s counting until the last answer, p99 ms)."""
    loop = asyncio.get_running_loop()
    interval = BATCH / rate
    acked0, lat0 = t.acked, len(t.latencies_ms)
    started = loop.time()
    tasks = []
    for k in range(max(1, round(seconds / interval))):
        delay = started + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post_batch(client, gen.batch(), t)))
    await asyncio.gather(*tasks)
    took = max(loop.time() - started, seconds)
    return (t.acked - acked0) / took, percentile(t.latencies_ms[lat0:], 0.99)


async def sustained(
    client: httpx.AsyncClient, gen: EventGen, t: Tally, closed_max: float, seconds: float
) -> float:
    """The highest open-loop rate the server keeps up with: offered rates from the closed
    loop's maximum down in steps of 15%, ``seconds`` each; kept up = acknowledged at least
    95% of the offered rate (counting until the last answer) with p99 under a second. A
    closed loop of many senders hands the server big group commits, so its maximum
    overstates what an even stream sustains (at 80% of it the server fell behind)."""
    for share in (1.0, 0.85, 0.7, 0.55, 0.4, 0.25):
        offered = share * closed_max
        got, p99 = await open_loop(client, gen, t, offered, seconds)
        ok = got >= 0.95 * offered and p99 < SUSTAINED_P99_MS
        print(
            f"  open loop {offered:8,.0f} events/s offered: {got:8,.0f} acknowledged/s, "
            f"p99 {p99:7.1f} ms: {'kept up' if ok else 'fell behind'}",
            flush=True,
        )
        if ok:
            return offered
    return 0.25 * closed_max


# --- phase 2: soak -------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    sent: int
    acked: int
    rate: float  # acknowledged events/s in the interval
    p99_ms: float
    max_ms: float
    inflight: int  # events in requests not yet answered
    rss_mb: float
    fds: int
    conns: int
    threads: int
    cpu_srv: float  # the server process, % of one core
    cpu_cli: float  # this load generator, % of one core
    cpu_sys: float  # the machine, % of all cores
    db_mb: float  # database file + WAL
    wal_mb: float
    outbox: int  # pending actions, from /healthz (-1 if it did not answer)
    errors: int
    lag_ms: float  # the sender's worst lateness against its schedule in the interval
    customers: int  # distinct customers sent so far (the server caches their states)

    @property
    def other_fds(self) -> int:
        return self.fds - self.conns


def db_bytes(db: Path) -> tuple[int, int]:
    size = db.stat().st_size if db.exists() else 0
    wal = Path(f"{db}-wal")
    return size, wal.stat().st_size if wal.exists() else 0


def outbox_pending(db: Path) -> int:
    """Pending actions, read from the database on a read-only connection of our own (WAL:
    it does not block the server's writer), rather than asking the server's /healthz,
    whose counts scan the events table while the server is under load."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            (n,) = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return -1
    return int(n)


class Watch:
    """Samples the server process (psutil), the database files and the tally."""

    def __init__(self, pid: int, db: Path, gen: EventGen) -> None:
        self.gen = gen
        self.proc = psutil.Process(pid)
        self.db = db
        self.me = psutil.Process()
        self.proc.cpu_percent(None)
        self.me.cpu_percent(None)
        psutil.cpu_percent(None)
        self.acked = 0
        self.lat_index = 0
        self.lag = 0.0  # the sender's worst lateness since the last sample (set by it)
        self.last = time.perf_counter()

    async def sample(self, t: float, tally: Tally) -> Sample:
        outbox = await asyncio.to_thread(outbox_pending, self.db)
        p = self.proc
        with p.oneshot():
            rss = p.memory_info().rss / 2**20
            fds = p.num_fds()
            threads = p.num_threads()
            cpu = p.cpu_percent(None)
        conns = len(p.net_connections(kind="inet"))
        size, wal = db_bytes(self.db)
        now = time.perf_counter()
        dt = now - self.last
        lat = tally.latencies_ms[self.lat_index :]
        out = Sample(
            t=t,
            sent=tally.sent,
            acked=tally.acked,
            rate=(tally.acked - self.acked) / dt if t > 0 and dt > 0 else 0.0,
            p99_ms=percentile(lat, 0.99),
            max_ms=max(lat, default=float("nan")),
            inflight=tally.inflight,
            rss_mb=rss,
            fds=fds,
            conns=conns,
            threads=threads,
            cpu_srv=cpu,
            cpu_cli=self.me.cpu_percent(None),
            cpu_sys=psutil.cpu_percent(None),
            db_mb=(size + wal) / 1e6,
            wal_mb=wal / 1e6,
            outbox=outbox,
            errors=tally.failed_requests + tally.rejected,
            lag_ms=self.lag * 1000,
            customers=self.gen.introduced,
        )
        self.acked, self.lat_index, self.lag, self.last = (
            tally.acked,
            len(tally.latencies_ms),
            0.0,
            now,
        )
        return out


HEADER = (
    f"{'t_s':>5} {'sent':>9} {'acked':>9} {'ack/s':>6} {'p99ms':>7} {'maxms':>7} "
    f"{'infl':>5} {'rss_mb':>7} {'fds':>4} {'conn':>4} {'thr':>3} {'srv%':>4} {'cli%':>4} "
    f"{'sys%':>4} {'db_mb':>7} {'wal_mb':>6} {'outbox':>6} {'err':>4} {'lag_ms':>6} {'cust':>6}"
)


def row(s: Sample) -> str:
    return (
        f"{s.t:5.0f} {s.sent:9,} {s.acked:9,} {s.rate:6.0f} {s.p99_ms:7.1f} {s.max_ms:7.1f} "
        f"{s.inflight:5} {s.rss_mb:7.1f} {s.fds:4} {s.conns:4} {s.threads:3} {s.cpu_srv:4.0f} "
        f"{s.cpu_cli:4.0f} {s.cpu_sys:4.0f} {s.db_mb:7.1f} {s.wal_mb:6.1f} {s.outbox:6} "
        f"{s.errors:4} {s.lag_ms:6.0f} {s.customers:6}"
    )


async def soak(
    client: httpx.AsyncClient,
    gen: EventGen,
    t: Tally,
    watch: Watch,
    rate: float,
    seconds: float,
    every: float,
) -> tuple[list[Sample], float, float]:
    """Open loop at ``rate``, sampled every ``every`` s by a task of its own; returns
    (samples, sending seconds, drain seconds)."""
    loop = asyncio.get_running_loop()
    interval = BATCH / rate
    n_batches = max(1, round(seconds / interval))
    tasks: set[asyncio.Task[Any]] = set()
    samples = [await watch.sample(0.0, t)]
    print(HEADER)
    print(row(samples[0]), flush=True)
    started = loop.time() + 0.05
    sending = True

    async def sampler() -> None:
        k = 1
        while sending:
            await asyncio.sleep(max(0.0, started + k * every - loop.time()))
            if not sending:
                return
            s = await watch.sample(loop.time() - started, t)
            samples.append(s)
            print(row(s), flush=True)
            k += 1

    sampling = asyncio.create_task(sampler())
    for k in range(n_batches):
        due = started + k * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        watch.lag = max(watch.lag, loop.time() - due)
        task = asyncio.create_task(post_batch(client, gen.batch(), t))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    last_send = loop.time()
    sending = False
    sampling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampling
    if tasks:
        await asyncio.gather(*tasks)
    drain = loop.time() - last_send
    s = await watch.sample(loop.time() - started, t)
    samples.append(s)
    print(row(s) + "  (after the last answer)", flush=True)
    return samples, last_send - started + interval, drain


# --- the server ----------------------------------------------------------------------------


def stored_ids(db: Path, prefix: str) -> tuple[set[str], int]:
    """(event ids starting with ``prefix``, quarantined rows), read-only after the stop."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = {
            r[0]
            for r in conn.execute(
                "SELECT event_id FROM events WHERE event_id >= ? AND event_id < ?",
                (prefix, prefix + "\x7f"),
            )
        }
        (quarantined,) = conn.execute("SELECT count(*) FROM quarantine").fetchone()
    finally:
        conn.close()
    return ids, int(quarantined)


# --- report --------------------------------------------------------------------------------


def slope_per_min(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per minute."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _r(v: float, nd: int = 2) -> float | None:
    return round(v, nd) if math.isfinite(v) else None


async def run(
    url: str, pid: int, db: Path, args: argparse.Namespace, prefix: str
) -> dict[str, Any]:
    gen = EventGen(args.seed, args.customers, prefix)
    async with new_client(url) as client:
        cal = Tally()
        print(
            f"calibrate: closed loop, batches of {BATCH}, {args.calibrate_seconds:g} s per "
            f"level after {args.warm_up:g} s of warm-up ...",
            flush=True,
        )
        await prefill(client, gen, cal, args.prefill)
        closed_max, senders = await calibrate(
            client, gen, cal, args.calibrate_seconds, args.warm_up
        )
        if closed_max <= 0:
            raise SystemExit("calibration accepted nothing; see the server log")
        max_rate = await sustained(client, gen, cal, closed_max, args.calibrate_seconds * 2)
        rate = args.rate or args.share * max_rate
        print(
            f"maximum: {max_rate:,.0f} events/s sustained in an open loop (closed loop: "
            f"{closed_max:,.0f} with {senders} senders); soak at "
            + (f"--rate {rate:,.0f}" if args.rate else f"{args.share:.0%}: {rate:,.0f}")
            + f" events/s ({rate / max_rate:.0%}, {rate / BATCH:.1f} batches/s) for "
            f"{args.minutes:g} min; {gen.introduced:,} of {args.customers:,} customers seen so far",
            flush=True,
        )
        watch = Watch(pid, db, gen)
        tally = Tally()
        srv0, cli0 = sum(watch.proc.cpu_times()[:2]), sum(watch.me.cpu_times()[:2])
        samples, seconds, drain = await soak(
            client, gen, tally, watch, rate, args.minutes * 60, args.every
        )
        srv_cpu = sum(watch.proc.cpu_times()[:2]) - srv0
        cli_cpu = sum(watch.me.cpu_times()[:2]) - cli0
    return {
        "gen": gen,
        "cal": cal,
        "tally": tally,
        "samples": samples,
        "max_rate": max_rate,
        "closed_loop_max": closed_max,
        "senders": senders,
        "rate": rate,
        "seconds": seconds,
        "drain": drain,
        "server_cpu_s": srv_cpu,
        "client_cpu_s": cli_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--minutes", type=float, default=10.0, help="soak duration in minutes (default 10)"
    )
    ap.add_argument(
        "--share",
        type=float,
        default=0.8,
        help="share of the measured maximum to offer during the soak (default 0.8)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=None,
        help="soak at this many events/s instead of --share of the measured maximum (the "
        "calibration still runs and is reported): for runs comparable across noisy machines",
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 min soak, 5 s warm-up, 2 s per level"
    )
    ap.add_argument(
        "--calibrate-seconds",
        type=float,
        default=5.0,
        help="measured seconds per calibration level, after 1 s of its own (default 5; 2 "
        "with --quick)",
    )
    ap.add_argument(
        "--warm-up",
        type=float,
        default=15.0,
        help="seconds of closed-loop load before the calibration levels, so the maximum is "
        "measured on customers with history, not a fresh server (default 15; 5 with --quick)",
    )
    ap.add_argument(
        "--customers", type=int, default=10_000, help="distinct customers (default 10,000)"
    )
    ap.add_argument(
        "--prefill",
        type=int,
        default=None,
        help="events sent before calibrating, not counted, so customers' windows and the "
        "server's caches have reached their working size (default 30 per customer; 0 for "
        "none: the soak then measures a cold server filling up)",
    )
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples (10)")
    ap.add_argument(
        "--text-scorer",
        choices=["learned", "lexical"],
        default="learned",
        help="the server's text scorer, as `tactful serve --text-scorer` (default learned)",
    )
    ap.add_argument(
        "--cache-customers",
        type=int,
        default=None,
        help="the server's --cache-customers (default: serve's own, 20,000); below "
        "--customers, RSS is bounded by the cache and the rest come from the database",
    )
    ap.add_argument("--seed", type=int, default=7, help="random seed for the events")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    if args.prefill is None:
        args.prefill = 0 if args.quick else 30 * args.customers
    if args.quick:
        args.minutes, args.calibrate_seconds, args.warm_up = 1.0, 2.0, 5.0
    if not 0 < args.share <= 1.5:
        ap.error("--share: between 0 and 1.5")
    if args.rate is not None and args.rate <= 0:
        ap.error("--rate: more than 0")

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(machine(cpu_extra=f"; load average {load}"))
    tmp = Path(tempfile.mkdtemp(prefix="tactful-soak-"))
    db = tmp / "tactful.db"
    log = tmp / "serve.log"
    actions = tmp / "actions.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prefix = f"soak{args.seed}"
    cmd = [sys.executable, "-m", "tactful.cli", "serve", "--db", str(db), "--port", str(port)]
    cmd += ["--durability", "full", "--actions-log", str(actions)]
    cmd += ["--text-scorer", args.text_scorer]
    if args.cache_customers is not None:
        cmd += ["--cache-customers", str(args.cache_customers)]
    print(f"server: {' '.join(cmd[3:])}")
    wall = time.perf_counter()
    try:
        with log.open("wb") as log_fh:
            proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
            try:
                t0 = time.perf_counter()
                wait_healthy(proc, url, log, deadline_s=120)
                rss0 = psutil.Process(proc.pid).memory_info().rss / 2**20
                print(f"server up in {time.perf_counter() - t0:.1f} s, RSS {rss0:.1f} MB")
                out = asyncio.run(run(url, proc.pid, db, args, prefix))
            finally:
                stop_t = time.perf_counter()
                code = stop_server(proc, grace_s=30)
                stop_s = time.perf_counter() - stop_t
        log_text = log.read_text(errors="replace")
        summary = report(out, args, db, prefix, code, stop_s, log_text, actions, wall)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0 if summary["lost"] == 0 and summary["silent_drops"] == 0 else 1


def report(
    out: dict[str, Any],
    args: argparse.Namespace,
    db: Path,
    prefix: str,
    code: int | None,
    stop_s: float,
    log_text: str,
    actions: Path,
    wall: float,
) -> dict[str, Any]:
    cal: Tally = out["cal"]
    t: Tally = out["tally"]
    samples: list[Sample] = out["samples"]
    gen: EventGen = out["gen"]
    size, wal = db_bytes(db)
    stored, quarantined = stored_ids(db, prefix)
    missing_soak = len(set(t.acked_ids) - stored)
    missing_cal = len(set(cal.acked_ids) - stored)
    silent = cal.unaccounted + t.unaccounted
    lost = missing_soak + missing_cal + silent
    processed = len(set(t.acked_ids) & stored)
    unacked_stored = len(stored) - len(set(t.acked_ids) | set(cal.acked_ids))

    # Flat: compare the soak's halves (the first sample is taken before the soak starts).
    body = samples[1:] or samples
    half = body[-1].t / 2
    first = [s for s in body if s.t <= half] or body
    second = [s for s in body if s.t > half] or body
    rss1, rss2 = mean([s.rss_mb for s in first]), mean([s.rss_mb for s in second])
    rss_growth = (rss2 - rss1) / rss1 * 100
    rss_slope2 = slope_per_min([s.t for s in second], [s.rss_mb for s in second])
    rss_flat = rss_growth <= RSS_FLAT_PCT
    other1 = max(s.other_fds for s in first)
    other2 = max(s.other_fds for s in second)
    fds_flat = other2 <= other1
    outbox1 = max(s.outbox for s in first)
    outbox2 = max(s.outbox for s in second)
    threads1 = max(s.threads for s in first)
    threads2 = max(s.threads for s in second)
    start, end = samples[0], samples[-1]
    minutes = (end.t - start.t) / 60
    db_growth = (end.db_mb - start.db_mb) / minutes if minutes > 0 else float("nan")
    bytes_per_event = (end.db_mb - start.db_mb) * 1e6 / max(t.acked, 1)
    p50, p99 = percentile(t.latencies_ms, 0.50), percentile(t.latencies_ms, 0.99)
    p999 = percentile(t.latencies_ms, 0.999)
    worst = max(t.latencies_ms, default=float("nan"))
    spikes = [s for s in samples[1:] if s.p99_ms > 2 * p99]
    achieved = t.sent / out["seconds"] if out["seconds"] else 0.0
    log_lines = [
        ln
        for ln in log_text.splitlines()
        if ln.strip() and not ln.startswith(("tactful API on", "INFO"))
    ]
    actions_mb = actions.stat().st_size / 1e6 if actions.exists() else 0.0

    print()
    print("== soak ==")
    print(
        f"  maximum sustained (open loop) {out['max_rate']:,.0f} events/s (closed loop, "
        f"{out['senders']} senders: {out['closed_loop_max']:,.0f}); "
        f"offered {out['rate']:,.0f} events/s ({out['rate'] / out['max_rate']:.0%}), "
        f"achieved {achieved:,.0f} over {out['seconds']:.0f} s; last answer "
        f"{out['drain'] * 1000:.0f} ms after the last send"
    )
    print(
        f"  events: {gen.n:,} generated from {args.customers:,} customers ({gen.introduced:,} "
        f"seen), " + ", ".join(f"{k} {v / max(gen.n, 1):.0%}" for k, v in gen.kinds.most_common(6))
    )
    for name, x in (("calibration", cal), ("soak", t)):
        print(
            f"  {name:<11}: sent {x.sent:,} in {x.requests:,} requests; acknowledged "
            f"{x.acked:,} ({x.duplicates:,} duplicates), rejected {x.rejected:,}, in failed "
            f"requests {x.failed_events:,}, silent drops {x.unaccounted:,}"
            + (f"; HTTP {dict(x.http_errors)}" if x.http_errors else "")
            + (f"; transport {dict(x.transport_errors)}" if x.transport_errors else "")
            + (f"; resent {dict(x.resent)}" if x.resent else "")
        )
        if x.reject_reasons:
            print(f"    rejected because: {dict(x.reject_reasons.most_common(5))}")
    print(
        f"  on disk after the stop (exit {code}, {stop_s:.1f} s): {len(stored):,} events; "
        f"acknowledged but missing: soak {missing_soak:,}, calibration {missing_cal:,}; "
        f"stored without acknowledgement {unacked_stored:,}; quarantine rows {quarantined:,}"
    )
    print(
        f"  latency send->202 (soak): p50 {p50:.1f} ms, p99 {p99:.1f} ms, p99.9 {p999:.1f} ms, "
        f"max {worst:.1f} ms; intervals with p99 > 2x overall: {len(spikes)}"
        + (f" (at t={', '.join(f'{s.t:.0f}' for s in spikes[:8])} s)" if spikes else "")
    )
    print(
        f"  RSS: {start.rss_mb:.1f} -> {end.rss_mb:.1f} MB; mean first half {rss1:.1f}, second "
        f"half {rss2:.1f} ({rss_growth:+.1f}%), slope over the second half {rss_slope2:+.2f} "
        f"MB/min; flat (<= {RSS_FLAT_PCT:g}%): {rss_flat}"
    )
    print(
        f"  fds: {start.fds} -> {end.fds} (sockets {start.conns} -> {end.conns}); non-socket "
        f"max first half {other1}, second half {other2}; flat: {fds_flat}; threads max "
        f"{threads1} -> {threads2}"
    )
    print(
        f"  outbox pending max first half {outbox1:,}, second half {outbox2:,}; actions log "
        f"{actions_mb:.1f} MB"
    )
    print(
        f"  database: {start.db_mb:.1f} -> {end.db_mb:.1f} MB (file {size / 1e6:.1f} + WAL "
        f"{wal / 1e6:.1f} after the stop): {db_growth:.1f} MB/min, {bytes_per_event:,.0f} "
        f"bytes per acknowledged event"
    )
    print(
        f"  CPU during the soak: server {out['server_cpu_s']:.0f} s "
        f"({out['server_cpu_s'] / max(t.acked, 1) * 1e6:.0f} us per event), load generator "
        f"{out['client_cpu_s']:.0f} s, over {out['seconds']:.0f} s on {os.cpu_count()} cores"
    )
    if code not in CLEAN_EXITS:
        print(f"  WARNING: server exit code {code}")
    if log_lines:
        print(f"  server log: {len(log_lines)} lines beyond the banner; the last ones:")
        for ln in log_lines[-12:]:
            print(f"    {ln[:200]}")
    print()
    return {
        "events_sent": t.sent,
        "events_processed": processed,
        "lost": lost,
        "rss_start_mb": _r(start.rss_mb, 1),
        "rss_end_mb": _r(end.rss_mb, 1),
        "p99_ms": _r(p99),
        "p50_ms": _r(p50),
        "p999_ms": _r(p999),
        "max_ms": _r(worst),
        "rate": _r(out["rate"], 1),
        "achieved_rate": _r(achieved, 1),
        "max_rate": _r(out["max_rate"], 1),
        "closed_loop_max_rate": _r(out["closed_loop_max"], 1),
        "closed_loop_senders": out["senders"],
        "prefill_events": args.prefill,
        "share": _r(out["rate"] / out["max_rate"], 3),
        "duration_s": _r(out["seconds"], 1),
        "wall_s": _r(time.perf_counter() - wall, 1),
        "rejected": t.rejected + cal.rejected,
        "failed_requests": t.failed_requests + cal.failed_requests,
        "silent_drops": silent,
        "rss_first_half_mb": _r(rss1, 1),
        "rss_second_half_mb": _r(rss2, 1),
        "rss_growth_pct": _r(rss_growth),
        "rss_flat": rss_flat,
        "rss_slope_second_half_mb_per_min": _r(rss_slope2),
        "fds_start": start.fds,
        "fds_end": end.fds,
        "fds_flat": fds_flat,
        "threads_end": end.threads,
        "outbox_pending_end": end.outbox,
        "db_mb_start": _r(start.db_mb),
        "db_mb_end": _r(end.db_mb),
        "db_mb_per_min": _r(db_growth),
        "db_bytes_per_event": _r(bytes_per_event, 0),
        "calibration_events_sent": cal.sent,
        "server_cpu_s": _r(out["server_cpu_s"], 1),
        "client_cpu_s": _r(out["client_cpu_s"], 1),
        "server_exit": code,
        "customers": args.customers,
        "cache_customers": args.cache_customers,
        "text_scorer": args.text_scorer,
    }


if __name__ == "__main__":
    sys.exit(main())

"""tactful dispatch benchmark: actions through the outbox to a local HTTP receiver.

What is measured, in one run, with a real ``tactful dispatch`` process delivering signed
webhooks to a real HTTP receiver on loopback:

* **Receiver.** A subprocess running a small asyncio HTTP/1.1 server (keep-alive, no
  framework, so it stays far from being the bottleneck on a small machine). Each POST is
  checked with ``tactful.actions.signing.verify`` and its envelope's ``id`` must equal its
  ``Idempotency-Key``; it dedupes on that key and records, per key, the wall-clock time it
  first arrived and how many times it arrived. An action "takes effect" the first time its
  key arrives; a later arrival with the same key is a *re-send* (allowed: that is what the
  key is for). As a check the key cannot make itself, it also fingerprints the action
  (type, customer, created_at, data): the same action arriving under a *different* key
  would take effect twice, and is counted as a *duplicate*. "Down" means truly down:
  the listening socket is closed (new connections are refused, ECONNREFUSED) and open
  keep-alive connections are aborted; "up" listens again on the same port.
* **Actions.** Produced by the real engine in this process
  (``Engine(SQLiteStore(db, durability="full"), PolicyEngine(policy))``, lexical text
  tier) on a temp SQLite database, from customer messages that the shipped default policy
  acts on ("talk to a human", a confused question, a frustrated one, an invoice question;
  one new customer each), with the policy's ``channels: [crm]`` and ``delivery:`` routing
  every deliverable kind to ``crm``: ~1.5 actions per event (handoff.created,
  hold.started, message.suggested). The dispatcher is ``python -m tactful.cli dispatch
  --db ... --channels ... --policy ...`` in its own process (its CPU and RSS are sampled
  with psutil every 150 ms), with ``crm`` a signed webhook of ``--concurrency`` workers.
* **Throughput (actions_per_s).** ``--actions`` actions are committed first (no dispatcher
  running), then the dispatcher starts on that backlog: drain throughput is the actions
  over the time from the first to the last first-time arrival at the receiver (the rate
  including the interpreter's start-up is printed beside it).
* **Baseline.** The issue names none, so: what a team would write first, a synchronous
  loop that POSTs the same rows (same envelope, same signature) one at a time with
  ``httpx.post`` (a new connection each, no retries, no worker pool, no bookkeeping in the
  database), over the first ``--baseline-actions`` rows. Also printed: the same loop
  with one ``httpx.Client`` (keep-alive). ``ratio`` = dispatcher drain rate / naive rate.
* **Latency (p99_delivery_ms).** With the dispatcher running and idle, the engine commits
  actions at a steady ``--rate`` actions/s for ``--steady-seconds`` (open loop, a small
  batch every 20 ms), so latency is not a backlog drain. Per action: receiver first
  arrival minus the outbox row's ``created_at`` (the engine's wall clock when the batch
  that committed it started: the decision's commit time), p50/p95/p99/max. Beside it: from
  the moment ``engine.ingest`` returned (committed, a few ms later), and the dispatcher's
  own ``delivered_at - created_at`` (it marks a round delivered after its responses).
* **Outage.** Production continues at ``--rate``; after 2 s the receiver goes down for
  ``--outage-seconds``; then up; production stops 5 s after that, and the run waits (at
  most ``--recovery-timeout``) until the receiver has every action. Reported: outbox depth
  peak, the dispatcher's peak RSS (against its steady-phase peak), failed attempts and the
  attempts per action, dead-lettered rows, time to drain after recovery, how much of it
  was waiting on retry backoff (the dispatcher's RetryPolicy: 8 attempts, 1 s base
  doubling, x0.5-1 jitter, so a row that failed 5 times during a 30 s outage is not due
  again until up to 32 s later), and the exactly-once checks: every crm action committed
  was received, the receiver got exactly that set of keys, nothing took effect twice.

The last line printed is one JSON object::

    {"actions_per_s", "p99_delivery_ms", "outage_delivered_all", "outage_duplicates",
     "outage_peak_rss_mb"}

``actions_per_s``: the drain throughput above; ``p99_delivery_ms``: the steady phase's
p99 from commit (created_at) to first arrival; ``outage_delivered_all``: every action of
the outage phase arrived and the receiver's set of keys equals the outbox's crm actions;
``outage_duplicates``: outage-phase actions that took effect twice (re-sends with the
same key are reported separately); ``outage_peak_rss_mb``: the dispatcher's peak RSS from
the outage's start to its last delivery. The exit status is 1 when an exactly-once check
fails (something not delivered, or an action that took effect twice), else 0.

Usage: ``python bench/dispatch.py [--actions N] [--rate R] [--outage-seconds S]
[--steady-seconds S] [--concurrency C] [--baseline-actions N] [--recovery-timeout S]
[--quick] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped,unused-ignore]  # no stubs in the dev extras

from benchkit import machine, percentile

CHANNEL = "crm"
SECRET = "whsec_bench_0123456789abcdef"
SECRET_ENV = "TACTFUL_BENCH_CRM_SECRET"
ROUTING = (
    "\nchannels: [crm]\ndelivery:\n  handoff.created: [crm]\n  hold.started: [crm]\n"
    "  hold.released: [crm]\n  message.suggested: [crm]\n"
)
# Messages the shipped default policy acts on; one new customer each.
TEXTS = [
    "I want to speak to a human",  # handoff.created + hold.started
    "I don't understand where the token goes. Is it in a header?",  # message.suggested
    "This is the third time the export failed. Nothing works!!",  # hold + message
    "Where can I download my invoices?",  # message.suggested
]
TICK_S = 0.02  # the paced producer commits a small batch this often
SAMPLE_S = 0.15  # dispatcher RSS and outbox depth sampling period
OUTAGE_LEAD_S = 2.0  # production before the receiver goes down
OUTAGE_TAIL_S = 5.0  # production after it is up again
PREFILL_BATCH = 200  # events per ingest call while filling the backlog
MAX_ATTEMPTS = 8  # RetryPolicy().max_attempts, for the printout


# --- the receiver (a child process) ------------------------------------------------------

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


def _response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive: request line, headers, Content-Length body."""

    def __init__(self, conns: set[asyncio.Transport]) -> None:
        self.conns = conns
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, path, *_ = lines[0].split(" ")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self.handle(method, path, headers, body)
            if headers.get("connection", "").lower() == "close":
                self.transport.close()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        raise NotImplementedError

    def answer(self, status: int, body: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_response(status, body))


@dataclass
class _Receiver:
    secret: str
    port: int = 0
    first: dict[str, float] = field(default_factory=dict)  # key -> first arrival (wall)
    count: Counter[str] = field(default_factory=Counter)  # key -> arrivals
    fingerprints: dict[str, str] = field(default_factory=dict)  # action content -> key
    dup_effects: list[list[str]] = field(default_factory=list)  # [first key, other key]
    problems: Counter[str] = field(default_factory=Counter)  # refused requests, by why
    aborted: int = 0  # connections cut when going down
    transitions: list[list[Any]] = field(default_factory=list)  # ["down"|"up", wall]
    hook_conns: set[asyncio.Transport] = field(default_factory=set)
    ctl_conns: set[asyncio.Transport] = field(default_factory=set)
    server: asyncio.Server | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def deliver(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        from tactful.actions.signing import SignatureError, verify

        now = time.time()
        try:
            verify(self.secret, body, headers.get("tactful-signature"))
        except SignatureError as exc:
            self.problems[f"signature: {str(exc)[:60]}"] += 1
            return 400, b'{"error":"signature"}'
        key = headers.get("idempotency-key", "")
        try:
            env = json.loads(body)
        except ValueError:
            self.problems["body is not JSON"] += 1
            return 400, b'{"error":"json"}'
        if not key or env.get("id") != key:
            self.problems["envelope id != Idempotency-Key"] += 1
            return 400, b'{"error":"key"}'
        self.count[key] += 1
        if key not in self.first:  # honour the idempotency key: act once
            self.first[key] = now
            content = [env.get("type"), env.get("customer_id"), env.get("created_at")]
            content.append(env.get("data"))
            fp = hashlib.blake2b(
                json.dumps(content, sort_keys=True).encode(), digest_size=16
            ).hexdigest()
            other = self.fingerprints.setdefault(fp, key)
            if other != key:  # the same action under another key: it acted twice
                self.dup_effects.append([other, key])
        return 200, b'{"ok":true}'

    async def listen(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _Hook(self), "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    def down(self) -> None:
        if self.server is not None:
            self.server.close()  # the listening socket is closed: connections are refused
            self.server = None
        for transport in list(self.hook_conns):
            transport.abort()  # keep-alive connections cut, requests in flight lost
            self.aborted += 1
        self.transitions.append(["down", time.time()])

    def stats(self) -> dict[str, Any]:
        return {
            "effects": len(self.first),
            "raw": sum(self.count.values()),
            "problems": sum(self.problems.values()),
            "up": self.server is not None,
        }

    def dump(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "resent": {k: n - 1 for k, n in self.count.items() if n > 1},
            "dup_effects": self.dup_effects,
            "problems": dict(self.problems),
            "aborted": self.aborted,
            "transitions": self.transitions,
        }

    def reset(self) -> None:
        self.first.clear()
        self.count.clear()
        self.fingerprints.clear()
        self.dup_effects.clear()
        self.problems.clear()
        self.aborted = 0
        self.transitions.clear()


class _Hook(_HttpProtocol):
    def __init__(self, rx: _Receiver) -> None:
        super().__init__(rx.hook_conns)
        self.rx = rx

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if method != "POST":
            self.answer(404, b"{}")
            return
        self.answer(*self.rx.deliver(headers, body))


class _Control(_HttpProtocol):
    """POST /down, /up, /reset, /quit; GET /stats, /dump. One request at a time."""

    def __init__(self, rx: _Receiver) -> None:
        super().__init__(rx.ctl_conns)
        self.rx = rx
        self.pending: asyncio.Future[None] | None = None  # an /up in progress

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        rx = self.rx
        if path == "/up":

            async def up() -> None:
                if rx.server is None:
                    await rx.listen()
                    rx.transitions.append(["up", time.time()])
                self.answer(200, json.dumps(rx.stats()).encode())

            self.pending = asyncio.ensure_future(up())
            return
        if path == "/down":
            rx.down()
        elif path == "/reset":
            rx.reset()
        elif path == "/quit":
            rx.stopped.set()
        elif path == "/dump":
            self.answer(200, json.dumps(rx.dump()).encode())
            return
        elif path != "/stats":
            self.answer(404, b"{}")
            return
        self.answer(200, json.dumps(rx.stats()).encode())


async def _serve_receiver(secret: str) -> None:
    import tactful.actions.signing  # noqa: F401  (imported before the first request)

    rx = _Receiver(secret)
    await rx.listen()
    loop = asyncio.get_running_loop()
    ctl = await loop.create_server(lambda: _Control(rx), "127.0.0.1", 0)
    ports = {"hook_port": rx.port, "control_port": ctl.sockets[0].getsockname()[1]}
    print(json.dumps(ports), flush=True)
    await rx.stopped.wait()
    await asyncio.sleep(0.05)  # let the /quit answer go out
    ctl.close()
    if rx.server is not None:
        rx.server.close()


class ReceiverProcess:
    """The receiver child, driven over its control port."""

    def __init__(self, tmp: Path) -> None:
        import httpx

        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "receiver"]
        self.log = (tmp / "receiver.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the receiver did not start; see receiver.log")
        ports = json.loads(line)
        self.url = f"http://127.0.0.1:{ports['hook_port']}/hook"
        self.ctl = httpx.Client(base_url=f"http://127.0.0.1:{ports['control_port']}", timeout=60)

    def _call(self, method: str, path: str) -> dict[str, Any]:
        resp = self.ctl.request(method, path)
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def dump(self) -> dict[str, Any]:
        return self._call("GET", "/dump")

    def down(self) -> None:
        self._call("POST", "/down")

    def up(self) -> None:
        self._call("POST", "/up")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call("POST", "/quit")
        self.ctl.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- producing actions through the engine -------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Producer:
    """Customer messages into the real engine; remembers each crm action it committed."""

    engine: Any
    events: int = 0
    actions: int = 0
    other_actions: Counter[str] = field(default_factory=Counter)  # not for crm, by channel
    kinds: Counter[str] = field(default_factory=Counter)
    not_accepted: int = 0
    committed_at: dict[str, float] = field(default_factory=dict)  # key -> ingest returned
    phase_keys: dict[str, list[str]] = field(default_factory=dict)

    @property
    def per_event(self) -> float:
        return self.actions / self.events if self.events else 1.5

    def ingest(self, n: int, phase: str) -> int:
        ts = _iso(datetime.now(UTC))
        batch = []
        for _ in range(n):
            i = self.events
            batch.append(
                {
                    "event_id": f"bench-{i:08d}",
                    "type": "message",
                    "customer_id": f"cust-{i:08d}",
                    "timestamp": ts,
                    "role": "customer",
                    "channel": "chat",
                    "text": TEXTS[i % len(TEXTS)],
                }
            )
            self.events += 1
        results = self.engine.ingest(batch)
        done = time.time()
        keys = self.phase_keys.setdefault(phase, [])
        made = 0
        for r in results:
            if r.status != "accepted" or r.processed is None:
                self.not_accepted += 1
                continue
            for a in r.processed.actions:
                if a.channel != CHANNEL:
                    self.other_actions[a.channel] += 1
                    continue
                self.committed_at[a.idempotency_key] = done
                self.kinds[a.kind] += 1
                keys.append(a.idempotency_key)
                made += 1
        self.actions += made
        return made

    def fill(self, actions: int, phase: str) -> float:
        started = time.perf_counter()
        made = 0
        while made < actions:
            want = min(PREFILL_BATCH, max(1, math.ceil((actions - made) / self.per_event)))
            made += self.ingest(want, phase)
        return time.perf_counter() - started

    def paced(
        self,
        rate: float,
        seconds: float,
        phase: str,
        schedule: Sequence[tuple[float, Callable[[], None]]] = (),
        progress: Callable[[float, int], str] | None = None,
    ) -> dict[str, float]:
        """Open loop: every TICK_S, commit enough events to stay at ``rate`` actions/s."""
        todo = sorted(schedule, key=lambda s: s[0])
        start = time.monotonic()
        made = 0
        ticks = late = 0
        next_report = 5.0
        while True:
            t = time.monotonic() - start
            while todo and todo[0][0] <= t:
                todo.pop(0)[1]()
            if t >= seconds:
                break
            deficit = rate * t - made
            if deficit >= 1:
                made += self.ingest(max(1, round(deficit / self.per_event)), phase)
            ticks += 1
            if progress is not None and t >= next_report:
                print(progress(t, made), flush=True)
                next_report += 5.0
            sleep = start + ticks * TICK_S - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
            else:
                late += 1
        for _, fn in todo:
            fn()
        elapsed = time.monotonic() - start
        return {"made": made, "seconds": elapsed, "rate": made / elapsed, "late_ticks": late}


# --- the dispatcher process and what we sample of it ---------------------------------------


@dataclass
class Sample:
    t: float  # monotonic
    rss_mb: float
    depth: int  # crm rows pending in the outbox
    phase: str


class Sampler(threading.Thread):
    """The dispatcher's RSS and the outbox's crm depth every SAMPLE_S."""

    def __init__(self, pid: int, db: Path) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.proc = psutil.Process(pid)
        self.db = db
        self.phase = "start"
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            while not self._stop_event.is_set():
                try:
                    rss = self.proc.memory_info().rss / 1e6
                except Exception:  # the process is gone
                    return
                try:
                    depth = pending(conn)
                except sqlite3.Error:
                    depth = -1
                self.samples.append(Sample(time.monotonic(), rss, depth, self.phase))
                self._stop_event.wait(SAMPLE_S)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def of(self, *phases: str) -> list[Sample]:
        return [s for s in self.samples if s.phase in phases]


def pending(conn: sqlite3.Connection) -> int:
    sql = "SELECT count(*) FROM outbox WHERE status = 'pending' AND channel = ?"
    return int(conn.execute(sql, (CHANNEL,)).fetchone()[0])


class DispatcherProcess:
    """``tactful dispatch`` on the bench's database, as an operator would run it."""

    def __init__(self, tmp: Path, db: Path, channels: Path, policy: Path) -> None:
        cmd = [sys.executable, "-m", "tactful.cli", "dispatch", "--db", str(db)]
        cmd += ["--channels", str(channels), "--policy", str(policy)]
        cmd += ["--actions-log", str(tmp / "actions.jsonl")]
        env = {**os.environ, SECRET_ENV: SECRET, "COLUMNS": "200"}
        self.out_path = tmp / "dispatch.out"
        self.err_path = tmp / "dispatch.err"
        self._out: IO[bytes] = self.out_path.open("wb")
        self._err: IO[bytes] = self.err_path.open("wb")
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=env)
        self.ps = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        try:
            t = self.ps.cpu_times()
            return float(t.user + t.system)
        except Exception:
            return float("nan")

    def threads(self) -> int:
        try:
            return int(self.ps.num_threads())
        except Exception:
            return -1

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def stderr_counts(self) -> Counter[str]:
        out: Counter[str] = Counter()
        text = self.err_path.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("delivery of "):
                out["delivery failed (one line per failed attempt)"] += 1
            elif "dispatcher iteration failed" in line:
                out["dispatcher iteration failed"] += 1
            elif line.startswith("Traceback"):
                out["tracebacks"] += 1
        out["bytes"] = len(text.encode())
        return out


def wait_for(
    rx: ReceiverProcess,
    expected: int,
    timeout: float,
    label: str,
    db: Path,
    on_first: Callable[[], None] | None = None,
) -> tuple[bool, float]:
    """Until the receiver has ``expected`` first-time keys and the outbox no crm row
    pending; returns (done, seconds waited). ``on_first``: called once something arrived."""
    started = time.monotonic()
    next_report = 5.0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        while True:
            waited = time.monotonic() - started
            stats = rx.stats()
            if on_first is not None and stats["effects"] > 0:
                on_first()
                on_first = None
            if stats["effects"] >= expected:
                with contextlib.suppress(sqlite3.Error):
                    if pending(conn) == 0:
                        return True, waited
            if waited > timeout:
                return False, waited
            if waited >= next_report:
                depth = -1
                with contextlib.suppress(sqlite3.Error):
                    depth = pending(conn)
                print(
                    f"  {label}: waiting {waited:4.0f} s, received {stats['effects']:,} of "
                    f"{expected:,}, outbox crm pending {depth:,}",
                    flush=True,
                )
                next_report += 5.0
            time.sleep(0.05)
    finally:
        conn.close()


# --- reading the outbox afterwards -----------------------------------------------------------


@dataclass
class Row:
    created: float
    delivered: float | None
    next_attempt: float
    attempts: int
    status: str


def outbox_rows(db: Path) -> dict[str, Row]:
    def ts(v: str | None) -> float | None:
        return datetime.fromisoformat(v).timestamp() if v else None

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        out: dict[str, Row] = {}
        sql = (
            "SELECT idempotency_key, created_at, delivered_at, next_attempt_at, attempts, status "
            "FROM outbox WHERE channel = ?"
        )
        for key, created, delivered, due, attempts, status in conn.execute(sql, (CHANNEL,)):
            out[key] = Row(ts(created) or 0.0, ts(delivered), ts(due) or 0.0, attempts, status)
        return out
    finally:
        conn.close()


def dist(values_ms: Sequence[float]) -> str:
    return (
        f"p50 {percentile(values_ms, 0.5):8.1f}  p95 {percentile(values_ms, 0.95):8.1f}  "
        f"p99 {percentile(values_ms, 0.99):8.1f}  max {max(values_ms, default=float('nan')):8.1f}"
        " ms"
    )


# --- the naive baseline -------------------------------------------------------------------


def naive_loop(url: str, rows: Sequence[Any], keep_alive: bool) -> tuple[float, int, int]:
    """POST each row, one at a time, as a first version would; (seconds, ok, failed)."""
    import httpx

    from tactful.actions.channels.webhook import envelope
    from tactful.actions.signing import HEADER, signature_header

    ok = failed = 0
    client = httpx.Client(timeout=10) if keep_alive else None
    started = time.perf_counter()
    try:
        for row in rows:
            body = envelope(row)
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": row.idempotency_key,
                "Tactful-Event": row.kind,
                HEADER: signature_header(SECRET, body),
            }
            try:
                if client is not None:
                    resp = client.post(url, content=body, headers=headers)
                else:
                    resp = httpx.post(url, content=body, headers=headers, timeout=10)
            except httpx.HTTPError:
                failed += 1
                continue
            if resp.status_code == 200:
                ok += 1
            else:
                failed += 1
    finally:
        if client is not None:
            client.close()
    return time.perf_counter() - started, ok, failed


# --- report helpers -----------------------------------------------------------------------


def peak(samples: Sequence[Sample], attr: str) -> float:
    values = [float(getattr(s, attr)) for s in samples]
    return max(values, default=float("nan"))


def write_inputs(tmp: Path, url: str, concurrency: int) -> tuple[Path, Path]:
    shipped = (Path(__file__).resolve().parents[1] / "src/tactful/policy/default.yaml").read_text()
    policy = tmp / "policy.yaml"
    policy.write_text(shipped + ROUTING)
    channels = tmp / "channels.yaml"
    channels.write_text(
        "channels:\n"
        f"  {CHANNEL}:\n"
        "    type: webhook\n"
        f"    url: {url}\n"
        f"    secret: ${{{SECRET_ENV}}}\n"
        "    timeout: 5s\n"
        f"    concurrency: {concurrency}\n"
    )
    return policy, channels


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    rx = ReceiverProcess(tmp)
    dispatcher: DispatcherProcess | None = None
    sampler: Sampler | None = None
    store: Any = None
    try:
        rx_ps = psutil.Process(rx.proc.pid)

        def rx_cpu() -> float:
            t = rx_ps.cpu_times()
            return float(t.user + t.system)

        policy_path, channels_path = write_inputs(tmp, rx.url, args.concurrency)
        db = tmp / "tactful.db"
        store = SQLiteStore(db, durability="full")
        engine = Engine(store, PolicyEngine(load_policy(policy_path)))
        prod = Producer(engine)
        print(f"receiver: {rx.url} (asyncio HTTP/1.1 subprocess, pid {rx.proc.pid})")

        # -- 1. a backlog, and the naive baseline over its first rows ----------------------
        print(f"filling the outbox with {args.actions:,} crm actions ...", flush=True)
        fill_s = prod.fill(args.actions, "drain")
        drain_keys = prod.phase_keys["drain"]
        print(
            f"  {len(drain_keys):,} actions from {prod.events:,} events committed in "
            f"{fill_s:.1f} s ({len(drain_keys) / fill_s:,.0f} actions/s through the engine); "
            + ", ".join(f"{k} {n:,}" for k, n in prod.kinds.most_common())
        )
        if prod.other_actions:
            print(f"  actions for other channels (not counted): {dict(prod.other_actions)}")

        far = datetime(2100, 1, 1, tzinfo=UTC)
        sample_rows = store.pending_actions(far, args.baseline_actions, CHANNEL)
        print(f"baseline: naive loop over {len(sample_rows):,} of the same rows ...", flush=True)
        naive_s, naive_ok, naive_failed = naive_loop(rx.url, sample_rows, keep_alive=False)
        rx.reset()
        keep_s, keep_ok, keep_failed = naive_loop(rx.url, sample_rows, keep_alive=True)
        rx.reset()
        naive_rate = naive_ok / naive_s if naive_s else float("nan")
        keep_rate = keep_ok / keep_s if keep_s else float("nan")
        print(
            f"  httpx.post per row: {naive_ok:,} ok, {naive_failed:,} failed in {naive_s:.2f} s; "
            f"one httpx.Client: {keep_ok:,} ok, {keep_failed:,} failed in {keep_s:.2f} s"
        )

        # -- 2. the dispatcher drains the backlog ------------------------------------------
        print(
            f"throughput: starting `tactful dispatch` on {len(drain_keys):,} pending actions "
            f"(crm: webhook, concurrency {args.concurrency}) ...",
            flush=True,
        )
        rx_cpu0 = rx_cpu()
        dispatcher = DispatcherProcess(tmp, db, channels_path, policy_path)
        sampler = Sampler(dispatcher.proc.pid, db)
        sampler.phase = "drain"
        sampler.start()
        cpu_at_first: list[float] = []
        done, _ = wait_for(
            rx,
            len(drain_keys),
            args.recovery_timeout,
            "drain",
            db,
            on_first=lambda: cpu_at_first.append(dispatcher.cpu_s() if dispatcher else math.nan),
        )
        if not done:
            raise SystemExit("the dispatcher did not drain the backlog; see dispatch.err")
        drain_cpu = dispatcher.cpu_s()
        startup_cpu = cpu_at_first[0] if cpu_at_first else math.nan
        drain_rx_cpu = rx_cpu() - rx_cpu0
        dump = rx.dump()
        arrivals = [dump["first"][k] for k in drain_keys if k in dump["first"]]
        first_at, last_at = min(arrivals), max(arrivals)
        drain_span = last_at - first_at
        drain_rate = (len(arrivals) - 1) / drain_span if drain_span > 0 else float("nan")
        with_startup = len(arrivals) / (last_at - dispatcher.started)
        drain_exact = set(dump["first"]) == set(drain_keys)
        drain_resent = sum(dump["resent"].values())
        print(
            f"  {len(arrivals):,} delivered, first to last arrival {drain_span:.2f} s: "
            f"{drain_rate:,.0f} actions/s ({with_startup:,.0f}/s counting the "
            f"{first_at - dispatcher.started:.1f} s from process start to first arrival)"
        )

        # -- 3. steady rate: latency ------------------------------------------------------
        print(
            f"latency: committing {args.rate:,.0f} actions/s for {args.steady_seconds:g} s "
            "with the dispatcher running ...",
            flush=True,
        )
        sampler.phase = "steady"
        cpu0, rx_cpu0 = dispatcher.cpu_s(), rx_cpu()
        steady = prod.paced(
            args.rate,
            args.steady_seconds,
            "steady",
            progress=lambda t, n: f"  steady t={t:4.1f}s committed {n:,}",
        )
        expected = prod.actions
        done, waited = wait_for(rx, expected, args.recovery_timeout, "steady", db)
        steady_cpu = dispatcher.cpu_s() - cpu0
        steady_rx_cpu = rx_cpu() - rx_cpu0
        steady_keys = prod.phase_keys.get("steady", [])
        dump = rx.dump()
        rows = outbox_rows(db)
        from_created = [(dump["first"][k] - rows[k].created) * 1000 for k in steady_keys]
        from_return = [(dump["first"][k] - prod.committed_at[k]) * 1000 for k in steady_keys]
        marked = [((rows[k].delivered or math.nan) - rows[k].created) * 1000 for k in steady_keys]
        p99 = percentile(from_created, 0.99)
        print(
            f"  {len(steady_keys):,} committed at {steady['rate']:,.0f}/s, all delivered "
            f"{waited:.2f} s after the last commit; p99 commit->arrival {p99:.1f} ms"
        )

        # -- 4. outage ---------------------------------------------------------------------
        outage_total = OUTAGE_LEAD_S + args.outage_seconds + OUTAGE_TAIL_S
        print(
            f"outage: {args.rate:,.0f} actions/s for {outage_total:g} s; the receiver is down "
            f"(connection refused) from t={OUTAGE_LEAD_S:g}s for {args.outage_seconds:g} s ...",
            flush=True,
        )
        marks: dict[str, float] = {}

        def go_down() -> None:
            rx.down()
            marks["down"] = time.time()
            marks["down_mono"] = time.monotonic()
            print("  receiver DOWN", flush=True)

        def go_up() -> None:
            rx.up()
            marks["up"] = time.time()
            marks["up_mono"] = time.monotonic()
            sampler_now = sampler.samples[-1].depth if sampler and sampler.samples else -1
            marks["depth_at_up"] = sampler_now
            print(f"  receiver UP (outbox crm pending ~{sampler_now:,})", flush=True)

        def outage_progress(t: float, n: int) -> str:
            s = sampler.samples[-1] if sampler and sampler.samples else None
            return (
                f"  outage t={t:4.1f}s committed {n:,}, outbox crm pending "
                f"{s.depth if s else -1:,}, dispatcher RSS {s.rss_mb if s else 0:.1f} MB"
            )

        sampler.phase = "outage"
        cpu0, rx_cpu0 = dispatcher.cpu_s(), rx_cpu()
        outage = prod.paced(
            args.rate,
            outage_total,
            "outage",
            schedule=[(OUTAGE_LEAD_S, go_down), (OUTAGE_LEAD_S + args.outage_seconds, go_up)],
            progress=outage_progress,
        )
        stopped_producing = time.time()
        expected = prod.actions
        recovered, waited = wait_for(rx, expected, args.recovery_timeout, "recovery", db)
        all_in = time.time()
        sampler.phase = "after"
        outage_cpu = dispatcher.cpu_s() - cpu0
        outage_rx_cpu = rx_cpu() - rx_cpu0
        time.sleep(0.5)
        after_samples = sampler.of("after")
        sampler.stop()
        threads = dispatcher.threads()
        code = dispatcher.stop()
        errors = dispatcher.stderr_counts()

        dump = rx.dump()
        rows = outbox_rows(db)
        outage_keys = prod.phase_keys.get("outage", [])
        first = dump["first"]
        received = set(first)
        committed = set(rows)
        missing = [k for k in outage_keys if k not in received]
        unexpected = received - committed
        resent = dump["resent"]
        outage_resent = sum(resent.get(k, 0) for k in outage_keys)
        outage_set = set(outage_keys)
        dup_effects = dump["dup_effects"]
        outage_dups = sum(1 for a, b in dup_effects if a in outage_set or b in outage_set)
        statuses = Counter(r.status for r in rows.values())
        dead = statuses.get("dead", 0)
        delivered_all = (
            recovered
            and not missing
            and received == committed
            and statuses.get("delivered", 0) == len(rows)
            and not dump["problems"]
        )

        up_at = marks["up"]
        attempts = Counter(rows[k].attempts for k in outage_keys)
        failed_attempts = sum(rows[k].attempts - 1 for k in outage_keys)
        during = [k for k in outage_keys if rows[k].created < up_at]
        after_up = [k for k in outage_keys if rows[k].created >= up_at]
        outage_last = max((first[k] for k in during if k in first), default=math.nan)
        retried = [k for k in outage_keys if rows[k].attempts > 1]
        # mark_delivered leaves next_attempt_at alone: for a row that failed, it is when
        # its last retry became due, so it shows how long rows sat out their backoff.
        last_due = max((rows[k].next_attempt for k in retried), default=math.nan)
        waited_backoff = [k for k in retried if rows[k].next_attempt > up_at]
        while_down = [k for k in during if rows[k].created >= marks["down"]]
        never_tried = [k for k in while_down if rows[k].attempts == 1]
        after_up_lat = [(first[k] - rows[k].created) * 1000 for k in after_up if k in first]
        outage_samples = sampler.of("outage")
        depth_peak = int(peak(outage_samples, "depth"))
        rss_steady = peak(sampler.of("drain", "steady"), "rss_mb")
        rss_outage = peak(outage_samples, "rss_mb")
        rss_after = peak(after_samples, "rss_mb")

        # -- report -------------------------------------------------------------------------
        ratio = drain_rate / naive_rate if naive_rate else float("nan")
        print()
        print(f"== throughput: draining {len(drain_keys):,} committed actions ==")
        print(
            f"  tactful dispatch ({args.concurrency} workers)  {drain_rate:>8,.0f} actions/s  "
            f"(first to last arrival {drain_span:.2f} s; {with_startup:,.0f}/s from process start)"
        )
        print(
            f"  naive loop, httpx.post per row  {naive_rate:>8,.0f} actions/s  "
            f"({len(sample_rows):,} rows, sequential, new connection each, no retries)"
        )
        print(
            f"  naive loop, one httpx.Client    {keep_rate:>8,.0f} actions/s  "
            "(same, keep-alive; neither naive loop writes anything back to the outbox)"
        )
        print(
            f"  ratio                           {ratio:>8.2f}x  (dispatcher / httpx.post loop; "
            f"{drain_rate / keep_rate if keep_rate else math.nan:.2f}x the keep-alive loop)"
        )
        work_cpu = drain_cpu - startup_cpu
        per_action_us = work_cpu / len(arrivals) * 1e6
        print(
            f"  dispatcher CPU {work_cpu:.1f} s after its first delivery "
            f"({per_action_us:,.0f} us/action, {work_cpu / drain_span:.0%} of one core; "
            f"start-up {startup_cpu:.1f} s; {threads} threads): at most "
            f"~{1e6 / per_action_us:,.0f} actions/s on one core, whatever the workers "
            "(they share one interpreter's GIL)"
        )
        rx_share = drain_rx_cpu / max(drain_span, 1e-9)
        print(
            f"  receiver CPU {drain_rx_cpu:.1f} s ({rx_share:.0%} of one core"
            + (": not the bottleneck)" if rx_share < 0.5 else ": it may be a bottleneck)")
        )
        print(
            f"  exactly once: received set == committed set: {drain_exact}; "
            f"re-sends {drain_resent:,}"
        )
        print(f"== latency: {steady['rate']:,.0f} actions/s for {args.steady_seconds:g} s ==")
        print(f"  commit (created_at) -> receiver   {dist(from_created)}")
        print(f"  ingest returned -> receiver       {dist(from_return)}")
        print(f"  created_at -> delivered_at (db)   {dist(marked)}")
        slow = sum(1 for v in from_created if v > 100) / max(len(from_created), 1)
        print(f"  share over 100 ms: {slow:.1%}")
        if p99 > 100:
            print(
                "  NOTE: the dispatcher polls the outbox: 10 ms after a round that delivered "
                "something, 0.2 s (Dispatcher.start's interval) after a round that found "
                "nothing due; an action committed just after an empty poll waits up to 0.2 s."
            )
        print(
            f"  dispatcher CPU {steady_cpu:.1f} s over {steady['seconds']:.1f} s "
            f"({steady_cpu / steady['seconds']:.0%} of a core, "
            f"{steady_cpu / max(len(steady_keys), 1) * 1e6:,.0f} us/action); receiver "
            f"{steady_rx_cpu / steady['seconds']:.0%}; producer ticks late "
            f"{int(steady['late_ticks']):,}"
        )
        print(
            f"== outage: receiver down {args.outage_seconds:g} s (connection refused; "
            f"{dump['aborted']} open connections aborted) at {outage['rate']:,.0f} actions/s =="
        )
        print(
            f"  committed {len(outage_keys):,} ({len(during):,} before recovery, "
            f"{len(after_up):,} after); outbox crm pending peak {depth_peak:,}"
        )
        print(
            f"  dispatcher RSS: drain+steady peak {rss_steady:.1f} MB, "
            f"outage peak {rss_outage:.1f} MB, after {rss_after:.1f} MB"
        )
        print(
            f"  failed attempts {failed_attempts:,}; attempts per action "
            + ", ".join(f"{a}: {n:,}" for a, n in sorted(attempts.items()))
            + f"; dead-lettered {dead:,} (max_attempts {MAX_ATTEMPTS})"
        )
        drain_after_up = outage_last - up_at
        print(
            f"  after recovery: the last action committed during the outage arrived "
            f"{drain_after_up:.1f} s later; everything (incl. the {OUTAGE_TAIL_S:g} s tail) "
            f"was in {all_in - up_at:.1f} s after recovery, {all_in - stopped_producing:.1f} s "
            "after the last commit"
        )
        after_arrivals = [t for t in first.values() if t >= up_at]
        post_rate = len(after_arrivals) / (max(after_arrivals) - up_at) if after_arrivals else 0
        print(
            f"  outbox crm pending at recovery ~{int(marks['depth_at_up']):,}; delivered after "
            f"recovery {len(after_arrivals):,} at {post_rate:,.0f} actions/s (while the engine "
            f"kept committing {args.rate:,.0f}/s for {OUTAGE_TAIL_S:g} s)"
        )
        print(
            f"  of the {len(while_down):,} committed while it was down: {len(never_tried):,} "
            f"were not tried before recovery (delivered at their first attempt); "
            f"{len(retried):,} of the phase's actions failed at least once, "
            f"{len(waited_backoff):,} of them sat out a backoff past recovery (the last came due "
            f"{last_due - up_at:.1f} s after recovery)"
        )
        if waited_backoff and last_due - up_at > 0.5 * drain_after_up:
            print(
                "  NOTE: the drain after recovery is dominated by retry backoff, not by "
                "throughput: rows wait out their next_attempt_at even though the receiver is "
                "back (the dispatcher has no circuit breaker / probe to retry sooner)."
            )
        else:
            print(
                "  backoff did not bound the drain: the dispatcher's throughput did (and the "
                "new actions wait behind the backlog, oldest next_attempt_at first)"
            )
        print(f"  committed after recovery -> receiver  {dist(after_up_lat)}")
        print(
            f"  exactly once: outage actions missing {len(missing):,}; received == committed "
            f"(all phases) {received == committed} (unexpected keys {len(unexpected):,}); "
            f"took effect twice {outage_dups:,}; re-sends with the same key {outage_resent:,}"
        )
        print(
            f"  outbox: {dict(statuses)}; receiver refused {sum(dump['problems'].values()):,}"
            + (f" {dump['problems']}" if dump["problems"] else "")
        )
        print(
            f"  dispatcher CPU over the outage phase {outage_cpu:.1f} s; receiver "
            f"{outage_rx_cpu:.1f} s; dispatcher exit {code}; its stderr: "
            + ", ".join(f"{k} {n:,}" for k, n in errors.items())
        )
        if not recovered:
            print(f"  WARNING: not all delivered within --recovery-timeout {args.recovery_timeout}")
        print()
        return {
            "actions_per_s": round(drain_rate, 1),
            "p99_delivery_ms": round(p99, 2),
            "outage_delivered_all": bool(delivered_all),
            "outage_duplicates": outage_dups,
            "outage_peak_rss_mb": round(rss_outage, 1),
        }
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        if dispatcher is not None and dispatcher.proc.poll() is None:
            dispatcher.stop()
        if store is not None:
            store.close()
        rx.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--actions",
        type=int,
        default=20_000,
        help="crm actions committed before the dispatcher starts; their drain gives "
        "actions_per_s (default 20,000)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=300.0,
        help="actions/s the engine commits in the latency and outage phases (default 300)",
    )
    ap.add_argument(
        "--steady-seconds",
        type=float,
        default=20.0,
        help="length of the latency phase (default 20)",
    )
    ap.add_argument(
        "--outage-seconds",
        type=float,
        default=30.0,
        help="how long the receiver refuses connections (default 30)",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="the crm webhook's workers in the channels file (default 4, the channels default)",
    )
    ap.add_argument(
        "--baseline-actions",
        type=int,
        default=500,
        help="rows the naive loops POST (default 500: httpx.post builds a client, TLS "
        "context included, per call, ~30 ms each)",
    )
    ap.add_argument(
        "--recovery-timeout",
        type=float,
        default=300.0,
        help="longest wait for everything to arrive after a phase (default 300 s)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2,000 actions, 5 s latency phase, 5 s outage, 200 baseline rows",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    ap.add_argument("--child", choices=["receiver"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child == "receiver":
        asyncio.run(_serve_receiver(SECRET))
        return 0

    if args.quick:
        args.actions, args.steady_seconds, args.outage_seconds = 2_000, 5.0, 5.0
        args.baseline_actions = 200

    print(machine())
    print(
        f"dispatch: {args.actions:,} backlog actions; {args.rate:,.0f} actions/s for "
        f"{args.steady_seconds:g} s (latency) and through a {args.outage_seconds:g} s receiver "
        f"outage; crm webhook concurrency {args.concurrency}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="tactful-bench-dispatch-"))
    try:
        summary = run(args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0 if summary["outage_delivered_all"] and summary["outage_duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

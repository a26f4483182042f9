"""tactful decide benchmark: ``POST /v1/decide`` on every chatbot turn, against plain ingest.

A chatbot calls ``POST /v1/decide`` on every turn with one event (a customer message or
a bot turn) and waits for the decisions, their reasons and the guidance for its next
message before it goes on. The budget for that round trip is p99 <= 50 ms, served.

* **Server.** A real ``tactful serve --durability full`` (the default) in a subprocess, on
  a free loopback port, with a fresh temp database and the ``--text-scorer`` asked for
  (default learned, as the server's default). Real HTTP with httpx, no TestClient.
* **Load.** ``--bots`` concurrent chatbot conversations (default 8), closed loop: each bot
  sends one turn, waits for the answer, then sends the next (after ``--think-ms``, default
  0: back to back, so every bot always has a turn in flight, the busiest these bots can
  be). A conversation follows a scripted arc (a plain question, a confused customer, one
  getting frustrated as the bot fails, a bot failing the same step, "talk to a human", a
  cancellation): customer messages (neutral, confused, frustrated, human, cancel, happy)
  alternate with ``bot_turn`` events (``step_id``, ``outcome``). Each conversation is a
  new customer, or, three times in ten, one the bot has talked to before. Timestamps are
  the wall clock at sending.
* **Baseline.** The issue names none, so: the cheapest thing a team already has, plain
  ingest. The same bots send the same turns (the same seeded scripts, on their own customer
  ids) one at a time to ``POST /v1/events`` (202 once committed) on the same server. The
  ``--seconds`` are split into alternating phases, decide/ingest in ABBA order (D I I D
  D I ...) so a drift over the run (the database growing, a noisy neighbour) falls on both
  sides. ``ratio_p50 = decide_p50 / ingest_p50`` is what deciding and explaining in the
  moment costs on top of ingesting the event.
* **Checks.** Every answer must be 2xx (decide 200, ingest 202) and accept the event; every
  decide answer must have the shape the API documents (``decisions`` with ``kind``,
  ``rule_id``, ``reasons``, ``params``, ``factors``; ``guidance`` with ``next``, ``tone``,
  ``hold_marketing`` and, when it says more than continue, ``say``; ``signals``, ``trend``,
  ``policy_version``, ``took_ms``). Any error or shape problem makes the run exit 1, after
  the report. Missing the budget does not (it is reported as NOT MET).

Latency is from sending the request to having the whole response, on the client. The
decide answer's own ``took_ms`` (engine.ingest, including the wait for the engine's lock)
is reported beside it, so the HTTP and JSON overhead shows.

The last line printed is one JSON object::

    {"decide_p50_ms", "decide_p95_ms", "decide_p99_ms", "decide_max_ms", "ingest_p50_ms",
     "ingest_p95_ms", "ingest_p99_ms", "ingest_max_ms", "ratio_p50", "decide_per_s",
     "ingest_per_s", "errors", "shape_errors", "budget_ms", "within_budget", ...}

``errors`` counts non-2xx answers and transport errors on both endpoints; ``within_budget``
is ``decide_p99_ms <= budget_ms`` (errors are reported apart, and fail the run).

Usage: ``python bench/decide.py [--bots K] [--seconds S] [--phase-seconds P]
[--think-ms T] [--text-scorer learned|lexical] [--seed N] [--quick] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchkit import free_port, machine, percentile, stop_server, wait_healthy

BUDGET_MS = 50
DECIDE, INGEST = "decide", "ingest"
PATHS = {DECIDE: "/v1/decide", INGEST: "/v1/events"}
EXPECTED_STATUS = {DECIDE: 200, INGEST: 202}
WARM_TURNS = 4  # per bot and endpoint, before the timed phases; not counted
EXAMPLES_KEPT = 3  # of each kind of failure, printed in the report
# uvicorn re-raises the SIGINT it caught once its graceful shutdown is done: 130 is clean.
CLEAN_EXITS = (0, 130, -signal.SIGINT)

# --- the conversations -----------------------------------------------------------------

TEXTS: dict[str, list[str]] = {
    "neutral": [
        "Hi, where can I download my invoices?",
        "Is there an API for {feature}?",
        "Does the Pro plan include {feature}?",
        "I'd like to {task}. What's the best way?",
        "What is the rate limit on the orders endpoint?",
    ],
    "confused": [
        "I don't understand where the token goes. Is it in a header?",
        "How do I {task}? The docs say one thing but I see another.",
        "I'm lost, which plan should I pick if I need {feature}?",
        "I can't figure out how to {task}. Where is the option?",
        "Sorry, I'm confused. Not sure what that means, can you explain?",
    ],
    "frustrated": [
        "That didn't work. {feature} is still broken!!",
        "This is the third time {feature} failed. Nothing works!",
        "Seriously, I already tried that. This is ridiculous.",
        "STILL NOT WORKING. I've been at this for an hour.",
        "Useless answers. I already explained this yesterday.",
    ],
    "human": [
        "Can I talk to a real person please?",
        "Please connect me with an agent, the bot isn't helping.",
        "I want to speak to a human, not a bot.",
        "Is there a live agent available? This bot keeps looping.",
    ],
    "cancel": [
        "I want to cancel my subscription.",
        "How do I close my account? We're switching to a competitor.",
        "I'm done. Cancel my account and refund the last invoice.",
        "We won't renew, please cancel it.",
    ],
    "happy": [
        "Thanks, that worked perfectly!",
        "That fixed it, thank you so much.",
        "Great, all good now. Cheers!",
    ],
}
FEATURES = ["the export", "SSO", "the webhook", "the dashboard", "the CSV import", "invites"]
TASKS = [
    "download last quarter's invoices",
    "add a second admin",
    "rotate my API key",
    "change the billing email",
    "set up SAML with Okta",
]
BOT_TEXTS: dict[str, list[str]] = {
    "success": ["Here you go: Settings > Billing > Invoices.", "Done! Anything else?"],
    "fallback": ["Sorry, I didn't get that. Could you rephrase?", "Here is an article."],
    "failed": ["I couldn't complete that step. Let's try again.", "Something went wrong."],
    "handoff": ["I'm passing you to a colleague."],
}
STEPS = ["find_invoice", "reset_password", "update_card", "api_key", "change_plan", "sso"]

# Each arc: its weight, and its turns in order; "msg:<mood>" is a customer message,
# "bot:<outcome>" a bot turn on the conversation's step.
ARCS: dict[str, tuple[float, list[str]]] = {
    "question": (30.0, ["msg:neutral", "bot:success", "msg:happy"]),
    "confused": (
        20.0,
        ["msg:confused", "bot:fallback", "msg:confused", "bot:success", "msg:neutral"],
    ),
    "frustrated": (
        15.0,
        ["msg:neutral", "bot:failed", "msg:frustrated", "bot:fallback", "msg:frustrated"],
    ),
    "circles": (10.0, ["msg:neutral", "bot:failed", "bot:failed", "msg:frustrated"]),
    "human": (15.0, ["msg:neutral", "bot:fallback", "msg:human", "bot:handoff"]),
    "cancel": (10.0, ["msg:cancel", "bot:fallback", "msg:cancel"]),
}
RETURNING_SHARE = 0.3


class Conversations:
    """One bot's endless, deterministic stream of turns.

    Two streams with the same ``seed`` and ``bot`` yield the same turns (labels, texts,
    steps, outcomes, which customer comes back) but on ids under their own ``prefix``, so
    the decide and ingest sides replay the same conversations on separate customers.
    """

    def __init__(self, seed: int, bot: int, prefix: str) -> None:
        self._rng = random.Random(f"{seed}-{bot}")
        self._bot = bot
        self._prefix = prefix
        self._customers: list[str] = []
        self._turns: list[str] = []
        self._n = 0
        self._conversation = ""
        self._customer = ""
        self._step = ""

    def _start(self) -> None:
        rng = self._rng
        names = list(ARCS)
        arc = rng.choices(names, [ARCS[a][0] for a in names])[0]
        self._turns = list(ARCS[arc][1])
        k = len(self._customers)
        if self._customers and rng.random() < RETURNING_SHARE:
            self._customer = rng.choice(self._customers)
        else:
            self._customer = f"{self._prefix}-b{self._bot}-c{k}"
            self._customers.append(self._customer)
        self._conversation = f"{self._prefix}-b{self._bot}-conv{self._n}"
        self._step = rng.choice(STEPS)

    def next_turn(self) -> tuple[str, dict[str, Any]]:
        """(label, event without its timestamp)."""
        if not self._turns:
            self._start()
        rng = self._rng
        kind, what = self._turns.pop(0).split(":")
        self._n += 1
        event: dict[str, Any] = {
            "event_id": f"{self._prefix}-{self._bot}-{self._n:07d}",
            "customer_id": self._customer,
        }
        if kind == "msg":
            text = rng.choice(TEXTS[what]).format(
                feature=rng.choice(FEATURES), task=rng.choice(TASKS)
            )
            event |= {"type": "message", "role": "customer", "channel": "chat", "text": text}
            event["conversation_id"] = self._conversation
            return what, event
        event |= {
            "type": "bot_turn",
            "step_id": self._step,
            "outcome": what,
            "text": rng.choice(BOT_TEXTS[what]),
        }
        return f"bot_turn:{what}", event


# --- checking the answers ----------------------------------------------------------------

NEXT_MOVES = {"handoff", "clarify", "offer_choices", "assist", "continue"}
DECISION_FIELDS: dict[str, type | tuple[type, ...]] = {
    "decision_id": str,
    "kind": str,
    "rule_id": str,
    "policy_version": str,
    "reasons": list,
    "params": dict,
    "factors": dict,
}
DECIDE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "event_id": str,
    "status": str,
    "late": bool,
    "policy_version": str,
    "guidance": dict,
    "decisions": list,
    "signals": list,
    "trend": dict,
    "took_ms": (int, float),
}


def _typed(where: str, obj: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    problems = []
    for name, kind in spec.items():
        if name not in obj:
            problems.append(f"{where}: no '{name}'")
        elif not isinstance(obj[name], kind):
            problems.append(f"{where}.{name}: {type(obj[name]).__name__}, not {kind}")
    return problems


def decide_problems(body: Any, event_id: str) -> list[str]:
    """What is wrong with a decide answer's shape (empty: nothing)."""
    if not isinstance(body, dict):
        return [f"body is a {type(body).__name__}, not an object"]
    problems = _typed("answer", body, DECIDE_FIELDS)
    if problems:
        return problems
    if body["event_id"] != event_id or body["status"] != "accepted":
        problems.append(f"event {body['event_id']!r} {body['status']!r}, not {event_id} accepted")
    for i, d in enumerate(body["decisions"]):
        if not isinstance(d, dict):
            problems.append(f"decisions[{i}] is not an object")
            continue
        problems += _typed(f"decisions[{i}]", d, DECISION_FIELDS)
        if isinstance(d.get("reasons"), list) and not all(isinstance(r, str) for r in d["reasons"]):
            problems.append(f"decisions[{i}].reasons: not all strings")
    g = body["guidance"]
    problems += _typed("guidance", g, {"next": str, "tone": str, "hold_marketing": bool})
    move = g.get("next")
    if move not in NEXT_MOVES:
        problems.append(f"guidance.next {move!r} not one of {sorted(NEXT_MOVES)}")
    elif move != "continue":
        problems += _typed("guidance", g, {"say": str, "rule_id": str})
        kinds = {d.get("kind") for d in body["decisions"] if isinstance(d, dict)}
        if move == "handoff":
            problems += _typed("guidance", g, {"queue": str, "stop_automation": bool})
            if "escalate" not in kinds:
                problems.append("guidance says handoff but no escalate decision")
        if move == "offer_choices":
            problems += _typed("guidance", g, {"choices": list})
    return problems


def ingest_problems(body: Any, event_id: str) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return ["no 'results' list"]
    if body.get("accepted") != 1 or len(body["results"]) != 1:
        return [f"accepted {body.get('accepted')!r} of {len(body['results'])}, not 1 of 1"]
    result = body["results"][0]
    if result.get("event_id") != event_id or result.get("status") != "accepted":
        return [f"result {result.get('event_id')!r} {result.get('status')!r}"]
    return []


# --- the load ----------------------------------------------------------------------------


@dataclass
class Side:
    """What one endpoint got over all its phases."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    by_label: dict[str, list[float]] = field(default_factory=dict)
    took_ms: list[float] = field(default_factory=list)  # decide: the server's own timer
    seconds: float = 0.0  # wall time of its phases
    errors: Counter[str] = field(default_factory=Counter)  # non-2xx and transport errors
    shape_errors: int = 0
    examples: list[str] = field(default_factory=list)
    moves: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    decisions: int = 0

    def keep(self, what: str) -> None:
        if len(self.examples) < 2 * EXAMPLES_KEPT:
            self.examples.append(what)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def turn(
    client: httpx.AsyncClient, side: Side | None, endpoint: str, convo: Conversations
) -> None:
    """Send one turn and wait for its answer; record it on ``side`` (None: warm-up)."""
    label, event = convo.next_turn()
    event["timestamp"] = _iso_now()
    body = json.dumps(event).encode()
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    try:
        resp = await client.post(PATHS[endpoint], content=body, headers=headers)
    except httpx.HTTPError as exc:
        if side is None:
            raise
        side.errors[type(exc).__name__] += 1
        side.keep(f"{label}: {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.05)  # a dead server should not make a bot spin
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    if side is None:
        if resp.status_code != EXPECTED_STATUS[endpoint]:
            raise SystemExit(f"warm-up {endpoint} got HTTP {resp.status_code}: {resp.text[:500]}")
        return
    if not resp.is_success:
        side.errors[f"HTTP {resp.status_code}"] += 1
        side.keep(f"{label}: HTTP {resp.status_code}: {resp.text[:300]}")
        return
    try:
        data = resp.json()
    except ValueError:
        data = None
    if resp.status_code != EXPECTED_STATUS[endpoint]:
        problems = [f"HTTP {resp.status_code}, not {EXPECTED_STATUS[endpoint]}"]
    elif endpoint == DECIDE:
        problems = decide_problems(data, event["event_id"])
    else:
        problems = ingest_problems(data, event["event_id"])
    if problems:
        side.shape_errors += 1
        side.keep(f"{label}: shape: {'; '.join(problems[:4])}")
        return
    side.latencies_ms.append(elapsed_ms)
    side.by_label.setdefault(label, []).append(elapsed_ms)
    decisions = data["decisions"] if endpoint == DECIDE else data["results"][0]["decisions"]
    side.decisions += len(decisions)
    side.rules.update(f"{d['rule_id']}/{d['kind']}" for d in decisions)
    if endpoint == DECIDE:
        side.took_ms.append(float(data["took_ms"]))
        side.moves[data["guidance"]["next"]] += 1


async def bot_phase(
    client: httpx.AsyncClient,
    side: Side,
    endpoint: str,
    convo: Conversations,
    deadline: float,
    think_s: float,
    rng: random.Random,
) -> None:
    """One bot, one phase: turn after turn until the deadline (the last turn finishes)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        await turn(client, side, endpoint, convo)
        if think_s > 0:
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))


def phase_order(n: int) -> list[str]:
    """ABBA: decide, ingest, ingest, decide, decide, ingest, ..."""
    return [DECIDE if (i + 1) // 2 % 2 == 0 else INGEST for i in range(n)]


async def run_load(
    url: str, bots: int, seconds: float, phase_seconds: float, think_ms: float, seed: int
) -> dict[str, Side]:
    n_phases = max(2, 2 * round(seconds / (2 * phase_seconds)))
    each = seconds / n_phases
    sides = {DECIDE: Side(DECIDE), INGEST: Side(INGEST)}
    streams = {
        DECIDE: [Conversations(seed, b, "d") for b in range(bots)],
        INGEST: [Conversations(seed, b, "i") for b in range(bots)],
    }
    rngs = [random.Random(f"think-{seed}-{b}") for b in range(bots)]
    # Keep idle connections well under uvicorn's 5 s keep-alive, so no request goes out on
    # a connection the server is closing.
    limits = httpx.Limits(
        max_connections=2 * bots, max_keepalive_connections=2 * bots, keepalive_expiry=2.0
    )
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        # Warm up both paths (connections, the scorer, the policy) on their own customers.
        warm = {e: [Conversations(seed + 1, b, f"w{e[0]}") for b in range(bots)] for e in PATHS}
        for _ in range(WARM_TURNS):
            for e in PATHS:
                await asyncio.gather(*(turn(client, None, e, c) for c in warm[e]))
        print(
            f"warmed up ({WARM_TURNS} turns per bot on each endpoint); "
            f"{n_phases} phases of {each:.2f} s, ABBA",
            flush=True,
        )
        for i, endpoint in enumerate(phase_order(n_phases)):
            side = sides[endpoint]
            done_before = len(side.latencies_ms)
            started = loop.time()
            deadline = started + each
            await asyncio.gather(
                *(
                    bot_phase(client, side, endpoint, c, deadline, think_ms / 1000, rng)
                    for c, rng in zip(streams[endpoint], rngs, strict=True)
                )
            )
            side.seconds += loop.time() - started
            new = side.latencies_ms[done_before:]
            errors = sum(side.errors.values()) + side.shape_errors
            print(
                f"  phase {i + 1:>2}/{n_phases} {endpoint:<6} {len(new):>5,} turns "
                f"p50 {percentile(new, 0.50):6.1f} ms  p99 {percentile(new, 0.99):6.1f} ms  "
                f"(errors so far {errors})",
                flush=True,
            )
    return sides


# --- the server ---------------------------------------------------------------------------


def serve_and_load(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, Side], int | None]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    cmd = [sys.executable, "-m", "tactful.cli", "serve", "--db", str(tmp / "tactful.db")]
    cmd += ["--port", str(port), "--durability", "full"]
    cmd += ["--actions-log", str(tmp / "actions.jsonl"), "--text-scorer", args.text_scorer]
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
        try:
            t0 = time.perf_counter()
            wait_healthy(proc, url, log, deadline_s=60)
            print(f"server up on {url} in {time.perf_counter() - t0:.1f} s", flush=True)
            sides = asyncio.run(
                run_load(url, args.bots, args.seconds, args.phase_seconds, args.think_ms, args.seed)
            )
        finally:
            code = stop_server(proc)
    if code not in CLEAN_EXITS:
        print(f"WARNING: server exit code {code}; its log:")
        print(log.read_text(errors="replace")[-4_000:])
    return sides, code


# --- report -------------------------------------------------------------------------------


def _ms(v: float) -> str:
    return f"{v:10.1f}" if math.isfinite(v) else f"{'-':>10}"


def report(sides: dict[str, Side]) -> None:
    d, i = sides[DECIDE], sides[INGEST]
    rows: list[tuple[str, Any]] = [
        ("turns answered", lambda s: f"{len(s.latencies_ms):>10,}"),
        ("p50 ms", lambda s: _ms(percentile(s.latencies_ms, 0.50))),
        ("p95 ms", lambda s: _ms(percentile(s.latencies_ms, 0.95))),
        ("p99 ms", lambda s: _ms(percentile(s.latencies_ms, 0.99))),
        ("max ms", lambda s: _ms(max(s.latencies_ms, default=float("nan")))),
        ("requests/s", lambda s: f"{len(s.latencies_ms) / s.seconds if s.seconds else 0:10.1f}"),
        ("errors", lambda s: f"{sum(s.errors.values()) + s.shape_errors:>10,}"),
        ("decisions/turn", lambda s: f"{s.decisions / max(len(s.latencies_ms), 1):10.2f}"),
    ]
    print(f"{'':<16}{'decide':>10}  {'ingest':>10}   (POST /v1/decide vs POST /v1/events)")
    for name, cell in rows:
        print(f"{name:<16}{cell(d)}  {cell(i)}")
    if d.took_ms:
        overhead = [c - s for c, s in zip(d.latencies_ms, d.took_ms, strict=True)]
        print(
            f"decide's own took_ms (engine.ingest incl. lock wait): p50 "
            f"{percentile(d.took_ms, 0.5):.1f} ms, p99 {percentile(d.took_ms, 0.99):.1f} ms; "
            f"client minus took_ms (HTTP, JSON, event loop): p50 "
            f"{percentile(overhead, 0.5):.1f} ms, p99 {percentile(overhead, 0.99):.1f} ms"
        )
    print("by turn (p50 / p99 ms):")
    for label in sorted(set(d.by_label) | set(i.by_label)):
        dl, il = d.by_label.get(label, []), i.by_label.get(label, [])
        print(
            f"  {label:<20} decide {len(dl):>5,} {percentile(dl, 0.5):6.1f} / "
            f"{percentile(dl, 0.99):6.1f}   ingest {len(il):>5,} {percentile(il, 0.5):6.1f} / "
            f"{percentile(il, 0.99):6.1f}"
        )
    print("guidance.next: " + ", ".join(f"{k} {n:,}" for k, n in d.moves.most_common()))
    print("decisions (decide): " + ", ".join(f"{k} {n:,}" for k, n in d.rules.most_common(8)))
    for side in (d, i):
        if side.errors or side.shape_errors:
            print(f"{side.name} FAILURES: {dict(side.errors)}, shape errors {side.shape_errors}")
            for example in side.examples:
                print(f"  {example}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--bots", type=int, default=8, help="concurrent conversations (default 8)")
    ap.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="timed run, split evenly between decide and ingest phases (default 20)",
    )
    ap.add_argument(
        "--phase-seconds", type=float, default=2.0, help="about how long each phase lasts"
    )
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean pause of a bot between an answer and its next turn (default 0: back to back)",
    )
    ap.add_argument("--seed", type=int, default=7, help="random seed for the conversations")
    ap.add_argument(
        "--text-scorer",
        choices=["learned", "lexical"],
        default="learned",
        help="the server's text scorer, as `tactful serve --text-scorer` (default learned)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 bots, 3 s")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    args = ap.parse_args(argv)
    if args.quick:
        args.bots, args.seconds, args.phase_seconds = 2, 3.0, 0.75
    if args.bots < 1 or args.seconds <= 0 or args.phase_seconds <= 0 or args.think_ms < 0:
        ap.error("--bots >= 1, --seconds > 0, --phase-seconds > 0 and --think-ms >= 0")

    print(machine(python_extra=f", httpx {httpx.__version__}"))
    print(
        f"decide: {args.bots} chatbot conversations, one turn at a time, think time "
        f"{args.think_ms:g} ms, for {args.seconds:g} s (half decide, half ingest); "
        f"tactful serve --durability full --text-scorer {args.text_scorer}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="tactful-decide-"))
    try:
        sides, code = serve_and_load(tmp, args)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    d, i = sides[DECIDE], sides[INGEST]
    print()
    report(sides)
    d50, d99 = percentile(d.latencies_ms, 0.50), percentile(d.latencies_ms, 0.99)
    i50 = percentile(i.latencies_ms, 0.50)
    ratio = d50 / i50 if i50 > 0 else float("nan")
    within = d99 <= BUDGET_MS
    print(
        f"ratio p50 decide/ingest {ratio:.2f}: deciding and explaining costs "
        f"{d50 - i50:+.1f} ms at the median on top of plain ingest"
    )
    print(f"budget p99 <= {BUDGET_MS} ms for decide: {'met' if within else 'NOT MET'}")
    errors = sum(sum(s.errors.values()) for s in (d, i))
    shape = d.shape_errors + i.shape_errors
    failed = errors > 0 or shape > 0 or not d.latencies_ms or not i.latencies_ms
    if failed:
        print("FAILED: errors, shape problems or no answers (see above)")
    print()

    def r(v: float) -> float | None:
        return round(v, 2) if math.isfinite(v) else None

    summary = {
        "decide_p50_ms": r(d50),
        "decide_p95_ms": r(percentile(d.latencies_ms, 0.95)),
        "decide_p99_ms": r(d99),
        "decide_max_ms": r(max(d.latencies_ms, default=float("nan"))),
        "ingest_p50_ms": r(i50),
        "ingest_p95_ms": r(percentile(i.latencies_ms, 0.95)),
        "ingest_p99_ms": r(percentile(i.latencies_ms, 0.99)),
        "ingest_max_ms": r(max(i.latencies_ms, default=float("nan"))),
        "ratio_p50": r(ratio),
        "decide_per_s": r(len(d.latencies_ms) / d.seconds if d.seconds else 0.0),
        "ingest_per_s": r(len(i.latencies_ms) / i.seconds if i.seconds else 0.0),
        "decide_turns": len(d.latencies_ms),
        "ingest_turns": len(i.latencies_ms),
        "errors": errors,
        "shape_errors": shape,
        "budget_ms": BUDGET_MS,
        "within_budget": within,
        "bots": args.bots,
        "seconds": args.seconds,
        "think_ms": args.think_ms,
        "text_scorer": args.text_scorer,
        "server_exit": code,
    }
    print(json.dumps(summary), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

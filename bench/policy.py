"""tactful policy benchmark: the default policy's decisions per second, against its floor.

* **Inputs (untimed).** Customer histories from bench/state.py's generator (sessions over
  days, a mood per session; ``--account-share`` of the customers belong to an account, a
  few customers to each, and send an ``identify`` with its tier, value and tenure) are
  interleaved into one stream in event-time order and run through the pipeline as
  ``tactful.runtime.pipeline.process`` runs them: ``detect`` (lexical text tier),
  ``remember``, ``remember_account``, ``decide``, ``plan_actions``. So holds, handoffs and
  cooldowns build up as in production. For every event that is decided on (late events are
  not), the inputs ``PolicyEngine.decide`` saw are kept: the event, the customer's state
  right after ``remember``, the signals, ``now`` (the event time) and the account's state.
* **Engine.** ``PolicyEngine(load_policy()).decide(...)`` over all of them, ``--repeats``
  times (after one warm-up pass); the median repeat gives µs per decision and decisions/s.
  Target: <= 50 µs per decision. A separate pass times each call for the p50 and p99.
* **Floor.** The same policy's ``when`` conditions, hand-written as plain Python over the
  same inputs (levels through ``state.level(...)`` decayed to now, ``payment_failures_30d``,
  the signals' strengths, ...; each computed on first use, once per call; the policy's
  ``thresholds`` bound as constants; ``matches`` as the same case-insensitive regexes),
  walked in the engine's rule order with the same hard-trigger/stop semantics (every
  condition is evaluated, as the engine does to record what a hard trigger overrode; the
  rules that act end at the first hard trigger), but no cooldowns, guards, reasons,
  factors or Decision objects: the cost of evaluating the conditions natively. The floor
  and the engine's compiled conditions are checked against each other on every input
  (every rule's condition, and the matched rules of the walk), and the engine's
  ``candidates`` pre-filter is checked never to drop a rule whose condition holds. The
  floor refuses to run (exit 2) if the policy's rules, their conditions or its threshold
  names are not the ones it was written for.

Timed loops run with the garbage collector off (as ``timeit`` does); the inputs are built
and checked untimed. One more untimed pass under cProfile shows where the engine's time
goes.

Last line of output: one JSON object::

    {"decision_us", "floor_us", "decisions_per_s", "ratio", "p50_us", "p99_us", ...}

Usage: ``python bench/policy.py [--triples N] [--repeats R] [--account-share F]
[--events-per-customer K] [--seed S]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import json
import pstats
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import state as state_bench  # bench/state.py (its ACCOUNT_SHARE is set from --account-share)
from benchkit import machine
from state import HistoryGen, source_revision
from tactful.actions import plan_actions
from tactful.detect import detect
from tactful.events import BotTurn, Event, Message, Search
from tactful.policy.engine import PolicyEngine, build_context
from tactful.policy.model import Policy, load_policy
from tactful.signals import Signal
from tactful.state.account import AccountState, remember_account
from tactful.state.customer import CustomerState, is_too_late, remember
from tactful.state.trend import TrendConfig
from throughput import ok

TARGET_DECISION_US = 50.0
PROFILE_TOP = 8


@dataclass(frozen=True, slots=True)
class Triple:
    """What ``PolicyEngine.decide`` sees for one event in the pipeline."""

    event: Event
    state: CustomerState  # right after remember (and the account's context folded in)
    signals: list[Signal]
    now: datetime
    account: AccountState | None


# --- inputs -------------------------------------------------------------------------------


def build_triples(
    policy: Policy, want: int, mean_events: float, seed: int
) -> tuple[list[Triple], Counter[str], int]:
    """At least ``want`` decided-on events, from whole customer histories run through the
    pipeline in event-time order. Returns the triples, the pipeline's decisions per rule,
    and how many customers it took."""
    gen = HistoryGen(random.Random(seed), mean_events)
    histories: list[list[Event]] = []
    total = 0
    while total < want:
        history = gen.history(len(histories))
        histories.append(history)
        total += len(history)
    engine = PolicyEngine(policy)
    behavior = policy.detectors.config()
    memory = policy.memory.config()
    states: dict[str, CustomerState] = {}
    accounts: dict[str, AccountState] = {}
    triples: list[Triple] = []
    fired: Counter[str] = Counter()
    # Each history keeps its delivery order (a few events swapped); merged by event time.
    for event in heapq.merge(*histories, key=lambda e: e.timestamp):
        cid = event.customer_id
        state = states.get(cid) or CustomerState(customer_id=cid)
        if is_too_late(state, event, memory):  # recorded, not decided on
            states[cid] = remember(state, event, [], memory)
            continue
        account_id = event.account_id or state.account_id
        account = None
        if account_id is not None:
            account = accounts.get(account_id) or AccountState(account_id=account_id)
        now = event.timestamp
        signals = detect(event, state, behavior)
        remembered = remember(state, event, signals, memory)
        if account is not None:
            account = accounts[account.account_id] = remember_account(
                account, state, remembered, event, signals, memory
            )
            if remembered.account != account.context:
                remembered = remembered.model_copy(update={"account": account.context})
        decided = engine.decide(event, remembered, signals, now, account, memory.trend)
        fired.update({d.rule_id for d in decided.decisions})
        states[cid], _ = plan_actions(remembered, event, signals, decided.decisions, now)
        triples.append(Triple(event, remembered, signals, now, account))
    return triples, fired, len(histories)


# --- the floor: the default policy's conditions as plain Python ----------------------------

LEGAL = re.compile(
    "lawyer|legal action|\\bsue\\b|fraud|chargeback|data breach|hacked|unauthori[sz]ed|stolen",
    re.IGNORECASE,
)
INVOICE = re.compile("invoice|receipt", re.IGNORECASE)
SAFETY = re.compile(
    r"suicid|kill (?:my|him|her|them)self|self.harm|hurt (?:my|him|her)self|\bthreat(?:en)?",
    re.IGNORECASE,
)
LOCKOUT = re.compile(
    "locked out|lock.?out|account (?:is |was |got )?locked|too many (?:login |sign.?in )?attempts",
    re.IGNORECASE,
)
MFA_STEP = re.compile("mfa|2fa|otp|verif|authenticat", re.IGNORECASE)
PASSWORD = re.compile(
    "(?:reset|forgot|forgotten|change) (?:my )?password|password reset", re.IGNORECASE
)
DISPUTE = re.compile(
    "dispute|charged twice|double.?charged|overcharged|wrong amount|charged (?:me )?(?:again|more)",
    re.IGNORECASE,
)
SALES_TEXT = re.compile(
    "pricing exception|custom (?:terms|contract|pricing)|volume (?:discount|pricing)|"
    r"procurement|purchase order|security review|soc ?2|\bdpa\b|\bmsa\b",
    re.IGNORECASE,
)
SALES_QUERY = re.compile(
    "pricing exception|custom terms|volume discount|procurement|purchase order", re.IGNORECASE
)
LEAVING = re.compile("cancel|close (?:my )?account|i'?m done|switching to|leaving", re.IGNORECASE)
VIP_TIERS = ("enterprise", "vip")


class Facts:
    """What the conditions read for one event, each value computed on first use (a slot
    holding None until then: functools.cached_property takes a lock per first read on
    3.11, which would bill the floor for more than the values cost)."""

    __slots__ = (
        "_churn_intent",
        "_confusion",
        "_frustration",
        "_holds",
        "_payments",
        "event",
        "now",
        "sig",
        "state",
        "trend",
    )

    def __init__(
        self,
        event: Event,
        state: CustomerState,
        signals: list[Signal],
        now: datetime,
        trend: TrendConfig,
    ) -> None:
        self.event = event
        self.state = state
        self.now = now
        self.trend = trend
        sig: dict[str, float] = {}
        for s in signals:
            if s.strength > sig.get(s.name, 0.0):
                sig[s.name] = s.strength
        self.sig = sig
        self._frustration: float | None = None
        self._confusion: float | None = None
        self._churn_intent: float | None = None
        self._payments: int | None = None
        self._holds: bool | None = None

    @property
    def frustration(self) -> float:
        if self._frustration is None:
            self._frustration = self.state.level("frustration", self.now, self.trend)
        return self._frustration

    @property
    def confusion(self) -> float:
        if self._confusion is None:
            self._confusion = self.state.level("confusion", self.now, self.trend)
        return self._confusion

    @property
    def churn_intent(self) -> float:
        if self._churn_intent is None:
            self._churn_intent = self.state.level("churn_intent", self.now, self.trend)
        return self._churn_intent

    def before(self, dimension: str) -> float:
        """The level just before this event's evidence (the level now, if it added none).
        Each is read by one rule: not kept."""
        t = self.state.trend.get(dimension)
        if t is not None and t.at == self.now:
            return t.level_before(dimension, self.trend)
        level: float = getattr(self, dimension)  # one of the properties above
        return level

    @property
    def payment_failures_30d(self) -> int:
        if self._payments is None:
            self._payments = self.state.payment_failures_30d(self.now)
        return self._payments

    @property
    def open_tickets(self) -> int:
        return len(self.state.open_tickets)

    @property
    def any_active_hold(self) -> bool:
        if self._holds is None:
            self._holds = any(h.active(self.now) for h in self.state.holds)
        return self._holds

    def invoice_text(self) -> str | None:
        """A customer message's text or a search's query (what invoice_pointer matches)."""
        ev = self.event
        if isinstance(ev, Message):
            return ev.text if ev.role not in ("agent", "bot") else None
        if isinstance(ev, Search):
            return ev.query
        return None


Condition = Callable[[Facts], bool]


def floor_conditions(th: Mapping[str, float]) -> dict[str, tuple[str, Condition]]:
    """Rule id -> (its `when` in default.yaml, the same condition in plain Python), with the
    policy's thresholds bound as constants. The source is kept so the floor refuses to run
    against a policy whose conditions it does not mirror."""
    asks_for_human = th["asks_for_human"]
    says_leaving = th["says_leaving"]
    high_value = th["high_value"]
    long_standing_days = th["long_standing_days"]
    payment_failures = th["payment_failures"]
    open_tickets = th["open_tickets"]
    recovered = th["recovered"]
    calm = th["calm"]
    wearing_thin = th["wearing_thin"]
    annoyed = th["annoyed"]
    frustration_building = th["frustration_building"]
    frustrated = th["frustrated"]
    confused = th["confused"]
    still_confused = th["still_confused"]

    def valued(c: Facts, tenure: bool) -> bool:
        a = c.state.account
        return (
            a.tier in VIP_TIERS
            or a.value >= high_value
            or (tenure and a.tenure_days is not None and a.tenure_days >= long_standing_days)
        )

    def invoice_pointer(c: Facts) -> bool:
        text = c.invoice_text()
        return (
            text is not None
            and c.state.topic == "billing"
            and INVOICE.search(text) is not None
            and c.frustration < frustrated
        )

    def customer_says(c: Facts, pattern: re.Pattern[str]) -> bool:
        ev = c.event
        return (
            isinstance(ev, Message)
            and ev.role == "customer"
            and pattern.search(ev.text) is not None
        )

    def sales_question(c: Facts) -> bool:
        ev = c.event
        if isinstance(ev, Message):
            return ev.role not in ("agent", "bot") and SALES_TEXT.search(ev.text) is not None
        return isinstance(ev, Search) and SALES_QUERY.search(ev.query) is not None

    return {
        "safety": (
            'event.type == "message" and event.role == "customer" and matches(event.text, '
            '"suicid|kill (?:my|him|her|them)self|self.harm|hurt (?:my|him|her)self|'
            '\\\\bthreat(?:en)?")',
            lambda c: customer_says(c, SAFETY),
        ),
        "lockout": (
            '(event.type == "message" and event.role == "customer" and matches(event.text, '
            '"locked out|lock.?out|account (?:is |was |got )?locked|too many (?:login |sign.?in '
            ')?attempts")) or (signal.bot_repeat_failure > 0 and matches(event.step_id, '
            '"mfa|2fa|otp|verif|authenticat"))',
            lambda c: (
                customer_says(c, LOCKOUT)
                or (
                    c.sig.get("bot_repeat_failure", 0.0) > 0
                    and isinstance(c.event, BotTurn)
                    and MFA_STEP.search(c.event.step_id) is not None
                )
            ),
        ),
        "password_reset": (
            'event.type == "message" and event.role == "customer" and matches(event.text, '
            '"(?:reset|forgot|forgotten|change) (?:my )?password|password reset") and '
            "state.frustration < threshold.frustrated",
            lambda c: customer_says(c, PASSWORD) and c.frustration < frustrated,
        ),
        "refund_request": (
            'event.type == "message" and event.role == "customer" and state.topic == "refund" '
            "and state.frustration < threshold.frustrated",
            lambda c: (
                isinstance(c.event, Message)
                and c.event.role == "customer"
                and c.state.topic == "refund"
                and c.frustration < frustrated
            ),
        ),
        "billing_dispute": (
            'event.type == "message" and event.role == "customer" and matches(event.text, '
            '"dispute|charged twice|double.?charged|overcharged|wrong amount|charged (?:me )?'
            '(?:again|more)")',
            lambda c: customer_says(c, DISPUTE),
        ),
        "sales_question": (
            'event.type in ["message", "search"] and event.role not in ["agent", "bot"] and '
            '(matches(event.text, "pricing exception|custom (?:terms|contract|pricing)|volume '
            "(?:discount|pricing)|procurement|purchase order|security review|soc ?2|"
            '\\\\bdpa\\\\b|\\\\bmsa\\\\b") or matches(event.query, "pricing exception|custom '
            'terms|volume discount|procurement|purchase order"))',
            sales_question,
        ),
        "leaving_for_sure": (
            "signal.churn_intent >= threshold.says_leaving and state.frustration >= "
            'threshold.annoyed and event.type == "message" and matches(event.text, '
            '"cancel|close (?:my )?account|i\'?m done|switching to|leaving")',
            lambda c: (
                c.sig.get("churn_intent", 0.0) >= says_leaving
                and c.frustration >= annoyed
                and isinstance(c.event, Message)
                and LEAVING.search(c.event.text) is not None
            ),
        ),
        "human_requested": (
            "signal.wants_human >= threshold.asks_for_human",
            lambda c: c.sig.get("wants_human", 0.0) >= asks_for_human,
        ),
        "legal_security_fraud": (
            'event.type == "message" and event.role == "customer" and matches(event.text, '
            '"lawyer|legal action|\\\\bsue\\\\b|fraud|chargeback|data breach|hacked|'
            'unauthori[sz]ed|stolen")',
            lambda c: (
                isinstance(c.event, Message)
                and c.event.role == "customer"
                and LEGAL.search(c.event.text) is not None
            ),
        ),
        "valued_customer_leaving": (
            "signal.churn_intent >= threshold.says_leaving and state.churn_intent >= "
            'threshold.says_leaving and (account.tier in ["enterprise", "vip"] or account.value '
            ">= threshold.high_value or account.tenure_days >= threshold.long_standing_days) "
            "and state.payment_failures_30d == 0",
            lambda c: (
                c.sig.get("churn_intent", 0.0) >= says_leaving
                and c.churn_intent >= says_leaving
                and valued(c, tenure=True)
                and c.payment_failures_30d == 0
            ),
        ),
        "billing_breakdown": (
            "state.payment_failures_30d >= threshold.payment_failures and state.open_tickets >= "
            "threshold.open_tickets and (signal.cancel_page > 0 or signal.churn_intent >= "
            "threshold.says_leaving or state.frustration >= threshold.frustrated)",
            lambda c: (
                c.payment_failures_30d >= payment_failures
                and c.open_tickets >= open_tickets
                and (
                    c.sig.get("cancel_page", 0.0) > 0
                    or c.sig.get("churn_intent", 0.0) >= says_leaving
                    or c.frustration >= frustrated
                )
            ),
        ),
        "payments_failing": (
            "signal.payment_failed > 0 and state.payment_failures_30d >= "
            "threshold.payment_failures",
            lambda c: (
                c.sig.get("payment_failed", 0.0) > 0 and c.payment_failures_30d >= payment_failures
            ),
        ),
        "cancel_page_without_history": (
            "signal.cancel_page > 0 and state.payment_failures_30d == 0 and "
            "state.open_tickets == 0 and state.frustration < threshold.calm",
            lambda c: (
                c.sig.get("cancel_page", 0.0) > 0
                and c.payment_failures_30d == 0
                and c.open_tickets == 0
                and c.frustration < calm
            ),
        ),
        "invoice_pointer": (
            'event.type in ["message", "search"] and event.role not in ["agent", "bot"] and '
            'state.topic == "billing" and (matches(event.text, "invoice|receipt") or '
            'matches(event.query, "invoice|receipt")) and state.frustration < threshold.frustrated',
            invoice_pointer,
        ),
        "vip_error_streak": (
            'signal.error_streak > 0 and (account.tier in ["enterprise", "vip"] or '
            "account.value >= threshold.high_value)",
            lambda c: c.sig.get("error_streak", 0.0) > 0 and valued(c, tenure=False),
        ),
        "error_streak": (
            "signal.error_streak > 0",
            lambda c: c.sig.get("error_streak", 0.0) > 0,
        ),
        "rage_click": (
            "signal.rage_click > 0",
            lambda c: c.sig.get("rage_click", 0.0) > 0,
        ),
        "bot_going_in_circles": (
            "signal.bot_repeat_failure > 0",
            lambda c: c.sig.get("bot_repeat_failure", 0.0) > 0,
        ),
        "bot_stalled": (
            "signal.bot_no_progress > 0 and signal.bot_repeat_failure == 0",
            lambda c: (
                c.sig.get("bot_no_progress", 0.0) > 0 and c.sig.get("bot_repeat_failure", 0.0) == 0
            ),
        ),
        "told_us_before": (
            "signal.repeat_contact > 0 and state.frustration >= threshold.wearing_thin",
            lambda c: c.sig.get("repeat_contact", 0.0) > 0 and c.frustration >= wearing_thin,
        ),
        "confused_again": (
            "state.confusion >= threshold.still_confused and state.confusion_before >= "
            "threshold.confused and state.frustration < threshold.frustrated",
            lambda c: (
                c.confusion >= still_confused
                and c.before("confusion") >= confused
                and c.frustration < frustrated
            ),
        ),
        "confused": (
            "state.confusion >= threshold.confused and state.frustration < threshold.annoyed",
            lambda c: c.confusion >= confused and c.frustration < annoyed,
        ),
        "high_value_intent": (
            "signal.high_value_intent > 0",
            lambda c: c.sig.get("high_value_intent", 0.0) > 0,
        ),
        "frustration_rising": (
            "state.frustration >= threshold.frustration_building",
            lambda c: c.frustration >= frustration_building,
        ),
        "repeated_failure": (
            "signal.frustration >= threshold.annoyed and state.frustration_before >= "
            "threshold.calm",
            lambda c: c.sig.get("frustration", 0.0) >= annoyed and c.before("frustration") >= calm,
        ),
        "recovered": (
            "state.active_holds > 0 and state.frustration < threshold.recovered and "
            "state.churn_intent < threshold.recovered and state.open_handoffs == 0",
            lambda c: (
                c.any_active_hold
                and c.frustration < recovered
                and c.churn_intent < recovered
                and len(c.state.handoffs) == 0
            ),
        ),
    }


FloorRule = tuple[str, bool, Condition]  # rule id, ends the acting rules, condition


def _normalise(when: str) -> str:
    return " ".join(when.split())


def floor_walk(engine: PolicyEngine) -> list[FloorRule]:
    """The floor's conditions in the engine's evaluation order, or exit naming what differs."""
    try:
        floor = floor_conditions(engine.policy.thresholds)
    except KeyError as exc:
        floor, problem = {}, f"threshold {exc} not in the policy"
    else:
        problem = ""
    ids = [rule.id for rule, _ in engine.rules]
    missing = [i for i in ids if i not in floor]
    gone = [i for i in floor if i not in ids]
    changed = [
        rule.id
        for rule, _ in engine.rules
        if rule.id in floor and _normalise(rule.when) != _normalise(floor[rule.id][0])
    ]
    if problem or missing or gone or changed:
        sys.stdout.flush()
        print(
            f"FLOOR OUT OF DATE for policy {engine.version}: {problem + '; ' if problem else ''}"
            f"rules without a floor condition: {', '.join(missing) or 'none'}; floor rules not "
            f"in the policy: {', '.join(gone) or 'none'}; conditions changed: "
            f"{', '.join(changed) or 'none'}. Update floor_conditions() in bench/policy.py.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return [(rule.id, rule.hard or rule.stop, floor[rule.id][1]) for rule, _ in engine.rules]


def floor_decide(
    walk: list[FloorRule],
    event: Event,
    state: CustomerState,
    signals: list[Signal],
    now: datetime,
    trend: TrendConfig,
) -> tuple[list[str], int]:
    """Every rule whose condition holds, in the engine's order (it too evaluates the rules
    after a hard trigger, to record what the trigger overrode), and how many of them act:
    those up to and including the first hard trigger or ``stop`` rule. No guards."""
    c = Facts(event, state, signals, now, trend)
    matched: list[str] = []
    acting = -1
    for rule_id, ends, cond in walk:
        if cond(c):
            matched.append(rule_id)
            if ends and acting < 0:
                acting = len(matched)
    return matched, (len(matched) if acting < 0 else acting)


# --- checks -------------------------------------------------------------------------------


@dataclass
class Check:
    """The floor against the engine's compiled conditions, on every input."""

    conditions: int = 0  # (input, rule) pairs compared
    condition_disagreements: int = 0
    walk_disagreements: int = 0  # matched rules, or how many of them act, differ
    prefilter_misses: int = 0  # a true condition that the engine's candidates() left out
    candidates: int = 0  # rules left after the engine's pre-filter, summed over inputs
    examples: list[str] = field(default_factory=list)
    matched: Counter[str] = field(default_factory=Counter)  # condition true
    overridden: Counter[str] = field(default_factory=Counter)  # true after a hard trigger
    fired: Counter[str] = field(default_factory=Counter)  # a decision after the guards
    with_decisions: int = 0
    has_match: list[bool] = field(default_factory=list)  # per input: a condition held


def check(
    engine: PolicyEngine,
    walk: list[FloorRule],
    triples: list[Triple],
    trend: TrendConfig,
    thresholds: Mapping[str, float],
) -> Check:
    out = Check()
    floor_by_id = {rule_id: cond for rule_id, _, cond in walk}
    for i, t in enumerate(triples):
        ctx = build_context(t.event, t.state, t.signals, t.now, t.account, trend, thresholds)
        facts = Facts(t.event, t.state, t.signals, t.now, trend)
        present = frozenset(s.name for s in t.signals if s.strength > 0)
        candidates = {rule.id for rule, _ in engine.candidates(t.event.type, present)}
        out.candidates += len(candidates)
        matched: list[str] = []
        acting = -1
        for rule, cond in engine.rules:
            truth = bool(cond.fn(ctx))
            floor_truth = bool(floor_by_id[rule.id](facts))
            out.conditions += 1
            if truth != floor_truth:
                out.condition_disagreements += 1
                if len(out.examples) < 5:
                    out.examples.append(
                        f"input {i} ({t.event.type}): {rule.id} engine={truth} floor={floor_truth}"
                    )
            if not truth:
                continue
            if rule.id not in candidates:
                out.prefilter_misses += 1
            matched.append(rule.id)
            if acting >= 0:
                out.overridden[rule.id] += 1
            elif rule.hard or rule.stop:
                acting = len(matched)
        expected = (matched, len(matched) if acting < 0 else acting)
        if floor_decide(walk, t.event, t.state, t.signals, t.now, trend) != expected:
            out.walk_disagreements += 1
        out.matched.update(matched)
        out.has_match.append(bool(matched))
        decided = engine.decide(t.event, t.state, t.signals, t.now, t.account, trend)
        out.fired.update({d.rule_id for d in decided.decisions})
        out.with_decisions += bool(decided.decisions)
    return out


# --- timing -------------------------------------------------------------------------------


def time_engine(engine: PolicyEngine, triples: list[Triple], trend: TrendConfig) -> float:
    decide = engine.decide
    started = time.perf_counter()
    for t in triples:
        decide(t.event, t.state, t.signals, t.now, t.account, trend)
    return time.perf_counter() - started


def time_floor(walk: list[FloorRule], triples: list[Triple], trend: TrendConfig) -> float:
    started = time.perf_counter()
    for t in triples:
        floor_decide(walk, t.event, t.state, t.signals, t.now, trend)
    return time.perf_counter() - started


def time_context(
    triples: list[Triple], trend: TrendConfig, thresholds: Mapping[str, float]
) -> float:
    """build_context alone: the part of decide that runs on every event."""
    started = time.perf_counter()
    for t in triples:
        build_context(t.event, t.state, t.signals, t.now, t.account, trend, thresholds)
    return time.perf_counter() - started


def per_call_us(call: Callable[[Triple], Any], triples: list[Triple]) -> list[float]:
    """Each call timed on its own (perf_counter_ns around it; its ~0.1 µs included)."""
    clock = time.perf_counter_ns
    out: list[float] = []
    for t in triples:
        t0 = clock()
        call(t)
        out.append((clock() - t0) / 1000)
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p * len(ordered)) - 1))]


class GcOff:
    """The garbage collector off inside the block, as timeit does."""

    def __enter__(self) -> None:
        gc.collect()
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was:
            gc.enable()


def profile_top(
    engine: PolicyEngine, triples: list[Triple], trend: TrendConfig, top: int
) -> list[str]:
    prof = cProfile.Profile()
    decide = engine.decide
    prof.enable()
    for t in triples:
        decide(t.event, t.state, t.signals, t.now, t.account, trend)
    prof.disable()
    stats = pstats.Stats(prof)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    lines = []
    for (path, line, name), (_, calls, tottime, cumtime, _) in rows:
        where = name if path == "~" else f"{name} ({_short(path)}:{line})"
        lines.append(
            f"  {tottime / len(triples) * 1e6:>7.2f} {tottime / total:>6.1%} "
            f"{cumtime / len(triples) * 1e6:>8.2f} {calls / len(triples):>7.2f}  {where}"
        )
    return lines


def _short(path: str) -> str:
    for marker in ("/tactful/", "/lib/python"):
        if marker in path:
            return path[path.index(marker) + 1 :]
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--triples", type=int, default=20_000, help="decided-on events (at least)")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes over all of them")
    ap.add_argument(
        "--account-share",
        type=float,
        default=0.3,
        help="share of customers in an account (bench/state.py's default is 0.04)",
    )
    ap.add_argument(
        "--events-per-customer", type=float, default=8.0, help="mean events per customer"
    )
    ap.add_argument("--seed", type=int, default=7, help="random seed for the histories")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile pass")
    args = ap.parse_args(argv)
    if args.triples < 1 or args.repeats < 1 or not 0 <= args.account_share <= 1:
        ap.error("--triples and --repeats must be positive, --account-share in [0, 1]")

    print(machine())
    print(f"tactful {source_revision()}")
    policy = load_policy()
    engine = PolicyEngine(policy)
    walk = floor_walk(engine)  # exits if the floor does not mirror this policy
    trend = policy.memory.config().trend
    thresholds: Mapping[str, float] = MappingProxyType(dict(policy.thresholds))
    hard = sum(rule.hard for rule, _ in engine.rules)
    print(
        f"policy {policy.version}: {len(engine.rules)} rules ({hard} hard); "
        f"inputs: >= {args.triples:,} decided-on events, ~{args.events_per_customer:g} per "
        f"customer, {args.account_share:.0%} of customers in an account; "
        f"{args.repeats} timed repeats"
    )

    state_bench.ACCOUNT_SHARE = args.account_share
    t0 = time.perf_counter()
    triples, pipeline_fired, customers = build_triples(
        policy, args.triples, args.events_per_customer, args.seed
    )
    n = len(triples)
    kinds = Counter(t.event.type for t in triples)
    with_account = sum(t.account is not None for t in triples)
    with_signals = sum(bool(t.signals) for t in triples)
    accounts = len({t.account.account_id for t in triples if t.account is not None})
    print(
        f"built {n:,} inputs from {customers:,} customers in {time.perf_counter() - t0:.1f} s: "
        f"{with_signals / n:.0%} with signals, {with_account / n:.0%} with an account "
        f"({accounts:,} accounts)"
    )
    print("  " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))

    t0 = time.perf_counter()
    verdict = check(engine, walk, triples, trend, thresholds)
    print(
        f"checked the floor against the engine's conditions in {time.perf_counter() - t0:.1f} s: "
        f"{verdict.conditions:,} (input, rule) conditions, "
        f"{verdict.condition_disagreements:,} disagreements; matched-rule walks: "
        f"{verdict.walk_disagreements:,} disagreements; true conditions left out by the "
        f"engine's pre-filter: {verdict.prefilter_misses:,}; rules left by the pre-filter: "
        f"{verdict.candidates / n:.1f} of {len(walk)} per input"
    )
    for line in verdict.examples:
        print(f"  DISAGREEMENT {line}")
    if verdict.condition_disagreements or verdict.walk_disagreements:
        print("  WARNING: the floor does not evaluate what the engine does; the run exits 1")
    if verdict.fired != pipeline_fired:
        print("  WARNING: decide gave different decisions on the same inputs than in the build")

    # Warm-up (untimed): the engine's candidates memo, the regex cache, code paths.
    time_engine(engine, triples, trend)
    time_floor(walk, triples, trend)
    engine_s: list[float] = []
    floor_s: list[float] = []
    context_s: list[float] = []
    with GcOff():
        for _ in range(args.repeats):
            engine_s.append(time_engine(engine, triples, trend))
            floor_s.append(time_floor(walk, triples, trend))
            context_s.append(time_context(triples, trend, thresholds))
        decide = engine.decide
        engine_calls = per_call_us(
            lambda t: decide(t.event, t.state, t.signals, t.now, t.account, trend), triples
        )
        floor_calls = per_call_us(
            lambda t: floor_decide(walk, t.event, t.state, t.signals, t.now, trend), triples
        )
    decision_us = statistics.median(engine_s) / n * 1e6
    floor_us = statistics.median(floor_s) / n * 1e6
    context_us = statistics.median(context_s) / n * 1e6
    ratio = decision_us / floor_us
    per_s = 1e6 / decision_us
    p50, p99 = percentile(engine_calls, 0.50), percentile(engine_calls, 0.99)
    f50, f99 = percentile(floor_calls, 0.50), percentile(floor_calls, 0.99)
    deciding = [c for c, m in zip(engine_calls, verdict.has_match, strict=True) if m]
    idle = [c for c, m in zip(engine_calls, verdict.has_match, strict=True) if not m]

    print()
    print(f"== matched and fired per rule ({n:,} inputs) ==")
    print(
        "  matched: its condition held; overridden: ... after a hard trigger that matched first; "
        "fired: it made a decision (past cooldowns, guards and stronger treatments)"
    )
    print(f"  {'rule':<28} {'hard':>4} {'matched':>8} {'overridden':>10} {'fired':>8}")
    for rule, _ in engine.rules:
        m, o, f = verdict.matched[rule.id], verdict.overridden[rule.id], verdict.fired[rule.id]
        print(f"  {rule.id:<28} {'yes' if rule.hard else '':>4} {m:>8,} {o:>10,} {f:>8,}")
    any_match = len(deciding)
    print(
        f"  inputs with a matching rule: {any_match:,} ({any_match / n:.1%}); with at least "
        f"one decision: {verdict.with_decisions:,} ({verdict.with_decisions / n:.1%})"
    )
    print()
    print("== cost per decision (GC off; median of repeats, percentiles from per-call timing) ==")
    print(f"  {'':<26} {'mean µs':>8} {'p50 µs':>8} {'p99 µs':>8} {'per s':>10}")
    print(
        f"  {'PolicyEngine.decide':<26} {decision_us:>8.2f} {p50:>8.2f} {p99:>8.2f} {per_s:>10,.0f}"
    )
    print(
        f"  {'floor (plain Python)':<26} {floor_us:>8.2f} {f50:>8.2f} {f99:>8.2f} "
        f"{1e6 / floor_us:>10,.0f}"
    )
    print(f"  {'  of decide: build_context':<26} {context_us:>8.2f}")
    if deciding and idle:
        print(
            f"  decide, per call: inputs with a matching rule {statistics.fmean(deciding):.2f} "
            f"µs mean ({len(deciding):,}), without {statistics.fmean(idle):.2f} µs ({len(idle):,})"
        )
    print(
        f"  ratio engine/floor {ratio:.2f}  (repeats: engine "
        + ", ".join(f"{s / n * 1e6:.2f}" for s in engine_s)
        + " µs; floor "
        + ", ".join(f"{s / n * 1e6:.2f}" for s in floor_s)
        + " µs)"
    )
    print(
        f"  target <= {TARGET_DECISION_US:g} µs per decision: "
        f"{ok(decision_us <= TARGET_DECISION_US)}"
    )

    if not args.no_profile:
        print()
        print(f"== where decide's time goes (cProfile, one untimed pass; top {PROFILE_TOP}) ==")
        print("  per decision, under the profiler (which inflates small calls: read the shares)")
        print(f"  {'tot µs':>7} {'share':>6} {'cum µs':>8} {'calls':>7}  function")
        for line in profile_top(engine, triples, trend, PROFILE_TOP):
            print(line)

    print()
    summary = {
        "decision_us": round(decision_us, 3),
        "floor_us": round(floor_us, 3),
        "decisions_per_s": round(per_s, 1),
        "ratio": round(ratio, 3),
        "p50_us": round(p50, 3),
        "p99_us": round(p99, 3),
        "context_us": round(context_us, 3),
        "triples": n,
        "disagreements": verdict.condition_disagreements + verdict.walk_disagreements,
        "rules_matched": {k: v for k, v in verdict.matched.items() if v},
        "rules_fired": {k: v for k, v in verdict.fired.items() if v},
        "with_decisions": verdict.with_decisions,
        "policy_version": policy.version,
    }
    print(json.dumps(summary), flush=True)
    return 1 if summary["disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())

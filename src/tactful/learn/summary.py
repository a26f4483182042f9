"""Learn: the metrics a support lead reads, over a time range, by queue, policy version
and segment. Judged by what happened to customers afterwards, not by deflection.

- **containment without regret**: of the customers whose first treatment was automation
  (not a handoff), the share who did not come back about the same topic within 72 hours;
- **escalation rate** (escalations per customer seen) and **escalation precision** (of the
  handoffs an agent gave a verdict on, the share not rejected as unnecessary);
- **time to intervention**: from a customer's first friction signal to the first decision
  that changed how they were treated (p50, p90);
- **sentiment recovery**: of the customers who got an intervention, the share whose
  frustration fell back below ``recovery_below`` within ``recovery_within`` after it;
- **handoff completeness** (the packages' own score), **restatements per conversation**
  (messages repeating an earlier one), **alerts per target per day**, **holds** started,
  released (by whom) and how long they lasted;
- **holdout**: with a control group (policy ``holdout``), the same outcomes for customers
  whose actions were recorded but not taken, so the difference is lift, not activity.

``summarise`` reads the store's rows once; ``compute`` is pure.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tactful.state.customer import CustomerState
from tactful.state.store.base import MetricRows, Store
from tactful.state.trend import DEFAULT_TREND, TrendConfig

__all__ = ["Options", "compute", "summarise"]

AUTOMATED = frozenset({"automate", "clarify", "offer_choices", "assist", "draft_message"})
INTERVENTIONS = frozenset({"clarify", "offer_choices", "assist", "escalate", "draft_message"})
# Signals that say a customer is struggling (the start of "time to intervention").
FRICTION = frozenset(
    {
        "frustration",
        "confusion",
        "wants_human",
        "churn_intent",
        "rage_click",
        "error_streak",
        "payment_failed",
        "page_loop",
        "help_bounce",
        "confusion_dwell",
        "bot_repeat_failure",
        "bot_no_progress",
        "repeat_contact",
        "negative_feedback",
    }
)
REPEAT_WINDOW = timedelta(hours=72)
RESTATED = "repeats an earlier message"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "n": 0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "n": len(ordered),
    }


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


@dataclass(frozen=True, slots=True)
class Options:
    """What to summarise: filters (queue, policy version, account tier as the segment) and
    what counts as recovered (frustration below ``recovery_below`` within
    ``recovery_within`` of an intervention)."""

    queue: str | None = None
    policy_version: str | None = None
    tier: str | None = None
    recovery_below: float = 0.3
    recovery_within: timedelta = timedelta(hours=24)
    trend: TrendConfig = DEFAULT_TREND


def summarise(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    options: Options = Options(),
) -> dict[str, Any]:
    rows = store.metric_rows(since, until)
    customers = {d["customer_id"] for d in rows.decisions} | {e[0] for e in rows.events}
    states = store.load_states(sorted(customers)) if customers else {}
    return compute(rows, states, since, until, options)


def compute(
    rows: MetricRows,
    states: Mapping[str, CustomerState],
    since: datetime | None,
    until: datetime | None,
    options: Options = Options(),
) -> dict[str, Any]:
    queue, policy_version, tier = options.queue, options.policy_version, options.tier
    recovery_below, recovery_within = options.recovery_below, options.recovery_within
    trend = options.trend

    def in_segment(customer: str) -> bool:
        if tier is None:
            return True
        state = states.get(customer)
        return state is not None and state.account.tier == tier

    decisions = [
        d
        for d in rows.decisions
        if in_segment(d["customer_id"])
        and (policy_version is None or d["policy_version"] == policy_version)
        and (queue is None or d["kind"] != "escalate" or d["params"].get("queue") == queue)
    ]
    events = [e for e in rows.events if in_segment(e[0])]
    seen = {e[0] for e in events}
    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        by_customer[d["customer_id"]].append(d)
    outcomes = [o for o in rows.outcomes if in_segment(o["customer_id"])]
    repeats: dict[str, list[datetime]] = defaultdict(list)
    for o in outcomes:
        if o["kind"] == "repeat_contact":
            repeats[o["customer_id"]].append(_at(o["at"]))

    # containment without regret: customers whose first treatment was automation, and
    # whether they came back about the same topic within 72 h of it (even if a person
    # took over afterwards: that is the regret)
    automated: dict[str, datetime] = {}
    for c, ds in by_customer.items():
        treatments = [d for d in ds if d["kind"] in AUTOMATED or d["kind"] == "escalate"]
        if treatments and treatments[0]["kind"] != "escalate":
            automated[c] = _at(treatments[0]["at"])
    regret = {
        c
        for c, first in automated.items()
        if any(first < t <= first + REPEAT_WINDOW for t in repeats[c])
    }

    # escalations and their precision
    escalations = [d for d in decisions if d["kind"] == "escalate"]
    handoffs = [
        h
        for h in rows.handoffs
        if in_segment(h["customer_id"]) and (queue is None or h["queue"] == queue)
    ]
    verdicts = Counter(h["status"] for h in handoffs if h["status"] in ("resolved", "rejected"))
    by_queue: dict[str, Counter[str]] = defaultdict(Counter)
    for h in handoffs:
        by_queue[h["queue"]]["handoffs"] += 1
        by_queue[h["queue"]][h["status"]] += 1

    # time to intervention
    first_friction: dict[str, datetime] = {}
    restated = 0
    conversations = set()
    for customer, type_, ts, signals in events:
        names = {s["name"] for s in signals}
        if type_ == "message":
            conversations.add(customer)
            restated += sum(1 for s in signals if RESTATED in s.get("evidence", []))
        if customer not in first_friction and names & FRICTION:
            first_friction[customer] = _at(ts)
    waits = []
    for customer, start in first_friction.items():
        acted = [
            _at(d["at"])
            for d in by_customer.get(customer, [])
            if d["kind"] in INTERVENTIONS and _at(d["at"]) >= start
        ]
        if acted:
            waits.append((min(acted) - start).total_seconds())

    # sentiment recovery after an intervention
    intervened = {
        c: min(_at(d["at"]) for d in ds if d["kind"] in INTERVENTIONS)
        for c, ds in by_customer.items()
        if any(d["kind"] in INTERVENTIONS for d in ds)
    }
    recovered = 0
    for customer, at in intervened.items():
        state = states.get(customer)
        t = state.trend.get("frustration") if state else None
        crossed = t.below_since("frustration", recovery_below, trend) if t else None
        if crossed is None or crossed - at <= recovery_within:
            recovered += 1

    # alerts per target per day, holds
    days = max(1.0, _days(since, until, decisions))
    alerts = Counter(d["params"].get("target", "?") for d in decisions if d["kind"] == "notify")
    holds = [h for h in rows.holds if in_segment(h["customer_id"])]
    started = [h for h in holds if _within(h["starts_at"], since, until)]
    released = [h for h in holds if h["released_at"] and _within(h["released_at"], since, until)]
    durations = [
        (_at(h["released_at"]) - _at(h["starts_at"])).total_seconds() / 3600 for h in released
    ]
    scores = [
        float(h["package"]["completeness"]["score"])
        for h in handoffs
        if isinstance(h["package"].get("completeness"), dict)
    ]
    holdout = _holdout(decisions, outcomes)
    return {
        "range": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
        },
        "filters": {"queue": queue, "policy_version": policy_version, "tier": tier},
        "customers_seen": len(seen),
        "decisions": dict(Counter(d["kind"] for d in decisions)),
        "containment_without_regret": {
            "value": _share(len(automated) - len(regret), len(automated)),
            "automated_customers": len(automated),
            "came_back_within_72h": len(regret),
        },
        "escalation": {
            "rate": _share(len({d["customer_id"] for d in escalations}), len(seen)),
            "escalations": len(escalations),
            "precision": _share(verdicts["resolved"], verdicts["resolved"] + verdicts["rejected"]),
            "resolved": verdicts["resolved"],
            "rejected_as_unnecessary": verdicts["rejected"],
            "by_queue": {q: dict(c) for q, c in sorted(by_queue.items())},
        },
        "time_to_intervention_s": _pcts(waits),
        "sentiment_recovery": {
            "value": _share(recovered, len(intervened)),
            "intervened": len(intervened),
            "below": recovery_below,
            "within_h": recovery_within.total_seconds() / 3600,
        },
        "handoff_completeness": {
            "mean": round(statistics.fmean(scores), 3) if scores else None,
            "n": len(scores),
        },
        "restatements_per_conversation": _share(restated, len(conversations)),
        "alerts_per_target_per_day": {t: round(n / days, 2) for t, n in alerts.most_common()},
        "holds": {
            "started": len(started),
            "released": len(released),
            "released_by": dict(Counter(_who(h["released_by"]) for h in released)),
            "duration_h": _pcts(durations),
        },
        "outcomes": dict(Counter(o["kind"] for o in outcomes)),
        "by_rule": _by_rule(decisions, outcomes),
        "holdout": holdout,
    }


def _who(released_by: str | None) -> str:
    if not released_by:
        return "unknown"
    if released_by == "clock" or released_by.startswith("rule:"):
        return released_by.split(":")[0]
    return "person"


def _within(value: str, since: datetime | None, until: datetime | None) -> bool:
    at = _at(value)
    return (since is None or at >= since) and (until is None or at < until)


def _days(since: datetime | None, until: datetime | None, decisions: list[dict[str, Any]]) -> float:
    if since is not None and until is not None:
        return (until - since).total_seconds() / 86_400
    times = [_at(d["at"]) for d in decisions]
    lo = since or (min(times) if times else None)
    hi = until or (max(times) if times else None)
    return 1.0 if lo is None or hi is None else (hi - lo).total_seconds() / 86_400


def _by_rule(
    decisions: Iterable[dict[str, Any]], outcomes: Iterable[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per rule: how often it decided, and what followed (credited outcomes)."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"decisions": 0, "outcomes": Counter()})
    for d in decisions:
        out[d["rule_id"]]["decisions"] += 1
    for o in outcomes:
        if o["rule_id"]:
            out[o["rule_id"]]["outcomes"][o["kind"]] += 1
    return {
        rule: {
            "decisions": v["decisions"],
            "outcomes": dict(v["outcomes"]),
            # of its decisions a person reviewed, the share approved (edited or not)
            "review_precision": _share(
                v["outcomes"]["review_approved"],
                v["outcomes"]["review_approved"] + v["outcomes"]["review_rejected"],
            ),
        }
        for rule, v in sorted(out.items())
    }


def _holdout(
    decisions: list[dict[str, Any]], outcomes: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The control group against the treated: the same outcomes, per customer."""
    control = {d["customer_id"] for d in decisions if d.get("holdout")}
    if not control:
        return None
    treated = {d["customer_id"] for d in decisions if not d.get("holdout")}

    def rates(group: set[str]) -> dict[str, Any]:
        kinds: dict[str, set[str]] = defaultdict(set)
        csat = []
        for o in outcomes:
            if o["customer_id"] in group:
                kinds[o["kind"]].add(o["customer_id"])
                if o["kind"] == "csat" and o["value"] is not None:
                    csat.append(float(o["value"]))
        return {
            "customers": len(group),
            "repeat_contact": _share(len(kinds["repeat_contact"]), len(group)),
            "churn": _share(len(kinds["churn"]), len(group)),
            "csat_mean": round(statistics.fmean(csat), 2) if csat else None,
        }

    return {"control": rates(control), "treated": rates(treated)}

"""Detect, behaviour: friction from what customers do, not only what they say.

Each detector reads the event and the customer's state *before* the event (its windows)
and returns signals with evidence (event ids) and a reason code. Parameters live in
:class:`BehaviorConfig`; the defaults follow the seeds ("the same button three times in ten
seconds", "three API errors in a row").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from tactful.detect.text import score_text
from tactful.events import Event
from tactful.signals import Signal
from tactful.state.customer import CustomerState, error_streak

__all__ = ["BehaviorConfig", "detect_behavior"]


@dataclass(frozen=True, slots=True)
class BehaviorConfig:
    rage_clicks: int = 3
    rage_window: timedelta = timedelta(seconds=10)
    error_streak: int = 3
    docs_dwell: timedelta = timedelta(minutes=5)
    session_gap: timedelta = timedelta(hours=1)  # longer away: a new session, not dwelling
    open_tickets: int = 2
    cancel_pages: re.Pattern[str] = re.compile(r"/(?:cancel|unsubscribe|close-account)", re.I)
    high_value: re.Pattern[str] = re.compile(
        r"soc ?2|security (?:review|whitepaper|questionnaire)|\bsso\b|saml|\bdpa\b|"
        r"procurement|purchase order|enterprise pricing|volume discount|legal terms|/pricing"
        r"|/security|/trust",
        re.I,
    )


_HIGH_VALUE_TOPICS = (
    (re.compile(r"soc ?2|security|\bsso\b|saml|/trust", re.I), "sales_security"),
    (re.compile(r"\bdpa\b|legal|contract|terms", re.I), "sales_legal"),
    (re.compile(r"procurement|purchase order", re.I), "sales_procurement"),
)


def _high_value_topic(text: str) -> str:
    for pattern, topic in _HIGH_VALUE_TOPICS:
        if pattern.search(text):
            return topic
    return "sales_pricing"


def detect_behavior(
    event: Event, state: CustomerState, config: BehaviorConfig = BehaviorConfig()
) -> list[Signal]:
    now = event.timestamp
    out: list[Signal] = []
    match event.type:
        case "click":
            same = [
                c
                for c in state.recent_clicks
                if c.element == event.element and now - c.at <= config.rage_window
            ]
            if len(same) + 1 >= config.rage_clicks:
                ids = (*(c.event_id for c in same), event.event_id)
                n = len(ids)
                out.append(
                    Signal(
                        "rage_click",
                        min(0.4 + 0.1 * n, 0.9),
                        f"{n} clicks on {event.element} within "
                        f"{int(config.rage_window.total_seconds())} s",
                        ids,
                        {"frustration": min(0.25 + 0.05 * n, 0.5)},
                        topic="technical",
                    )
                )
        case "api_error":
            streak = (*error_streak(state, now), event.event_id)
            if len(streak) >= config.error_streak:
                out.append(
                    Signal(
                        "error_streak",
                        min(0.5 + 0.1 * (len(streak) - config.error_streak), 0.9),
                        f"{len(streak)} API errors in a row (last: {event.status} on "
                        f"{event.endpoint})",
                        streak[-config.error_streak :],
                        {"frustration": 0.35, "urgency": 0.4},
                        topic="technical",
                    )
                )
        case "payment_failed":
            n = state.payment_failures_30d(now) + 1
            out.append(
                Signal(
                    "payment_failed",
                    min(0.3 * n, 1.0),
                    f"{n} failed payment(s) in 30 days"
                    + (f" ({event.reason})" if event.reason else ""),
                    (event.event_id,),
                    {"frustration": 0.15 * min(n, 3), "churn_intent": 0.15 * min(n, 3)},
                    topic="billing",
                )
            )
        case "ticket_opened":
            n = len([t for t in state.open_tickets if t != event.ticket_id]) + 1
            if n >= config.open_tickets:
                out.append(
                    Signal(
                        "unresolved_tickets",
                        min(0.3 * n, 1.0),
                        f"{n} tickets open and unresolved",
                        (event.event_id,),
                        {"frustration": 0.2 * min(n, 3)},
                    )
                )
        case "ticket_closed" if event.resolution == "unsolved":
            out.append(
                Signal(
                    "ticket_unsolved",
                    0.5,
                    f"ticket {event.ticket_id} closed unsolved",
                    (event.event_id,),
                    {"frustration": 0.3},
                )
            )
        case "page_view":
            if config.cancel_pages.search(event.path):
                out.append(
                    Signal(
                        "cancel_page",
                        0.5,
                        f"visited {event.path}",
                        (event.event_id,),
                        {"churn_intent": 0.2},
                        topic="cancellation",
                    )
                )
            if config.high_value.search(event.path):
                out.append(
                    Signal(
                        "high_value_intent",
                        0.5,
                        f"viewed {event.path}",
                        (event.event_id,),
                        topic=_high_value_topic(event.path),
                    )
                )
        case "search":
            if config.high_value.search(event.query):
                out.append(
                    Signal(
                        "high_value_intent",
                        0.6,
                        f"searched '{event.query}'",
                        (event.event_id,),
                        topic=_high_value_topic(event.query),
                    )
                )
        case "bot_turn" if event.outcome == "failed" and state.bot_failed_step == event.step_id:
            out.append(
                Signal(
                    "bot_repeat_failure",
                    0.7,
                    f"bot failed step {event.step_id} twice in a row",
                    (event.event_id,),
                    {"frustration": 0.35, "wants_human": 0.2},
                    topic=score_text(f"{event.step_id.replace('_', ' ')} {event.text or ''}").topic,
                )
            )
        case "feedback":
            if event.rating <= 2:
                out.append(
                    Signal(
                        "negative_feedback",
                        0.8 if event.rating == 1 else 0.6,
                        f"rated {event.rating}/5",
                        (event.event_id,),
                        {"frustration": 0.4 if event.rating == 1 else 0.25},
                    )
                )
            elif event.rating >= 4:
                out.append(
                    Signal(
                        "positive_feedback",
                        0.6,
                        f"rated {event.rating}/5",
                        (event.event_id,),
                        {"gratitude": 0.4},
                    )
                )
        case _:
            pass
    # Dwell without action: a docs page held open past the window, and the next thing the
    # customer does is not running the command it documents.
    if (
        state.docs_page_since is not None
        and event.type not in ("command_run", "identify")
        and not (event.type == "message" and event.role != "customer")
        and config.docs_dwell <= now - state.docs_page_since <= config.session_gap
    ):
        dwell_minutes = int((now - state.docs_page_since).total_seconds() // 60)
        out.append(
            Signal(
                "confusion_dwell",
                0.5,
                f"on {state.last_page} for {dwell_minutes} min without running a command",
                (event.event_id,),
                {"confusion": 0.35},
                topic="technical",
            )
        )
    return out

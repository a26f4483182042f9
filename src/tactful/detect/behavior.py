"""Detect, behaviour: friction from what customers do, not only what they say.

Each detector reads the event and the customer's state *before* the event (its windows)
and returns signals with evidence (event ids) and a reason code. Parameters live in
:class:`BehaviorConfig`; the defaults follow the seeds ("the same button three times in ten
seconds", "three API errors in a row").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta

from tactful.detect.text import score_text
from tactful.events import Event
from tactful.signals import Signal
from tactful.state.customer import CustomerState, error_streak

__all__ = ["BehaviorConfig", "detect_behavior", "posthog_preset"]


@dataclass(frozen=True, slots=True)
class BehaviorConfig:
    # Rage clicks: N clicks on the same element (or, with a radius and coordinates, within
    # R px of each other) within T. One signal per burst: a flood of clicks is one episode.
    rage_clicks: int = 3
    rage_window: timedelta = timedelta(seconds=10)
    rage_radius_px: float | None = None
    # Elements where repeated clicks are normal (toggles, steppers, carousels): regexes.
    rage_exclude: tuple[str, ...] = (r"toggle|stepper|carousel|increment|decrement",)
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


def posthog_preset(config: BehaviorConfig | None = None) -> BehaviorConfig:
    """PostHog's rage-click rule: 3 clicks within 30 px within 1 second."""
    return replace(
        config or BehaviorConfig(),
        rage_clicks=3,
        rage_window=timedelta(seconds=1),
        rage_radius_px=30.0,
    )


def _near(
    a_x: float | None, a_y: float | None, b_x: float | None, b_y: float | None, radius: float
) -> bool:
    if a_x is None or a_y is None or b_x is None or b_y is None:
        return False
    return (a_x - b_x) ** 2 + (a_y - b_y) ** 2 <= radius**2


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
        case "click" if not any(re.search(p, event.element, re.I) for p in config.rage_exclude):
            radius = config.rage_radius_px
            by_position = radius is not None and event.x is not None and event.y is not None
            same = [
                c
                for c in state.recent_clicks
                if now - c.at <= config.rage_window
                and (
                    _near(c.x, c.y, event.x, event.y, radius)
                    if by_position and radius is not None
                    else c.element == event.element
                )
            ]
            # Exactly at the threshold: later clicks of the same burst add no signal.
            if len(same) + 1 == config.rage_clicks:
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

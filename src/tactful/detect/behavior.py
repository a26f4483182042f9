"""Detect, behaviour: friction from what customers do, not only what they say.

Each detector reads the event and the customer's state *before* the event (its windows)
and returns signals with evidence (event ids) and a reason code. Parameters live in
:class:`BehaviorConfig`; the defaults follow the seeds ("the same button three times in ten
seconds", "three API errors in a row").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tactful.detect.text import score_text
from tactful.events import Click, Event
from tactful.signals import Signal
from tactful.state.customer import (
    BOT_RETENTION,
    CLICK_RETENTION,
    CONTACT_RETENTION,
    PAGE_RETENTION,
    CustomerState,
    Mark,
    error_streak,
    errors_after,
    is_docs_page,
    starts_contact,
)

__all__ = ["BehaviorConfig", "detect_behavior", "posthog_preset", "repeat_contact"]


@dataclass(frozen=True, slots=True)
class BehaviorConfig:
    # Rage clicks: N clicks on the same element (or, with a radius and coordinates, within
    # R px of each other) within T. One signal per burst: a flood of clicks is one episode.
    rage_clicks: int = 3
    rage_window: timedelta = timedelta(seconds=10)
    rage_radius_px: float | None = None
    # Clicks with no element id are compared by position, within this radius.
    anonymous_radius_px: float = 30.0
    # Elements where repeated clicks are normal (toggles, steppers, carousels): regexes.
    rage_exclude: tuple[str, ...] = (r"toggle|stepper|carousel|increment|decrement",)
    error_streak: int = 3
    docs_dwell: timedelta = timedelta(minutes=5)
    session_gap: timedelta = timedelta(hours=1)  # longer away: a new session, not dwelling
    # Dead ends: the same page this many times in a session; back on a page within
    # help_return after opening a help/docs page from it.
    page_loop: int = 3
    help_return: timedelta = timedelta(minutes=2)
    open_tickets: int = 2
    repeat_contact: timedelta = timedelta(hours=72)
    # A bot conversation with this many turns in a row without progress (failed/fallback).
    bot_stall_turns: int = 2
    cancel_pages: re.Pattern[str] = re.compile(r"/(?:cancel|unsubscribe|close-account)", re.I)
    high_value: re.Pattern[str] = re.compile(
        r"soc ?2|security (?:review|whitepaper|questionnaire)|\bsso\b|saml|\bdpa\b|"
        r"procurement|purchase order|enterprise pricing|volume discount|legal terms|"
        r"pricing exception|custom (?:terms|contract|pricing)|\bmsa\b|vendor assessment|"
        r"pen(?:etration)? ?test|iso ?27001|hipaa|/pricing|/security|/trust",
        re.I,
    )

    def __post_init__(self) -> None:
        """Each window must fit inside what the state keeps for it."""
        checks = (
            ("rage_window", self.rage_window, CLICK_RETENTION),
            ("help_return", self.help_return, PAGE_RETENTION),
            ("session_gap", self.session_gap, PAGE_RETENTION),
            ("repeat_contact", self.repeat_contact, CONTACT_RETENTION),
        )
        for name, value, limit in checks:
            if not timedelta(0) < value <= limit:
                raise ValueError(f"{name}={value}: must be positive and at most {limit}")
        for name, n in (
            ("rage_clicks", self.rage_clicks),
            ("error_streak", self.error_streak),
            ("page_loop", self.page_loop),
        ):
            if not 2 <= n <= 10:
                raise ValueError(f"{name}={n}: must be between 2 and 10")
        if not 2 <= self.bot_stall_turns <= 4:  # the state keeps the last 4 bot turns
            raise ValueError(f"bot_stall_turns={self.bot_stall_turns}: must be between 2 and 4")


def posthog_preset(config: BehaviorConfig | None = None) -> BehaviorConfig:
    """PostHog's rage-click rule: 3 clicks within 30 px within 1 second."""
    return replace(
        config or BehaviorConfig(),
        rage_clicks=3,
        rage_window=timedelta(seconds=1),
        rage_radius_px=30.0,
    )


def _near(a: Mark, x: float | None, y: float | None, radius: float) -> bool:
    if a.x is None or a.y is None or x is None or y is None:
        return False
    return (a.x - x) ** 2 + (a.y - y) ** 2 <= radius**2


_HIGH_VALUE_TOPICS = (
    (
        re.compile(r"soc ?2|security|\bsso\b|saml|/trust|pen(?:etration)? ?test|27001|hipaa", re.I),
        "sales_security",
    ),
    (re.compile(r"\bdpa\b|\bmsa\b|legal|contract|terms", re.I), "sales_legal"),
    (re.compile(r"procurement|purchase order|vendor", re.I), "sales_procurement"),
)


def _high_value_topic(text: str) -> str:
    for pattern, topic in _HIGH_VALUE_TOPICS:
        if pattern.search(text):
            return topic
    return "sales_pricing"


def _has_burst(times: list[datetime], n: int, window: timedelta) -> bool:
    """Whether ``n`` of the sorted ``times`` fall within ``window`` of each other."""
    return any(times[i + n - 1] - times[i] <= window for i in range(len(times) - n + 1))


def _rage_click(event: Click, state: CustomerState, config: BehaviorConfig) -> Signal | None:
    """A burst of clicks on one target, reported once: when the click makes a burst where
    its neighbours (in event time, so late clicks count where they belong) had none."""
    if event.element is not None and any(
        re.search(p, event.element, re.I) for p in config.rage_exclude
    ):
        return None
    radius = config.rage_radius_px
    if event.element is None:
        if event.x is None or event.y is None:
            return None  # no element and no position: no way to tell it is the same target
        radius = radius or config.anonymous_radius_px
    by_position = radius is not None and event.x is not None and event.y is not None
    now, window = event.timestamp, config.rage_window
    same = [
        c
        for c in state.clicks
        if (
            _near(c, event.x, event.y, radius)
            if by_position and radius is not None
            else c.key == event.element
        )
    ]
    # The cluster around this click: neighbours chained by gaps of at most the window.
    times = sorted([c.at for c in same] + [now])
    i = j = times.index(now)
    while i > 0 and times[i] - times[i - 1] <= window:
        i -= 1
    while j < len(times) - 1 and times[j + 1] - times[j] <= window:
        j += 1
    cluster = times[i : j + 1]
    without = list(cluster)
    without.remove(now)
    n = config.rage_clicks
    if not _has_burst(cluster, n, window) or _has_burst(without, n, window):
        return None
    near = sorted((c for c in same if abs(c.at - now) <= window), key=lambda c: abs(c.at - now))
    picked = sorted(near[: n - 1], key=lambda c: c.at)
    ids = (*(c.id for c in picked), event.event_id)
    target = event.element or f"({event.x:.0f}, {event.y:.0f})"
    return Signal(
        "rage_click",
        min(0.4 + 0.1 * n, 0.9),
        f"{n} clicks on {target} within {window.total_seconds():g} s",
        ids,
        {"frustration": min(0.25 + 0.05 * n, 0.5)},
        topic="technical",
    )


def _session(pages: list[Mark], now: datetime, gap: timedelta) -> list[Mark]:
    """The page views of the session ``now`` falls in: neighbours on both sides chained by
    gaps shorter than ``gap`` (a late page view joins the session it belongs to)."""
    before = [p for p in pages if p.at <= now]
    after = [p for p in pages if p.at > now]
    start, last = len(before), now
    while start > 0 and last - before[start - 1].at < gap:
        start -= 1
        last = before[start].at
    end, first = 0, now
    while end < len(after) and after[end].at - first < gap:
        first = after[end].at
        end += 1
    return before[start:] + after[:end]


def _page_signals(event: Event, state: CustomerState, config: BehaviorConfig) -> list[Signal]:
    assert event.type == "page_view"
    out: list[Signal] = []
    now = event.timestamp
    session = _session(state.pages, now, config.session_gap)
    visits = [p for p in session if p.key == event.path]
    if len(visits) + 1 == config.page_loop:
        out.append(
            Signal(
                "page_loop",
                0.5,
                f"{event.path} visited {config.page_loop} times in one session",
                tuple(
                    i for _, i in sorted([*((v.at, v.id) for v in visits), (now, event.event_id)])
                ),
                {"confusion": 0.3, "frustration": 0.15},
                # a late visit completing the loop: dated by the latest visit
                at=max((v.at for v in visits if v.at > now), default=None),
            )
        )
    earlier = [p for p in session if p.at <= now]
    if not is_docs_page(event.path, event.category) and len(earlier) >= 2:
        helped, origin = earlier[-1], earlier[-2]
        if (
            (helped.tag == "docs" or is_docs_page(helped.key or ""))
            and origin.key == event.path
            and now - helped.at <= config.help_return
        ):
            out.append(
                Signal(
                    "help_bounce",
                    0.5,
                    f"opened {helped.key} from {event.path} and came back within "
                    f"{int((now - helped.at).total_seconds())} s",
                    (origin.id, helped.id, event.event_id),
                    {"confusion": 0.35},
                )
            )
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
    return out


def _stalled(turn: Mark) -> bool:
    return turn.tag in ("failed", "fallback")


def _bot_signals(event: Event, state: CustomerState, config: BehaviorConfig) -> list[Signal]:
    """Bot loops and stalls, around the turn in event time (a late turn counts where it
    belongs: its neighbours on both sides)."""
    assert event.type == "bot_turn"
    now = event.timestamp
    near = [t for t in state.bot_turns if abs(t.at - now) <= BOT_RETENTION]
    earlier = [t for t in near if t.at <= now]
    later = [t for t in near if t.at > now]
    out: list[Signal] = []
    if event.outcome not in ("failed", "fallback"):
        return out

    def topic() -> str:  # what the stuck step is about; only read when a signal fires
        return score_text(f"{event.step_id.replace('_', ' ')} {event.text or ''}").topic

    if event.outcome == "failed":
        repeats = [
            t for t in (earlier[-1:] + later[:1]) if t.key == event.step_id and t.tag == "failed"
        ]
        if repeats:
            out.append(
                Signal(
                    "bot_repeat_failure",
                    0.7,
                    f"bot failed step {event.step_id} twice in a row",
                    tuple(sorted([repeats[0].id, event.event_id])),
                    {"frustration": 0.35, "wants_human": 0.2},
                    topic=topic(),
                )
            )
    # a stall: failed or fallback turns in a row, around this one
    left: list[Mark] = []
    for turn in reversed(earlier):
        if not _stalled(turn):
            break
        left.insert(0, turn)
    right: list[Mark] = []
    for turn in later:
        if not _stalled(turn):
            break
        right.append(turn)
    stalled = len(left) + 1 + len(right)
    if stalled == config.bot_stall_turns:  # once per stall
        ids = (*(t.id for t in left), event.event_id, *(t.id for t in right))
        out.append(
            Signal(
                "bot_no_progress",
                0.6,
                f"{stalled} bot turns in a row without progress (last: {event.step_id} "
                f"{event.outcome})",
                ids,
                {"frustration": 0.2, "wants_human": 0.15},
                topic=topic(),
            )
        )
    return out


def repeat_contact(
    event: Event, state: CustomerState, topic: str | None, config: BehaviorConfig
) -> Signal | None:
    """A new contact (ticket, or message opening a conversation) on a topic the customer
    also contacted about within ``config.repeat_contact`` (before it, or after it when it
    arrives late): they are telling the story again."""
    if topic is None or topic == "other" or not starts_contact(state, event):
        return None
    now = event.timestamp
    others = [
        c
        for c in state.contacts
        if c.key == topic and timedelta(0) < abs(now - c.at) <= config.repeat_contact
    ]
    if not others:
        return None
    nearest = min(others, key=lambda c: abs(now - c.at))
    hours = abs(now - nearest.at).total_seconds() / 3600
    ids = tuple(i for _, i in sorted([*((c.at, c.id) for c in others[-3:]), (now, event.event_id)]))
    return Signal(
        "repeat_contact",
        min(0.5 + 0.15 * len(others), 0.9),
        f"contacted about {topic} again ({len(others) + 1} times within "
        f"{config.repeat_contact.total_seconds() / 3600:g} h; nearest {hours:.0f} h apart)",
        ids,
        {"frustration": 0.25},
        topic=topic,
    )


def detect_behavior(
    event: Event, state: CustomerState, config: BehaviorConfig = BehaviorConfig()
) -> list[Signal]:
    now = event.timestamp
    out: list[Signal] = []
    match event.type:
        case "click":
            rage = _rage_click(event, state, config)
            if rage is not None:
                out.append(rage)
        case "api_error":
            # the streak this error belongs to, including later errors it chains onto when
            # it arrives late
            after, completed = errors_after(state, now)
            streak = (*error_streak(state, now), event.event_id, *after)
            if len(streak) >= config.error_streak:
                out.append(
                    Signal(
                        "error_streak",
                        min(0.5 + 0.1 * (len(streak) - config.error_streak), 0.9),
                        f"{len(streak)} API errors in a row (last: {event.status} on "
                        f"{event.endpoint})",
                        streak[-config.error_streak :] if streak[-1] == event.event_id else streak,
                        {"frustration": 0.35, "urgency": 0.4},
                        topic="technical",
                        # completed by the errors already seen after this late one
                        at=completed if after else None,
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
            others = [t for t in state.open_tickets if t != event.ticket_id]
            n = state.unresolved_tickets_30d(now) - len(state.open_tickets) + len(others) + 1
            if n >= config.open_tickets:
                out.append(
                    Signal(
                        "unresolved_tickets",
                        min(0.3 * n, 1.0),
                        f"{n} tickets unresolved in 30 days ({len(others) + 1} open)",
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
            out.extend(_page_signals(event, state, config))
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
        case "bot_turn":
            out.extend(_bot_signals(event, state, config))
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
    dwell = _confusion_dwell(event, state, config)
    if dwell is not None:
        out.append(dwell)
    return out


def _confusion_dwell(event: Event, state: CustomerState, config: BehaviorConfig) -> Signal | None:
    """A docs page held open past the window, and the next thing the customer does is not
    running the command it documents (or the tracker reports the page closed that late)."""
    now = event.timestamp
    since = state.docs_page_since
    if (
        event.type == "page_view"
        and event.duration_s is not None
        and is_docs_page(event.path, event.category)
        and timedelta(seconds=event.duration_s) >= config.docs_dwell
    ):
        return Signal(
            "confusion_dwell",
            0.5,
            f"on {event.path} for {int(event.duration_s // 60)} min (reported on leaving)",
            (event.event_id,),
            {"confusion": 0.35},
            topic="technical",
        )
    if (
        since is None
        or event.type in ("command_run", "identify")
        or (event.type == "message" and event.role != "customer")
        or not config.docs_dwell <= now - since <= config.session_gap
    ):
        return None
    return Signal(
        "confusion_dwell",
        0.5,
        f"on {state.last_page} for {int((now - since).total_seconds() // 60)} min without "
        "running a command",
        (event.event_id,),
        {"confusion": 0.35},
        topic="technical",
    )

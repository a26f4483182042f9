"""Detect: event + the customer's state before it -> signals. Pure."""

from __future__ import annotations

from tactful.detect.behavior import BehaviorConfig, detect_behavior
from tactful.detect.text import TextScores, score_text
from tactful.events import Event
from tactful.signals import DIMENSIONS, TOPICS, Signal
from tactful.state.customer import CustomerState

__all__ = [
    "DIMENSIONS",
    "TOPICS",
    "BehaviorConfig",
    "Signal",
    "TextScores",
    "detect",
    "detect_text",
    "score_text",
]

# A text dimension must reach this score to count as a signal.
TEXT_SIGNAL_FLOOR = 0.2


def detect_text(text: str, recent: list[str], event_id: str) -> list[Signal]:
    scores = score_text(text, recent)
    out = [
        Signal(
            name=dim,
            strength=value,
            reason="message text",
            evidence=scores.evidence.get(dim, ()),
            dimensions={dim: value},
            topic=scores.topic,
        )
        for dim, value in scores.scores.items()
        if value >= TEXT_SIGNAL_FLOOR
    ]
    if not out and scores.topic != "other":
        out.append(
            Signal(
                name="topic",
                strength=scores.topic_scores[scores.topic],
                reason=f"message is about {scores.topic}",
                evidence=(event_id,),
                topic=scores.topic,
            )
        )
    return out


def detect(
    event: Event, state: CustomerState, behavior: BehaviorConfig = BehaviorConfig()
) -> list[Signal]:
    signals = detect_behavior(event, state, behavior)
    if event.type == "message" and event.role == "customer":
        signals.extend(detect_text(event.text, state.recent_messages, event.event_id))
    elif event.type == "feedback" and event.comment:
        signals.extend(detect_text(event.comment, state.recent_messages, event.event_id))
    elif event.type == "search":
        signals.extend(
            s for s in detect_text(event.query, [], event.event_id) if s.name == "confusion"
        )
    return signals

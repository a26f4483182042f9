"""Detect: event + the customer's state before it -> signals. Pure."""

from __future__ import annotations

from tactful.detect.behavior import BehaviorConfig, detect_behavior, repeat_contact
from tactful.detect.text import TextScores, read_text, score_text
from tactful.events import Event
from tactful.signals import DIMENSIONS, TOPICS, Signal
from tactful.state.customer import CustomerState, contact_topic

__all__ = [
    "DIMENSIONS",
    "TOPICS",
    "BehaviorConfig",
    "Signal",
    "TextScores",
    "detect",
    "detect_text",
    "reply_text",
    "score_text",
    "scored_text",
    "text_signals",
]

# A text dimension must reach this score to count as a signal.
TEXT_SIGNAL_FLOOR = 0.2


def text_signals(scores: TextScores, event_id: str) -> list[Signal]:
    """Signals from a message's scores; the reason names the scorer version behind them."""
    reason = f"message text ({scores.version})"
    # Which kind of frustration, when one stands out: "... ; reads as annoyance 0.61".
    kind = max(scores.emotions.items(), key=lambda kv: kv[1], default=None)
    felt = f"{reason}; reads as {kind[0]} {kind[1]:.2f}" if kind and kind[1] >= 0.3 else reason
    out = [
        Signal(
            name=dim,
            strength=value,
            reason=felt if dim == "frustration" else reason,
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
    # what the customer said happened, as facts the policy reads (detect.text.STATEMENTS)
    return out + [
        Signal(name, 1.0, f"said outright ({scores.version})", evidence=(words,))
        for name, words in scores.said.items()
    ]


def detect_text(text: str, recent: list[str], event_id: str) -> list[Signal]:
    """Signals from the lexical tier alone."""
    return text_signals(read_text(text, recent), event_id)


def scored_text(event: Event) -> str | None:
    """The customer-written text of an event that the text scorer reads, if any."""
    if event.type == "message" and event.role == "customer":
        return event.text
    if event.type == "feedback" and event.comment:
        return event.comment
    return None


def reply_text(event: Event) -> str | None:
    """The text of a reply to the customer (a bot turn's, a bot's or agent's message)."""
    if event.type == "bot_turn" and event.text and event.text.strip():
        return event.text
    if event.type == "message" and event.role in ("bot", "agent"):
        return event.text
    return None


def detect(
    event: Event,
    state: CustomerState,
    behavior: BehaviorConfig = BehaviorConfig(),
    text: TextScores | None = None,
) -> list[Signal]:
    """Signals for ``event``. ``text``: the scores of its text from the default (learned)
    scorer, computed by the caller in batches; without them the lexical tier answers."""
    signals = detect_behavior(event, state, behavior)
    written = scored_text(event)
    if written is not None:
        if text is not None:
            signals.extend(text_signals(text, event.event_id))
        else:
            signals.extend(detect_text(written, state.recent_messages, event.event_id))
    elif event.type == "search":
        signals.extend(
            s for s in detect_text(event.query, [], event.event_id) if s.name == "confusion"
        )
    elif event.type == "ticket_opened" and event.subject:
        topic = score_text(event.subject).topic
        if topic != "other":
            signals.append(
                Signal("topic", 0.5, f"ticket is about {topic}", (event.event_id,), topic=topic)
            )
    again = repeat_contact(event, state, contact_topic(signals), behavior)
    if again is not None:
        signals.append(again)
    return signals

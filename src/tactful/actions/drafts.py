"""Act: the next message, drafted for the customer's state. Pure.

A draft is what a bot sends or an agent starts from. Its shape follows the customer's
state, not the decision alone: frustrated about something technical gets the
troubleshooting guide and an offer of a person; frustrated about money gets an apology and
a person; confused gets exactly one clarifying question; delighted gets the normal flow,
thanked. Templates are plain text with ``{placeholders}``; a language model can rewrite a
draft at the edge (actions/llm.py), and falls back to this one whenever it fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TEMPLATES", "Draft", "Mood", "draft", "mood"]

Mood = Literal["frustrated", "confused", "delighted", "neutral"]
Tone = Literal["apologetic", "empathetic", "neutral", "upbeat"]

# Levels at which a mood shows (the trend's levels, 0..1).
FRUSTRATED, CONFUSED, DELIGHTED = 0.45, 0.35, 0.5

_TECHNICAL = frozenset({"technical", "account_access"})
_MONEY = frozenset({"billing", "refund", "cancellation"})

# (mood, topic group) -> template. Topic groups: technical, money, sales, any.
TEMPLATES: Mapping[tuple[Mood, str], str] = {
    ("frustrated", "technical"): (
        "I'm sorry this keeps getting in your way. This guide covers the most common fixes: "
        "{troubleshooting_url}. If you'd rather not spend more time on it, I can bring in "
        "a person from our technical team right now; just say so."
    ),
    ("frustrated", "money"): (
        "I'm sorry about the trouble with your {topic_words}. I don't want you to go around "
        "in circles: a person from our billing team can look at your account directly. "
        "Shall I bring them in?"
    ),
    ("frustrated", "any"): (
        "I'm sorry this has been frustrating. Let me make this quicker: tell me the one "
        "thing you need done, or I can bring in a person now."
    ),
    ("confused", "any"): "{question}",
    ("delighted", "any"): "Glad that worked! {continue_with}",
    ("neutral", "any"): "{continue_with}",
}

DEFAULTS: Mapping[str, str] = {
    "troubleshooting_url": "https://docs.example.com/troubleshooting",
    "question": "To make sure I help with the right thing: what are you trying to do?",
    "continue_with": "Is there anything else I can help with?",
}

_TOPIC_WORDS = {
    "billing": "billing",
    "refund": "refund",
    "cancellation": "subscription",
    "technical": "setup",
    "account_access": "account access",
}


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    tone: Tone
    mood: Mood
    template: str  # which template ("frustrated/technical"), or the model that wrote it
    source: Literal["template", "llm"] = "template"
    fallback_reason: str = ""  # why a model's draft was not used

    def as_dict(self) -> dict[str, Any]:
        out = {
            "text": self.text,
            "tone": self.tone,
            "mood": self.mood,
            "template": self.template,
            "source": self.source,
        }
        if self.fallback_reason:
            out["fallback_reason"] = self.fallback_reason
        return out


def mood(levels: Mapping[str, float]) -> Mood:
    """The customer's mood from their trend levels (frustration wins over confusion)."""
    if levels.get("frustration", 0.0) >= FRUSTRATED or levels.get("churn_intent", 0.0) >= 0.5:
        return "frustrated"
    if levels.get("confusion", 0.0) >= CONFUSED:
        return "confused"
    if levels.get("gratitude", 0.0) >= DELIGHTED:
        return "delighted"
    return "neutral"


def _group(topic: str) -> str:
    if topic in _TECHNICAL:
        return "technical"
    if topic in _MONEY:
        return "money"
    if topic.startswith("sales_"):
        return "sales"
    return "any"


_TONES: Mapping[Mood, Tone] = {
    "frustrated": "empathetic",
    "confused": "neutral",
    "delighted": "upbeat",
    "neutral": "neutral",
}


def draft(
    levels: Mapping[str, float],
    topic: str,
    tone: Tone | None = None,
    values: Mapping[str, str] | None = None,
) -> Draft:
    """The templated draft for a customer in this state and topic. ``values`` fill the
    placeholders (e.g. the clarifying question a rule asks, the troubleshooting link)."""
    m = mood(levels)
    group = _group(topic)
    key = (m, group) if (m, group) in TEMPLATES else (m, "any")
    fill = {**DEFAULTS, "topic_words": _TOPIC_WORDS.get(topic, "account"), **(values or {})}
    text = TEMPLATES[key].format_map(fill)
    return Draft(text, tone or _TONES[m], m, f"{key[0]}/{key[1]}")

"""Act, in the moment: what a bot or agent should do with its next message.

``POST /v1/decide`` answers a chatbot on every turn. The decisions say what tactful decided
(escalate, clarify, hold ...); the guidance turns them into the next move of the
conversation: hand off (with a notice the customer can read), ask the one clarifying
question, offer choices, answer directly, or carry on, and in which tone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tactful.actions.drafts import draft

__all__ = ["Next", "guidance"]

Next = Literal["handoff", "clarify", "offer_choices", "assist", "continue"]

_RANK: dict[str, int] = {"escalate": 4, "assist": 3, "clarify": 2, "offer_choices": 2}
_NEXT: dict[str, Next] = {
    "escalate": "handoff",
    "assist": "assist",
    "clarify": "clarify",
    "offer_choices": "offer_choices",
}
# Frustration at or above this: speak with empathy even when no rule drafted a reply.
EMPATHY_LEVEL = 0.45


def guidance(
    decisions: Sequence[Mapping[str, Any]], levels: Mapping[str, float], topic: str = "other"
) -> dict[str, Any]:
    """The next move for the conversation, from this event's decisions (each with ``kind``
    and ``params``, as the engine or the audit log gives them) and the customer's trend
    levels; with a ``draft`` reply (actions/drafts.py) when a rule asked for one."""
    by_rank = sorted((d for d in decisions if d["kind"] in _RANK), key=lambda d: -_RANK[d["kind"]])
    tones = [d["params"].get("tone") for d in decisions if d["kind"] == "draft_message"]
    frustration = levels.get("frustration", 0.0)
    tone = tones[0] if tones else ("empathetic" if frustration >= EMPATHY_LEVEL else "neutral")
    out: dict[str, Any] = {
        "next": "continue",
        "tone": tone,
        "hold_marketing": any(d["kind"] == "hold" for d in decisions),
    }
    if tones:
        out["draft"] = draft(levels, topic, tones[0]).as_dict()
    if not by_rank:
        return out
    top = by_rank[0]
    params = top["params"]
    out["next"] = _NEXT[top["kind"]]
    out["rule_id"] = top.get("rule_id")
    match top["kind"]:
        case "escalate":
            out["say"] = (
                f"I'm bringing in a person from our {params['queue']} team. They will see "
                "everything so far, so you won't need to repeat yourself."
            )
            out["queue"] = params["queue"]
            out["priority"] = params["priority"]
            out["stop_automation"] = True
        case "clarify":
            out["say"] = params["question"]
        case "offer_choices":
            out["say"] = params["question"]
            out["choices"] = list(params["choices"])
        case "assist":
            out["say"] = params["message"]
            if params.get("article"):
                out["article"] = params["article"]
    return out

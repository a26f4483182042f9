"""Privacy: what tactful knows about a customer, in plain words. Pure.

A person asking "what do you know about me, and why did you treat me this way" is owed an
answer they can read: ``tactful export CUSTOMER_ID`` (and the admin endpoint) gives the
full record as JSON and this summary of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["in_plain_words"]


def _when(value: str | None) -> str:
    return (value or "?")[:16].replace("T", " ")


def in_plain_words(
    customer_id: str, record: Mapping[str, list[dict[str, Any]]], levels: Mapping[str, float]
) -> str:
    """The export as sentences, section by section."""
    lines = [f"What tactful knows about customer {customer_id}", ""]
    events = record.get("events", [])
    if events:
        kinds = Counter(e["type"] for e in events)
        lines.append(
            f"Events: {len(events)} between {_when(events[0]['ts'])} and {_when(events[-1]['ts'])} "
            f"UTC ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})."
        )
        written = [
            e for e in events if isinstance(e.get("payload"), dict) and e["payload"].get("text")
        ]
        if written:
            lines.append(
                f"Text you wrote that we keep: {len(written)} message(s); the latest: "
                f'"{str(written[-1]["payload"]["text"])[:200]}"'
            )
    else:
        lines.append("Events: none.")
    shown = {d: v for d, v in levels.items() if v >= 0.05}
    if shown:
        lines.append(
            "How we read you now (0 = not at all, 1 = certainly): "
            + ", ".join(f"{d.replace('_', ' ')} {v:.2f}" for d, v in shown.items())
            + ". These fade with time."
        )
    decisions = record.get("decisions", [])
    lines += ["", f"Decisions about you: {len(decisions)}."]
    for d in decisions[-20:]:
        reasons = d.get("reasons") or []
        why = reasons[0] if reasons else d["rule_id"]
        extra = " (recorded only: you were in a control group)" if d.get("holdout") else ""
        lines.append(f"- {_when(d['at'])}: {d['kind']}, because {why}{extra}")
    holds = record.get("holds", [])
    if holds:
        lines += ["", "Marketing we held back:"]
        for h in holds:
            end = (
                f"released {_when(h['released_at'])}"
                if h.get("released_at")
                else f"until {_when(h['ends_at'])}"
            )
            cats = h["categories"] if isinstance(h["categories"], list) else [h["categories"]]
            lines.append(f"- {', '.join(cats)} from {_when(h['starts_at'])}, {end}: {h['reason']}")
    handoffs = record.get("handoffs", [])
    if handoffs:
        lines += ["", "Times we asked a person to help you:"]
        for h in handoffs:
            lines.append(f"- {_when(h['opened_at'])}: the {h['queue']} team ({h['status']})")
    sent = record.get("outbox", [])
    if sent:
        by = Counter(f"{r['kind']} via {r['channel']}" for r in sent)
        lines += [
            "",
            "Messages sent about you: " + ", ".join(f"{n} {k}" for k, n in by.most_common()) + ".",
        ]
    outcomes = record.get("outcomes", [])
    if outcomes:
        by = Counter(o["kind"] for o in outcomes)
        lines += [
            "",
            "What followed, as recorded: "
            + ", ".join(f"{n} {k}" for k, n in by.most_common())
            + ".",
        ]
    rejected = record.get("quarantine", [])
    if rejected:
        lines += ["", f"Events we could not accept and keep for checking: {len(rejected)}."]
    lines += ["", "To have all of this removed: tactful erase (or DELETE /v1/customers/{id})."]
    return "\n".join(lines)

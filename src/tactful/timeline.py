"""Readable timelines: what each customer did, what tactful saw, and what it decided."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tactful.events import Event
from tactful.runtime.engine import IngestResult
from tactful.state.customer import CustomerState

__all__ = ["describe_event", "render_summary", "render_timelines"]

_KIND_STYLE = {
    "automate": "dim",
    "clarify": "cyan",
    "offer_choices": "cyan",
    "assist": "green",
    "draft_message": "green",
    "escalate": "bold red",
    "hold": "yellow",
    "release": "yellow",
    "notify": "magenta",
}


_ARROWS = {"rising": "↑", "falling": "↓", "steady": ""}


def _trend_text(state: CustomerState, now: datetime) -> str:
    """Each dimension above 0.1 with its slope: ``frustration 0.62 ↑``."""
    lines = []
    for dim, level in state.levels(now).items():
        if level >= 0.1:
            arrow = _ARROWS[state.trend[dim].slope(now, dim)]
            lines.append(f"{dim} {level:.2f} {arrow}".rstrip())
    return "\n".join(lines)


def describe_event(event: Event) -> str:
    match event.type:
        case "message":
            return f'{event.role} {event.channel}: "{event.text}"'
        case "click":
            where = event.element or f"({event.x}, {event.y})"
            return f"click {where}"
        case "page_view":
            return f"page {event.path}"
        case "api_error":
            return f"API {event.status} on {event.endpoint}"
        case "payment_failed":
            return f"payment failed ({event.reason or 'no reason'})"
        case "ticket_opened":
            return f"ticket {event.ticket_id} opened: {event.subject or ''}"
        case "ticket_closed":
            return f"ticket {event.ticket_id} closed ({event.resolution})"
        case "search":
            return f'search "{event.query}"'
        case "command_run":
            return f"ran `{event.command}`" + ("" if event.ok else " (failed)")
        case "bot_turn":
            return f"bot step {event.step_id}: {event.outcome}"
        case "feedback":
            return f"feedback {event.rating}/5"
        case "identify":
            traits = ", ".join(f"{k}={v}" for k, v in event.traits.items())
            return f"identify {traits}"
    return event.type  # pragma: no cover - every type is matched above


def _decision_text(kind: str, params: dict[str, object]) -> str:
    match kind:
        case "escalate":
            return f"escalate -> {params['queue']} queue ({params['priority']})"
        case "hold":
            days = float(str(params["duration_s"])) / 86_400
            return f"hold {'+'.join(map(str, params['categories']))} for {days:g}d"  # type: ignore[call-overload]
        case "clarify":
            return f'clarify: "{params["question"]}"'
        case "assist":
            return f'assist: "{params["message"]}"'
        case "notify":
            return f"notify {params['target']}: {params['message']}"
        case "draft_message":
            return f"draft a reply ({params['tone']})"
    return kind


def render_timelines(results: Sequence[IngestResult], console: Console) -> None:
    by_customer: dict[str, list[IngestResult]] = defaultdict(list)
    for r in results:
        if r.processed is not None:
            by_customer[r.processed.event.customer_id].append(r)
    for customer_id, rows in by_customer.items():
        table = Table(show_header=True, header_style="bold", expand=True, box=None, pad_edge=False)
        table.add_column("time", style="dim", no_wrap=True, width=8)
        table.add_column("event", ratio=3)
        table.add_column("signals (evidence)", ratio=3)
        table.add_column("trend", ratio=2)
        table.add_column("decision: why", ratio=4)
        last = rows[-1].processed
        assert last is not None
        for r in rows:
            p = r.processed
            assert p is not None
            ev = p.event
            signals = Text()
            for s in p.signals:
                signals.append(f"{s.name} {s.strength:.2f}", style="bold")
                if s.evidence and not s.evidence[0].startswith("demo-"):
                    signals.append(" (" + ", ".join(f"'{e}'" for e in s.evidence[:3]) + ")")
                else:
                    signals.append(f" ({s.reason})")
                signals.append("\n")
            trend = _trend_text(p.state, ev.timestamp)
            decision = Text()
            for i, d in enumerate(p.decisions):
                decision.append(_decision_text(d.kind, d.params), style=_KIND_STYLE.get(d.kind))
                decision.append("\n")
                following = p.decisions[i + 1] if i + 1 < len(p.decisions) else None
                if following is None or following.rule_id != d.rule_id:
                    decision.append(f"  {d.reasons[0]}; {d.reasons[1]}\n", style="dim")
            for note in p.suppressed:
                decision.append(f"muted {note}\n", style="dim italic")
            if not p.decisions and not p.suppressed:
                decision.append("automate (no rule matched)", style="dim")
            table.add_row(
                ev.timestamp.strftime("%H:%M:%S"),
                describe_event(ev),
                signals,
                trend,
                decision,
            )
        state = last.state
        acct = state.account
        title = (
            f"[bold]{customer_id}[/] - {acct.tier}"
            + (f", value {acct.value:g}" if acct.value else "")
            + (f", account {state.account_id}" if state.account_id else "")
        )
        active = [h for h in state.holds if h.active(last.event.timestamp)]
        footer = Text(
            f"holds: {', '.join('+'.join(h.categories) for h in active) or 'none'}   "
            f"open handoffs: {', '.join(h.queue for h in state.handoffs) or 'none'}",
            style="bold",
        )
        console.print(Panel(Group(table, footer), title=title, title_align="left"))


def render_summary(results: Sequence[IngestResult], console: Console) -> None:
    """One line per customer: everything tactful decided, and where they stand now."""
    table = Table(title="what tactful did", title_justify="left", expand=True)
    table.add_column("customer", style="bold", no_wrap=True)
    table.add_column("decisions (rule)", ratio=4)
    table.add_column("marketing holds now", ratio=2)
    table.add_column("open handoff", ratio=1)
    last: dict[str, IngestResult] = {}
    decided: dict[str, Text] = defaultdict(Text)
    for r in results:
        if r.processed is None:
            continue
        cid = r.processed.event.customer_id
        last[cid] = r
        for d in r.processed.decisions:
            line = decided[cid]
            if line:
                line.append("\n")
            line.append(_decision_text(d.kind, d.params), style=_KIND_STYLE.get(d.kind))
            line.append(f" ({d.rule_id})", style="dim")
    for cid, r in last.items():
        p = r.processed
        assert p is not None
        now = p.event.timestamp
        holds = sorted({c for h in p.state.active_holds(now) for c in h.categories})
        table.add_row(
            cid,
            decided[cid] or Text("automate: nothing to do", style="dim"),
            ", ".join(holds) or "-",
            ", ".join(h.queue for h in p.state.handoffs) or "-",
        )
    console.print(table)

"""Act: Slack, through the official slack_sdk, as Block Kit messages.

Either an incoming webhook (``webhook_url``: one Slack channel, no token) or the Web API
(``token`` + ``channel``, chat.postMessage; ``queue_channels`` sends each handoff to its
queue's Slack channel). A message says who, why, the trend, the summary, the recommended
next step, and links to the customer — what an agent needs to act without opening three
tools. Blocks are built with slack_sdk's models, which check Slack's limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.webhook import WebhookClient

from tactful.actions.channels import ChannelError
from tactful.state.store.base import OutboxRow

__all__ = ["SlackChannel", "render"]

RETRYABLE = frozenset({408, 425, 429})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trend_line(trend: Any) -> str:
    """``frustration 0.82 ↑, churn_intent 0.41`` from the package's trend (either a map of
    dimension -> level, or of dimension -> {level, direction, ...})."""
    if not isinstance(trend, Mapping):
        return ""
    parts = []
    for dim, value in trend.items():
        level = value.get("level") if isinstance(value, Mapping) else value
        if not isinstance(level, int | float) or level < 0.1:
            continue
        direction = value.get("direction", "") if isinstance(value, Mapping) else ""
        arrow = {"rising": " ↑", "falling": " ↓"}.get(str(direction), "")
        parts.append((float(level), f"{dim} {level:.2f}{arrow}"))
    return ", ".join(p for _, p in sorted(parts, reverse=True)[:4])


def _why(payload: Mapping[str, Any]) -> str:
    reasons = payload.get("why") or payload.get("reasons") or payload.get("reason_codes") or []
    if isinstance(reasons, str):
        return reasons
    return "; ".join(str(r) for r in list(reasons)[:2])


def render(action: OutboxRow, link: str | None = None) -> tuple[str, list[Block]]:
    """(fallback text, Block Kit blocks) for an action."""
    p = action.payload
    who = f"`{action.customer_id}`"
    account = p.get("account")
    if isinstance(account, Mapping) and account.get("tier"):
        who += f" ({account.get('tier')}" + (
            f", value {account['value']:,.0f})"
            if isinstance(account.get("value"), int | float)
            else ")"
        )
    if action.kind == "handoff.created":
        title = f"Handoff to {p.get('queue', '?')} ({p.get('priority', 'normal')})"
        fields = [f"*Who*\n{who}", f"*Why*\n{_cut(_why(p), 900) or '-'}"]
        trend = _trend_line(p.get("trend"))
        if trend:
            fields.append(f"*Trend*\n{trend}")
        if p.get("topic"):
            fields.append(f"*Topic*\n{p['topic']}")
        body = [SectionBlock(fields=[MarkdownTextObject(text=_cut(f, 1900)) for f in fields])]
        summary = p.get("goal") or p.get("summary")
        if summary:
            body.append(
                SectionBlock(text=MarkdownTextObject(text=_cut(f"*Summary* {summary}", 2900)))
            )
        step = p.get("recommended_next_step")
        if step:
            body.append(
                SectionBlock(text=MarkdownTextObject(text=_cut(f"*Recommended* {step}", 2900)))
            )
    elif "notifications" in p:  # a batch of notifications to one target (grouping.py)
        items = p["notifications"]
        title = str(p.get("message") or f"{len(items)} notifications")
        lines = [
            f"• `{n.get('customer_id')}`: {n.get('message', '')}"
            + (f" ({_cut(_why(n), 200)})" if _why(n) else "")
            for n in items[:20]
        ]
        if len(items) > 20:
            lines.append(f"… and {len(items) - 20} more")
        body = [SectionBlock(text=MarkdownTextObject(text=_cut("\n".join(lines), 2900)))]
    elif action.kind == "notify":
        title = str(p.get("message") or "tactful notification")
        body = [
            SectionBlock(
                fields=[
                    MarkdownTextObject(text=f"*Who*\n{who}"),
                    MarkdownTextObject(text=_cut(f"*Why*\n{_why(p) or '-'}", 1900)),
                ]
            )
        ]
    elif action.kind in ("hold.started", "hold.released"):
        verb = "paused" if action.kind == "hold.started" else "resumed"
        cats = ", ".join(p.get("categories", [])) or "marketing"
        title = f"Marketing {verb} for {action.customer_id}"
        body = [
            SectionBlock(
                text=MarkdownTextObject(text=_cut(f"*{cats}*: {p.get('reason', '')}", 2900))
            )
        ]
    else:
        title = f"{action.kind} for {action.customer_id}"
        body = []
    blocks: list[Block] = [HeaderBlock(text=_cut(title, 150)), *body]
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(text=f"tactful · {action.kind} · `{action.idempotency_key}`")
            ]
        )
    )
    if link:
        url = link.format(customer_id=action.customer_id)
        blocks.append(
            ActionsBlock(
                elements=[ButtonElement(text="Open customer", url=url, action_id="open_customer")]
            )
        )
    return _cut(f"{title}: {who}", 3000), blocks


class SlackChannel:
    def __init__(
        self,
        name: str,
        webhook_url: str | None = None,
        token: str | None = None,
        channel: str | None = None,
        queue_channels: Mapping[str, str] | None = None,
        link: str | None = None,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 2,
        base_url: str = "https://slack.com/api/",
    ) -> None:
        if (webhook_url is None) == (token is None):
            raise ValueError(f"{name}: give either webhook_url or token (with channel)")
        if token is not None and channel is None:
            raise ValueError(f"{name}: chat.postMessage needs a channel (e.g. #support)")
        self.name = name
        self.concurrency = concurrency
        self.link = link
        self.channel = channel
        self.queue_channels = dict(queue_channels or {})
        seconds = max(1, round(timeout.total_seconds()))
        self._webhook = WebhookClient(webhook_url, timeout=seconds) if webhook_url else None
        self._web = WebClient(token=token, base_url=base_url, timeout=seconds) if token else None

    def deliver(self, action: OutboxRow) -> None:
        text, blocks = render(action, self.link)
        try:
            if self._webhook is not None:
                response = self._webhook.send(text=text, blocks=blocks)
                status, body = response.status_code, response.body
            else:
                assert self._web is not None and self.channel is not None
                queue = action.payload.get("queue")
                target = self.queue_channels.get(str(queue), self.channel)
                self._web.chat_postMessage(channel=target, text=text, blocks=blocks)
                return
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error", "") if exc.response is not None else ""
            permanent = (400 <= status < 500 and status not in RETRYABLE) or (
                status == 200 and error not in ("ratelimited", "service_unavailable")
            )
            raise ChannelError(f"{self.name}: Slack answered {status} {error}", permanent) from exc
        except (OSError, TimeoutError) as exc:  # urllib's URLError and socket timeouts
            raise ChannelError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            permanent = 400 <= status < 500 and status not in RETRYABLE
            raise ChannelError(
                f"{self.name}: Slack webhook answered {status}: {body[:200]}", permanent
            )

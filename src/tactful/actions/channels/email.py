"""Act: email to an account manager or a team, through your SMTP server (stdlib smtplib).

A ``notify`` decision's target is the recipient when it is an email address (the account
owner from the CRM usually is); otherwise the channel's ``to``. Other actions (a handoff,
a hold) go to ``to``. The body is plain text: what happened, why, and the trend; the
``Message-ID`` is derived from the idempotency key, so a mail client threads a re-sent
message with the first. SMTP 4xx answers and connection problems are retried; 5xx
answers (a recipient refused, authentication failed) are permanent.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from tactful.actions.channels import ChannelError
from tactful.state.store.base import OutboxRow

__all__ = ["EmailChannel", "compose"]


def _lines(payload: Mapping[str, Any]) -> list[str]:
    out = []
    why = payload.get("why") or []
    if isinstance(why, list) and why:
        out.append("Why:")
        out.extend(f"  - {w}" for w in why[:6])
    trend = payload.get("trend")
    if isinstance(trend, Mapping):
        levels = ", ".join(
            f"{k} {v:.2f}" for k, v in trend.items() if isinstance(v, int | float) and v >= 0.1
        )
        if levels:
            out.append(f"Trend: {levels}")
    for key in ("goal", "recommended_next_step"):
        if payload.get(key):
            out.append(f"{key.replace('_', ' ').capitalize()}: {payload[key]}")
    return out


def compose(action: OutboxRow, sender: str, default_to: str) -> EmailMessage:
    p = action.payload
    target = str(p.get("target", ""))
    to = target if "@" in target else default_to
    if "notifications" in p:  # a batch (actions/grouping.py)
        subject = str(p.get("message", "tactful notifications"))
        body = [
            f"- {n.get('customer_id')}: {n.get('message', '')}" for n in p["notifications"][:50]
        ]
    elif action.kind == "notify":
        subject = f"{p.get('message', 'tactful')} ({action.customer_id})"
        body = [f"Customer: {action.customer_id}", *_lines(p)]
    elif action.kind == "handoff.created":
        subject = f"Handoff to {p.get('queue')} ({p.get('priority')}): {action.customer_id}"
        body = [f"Customer: {action.customer_id}", *_lines(p)]
    else:
        subject = f"{action.kind}: {action.customer_id}"
        body = [f"Customer: {action.customer_id}", *_lines(p)]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject[:200]
    msg["Date"] = format_datetime(action.created_at)
    domain = sender.rsplit("@", 1)[-1] or "tactful.local"
    msg["Message-ID"] = make_msgid(idstring=action.idempotency_key[:60], domain=domain)
    msg["Tactful-Idempotency-Key"] = action.idempotency_key
    msg.set_content("\n".join(body) + f"\n\n-- tactful ({action.kind}, {action.idempotency_key})\n")
    return msg


class EmailChannel:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        to: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 2,
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.host, self.port = host, port
        self.sender, self.to = sender, to
        self._login = (username, password) if username and password else None
        self._starttls = starttls
        self._timeout = timeout.total_seconds()

    def deliver(self, action: OutboxRow) -> None:
        msg = compose(action, self.sender, self.to)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._login:
                    smtp.login(*self._login)
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise ChannelError(
                f"{self.name}: SMTP {exc.smtp_code} {exc.smtp_error!r}", permanent
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)  # 4xx: try again later
            raise ChannelError(
                f"{self.name}: recipients refused: {exc.recipients}", permanent
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"{self.name}: {type(exc).__name__}: {exc}") from exc

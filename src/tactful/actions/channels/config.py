"""Act: the channels file — where actions are delivered, and with which secrets (and,
under ``sources:``, which senders may push signed events in: tactful/inbound.py).

The policy says *what* goes to *which* channel by name (``notify: {channel: slack}``,
``delivery: {handoff.created: [slack]}``); this file, kept by whoever runs tactful, says
what each name is. Secrets are not written in it: ``${VAR}`` is read from the
environment when the file loads (a missing variable is an error, not an empty string)::

    llm:                     # optional: rewrite drafts and handoff summaries
      base_url: http://127.0.0.1:11434/v1
      model: llama3.1
    channels:
      slack:
        type: slack
        webhook_url: ${SLACK_WEBHOOK_URL}
        link: https://support.example.com/customers/{customer_id}
      crm:
        type: webhook
        url: https://crm.example.com/hooks/tactful
        secret: ${TACTFUL_CRM_SECRET}
        timeout: 5s
        concurrency: 4
      zendesk:               # a handoff opens a ticket, the package an internal note
        type: zendesk        # (also intercom, freshdesk: docs/helpdesks.md)
        base_url: https://acme.zendesk.com
        email: tactful@acme.com
        token: ${ZENDESK_API_TOKEN}
      am_mail:
        type: email
        host: smtp.example.com
        sender: tactful@example.com
        to: support-leads@example.com
        username: tactful
        password: ${SMTP_PASSWORD}
    sources:                 # POST /v1/sources/<name>, verified by the sender's signature
      segment:
        type: segment        # X-Signature (Segment's Webhooks destination)
        secret: ${SEGMENT_SHARED_SECRET}

URLs must be http(s) and may not point at link-local or cloud metadata addresses (a
webhook is a way to make tactful send requests; it must not become a way to read the
instance's credentials).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tactful.actions.channels import Channel, LogChannel
from tactful.inbound import Scheme
from tactful.policy.model import parse_duration
from tactful.state.store.base import OutboxRow

__all__ = [
    "ChannelsConfig",
    "ChannelsError",
    "SourceSpec",
    "build_channels",
    "check_url",
    "load_channels",
]

# Hosts that answer with the machine's cloud credentials; refused even by name.
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "100.100.100.200"}
)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ChannelsError(ValueError):
    """A channels file that cannot load, with every problem found."""


def check_url(url: str) -> str:
    """Refuse what is not http(s) or points at link-local / metadata addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: only http and https URLs can receive actions")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"{url!r}: no host")
    if host in _METADATA_HOSTS:
        raise ValueError(f"{url!r}: {host} is a cloud metadata service; refused")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return url
    if ip.is_link_local or ip in ipaddress.ip_network("fd00:ec2::/32"):
        raise ValueError(
            f"{url!r}: {ip} is link-local (where cloud metadata services answer); refused"
        )
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{url!r}: {ip} cannot receive requests")
    return url


def _duration(v: Any) -> Any:
    return parse_duration(v) if isinstance(v, str | int | float) else v


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: timedelta = timedelta(seconds=10)
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4

    parse_timeout_ = field_validator("timeout", mode="before")(_duration)

    @field_validator("timeout")
    @classmethod
    def _sane_timeout(cls, v: timedelta) -> timedelta:
        if not timedelta(seconds=0.1) <= v <= timedelta(minutes=5):
            raise ValueError(f"{v} is outside 100ms..5m")
        return v


class WebhookSpec(_Channel):
    type: Literal["webhook"]
    url: str
    secret: Annotated[str, Field(min_length=16)]

    _url = field_validator("url")(check_url)


class SlackSpec(_Channel):
    type: Literal["slack"]
    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    queue_channels: dict[str, str] = Field(default_factory=dict)
    link: str | None = None  # "https://.../customers/{customer_id}"
    base_url: str = "https://slack.com/api/"
    concurrency: Annotated[int, Field(ge=1, le=64)] = 2

    @field_validator("webhook_url", "base_url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return None if v is None else check_url(v)

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackSpec:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("give either webhook_url, or token and channel (chat.postMessage)")
        if self.token is not None and self.channel is None:
            raise ValueError("chat.postMessage needs a channel, e.g. '#support'")
        return self


class EmailSpec(_Channel):
    """SMTP: notify targets that are email addresses get the mail; the rest go to ``to``."""

    type: Literal["email"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    concurrency: Annotated[int, Field(ge=1, le=64)] = 2


class LogSpec(_Channel):
    type: Literal["log"]
    path: str


class _HelpdeskSpec(_Channel):
    """A helpdesk a handoff opens a ticket in, with the package as an internal note
    (actions/channels/helpdesk.py, docs/helpdesks.md). Give credentials as ${ENV_VARS}."""

    base_url: str
    concurrency: Annotated[int, Field(ge=1, le=64)] = 2

    _url = field_validator("base_url")(check_url)


class ZendeskSpec(_HelpdeskSpec):
    """``base_url``: https://<subdomain>.zendesk.com; ``email``: the agent the API token
    belongs to; ``token``: the API token."""

    type: Literal["zendesk"]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    token: Annotated[str, Field(min_length=1)]
    tags: list[Annotated[str, Field(min_length=1, max_length=80)]] = ["tactful"]


class IntercomSpec(_HelpdeskSpec):
    """``token``: an access token; ``admin_id``: the teammate the note is written as;
    ``ticket_type_id``: the type of ticket made."""

    type: Literal["intercom"]
    base_url: str = "https://api.intercom.io"
    token: Annotated[str, Field(min_length=1)]
    admin_id: Annotated[str, Field(min_length=1)]
    ticket_type_id: Annotated[str, Field(min_length=1)]
    version: Annotated[str, Field(min_length=1, max_length=16)] = "2.11"


class FreshdeskSpec(_HelpdeskSpec):
    """``base_url``: https://<domain>.freshdesk.com; ``api_key``: an agent's API key."""

    type: Literal["freshdesk"]
    api_key: Annotated[str, Field(min_length=1)]
    tags: list[Annotated[str, Field(min_length=1, max_length=80)]] = ["tactful"]


ChannelSpec = Annotated[
    WebhookSpec | SlackSpec | EmailSpec | LogSpec | ZendeskSpec | IntercomSpec | FreshdeskSpec,
    Field(discriminator="type"),
]
ChannelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class LLMSpec(_Channel):
    """An OpenAI-compatible chat-completions endpoint that rewrites drafts and handoff
    summaries before delivery (actions/llm.py). Optional; failures fall back."""

    base_url: str
    model: Annotated[str, Field(min_length=1)]
    api_key: str | None = None
    timeout: timedelta = timedelta(seconds=5)
    calls_per_hour: Annotated[int, Field(ge=1)] = 600
    tokens_per_day: Annotated[int, Field(ge=1)] = 500_000

    _url = field_validator("base_url")(check_url)


class SourceSpec(BaseModel):
    """A sender that pushes events to ``POST /v1/sources/<name>`` and signs them
    (tactful/inbound.py): ``type`` is its signature scheme."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Scheme
    secret: Annotated[str, Field(min_length=16)]
    old_secret: Annotated[str, Field(min_length=16)] | None = None  # during a rotation
    tolerance: timedelta = timedelta(minutes=5)  # for schemes that sign a timestamp

    parse_tolerance_ = field_validator("tolerance", mode="before")(_duration)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.secret,) if self.old_secret is None else (self.secret, self.old_secret)


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[ChannelName, ChannelSpec] = Field(default_factory=dict)
    llm: LLMSpec | None = None
    sources: dict[ChannelName, SourceSpec] = Field(default_factory=dict)

    def enricher(self) -> Callable[[OutboxRow], OutboxRow] | None:
        if self.llm is None:
            return None
        from tactful.actions.llm import ChatModel

        spec = self.llm
        model = ChatModel(
            spec.base_url,
            spec.model,
            spec.api_key,
            spec.timeout,
            spec.calls_per_hour,
            spec.tokens_per_day,
        )
        return model.enrich


def _expand(value: Any, where: str, missing: list[str]) -> Any:
    if isinstance(value, str):

        def env(m: re.Match[str]) -> str:
            found = os.environ.get(m.group(1))
            if found is None:
                missing.append(f"{where}: environment variable {m.group(1)} is not set")
                return ""
            return found

        return _ENV.sub(env, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, f"{where}.{k}", missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    return value


def load_channels(path: str | Path) -> ChannelsConfig:
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text("utf-8")) or {}
    except OSError as exc:
        raise ChannelsError(f"cannot read channels file {source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ChannelsError(f"{source}: not valid YAML: {exc}") from None
    missing: list[str] = []
    data = _expand(data, "channels", missing) if isinstance(data, dict) else data
    if missing:
        raise ChannelsError(f"{source}:\n- " + "\n- ".join(missing))
    try:
        return ChannelsConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise ChannelsError(f"{source} has errors:\n- " + "\n- ".join(problems)) from None


def build_channels(
    config: ChannelsConfig, log_path: str | Path, needed: frozenset[str] = frozenset()
) -> dict[str, Channel]:
    """The channels by name (``log`` always); ``needed``: the names a policy uses, each
    of which must be configured."""
    from tactful.actions.channels.email import EmailChannel
    from tactful.actions.channels.slack import SlackChannel
    from tactful.actions.channels.webhook import WebhookChannel

    out: dict[str, Channel] = {"log": LogChannel(log_path)}
    for name, spec in config.channels.items():
        if isinstance(spec, WebhookSpec):
            out[name] = WebhookChannel(name, spec.url, spec.secret, spec.timeout, spec.concurrency)
        elif isinstance(spec, SlackSpec):
            out[name] = SlackChannel(
                name,
                webhook_url=spec.webhook_url,
                token=spec.token,
                channel=spec.channel,
                queue_channels=spec.queue_channels,
                link=spec.link,
                timeout=spec.timeout,
                concurrency=spec.concurrency,
                base_url=spec.base_url,
            )
        elif isinstance(spec, EmailSpec):
            out[name] = EmailChannel(
                name,
                spec.host,
                spec.port,
                spec.sender,
                spec.to,
                spec.username,
                spec.password,
                spec.starttls,
                spec.timeout,
                spec.concurrency,
            )
        elif isinstance(spec, ZendeskSpec | IntercomSpec | FreshdeskSpec):
            out[name] = _helpdesk(name, spec)
        else:
            out[name] = LogChannel(spec.path)
    unknown = sorted(needed - set(out))
    if unknown:
        raise ChannelsError(
            f"the policy sends to channel(s) {unknown} that the channels file does not "
            f"configure (configured: {', '.join(sorted(out))})"
        )
    return out


def _helpdesk(name: str, spec: ZendeskSpec | IntercomSpec | FreshdeskSpec) -> Channel:
    from tactful.actions.channels.helpdesk import (
        FreshdeskChannel,
        IntercomChannel,
        ZendeskChannel,
    )

    if isinstance(spec, ZendeskSpec):
        return ZendeskChannel(
            name,
            spec.base_url,
            spec.email,
            spec.token,
            spec.timeout,
            spec.concurrency,
            tuple(spec.tags),
        )
    if isinstance(spec, IntercomSpec):
        return IntercomChannel(
            name,
            spec.token,
            spec.admin_id,
            spec.ticket_type_id,
            spec.base_url,
            spec.version,
            spec.timeout,
            spec.concurrency,
        )
    return FreshdeskChannel(
        name, spec.base_url, spec.api_key, spec.timeout, spec.concurrency, tuple(spec.tags)
    )

"""Decide: the policy file's schema, strict at load.

A policy is YAML a support-ops lead edits. Unknown keys are refused, each rule's
condition compiles when the file loads (typos in field names fail here, not at 3 a.m.),
durations parse, queues resolve, and rule ids are unique. Errors name the rule and the
field.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tactful.detect.behavior import BehaviorConfig
from tactful.policy.expr import CompiledExpr, ExprError, compile_expr
from tactful.signals import DIMENSIONS, TOPICS, Dimension
from tactful.state.customer import RULE_MEMORY, MemoryConfig
from tactful.state.trend import DEFAULT_HALF_LIVES, TrendConfig

__all__ = [
    "DECISION_KINDS",
    "KNOWN_SIGNALS",
    "NAMESPACES",
    "AutoRelease",
    "DecisionSpec",
    "Policy",
    "PolicyError",
    "Rule",
    "load_policy",
    "parse_duration",
]

TOPIC_QUEUE = "topic:"  # an escalation's queue "topic:<topic>": the queue of that topic

DECISION_KINDS = (
    "automate",
    "clarify",
    "offer_choices",
    "assist",
    "escalate",
    "hold",
    "release",
    "notify",
    "draft_message",
)

# Every signal a detector can emit; `signal.<name>` is its strength on this event (0 if
# it did not fire).
KNOWN_SIGNALS = frozenset(
    {
        *DIMENSIONS,
        "topic",
        "rage_click",
        "error_streak",
        "payment_failed",
        "unresolved_tickets",
        "ticket_unsolved",
        "cancel_page",
        "high_value_intent",
        "bot_repeat_failure",
        "negative_feedback",
        "positive_feedback",
        "confusion_dwell",
        "page_loop",
        "help_bounce",
        "bot_no_progress",
        "repeat_contact",
        # what a customer says happened (detect/text.py STATEMENTS): they asked before and
        # got nowhere; their business is stopped now; they are leaving, said as done
        "asked_before",
        "stoppage",
        "leaving",
    }
)

NAMESPACES: dict[str, frozenset[str]] = {
    "state": frozenset(
        {
            *DIMENSIONS,
            # each dimension's slope in [-1, 1]: > 0 rising (evidence arriving faster than
            # its long-run rate), < 0 falling (gone quiet)
            *(f"{d}_slope" for d in DIMENSIONS),
            # each dimension's level just before this event's evidence was added
            *(f"{d}_before" for d in DIMENSIONS),
            "topic",
            "open_tickets",
            "unresolved_tickets_30d",  # open now plus closed unsolved in 30 days
            "payment_failures_30d",
            "api_error_streak",
            "events_seen",
            "active_holds",
            "open_handoffs",
            # the conversation in progress: how frustrated the customer is now (its latest
            # message, the reply it answered and the conversation's earlier evidence,
            # fading within minutes of quiet); the dimensions above remember for days
            "frustration_now",
            # how many times in a row the bot's (or agent's) latest reply repeated the one
            # before it while the customer kept answering: a bot going in circles
            "bot_repeats",
        }
    ),
    "event": frozenset(
        {
            "type",
            "text",
            "path",
            "element",
            "query",
            "status",
            "endpoint",
            "channel",
            "role",
            "rating",
            "step_id",
            "outcome",
        }
    ),
    "signal": KNOWN_SIGNALS,
    "account": frozenset(
        {
            "tier",
            "value",
            "lifecycle",
            "owner",
            "tenure_days",
            "frustration",  # the account's trend: the sum of its customers' evidence
            "churn_intent",
            "error_rate",  # API errors / calls, about the last hour
            "members_at_risk",  # customers of the account high on frustration or churn
        }
    ),
    # hour and weekday in UTC; local_hour on the customer's clock (UTC when unknown)
    "clock": frozenset({"hour", "weekday", "local_hour"}),
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str | int | float) -> timedelta:
    """'30m', '2h', '7d', '1w' or a number of seconds."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    m = _DURATION.match(value)
    if m is None:
        raise ValueError(f"'{value}' is not a duration; write e.g. 30s, 15m, 2h, 7d, 1w")
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration_field(v: Any) -> Any:
    return parse_duration(v) if isinstance(v, str | int | float) else v


class Clarify(_Strict):
    question: str


class Assist(_Strict):
    message: str
    article: str | None = None


class Escalate(_Strict):
    # "auto": route by the customer's topic through `queues`; "topic:<topic>": the queue
    # `queues` gives that topic, whatever the customer's (a rule about leaving routes as
    # "topic:cancellation" though the message that said it mentioned SSO); else a queue
    queue: str = "auto"
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class Hold(_Strict):
    categories: list[Literal["promotional", "educational", "sales", "all"]] = Field(min_length=1)
    duration: timedelta = timedelta(days=7)

    parse_duration_ = field_validator("duration", mode="before")(_duration_field)


# The channel that always exists (a JSON-lines file); others are declared by name in the
# policy's `channels:` and configured (URLs, secrets) in the channels file at serve time.
CHANNELS = frozenset({"log"})
ChannelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
# What besides notifications can be delivered, and where (`delivery:`); "log" by default.
DeliveredKind = Literal[
    "handoff.created",
    "handoff.updated",  # an agent accepted, resolved or rejected it
    "hold.started",
    "hold.released",
    "message.suggested",
]


class Notify(_Strict):
    channel: str = "log"
    target: str = "account_owner"  # "account_owner" resolves to account.owner
    message: str


class OfferChoices(_Strict):
    question: str
    choices: list[str] = Field(min_length=2)


class DraftMessage(_Strict):
    tone: Literal["apologetic", "empathetic", "neutral", "upbeat"] = "empathetic"


class Empty(_Strict):
    pass


class DecisionSpec(_Strict):
    """One decision in a rule's ``then`` list: exactly one key, named by its kind."""

    automate: Empty | None = None
    clarify: Clarify | None = None
    offer_choices: OfferChoices | None = None
    assist: Assist | None = None
    escalate: Escalate | None = None
    hold: Hold | None = None
    release: Empty | None = None
    notify: Notify | None = None
    draft_message: DraftMessage | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_kinds(cls, data: Any) -> Any:
        # `- automate` or `- release: {}` are both fine in YAML.
        if isinstance(data, str):
            data = {data: {}}
        if isinstance(data, dict):
            data = {k: ({} if v is None else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> DecisionSpec:
        set_kinds = [k for k in DECISION_KINDS if getattr(self, k) is not None]
        if len(set_kinds) != 1:
            raise ValueError(
                f"each decision names exactly one kind, got {set_kinds or 'none'}; "
                f"kinds: {', '.join(DECISION_KINDS)}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DECISION_KINDS if getattr(self, k) is not None)

    @property
    def params(self) -> dict[str, Any]:
        body: BaseModel = getattr(self, self.kind)
        if isinstance(body, Hold):
            return {"categories": body.categories, "duration_s": body.duration.total_seconds()}
        return body.model_dump(mode="json")


class MemorySpec(_Strict):
    """How signals become trends: ``memory:`` in the policy file."""

    # e.g. {frustration: 1d}: how long each dimension takes to fade by half
    half_lives: dict[Dimension, timedelta] = Field(default_factory=dict)
    # e.g. {rage_click: 0.5}: a signal's weight on the trends (1 when not listed)
    weights: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    # events this much older than a customer's latest still apply as if in order
    lateness: timedelta = timedelta(hours=1)

    @field_validator("half_lives", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> Any:
        return {k: _duration_field(d) for k, d in v.items()} if isinstance(v, dict) else v

    parse_lateness_ = field_validator("lateness", mode="before")(_duration_field)

    @field_validator("half_lives")
    @classmethod
    def _positive(cls, v: dict[str, timedelta]) -> dict[str, timedelta]:
        for dim, hl in v.items():
            if hl <= timedelta(0):
                raise ValueError(f"half_lives.{dim}: must be a positive duration")
        return v

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - KNOWN_SIGNALS)
        if unknown:
            raise ValueError(
                f"unknown signal(s) {unknown}; signals are: {', '.join(sorted(KNOWN_SIGNALS))}"
            )
        return v

    def config(self) -> MemoryConfig:
        half_lives: dict[str, timedelta] = dict(DEFAULT_HALF_LIVES)
        for dim, hl in self.half_lives.items():
            half_lives[dim] = hl
        trend = TrendConfig(half_lives=half_lives)
        return MemoryConfig(trend=trend, weights=dict(self.weights), lateness=self.lateness)


class DetectorSpec(_Strict):
    """The behavioural detectors' parameters: ``detectors:`` in the policy file. Anything
    left out keeps its default (see tactful.detect.behavior.BehaviorConfig)."""

    rage_clicks: int | None = None
    rage_window: timedelta | None = None
    rage_radius_px: Annotated[float, Field(gt=0)] | None = None
    rage_exclude: list[str] | None = None
    error_streak: int | None = None
    docs_dwell: timedelta | None = None
    session_gap: timedelta | None = None
    page_loop: int | None = None
    help_return: timedelta | None = None
    open_tickets: Annotated[int, Field(ge=1)] | None = None
    repeat_contact: timedelta | None = None
    bot_stall_turns: int | None = None

    parse_durations_ = field_validator(
        "rage_window", "docs_dwell", "session_gap", "help_return", "repeat_contact", mode="before"
    )(_duration_field)

    @field_validator("rage_exclude")
    @classmethod
    def _regexes(cls, v: list[str] | None) -> list[str] | None:
        for pattern in v or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rage_exclude: {pattern!r} is not a regex: {exc}") from None
        return v

    @model_validator(mode="after")
    def _fits(self) -> DetectorSpec:
        self.config()  # BehaviorConfig checks ranges and windows; its ValueError is reported
        return self

    def config(self) -> BehaviorConfig:
        set_ = {k: v for k, v in self.model_dump().items() if v is not None}
        if "rage_exclude" in set_:
            set_["rage_exclude"] = tuple(set_["rage_exclude"])
        return BehaviorConfig(**set_)


class Rule(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    description: str = ""
    hard: bool = False  # a hard trigger: evaluated first, overrides every other rule
    when: str
    then: list[DecisionSpec] = Field(min_length=1)
    cooldown: timedelta = timedelta(0)
    stop: bool = False  # when it matches, skip the rules after it
    # Supervised rollout: this share of its decisions wait for a person to approve, edit
    # or reject them (1.0 while it proves itself, then lower; unset: the policy's review)
    review: Annotated[float, Field(ge=0, le=1)] | None = None

    parse_cooldown_ = field_validator("cooldown", mode="before")(_duration_field)

    @field_validator("then")
    @classmethod
    def _one_of_each(cls, v: list[DecisionSpec]) -> list[DecisionSpec]:
        kinds = [d.kind for d in v]
        twice = sorted({k for k in kinds if kinds.count(k) > 1})
        if twice:
            raise ValueError(
                f"{', '.join(twice)} appears twice; a rule makes each kind of decision once "
                "(split it into two rules)"
            )
        return v

    @field_validator("cooldown")
    @classmethod
    def _remembered(cls, v: timedelta) -> timedelta:
        if v > RULE_MEMORY:
            raise ValueError(
                f"{v} is longer than the {RULE_MEMORY.days} days a customer's state remembers "
                "when a rule fired; use a hold for longer quiet periods"
            )
        return v


ThresholdName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


MarketingCategory = Literal["promotional", "educational", "sales"]
MARKETING_CATEGORIES: tuple[MarketingCategory, ...] = ("promotional", "educational", "sales")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class QuietHours(_Strict):
    """Marketing waits for the customer's daytime: between ``start`` and ``end`` on their
    own clock (time zone from identify traits; UTC when unknown) they are not eligible."""

    start: str = "21:00"
    end: str = "08:00"
    categories: list[MarketingCategory] = Field(
        default_factory=lambda: list(MARKETING_CATEGORIES), min_length=1
    )

    @field_validator("start", "end")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        if not _CLOCK.match(v):
            raise ValueError(f"{v!r} is not a time of day; write HH:MM, e.g. 21:00")
        return v

    def covers(self, local: datetime) -> bool:
        """Whether a local time falls in the quiet hours (which may span midnight)."""
        minute = local.hour * 60 + local.minute
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (self.start, self.end))
        return start <= minute < end if start < end else minute >= start or minute < end


class QueueLimit(_Strict):
    per_hour: Annotated[int, Field(ge=1)]
    overflow: str


# A message always goes to one channel and target; group_by says what else it gathers by.
GroupField = Literal["account", "customer", "rule"]


class RouteTiming(_Strict):
    """Alertmanager's grouping knobs (see tactful.actions.grouping); unset: inherited."""

    group_by: list[GroupField] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None

    parse_durations_ = field_validator(
        "group_wait", "group_interval", "repeat_interval", mode="before"
    )(_duration_field)

    @field_validator("group_wait", "group_interval", "repeat_interval")
    @classmethod
    def _not_negative(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v < timedelta(0):
            raise ValueError(f"{v} is negative; write e.g. 30s, 5m, 4h")
        return v


class NotificationRoute(RouteTiming):
    """A route for notifications to one channel and/or target; the first that matches wins."""

    channel: str | None = None
    target: str | None = None

    @model_validator(mode="after")
    def _matches_something(self) -> NotificationRoute:
        if self.channel is None and self.target is None:
            raise ValueError("a route matches on channel, target or both; it names neither")
        return self


class Notifications(RouteTiming):
    """How notifications are batched: ``notifications:`` in the policy file. The top level
    is the default route (one message per channel, target and account; Alertmanager's
    default timings: wait 30s, interval 5m, repeat 4h); ``routes`` override it per channel
    or target."""

    routes: list[NotificationRoute] = Field(default_factory=list)

    def grouping(
        self, channel: str, target: str
    ) -> tuple[tuple[str, ...], timedelta, timedelta, timedelta]:
        """(group_by, wait, interval, repeat) for a notification to ``channel``/``target``."""
        route = next(
            (r for r in self.routes if r.channel in (None, channel) and r.target in (None, target)),
            None,
        )

        def pick(name: str, default: Any) -> Any:
            for level in (route, self):
                value = getattr(level, name) if level is not None else None
                if value is not None:
                    return value
            return default

        return (
            ("channel", "target", *pick("group_by", ["account"])),
            pick("group_wait", timedelta(seconds=30)),
            pick("group_interval", timedelta(minutes=5)),
            pick("repeat_interval", timedelta(hours=4)),
        )


_RECOVERY_DIMENSIONS: tuple[Dimension, ...] = ("frustration", "churn_intent")


class AutoRelease(_Strict):
    """Release a rule's hold once the customer has recovered: every listed dimension
    below ``below`` for ``after`` (and, by default, no handoff still open)."""

    below: Annotated[float, Field(gt=0, lt=1)] = 0.15
    after: timedelta = timedelta(hours=12)
    dimensions: list[Dimension] = Field(
        default_factory=lambda: list(_RECOVERY_DIMENSIONS), min_length=1
    )
    no_open_handoff: bool = True

    parse_after_ = field_validator("after", mode="before")(_duration_field)


class HoldsSpec(_Strict):
    """``holds:`` in the policy file. Holds always end at their end; with
    ``auto_release`` a rule's hold also ends when the customer has recovered (holds a
    person placed wait for their end or a person)."""

    auto_release: AutoRelease | None = None


class Holdout(_Strict):
    """A control group: for this share of customers (stable by customer id, independent of
    any canary), decisions are recorded, marked ``holdout``, and not acted on: no holds,
    no handoffs, nothing delivered. The metrics then compare them with the rest: lift."""

    share: Annotated[float, Field(ge=0, le=0.5)]


TextField = Literal["text", "query", "comment", "subject", "title"]
_FREE_TEXT: tuple[TextField, ...] = ("text", "query", "comment", "subject", "title")


RedactKind = Literal["secret", "email", "iban", "card", "phone"]
_ALL_KINDS: tuple[RedactKind, ...] = ("secret", "email", "iban", "card", "phone")


class PrivacySpec(_Strict):
    """``privacy:`` in the policy file. Free-text fields are redacted (emails, phone
    numbers, Luhn-valid cards, IBANs, API keys and tokens; actions/redact.py) before
    anything is stored, scored or sent; after ``keep_text`` the text of every free-text
    field goes and only its scores and signals remain (``serve`` sweeps hourly;
    ``tactful retention`` too).

    ``redact`` names the fields, each with what to remove from it (``all``, or a list of
    kinds); a plain list of fields means all kinds in each, and a field left out is kept
    as written::

        redact:
          text: all
          comment: [email, phone, card]   # e.g. IBANs are expected in refund comments
    """

    redact: dict[TextField, tuple[RedactKind, ...]] = Field(
        default_factory=lambda: dict.fromkeys(_FREE_TEXT, _ALL_KINDS)
    )
    keep_text: timedelta = timedelta(days=30)

    @field_validator("redact", mode="before")
    @classmethod
    def _per_field(cls, v: Any) -> Any:
        if isinstance(v, list):  # the short form: these fields, everything in them
            return dict.fromkeys(v, _ALL_KINDS)
        if isinstance(v, dict):
            return {k: _ALL_KINDS if kinds == "all" else kinds for k, kinds in v.items()}
        return v

    @property
    def text_fields(self) -> tuple[TextField, ...]:
        """Every free-text field: what retention forgets, redacted or not."""
        return _FREE_TEXT

    parse_keep_ = field_validator("keep_text", mode="before")(_duration_field)

    @field_validator("keep_text")
    @classmethod
    def _at_least_a_day(cls, v: timedelta) -> timedelta:
        if v < timedelta(days=1):
            raise ValueError(f"{v}: keep text at least a day (detection reads recent messages)")
        return v


class IncidentSpec(_Strict):
    """The crisis playbook: while a person has incident mode on, these rules replace the
    ordinary ones (hard triggers still come first)."""

    description: str = ""
    rules: list[Rule] = Field(min_length=1)


class Policy(_Strict):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    # Named values the rules compare against (`state.frustration >= threshold.frustrated`),
    # so they can be tuned in one place and shadow-tested.
    thresholds: dict[ThresholdName, int | float] = Field(default_factory=dict)
    _content_hash: str = PrivateAttr(default="")
    _source: str = PrivateAttr(default="")
    queues: dict[str, str] = Field(default_factory=dict)  # topic -> queue
    fallback_queue: str = "general"
    # Per-queue hourly caps: past `per_hour` handoffs in the last hour, the next go to
    # `overflow` (another queue), so one flood does not bury a team.
    queue_limits: dict[str, QueueLimit] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    notifications: Notifications = Field(default_factory=Notifications)
    holds: HoldsSpec = Field(default_factory=HoldsSpec)
    holdout: Holdout | None = None
    privacy: PrivacySpec = Field(default_factory=PrivacySpec)
    # The share of every rule's decisions that wait for review (a rule's own overrides).
    review: Annotated[float, Field(ge=0, le=1)] = 0.0
    # Channel names this policy sends to besides log (configured in the channels file).
    channels: list[ChannelName] = Field(default_factory=list)
    # e.g. {handoff.created: [slack], hold.started: [crm]}: where each kind of action goes
    # (log when not listed); notify decisions name their channel themselves.
    delivery: dict[DeliveredKind, Annotated[list[ChannelName], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    memory: MemorySpec = Field(default_factory=MemorySpec)
    detectors: DetectorSpec = Field(default_factory=DetectorSpec)
    rules: list[Rule] = Field(min_length=1)
    incident: IncidentSpec | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> Policy:
        seen: set[str] = set()
        incident_rules = self.incident.rules if self.incident else []
        for where, rule in [(f"rules[{i}]", r) for i, r in enumerate(self.rules)] + [
            (f"incident.rules[{i}]", r) for i, r in enumerate(incident_rules)
        ]:
            if rule.id in seen:
                raise ValueError(
                    f"{where} ({rule.id}).id: rule id '{rule.id}' is used twice; ids must be unique"
                )
            seen.add(rule.id)
        unknown = sorted(set(self.queues) - set(TOPICS))
        if unknown:
            raise ValueError(f"queues: unknown topic(s) {unknown}; topics are: {', '.join(TOPICS)}")
        problems = []
        used: set[str] = set()
        incident = self.incident.rules if self.incident else []
        located = [(f"rules[{i}]", r) for i, r in enumerate(self.rules)] + [
            (f"incident.rules[{i}]", r) for i, r in enumerate(incident)
        ]
        queues = {*self.queues.values(), self.fallback_queue}
        channels = CHANNELS | set(self.channels)
        for where, rule in located:
            try:
                compiled = compile_expr(rule.when, self.namespaces, {"threshold": self.thresholds})
            except ExprError as exc:
                problems.append(f"{where} ({rule.id}).when: {exc}")
                continue
            used.update(n.split(".", 1)[1] for n in compiled.names if n.startswith("threshold."))
            if compiled.requires_types == frozenset():
                problems.append(
                    f"{where} ({rule.id}).when: can never match: it needs the event to be "
                    f"of two different types at once: {rule.when!r}"
                )
            for j, spec in enumerate(rule.then):
                queue = spec.escalate.queue if spec.escalate is not None else "auto"
                topic = queue.removeprefix(TOPIC_QUEUE)
                if topic != queue and topic not in TOPICS:
                    problems.append(
                        f"{where} ({rule.id}).then[{j}].escalate.queue: unknown topic "
                        f"'{topic}' in '{queue}'; topics are: {', '.join(TOPICS)}"
                    )
                elif topic == queue and queue not in (*queues, "auto"):
                    problems.append(
                        f"{where} ({rule.id}).then[{j}].escalate.queue: unknown queue "
                        f"'{queue}'; queues are: {', '.join(sorted(queues))} "
                        "(or auto, by the customer's topic; or topic:<topic>)"
                    )
                if spec.notify is not None and spec.notify.channel not in channels:
                    problems.append(
                        f"{where} ({rule.id}).then[{j}].notify.channel: unknown channel "
                        f"'{spec.notify.channel}'; channels are: {', '.join(sorted(channels))} "
                        "(declare others under channels:)"
                    )
        for queue, limit in self.queue_limits.items():
            if queue not in queues:
                problems.append(
                    f"queue_limits: unknown queue '{queue}'; "
                    f"queues are: {', '.join(sorted(queues))}"
                )
            elif limit.overflow not in queues or limit.overflow == queue:
                problems.append(
                    f"queue_limits: {queue}.overflow '{limit.overflow}' must be another known "
                    f"queue ({', '.join(sorted(queues - {queue}))})"
                )
        for k, route in enumerate(self.notifications.routes):
            if route.channel is not None and route.channel not in channels:
                problems.append(
                    f"notifications: routes[{k}].channel: unknown channel '{route.channel}'; "
                    f"channels are: {', '.join(sorted(channels))}"
                )
        for kind, names in self.delivery.items():
            for name in names:
                if name not in channels:
                    problems.append(
                        f"delivery: {kind}: unknown channel '{name}'; channels are: "
                        f"{', '.join(sorted(channels))} (declare others under channels:)"
                    )
        problems.extend(self._shadowed())
        if problems:
            raise ValueError("\n- ".join(problems))
        unused = sorted(set(self.thresholds) - used)
        if unused:
            raise ValueError(f"thresholds: {unused} defined but no rule reads them")
        return self

    def _shadowed(self) -> list[str]:
        """Rules that can never act: after a hard trigger or ``stop`` rule whose condition
        is always true, or a hard trigger whose condition repeats an earlier one's (the
        first overrides it: a conflicting override)."""
        out = []
        hard = [r for r in self.rules if r.hard]
        seen: dict[str, str] = {}
        for rule in hard:
            key = " ".join(rule.when.split())
            if key in seen:
                out.append(
                    f"rule {rule.id}: same condition as hard trigger {seen[key]}, which "
                    "overrides it; it can never act (merge them, or tell them apart)"
                )
            seen.setdefault(key, rule.id)
        ordered = hard + [r for r in self.rules if not r.hard]
        for i, rule in enumerate(ordered):
            if (rule.hard or rule.stop) and " ".join(rule.when.split()) == "True":
                later = [r.id for r in ordered[i + 1 :]]
                if later:
                    out.append(
                        f"rule {rule.id}: always true and {'hard' if rule.hard else 'stop'}, "
                        f"so these rules are unreachable: {', '.join(later)}"
                    )
                break
        return out

    @property
    def namespaces(self) -> dict[str, frozenset[str]]:
        """What conditions may read: NAMESPACES plus this policy's thresholds."""
        return {**NAMESPACES, "threshold": frozenset(self.thresholds)}

    @property
    def content_hash(self) -> str:
        """SHA-256 of the file's text ("" for a policy built in code)."""
        return self._content_hash

    @property
    def source(self) -> str:
        return self._source

    @property
    def versioned(self) -> str:
        """What decisions record: the file's version name and its content hash, so two
        edits under one name are still told apart (``default-2026.11.4+3f2a9c01be``)."""
        return f"{self.version}+{self._content_hash[:10]}" if self._content_hash else self.version

    @property
    def channels_used(self) -> frozenset[str]:
        """Every channel this policy may send to, besides log."""
        return frozenset(self.channels) - CHANNELS

    def review_share(self, rule_id: str) -> float:
        rule = next((r for r in self.all_rules if r.id == rule_id), None)
        own = rule.review if rule is not None else None
        return self.review if own is None else own

    def queue_for(self, topic: str) -> str:
        return self.queues.get(topic, self.fallback_queue)

    def resolve_queue(self, queue: str, topic: str) -> str:
        """An escalation's queue: "auto" by the customer's ``topic``, "topic:<t>" by t,
        else the queue named."""
        if queue == "auto":
            return self.queue_for(topic)
        named = queue.removeprefix(TOPIC_QUEUE)
        return self.queue_for(named) if named != queue else queue

    @property
    def all_rules(self) -> list[Rule]:
        return self.rules + (self.incident.rules if self.incident else [])

    def compiled(self, incident: bool = False) -> list[tuple[Rule, CompiledExpr]]:
        """Rules in evaluation order (hard triggers first) with their compiled conditions;
        ``incident``: the hard triggers, then the incident playbook instead of the rest."""
        hard = [r for r in self.rules if r.hard]
        if incident:
            rest = self.incident.rules if self.incident else [r for r in self.rules if not r.hard]
        else:
            rest = [r for r in self.rules if not r.hard]
        namespaces, fixed = self.namespaces, {"threshold": self.thresholds}
        return [(r, compile_expr(r.when, namespaces, fixed)) for r in hard + rest]


# The source name of the shipped default (not a path: a user's own default.yaml is a file).
BUILTIN = "<shipped default.yaml>"


class PolicyError(ValueError):
    """A policy file that cannot load, with every problem found."""


_PLACE = re.compile(
    r"^(?P<incident>incident\.)?rules\[(?P<i>\d+)\](?: \([^)]*\))?"
    r"(?:\.(?P<field>when|then|cooldown|id)(?:\[(?P<j>\d+)\]|\.(?P<k>\d+))?)?"
    r"|^rule (?P<rid>[a-z][a-z0-9_]*):|^(?P<top>[a-z_]+)[.:]"
)


def _node_at(node: yaml.Node | None, path: list[str | int]) -> yaml.Node | None:
    """The YAML node at ``path`` (mapping keys and sequence indexes), as deep as it goes."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            found = node.value[part] if part < len(node.value) else None
        else:
            found = None
        if found is None:
            return node
        node = found
    return node


def _yaml_path(line: str, data: Any) -> list[str | int]:
    m = _PLACE.match(line)
    if m is None:
        return []
    if m["rid"]:
        rules = data.get("rules") if isinstance(data, dict) else None
        for i, r in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(r, dict) and r.get("id") == m["rid"]:
                return ["rules", i, "when"]
        return ["rules"]
    if m["top"]:
        return [m["top"]]
    path: list[str | int] = ["incident", "rules"] if m["incident"] else ["rules"]
    path.append(int(m["i"]))
    if m["field"]:
        path.append(m["field"])
        sub = m["j"] or m["k"]
        if sub is not None:
            path.append(int(sub))
    return path


def _describe(exc: ValidationError, data: Any, root: yaml.Node | None, name: str) -> str:
    """Every problem on its own line, as ``file:line:column: where: why``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        where = []
        for i, part in enumerate(loc):
            if part == "rules" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
                idx = int(loc[i + 1])
                rules = data.get("rules") if isinstance(data, dict) else None
                rid = (
                    rules[idx].get("id")
                    if isinstance(rules, list) and idx < len(rules) and isinstance(rules[idx], dict)
                    else None
                )
                where.append(f"rules[{idx}]" + (f" ({rid})" if rid else ""))
            elif isinstance(part, int) and i > 0 and loc[i - 1] == "rules":
                continue
            else:
                where.append(str(part))
        msg = err["msg"].removeprefix("Value error, ")
        # A policy-level check reports several problems, each naming its place.
        for problem in msg.split("\n- ") if not loc else [msg]:
            head = ".".join(where) if loc else problem
            path = (
                [p for p in loc if isinstance(p, str | int)] if loc else _yaml_path(problem, data)
            )
            node = _node_at(root, path) if path else None
            place = (
                f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: "
                if node is not None
                else ""
            )
            lines.append(f"- {place}{head}: {msg}" if loc else f"- {place}{problem}")
    return "\n".join(lines)


def load_policy(source: str | Path | None = None) -> Policy:
    """Load and validate a policy file (the shipped default when ``source`` is None)."""
    if source is None:
        text = resources.files("tactful.policy").joinpath("default.yaml").read_text("utf-8")
        name = BUILTIN
    else:
        path = Path(source)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
        name = str(path)
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{name}: not valid YAML: {exc}") from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{name} has errors:\n{_describe(exc, data, root, name)}") from None
    except ExprError as exc:  # pragma: no cover - pydantic wraps ValueErrors
        raise PolicyError(f"{name}: {exc}") from None
    policy._content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    policy._source = name
    return policy

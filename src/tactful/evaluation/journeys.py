"""Gold journeys: scripted customers with the decision expected at each step.

A journey file (YAML, see examples/journeys/README.md) is a named sequence of events,
each optionally with an ``expect`` block: the rules that decide on it (exact set), the
decision kinds (exact set), the queue and priority of its escalation, notify targets,
hold categories, signals that must fire, bounds on the customer's state after it, or
``nothing`` (no decision at all). :func:`run_journey` replays a journey through the real
:class:`~tactful.runtime.engine.Engine` (a fresh SQLite store in a temporary directory,
the shipped default policy unless another is given, the learned text scorer as
``tactful demo`` uses it) one event at a time, and compares. :func:`format_diff` renders
what differed, step by step, with each decision's explanation.

A step marked ``xfail: "why"`` is a known gap: what a support lead wants, which the
engine does not decide yet. It is reported, not counted as a failure; when it starts to
pass the journey reports that too (``xpassed``), so the mark is removed.

Loading never touches the engine: :func:`load_journey` validates the whole file (each
event through :func:`tactful.events.parse_event`) and raises :class:`JourneyError`
naming the file, the step, the field, the value and why.
"""

from __future__ import annotations

import functools
import operator
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from tactful.events import EventError, parse_event
from tactful.policy import PolicyEngine, load_policy
from tactful.policy.engine import Decision, build_context
from tactful.policy.model import DECISION_KINDS, KNOWN_SIGNALS, NAMESPACES
from tactful.runtime.engine import Engine, TextBatchScorer
from tactful.runtime.pipeline import Processed
from tactful.state.store import SQLiteStore

__all__ = [
    "DEFAULT_START",
    "Bound",
    "Expectation",
    "Journey",
    "JourneyError",
    "JourneyResult",
    "Step",
    "StepResult",
    "format_diff",
    "journey_files",
    "load_journey",
    "run_journey",
    "run_journeys",
    "summarize",
]

# When a journey gives no `start`: offsets ("+30s") count from here.
DEFAULT_START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
# Keys of a step that are not the event's own fields.
STEP_KEYS = frozenset({"at", "expect", "xfail", "note"})
JOURNEY_KEYS = frozenset(
    {"name", "description", "start", "customer_id", "account_id", "setup", "steps"}
)
EXPECT_KEYS = frozenset(
    {"rules", "kinds", "queue", "priority", "notify", "hold", "signals", "state"}
)
SETUP_KEYS = frozenset({"incident"})
TextScorerName = Literal["learned", "lexical"]

_OFFSET = re.compile(r"^\+(?:\d+(?:\.\d+)?[dhms])+$")
_OFFSET_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BOUND = re.compile(r"^(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


class JourneyError(ValueError):
    """A journey file that cannot be run: where (file, step, field), the value, and why."""

    def __init__(
        self, path: Path | str, why: str, step: int | None = None, fld: str = "", value: Any = None
    ) -> None:
        self.path, self.step, self.field, self.value, self.why = str(path), step, fld, value, why
        where = self.path if step is None else f"{self.path}: step {step}"
        shown = "" if value is None else f"={_short(value)}"
        what = f"{fld}{shown}: " if fld else ""
        super().__init__(f"{where}: {what}{why}")


def _short(value: Any, width: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


@dataclass(frozen=True, slots=True)
class Bound:
    """A check on one state field after the step: ``frustration >= 0.5``, ``topic == billing``."""

    name: str
    op: str
    value: float | str

    def holds(self, actual: Any) -> bool:
        if isinstance(self.value, str):
            same = actual == self.value
            return same if self.op == "==" else not same
        if not isinstance(actual, int | float):
            return False
        return _OPS[self.op](float(actual), self.value)

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value}"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What one step must decide. ``None`` fields are not checked; ``nothing``: no decision."""

    nothing: bool = False
    rules: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    queue: str | None = None
    priority: str | None = None
    notify: frozenset[str] | None = None
    hold: frozenset[str] | None = None
    signals: frozenset[str] | None = None
    state: tuple[Bound, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    index: int  # 1-based, as a person counts the steps in the file
    raw: dict[str, Any]  # the event as the engine receives it
    offset: timedelta
    expect: Expectation | None
    xfail: str | None = None
    note: str | None = None

    def label(self) -> str:
        secs = int(self.offset.total_seconds())
        raw = self.raw
        what = raw.get("text") or raw.get("query") or raw.get("path") or raw.get("step_id")
        what = what or raw.get("element") or raw.get("endpoint") or raw.get("ticket_id") or ""
        shown = f" {_short(what, 60)}" if what else ""
        return f"step {self.index} (+{_offset_text(secs)} {raw['type']}{shown})"


def _offset_text(secs: int) -> str:
    """3d2h15m, 4h0m20s -> 4h20s: the compound form offsets are written in."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class Journey:
    path: Path
    name: str
    description: str
    start: datetime
    steps: tuple[Step, ...]
    incident: str | None = None  # incident mode on from the start, with this reason

    @property
    def checked(self) -> int:
        return sum(1 for s in self.steps if s.expect is not None)


@dataclass(slots=True)
class StepResult:
    step: Step
    status: Literal["passed", "failed", "xfailed", "xpassed", "unchecked"]
    problems: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class JourneyResult:
    journey: Journey
    steps: list[StepResult]

    @property
    def name(self) -> str:
        return self.journey.name

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "failed"]

    @property
    def xfailed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "xfailed"]

    @property
    def xpassed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "xpassed"]

    @property
    def passed(self) -> bool:
        """No step decided other than expected (known gaps aside) and no gap was closed
        without its ``xfail`` mark being removed."""
        return not self.failed and not self.xpassed

    @property
    def checked(self) -> int:
        return sum(1 for s in self.steps if s.status != "unchecked")


# --- loading ----------------------------------------------------------------------------


def journey_files(directory: Path | str) -> list[Path]:
    """The journey files in ``directory`` (``*.yaml`` and ``*.yml``), sorted by name."""
    root = Path(directory)
    return sorted([*root.glob("*.yaml"), *root.glob("*.yml")])


def _when(path: Path, value: Any, start: datetime, step: int) -> tuple[str, timedelta]:
    if isinstance(value, str):
        text = value.replace(" ", "")
        if _OFFSET.match(text):
            secs = sum(float(n) * _UNITS[u] for n, u in _OFFSET_PART.findall(text))
            offset = timedelta(seconds=secs)
            return (start + offset).isoformat(), offset
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if at.tzinfo is not None:
                return at.isoformat(), at - start
    why = "an offset from the journey's start such as '+30s', '+5m', '+2h30m', '+3d', or an "
    raise JourneyError(path, why + "ISO time with a timezone", step, "at", value)


def _names(path: Path, step: int, name: str, value: Any, known: Iterable[str]) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise JourneyError(path, "must be a name or a list of names", step, name, value)
    allowed = frozenset(known)
    if allowed:
        unknown = sorted(set(items) - allowed)
        if unknown:
            why = f"unknown {unknown}; expected some of: {', '.join(sorted(allowed))}"
            raise JourneyError(path, why, step, name, value)
    return frozenset(items)


def _bounds(path: Path, step: int, value: Any) -> tuple[Bound, ...]:
    if not isinstance(value, dict):
        why = "must map state fields to bounds, e.g. {frustration: '>= 0.5', topic: billing}"
        raise JourneyError(path, why, step, "expect.state", value)
    bounds = []
    for name, spec in value.items():
        where = f"expect.state.{name}"
        if name not in NAMESPACES["state"]:
            why = f"not a state field; expected one of: {', '.join(sorted(NAMESPACES['state']))}"
            raise JourneyError(path, why, step, where, name)
        if isinstance(spec, bool):
            raise JourneyError(path, "must be a bound such as '>= 0.5'", step, where, spec)
        if isinstance(spec, int | float):
            bounds.append(Bound(name, "==", float(spec)))
            continue
        if not isinstance(spec, str):
            raise JourneyError(path, "must be a bound such as '>= 0.5'", step, where, spec)
        found = _BOUND.match(spec.strip())
        if found:
            bounds.append(Bound(name, found.group(1), float(found.group(2))))
        elif re.match(r"^[A-Za-z_][\w-]*$", spec.strip()):
            bounds.append(Bound(name, "==", spec.strip()))  # a name: topic: billing
        else:
            why = "must be a comparison (>=, <=, >, <, ==, !=) with a number, or a name"
            raise JourneyError(path, why, step, where, spec)
    return tuple(bounds)


def _expectation(path: Path, step: int, value: Any, rule_ids: frozenset[str]) -> Expectation:
    if value == "nothing":
        return Expectation(nothing=True)
    if not isinstance(value, dict):
        why = "must be 'nothing' or a mapping with some of: " + ", ".join(sorted(EXPECT_KEYS))
        raise JourneyError(path, why, step, "expect", value)
    unknown = sorted(set(value) - EXPECT_KEYS)
    if unknown:
        why = "unknown key; expected some of: " + ", ".join(sorted(EXPECT_KEYS))
        raise JourneyError(path, why, step, f"expect.{unknown[0]}", value[unknown[0]])
    if not value:
        raise JourneyError(path, "is empty; write 'nothing' for no decision", step, "expect")

    def names(key: str, known: Iterable[str] = ()) -> frozenset[str] | None:
        return _names(path, step, f"expect.{key}", value[key], known) if key in value else None

    def one(key: str) -> str | None:
        got = value.get(key)
        if got is not None and not isinstance(got, str):
            raise JourneyError(path, "must be a name", step, f"expect.{key}", got)
        return got

    return Expectation(
        rules=names("rules", rule_ids),
        kinds=names("kinds", DECISION_KINDS),
        queue=one("queue"),
        priority=one("priority"),
        notify=names("notify"),
        hold=names("hold"),
        signals=names("signals", KNOWN_SIGNALS),
        state=_bounds(path, step, value["state"]) if "state" in value else (),
    )


def _rule_ids(policy: PolicyEngine) -> frozenset[str]:
    rules = [*policy.policy.rules]
    if policy.policy.incident is not None:
        rules.extend(policy.policy.incident.rules)
    return frozenset(r.id for r in rules)


def load_journey(path: Path | str, policy: PolicyEngine | None = None) -> Journey:
    """Read and validate one journey file; :class:`JourneyError` says what is wrong and
    where. Rule ids in ``expect.rules`` are checked against ``policy`` (the default)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise JourneyError(path, f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise JourneyError(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise JourneyError(path, "must be a YAML mapping with name, description and steps")
    unknown = sorted(set(data) - JOURNEY_KEYS)
    if unknown:
        why = "unknown key; expected some of: " + ", ".join(sorted(JOURNEY_KEYS))
        raise JourneyError(path, why, None, unknown[0], data[unknown[0]])
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise JourneyError(path, "missing or not text", None, key, data.get(key))
    start = DEFAULT_START
    if "start" in data:
        stamp, _ = _when(path, data["start"], DEFAULT_START, 0)
        start = datetime.fromisoformat(stamp)
    incident = _setup(path, data.get("setup"))
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise JourneyError(path, "must be a non-empty list of steps", None, "steps", steps_raw)
    rule_ids = _rule_ids(policy or _default_policy())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", data["name"]).strip("-") or "journey"
    steps = []
    for i, item in enumerate(steps_raw, start=1):
        if not isinstance(item, dict):
            raise JourneyError(path, "must be a mapping (an event and its expect)", i, "", item)
        event = {k: v for k, v in item.items() if k not in STEP_KEYS}
        event.setdefault("event_id", f"{slug}-{i}")
        for key in ("customer_id", "account_id"):
            if key in data and key not in event:
                event[key] = data[key]
        if "at" not in item:
            raise JourneyError(path, "missing; e.g. '+30s' from the journey's start", i, "at")
        event["timestamp"], offset = _when(path, item["at"], start, i)
        try:
            parse_event(event)
        except EventError as exc:
            p = exc.problems[0]
            more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
            raise JourneyError(path, p.why + more, i, p.field, p.value) from None
        xfail = item.get("xfail")
        if xfail is not None and (not isinstance(xfail, str) or not xfail.strip()):
            raise JourneyError(path, "must be the reason, as text", i, "xfail", xfail)
        expect = _expectation(path, i, item["expect"], rule_ids) if "expect" in item else None
        if xfail is not None and expect is None:
            raise JourneyError(path, "a step marked xfail needs an expect block", i, "xfail")
        note = item.get("note")
        steps.append(Step(i, event, offset, expect, xfail, str(note) if note else None))
    return Journey(path, data["name"], data["description"].strip(), start, tuple(steps), incident)


def _setup(path: Path, setup: Any) -> str | None:
    if setup is None:
        return None
    if not isinstance(setup, dict):
        raise JourneyError(path, "must be a mapping, e.g. {incident: 'EU outage'}", None, "setup")
    unknown = sorted(set(setup) - SETUP_KEYS)
    if unknown:
        why = "unknown key; expected some of: " + ", ".join(sorted(SETUP_KEYS))
        raise JourneyError(path, why, None, f"setup.{unknown[0]}", setup[unknown[0]])
    incident = setup.get("incident")
    if incident is None or incident is False:
        return None
    if not isinstance(incident, str) or not incident.strip():
        why = "must be the incident's reason, as text (incident mode is on from the start)"
        raise JourneyError(path, why, None, "setup.incident", incident)
    return incident


# --- running ----------------------------------------------------------------------------


@functools.cache
def _default_policy() -> PolicyEngine:
    """The shipped default policy, compiled once (it is immutable)."""
    return PolicyEngine(load_policy())


def _scorer(name: TextScorerName) -> TextBatchScorer | None:
    if name == "lexical":
        return None  # the engine's own lexical tier
    from tactful.detect.learned import load_scorer

    return load_scorer()  # what `tactful demo` uses by default (cached)


def run_journey(
    path: Path | str | Journey,
    policy: PolicyEngine | Path | str | None = None,
    text_scorer: TextScorerName = "learned",
) -> JourneyResult:
    """Replay one journey through a fresh engine and compare each checked step.

    ``policy``: a compiled policy or a policy file (the shipped default when None);
    ``text_scorer``: "learned" (``tactful demo``'s default) or "lexical". Raises
    :class:`JourneyError` for a journey that cannot be loaded or an event the engine
    refuses, and :class:`~tactful.policy.PolicyError` for a policy file that does not load."""
    if policy is None:
        compiled = _default_policy()
    elif isinstance(policy, PolicyEngine):
        compiled = policy
    else:
        compiled = PolicyEngine(load_policy(policy))
    journey = path if isinstance(path, Journey) else load_journey(path, compiled)
    last = max(datetime.fromisoformat(s.raw["timestamp"]) for s in journey.steps)
    clock_at = max(last, journey.start) + timedelta(minutes=1)
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="tactful-journey-") as tmp:
        store = SQLiteStore(Path(tmp) / "journey.db")
        try:
            engine = Engine(
                store, compiled, clock=lambda: clock_at, text_scorer=_scorer(text_scorer)
            )
            if journey.incident is not None:
                engine.set_incident(True, by="journey", reason=journey.incident)
            for step in journey.steps:
                got = engine.ingest([dict(step.raw)], source=f"journey:{journey.path.name}")[0]
                if got.status != "accepted" or got.processed is None:
                    why = f"the engine did not accept it ({got.status}: {got.errors})"
                    raise JourneyError(journey.path, why, step.index, "event_id", got.event_id)
                results.append(_compare(step, got.processed, engine))
        finally:
            store.close()
    return JourneyResult(journey, results)


def run_journeys(
    directory: Path | str,
    policy: PolicyEngine | Path | str | None = None,
    text_scorer: TextScorerName = "learned",
) -> list[JourneyResult]:
    """Every journey in ``directory``, in file-name order (for ``tactful eval journeys``)."""
    return [run_journey(p, policy, text_scorer) for p in journey_files(directory)]


def _state_values(p: Processed, engine: Engine, names: Iterable[str]) -> dict[str, Any]:
    at = p.event.timestamp
    view = build_context(p.event, p.state, p.signals, at, p.account, engine.memory.trend)["state"]
    out: dict[str, Any] = {}
    for name in names:
        value = view[name]
        out[name] = round(value, 3) if isinstance(value, float) else value
    return out


def _fmt(items: Iterable[str] | None) -> str:
    return "[" + ", ".join(sorted(items or ())) + "]"


def _compare(step: Step, p: Processed, engine: Engine) -> StepResult:
    decisions = list(p.decisions)
    signals = sorted({s.name for s in p.signals})
    exp = step.expect
    bounds = exp.state if exp is not None else ()
    state = _state_values(p, engine, [b.name for b in bounds])
    if exp is None:
        return StepResult(step, "unchecked", [], decisions, signals, state)
    problems: list[str] = []
    rules = {d.rule_id for d in decisions}
    kinds = {d.kind for d in decisions}
    escalations = [d for d in decisions if d.kind == "escalate"]
    if exp.nothing and decisions:
        problems.append(f"decisions: expected nothing, got rules {_fmt(rules)} kinds {_fmt(kinds)}")
    if exp.rules is not None and exp.rules != rules:
        problems.append(f"rules: expected {_fmt(exp.rules)}, got {_fmt(rules)}")
    if exp.kinds is not None and exp.kinds != kinds:
        problems.append(f"kinds: expected {_fmt(exp.kinds)}, got {_fmt(kinds)}")
    for key in ("queue", "priority"):
        wanted = getattr(exp, key)
        if wanted is None:
            continue
        got = sorted({str(d.params.get(key)) for d in escalations})
        if got != [wanted]:
            shown = ", ".join(got) if got else "no escalation"
            problems.append(f"{key}: expected {wanted}, got {shown}")
    if exp.notify is not None:
        targets = {str(d.params.get("target")) for d in decisions if d.kind == "notify"}
        if targets != exp.notify:
            problems.append(f"notify: expected {_fmt(exp.notify)}, got {_fmt(targets)}")
    if exp.hold is not None:
        held = {str(c) for d in decisions if d.kind == "hold" for c in d.params["categories"]}
        if held != exp.hold:
            problems.append(f"hold: expected {_fmt(exp.hold)}, got {_fmt(held)}")
    if exp.signals is not None and not exp.signals <= set(signals):
        missing = exp.signals - set(signals)
        problems.append(
            f"signals: expected {_fmt(exp.signals)} among them, got {_fmt(signals)} "
            f"(missing {_fmt(missing)})"
        )
    for bound in bounds:
        if not bound.holds(state[bound.name]):
            problems.append(f"state: expected {bound}, got {bound.name} = {state[bound.name]}")
    if step.xfail is not None:
        status: Literal["passed", "failed", "xfailed", "xpassed"] = (
            "xfailed" if problems else "xpassed"
        )
    else:
        status = "failed" if problems else "passed"
    return StepResult(step, status, problems, decisions, signals, state)


# --- reporting --------------------------------------------------------------------------


def _decision_lines(d: Decision) -> list[str]:
    params = {k: v for k, v in d.params.items() if k in ("queue", "priority", "target")}
    if d.kind == "hold":
        params["categories"] = d.params.get("categories")
    shown = " ".join(f"{k}={v}" for k, v in params.items())
    lines = [f"      - {d.kind} by {d.rule_id}{' ' + shown if shown else ''}"]
    lines.extend(f"          {r}" for r in d.reasons[:3])
    lines.extend(f"          lost: {r}" for r in d.lost[:3])
    return lines


def _step_lines(r: StepResult, header: str) -> list[str]:
    lines = [f"  {header} {r.step.label()}"]
    if r.step.xfail:
        lines.append(f"    known gap: {r.step.xfail}")
    lines.extend(f"    {p}" for p in r.problems)
    lines.append(f"    signals: {_fmt(r.signals)}")
    if r.decisions:
        lines.append("    decisions (got):")
        for d in r.decisions:
            lines.extend(_decision_lines(d))
    else:
        lines.append("    decisions (got): none")
    return lines


def format_diff(result: JourneyResult, verbose: bool = False) -> str:
    """What a person reads: the journey's verdict, then each failing step (expected vs got,
    and the decisions with their reasons); known gaps and closed gaps follow. ``verbose``
    lists the passing steps too."""
    j = result.journey
    failed, xfailed, xpassed = result.failed, result.xfailed, result.xpassed
    verdict = "passed" if result.passed else "FAILED"
    extra = []
    if failed:
        extra.append(f"{len(failed)} failed")
    if xfailed:
        extra.append(f"{len(xfailed)} known gap{'s' if len(xfailed) > 1 else ''}")
    if xpassed:
        extra.append(f"{len(xpassed)} known gap now passing: remove its xfail")
    tail = f" ({', '.join(extra)})" if extra else ""
    lines = [f"journey {j.name} ({j.path}): {verdict}, {result.checked} checked steps{tail}"]
    for r in result.steps:
        if r.status == "failed":
            lines.extend(_step_lines(r, "FAIL"))
        elif r.status == "xpassed":
            lines.extend(_step_lines(r, "XPASS (remove the xfail mark)"))
        elif r.status == "xfailed":
            lines.extend(_step_lines(r, "known gap"))
        elif verbose:
            lines.extend(_step_lines(r, r.status))
    return "\n".join(lines)


def summarize(results: Sequence[JourneyResult]) -> Mapping[str, int]:
    """Totals over journeys: journeys, passed, checked steps, failed, known gaps, xpassed."""
    return {
        "journeys": len(results),
        "passed": sum(1 for r in results if r.passed),
        "checked_steps": sum(r.checked for r in results),
        "failed_steps": sum(len(r.failed) for r in results),
        "known_gaps": sum(len(r.xfailed) for r in results),
        "xpassed": sum(len(r.xpassed) for r in results),
    }

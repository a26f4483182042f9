"""Observability (docs/observability.md): OpenTelemetry spans through the real engine and
dispatcher, JSON log lines from a real `tactful serve --log-format json`, and the metrics
table checked against what the code registers."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tactful.actions.channels import ChannelError, LogChannel
from tactful.actions.dispatch import Dispatcher
from tactful.api.app import create_app
from tactful.runtime import logs, tracing
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore
from tactful.state.store.base import OutboxRow

from .serving import Launch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "observability.md"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
SECRET = "my card was charged twice and nobody answers"  # must never reach a span
HUMAN = "Let me talk to a human, " + SECRET


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable("tactful-test", exporter, batch=False)
    yield exporter
    tracing.disable()


@pytest.fixture
def engine(tmp_path: Path, policy: Any) -> Iterator[Engine]:
    store = SQLiteStore(tmp_path / "o.db")
    yield Engine(store, policy, clock=lambda: NOW)
    store.close()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in exporter.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def every_value(s: ReadableSpan) -> Iterator[str]:
    """Every attribute value of a span and of its span events, as text."""
    for attrs in [s.attributes or {}, *[e.attributes or {} for e in s.events]]:
        for value in attrs.values():
            yield from (map(str, value) if isinstance(value, tuple | list) else [str(value)])


def test_a_batch_through_the_engine_and_dispatcher_is_traced(
    spans: InMemorySpanExporter, engine: Engine, make_event: Any, tmp_path: Path
) -> None:
    human = make_event(text=HUMAN, customer_id="ana@example.com", at="2026-10-01T10:00:00Z")
    calm = make_event(text=SECRET, customer_id="ben", at="2026-10-01T10:01:00Z")
    bad = {"type": "message", "event_id": "bad-1", "text": SECRET}
    results = engine.ingest([human, calm, bad], source="test")
    assert [r.status for r in results] == ["accepted", "accepted", "rejected"]
    sent = Dispatcher(engine.store, {"log": LogChannel(tmp_path / "a.jsonl")}, clock=lambda: NOW)
    n = sent.drain()

    found = by_name(spans)
    (ingest,) = found["tactful.ingest"]
    (detect,) = found["tactful.detect"]
    (decide,) = found["tactful.decide"]
    (commit,) = found["tactful.commit"]
    assert ingest.attributes is not None
    assert ingest.attributes["tactful.batch.size"] == 3
    assert ingest.attributes["tactful.batch.source"] == ("test",)
    for child in (detect, decide, commit):  # one trace, under the batch's span
        assert child.parent is not None and child.parent.span_id == ingest.context.span_id
    assert detect.attributes == {"tactful.batch.events": 2}
    assert commit.attributes == {"tactful.batch.quarantined": 1}
    assert decide.attributes is not None
    assert decide.attributes["tactful.batch.events"] == 2
    events = {e.attributes["tactful.event.id"]: e.attributes for e in decide.events if e.attributes}
    assert set(events) == {human["event_id"], calm["event_id"]}
    first = events[human["event_id"]]
    assert first["tactful.event.type"] == "message"
    assert first["tactful.customer.hash"] == tracing.customer_hash("ana@example.com")
    kinds, rules = first["tactful.decision.kinds"], first["tactful.decision.rules"]
    assert isinstance(kinds, tuple) and "escalate" in kinds
    assert isinstance(rules, tuple) and "human_requested" in rules
    escalation = results[0].processed.decisions  # type: ignore[union-attr]
    assert tuple(d.decision_id for d in escalation) == first["tactful.decision.ids"]

    delivered = found["tactful.dispatch"]
    assert len(delivered) == n >= 2  # the handoff, the hold ...
    for s in delivered:
        assert s.parent is None  # delivery is its own trace, joined by the action id
        assert s.attributes is not None
        assert s.attributes["tactful.channel"] == "log"
        assert s.attributes["tactful.outcome"] == "delivered"
        assert s.attributes["tactful.action.attempt"] == 1
    sent_kinds = {str(s.attributes["tactful.action.kind"]) for s in delivered if s.attributes}
    assert {"handoff.created", "hold.started"} <= sent_kinds

    # Privacy: no span or span event carries the customer's words or raw customer id.
    for s in spans.get_finished_spans():
        for value in every_value(s):
            assert SECRET not in value and "charged" not in value
            assert "ana@example.com" not in value


class Refusing:
    name = "refusing"
    concurrency = 1

    def deliver(self, action: OutboxRow) -> None:
        raise ChannelError("receiver said 400", permanent=True)


def test_a_refused_delivery_is_an_error_span(
    spans: InMemorySpanExporter, engine: Engine, make_event: Any
) -> None:
    engine.ingest([make_event(text=HUMAN)])
    Dispatcher(engine.store, {"log": Refusing()}, clock=lambda: NOW).run_once()
    refused = by_name(spans)["tactful.dispatch"]
    assert refused and all(
        s.attributes is not None and s.attributes["tactful.outcome"] == "refused" for s in refused
    )
    assert all(not s.status.is_ok for s in refused)
    assert all(e.name == "exception" for s in refused for e in s.events)


def test_off_no_spans_and_the_shared_noop(engine: Engine, make_event: Any) -> None:
    exporter = InMemorySpanExporter()
    tracing.enable("t", exporter, batch=False)
    tracing.disable()
    assert not tracing.enabled()
    assert tracing.span("tactful.ingest") is tracing.NOOP
    assert tracing.start("tactful.decide") is tracing.NOOP
    engine.ingest([make_event(text=HUMAN)])
    assert exporter.get_finished_spans() == ()


def test_off_the_engine_allocates_nothing_per_event_for_tracing(
    engine: Engine, make_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off, the per-batch spans are the shared no-op, and decided() returns at once."""
    calls: list[str] = []
    original = tracing.decided

    def spy(decide: Any, batch: Any) -> None:
        calls.append("decided")
        assert decide is tracing.NOOP
        original(decide, batch)

    monkeypatch.setattr(tracing, "decided", spy)
    engine.ingest([make_event(text=HUMAN), make_event(text="hi", customer_id="c2")])
    assert calls == ["decided"]  # once per batch, not per event


def test_trace_without_the_extra_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(tracing.TracingUnavailable, match=r"tactful\[otel\]"):
        tracing.enable()
    assert not tracing.enabled()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_serve_writes_json_log_lines_with_the_ids(tmp_path: Path, launch: Launch) -> None:
    actions_log = tmp_path / "actions.jsonl"
    server = launch(tmp_path / "j.db", actions_log, "--log-format", "json")
    event = {
        "event_id": "ev-json-1",
        "type": "message",
        "customer_id": "ana",
        "timestamp": "2026-10-01T10:00:00Z",
        "text": HUMAN,
    }
    bad = {"event_id": "ev-bad-1", "type": "message", "text": SECRET}
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        r = http.post("/v1/events", json=[event, bad])
        assert r.status_code == 202, r.text

    def delivered() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(server.output.read_text())
            if line["msg"].startswith("action delivered")
        ]

    deadline = time.monotonic() + 10
    while len(delivered()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    lines = json_lines(server.output.read_text())
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line)
        assert datetime.fromisoformat(line["ts"]).tzinfo is not None
        assert SECRET not in json.dumps(line)

    (quarantined,) = [x for x in lines if x["msg"].startswith("event quarantined")]
    assert quarantined["level"] == "warning" and quarantined["logger"] == "tactful.engine"
    assert quarantined["event_id"] == "ev-bad-1"
    assert "customer_id" in quarantined["msg"]

    (escalated,) = [x for x in lines if x["msg"].startswith("decision escalated")]
    assert escalated["event_id"] == "ev-json-1"
    assert escalated["customer_id"] == "ana"
    assert escalated["decision_id"].startswith("ev-json-1/")
    assert escalated["rule_id"] == "human_requested" and escalated["queue"]

    sent = [x for x in lines if x["msg"].startswith("action delivered")]
    assert len(sent) == 2
    assert {x["customer_id"] for x in sent} == {"ana"}
    assert all(x["action_id"] and x["channel"] == "log" for x in sent)


def test_json_formatter_carries_extras_and_exceptions() -> None:
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("tactful.x", logging.ERROR, __file__, 1, "hi %s", ("there",), None)
    record.action_id = "a-1"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(formatter.format(record))
    assert line["msg"] == "hi there" and line["level"] == "error"
    assert line["action_id"] == "a-1"
    assert "ValueError: boom" in line["exc"]


def test_worker_messages_keep_their_ids(caplog: pytest.LogCaptureFixture) -> None:
    message = logs.Noted("took partition 3 (1 of target 2)", partition=3)
    assert message == "took partition 3 (1 of target 2)"  # still the plain string
    with caplog.at_level(logging.INFO, logger="tactful.worker"):
        logs.noted(logging.getLogger("tactful.worker"), message)
        logs.noted(logging.getLogger("tactful.worker"), "plain")
    first, second = caplog.records
    assert first.getMessage() == message and first.partition == 3  # type: ignore[attr-defined]
    assert second.getMessage() == "plain"


ROW = re.compile(r"^\| `(?P<name>tactful_\w+)` \| (?P<type>\w+) \| (?P<labels>[^|]*) \|")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            labels = tuple(
                x.strip(" `") for x in m["labels"].split(",") if x.strip(" `") not in ("", "-")
            )
            assert m["name"] not in out, f"{m['name']} twice in the table"
            out[m["name"]] = (m["type"], labels)
    return out


def test_the_metrics_table_lists_exactly_what_the_code_registers(engine: Engine) -> None:
    create_app(engine)  # the API's collectors: outcomes, drift, Segment's unmapped events
    registry = engine.metrics.registry
    code: dict[str, tuple[str, tuple[str, ...]]] = {}
    for collector in list(registry._collector_to_names):
        if hasattr(collector, "_labelnames") and hasattr(collector, "_name"):  # Counter ...
            (family,) = collector.collect()
            labels = tuple(collector._labelnames)
            name = family.name + ("_total" if family.type == "counter" else "")
            code[name] = (family.type, labels)
        else:  # a custom collector's families
            for family in collector.collect():
                code[family.name] = (family.type, tuple(getattr(family, "_labelnames", ())))
    assert len(code) > 15
    assert documented() == code

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tactful.events import Event, parse_event
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.pipeline import Processed, process
from tactful.state.customer import CustomerState
from tactful.state.store import SQLiteStore

from .serving import Launch, launcher

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "examples" / "two_customers.jsonl"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store in the test's temporary directory, closed afterwards."""
    s = SQLiteStore(tmp_path / "t.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def policy() -> PolicyEngine:
    return PolicyEngine(load_policy())


@pytest.fixture
def scenario_lines() -> list[str]:
    return [line for line in SCENARIO.read_text().splitlines() if line.strip()]


EventFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def make_event() -> EventFactory:
    counter = iter(range(1_000_000))

    def make(
        type: str = "message",
        customer_id: str = "c1",
        at: str = "2026-10-01T10:00:00Z",
        **fields: Any,
    ) -> dict[str, Any]:
        if type == "message":
            fields.setdefault("text", "hello")
        return {
            "event_id": fields.pop("event_id", f"e-{next(counter)}"),
            "type": type,
            "customer_id": customer_id,
            "timestamp": at,
            **fields,
        }

    return make


@pytest.fixture
def scenario_events(scenario_lines) -> list[Event]:
    """The scenario's valid events, in order (its deliberately malformed line left out)."""
    return [parse_event(raw) for raw in map(json.loads, scenario_lines) if "customer_id" in raw]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def dumps(events: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(e) for e in events]


def process_all(policy: PolicyEngine, raws: list[dict[str, Any]]) -> list[Processed]:
    """Raw events of one customer through the pure core in turn, each on the state the
    previous one left, at its own event time."""
    state = CustomerState(customer_id="c1")
    results = []
    for raw in raws:
        event = parse_event(raw)
        result = process(event, state, policy, event.timestamp)
        state = result.state
        results.append(result)
    return results


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start `tactful serve` processes (see tests/serving.py); all stopped at the end."""
    yield from launcher(tmp_path)

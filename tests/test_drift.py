"""Drift: the detectors' score distributions and signal rates against a reference window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tactful.api.app import create_app
from tactful.learn.drift import MIN_EVENTS, SHIFTED, compare, psi
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=200))
def test_a_sample_against_itself_is_stable(values):
    assert abs(psi(values, values)) < 1e-9


def test_psi_reads_shifts():
    rng = random.Random(7)
    calm = [rng.betavariate(1, 8) for _ in range(2_000)]
    same = [rng.betavariate(1, 8) for _ in range(2_000)]
    angry = [rng.betavariate(6, 2) for _ in range(2_000)]
    assert psi(calm, same) < 0.1
    assert psi(calm, angry) > SHIFTED


def rows(n: int, strength: float) -> list[tuple[str, list[dict[str, float | str]]]]:
    signals: list[dict[str, float | str]] = (
        [{"name": "frustration", "strength": strength}] if strength else []
    )
    return [("message", signals) for _ in range(n)]


def test_too_little_data_flags_nothing():
    report = compare(rows(50, 0.0), rows(50, 0.9))
    assert report["enough_data"] is False and report["flagged"] == []
    big = compare(rows(MIN_EVENTS, 0.0), rows(MIN_EVENTS, 0.9))
    assert big["enough_data"] is True
    assert "frustration" in big["flagged"] and "signal:frustration" in big["flagged"]
    assert big["scores"]["frustration"]["level"] == "drifted"
    assert big["scores"]["gratitude"]["level"] == "stable"


def test_the_api_and_metrics_flag_a_day_that_turned_angry(store):
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    calm = [
        {
            "event_id": f"r{i}",
            "type": "message",
            "customer_id": f"c{i % 50}",
            "timestamp": (NOW - timedelta(days=5) + timedelta(minutes=i)).isoformat(),
            "text": "Thanks! Where do I find the export button?",
        }
        for i in range(300)
    ]
    angry = [
        {
            "event_id": f"a{i}",
            "type": "message",
            "customer_id": f"d{i % 50}",
            "timestamp": (NOW - timedelta(hours=6) + timedelta(seconds=30 * i)).isoformat(),
            "text": "This is broken AGAIN!! Third time, ridiculous.",
        }
        for i in range(300)
    ]
    engine.ingest(calm + angry)
    with TestClient(create_app(engine)) as client:
        report = client.get("/v1/drift").json()
        assert report["events"] == [300, 300]
        assert report["scores"]["frustration"]["psi"] > SHIFTED
        assert "frustration" in report["flagged"]
        quiet = client.get("/v1/drift", params={"current_hours": 1}).json()
        assert quiet["enough_data"] is False and quiet["flagged"] == []
        families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    by_dim = {s.labels["dimension"]: s.value for s in families["tactful_drift_psi"].samples}
    assert by_dim["frustration"] > SHIFTED
    assert families["tactful_drift_flags"].samples[0].value >= 1

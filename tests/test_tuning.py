"""tactful tune: a threshold proposed from recorded decisions and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tactful.cli import app
from tactful.learn.outcomes import Outcome
from tactful.learn.tuning import Trial, _peak, bad_customers, choose, with_threshold
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
SHIPPED = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()


def test_with_threshold_changes_one_value_and_the_version_only(tmp_path):
    text = with_threshold(SHIPPED, "annoyed", 0.7, "default-tuned")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    policy = load_policy(path)
    assert policy.thresholds["annoyed"] == 0.7 and policy.version == "default-tuned"
    assert {k: v for k, v in policy.thresholds.items() if k != "annoyed"} == {
        k: v for k, v in load_policy().thresholds.items() if k != "annoyed"
    }
    assert "# a message this frustrated" in text  # comments kept
    with pytest.raises(ValueError, match=r"thresholds\.nope: not found"):
        with_threshold(SHIPPED, "nope", 1)


def test_bad_outcomes_peak_and_choice():
    rows: list[dict[str, Any]] = [
        {"customer_id": "a", "kind": "csat", "value": 1, "at": "2026-10-05T10:00:00+00:00"},
        {"customer_id": "b", "kind": "csat", "value": 5, "at": "2026-10-05T10:00:00+00:00"},
        {"customer_id": "c", "kind": "churn", "value": None, "at": "2026-10-06T10:00:00+00:00"},
        {"customer_id": "c", "kind": "thumbs", "value": -1, "at": "2026-10-05T10:00:00+00:00"},
    ]
    assert bad_customers(rows) == {
        "a": datetime(2026, 10, 5, 10, tzinfo=UTC),
        "c": datetime(2026, 10, 5, 10, tzinfo=UTC),
    }
    times = [T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=59), T0 + timedelta(hours=1)]
    assert _peak(times) == 3
    trials = [
        Trial(0.4, 30, 30, 10, 10, 12, False),
        Trial(0.5, 20, 20, 9, 10, 8, True),
        Trial(0.6, 12, 12, 9, 10, 5, True),
        Trial(0.9, 2, 2, 1, 10, 1, True),
    ]
    assert choose(trials) == trials[2]  # best catch rate within capacity, fewer handoffs
    assert choose([trials[0]]) is None


def history(tmp_path: Path, bad: int, good: int) -> Path:
    """Customers getting more and more annoyed (then churning), and content ones."""
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: T0 + timedelta(days=30))
    events: list[dict[str, Any]] = []
    for i in range(bad):
        at = T0 + timedelta(hours=i)
        for n, text in enumerate(["ugh, not working", "This still doesn't work, I'm annoyed."]):
            events.append(
                {
                    "event_id": f"b{i}-{n}",
                    "type": "message",
                    "customer_id": f"bad{i}",
                    "timestamp": (at + timedelta(minutes=10 * n)).isoformat(),
                    "text": text,
                }
            )
    for i in range(good):
        events.append(
            {
                "event_id": f"g{i}",
                "type": "message",
                "customer_id": f"good{i}",
                "timestamp": (T0 + timedelta(hours=i)).isoformat(),
                "text": "Thanks, where do I find the export button?",
            }
        )
    engine.ingest(events)
    store.record_outcomes(
        [Outcome(f"o{i}", f"o{i}", f"bad{i}", T0 + timedelta(days=2), "churn") for i in range(bad)]
    )
    store.close()
    return db


def test_tune_proposes_a_candidate_policy_and_never_touches_the_live_one(tmp_path):
    db = history(tmp_path, bad=24, good=10)
    out = tmp_path / "tuned.yaml"
    args = ["tune", "--db", str(db), "--threshold", "annoyed", "--values", "0.5,0.9,0.95"]
    args += ["--text-scorer", "lexical", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "24 customers with a bad outcome" in result.output
    tuned = load_policy(out)
    # 0.5 escalates every annoyed customer before they churn (one an hour); 0.9 none
    assert tuned.thresholds["annoyed"] == 0.5
    assert tuned.version.startswith("default-") and tuned.version.endswith("-tuned-annoyed-0.5")
    assert "100.0%" in result.output and "0.0%" in result.output
    assert load_policy().thresholds["annoyed"] == 0.5  # the shipped policy is untouched
    # with no one to take handoffs, only a value that escalates nobody fits
    none = CliRunner().invoke(app, [*args, "--agents", "1", "--per-agent-hour", "0.5"])
    assert none.exit_code == 0, none.output
    assert load_policy(out).thresholds["annoyed"] == 0.9


def test_tune_with_too_few_outcomes_says_so_and_proposes_nothing(tmp_path):
    db = history(tmp_path, bad=3, good=2)
    out = tmp_path / "tuned.yaml"
    result = CliRunner().invoke(
        app,
        ["tune", "--db", str(db), "--text-scorer", "lexical", "--out", str(out)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "too few outcomes to say anything: 3 customer(s)" in result.output
    assert not out.exists()
    unknown = CliRunner().invoke(app, ["tune", "--db", str(db), "--threshold", "nope"])
    assert unknown.exit_code == 2 and "not among the policy's thresholds" in unknown.output

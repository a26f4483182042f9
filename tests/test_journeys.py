"""The gold journeys in examples/journeys/: each one's expected decisions, step by step.

A journey whose only differences are steps marked ``xfail`` (known gaps of the engine or
policy) is reported as xfailed; one whose known gap now passes fails, strict-xfail style,
so the mark is removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tactful.evaluation.journeys import (
    JourneyError,
    format_diff,
    journey_files,
    load_journey,
    run_journey,
    run_journeys,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
JOURNEYS = ROOT / "examples" / "journeys"
FILES = journey_files(JOURNEYS)


def test_the_gold_set_is_there() -> None:
    names = {p.stem for p in FILES}
    assert len(FILES) >= 12
    assert {"ana_lost_on_cancel_page", "ben_billing_breakdown", "outage_incident"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_journey(path: Path) -> None:
    result = run_journey(path)
    diff = format_diff(result)
    if not result.passed:
        pytest.fail(diff, pytrace=False)
    if result.xfailed:
        gaps = "; ".join(f"step {s.step.index}: {s.step.xfail}" for s in result.xfailed)
        pytest.xfail(f"known gap(s) in {path.name}: {gaps}")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_journey_checks_several_steps_and_a_quiet_one(path: Path) -> None:
    journey = load_journey(path)
    checked = [s for s in journey.steps if s.expect is not None]
    assert len(checked) >= 3, f"{path.name}: only {len(checked)} checked steps"
    quiet = [s for s in checked if s.expect is not None and s.expect.nothing]
    assert quiet, f"{path.name}: no step expects 'nothing' (leaving alone is a decision too)"
    assert len({s.raw["event_id"] for s in journey.steps}) == len(journey.steps)


JOURNEY = """\
name: wrong-on-purpose
description: A billing dispute whose expectation at step 2 is deliberately wrong.
customer_id: zed
steps:
  - at: "+0s"
    type: page_view
    path: /settings/billing
    expect: nothing
  - at: "+1m"
    type: message
    text: "I was charged twice for the same plan this month."
    expect:
      rules: [invoice_pointer]
      kinds: [assist]
      queue: general
  - at: "+2m"
    type: page_view
    path: /settings/billing/invoices
    expect: nothing
"""


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(JOURNEY)
    result = run_journey(path)
    assert not result.passed
    assert [s.step.index for s in result.failed] == [2]
    diff = format_diff(result)
    assert "FAILED" in diff and "wrong.yaml" in diff
    assert "step 2 (+1m message" in diff
    assert "rules: expected [invoice_pointer], got [billing_dispute]" in diff
    assert "kinds: expected [assist], got [escalate, hold]" in diff
    assert "queue: expected general, got billing" in diff
    # the decision's own explanation is there too
    assert "escalate by billing_dispute queue=billing priority=high" in diff
    assert "A disputed charge escalates quickly" in diff
    # steps that passed are not in the diff
    assert "step 1 " not in diff and "step 3 " not in diff


def test_known_gaps_are_reported_and_a_closed_gap_fails(tmp_path: Path) -> None:
    gap = JOURNEY.replace(
        "    expect:\n      rules: [invoice",
        '    xfail: "on purpose"\n    expect:\n      rules: [invoice',
    )
    (tmp_path / "gap.yaml").write_text(gap)
    result = run_journey(tmp_path / "gap.yaml")
    assert result.passed and [s.step.index for s in result.xfailed] == [2]
    assert "known gap: on purpose" in format_diff(result)

    closed = gap.replace("rules: [invoice_pointer]", "rules: [billing_dispute]")
    closed = closed.replace("kinds: [assist]", "kinds: [escalate, hold]")
    closed = closed.replace("queue: general", "queue: billing")
    (tmp_path / "closed.yaml").write_text(closed)
    result = run_journey(tmp_path / "closed.yaml")
    assert not result.passed and [s.step.index for s in result.xpassed] == [2]
    assert "XPASS (remove the xfail mark) step 2" in format_diff(result)


def test_state_bounds_and_incident_setup(tmp_path: Path) -> None:
    path = tmp_path / "incident.yaml"
    path.write_text(
        """\
name: incident-bounds
description: Incident mode on; a frustrated message hears about the incident.
customer_id: ivy
setup: {incident: "outage"}
steps:
  - at: "+0s"
    type: message
    text: "Nothing works and I'm really annoyed, this is the third time this week!!"
    expect:
      rules: [incident_notice]
      state: {frustration: '>= 0.99', topic: billing}
"""
    )
    result = run_journey(path)
    diff = format_diff(result)
    assert [s.step.index for s in result.failed] == [1], diff
    assert "state: expected frustration >= 0.99, got frustration = " in diff
    assert "state: expected topic == billing, got topic = " in diff
    assert "rules:" not in diff  # the incident playbook did decide


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "description: missing or not text"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: x\ndescription: y\nsteps: [\n", "not valid YAML"),
        ("name: x\ndescription: y\nsteps: []\n", "steps=[]: must be a non-empty list"),
        ("name: x\ndescription: y\ncolour: red\nsteps: []\n", "colour='red': unknown key"),
        (
            "name: x\ndescription: y\nsteps:\n  - type: search\n    query: q\n",
            "step 1: at: missing",
        ),
        (
            "name: x\ndescription: y\nsteps:\n  - {at: 'soon', type: search, query: q}\n",
            "step 1: at='soon': an offset from the journey's start",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: nothing}\n"
            "  - {at: '+1m', type: payment_failed, amount: -3}\n",
            "step 2: amount=-3: Input should be greater than or equal to 0",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: chat, text: hi}\n",
            "step 1: type='chat': unknown event type",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {kinds: [escalte]}}\n",
            "step 1: expect.kinds=['escalte']: unknown ['escalte']",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {rules: [no_such_rule]}}\n",
            "step 1: expect.rules=['no_such_rule']: unknown ['no_such_rule']",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {state: {mood: '> 1'}}}\n",
            "step 1: expect.state.mood='mood': not a state field",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {state: {frustration: 'high'}}}\n",
            "",  # a bare name is an equality with a name: valid, checked when run
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {state: {frustration: '>> 1'}}}\n",
            "step 1: expect.state.frustration='>> 1': must be a comparison",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, expect: {queues: billing}}\n",
            "step 1: expect.queues='billing': unknown key",
        ),
        (
            "name: x\ndescription: y\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q, xfail: 'gap'}\n",
            "step 1: xfail: a step marked xfail needs an expect block",
        ),
        (
            "name: x\ndescription: y\nsetup: {incident: true}\ncustomer_id: c\nsteps:\n"
            "  - {at: '+0s', type: search, query: q}\n",
            "setup.incident=True: must be the incident's reason",
        ),
    ],
)
def test_malformed_journeys_say_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    if not message:
        load_journey(path)
        return
    with pytest.raises(JourneyError) as caught:
        load_journey(path)
    assert str(caught.value).startswith(str(path)), caught.value
    assert message in str(caught.value), caught.value


def test_a_missing_file_is_a_journey_error(tmp_path: Path) -> None:
    with pytest.raises(JourneyError, match="cannot read"):
        load_journey(tmp_path / "nope.yaml")


def test_run_journeys_and_summary_for_the_cli(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(JOURNEY)
    (tmp_path / "notes.txt").write_text("not a journey")
    results = run_journeys(tmp_path, text_scorer="lexical")
    assert [r.name for r in results] == ["wrong-on-purpose"]
    assert summarize(results) == {
        "journeys": 1,
        "passed": 0,
        "checked_steps": 3,
        "failed_steps": 1,
        "known_gaps": 0,
        "xpassed": 0,
    }


def test_eval_journeys_command(tmp_path: Path) -> None:
    """`tactful eval journeys`: the shipped gold set passes (known gaps listed, not
    failed); a journey whose expectation the engine does not meet exits 1 with the diff;
    a malformed one exits 2 saying where."""
    from typer.testing import CliRunner

    from tactful.evaluation.cli import eval_app

    cli = CliRunner()
    ok = cli.invoke(eval_app, ["journeys", str(JOURNEYS)], env={"COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert f"journeys {len(FILES)}" in ok.output and "failed steps 0" in ok.output
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    text = (JOURNEYS / "billing_dispute.yaml").read_text()
    (wrong / "j.yaml").write_text(text.replace("queue: billing", "queue: technical"))
    bad = cli.invoke(eval_app, ["journeys", str(wrong)], env={"COLUMNS": "200"})
    assert bad.exit_code == 1, bad.output
    assert "technical" in bad.output and "billing" in bad.output
    assert "failed steps 1" in bad.output
    (wrong / "j.yaml").write_text("name: x\nsteps: 3\n")
    broken = cli.invoke(eval_app, ["journeys", str(wrong)], env={"COLUMNS": "200"})
    assert broken.exit_code == 2 and "j.yaml" in broken.output
    missing = cli.invoke(eval_app, ["journeys", str(tmp_path / "nowhere")], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "not a folder" in missing.output

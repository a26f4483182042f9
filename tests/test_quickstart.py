"""docs/quickstart.md, followed to the letter: its shell blocks are run as written by bash
against a real `tactful serve` and a local Slack-shaped receiver, so the guide cannot rot.

The guide marks the blocks a reader runs with a fence info string: ```sh quickstart
terminal=N (and ``serve`` on the block that starts the server). Blocks of one terminal
share their working directory and exported variables, as a terminal would. Only the
guide's placeholders are replaced: the Slack webhook URL (by the receiver's), the port (by
a free one) and the pasted API key (by the one the guide's `keys create` printed). The
install blocks (plain ```sh) are not run: this venv is the installed tactful."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.receivers import receiver
from tests.serving import free_port

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"
SLACK_PLACEHOLDER = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
KEY_PLACEHOLDER = "tk_PASTE_YOUR_KEY_HERE"
PORT_FORMS = ("127.0.0.1:8000", "--port 8000")
CUSTOMER = "dana"
DEADLINE = 20.0  # seconds for the server to answer, and for Slack to get the handoff
POLL = 0.05
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Block:
    terminal: int
    serve: bool
    text: str


@dataclass
class Terminal:
    """One of the guide's terminals: a working directory and exported variables."""

    cwd: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)


def guide_blocks(markdown: str) -> list[Block]:
    """The ```sh quickstart blocks, in order; fails loudly on anything unexpected."""
    blocks = []
    for info, body in FENCE.findall(markdown):
        words = info.split()
        if words[1:2] != ["quickstart"]:
            continue
        assert words[0] == "sh", f"quickstart block in {words[0]!r}, not sh: {body[:60]!r}"
        extra = words[2:]
        terminal = [w for w in extra if w.startswith("terminal=")]
        assert len(terminal) == 1, f"quickstart block without one terminal=N: {info!r}"
        assert set(extra) <= {*terminal, "serve"}, f"unknown words in {info!r}"
        blocks.append(Block(int(terminal[0].split("=")[1]), "serve" in extra, body))
    assert len(blocks) >= 6, f"only {len(blocks)} quickstart blocks in {GUIDE}"
    serving = [b for b in blocks if b.serve]
    assert len(serving) == 1, f"{len(serving)} blocks marked serve; the guide starts one server"
    assert "tactful serve" in serving[0].text
    assert sum("tactful keys create" in b.text for b in blocks) == 1
    every = "\n".join(b.text for b in blocks)
    assert every.count(SLACK_PLACEHOLDER) == 1, "the Slack webhook placeholder changed"
    assert every.count(KEY_PLACEHOLDER) == 1, "the API key placeholder changed"
    assert all(form in every for form in PORT_FORMS), "the port placeholders changed"
    assert CUSTOMER in every
    return blocks


def substitute(text: str, port: int, slack_url: str, key: str | None) -> str:
    for form in PORT_FORMS:
        text = text.replace(form, form.replace("8000", str(port)))
    assert "8000" not in text, f"a port 8000 the test does not know how to replace:\n{text}"
    text = text.replace(SLACK_PLACEHOLDER, slack_url)
    if KEY_PLACEHOLDER in text:
        assert key is not None, "the key is used before `tactful keys create` printed it"
        text = text.replace(KEY_PLACEHOLDER, key)
    return text


def script(term: Terminal, text: str, state: Path | None) -> str:
    """Bash that runs ``text`` in the terminal's directory and environment; with
    ``state``, it saves where it ended and what it exported there afterwards."""
    lines = [f"cd {str(term.cwd)!r}", "set -eo pipefail", text]
    if state is not None:
        lines += [f"pwd > {str(state)!r}.cwd", f"export -p > {str(state)!r}.env"]
    return "\n".join(lines) + "\n"


def run_block(term: Terminal, text: str, state: Path) -> str:
    done = subprocess.run(
        ["bash", "-c", script(term, text, state)],
        env=term.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"guide block failed ({done.returncode}):\n{text}\nstdout:\n{done.stdout}\n"
        f"stderr:\n{done.stderr}"
    )
    term.cwd = Path(Path(f"{state}.cwd").read_text().strip())
    env = subprocess.run(
        ["bash", "-c", f"source {str(state)!r}.env && env -0"],
        env={},
        capture_output=True,
        check=True,
    ).stdout
    term.env = dict(item.split("=", 1) for item in env.decode().split("\0") if "=" in item and item)
    term.outputs.append(done.stdout)
    return done.stdout


def wait_for(what: str, check: Any, deadline_s: float = DEADLINE) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(POLL)
    pytest.fail(f"{what}: not within {deadline_s} s")


def test_the_quickstart_as_written_ends_in_a_slack_handoff_and_a_marketing_hold(
    tmp_path: Path,
) -> None:
    blocks = guide_blocks(GUIDE.read_text("utf-8"))
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k not in ("SLACK_WEBHOOK_URL", "TACTFUL_KEY")}
    # `tactful` and `python` are this venv's, as after the guide's `pip install`
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    terminals: dict[int, Terminal] = {}
    key: str | None = None
    server: subprocess.Popen[bytes] | None = None
    server_log = tmp_path / "serve.log"
    with receiver("slack", "/services/T0/B0/quickstart") as slack:
        try:
            for block in blocks:
                term = terminals.setdefault(block.terminal, Terminal(tmp_path, dict(base)))
                text = substitute(block.text, port, slack.url, key)
                if block.serve:
                    assert server is None
                    with server_log.open("wb") as log:
                        server = subprocess.Popen(
                            ["bash", "-c", script(term, text, None)],
                            env=term.env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,  # its own group: stopped with its children
                        )
                    wait_healthy(server, port, server_log)
                    continue
                out = run_block(term, text, tmp_path / f"state-{block.terminal}")
                if "tactful keys create" in block.text:
                    keys = re.findall(r"^tk_[0-9a-f]+_\S+$", out, re.M)
                    assert len(keys) == 1, f"`keys create` printed no single key:\n{out}"
                    key = keys[0]
                if "/eligibility" in block.text:
                    answer = json.loads(out)
                    assert answer["customer_id"] == CUSTOMER
                    assert answer["eligible"] is False, answer
                    assert answer["hold_id"] and "payments_failing" in answer["reason"]
                if "/v1/events" in block.text:
                    results = json.loads(out)
                    assert results["accepted"] == 4 and results["rejected"] == 0, results
                    decided = {
                        (d["kind"], d["rule_id"], d["params"].get("queue"))
                        for r in results["results"]
                        for d in r["decisions"]
                    }
                    # what the guide's table of decisions says
                    assert ("hold", "payments_failing", None) in decided, decided
                    assert ("escalate", "repeated_failure", "billing") in decided, decided
                    last = results["results"][-1]
                    assert "wants_human" in last["signals"] and not last["decisions"], last

            def handoff() -> list[dict[str, Any]]:
                with slack.lock:
                    return [
                        m
                        for m in slack.received
                        if m["text"].startswith("Handoff to billing") and CUSTOMER in m["text"]
                    ]

            messages = wait_for("a Slack handoff for the test customer", handoff)
            assert not slack.problems, slack.problems  # Block Kit as Slack enforces it
            blocks_text = json.dumps(messages[0]["blocks"])
            assert "third time, still broken" in blocks_text  # the summary quotes her
            assert f"127.0.0.1:{port}/customers/{CUSTOMER}" in blocks_text  # the link
            with slack.lock:
                assert any(
                    m["text"].startswith("Marketing paused for dana") for m in slack.received
                )
            # the dashboard page the guide sends the reader to
            assert key is not None
            page = httpx.get(
                f"http://127.0.0.1:{port}/customers/{CUSTOMER}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert page.status_code == 200 and "repeated_failure" in page.text
        finally:
            if server is not None:
                stop(server)
    assert server is not None, "the guide never started the server"
    assert server.returncode is not None


def wait_healthy(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the guide's server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL)
    pytest.fail(f"the guide's server not up on port {port} within {DEADLINE} s:\n{log.read_text()}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as the guide says; then the whole group if it lingers."""
    try:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)
    except ProcessLookupError:
        server.wait(timeout=5)

"""tactful as a user installs it: the wheel built from this tree, installed with pip into a
fresh venv (``python -m venv``, no system site-packages, the dependencies pinned by
constraints.txt), then the installed ``tactful`` run from a directory outside the tree.

Slow (~20 s here, most of it pip installing the dependencies; pip's cache, which
``make test``'s own install fills, keeps it from downloading them again). One venv serves
every test of the module. Deselect locally with ``pytest -k 'not packaging'``.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .serving import Server, free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SCENARIO = ROOT / "examples" / "two_customers.jsonl"

# What the code reads from inside the package at run time (importlib.resources or paths
# next to the modules): without any of these an installed tactful fails, or worse, falls
# back silently (the learned scorer without its heads).
PACKAGE_DATA = [
    "tactful/py.typed",
    "tactful/policy/default.yaml",
    "tactful/detect/models/heads/heads.npz",
    "tactful/detect/models/heads/model_card.json",
    "tactful/detect/models/heads-transformer/heads.npz",
    "tactful/detect/models/heads-transformer/model_card.json",
    "tactful/detect/models/minilm-static-256/model.safetensors",
    "tactful/detect/models/minilm-static-256/tokenizer.json",
    "tactful/detect/models/minilm-static-256/config.json",
    "tactful/detect/models/minilm-static-256/modules.json",
    "tactful/detect/models/minilm-static-256/model_card.json",
    "tactful/detect/models/minilm-goemotions-128/model.safetensors",
    "tactful/detect/models/minilm-goemotions-128/tokenizer.json",
    "tactful/detect/models/minilm-goemotions-128/config.json",
    "tactful/detect/models/minilm-goemotions-128/modules.json",
    "tactful/detect/models/minilm-goemotions-128/model_card.json",
    "tactful/detect/models/minilm-goemotions-encoder/layers.safetensors",
    "tactful/detect/models/minilm-goemotions-encoder/model_card.json",
    "tactful/detect/models/minilm-goemotions-cnn/model.safetensors",
    "tactful/detect/models/minilm-goemotions-cnn/model_card.json",
    "tactful/dashboard/templates/base.html",
    "tactful/dashboard/templates/overview.html",
    "tactful/dashboard/static/htmx-2.0.11.min.js",
    "tactful/dashboard/static/chart-4.6.1.umd.min.js",
]
# The wheel is ~42 MiB: 15 of them the static embedder, 7.5 the emotion-tuned vectors,
# ~10 the GoEmotions-tuned transformer's int8 layers (the transformer mode) and ~4 the
# default mode's emotion CNN (int8 table); a jump past
# this means something that should not ship (data sets, caches, a model's training copy)
# was swept in.
MAX_WHEEL_BYTES = 45 * 1024 * 1024


@dataclass
class Installed:
    wheel: Path
    bin: Path
    workdir: Path
    env: dict[str, str]
    seconds: dict[str, float]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def _check(cmd: list[str], env: dict[str, str] | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("packaging")
    seconds: dict[str, float] = {}
    # Built from a copy, so setuptools' build/ and *.egg-info stay out of the working tree
    # (and two test runs never share them).
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    started = time.perf_counter()
    dist = base / "dist"
    _check(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)]
    )
    seconds["build"] = time.perf_counter() - started
    (wheel,) = dist.glob("tactful-*.whl")

    started = time.perf_counter()
    venv = base / "venv"
    # Made from the dev venv's base interpreter: none of the dev venv's packages are seen.
    _check([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "200"  # the demo's timeline tables, unwrapped
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _check([*pip, "-c", str(ROOT / "constraints.txt"), str(wheel)], env=env)
    seconds["install"] = time.perf_counter() - started
    workdir = base / "work"
    workdir.mkdir()
    yield Installed(wheel, venv / "bin", workdir, env, seconds)
    build, install = seconds["build"], seconds["install"]
    print(f"\npackaging: wheel built in {build:.1f} s, installed in {install:.1f} s")


def test_wheel_holds_the_package_data(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert missing == []
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)
    assert installed.wheel.stat().st_size < MAX_WHEEL_BYTES


def test_the_installed_package_is_the_one_imported(installed: Installed) -> None:
    r = installed.run("python", "-c", "import tactful; print(tactful.__file__)")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(installed.bin.parent)


def test_version_is_pyprojects(installed: Installed) -> None:
    r = installed.run("python", "-c", "import tactful; print(tactful.__version__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == VERSION


def test_cli_help(installed: Installed) -> None:
    r = installed.run("tactful", "--help")
    assert r.returncode == 0, r.stderr
    for command in ("demo", "serve", "worker", "migrate", "backup"):
        assert command in r.stdout


def test_demo_runs_from_the_wheel(installed: Installed) -> None:
    """The embedded shape end to end (SQLite, the default policy, the learned scorer's
    shipped heads and embedder, the log channel), on the scenario `make demo` replays."""
    r = installed.run("tactful", "demo", "--scenario", str(SCENARIO))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "ana" in out and "ben" in out
    assert "escalate -> billing queue (high)" in out
    assert "hold promotional+educational" in out
    assert "invoice_pointer" in out
    assert "quarantined demo-bad-1" in out
    assert "actions delivered to" in out
    assert (installed.workdir / ".tactful" / "demo.db").exists()


def test_demo_default_scenario_from_the_wheel(installed: Installed) -> None:
    r = installed.run("tactful", "demo")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "escalate -> billing queue (high)" in r.stdout


def test_serve_answers_with_the_dashboard(installed: Installed) -> None:
    """`tactful serve` from the wheel: healthy, and the dashboard's templates and static
    files (package data) are there."""
    port = free_port()
    log_path = installed.workdir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(installed.bin / "tactful"), "serve", "--db", "serve.db", "--port", str(port)],
            cwd=installed.workdir,
            env=installed.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            server = Server(proc, f"http://127.0.0.1:{port}", log_path, log)
            wait_healthy(server)
            health = httpx.get(f"{server.url}/healthz", timeout=5).json()
            assert health["version"] == VERSION
            assert httpx.get(f"{server.url}/", timeout=5).status_code == 200
            js = httpx.get(f"{server.url}/static/htmx-2.0.11.min.js", timeout=5)
            assert js.status_code == 200 and len(js.content) > 10_000
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# The deployment files are not run here (no Docker daemon or systemd in CI); these keep
# their essentials from rotting: the options they pass must exist.


def _cli_options(command: str) -> set[str]:
    import typer.main

    from tactful.cli import app

    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {opt for param in cmd.params for opt in param.opts}


def _options_in(args: list[str]) -> set[str]:
    return {a for a in args if a.startswith("--")}


def test_dockerfile_essentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    instructions = [line.split(None, 1) for line in lines if not line.lstrip().startswith("#")]
    froms = [rest for op, rest in instructions if op == "FROM"]
    assert len(froms) >= 2 and "AS build" in froms[0]  # multi-stage
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    (user,) = [rest for op, rest in instructions if op == "USER"]
    assert not user.startswith(("root", "0"))
    (health,) = [rest for op, rest in instructions if op == "HEALTHCHECK"]
    assert "/healthz" in health
    assert any(op == "VOLUME" and "/var/lib/tactful" in rest for op, rest in instructions)
    (cmd,) = [rest for op, rest in instructions if op == "CMD"]
    args = json.loads(cmd)
    assert args[:2] == ["tactful", "serve"]
    assert "/var/lib/tactful/tactful.db" in args
    assert _options_in(args) <= _cli_options("serve")
    # What the build stage copies exists and is not excluded by .dockerignore.
    ignore = (ROOT / ".dockerignore").read_text().split()
    for name in ("pyproject.toml", "README.md", "constraints.txt", "src/"):
        assert f"COPY {name}" in text or f" {name}" in text
        assert (ROOT / name).exists()
        assert f"!{name}" in ignore


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ROOT / "deploy" / name).read_text())
    return parser


@pytest.mark.parametrize(
    ("name", "command"), [("tactful.service", "serve"), ("tactful-worker@.service", "worker")]
)
def test_systemd_unit_essentials(name: str, command: str) -> None:
    service = _unit(name)["Service"]
    assert service["User"] == "tactful"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/tactful"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/tactful/env"
    args = service["ExecStart"].replace("\\\n", " ").split()
    assert args[:2] == ["/opt/tactful/bin/tactful", command]
    assert _options_in(args) <= _cli_options(command)

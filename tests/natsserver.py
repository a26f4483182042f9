"""A real NATS server with JetStream for the tests: Debian's ``nats-server`` started on a
free loopback port with a temporary store directory, stopped and removed at the end of the
session (like tests/pgserver.py does for PostgreSQL).

Without the binary the tests that need it are skipped, unless ``TACTFUL_REQUIRE_NATS=1``
(CI), where they fail instead. Each test gets its own stream name
(:meth:`NatsServer.stream`) so tests sharing the session's server never see each other's
messages.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["NatsServer", "nats_server", "start_nats"]

REQUIRE = "TACTFUL_REQUIRE_NATS"
STARTUP_DEADLINE = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            return s.recv(4).startswith(b"INFO")  # the server greets every client first
    except OSError:
        return False


@dataclass
class NatsServer:
    """A running ``nats-server -js``; ``url`` reaches it."""

    binary: str
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _count: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self) -> None:
        for _ in range(3):  # the free port may be taken between looking and listening
            self.port = _free_port()
            if self._launch():
                return
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"nats-server did not start:\n{tail}")

    def _launch(self) -> bool:
        """Start on ``self.port`` with the store directory; whether it listens in time."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-js",
                    "-sd",
                    str(self.root / "js"),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _listening(self.port):
                return True
            time.sleep(0.02)
        self.stop_process()
        return False

    def restart(self) -> None:
        """Start a stopped (:meth:`stop_process`) server again on the same port and store
        directory: what JetStream acknowledged before is there again."""
        for _ in range(20):  # the old listener's port may linger for a moment
            if self._launch():
                return
            time.sleep(0.1)
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"nats-server did not start again on port {self.port}:\n{tail}")

    def stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def stop(self) -> None:
        self.stop_process()
        shutil.rmtree(self.root, ignore_errors=True)

    def stream(self) -> str:
        """A stream name no other test of this session uses."""
        return f"T{os.getpid()}_{next(self._count)}"

    def serve_args(self, stream: str, *extra: str) -> tuple[str, ...]:
        """`tactful serve` options for the broker shape on this server and ``stream``
        (the lexical text tier, as the workers here use)."""
        return ("--text-scorer", "lexical", "--broker", self.url, "--stream", stream, *extra)


def start_nats() -> NatsServer:
    """Start a server, or skip (fail with TACTFUL_REQUIRE_NATS=1) without the binary."""
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if binary is None:
        why = "no nats-server on PATH (Debian: apt-get install nats-server)"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {why}")
        pytest.skip(why)
    server = NatsServer(binary, Path(tempfile.mkdtemp(prefix="tactful-nats-")))
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    server = start_nats()
    try:
        yield server
    finally:
        server.stop()

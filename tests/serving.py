"""`tactful serve` as a real process, for the tests that need one (the API over real
sockets, the dashboard in a browser): started on a free loopback port, stopped after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

STARTUP_DEADLINE = 15.0
POLL = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    output: Path
    log: IO[bytes]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


Launch = Callable[..., Server]


def serve(
    tmp_path: Path, db: Path | str, actions_log: Path, *extra: str, port: int | None = None
) -> Server:
    """`tactful serve` on a database, healthy; on ``port`` if given (a client may have
    been pointed at it while nothing listened), else a free one. The caller stops it."""
    port = port or free_port()
    output = tmp_path / f"server-{port}.log"
    log = output.open("wb")
    cmd = [
        sys.executable,
        "-m",
        "tactful.cli",
        "serve",
        "--db",
        str(db),
        "--port",
        str(port),
        "--actions-log",
        str(actions_log),
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = Server(proc, f"http://127.0.0.1:{port}", output, log)
    try:
        wait_healthy(server)
    except BaseException:
        server.stop()
        raise
    return server


def launcher(tmp_path: Path) -> Iterator[Launch]:
    """Start `tactful serve` on a database; every server started is stopped at the end."""
    servers: list[Server] = []

    def start(db: Path | str, actions_log: Path, *extra: str) -> Server:
        server = serve(tmp_path, db, actions_log, *extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"server exited with {server.proc.returncode}:\n{server.output.read_text()}"
            )
        try:
            r = httpx.get(f"{server.url}/healthz", timeout=1.0)
        except httpx.TransportError:
            time.sleep(POLL)
            continue
        if r.status_code == 200 and r.json()["status"] == "ok":
            return
        time.sleep(POLL)
    pytest.fail(f"server not healthy within {STARTUP_DEADLINE} s:\n{server.output.read_text()}")

"""What the benchmarks share: starting and stopping a real `tactful serve`, a free port,
percentiles, and the machine they ran on (printed with every result: these machines are
shared and noisy, so a number means little without it)."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["free_port", "machine", "percentile", "stop_server", "wait_healthy"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, deadline_s: float) -> None:
    """Until GET /healthz answers 200; exits with the server's log if it died or hung."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"tactful serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise SystemExit(f"tactful serve not healthy after {deadline_s:.0f} s")


def stop_server(proc: subprocess.Popen[bytes], grace_s: float = 15) -> int | None:
    """SIGINT (a clean shutdown), then terminate, then kill; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.returncode


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def machine(cpu_extra: str = "", python_extra: str = "") -> str:
    """Platform, CPU model and cores, Python and SQLite versions (plus the extras)."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"machine: {platform.platform()}\n"
        f"cpu: {cpu}, {os.cpu_count()} logical cores{cpu_extra}\n"
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"sqlite {sqlite3.sqlite_version}{python_extra}"
    )

"""Process tuning for the long-running commands (runtime/tuning.py): malloc arenas capped
(glibc only). (tests/test_tuning.py is `tactful tune`, the policy tuner.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tactful.runtime import tuning

# Eight threads that each allocate (and keep) many small blocks while the others do the
# same, then glibc's malloc_stats() on stderr: one "Arena N:" block per arena.
PROBE = """
import ctypes, sys, threading
from tactful.runtime.tuning import limit_malloc_arenas
if sys.argv[1] == "capped":
    assert limit_malloc_arenas(2)
start = threading.Barrier(8)
kept = []
def work():
    start.wait()
    kept.append([bytearray(600) for _ in range(20_000)])
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_capped_arenas_stay_capped_while_threads_allocate():
    free = arenas("free")
    assert free > 2, f"the probe should spread over arenas without the cap (got {free})"
    assert arenas("capped") <= 2


def test_the_operators_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tuning.limit_malloc_arenas() is False

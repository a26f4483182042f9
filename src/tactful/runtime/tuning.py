"""Process-level tuning for the long-running commands (serve, replay).

CPython's cyclic garbage collector periodically walks every tracked object. The engine
keeps up to ``cache_size`` customer states in memory (tens of thousands of small
pydantic objects), so each full collection took 80-190 ms on a 2-core machine: measured
in bench/throughput.py as a served p99 of ~110-140 ms, and ~38 ms with full collections
made rare. The states hold no reference cycles, so reference counting frees them when
they are replaced; young-generation collections still run as usual and catch the short
cycles of request handling.

glibc's malloc gives each new thread that allocates its own arena (up to 8 per core),
and an arena keeps the memory it once held. ``serve`` answers requests on a pool of up to
40 threads: in bench/soak.py a burst of slow requests (the machine busy with something
else) woke more of them and the server's RSS stepped up by ~25 MB within 20 s, never to
come down, although the engine's own data had not grown. Capping the arenas at the
number of cores keeps that memory shared: the engine is serialised by one lock anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys

__all__ = ["limit_malloc_arenas", "tune_gc"]

# Generation 0 and 1 as CPython's defaults; a full collection only after 100,000
# generation-1 collections (instead of 10).
GC_THRESHOLDS = (700, 10, 100_000)
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas (default: the number of cores, at least 2); True if done.
    A no-op elsewhere (musl, macOS) and when MALLOC_ARENA_MAX is already set: the
    operator's choice wins."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas or max(2, os.cpu_count() or 2)))


def tune_gc() -> None:
    """Rare full garbage collections, and malloc arenas capped (see the module's doc)."""
    gc.set_threshold(*GC_THRESHOLDS)
    limit_malloc_arenas()

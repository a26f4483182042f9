"""Process-level tuning for the long-running commands (serve, replay).

CPython's cyclic garbage collector periodically walks every tracked object. The engine
keeps up to ``cache_size`` customer states in memory (tens of thousands of small
pydantic objects), so each full collection took 80-190 ms on a 2-core machine: measured
in bench/throughput.py as a served p99 of ~110-140 ms, and ~38 ms with full collections
made rare. The states hold no reference cycles, so reference counting frees them when
they are replaced; young-generation collections still run as usual and catch the short
cycles of request handling.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]

# Generation 0 and 1 as CPython's defaults; a full collection only after 100,000
# generation-1 collections (instead of 10).
GC_THRESHOLDS = (700, 10, 100_000)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)

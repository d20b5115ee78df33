"""Where the time of one run goes: named phases, recorded only when asked for.

`CODESEARCH_TRACE=FILE` makes the process write, at exit, the phases it went through (name,
start and end in seconds since codesearch was imported) as JSON to FILE; bench/cold_start.py
runs real `codesearch` commands with it to account for a cold query or index run phase by
phase (imports, CUDA start, model load, graph capture, index open, search, rendering).
Without the variable `phase()` costs one dictionary lookup. A diagnostic switch, not a
setting: it must work before any setting is read.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from contextlib import contextmanager

T0 = time.perf_counter()
T0_WALL = time.time()  # to place the phases within the whole process, seen from outside
_TRACE = os.environ.get("CODESEARCH_TRACE")
_events: list[tuple[str, float, float]] = []


@contextmanager
def phase(name: str):
    if not _TRACE:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        _events.append((name, round(start - T0, 4), round(time.perf_counter() - T0, 4)))


def write_now() -> None:
    """Write the trace now (for a process that ends without running atexit handlers)."""
    global _TRACE
    if _TRACE:
        _write()
        _TRACE = None  # once


def _write() -> None:
    if not _TRACE:
        return
    try:
        with open(_TRACE, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "phases": [{"name": n, "start": a, "end": b} for n, a, b in _events],
                       "exit": round(time.perf_counter() - T0, 4), "t0_wall": T0_WALL, "exit_wall": time.time()},
                      f, indent=1)
    except OSError:
        pass


if _TRACE:
    atexit.register(_write)

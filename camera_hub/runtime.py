"""Process settings of the worker: glibc's malloc and Python's garbage collector.

**malloc.**

A worker allocates a 0.7 MB BGR frame per sample on its reactor thread and frees it on the
event loop or the detector thread, among ~300 other threads. With glibc's defaults that pattern
fragments: each thread may get an arena of its own (up to 8 per core), and after the first large
block is freed the mmap threshold rises to its size, so later frames come from the arenas' heaps
and their freed space is kept rather than returned. In the soak benchmark (300 cameras, faults
cycling) the worker's resident memory grew by ~20 MB a minute with the defaults; with these
settings it stayed flat (benchmarks/README.md, Soak). Same effect as starting the process with
``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072``; an environment that sets those wins. With
the threshold fixed, a temporary of 128 KiB or more is a fresh mapping (and its page faults)
every time: the code on the hot paths reuses its buffers instead (the detector's input batch,
the reactor's reads).

**Garbage collector.** The packet rings hold ~100,000 packet objects at 1,000 cameras, all
tracked by the cyclic collector, and they churn (each lives ~10 s), so with CPython's default
thresholds (700, 10, 10) a full collection ran every ~6 s, each holding the GIL for ~0.3 s, and
collections took ~9 % of a core in all (measured at 1,004 cameras, benchmarks/README.md, City
scale). Little in the worker makes reference cycles, so the first threshold is raised ~30 times
(a young collection every 20,000 allocations: cyclic garbage stays bounded) and what the
start-up loaded (modules, config, model) is frozen out of the collections.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024  # blocks from 128 KiB up get their own mapping, returned on free


def _glibc(function: str) -> Callable[..., int] | None:
    """A function of glibc's malloc (``mallopt``, ``malloc_trim``); None where the C library has
    none (musl and others: nothing to tune)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):
        return None


def tune_malloc() -> bool:
    """Apply the settings above unless the environment chose its own; False where this is not glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok &= mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.warning("mallopt refused the worker's malloc settings; memory may fragment over time")
    return ok


TRIM_EVERY_S = 10.0


async def trim_loop(every_s: float = TRIM_EVERY_S) -> None:
    """Every ``every_s``, hand the free pages inside malloc's arenas back to the system (glibc's
    ``malloc_trim``; by itself glibc returns only the free top of a heap). The packet rings churn
    ~1,000 packets a second of mixed sizes, and the holes they leave held 60–70 MB of a
    500-camera worker's resident memory (benchmarks/README.md, City scale); a trim walks the free
    lists in 7–40 ms (measured at 500 cameras), on a thread of the loop's pool."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim, 0)


GC_THRESHOLDS = (20_000, 10, 10)  # allocations less deallocations before a young collection; CPython's: 700


def tune_gc() -> None:
    """Raise the collector's thresholds and freeze what exists now (call once the process has
    loaded what it keeps for its life, before the cameras start)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

"""glibc malloc settings for the worker process, applied at its start.

A worker allocates a 0.7 MB BGR frame per sample on its reactor thread and frees it on the
event loop or the detector thread, among ~300 other threads. With glibc's defaults that pattern
fragments: each thread may get an arena of its own (up to 8 per core), and after the first large
block is freed the mmap threshold rises to its size, so later frames come from the arenas' heaps
and their freed space is kept rather than returned. In the soak benchmark (300 cameras, faults
cycling) the worker's resident memory grew by ~20 MB a minute with the defaults; with these
settings it stayed flat (benchmarks/README.md, Soak). Same effect as starting the process with
``MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072``; an environment that sets those wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024  # blocks from 128 KiB up get their own mapping, returned on free


def tune_malloc() -> bool:
    """Apply the settings above unless the environment chose its own; False where this is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt: nothing to tune
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok &= mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok &= mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.warning("mallopt refused the worker's malloc settings; memory may fragment over time")
    return ok

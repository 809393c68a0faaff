"""camera_hub.runtime: with the worker's malloc settings, freed frame-sized blocks go back to the
system; with glibc's defaults, once a large block was freed, they stay in the heap (the growth the
soak benchmark measured). Two fresh interpreters, the same allocation pattern, resident memory
compared in one run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PATTERN = """
import re, sys, numpy as np
if sys.argv[1] == "tuned":
    from camera_hub.runtime import tune_malloc
    assert tune_malloc()
big = np.ones(16 << 20, np.uint8); del big  # freed: glibc raises its mmap threshold to 16 MB
frames = [np.ones(700_000, np.uint8) for _ in range(200)]  # 140 MB of 360p-frame-sized blocks
keep = frames[-1]; del frames  # all freed but the newest, as the analysis frees samples
print(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024)
"""


def rss_after(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PATTERN, mode], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_freed_frames_are_returned_with_the_worker_settings() -> None:
    plain, tuned = rss_after("plain"), rss_after("tuned")
    assert plain - tuned > 80, f"resident after the frees: {plain} MB by default, {tuned} MB tuned"


GC_PATTERN = """
import gc, sys
from camera_hub.runtime import tune_gc
keep = [[i] for i in range(200_000)]  # long-lived tracked objects (modules, config, rings)
if sys.argv[1] == "tuned":
    tune_gc()
before = gc.get_stats()[2]["collections"]
more = [[i] for i in range(1_000_000)]  # a million more tracked objects kept (packets coming in)
print(gc.get_stats()[2]["collections"] - before)
"""


def test_the_worker_gc_settings_make_full_collections_rare() -> None:
    """With the default thresholds a million new tracked objects (a minute of packets coming into
    the rings at 1,000 cameras) set off full collections that walk every object; with the
    worker's, none."""
    def run(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", GC_PATTERN, mode], cwd=REPO, capture_output=True, text=True,
                             timeout=120, check=True)
        return int(out.stdout)

    plain, tuned = run("plain"), run("tuned")
    assert plain >= 3 and tuned == 0, f"full collections: {plain} by default, {tuned} tuned"


TRIM_PATTERN = """
import asyncio, re, sys
from camera_hub.runtime import trim_loop, tune_malloc
assert tune_malloc()
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024
# packets of a ring: 2-28 KB blocks, most freed, the survivors scattered through the heap
blocks = [bytes(2048 + (i % 13) * 2048) for i in range(12_000)]
kept = blocks[::8]; del blocks
before = rss()
async def main():
    if sys.argv[1] == "trim":
        task = asyncio.create_task(trim_loop(0.05))
        await asyncio.sleep(0.3)
        task.cancel()
    else:
        await asyncio.sleep(0.3)
asyncio.run(main())
print(before - rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_trim_loop_hands_the_holes_between_kept_packets_back() -> None:
    def returned(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", TRIM_PATTERN, mode], cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=True)
        return int(out.stdout)
    idle, trimmed = returned("idle"), returned("trim")
    assert idle < 5 and trimmed > 60, f"MB returned in 0.3 s: {idle} without the trim loop, {trimmed} with it"

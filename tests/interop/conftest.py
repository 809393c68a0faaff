"""Fixtures for interop tests against RTSP servers we did not write (``rtsp_servers.py`` has
the launch code and the footage).

``footage`` transcodes one shared asset clip once per session with PyAV (8 s, 640x360, 10 fps,
a keyframe a second, each frame stamped with its number, MPEG-TS) in each of
:data:`rtsp_servers.VARIANTS`: H.264 without B-frames (sliced threads), H.264 with B-frames
(libx264 ``bframes=2``), H.265. The folder is readable by ``nobody`` (VLC runs as nobody when
we are root) and removed at the end. ``gst_rtsp`` serves all three from one GStreamer RTSP
server (mounts ``/h264``, ``/h264-bframes``, ``/h265``). Both skip where the assets or the
server are absent.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rtsp_servers as servers
from rtsp_servers import GstServer

GOP = 10  # frames between keyframes: one a second at 10 fps
SECONDS = 8


@pytest.fixture(scope="session")
def footage() -> Iterator[dict[str, Path]]:
    clip = servers.ASSETS / "videos" / servers.CLIP
    if not clip.exists():
        pytest.skip(f"test asset {clip} not found")
    work = servers.readable_dir("interop-footage-")
    try:
        out = {variant: work / f"{variant}.ts" for variant in servers.VARIANTS}
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(out)) as pool:  # the encoders release the GIL
            list(pool.map(lambda v: servers.transcode(clip, out[v], v, seconds=SECONDS, gop=GOP), out))
        for path in out.values():
            path.chmod(0o644)
        print(f"footage: {time.monotonic() - t0:.1f} s to transcode {len(out)} variants")
        yield out
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def gst_rtsp(footage: dict[str, Path]) -> Iterator[GstServer]:
    if why := servers.gst_missing():
        pytest.skip(why)
    mounts = {v: (path, "h265" if servers.VARIANTS[v].codec == "hevc" else "h264") for v, path in footage.items()}
    with servers.serve_gst(mounts) as server:
        yield server

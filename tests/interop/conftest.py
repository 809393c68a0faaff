"""Fixtures for interop tests against GStreamer's RTSP server (an RTSP stack we did not write).

``gst_rtsp`` transcodes one shared asset clip once per session with PyAV (libx264 and libx265,
640x360, 10 fps, a keyframe every 20 frames, MPEG-TS) and serves both with
``gst_rtsp_server.py`` under Debian's ``/usr/bin/python3`` on a free port. Skips where the
assets or python3-gi / gst-rtsp-server are absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ASSETS = Path(os.environ.get("CAMERA_HUB_ASSETS", HERE.parents[2] / "shared" / "assets"))
SYSTEM_PYTHON = "/usr/bin/python3"
CLIP = "intel_one-by-one-person-detection.mp4"


@dataclass(frozen=True)
class GstServer:
    port: int

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"


def transcode(src: Path, dst: Path, codec: str, seconds: int = 8) -> None:
    """``seconds`` of ``src`` as 640x360 10 fps MPEG-TS, GOP 20, no B-frames."""
    import av

    options = {"preset": "ultrafast", "tune": "zerolatency"} if codec == "libx264" else {
        "preset": "ultrafast", "x265-params": "keyint=20:min-keyint=20:bframes=0:log-level=error"}
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.gop_size = 20
        stream.options = options
        vin = inp.streams.video[0]
        step = max(1, round(float(vin.average_rate or 10) / 10))
        n = 0
        for i, frame in enumerate(inp.decode(vin)):
            if i % step:
                continue
            img = av.VideoFrame.from_ndarray(frame.reformat(640, 360, "yuv420p").to_ndarray(), format="yuv420p")
            img.pts, img.time_base = n, Fraction(1, 10)
            out.mux(stream.encode(img))
            n += 1
            if n >= seconds * 10:
                break
        out.mux(stream.encode())


def _gi_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def gst_rtsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GstServer]:
    clip = ASSETS / "videos" / CLIP
    if not clip.exists():
        pytest.skip(f"test asset {clip} not found")
    if not _gi_available():
        pytest.skip("GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) not installed")
    tmp = tmp_path_factory.mktemp("gst")
    transcode(clip, tmp / "clip264.ts", "libx264")
    transcode(clip, tmp / "clip265.ts", "libx265")
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(HERE / "gst_rtsp_server.py"), "--mount", f"/h264={tmp / 'clip264.ts'}:h264",
         "--mount", f"/h265={tmp / 'clip265.ts'}:h265"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"GStreamer RTSP server did not start: {line!r} {err[-2000:]}")
        port = int(line.split()[1])
        print(f"GStreamer RTSP server on port {port}", file=sys.stderr)
        yield GstServer(port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

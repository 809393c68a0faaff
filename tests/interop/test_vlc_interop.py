"""Our Source against VLC's RTSP server (Debian ``vlc-bin`` + ``vlc-plugin-base``; issue #13).

VLC's ``#rtp{sdp=rtsp://…}`` output refuses RTP over TCP (``461 Unsupported transport``), so the
camera must come up through ``transport: auto`` falling back to UDP. With ``--loop`` VLC ends its
track at every loop of the file: an RTCP BYE (with SSRC 0), then it closes the RTSP connection;
the Source must reopen without going down and keep sampling keyframes. The clip is H.264 with
B-frames (VLC sends its timestamps out of order), SPS/PPS in-band and in the SDP's fmtp (with a
trailing ``;``), absolute control URLs and a Content-Base without a trailing slash.

The media is made here with PyAV (4 s, 320x180, 10 fps, a keyframe a second, a box moving 4 px a
frame). VLC will not run as root: as root it runs as ``nobody`` through ``setpriv``
(``rtsp_servers.serve_vlc``). Skips where ``cvlc`` is absent.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import rtsp_servers as servers

from camera_hub.clips import remux_to_mp4
from camera_hub.config import RtspUrl
from camera_hub.events import EncodedPacket, Sample
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.reactor import Reactor
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source, SourceOptions

CLIP_S, FPS, W, H = 4, 10, 320, 180


def make_clip(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "veryfast", "x264-params": "keyint=10:min-keyint=10:scenecut=0:bframes=2"}
        rng = np.random.default_rng(13)
        for i in range(CLIP_S * FPS):
            img = np.full((H, W, 3), 60, np.uint8) + rng.integers(0, 30, (H, W, 3), np.uint8)
            img[60:120, 10 + 6 * i:50 + 6 * i] = 230
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.fixture
def vlc_rtsp() -> Iterator[str]:
    if why := servers.vlc_missing():
        pytest.skip(why)
    work = servers.readable_dir("vlc-interop-")  # not pytest's tmp_path: nobody must read it
    try:
        make_clip(work / "clip.mp4")
        (work / "clip.mp4").chmod(0o644)
        with servers.serve_vlc(work / "clip.mp4") as url:
            yield url
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_source_reads_vlc_over_udp_through_auto_across_file_loops(vlc_rtsp: str, tmp_path: Path) -> None:
    samples: list[Sample] = []
    arrivals: list[EncodedPacket] = []
    ring = PacketRing(10.0, 8 << 20)
    append = ring.append
    ring.append = lambda pkt: (arrivals.append(pkt), append(pkt))[1]  # type: ignore[method-assign]
    src = Source("vlc", RtspUrl(vlc_rtsp), sampler=Sampler("vlc", 0.2), ring=ring, gate=OpenGate(4),
                 backoff=Backoff(0.5, 2.0), reactor=Reactor(name="vlc-reactor"),
                 options=SourceOptions(), on_sample=samples.append)  # transport "auto", the default
    starts: list[int] = []  # where each session's frames begin in arrivals
    begin = src._begin
    src._begin = lambda info: (starts.append(len(arrivals)), begin(info))[1]  # type: ignore[method-assign]
    t0 = time.monotonic()
    src.start()
    try:
        while src.state != "up" and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        up_after = time.monotonic() - t0
        while src.bye_reopens < 2 and time.monotonic() - t0 < 3 * CLIP_S + 8:
            time.sleep(0.05)
        before = len([s for s in samples if s.keyframe])
        reopened_at = time.monotonic()
        while len([s for s in samples if s.keyframe]) < before + 3 and time.monotonic() - reopened_at < 6:
            time.sleep(0.05)
    finally:
        src.stop()
        assert src.done.wait(10)
    keyframes = [s for s in samples if s.keyframe]
    gaps = [b.received_at - a.received_at for a, b in zip(arrivals, arrivals[1:], strict=False)]
    print(f"VLC: up after {up_after:.2f} s via {src.transport} ({src.transport_note}); {src.bye_reopens} reopens "
          f"after BYE; {len(arrivals)} frames, {len(keyframes)} keyframes sampled; longest gap between frames "
          f"{max(gaps):.2f} s; history {src.history}; rtp {src.rtp_stats()}", file=sys.stderr)
    assert src.state != "down" and [h[1] for h in src.history] == ["up"], src.history  # never down
    assert (src.transport, src.transport_note) == ("udp", "tcp refused (461)")
    assert src.bye_reopens >= 2 and src.rtp_stats()["byes"] >= 2  # two loops crossed
    assert len(keyframes) >= before + 3  # keyframes still sampled after the loops
    assert all(s.frame.shape == (H, W, 3) for s in keyframes)
    assert src.b_frames and src.decode_errors == 0 and src.rtp_stats()["lost"] == 0
    assert max(gaps) < 1.5  # the reopen at a loop costs well under a second of frames

    # the clip writer on one loop's frames (VLC's B-frames, decode times rebuilt): shown in order
    sessions = [arrivals[a:b] for a, b in zip(starts, [*starts[1:], len(arrivals)], strict=True)]
    print("VLC sessions (frames, seconds):", [(len(x), round(x[-1].received_at - x[0].received_at, 2))
                                              for x in sessions], file=sys.stderr)
    assert len(sessions) == src.bye_reopens + 1
    loop = max(sessions, key=len)
    loop = loop[next(i for i, p in enumerate(loop) if p.is_keyframe):]  # joined mid-GOP: from a keyframe
    assert len(loop) >= 8 and ring.info is not None  # VLC rushes a loop's first ~1.5 s out before we reopen
    remux_to_mp4(ring.info, loop, tmp_path / "loop.mp4")
    with av.open(str(tmp_path / "loop.mp4")) as c:
        xs = [int(np.argmax(f.to_ndarray(format="gray")[90] > 150)) for f in c.decode(video=0)]
    assert len(xs) == len(loop) and xs == sorted(xs), xs

"""Our Source against GStreamer's RTSP server: H.264 and H.265, TCP and UDP. The clips come
from libx264/libx265 with sliced threads (several slices per frame), unlike the simulator."""

from __future__ import annotations

import time

import pytest

from camera_hub.config import RtspUrl
from camera_hub.events import Sample
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.rtsp import RtspReceiver
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source, SourceOptions


def _read(url: str, seconds: float, transport: str, receiver: str) -> tuple[Source, list[Sample]]:
    samples: list[Sample] = []
    src = Source("gst", RtspUrl(url), sampler=Sampler("gst", 2.0), ring=PacketRing(10.0, 8 << 20),
                 gate=OpenGate(4), backoff=Backoff(0.5, 2.0),
                 options=SourceOptions(transport=transport, receiver=receiver), on_sample=samples.append)
    src.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (src.state == "up" and len(samples) >= 2):
            time.sleep(0.1)
    finally:
        src.stop()
        assert src.done.wait(10)
    return src, samples


# native reads rtsp:// over TCP or UDP ("auto": TCP, which GStreamer offers); FFmpeg compares
@pytest.mark.parametrize(("mount", "codec", "transport", "receiver"), [
    ("h264", "h264", "tcp", "native"), ("h265", "hevc", "tcp", "native"), ("h264", "h264", "udp", "native"),
    ("h265", "hevc", "auto", "native"),
    ("h264", "h264", "tcp", "pyav"), ("h265", "hevc", "tcp", "pyav"), ("h264", "h264", "udp", "pyav")])
def test_source_reads_gstreamer(gst_rtsp, mount: str, codec: str, transport: str, receiver: str) -> None:
    src, samples = _read(gst_rtsp.url(mount), 20.0, transport, receiver)
    assert [h[1] for h in src.history] == ["up"], src.history  # never degraded: no partial frames decoded
    assert src.decode_errors == 0
    assert (src.codec, src.width, src.height) == (codec, 640, 360)
    assert src.transport == ("tcp" if transport == "auto" else transport) and not src.transport_note
    assert len(samples) >= 2 and all(s.frame.shape == (360, 640, 3) and s.keyframe for s in samples)
    assert src.sampler.decoded <= src.packets / 5  # keyframes only
    info, pkts = src.ring.window(0.0, time.time())
    assert info.codec == codec and pkts[0].is_keyframe
    # whole frames in the ring even though x264's sliced threads send each frame in pieces
    pts = [p.pts for p in pkts]
    assert None not in pts[1:] and pts[1:] == sorted(set(pts[1:]))


def test_a_second_reader_joins_a_stream_gstreamer_already_plays(gst_rtsp) -> None:
    """GStreamer shares a mount's stream between clients; once it plays, its SDP says
    ``a=range:npt=now-`` and it answers 503 to a PLAY with ``Range: npt=0.000-`` (a seek it cannot
    do). A second worker reading the camera (a handover) or a second camera entry must get in."""
    first = RtspReceiver(gst_rtsp.url("h264"))
    try:
        first.open()
        frames = first.packets()
        assert sum(next(frames).is_keyframe for _ in range(15)) >= 1
        src, samples = _read(gst_rtsp.url("h264"), 10.0, "auto", "native")
        assert [h[1] for h in src.history] == ["up"] and len(samples) >= 2, src.history
        assert next(frames).data  # the first reader goes on
    finally:
        first.close()

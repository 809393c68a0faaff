"""The interop matrix (issue #13): our Source against the RTSP servers Debian ships and we did not
write, each serving real footage (``conftest.footage``: a shared asset clip as H.264 without
B-frames, H.264 with B-frames, H.265).

For each server x footage: the camera comes up with ``transport: auto`` and nothing else set
(GStreamer offers RTP over TCP; VLC refuses it with 461, so ``auto`` reads UDP), keyframes are
sampled (decoded pictures of the right size, each the keyframe it should be), and a clip cut
from the packet ring with ``write_clip`` plays: decoded back with PyAV, its frames come in
display order (pts rising, the frame numbers stamped into the footage consecutive) for at least
3 s. GStreamer is read over explicit ``transport: udp`` too.

FFmpeg cannot serve RTSP for playback (``rtsp_servers.FFMPEG_NO_PLAYBACK``): its rows are strict
xfails that run the attempt (they turn into failures the day Debian's ffmpeg serves), and
``test_ffmpeg_listen_mode_is_record_only`` checks what its listen mode does answer, over TCP and
UDP. The result table, with versions, is in docs/operations.md (*Camera transports*).
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import av
import pytest
import rtsp_servers as servers
from conftest import GOP, SECONDS

from camera_hub.clips import write_clip
from camera_hub.config import RtspUrl
from camera_hub.events import Sample
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.rtsp import RtspReceiver
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source, SourceOptions, classify

CLIP_MIN_S = 3.0  # the clip must play at least this long
WAIT_S = 20.0  # for the camera to come up and the ring to hold CLIP_MIN_S


class CameraDown(Exception):
    """The camera went down before it came up (the reason is the Source's)."""


# (server, transport asked for) -> (transport in use, transport_note)
EXPECT = {("gst", "auto"): ("tcp", ""), ("gst", "udp"): ("udp", ""),
          ("vlc", "auto"): ("udp", "tcp refused (461)"), ("ffmpeg", "auto"): ("", "")}


def _cases() -> list:
    cases = []
    for server, transport in EXPECT:
        for variant in servers.VARIANTS:
            marks = [pytest.mark.xfail(raises=CameraDown, strict=True, reason=servers.FFMPEG_NO_PLAYBACK)] \
                if server == "ffmpeg" else []
            cases.append(pytest.param(server, variant, transport, marks=marks, id=f"{server}-{variant}-{transport}"))
    return cases


def _read(url: str, transport: str) -> tuple[Source, list[Sample], float]:
    """Read the camera until it is up, has sampled 3 keyframes and its ring holds CLIP_MIN_S
    seconds; returns the stopped Source, its samples and how long it took to come up."""
    samples: list[Sample] = []
    options = SourceOptions() if transport == "auto" else SourceOptions(transport=transport)  # auto: the default
    src = Source("cam", RtspUrl(url), sampler=Sampler("cam", 0.5), ring=PacketRing(10.0, 8 << 20),
                 gate=OpenGate(4), backoff=Backoff(0.5, 2.0), options=options, on_sample=samples.append)
    t0 = time.monotonic()
    up_after = None
    src.start()
    try:
        while time.monotonic() - t0 < WAIT_S:
            if src.state == "down":
                raise CameraDown(src.reason)
            if src.state == "up" and up_after is None:
                up_after = time.monotonic() - t0
            got = src.ring.window(0.0, time.time())
            span = got[1][-1].received_at - got[1][0].received_at if got else 0.0
            if up_after is not None and len(samples) >= 3 and span >= CLIP_MIN_S:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"not up with {CLIP_MIN_S} s in the ring after {WAIT_S} s: {src.state} {src.reason} "
                        f"{list(src.history)}, {src.packets} frames, {len(samples)} samples")
    finally:
        src.stop()
        assert src.done.wait(10)
    return src, samples, up_after or 0.0


@pytest.mark.parametrize(("server", "variant", "transport"), _cases())
def test_camera_comes_up_samples_keyframes_and_clips_play(request: pytest.FixtureRequest, footage: dict[str, Path],
                                                          tmp_path: Path, server: str, variant: str,
                                                          transport: str) -> None:
    v = servers.VARIANTS[variant]
    started = time.monotonic()
    if server == "gst":
        src, samples, up_after = _read(request.getfixturevalue("gst_rtsp").url(variant), transport)
    elif server == "vlc":
        if why := servers.vlc_missing():
            pytest.skip(why)
        with servers.serve_vlc(footage[variant]) as url:
            src, samples, up_after = _read(url, transport)
    else:
        if why := servers.ffmpeg_missing():
            pytest.skip(why)
        with servers.ffmpeg_serve(footage[variant]) as (url, _, said):
            print(f"ffmpeg: {said.strip()[-300:]!r}", file=sys.stderr)
            src, samples, up_after = _read(url, transport)

    # up through the transport expected, never down or degraded, nothing lost or undecodable
    assert [h[1] for h in src.history] == ["up"], src.history
    assert (src.transport, src.transport_note) == EXPECT[server, transport]
    assert (src.codec, src.width, src.height) == (v.codec, servers.W, servers.H)
    assert src.b_frames == v.b_frames
    assert src.decode_errors == 0 and src.rtp_stats().get("lost", 0) == 0, src.rtp_stats()
    # keyframes sampled, only keyframes decoded: each sample is a keyframe of the footage
    assert len(samples) >= 3 and all(s.keyframe and s.frame.shape == (servers.H, servers.W, 3) for s in samples)
    assert [servers.read_stamp(s.frame.mean(axis=2)) % GOP for s in samples] == [0] * len(samples)
    assert src.sampler.decoded <= src.packets / 5

    # a clip cut from the ring plays: every frame decodes, in display order, for CLIP_MIN_S or more
    info, packets = write_clip(src.ring, 0.0, time.time(), tmp_path / "clip.mp4")
    with av.open(str(tmp_path / "clip.mp4")) as clip:
        stream = clip.streams.video[0]
        frames = list(clip.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        assert stream.codec_context.name == v.codec and (stream.width, stream.height) == (servers.W, servers.H)
    assert len(frames) == len(packets) and frames[0].key_frame
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts)), pts
    stamps = [servers.read_stamp(f.to_ndarray(format="gray")) for f in frames]
    steps = [(b - a) % (SECONDS * servers.FPS) for a, b in zip(stamps, stamps[1:], strict=False)]
    # consecutive frames; with B-frames the cut may fall after a P-frame whose B-frames (shown
    # before it) had not come yet: the last frame then skips those
    assert set(steps[:-1]) == {1} and (steps[-1] == 1 or (v.b_frames and 1 < steps[-1] <= 3)), stamps
    assert duration >= CLIP_MIN_S and len(frames) >= CLIP_MIN_S * servers.FPS
    print(f"{server} {variant} transport={transport}: up after {up_after:.2f} s via {src.transport} "
          f"({src.transport_note or '-'}), b_frames={src.b_frames}, {src.packets} frames, {len(samples)} keyframes "
          f"sampled, clip {len(frames)} frames {duration:.1f} s, {time.monotonic() - started:.1f} s in all",
          file=sys.stderr)


def test_ffmpeg_listen_mode_is_record_only() -> None:
    """FFmpeg's one RTSP server mode (``-rtsp_flags listen`` on its input) takes ANNOUNCE and
    RECORD only: its OPTIONS answer offers no DESCRIBE or PLAY, and it ends the connection at our
    DESCRIBE, before any SETUP, so over TCP and UDP alike; the Source calls that ``eof`` (down,
    not hung). Each FFmpeg takes one connection: one per check."""
    if why := servers.ffmpeg_missing():
        pytest.skip(why)
    with servers.ffmpeg_listen() as url, socket.create_connection(servers.host_port(url), timeout=5) as s:
        s.sendall(f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        reply = s.recv(4096).decode()
    public = {m.strip() for ln in reply.split("\r\n") if ln.lower().startswith("public:")
              for m in ln.split(":", 1)[1].split(",")}
    assert reply.startswith("RTSP/1.0 200") and {"ANNOUNCE", "RECORD", "SETUP"} <= public, reply
    assert not public & {"DESCRIBE", "PLAY"}, reply
    for transport in ("tcp", "udp"):
        with servers.ffmpeg_listen() as url:
            rx = RtspReceiver(url, transport=transport, connect_timeout_s=3)
            try:
                with pytest.raises((EOFError, ConnectionResetError)) as err:
                    rx.open()
            finally:
                rx.close()
            assert rx.track is None and rx.transport == ""  # no session description, no SETUP
            assert classify(err.value, reading=False) == "eof"

"""RTSP transports as cameras offer them (issue #13): RTP over UDP in the native receiver (client
ports from a range, jitter buffer, loss counted, RTCP receiver reports), ``transport: auto``
falling back from TCP to UDP on 461, a new SSRC or an RTCP BYE without stalling, B-frames, and
VLC's SDP. Real sockets throughout: :class:`rtp_helpers.UdpCamera` serves RTSP over TCP and RTP
over UDP on 127.0.0.1 the way VLC does (tests/interop/test_vlc_interop.py runs VLC itself)."""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import random
import socket
import struct
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from ingest_helpers import city
from rtp_helpers import Frame, UdpCamera, UdpSession, h264_frames, packetize, rtcp_bye, stream

from camera_hub import metrics
from camera_hub.clips import remux_to_mp4
from camera_hub.config import Camera, IngestSettings, RtspUrl
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest import rtp as rtpmod
from camera_hub.ingest.backoff import Backoff, OpenGate
from camera_hub.ingest.reactor import Reactor
from camera_hub.ingest.ring import PacketRing
from camera_hub.ingest.rtp import JitterBuffer, bind_pair, parse_rtcp
from camera_hub.ingest.rtsp import RtpByeError, RtspReceiver, RtspStatusError, parse_sdp
from camera_hub.ingest.sampler import Sampler
from camera_hub.ingest.source import Source, SourceOptions
from camera_hub.ingest.status import read_states
from camera_hub.ingest.worker import Worker

S = b"\x00\x00\x00\x01"
FRAMES = h264_frames(30)  # 3 GOPs of 10, B-frames, SPS/PPS before every IDR


def annexb(f: Frame) -> bytes:
    return b"".join(S + n for n in f.nals)


# ---------------------------------------------------------------------------- units
def test_jitter_buffer_reorders_gives_up_on_gaps_and_stays_bounded() -> None:
    jb = JitterBuffer(max_packets=8, max_delay_s=0.2)
    assert jb.push(1, "a1", 0.0) == ["a1"]
    assert jb.push(3, "a3", 0.01) == [] and len(jb) == 1
    assert jb.push(2, "a2", 0.02) == ["a2", "a3"] and jb.reordered == 1
    assert jb.push(3, "dup", 0.03) == [] and jb.late == 1  # a duplicate of what went on
    assert jb.push(5, "a5", 0.04) == []  # 4 is missing
    assert jb.expire(0.1) == [] and jb.expire(0.25) == ["a5"] and jb.skipped == 1  # waited out
    assert jb.push(4, "a4", 0.3) == [] and jb.late == 2  # too late: 5 went on without it
    for seq in range(7, 7 + 20):  # 6 never comes: never more than max_packets held
        jb.push(seq, seq, 0.4)
        assert len(jb) <= 8
    assert jb.skipped == 2 and jb.push(6, 6, 0.4) == [] and jb.late == 3
    assert jb.push(0xFFFF, "behind", 0.5) == [] and jb.late == 4  # 28 behind: late
    restart = (27 - 5000) & 0xFFFF  # far behind: the sender restarted its sequence, it goes on
    assert jb.push(restart, "restart", 0.5) == ["restart"] and len(jb) == 0
    assert jb.push(restart + 1, "next", 0.5) == ["next"]


def test_vlc_sdp_trailing_semicolon_absolute_controls_and_content_base_without_slash() -> None:
    vlc = ("v=0\r\no=- 17201153805841710883 17201153805841710883 IN IP4 vm\r\ns=Unnamed\r\ni=N/A\r\n"
           "c=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:vlc 3.0.24\r\na=recvonly\r\na=type:broadcast\r\na=charset:UTF-8\r\n"
           "a=control:rtsp://127.0.0.1:8554/x\r\nm=video 0 RTP/AVP 96\r\nb=RR:0\r\na=rtpmap:96 H264/90000\r\n"
           "a=fmtp:96 packetization-mode=1;profile-level-id=64000c;"
           "sprop-parameter-sets=Z2QADKzZQUGfnhAAAAMAEAAAAwFA8UKZYA==,aO+Pyw==;\r\n"
           "a=control:rtsp://127.0.0.1:8554/x/trackID=0\r\n")
    t = parse_sdp(vlc, "rtsp://127.0.0.1:8554/x")  # Content-Base as VLC sends it: no trailing slash
    assert (t.codec, t.payload_type, t.clock_rate) == ("h264", 96, 90000)
    assert t.control == "rtsp://127.0.0.1:8554/x/trackID=0" and t.aggregate == "rtsp://127.0.0.1:8554/x"
    sps, pps = base64.b64decode("Z2QADKzZQUGfnhAAAAMAEAAAAwFA8UKZYA=="), base64.b64decode("aO+Pyw==")
    assert t.extradata == S + sps + S + pps  # the trailing ";" did not spoil the last parameter
    relative = vlc.replace("a=control:rtsp://127.0.0.1:8554/x/trackID=0", "a=control:trackID=0") \
        .replace("a=control:rtsp://127.0.0.1:8554/x\r\n", "a=control:*\r\n")
    t = parse_sdp(relative, "rtsp://cam:554/live/ch1")
    assert t.control == "rtsp://cam:554/live/ch1/trackID=0" and t.aggregate == ""


def test_udp_port_pairs_come_from_the_configured_range() -> None:
    rng = random.Random(13)
    for _ in range(20):  # a range nobody else on this machine holds
        low = rng.randrange(20000, 30000, 2)
        try:
            a = bind_pair(socket.AF_INET, "127.0.0.1", low, low + 3)
        except OSError:
            continue
        break
    try:
        b = bind_pair(socket.AF_INET, "127.0.0.1", low, low + 3)
        ports = sorted(s.getsockname()[1] for s in (*a, *b))
        assert ports == [low, low + 1, low + 2, low + 3]  # RTP even, RTCP the next; both pairs used
        assert a[0].getsockname()[1] % 2 == 0 and a[1].getsockname()[1] == a[0].getsockname()[1] + 1
        with pytest.raises(OSError) as err:
            bind_pair(socket.AF_INET, "127.0.0.1", low, low + 3)
        assert err.value.errno == errno.EADDRINUSE
    finally:
        for s in (*a, *b):
            s.close()
    with pytest.raises(ValueError):
        IngestSettings(rtp_udp_ports=(50001, 50002))  # no even/odd pair inside
    assert IngestSettings().rtp_udp_ports == (50000, 59999)
    cam = {"id": "c", "name": "c", "main_url": "rtsp://h/x", "location": {"lat": 0, "lon": 0}, "grids": ["g"]}
    assert Camera.model_validate(cam).transport == "auto"
    assert SourceOptions().ffmpeg_options()["rtsp_transport"] == "tcp"  # FFmpeg reads "auto" as TCP


# ---------------------------------------------------------------------------- receiver, real sockets
def test_auto_falls_back_to_udp_puts_packets_in_order_counts_loss_and_sends_receiver_reports(monkeypatch) -> None:
    monkeypatch.setattr(rtpmod, "RTCP_INTERVAL_S", 0.1)
    packets = packetize(FRAMES, ssrc=0x1234, seq=65500, ts0=0xFFFF0000, mtu=120)  # both wrap on the way
    by_frame: dict[int, list[bytes]] = {}
    for i, d in packets:
        by_frame.setdefault(i, []).append(d)
    multi = [i for i, ds in by_frame.items() if len(ds) >= 3]
    swapped, dropped = multi[1], next(i for i in multi[2:] if not FRAMES[i].key)
    done = threading.Event()

    def play(s: UdpSession) -> None:
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.2", 0))  # another host: anyone may send to an open UDP port
        stranger.sendto(packets[0][1], ("127.0.0.1", s.client[1]))
        stranger.close()

        def order(i: int, ds: list[bytes]) -> list[bytes]:
            if i == swapped:
                return [ds[1], ds[0], *ds[2:]]  # the second datagram overtakes the first
            if i == dropped:
                return [ds[0], *ds[2:]]
            return ds
        stream(s, packets, fps=100, order=order)
        time.sleep(0.3)  # a receiver report after the last packet
        done.set()
        s.hangup()

    cam = UdpCamera(FRAMES, play)
    rx = RtspReceiver(cam.url, read_timeout_s=2.0, udp_ports=(40000, 49999))
    try:
        rx.open()
        assert (rx.transport, rx.tcp_refused) == ("udp", 461)
        port = rx.udp[0].getsockname()[1]
        assert 40000 <= port < 49999 and port % 2 == 0
        got: list[EncodedPacket] = []
        with pytest.raises(EOFError):
            got.extend(rx.packets())
    finally:
        rx.close()
        cam.close()
    assert done.is_set()
    assert [r.split()[0] for r in cam.requests] == ["DESCRIBE", "SETUP", "SETUP", "PLAY"]
    want = [annexb(f) for i, f in enumerate(FRAMES) if i != dropped]
    assert [p.data for p in got] == want  # the swapped frame whole, the one with a lost packet dropped
    assert [p.is_keyframe for p in got] == [f.key for i, f in enumerate(FRAMES) if i != dropped]
    assert [p.pts for p in got] == [f.pts * 9000 for i, f in enumerate(FRAMES) if i != dropped]  # across the wrap
    assert rx.jitter.reordered == 1 and rx.depacketizer.lost_packets == 1 and rx.depacketizer.lost == 1
    assert rx.foreign == 1
    blocks = [body for r in cam.sessions[0].reports for pt, count, body in parse_rtcp(r) if pt == 201 and count]
    assert blocks, "no receiver report with a report block reached the camera"
    ssrc, lost, ext_max = struct.unpack(">4xIII", blocks[-1][:16])
    assert ssrc == 0x1234 and lost & 0xFFFFFF == 1
    assert ext_max == 65500 + len(packets) - 1  # the extended highest sequence number, past the wrap
    assert any(pt == 202 for r in cam.sessions[0].reports for pt, _, _ in parse_rtcp(r))  # SDES CNAME with it


def test_transport_tcp_is_refused_and_udp_is_asked_for_at_once() -> None:
    cam = UdpCamera(FRAMES, lambda s: None)
    try:
        rx = RtspReceiver(cam.url, transport="tcp")
        with pytest.raises(RtspStatusError) as err:
            rx.open()
        rx.close()
        assert err.value.status == 461
        rx = RtspReceiver(cam.url, transport="udp")
        rx.open()
        rx.close()
        assert rx.transport == "udp" and rx.tcp_refused == 0
    finally:
        cam.close()
    assert [r.split()[0] for r in cam.requests][:5] == ["DESCRIBE", "SETUP", "DESCRIBE", "SETUP", "PLAY"]


def test_a_new_ssrc_resyncs_without_a_stall_and_bye_then_silence_ends_the_session() -> None:
    first = packetize(FRAMES[:20], ssrc=0xAAAA, seq=100, ts0=5000)
    second = packetize(FRAMES[:20], ssrc=0xBBBB, seq=40000, ts0=123456789)  # a new track: anywhere

    def play(s: UdpSession) -> None:
        stream(s, first, fps=100)
        stream(s, second[:len(second) // 2], fps=100)
        s.send(first[-1][1])  # a straggler of the old sender: dropped, it does not take over again
        stream(s, second[len(second) // 2:], fps=100)
        time.sleep(0.1)
        s.send(rtcp_bye(0), rtcp=True)  # VLC's BYE: SSRC 0; then nothing, the connection stays open

    cam = UdpCamera(FRAMES, play)
    reactor = Reactor(name="test-udp-reactor")
    got: list[EncodedPacket] = []
    ended: list[BaseException | None] = []
    rx = RtspReceiver(cam.url, bye_timeout_s=0.5)
    try:
        rx.open()
        t0 = time.monotonic()
        reactor.add(rx, got.append, ended.append, 5.0)
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.monotonic() - t0
    finally:
        cam.close()
    assert ended and isinstance(ended[0], RtpByeError), ended
    assert took < 2.5  # the BYE's 0.5 s, not the 5 s read timeout
    assert rx.ssrc_changes == 1 and rx.stray == 1 and rx.byes == 1 and rx.depacketizer.lost_packets == 0
    assert len(got) == 40 and [p.is_keyframe for p in got] == [f.key for f in FRAMES[:20]] * 2
    before, after = [p.pts for p in got[:20]], [p.pts for p in got[20:]]
    assert min(after) > max(before)  # pts go on across the new sender, whose timestamps start anywhere
    assert got[20].data == annexb(FRAMES[0])  # re-synced at once: its first frame is not lost


def test_clip_of_a_b_frame_stream_plays_in_display_order(tmp_path) -> None:
    """The native reader knows only presentation times (dts = pts, going backwards at B-frames):
    the clip writer must rebuild decode times, not push B-frames past the frames shown after them."""
    info = StreamInfo("h264", 160, 96, None, Fraction(1, 90000))
    pkts = [EncodedPacket(annexb(f), f.pts * 9000, f.pts * 9000, f.key, info.time_base, 100.0 + i / 10)
            for i, f in enumerate(FRAMES)]
    remux_to_mp4(info, pkts, tmp_path / "c.mp4")
    xs = []
    with av.open(str(tmp_path / "c.mp4")) as c:
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="gray")
            xs.append(int(np.argmax(img[40] > 150)))  # the box's left edge on a row through it
    assert len(xs) == 30 and xs == sorted(xs) and xs[-1] - xs[0] >= 100, xs


# ---------------------------------------------------------------------------- the Source and the worker
def vlc_like(frames: list[Frame], *, hangup: bool = True):
    """Each session: the clip once with a fresh SSRC, sequence and timestamp base, then BYE with
    SSRC 0 and (as VLC) the connection closed."""
    def play(s: UdpSession) -> None:
        r = random.Random()
        stream(s, packetize(frames, ssrc=r.getrandbits(32), seq=r.getrandbits(16), ts0=r.getrandbits(32)), fps=40)
        s.send(rtcp_bye(0), rtcp=True)
        if hangup:
            time.sleep(0.0005)
            s.hangup()
    return play


def test_source_auto_udp_reopens_after_bye_without_going_down_and_reports_b_frames(caplog) -> None:
    caplog.set_level(logging.INFO, logger="camera_hub.ingest.source")
    cam = UdpCamera(FRAMES, vlc_like(FRAMES))
    samples = []
    src = Source("vlcish", RtspUrl(cam.url), sampler=Sampler("vlcish", 0.1), ring=PacketRing(10.0, 8 << 20),
                 gate=OpenGate(4), backoff=Backoff(1.0, 5.0), reactor=Reactor(name="test-src-reactor"),
                 options=SourceOptions(read_timeout_s=2.0, bye_timeout_s=0.5), on_sample=samples.append)
    src.start()
    try:
        deadline = time.monotonic() + 8
        while src.bye_reopens < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        src.stop()
        assert src.done.wait(5)
        cam.close()
    assert src.bye_reopens >= 3, (src.history, src.rtp_stats())
    assert [h[1] for h in src.history] == ["up"], src.history  # never down across the loops
    assert (src.transport, src.transport_note, src.b_frames) == ("udp", "tcp refused (461)", True)
    assert src.reconnects == src.bye_reopens and src.rtp_stats()["byes"] >= 3 and src.decode_errors == 0
    assert len([s for s in samples if s.keyframe]) >= 3 * 3 - 1  # keyframes sampled in every session
    assert sum(1 for r in cam.requests if r.startswith("SETUP")) == len(cam.sessions) + 1  # TCP tried once
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    b_frames = [r for r in caplog.records if "B-frames" in r.getMessage()]
    assert len(refused) == 1 and len(b_frames) == 1  # each said once


async def test_worker_status_and_metrics_say_transport_fallback_b_frames_and_byes(redis_client, redis_prefix) -> None:
    cam = UdpCamera(FRAMES, vlc_like(FRAMES))
    cfg = city([{"id": "udp-cam", "main_url": cam.url}],
               ingest={"bye_timeout_s": 0.5, "read_timeout_s": 2.0, "status_interval_s": 0.2, "heartbeat_s": 0.3,
                       "rtp_udp_ports": [41000, 41999]})
    worker = Worker(cfg, worker_id="w-udp", redis=redis_client, prefix=redis_prefix)
    await worker.start()

    async def status():
        return (await read_states(redis_client, redis_prefix, ["udp-cam"])).get("udp-cam")
    try:
        st = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and not (st and st.byes >= 2):
            await asyncio.sleep(0.2)
            st = await status()
        assert st is not None and st.byes >= 2, st
        assert metrics.CAMERA_TRANSPORT.labels(camera="udp-cam", transport="udp")._value.get() == 1
        assert metrics.CAMERA_B_FRAMES.labels(camera="udp-cam")._value.get() == 1
    finally:
        await worker.stop()
        cam.close()
    assert (st.state, st.transport, st.transport_note, st.b_frames) == ("up", "udp", "tcp refused (461)", True)
    # a BYE is counted as it comes, its reopen when the session has ended
    assert st.rtp_lost == 0 and st.reconnects >= st.byes - 1 and st.ssrc_changes == 0
    assert metrics.RTP_RESYNCS.labels(camera="udp-cam", cause="bye")._value.get() >= 2
    assert metrics.RECONNECTS.labels(camera="udp-cam", reason="bye")._value.get() >= 1

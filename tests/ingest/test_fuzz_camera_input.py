"""Property tests of everything a camera sends us (issue #12): RTSP replies and their headers, SDP
(fmtp, control URLs, sprop parameter sets), the interleaved framing, RTP depacketisation of
H.264 (single NAL, STAP-A, FU-A) and H.265 (single, AP, FU), RTCP.

The strategies build valid-ish messages from their parts (so examples get past the first check
and into the depths of the parsers) and then mutate some bytes. Each example goes through the
targets of :mod:`fuzz_targets` (the receiver fed as the reactor feeds it, real sockets where
production has them), which check the invariants of docs/security.md ("Fuzzing"): only the
documented errors escape, what a session holds stays within its bounds, every call returns.
Clean streams must also come out right: the access units that went in, whatever the packing,
the read sizes, or the reordering the jitter buffer undoes.

Example counts come from a settings profile: ``ci`` (the default: derandomised, the whole file
in well under 30 s on a loaded 2-core machine) or ``long`` (CAMERA_HUB_FUZZ_PROFILE=long, random,
CAMERA_HUB_FUZZ_EXAMPLES examples per test, 5,000 by default). Coverage-guided long runs:
benchmarks/fuzz_rtsp.py (Atheris); crashes found by either are regression tests at the end.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

import pytest
from fuzz_targets import (
    CAMERA_ERRORS,
    SDP,
    SSRC,
    CameraReceiver,
    check_receiver,
    feed_stream,
    interleave,
    interleaved_target,
    join_packets,
    playing,
    rtcp_target,
    rtp_target,
    rtsp_target,
    sdp_target,
    split_packets,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camera_hub.annexb import START
from camera_hub.ingest import rtp as rtpmod
from camera_hub.ingest import rtsp
from camera_hub.ingest.rtsp import RtspProtocolError, parse_sdp, recovery_point

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.register_profile("long", max_examples=int(os.environ.get("CAMERA_HUB_FUZZ_EXAMPLES", "5000")),
                          deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = settings.get_profile(os.environ.get("CAMERA_HUB_FUZZ_PROFILE", "ci"))


def fuzz(examples: int):
    """The profile's settings, ``examples`` per test under ``ci`` (applied per test, so that the
    profile does not leak into other test files)."""
    long = os.environ.get("CAMERA_HUB_FUZZ_PROFILE") == "long"
    return settings(PROFILE, max_examples=PROFILE.max_examples if long else examples)


pytestmark = pytest.mark.timeout(120)  # "every call returns": a hang fails, it does not stall CI


# ---------------------------------------------------------------------------- mutations
@st.composite
def mutated(draw: st.DrawFn, data: bytes, most: int = 4) -> bytes:
    """``data`` with up to ``most`` mutations: a flipped or replaced byte, bytes inserted, cut out,
    repeated, or the end cut off. Interesting bytes: "$", CR LF, 0x00, 0xFF, 0x80 (RTP v2)."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, most))):
        op = draw(st.sampled_from(["flip", "byte", "insert", "delete", "repeat", "truncate"]))
        i = draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and b:
            b[i] = draw(st.sampled_from([0x24, 0x0D, 0x0A, 0x00, 0xFF, 0x80, 0x7F, 0x20]))
        elif op == "insert":
            b[i:i] = draw(st.one_of(st.binary(max_size=8), st.sampled_from([b"$", b"\r\n", b"\r\n\r\n", b"RTSP/1.0 "])))
        elif op == "delete":
            del b[i:i + draw(st.integers(1, 16))]
        elif op == "repeat":
            j = i + draw(st.integers(1, 64))
            b[j:j] = b[i:j]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


# ---------------------------------------------------------------------------- SDP
CONTROLS = ["track1", "trackID=0", "*", "", "rtsp://127.0.0.1:554/cam/trackID=1", "rtsp://[::1]:554/cam/t",
            "rtsp://[bad/t", "rtsp://h:99999/t", "rtsps://h/t", "?ch=1", "../up", "%zz", "trâck", "a b",
            "rtsp://user:pw@h/t", "//other/t", "http://h/t", "\x00"]
BASES = ["rtsp://127.0.0.1:554/cam", "rtsp://127.0.0.1:554/cam/", "", "rtsp://[::1]/cam/", "rtsp://[bad/",
         "rtsp://h:notaport/x", "not a url", "rtsp://h/a?b#c"]
sprop_item = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", " ", "!!", "=", "Z2", "Z2QAH6wrQCgC3QgAAAMACAAAAwGUeMGU", "é", "aM48gA==x", "====",
                     "Z2QAH6wrQCgC3QgAAAMACAAAAwGUeMGU==="]),
)


@st.composite
def fmtp_line(draw: st.DrawFn, pt: str, codec: str) -> str:
    keys = ["sprop-parameter-sets"] if codec == "h264" else ["sprop-vps", "sprop-sps", "sprop-pps"]
    params = [f"{k}={','.join(draw(st.lists(sprop_item, max_size=3)))}" for k in keys if draw(st.booleans())]
    params += draw(st.lists(st.sampled_from(["packetization-mode=1", "profile-level-id=42c01e",
                                             "level-asymmetry-allowed", "=", ";", "x=y=z", " "]), max_size=3))
    sep = draw(st.sampled_from([";", "; ", " ;"]))
    gap = draw(st.sampled_from([" ", "  ", "\t", ""]))  # "a=fmtp:96" and nothing else: no parameters
    return f"a=fmtp:{pt}{gap}" + sep.join(params) + draw(st.sampled_from(["", ";"]))


@st.composite
def sdps(draw: st.DrawFn) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=cam", "t=0 0"]
    if draw(st.booleans()):
        lines.append(f"a=control:{draw(st.sampled_from(CONTROLS))}")
    ranges = st.sampled_from(["a=range:npt=now-", "a=range:npt=0.2-", "a=range: npt = 1.5 -", "a=range:npt=0-",
                              "a=range:npt=999999999.999999999-", "a=range:clock=19961108T142300Z-", "a=range:"])
    if draw(st.booleans()):
        lines.append(draw(ranges))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["video", "video", "audio", "application", "VIDEO"]))
        pts = draw(st.lists(st.sampled_from(["96", "97", "0", "35", "127", "999999999", "1234567890", "x"]),
                            min_size=1, max_size=3))
        lines.append(f"m={kind} 0 RTP/AVP {' '.join(pts)}")
        for pt in pts:
            name = draw(st.sampled_from(["H264", "H265", "HEVC", "h264", "PCMU", "MP4V-ES", "H264 ", "H2.64"]))
            clock = draw(st.sampled_from(["90000", "0", "1", "999999999", "1234567890", "-1", "90000/2", ""]))
            if draw(st.integers(0, 5)):
                lines.append(f"a=rtpmap:{pt}{draw(st.sampled_from([' ', '  ', chr(9)]))}{name}/{clock}")
            if draw(st.booleans()):
                lines.append(draw(fmtp_line(pt, "hevc" if name in ("H265", "HEVC") else "h264")))
            if draw(st.booleans()):
                lines.append(f"a=control:{draw(st.sampled_from(CONTROLS))}")
            if draw(st.integers(0, 3)) == 0:
                lines.append(draw(ranges))
    lines = draw(st.permutations(lines)) if draw(st.integers(0, 9)) == 0 else lines
    return draw(st.sampled_from(["\r\n", "\n", "\r"])).join(lines) + draw(st.sampled_from(["\r\n", "", "\n"]))


@fuzz(150)
@given(sdp=sdps(), base=st.sampled_from(BASES), data=st.data())
def test_sdp_parsing_raises_only_protocol_errors(sdp: str, base: str, data: st.DataObject) -> None:
    try:
        track = parse_sdp(sdp, base)
    except RtspProtocolError:
        track = None
    if track is not None:
        assert track.codec in ("h264", "hevc") and track.clock_rate > 0
        assert track.extradata is None or track.extradata.startswith(START)
    sdp_target(data.draw(mutated(sdp.encode())))


def test_sdp_sprop_parameter_sets_and_controls_come_out_right() -> None:
    """The good cases the properties leave free: what a camera means is what we take."""
    sps, pps = b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80"
    sdp = (f"v=0\r\na=control:rtsp://cam/live/\r\nm=audio 0 RTP/AVP 0\r\na=control:audio\r\nm=video 0 RTP/AVP 97 96\r\n"
           f"a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1; sprop-parameter-sets="
           f"{base64.b64encode(sps).decode()}, {base64.b64encode(pps).decode()} ;\r\na=control:video\r\n")
    t = parse_sdp(sdp, "rtsp://cam/live")
    assert (t.payload_type, t.control, t.aggregate, t.extradata) == (97, "rtsp://cam/live/video", "rtsp://cam/live/",
                                                                      START + sps + START + pps)


# ---------------------------------------------------------------------------- RTP payloads
H264_TYPES = [1, 1, 1, 5, 5, 6, 7, 8, 9, 12, 0, 25, 29, 30, 31]
H265_TYPES = [1, 1, 19, 20, 21, 32, 33, 34, 35, 39, 40, 0, 47, 50, 63]


@st.composite
def nal_unit(draw: st.DrawFn, codec: str, valid: bool = False) -> bytes:
    if codec == "h264":
        kind = draw(st.sampled_from([1, 5, 6, 7, 8] if valid else H264_TYPES))
        head = bytes(((draw(st.integers(0, 3)) << 5) | kind,))
        if kind == 6 and draw(st.booleans()):  # SEI: a recovery point, or another message
            return head + (b"\x06\x01\x00\x80" if draw(st.booleans()) else b"\x05\x02\xaa\xbb\x80")
    else:
        kind = draw(st.sampled_from([1, 19, 20, 21, 32, 33, 34, 39] if valid else H265_TYPES))
        head = bytes((kind << 1, 1))
    return head + draw(st.binary(min_size=1 if valid else 0, max_size=200))


@st.composite
def packed(draw: st.DrawFn, codec: str, nals: list[bytes]) -> list[bytes]:
    """One access unit's NAL units as RTP payloads: each whole, fragmented (FU-A / FU), or with
    its neighbours in an aggregation packet (STAP-A / AP)."""
    hevc, out, i = codec == "hevc", [], 0
    while i < len(nals):
        nal, how = nals[i], draw(st.sampled_from(["single", "fu", "aggregate"]))
        if how == "aggregate":
            k = draw(st.integers(1, min(4, len(nals) - i)))
            group, i = nals[i:i + k], i + k
            head = bytes((48 << 1, 1)) if hevc else b"\x18"
            out.append(head + b"".join(struct.pack(">H", len(n)) + n for n in group))
            continue
        i += 1
        hdr = 2 if hevc else 1
        if how == "single" or len(nal) <= hdr + 1:
            out.append(nal)
            continue
        kind = (nal[0] >> 1) & 0x3F if hevc else nal[0] & 0x1F
        body, size = nal[hdr:], draw(st.integers(1, 64))
        for j in range(0, len(body), size):
            fu = kind | (0x80 if j == 0 else 0) | (0x40 if j + size >= len(body) else 0)
            indicator = bytes(((nal[0] & 0x81) | (49 << 1), nal[1])) if hevc else bytes(((nal[0] & 0xE0) | 28,))
            out.append(indicator + bytes((fu,)) + body[j:j + size])
    return out


def rtp_header(seq: int, ts: int, marker: bool, *, ssrc: bytes = SSRC, csrcs: int = 0, extension: bytes | None = None,
               padding: int = 0, pt: int = 96) -> bytes:
    b0 = 0x80 | csrcs | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    head = struct.pack(">BBHI", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF) + ssrc
    head += bytes(4 * csrcs)
    if extension is not None:
        head += struct.pack(">HH", 0xBEDE, len(extension) // 4) + extension
    return head


@st.composite
def stream(draw: st.DrawFn, codec: str, valid: bool = False, frames: int = 6):
    """(access units as Annex B with their RTP timestamps and key flags, RTP packets): frames of a
    few NAL units, packed as the camera likes, numbered from anywhere (both counters may wrap),
    with CSRCs, header extensions and padding now and then."""
    seq, ts = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF))
    units, packets = [], []
    for _ in range(draw(st.integers(1, frames))):
        nals = draw(st.lists(nal_unit(codec, valid), min_size=1, max_size=5))
        payloads = draw(packed(codec, nals))
        for k, p in enumerate(payloads):
            csrcs = draw(st.sampled_from([0, 0, 0, 1, 15]))
            ext = draw(st.sampled_from([None, None, b"", b"\x10\xaa\x00\x00"]))
            pad = draw(st.sampled_from([0, 0, 0, 1, 4]))
            trailer = (bytes(pad - 1) + bytes((pad,))) if pad else b""
            packets.append(rtp_header(seq, ts, k == len(payloads) - 1, csrcs=csrcs, extension=ext, padding=pad)
                           + p + trailer)
            seq += 1
        units.append((b"".join(START + n for n in nals), ts & 0xFFFFFFFF, any(_key(codec, n) for n in nals)))
        ts += draw(st.sampled_from([3600, 3000, 1, 0x10000000]))
    return units, packets


def _key(codec: str, nal: bytes) -> bool:
    if codec == "hevc":
        return 16 <= (nal[0] >> 1) & 0x3F <= 21
    return nal[0] & 0x1F == 5 or (nal[0] & 0x1F == 6 and recovery_point(nal))


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@fuzz(50)
@given(data=st.data())
def test_depacketisation_of_clean_streams_gives_back_the_access_units(codec: str, data: st.DataObject) -> None:
    """Whatever the packing and the read sizes over TCP, and neighbours swapped over UDP (the jitter
    buffer puts them back), the access units are those that went in, with their pts."""
    units, packets = data.draw(stream(codec, valid=True))
    want = [(au, key) for au, _, key in units]
    reads = tuple(data.draw(st.lists(st.integers(1, 3000), min_size=1, max_size=4)))
    got, err = feed_stream(playing(codec), interleave(packets), reads)
    assert not err and [(u.data, u.is_keyframe) for u in got] == want
    assert [u.pts for u in got][:1] == [0] and all(isinstance(u.pts, int) for u in got)

    swaps = data.draw(st.sets(st.integers(1, max(1, len(packets) - 2)), max_size=len(packets) // 3))
    order = list(packets)
    for i in sorted(swaps):
        if i + 1 < len(order):
            order[i], order[i + 1] = order[i + 1], order[i]
    rx, got, mono = playing(codec, "udp"), [], 100.0
    for p in order:
        got += rx.feed_rtp(p, 0.0, mono)
        check_receiver(rx)
    got += rx.tick(mono + 1.0, 0.0)
    assert [(u.data, u.is_keyframe) for u in got] == want


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@fuzz(70)
@given(data=st.data())
def test_hostile_rtp_keeps_the_depacketiser_within_its_bounds(codec: str, data: st.DataObject) -> None:
    """Any NAL types (reserved ones too), FU starts lost or repeated, gaps, SSRC changes, broken
    headers: over UDP and TCP only documented errors, bounded state, Annex B units."""
    _, packets = data.draw(stream(codec))
    packets = [data.draw(mutated(p, 2)) if data.draw(st.integers(0, 3)) == 0 else p for p in packets]
    if data.draw(st.booleans()):  # a second sender part way, or the first one's stragglers
        k = data.draw(st.integers(0, len(packets)))
        packets[k:k] = [p[:8] + b"\x00\x00\x00\x09" + p[12:] for p in packets[k:k + 3] if len(p) >= 12]
    if data.draw(st.booleans()):
        packets = data.draw(st.permutations(packets))
    rtp_target(codec, join_packets(packets))


def test_endless_aggregation_and_fragments_stop_at_the_access_unit_bounds() -> None:
    """Bounds hit through the UDP path too (the hostile tests cover TCP): the depacketiser raises,
    holding nothing more than its bounds."""
    rx = playing("h264", "udp")
    ap = b"\x18" + (struct.pack(">H", 1) + b"\x41") * 1000  # a thousand 1-byte NAL units
    with pytest.raises(RtspProtocolError):
        for seq in range(10):
            rx.feed_rtp(rtp_header(seq, 0, False) + ap, 0.0, 1.0)
            check_receiver(rx)
    check_receiver(rx)


# ---------------------------------------------------------------------------- RTCP
@st.composite
def rtcp_packet(draw: st.DrawFn) -> bytes:
    pt = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206, 0, 255]))
    ssrc = draw(st.sampled_from([SSRC, b"\x00\x00\x00\x07", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"]))
    count = draw(st.integers(0, 31))
    if pt == 200:
        body = ssrc + draw(st.binary(min_size=20, max_size=20)) + bytes(24 * min(count, 2))
    elif pt == 203:
        body = b"".join(draw(st.sampled_from([SSRC, b"\x00\x00\x00\x07", b"\x00\x00\x00\x00"]))
                        for _ in range(min(count, 4)))
        if draw(st.booleans()):
            reason = draw(st.binary(max_size=10))
            body += bytes((len(reason),)) + reason
    else:
        body = ssrc + draw(st.binary(max_size=40))
    body += bytes(-len(body) % 4)
    words = len(body) // 4 + draw(st.sampled_from([0, 0, 0, 1, -1, 100]))
    version = draw(st.sampled_from([2, 2, 2, 2, 0, 3]))
    padding = draw(st.sampled_from([0, 0, 0x20]))
    return struct.pack(">BBH", (version << 6) | padding | count, pt, words & 0xFFFF) + body


@fuzz(100)
@given(compounds=st.lists(st.lists(rtcp_packet(), min_size=1, max_size=4).map(b"".join), max_size=4),
       data=st.data())
def test_rtcp_parsing_and_bye_handling(compounds: list[bytes], data: st.DataObject) -> None:
    rtcp_target(data.draw(mutated(join_packets(compounds))))


def test_a_bye_of_the_current_sender_ends_the_session_and_one_of_a_retired_sender_does_not() -> None:
    bye = struct.pack(">BBHI", 0x81, 203, 1, 7)  # sender 7 (retired by the prime) leaves: its farewell
    assert rtcp_target(join_packets([bye])).errors == []
    bye = struct.pack(">BBH", 0x81, 203, 1) + SSRC
    assert rtcp_target(join_packets([bye])).errors == ["udp: RtpByeError"]


# ---------------------------------------------------------------------------- interleaved framing
SERVER_REQUEST = b"SET_PARAMETER rtsp://127.0.0.1:554/cam RTSP/1.0\r\nCSeq: 7\r\nContent-Length: %d\r\n\r\n"
REPLY = b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: %d\r\n\r\n"


@st.composite
def interleaved_stream(draw: st.DrawFn, valid: bool = False) -> tuple[bytes, list[tuple[bytes, int, bool]]]:
    """RTP on channel 0 with RTCP on 1, another channel's data, RTSP replies and server requests
    (bodies that hold "$"), and (unless ``valid``) garbage and bad lengths, in any order. Returns
    the stream and the access units its RTP carries."""
    units, packets = draw(stream("h264", valid=True, frames=4))
    pieces: list[bytes] = [interleave([p]) for p in packets]
    for _ in range(draw(st.integers(0, 4))):
        body = draw(st.sampled_from([b"", b"$\x00\x00\x05x", b"a: b\r\n", b"$$$$"]))
        extra = draw(st.sampled_from([
            interleave([draw(rtcp_packet())], 1),
            interleave([draw(st.binary(max_size=30))], draw(st.sampled_from([2, 5, 255]))),
            (REPLY % len(body)) + body,
            (SERVER_REQUEST % len(body)) + body,
            b"RTSP/1.0 200 OK\r\nCSeq: 10\r\n\r\n",
        ]))
        if not valid:
            extra = draw(st.one_of(st.just(extra), st.binary(max_size=40), st.sampled_from([
                b"\r\n", b"$\x00\xff\xff", REPLY % 999999999, b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n"])))
        # between two packets of the stream, or where a frame ends: a reply may come anywhere but inside a frame
        pieces.insert(draw(st.integers(0, len(pieces))), extra)
    return b"".join(pieces), [(au, ts, key) for au, ts, key in units]


@fuzz(70)
@given(data=st.data())
def test_interleaved_framing_with_messages_between_frames_gives_the_same_units_whatever_the_reads(
        data: st.DataObject) -> None:
    """Replies, server requests (their bodies may hold "$"), RTCP and other channels between the
    frames: skipped, whatever the read sizes; the access units are those sent."""
    raw, units = data.draw(interleaved_stream(valid=True))
    reads = tuple(data.draw(st.lists(st.integers(1, 2000), min_size=1, max_size=4)))
    got, err = feed_stream(playing("h264"), raw, reads)
    assert not err, err
    assert [(u.data, u.is_keyframe) for u in got] == [(au, key) for au, _, key in units]


@fuzz(80)
@given(data=st.data())
def test_hostile_interleaved_streams_stay_bounded(data: st.DataObject) -> None:
    raw, _ = data.draw(interleaved_stream())
    interleaved_target(data.draw(mutated(raw)))


# ---------------------------------------------------------------------------- RTSP handshake, real sockets
def reply(status: str, headers: list[tuple[str, str]], body: bytes = b"", *, eol: str = "\r\n") -> bytes:
    head = [status] + [f"{k}: {v}" for k, v in headers]
    return (eol.join(head) + eol + eol).encode() + body


@st.composite
def camera_bytes(draw: st.DrawFn) -> bytes:
    """What a camera sends from the connect on: maybe a 401 (Digest, Basic or both), the DESCRIBE
    reply with its SDP, SETUP (TCP; or refused with 461 and then UDP), PLAY, then interleaved data;
    header values from the odd to the hostile; then a few bytes mutated."""
    codec = draw(st.sampled_from(["h264", "hevc"]))
    status = draw(st.sampled_from(["RTSP/1.0 {} OK"] * 6 + ["RTSP/2.0 {} X", "HTTP/1.1 {} OK", "RTSP/1.0 {}",
                                                            "rtsp/1.0 {} ok", "RTSP/1.0  {}  OK"]))
    eol = draw(st.sampled_from(["\r\n"] * 8 + ["\n"]))
    cseq = iter(range(1, 100))
    out = b""

    def ok(headers: list[tuple[str, str]], body: bytes = b"", code: int = 200) -> bytes:
        hs = [("CSeq", str(next(cseq))), *headers]
        if body or draw(st.integers(0, 4)) == 0:
            hs.append(("Content-Length", draw(st.sampled_from([str(len(body))] * 6 + [
                str(len(body) + 3), "999999999", "-1", "abc", " ", "١٢", str(rtsp.MAX_BODY_BYTES + 1)]))))
        return reply(status.format(code), draw(st.permutations(hs)), body, eol=eol)

    if draw(st.booleans()):
        challenges = draw(st.lists(st.sampled_from([
            'Digest realm="cam", nonce="abc123"', 'Digest realm="cam", nonce="n", qop="auth", opaque="o"',
            'Digest realm=cam,nonce=n,qop="auth-int,auth"', 'Basic realm="cam"', "Digest", "NTLM", "",
            'Digest realm="\u00e9\\"x", nonce=""']), min_size=1, max_size=3))
        out += ok([("WWW-Authenticate", c) for c in challenges], code=401)
    sdp = draw(st.one_of(st.just(SDP[codec]), sdps()))
    base = draw(st.sampled_from(["rtsp://127.0.0.1:554/cam/", "rtsp://127.0.0.1:554/cam", "rtsp://[bad/", "*",
                                 "rtsp://127.0.0.1:554/cam?x=$1", ""]))
    describe = [("Content-Type", "application/sdp")]
    if base:
        describe.append((draw(st.sampled_from(["Content-Base", "Content-Location", "content-base"])), base))
    out += ok(describe, sdp.encode())
    session = draw(st.sampled_from(["1F2E3D;timeout=60", "abc", ";timeout=99999999999", "s;timeout=1", "", " ; "]))
    udp = draw(st.booleans())
    if udp:
        out += ok([], code=draw(st.sampled_from([461, 400, 406, 501])))
        transport = draw(st.sampled_from([
            "RTP/AVP;unicast;client_port=50000-50001;server_port=6970-6971",
            "RTP/AVP;unicast;server_port=6970",
            "RTP/AVP;unicast;server_port=6970-99999",
            "RTP/AVP;unicast;server_port=0-6971",
            "RTP/AVP;unicast;source=127.0.0.1;server_port=6970-6971",
            "RTP/AVP;unicast;source=ca.fe;server_port=6970-6971",
            "RTP/AVP;unicast;source=::1;server_port=6970-6971",
            "RTP/AVP;unicast;source=1.2.3;server_port=6970-6971",
            "RTP/AVP/TCP;unicast;interleaved=0-1",
            "",
        ]))
    else:
        transport = draw(st.sampled_from([
            "RTP/AVP/TCP;unicast;interleaved=0-1", "RTP/AVP/TCP;unicast;interleaved=2-3",
            "RTP/AVP/TCP;unicast;interleaved=254-255", "RTP/AVP/TCP;unicast;interleaved=999",
            "RTP/AVP/TCP;unicast;interleaved=7", "RTP/AVP/TCP", ""]))
    out += ok([("Session", session), ("Transport", transport)])
    raw, _ = draw(interleaved_stream())
    out += ok([("Session", session.split(";")[0]), ("Range", "npt=0.000-")])
    out += raw
    return draw(mutated(out, 3))


@fuzz(80)
@given(data=camera_bytes())
def test_hostile_cameras_over_a_real_connection_raise_only_documented_errors_within_bounds(data: bytes) -> None:
    rtsp_target(data)


def test_a_well_behaved_camera_plays_through_the_rtsp_target() -> None:
    """The target is not vacuous: a clean exchange opens, and frames come out, over TCP and UDP."""
    sdp = SDP["h264"].encode()
    data = (reply("RTSP/1.0 401 Unauthorized", [("CSeq", "1"), ("WWW-Authenticate", 'Digest realm="c", nonce="n"')])
            + reply("RTSP/1.0 200 OK", [("CSeq", "2"), ("Content-Base", "rtsp://127.0.0.1:554/cam/"),
                                        ("Content-Length", str(len(sdp)))], sdp)
            + reply("RTSP/1.0 200 OK", [("CSeq", "3"), ("Session", "s;timeout=60"),
                                        ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;server_port=6970-6971")])
            + reply("RTSP/1.0 200 OK", [("CSeq", "4")])
            + interleave([rtp_header(1, 0, True) + b"\x65\x88", rtp_header(2, 3600, True) + b"\x41\x9a"]))
    out = rtsp_target(data)
    assert len(out.units) == 2 and out.errors == ["open: RtspProtocolError"]  # UDP asked, TCP set up: refused


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_the_targets_receivers_are_in_the_state_a_real_open_leaves(transport: str) -> None:
    """fuzz_targets.playing builds receivers without a handshake (fast, for the fuzzers): their
    state must be what open() leaves after PLAY, or the fuzzing would miss what production does."""
    sdp = SDP["hevc"].encode()
    setup = ("RTP/AVP/TCP;unicast;interleaved=0-1" if transport == "tcp"
             else "RTP/AVP;unicast;server_port=6970-6971")
    data = (reply("RTSP/1.0 200 OK", [("CSeq", "1"), ("Content-Length", str(len(sdp)))], sdp)
            + reply("RTSP/1.0 200 OK", [("CSeq", "2"), ("Session", "s"), ("Transport", setup)])
            + reply("RTSP/1.0 200 OK", [("CSeq", "3")]))
    real = CameraReceiver(data, transport=transport)
    try:
        real.open()
        made = playing("hevc", transport)
        for name in ("transport", "channel", "rtcp_channel", "info", "_sources", "_ssrc", "_buf", "_discard",
                     "bye_at", "_last_ts", "_rebase"):
            assert getattr(made, name) == getattr(real, name), name
        assert made.track is not None and real.track is not None
        assert (made.track.codec, made.track.payload_type, made.track.clock_rate) == \
               (real.track.codec, real.track.payload_type, real.track.clock_rate)
        assert made.depacketizer is not None and real.depacketizer is not None
        assert vars(made.depacketizer) == vars(real.depacketizer)
        assert (made.jitter is None) == (real.jitter is None) and (made.reception is None) == (real.reception is None)
        assert (made.udp is None) == (real.udp is None)
    finally:
        real.close()


# ---------------------------------------------------------------------------- UDP datagrams, real sockets
@fuzz(20)
@given(data=st.data())
def test_datagrams_through_real_udp_sockets(data: st.DataObject) -> None:
    """read_udp as the reactor calls it, datagrams sent from 127.0.0.1 (the camera) and from
    another address (dropped unread), RTP and RTCP sockets both."""
    _, packets = data.draw(stream("h264"))
    packets = [data.draw(mutated(p, 1)) for p in packets]
    rtcp = [data.draw(rtcp_packet()) for _ in range(data.draw(st.integers(0, 3)))]
    rx = playing("h264", "udp")
    rtp_sock, rtcp_sock = rtpmod.bind_pair(socket.AF_INET, "127.0.0.1", 30000, 39999)
    rx._udp = (rtp_sock, rtcp_sock)
    camera = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind(("127.0.0.2", 0))
        camera.bind(("127.0.0.1", 0))
        for p in packets:
            camera.sendto(p, rtp_sock.getsockname())
            stranger.sendto(p, rtp_sock.getsockname())
        for c in rtcp:
            camera.sendto(c, rtcp_sock.getsockname())
        time.sleep(0.001)
        mono = 10.0
        try:
            for _ in range(1 + len(packets) // rtsp.UDP_BATCH):
                for is_rtcp in (False, True):
                    mono += 0.01
                    rx.read_udp(is_rtcp, 0.0, mono)
                    check_receiver(rx)
        except CAMERA_ERRORS:
            check_receiver(rx)
        assert rx.foreign >= 1 or not packets
    finally:
        for s in (rtp_sock, rtcp_sock, camera, stranger):
            s.close()


# ---------------------------------------------------------------------------- found by fuzzing
# Each one broke a target before its fix in camera_hub/ingest/rtsp.py (benchmarks/README.md,
# "Fuzzing"); the reproducers are seeds of the corpus too (benchmarks/fuzz_corpus/<target>/crash-*).
SDP_H264_HEAD = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"


def udp_exchange(transport: str) -> bytes:
    """DESCRIBE, a SETUP reply for RTP over UDP with ``transport``, PLAY."""
    sdp = SDP["h264"].encode()
    return (reply("RTSP/1.0 200 OK", [("CSeq", "1"), ("Content-Length", str(len(sdp)))], sdp)
            + reply("RTSP/1.0 200 OK", [("CSeq", "2"), ("Session", "s"), ("Transport", transport)])
            + reply("RTSP/1.0 200 OK", [("CSeq", "3")]))


REGRESSIONS = {
    # IndexError: "a=fmtp:96 " and nothing after it (Atheris, seconds into the sdp target)
    "sdp-fmtp-without-parameters": (sdp_target, SDP_H264_HEAD + b"a=fmtp:96 \r\n"),
    # ValueError ("Invalid IPv6 URL") out of urljoin: a control URL, or a Content-Base, with a "["
    "sdp-control-with-a-bracket": (sdp_target, SDP_H264_HEAD + b"a=control://[x\r\n"),
    "rtsp-content-base-with-a-bracket": (rtsp_target, udp_exchange("RTP/AVP/TCP;unicast;interleaved=0-1").replace(
        b"CSeq: 1\r\n", b"CSeq: 1\r\nContent-Base: rtsp://[bad/\r\n")),
    # OverflowError in the reactor's timer, sending the first receiver report to port 99999
    "rtsp-rtcp-port-past-65535": (rtsp_target, udp_exchange("RTP/AVP;unicast;server_port=6970-99999")),
    # source=ca.fe: a name, looked up (DNS) by the reactor thread at every receiver report
    "rtsp-source-that-is-a-name": (rtsp_target, udp_exchange("RTP/AVP;unicast;source=ca.fe;server_port=6970-6971")),
    # other access units in reads of other sizes: a reply whose first read ended in "RTSP" (its
    # 4 bytes at offsets 7-10; the target's reads end at 1, 4, 11, ...) and whose body holds "$"
    "interleaved-reply-cut-after-its-first-bytes": (interleaved_target, b"$\x05\x00\x03abc"
                                                    + REPLY % 5 + b"$\x00\x00\x05x" + interleave(
                                                        [rtp_header(1, 0, True) + b"\x41\x9a"])),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_reproducers_found_by_fuzzing(case: str) -> None:
    target, data = REGRESSIONS[case]
    out = target(data)
    if case.startswith("sdp-fmtp"):
        assert [t.extradata for t in out.tracks] == [None] * 3
    elif case.startswith("interleaved"):
        assert [u.data for u in out.units] == [START + b"\x41\x9a"] and out.errors == []
    elif "bracket" in case:
        assert out.errors and all(e.endswith("RtspProtocolError") for e in out.errors)
    elif case == "rtsp-rtcp-port-past-65535":
        rx = CameraReceiver(data, transport="udp")
        try:
            rx.open()
            assert rx._server_rtcp is None  # no report, rather than one to a port that cannot be
        finally:
            rx.close()
    else:
        rx = CameraReceiver(data, transport="udp")
        try:
            rx.open()
            assert rx._server_rtcp is not None and rx._server_rtcp[0] == "127.0.0.1"  # the RTSP peer
            assert rx._sources == {"127.0.0.1"}
        finally:
            rx.close()


def test_a_reply_cut_by_a_read_after_its_first_bytes_is_still_skipped_whole() -> None:
    """Found by the property above (reads of 1 byte): a keepalive's reply whose first read held
    only "RTS" was taken for garbage, the rest of its head skipped to the next "$", which was in
    its body: read as a frame header, it swallowed the frame after it."""
    body = b"$\x00\x00\x05x"
    rx = playing("h264")
    frame = interleave([rtp_header(1, 0, True) + b"\x41\x9a"])
    stream = (b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: %d\r\n\r\n" % len(body)) + body + frame
    got = rx.feed(stream[:3], 0.0) + rx.feed(stream[3:], 0.0)
    assert [u.data for u in got] == [START + b"\x41\x9a"] and rx.garbage_bytes == 0
    rx = playing("h264")  # a request from the server, cut inside its request line
    stream = b"SET_PARAMETER rtsp://c/s RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\n" + body + frame
    got = rx.feed(stream[:20], 0.0) + rx.feed(stream[20:], 0.0)
    assert [u.data for u in got] == [START + b"\x41\x9a"] and rx.garbage_bytes == 0
    rx = playing("h264")  # garbage that only looks like a start at the end of a read is still garbage
    got = rx.feed(b"ABCD", 0.0) + rx.feed(b"efg" + frame, 0.0)
    assert [u.data for u in got] == [START + b"\x41\x9a"] and rx.garbage_bytes == 7


def test_split_packets_round_trips() -> None:
    packets = [b"", b"a", bytes(300)]
    assert split_packets(join_packets(packets)) == packets
    assert split_packets(b"\x00\x05ab") == [b"ab"]  # a last one cut short is taken as it is

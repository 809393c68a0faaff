"""PacketRing: windows start at a keyframe; time and byte bounds hold."""

from __future__ import annotations

from fractions import Fraction

from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest.ring import PacketRing

TB = Fraction(1, 90000)
INFO = StreamInfo("h264", 640, 360, b"\x00\x00\x00\x01\x67", TB)


def feed(ring: PacketRing, seconds: float, fps: int = 10, gop: int = 20, start: float = 1000.0,
         size: int = 100, key_size: int = 1000, first: int = 0) -> None:
    for i in range(first, first + int(seconds * fps)):
        key = i % gop == 0
        ring.append(EncodedPacket(b"k" * key_size if key else b"p" * size, i * 9000, i * 9000, key, TB,
                                  start + i / fps))


def test_a_window_starts_at_the_keyframe_at_or_before_t0() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20)
    ring.set_info(INFO)
    feed(ring, 30, first=5)  # starts mid-GOP: those packets cannot start a clip
    info, pkts = ring.window(1000.0 + 25.3, 1000.0 + 29.0)
    assert info == INFO
    assert pkts[0].is_keyframe and pkts[0].received_at == 1000.0 + 24.0
    assert pkts[-1].received_at <= 1000.0 + 29.0
    assert [p.received_at for p in pkts] == sorted(p.received_at for p in pkts)


def test_the_ring_keeps_about_n_seconds_from_a_keyframe() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20)
    ring.set_info(INFO)
    feed(ring, 60)
    _, pkts = ring.window(0.0, 1e12)  # older than anything kept: from the oldest keyframe
    span = pkts[-1].received_at - pkts[0].received_at
    assert pkts[0].is_keyframe
    assert 10.0 <= span < 12.0  # covers N seconds, plus at most one GOP


def test_the_byte_bound_holds_and_drops_whole_gops() -> None:
    ring = PacketRing(seconds=60, max_bytes=8_000)  # a GOP is 1000 + 19 * 100 = 2900 bytes
    ring.set_info(INFO)
    feed(ring, 30)
    assert ring.nbytes <= 8_000
    _, pkts = ring.window(0.0, 1e12)
    assert pkts[0].is_keyframe and sum(len(p.data) for p in pkts) == ring.nbytes == 2 * 2900 + 0
    assert len(pkts) == 40


def test_a_gop_larger_than_the_bound_is_not_kept() -> None:
    ring = PacketRing(seconds=60, max_bytes=500)
    ring.set_info(INFO)
    feed(ring, 5)
    assert ring.nbytes <= 500 and ring.window(0.0, 1e12) is None


def test_a_new_stream_format_empties_the_ring() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20)
    ring.set_info(INFO)
    feed(ring, 5)
    new = StreamInfo("h264", 1280, 720, b"\x00\x00\x00\x01\x67\x64", TB)
    ring.set_info(new)
    assert ring.window(0.0, 1e12) is None
    feed(ring, 3, start=2000.0)
    info, pkts = ring.window(0.0, 1e12)
    assert info == new and pkts[0].received_at == 2000.0


def test_nothing_before_the_first_keyframe_or_without_info() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20)
    feed(ring, 1)
    assert ring.window(0.0, 1e12) is None  # no StreamInfo yet
    ring.set_info(INFO)
    feed(ring, 1.5, first=3)  # no keyframe among these
    assert len(ring) == 0


def test_the_time_lapse_keeps_a_keyframe_every_few_seconds_behind_the_full_rate_part() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20, lapse_s=30, lapse_every_s=4)
    ring.set_info(INFO)
    feed(ring, 60)  # keyframes every 2 s from t=1000
    now = 1000.0 + 59.9
    _, pkts = ring.window(0.0, 1e12)
    keys = [p.received_at - 1000.0 for p in pkts if p.is_keyframe]
    full_from = next(p.received_at for p in pkts if not p.is_keyframe) - 0.1 - 1000.0
    lapse = [k for k in keys if k < full_from]
    # behind the full-rate part (≥ 10 s), one keyframe every 4 s, none older than 30 s
    assert lapse and all(b - a == 4.0 for a, b in zip(lapse, lapse[1:], strict=False))
    assert min(lapse) >= now - 1000.0 - 30 and now - 1000.0 - full_from >= 10.0
    assert all(p.is_keyframe for p in pkts if p.received_at - 1000.0 < full_from)
    # a window from inside the time-lapse starts at the lapse keyframe at or before t0
    _, part = ring.window(1000.0 + lapse[1] + 1.0, 1e12)
    assert part[0].received_at == 1000.0 + lapse[1] and part[0].is_keyframe
    # the byte count is what is kept
    assert ring.nbytes == sum(len(p.data) for p in pkts)


def test_the_byte_bound_drops_the_time_lapse_before_full_rate_gops() -> None:
    # a GOP is 2900 bytes; 6 of them are kept for 10 s; the bound leaves room for one lapse keyframe
    ring = PacketRing(seconds=10, max_bytes=6 * 2900 + 1500, lapse_s=60, lapse_every_s=2)
    ring.set_info(INFO)
    feed(ring, 60)
    _, pkts = ring.window(0.0, 1e12)
    assert ring.nbytes <= 6 * 2900 + 1500
    assert len(pkts) == 1 + 6 * 20 and pkts[0].is_keyframe and not pkts[2].is_keyframe
    assert pkts[1].received_at - pkts[0].received_at == 2.0  # the newest lapse keyframe survived


def test_keyframes_after_are_the_window_s_keyframes_past_t() -> None:
    ring = PacketRing(seconds=10, max_bytes=1 << 20, lapse_s=30, lapse_every_s=4)
    ring.set_info(INFO)
    feed(ring, 60)
    _, pkts = ring.window(0.0, 1e12)
    for t in (0.0, 1000.0 + 33.0, 1000.0 + 52.0, 1000.0 + 58.0, 1e12):
        info, keys = ring.keyframes_after(t)
        assert info == INFO and keys == [p for p in pkts if p.is_keyframe and p.received_at > t], t
    assert PacketRing(seconds=10, max_bytes=1 << 20).keyframes_after(0.0) is None  # no stream yet

"""Encoding once per (scene, size) with a content-keyed cache, and RFC 6184 packetisation."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from camera_hub.sim import encode as enc
from camera_hub.sim.encode import encode_scene, frame_boxes, split_annexb
from camera_hub.sim.rtp import MTU, corrupt, packetize, stamp
from camera_hub.sim.scenes import SceneRenderer, load_script


def test_encoding_is_one_slice_per_frame_fixed_gop_baseline(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    e = encode_scene("smoke", 160, 96, cache_dir=tmp_path, progress=lambda _l, d, t: progress.append((d, t)))
    assert len(e.frames) == 60 and progress[-1] == (60, 60)
    assert [i for i, k in enumerate(e.keyframes) if k] == [0, 20, 40]
    for i, nals in enumerate(e.frames):
        vcl = [n[0] & 0x1F for n in nals if n[0] & 0x1F in (1, 5)]
        assert vcl == ([5] if i % 20 == 0 else [1])  # one slice per frame
        if i % 20 == 0:
            assert [n[0] & 0x1F for n in nals] == [7, 8, 5]  # parameter sets before every IDR
    assert e.sps[1] == 66 and e.profile_level_id.startswith("42")  # baseline: no B-frames, no CABAC
    with av.open(str(e.path), format="h264") as c:
        frames = [(f.width, f.height) for f in c.decode(video=0)]
    assert frames == [(160, 96)] * 60


def test_ground_truth_and_boxes_are_written_beside_the_video(tmp_path: Path) -> None:
    e = encode_scene("smoke", 160, 96, cache_dir=tmp_path)
    doc = json.loads(e.path.with_suffix(".json").read_text())
    (ep,) = doc["episodes"]
    assert (ep["type"], ep["zone_id"], ep["start"], ep["end"]) == ("vending", "frontage", 2, 5)
    renderer = SceneRenderer("smoke", 160, 96)
    boxes = frame_boxes(e)
    assert len(boxes) == 60
    for i in (0, 25, 59):
        assert boxes[i] == renderer.frame(i)[1]


def test_the_cache_is_reused_and_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = encode_scene("smoke", 160, 96, cache_dir=tmp_path)

    def fail(*_a: object, **_k: object) -> None:
        raise AssertionError("encoded again")

    monkeypatch.setattr(enc, "_encode_to", fail)
    again = encode_scene("smoke", 160, 96, cache_dir=tmp_path)
    assert again.path == first.path and again.frames == first.frames
    edited = load_script("smoke").model_copy(update={"walkers": 3.0})
    with pytest.raises(AssertionError, match="encoded again"):
        encode_scene(edited, 160, 96, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="encoded again"):
        encode_scene("smoke", 160, 96, gop=10, cache_dir=tmp_path)
    before = enc.cache_key(load_script("smoke"), 160, 96, 10, 20)
    monkeypatch.setattr(enc, "RENDERER_VERSION", enc.RENDERER_VERSION + 1)  # the drawing code changed
    assert enc.cache_key(load_script("smoke"), 160, 96, 10, 20) != before


def test_split_annexb_handles_3_and_4_byte_start_codes() -> None:
    data = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x01\x65\x01\x02"
    assert split_annexb(data) == [b"\x67\xaa", b"\x68\xbb", b"\x65\x01\x02"]


def _unframe(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        assert data[i] == 0x24
        size = int.from_bytes(data[i + 2:i + 4], "big")
        out.append(data[i + 4:i + 4 + size])
        i += 4 + size
    return out


def test_packetize_single_nal_and_fu_a_round_trip() -> None:
    sps, pps, idr = b"\x67" + bytes(range(20)), b"\x68\x01\x02", b"\x65" + bytes(i % 251 for i in range(5000))
    frame = packetize([sps, pps, idr], keyframe=True)
    packets = _unframe(frame.data)
    assert len(packets) == len(frame.offsets) and all(len(p) <= MTU + 12 for p in packets)
    assert [bool(p[1] & 0x80) for p in packets] == [False] * (len(packets) - 1) + [True]
    assert packets[0][12:] == sps and packets[1][12:] == pps
    fus = [p[12:] for p in packets[2:]]
    assert all(f[0] & 0x1F == 28 and f[0] & 0xE0 == idr[0] & 0xE0 and f[1] & 0x1F == 5 for f in fus)
    assert [(f[1] & 0x80 > 0, f[1] & 0x40 > 0) for f in (fus[0], fus[-1])] == [(True, False), (False, True)]
    assert bytes([idr[0]]) + b"".join(f[2:] for f in fus) == idr


def test_stamp_and_corrupt() -> None:
    frame = packetize([b"\x67\x42\x00\x1f", b"\x41" + bytes(3000)], keyframe=False)
    buf = stamp(frame, 65534, 2**32 + 5, 0xDEADBEEF, channel=2)
    packets = _unframe(bytes(buf))
    assert [int.from_bytes(p[2:4], "big") for p in packets] == [65534, 65535, 0, 1]
    assert {int.from_bytes(p[4:8], "big") for p in packets} == {5}
    assert {p[8:12] for p in packets} == {b"\xde\xad\xbe\xef"} and buf[1] == 2
    assert frame.data[6:8] == b"\x00\x00"  # the shared template is untouched
    corrupt(buf, frame)
    bad = _unframe(bytes(buf))
    assert bad[0] == packets[0]  # parameter sets kept
    assert all(b[:14] == p[:14] for b, p in zip(bad, packets, strict=True))
    assert bad[1][14:] != packets[1][14:]

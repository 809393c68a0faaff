"""remux_to_mp4 without re-encoding: H.264 and HEVC, in-band parameter sets, missing timestamps."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import pytest
from alertkit import frame, h264_packets

from camera_hub.annexb import nal_units
from camera_hub.clips import NoClip, remux_to_mp4, write_clip
from camera_hub.events import EncodedPacket, StreamInfo


def _decode(path) -> tuple[str, str, list[float]]:  # noqa: ANN001
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        tag = v.codec_context.codec_tag
        return v.codec_context.name, tag, [float(f.pts * v.time_base) for f in c.decode(v)]


def test_h264_annexb_with_in_band_parameter_sets(tmp_path) -> None:
    info, packets = h264_packets(3, start=1000.0, fps=10, gop=10)
    assert info.extradata is None and packets[0].data.startswith(b"\x00\x00\x00\x01")
    out = tmp_path / "a.mp4"
    duration = remux_to_mp4(info, packets[3:], out)  # starts mid-GOP: cut to the next keyframe
    name, tag, pts = _decode(out)
    assert (name, tag) == ("h264", "avc1")
    assert len(pts) == 20 and pts[0] == 0.0 and duration == pytest.approx(2.0, abs=0.01)
    assert not list(tmp_path.glob("*.part"))


def test_missing_timestamps_fall_back_to_arrival_times(tmp_path) -> None:
    info, packets = h264_packets(2, start=500.0, fps=10, gop=10)
    packets = [dataclasses.replace(p, pts=None, dts=None) if i % 3 == 0 else p for i, p in enumerate(packets)]
    remux_to_mp4(info, packets, tmp_path / "b.mp4")
    _, _, pts = _decode(tmp_path / "b.mp4")
    assert len(pts) == 20 and pts == sorted(pts) and pts[-1] == pytest.approx(1.9, abs=0.05)


def test_hevc_gets_the_hvc1_tag_browsers_accept(tmp_path) -> None:
    tb = Fraction(1, 90000)
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base, enc.framerate = 160, 128, "yuv420p", tb, 10
    enc.options = {"x265-params": "keyint=10:bframes=0:log-level=none:repeat-headers=1"}
    packets = []
    for i in range(20):
        f = av.VideoFrame.from_ndarray(frame(128, 160, value=i * 9), format="bgr24").reformat(format="yuv420p")
        f.pts, f.time_base = i * 9000, tb
        packets += [EncodedPacket(bytes(p), p.pts, p.dts, p.is_keyframe, tb, 0.0) for p in enc.encode(f)]
    packets += [EncodedPacket(bytes(p), p.pts, p.dts, p.is_keyframe, tb, 0.0) for p in enc.encode(None)]
    remux_to_mp4(StreamInfo("hevc", 160, 128, None, tb), packets, tmp_path / "h.mp4")
    name, tag, pts = _decode(tmp_path / "h.mp4")
    assert (name, tag, len(pts)) == ("hevc", "hvc1", 20)


def test_parameter_sets_only_in_extradata_avcc_and_length_prefixed_packets(tmp_path) -> None:
    """A camera that announces SPS/PPS only in SDP, and packets in AVCC (length-prefixed) form."""
    info, packets = h264_packets(2, start=0.0, fps=10, gop=10)
    nals = nal_units(packets[0].data)
    sps = next(n for n in nals if n[0] & 0x1F == 7)
    pps = next(n for n in nals if n[0] & 0x1F == 8)
    avcc = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps + bytes([1]) \
        + len(pps).to_bytes(2, "big") + pps

    def strip_and_prefix(data: bytes) -> bytes:
        units = [n for n in nal_units(data) if n[0] & 0x1F not in (7, 8)]
        return b"".join(len(n).to_bytes(4, "big") + n for n in units)

    packets = [dataclasses.replace(p, data=strip_and_prefix(p.data)) for p in packets]
    remux_to_mp4(dataclasses.replace(info, extradata=avcc), packets, tmp_path / "c.mp4")
    name, _, pts = _decode(tmp_path / "c.mp4")
    assert name == "h264" and len(pts) == 20
    with pytest.raises(ValueError, match="parameter sets"):
        remux_to_mp4(info, packets, tmp_path / "d.mp4")  # nothing to build the avcC box from


def test_no_clip_when_the_ring_has_nothing(tmp_path) -> None:
    class Empty:
        def window(self, t0: float, t1: float):  # noqa: ANN202
            return None

    with pytest.raises(NoClip) as err:
        write_clip(Empty(), 95.0, 105.0, tmp_path / "x.mp4")
    assert err.value.reason == "no_video"
    assert not (tmp_path / "x.mp4").exists()

"""Pure parts of the Source: error classification, parameter sets, FFmpeg options."""

from __future__ import annotations

import av.error

from camera_hub.annexb import parameter_sets
from camera_hub.ingest.source import SourceOptions, classify


def _err(cls: type, code: int = 1) -> BaseException:
    return cls(code, "x", "rtsp://u:pw@h/p")


def test_classify_ffmpeg_errors() -> None:
    assert classify(_err(av.error.HTTPUnauthorizedError), reading=False) == "auth"
    assert classify(_err(av.error.HTTPNotFoundError), reading=False) == "not_found"
    assert classify(_err(av.error.HTTPServerError), reading=False) == "refused"
    assert classify(_err(av.error.ConnectionRefusedError), reading=False) == "refused"
    assert classify(_err(av.error.TimeoutError), reading=False) == "timeout"
    assert classify(_err(av.error.TimeoutError), reading=True) == "stalled"
    assert classify(_err(av.error.EOFError), reading=True) == "eof"
    assert classify(_err(av.error.InvalidDataError), reading=True) == "decode_errors"
    assert classify(RuntimeError("?"), reading=True) == "error"


def test_parameter_sets_keep_sps_pps_only() -> None:
    sps, pps, idr = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x38\x80", b"\x65\x88\x84\x00\x33"
    data = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x00\x01" + idr
    assert parameter_sets(data, "h264") == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    vps, hsps, hpps, slice_ = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1", b"\x26\x01\xaf"
    hevc = b"".join(b"\x00\x00\x00\x01" + n for n in (vps, hsps, hpps, slice_))
    assert parameter_sets(hevc, "hevc") == b"".join(b"\x00\x00\x00\x01" + n for n in (vps, hsps, hpps))
    assert parameter_sets(b"\x00\x00\x01" + idr, "h264") is None


def test_ffmpeg_options_use_ffmpegs_own_timeout() -> None:
    opts = SourceOptions(transport="udp", connect_timeout_s=3.0, read_timeout_s=5.0).ffmpeg_options()
    assert opts["timeout"] == "3000000" and opts["rtsp_transport"] == "udp"
    assert opts["fpsprobesize"] == "0" and int(opts["analyzeduration"]) <= 1_000_000

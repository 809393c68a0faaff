"""H.264/H.265 Annex B byte streams: NAL units between start codes, and parameter sets.

One place for what the ingest (an in-band resolution change brings new SPS/PPS) and the clip
writer (which needs them before the first picture) both take apart.
"""

from __future__ import annotations

import re

START = b"\x00\x00\x00\x01"
_START_CODE = re.compile(b"\x00\x00\x01")


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(START)


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream, start codes (3 or 4 bytes) removed."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    out = []
    for i, s in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        out.append(data[s:end].rstrip(b"\x00"))
    return [n for n in out if n]


def join(nals: list[bytes]) -> bytes:
    """NAL units → Annex B, each behind a 4-byte start code."""
    return b"".join(START + n for n in nals)


def is_parameter_set(codec: str, nal: bytes) -> bool:
    """VPS/SPS/PPS (H.265) or SPS/PPS (H.264)."""
    return (nal[0] >> 1) & 0x3F in (32, 33, 34) if codec == "hevc" else nal[0] & 0x1F in (7, 8)


def parameter_sets(data: bytes, codec: str) -> bytes | None:
    """The parameter sets of an Annex B keyframe as Annex B, or None when it carries none."""
    return join([n for n in nal_units(data) if is_parameter_set(codec, n)]) or None

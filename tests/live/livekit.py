"""Helpers for tests/live: real H.264 (with or without B-frames, parameter sets in-band or not),
rings holding it, and WebRTC offers made without sending a packet."""

from __future__ import annotations

import re
from fractions import Fraction

import av
import numpy as np

from camera_hub.annexb import join, nal_units, parameter_sets
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest.ring import PacketRing

TB = Fraction(1, 90000)


def h264(frames: int = 30, *, fps: int = 10, gop: int = 10, bframes: int = 0, width: int = 160, height: int = 120,
         start: float = 1_700_000_000.0, in_band: bool = True) -> tuple[StreamInfo, list[EncodedPacket]]:
    """libx264 packets in decode order as a camera sends them (``dts`` = ``pts`` = the RTP time,
    as the native reader gives them); ``in_band=False`` strips SPS/PPS from the keyframes and
    puts them in the extradata (a camera that only gives them in the SDP)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base, enc.framerate = TB, fps
    opts = {"g": str(gop), "bf": str(bframes), "preset": "ultrafast", "x264-params": "scenecut=0"}
    if not bframes:
        opts["tune"] = "zerolatency"
    enc.options = opts
    raw: list[av.Packet] = []
    for i in range(frames):
        img = np.full((height, width, 3), (i * 9) % 250, np.uint8)
        img[: height // 2, (i * 3) % width:] = 40
        f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        f.pts, f.time_base = i * 90000 // fps, TB
        raw += enc.encode(f)
    raw += enc.encode(None)
    extradata = None
    out = []
    for p in raw:
        data = bytes(p)
        if p.is_keyframe:
            extradata = extradata or parameter_sets(data, "h264")
            if not in_band:
                data = join([n for n in nal_units(data) if n[0] & 0x1F not in (7, 8)])
        out.append(EncodedPacket(data, p.pts, p.pts, p.is_keyframe, TB, start + float(p.dts * TB)))
    return StreamInfo("h264", width, height, None if in_band else extradata, TB), out


def ring_with(info: StreamInfo, packets: list[EncodedPacket]) -> PacketRing:
    ring = PacketRing(60, 64 << 20)
    ring.set_info(info)
    for p in packets:
        ring.append(p)
    return ring


async def offer(codecs: tuple[str, ...] = ("video/H264", "video/VP8")) -> str:
    """A browser-like recvonly video offer, its ICE candidates removed: the answerer then never
    sends a connectivity check (these tests run outside a private network namespace)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        tr = pc.addTransceiver("video", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        tr.setCodecPreferences([c for c in caps if c.mimeType in codecs or c.mimeType == "video/rtx"])
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    return "\r\n".join(ln for ln in sdp.split("\r\n") if not re.match(r"a=(candidate|end-of-candidates)", ln))

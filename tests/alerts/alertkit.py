"""Test helpers shared by tests/alerts and tests/api: a small city, episodes, real H.264."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from camera_hub.config import CityConfig
from camera_hub.events import EncodedPacket, Episode, StreamInfo


def make_city(n_cameras: int = 3, **alerts: Any) -> CityConfig:
    grids = [{"id": f"g{i}", "category": "commercial", "households": 100} for i in range(n_cameras)]
    return CityConfig.model_validate({
        "city": {"id": "t", "name": "Test"},
        "districts": [
            {"id": "d1", "name": "D1", "streets": [{"id": "s1", "name": "S1", "communities": [
                {"id": "c1", "name": "C1", "grids": grids[: max(1, n_cameras // 2)]}]}]},
            {"id": "d2", "name": "D2", "streets": [{"id": "s2", "name": "S2", "communities": [
                {"id": "c2", "name": "C2", "grids": grids[max(1, n_cameras // 2):] or [
                    {"id": "gx", "category": "village", "households": 10}]}]}]},
        ],
        "cameras": [
            {"id": f"cam{i}", "name": f"Camera {i}", "main_url": f"rtsp://u:secret@10.0.0.{i + 1}/main",
             "location": {"lat": 30.0, "lon": 120.0}, "grids": [f"g{i}"]}
            for i in range(n_cameras)
        ],
        "settings": {"alerts": alerts} if alerts else {},
    })


def frame(h: int = 120, w: int = 160, value: int = 90) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    img[h // 4: h // 2, w // 4: w // 2] = (20, 160, 240)
    return img


def episode(kind: str = "start", *, camera: str = "cam0", zone: str = "z1", type_: str = "crowding",
            started_at: float = 1_700_000_000.0, t: float | None = None, count: int = 8,
            with_frame: bool = False) -> Episode:
    return Episode(kind=kind, type=type_, camera_id=camera, zone_id=zone, started_at=started_at,  # type: ignore[arg-type]
                   t=started_at if t is None else t, score=0.9, count=count,
                   boxes=((0.25, 0.25, 0.5, 0.5, "person", 0.9),), frame=frame() if with_frame else None)


def h264_packets(seconds: float, *, start: float, fps: int = 10, gop: int = 10, width: int = 160,
                 height: int = 120) -> tuple[StreamInfo, list[EncodedPacket]]:
    """Real H.264 (libx264, Annex-B, parameter sets in-band) as a camera would send it; each
    packet's ``received_at`` is ``start`` plus its presentation time."""
    tb = Fraction(1, 90000)
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = tb
    enc.framerate = fps
    enc.options = {"g": str(gop), "bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
    out: list[EncodedPacket] = []

    def take(pkts: list[av.Packet]) -> None:
        for p in pkts:
            out.append(EncodedPacket(bytes(p), p.pts, p.dts, p.is_keyframe, tb, start + float(p.pts * tb)))

    for i in range(int(seconds * fps)):
        img = frame(height, width, value=(i * 7) % 200)
        f = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        f.pts = int(i * 90000 / fps)
        f.time_base = tb
        take(enc.encode(f))
    take(enc.encode(None))
    return StreamInfo("h264", width, height, None, tb), out

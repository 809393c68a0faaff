"""Tamper references in Redis: a camera's reference view outlives the worker that learned it.

A tamper rule judges each sample against the camera's reference, learned from its first normal
samples. A worker that takes a camera over while it is tampered with (lens covered, camera knocked
off aim) would learn the tampered view as normal: blind to that tamper, and alerting when the view
comes right. So the worker that learned a reference saves it (``P tamper:ref:<camera>``, a hash:
``<zone>`` → the 160×90 grey view as PNG, ``<zone>:sharp`` → its sharpness) once learned and every
``SAVE_EVERY_S`` after (it drifts with the light), and the next holder of the camera loads it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

SAVE_EVERY_S = 300.0
KEEP_S = 7 * 86400  # a camera no worker has read for a week learns afresh

Reference = tuple[np.ndarray, float]  # grey view (float32), sharpness


def ref_key(prefix: str, camera_id: str) -> str:
    return f"{prefix}tamper:ref:{camera_id}"


async def save_references(redis: Any, prefix: str, camera_id: str, refs: dict[str, Reference]) -> None:
    fields: dict[str, bytes] = {}
    for zone, (grey, sharp) in refs.items():
        ok, png = cv2.imencode(".png", np.clip(np.rint(grey), 0, 255).astype(np.uint8))
        if ok:
            fields[zone], fields[f"{zone}:sharp"] = png.tobytes(), repr(float(sharp)).encode()
    if fields:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(ref_key(prefix, camera_id), mapping=fields)
            pipe.expire(ref_key(prefix, camera_id), int(KEEP_S))
            await pipe.execute()


async def load_references(redis: Any, prefix: str, camera_id: str) -> dict[str, Reference]:
    raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in
           (await redis.hgetall(ref_key(prefix, camera_id))).items()}
    out: dict[str, Reference] = {}
    for zone, png in raw.items():
        if zone.endswith(":sharp") or f"{zone}:sharp" not in raw:
            continue
        grey = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        if grey is not None:
            out[zone] = grey.astype(np.float32), float(raw[f"{zone}:sharp"])
    return out

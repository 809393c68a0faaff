"""Camera status in Redis: the contract between ingest workers (write) and the API (read).

One hash per camera, ``{prefix}status:{camera_id}``, fields: state (starting|up|degraded|down),
reason, since (epoch s of the last state change), last_frame_at, fps, bitrate (bit/s), width,
height, codec, reconnects, worker, updated_at, and how the stream comes: transport (tcp|udp),
transport_note (e.g. "tcp refused (461)": auto fell back to UDP), b_frames, rtp_lost,
rtp_reordered, ssrc_changes, byes (RTP counters since the worker took the camera). A missing key
means never connected. A hash
whose worker stopped refreshing it (``updated_at`` older than ``stale_after_s``) reads as
``down`` with reason ``stale``: a SIGKILLed worker must not leave its cameras "up" forever.
No field ever holds a URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

State = Literal["starting", "up", "degraded", "down"]
STATES: tuple[State, ...] = ("starting", "up", "degraded", "down")
COVERING: frozenset[str] = frozenset({"up", "degraded"})
# why a camera is down or degraded; "" while up or starting
REASONS = ("auth", "not_found", "refused", "timeout", "eof", "decode_errors", "stalled", "no_video", "no_keyframe",
           "stale", "error", "stopped", "bye")


class CameraStatus(BaseModel):
    camera_id: str
    state: State
    reason: str = ""
    since: float
    last_frame_at: float | None = None
    fps: float = 0.0
    bitrate: float = 0.0
    width: int | None = None
    height: int | None = None
    codec: str = ""
    reconnects: int = 0
    worker: str = ""
    updated_at: float | None = None
    transport: str = ""  # tcp | udp: RTP of the camera's (last) session
    transport_note: str = ""  # why not the transport asked for, e.g. "tcp refused (461)"
    b_frames: bool = False  # the stream has B-frames (timestamps go backwards in send order)
    rtp_lost: int = 0  # RTP packets that never arrived
    rtp_reordered: int = 0  # RTP packets put back in order (UDP)
    ssrc_changes: int = 0  # new RTP senders taken up without reopening
    byes: int = 0  # RTCP BYEs (each followed by a new sender or a reopen)

    def to_redis(self) -> dict[str, str]:
        out = self.model_dump(exclude={"camera_id"})
        return {k: "" if v is None else str(v) for k, v in out.items()}

    @classmethod
    def from_redis(cls, camera_id: str, raw: Mapping[Any, Any]) -> CameraStatus:
        d = {_s(k): _s(v) for k, v in raw.items()}
        data: dict[str, Any] = {k: v for k, v in d.items() if v != "" and k in cls.model_fields}
        if data.get("state") not in STATES:
            data["state"], data["reason"] = "down", "error"
        data.setdefault("since", 0.0)
        return cls(camera_id=camera_id, **data)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def status_key(prefix: str, camera_id: str) -> str:
    return f"{prefix}status:{camera_id}"


async def write_states(redis: Any, prefix: str, statuses: Iterable[CameraStatus]) -> None:
    pipe = redis.pipeline(transaction=False)
    for st in statuses:
        pipe.hset(status_key(prefix, st.camera_id), mapping=st.to_redis())
    await pipe.execute()


async def read_states(redis: Any, prefix: str, camera_ids: Iterable[str], *,
                      stale_after_s: float | None = 30.0, now: float | None = None) -> dict[str, CameraStatus]:
    """Status of each camera that has one (absent = never connected), in one pipeline."""
    ids = list(camera_ids)
    pipe = redis.pipeline(transaction=False)
    for cid in ids:
        pipe.hgetall(status_key(prefix, cid))
    raws = await pipe.execute()
    now = time.time() if now is None else now
    out: dict[str, CameraStatus] = {}
    for cid, raw in zip(ids, raws, strict=True):
        if not raw:
            continue
        st = CameraStatus.from_redis(cid, raw)
        if (stale_after_s is not None and st.state != "down" and st.updated_at is not None
                and now - st.updated_at > stale_after_s):
            st = st.model_copy(update={"state": "down", "reason": "stale", "since": st.updated_at})
        out[cid] = st
    return out

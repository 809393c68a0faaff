"""EvidenceRecorder: a camera's keyframes on local disk while its rules have something going, so
that an alert's clip reaches back to its onset whatever the rule's dwell.

Why: an alert exists only after its dwell (vending 30–60 s, crowding 20–30 s) and the packet ring
holds 10 s at full rate plus a keyframe time-lapse to 30 s (:mod:`camera_hub.ingest.ring`): by
the time the alert fires, its onset has left memory. Keeping every camera on disk would write
1,004 × 40 KB/s; only cameras with a rule candidate or an open episode (the planner's "hot"
cameras) need it, and for them only keyframes until the alert, because the ring still holds the
full-rate tail when the clip is cut. A clip is then: time-lapse before and after the onset, the
full-rate seconds around the onset when the camera turned hot soon enough, and the alert ± the
post-roll at full rate.

A recording starts when a camera turns hot: the ring's whole content is written first (its
time-lapse and full-rate part), then each new keyframe, once a second. It stops ``linger_s``
after the camera was last hot and its file is deleted ``keep_s`` later (the clip jobs are done by
then). Bounded: ``max_recordings`` at once, ``max_recording_bytes`` each (then it rotates),
``max_disk_bytes`` in all, checked before every write; a camera refused or cut short is counted by
reason. Files are
``<dir>/<camera>/<start ms>.rec``: a JSON header line (the stream's codec, size, extradata), then
records of a fixed header and the packet's bytes, appended and flushed, so a reader takes the
complete records and ignores a torn last one. The directory is emptied at start: a recording
outlives its process only as long as no clip job needs it.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from camera_hub import metrics
from camera_hub.config import EvidenceSettings
from camera_hub.events import EncodedPacket, StreamInfo
from camera_hub.ingest.ring import PacketRing

log = logging.getLogger(__name__)

_RECORD = struct.Struct("<dqqiiBI")  # received_at, pts, dts, time base num/den, keyframe, length
_NONE = -(1 << 63)  # pts/dts not set


def _info_json(info: StreamInfo) -> bytes:
    return json.dumps({"codec": info.codec, "width": info.width, "height": info.height,
                       "extradata": info.extradata.hex() if info.extradata else None,
                       "time_base": [info.time_base.numerator, info.time_base.denominator]}).encode() + b"\n"


def _info_from(line: bytes) -> StreamInfo:
    d = json.loads(line)
    return StreamInfo(d["codec"], d["width"], d["height"], bytes.fromhex(d["extradata"]) if d["extradata"] else None,
                      Fraction(*d["time_base"]))


def _record(p: EncodedPacket) -> bytes:
    return _RECORD.pack(p.received_at, _NONE if p.pts is None else p.pts, _NONE if p.dts is None else p.dts,
                        p.time_base.numerator, p.time_base.denominator, p.is_keyframe, len(p.data)) + p.data


def read_recording(path: Path) -> tuple[StreamInfo, list[EncodedPacket]]:
    """The stream info and every complete packet of a recording file."""
    data = path.read_bytes()
    end = data.index(b"\n")
    info, i, out = _info_from(data[:end]), end + 1, []
    while i + _RECORD.size <= len(data):
        t, pts, dts, num, den, key, n = _RECORD.unpack_from(data, i)
        if i + _RECORD.size + n > len(data):
            break  # torn last record: the writer was stopped mid-write
        body = data[i + _RECORD.size:i + _RECORD.size + n]
        out.append(EncodedPacket(body, None if pts == _NONE else pts, None if dts == _NONE else dts, bool(key),
                                 Fraction(num, den), t))
        i += _RECORD.size + n
    return info, out


@dataclass(slots=True)
class _Recording:
    path: Path
    info: StreamInfo
    started: float
    last_t: float  # receive time of the newest packet written
    hot_at: float  # the last time the camera was seen hot
    file: BinaryIO | None = None  # None once closed
    closed_at: float | None = None
    nbytes: int = 0


class EvidenceRecorder:
    def __init__(self, root: Path, ring_for: Callable[[str], PacketRing | None], settings: EvidenceSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.root, self.ring_for, self.s, self.clock = root, ring_for, settings, clock
        self._recs: dict[str, list[_Recording]] = {}  # camera → its recordings, oldest first
        self._hot: dict[str, float] = {}  # camera → last time seen hot (set on the loop, read by flush)
        self._lock = threading.Lock()
        self.written_bytes = 0
        # running totals (under _lock): summing every recording for each write was O(cameras²) a second
        self._disk_bytes = 0
        self._open = 0
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ from the analysis
    def update(self, camera_id: str, hot: bool, now: float) -> None:
        """After each analysis of the camera: recording starts at the next flush when it is hot."""
        if hot and self.s.enabled:
            with self._lock:
                self._hot[camera_id] = now

    # ------------------------------------------------------------------ the writer (a thread)
    def flush(self) -> None:
        """Write what the hot cameras' rings got since the last flush; close and delete what is due."""
        now = self.clock()
        with self._lock:
            hot = dict(self._hot)
            cold = [cid for cid, t in hot.items() if now - t > self.s.linger_s]
            for cid in cold:
                del self._hot[cid]
        for cid in cold:
            self._close_open(cid, now)
        for cid, hot_at in hot.items():
            if cid in cold:
                continue
            try:
                self._write(cid, hot_at, now)
            except OSError as exc:  # a full disk must not take the worker down
                log.warning("evidence recording for %s failed: %s", cid, exc.strerror or exc)
                metrics.EVIDENCE_REFUSED.labels(reason="io_error").inc()
                self._close_open(cid, now)
        self._expire(now)
        metrics.EVIDENCE_RECORDINGS.set(self.recording)
        metrics.EVIDENCE_DISK_BYTES.set(self.disk_bytes)

    def _write(self, cid: str, hot_at: float, now: float) -> None:
        ring = self.ring_for(cid)
        cur = self._open_recording(cid)
        if ring is None:  # the camera left this worker
            if cur is not None:
                self._close(cur, now)
            return
        # a new recording takes the whole ring; an open one the keyframes since its last
        got = ring.window(0.0, float("inf")) if cur is None else ring.keyframes_after(cur.last_t)
        if got is None:
            return
        info, packets = got
        if cur is not None and (info != cur.info or cur.nbytes >= self.s.max_recording_bytes):
            self._close(cur, now)  # a new stream format, or long enough: go on in a new file
            cur = None
        if cur is None:
            if (why := self._refusal()) is not None:
                metrics.EVIDENCE_REFUSED.labels(reason=why).inc()
                return
            new, header = packets, len(_info_json(info))  # the whole ring: time-lapse and full rate around the onset
        else:
            new, header = packets, 0
            cur.hot_at = hot_at
        if new:
            blob = b"".join(_record(p) for p in new)
            if self.disk_bytes + header + len(blob) > self.s.max_disk_bytes:
                # the bound holds for what is written, not only for what starts: an open recording
                # that would cross it ends here (its clip jobs still read what it has)
                metrics.EVIDENCE_REFUSED.labels(reason="max_disk_bytes").inc()
                if cur is not None:
                    self._close(cur, now)
                return
            if cur is None:
                cur = self._start(cid, info, packets[0].received_at, hot_at)
            assert cur.file is not None
            cur.file.write(blob)
            cur.file.flush()
            cur.nbytes += len(blob)
            with self._lock:
                self._disk_bytes += len(blob)
            self.written_bytes += len(blob)
            cur.last_t = new[-1].received_at
            metrics.EVIDENCE_WRITTEN.inc(len(blob))

    def _refusal(self) -> str | None:
        if self.recording >= self.s.max_recordings:
            return "max_recordings"
        if self.disk_bytes >= self.s.max_disk_bytes:
            return "max_disk_bytes"
        return None

    def _start(self, cid: str, info: StreamInfo, first_t: float, hot_at: float) -> _Recording:
        folder = self.root / cid  # camera ids match config.ID_PATTERN: a plain file name
        folder.mkdir(exist_ok=True)
        path = folder / f"{int(first_t * 1000):013d}.rec"
        f = open(path, "ab")  # noqa: SIM115 - kept open while the camera is hot
        header = _info_json(info)
        f.write(header)
        rec = _Recording(path, info, first_t, first_t - 1e-6, hot_at, f, nbytes=len(header))
        with self._lock:
            self._recs.setdefault(cid, []).append(rec)
            self._disk_bytes += len(header)
            self._open += 1
        return rec

    def _open_recording(self, cid: str) -> _Recording | None:
        with self._lock:
            recs = self._recs.get(cid, [])
            return recs[-1] if recs and recs[-1].file is not None else None

    def _close(self, rec: _Recording, now: float) -> None:
        if rec.file is not None:
            rec.file.close()
            rec.file, rec.closed_at = None, now
            with self._lock:
                self._open -= 1

    def _close_open(self, cid: str, now: float) -> None:
        if (cur := self._open_recording(cid)) is not None:
            self._close(cur, now)

    def _expire(self, now: float) -> None:
        with self._lock:
            gone = [(cid, r) for cid, recs in self._recs.items() for r in recs
                    if r.closed_at is not None and now - r.closed_at > self.s.keep_s]
            for cid, r in gone:
                self._recs[cid].remove(r)
                self._disk_bytes -= r.nbytes
                if not self._recs[cid]:
                    del self._recs[cid]
        for _, r in gone:
            r.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close every open file (the worker stops)."""
        now = self.clock()
        with self._lock:
            recs = [r for rs in self._recs.values() for r in rs]
        for r in recs:
            self._close(r, now)

    # ------------------------------------------------------------------ for clips
    def window(self, camera_id: str, t0: float, t1: float) -> tuple[StreamInfo, list[EncodedPacket]] | None:
        """Packets from the keyframe at or before ``t0`` (or the oldest kept) to ``t1``: what the
        camera's recordings hold, joined to its ring (which has the full-rate tail)."""
        with self._lock:
            paths = [r.path for r in self._recs.get(camera_id, [])]
        ring = self.ring_for(camera_id)
        got = ring.window(t0, t1) if ring is not None else None
        info = got[0] if got else None
        seen: dict[tuple[float, int | None, int], EncodedPacket] = {}
        for path in paths:
            try:
                rinfo, packets = read_recording(path)
            except (OSError, ValueError):
                continue  # deleted meanwhile, or a header never written
            if info is not None and rinfo != info:
                continue  # another stream format: cannot be joined to the ring's
            info = info or rinfo
            for p in packets:
                seen[(p.received_at, p.pts, len(p.data))] = p
        for p in got[1] if got else []:
            seen[(p.received_at, p.pts, len(p.data))] = p
        if info is None or not seen:
            return None
        packets = [p for p in sorted(seen.values(), key=lambda p: p.received_at) if p.received_at <= t1]
        keys = [i for i, p in enumerate(packets) if p.is_keyframe]
        if not keys:
            return None
        first = max((i for i in keys if packets[i].received_at <= t0), default=keys[0])
        return info, packets[first:]

    def source(self, camera_id: str) -> _CameraEvidence:
        return _CameraEvidence(self, camera_id)

    # ------------------------------------------------------------------ figures
    @property
    def recording(self) -> int:
        return self._open

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    def stats(self) -> dict[str, int]:
        return {"recording": self.recording, "disk_bytes": self.disk_bytes, "written_bytes": self.written_bytes}


@dataclass(frozen=True, slots=True)
class _CameraEvidence:
    """One camera's view of the recorder: the clip writer's ``ClipSource``."""

    recorder: EvidenceRecorder
    camera_id: str

    def window(self, t0: float, t1: float) -> tuple[StreamInfo, list[EncodedPacket]] | None:
        return self.recorder.window(self.camera_id, t0, t1)

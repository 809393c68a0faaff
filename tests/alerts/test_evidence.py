"""EvidenceRecorder: a hot camera's ring, then its keyframes, on disk; a clip that reaches back to
an onset the ring alone has long forgotten; the bounds on recordings and their lifetime."""

from __future__ import annotations

import time

import av
from prometheus_client import REGISTRY

from camera_hub.alerts.media import media_path
from camera_hub.alerts.publisher import AlertPublisher
from camera_hub.clips import write_clip
from camera_hub.config import EvidenceSettings
from camera_hub.evidence import EvidenceRecorder, read_recording
from camera_hub.ingest.ring import PacketRing
from tests.alerts.alertkit import episode, h264_packets, make_city

T0 = 1_700_000_000.0


class Camera:
    """A camera's packets fed into its ring as the clock advances (no sleeping)."""

    def __init__(self, seconds: float, gop: int = 20, start: float = T0) -> None:
        self.info, self.packets = h264_packets(seconds, start=start, fps=10, gop=gop)
        self.ring = PacketRing(10.0, 64 << 20, lapse_s=30.0, lapse_every_s=4.0)
        self.ring.set_info(self.info)
        self.i, self.now = 0, start

    def run_to(self, t: float) -> None:
        while self.i < len(self.packets) and self.packets[self.i].received_at <= t:
            self.ring.append(self.packets[self.i])
            self.i += 1
        self.now = t


def recorder(tmp_path, cams: dict[str, Camera], **settings) -> EvidenceRecorder:
    clock = lambda: max(c.now for c in cams.values())  # noqa: E731
    return EvidenceRecorder(tmp_path / "rec", lambda cid: cams[cid].ring if cid in cams else None,
                            EvidenceSettings(**settings), clock=clock)


def advance(rec: EvidenceRecorder, cams: dict[str, Camera], until: float, hot: dict[str, bool]) -> None:
    """One flush a second; each camera reported hot (or not) once a second, like the analysis."""
    t = max(c.now for c in cams.values())
    while t < until:
        t += 1.0
        for cid, cam in cams.items():
            cam.run_to(t)
            rec.update(cid, hot.get(cid, False), t)
        rec.flush()


def test_a_long_dwell_clip_reaches_its_onset_from_disk(tmp_path) -> None:
    cams = {"cam0": Camera(120)}
    rec = recorder(tmp_path, cams)
    advance(rec, cams, T0 + 40, {})
    assert rec.recording == 0 and rec.disk_bytes == 0  # nothing written while nothing is going on
    onset = T0 + 38.0  # the rule saw it at 38 s and reported the camera hot from then on
    advance(rec, cams, T0 + 100, {"cam0": True})
    alert_t, post = onset + 55.0, 5.0
    # the ring alone forgot the onset long ago: its oldest keyframe is 30 s old
    assert cams["cam0"].ring.window(onset - 20, alert_t + post)[1][0].received_at > onset
    info, packets = write_clip(rec.source("cam0"), onset - 20.0, alert_t + post, tmp_path / "c.mp4")
    assert packets[0].received_at <= onset - 20.0 + 4.0  # the time-lapse keyframe at or before it
    assert packets[0].received_at <= onset and packets[-1].received_at >= alert_t + post - 0.1
    # onset → alert as time-lapse keyframes, the last seconds at full rate
    tail = [p for p in packets if p.received_at > alert_t - 4]
    assert len(tail) >= 10 * 8 and not all(p.is_keyframe for p in tail)
    gaps = [b.received_at - a.received_at for a, b in zip(packets, packets[1:], strict=False)]
    assert max(gaps) <= 4.0 + 1e-6  # no hole longer than the time-lapse step
    with av.open(str(tmp_path / "c.mp4")) as c:
        frames = list(c.decode(c.streams.video[0]))
        span = float((frames[-1].pts - frames[0].pts) * c.streams.video[0].time_base)
    assert len(frames) == len(packets) and span >= alert_t + post - onset + 15.0
    # what the recording holds is keyframes after its first flush, so it costs a fraction of the stream
    kept = rec.disk_bytes
    stream = sum(len(p.data) for p in cams["cam0"].packets if T0 + 8 <= p.received_at <= T0 + 100)
    assert 0 < kept < stream
    assert kept == sum(f.stat().st_size for f in (tmp_path / "rec").rglob("*.rec"))  # the running total


def test_the_recording_stops_after_linger_and_is_deleted_after_keep(tmp_path) -> None:
    cams = {"cam0": Camera(90)}
    rec = recorder(tmp_path, cams, linger_s=5.0, keep_s=10.0)
    advance(rec, cams, T0 + 20, {"cam0": True})
    files = list((tmp_path / "rec" / "cam0").glob("*.rec"))
    assert rec.recording == 1 and len(files) == 1 and rec.disk_bytes == files[0].stat().st_size
    advance(rec, cams, T0 + 24, {})  # cold for 4 s: still recording (linger 5 s)
    assert rec.recording == 1
    advance(rec, cams, T0 + 27, {})
    assert rec.recording == 0 and files[0].exists()  # closed, kept for the clip jobs
    advance(rec, cams, T0 + 40, {})
    assert not files[0].exists() and rec.disk_bytes == 0


def test_bounds_refuse_recordings_beyond_the_limit(tmp_path) -> None:
    cams = {"a": Camera(30), "b": Camera(30)}
    rec = recorder(tmp_path, cams, max_recordings=1)
    advance(rec, cams, T0 + 15, {"a": True, "b": True})
    assert rec.recording == 1 and sum(1 for _ in (tmp_path / "rec").rglob("*.rec")) == 1


def test_max_disk_bytes_holds_for_recordings_already_open(tmp_path) -> None:
    """The disk bound holds for what is written, not only for what starts: two cameras recording
    for 50 s stop at the bound (before, an open recording went on past it)."""
    def on_disk() -> int:
        return sum(p.stat().st_size for p in (tmp_path / "rec").rglob("*.rec"))

    free = {"a": Camera(60), "b": Camera(60)}
    rec = recorder(tmp_path, free)
    advance(rec, free, T0 + 50, {"a": True, "b": True})
    unbounded = on_disk()
    rec.close()

    cams = {"a": Camera(60), "b": Camera(60)}
    refused = lambda: REGISTRY.get_sample_value("camera_hub_evidence_refused_total",  # noqa: E731
                                                {"reason": "max_disk_bytes"}) or 0.0
    before = refused()
    bound = unbounded // 2
    rec = recorder(tmp_path, cams, max_disk_bytes=bound)  # a new recorder empties the folder
    advance(rec, cams, T0 + 50, {"a": True, "b": True})
    assert 0 < on_disk() <= bound and rec.disk_bytes <= bound
    assert rec.recording == 0 and refused() > before


def test_a_recording_rotates_at_its_size_limit(tmp_path) -> None:
    cams = {"cam0": Camera(60)}
    rec = recorder(tmp_path, cams, max_recording_bytes=4_000)
    advance(rec, cams, T0 + 50, {"cam0": True})
    files = sorted((tmp_path / "rec" / "cam0").glob("*.rec"))
    assert len(files) >= 2
    # whatever file holds a span, the joined window still starts at a keyframe and plays on
    info, packets = write_clip(rec.source("cam0"), T0 + 12, T0 + 50, tmp_path / "r.mp4")
    assert packets[0].is_keyframe


def test_a_torn_last_record_is_ignored_and_the_folder_starts_empty(tmp_path) -> None:
    cams = {"cam0": Camera(30)}
    rec = recorder(tmp_path, cams)
    advance(rec, cams, T0 + 15, {"cam0": True})
    rec.close()
    path = next((tmp_path / "rec" / "cam0").glob("*.rec"))
    info, whole = read_recording(path)
    with path.open("ab") as f:
        f.write(b"\x00" * 20)  # a record header cut short by a crash
    assert len(read_recording(path)[1]) == len(whole) and info == cams["cam0"].info
    recorder(tmp_path, cams)  # a new process: leftovers are gone
    assert not path.exists()


def test_no_recording_when_disabled(tmp_path) -> None:
    cams = {"cam0": Camera(20)}
    rec = recorder(tmp_path, cams, enabled=False)
    advance(rec, cams, T0 + 15, {"cam0": True})
    assert rec.recording == 0


async def test_the_alert_says_what_its_clip_covers_and_has_its_onset_picture(tmp_path, redis_client, redis_prefix):
    start = time.time() - 100  # all of it in the past: the clip job need not wait for its post-roll
    cams = {"cam0": Camera(120, start=start)}
    rec = recorder(tmp_path, cams)
    advance(rec, cams, start + 30, {})
    onset, alert_t = start + 28.0, start + 88.0
    advance(rec, cams, alert_t + 6, {"cam0": True})  # the clip is cut just after the post-roll
    pub = AlertPublisher(make_city(2, pre_roll_s=20, post_roll_s=5), redis_client, prefix=redis_prefix,
                         data_dir=tmp_path / "data", clip_source_for=rec.source)
    before = REGISTRY.get_sample_value("camera_hub_clips_total", {"outcome": "no_video"}) or 0.0
    aid = await pub.publish(episode("start", type_="vending", started_at=onset, t=alert_t))
    other = await pub.publish(episode("start", type_="vending", camera="cam1", started_at=onset, t=alert_t))
    await pub.wait_clips()
    a = await pub.store.get(aid)
    assert a.clip_url == f"/api/v1/alerts/{aid}/clip" and a.onset_snapshot_url == f"/api/v1/alerts/{aid}/onset"
    assert a.clip_start <= onset - 20 + 4.0 and a.clip_start <= onset and a.clip_end >= alert_t + 5 - 0.2
    jpeg = media_path(tmp_path / "data", aid, "onset").read_bytes()
    assert jpeg[:2] == b"\xff\xd8"
    b = await pub.store.get(other)  # a camera this worker never read: no clip, said why
    assert b.clip_url is None and b.clip_start is None
    assert REGISTRY.get_sample_value("camera_hub_clips_total", {"outcome": "no_video"}) == before + 1
    await pub.close()

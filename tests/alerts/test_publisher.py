"""AlertPublisher with real Redis: one alert per episode, cooldown, snapshot, clip, spool."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import av
import cv2
import numpy as np
import pytest
from alertkit import episode, h264_packets, make_city

from camera_hub.alerts.media import media_path
from camera_hub.alerts.publisher import AlertPublisher
from camera_hub.alerts.store import AlertStore, connect
from camera_hub.ingest.ring import PacketRing


async def test_one_alert_per_episode_and_publishing_twice_stores_once(redis_client, redis_prefix, tmp_path):
    pub = AlertPublisher(make_city(), redis_client, prefix=redis_prefix, data_dir=tmp_path)
    t0 = 1_700_000_000.0
    start = episode("start", started_at=t0, count=8, with_frame=True)
    aid = await pub.publish(start)
    assert await pub.publish(start) == aid  # a repeat (e.g. a rule restarted) is the same alert
    await pub.publish(episode("update", started_at=t0, t=t0 + 5, count=11))
    await pub.publish(episode("update", started_at=t0, t=t0 + 5, count=11))
    await pub.publish(episode("end", started_at=t0, t=t0 + 9, count=11))
    feed = await pub.store.read_feed("0")
    assert [(e.alert_id, e.event) for e in feed] == [(aid, "created"), (aid, "updated"), (aid, "ended")]
    a = await pub.store.get(aid)
    assert (a.state, a.count, a.ended_at, a.grid_id, a.district) == ("new", 11, t0 + 9, "g0", "d1")
    assert a.due_at == pytest.approx(t0 + 30 * 3600)
    assert a.snapshot_url == f"/api/v1/alerts/{aid}/snapshot"
    # the snapshot is a JPEG with the box drawn (red-ish outline where the box edge is)
    img = cv2.imdecode(np.frombuffer(media_path(tmp_path, aid, "snapshot").read_bytes(), np.uint8), 1)
    assert img.shape == (120, 160, 3)
    b, g, r = img[30, 60].astype(int)
    assert r > 150 and b < 100, "box outline missing"


async def test_cooldown_per_camera_zone_and_type(redis_client, redis_prefix, tmp_path):
    pub = AlertPublisher(make_city(cooldown_s=60), redis_client, prefix=redis_prefix, data_dir=tmp_path)
    t0 = 1_700_000_000.0
    assert await pub.publish(episode("start", started_at=t0))
    await pub.publish(episode("end", started_at=t0, t=t0 + 10))
    assert await pub.publish(episode("start", started_at=t0 + 30)) is None  # within 60 s of the end
    assert await pub.publish(episode("end", started_at=t0 + 30, t=t0 + 40)) is None
    assert await pub.publish(episode("start", started_at=t0 + 30, zone="z2"))  # other zone
    assert await pub.publish(episode("start", started_at=t0 + 30, type_="vending"))  # other type
    assert await pub.publish(episode("start", started_at=t0 + 71))  # cooldown over
    assert len((await pub.store.list()).alerts) == 4


def _clip_ring(start: float, seconds: float) -> PacketRing:
    info, packets = h264_packets(seconds, start=start, fps=10, gop=10)
    ring = PacketRing(seconds=60, max_bytes=64 * 1024 * 1024)
    ring.set_info(info)
    for p in packets:
        ring.append(p)
    return ring


async def test_clip_from_packet_ring_plays_and_covers_pre_and_post_roll(redis_client, redis_prefix, tmp_path):
    start = time.time() - 20
    ring = _clip_ring(start, 14.0)
    cfg = make_city(pre_roll_s=3, post_roll_s=4)
    pub = AlertPublisher(cfg, redis_client, prefix=redis_prefix, data_dir=tmp_path,
                         clip_source_for=lambda cam: ring if cam == "cam0" else None)
    onset = start + 6.05
    aid = await pub.publish(episode("start", started_at=onset, camera="cam0"))
    await pub.publish(episode("start", started_at=onset, camera="cam1"))  # no ring: no clip, no error
    await pub.wait_clips()
    a = await pub.store.get(aid)
    assert a.clip_url == f"/api/v1/alerts/{aid}/clip"
    path = media_path(tmp_path, aid, "clip")
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [f for f in c.decode(v)]
        duration = float(frames[-1].pts * v.time_base) - float(frames[0].pts * v.time_base)
        assert v.codec_context.name == "h264" and (v.width, v.height) == (160, 120)
    assert duration >= 3 + 4 - 0.15, duration  # pre-roll + post-roll (at 10 fps)
    assert duration <= 3 + 4 + 1.0 + 0.15  # from the keyframe at or before the pre-roll start
    assert path.read_bytes()[4:8] == b"ftyp" and path.read_bytes().index(b"moov") < path.read_bytes().index(b"mdat")
    assert [e.event for e in await pub.store.read_feed("0") if e.alert_id == aid] == ["created", "clip"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_paused_killed_and_restarted_mid_burst_loses_and_doubles_nothing(redis_proc, tmp_path):
    """Phase 1 freezes Redis (SIGSTOP: writes time out, yet run later when it wakes, so replay
    must not double them); phase 2 kills and restarts it (writes are refused)."""
    client = connect(f"redis://127.0.0.1:{redis_proc.port}/0", timeout_s=0.3)
    pub = AlertPublisher(make_city(), client, prefix="ch:", data_dir=tmp_path / "data", retry_s=0.1)
    t0 = 1_700_000_000.0
    n = 240
    ids = []
    for i in range(n):
        if i == 60:
            os.kill(redis_proc.proc.pid, signal.SIGSTOP)
        if i == 100:
            os.kill(redis_proc.proc.pid, signal.SIGCONT)
        if i == 150:
            redis_proc.kill()
        if i == 190:
            redis_proc.start()
        s = t0 + i
        ids.append(await pub.publish(episode("start", camera=f"cam{i % 3}", zone=f"z{i}", started_at=s)))
        await pub.publish(episode("end", camera=f"cam{i % 3}", zone=f"z{i}", started_at=s, t=s + 0.5, count=i))
        await asyncio.sleep(0.002)
    assert pub.spooled_total > 100  # the outage really sent writes to the spool
    for _ in range(200):
        if await pub.flush():
            break
        await asyncio.sleep(0.1)
    assert pub.spooled == 0
    store = AlertStore(client, "ch:")
    feed = await store.read_feed("0", count=10_000)
    created = [e.alert_id for e in feed if e.event == "created"]
    ended = [e.alert_id for e in feed if e.event == "ended"]
    assert sorted(created) == sorted(ids) and len(created) == n  # none lost, none doubled
    assert sorted(ended) == sorted(ids) and len(ended) == n
    assert created == ids  # and in publish order
    alerts = await store.get_many(ids)
    assert [a.count for a in alerts] == list(range(n))
    await pub.close()
    await client.aclose()


async def test_publish_many_creates_in_one_batch_and_stays_idempotent(redis_client, redis_prefix, tmp_path):
    pub = AlertPublisher(make_city(), redis_client, prefix=redis_prefix, data_dir=tmp_path)
    t0 = 1_700_000_000.0
    eps = [episode("start", camera=f"cam{i % 3}", zone=f"m{i}", started_at=t0 + i, with_frame=i == 0)
           for i in range(20)]
    ids = await pub.publish_many(eps)
    again = await pub.publish_many(eps[:5] + [episode("end", camera="cam0", zone="m0", started_at=t0, t=t0 + 3)])
    assert again[:5] == ids[:5] and again[5] == ids[0]
    feed = await pub.store.read_feed("0")
    assert [e.alert_id for e in feed if e.event == "created"] == ids
    assert [e.alert_id for e in feed if e.event == "ended"] == [ids[0]]
    assert media_path(tmp_path, ids[0], "snapshot").exists() and not media_path(tmp_path, ids[1], "snapshot").exists()


async def test_spool_left_by_a_stopped_publisher_is_replayed_by_the_next(redis_client, redis_prefix, tmp_path):
    dead = connect(f"redis://127.0.0.1:{_free_port()}/0", timeout_s=0.2)  # nothing listens there
    first = AlertPublisher(make_city(), dead, prefix=redis_prefix, data_dir=tmp_path)
    t0 = 1_700_000_000.0
    ids = [await first.publish(episode("start", zone=f"s{i}", started_at=t0 + i)) for i in range(5)]
    await first.publish(episode("end", zone="s0", started_at=t0, t=t0 + 2))
    assert first.spooled == 6
    await first.close()
    await dead.aclose()
    # a torn last line (the process died mid-write) is skipped
    spool = tmp_path / "spool" / "alerts.jsonl"
    spool.write_bytes(spool.read_bytes() + b'{"op": "cre')
    second = AlertPublisher(make_city(), redis_client, prefix=redis_prefix, data_dir=tmp_path)
    assert second.spooled == 6
    assert await second.flush() and second.spooled == 0
    feed = await second.store.read_feed("0")
    assert [(e.alert_id, e.event) for e in feed] == [(i, "created") for i in ids] + [(ids[0], "ended")]
    assert not (tmp_path / "spool" / "alerts.jsonl").exists()

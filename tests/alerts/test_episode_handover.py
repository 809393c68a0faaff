"""An episode outlives the process that saw it start (issue #12): a camera that starts afresh —
on another worker after a crash or a rebalance, or on the same one after its leases were fenced —
continues the open alert or keeps its cooldown, instead of raising the episode twice. Two
publishers on one real Redis stand for two workers. And the alert spool that workers sharing a
data folder share: a replay by one never rewrites away what another appended."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from alertkit import episode, make_city

from camera_hub.alerts.publisher import CONTINUE_S, AlertPublisher
from camera_hub.alerts.spool import Spool
from camera_hub.alerts.store import connect

T0 = 1_700_000_000.0


def worker(redis_client, redis_prefix: str, folder: Path, **alerts) -> AlertPublisher:
    return AlertPublisher(make_city(**alerts), redis_client, prefix=redis_prefix, data_dir=folder)


async def created(pub: AlertPublisher) -> list[str]:
    return [e.alert_id for e in await pub.store.read_feed("0") if e.event == "created"]


async def test_an_open_episode_seen_again_by_the_next_worker_continues_its_alert(redis_client, redis_prefix,
                                                                                  tmp_path) -> None:
    a = worker(redis_client, redis_prefix, tmp_path / "a", cooldown_s=30)
    b = worker(redis_client, redis_prefix, tmp_path / "b", cooldown_s=30)
    aid = await a.publish(episode("start", started_at=T0, count=8))
    a.observed({"cam0": T0 + 100})  # its samples still find the crowd there at +100 s
    await a.refresh_records()
    # a dies; b takes the camera, its rule needs its own onset: 40 s after the last sighting
    assert await b.publish(episode("start", started_at=T0 + 140, t=T0 + 160, count=9)) == aid
    await b.publish(episode("update", started_at=T0 + 140, t=T0 + 170, count=12))
    await b.publish(episode("end", started_at=T0 + 140, t=T0 + 200, count=12))
    assert await created(b) == [aid]
    alert = await b.store.get(aid)
    assert (alert.started_at, alert.count, alert.ended_at) == (T0, 12, T0 + 200)
    assert [e.event for e in await b.store.read_feed("0")] == ["created", "updated", "updated", "ended"]
    # the cooldown holds across workers too: a's next start 20 s after b's end is suppressed
    assert await a.publish(episode("start", started_at=T0 + 220)) is None
    later = await a.publish(episode("start", started_at=T0 + 240))
    assert later is not None and later != aid
    assert await created(a) == [aid, later]


async def test_an_episode_not_seen_for_longer_than_the_continuation_window_is_a_new_alert(
        redis_client, redis_prefix, tmp_path) -> None:
    a = worker(redis_client, redis_prefix, tmp_path / "a", cooldown_s=30)
    b = worker(redis_client, redis_prefix, tmp_path / "b", cooldown_s=30)
    aid = await a.publish(episode("start", started_at=T0))
    # never refreshed (a stopped seeing it at T0): b's onset is past the window
    other = await b.publish(episode("start", started_at=T0 + CONTINUE_S + 1))
    assert other is not None and other != aid
    assert await created(b) == [aid, other]


async def test_a_camera_started_afresh_on_the_same_worker_continues_its_alert(redis_client, redis_prefix,
                                                                              tmp_path) -> None:
    pub = worker(redis_client, redis_prefix, tmp_path, cooldown_s=0)
    aid = await pub.publish(episode("start", type_="vending", started_at=T0))
    pub.forget_camera("cam0")  # its leases were fenced and retaken: the analysis starts again
    assert await pub.publish(episode("start", type_="vending", started_at=T0 + 30)) == aid
    await pub.publish(episode("end", type_="vending", started_at=T0 + 30, t=T0 + 90))
    assert (await pub.store.get(aid)).ended_at == T0 + 90
    assert await created(pub) == [aid]


async def test_an_alert_ended_behind_its_record_is_not_continued(redis_client, redis_prefix, tmp_path) -> None:
    """The end reached the alert (a spool replayed after its worker died) but not the record,
    which still says open: the alert is believed, so the next start is judged by the cooldown."""
    a = worker(redis_client, redis_prefix, tmp_path / "a", cooldown_s=30)
    b = worker(redis_client, redis_prefix, tmp_path / "b", cooldown_s=30)
    aid = await a.publish(episode("start", started_at=T0))
    assert await a.store.amend(aid, t=T0 + 10, ended_at=T0 + 10)
    assert await b.publish(episode("start", started_at=T0 + 20)) is None  # within the cooldown of that end
    fresh = await b.publish(episode("start", started_at=T0 + 45))
    assert fresh is not None and fresh != aid


async def test_a_late_write_by_the_worker_that_lost_the_camera_does_not_reopen_an_ended_episode(
        redis_client, redis_prefix, tmp_path) -> None:
    a = worker(redis_client, redis_prefix, tmp_path / "a", cooldown_s=30)
    b = worker(redis_client, redis_prefix, tmp_path / "b", cooldown_s=30)
    aid = await a.publish(episode("start", started_at=T0))
    assert await b.publish(episode("start", started_at=T0 + 20)) == aid
    await b.publish(episode("end", started_at=T0 + 20, t=T0 + 40))
    a.observed({"cam0": T0 + 45})  # a's last samples, written after b's end
    await a.refresh_records()
    (record,) = await b.store.episodes([("cam0", "z1", "crowding")])
    assert record is not None and record.ended and record.t == T0 + 40


async def test_workers_sharing_a_spool_lose_nothing_when_one_replays(redis_client, redis_prefix, tmp_path) -> None:
    dead = connect("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens there
    a = AlertPublisher(make_city(), dead, prefix=redis_prefix, data_dir=tmp_path)
    b = AlertPublisher(make_city(), dead, prefix=redis_prefix, data_dir=tmp_path)
    ids = [await (a if i % 2 else b).publish(episode("start", zone=f"s{i}", started_at=T0 + i)) for i in range(6)]
    assert len(Spool(tmp_path / "spool" / "alerts.jsonl")) == 6  # one file, both workers' operations
    replayer = AlertPublisher(make_city(), redis_client, prefix=redis_prefix, data_dir=tmp_path)
    assert await replayer.flush()
    assert sorted(await created(replayer)) == sorted(ids)
    for pub in (a, b, replayer):
        await pub.close()
    await dead.aclose()


def test_an_append_after_a_torn_line_starts_on_a_fresh_line(tmp_path) -> None:
    spool = Spool(tmp_path / "alerts.jsonl")
    spool.append({"op": "create", "n": 1})
    with open(spool.path, "ab") as f:  # a worker killed in the middle of its write
        f.write(b'{"op": "cre')
    spool.append({"op": "create", "n": 2})
    assert [op["n"] for op in Spool(spool.path).read()] == [1, 2]


def test_a_replay_holds_the_spool_against_other_processes_until_it_ends_or_dies(tmp_path) -> None:
    path = tmp_path / "alerts.jsonl"
    mine, theirs = Spool(path), Spool(path)
    assert mine.lock(wait=False)
    assert not theirs.lock(wait=False)  # another worker's append or replay waits
    mine.unlock()
    assert theirs.lock(wait=False)
    theirs.unlock()
    # a worker SIGKILLed while it holds the spool does not hold it any more
    code = ("import sys; from pathlib import Path; from camera_hub.alerts.spool import Spool; "
            "s = Spool(Path(sys.argv[1])); s.lock(); print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not mine.lock(wait=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert mine.lock(wait=False)
        mine.unlock()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_start_while_redis_is_away_is_judged_by_what_this_worker_knows(redis_prefix, tmp_path) -> None:
    dead = connect("redis://127.0.0.1:1/0", timeout_s=0.2)
    pub = AlertPublisher(make_city(cooldown_s=30), dead, prefix=redis_prefix, data_dir=tmp_path)
    aid = await pub.publish(episode("start", started_at=T0))
    await pub.publish(episode("end", started_at=T0, t=T0 + 10))
    assert await pub.publish(episode("start", started_at=T0 + 20)) is None  # its own cooldown, no Redis needed
    assert pub.spooled == 2 and aid
    await asyncio.wait_for(pub.close(), 5)
    await dead.aclose()

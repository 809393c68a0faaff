"""AlertStore against real Redis: idempotent writes, indexes with cursor pages, lifecycle, SLA."""

from __future__ import annotations

import pytest
from alertkit import episode, make_city
from redis.crc import key_slot

from camera_hub.alerts.model import Alert, AlertNotFound, IllegalTransition, alert_id
from camera_hub.alerts.publisher import AlertPublisher
from camera_hub.alerts.store import AlertStore


def _alert(i: int, *, camera: str = "cam0", type_: str = "crowding", t0: float = 1_700_000_000.0) -> Alert:
    key = f"{camera}|z|{type_}|{i}"
    return Alert(id=alert_id(key, t0 + i), type=type_, camera_id=camera, grid_id=f"g{camera[-1]}",
                 district="d1", zone_id="z", started_at=t0 + i, updated_at=t0 + i, due_at=t0 + i + 3600)


def test_alert_ids_sort_by_onset_and_repeat_for_the_same_episode() -> None:
    a = alert_id("cam|z|crowding|1.000", 1.0)
    assert a == alert_id("cam|z|crowding|1.000", 1.0)
    assert a != alert_id("cam|z|vending|1.000", 1.0)
    assert sorted([alert_id("x", 10.0), alert_id("y", 2.0)]) == [alert_id("y", 2.0), alert_id("x", 10.0)]


async def test_create_is_idempotent_and_feeds_once(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix)
    a = _alert(1)
    assert await store.create(a) is not None
    assert await store.create(a) is None
    assert (await store.get(a.id)).id == a.id
    feed = await store.read_feed("0")
    assert [(e.alert_id, e.event) for e in feed] == [(a.id, "created")]
    await store.transition(a.id, "acknowledge", "op")
    keys = await redis_client.keys(redis_prefix + "*")
    assert len(keys) >= 6 and all(k.decode().startswith(redis_prefix + "{alerts}:") for k in keys)
    assert len({key_slot(k) for k in keys}) == 1  # one Cluster slot: the transactions stay legal there


async def test_amend_applies_only_newer_events(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix)
    a = _alert(1)
    await store.create(a)
    assert await store.amend(a.id, t=a.started_at + 5, count=12)
    assert not await store.amend(a.id, t=a.started_at + 5, count=99)  # replayed: no-op
    assert not await store.amend(a.id, t=a.started_at + 3, count=1)  # older: no-op
    assert await store.amend(a.id, t=a.started_at + 9, ended_at=a.started_at + 9)
    got = await store.get(a.id)
    assert (got.count, got.ended_at) == (12, a.started_at + 9)
    assert [e.event for e in await store.read_feed("0")] == ["created", "updated", "ended"]
    with pytest.raises(AlertNotFound):
        await store.amend("1700000000000-0000000000000000", t=1.0)


async def test_cursor_pages_cover_every_alert_once_newest_first(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix)
    alerts = [_alert(i, camera=f"cam{i % 3}", type_="crowding" if i % 2 else "vending") for i in range(53)]
    for a in alerts:
        await store.create(a)
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(cursor=cursor, limit=10)
        seen += [a.id for a in page.alerts]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted((a.id for a in alerts), reverse=True)

    # two filters: the intersection, paged
    want = sorted((a.id for a in alerts if a.camera_id == "cam1" and a.type == "vending"), reverse=True)
    got: list[str] = []
    cursor = None
    while True:
        page = await store.list({"camera_id": "cam1", "type": "vending"}, cursor=cursor, limit=3)
        got += [a.id for a in page.alerts]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert got == want and len(want) > 3

    # time window by onset
    page = await store.list(since=alerts[10].started_at, until=alerts[20].started_at, limit=100)
    assert [a.id for a in page.alerts] == [a.id for a in reversed(alerts[10:20])]


async def test_lifecycle_moves_indexes_keeps_history_and_rejects_illegal_steps(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix)
    a = _alert(1)
    await store.create(a)
    with pytest.raises(IllegalTransition):
        await store.transition(a.id, "resolve", "op1")
    await store.transition(a.id, "acknowledge", "op1", "seen", now=10.0)
    await store.transition(a.id, "dispatch", "op1", "send Li", worker="worker-7", now=11.0)
    done = await store.transition(a.id, "resolve", "op2", "cleared", now=12.0)
    assert done.state == "resolved" and done.dispatched_to == "worker-7"
    assert [(h.actor, h.action, h.note) for h in done.history] == [
        ("op1", "acknowledge", "seen"), ("op1", "dispatch", "send Li"), ("op2", "resolve", "cleared")]
    with pytest.raises(IllegalTransition):
        await store.transition(a.id, "dismiss", "op1")
    assert [x.id for x in (await store.list({"state": "resolved"})).alerts] == [a.id]
    assert (await store.list({"state": "new"})).alerts == []
    assert await store.get(a.id) == done  # the 409s changed nothing


async def test_sla_breaches_are_counted_once_and_skip_closed_alerts(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix)
    late, closed, fresh = _alert(1), _alert(2), _alert(3)
    for a in (late, closed, fresh):
        await store.create(a)
    await store.transition(closed.id, "dismiss", "op")
    now = fresh.due_at - 1
    assert await store.sweep_sla(now) == 1
    assert await store.sweep_sla(now) == 0
    assert (await store.get(late.id)).breached
    assert not (await store.get(closed.id)).breached and not (await store.get(fresh.id)).breached
    assert await store.breaches() == 1
    counts = await store.open_counts()
    assert counts[("crowding", "new")] == 2 and ("crowding", "dismissed") not in counts


async def test_trim_drops_old_closed_alerts_and_feed(redis_client, redis_prefix) -> None:
    store = AlertStore(redis_client, redis_prefix, max_age_s=100)
    old_closed, old_open = _alert(1, t0=1000.0), _alert(2, t0=1000.0)
    for a in (old_closed, old_open):
        await store.create(a)
    await store.transition(old_closed.id, "dismiss", "op")
    assert await store.trim(now=10_000_000.0) == 1
    with pytest.raises(AlertNotFound):
        await store.get(old_closed.id)
    assert (await store.get(old_open.id)).state == "new"


async def test_grid_and_district_come_from_the_cameras_first_grid(redis_client, redis_prefix, tmp_path) -> None:
    cfg = make_city(4)
    pub = AlertPublisher(cfg, redis_client, prefix=redis_prefix, data_dir=tmp_path)
    aid = await pub.publish(episode(camera="cam3"))
    a = await pub.store.get(aid)
    assert (a.grid_id, a.district) == ("g3", "d2")
    assert [x.id for x in (await pub.store.list({"district": "d2", "grid_id": "g3"})).alerts] == [aid]

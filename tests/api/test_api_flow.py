"""publish → feed → lifecycle → clip, through the real HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
from alertkit import episode, h264_packets

from camera_hub.ingest.ring import PacketRing


async def read_sse(resp: httpx.Response, n: int) -> list[tuple[str, dict]]:
    """The first ``n`` events of an open SSE response as (id, data)."""
    out: list[tuple[str, dict]] = []
    sid = None

    async def run() -> None:
        nonlocal sid
        async for line in resp.aiter_lines():
            if line.startswith("id: "):
                sid = line[4:]
            elif line.startswith("data: "):
                out.append((sid, json.loads(line[6:])))
                if len(out) == n:
                    return

    await asyncio.wait_for(run(), 10.0)
    return out


async def test_publish_feed_lifecycle_clip(live, publisher) -> None:
    start = time.time() - 30
    info, packets = h264_packets(10, start=start)
    ring = PacketRing(60, 64 << 20)
    ring.set_info(info)
    for p in packets:
        ring.append(p)
    publisher.clip_source_for = lambda cam: ring
    onset = start + 5

    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        op = live.headers("operator")
        async with http.stream("GET", "/api/v1/feed", headers=live.headers("viewer")) as feed:
            assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/event-stream")
            await asyncio.sleep(0.2)  # the stream is open before the alert exists
            aid = await publisher.publish(episode("start", camera="cam1", started_at=onset, with_frame=True))
            await publisher.wait_clips()
            events = await read_sse(feed, 2)
        assert [(e["id"], e["event"]) for _, e in events] == [(aid, "created"), (aid, "clip")]
        assert all(sid and sid.count("-") == 1 for sid, _ in events)

        page = (await http.get("/api/v1/alerts", params={"camera_id": "cam1", "state": "new"},
                               headers=live.headers("viewer"))).json()
        assert [a["id"] for a in page["items"]] == [aid] and page["next_cursor"] is None
        alert = (await http.get(f"/api/v1/alerts/{aid}", headers=live.headers("viewer"))).json()
        assert alert["grid_id"] == "g1" and alert["due_at"] > alert["started_at"]

        r = await http.post(f"/api/v1/alerts/{aid}/resolve", json={"note": "too early"}, headers=op)
        assert r.status_code == 409 and "new" in r.json()["detail"]
        r = await http.post(f"/api/v1/alerts/{aid}/acknowledge", json={"note": "on it"}, headers=op)
        assert r.status_code == 200 and r.json()["state"] == "acknowledged"
        r = await http.post(f"/api/v1/alerts/{aid}/dispatch", json={"worker": "w-17", "note": "go"}, headers=op)
        assert r.json()["dispatched_to"] == "w-17"
        r = await http.post(f"/api/v1/alerts/{aid}/resolve", json={"note": "cleared"}, headers=op)
        done = r.json()
        assert done["state"] == "resolved"
        assert [(h["actor"], h["action"], h["note"]) for h in done["history"]][1:] == [
            ("operator", "acknowledge", "on it"), ("operator", "dispatch", "go"), ("operator", "resolve", "cleared")]

        # the clip: whole file, then a byte range
        clip = await http.get(f"/api/v1/alerts/{aid}/clip", headers=op)
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        body = clip.content
        assert body[4:8] == b"ftyp"
        part = await http.get(f"/api/v1/alerts/{aid}/clip", headers={**op, "Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == body[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"
        snap = await http.get(f"/api/v1/alerts/{aid}/snapshot", headers=live.headers("viewer"))
        assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"

        # every action is in the audit stream; stats and metrics see the alert
        audit = (await http.get("/api/v1/audit", headers=live.headers("admin"))).json()
        acts = [(a["actor"], a["action"], a["result"]) for a in audit if a["target"] == aid]
        assert ("operator", "resolve", "rejected") in acts and ("operator", "clip_view", "ok") in acts
        assert {"acknowledge", "dispatch", "resolve"} <= {a for _, a, r in acts if r == "ok"}
        metrics = (await http.get("/metrics")).text
        assert "camera_hub_alerts_open" in metrics and "camera_hub_alerts_total" in metrics


async def test_cameras_coverage_health(live) -> None:
    import redis.asyncio as aioredis

    from camera_hub.ingest.status import CameraStatus, write_states

    r = aioredis.from_url(os.environ.get("CAMERA_HUB_TEST_REDIS", "redis://127.0.0.1:6379/9"))
    now = time.time()
    await write_states(r, live.prefix, [CameraStatus(camera_id="cam0", state="up", since=now, updated_at=now,
                                                     fps=10.0, codec="h264"),
                                        CameraStatus(camera_id="cam2", state="down", reason="timeout", since=now,
                                                     updated_at=now)])
    await r.aclose()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        v = live.headers("viewer")
        cams = (await http.get("/api/v1/cameras", headers=v)).json()
        by_id = {c["id"]: c for c in cams["items"]}
        assert by_id["cam0"]["status"]["state"] == "up" and by_id["cam1"]["status"] is None
        assert by_id["cam2"]["status"]["reason"] == "timeout"
        assert cams["states"] == {"up": 1, "down": 1, "never": 2}
        assert "secret" not in json.dumps(cams) and "rtsp" not in json.dumps(cams)
        assert (await http.get("/api/v1/cameras", params={"district": "d1"}, headers=v)).json()["items"]
        assert (await http.get("/api/v1/cameras/cam9", headers=v)).status_code == 404
        cov = (await http.get("/api/v1/coverage", headers=v)).json()
        assert cov["city"]["grids"] == 4 and cov["city"]["covered"] == 1
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        page = await http.get("/")
        assert page.status_code == 200 and "Camera Hub" in page.text


async def test_sla_breach_is_marked_counted_and_shown(live, publisher) -> None:
    long_ago = time.time() - 31 * 3600  # past the 30 h default SLA
    aid = await publisher.publish(episode("start", camera="cam0", zone="sla", started_at=long_ago))
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        v = live.headers("viewer")
        for _ in range(50):  # the housekeeping task runs every 0.5 s in these tests
            alert = (await http.get(f"/api/v1/alerts/{aid}", headers=v)).json()
            if alert["breached"]:
                break
            await asyncio.sleep(0.1)
        assert alert["breached"] and alert["history"][-1]["action"] == "sla_breached"
        stats = (await http.get("/api/v1/alerts/stats", headers=v)).json()
        assert stats["sla_breaches"] >= 1 and stats["open"]["new"] >= 1
        assert "camera_hub_sla_breaches_total" in (await http.get("/metrics")).text

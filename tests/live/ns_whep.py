"""Run by tests/live/test_live_whep.py inside a private network namespace (never on its own):
the real system (private Redis, simulator, `camera-hub worker`, `camera-hub api`), then WHEP
viewers on aiortc. Writes what it saw as JSON to argv[1]; the test asserts on it.

    python -c "from camera_hub.live.harness import run_in_netns; run_in_netns(['python', 'tests/live/ns_whep.py',
               'out.json'], timeout_s=240)"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from camera_hub.api.auth import create_user  # noqa: E402
from camera_hub.live import protocol  # noqa: E402
from camera_hub.live.client import WhepViewer  # noqa: E402
from camera_hub.live.harness import start_live_system, worker_stats  # noqa: E402
from camera_hub.sim.rtsp_server import SimCameraSpec  # noqa: E402

FPS, GOP = 10, 20  # one GOP = 2 s


async def scenario(work: Path, cache: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"fps": FPS, "gop_s": GOP / FPS}
    t0 = time.monotonic()
    system = await start_live_system(work, [SimCameraSpec("cam1", "smoke"), SimCameraSpec("cam2", "smoke", 3.0)],
                                     fps=FPS, gop=GOP, cache_dir=cache, offline=("ghost",))
    out["startup_s"] = round(time.monotonic() - t0, 2)
    api, tok = system.api_url, system.tokens
    try:
        # no keep-alive: a connection idle for the API's keep-alive timeout (5 s) can be closed just as
        # it is reused ("Server disconnected without sending a response")
        async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            # --- one viewer, frames, then DELETE
            one = WhepViewer(api, "cam1", token=tok["viewer"])
            out["one_status"] = await one.open(http)
            out["one_location"] = one.location
            out["one_answer_h264"] = "H264/90000" in one.answer and "VP8" not in one.answer
            out["one_30_frames"] = await one.wait_frames(30, 10.0)
            out["one_frames"], out["one_first_frame_s"], out["one_sizes"] = one.frames, one.first_frame_s, \
                sorted(one.sizes)
            stats = await worker_stats(system)
            out["worker_sessions_before_delete"] = stats["sessions"]
            frames_at_delete = one.frames
            out["delete_status"] = await one.close(client=http)
            await asyncio.sleep(1.0)
            stats = await worker_stats(system)
            out["worker_sessions_after_delete"] = stats["sessions"]
            out["frames_after_delete"] = one.frames - frames_at_delete
            out["delete_again_status"] = (await http.delete(api + (one.location or ""), headers={
                "Authorization": f"Bearer {tok['viewer']}"})).status_code

            # --- refusals
            offer = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
            post = f"{api}/api/v1/cameras/cam1/whep"
            out["no_token_status"] = (await http.post(post, content=offer,
                                                      headers={"Content-Type": "application/sdp"})).status_code
            bearer = {"Authorization": f"Bearer {tok['viewer']}"}
            out["unknown_camera_status"] = (await http.post(f"{api}/api/v1/cameras/nope/whep", content=offer, headers={
                **bearer, "Content-Type": "application/sdp"})).status_code
            out["wrong_type_status"] = (await http.post(post, content=offer, headers={
                **bearer, "Content-Type": "text/plain"})).status_code
            ghost = WhepViewer(api, "ghost", token=tok["viewer"])
            out["ghost_status"], out["ghost_detail"] = await ghost.open(http), ghost.detail

            # --- 16 viewers at once (the user's limit), one more is refused, a second camera still plays
            wall = [WhepViewer(api, "cam1", token=tok["viewer"]) for _ in range(16)]
            t1 = time.monotonic()
            out["wall_status"] = await asyncio.gather(*(v.open(http) for v in wall))
            out["wall_open_s"] = round(time.monotonic() - t1, 2)
            extra = WhepViewer(api, "cam2", token=tok["viewer"])
            out["limit_status"], out["limit_detail"] = await extra.open(http), extra.detail
            other = WhepViewer(api, "cam2", token=tok["operator"])
            out["other_user_status"] = await other.open(http)
            got = await asyncio.gather(*(v.wait_frames(30, 10.0) for v in [*wall, other]))
            out["wall_all_30_frames"] = all(got)
            out["wall_frames"] = [v.frames for v in wall]
            out["wall_first_frame_s"] = [v.first_frame_s for v in wall]
            out["other_frames"] = other.frames
            stats = await worker_stats(system)
            out["worker_wall"] = {"sessions": stats["sessions"], "cameras": stats["cameras"],
                                  "dropped": sum(v["dropped"] for v in stats["viewers"])}
            out["wall_delete_status"] = await asyncio.gather(*(v.close(client=http) for v in [*wall, other]))
            await asyncio.sleep(0.5)
            out["worker_sessions_end"] = (await worker_stats(system))["sessions"]

            # --- trickle ICE: the offer without candidates, then a PATCH with them (If-Match: the ETag)
            tv = WhepViewer(api, "cam2", token=tok["viewer"], trickle=True)
            out["trickle_status"] = await tv.open(http)
            out["trickle_patch_status"], out["trickle_etag"] = tv.patch_status, tv.etag
            out["trickle_30_frames"] = await tv.wait_frames(30, 10.0)
            out["trickle_delete_status"] = await tv.close(client=http)

            # --- a logout ends that token's live view at the worker's next refresh; another user's goes on
            r = await system.redis()
            try:
                leaver_token = await create_user(r, "ch:", "leaver", "viewer")
                leaver = WhepViewer(api, "cam1", token=leaver_token)
                stayer = WhepViewer(api, "cam1", token=tok["operator"])
                out["revoke_open_status"] = [await leaver.open(http), await stayer.open(http)]
                out["revoke_both_playing"] = all(await asyncio.gather(leaver.wait_frames(10, 10.0),
                                                                      stayer.wait_frames(10, 10.0)))
                ended = asyncio.Event()
                leaver.pc.on("connectionstatechange", lambda: leaver.pc.connectionState in ("closed", "failed")
                             and ended.set())
                out["logout_status"] = (await http.post(api + "/api/v1/auth/logout", headers={
                    "Authorization": f"Bearer {leaver_token}"})).status_code
                t1 = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), 20)
                out["revoked_pc_state"] = leaver.pc.connectionState
                out["revoked_after_s"] = round(time.monotonic() - t1, 2)
                out["revoked_user_sessions"] = await r.zcard(protocol.user_key("ch:", "leaver"))
                out["revoked_worker_sessions"] = (await worker_stats(system))["sessions"]
                leaver_frames, stayer_frames = leaver.frames, stayer.frames
                await asyncio.sleep(2.0)
                out["revoked_frames_after"] = leaver.frames - leaver_frames
                out["stayer_frames_after"] = stayer.frames - stayer_frames
                out["stayer_pc_state"] = stayer.pc.connectionState
                out["revoked_delete_status"] = await leaver.close(client=http)  # the token is gone: 401
                out["stayer_delete_status"] = await stayer.close(client=http)
            finally:
                await r.aclose()

        # --- audit and Redis
        r = await system.redis()
        try:
            access = await r.xrange("ch:audit:access")
            denied = await r.xrange("ch:audit:denied")
            out["audit_access"] = [{k.decode(): v.decode() for k, v in f.items()} for _, f in access]
            out["audit_denied"] = [{k.decode(): v.decode() for k, v in f.items()} for _, f in denied]
            out["user_sessions_left"] = await r.zcard(protocol.user_key("ch:", "viewer"))
        finally:
            await r.aclose()
    finally:
        await system.stop()
    return out


def main() -> None:
    target = Path(sys.argv[1])
    work = target.parent / "work"
    cache = Path(sys.argv[2]) if len(sys.argv) > 2 else target.parent / "sim-cache"
    result = asyncio.run(scenario(work, cache))
    target.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

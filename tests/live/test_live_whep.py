"""Live view end to end (issue #11): the real worker and API processes, the simulator, WHEP
viewers on aiortc, all inside a private network namespace made by the test (loopback, and
10.213.0.1 on a veth pair kept inside it: no packet leaves the machine; camera_hub/live/harness.py).
Skipped where namespaces cannot be made.

One run (tests/live/ns_whep.py) checks: a viewer gets >= 30 decoded frames within 10 s, the first
within one GOP + 1 s; H.264 only in the answer; DELETE ends the session on the worker; 401 without
a token, 404 unknown camera, 415 not SDP, 503 a camera that is down; 16 viewers at once all get
frames and a 17th of the same user gets 429 while another user still plays; a trickle ICE viewer
(offer without candidates, then PATCH) plays; a logout ends that token's live view (the viewer's
peer connection closes, the session leaves Redis and the worker, no more frames) while another
user's view goes on; every live view and stop is in the access audit stream, the refusals in the
denied one. And Debian's headless Chromium plays a camera the same way (tests/live/ns_browser.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from camera_hub.live.harness import netns_problem, run_in_netns
from tests.sim_fixtures import sim_cache_dir  # noqa: F401

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def netns() -> None:
    if (why := netns_problem()) is not None:
        pytest.skip(why)


def test_whep_live_view_end_to_end(netns: None, tmp_path: Path, sim_cache_dir: Path) -> None:  # noqa: F811
    out = tmp_path / "result.json"
    run = run_in_netns([sys.executable, str(HERE / "ns_whep.py"), str(out), str(sim_cache_dir)], timeout_s=240)
    assert run.returncode == 0 and out.exists(), f"scenario failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    r = json.loads(out.read_text())
    gop_s = r["gop_s"]

    # one viewer: an answer with H.264 only, 30 decoded frames in 10 s, the first within one GOP + 1 s
    assert r["one_status"] == 201 and r["one_location"].startswith("/api/v1/cameras/cam1/whep/")
    assert r["one_answer_h264"]
    assert r["one_30_frames"], r["one_frames"]
    assert r["one_first_frame_s"] is not None and r["one_first_frame_s"] <= gop_s + 1.0
    assert r["one_sizes"] == [[640, 360]]
    # DELETE ends it on the worker; the media stops; a second DELETE finds nothing
    assert r["worker_sessions_before_delete"] == 1
    assert r["delete_status"] == 200 and r["worker_sessions_after_delete"] == 0
    assert r["frames_after_delete"] <= 10  # what was in flight
    assert r["delete_again_status"] == 404

    assert r["no_token_status"] == 401
    assert r["unknown_camera_status"] == 404
    assert r["wrong_type_status"] == 415
    assert r["ghost_status"] == 503 and "not live" in r["ghost_detail"]

    # 16 viewers at once, one camera: all play; the user's 17th is refused; another user still plays
    assert r["wall_status"] == [201] * 16
    assert r["wall_all_30_frames"], r["wall_frames"]
    assert r["limit_status"] == 429 and "limit" in r["limit_detail"]
    assert r["other_user_status"] == 201 and r["other_frames"] >= 30
    assert r["worker_wall"]["sessions"] == 17 and r["worker_wall"]["cameras"]["cam1"]["viewers"] == 16
    assert r["wall_delete_status"] == [200] * 17
    assert r["worker_sessions_end"] == 0 and r["user_sessions_left"] == 0

    # trickle ICE: the answer's ETag, the PATCH taken (204), frames
    assert r["trickle_status"] == 201 and r["trickle_etag"] and r["trickle_patch_status"] == 204
    assert r["trickle_30_frames"] and r["trickle_delete_status"] == 200

    # a logout ends the live view opened with that token at once (the API publishes the revocation;
    # the worker's 5 s refresh is the fallback; the bound in the scenario only has to tell it from
    # ICE consent expiry, 30 s), and only that one
    assert r["revoke_open_status"] == [201, 201] and r["revoke_both_playing"] and r["logout_status"] == 204
    assert r["revoked_pc_state"] in ("closed", "failed"), r["revoked_after_s"]
    assert r["revoked_user_sessions"] == 0 and r["revoked_worker_sessions"] == 1
    assert r["revoked_frames_after"] == 0
    assert r["stayer_pc_state"] == "connected" and r["stayer_frames_after"] > 0
    assert r["revoked_delete_status"] == 401 and r["stayer_delete_status"] == 200

    # audit: every live view and stop (access stream), refusals (denied stream)
    views = [e for e in r["audit_access"] if e["action"] == "live_view"]
    assert len(views) == 21 and all(e["result"] == "ok" and e["detail"].startswith("session=") for e in views)
    assert {(e["actor"], e["target"]) for e in views} == {("viewer", "cam1"), ("operator", "cam2"),
                                                          ("viewer", "cam2"), ("leaver", "cam1"), ("operator", "cam1")}
    stops = [e for e in r["audit_access"] if e["action"] == "live_stop"]
    assert len(stops) == 21  # every view's end: 20 DELETEs, and the revoked one's, written by its worker
    (ended,) = [e for e in stops if e["client"].startswith("worker ")]
    assert ended["actor"] == "leaver" and ended["detail"].endswith(": token revoked")
    denied = {(e["target"], e["result"], e["detail"][:3]) for e in r["audit_denied"]}
    assert ("ghost", "rejected", "503") in denied and ("cam2", "limited", "429") in denied


@pytest.mark.browser
def test_chromium_plays_a_live_camera_over_whep(netns: None, tmp_path: Path, sim_cache_dir: Path) -> None:  # noqa: F811
    """Debian's headless Chromium, in the namespace too: WHEP from the API's origin with a bearer
    token, 30 frames decoded by its video decoder, the first within one GOP + 1 s; DELETE ends it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    pytest.importorskip("playwright.async_api")
    out = tmp_path / "result.json"
    run = run_in_netns([sys.executable, str(HERE / "ns_browser.py"), str(out), str(sim_cache_dir)], timeout_s=240)
    assert run.returncode == 0 and out.exists(), f"scenario failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    r = json.loads(out.read_text())
    if not r["h264"]:
        pytest.skip("this Chromium build has no H.264 for WebRTC")
    w = r["watch"]
    assert w["status"] == 201, w
    assert w["codec"] == "video/H264" and (w["width"], w["height"]) == (640, 360), w
    assert w["decoded"] >= 30, w
    assert w["first_frame_s"] is not None and w["first_frame_s"] <= r["gop_s"] + 1.0, w
    assert r["stop_status"] == 200

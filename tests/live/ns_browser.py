"""Run by tests/live/test_live_whep.py inside a private network namespace (never on its own):
Debian's headless Chromium does WHEP against the real system, as the operator page does (same
origin as the API, bearer token), and counts the frames its video decoder produced. Writes JSON
to argv[1]."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from camera_hub.live.harness import start_live_system  # noqa: E402
from camera_hub.sim.rtsp_server import SimCameraSpec  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

# WHEP from the page's origin, as the operator page does it: recvonly video, the offer once ICE
# gathering is complete, POST application/sdp, the answer; then decoded frames from getStats()
WATCH = """async ([camera, token]) => {
  const t0 = performance.now();
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', {direction: 'recvonly'});
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === 'complete') return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && ok();
    setTimeout(ok, 2000);
  });
  const resp = await fetch(`/api/v1/cameras/${camera}/whep`, {method: 'POST', body: pc.localDescription.sdp,
    headers: {'Content-Type': 'application/sdp', 'Authorization': `Bearer ${token}`}});
  if (resp.status !== 201) return {status: resp.status, detail: await resp.text()};
  const location = resp.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
  window.__live = {pc, video, location, t0};
  let first = null, decoded = 0, codec = null;
  const deadline = t0 + 15000;
  while (performance.now() < deadline) {
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        decoded = s.framesDecoded || 0;
        if (s.codecId && stats.get(s.codecId)) codec = stats.get(s.codecId).mimeType;
      }
    });
    if (decoded > 0 && first === null) first = (performance.now() - t0) / 1000;
    if (decoded >= 30 && codec) break;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return {status: 201, location, decoded, first_frame_s: first, width: video.videoWidth, height: video.videoHeight,
          codec, ice: pc.iceConnectionState, connection: pc.connectionState};
}"""

STOP = """async ([token]) => {
  const {pc, location} = window.__live;
  const resp = await fetch(location, {method: 'DELETE', headers: {'Authorization': `Bearer ${token}`}});
  pc.close();
  return resp.status;
}"""


async def scenario(work: Path, cache: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"gop_s": 2.0}
    system = await start_live_system(work, [SimCameraSpec("cam1", "smoke")], cache_dir=cache)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
                "--disable-features=WebRtcHideLocalIpsWithMdns"])
            try:
                page = await browser.new_page()
                await page.goto(system.api_url + "/healthz")  # the API's origin, like the operator page
                out["h264"] = await page.evaluate(
                    "RTCRtpReceiver.getCapabilities('video').codecs.some((c) => c.mimeType === 'video/H264')")
                if out["h264"]:
                    t0 = time.monotonic()
                    out["watch"] = await page.evaluate(WATCH, ["cam1", system.tokens["viewer"]])
                    out["watch_s"] = round(time.monotonic() - t0, 2)
                    if out["watch"].get("status") == 201:
                        out["stop_status"] = await page.evaluate(STOP, [system.tokens["viewer"]])
            finally:
                await browser.close()
    finally:
        await system.stop()
    return out


def main() -> None:
    target = Path(sys.argv[1])
    cache = Path(sys.argv[2]) if len(sys.argv) > 2 else target.parent / "sim-cache"
    target.write_text(json.dumps(asyncio.run(scenario(target.parent / "work", cache)), indent=1))


if __name__ == "__main__":
    main()

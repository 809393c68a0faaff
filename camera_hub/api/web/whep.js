// A small WHEP client (RFC 9725): a recvonly RTCPeerConnection, the SDP offer POSTed as application/sdp
// to POST /api/v1/cameras/{id}/whep (authenticated by the session cookie, like every other call of the
// page), 201 with the SDP answer and a Location for the session, DELETE on that Location to hang up.
"use strict";

export class WhepError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const ICE_GATHER_MS = 1500; // LAN host candidates gather in a few ms; do not wait on a missing STUN server
const FIRST_FRAME_MS = 10000;

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); resolve(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ms);
  });
}

/**
 * Play camera `cameraId` into `video`. Resolves with a session ({close()}) once the answer is set;
 * rejects with WhepError when the server refuses (4xx/5xx: no live view for this camera) or the
 * network fails. `onFail` is called later if the connection fails or no frame arrives in time.
 */
export async function playWhep(video, cameraId, { onFail = () => {}, base = "/api/v1" } = {}) {
  const url = new URL(`${base}/cameras/${encodeURIComponent(cameraId)}/whep`, location.href);
  const pc = new RTCPeerConnection({ iceServers: [] });
  let resource = null;
  let closed = false;
  let failTimer = null;
  const session = {
    pc,
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(failTimer);
      pc.close();
      if (video.srcObject) video.srcObject = null;
      if (resource) fetch(resource, { method: "DELETE", credentials: "same-origin" }).catch(() => {});
    },
  };
  const fail = (why) => { if (!closed) { session.close(); onFail(why); } };
  try {
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      video.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => { if (pc.connectionState === "failed") fail("connection"); };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, ICE_GATHER_MS);
    const res = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/sdp", Accept: "application/sdp" }, body: pc.localDescription.sdp });
    if (res.status !== 201) throw new WhepError(res.status, `WHEP ${res.status}`);
    const loc = res.headers.get("Location");
    if (loc) resource = new URL(loc, url).href;
    const answer = await res.text();
    if (closed) throw new WhepError(0, "closed");
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  } catch (e) {
    session.close();
    throw e instanceof WhepError ? e : new WhepError(0, String(e && e.message ? e.message : e));
  }
  failTimer = setTimeout(() => { if (!(video.readyState >= 2)) fail("no-frames"); }, FIRST_FRAME_MS);
  return session;
}

"""A WHEP client on aiortc: what tests and benchmarks watch a camera with (a browser does the
same with ``RTCPeerConnection``: a recvonly video transceiver, the offer once ICE gathering is
complete, ``POST`` as ``application/sdp``, the answer, ``DELETE`` the ``Location`` at the end).
With ``trickle=True`` the offer goes without candidates and they follow in a ``PATCH``
(``application/trickle-ice-sdpfrag``, ``If-Match`` the answer's ``ETag``), as a trickling browser
sends them."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

import httpx


def count_only_decoder() -> Callable[[], None]:
    """Make this process's aiortc receivers count frames instead of decoding them (benchmarks:
    a client decoding 16 streams would take the CPU the server is measured on). Each frame a
    viewer then "receives" is the depacketised access unit's RTP time, not a picture. Returns
    what puts aiortc's decoders back (for receivers made after it)."""
    import aiortc.rtcrtpreceiver as receiver

    class _Counting:
        def decode(self, encoded_frame: Any) -> list[Any]:
            return [encoded_frame.timestamp]

    original = receiver.get_decoder
    receiver.get_decoder = lambda codec: _Counting()  # type: ignore[assignment]

    def restore() -> None:
        receiver.get_decoder = original

    return restore


class WhepViewer:
    """One live view: :meth:`open` (offer → answer), frames counted as they arrive, :meth:`close`."""

    def __init__(self, api_url: str, camera_id: str, *, token: str | None = None,
                 cookie: str | None = None, trickle: bool = False) -> None:
        self.api_url = api_url.rstrip("/")
        self.camera_id = camera_id
        self.token, self.cookie = token, cookie
        self.trickle = trickle
        self.etag: str | None = None
        self.patch_status: int | None = None  # with trickle
        self.status: int | None = None
        self.detail = ""
        self.location: str | None = None
        self.answer = ""
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.started = 0.0  # monotonic, when open() began
        self.first_frame_s: float | None = None  # since open() began
        self.pc: Any = None
        self.on_frame: Callable[[Any], None] | None = None  # called with each frame as it is received
        self._reader: asyncio.Task[None] | None = None
        self._got = asyncio.Event()

    def _headers(self) -> dict[str, str]:
        h = {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.cookie:
            h["Cookie"] = f"ch_session={self.cookie}"
        return h

    async def open(self, client: httpx.AsyncClient | None = None) -> int:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        self.started = time.monotonic()
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def _track(track: Any) -> None:
            self._reader = asyncio.create_task(self._read(track))

        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers all candidates first
        sdp = pc.localDescription.sdp
        candidates = re.findall(r"^a=candidate:.*$", sdp, re.M)
        if self.trickle:
            sdp = re.sub(r"^a=(candidate:.*|end-of-candidates)\r\n", "", sdp, flags=re.M)
        own = client is None
        client = client or httpx.AsyncClient(timeout=30.0)
        try:
            resp = await client.post(f"{self.api_url}/api/v1/cameras/{self.camera_id}/whep", content=sdp.encode(),
                                     headers={"Content-Type": "application/sdp", **self._headers()})
            self.status = resp.status_code
            if resp.status_code != 201:
                with contextlib.suppress(ValueError):
                    self.detail = str(resp.json().get("detail", ""))
                await pc.close()
                return resp.status_code
            self.location = resp.headers.get("location")
            self.etag = resp.headers.get("etag")
            self.answer = resp.text
            await pc.setRemoteDescription(RTCSessionDescription(sdp=resp.text, type="answer"))
            if self.trickle and self.location:
                ice = [ln for ln in sdp.split("\r\n") if ln.startswith(("a=ice-ufrag:", "a=ice-pwd:"))][:2]
                mid = re.search(r"^a=mid:(\S+)", sdp, re.M)
                frag = "\r\n".join([*ice, "m=video 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{mid.group(1) if mid else 0}",
                                     *candidates, "a=end-of-candidates", ""])
                patched = await client.patch(self.api_url + self.location, content=frag.encode(), headers={
                    "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": self.etag or "*",
                    **self._headers()})
                self.patch_status = patched.status_code
        finally:
            if own:
                await client.aclose()
        return resp.status_code

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                if self.first_frame_s is None:
                    self.first_frame_s = time.monotonic() - self.started
                self.frames += 1
                if hasattr(frame, "width"):
                    self.sizes.add((frame.width, frame.height))
                if self.on_frame is not None:
                    self.on_frame(frame)
                self._got.set()
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def wait_frames(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.frames < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._got.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._got.wait(), left)
        return True

    async def close(self, *, delete: bool = True, client: httpx.AsyncClient | None = None) -> int | None:
        """End the view: ``DELETE`` its Location (the status, or None without one), then the
        peer connection."""
        status = None
        if delete and self.location:
            own = client is None
            client = client or httpx.AsyncClient(timeout=10.0)
            try:
                status = (await client.delete(self.api_url + self.location, headers=self._headers())).status_code
            finally:
                if own:
                    await client.aclose()
        if self.pc is not None:
            await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return status

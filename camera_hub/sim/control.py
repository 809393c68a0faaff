"""The simulator's small HTTP/JSON control API (plain asyncio; one request per connection).

``GET /cameras``, ``POST /cameras/{id}/fault {"kind", "duration_s"}``,
``GET /log?since=N`` (``{"next": M, "events": [...]}``), ``GET /ground_truth/{id}``,
``GET /objects/{id}?t=<epoch s>`` (labelled 0..1 boxes in the frame shown at t, default now).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from camera_hub.redact import mask_url

if TYPE_CHECKING:
    from camera_hub.sim.rtsp_server import SimServer

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def route(server: SimServer, method: str, target: str, body: bytes) -> tuple[int, object]:
    """(status, JSON document) for one request."""
    parts = urlsplit(target)
    path = [unquote(p) for p in parts.path.split("/") if p]
    if method == "GET" and path == ["cameras"]:
        return 200, [
            {"id": cid, "scene": server.scene_of(cid), "fault": server.fault_of(cid),
             "readers": server.sessions_of(cid),
             "urls": {s: mask_url(server.url(cid, s)) for s in ("main", "sub")}}
            for cid in server.camera_ids
        ]
    if method == "GET" and path == ["log"]:
        try:
            since = max(0, int(parse_qs(parts.query).get("since", ["0"])[0]))
        except ValueError:
            raise _HttpError(400, "since must be an integer") from None
        events, after = server.log_since(since)
        return 200, {"next": after, "events": [asdict(e) for e in events]}
    if len(path) == 2 and path[0] == "ground_truth" and method == "GET":
        if path[1] not in server.camera_ids:
            raise _HttpError(404, "unknown camera")
        return 200, [e.to_json() for e in server.ground_truth(path[1])]
    if len(path) == 2 and path[0] == "objects" and method == "GET":
        if path[1] not in server.camera_ids:
            raise _HttpError(404, "unknown camera")
        try:
            t = float(parse_qs(parts.query)["t"][0]) if "t=" in parts.query else None
        except ValueError:
            raise _HttpError(400, "t must be epoch seconds") from None
        return 200, [{"label": lb, "box": [round(v, 4) for v in b]} for lb, b in server.objects_at(path[1], t)]
    if len(path) == 3 and path[0] == "cameras" and path[2] == "fault" and method == "POST":
        if path[1] not in server.camera_ids:
            raise _HttpError(404, "unknown camera")
        try:
            doc = json.loads(body or b"{}")
            kind, duration = doc["kind"], doc.get("duration_s")
            if not isinstance(kind, str) or not (duration is None or isinstance(duration, int | float)):
                raise TypeError
            server.fault(path[1], kind, duration)
        except (ValueError, KeyError, TypeError) as exc:
            raise _HttpError(400, f"bad fault request: {exc}") from None
        return 200, {"camera_id": path[1], "fault": server.fault_of(path[1])}
    raise _HttpError(404, "no such route")


async def handle_control(server: SimServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    status, doc = 500, {"error": "internal error"}
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            raise _HttpError(413, "body too large")
        body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
        status, doc = route(server, method.upper(), target, body)
    except _HttpError as exc:
        status, doc = exc.status, {"error": exc.message}
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        status, doc = 400, {"error": "malformed request"}
    except Exception:
        log.exception("control request failed")
    payload = json.dumps(doc).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large"}.get(status, "Error")
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + payload)
    try:
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass

"""The audit trail's streams and entries: one layout for the API (``camera_hub.api.auth``, every
request's entry) and the workers (the ``live_stop`` of a live view they end themselves), which do
not import the API. docs/architecture.md, *Audit*."""

from __future__ import annotations

import time
from typing import Any, Literal

AUDIT_MAXLEN = 100_000  # changes and access streams each (approximate trimming)
AuditStream = Literal["changes", "access", "denied"]


def stream_key(prefix: str, stream: AuditStream) -> str:
    base = f"{prefix}audit"
    return base if stream == "changes" else f"{base}:{stream}"


def entry(actor: str, action: str, target: str = "", *, client: str = "", result: str = "ok",
          detail: str = "") -> dict[str, str]:
    """One entry's fields, now; ``detail`` cut to 500 characters."""
    return {"at": repr(time.time()), "actor": actor, "action": action, "target": target,
            "client": client, "result": result, "detail": detail[:500]}


async def append(redis: Any, prefix: str, stream: AuditStream, fields: dict[str, str]) -> None:
    """Add an entry to ``changes`` or ``access`` (``denied`` is sampled and capped: Auth.audit)."""
    await redis.xadd(stream_key(prefix, stream), fields, maxlen=AUDIT_MAXLEN, approximate=True)

"""The Alert record (DESIGN §4), its ids and the lifecycle's legal moves."""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertState = Literal["new", "acknowledged", "dispatched", "resolved", "dismissed"]
AlertAction = Literal["created", "acknowledge", "dispatch", "resolve", "dismiss", "sla_breached"]
STATES: tuple[AlertState, ...] = ("new", "acknowledged", "dispatched", "resolved", "dismissed")
OPEN_STATES: tuple[AlertState, ...] = ("new", "acknowledged", "dispatched")
ALERT_TYPES = ("vending", "crowding", "tamper", "camera_offline")

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[AlertState, ...], AlertState]] = {
    "acknowledge": (("new",), "acknowledged"),
    "dispatch": (("acknowledged",), "dispatched"),
    "resolve": (("acknowledged", "dispatched"), "resolved"),
    "dismiss": (("new", "acknowledged", "dispatched"), "dismissed"),
}

ALERT_ID_PATTERN = r"^\d{13}-[0-9a-f]{16}$"
_ALERT_ID_RE = re.compile(ALERT_ID_PATTERN)

BoxOut = tuple[float, float, float, float, str, float]


def alert_id(episode_key: str, started_at: float) -> str:
    """Sortable (onset in ms first) and idempotent (the rest is a hash of the episode key)."""
    digest = hashlib.sha256(episode_key.encode()).hexdigest()[:16]
    return f"{int(round(started_at * 1000)):013d}-{digest}"


def is_alert_id(value: str) -> bool:
    return bool(_ALERT_ID_RE.match(value))


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float
    actor: str
    action: AlertAction
    note: str = ""


class Alert(BaseModel):
    """One alert; also the JSON of each SSE event."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ALERT_ID_PATTERN)
    type: str
    state: AlertState = "new"
    camera_id: str
    grid_id: str | None = None
    district: str | None = None
    zone_id: str
    started_at: float
    updated_at: float
    ended_at: float | None = None
    score: float = 0.0
    count: int = 0
    boxes: list[BoxOut] = []
    detail: str = ""
    snapshot_url: str | None = None  # the picture when the alert was raised, boxes and zone drawn
    onset_snapshot_url: str | None = None  # the picture at the onset, zone drawn (with the clip)
    clip_url: str | None = None
    clip_start: float | None = None  # the span of time the clip shows (receive times, epoch s)
    clip_end: float | None = None
    due_at: float
    breached: bool = False
    dispatched_to: str | None = None
    history: list[HistoryEntry] = []

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class IllegalTransition(Exception):
    """The action is not allowed from the alert's current state (HTTP 409)."""

    def __init__(self, alert_id: str, state: str, action: str) -> None:
        allowed = ", ".join(TRANSITIONS[action][0]) if action in TRANSITIONS else "none"
        super().__init__(f"cannot {action} alert {alert_id}: it is {state} (allowed from: {allowed})")
        self.state = state
        self.action = action


class AlertNotFound(KeyError):
    def __init__(self, alert_id: str) -> None:
        super().__init__(alert_id)
        self.alert_id = alert_id

    def __str__(self) -> str:
        return f"no alert {self.alert_id}"

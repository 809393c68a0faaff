"""Camera offline: the camera has been ``down`` longer than a grace period (a reconnect that
succeeds within it raises nothing). Fed with state changes and, between them, clock ticks."""

from __future__ import annotations

from camera_hub.analytics.rules.hysteresis import or_now
from camera_hub.events import Episode

DOWN = "down"


class OfflineState:
    """Its alerts' zone is the camera itself (``zone_id`` = the camera id): offline is not about
    any configured zone."""

    def __init__(self, camera_id: str, grace_s: float) -> None:
        self.camera_id, self.grace_s, self.zone_id = camera_id, grace_s, camera_id
        self._down_since: float | None = None
        self._reason = ""
        self._active = False

    def step(self, t: float, state: str | None = None, reason: str = "") -> list[Episode]:
        """``state`` on a change (starting | up | degraded | down), None for a clock tick."""
        if state is not None and state != DOWN:
            out = [self._episode("end", t)] if self._active else []
            self._down_since, self._active = None, False
            return out
        if state == DOWN and self._down_since is None:
            self._down_since, self._reason = t, reason
        if self._down_since is not None and not self._active and t - self._down_since >= self.grace_s:
            self._active = True
            return [self._episode("start", t)]
        return []

    def adopt(self, started_at: float, reason: str = "") -> None:
        """An episode another worker (or this one before a restart) raised is still open: carry it
        on (same onset, so the same alert), rather than raising a second one after the grace."""
        self._down_since, self._reason, self._active = started_at, reason, True

    @property
    def active(self) -> bool:
        return self._active

    def _episode(self, kind, t: float) -> Episode:
        return Episode(kind, "camera_offline", self.camera_id, self.zone_id, or_now(self._down_since, t), t,
                       detail=self._reason)

"""On/off with delays, shared by the rules so an alert neither fires on a blip nor flickers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Edge = Literal["start", "hold", "end"] | None


@dataclass(slots=True)
class Hysteresis:
    """``start`` once the condition has held for ``on_after_s`` (gaps shorter than ``off_after_s``
    forgiven), ``hold`` while active, ``end`` once it has been false for ``off_after_s``."""

    on_after_s: float
    off_after_s: float
    onset: float | None = None
    last_true: float | None = None
    active: bool = False

    def step(self, cond: bool, t: float) -> Edge:
        if cond:
            if self.onset is None:
                self.onset = t
            self.last_true = t
        elif self.last_true is None or t - self.last_true >= self.off_after_s:
            return self.reset()
        if self.active:
            return "hold"
        if cond and t - self.onset >= self.on_after_s:
            self.active = True
            return "start"
        return None

    def reset(self) -> Edge:
        was = self.active
        self.onset, self.last_true, self.active = None, None, False
        return "end" if was else None


def or_now(onset: float | None, t: float) -> float:
    """``onset``, or ``t`` when there is none (a time of 0.0 is a time, not "none")."""
    return t if onset is None else onset

"""Scene scripts: what happens in a simulated camera's view, as data (YAML beside this module).

A script names a layout (``street``, ``square``, ``lookout``), a loop length, how busy the view
is, and the scripted events: goods and stalls set out, a crowd gathering, the lens covered, the
camera knocked off aim, night. The ground-truth episodes are derived from those events, so the
truth can never disagree with what is drawn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SCENE_DIR = Path(__file__).resolve().parent
SCENE_NAME = r"^[a-z][a-z0-9_]{0,47}$"

# Zones fixed by the contract (0..1 image coordinates); the demo city's zones are written from these.
ZONES: dict[str, list[tuple[float, float]]] = {
    "frontage": [(0.05, 0.52), (0.95, 0.52), (0.95, 0.80), (0.05, 0.80)],
    "square": [(0.10, 0.30), (0.90, 0.30), (0.90, 0.95), (0.10, 0.95)],
    "view": [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class Goods(Window):
    """A stall (table + canopy) or goods (crates, a pile of sacks) standing in the frontage."""

    kind: Literal["stall", "crate", "pile"]
    x: float = Field(ge=0, le=1)  # centre
    y: float = Field(ge=0, le=1)  # where it stands on the ground (bottom edge)
    size: float = Field(1.0, gt=0, le=3)

    @property
    def label(self) -> str:
        return "stall" if self.kind == "stall" else "goods"


class Stander(Window):
    """A person who stands still (waiting, chatting): not vending."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)


class Crowd(Window):
    """``count`` people walk in, stand together from ``start`` to ``end``, then walk away."""

    count: int = Field(ge=2, le=200)
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    spread: float = Field(0.15, gt=0, le=0.5)
    gather_s: float = Field(12.0, gt=0)


class Effect(Window):
    """Something done to the camera: lens covered, knocked off aim."""

    kind: Literal["cover", "moved"]
    dx: float = 0.08  # moved: shift (share of the frame)
    dy: float = 0.06
    angle: float = 7.0  # moved: rotation, degrees


class SceneScript(_Strict):
    name: str = Field(pattern=SCENE_NAME)
    layout: Literal["street", "square", "lookout"]
    loop_s: float = Field(gt=0, le=3600)
    seed: int = 0
    walkers: float = Field(4.0, ge=0, le=200)  # people passing through at any moment (mean)
    max_walkers: int | None = Field(None, ge=1)  # never more passers-by than this at once
    vehicles: float = Field(0.0, ge=0, le=20)  # vehicles on the road at any moment (mean)
    night: bool = False
    goods: list[Goods] = []
    standers: list[Stander] = []
    crowd: Crowd | None = None
    effects: list[Effect] = []

    @model_validator(mode="after")
    def _inside_loop(self) -> SceneScript:
        for w in [*self.goods, *self.standers, *self.effects, *([self.crowd] if self.crowd else [])]:
            if w.end > self.loop_s:
                raise ValueError(f"an event ends at {w.end} s, after the loop ({self.loop_s} s)")
        return self

    def digest(self) -> str:
        """Stable hash of the script's content (part of the encode cache key)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EpisodeTruth:
    """One scripted episode, in seconds from the loop start."""

    type: Literal["vending", "crowding", "tamper", "night"]
    zone_id: str
    start: float
    end: float
    reason: str | None = None
    boxes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)  # 0..1

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "zone_id": self.zone_id,
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
            "boxes": [{"label": lb, "box": list(b)} for lb, b in self.boxes],
        }


def builtin_scenes() -> list[str]:
    return sorted(p.stem for p in SCENE_DIR.glob("*.yaml"))


def load_script(name_or_path: str | Path) -> SceneScript:
    """A built-in scene by name (``street_vending``), or a script file given as a path."""
    text_name = str(name_or_path)
    if isinstance(name_or_path, Path) or text_name.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
    else:
        if not Path(text_name).name == text_name or not text_name.replace("_", "").isalnum():
            raise ValueError(f"bad scene name {text_name!r}")
        path = SCENE_DIR / f"{text_name}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown scene {text_name!r}; built in: {', '.join(builtin_scenes())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return SceneScript.model_validate(data)

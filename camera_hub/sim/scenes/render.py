"""OpenCV renderer for scene scripts: every frame is a pure function of (script, size, seed, index).

Nothing is simulated step by step: each person, vehicle and object has a path in time, so any
frame can be drawn on its own (random access for encoding and for detector training data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from camera_hub.sim.scenes.script import EpisodeTruth, Goods, SceneScript, load_script

RENDERER_VERSION = 2  # bump when drawing changes: it is part of the encode cache key

Color = tuple[int, int, int]
PixelBox = tuple[int, int, int, int]
Labelled = tuple[str, PixelBox]

SHIRTS: list[Color] = [
    (40, 40, 200), (200, 80, 30), (60, 160, 60), (30, 180, 230), (220, 220, 220), (40, 40, 40),
    (150, 60, 150), (90, 90, 170), (170, 130, 60), (200, 200, 90), (60, 110, 200), (120, 120, 120),
]
TROUSERS: list[Color] = [(70, 40, 20), (30, 30, 30), (90, 120, 140), (60, 60, 60), (120, 80, 50)]
SKIN: list[Color] = [(150, 185, 225), (120, 160, 205), (90, 130, 180), (170, 200, 235)]
HAIR: list[Color] = [(20, 20, 25), (30, 45, 70), (110, 110, 110), (40, 60, 90)]
CARS: list[Color] = [(220, 220, 225), (30, 30, 30), (40, 40, 170), (150, 90, 30), (160, 160, 160), (30, 120, 200)]


@dataclass(frozen=True)
class Look:
    shirt: Color
    trousers: Color
    skin: Color
    hair: Color
    stature: float  # height multiplier
    stride: float  # phase offset


@dataclass(frozen=True)
class Walk:
    """A straight walk from (x0, y0) to (x1, y1) (feet, 0..1) starting at t0, lasting ``dur``.
    ``wrap``: the walk repeats every loop (passers-by), so the loop seam stays seamless."""

    t0: float
    dur: float
    x0: float
    y0: float
    x1: float
    y1: float
    look: Look
    wrap: bool = True


@dataclass(frozen=True)
class Gatherer:
    """One member of a crowd: walks in, stands at (tx, ty), walks out."""

    enter: float
    arrive: float
    leave: float
    gone: float
    ex: float
    ey: float
    tx: float
    ty: float
    ox: float
    oy: float
    look: Look


@dataclass(frozen=True)
class Vehicle:
    t0: float
    dur: float
    lane_y: float  # bottom of the wheels, 0..1
    direction: int
    length: float  # share of the frame width
    color: Color


def _rand_look(rng: np.random.Generator) -> Look:
    def pick(palette: list[Color]) -> Color:
        return palette[int(rng.integers(len(palette)))]

    return Look(pick(SHIRTS), pick(TROUSERS), pick(SKIN), pick(HAIR), float(rng.uniform(0.88, 1.08)),
                float(rng.uniform(0, 2 * math.pi)))


class SceneRenderer:
    """Draws a scene script at a given size. ``frame(i) -> (bgr, [(label, (x1, y1, x2, y2))])``."""

    def __init__(self, scene: str | SceneScript, width: int, height: int, seed: int = 0, fps: int = 10) -> None:
        self.script = scene if isinstance(scene, SceneScript) else load_script(scene)
        self.width, self.height, self.fps = width, height, fps
        self.seed = seed
        self.frame_count = max(1, round(self.script.loop_s * fps))
        rng = np.random.default_rng([self.script.seed, seed])
        self._walks = self._make_walks(rng)
        self._crowd = self._make_crowd(rng)
        self._vehicles = self._make_vehicles(rng)
        self._standers = [(s, _rand_look(rng)) for s in self.script.standers]
        self._bg_rng_seed = int(rng.integers(2**31))

    # ---------------------------------------------------------------- geometry
    def person_height(self, y: float) -> float:
        """Height of a person whose feet are at y (share of the frame height): the perspective."""
        layout = self.script.layout
        if layout == "street":
            return 0.17 + (y - 0.5) * 0.55
        if layout == "square":
            return 0.06 + max(0.0, y - 0.25) * 0.22
        return (16 + min(1.0, max(0.0, y - 0.3) / 0.65) * 11) / 1080  # lookout: 15..30 px at 1080p

    def _walk_area(self) -> tuple[float, float, float, float]:
        if self.script.layout == "street":
            return 0.0, 0.56, 1.0, 0.80
        return 0.12, 0.33, 0.88, 0.93

    def _speed(self, rng: np.random.Generator) -> float:
        base = {"street": 0.085, "square": 0.06, "lookout": 0.035}[self.script.layout]
        return base * float(rng.uniform(0.75, 1.3))

    def _make_walks(self, rng: np.random.Generator) -> list[Walk]:
        s, loop = self.script, self.script.loop_s
        if s.walkers <= 0:
            return []
        x0, y0, x1, y1 = self._walk_area()
        walks: list[Walk] = []
        mean_dur = 1.2 / self._speed(np.random.default_rng(0)) if s.layout == "street" else 0.7 / 0.06
        n = max(1, round(s.walkers * loop / min(mean_dur, loop)))
        busy = np.zeros(max(1, math.ceil(loop)), np.int32)  # people walking, per second of the loop
        for _ in range(n):
            speed = self._speed(rng)
            if s.layout == "street":
                y = float(rng.uniform(y0, y1))
                left = bool(rng.integers(2))
                ax, bx = (-0.08, 1.08) if left else (1.08, -0.08)
                a, b = (ax, y), (bx, y + float(rng.uniform(-0.03, 0.03)))
            else:
                a, b = self._edge_point(rng), self._edge_point(rng)
                while math.dist(a, b) < 0.3:
                    b = self._edge_point(rng)
            dur = min(math.dist(a, b) / speed, loop * 0.95)
            t0, look = float(rng.uniform(0, loop)), _rand_look(rng)
            secs = np.arange(math.floor(t0), math.ceil(t0 + dur) + 1) % len(busy)
            if s.max_walkers is not None and busy[secs].max() >= s.max_walkers:
                continue
            busy[secs] += 1
            walks.append(Walk(t0, dur, *a, *b, look=look))
        return walks

    def _edge_point(self, rng: np.random.Generator) -> tuple[float, float]:
        """A point just outside the walking area (people come from and go to the edges)."""
        x0, y0, x1, y1 = self._walk_area()
        side = int(rng.integers(4))
        u = float(rng.uniform(0, 1))
        if side == 0:
            return x0 - 0.04, y0 + u * (y1 - y0)
        if side == 1:
            return x1 + 0.04, y0 + u * (y1 - y0)
        if side == 2:
            return x0 + u * (x1 - x0), y0 - 0.02
        return x0 + u * (x1 - x0), min(1.05, y1 + 0.1)

    def _make_crowd(self, rng: np.random.Generator) -> list[Gatherer]:
        c = self.script.crowd
        if c is None:
            return []
        zx0, zy0, zx1, zy1 = 0.16, 0.40, 0.84, 0.92  # well inside the `square` zone (feet)
        out: list[Gatherer] = []
        for _ in range(c.count):
            tx = float(np.clip(rng.normal(c.x, c.spread), zx0, zx1))
            ty = float(np.clip(rng.normal(c.y, c.spread * 0.7), zy0, zy1))
            (ex, ey), (ox, oy) = self._edge_point(rng), self._edge_point(rng)
            speed = self._speed(rng)
            arrive = c.start - float(rng.uniform(0.5, c.gather_s))
            leave = c.end + float(rng.uniform(0.5, c.gather_s * 0.6))
            enter = max(0.0, arrive - math.dist((ex, ey), (tx, ty)) / speed)
            gone = leave + math.dist((tx, ty), (ox, oy)) / speed
            out.append(Gatherer(enter, arrive, leave, gone, ex, ey, tx, ty, ox, oy, _rand_look(rng)))
        return out

    def _make_vehicles(self, rng: np.random.Generator) -> list[Vehicle]:
        s = self.script
        if s.vehicles <= 0 or s.layout != "street":
            return []
        out: list[Vehicle] = []
        dur_mean = 1.4 / 0.16
        n = max(1, round(s.vehicles * s.loop_s / min(dur_mean, s.loop_s)))
        for _ in range(n):
            direction = 1 if rng.integers(2) else -1
            lane = 0.93 if direction > 0 else 0.995
            speed = float(rng.uniform(0.12, 0.2))
            dur = min(1.5 / speed, s.loop_s * 0.95)
            out.append(Vehicle(float(rng.uniform(0, s.loop_s)), dur, lane, direction,
                               float(rng.uniform(0.18, 0.25)), CARS[int(rng.integers(len(CARS)))]))
        return out

    # ---------------------------------------------------------------- background
    @cached_property
    def background(self) -> np.ndarray:
        img = np.zeros((self.height, self.width, 3), np.uint8)
        rng = np.random.default_rng(self._bg_rng_seed)
        draw = {"street": self._street_bg, "square": self._square_bg, "lookout": self._lookout_bg}
        draw[self.script.layout](img, rng)
        return img

    def _px(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.width), round(y * self.height)

    def _rect(self, img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        cv2.rectangle(img, self._px(x0, y0), self._px(x1, y1), color, -1)

    def _street_bg(self, img: np.ndarray, rng: np.random.Generator) -> None:
        self._rect(img, 0, 0, 1, 0.5, (150, 160, 170))
        x = -float(rng.uniform(0, 0.1))
        self._lamps = [0.2, 0.5, 0.8]
        self._windows: list[tuple[float, float, float, float]] = []
        while x < 1:
            w = float(rng.uniform(0.16, 0.26))
            wall = tuple(int(v) for v in rng.integers(90, 210, 3))
            sign = SHIRTS[int(rng.integers(len(SHIRTS)))]
            self._rect(img, x, 0, x + w, 0.5, wall)
            for k in range(3):  # upper-floor windows
                wx = x + 0.02 + k * (w - 0.04) / 3
                self._rect(img, wx + 0.005, 0.01, wx + (w - 0.04) / 3 - 0.005, 0.055, (90, 80, 70))
            self._rect(img, x + 0.01, 0.07, x + w - 0.01, 0.15, sign)
            for k in range(int(rng.integers(2, 5))):  # sign lettering as blocks
                lx = x + 0.025 + k * 0.04
                if lx + 0.025 < x + w - 0.015:
                    self._rect(img, lx, 0.09, lx + 0.025, 0.13, (245, 245, 245))
            self._rect(img, x + 0.015, 0.18, x + w - 0.015, 0.49, (70, 60, 55))
            self._rect(img, x + 0.02, 0.19, x + w * 0.62, 0.48, (150, 125, 105))  # glass
            self._windows.append((x + 0.02, 0.19, x + w * 0.62, 0.48))
            cv2.line(img, self._px(x + 0.03, 0.21), self._px(x + w * 0.3, 0.46), (185, 165, 150), 2)
            self._rect(img, x + w * 0.68, 0.22, x + w - 0.025, 0.49, (40, 50, 70))  # door
            self._rect(img, x + w - 0.006, 0, x + w, 0.5, (60, 60, 60))  # column
            x += w
        self._rect(img, 0, 0.5, 1, 0.82, (175, 180, 182))  # pavement
        for k in range(9):
            yy = 0.5 + (k / 8) ** 1.3 * 0.32
            cv2.line(img, self._px(0, yy), self._px(1, yy), (150, 155, 158), 1)
        for k in range(-8, 25):
            cv2.line(img, self._px(k * 0.05, 0.5), self._px(k * 0.05 - 0.02 + (k * 0.05 - 0.5) * 0.15, 0.82),
                     (150, 155, 158), 1)
        self._rect(img, 0, 0.82, 1, 0.835, (205, 205, 205))  # kerb
        self._rect(img, 0, 0.835, 1, 1, (70, 72, 75))  # road
        for k in range(12):
            self._rect(img, k * 0.1, 0.93, k * 0.1 + 0.05, 0.94, (220, 220, 220))
        for lx in self._lamps:
            self._rect(img, lx - 0.003, 0.18, lx + 0.003, 0.83, (50, 50, 50))
            self._rect(img, lx - 0.02, 0.17, lx + 0.02, 0.19, (60, 60, 60))

    def _square_bg(self, img: np.ndarray, rng: np.random.Generator) -> None:
        self._rect(img, 0, 0, 1, 0.25, (215, 195, 175))  # sky
        self._lamps = [0.1, 0.5, 0.9]
        self._windows = []
        x = 0.0
        while x < 1:
            w, top = float(rng.uniform(0.08, 0.16)), float(rng.uniform(0.02, 0.14))
            self._rect(img, x, top, x + w, 0.25, tuple(int(v) for v in rng.integers(100, 200, 3)))
            for wy in np.arange(top + 0.02, 0.22, 0.035):
                for wx in np.arange(x + 0.01, x + w - 0.02, 0.025):
                    self._rect(img, wx, wy, wx + 0.012, wy + 0.018, (110, 95, 80))
                    self._windows.append((wx, wy, wx + 0.012, wy + 0.018))
            x += w
        self._rect(img, 0, 0.25, 1, 1, (160, 170, 178))  # paving
        for k in range(12):
            yy = 0.25 + (k / 11) ** 1.4 * 0.75
            cv2.line(img, self._px(0, yy), self._px(1, yy), (140, 150, 158), 1)
        for k in range(-10, 31):
            cv2.line(img, self._px(0.5 + (k * 0.05 - 0.5) * 0.5, 0.25), self._px(k * 0.05, 1.0), (140, 150, 158), 1)
        for tx in (0.04, 0.96):  # trees and planters at the sides
            for ty in (0.35, 0.6, 0.9):
                h = self.person_height(ty) * 2.2
                self._rect(img, tx - 0.006, ty - h * 0.5, tx + 0.006, ty, (40, 60, 80))
                cv2.circle(img, self._px(tx, ty - h * 0.65), round(h * self.height * 0.3), (50, 120, 60), -1)
        cv2.ellipse(img, self._px(0.5, 0.27), (round(0.08 * self.width), round(0.015 * self.height)), 0, 0, 360,
                    (120, 120, 120), -1)  # fountain rim at the back

    def _lookout_bg(self, img: np.ndarray, rng: np.random.Generator) -> None:
        self._rect(img, 0, 0, 1, 0.08, (220, 200, 180))
        self._lamps = [0.3, 0.7]
        self._windows = []
        x = 0.0
        while x < 1:  # distant skyline
            w, top = float(rng.uniform(0.02, 0.06)), float(rng.uniform(0.0, 0.06))
            self._rect(img, x, top, x + w, 0.12, tuple(int(v) for v in rng.integers(110, 190, 3)))
            x += w
        self._rect(img, 0, 0.12, 1, 1, (95, 100, 105))  # roads
        for by in np.arange(0.13, 0.28, 0.05):  # blocks of roofs behind the square
            for bx in np.arange(0.0, 1.0, 0.07):
                self._rect(img, bx + 0.006, by + 0.005, bx + 0.064, by + 0.045,
                           tuple(int(v) for v in rng.integers(60, 170, 3)))
        for side in ((0.0, 0.085), (0.915, 1.0)):
            for by in np.arange(0.3, 1.0, 0.08):
                self._rect(img, side[0] + 0.004, by + 0.006, side[1] - 0.004, by + 0.072,
                           tuple(int(v) for v in rng.integers(60, 170, 3)))
        self._rect(img, 0.1, 0.3, 0.9, 0.95, (165, 175, 180))  # the square
        for k in range(1, 8):
            cv2.line(img, self._px(0.1 + k * 0.1, 0.3), self._px(0.1 + k * 0.1, 0.95), (150, 158, 164), 1)
            cv2.line(img, self._px(0.1, 0.3 + k * 0.0812), self._px(0.9, 0.3 + k * 0.0812), (150, 158, 164), 1)
        for tx in np.arange(0.13, 0.9, 0.08):
            cv2.circle(img, self._px(float(tx), 0.315), max(2, round(0.012 * self.width)), (50, 110, 55), -1)

    @cached_property
    def _night_gain(self) -> np.ndarray:
        """Per-pixel gain for night: dark everywhere, pools of light under lamps, lit windows."""
        _ = self.background  # defines lamps and windows
        h, w = self.height, self.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        gain = np.full((h, w), 0.1, np.float32)
        for lx in self._lamps:
            d2 = ((xx - lx * w) / (0.14 * w)) ** 2 + ((yy - 0.62 * h) / (0.3 * h)) ** 2
            gain += 0.6 * np.exp(-d2)
        for x0, y0, x1, y1 in self._windows:
            gain[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] += 0.7
        tint = np.array([1.05, 0.95, 0.8], np.float32)  # sodium-ish light
        return np.round(np.clip(gain, 0, 1.6)[..., None] * tint * 128).astype(np.uint8)  # gain × 128

    # ---------------------------------------------------------------- drawing
    def _person(self, img: np.ndarray, x: float, fy: float, look: Look, phase: float, moving: bool) -> Labelled:
        H = self.height
        stature = look.stature if self.script.layout != "lookout" else 0.94 + (look.stature - 0.88) * 0.5
        h = self.person_height(fy) * stature * H
        cx, foot = x * self.width, fy * H
        sw = 0.3 * h
        box = (round(cx - 0.22 * h), round(foot - h), round(cx + 0.22 * h), round(foot))
        if h < 14:  # too small for limbs: a blob with a head
            hip = foot - 0.45 * h
            cv2.rectangle(img, (round(cx - 0.12 * h), round(hip)), (round(cx + 0.12 * h), round(foot)),
                          look.trousers, -1)
            cv2.rectangle(img, (round(cx - 0.16 * h), round(foot - 0.82 * h)), (round(cx + 0.16 * h), round(hip)),
                          look.shirt, -1)
            cv2.circle(img, (round(cx), round(foot - 0.9 * h)), max(1, round(0.1 * h)), look.skin, -1)
            return "person", box
        swing = (0.13 * math.sin(phase) if moving else 0.015) * h
        r = max(2, round(0.085 * h))
        neck = foot - h + 2 * r
        hip = foot - 0.47 * h
        leg_t = max(2, round(0.1 * h))
        for side, s in ((-1, swing), (1, -swing)):
            top = (round(cx + side * 0.06 * h), round(hip))
            bottom = (round(cx + side * 0.06 * h + s), round(foot - 0.03 * h))
            cv2.line(img, top, bottom, look.trousers, leg_t, cv2.LINE_AA)
            cv2.line(img, bottom, (bottom[0] + round(0.05 * h), bottom[1]), (25, 25, 25), max(2, leg_t // 2))
        torso = np.array([[cx - sw / 2, neck], [cx + sw / 2, neck], [cx + sw * 0.42, hip + 0.03 * h],
                          [cx - sw * 0.42, hip + 0.03 * h]], np.int32)
        cv2.fillConvexPoly(img, torso, look.shirt, cv2.LINE_AA)
        arm_t = max(2, round(0.07 * h))
        sleeve = tuple(int(c * 0.8) for c in look.shirt)
        for side, s in ((-1, -swing), (1, swing)):
            sh = (round(cx + side * sw * 0.48), round(neck + 0.03 * h))
            hand = (round(cx + side * sw * 0.55 + s * 0.8), round(hip + 0.02 * h))
            cv2.line(img, sh, hand, sleeve, arm_t, cv2.LINE_AA)
            cv2.circle(img, hand, max(1, arm_t // 2), look.skin, -1, cv2.LINE_AA)
        head = (round(cx), round(foot - h + r))
        cv2.circle(img, head, r, look.skin, -1, cv2.LINE_AA)
        cv2.ellipse(img, head, (r, r), 0, 180, 360, look.hair, -1, cv2.LINE_AA)
        return "person", box

    def _goods(self, img: np.ndarray, g: Goods) -> Labelled:
        W, H = self.width, self.height
        u = self.person_height(g.y) * H * g.size
        cx, base = g.x * W, g.y * H
        if g.kind == "crate":
            cw, ch = 0.42 * u, 0.24 * u
            crates = [(cx - cw, base - ch), (cx, base - ch), (cx - cw / 2, base - 2 * ch)]
            for x0, y0 in crates:
                p0, p1 = (round(x0), round(y0)), (round(x0 + cw) - 1, round(y0 + ch))
                cv2.rectangle(img, p0, p1, (40, 95, 150), -1)
                cv2.rectangle(img, p0, p1, (25, 60, 95), max(1, round(u * 0.015)))
                for k in (1, 2):
                    yy = round(y0 + ch * k / 3)
                    cv2.line(img, (p0[0], yy), (p1[0], yy), (25, 60, 95), 1)
                for k in range(4):  # produce on top
                    cv2.circle(img, (round(x0 + cw * (0.15 + 0.23 * k)), round(y0)), max(1, round(ch * 0.14)),
                               ((30, 30, 200), (0, 140, 240), (40, 170, 60), (30, 200, 220))[k], -1)
            return "goods", (round(cx - cw), round(base - 2 * ch - ch * 0.14), round(cx + cw), round(base))
        if g.kind == "pile":
            pw, ph = 0.7 * u, 0.3 * u
            rng = np.random.default_rng(round(g.x * 1000) + round(g.y * 1000) * 1000)
            for k in range(7):
                ex = cx + (float(rng.uniform(-0.35, 0.35))) * pw
                ey = base - ph * (0.3 + 0.5 * (k // 3) / 2)
                color = ((200, 210, 220), (150, 110, 60), (60, 150, 200))[k % 3]
                centre, axes = (round(ex), round(ey)), (round(pw * 0.18), round(ph * 0.3))
                cv2.ellipse(img, centre, axes, 0, 0, 360, color, -1)
                cv2.ellipse(img, centre, axes, 0, 0, 360, (70, 70, 70), 1)
            return "goods", (round(cx - 0.53 * pw), round(base - ph * 0.85), round(cx + 0.53 * pw), round(base))
        # stall: a table with goods under a striped canopy on two poles
        tw, th = 1.2 * u, 0.42 * u
        top = base - th
        pole_t = max(2, round(u * 0.025))
        for px in (cx - tw / 2, cx + tw / 2):
            cv2.line(img, (round(px), round(base)), (round(px), round(base - 1.15 * u)), (60, 60, 60), pole_t)
        cv2.rectangle(img, (round(cx - tw / 2), round(top)), (round(cx + tw / 2), round(base - 0.05 * u)),
                      (50, 50, 160), -1)
        for k in range(5):
            bx = cx - tw / 2 + tw * (0.08 + 0.18 * k)
            cv2.rectangle(img, (round(bx), round(top - 0.1 * u)), (round(bx + 0.12 * tw), round(top)),
                          ((40, 140, 230), (60, 170, 60), (200, 200, 200), (30, 200, 230), (150, 80, 200))[k], -1)
        can_w = tw * 1.15
        y0, y1 = base - 1.3 * u, base - 1.08 * u
        stripes = 8
        for k in range(stripes):
            x0 = cx - can_w / 2 + can_w * k / stripes
            cv2.rectangle(img, (round(x0), round(y0)), (round(x0 + can_w / stripes), round(y1)),
                          (40, 40, 210) if k % 2 else (235, 235, 235), -1)
        return "stall", (round(cx - can_w / 2), round(y0), round(cx + can_w / 2), round(base))

    def _vehicle(self, img: np.ndarray, v: Vehicle, x: float) -> Labelled:
        W, H = self.width, self.height
        length, height = v.length * W, v.length * W * 0.42
        x0, bottom = x * W - length / 2, v.lane_y * H
        cv2.rectangle(img, (round(x0), round(bottom - height * 0.62)),
                      (round(x0 + length), round(bottom - height * 0.12)), v.color, -1)
        cab = np.array([[x0 + length * 0.22, bottom - height * 0.6], [x0 + length * 0.32, bottom - height],
                        [x0 + length * 0.72, bottom - height], [x0 + length * 0.84, bottom - height * 0.6]], np.int32)
        cv2.fillConvexPoly(img, cab, v.color, cv2.LINE_AA)
        win = np.array([[x0 + length * 0.27, bottom - height * 0.62], [x0 + length * 0.34, bottom - height * 0.92],
                        [x0 + length * 0.70, bottom - height * 0.92], [x0 + length * 0.79, bottom - height * 0.62]],
                       np.int32)
        cv2.fillConvexPoly(img, win, (90, 70, 50), cv2.LINE_AA)
        for wx in (0.2, 0.8):
            wheel = (round(x0 + length * wx), round(bottom - height * 0.13))
            cv2.circle(img, wheel, round(height * 0.14), (20, 20, 20), -1)
        return "vehicle", (round(x0), round(bottom - height), round(x0 + length), round(bottom))

    # ---------------------------------------------------------------- frames
    def people_at(self, t: float) -> list[tuple[float, float, Look, float, bool]]:
        """(x, y, look, phase, moving) for every person visible at time t (seconds in the loop)."""
        loop = self.script.loop_s
        out: list[tuple[float, float, Look, float, bool]] = []
        step = 2 * math.pi * 1.6  # steps per second, as walking phase

        for w in self._walks:
            rel = (t - w.t0) % loop
            if rel < w.dur:
                f = rel / w.dur
                x, y = w.x0 + (w.x1 - w.x0) * f, w.y0 + (w.y1 - w.y0) * f
                out.append((x, y, w.look, rel * step + w.look.stride, True))
        for s, look in self._standers:
            if s.start <= t < s.end:
                out.append((s.x + 0.003 * math.sin(t * 0.7), s.y, look, 0.0, False))
        for g in self._crowd:
            if t < g.enter or t >= g.gone:
                continue
            if t < g.arrive:
                f = (t - g.enter) / max(1e-6, g.arrive - g.enter)
                out.append((g.ex + (g.tx - g.ex) * f, g.ey + (g.ty - g.ey) * f, g.look, t * step + g.look.stride, True))
            elif t < g.leave:
                out.append((g.tx + 0.002 * math.sin(t * 0.5 + g.look.stride), g.ty, g.look, 0.0, False))
            else:
                f = (t - g.leave) / max(1e-6, g.gone - g.leave)
                out.append((g.tx + (g.ox - g.tx) * f, g.ty + (g.oy - g.ty) * f, g.look, t * step + g.look.stride, True))
        return out

    def frame(self, i: int) -> tuple[np.ndarray, list[Labelled]]:
        """Frame ``i`` of the loop (any i: taken modulo the loop) and its object boxes in pixels."""
        t = (i % self.frame_count) / self.fps
        img = self.background.copy()
        draws: list[tuple[float, int, object]] = []
        for n, p in enumerate(self.people_at(t)):
            draws.append((p[1], 2, (n, p)))
        for n, g in enumerate(self.script.goods):
            if g.start <= t < g.end:
                draws.append((g.y, 1, (n, g)))
        boxes: list[Labelled] = []
        for _, kind, item in sorted(draws, key=lambda d: (d[0], d[1], d[2][0])):  # far first
            payload = item[1]  # type: ignore[index]
            if kind == 2:
                x, y, look, phase, moving = payload
                boxes.append(self._person(img, x, y, look, phase, moving))
            else:
                boxes.append(self._goods(img, payload))
        for v in self._vehicles:
            rel = (t - v.t0) % self.script.loop_s
            if rel < v.dur:
                f = rel / v.dur
                x = -0.2 + 1.4 * f if v.direction > 0 else 1.2 - 1.4 * f
                boxes.append(self._vehicle(img, v, x))
        if self.script.night:
            img = cv2.multiply(img, self._night_gain, scale=1 / 128)
        boxes = self._clip(boxes)  # before any warp: what is off-frame stays unseen
        for e in self.script.effects:
            if e.start <= t < e.end:
                img, boxes = self._effect(img, boxes, e.kind, e.dx, e.dy, e.angle, t - e.start)
        return img, self._clip(boxes)

    def _effect(self, img: np.ndarray, boxes: list[Labelled], kind: str, dx: float, dy: float, angle: float,
                since: float) -> tuple[np.ndarray, list[Labelled]]:
        h, w = self.height, self.width
        if kind == "cover":  # a hand or cloth over the lens: dark, featureless, a little light at one edge
            yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
            shade = np.broadcast_to(12 + 16 * yy + 3 * math.sin(since * 0.8), (h, w))
            return np.dstack([shade * 0.9, shade * 0.95, shade * 1.1]).astype(np.uint8), []
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (dx * w, dy * h)
        moved = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))
        out: list[Labelled] = []
        for label, (x0, y0, x1, y1) in boxes:
            pts = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ m.T
            out.append((label, (round(pts[:, 0].min()), round(pts[:, 1].min()), round(pts[:, 0].max()),
                                round(pts[:, 1].max()))))
        return moved, out

    def _clip(self, boxes: list[Labelled]) -> list[Labelled]:
        out: list[Labelled] = []
        for label, (x0, y0, x1, y1) in boxes:
            c = (max(0, x0), max(0, y0), min(self.width, x1), min(self.height, y1))
            if (c[2] - c[0]) >= 2 and (c[3] - c[1]) >= 2:
                out.append((label, c))
        return out

    # ---------------------------------------------------------------- ground truth
    def episodes(self) -> list[EpisodeTruth]:
        """The scripted episodes (seconds from loop start), boxes in 0..1."""
        s, W, H = self.script, self.width, self.height

        def norm(b: PixelBox) -> tuple[float, float, float, float]:
            return (round(b[0] / W, 4), round(b[1] / H, 4), round(b[2] / W, 4), round(b[3] / H, 4))

        out: list[EpisodeTruth] = []
        if s.goods:
            scratch = np.zeros((H, W, 3), np.uint8)
            boxes = [(lb, norm(b)) for lb, b in self._clip([self._goods(scratch, g) for g in s.goods])]
            out.append(EpisodeTruth("vending", "frontage", min(g.start for g in s.goods), max(g.end for g in s.goods),
                                    None, boxes))
        if s.crowd is not None:
            scratch = np.zeros((H, W, 3), np.uint8)
            people = [self._person(scratch, g.tx, g.ty, g.look, 0.0, False) for g in self._crowd]
            out.append(EpisodeTruth("crowding", "square", s.crowd.start, s.crowd.end, None,
                                    [(lb, norm(b)) for lb, b in self._clip(people)]))
        for e in s.effects:
            reason = "covered" if e.kind == "cover" else "moved"
            out.append(EpisodeTruth("tamper", "view", e.start, e.end, reason, []))
        if s.night:
            out.append(EpisodeTruth("night", "view", 0.0, s.loop_s, "dark", []))
        return sorted(out, key=lambda e: (e.start, e.type))

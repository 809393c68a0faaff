"""Demo model trainer — owned by the demo-model work; see models/sim-detector.md.

Trains ``sim-detector``: a tiny anchor-free YOLOX-style detector (classes person, goods, stall,
vehicle) on frames drawn by the simulator's own renderer, so the demo runs with no download.
Exported to ONNX as the YOLOX raw grid the project's decoder reads (``detectors/formats/yolox.py``):
rows for strides 8, 16, 32 row-major; per row x, y offsets (+ cell index, × stride), log w, h
(exp × stride), then objectness and class scores already sigmoid-ed; BGR 0..255 input,
top-left letterbox padded with 114.

Data: random scene scripts (street / square / lookout layouts with goods, stalls, crowds, night,
a knocked camera placed at random) plus the built-in scenes, all rendered with training seeds
(>= 1000) only; the benchmark evaluates on built-in scenes with seeds 0..4, never seen here.
Frames are fed as the detectors package sees them: a whole 640x360 sub-stream frame letterboxed
to the input, native-resolution crops (the tiles of tiled inference), and 1920x1080 lookout tiles.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python models/train_sim.py --seed 0 --steps 2000

One CPU thread, deterministic for a given seed and torch build; writes models/sim-detector.onnx
and its manifest models/sim-detector.yaml (sha256 included).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from camera_hub.sim.scenes import SceneRenderer, SceneScript, builtin_scenes

CLASSES = ["person", "goods", "stall", "vehicle"]
INPUT_W, INPUT_H = 384, 224  # 640x360 letterboxes to 384x216: 16:9 with little padding
STRIDES = (8, 16, 32)
TRAIN_SEED_BASE = 1000  # renderer seeds for training; evaluation uses 0..4
MODELS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------- data
def random_script(rng: np.random.Generator, layout: str, n: int) -> SceneScript:
    """A scene script with events placed at random (domain randomisation beyond the built-ins)."""
    loop = 120.0
    d: dict = {"name": f"train_{layout}_{n}", "layout": layout, "loop_s": loop, "seed": int(rng.integers(1 << 30)),
               "walkers": float(rng.uniform(1, 4)), "goods": [], "standers": [], "effects": []}
    if layout == "street":
        d["vehicles"] = float(rng.uniform(0, 1.2))
        gy = (0.58, 0.82)
    elif layout == "square":
        gy = (0.35, 0.92)
    else:
        d["walkers"] = float(rng.uniform(4, 14))
        gy = None
    d["night"] = bool(layout != "lookout" and rng.random() < 0.3)
    if gy is not None:
        for _ in range(int(rng.integers(0, 5)) if rng.random() < 0.8 else 0):
            start = float(rng.uniform(0, 40))
            d["goods"].append({"kind": str(rng.choice(["stall", "crate", "crate", "pile", "pile"])),
                               "x": float(rng.uniform(0.08, 0.92)), "y": float(rng.uniform(*gy)),
                               "size": float(rng.uniform(0.7, 1.4)), "start": start,
                               "end": float(rng.uniform(start + 40, loop))})
        for _ in range(int(rng.integers(0, 3))):
            start = float(rng.uniform(0, 60))
            d["standers"].append({"x": float(rng.uniform(0.1, 0.9)), "y": float(rng.uniform(*gy)),
                                  "start": start, "end": float(rng.uniform(start + 20, loop))})
    if layout != "street" and rng.random() < 0.7:
        start = float(rng.uniform(10, 40))
        d["crowd"] = {"count": int(rng.integers(6, 22 if layout == "square" else 45)),
                      "x": float(rng.uniform(0.3, 0.7)), "y": float(rng.uniform(0.45, 0.8)),
                      "spread": float(rng.uniform(0.06, 0.18)), "start": start,
                      "end": float(rng.uniform(start + 30, loop - 5)), "gather_s": float(rng.uniform(6, 15))}
    if layout != "lookout" and rng.random() < 0.2:
        d["effects"].append({"kind": "moved", "start": 0.0, "end": loop, "dx": float(rng.uniform(-0.12, 0.12)),
                             "dy": float(rng.uniform(-0.1, 0.1)), "angle": float(rng.uniform(-10, 10))})
    return SceneScript.model_validate(d)


class SimData:
    """An endless, seeded stream of (canvas image, boxes [N,4] canvas px, class ids [N])."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        rs = np.random.default_rng(seed + 1)
        scenes = [s for s in builtin_scenes() if s != "smoke"]
        sub = [SceneRenderer(s, 640, 360, seed=TRAIN_SEED_BASE + k) for s in scenes if s != "lookout" for k in range(4)]
        sub += [SceneRenderer(random_script(rs, lay, n), 640, 360, seed=TRAIN_SEED_BASE + n)
                for n in range(40) for lay in ("street", "square")]
        self.sub = sub
        self.wide = [SceneRenderer("lookout", 1920, 1080, seed=TRAIN_SEED_BASE + k) for k in range(4)]
        self.wide += [SceneRenderer(random_script(rs, "lookout", n), 1920, 1080, seed=TRAIN_SEED_BASE + n)
                      for n in range(8)]

    def _render(self, pool: list[SceneRenderer]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = pool[int(self.rng.integers(len(pool)))]
        img, labelled = r.frame(int(self.rng.integers(r.frame_count)))
        boxes = np.array([b for _, b in labelled], np.float32).reshape(-1, 4)
        cls = np.array([CLASSES.index(lb) for lb, _ in labelled], np.int64)
        return img, boxes, cls

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = self.rng.random()
        if u < 0.55:  # whole sub-stream frame, as the detector letterboxes it (with a little scale jitter)
            img, boxes, cls = self._render(self.sub)
            scale = min(INPUT_W / img.shape[1], INPUT_H / img.shape[0]) * float(self.rng.uniform(0.85, 1.1))
            out = self._place(img, boxes, cls, scale, crop=True)
        elif u < 0.8:  # native-resolution tile of a sub-stream frame
            img, boxes, cls = self._render(self.sub)
            out = self._place(img, boxes, cls, float(self.rng.uniform(0.8, 1.25)), crop=True)
        else:  # lookout main-stream tile: people 15-30 px
            img, boxes, cls = self._render(self.wide)
            out = self._place(img, boxes, cls, float(self.rng.uniform(0.8, 1.2)), crop=True)
        return self._photometric(*out)

    def _place(self, img: np.ndarray, boxes: np.ndarray, cls: np.ndarray, scale: float,
               crop: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scale, take a random INPUT-size window (top-left when it all fits), pad with 114."""
        h, w = img.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes = boxes * scale
        ox = int(self.rng.integers(0, nw - INPUT_W + 1)) if crop and nw > INPUT_W else 0
        oy = int(self.rng.integers(0, nh - INPUT_H + 1)) if crop and nh > INPUT_H else 0
        canvas = np.full((INPUT_H, INPUT_W, 3), 114, np.uint8)
        part = img[oy:oy + INPUT_H, ox:ox + INPUT_W]
        canvas[:part.shape[0], :part.shape[1]] = part
        if self.rng.random() < 0.5:  # mirror the content in place (the pad stays bottom/right)
            canvas[:part.shape[0], :part.shape[1]] = part[:, ::-1]
            boxes = boxes.copy()
            x1 = ox + part.shape[1] - (boxes[:, 2] - ox)
            x2 = ox + part.shape[1] - (boxes[:, 0] - ox)
            boxes[:, 0], boxes[:, 2] = x1, x2
        orig = boxes.copy()
        boxes = boxes - np.array([ox, oy, ox, oy], np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, part.shape[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, part.shape[0])
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        full = (orig[:, 2] - orig[:, 0]) * (orig[:, 3] - orig[:, 1])
        # keep boxes mostly inside the window and at least 3 px tall (smaller is not learnable)
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (area >= 0.4 * np.maximum(full, 1e-6)) & (bh >= 3) & (bw >= 2)
        return canvas, boxes[keep], cls[keep]

    def _photometric(self, img: np.ndarray, boxes: np.ndarray, cls: np.ndarray):
        if self.rng.random() < 0.5:
            gain = float(self.rng.uniform(0.6, 1.35))
            bias = float(self.rng.uniform(-20, 20))
            img = cv2.convertScaleAbs(img, alpha=gain, beta=bias)
        if self.rng.random() < 0.2:
            img = cv2.GaussianBlur(img, (3, 3), 0)
        return img, boxes, cls


# ---------------------------------------------------------------------------------------------- model
def conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class Block(nn.Module):
    """Residual 3x3 pair."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = conv(c, c // 2, 1), conv(c // 2, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class SimDetector(nn.Module):
    """Backbone to stride 32, a top-down FPN, one shared-weight-free head per stride.
    ``forward`` returns raw logits [B, rows, 5 + C]; :class:`Exported` adds the sigmoids."""

    def __init__(self, num_classes: int = len(CLASSES), w: tuple[int, ...] = (16, 32, 48, 80, 112), head: int = 48):
        super().__init__()
        self.nc = num_classes
        self.stem = nn.Sequential(conv(3, w[0], 3, 2), conv(w[0], w[1], 3, 2))  # stride 4
        self.s8 = nn.Sequential(conv(w[1], w[2], 3, 2), Block(w[2]))
        self.s16 = nn.Sequential(conv(w[2], w[3], 3, 2), Block(w[3]))
        self.s32 = nn.Sequential(conv(w[3], w[4], 3, 2), Block(w[4]))
        self.lat = nn.ModuleList([conv(c, head, 1) for c in (w[2], w[3], w[4])])
        self.smooth = nn.ModuleList([conv(head, head, 3) for _ in range(3)])
        self.pred = nn.ModuleList([nn.Conv2d(head, 5 + num_classes, 1) for _ in range(3)])
        prior = -math.log((1 - 0.01) / 0.01)
        for p in self.pred:
            nn.init.constant_(p.bias[4:], prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.s8(self.stem(x))
        c4 = self.s16(c3)
        c5 = self.s32(c4)
        p5 = self.lat[2](c5)
        p4 = self.lat[1](c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lat[0](c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        outs = []
        for p, sm, pr in zip((p3, p4, p5), self.smooth, self.pred, strict=True):
            o = pr(sm(p))
            outs.append(o.flatten(2).transpose(1, 2))  # [B, H*W (row-major), 5 + C]
        return torch.cat(outs, 1)


class Exported(nn.Module):
    """The ONNX graph: raw offsets and log sizes, sigmoid-ed objectness and classes (YOLOX layout)."""

    def __init__(self, net: SimDetector) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        o = self.net(images)
        return torch.cat([o[..., :4], o[..., 4:].sigmoid()], -1)


def grid() -> tuple[np.ndarray, np.ndarray]:
    cells, st = [], []
    for s in STRIDES:
        gy, gx = np.mgrid[0:INPUT_H // s, 0:INPUT_W // s]
        cells.append(np.stack([gx.ravel(), gy.ravel()], 1))
        st.append(np.full(gx.size, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(st).astype(np.float32)


CELLS, CELL_STRIDE = grid()
LEVEL_RANGE = {8: (0, 64), 16: (48, 128), 32: (96, 1e9)}  # object size (longer side, px) per stride


def assign(boxes: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre sampling: a cell is positive for a box when the cell centre lies inside the box and
    within 1.5 strides of its centre, at a stride suited to its size (the cell holding the centre
    always counts); a cell claimed twice goes to the smaller box. Returns gt index per cell (-1 none)."""
    n = len(boxes)
    owner = np.full(len(CELLS), -1, np.int64)
    if n == 0:
        return owner, cls
    centres = (CELLS + 0.5) * CELL_STRIDE[:, None]  # [R,2]
    bc = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    lo = np.array([LEVEL_RANGE[int(s)][0] for s in CELL_STRIDE], np.float32)[:, None]
    hi = np.array([LEVEL_RANGE[int(s)][1] for s in CELL_STRIDE], np.float32)[:, None]
    in_level = (size[None] >= lo) & (size[None] < hi)
    inside = ((centres[:, None, 0] > boxes[None, :, 0]) & (centres[:, None, 0] < boxes[None, :, 2])
              & (centres[:, None, 1] > boxes[None, :, 1]) & (centres[:, None, 1] < boxes[None, :, 3]))
    r = 1.5 * CELL_STRIDE[:, None]
    near = (np.abs(centres[:, None, 0] - bc[None, :, 0]) < r) & (np.abs(centres[:, None, 1] - bc[None, :, 1]) < r)
    own_cell = ((np.floor(bc[None, :, 0] / CELL_STRIDE[:, None]) == CELLS[:, None, 0])
                & (np.floor(bc[None, :, 1] / CELL_STRIDE[:, None]) == CELLS[:, None, 1]))
    pos = in_level & ((inside & near) | own_cell)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = np.where(pos, area[None], np.inf)
    has = pos.any(1)
    owner[has] = cost[has].argmin(1)
    return owner, cls


def batch(data: SimData, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    imgs, tboxes, tcls = [], [], []
    for _ in range(size):
        img, boxes, cls = data.sample()
        owner, cls = assign(boxes, cls)
        imgs.append(img.transpose(2, 0, 1))
        b = np.zeros((len(CELLS), 4), np.float32)
        c = np.full(len(CELLS), -1, np.int64)
        m = owner >= 0
        b[m], c[m] = boxes[owner[m]], cls[owner[m]]
        tboxes.append(b)
        tcls.append(c)
    x = torch.from_numpy(np.ascontiguousarray(np.stack(imgs))).float()
    return x, torch.from_numpy(np.stack(tboxes)), torch.from_numpy(np.stack(tcls))


def decode(raw: torch.Tensor) -> torch.Tensor:
    cells = torch.from_numpy(CELLS)
    st = torch.from_numpy(CELL_STRIDE)[:, None]
    xy = (raw[..., :2] + cells) * st
    wh = torch.exp(raw[..., 2:4].clamp(max=8.0)) * st
    return torch.cat([xy - wh / 2, xy + wh / 2], -1)


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    iw = (torch.min(a[:, 2], b[:, 2]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.min(a[:, 3], b[:, 3]) - torch.max(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.max(a[:, 2], b[:, 2]) - torch.min(a[:, 0], b[:, 0])
    ch = torch.max(a[:, 3], b[:, 3]) - torch.min(a[:, 1], b[:, 1])
    hull = (cw * ch).clamp(min=1e-6)
    return iou - (hull - union) / hull, iou


def loss_fn(raw: torch.Tensor, tboxes: torch.Tensor, tcls: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    pos = tcls >= 0
    npos = max(1.0, float(pos.sum()))
    boxes = decode(raw)
    g, iou = giou(boxes[pos], tboxes[pos])
    l_box = (1 - g).sum() / npos
    # objectness target: the IoU of the predicted box at positives (quality-aware, as in YOLOX)
    obj_t = torch.zeros_like(raw[..., 4])
    obj_t[pos] = iou.detach().clamp(min=0.3)
    l_obj = F.binary_cross_entropy_with_logits(raw[..., 4], obj_t, reduction="sum") / npos
    cls_t = F.one_hot(tcls[pos], len(CLASSES)).float()
    l_cls = F.binary_cross_entropy_with_logits(raw[..., 5:][pos], cls_t, reduction="sum") / npos
    total = 5.0 * l_box + l_obj + l_cls
    return total, {"box": l_box.item(), "obj": l_obj.item(), "cls": l_cls.item(), "npos": npos}


# ---------------------------------------------------------------------------------------------- export
def export(net: SimDetector, path: Path) -> str:
    """ONNX (opset 17, dynamic batch, class names in the metadata); checks onnxruntime against
    torch; returns the file's sha256."""
    import onnx
    import onnxruntime as ort

    net.eval()
    model = Exported(net).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, INPUT_H, INPUT_W)).astype(np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(model, (x,), str(tmp), opset_version=17, input_names=["images"], output_names=["output"],
                      dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    m = onnx.load(str(tmp))
    # the exporter leaves rows and channels symbolic; the decoder recognises the format by them
    for d, v in zip(m.graph.output[0].type.tensor_type.shape.dim[1:], (len(CELLS), 5 + len(CLASSES)), strict=True):
        d.Clear()
        d.dim_value = v
    meta = {"names": repr(dict(enumerate(CLASSES))), "format": "yolox", "stride": "8,16,32",
            "description": "sim-detector: trained on Camera Hub simulator scenes only (see models/sim-detector.md)",
            "license": "Apache-2.0"}
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "camera-hub models/train_sim.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    tmp.unlink()
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise RuntimeError(f"onnxruntime differs from torch by {err}")
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB), onnxruntime vs torch max diff {err:.2e}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(path: Path, digest: str, rows: int) -> None:
    classes = ", ".join(CLASSES)
    path.write_text(f"""\
# sim-detector: the demo model, trained by models/train_sim.py on simulator scenes only (see
# models/sim-detector.md). It knows only the simulator's world; use a real model for real cameras.
name: sim-detector
file: sim-detector.onnx
format: yolox
input_size: [{INPUT_W}, {INPUT_H}]
classes: [{classes}]
score_threshold: 0.35
nms_iou: 0.45
outputs:
  output: [1, {rows}, {5 + len(CLASSES)}]
licence: Apache-2.0
source: Camera Hub models/train_sim.py (trained on the project's simulator renderer)
sha256: {digest}
""", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- train
def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    data = SimData(args.seed)
    net = SimDetector()
    params = sum(p.numel() for p in net.parameters())
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    other = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4}, {"params": other, "weight_decay": 0}],
                            lr=args.lr)
    warm = min(200, args.steps // 10)

    def lr_at(s: int) -> float:  # linear warm-up, then cosine down to 2 %
        if s < warm:
            return (s + 1) / warm
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, args.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    print(f"sim-detector: {params} parameters, input {INPUT_W}x{INPUT_H}, {args.steps} steps of {args.batch}, "
          f"seed {args.seed}, {torch.get_num_threads()} thread(s), torch {torch.__version__}", flush=True)
    ckpt = Path(args.checkpoint)
    t0 = time.perf_counter()
    net.train()
    for step in range(args.steps):
        x, tb, tc = batch(data, args.batch)
        total, parts = loss_fn(net(x), tb, tc)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == args.steps - 1:
            el = time.perf_counter() - t0
            print(f"step {step:5d} loss {total.item():.3f} box {parts['box']:.3f} obj {parts['obj']:.3f} "
                  f"cls {parts['cls']:.3f} pos {parts['npos']:.0f} lr {sched.get_last_lr()[0]:.2e} {el:.0f}s",
                  flush=True)
        if (step + 1) % 200 == 0:
            torch.save({"step": step + 1, "model": net.state_dict()}, ckpt)
    torch.save({"step": args.steps, "model": net.state_dict()}, ckpt)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    finish(net, Path(args.out))


def finish(net: SimDetector, out: Path) -> None:
    digest = export(net, out)
    write_manifest(out.with_suffix(".yaml"), digest, len(CELLS))
    print(f"manifest {out.with_suffix('.yaml')} sha256 {digest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(MODELS / "sim-detector.onnx"))
    ap.add_argument("--checkpoint", default="/tmp/sim-detector.pt")
    ap.add_argument("--export-only", action="store_true", help="export --checkpoint without training")
    args = ap.parse_args()
    if args.export_only:
        net = SimDetector()
        net.load_state_dict(torch.load(args.checkpoint)["model"])
        finish(net, Path(args.out))
        return
    train(args)


if __name__ == "__main__":
    main()

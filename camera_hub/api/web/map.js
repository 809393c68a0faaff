// The city map: SVG, Web Mercator (so an optional {z}/{x}/{y} tile server lines up), no internet needed.
// Cameras are circles in one transformed group (a pan or zoom changes one attribute, not 1,000),
// alert pins and area labels are placed in screen space. Data text (names, ids) is marked data-d.
"use strict";

const NS = "http://www.w3.org/2000/svg";
const R = 2 ** 28; // user units per world width (256 px tiles at zoom 20): city coordinates stay well inside float32
const DOT_PX = 4;
const MIN_K = 1e-6;
const MAX_K = 1;

export function project(lat, lon) {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

function el(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function dataTitle(text) {
  const t = el("title");
  t.setAttribute("data-d", "");
  t.textContent = text;
  return t;
}

function hull(points) { // monotone chain; points [[x, y]]
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [], upper = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower.at(-2), lower.at(-1), q) <= 0) lower.pop(); lower.push(q); }
  for (const q of p.reverse()) { while (upper.length >= 2 && cross(upper.at(-2), upper.at(-1), q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

export class CityMap {
  /** opts: onCamera(id), onAlert(id), tileUrl, maxZoom */
  constructor(svg, opts = {}) {
    this.svg = svg;
    this.opts = opts;
    this.k = 1e-3; this.tx = 0; this.ty = 0;
    this.origin = null; // world coordinates of user (0, 0)
    this.cams = new Map(); // id -> {el, ux, uy, state, visible}
    this.pins = [];
    this.labels = [];
    this.tiles = new Map();
    this.fitted = false;
    this.frame = 0;
    this.view = el("g", { class: "view" });
    this.tileLayer = el("g", { class: "tiles" });
    this.areaLayer = el("g", { class: "areas" });
    this.camLayer = el("g", { class: "cams" });
    this.view.append(this.tileLayer, this.areaLayer, this.camLayer);
    this.labelLayer = el("g", { class: "labels" });
    this.pinLayer = el("g", { class: "pins" });
    svg.replaceChildren(this.view, this.labelLayer, this.pinLayer);
    this._interactions();
    this.last = [0, 0];
    new ResizeObserver(() => { // keep the centre where it was when the drawer opens or the window changes
      const [w, hh] = this.size();
      if (!this.fitted) this.fit();
      else if (w && hh && this.last[0]) { this.tx += (w - this.last[0]) / 2; this.ty += (hh - this.last[1]) / 2; this.render(); }
      if (w && hh) this.last = [w, hh];
    }).observe(svg);
  }

  size() { const r = this.svg.getBoundingClientRect(); return [r.width, r.height]; }

  toUser(lat, lon) {
    const [x, y] = project(lat, lon);
    return [(x - this.origin[0]) * R, (y - this.origin[1]) * R];
  }

  toScreen(ux, uy) { return [ux * this.k + this.tx, uy * this.k + this.ty]; }

  /** cameras: [{id, name, lat, lon, kind, state}] — builds the markers (once per camera list). */
  setCameras(cameras) {
    if (!cameras.length) return;
    if (!this.origin) {
      const xs = cameras.map((c) => project(c.lat, c.lon));
      this.origin = [xs.reduce((s, p) => s + p[0], 0) / xs.length, xs.reduce((s, p) => s + p[1], 0) / xs.length];
    }
    const frag = document.createDocumentFragment();
    const seen = new Set();
    for (const c of cameras) {
      seen.add(c.id);
      let m = this.cams.get(c.id);
      const [ux, uy] = this.toUser(c.lat, c.lon);
      if (!m) {
        const circle = el("circle", { class: `cam ${c.kind === "lookout" ? "lookout " : ""}st-${c.state}`,
          cx: ux.toFixed(2), cy: uy.toFixed(2), "data-id": c.id, "data-state": c.state });
        circle.append(dataTitle(`${c.id} ${c.name}`));
        m = { el: circle, ux, uy, state: c.state, visible: true, lat: c.lat, lon: c.lon };
        this.cams.set(c.id, m);
        frag.append(circle);
      } else if (m.state !== c.state) {
        m.el.classList.replace(`st-${m.state}`, `st-${c.state}`);
        m.el.setAttribute("data-state", c.state);
        m.state = c.state;
      }
    }
    this.camLayer.append(frag);
    for (const [id, m] of this.cams) if (!seen.has(id)) { m.el.remove(); this.cams.delete(id); }
    if (!this.fitted) this.fit(); else this.render();
  }

  /** Show only cameras for which visible(id) is true. */
  filter(visible) {
    for (const [id, m] of this.cams) {
      const v = !!visible(id);
      if (v !== m.visible) { m.visible = v; m.el.classList.toggle("hidden", !v); }
    }
  }

  /** areas: [{name, points: [[lat, lon]]}] drawn as hulls with a label (district outlines without a tile server). */
  setAreas(areas) {
    this.areaLayer.replaceChildren();
    this.labelLayer.replaceChildren();
    this.labels = [];
    if (!this.origin) return;
    for (const a of areas) {
      const pts = hull(a.points.map(([lat, lon]) => this.toUser(lat, lon)));
      if (pts.length < 3) continue;
      this.areaLayer.append(el("polygon", { class: "area", points: pts.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ") }));
      const cx = pts.reduce((s, p) => s + p[0], 0) / pts.length, cy = pts.reduce((s, p) => s + p[1], 0) / pts.length;
      const text = el("text", { class: "area-label", "data-d": "" });
      text.textContent = a.name;
      this.labelLayer.append(text);
      this.labels.push({ text, ux: cx, uy: cy });
    }
    this.render();
  }

  /** pins: [{id, camera_id, state, title}] — open alerts at their camera. */
  setPins(pins) {
    this.pinLayer.replaceChildren();
    this.pins = [];
    for (const p of pins) {
      const cam = this.cams.get(p.camera_id);
      if (!cam) continue;
      const g = el("g", { class: `pin st-${p.state}`, "data-alert": p.id });
      g.append(el("path", { d: "M0,0 C-3,-7 -8,-11 -8,-17 A8,8 0 1 1 8,-17 C8,-11 3,-7 0,0Z" }), el("circle", { cx: 0, cy: -17, r: 3 }));
      g.append(dataTitle(p.title));
      this.pinLayer.append(g);
      this.pins.push({ g, cam });
    }
    this.render();
  }

  fit() {
    const [w, h] = this.size();
    if (!w || !h || !this.cams.size) return;
    const shown = [...this.cams.values()].filter((m) => m.visible);
    const list = shown.length ? shown : [...this.cams.values()];
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const m of list) { x0 = Math.min(x0, m.ux); x1 = Math.max(x1, m.ux); y0 = Math.min(y0, m.uy); y1 = Math.max(y1, m.uy); }
    const pad = 24;
    this.k = Math.min(MAX_K, Math.max(MIN_K, Math.min((w - 2 * pad) / Math.max(x1 - x0, 1), (h - 2 * pad) / Math.max(y1 - y0, 1))));
    this.tx = w / 2 - ((x0 + x1) / 2) * this.k;
    this.ty = h / 2 - ((y0 + y1) / 2) * this.k;
    this.fitted = true;
    this.render();
  }

  zoom(f, cx, cy) {
    const [w, h] = this.size();
    if (cx === undefined) { cx = w / 2; cy = h / 2; }
    const k = Math.min(MAX_K, Math.max(MIN_K, this.k * f));
    f = k / this.k;
    this.tx = cx - (cx - this.tx) * f;
    this.ty = cy - (cy - this.ty) * f;
    this.k = k;
    this.render();
  }

  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this._draw(); });
  }

  _draw() {
    this.view.setAttribute("transform", `translate(${this.tx.toFixed(2)} ${this.ty.toFixed(2)}) scale(${this.k})`);
    // the marker radius lives in one CSS variable, but changing it restyles all 1,000 markers: while a
    // zoom goes on they scale with the map, and get their on-screen size back once it pauses
    // (at most 2× off, so a long zoom never shows blobs)
    if (this.k !== this.rK) {
      clearTimeout(this.rTimer);
      const settle = () => { this.rK = this.k; this.view.style.setProperty("--r", `${DOT_PX / this.k}px`); };
      const off = this.rK ? this.k / this.rK : 0;
      if (off < 0.5 || off > 2) settle(); else this.rTimer = setTimeout(settle, 150);
    }
    for (const p of this.pins) {
      const [x, y] = this.toScreen(p.cam.ux, p.cam.uy);
      p.g.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
      p.g.classList.toggle("hidden", !p.cam.visible);
    }
    for (const l of this.labels) {
      const [x, y] = this.toScreen(l.ux, l.uy);
      l.text.setAttribute("x", x.toFixed(1)); l.text.setAttribute("y", y.toFixed(1));
    }
    this._tiles();
  }

  _tiles() {
    const url = this.opts.tileUrl;
    if (!url || !this.origin) return;
    const [w, h] = this.size();
    const scale = this.k * R; // screen px per world width
    const z = Math.max(0, Math.min(this.opts.maxZoom ?? 18, Math.round(Math.log2(scale / 256))));
    const n = 2 ** z;
    const wx = (sx) => this.origin[0] + (sx - this.tx) / scale, wy = (sy) => this.origin[1] + (sy - this.ty) / scale;
    const i0 = Math.max(0, Math.floor(wx(0) * n)), i1 = Math.min(n - 1, Math.floor(wx(w) * n));
    const j0 = Math.max(0, Math.floor(wy(0) * n)), j1 = Math.min(n - 1, Math.floor(wy(h) * n));
    const want = new Set();
    if ((i1 - i0 + 1) * (j1 - j0 + 1) <= 256) {
      for (let i = i0; i <= i1; i++) for (let j = j0; j <= j1; j++) {
        const key = `${z}/${i}/${j}`;
        want.add(key);
        if (this.tiles.has(key)) continue;
        const img = el("image", { x: ((i / n - this.origin[0]) * R).toFixed(1), y: ((j / n - this.origin[1]) * R).toFixed(1),
          width: (R / n).toFixed(1), height: (R / n).toFixed(1), preserveAspectRatio: "none",
          href: url.replace("{z}", z).replace("{x}", i).replace("{y}", j) });
        this.tileLayer.append(img);
        this.tiles.set(key, img);
      }
    }
    for (const [key, img] of this.tiles) if (!want.has(key)) { img.remove(); this.tiles.delete(key); }
    this.svg.classList.add("with-tiles");
  }

  _interactions() {
    const svg = this.svg;
    let drag = null;
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoom(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, tx: this.tx, ty: this.ty, moved: false, id: ev.pointerId };
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) { drag.moved = true; svg.setPointerCapture(ev.pointerId); svg.classList.add("dragging"); }
      this.tx = drag.tx + dx; this.ty = drag.ty + dy;
      this.render();
    });
    const end = (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      const wasDrag = drag.moved;
      drag = null;
      svg.classList.remove("dragging");
      if (wasDrag || ev.type !== "pointerup") return;
      const pin = ev.target.closest?.(".pin");
      if (pin) { this.opts.onAlert?.(pin.getAttribute("data-alert")); return; }
      const cam = ev.target.closest?.("circle.cam");
      if (cam) this.opts.onCamera?.(cam.getAttribute("data-id"));
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", (ev) => {
      const r = svg.getBoundingClientRect();
      this.zoom(2, ev.clientX - r.left, ev.clientY - r.top);
    });
  }
}

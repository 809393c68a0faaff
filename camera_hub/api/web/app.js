// Camera Hub operator page: plain JS modules, no build step. All data goes into the DOM as text;
// every UI string comes from the catalogue (i18n.js), data is marked data-d.
"use strict";
import { LANGS, applyStatic, currentLang, d, fmtClock, fmtTime, label, loadLang, localName, pickLang, setTimeZone,
  t, tf, timeZone } from "./i18n.js";
import { CityMap } from "./map.js";
import { playWhep } from "./whep.js";

const API = "/api/v1";
const $ = (sel) => document.querySelector(sel);
const $$ = (sel) => [...document.querySelectorAll(sel)];
const TYPES = ["vending", "crowding", "tamper", "camera_offline"];
const STATES = ["new", "acknowledged", "dispatched", "resolved", "dismissed"];
const OPEN = ["new", "acknowledged", "dispatched"];
const CAM_STATES = ["up", "degraded", "starting", "down", "never"];
const ACTIONS = { new: ["acknowledge", "dismiss"], acknowledged: ["dispatch", "resolve", "dismiss"],
                  dispatched: ["resolve", "dismiss"] };
const SHORT = { acknowledge: "ack", dispatch: "dispatch", resolve: "resolve", dismiss: "dismiss" };
const PREF = (k) => `camera-hub.${k}`;

const S = {
  me: null, city: null, workers: [], workerById: new Map(), grid: new Map(), cameras: [], camById: new Map(),
  alerts: new Map(), zones: new Map(), selected: null, detailId: null, cameraId: null, stats: null,
  feed: null, feedKey: "feed.connecting", tab: "map", map: null, coverage: null,
  wall: { size: Number(localStorage.getItem(PREF("wall.size"))) || 4, follow: localStorage.getItem(PREF("wall.follow")) === "1", tiles: [] },
  prefs: { sound: localStorage.getItem(PREF("sound")) === "1", notify: localStorage.getItem(PREF("notify")) === "1" },
};
const drafts = new Map(); // "id/field" -> what is being typed; survives re-renders caused by live events

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** replaceChildren without the null/false placeholders of optional parts (which it would write as text). */
function fill(el, ...children) { el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false)); }

class ApiError extends Error {
  constructor(status, detail) { super(typeof detail === "string" ? detail : JSON.stringify(detail)); this.status = status; }
}

async function api(path, opts = {}) {
  let res;
  try {
    res = await fetch(API + path, { credentials: "same-origin", ...opts,
      headers: { "Content-Type": "application/json", ...(opts.headers || {}) } });
  } catch (e) { throw new ApiError(0, String(e)); }
  if (res.status === 401 && path !== "/auth/login") { showLogin(); throw new ApiError(401, "not logged in"); }
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new ApiError(res.status, body?.detail ?? res.statusText);
  return body;
}

const ERR = { 400: "err.bad_request", 401: "err.auth", 403: "err.forbidden", 404: "err.not_found", 409: "err.conflict",
              422: "err.invalid", 429: "err.rate_limited", 503: "err.unavailable" };
const errText = (e) => t(ERR[e?.status] || "err.generic");

let toastTimer = 0;
function toast(text) {
  $("#toast").textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { $("#toast").textContent = ""; }, 6000);
}

const isOperator = () => S.me && ["operator", "analyst", "admin"].includes(S.me.role);
const camName = (id) => { const c = S.camById.get(id); return c ? localName(c.name) : id; };
const workerName = (id) => { const w = S.workerById.get(id); return w ? `${localName(w.name)} (${id})` : id; };

// ---------------------------------------------------------------- language
function fillLangSelects() {
  for (const sel of $$(".lang-select")) {
    sel.replaceChildren(...Object.entries(LANGS).map(([code, name]) => h("option", { value: code, "data-d": "" }, name)));
    sel.value = currentLang();
  }
}

async function switchLang(code) {
  await loadLang(code, { remember: true });
  applyStatic();
  fillLangSelects();
  if (!$("#main-view").hidden) rerenderAll();
}
$$(".lang-select").forEach((sel) => sel.addEventListener("change", () => switchLang(sel.value)));

function rerenderAll() {
  $("#toast").textContent = ""; // said in the other language
  fillFilterSelects();
  setFeed(S.feedKey);
  renderWho();
  renderKeysHint();
  renderAlerts();
  renderStats();
  renderCameraViews();
  renderAreasOnMap();
  if (S.detailId && S.alerts.has(S.detailId)) renderDetail(S.alerts.get(S.detailId));
  if (S.cameraId) renderCameraPanel(S.cameraId, { restartLive: false });
  for (const tile of S.wall.tiles) tile.view?.relabel();
  renderWallHeads();
  if (S.coverage) renderCoverage(S.coverage);
  renderPrefs();
}

// ---------------------------------------------------------------- session
function showLogin() {
  if (S.feed) { S.feed.close(); S.feed = null; }
  for (const tile of S.wall.tiles) tile.view?.stop();
  camLive?.stop();
  $("#main-view").hidden = true; $("#login-view").hidden = false;
  document.title = t("app.title");
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/auth/login", { method: "POST",
      body: JSON.stringify({ username: $("#username").value, password: $("#password").value }) });
    $("#password").value = "";
    await start();
  } catch (e) { $("#login-error").textContent = e.status === 401 ? t("login.wrong") : errText(e); }
});

$("#logout-btn").addEventListener("click", async () => {
  try { await api("/auth/logout", { method: "POST" }); } finally { showLogin(); }
});

function renderWho() { if (S.me) $("#who").replaceChildren(d(S.me.user), " ", h("span", { class: "muted" }, label("role", S.me.role))); }

async function start() {
  S.me = await api("/me");
  const [city, workers] = await Promise.all([api("/city"), api("/grid-workers")]);
  S.city = city;
  S.workers = workers;
  S.workerById = new Map(workers.map((w) => [w.id, w]));
  setTimeZone(city.timezone);
  buildAreas();
  $("#city-name").textContent = localName(city.name);
  $("#login-view").hidden = true; $("#main-view").hidden = false;
  renderWho();
  renderKeysHint();
  renderPrefs();
  fillFilterSelects();
  if (!S.map) S.map = new CityMap($("#map"), { onCamera: (id) => openCamera(id), onAlert: (id) => { select(id); openDetail(id); },
                                               tileUrl: city.map.tile_url, maxZoom: city.map.max_zoom });
  buildWall();
  await loadCameras();
  await loadAlerts();
  openFeed();
}

// ---------------------------------------------------------------- areas (district → street → community → grid, patrol zones)
function buildAreas() {
  S.grid.clear();
  for (const dist of S.city.districts) for (const st of dist.streets) for (const c of st.communities) for (const g of c.grids) {
    S.grid.set(g.id, { d: dist, s: st, c, g, pz: [] });
  }
  for (const pz of S.city.patrol_zones) for (const g of pz.grids) S.grid.get(g)?.pz.push(pz.id);
}

function option(value, text, isData) { return h("option", { value, "data-d": isData ? "" : null }, text); }

function fillFilterSelects() {
  if (!S.city) return;
  const keep = (sel, build) => { const v = sel.value; sel.replaceChildren(...build()); sel.value = [...sel.options].some((o) => o.value === v) ? v : ""; };
  keep($("#f-district"), () => [option("", t("area.all_districts")),
    ...S.city.districts.map((x) => option(x.id, localName(x.name), true))]);
  fillStreets();
  keep($("#f-pz"), () => [option("", t("area.all_patrol_zones")),
    ...S.city.patrol_zones.map((x) => option(x.id, localName(x.name), true))]);
  keep($("#f-type"), () => [option("", t("filter.all_types")), ...TYPES.map((x) => option(x, t(`type.${x}`)))]);
  keep($("#f-state"), () => [option("", t("filter.all_states")), option("open", t("filter.open")),
    ...STATES.map((x) => option(x, t(`state.${x}`)))]);
}

function fillStreets() {
  const sel = $("#f-street"), v = sel.value, dist = $("#f-district").value;
  const streets = S.city.districts.filter((x) => !dist || x.id === dist).flatMap((x) => x.streets);
  sel.replaceChildren(option("", t("area.all_streets")), ...streets.map((x) => option(x.id, localName(x.name), true)));
  sel.value = streets.some((x) => x.id === v) ? v : "";
}

const areaFilter = () => ({ district: $("#f-district").value, street: $("#f-street").value, pz: $("#f-pz").value });
const noArea = (f) => !f.district && !f.street && !f.pz;

function gridMatches(gridId, f) {
  const a = S.grid.get(gridId);
  if (!a) return false;
  return (!f.district || a.d.id === f.district) && (!f.street || a.s.id === f.street) && (!f.pz || a.pz.includes(f.pz));
}
const cameraMatches = (c, f) => noArea(f) || c.grids.some((g) => gridMatches(g, f));
function alertInArea(a, f) {
  if (noArea(f)) return true;
  if (a.grid_id) return gridMatches(a.grid_id, f);
  const c = S.camById.get(a.camera_id);
  return c ? cameraMatches(c, f) : false;
}

function areaPath(gridId) {
  const a = S.grid.get(gridId);
  return a ? [a.d, a.s, a.c].map((x) => localName(x.name)).join(" / ") : (gridId || "");
}

function onAreaChange() {
  renderAlerts();
  renderCameraViews();
  renderPins();
  if (S.map) S.map.fit();
}
$("#f-district").addEventListener("change", () => { $("#f-street").value = ""; fillStreets(); onAreaChange(); if (S.tab === "map") loadAlerts().catch(() => {}); });
$("#f-street").addEventListener("change", onAreaChange);
$("#f-pz").addEventListener("change", onAreaChange);

// ---------------------------------------------------------------- tabs
function showTab(name) {
  S.tab = name;
  $$(".tab").forEach((x) => { x.classList.toggle("active", x.dataset.tab === name); x.setAttribute("aria-selected", String(x.dataset.tab === name)); });
  $$(".view").forEach((x) => { x.hidden = x.id !== "view-" + name; });
  if (name === "cameras") renderCameraViews(); // at once from what is known (in the current language), then fresh
  if (name === "cameras" || name === "map") loadCameras().catch(() => {});
  if (name === "coverage") loadCoverage().catch((e) => toast(errText(e)));
}
$$(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// ---------------------------------------------------------------- alerts
function filters() {
  return { type: $("#f-type").value, state: $("#f-state").value, camera_id: $("#f-camera").value.trim() };
}

function matches(a, f, area) {
  return (!f.type || a.type === f.type) && (!f.state || (f.state === "open" ? OPEN.includes(a.state) : a.state === f.state)) &&
         (!f.camera_id || a.camera_id === f.camera_id) && alertInArea(a, area);
}

async function loadAlerts() {
  const f = filters(), area = areaFilter();
  const states = f.state === "open" ? OPEN : [f.state];
  const pages = await Promise.all(states.map((st) => {
    const q = new URLSearchParams({ limit: "200" });
    if (f.type) q.set("type", f.type);
    if (st) q.set("state", st);
    if (f.camera_id) q.set("camera_id", f.camera_id);
    if (area.district) q.set("district", area.district);
    return api("/alerts?" + q);
  }));
  S.alerts.clear();
  for (const p of pages) for (const a of p.items) S.alerts.set(a.id, a);
  renderAlerts();
  renderPins();
  loadStats().catch(() => {});
}

async function loadStats() {
  S.stats = await api("/alerts/stats");
  renderStats();
}

function renderStats() {
  const s = S.stats;
  if (!s) return;
  $("#stats").replaceChildren(tf("stats.line", { new: s.open.new ?? 0, acknowledged: s.open.acknowledged ?? 0,
    dispatched: s.open.dispatched ?? 0, breaches: s.sla_breaches }));
  const n = s.open.new ?? 0;
  document.title = n > 0 ? t("app.title_count", { n, title: t("app.title") }) : t("app.title");
}

["#f-type", "#f-state"].forEach((sel) => $(sel).addEventListener("change", () => loadAlerts().catch((e) => toast(errText(e)))));
$("#f-camera").addEventListener("change", () => loadAlerts().catch((e) => toast(errText(e))));
$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadAlerts().catch((e) => toast(errText(e))); });

function slaFrag(a, now = Date.now() / 1000) {
  if (!OPEN.includes(a.state)) return document.createTextNode(t("sla.closed"));
  const left = a.due_at - now;
  if (left <= 0 || a.breached) return document.createTextNode(t("sla.overdue"));
  const p = (x) => String(Math.floor(x)).padStart(2, "0");
  return tf("sla.left", { h: Math.floor(left / 3600), m: p((left % 3600) / 60), s: p(left % 60) });
}
const overdue = (a) => OPEN.includes(a.state) && (a.breached || a.due_at <= Date.now() / 1000);

function slaEl(a, cls = "sla") {
  return h("span", { class: cls + (overdue(a) ? " overdue" : ""), "data-alert": a.id }, slaFrag(a));
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function overlay(boxes, zone) {
  const svg = svgEl("svg", { viewBox: "0 0 1 1", preserveAspectRatio: "none" });
  if (zone && zone.polygon?.length) svg.append(svgEl("polygon", { class: "zone", points: zone.polygon.map((p) => p.join(",")).join(" ") }));
  for (const [x1, y1, x2, y2] of boxes || []) svg.append(svgEl("rect", { class: "box", x: x1, y: y1, width: x2 - x1, height: y2 - y1 }));
  return svg;
}

function thumb(a) {
  const box = h("div", { class: "thumb" });
  if (a.snapshot_url) box.append(h("img", { src: a.snapshot_url, alt: "", loading: "lazy" }));
  box.append(overlay(a.boxes));
  return box;
}

function draftInput(id, field, placeholder) {
  const key = `${id}/${field}`;
  const el = h("input", { class: field, placeholder, oninput: () => drafts.set(key, el.value), onclick: (ev) => ev.stopPropagation() });
  el.value = drafts.get(key) || "";
  return el;
}

function alertItem(a) {
  const canAct = isOperator();
  const note = draftInput(a.id, "note", t("alerts.note"));
  const acts = (canAct ? ACTIONS[a.state] || [] : []).map((act) =>
    h("button", { class: SHORT[act], type: "button", onclick: (ev) => {
      ev.stopPropagation();
      if (act === "dispatch") { select(a.id); openDetail(a.id, { focusWorker: true }); } else act_(a.id, act, note.value);
    } }, t(`action.${act}`)));
  const sel = a.id === S.selected;
  return h("li", { class: `alert state-${a.state}${sel ? " selected" : ""}`, "data-id": a.id, role: "option",
                   "aria-selected": String(sel), onclick: () => { select(a.id); openDetail(a.id); } },
    thumb(a),
    h("div", { class: "body" },
      h("div", { class: "title" }, h("span", { class: "type" }, label("type", a.type)), d(camName(a.camera_id), "cam")),
      h("div", { class: "meta" }, d(fmtTime(a.started_at), "when"), d(areaPath(a.grid_id), "where"),
        a.count ? h("span", {}, tf("alerts.count", { n: a.count })) : null),
      h("div", { class: "line" }, h("span", { class: "state" }, label("state", a.state)), slaEl(a)),
      a.dispatched_to ? h("div", { class: "meta" }, tf("alerts.worker", { name: workerName(a.dispatched_to) })) : null,
      h("div", { class: "actions" }, acts.length ? [note, ...acts] : [],
        a.clip_url && canAct ? h("button", { class: "play-clip", type: "button",
          onclick: (ev) => { ev.stopPropagation(); play(a); } }, t("alerts.play_clip")) : null),
      h("div", { class: "error", role: "alert" })));
}

function visibleAlerts() {
  const f = filters(), area = areaFilter();
  return [...S.alerts.values()].filter((a) => matches(a, f, area)).sort((x, y) => (x.id < y.id ? 1 : -1)).slice(0, 200);
}

function renderAlerts() {
  const list = visibleAlerts();
  const focused = document.activeElement?.closest?.("li[data-id]") ? document.activeElement : null;
  const refocus = focused && [focused.closest("li").dataset.id, focused.className];
  $("#alerts").replaceChildren(...list.map(alertItem));
  $("#alerts-empty").hidden = list.length > 0;
  if (refocus) document.querySelector(`li[data-id="${CSS.escape(refocus[0])}"] input.${refocus[1]}`)?.focus();
}

async function act_(id, action, note, worker) {
  const body = action === "dispatch" ? { worker, note } : { note };
  try {
    const a = await api(`/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(body) });
    drafts.delete(`${id}/note`); drafts.delete(`${id}/worker`); drafts.delete(`${id}/dnote`);
    upsert(a);
    renderAlerts();
    if (S.detailId === id) renderDetail(a);
    renderPins();
    loadStats().catch(() => {});
    return a;
  } catch (e) {
    const where = document.querySelector(`li[data-id="${CSS.escape(id)}"] .error`);
    if (where) where.textContent = errText(e);
    if (S.detailId === id) $("#d-error").textContent = errText(e);
    else if (!where) toast(errText(e));
    return null;
  }
}

function upsert(a) {
  const { zone, event, ...rest } = a;
  if (zone !== undefined) S.zones.set(a.id, zone);
  S.alerts.set(a.id, rest);
}

function play(a) {
  openDetail(a.id);
  const v = $("#player");
  if (v.dataset.alert !== a.id) { v.src = a.clip_url; v.dataset.alert = a.id; }
  $("#clip-box").hidden = false;
  v.play().catch(() => {});
}

setInterval(() => {
  const now = Date.now() / 1000;
  for (const el of $$(".sla[data-alert], .sla-big[data-alert]")) {
    const a = S.alerts.get(el.dataset.alert);
    if (!a) continue;
    el.replaceChildren(slaFrag(a, now));
    el.classList.toggle("overdue", overdue(a));
  }
  const bar = $("#d-sla-bar");
  if (bar && S.alerts.has(bar.dataset.alert)) setSlaBar(bar, S.alerts.get(bar.dataset.alert));
  $("#clock").textContent = `${fmtClock(now)} ${timeZone()}`;
}, 1000);

let pending = null; // a burst of events renders once per 50 ms; stats at most once a second, the last one always
let statsTimer = null, statsAt = 0;
function scheduleRender() {
  if (!pending) {
    pending = setTimeout(() => { pending = null; renderAlerts(); renderPins(); }, 50);
  }
  if (!statsTimer) {
    statsTimer = setTimeout(() => { statsTimer = null; statsAt = Date.now(); loadStats().catch(() => {}); },
                            Math.max(0, 1000 - (Date.now() - statsAt)));
  }
}

// ---------------------------------------------------------------- keyboard: j/k or arrows move, a acknowledges, Enter opens
function renderKeysHint() {
  const k = (x) => h("kbd", { "data-d": "" }, x);
  $("#keys-hint").replaceChildren(tf("keys.hint", { next: k("j"), prev: k("k"), ack: k("a"), open: k("Enter"), close: k("Esc") }));
}

function select(id, { scroll = false } = {}) {
  S.selected = id;
  for (const li of $$("#alerts li.selected")) { li.classList.remove("selected"); li.setAttribute("aria-selected", "false"); }
  const li = id && document.querySelector(`#alerts li[data-id="${CSS.escape(id)}"]`);
  if (li) { li.classList.add("selected"); li.setAttribute("aria-selected", "true"); if (scroll) li.scrollIntoView({ block: "nearest" }); }
}

function move(dir) {
  const ids = $$("#alerts li[data-id]").map((li) => li.dataset.id);
  if (!ids.length) return;
  const i = ids.indexOf(S.selected);
  const next = i < 0 ? (dir > 0 ? 0 : ids.length - 1) : Math.max(0, Math.min(ids.length - 1, i + dir));
  select(ids[next], { scroll: true });
  if (S.detailId) openDetail(ids[next]);
}

document.addEventListener("keydown", (ev) => {
  if ($("#main-view").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tgt = ev.target;
  const typing = (tgt.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(tgt.type)) ||
    ["TEXTAREA", "SELECT"].includes(tgt.tagName) || tgt.isContentEditable;
  if (typing) {
    if (ev.key === "Escape") tgt.blur();
    return;
  }
  if (tgt.tagName === "BUTTON" && (ev.key === "Enter" || ev.key === " ")) return;
  switch (ev.key) {
    case "j": case "ArrowDown": move(1); break;
    case "k": case "ArrowUp": move(-1); break;
    case "a": {
      const a = S.selected && S.alerts.get(S.selected);
      if (!a) { toast(t("keys.nothing_selected")); break; }
      if (!isOperator()) { toast(t("err.forbidden")); break; }
      if (a.state !== "new") { toast(t("keys.cannot_ack")); break; }
      act_(a.id, "acknowledge", drafts.get(`${a.id}/note`) || "");
      break;
    }
    case "Enter": case "o": if (S.selected) openDetail(S.selected); break;
    case "Escape": closeDrawer(); break;
    default: return;
  }
  ev.preventDefault();
});

// ---------------------------------------------------------------- alert detail
$("#drawer-close").addEventListener("click", () => closeDrawer());

function closeDrawer() {
  $("#drawer").hidden = true;
  S.detailId = null;
  S.cameraId = null;
  camLive?.stop();
  const v = $("#player");
  v.pause(); v.removeAttribute("src"); delete v.dataset.alert; v.load();
  $("#clip-box").hidden = true;
}

async function openDetail(id, { focusWorker = false } = {}) {
  S.detailId = id;
  S.cameraId = null;
  camLive?.stop();
  $("#drawer").hidden = false;
  $("#camera-detail").hidden = true;
  $("#alert-detail").hidden = false;
  if (S.alerts.has(id)) renderDetail(S.alerts.get(id));
  try {
    const a = await api(`/alerts/${encodeURIComponent(id)}`);
    upsert(a);
    if (S.detailId === id) renderDetail(S.alerts.get(id));
  } catch (e) { toast(errText(e)); }
  if (focusWorker) $("#d-worker")?.focus();
}

function setSlaBar(bar, a) {
  const total = Math.max(1, a.due_at - a.started_at);
  const used = Math.min(1, Math.max(0, (Date.now() / 1000 - a.started_at) / total));
  bar.firstChild.style.width = `${(100 * (OPEN.includes(a.state) ? used : 0)).toFixed(1)}%`;
  bar.classList.toggle("late", used > 0.8);
}

function fact(key, value) { return [h("dt", {}, t(key)), h("dd", {}, value)]; }

function workerSelect(a) {
  const key = `${a.id}/worker`;
  const here = S.workers.filter((w) => a.grid_id && w.grids.includes(a.grid_id));
  const rest = S.workers.filter((w) => !here.includes(w));
  const opt = (w) => option(w.id, `${localName(w.name)} (${w.id})`, true);
  const sel = h("select", { id: "d-worker", onchange: () => drafts.set(key, sel.value) },
    option("", t("detail.choose_worker")),
    here.length ? h("optgroup", { label: t("detail.workers_here") }, here.map(opt)) : null,
    h("optgroup", { label: t("detail.workers_all") }, rest.map(opt)));
  sel.value = drafts.get(key) || (here[0]?.id ?? "");
  if (sel.value) drafts.set(key, sel.value);
  return sel;
}

function renderDetail(a) {
  const active = document.activeElement;  // a live update must not take the note out from under the typing
  const refocus = active && $("#alert-detail").contains(active) && active.id ?
    [active.id, active.selectionStart ?? null, active.selectionEnd ?? null] : null;
  const zone = S.zones.get(a.id);
  const canAct = isOperator();
  const acts = canAct ? ACTIONS[a.state] || [] : [];
  const noteKey = `${a.id}/dnote`;
  const note = h("input", { id: "d-note", placeholder: t("alerts.note"), oninput: () => drafts.set(noteKey, note.value) });
  note.value = drafts.get(noteKey) || "";
  const worker = a.state === "acknowledged" && canAct ? workerSelect(a) : null;
  const buttons = acts.map((act) => h("button", { id: `d-${act}`, class: SHORT[act], type: "button", onclick: async () => {
    if (act === "dispatch" && !$("#d-worker").value) { $("#d-error").textContent = t("detail.choose_worker"); return; }
    await act_(a.id, act, note.value, act === "dispatch" ? $("#d-worker").value : undefined);
  } }, t(`action.${act}`)));

  const snap = h("figure", { class: "snap" },
    a.snapshot_url ? h("img", { src: a.snapshot_url, alt: "" }) : h("div", { class: "no-snap" }, t("detail.no_snapshot")),
    overlay(a.boxes, zone),
    ...(a.boxes || []).map(([x1, y1, , , lab, score]) => {
      const tag = h("span", { class: "box-label" }, label("box", lab), d(score.toFixed(2)));
      tag.style.left = `${(100 * x1).toFixed(2)}%`; tag.style.top = `${(100 * y1).toFixed(2)}%`;
      return tag;
    }));
  const legend = h("p", { class: "muted small legend-snap" },
    h("span", { class: "key-box" }, tf("detail.boxes", { n: (a.boxes || []).length })),
    zone ? h("span", { class: "key-zone" }, tf("detail.zone", { name: zone.name || zone.id }))
      : a.type === "camera_offline" ? null : h("span", {}, t("detail.no_zone")));
  const onset = a.onset_snapshot_url ? h("figure", { class: "onset" }, h("img", { src: a.onset_snapshot_url, alt: "" }),
    h("figcaption", { class: "muted small" }, t("detail.onset"))) : null;

  const bar = h("div", { id: "d-sla-bar", class: "sla-bar", "data-alert": a.id }, h("span"));
  setSlaBar(bar, a);
  const grid = S.grid.get(a.grid_id);
  const facts = h("dl", { class: "facts" },
    fact("detail.camera", h("span", {}, d(camName(a.camera_id)), " ", d(a.camera_id, "muted"))),
    fact("detail.area", d(areaPath(a.grid_id))),
    fact("detail.grid", h("span", {}, d(grid ? localName(grid.g.name || grid.g.id) : (a.grid_id || "")),
      grid ? [" ", h("span", { class: "muted" }, label("category", grid.g.category))] : null)),
    fact("detail.started", d(fmtTime(a.started_at))),
    fact("detail.updated", d(fmtTime(a.updated_at))),
    fact("detail.ended", a.ended_at ? d(fmtTime(a.ended_at)) : t("detail.ongoing")),
    fact("detail.score", d(a.score.toFixed(2))),
    a.count ? fact("detail.count", d(a.count)) : null,
    a.detail ? fact("detail.reason", label(a.type === "camera_offline" ? "reason" : "tamper", a.detail)) : null,
    a.dispatched_to ? fact("detail.dispatched_to", d(workerName(a.dispatched_to))) : null);

  const history = h("table", { class: "history" },
    h("thead", {}, h("tr", {}, h("th", {}, t("history.when")), h("th", {}, t("history.who")), h("th", {}, t("history.what")),
      h("th", {}, t("history.note")))),
    h("tbody", {}, (a.history || []).map((e) => h("tr", { "data-action": e.action },
      h("td", {}, d(fmtTime(e.at))),
      h("td", {}, e.actor === "system" ? t("actor.system") : d(e.actor)),
      h("td", {}, label("history", e.action),
        e.action === "dispatch" && a.dispatched_to ? [" ", tf("history.to", { name: workerName(a.dispatched_to) })] : null),
      h("td", {}, d(e.note))))));

  fill($("#alert-detail"),
    h("div", { class: "d-head" }, h("h2", {}, label("type", a.type)), h("span", { class: `state badge state-${a.state}` }, label("state", a.state))),
    snap, legend, onset,
    h("div", { class: "sla-box" }, h("div", {}, h("span", { class: "muted" }, t("detail.sla")), " ", slaEl(a, "sla-big")), bar,
      h("div", { class: "muted small" }, tf("detail.due", { time: fmtTime(a.due_at) }))),
    facts,
    acts.length ? h("div", { class: "d-actions" }, note, worker, buttons) : null,
    h("p", { id: "d-error", class: "error", role: "alert" }),
    h("div", { class: "d-links" },
      h("button", { type: "button", id: "d-camera", onclick: () => openCamera(a.camera_id) }, t("detail.open_camera")),
      h("button", { type: "button", id: "d-to-wall", onclick: () => { assignTile(a.camera_id, a); toast(t("wall.added")); } }, t("detail.to_wall"))),
    h("h3", {}, t("detail.history")), history);

  if (refocus) {
    const el = document.getElementById(refocus[0]);
    el?.focus();
    if (el && refocus[1] !== null && el.setSelectionRange) el.setSelectionRange(refocus[1], refocus[2]);
  }
  const clip = $("#clip-box"), v = $("#player");
  if (a.clip_url && canAct) {
    clip.hidden = false;
    if (v.dataset.alert !== a.id) { v.preload = "none"; v.src = a.clip_url; v.dataset.alert = a.id; }
  } else {
    clip.hidden = true;
    if (v.dataset.alert && v.dataset.alert !== a.id) { v.pause(); v.removeAttribute("src"); delete v.dataset.alert; }
  }
}

// ---------------------------------------------------------------- live view (WHEP; the latest snapshot when there is none)
class LiveView {
  constructor(box) {
    this.box = box;
    this.video = h("video", { class: "live", autoplay: true, playsinline: true, muted: true });
    this.video.muted = true;
    this.img = h("img", { class: "fallback", alt: "" });
    this.img.hidden = true;
    this.note = h("p", { class: "note" });
    box.replaceChildren(this.video, this.img, this.note);
    this.gen = 0;
    this.session = null;
    this.noteArgs = null;
  }

  setNote(key, params, why) {
    this.noteArgs = key ? [key, params, why] : null;
    this.note.replaceChildren(...(why ? [h("span", { class: "why" }, t(`live.why_${why}`)), " "] : []), key ? tf(key, params) : "");
    this.note.hidden = !key;
  }

  relabel() { if (this.noteArgs) this.setNote(...this.noteArgs); }

  async start(cameraId, alert) {
    this.stop();
    const gen = this.gen;
    this.cameraId = cameraId;
    this.alert = alert || null;
    this.box.dataset.mode = "connecting";
    this.video.hidden = false; this.img.hidden = true;
    this.setNote("live.connecting");
    try {
      const s = await playWhep(this.video, cameraId, { onFail: () => { if (gen === this.gen) this.fallback("failed"); } });
      if (gen !== this.gen) { s.close(); return; }
      this.session = s;
      this.box.dataset.mode = "live";
      this.setNote(null);
    } catch (e) {
      if (gen === this.gen) this.fallback([400, 404, 415, 422, 429, 503].includes(e.status) ? e.status : "other");
    }
  }

  async fallback(why) {
    const gen = this.gen;
    this.session?.close();
    this.session = null;
    this.video.hidden = true;
    let snap = this.alert?.snapshot_url ? this.alert : null;
    if (!snap) {
      try {
        const page = await api(`/alerts?camera_id=${encodeURIComponent(this.cameraId)}&limit=10`);
        snap = page.items.find((x) => x.snapshot_url) || null;
      } catch { snap = null; }
    }
    if (gen !== this.gen) return;
    if (snap) {
      this.img.src = snap.snapshot_url;
      this.img.hidden = false;
      this.box.dataset.mode = "snapshot";
      this.setNote("live.snapshot_note", { time: fmtTime(snap.started_at) }, why);
    } else {
      this.img.hidden = true;
      this.box.dataset.mode = "none";
      this.setNote("live.unavailable", {}, why);
    }
  }

  stop() {
    this.gen++;
    this.session?.close();
    this.session = null;
    this.video.srcObject = null;
    this.box.dataset.mode = "idle";
  }
}

// ---------------------------------------------------------------- camera panel
let camLive = null;

function camState(c) { return c?.status ? c.status.state : "never"; }

async function openCamera(id) {
  S.cameraId = id;
  S.detailId = null;
  $("#drawer").hidden = false;
  $("#alert-detail").hidden = true;
  $("#clip-box").hidden = true;
  $("#camera-detail").hidden = false;
  renderCameraPanel(id, { restartLive: true });
  try {
    const page = await api(`/alerts?camera_id=${encodeURIComponent(id)}&limit=10`);
    for (const a of page.items) if (!S.alerts.has(a.id)) S.alerts.set(a.id, a);
    if (S.cameraId === id) renderRecent(id, page.items);
  } catch (e) { toast(errText(e)); }
}

function renderCameraPanel(id, { restartLive }) {
  const c = S.camById.get(id);
  if (!c) return;
  const st = camState(c);
  const liveBox = restartLive || !camLive ? h("div", { class: "live-box" }) : camLive.box;
  const known = S.camRecent?.id === id ? S.camRecent.items : null;
  $("#camera-detail").replaceChildren(
    h("div", { class: "d-head" }, h("h2", {}, d(localName(c.name))), h("span", { class: `badge st-${st}` }, label("camstate", st))),
    h("dl", { class: "facts" },
      fact("cam.id", d(c.id)),
      fact("cam.kind", label("kind", c.kind)),
      fact("detail.area", d(areaPath(c.grids[0]))),
      fact("cam.grid", d(c.grids.join(", "))),
      c.status?.reason ? fact("cam.reason", label("reason", c.status.reason)) : null,
      c.status ? fact("cam.fps", d(c.status.fps.toFixed(1))) : null,
      c.status?.last_frame_at ? fact("cam.last_frame", d(fmtTime(c.status.last_frame_at))) : null,
      fact("cam.location", d(`${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}`))),
    h("h3", {}, t("cam.live")), liveBox,
    h("div", { class: "d-links" },
      h("button", { type: "button", id: "c-live", onclick: () => camLive.start(c.id) }, t("cam.restart_live")),
      h("button", { type: "button", id: "c-to-wall", onclick: () => { assignTile(c.id); toast(t("wall.added")); } }, t("detail.to_wall"))),
    h("h3", {}, t("cam.recent")), h("ul", { id: "c-recent", class: "recent" }));
  if (restartLive || !camLive) {
    camLive?.stop();
    camLive = new LiveView(liveBox);
    camLive.start(c.id);
  } else camLive.relabel();
  if (known) renderRecent(id, known);
}

function renderRecent(id, items) {
  S.camRecent = { id, items };
  const ul = $("#c-recent");
  if (!ul) return;
  if (!items.length) { ul.replaceChildren(h("li", { class: "muted" }, t("cam.no_alerts"))); return; }
  ul.replaceChildren(...items.map((a) => h("li", { "data-id": a.id, onclick: () => { select(a.id); openDetail(a.id); } },
    h("span", { class: "type" }, label("type", a.type)), d(fmtTime(a.started_at)),
    h("span", { class: `state state-${a.state}` }, label("state", a.state)))));
}

// ---------------------------------------------------------------- video wall (1, 4 or 9 tiles; follow alerts)
function buildWall() {
  const n = S.wall.size;
  const wall = $("#wall");
  wall.className = `wall size-${n}`;
  $$(".wall-size").forEach((b) => b.classList.toggle("active", Number(b.dataset.size) === n));
  $("#wall-follow").checked = S.wall.follow;
  for (const tile of S.wall.tiles.slice(n)) tile.view?.stop();
  const tiles = [];
  for (let i = 0; i < n; i++) {
    const old = S.wall.tiles[i];
    if (old) { tiles.push(old); continue; }
    const box = h("div", { class: "live-box" });
    const head = h("div", { class: "tile-head" });
    const el = h("div", { class: "tile", "data-index": i }, head, box);
    tiles.push({ el, head, box, view: null, cameraId: null, alert: null, at: 0 });
  }
  S.wall.tiles = tiles;
  wall.replaceChildren(...tiles.map((x) => x.el));
  renderWallHeads();
}

function renderWallHeads() {
  for (const [i, tile] of S.wall.tiles.entries()) {
    if (!tile.cameraId) {
      tile.el.removeAttribute("data-camera");
      tile.head.replaceChildren(h("span", { class: "muted" }, t("wall.empty")));
      if (!tile.view) tile.box.replaceChildren(h("p", { class: "muted empty" }, t("wall.empty_hint")));
      continue;
    }
    tile.el.dataset.camera = tile.cameraId;
    fill(tile.head,
      d(camName(tile.cameraId), "cam"),
      tile.alert ? h("span", { class: "tile-alert" }, label("type", tile.alert.type)) : null,
      h("button", { type: "button", class: "tile-close", onclick: () => clearTile(i) }, t("wall.remove")));
  }
}

function clearTile(i) {
  const tile = S.wall.tiles[i];
  tile.view?.stop();
  tile.view = null; tile.cameraId = null; tile.alert = null;
  renderWallHeads();
}

function assignTile(cameraId, alert) {
  let tile = S.wall.tiles.find((x) => x.cameraId === cameraId);
  if (tile) {
    if (alert) { tile.alert = alert; renderWallHeads(); if (tile.view?.box.dataset.mode === "snapshot") tile.view.start(cameraId, alert); }
    tile.el.classList.remove("flash"); void tile.el.offsetWidth; tile.el.classList.add("flash");
    return tile;
  }
  tile = S.wall.tiles.find((x) => !x.cameraId) || [...S.wall.tiles].sort((x, y) => x.at - y.at)[0];
  tile.view?.stop();
  tile.cameraId = cameraId;
  tile.alert = alert || null;
  tile.at = Date.now();
  tile.view = new LiveView(tile.box);
  renderWallHeads();
  tile.el.classList.add("flash");
  tile.view.start(cameraId, alert);
  return tile;
}

$$(".wall-size").forEach((b) => b.addEventListener("click", () => {
  S.wall.size = Number(b.dataset.size);
  localStorage.setItem(PREF("wall.size"), String(S.wall.size));
  buildWall();
}));
$("#wall-follow").addEventListener("change", (ev) => {
  S.wall.follow = ev.target.checked;
  localStorage.setItem(PREF("wall.follow"), S.wall.follow ? "1" : "0");
});
$("#wall-clear").addEventListener("click", () => S.wall.tiles.forEach((_, i) => clearTile(i)));

// ---------------------------------------------------------------- new alerts: sound, notification, title
let audio = null;
function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [i, f] of [880, 660].entries()) {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, now + i * 0.18);
      g.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.16);
      o.connect(g).connect(audio.destination);
      o.start(now + i * 0.18); o.stop(now + i * 0.18 + 0.17);
    }
    return true;
  } catch { return false; }
}

function renderPrefs() {
  for (const [id, on] of [["#opt-sound", S.prefs.sound], ["#opt-notify", S.prefs.notify]]) {
    $(id).setAttribute("aria-pressed", String(on));
    $(id).classList.toggle("on", on);
  }
}

function savePrefs() {
  localStorage.setItem(PREF("sound"), S.prefs.sound ? "1" : "0");
  localStorage.setItem(PREF("notify"), S.prefs.notify ? "1" : "0");
  renderPrefs();
}

$("#opt-sound").addEventListener("click", () => {
  S.prefs.sound = !S.prefs.sound;
  if (S.prefs.sound) chime(); // created inside the click, so the browser lets it play later
  savePrefs();
});

$("#opt-notify").addEventListener("click", async () => {
  if (S.prefs.notify) { S.prefs.notify = false; savePrefs(); return; }
  if (!("Notification" in window)) { toast(t("notify.unsupported")); return; }
  const perm = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
  if (perm !== "granted") { toast(t("notify.denied")); return; }
  S.prefs.notify = true;
  savePrefs();
});

function onNewAlert(a) {
  let notified = false;
  if (S.prefs.notify && "Notification" in window && Notification.permission === "granted") {
    try {
      const n = new Notification(t("notify.title", { type: t(`type.${a.type}`) }),
        { body: t("notify.body", { camera: camName(a.camera_id), area: areaPath(a.grid_id), time: fmtTime(a.started_at) }),
          tag: a.id, lang: currentLang() });
      n.onclick = () => { window.focus(); select(a.id); openDetail(a.id); };
      notified = true;
    } catch { notified = false; }
  }
  const sounded = S.prefs.sound ? chime() : false;
  if (S.wall.follow) assignTile(a.camera_id, a);
  window.dispatchEvent(new CustomEvent("camerahub:new-alert", { detail: { id: a.id, notified, sounded } }));
}

// ---------------------------------------------------------------- live feed (EventSource resumes with Last-Event-ID)
function setFeed(key) {
  S.feedKey = key;
  $("#feed-state").textContent = t(key);
  $("#feed-state").classList.toggle("live", key === "feed.live");
}

function openFeed() {
  if (S.feed) S.feed.close();
  S.feed = new EventSource(API + "/feed");
  S.feed.onopen = () => setFeed("feed.live");
  S.feed.onerror = () => setFeed("feed.reconnecting");
  S.feed.addEventListener("reset", () => loadAlerts().catch(() => {})); // missed events were trimmed
  S.feed.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    const kind = a.event;
    upsert(a);
    if (kind === "created") onNewAlert(S.alerts.get(a.id));
    if (S.detailId === a.id) renderDetail(S.alerts.get(a.id));
    scheduleRender();
  });
}

// ---------------------------------------------------------------- cameras: map, table
async function loadCameras() {
  const res = await api("/cameras");
  S.cameras = res.items;
  S.camById = new Map(res.items.map((c) => [c.id, c]));
  S.map.setCameras(res.items.map((c) => ({ id: c.id, name: c.name, lat: c.lat, lon: c.lon, kind: c.kind, state: camState(c) })));
  if (!S.areasDrawn) { renderAreasOnMap(); S.areasDrawn = true; }
  renderCameraViews();
  renderPins();
}

function renderAreasOnMap() {
  if (!S.map || !S.cameras.length || S.city.map.tile_url) return;
  const by = new Map();
  for (const c of S.cameras) {
    const dist = S.grid.get(c.grids[0])?.d;
    if (!dist) continue;
    if (!by.has(dist.id)) by.set(dist.id, { name: localName(dist.name), points: [] });
    by.get(dist.id).points.push([c.lat, c.lon]);
  }
  S.map.setAreas([...by.values()]);
}

function renderCameraViews() {
  if (!S.cameras.length) return;
  const area = areaFilter();
  const shown = S.cameras.filter((c) => cameraMatches(c, area));
  const ids = new Set(shown.map((c) => c.id));
  S.map.filter((id) => ids.has(id));
  const counts = Object.fromEntries(CAM_STATES.map((s) => [s, 0]));
  for (const c of shown) counts[camState(c)]++;
  const legend = (cls) => CAM_STATES.map((s) => h("span", { class: `${cls} st-${s}`, "data-state": s },
    h("i", { class: "dot" }), label("camstate", s), d(counts[s], "n")));
  $("#map-legend").replaceChildren(h("span", { class: "legend-total" }, tf("map.total", { n: shown.length })), ...legend("legend-item"));
  $("#camera-counts").replaceChildren(...legend("legend-item"));
  if (S.tab === "cameras") renderCameraTable(shown);
}

function renderCameraTable(shown) {
  $("#cameras").replaceChildren(...shown.map((c) => {
    const st = camState(c);
    const a = S.grid.get(c.grids[0]);
    return h("tr", { "data-camera": c.id, onclick: () => openCamera(c.id) },
      h("td", {}, d(c.id), " ", d(localName(c.name), "muted")),
      h("td", {}, d(a ? localName(a.d.name) : (c.district || ""))),
      h("td", {}, d(a ? localName(a.s.name) : "")),
      h("td", {}, d(c.grids.join(", "))),
      h("td", { class: "st-" + st }, label("camstate", st)),
      h("td", {}, c.status?.reason ? label("reason", c.status.reason) : ""),
      h("td", {}, c.status ? d(c.status.fps.toFixed(1)) : ""),
      h("td", {}, c.status?.last_frame_at ? d(fmtTime(c.status.last_frame_at)) : ""));
  }));
}

function renderPins() {
  if (!S.map) return;
  if (!$("#map-pins").checked) { S.map.setPins([]); return; }
  const area = areaFilter();
  const open = [...S.alerts.values()].filter((a) => OPEN.includes(a.state) && alertInArea(a, area));
  S.map.setPins(open.map((a) => ({ id: a.id, camera_id: a.camera_id, state: a.state,
    title: `${t(`type.${a.type}`)} ${camName(a.camera_id)} ${fmtTime(a.started_at)}` })));
}
$("#map-pins").addEventListener("change", renderPins);
$("#map-zoom-in").addEventListener("click", () => S.map.zoom(1.5));
$("#map-zoom-out").addEventListener("click", () => S.map.zoom(1 / 1.5));
$("#map-fit").addEventListener("click", () => S.map.fit());

setInterval(() => {
  if (!$("#main-view").hidden && (S.tab === "map" || S.tab === "cameras" || S.cameraId)) loadCameras().catch(() => {});
}, 15000);

// ---------------------------------------------------------------- coverage
async function loadCoverage() {
  S.coverage = await api("/coverage");
  renderCoverage(S.coverage);
}

function renderCoverage(r) {
  const pct = (x) => `${(100 * x).toFixed(1)} %`;
  $("#coverage-city").replaceChildren(tf("cov.city", { covered: r.city.covered, grids: r.city.grids, ratio: pct(r.city.ratio),
    target: `${(100 * r.city.target).toFixed(0)} %` }));
  $("#coverage").replaceChildren(...r.districts.map((x) => {
    const bar = h("span", { class: "bar" + (x.ratio < x.target ? " below" : "") });
    bar.style.width = `${Math.round(100 * x.ratio)}px`;
    return h("tr", { "data-district": x.unit },
      h("td", {}, d(localName(x.name || x.unit))), h("td", {}, d(`${x.covered}/${x.grids}`)),
      h("td", {}, bar, d(pct(x.ratio))), h("td", {}, d(`${(100 * x.target).toFixed(0)} %`)));
  }));
}

// ---------------------------------------------------------------- boot
async function boot() {
  try { await loadLang(pickLang()); } catch { await loadLang("en"); }
  applyStatic();
  fillLangSelects();
  document.title = t("app.title");
  try { await start(); } catch { showLogin(); }
}
boot();

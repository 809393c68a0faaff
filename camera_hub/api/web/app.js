// Camera Hub operator page: plain JS, no build step. All data goes into the DOM as text.
"use strict";
const API = "/api/v1";
const $ = (sel) => document.querySelector(sel);
const alerts = new Map(); // id -> alert
let me = null, feed = null, cameras = [];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

async function api(path, opts = {}) {
  const res = await fetch(API + path, { credentials: "same-origin", ...opts,
    headers: { "Content-Type": "application/json", ...(opts.headers || {}) } });
  if (res.status === 401 && path !== "/auth/login") { showLogin(); throw new Error("not logged in"); }
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new Error(typeof body?.detail === "string" ? body.detail : JSON.stringify(body?.detail));
  return body;
}

// ---------------------------------------------------------------- session
function showLogin() {
  if (feed) { feed.close(); feed = null; }
  $("#main-view").hidden = true; $("#login-view").hidden = false;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/auth/login", { method: "POST",
      body: JSON.stringify({ username: $("#username").value, password: $("#password").value }) });
    $("#password").value = "";
    await start();
  } catch (e) { $("#login-error").textContent = e.message; }
});

$("#logout-btn").addEventListener("click", async () => {
  try { await api("/auth/logout", { method: "POST" }); } finally { showLogin(); }
});

async function start() {
  me = await api("/me");
  $("#who").textContent = `${me.user} (${me.role})`;
  $("#login-view").hidden = true; $("#main-view").hidden = false;
  await loadCameras();
  await loadAlerts();
  openFeed();
  loadCoverage().catch(() => {});
}

// ---------------------------------------------------------------- tabs
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
  document.querySelectorAll(".tab-body").forEach((x) => { x.hidden = x.id !== "tab-" + b.dataset.tab; });
  if (b.dataset.tab === "cameras") loadCameras();
  if (b.dataset.tab === "coverage") loadCoverage();
}));

// ---------------------------------------------------------------- alerts
function filters() {
  return { type: $("#f-type").value, state: $("#f-state").value, district: $("#f-district").value,
           camera_id: $("#f-camera").value.trim() };
}

function matches(a, f) {
  return (!f.type || a.type === f.type) && (!f.state || a.state === f.state) &&
         (!f.district || a.district === f.district) && (!f.camera_id || a.camera_id === f.camera_id);
}

async function loadAlerts() {
  const f = filters();
  const q = new URLSearchParams({ limit: "100" });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const page = await api("/alerts?" + q);
  alerts.clear();
  for (const a of page.items) alerts.set(a.id, a);
  renderAlerts();
  loadStats();
}

async function loadStats() {
  const s = await api("/alerts/stats");
  $("#stats").textContent = `open: ${s.open.new} new · ${s.open.acknowledged} acknowledged · ` +
    `${s.open.dispatched} dispatched · SLA breaches: ${s.sla_breaches}`;
}

["#f-type", "#f-state", "#f-district"].forEach((s) => $(s).addEventListener("change", loadAlerts));
$("#f-camera").addEventListener("change", loadAlerts);
$("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadAlerts(); });

function slaText(a) {
  if (a.state === "resolved" || a.state === "dismissed") return "closed";
  const left = a.due_at - Date.now() / 1000;
  if (left <= 0 || a.breached) return "SLA overdue";
  const hh = Math.floor(left / 3600), mm = Math.floor((left % 3600) / 60), ss = Math.floor(left % 60);
  return `SLA ${hh}h ${String(mm).padStart(2, "0")}m ${String(ss).padStart(2, "0")}s`;
}

function thumb(a) {
  const box = h("div", { class: "thumb" });
  if (a.snapshot_url) box.append(h("img", { src: a.snapshot_url, alt: `snapshot of ${a.id}`, loading: "lazy" }));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 1 1"); svg.setAttribute("preserveAspectRatio", "none");
  for (const [x1, y1, x2, y2, label, score] of a.boxes || []) {
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", x1); r.setAttribute("y", y1); r.setAttribute("width", x2 - x1); r.setAttribute("height", y2 - y1);
    const t = document.createElementNS(ns, "title"); t.textContent = `${label} ${score.toFixed(2)}`; r.append(t);
    svg.append(r);
  }
  box.append(svg);
  return box;
}

const ACTIONS = { new: ["acknowledge", "dismiss"], acknowledged: ["dispatch", "resolve", "dismiss"],
                  dispatched: ["resolve", "dismiss"] };
const SHORT = { acknowledge: "ack", dispatch: "dispatch", resolve: "resolve", dismiss: "dismiss" };

const drafts = new Map(); // "id/field" -> text being typed; survives re-renders caused by live events

function draftInput(id, field, placeholder) {
  const key = `${id}/${field}`;
  const el = h("input", { class: field, placeholder, oninput: () => drafts.set(key, el.value) });
  el.value = drafts.get(key) || "";
  return el;
}

function alertItem(a) {
  const note = draftInput(a.id, "note", "note");
  const worker = draftInput(a.id, "worker", "grid worker id");
  const canAct = me && ["operator", "analyst", "admin"].includes(me.role);
  const acts = (canAct ? ACTIONS[a.state] || [] : []).map((act) =>
    h("button", { class: SHORT[act], type: "button", onclick: () => act_(a.id, act, note.value, worker.value) },
      act[0].toUpperCase() + act.slice(1)));
  const when = new Date(a.started_at * 1000).toLocaleString();
  return h("li", { class: `alert state-${a.state}`, "data-id": a.id },
    thumb(a),
    h("div", { class: "body" },
      h("div", { class: "title" }, `${a.type} · ${a.camera_id} / ${a.zone_id}`, a.count ? ` · ${a.count}` : ""),
      h("div", { class: "meta" }, `${when} · grid ${a.grid_id || "?"} · ${a.district || "?"}`,
        a.dispatched_to ? ` · worker ${a.dispatched_to}` : "", a.ended_at ? " · ended" : ""),
      h("div", {}, h("span", { class: "state" }, a.state), " · ",
        h("span", { class: "sla" + (slaText(a) === "SLA overdue" ? " overdue" : ""), "data-due": a.due_at }, slaText(a))),
      h("div", { class: "actions" }, ...(acts.length ? [note, ...(a.state === "acknowledged" ? [worker] : []), ...acts] : []),
        a.clip_url && canAct ? h("button", { class: "play-clip", type: "button", onclick: () => play(a) }, "▶ Clip") : null),
      h("div", { class: "error", role: "alert" })));
}

function renderAlerts() {
  const f = filters();
  const list = [...alerts.values()].filter((a) => matches(a, f)).sort((x, y) => (x.id < y.id ? 1 : -1)).slice(0, 200);
  const focused = document.activeElement?.closest?.("li[data-id]") ? document.activeElement : null;
  const refocus = focused && [focused.closest("li").dataset.id, focused.className];
  $("#alerts").replaceChildren(...list.map(alertItem));
  if (refocus) document.querySelector(`li[data-id="${CSS.escape(refocus[0])}"] input.${refocus[1]}`)?.focus();
}

async function act_(id, action, note, worker) {
  const body = action === "dispatch" ? { worker, note } : { note };
  try {
    const a = await api(`/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(body) });
    drafts.delete(`${id}/note`); drafts.delete(`${id}/worker`);
    alerts.set(a.id, a); renderAlerts(); loadStats();
  } catch (e) {
    const li = document.querySelector(`li[data-id="${CSS.escape(id)}"] .error`);
    if (li) li.textContent = e.message;
  }
}

function play(a) {
  $("#player-panel").hidden = false;
  $("#player-title").textContent = `${a.type} · ${a.camera_id} · ${new Date(a.started_at * 1000).toLocaleTimeString()}`;
  const v = $("#player");
  v.src = a.clip_url;
  v.play().catch(() => {});
}
$("#player-close").addEventListener("click", () => { const v = $("#player"); v.pause(); v.removeAttribute("src"); $("#player-panel").hidden = true; });

setInterval(() => document.querySelectorAll(".sla[data-due]").forEach((el) => {
  const a = alerts.get(el.closest("li").dataset.id);
  if (a) { el.textContent = slaText(a); el.classList.toggle("overdue", el.textContent === "SLA overdue"); }
}), 1000);

let pending = null; // a burst of events renders once per 50 ms, stats at most once a second
let statsAt = 0;
function scheduleRender() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    renderAlerts();
    if (Date.now() - statsAt > 1000) { statsAt = Date.now(); loadStats().catch(() => {}); }
  }, 50);
}

// ---------------------------------------------------------------- live feed (EventSource resumes with Last-Event-ID)
function openFeed() {
  if (feed) feed.close();
  feed = new EventSource(API + "/feed");
  feed.onopen = () => { $("#feed-state").textContent = "live"; $("#feed-state").classList.add("live"); };
  feed.onerror = () => { $("#feed-state").textContent = "reconnecting…"; $("#feed-state").classList.remove("live"); };
  feed.addEventListener("reset", () => loadAlerts().catch(() => {})); // missed events were trimmed
  feed.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    delete a.event;
    alerts.set(a.id, a);
    scheduleRender();
  });
}

// ---------------------------------------------------------------- cameras and coverage
async function loadCameras() {
  const res = await api("/cameras");
  cameras = res.items;
  $("#camera-counts").textContent = Object.entries(res.states).map(([k, v]) => `${k}: ${v}`).join(" · ");
  const districts = [...new Set(cameras.map((c) => c.district).filter(Boolean))].sort();
  const sel = $("#f-district");
  if (sel.options.length === 1) for (const d of districts) sel.append(h("option", { value: d }, d));
  $("#cameras").replaceChildren(...cameras.map((c) => {
    const st = c.status ? c.status.state : "never";
    const last = c.status && c.status.last_frame_at ? new Date(c.status.last_frame_at * 1000).toLocaleTimeString() : "";
    return h("tr", { "data-camera": c.id }, h("td", {}, `${c.id} ${c.name}`), h("td", {}, c.district || ""),
      h("td", {}, c.grids.join(", ")), h("td", { class: "st-" + st }, st), h("td", {}, c.status ? c.status.reason : ""),
      h("td", {}, c.status ? c.status.fps.toFixed(1) : ""), h("td", {}, last));
  }));
}

async function loadCoverage() {
  const r = await api("/coverage");
  $("#coverage-city").textContent = `City: ${r.city.covered}/${r.city.grids} grids covered ` +
    `(${(100 * r.city.ratio).toFixed(1)} %, target ${(100 * r.city.target).toFixed(0)} %)`;
  $("#coverage").replaceChildren(...r.districts.map((d) => h("tr", { "data-district": d.unit },
    h("td", {}, d.name || d.unit), h("td", {}, `${d.covered}/${d.grids}`),
    h("td", {}, h("span", { class: "bar" + (d.ratio < d.target ? " below" : ""), style: `width:${Math.round(100 * d.ratio)}px` }),
      ` ${(100 * d.ratio).toFixed(1)} %`), h("td", {}, `${(100 * d.target).toFixed(0)} %`))));
}

start().catch(() => showLogin());

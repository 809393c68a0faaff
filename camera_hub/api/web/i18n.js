// UI strings: one catalogue per language (i18n/en.json, i18n/zh-CN.json), nothing hard-coded elsewhere.
// t(key, params) gives a string; tf(key, params) a DOM fragment whose parameters are data spans.
// Data (ids, names from the city config, numbers, times) goes into elements marked data-d.
"use strict";

export const LANGS = { "zh-CN": "中文", en: "English" }; // endonyms: shown as data in every language
const STORE_KEY = "camera-hub.lang";
let cat = {};
let lang = "en";

export function pickLang() {
  const saved = localStorage.getItem(STORE_KEY);
  if (saved && saved in LANGS) return saved;
  for (const l of navigator.languages?.length ? navigator.languages : [navigator.language || "en"]) {
    if (/^zh\b/i.test(l)) return "zh-CN";
    if (/^en\b/i.test(l)) return "en";
  }
  return "en";
}

export async function loadLang(l, { remember = false } = {}) {
  const res = await fetch(`i18n/${l}.json`, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`catalogue ${l}: HTTP ${res.status}`);
  cat = await res.json();
  lang = l;
  document.documentElement.lang = l;
  if (remember) localStorage.setItem(STORE_KEY, l);
}

export const currentLang = () => lang;
export const has = (key) => Object.prototype.hasOwnProperty.call(cat, key);

export function t(key, params) {
  let s = has(key) ? cat[key] : null;
  if (s === null) { console.warn("i18n: no string", key); s = key; }
  return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
}

/** An enum value's label (`type.vending`, `state.new`, ...), or the value itself as data when unknown. */
export function label(prefix, value) {
  const key = `${prefix}.${value}`;
  return has(key) ? document.createTextNode(cat[key]) : d(value);
}

/** A data span: text that is not a UI string. */
export function d(text, cls) {
  const el = document.createElement("span");
  el.setAttribute("data-d", "");
  if (cls) el.className = cls;
  el.textContent = text === null || text === undefined ? "" : String(text);
  return el;
}

/** The catalogue string as DOM: literal parts as text, each {param} as a data span (or the Node given). */
export function tf(key, params = {}) {
  const frag = document.createDocumentFragment();
  const tpl = has(key) ? cat[key] : key;
  for (const part of tpl.split(/(\{\w+\})/)) {
    if (!part) continue;
    const m = /^\{(\w+)\}$/.exec(part);
    if (!m) frag.append(document.createTextNode(part));
    else { const v = params[m[1]]; frag.append(v instanceof Node ? v : d(v)); }
  }
  return frag;
}

/** Fill every data-i18n, data-i18n-placeholder, -title and -aria-label under root. */
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const key = "i18n" + attr.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase());
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.dataset[key]));
  }
}

/** Names in the config are often "Latin 汉字" (Qingshan District 青山区): show the part of the page's language. */
export function localName(name) {
  const m = /^([^\u3400-\u9fff]*?)\s*([\u3400-\u9fff].*)$/.exec(name || "");
  if (!m || !m[1].trim()) return name || "";
  return lang === "zh-CN" ? m[2] : m[1].trim();
}

// ---------------------------------------------------------------- times, in the city's time zone
let zone = "UTC";
let partsFmt = null;
export function setTimeZone(tz) {
  try { partsFmt = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }); zone = tz; }
  catch { partsFmt = null; zone = "UTC"; }
}
export const timeZone = () => zone;

function parts(epochS) {
  const fmt = partsFmt || new Intl.DateTimeFormat("en-CA", { timeZone: "UTC", year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const o = {};
  for (const p of fmt.formatToParts(new Date(epochS * 1000))) o[p.type] = p.value;
  return o;
}

/** "2025-11-27 10:00:00" in the city's zone (language neutral, sortable). */
export function fmtTime(epochS) {
  if (epochS === null || epochS === undefined) return "";
  const p = parts(epochS);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

export function fmtClock(epochS) {
  const p = parts(epochS);
  return `${p.hour}:${p.minute}:${p.second}`;
}

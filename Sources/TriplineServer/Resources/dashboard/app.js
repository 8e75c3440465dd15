// Tripline dashboard: sign-in, API access, view routing and the live alert stream.
import { MapView } from "/assets/map.js";
import { AlertsView } from "/assets/alerts.js";
import { RulesView, BuilderView } from "/assets/rules.js";
import { AuditView } from "/assets/audit.js";

const TOKEN_KEY = "tripline.token";

export const app = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  rules: new Map(), // id -> rule version (with .rule)
  listeners: new Set(), // functions called with each live alert
  recent: [], // recent alerts, newest last
  stream: null,
};
window.__tripline = { app, errors: [] };

export class APIError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls the API with the signed-in token; throws APIError with the server's explanation. */
export async function api(method, path, body, contentType) {
  const headers = { Authorization: `Bearer ${app.token}` };
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") { payload = body; headers["Content-Type"] = contentType || "application/json"; }
    else { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  }
  const res = await fetch(path, { method, headers, body: payload });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    if (res.status === 401 && path !== "/v1/whoami") signOut("Your token is no longer valid; sign in again.");
    throw new APIError(res.status, data);
  }
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function keyText(a) {
  const k = a.key || {};
  if (k.pair) return k.pair.join(" · ");
  return [k.entity, k.zone].filter(Boolean).join(" @ ");
}

export function fmtTime(t) {
  return t ? t.replace("T", " ").replace(".000Z", "Z") : "";
}

/** Which views a role may see. */
const VIEWS = {
  ingest: [],
  auditor: ["map", "alerts", "rules", "audit", "settings"],
  operator: ["map", "alerts", "rules", "builder", "settings"],
  admin: ["map", "alerts", "rules", "builder", "audit", "settings"],
};

const views = {};

async function signIn(token) {
  app.token = token;
  try {
    app.me = await api("GET", "/v1/whoami");
  } catch (e) {
    app.token = null;
    throw e;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  document.getElementById("who").textContent = `${app.me.name || app.me.id} (${app.me.role})`;
  document.getElementById("signout").hidden = false;
  const allowed = VIEWS[app.me.role] || [];
  for (const a of document.querySelectorAll("#nav a")) a.hidden = !allowed.includes(a.dataset.view);
  document.getElementById("nav").hidden = false;
  if (allowed.length === 0) {
    showSignIn(`The ${app.me.role} role may only send events; there is nothing to show it.`);
    return;
  }
  await loadRules();
  openStream();
  route();
}

export function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.token = null;
  app.me = null;
  if (app.stream) { app.stream.close(); app.stream = null; }
  if (views.map) views.map.closeStream();
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("who").textContent = "";
  showSignIn(message || "");
}

function showSignIn(message) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-signin";
  document.getElementById("signin-error").textContent = message || "";
  document.getElementById("token-input").focus();
}

export async function loadRules() {
  const out = await api("GET", "/v1/rules");
  app.rules = new Map(out.rules.map((r) => [r.id, r]));
  return app.rules;
}

function openStream() {
  if (app.stream) app.stream.close();
  const after = app.recent.length ? app.recent[app.recent.length - 1].id : 0;
  const es = new EventSource(`/v1/alerts/stream?after=${after}&access_token=${encodeURIComponent(app.token)}`);
  es.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    app.recent.push(a);
    if (app.recent.length > 5000) app.recent.splice(0, app.recent.length - 5000);
    for (const f of app.listeners) f(a);
  });
  app.stream = es;
}

function route() {
  if (!app.me) return showSignIn("");
  const allowed = VIEWS[app.me.role] || [];
  let name = (location.hash.match(/^#\/(\w+)/) || [])[1] || allowed[0];
  if (!allowed.includes(name)) name = allowed[0];
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const view = views[name];
  if (view) view.show().catch((e) => report(e));
}

export function report(e) {
  const box = document.getElementById("map-status");
  if (box) box.textContent = e.message || String(e);
}

window.addEventListener("hashchange", route);

document.getElementById("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = document.getElementById("token-input").value.trim();
  try {
    await signIn(token);
    document.getElementById("token-input").value = "";
  } catch (e) {
    showSignIn(e.status === 401 ? "That token is not valid." : e.message);
  }
});
document.getElementById("signout").addEventListener("click", () => signOut(""));

views.map = new MapView();
views.alerts = new AlertsView();
views.rules = new RulesView();
views.builder = new BuilderView();
views.audit = new AuditView();
views.settings = {
  async show() {
    document.getElementById("tile-url").value = localStorage.getItem("tripline.tileUrl") || "";
  },
};
document.getElementById("settings-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const url = document.getElementById("tile-url").value.trim();
  if (url) localStorage.setItem("tripline.tileUrl", url); else localStorage.removeItem("tripline.tileUrl");
  views.map.tiles.clear();
});

if (app.token) signIn(app.token).catch(() => signOut("Sign in again."));
else showSignIn("");

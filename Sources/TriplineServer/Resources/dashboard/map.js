// The live map: zones and entities on a canvas in Web Mercator over an offline basemap (Natural
// Earth 1:110m countries), with pan, zoom, an optional tile layer, live alert colouring, entity
// timelines and "who is inside" for zones. Entities come from the server's viewport stream
// (/v1/map/stream): the points in view, or server-side clusters when the view holds more than
// MAX_POINTS; the stream is reopened when the view stands still after a pan or zoom. Tools draw
// zones (polygon, circle) and ask for the nearest entities to a point.
import { app, api, el, fmtTime } from "/assets/app.js";

const CATEGORY_COLORS = { depot: "#1f77b4", port: "#2ca02c", restricted: "#d62728", anchorage: "#9467bd", site: "#8c564b" };
const KIND_COLORS = { truck: "#1f5fbf", vessel: "#008c8c", van: "#7a5cc2", meter: "#8a6d00", account: "#555", sensor: "#aa5500" };
const ALERT_COLOR = "#e53935";
const OPEN_MS = 10 * 60 * 1000;
const R = 6371008.8;

function haversine(lon1, lat1, lon2, lat2) {
  const p1 = (lat1 * Math.PI) / 180, p2 = (lat2 * Math.PI) / 180;
  const s1 = Math.sin((p2 - p1) / 2), s2 = Math.sin((((lon2 - lon1) * Math.PI) / 180) / 2);
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(s1 * s1 + Math.cos(p1) * Math.cos(p2) * s2 * s2)));
}
function fmtMetres(m) { return m < 1000 ? `${m.toFixed(0)} m` : `${(m / 1000).toFixed(2)} km`; }

function project(lon, lat) {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}
function unproject(x, y) {
  const lon = x * 360 - 180;
  const n = Math.PI - 2 * Math.PI * y;
  return [lon, (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)))];
}
function categoryColor(c) {
  if (CATEGORY_COLORS[c]) return CATEGORY_COLORS[c];
  // A fixed colour per category name, as #rrggbb so that an alpha suffix can be added.
  const palette = ["#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e", "#6b6ecf", "#8c6d31", "#843c39", "#393b79", "#637939"];
  let h = 0;
  for (const ch of c) h = (h * 31 + ch.charCodeAt(0)) % 9973;
  return palette[h % palette.length];
}

export class MapView {
  constructor() {
    this.canvas = document.getElementById("map");
    this.ctx = this.canvas.getContext("2d");
    this.zones = []; // {id, category, rings: [[[x,y]...]...], bbox}
    this.points = new Map(); // id -> {id, kind, x, y, time}: the viewport's entities (points mode)
    this.entities = []; // the same, as an array
    this.clusters = []; // {x, y, n}: the viewport's clusters (clusters mode)
    this.inView = 0; // entities in the viewport, as the server counted them
    this.stream = null;
    this.streamKey = "";
    this.viewTimer = null;
    this.basemap = null; // [{rings: [[x, y, x, y, ...]], bbox}]
    this.tool = null; // null | "polygon" | "circle" | "nearby"
    this.draft = []; // world points of the zone being drawn
    this.editing = null; // id of the zone whose shape is being redrawn
    this.marks = []; // world points of the last nearby answer
    this.alertedAt = new Map(); // entity id -> last alert time (ms, wall clock of arrival)
    this.view = { cx: 0.5, cy: 0.5, scale: 1024 }; // world units -> pixels
    this.zoneLayer = null;
    this.zoneLayerKey = "";
    this.dirty = true;
    this.loaded = false;
    this.track = null;
    this.tiles = new Map();
    this.stats = { frames: 0, lastFrameMs: 0, totalFrameMs: 0, maxFrameMs: 0, entitiesDrawn: 0, zonesDrawn: 0, clustersDrawn: 0,
      countriesDrawn: 0, framesIn: 0, bytesIn: 0, streamOpens: 0, mode: "", lastFrameParseMs: 0 };
    window.__tripline.map = this.stats;
    window.__tripline.mapView = this;
    this.bind();
    app.listeners.add((a) => this.onAlert(a));
    requestAnimationFrame(() => this.frame());
  }

  async show() {
    this.resize();
    if (!this.loaded) {
      this.loaded = true;
      this.loadBasemap().catch(() => {});
      await this.loadZones();
      for (const a of app.recent) this.onAlert(a);
      // Fit to the zones; without zones, to what the first frame of the whole world shows.
      if (this.zones.length) this.fit(); else { this.view = { cx: 0.5, cy: 0.5, scale: 1024 }; this.fitPending = true; }
    }
    this.openStream();
    this.legend();
    this.dirty = true;
  }

  /** The viewport as lon/lat: [min lon, min lat, max lon, max lat]. */
  viewBox() {
    const clamp = (v) => Math.max(0, Math.min(1, v));
    const [x0, y0] = this.toWorld(0, 0), [x1, y1] = this.toWorld(this.canvas.width, this.canvas.height);
    let [lon0, lat1] = unproject(clamp(x0), clamp(y0));
    let [lon1, lat0] = unproject(clamp(x1), clamp(y1));
    if (y0 <= 0) lat1 = 90;
    if (y1 >= 1) lat0 = -90;
    const r = (v) => Math.round(v * 1e6) / 1e6;
    return [r(Math.max(-180, lon0)), r(Math.max(-90, lat0)), r(Math.min(180, lon1)), r(Math.min(90, lat1))];
  }

  /** Follows the viewport: a new stream for a new box, the old one closed. */
  openStream() {
    if (!app.token || document.getElementById("view-map").hidden) return;
    const box = this.viewBox().join(",");
    const cols = Math.min(256, Math.max(1, Math.ceil(this.canvas.width / 48)));
    const rows = Math.min(256, Math.max(1, Math.ceil(this.canvas.height / 48)));
    const maxPoints = Number(localStorage.getItem("tripline.mapMaxPoints")) || 3000;
    const key = `bbox=${box}&grid=${cols}x${rows}&max_points=${maxPoints}`;
    if (this.stream && key === this.streamKey) return;
    this.closeStream();
    this.streamKey = key;
    const es = new EventSource(`/v1/map/stream?${key}&access_token=${encodeURIComponent(app.token)}`);
    es.addEventListener("frame", (ev) => this.onFrame(ev.data));
    this.stream = es;
    this.stats.streamOpens++;
  }

  closeStream() {
    if (this.stream) this.stream.close();
    this.stream = null;
    this.streamKey = "";
  }

  /** After a pan or zoom: the stream follows once the view has stood still for 250 ms. */
  viewChanged() {
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => this.openStream(), 250);
  }

  onFrame(data) {
    const t0 = performance.now();
    const f = JSON.parse(data);
    if (f.mode === "points") {
      if (f.full) this.points.clear();
      for (const [id, kind, lon, lat, time] of f.points) {
        const [x, y] = project(lon, lat);
        this.points.set(id, { id, kind, x, y, time });
      }
      for (const id of f.gone) this.points.delete(id);
      this.clusters = [];
    } else {
      this.points.clear();
      this.clusters = f.cells.map(([lon, lat, n]) => { const [x, y] = project(lon, lat); return { x, y, n }; });
    }
    this.entities = [...this.points.values()];
    this.inView = f.count;
    if (f.watermark) this.watermark = f.watermark;
    const s = this.stats;
    s.framesIn++;
    s.bytesIn += data.length;
    s.mode = f.mode;
    s.lastFrameParseMs = performance.now() - t0;
    this.dirty = true;
    if (this.fitPending && (this.entities.length || this.clusters.length)) { this.fitPending = false; this.fit(); }
  }

  async loadBasemap() {
    const res = await fetch("/assets/basemap.json");
    const doc = await res.json();
    const out = [];
    for (const c of doc.countries) {
      const rings = [];
      let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity;
      for (const poly of c.p) for (const flat of poly) {
        const ring = new Float64Array(flat.length);
        for (let i = 0; i < flat.length; i += 2) {
          const [x, y] = project(flat[i], flat[i + 1]);
          ring[i] = x; ring[i + 1] = y;
          minx = Math.min(minx, x); maxx = Math.max(maxx, x); miny = Math.min(miny, y); maxy = Math.max(maxy, y);
        }
        rings.push(ring);
      }
      out.push({ rings, bbox: [minx, miny, maxx, maxy] });
    }
    this.basemap = out;
    this.zoneLayerKey = "";
    this.dirty = true;
  }

  drawBasemap(ctx) {
    if (!this.basemap) return;
    ctx.fillStyle = "#dde8f0";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const [x0, y0] = this.toWorld(0, 0), [x1, y1] = this.toWorld(this.canvas.width, this.canvas.height);
    ctx.beginPath();
    let n = 0;
    for (const c of this.basemap) {
      if (c.bbox[2] < x0 || c.bbox[0] > x1 || c.bbox[3] < y0 || c.bbox[1] > y1) continue;
      for (const ring of c.rings) {
        for (let i = 0; i < ring.length; i += 2) {
          const [sx, sy] = this.toScreen(ring[i], ring[i + 1]);
          if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
        }
        ctx.closePath();
      }
      n++;
    }
    ctx.fillStyle = "#f4f1e8";
    ctx.fill("evenodd");
    ctx.strokeStyle = "#b9b3a3";
    ctx.lineWidth = 0.7;
    ctx.stroke();
    ctx.lineWidth = 1;
    this.stats.countriesDrawn = n;
  }

  async loadZones() {
    const fc = await api("GET", "/v1/zones");
    this.zones = [];
    this.features = new Map(fc.features.map((f) => [f.properties.id, f])); // id -> the zone as stored
    for (const f of fc.features) {
      const p = f.properties || {};
      const g = f.geometry;
      let polys = [];
      if (g.type === "Polygon") polys = [g.coordinates];
      else if (g.type === "MultiPolygon") polys = g.coordinates;
      else if (g.type === "Point") {
        const r = (p.radius_m || g.radius_m || 100) / 111320;
        const ring = [];
        for (let k = 0; k <= 32; k++) {
          const t = (k / 32) * 2 * Math.PI;
          ring.push([g.coordinates[0] + (r * Math.cos(t)) / Math.cos((g.coordinates[1] * Math.PI) / 180), g.coordinates[1] + r * Math.sin(t)]);
        }
        polys = [[ring]];
      }
      const rings = [];
      let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity;
      for (const poly of polys) for (const ring of poly) {
        const pts = ring.map(([lon, lat]) => project(lon, lat));
        for (const [x, y] of pts) { minx = Math.min(minx, x); maxx = Math.max(maxx, x); miny = Math.min(miny, y); maxy = Math.max(maxy, y); }
        rings.push(pts);
      }
      this.zones.push({ id: p.id, category: p.category, rings, bbox: [minx, miny, maxx, maxy] });
    }
    this.zoneLayerKey = "";
  }

  onAlert(a) {
    const k = a.key || {};
    const now = Date.now();
    for (const id of [k.entity, ...(k.pair || [])]) if (id) {
      if (a.state === "firing") this.alertedAt.set(id, now); else this.alertedAt.delete(id);
    }
    this.dirty = true;
  }

  fit() {
    let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity;
    for (const z of this.zones) { minx = Math.min(minx, z.bbox[0]); miny = Math.min(miny, z.bbox[1]); maxx = Math.max(maxx, z.bbox[2]); maxy = Math.max(maxy, z.bbox[3]); }
    for (const e of [...this.entities, ...this.clusters]) { minx = Math.min(minx, e.x); miny = Math.min(miny, e.y); maxx = Math.max(maxx, e.x); maxy = Math.max(maxy, e.y); }
    if (!isFinite(minx)) return;
    const w = this.canvas.width, h = this.canvas.height;
    this.view.cx = (minx + maxx) / 2;
    this.view.cy = (miny + maxy) / 2;
    this.view.scale = Math.min(w / Math.max(maxx - minx, 1e-9), h / Math.max(maxy - miny, 1e-9)) * 0.9;
    this.view.scale = Math.max(256, Math.min(this.view.scale, 2 ** 26));
    this.dirty = true;
    this.viewChanged();
  }

  /** Screen position of a lon/lat, and the lon/lat of a screen position (tools, tests). */
  screenOf(lon, lat) { return this.toScreen(...project(lon, lat)); }
  lonLatOf(sx, sy) { return unproject(...this.toWorld(sx, sy)); }

  toScreen(x, y) {
    return [(x - this.view.cx) * this.view.scale + this.canvas.width / 2, (y - this.view.cy) * this.view.scale + this.canvas.height / 2];
  }
  toWorld(sx, sy) {
    return [(sx - this.canvas.width / 2) / this.view.scale + this.view.cx, (sy - this.canvas.height / 2) / this.view.scale + this.view.cy];
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(r.width)), h = Math.max(1, Math.round(r.height));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.zoneLayerKey = "";
      this.dirty = true;
      this.viewChanged();
    }
  }

  zoom(f, sx = this.canvas.width / 2, sy = this.canvas.height / 2) {
    const [wx, wy] = this.toWorld(sx, sy);
    this.view.scale = Math.max(256, Math.min(2 ** 30, this.view.scale * f));
    const [nx, ny] = this.toWorld(sx, sy);
    this.view.cx += wx - nx;
    this.view.cy += wy - ny;
    this.dirty = true;
    this.viewChanged();
  }

  pan(dx, dy) {
    this.view.cx -= dx / this.view.scale;
    this.view.cy -= dy / this.view.scale;
    this.dirty = true;
    this.viewChanged();
  }

  bind() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("mousedown", (e) => { drag = { x: e.offsetX, y: e.offsetY, moved: false }; });
    window.addEventListener("mouseup", (e) => {
      if (drag && !drag.moved && e.target === c) this.click(drag.x, drag.y);
      drag = null;
    });
    c.addEventListener("mousemove", (e) => {
      if (!drag) return;
      const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      if (drag.moved) { this.pan(dx, dy); drag.x = e.offsetX; drag.y = e.offsetY; }
    });
    c.addEventListener("wheel", (e) => { e.preventDefault(); this.zoom(e.deltaY < 0 ? 1.25 : 0.8, e.offsetX, e.offsetY); }, { passive: false });
    c.addEventListener("keydown", (e) => {
      const step = 60;
      const keys = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (keys[e.key]) { e.preventDefault(); this.pan(...keys[e.key]); }
      else if (e.key === "+" || e.key === "=") this.zoom(1.25);
      else if (e.key === "-") this.zoom(0.8);
      else if (e.key === "Enter" && this.tool === "polygon" && this.draft.length >= 3) this.finishDraft();
      else if (e.key === "Enter") this.click(c.width / 2, c.height / 2);
      else if (e.key === "Escape") this.setTool(null);
    });
    for (const t of ["polygon", "circle", "nearby"]) {
      document.getElementById(`tool-${t}`).addEventListener("click", () => this.setTool(this.tool === t ? null : t));
    }
    window.addEventListener("hashchange", () => { if (document.getElementById("view-map").hidden) this.closeStream(); });
    document.getElementById("zoom-in").addEventListener("click", () => this.zoom(1.5));
    document.getElementById("zoom-out").addEventListener("click", () => this.zoom(1 / 1.5));
    document.getElementById("zoom-fit").addEventListener("click", () => this.fit());
    window.addEventListener("resize", () => this.resize());
  }

  legend() {
    const cats = [...new Set(this.zones.map((z) => z.category))].sort();
    const box = document.getElementById("map-legend");
    box.replaceChildren("Zones:", ...cats.flatMap((c) => [el("span", { style: `background:${categoryColor(c)}` }), c]),
      " · Entities with an open alert:", el("span", { style: `background:${ALERT_COLOR};border-radius:50%` }));
  }

  /** Picks a tool (or none); the panel says what to do with it. */
  setTool(tool, editing = null) {
    this.tool = tool;
    this.editing = tool ? editing : null;
    this.draft = [];
    for (const t of ["polygon", "circle", "nearby"]) document.getElementById(`tool-${t}`).setAttribute("aria-pressed", String(t === tool));
    const panel = document.getElementById("map-panel");
    const hints = {
      polygon: "Click the map to add corners; click the first corner again, press Enter or Finish to close the zone. Escape cancels.",
      circle: "Click the centre, then a point on the edge. Escape cancels.",
      nearby: "Click a point: the 10 nearest entities, by haversine distance.",
    };
    if (tool) {
      const buttons = tool === "polygon" ? [el("button", { type: "button", id: "draft-finish", onclick: () => this.finishDraft() }, "Finish")] : [];
      const title = this.editing ? `New shape for zone ${this.editing}` : { polygon: "Draw a polygon zone", circle: "Draw a circle zone", nearby: "Nearby" }[tool];
      panel.replaceChildren(el("h2", {}, title),
        el("p", { class: "hint" }, hints[tool]), ...buttons, el("button", { type: "button", onclick: () => this.setTool(null) }, "Cancel"));
    }
    this.dirty = true;
  }

  toolClick(sx, sy) {
    const [x, y] = this.toWorld(sx, sy);
    if (this.tool === "polygon") {
      if (this.draft.length >= 3) {
        const [fx, fy] = this.toScreen(...this.draft[0]);
        if ((fx - sx) ** 2 + (fy - sy) ** 2 < 100) return this.finishDraft();
      }
      this.draft.push([x, y]);
    } else if (this.tool === "circle") {
      this.draft.push([x, y]);
      if (this.draft.length === 2) this.finishDraft();
    } else if (this.tool === "nearby") {
      this.nearby(...unproject(x, y));
    }
    this.dirty = true;
  }

  /** The drawn shape as a zone Feature (the id and category come from the form). */
  draftFeature() {
    const r6 = (v) => Math.round(v * 1e6) / 1e6;
    const ll = this.draft.map(([x, y]) => unproject(x, y).map(r6));
    if (this.tool === "circle") {
      const [[lon, lat], [lon2, lat2]] = ll;
      return { type: "Feature", properties: { radius_m: Math.round(haversine(lon, lat, lon2, lat2) * 10) / 10 }, geometry: { type: "Point", coordinates: [lon, lat] } };
    }
    return { type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [[...ll, ll[0]]] } };
  }

  finishDraft() {
    if (this.tool === "polygon" && this.draft.length < 3) return;
    const feature = this.draftFeature();
    const panel = document.getElementById("map-panel");
    if (this.editing) return this.saveShape(this.editing, feature);
    const error = el("p", { id: "zone-error", class: "error", role: "alert" });
    const form = el("form", { id: "zone-form" },
      el("label", { for: "zone-id" }, "Zone id"), el("input", { id: "zone-id", required: true }),
      el("label", { for: "zone-category" }, "Category"), el("input", { id: "zone-category", required: true }),
      el("button", { type: "submit" }, "Save zone"), el("button", { type: "button", onclick: () => this.setTool(null) }, "Cancel"), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      feature.properties.id = document.getElementById("zone-id").value.trim();
      feature.properties.category = document.getElementById("zone-category").value.trim();
      try {
        await api("POST", "/v1/zones", feature);
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      const id = feature.properties.id;
      this.setTool(null);
      await this.loadZones();
      this.legend();
      this.dirty = true;
      await this.showZone(id);
    });
    panel.replaceChildren(el("h2", {}, this.tool === "circle" ? `Circle, radius ${fmtMetres(feature.properties.radius_m)}` : `Polygon, ${this.draft.length} corners`), form);
    document.getElementById("zone-id").focus();
  }

  /** A redrawn zone: its stored properties (category, tags) with the new geometry. */
  saveShape(id, drawn) {
    const panel = document.getElementById("map-panel");
    const props = { ...((this.features.get(id) || {}).properties || {}) };
    delete props.radius_m;
    if (drawn.properties.radius_m !== undefined) props.radius_m = drawn.properties.radius_m;
    const feature = { type: "Feature", properties: props, geometry: drawn.geometry };
    const error = el("p", { id: "zone-error", class: "error", role: "alert" });
    const save = el("button", { type: "button", id: "shape-save" }, "Save shape");
    save.addEventListener("click", async () => {
      try {
        await api("PUT", `/v1/zones/${encodeURIComponent(id)}`, feature);
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      this.setTool(null);
      await this.loadZones();
      this.dirty = true;
      await this.showZone(id);
    });
    panel.replaceChildren(el("h2", {}, `New shape for zone ${id}`),
      el("p", { class: "hint" }, "Entities the new boundary puts inside or outside get their enter and exit alerts now (a zone edit)."),
      save, el("button", { type: "button", onclick: () => this.setTool(null) }, "Cancel"), error);
  }

  confirmDelete(id) {
    const panel = document.getElementById("map-panel");
    const error = el("p", { id: "zone-error", class: "error", role: "alert" });
    const yes = el("button", { type: "button", id: "zone-delete-confirm" }, `Delete ${id}`);
    yes.addEventListener("click", async () => {
      try {
        await api("DELETE", `/v1/zones/${encodeURIComponent(id)}`);
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      await this.loadZones();
      this.legend();
      this.dirty = true;
      panel.replaceChildren(el("p", { id: "zone-deleted" }, `Zone ${id} deleted.`));
    });
    panel.replaceChildren(el("h2", {}, `Delete zone ${id}?`),
      el("p", { class: "hint" }, "Entities inside it get their exit alerts now (a zone edit)."),
      yes, el("button", { type: "button", onclick: () => this.showZone(id) }, "Cancel"), error);
  }

  async nearby(lon, lat) {
    const q = `lon=${lon.toFixed(6)}&lat=${lat.toFixed(6)}&k=10`;
    const out = await api("GET", `/v1/query/nearby?${q}`);
    this.marks = out.entities.map((e) => project(e.lon, e.lat));
    this.dirty = true;
    document.getElementById("map-panel").replaceChildren(
      el("h2", {}, "Nearest 10"), el("p", { class: "hint" }, `to ${lon.toFixed(5)}, ${lat.toFixed(5)}`),
      el("ol", { id: "nearby-list" }, out.entities.map((e) => el("li", { "data-entity": e.id },
        el("button", { type: "button", onclick: () => this.showEntity(e.id) }, e.id), ` ${e.kind} · ${fmtMetres(e.distance_m)}`))),
      el("button", { type: "button", onclick: () => this.setTool(null) }, "Done"));
  }

  async click(sx, sy) {
    if (this.tool) return this.toolClick(sx, sy);
    // The nearest entity within 8 px, else the zones under the point.
    let best = null, bestD = 64;
    for (const e of this.entities) {
      const [x, y] = this.toScreen(e.x, e.y);
      const d = (x - sx) ** 2 + (y - sy) ** 2;
      if (d < bestD) { best = e; bestD = d; }
    }
    if (best) return this.showEntity(best.id);
    const [wx, wy] = this.toWorld(sx, sy);
    const hits = this.zones.filter((z) => wx >= z.bbox[0] && wx <= z.bbox[2] && wy >= z.bbox[1] && wy <= z.bbox[3] && this.inside(z, wx, wy));
    if (hits.length) return this.showZone(hits[0].id);
  }

  inside(z, x, y) {
    let c = false;
    for (const ring of z.rings) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i], [xj, yj] = ring[j];
        if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
      }
    }
    return c;
  }

  async showEntity(id) {
    const panel = document.getElementById("map-panel");
    const t = await api("GET", `/v1/entities/${encodeURIComponent(id)}/timeline?limit=500`);
    const positions = t.events.map((e) => e.event).filter((e) => e.type === "position");
    this.track = positions.map((e) => project(e.lon, e.lat));
    this.dirty = true;
    panel.replaceChildren(
      el("h2", {}, id),
      el("h3", {}, `Alerts (${t.alerts.length})`),
      el("ul", {}, t.alerts.slice(-50).reverse().map((a) => el("li", {}, `${fmtTime(a.time)} ${a.rule} `, el("span", { class: a.state }, a.state)))),
      el("h3", {}, `Events (${t.events.length}${t.events_truncated ? "+" : ""})`),
      el("ul", {}, t.events.slice(-50).reverse().map((e) => el("li", {}, `${fmtTime(new Date(e.event.time).toISOString())} ${e.event.type}`))),
    );
  }

  async showZone(id) {
    const panel = document.getElementById("map-panel");
    const r = await api("GET", `/v1/zones/${encodeURIComponent(id)}/inside`);
    this.track = null;
    panel.replaceChildren(
      el("h2", {}, `Zone ${id}`),
      el("p", {}, `${r.entities.length} inside now`),
      el("button", { type: "button", id: "zone-use", onclick: () => { sessionStorage.setItem("tripline.pickZone", id); location.hash = "#/builder"; } }, "Use in a rule"),
      el("button", { type: "button", id: "zone-redraw", onclick: () => this.setTool("polygon", id) }, "Redraw as polygon"),
      el("button", { type: "button", id: "zone-redraw-circle", onclick: () => this.setTool("circle", id) }, "Redraw as circle"),
      el("button", { type: "button", id: "zone-delete", onclick: () => this.confirmDelete(id) }, "Delete zone"),
      el("ul", {}, r.entities.map((e) => el("li", {}, el("button", { type: "button", onclick: () => this.showEntity(e.id) }, e.id), ` ${e.kind}`))),
    );
  }

  drawTiles(ctx) {
    const url = localStorage.getItem("tripline.tileUrl");
    if (!url) return;
    const z = Math.max(0, Math.min(19, Math.round(Math.log2(this.view.scale / 256))));
    const n = 2 ** z;
    const [x0, y0] = this.toWorld(0, 0), [x1, y1] = this.toWorld(this.canvas.width, this.canvas.height);
    for (let tx = Math.max(0, Math.floor(x0 * n)); tx <= Math.min(n - 1, Math.floor(x1 * n)); tx++) {
      for (let ty = Math.max(0, Math.floor(y0 * n)); ty <= Math.min(n - 1, Math.floor(y1 * n)); ty++) {
        const key = `${z}/${tx}/${ty}`;
        let img = this.tiles.get(key);
        if (!img) {
          img = new Image();
          img.crossOrigin = "anonymous";
          img.onload = () => { this.dirty = true; };
          img.onerror = () => {};
          img.src = url.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
          this.tiles.set(key, img);
        }
        if (img.complete && img.naturalWidth) {
          const [sx, sy] = this.toScreen(tx / n, ty / n);
          const size = this.view.scale / n;
          ctx.drawImage(img, sx, sy, size, size);
        }
      }
    }
  }

  /** Zones are drawn once per view into a layer; entities every frame on top. */
  drawZones() {
    const key = `${this.view.cx},${this.view.cy},${this.view.scale},${this.canvas.width},${this.canvas.height},${this.zones.length},${!!this.basemap}`;
    if (key === this.zoneLayerKey) return;
    if (!this.zoneLayer) this.zoneLayer = document.createElement("canvas");
    const layer = this.zoneLayer;
    layer.width = this.canvas.width;
    layer.height = this.canvas.height;
    const ctx = layer.getContext("2d");
    ctx.clearRect(0, 0, layer.width, layer.height);
    if (localStorage.getItem("tripline.tileUrl")) this.drawTiles(ctx); else this.drawBasemap(ctx);
    const [x0, y0] = this.toWorld(0, 0), [x1, y1] = this.toWorld(layer.width, layer.height);
    let drawn = 0;
    const byCat = new Map();
    for (const z of this.zones) {
      if (z.bbox[2] < x0 || z.bbox[0] > x1 || z.bbox[3] < y0 || z.bbox[1] > y1) continue;
      if (!byCat.has(z.category)) byCat.set(z.category, []);
      byCat.get(z.category).push(z);
    }
    for (const [cat, zs] of byCat) {
      const color = categoryColor(cat);
      ctx.beginPath();
      for (const z of zs) {
        const tiny = (z.bbox[2] - z.bbox[0]) * this.view.scale < 2;
        if (tiny) {
          const [sx, sy] = this.toScreen(z.bbox[0], z.bbox[1]);
          ctx.rect(sx, sy, 2, 2);
        } else {
          for (const ring of z.rings) {
            ring.forEach(([x, y], i) => {
              const [sx, sy] = this.toScreen(x, y);
              if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
            });
            ctx.closePath();
          }
        }
        drawn++;
      }
      ctx.fillStyle = color + "33";
      ctx.strokeStyle = color;
      ctx.fill("evenodd");
      ctx.stroke();
    }
    if (this.view.scale > 2 ** 17) {
      ctx.fillStyle = "#333";
      ctx.font = "11px system-ui";
      for (const z of this.zones) {
        if (z.bbox[2] < x0 || z.bbox[0] > x1 || z.bbox[3] < y0 || z.bbox[1] > y1) continue;
        const [sx, sy] = this.toScreen(z.bbox[0], z.bbox[1]);
        ctx.fillText(z.id, sx + 2, sy - 3);
      }
    }
    this.stats.zonesDrawn = drawn;
    this.zoneLayerKey = key;
  }

  frame() {
    requestAnimationFrame(() => this.frame());
    if (!this.dirty || document.getElementById("view-map").hidden) return;
    const t0 = performance.now();
    this.dirty = false;
    this.resize();
    const ctx = this.ctx;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawZones();
    ctx.drawImage(this.zoneLayer, 0, 0);
    const now = Date.now();
    const w = this.canvas.width, h = this.canvas.height;
    let drawn = 0;
    const alerted = [];
    const byKind = new Map();
    for (const e of this.entities) {
      const [sx, sy] = this.toScreen(e.x, e.y);
      if (sx < -4 || sy < -4 || sx > w + 4 || sy > h + 4) continue;
      const at = this.alertedAt.get(e.id);
      if (at !== undefined && now - at < OPEN_MS) { alerted.push([sx, sy]); continue; }
      if (!byKind.has(e.kind)) byKind.set(e.kind, []);
      byKind.get(e.kind).push(sx, sy);
      drawn++;
    }
    for (const [kind, pts] of byKind) {
      ctx.fillStyle = KIND_COLORS[kind] || "#444";
      for (let i = 0; i < pts.length; i += 2) ctx.fillRect(pts[i] - 2, pts[i + 1] - 2, 4, 4);
    }
    ctx.fillStyle = ALERT_COLOR;
    for (const [sx, sy] of alerted) { ctx.beginPath(); ctx.arc(sx, sy, 5, 0, 2 * Math.PI); ctx.fill(); }
    // Clusters: a disc sized by the log of its count, with the count.
    ctx.font = "11px system-ui";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    let clusters = 0;
    for (const c of this.clusters) {
      const [sx, sy] = this.toScreen(c.x, c.y);
      if (sx < -20 || sy < -20 || sx > w + 20 || sy > h + 20) continue;
      const r = 7 + 4 * Math.log10(c.n);
      ctx.fillStyle = "rgba(31,95,191,0.75)";
      ctx.beginPath(); ctx.arc(sx, sy, r, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#fff";
      ctx.fillText(c.n >= 10000 ? `${Math.round(c.n / 1000)}k` : String(c.n), sx, sy);
      clusters++;
    }
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
    this.stats.clustersDrawn = clusters;
    // Nearby answers, and the zone being drawn.
    ctx.strokeStyle = "#ff8f00";
    ctx.lineWidth = 2;
    for (const [x, y] of this.marks) { const [sx, sy] = this.toScreen(x, y); ctx.beginPath(); ctx.arc(sx, sy, 7, 0, 2 * Math.PI); ctx.stroke(); }
    if (this.draft.length) {
      ctx.strokeStyle = "#d81b60";
      ctx.fillStyle = "#d81b60";
      ctx.beginPath();
      if (this.tool === "circle") {
        const [sx, sy] = this.toScreen(...this.draft[0]);
        ctx.arc(sx, sy, 3, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        this.draft.forEach(([x, y], i) => { const [sx, sy] = this.toScreen(x, y); if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy); });
        ctx.stroke();
        for (const [x, y] of this.draft) { const [sx, sy] = this.toScreen(x, y); ctx.fillRect(sx - 3, sy - 3, 6, 6); }
      }
    }
    ctx.lineWidth = 1;
    if (this.track && this.track.length > 1) {
      ctx.strokeStyle = "#ff8f00";
      ctx.lineWidth = 2;
      ctx.beginPath();
      this.track.forEach(([x, y], i) => { const [sx, sy] = this.toScreen(x, y); if (i === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy); });
      ctx.stroke();
      ctx.lineWidth = 1;
    }
    const ms = performance.now() - t0;
    const s = this.stats;
    s.frames++;
    s.lastFrameMs = ms;
    s.totalFrameMs += ms;
    s.maxFrameMs = Math.max(s.maxFrameMs, ms);
    s.entitiesDrawn = drawn + alerted.length;
    document.getElementById("map-status").textContent =
      `${this.zones.length} zones · ${this.inView} entities in view${this.clusters.length ? " (clustered)" : ""} · event time ${fmtTime(this.watermark || "")}`;
  }
}


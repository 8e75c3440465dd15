// The live map: zones and entities on a canvas in Web Mercator, with pan, zoom, an optional
// tile layer, live alert colouring, entity timelines and "who is inside" for zones.
import { app, api, el, fmtTime } from "/assets/app.js";

const CATEGORY_COLORS = { depot: "#1f77b4", port: "#2ca02c", restricted: "#d62728", anchorage: "#9467bd", site: "#8c564b" };
const KIND_COLORS = { truck: "#1f5fbf", vessel: "#008c8c", van: "#7a5cc2", meter: "#8a6d00", account: "#555", sensor: "#aa5500" };
const ALERT_COLOR = "#e53935";
const OPEN_MS = 10 * 60 * 1000;

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
  let h = 0;
  for (const ch of c) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h},55%,45%)`;
}

export class MapView {
  constructor() {
    this.canvas = document.getElementById("map");
    this.ctx = this.canvas.getContext("2d");
    this.zones = []; // {id, category, rings: [[[x,y]...]...], bbox}
    this.entities = []; // {id, kind, x, y, time}
    this.alertedAt = new Map(); // entity id -> last alert time (ms, wall clock of arrival)
    this.view = { cx: 0.5, cy: 0.5, scale: 1024 }; // world units -> pixels
    this.zoneLayer = null;
    this.zoneLayerKey = "";
    this.dirty = true;
    this.loaded = false;
    this.track = null;
    this.tiles = new Map();
    this.stats = { frames: 0, lastFrameMs: 0, totalFrameMs: 0, maxFrameMs: 0, entitiesDrawn: 0, zonesDrawn: 0, lastPositions: 0 };
    window.__tripline.map = this.stats;
    this.bind();
    app.listeners.add((a) => this.onAlert(a));
    requestAnimationFrame(() => this.frame());
  }

  async show() {
    this.resize();
    if (!this.loaded) {
      await this.loadZones();
      await this.loadPositions();
      for (const a of app.recent) this.onAlert(a);
      this.fit();
      this.loaded = true;
      this.poll = setInterval(() => { if (!document.getElementById("view-map").hidden && app.token) this.loadPositions().catch(() => {}); }, 1000);
    }
    this.legend();
    this.dirty = true;
  }

  async loadZones() {
    const fc = await api("GET", "/v1/zones");
    this.zones = [];
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

  async loadPositions() {
    const t0 = performance.now();
    const out = await api("GET", "/v1/positions");
    this.entities = out.entities.map(([id, kind, lon, lat, time]) => {
      const [x, y] = project(lon, lat);
      return { id, kind, x, y, time };
    });
    this.stats.lastPositions = performance.now() - t0;
    this.watermark = out.watermark;
    this.dirty = true;
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
    for (const e of this.entities) { minx = Math.min(minx, e.x); miny = Math.min(miny, e.y); maxx = Math.max(maxx, e.x); maxy = Math.max(maxy, e.y); }
    if (!isFinite(minx)) return;
    const w = this.canvas.width, h = this.canvas.height;
    this.view.cx = (minx + maxx) / 2;
    this.view.cy = (miny + maxy) / 2;
    this.view.scale = Math.min(w / Math.max(maxx - minx, 1e-9), h / Math.max(maxy - miny, 1e-9)) * 0.9;
    this.view.scale = Math.min(this.view.scale, 2 ** 26);
    this.dirty = true;
  }

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
    }
  }

  zoom(f, sx = this.canvas.width / 2, sy = this.canvas.height / 2) {
    const [wx, wy] = this.toWorld(sx, sy);
    this.view.scale = Math.max(256, Math.min(2 ** 30, this.view.scale * f));
    const [nx, ny] = this.toWorld(sx, sy);
    this.view.cx += wx - nx;
    this.view.cy += wy - ny;
    this.dirty = true;
  }

  pan(dx, dy) {
    this.view.cx -= dx / this.view.scale;
    this.view.cy -= dy / this.view.scale;
    this.dirty = true;
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
      else if (e.key === "Enter") this.click(c.width / 2, c.height / 2);
    });
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

  async click(sx, sy) {
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
    const key = `${this.view.cx},${this.view.cy},${this.view.scale},${this.canvas.width},${this.canvas.height},${this.zones.length}`;
    if (key === this.zoneLayerKey) return;
    if (!this.zoneLayer) this.zoneLayer = document.createElement("canvas");
    const layer = this.zoneLayer;
    layer.width = this.canvas.width;
    layer.height = this.canvas.height;
    const ctx = layer.getContext("2d");
    ctx.clearRect(0, 0, layer.width, layer.height);
    this.drawTiles(ctx);
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
      `${this.zones.length} zones · ${this.entities.length} entities · event time ${fmtTime(this.watermark || "")}`;
  }
}


// The rules list (status, firings, precision) and the fill-in-the-blank rule builder.
import { app, api, el, keyText, fmtTime, loadRules } from "/assets/app.js";

const DAY = 86400000;

export class RulesView {
  async show() {
    await loadRules();
    const tbody = document.querySelector("#rule-table tbody");
    const rows = [];
    for (const r of [...app.rules.values()].sort((a, b) => a.id.localeCompare(b.id))) {
      let status = r.status;
      if (status === "active" && r.expires && Date.parse(r.expires) - Date.now() < 7 * DAY) status = "expiring soon";
      const firings = el("td", {}, "…"), precision = el("td", {}, "…");
      rows.push(el("tr", { tabindex: "0" }, el("td", {}, r.id), el("td", {}, r.rule.kind), el("td", {}, r.rule.severity),
        el("td", { class: status === "active" ? "resolved" : "firing" }, status), el("td", {}, `v${r.version}`), firings, precision, el("td", {}, r.rule.owner)));
      api("GET", `/v1/rules/${encodeURIComponent(r.id)}/stats`).then((s) => {
        firings.textContent = String(s.firings);
        precision.textContent = s.precision === null ? "no feedback" : `${Math.round(s.precision * 100)}%`;
      }).catch(() => { firings.textContent = "?"; precision.textContent = "?"; });
    }
    tbody.replaceChildren(...rows);
  }
}

// Optional blanks of the zone kinds that steady membership against GPS jitter (docs/rules.md).
const STEADY = [["enter_after", "Entry counts after (optional): N inside positions, or a duration", "text", ""],
  ["exit_margin_m", "Exit only beyond this many metres outside (optional)", "number", ""]];

// Zones by id (optional): filled by "Use in a rule" on a zone of the map.
const ZONE_IDS = ["zone_ids", "Zone ids (optional, comma separated; a zone on the map has \"Use in a rule\")", "text", ""];

// Blanks per kind: [name, label, input type, hint].
const KINDS = {
  enter: [["zones", "Zone category", "text", "restricted"], ZONE_IDS, ...STEADY],
  exit: [["zones", "Zone category", "text", "port"], ZONE_IDS, ...STEADY],
  dwell: [["zones", "Zone category", "text", "anchorage"], ZONE_IDS, ["min", "For at least", "text", "6h"], ...STEADY],
  gathering: [["zones", "Zone category", "text", "depot"], ZONE_IDS, ["min_count", "At least this many entities", "number", "4"], ["window", "Within", "text", "30m"], ...STEADY],
  proximity: [["distance_m", "Closer than (m)", "number", "50"], ["within", "Positions at most this old", "text", "5m"], ["other", "Other entity kind (optional)", "text", ""]],
  frequency: [["event", "Event type", "text", "login_failed"], ["count", "At least this many", "number", "3"], ["window", "Within", "text", "5m"],
    ["by", "Counted per (optional): counterpart, or attr NAME", "text", ""]],
  aggregate: [["fn", "The", "select:sum,mean,min,max,count_distinct", "sum"], ["of", "Of: value, counterpart, or attr NAME", "text", "attr amount"],
    ["event", "Over events of type", "text", "payment"], ["metric", "Metric (readings only, optional)", "text", ""], ["window", "Within", "text", "24h"],
    ["condition", "Is", "select:above,below", "above"], ["value", "Value", "number", "10000"], ["by", "Per (optional): counterpart, or attr NAME", "text", ""]],
  novelty: [["count", "New counterparts, at least", "number", "5"], ["window", "Within", "text", "1h"], ["lookback", "New = not seen for", "text", "30d"], ["prefix", "Counterpart prefix (optional)", "text", ""]],
  threshold: [["metric", "Metric", "text", "water_l"], ["condition", "Condition", "select:above,below,baseline", "above"], ["value", "Value (above/below) or factor (baseline)", "number", "100"],
    ["baseline_window", "Baseline window (baseline only)", "text", "28d"], ["min_samples", "Baseline samples, at least (baseline only)", "number", "48"]],
  sequence: [["steps", "Steps, one per line: event TYPE | enter CATEGORY | exit CATEGORY; \"not STEP\" between steps forbids it there; a last line \"not STEP for 2h\" waits that long for it not to happen",
    "textarea", "event login_failed\nevent password_reset\nevent payment"], ["within", "All within (optional with one positive step)", "text", "30m"]],
  absence: [["for", "Silent for", "text", "10m"], ["event", "Of event type (optional)", "text", ""]],
  speed: [["max_kmh", "Faster than (km/h)", "number", "130"]],
};
const COMMON = [["match_kind", "Entity kind (optional)", "text", "truck"], ["match_tags", "Entity tags (optional, key=value, comma separated)", "text", "cargo=hazmat"]];

// "counterpart", "value" or "attr NAME" as a rule field.
function field(text) {
  const [w, ...rest] = text.split(/\s+/);
  return w === "attr" ? { attr: rest.join(" ") } : w;
}

function yaml(v, indent = "") {
  if (Array.isArray(v)) return v.map((x) => `\n${indent}- ${yaml(x, indent + "  ").trimStart()}`).join("");
  if (v && typeof v === "object") {
    return Object.entries(v).map(([k, x]) => {
      if (x && typeof x === "object" && Object.keys(x).length === 0) return `\n${indent}${k}: {}`;
      if (x && typeof x === "object") return `\n${indent}${k}:${yaml(x, indent + "  ")}`;
      return `\n${indent}${k}: ${yaml(x)}`;
    }).join("");
  }
  if (typeof v === "string") return /^[A-Za-z_][A-Za-z0-9_ .:-]*$/.test(v) && !/^(yes|no|true|false|on|off|null)$/i.test(v) && !/: /.test(v) ? v : JSON.stringify(v);
  return String(v);
}

export class BuilderView {
  constructor() {
    this.form = document.getElementById("builder-form");
    const kind = document.getElementById("b-kind");
    kind.replaceChildren(...Object.keys(KINDS).map((k) => el("option", { value: k }, k)));
    kind.addEventListener("change", () => this.renderFields());
    this.form.addEventListener("input", () => this.changed());
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.enable(); });
    document.getElementById("b-backtest").addEventListener("click", () => this.backtest());
    this.renderFields();
  }

  async show() {
    // A zone picked on the map: an enter rule on that zone (added to the ids of a zone rule
    // being built).
    const picked = sessionStorage.getItem("tripline.pickZone");
    if (picked) {
      sessionStorage.removeItem("tripline.pickZone");
      const kind = document.getElementById("b-kind");
      if (!["enter", "exit", "dwell", "gathering"].includes(kind.value)) { kind.value = "enter"; this.renderFields(); }
      const ids = document.getElementById("b-zone_ids");
      const have = ids.value.split(",").map((v) => v.trim()).filter((v) => v);
      if (!have.includes(picked)) have.push(picked);
      ids.value = have.join(", ");
      document.getElementById("b-zones").value = "";
    }
    this.changed();
  }

  renderFields() {
    const kind = document.getElementById("b-kind").value;
    const box = document.getElementById("b-fields");
    box.replaceChildren(...[...KINDS[kind], ...COMMON].flatMap(([name, label, type, hint]) => {
      const id = `b-${name}`;
      let input;
      if (type.startsWith("select:")) input = el("select", { id, name }, type.slice(7).split(",").map((o) => el("option", { value: o }, o)));
      else if (type === "textarea") input = el("textarea", { id, name, rows: "3", cols: "40" }, hint);
      else input = el("input", { id, name, type, placeholder: hint, value: name.startsWith("match") || name === "zone_ids" ? "" : hint, step: type === "number" ? "any" : undefined });
      return [el("label", { for: id }, label), input];
    }));
    this.changed();
  }

  value(name) {
    const e = document.getElementById(`b-${name}`);
    return e ? e.value.trim() : "";
  }

  /** The rule object the blanks describe. */
  rule() {
    const kind = this.value("kind");
    const r = { id: this.value("id"), kind, purpose: this.value("purpose"), owner: this.value("owner"), severity: this.value("severity"), match: {} };
    if (this.value("match_kind")) r.match.kind = this.value("match_kind");
    if (this.value("match_tags")) {
      r.match.tags = {};
      for (const kv of this.value("match_tags").split(",")) {
        const [k, v] = kv.split("=").map((s) => s.trim());
        if (k) r.match.tags[k] = v || "";
      }
    }
    const num = (n) => (this.value(n) === "" ? undefined : Number(this.value(n)));
    const zones = () => {
      const z = {};
      if (this.value("zones")) z.category = this.value("zones");
      const ids = this.value("zone_ids").split(",").map((v) => v.trim()).filter((v) => v);
      if (ids.length) z.ids = ids;
      // Neither: the empty category goes to the server, which says what is missing (an empty
      // selector would silently mean every zone).
      if (!z.category && !z.ids) z.category = "";
      return z;
    };
    switch (kind) {
      case "enter": case "exit": r.zones = zones(); break;
      case "dwell": r.zones = zones(); r.min = this.value("min"); break;
      case "gathering": r.zones = zones(); r.min_count = num("min_count"); r.window = this.value("window"); break;
    }
    if (["enter", "exit", "dwell", "gathering"].includes(kind)) {
      const after = this.value("enter_after");
      if (after !== "") r.enter_after = /^[0-9]+$/.test(after) ? Number(after) : after;
      if (this.value("exit_margin_m") !== "") r.exit_margin_m = num("exit_margin_m");
    }
    switch (kind) {
      case "proximity": r.distance_m = num("distance_m"); r.within = this.value("within"); if (this.value("other")) r.other = { kind: this.value("other") }; break;
      case "frequency": r.count = num("count"); r.window = this.value("window"); r.event = { type: this.value("event") }; if (this.value("by")) r.by = field(this.value("by")); break;
      case "aggregate": {
        r.fn = this.value("fn");
        r.of = field(this.value("of"));
        r.event = { type: this.value("event") };
        if (this.value("metric")) r.event.metric = this.value("metric");
        r.window = this.value("window");
        r[this.value("condition")] = num("value");
        if (this.value("by")) r.by = field(this.value("by"));
        break;
      }
      case "novelty": r.count = num("count"); r.window = this.value("window"); r.lookback = this.value("lookback"); if (this.value("prefix")) r.counterpart = { prefix: [this.value("prefix")] }; break;
      case "threshold": {
        r.metric = this.value("metric");
        const c = this.value("condition");
        if (c === "baseline") r.baseline = { window: this.value("baseline_window"), factor: num("value"), min_samples: num("min_samples") };
        else r[c] = num("value");
        break;
      }
      case "sequence":
        r.steps = this.value("steps").split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
          let words = l.split(/\s+/);
          const negated = words[0] === "not";
          if (negated) words = words.slice(1);
          let deadline;
          const f = words.indexOf("for");
          if (negated && f > 0) { deadline = words.slice(f + 1).join(""); words = words.slice(0, f); }
          const [verb, ...rest] = words;
          const arg = rest.join(" ");
          const step = verb === "event" ? { event: { type: arg } } : { [verb]: { category: arg } };
          if (!negated) return step;
          return deadline ? { absent: step, for: deadline } : { absent: step };
        });
        if (this.value("within")) r.within = this.value("within");
        break;
      case "absence": r.for = this.value("for"); if (this.value("event")) r.event = { type: this.value("event") }; break;
      case "speed": r.max_kmh = num("max_kmh"); break;
    }
    if (this.value("expires")) r.expires = `${this.value("expires")}T00:00:00Z`;
    for (const k of Object.keys(r)) if (r[k] === undefined || r[k] === "") delete r[k];
    return r;
  }

  changed() {
    document.getElementById("b-yaml").textContent = yaml(this.rule()).trimStart() + "\n";
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.validate(), 300);
  }

  /** Inline validation by the server (nothing is stored). */
  async validate() {
    const box = document.getElementById("b-errors");
    for (const e of this.form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
    if (!app.token) return false;
    try {
      const r = await api("POST", "/v1/rules?dry_run=true", this.rule());
      if (r.valid) { box.textContent = ""; return true; }
      throw { body: r, message: r.message };
    } catch (e) {
      const errs = (e.body && e.body.errors && e.body.errors.length) ? e.body.errors : [{ message: e.message }];
      box.textContent = errs.map((x) => `${x.pointer || ""} ${x.message}`.trim()).join("\n");
      for (const x of errs) {
        const field = (x.pointer || "").split("/")[1];
        const input = field && (document.getElementById(`b-${field}`) || document.getElementById(`b-${field === "match" ? "match_kind" : field}`));
        if (input) input.setAttribute("aria-invalid", "true");
      }
      return false;
    }
  }

  async backtest() {
    const out = document.getElementById("b-result");
    out.textContent = "Backtesting…";
    try {
      const r = await api("POST", "/v1/rules/backtest", { rule: this.rule(), last: document.getElementById("b-hours").value });
      out.replaceChildren(
        el("p", { id: "b-backtest-summary" }, `Over ${r.events_scanned} stored events it would have raised ${r.count} alert(s).` +
          (r.current ? ` The current version v${r.current.version} raised ${r.current.count}: ${r.diff.added.length} new, ${r.diff.removed.length} gone, ${r.diff.unchanged} the same.` : "")),
        el("ul", {}, r.alerts.slice(0, 20).map((a) => el("li", {}, `${fmtTime(a.time)} ${keyText(a)} ${a.state}`))),
      );
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, e.message));
    }
  }

  async enable() {
    const out = document.getElementById("b-result");
    if (!(await this.validate())) { out.replaceChildren(el("p", { class: "error" }, "Fix the problems above first.")); return; }
    try {
      const r = await api("POST", "/v1/rules", this.rule());
      const v = r.rules[0];
      out.replaceChildren(el("p", { class: "ok", id: "b-enabled" }, `Rule ${v.id} is live (version ${v.version}).`));
      await loadRules();
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, e.message));
    }
  }
}

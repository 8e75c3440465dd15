// The alert inbox: filters, live arrivals, explanation, feedback and silences.
import { app, api, el, keyText, fmtTime, loadRules } from "/assets/app.js";

function severityOf(a) {
  const r = app.rules.get(a.rule);
  return r && r.rule ? r.rule.severity : "";
}

function toQueryTime(v) {
  return v ? new Date(v + "Z").toISOString() : "";
}

export class AlertsView {
  constructor() {
    this.rows = []; // newest first
    this.filters = {};
    this.tbody = document.querySelector("#alert-table tbody");
    this.detail = document.getElementById("alert-detail");
    document.getElementById("alert-filters").addEventListener("submit", (e) => { e.preventDefault(); this.load(); });
    this.groupsBox = document.getElementById("alert-groups");
    document.getElementById("f-grouped").addEventListener("change", () => this.showGroups().catch((e) => this.groupsBox.replaceChildren(el("p", { class: "error" }, e.message))));
    app.listeners.add((a) => this.onAlert(a));
    this.loaded = false;
  }

  async show() {
    await loadRules();
    const sel = document.getElementById("f-rule");
    const current = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "any"), ...[...app.rules.keys()].sort().map((id) => el("option", { value: id }, id)));
    sel.value = current;
    if (!this.loaded) { await this.load(); this.loaded = true; }
  }

  readFilters() {
    return {
      rule: document.getElementById("f-rule").value,
      severity: document.getElementById("f-severity").value,
      state: document.getElementById("f-state").value,
      from: toQueryTime(document.getElementById("f-from").value),
      to: toQueryTime(document.getElementById("f-to").value),
    };
  }

  matches(a) {
    const f = this.filters;
    if (f.rule && a.rule !== f.rule) return false;
    if (f.state && a.state !== f.state) return false;
    if (f.severity && severityOf(a) !== f.severity) return false;
    if (f.from && a.time < f.from) return false;
    if (f.to && a.time > f.to) return false;
    return true;
  }

  async load() {
    this.filters = this.readFilters();
    const q = new URLSearchParams({ limit: "1000" });
    for (const k of ["rule", "state", "from", "to"]) if (this.filters[k]) q.set(k, this.filters[k]);
    let all = [];
    let after = 0;
    for (let page = 0; page < 5; page++) {
      q.set("after", String(after));
      const out = await api("GET", `/v1/alerts?${q}`);
      all = all.concat(out.alerts);
      if (out.next === null) break;
      after = out.next;
    }
    this.rows = all.filter((a) => this.matches(a)).reverse();
    this.render();
  }

  onAlert(a) {
    if (!this.loaded || !this.matches(a)) return;
    this.rows.unshift(a);
    if (this.rows.length > 2000) this.rows.length = 2000;
    this.tbody.prepend(this.row(a));
  }

  row(a) {
    const tr = el("tr", { tabindex: "0", "data-alert": a.id },
      el("td", {}, fmtTime(a.time)), el("td", {}, a.rule), el("td", {}, keyText(a)),
      el("td", { class: a.state }, a.suppressed_by ? `${a.state} (silenced)` : a.state), el("td", {}, severityOf(a)), el("td", {}, `v${a.rule_version}`));
    const open = () => {
      for (const r of this.tbody.querySelectorAll("tr.selected")) r.classList.remove("selected");
      tr.classList.add("selected");
      this.explain(a).catch((e) => this.detail.replaceChildren(el("p", { class: "error" }, e.message)));
    };
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); }
      if (e.key === "ArrowDown" && tr.nextElementSibling) tr.nextElementSibling.focus();
      if (e.key === "ArrowUp" && tr.previousElementSibling) tr.previousElementSibling.focus();
    });
    return tr;
  }

  render() {
    this.tbody.replaceChildren(...this.rows.slice(0, 500).map((a) => this.row(a)));
  }

  /** The notification groups of the policy: one block per group with its receiver, group
   * labels, timers and alerts (GET /v1/notifications/groups). */
  async showGroups() {
    const on = document.getElementById("f-grouped").checked;
    this.groupsBox.hidden = !on;
    document.getElementById("alert-table").hidden = on;
    if (!on) return;
    const out = await api("GET", "/v1/notifications/groups");
    if (out.source === "none") {
      this.groupsBox.replaceChildren(el("p", { class: "hint" }, "No notification policy is set: every webhook receiver gets each alert on its own."));
      return;
    }
    const labelText = (l) => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(", ") || "(one group)";
    this.groupsBox.replaceChildren(
      el("p", { class: "hint" }, `Policy version ${out.policy_version}; ${out.groups.length} group(s) (${out.source}).`),
      ...out.groups.map((g) => el("section", { class: "group", "data-group": g.group },
        el("h3", {}, `${g.receiver} · ${labelText(g.group_labels)}`),
        el("p", {}, `Route ${g.route} · ${g.alerts.filter((a) => a.status === "firing").length} firing · ${g.notifications_sent} notification(s) sent`
          + (g.last_sent_at ? ` · last ${fmtTime(g.last_sent_at)}` : "") + ` · next look ${fmtTime(g.next_flush_at)}`),
        el("ul", {}, g.alerts.map((a) => el("li", { "data-alert": a.id },
          `${a.rule} `, el("code", {}, [a.labels.entity, a.labels.zone].filter(Boolean).join(" @ ")), ` ${a.status}`,
          a.notified ? " (notified)" : " (waiting)"))))));
  }

  /** Where the alert goes under the policy (GET /v1/alerts/{id}/routes). */
  async routesOf(a) {
    const r = await api("GET", `/v1/alerts/${a.id}/routes`);
    const groupText = (x) => Object.entries(x.group_labels).map(([k, v]) => `${k}=${v}`).join(", ") || "(all)";
    const items = r.routes.map((x) => el("li", {}, x.route === null
      ? `${x.receiver} (one webhook per alert: no notification policy)`
      : `${x.receiver} by route ${x.route}, group ${groupText(x)}` + (x.muted_now ? " (muted now)" : "")));
    return el("div", { id: "alert-routes" },
      el("h3", {}, "Where it goes"),
      items.length ? el("ul", {}, items) : el("p", {}, "Nowhere: no receiver takes it."),
      r.inhibited_by.length ? el("p", {}, `Held back by ${r.inhibited_by.map((i) => `alert ${i.alert} (${i.rule})`).join(", ")}`) : null);
  }

  async explain(a) {
    const x = await api("GET", `/v1/alerts/${a.id}/explain`);
    const routes = await this.routesOf(a);
    const fb = el("p", { role: "status" });
    const feedback = async (verdict) => {
      try {
        await api("POST", `/v1/alerts/${a.id}/feedback`, { verdict });
        fb.textContent = `Thanks: recorded as ${verdict.replace("_", " ")}.`;
        fb.className = "ok";
      } catch (e) { fb.textContent = e.message; fb.className = "error"; }
    };
    const silence = el("form", { class: "silence", "aria-label": "Silence alerts like this one" },
      el("h3", {}, "Silence alerts like this"),
      el("label", { for: "s-duration" }, "For"),
      el("select", { id: "s-duration" }, el("option", { value: "1h" }, "1 hour"), el("option", { value: "8h" }, "8 hours"), el("option", { value: "24h" }, "24 hours")),
      el("label", { for: "s-comment" }, "Why (required)"),
      el("input", { id: "s-comment", required: true }),
      el("button", { type: "submit" }, "Create silence"),
      el("p", { id: "s-result", role: "status" }));
    silence.addEventListener("submit", async (e) => {
      e.preventDefault();
      const k = a.key || {};
      const matchers = { rule: a.rule };
      if (k.entity) matchers.entity = k.entity;
      if (k.zone) matchers.zone = k.zone;
      const out = silence.querySelector("#s-result");
      try {
        const s = await api("POST", "/v1/silences", { matchers, duration: silence.querySelector("#s-duration").value, comment: silence.querySelector("#s-comment").value });
        out.textContent = `Silence ${s.id} active until ${fmtTime(s.ends_at)}.`;
        out.className = "ok";
      } catch (err) { out.textContent = err.message; out.className = "error"; }
    });
    const canWrite = app.me && (app.me.role === "operator" || app.me.role === "admin");
    this.detail.replaceChildren(
      el("h2", {}, `${a.rule} — ${keyText(a)}`),
      el("p", { class: "explanation" }, x.explanation),
      el("p", {}, `State ${a.state} at ${fmtTime(a.time)} · rule version ${x.rule.version} (${x.rule.kind})`),
      x.window ? el("p", {}, `Window: after ${fmtTime(x.window.from_exclusive)} up to ${fmtTime(x.window.to)}`) : null,
      el("h3", {}, "Numbers"), el("pre", {}, JSON.stringify(x.numbers, null, 1)),
      el("h3", {}, `Evidence (${x.evidence.length})`),
      el("ul", { class: "evidence" }, x.evidence.map((e) => el("li", {}, el("code", {}, e.id), " ", el("code", {}, e.event ? JSON.stringify(e.event) : "(no longer stored)")))),
      routes,
      el("h3", {}, "Rule"), el("pre", {}, JSON.stringify(x.rule.text, null, 1)),
      canWrite ? el("div", { class: "actions" },
        el("button", { type: "button", id: "fb-useful", onclick: () => feedback("useful") }, "Useful"),
        el("button", { type: "button", id: "fb-false", onclick: () => feedback("false_positive") }, "False positive")) : null,
      fb,
      canWrite ? silence : null,
    );
  }
}

// The audit log view (roles auditor and admin): newest records first, and a verify button.
import { api, el, fmtTime } from "/assets/app.js";

export class AuditView {
  constructor() {
    this.tbody = document.querySelector("#audit-table tbody");
    document.getElementById("audit-verify").addEventListener("click", () => this.verify());
    document.getElementById("audit-more").addEventListener("click", () => this.more());
    this.records = [];
  }

  async show() {
    // Read from the start in pages, keep the newest 500 on screen.
    let after = 0;
    this.records = [];
    for (let i = 0; i < 50; i++) {
      const page = await api("GET", `/v1/audit?after=${after}&limit=1000`);
      this.records = this.records.concat(page.records).slice(-5000);
      if (page.next === null) break;
      after = page.next;
    }
    this.shown = 500;
    this.render();
  }

  more() {
    this.shown += 500;
    this.render();
  }

  render() {
    const rows = this.records.slice(-this.shown).reverse();
    this.tbody.replaceChildren(...rows.map((r) => el("tr", {},
      el("td", {}, String(r.seq)), el("td", {}, fmtTime(r.at)), el("td", {}, r.actor), el("td", {}, r.action), el("td", {}, r.target),
      el("td", {}, el("code", {}, JSON.stringify(r.detail).slice(0, 200))))));
  }

  async verify() {
    const out = document.getElementById("audit-result");
    out.textContent = "Verifying…";
    try {
      const v = await api("GET", "/v1/audit/verify");
      out.textContent = `Intact: ${v.records} records, head ${v.head.slice(0, 16)}…`;
      out.className = "ok";
    } catch (e) {
      const b = e.body || {};
      out.textContent = b.problem ? `BROKEN at record ${b.first_bad}: ${b.problem}` : e.message;
      out.className = "error";
    }
  }
}

/* clawbeat dashboard: at-risk devices (GET /api/at-risk) on the fleet page, and the
 * device page's risk and reasons (GET /api/devices/{id}). Refreshed every 30 s: scores
 * change once per scoring pass (CLAWBEAT_RISK_CYCLE, 60 s by default). */
"use strict";

const RISK_EVERY = 30000;

function riskBadge(level) {
  return cb.el("span", { class: "badge risk-" + level, "data-risk": level }, level);
}

function riskMode(mode) {
  return mode === "model" ? "learned model" : "rules (not enough history for a model yet)";
}

async function refreshAtRisk() {
  const list = document.getElementById("at-risk");
  const note = document.getElementById("at-risk-note");
  let page;
  try {
    page = await cb.api("/api/at-risk?limit=20");
  } catch (e) {
    note.textContent = e.detail;
    return;
  }
  note.textContent = "scored by " + riskMode(page.mode) +
    (page.scored_at ? " · " + cb.ago(page.scored_at) : " · first pass pending");
  if (!page.items.length) {
    list.replaceChildren(cb.el("li", { class: "muted" }, page.scored ? "No device at risk." : "Nothing scored yet."));
    return;
  }
  list.replaceChildren(...page.items.map((item) => cb.el("li", { "data-id": item.id },
    cb.el("div", { class: "risk-line" },
      cb.el("a", { href: cb.devicePage(item.id), class: "mono" }, item.id), " ", riskBadge(item.risk.level)),
    cb.el("div", { class: "muted" }, item.reasons.join("; ")),
  )));
  if (page.total > page.items.length) {
    list.append(cb.el("li", { class: "muted" }, `… and ${page.total - page.items.length} more`));
  }
}

async function refreshDeviceRisk() {
  const box = document.getElementById("device-risk");
  const id = decodeURIComponent(location.pathname.replace(/^\/devices\//, "").replace(/\/$/, "")).replace(/^~/, "");
  let d;
  try {
    d = await cb.api("/api/devices/" + cb.devicePath(id));
  } catch (e) {
    return;
  }
  if (!d.risk) {
    box.replaceChildren(cb.el("p", { class: "muted" }, "Not scored (yet): devices are scored while they are up, once per scoring pass."));
    return;
  }
  const facts = [riskBadge(d.risk.level), " ", cb.el("span", { class: "muted" }, "by " + riskMode(d.risk.mode))];
  if (d.risk.within_1h !== null) {
    facts.push(cb.el("span", { class: "muted" },
      ` · ${(100 * d.risk.within_1h).toFixed(1)} % within 1 h, ${(100 * d.risk.within_24h).toFixed(1)} % within 24 h`));
  }
  box.replaceChildren(
    cb.el("p", {}, ...facts),
    d.risk_reasons.length
      ? cb.el("ul", { class: "reasons" }, ...d.risk_reasons.map((r) => cb.el("li", {}, r)))
      : cb.el("p", { class: "muted" }, "No warning signs."),
  );
}

function startRisk() {
  const run = document.getElementById("at-risk") ? refreshAtRisk
    : document.getElementById("device-risk") ? refreshDeviceRisk : null;
  if (!run) return;
  const tick = () => { if (!document.hidden && cb.token()) run(); };
  tick();
  setInterval(tick, RISK_EVERY);
}

document.addEventListener("DOMContentLoaded", startRisk);

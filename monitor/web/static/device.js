/* clawbeat dashboard: one device. */
"use strict";

// "~.." is device ".." (cb.devicePath): browsers drop dot segments from paths.
const deviceId = decodeURIComponent(location.pathname.replace(/^\/devices\//, "").replace(/\/$/, "")).replace(/^~/, "");
const STATE_COLORS = {
  online: "#3fb950", late: "#d29922", stale: "#f0883e", offline: "#f85149",
  lost: "#a371f7", unknown: "#8b98a5", maintenance: "#58a6ff",
};
let device = null;
let range = "1h";

function fact(label, value, attrs) {
  return cb.el("div", {}, cb.el("span", {}, label), cb.el("b", attrs || {}, value));
}

/* "1 h 0 min 0 s ahead": the device's clock minus the monitor's, as the monitor estimates it. */
function clockOffset(d) {
  const v = d.clock_offset;
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  if (a < 0.0005) return "0 ms";
  let size;
  if (a < 1) size = Math.round(a * 1000) + " ms";
  else if (a < 60) size = a.toFixed(1) + " s";
  else {
    const r = Math.round(a), h = Math.floor(r / 3600), m = Math.floor((r % 3600) / 60);
    size = (h ? h + " h " : "") + m + " min " + (r % 60) + " s";
  }
  return size + (v > 0 ? " ahead" : " behind") + (d.clock_skewed ? " · wrong, kept out of latency" : "");
}

function renderDevice(d) {
  device = d;
  document.title = "clawbeat · " + d.id;
  document.getElementById("device-id").textContent = d.id;
  document.getElementById("device-state").replaceChildren(cb.badge(d.state, true));
  document.getElementById("device-reason").textContent = d.reason ? "(" + d.reason + ")" : "";
  const interval = cb.seconds(d.interval) +
    (d.interval_override !== null ? " · override" : d.announced_interval !== null ? " · announced" : "");
  document.getElementById("facts").replaceChildren(
    fact("in state since", cb.ago(d.since), { "data-ago": d.since, "data-fact": "since", title: cb.when(d.since) }),
    fact("last heartbeat", cb.ago(d.last_seen), { "data-ago": d.last_seen || "", "data-fact": "last_seen", title: cb.when(d.last_seen) }),
    fact("expected interval", interval),
    fact("class", d.class),
    fact("session", d.session || "—", { class: "mono", "data-fact": "session" }),
    fact("last seq", d.last_seq === null ? "—" : d.last_seq, { "data-fact": "last_seq" }),
    fact("firmware", d.fw || "—"),
    fact("tags", (d.tags || []).join(", ") || "—"),
    fact("first seen", cb.when(d.first_seen)),
    fact("confirmed since monitor start", d.confirmed ? "yes" : "not yet"),
    fact("clock offset", clockOffset(d), {
      "data-fact": "clock_offset", class: d.clock_skewed ? "skewed" : null,
      title: "The device's clock minus the monitor's, estimated from its heartbeats' ts",
    }),
  );
  document.getElementById("uptime").replaceChildren(...d.uptime.map((u) =>
    cb.el("div", { title: `up ${cb.seconds(u.up_seconds)}, down ${cb.seconds(u.down_seconds)}` },
      cb.el("span", { class: "muted" }, u.window),
      cb.el("div", { class: "pct" }, u.percent === null ? "—" : u.percent.toFixed(u.percent >= 99.9 || u.percent === 0 ? 2 : 1) + "%"))));
  const metrics = document.getElementById("metrics");
  const entries = Object.entries(d.metrics || {});
  metrics.replaceChildren(...(entries.length
    ? entries.flatMap(([k, v]) => [cb.el("dt", {}, k), cb.el("dd", {}, typeof v === "object" ? JSON.stringify(v) : v)])
    : [cb.el("dt", {}, "—"), cb.el("dd", { class: "muted" }, "this device sends no metrics")]));
  renderTimeline(d.timeline);
  // Controls show the stored configuration (not what the user is typing).
  const intervalInput = document.getElementById("interval");
  if (document.activeElement !== intervalInput) intervalInput.value = d.interval_override === null ? "" : d.interval_override;
  const tags = document.getElementById("tags");
  if (document.activeElement !== tags) tags.value = (d.tags || []).join(", ");
  document.getElementById("class").value = d.class;
  document.getElementById("maintenance").textContent = d.maintenance ? "End maintenance" : "Start maintenance";
}

/* Between full refreshes, the live engine's figures every second (cb.follow). */
function applyLive(items) {
  const d = items.find((item) => item.id === deviceId);
  if (!d || !device) return;
  const fact = (name) => document.querySelector(`#facts [data-fact="${name}"]`);
  const ago = (node, iso) => {
    if (!node || (node.getAttribute("data-ago") || "") === (iso || "")) return;
    node.setAttribute("data-ago", iso || ""); node.title = cb.when(iso); node.textContent = cb.ago(iso);
  };
  ago(fact("since"), d.since);
  ago(fact("last_seen"), d.last_seen);
  const session = fact("session"); if (session) session.textContent = d.session || "—";
  const seq = fact("last_seq"); if (seq) seq.textContent = d.last_seq === null ? "—" : d.last_seq;
  const badge = document.querySelector("#device-state .badge");
  if (!badge || badge.dataset.state !== d.state) {
    document.getElementById("device-state").replaceChildren(cb.badge(d.state, true));
    document.getElementById("device-reason").textContent = d.reason ? "(" + d.reason + ")" : "";
    refreshSoon();  // a new state: the timeline and uptime change too
  }
}

function renderTimeline(items) {
  const list = document.getElementById("timeline");
  if (!items.length) { list.replaceChildren(cb.el("li", { class: "muted" }, "No transitions stored yet.")); return; }
  list.replaceChildren(...items.map((t) => cb.el("li", {},
    cb.el("span", { class: "muted", title: t.at }, cb.when(t.at)),
    cb.el("span", {}, t.old_state ? cb.badge(t.old_state) : cb.el("span", { class: "muted" }, "new"), " → ", cb.badge(t.new_state), " ",
      cb.el("span", { class: "muted" }, t.reason || "")))));
}

/* The state strip: colored segments for the chart range, from the transitions. */
async function renderStrip(series) {
  const svg = document.getElementById("strip");
  const start = Date.parse(series.start), end = Math.min(Date.parse(series.end), Date.now());
  let page;
  try {
    page = await cb.api(`/api/devices/${cb.devicePath(deviceId)}/transitions?limit=1000&since=${encodeURIComponent(series.start)}`);
  } catch (e) { return; }
  const before = await cb.api(`/api/devices/${cb.devicePath(deviceId)}/transitions?limit=1&until=${encodeURIComponent(series.start)}`).catch(() => ({ items: [] }));
  const changes = page.items.slice().reverse();
  let state = before.items.length ? before.items[0].new_state : null;
  let cursor = start;
  const W = 1000;
  const x = (t) => ((t - start) / (end - start)) * W;
  svg.setAttribute("viewBox", `0 0 ${W} 22`);
  svg.setAttribute("preserveAspectRatio", "none");
  const segs = [];
  const seen = new Set();
  const push = (from, to, st) => {
    if (to <= from) return;
    seen.add(st || "untracked");
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", x(from)); r.setAttribute("width", Math.max(0.5, x(to) - x(from)));
    r.setAttribute("y", 0); r.setAttribute("height", 22);
    r.setAttribute("fill", st ? STATE_COLORS[st] || "#444" : "#2a3542");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = (st || "not tracked") + " from " + new Date(from).toLocaleString();
    r.append(title);
    segs.push(r);
  };
  for (const c of changes) {
    const at = Date.parse(c.at);
    push(cursor, at, state);
    state = c.new_state; cursor = Math.max(cursor, at);
  }
  push(cursor, end, state);
  svg.replaceChildren(...segs);
  document.getElementById("strip-legend").replaceChildren(...[...seen].map((s) =>
    s === "untracked" ? cb.el("span", { class: "muted" }, "not tracked ") : cb.el("span", {}, cb.badge(s), " ")));
}

async function refresh() {
  try {
    renderDevice(await cb.api("/api/devices/" + cb.devicePath(deviceId)));
    document.getElementById("load-error").textContent = "";
  } catch (e) {
    document.getElementById("load-error").textContent = e.status === 404 ? "No device called " + deviceId + "." : e.detail;
  }
}
const refreshSoon = cb.debounce(refresh, 800);

async function refreshCharts() {
  try {
    const series = await cb.api(`/api/devices/${cb.devicePath(deviceId)}/heartbeats?range=${range}`);
    drawHeartbeatCharts(series, {
      rate: document.getElementById("chart-rate"),
      missed: document.getElementById("chart-missed"),
      latency: document.getElementById("chart-latency"),
    });
    await renderStrip(series);
  } catch (e) { /* the status panel shows errors */ }
}

/* ---- admin controls ---- */
async function change(body, done) {
  const msg = document.getElementById("manage-msg");
  msg.className = "msg"; msg.textContent = "saving…";
  try {
    const d = await cb.api("/api/devices/" + cb.devicePath(deviceId), { method: "PATCH", body });
    msg.className = "msg ok"; msg.textContent = done;
    await refresh();
    return d;
  } catch (e) {
    msg.className = "msg err"; msg.textContent = e.detail;
    return null;
  }
}

function wireControls(isAdmin) {
  const controls = document.querySelectorAll("#manage input, #manage select, #manage button");
  for (const c of controls) c.disabled = !isAdmin;
  document.getElementById("admin-note").textContent = isAdmin ? "" :
    "Read-only token: changes need an admin token (clawbeat token create --scope admin).";
  document.getElementById("manage").addEventListener("submit", (ev) => ev.preventDefault());
  document.getElementById("set-interval").addEventListener("click", () => {
    const v = parseFloat(document.getElementById("interval").value);
    if (!(v >= 0.1 && v <= 86400)) {
      const msg = document.getElementById("manage-msg");
      msg.className = "msg err"; msg.textContent = "interval: a number of seconds from 0.1 to 86400";
      return;
    }
    change({ interval: v }, `interval set to ${v} s and pushed to the device`);
  });
  document.getElementById("clear-interval").addEventListener("click", () =>
    change({ interval: null }, "override cleared: the device's own interval applies"));
  document.getElementById("set-class").addEventListener("click", () =>
    change({ class: document.getElementById("class").value }, "class changed"));
  document.getElementById("set-tags").addEventListener("click", () => {
    const tags = document.getElementById("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    change({ tags }, "tags saved");
  });
  document.getElementById("mute").addEventListener("click", async () => {
    const msg = document.getElementById("manage-msg");
    try {
      const mute = await cb.api(`/api/devices/${cb.devicePath(deviceId)}/mute`, { method: "POST", body: { minutes: 60, note: "dashboard" } });
      msg.className = "msg ok"; msg.textContent = "alerts muted until " + cb.when(mute.until) + " (state still tracked)";
    } catch (e) {
      msg.className = "msg err"; msg.textContent = e.detail;
    }
  });
  document.getElementById("maintenance").addEventListener("click", () =>
    change({ maintenance: !(device && device.maintenance) }, device && device.maintenance ? "maintenance ended" : "maintenance started"));
}

async function main() {
  cb.initTokenDialog();
  document.getElementById("device-id").textContent = deviceId;
  const me = await cb.signIn();
  const classes = await cb.api("/api/classes").catch(() => []);
  document.getElementById("class").replaceChildren(...classes.map((c) =>
    cb.el("option", { value: c.name }, c.name + (c.interval ? ` (${c.interval} s)` : ""))));
  wireControls(me.scope === "admin");
  for (const b of document.querySelectorAll("#range button")) {
    b.addEventListener("click", () => {
      range = b.dataset.range;
      for (const o of document.querySelectorAll("#range button")) o.classList.toggle("on", o === b);
      refreshCharts();
    });
  }
  cb.live({
    transition: (ev) => {
      if (ev.device !== deviceId) return;
      document.getElementById("device-state").replaceChildren(cb.badge(ev.new, true));
      document.getElementById("device-reason").textContent = "(" + ev.reason + ")";
      refreshSoon();
      refreshCharts();
    },
    resync: refresh,
  });
  cb.tickAges();
  cb.watchAlerts();
  await Promise.all([refresh(), refreshCharts()]);
  cb.follow(() => [deviceId], applyLive);
  setInterval(refresh, 10000);  // metrics, uptime and the rest
  setInterval(refreshCharts, 20000);
}

document.addEventListener("DOMContentLoaded", () => { main().catch((e) => console.error(e)); });

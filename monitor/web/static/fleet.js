/* clawbeat dashboard: the fleet page. */
"use strict";

const view = {
  q: "", state: "", klass: "", tag: "",
  sort: "state", order: "asc", offset: 0, limit: 50, range: "1h",
};
let lastSummary = null;

function readUrl() {
  const p = new URLSearchParams(location.search);
  view.q = p.get("q") || "";
  view.state = p.get("state") || "";
  view.klass = p.get("class") || "";
  view.tag = p.get("tag") || "";
  view.sort = p.get("sort") || "state";
  view.order = p.get("order") === "desc" ? "desc" : "asc";
  view.offset = Math.max(0, parseInt(p.get("offset") || "0", 10) || 0);
  view.range = ["1h", "24h", "7d"].includes(p.get("range")) ? p.get("range") : "1h";
}

function writeUrl() {
  const p = new URLSearchParams();
  if (view.q) p.set("q", view.q);
  if (view.state) p.set("state", view.state);
  if (view.klass) p.set("class", view.klass);
  if (view.tag) p.set("tag", view.tag);
  if (view.sort !== "state") p.set("sort", view.sort);
  if (view.order !== "asc") p.set("order", view.order);
  if (view.offset) p.set("offset", view.offset);
  if (view.range !== "1h") p.set("range", view.range);
  const qs = p.toString();
  history.replaceState(null, "", qs ? "?" + qs : location.pathname);
}

/* ---- state counters ---- */
function renderCounts(summary) {
  lastSummary = summary;
  const box = document.getElementById("counts");
  const card = (label, n, state) => cb.el("button", {
    type: "button",
    class: "count " + (state ? "state-" + state : "total") + (view.state === state || (!state && !view.state) ? " active" : ""),
    "data-count": state || "total",
    onclick: () => { view.state = state || ""; view.offset = 0; syncControls(); refreshTable(); renderCounts(lastSummary); },
  }, cb.el("span", { class: "n" }, n), cb.el("span", { class: "label" }, label));
  box.replaceChildren(card("all devices", summary.total, ""), ...STATES.map((s) => card(s, summary.counts[s] || 0, s)));
  const broker = document.getElementById("broker");
  broker.className = "pill " + (summary.broker_connected ? "ok" : "bad");
  broker.lastChild.textContent = summary.broker_connected ? "broker connected" : "broker disconnected";
  if (summary.warming_up) broker.lastChild.textContent += " · warming up";
}

/* ---- device table ---- */
function deviceRow(d) {
  return cb.el("tr", { "data-id": d.id },
    cb.el("td", {}, cb.el("a", { href: cb.devicePage(d.id), class: "mono" }, d.id)),
    cb.el("td", { class: "state" }, cb.badge(d.state)),
    cb.el("td", { class: "since opt", "data-ago": d.since, title: cb.when(d.since) }, cb.ago(d.since)),
    cb.el("td", { class: "seen", "data-ago": d.last_seen || "", title: cb.when(d.last_seen) }, cb.ago(d.last_seen)),
    cb.el("td", { class: "opt" }, d.class),
    cb.el("td", { class: "opt" }, cb.seconds(d.interval) + (d.interval_override !== null ? " (set)" : "")),
    cb.el("td", { class: "opt" }, ...(d.tags || []).map((t) => cb.el("span", { class: "tag" }, t))),
  );
}

async function refreshTable() {
  writeUrl();
  const p = new URLSearchParams({ sort: view.sort, order: view.order, limit: view.limit, offset: view.offset });
  if (view.q) p.set("q", view.q);
  if (view.state) p.set("state", view.state);
  if (view.klass) p.set("class", view.klass);
  if (view.tag) p.set("tag", view.tag);
  let page;
  try {
    page = await cb.api("/api/devices?" + p);
  } catch (e) {
    document.getElementById("table-note").textContent = e.detail;
    return;
  }
  document.getElementById("table-note").textContent = "";
  const body = document.querySelector("#devices tbody");
  if (!page.items.length) {
    body.replaceChildren(cb.el("tr", { class: "empty-row" }, cb.el("td", { colspan: 7 },
      page.total ? "No devices on this page." : "No devices match. Devices appear here when their first heartbeat arrives.")));
  } else {
    body.replaceChildren(...page.items.map(deviceRow));
  }
  const last = Math.min(page.offset + page.items.length, page.total);
  document.getElementById("page-info").textContent =
    page.total ? `${page.offset + 1}–${last} of ${page.total}` : "0 devices";
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= page.total;
  for (const th of document.querySelectorAll("th.sortable")) {
    th.querySelector(".arrow")?.remove();
    if (th.dataset.sort === view.sort) th.append(cb.el("span", { class: "arrow" }, view.order === "asc" ? " ▲" : " ▼"));
  }
}
const refreshTableSoon = cb.debounce(refreshTable, 1500);

/* Keep the rows shown current (state, since, last seen) from the live engine. */
function shownIds() {
  return [...document.querySelectorAll("#devices tbody tr[data-id]")].map((row) => row.dataset.id);
}

function setAgo(cell, iso) {
  if (!cell || (cell.getAttribute("data-ago") || "") === (iso || "")) return;
  cell.setAttribute("data-ago", iso || "");
  cell.title = cb.when(iso);
  cell.textContent = cb.ago(iso);
}

function applyLive(items) {
  for (const d of items) {
    const row = document.querySelector(`#devices tr[data-id="${CSS.escape(d.id)}"]`);
    if (!row) continue;
    const badge = row.querySelector("td.state .badge");
    if (!badge || badge.dataset.state !== d.state) row.querySelector("td.state").replaceChildren(cb.badge(d.state));
    setAgo(row.querySelector("td.since"), d.since);
    setAgo(row.querySelector("td.seen"), d.last_seen);
  }
}

/* A transition updates its row in place at once; the page is refetched shortly after. */
function applyTransition(ev) {
  const row = document.querySelector(`#devices tr[data-id="${CSS.escape(ev.device)}"]`);
  if (row) {
    row.querySelector("td.state").replaceChildren(cb.badge(ev.new));
    const since = row.querySelector("td.since");
    setAgo(since, ev.at);
    if (ev.last_seen) setAgo(row.querySelector("td.seen"), ev.last_seen);
    row.classList.remove("flash"); void row.offsetWidth; row.classList.add("flash");
  }
  const feed = document.getElementById("feed");
  const item = feedItem(ev);
  if (!feed.querySelector(`li[data-key="${CSS.escape(item.dataset.key)}"]`)) {
    if (feed.firstElementChild && !feed.firstElementChild.dataset.key) feed.replaceChildren();
    feed.prepend(item);
    while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
  }
  refreshTableSoon();
}

/* ---- live events panel ---- */
const FEED_LENGTH = 50;

/* ev: {device, old, new, reason, at}, as the event stream sends it. */
function feedItem(ev) {
  // The same transition from the stream and from the table: one line (times in ms).
  const key = `${ev.device}|${ev.new}|${Date.parse(ev.at)}`;
  return cb.el("li", { "data-key": key },
    cb.el("span", { class: "when", "data-ago": ev.at, title: cb.when(ev.at) }, cb.ago(ev.at)),
    cb.el("a", { href: cb.devicePage(ev.device), class: "mono" }, ev.device),
    ev.old ? cb.badge(ev.old) : null, ev.old ? "→" : null, cb.badge(ev.new),
    cb.el("span", { class: "muted" }, ev.reason));
}

/* On load, the latest stored transitions (the stream only has what happens next). */
async function loadRecentEvents() {
  let items;
  try {
    items = await cb.api("/api/transitions?limit=" + FEED_LENGTH);
  } catch (e) { return; }
  const feed = document.getElementById("feed");
  if (feed.firstElementChild && !feed.firstElementChild.dataset.key) feed.replaceChildren();
  // Anything the stream brought meanwhile is newer: stored ones go below it.
  for (const t of items) {
    const item = feedItem({ device: t.device, old: t.old_state, new: t.new_state, reason: t.reason, at: t.at });
    if (feed.querySelector(`li[data-key="${CSS.escape(item.dataset.key)}"]`)) continue;
    feed.append(item);
  }
  while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
  if (!feed.children.length) feed.append(cb.el("li", { class: "muted" }, "No state changes yet."));
}

/* ---- charts ---- */
async function refreshCharts() {
  try {
    const series = await cb.api("/api/fleet/heartbeats?range=" + view.range);
    drawHeartbeatCharts(series, {
      rate: document.getElementById("chart-rate"),
      missed: document.getElementById("chart-missed"),
      latency: document.getElementById("chart-latency"),
    });
  } catch (e) { /* shown by the table note; charts keep their last figures */ }
}

async function loadFilterOptions() {
  const [classes, tags] = await Promise.all([cb.api("/api/classes"), cb.api("/api/tags")]);
  const fill = (id, values) => {
    const sel = document.getElementById(id);
    sel.append(...values.map((v) => cb.el("option", { value: v }, v)));
  };
  fill("f-state", STATES);
  fill("f-class", classes.map((c) => c.name));
  fill("f-tag", tags);
  syncControls();
}

function syncControls() {
  document.getElementById("q").value = view.q;
  document.getElementById("f-state").value = view.state;
  document.getElementById("f-class").value = view.klass;
  document.getElementById("f-tag").value = view.tag;
  for (const b of document.querySelectorAll("#range button")) b.classList.toggle("on", b.dataset.range === view.range);
}

function wire() {
  const onFilter = () => {
    view.q = document.getElementById("q").value.trim();
    view.state = document.getElementById("f-state").value;
    view.klass = document.getElementById("f-class").value;
    view.tag = document.getElementById("f-tag").value;
    view.offset = 0;
    refreshTable();
    if (lastSummary) renderCounts(lastSummary);
  };
  document.getElementById("q").addEventListener("input", cb.debounce(onFilter, 250));
  for (const id of ["f-state", "f-class", "f-tag"]) document.getElementById(id).addEventListener("change", onFilter);
  document.getElementById("prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); refreshTable(); });
  document.getElementById("next").addEventListener("click", () => { view.offset += view.limit; refreshTable(); });
  for (const th of document.querySelectorAll("th.sortable")) {
    th.addEventListener("click", () => {
      if (view.sort === th.dataset.sort) view.order = view.order === "asc" ? "desc" : "asc";
      else { view.sort = th.dataset.sort; view.order = "asc"; }
      view.offset = 0;
      refreshTable();
    });
  }
  for (const b of document.querySelectorAll("#range button")) {
    b.addEventListener("click", () => { view.range = b.dataset.range; syncControls(); writeUrl(); refreshCharts(); });
  }
}

async function main() {
  cb.initTokenDialog();
  readUrl();
  wire();
  syncControls();
  await cb.signIn();
  cb.live({
    summary: renderCounts,
    transition: applyTransition,
    resync: () => { refreshTable(); refreshCharts(); },
  });
  cb.tickAges();
  cb.watchAlerts();
  await Promise.all([loadFilterOptions(), refreshTable(), refreshCharts(), loadRecentEvents()]);
  cb.follow(shownIds, applyLive);
  setInterval(refreshCharts, view.range === "1h" ? 20000 : 120000);
}

document.addEventListener("DOMContentLoaded", () => { main().catch((e) => console.error(e)); });

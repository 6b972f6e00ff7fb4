/* clawbeat dashboard: the cluster (replicas, partition owners, lease moves), from /api/cluster. */
"use strict";

// Replicas are told apart by colour in the partition grid: a fixed palette, by position
// in the (sorted) member list, so a colour stays put while the members do.
const PALETTE = ["#4cc2ff", "#3fb950", "#d29922", "#a371f7", "#f0883e", "#58a6ff", "#db61a2", "#56d4dd"];

function ranges(parts) {
  const out = [];
  let start = null, prev = null;
  for (const p of parts) {
    if (start !== null && p === prev + 1) { prev = p; continue; }
    if (start !== null) out.push(start === prev ? String(start) : start + "–" + prev);
    start = prev = p;
  }
  if (start !== null) out.push(start === prev ? String(start) : start + "–" + prev);
  return out.join(", ") || "—";
}

function secs(v) { return v === null || v === undefined ? "—" : v.toFixed(1) + " s"; }

function showSingle(body) {
  document.getElementById("mode").className = "pill ok";
  document.getElementById("mode").lastChild.textContent = "single replica";
  document.getElementById("cluster-note").textContent =
    "Single replica: " + body.replica + " runs alone on SQLite. Cluster mode (several replicas " +
    "sharing the fleet) needs PostgreSQL; see docs/operations.md, \"Cluster\".";
  for (const id of ["replicas-panel", "partitions-panel", "moves-panel"]) {
    document.getElementById(id).hidden = true;
  }
}

function replicaRow(m, colour, self) {
  return cb.el("tr", { "data-replica": m.owner, class: m.alive ? null : "gone" },
    cb.el("td", {},
      cb.el("span", { class: "swatch", style: null, "data-colour": colour }),
      m.replica,
      self ? cb.el("span", { class: "tag", title: "the replica this page talks to" }, "this one") : null),
    cb.el("td", {}, cb.el("span", { class: "badge " + (m.alive ? "state-online" : "state-offline"), "data-alive": String(m.alive) }, m.alive ? "live" : "gone")),
    cb.el("td", { "data-partitions": m.partitions.join(",") }, m.partitions.length + " · " + ranges(m.partitions)),
    cb.el("td", { "data-renewed": m.renewed_ago }, m.renewed_ago === null ? "—" : secs(m.renewed_ago) + " ago"),
    cb.el("td", { "data-lag": m.lag_seconds }, secs(m.lag_seconds)),
    cb.el("td", { class: "opt", title: cb.when(m.joined_at) }, cb.ago(m.joined_at)),
    cb.el("td", { class: "opt mono" }, m.owner),
  );
}

function moveItem(e) {
  const what = e.event === "release" ? "released by " + e.owner
    : e.takeover_from ? "taken over by " + e.owner + " from " + e.takeover_from + " (expired)"
    : "acquired by " + e.owner;
  return cb.el("li", { "data-move": e.event, class: e.takeover_from ? "takeover" : null },
    cb.el("span", { class: "when", "data-ago": e.at, title: cb.when(e.at) }, cb.ago(e.at)),
    cb.el("span", {}, "partition " + e.partition + " " + what),
    cb.el("span", { class: "tag" }, "epoch " + e.epoch));
}

function showCluster(body) {
  const live = body.members.filter((m) => m.alive);
  const pill = document.getElementById("mode");
  pill.className = "pill " + (body.unowned.length ? "warn" : "ok");
  pill.lastChild.textContent = "cluster · " + live.length + " live";
  document.getElementById("cluster-note").textContent =
    "Answered by " + body.replica + " from the database's lease tables; every replica shows the same.";
  const colours = new Map(body.members.map((m, i) => [m.owner, PALETTE[i % PALETTE.length]]));
  const tbody = document.querySelector("#replicas tbody");
  tbody.replaceChildren(...body.members.map((m) => replicaRow(m, colours.get(m.owner), m.owner === body.owner)));
  for (const swatch of tbody.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  document.getElementById("replicas-note").textContent =
    live.length + " live" + (body.members.length > live.length ? ", " + (body.members.length - live.length) + " gone" : "");
  document.getElementById("partitions-note").textContent = body.partitions + " partitions" +
    (body.unowned.length ? ", " + body.unowned.length + " unowned (" + ranges(body.unowned) + ")" : ", every one owned");
  const grid = document.getElementById("partitions");
  grid.replaceChildren(...body.leases.map((p) => {
    const cell = cb.el("span", {
      class: "partition" + (p.owner ? "" : " unowned"),
      "data-partition": p.partition,
      "data-owner": p.owner || "",
      title: p.owner
        ? "partition " + p.partition + ": " + p.owner + ", epoch " + p.epoch + ", held " + secs(p.held_for) + ", expires in " + secs(p.expires_in)
        : "partition " + p.partition + ": nobody (epoch " + p.epoch + ")",
    }, p.partition);
    if (p.owner) cell.style.background = colours.get(p.owner) || "var(--muted)";
    return cell;
  }));
  const moves = document.getElementById("moves");
  moves.replaceChildren(...(body.recent.length ? body.recent.map(moveItem) : [cb.el("li", { class: "muted" }, "No lease has moved yet.")]));
}

async function refresh() {
  const msg = document.getElementById("cluster-msg");
  try {
    const body = await cb.api("/api/cluster");
    msg.textContent = "";
    if (body.mode === "single") showSingle(body); else showCluster(body);
  } catch (e) {
    msg.textContent = "Cannot read the cluster: " + e.detail;
  }
}

async function main() {
  cb.initTokenDialog();
  await cb.signIn();
  cb.watchAlerts();
  cb.tickAges();
  await refresh();
  setInterval(refresh, 2000);  // renewals every couple of seconds: ages and owners move
}

document.addEventListener("DOMContentLoaded", () => { main().catch((e) => console.error(e)); });

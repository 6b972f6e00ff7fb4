/* clawbeat dashboard: alerts (open and acknowledged), deliveries to channels. */
"use strict";

let isAdmin = false;

function level(severity) {
  return cb.el("span", { class: "badge sev-" + severity, "data-severity": severity }, severity);
}

function deliveryBadge(d) {
  // pending with attempts behind it is a retry; failed means the monitor gave up.
  const shown = d.state === "pending" && d.attempts > 0 ? "retrying" : d.state;
  return cb.el("span", { class: "badge delivery-" + shown, "data-delivery": shown }, shown);
}

function subject(a) {
  const title = a.title.replace(/^\[clawbeat\]\s*/, "");
  if (!a.device_id) return cb.el("span", {}, title);
  return cb.el("a", { href: cb.devicePage(a.device_id) }, title);
}

function ackCell(a) {
  if (a.acknowledged_at) {
    return cb.el("td", { class: "ack" },
      cb.el("span", { "data-ago": a.acknowledged_at, title: cb.when(a.acknowledged_at) }, cb.ago(a.acknowledged_at)),
      cb.el("span", { class: "muted" }, " by " + (a.acknowledged_by || "?")));
  }
  return cb.el("td", { class: "ack" }, cb.el("button", {
    type: "button", class: "primary", "data-ack": a.id, disabled: !isAdmin,
    title: isAdmin ? "Stop repeats and escalation (the recovery is still sent)" : "needs an admin token",
    onclick: () => acknowledge(a),
  }, "Acknowledge"));
}

function alertRow(a) {
  return cb.el("tr", { "data-alert": a.id, class: a.acknowledged_at ? "acknowledged" : null },
    cb.el("td", {}, level(a.severity)),
    cb.el("td", {}, subject(a), a.flapping ? cb.el("span", { class: "tag" }, "flapping") : null),
    cb.el("td", {}, cb.badge(a.state)),
    cb.el("td", { "data-ago": a.opened_at, title: cb.when(a.opened_at) }, cb.ago(a.opened_at)),
    ackCell(a),
    cb.el("td", { class: "opt" }, a.repeats),
    cb.el("td", { class: "opt" }, ...a.channels.map((c) => cb.el("span", { class: "tag" }, c))),
  );
}

function deliveryRow(d) {
  const when = d.state === "sent" ? d.sent_at : d.state === "failed" ? null : d.next_attempt_at;
  return cb.el("tr", { "data-delivery-id": d.id },
    cb.el("td", { "data-ago": d.created_at, title: cb.when(d.created_at) }, cb.ago(d.created_at)),
    cb.el("td", { title: d.title }, "#" + d.alert_id),
    cb.el("td", { class: "mono" }, d.channel),
    cb.el("td", { class: "opt" }, d.event),
    cb.el("td", {}, deliveryBadge(d)),
    cb.el("td", { class: "opt" }, d.attempts),
    cb.el("td", { class: "opt" }, when ? cb.when(when) : "—"),
    cb.el("td", { class: "error" }, d.last_error || ""),
  );
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows
    : [cb.el("tr", { class: "empty-row" }, cb.el("td", { colspan: columns }, empty))]));
}

async function refresh() {
  let open, deliveries, resolved;
  try {
    [open, deliveries, resolved] = await Promise.all([
      cb.api("/api/alerts?status=open&limit=500"),
      cb.api("/api/deliveries?limit=50"),
      cb.api("/api/alerts?status=resolved&limit=20"),
    ]);
  } catch (e) {
    document.getElementById("open-note").textContent = e.detail;
    return;
  }
  // Unacknowledged first, then newest first (the API's order).
  open.sort((a, b) => (a.acknowledged_at ? 1 : 0) - (b.acknowledged_at ? 1 : 0));
  const waiting = open.filter((a) => !a.acknowledged_at).length;
  document.getElementById("open-note").textContent =
    open.length ? `${open.length} open · ${waiting} not acknowledged` : "";
  fill(document.querySelector("#open-alerts tbody"), open.map(alertRow),
    "No open alerts. Alerts open when a device goes stale, offline or lost (see the alert rules).", 7);
  const failed = deliveries.filter((d) => d.state === "failed").length;
  document.getElementById("deliveries-note").textContent = failed ? `${failed} gave up` : "";
  fill(document.querySelector("#deliveries tbody"), deliveries.map(deliveryRow),
    "Nothing sent yet. Add a channel with clawbeat channels add NAME URL.", 8);
  document.getElementById("resolved").replaceChildren(...(resolved.length
    ? resolved.map((a) => cb.el("li", {},
        cb.el("span", { class: "when", "data-ago": a.resolved_at, title: cb.when(a.resolved_at) }, cb.ago(a.resolved_at)),
        level(a.severity), subject(a)))
    : [cb.el("li", { class: "muted" }, "None yet.")]));
}
const refreshSoon = cb.debounce(refresh, 1500);

async function acknowledge(a) {
  const msg = document.getElementById("ack-msg");
  msg.className = "msg"; msg.textContent = "acknowledging…";
  try {
    await cb.api(`/api/alerts/${a.id}/acknowledge`, { method: "POST" });
    msg.className = "msg ok";
    msg.textContent = `alert #${a.id} acknowledged: no more repeats or escalation (the recovery is still sent)`;
  } catch (e) {
    msg.className = "msg err"; msg.textContent = e.detail;
  }
  await refresh();
}

async function main() {
  cb.initTokenDialog();
  const me = await cb.signIn();
  isAdmin = me.scope === "admin";
  document.getElementById("admin-note").textContent = isAdmin ? "" :
    "Read-only token: acknowledging needs an admin token (clawbeat token create --scope admin).";
  cb.live({ transition: refreshSoon, resync: refresh });
  cb.tickAges();
  await refresh();
  setInterval(refresh, 5000);  // deliveries are retried and sent without a transition
}

document.addEventListener("DOMContentLoaded", () => { main().catch((e) => console.error(e)); });

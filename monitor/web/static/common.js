/* clawbeat dashboard: shared helpers (token, API calls, live events, formatting). */
"use strict";

const TOKEN_KEY = "clawbeat.token";
const STATES = ["online", "late", "stale", "offline", "lost", "unknown", "maintenance"];

const cb = {
  me: null,
  // The monitor's clock minus this browser's (ms), from the live polls: ages ("3s ago")
  // are the monitor's view, whatever this computer's clock says.
  skew: 0,
  now() { return Date.now() + cb.skew; },

  token() { return localStorage.getItem(TOKEN_KEY) || ""; },
  setToken(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value.trim());
    else localStorage.removeItem(TOKEN_KEY);
  },

  /* fetch JSON from the API with the bearer token; throws {status, detail}. */
  async api(path, options = {}) {
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (cb.token()) headers.Authorization = "Bearer " + cb.token();
    if (options.body !== undefined && typeof options.body !== "string") {
      headers["Content-Type"] = "application/json";
      options = Object.assign({}, options, { body: JSON.stringify(options.body) });
    }
    let response;
    try {
      response = await fetch(path, Object.assign({}, options, { headers }));
    } catch (e) {
      throw { status: 0, detail: "the monitor does not answer (" + e.message + ")" };
    }
    if (response.status === 204) return null;
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : response.statusText;
      if (response.status === 401) cb.askToken("Your token was refused: " + detail);
      throw { status: response.status, detail };
    }
    return body;
  },

  /* Resolve the token's identity, asking for a token until one works. */
  async signIn() {
    if (!cb.token()) {
      cb.askToken();
      return new Promise(() => {});  // the dialog reloads the page
    }
    cb.me = await cb.api("/api/me");
    const who = document.getElementById("who");
    if (who) {
      who.textContent = cb.me.name + " · " + cb.me.scope;
      who.title = "Signed in with an API token. Click to change it.";
    }
    return cb.me;
  },

  askToken(message) {
    const dialog = document.getElementById("token-dialog");
    if (!dialog || dialog.open) return;
    document.getElementById("token-msg").textContent = message || "";
    document.getElementById("token-input").value = "";
    dialog.showModal();
  },

  initTokenDialog() {
    const dialog = document.getElementById("token-dialog");
    document.getElementById("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      cb.setToken(document.getElementById("token-input").value);
      dialog.close();
      location.reload();
    });
    document.getElementById("token-forget").addEventListener("click", () => {
      cb.setToken("");
      location.reload();
    });
    const who = document.getElementById("who");
    if (who) who.addEventListener("click", () => cb.askToken());
  },

  /* Server-sent events with reconnection; handlers: {summary, transition, resync}. */
  live(handlers) {
    const pill = document.getElementById("live");
    const show = (cls, text) => { if (pill) { pill.className = "pill " + cls; pill.lastChild.textContent = text; } };
    let source = null;
    const open = () => {
      source = new EventSource("/api/events?token=" + encodeURIComponent(cb.token()));
      source.addEventListener("open", () => show("ok", "live"));
      source.addEventListener("error", () => {
        show("warn", "reconnecting…");
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 3000);
      });
      for (const [kind, fn] of Object.entries(handlers)) {
        source.addEventListener(kind, (ev) => fn(JSON.parse(ev.data)));
      }
    };
    open();
  },

  /* Live figures of the devices a page shows, every `every` ms while the page is visible.
   * The event stream carries transitions only, so a device that keeps beating would
   * otherwise keep the last_seen the page loaded with. ids() -> ids; apply(items). */
  follow(ids, apply, every = 1000) {
    let busy = false;
    const poll = async () => {
      const wanted = ids();
      if (busy || document.hidden || !wanted.length) return;
      busy = true;
      try {
        const query = new URLSearchParams(wanted.slice(0, 200).map((id) => ["id", id]));
        const sent = Date.now();
        const live = await cb.api("/api/live?" + query);
        const back = Date.now();
        cb.skew = Date.parse(live.at) - (sent + back) / 2;
        apply(live.items);
      } catch (e) { /* the next poll tries again; the live pill shows a lost monitor */ }
      finally { busy = false; }
    };
    setInterval(poll, every);
    poll();
  },

  /* A device id as a URL path segment. Browsers drop "." and ".." segments (encoded or
   * not), so those two ids are written "~." and "~.." (the monitor drops a leading ~). */
  devicePath(id) { return id === "." || id === ".." ? "~" + id : encodeURIComponent(id); },
  devicePage(id) { return "/devices/" + cb.devicePath(id); },

  /* The header's "Alerts" link shows how many alerts are open and not acknowledged. */
  watchAlerts() {
    const link = document.getElementById("alerts-link");
    if (!link) return;
    const update = async () => {
      if (document.hidden) return;
      try {
        const open = await cb.api("/api/alerts?status=open&limit=1000");
        const waiting = open.filter((a) => !a.acknowledged_at).length;
        link.querySelector(".n")?.remove();
        if (waiting) link.append(cb.el("span", { class: "n", title: "open, not acknowledged" }, waiting >= 1000 ? "1000+" : waiting));
      } catch (e) { /* shown elsewhere */ }
    };
    update();
    setInterval(update, 10000);
  },

  /* ---- formatting ---- */
  ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (cb.now() - Date.parse(iso)) / 1000);
    if (s < 1) return "just now";
    if (s < 60) return Math.floor(s) + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s ago";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m ago";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h ago";
  },
  when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  },
  seconds(v) {
    if (v === null || v === undefined) return "—";
    if (v < 120) return (Math.round(v * 100) / 100) + " s";
    if (v < 7200) return (Math.round(v / 6) / 10) + " min";
    return (Math.round(v / 360) / 10) + " h";
  },

  /* DOM: el("td", {class: "x"}, "text", child, ...) — text only, never HTML. */
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },
  badge(state, big) {
    return cb.el("span", { class: "badge state-" + state + (big ? " big" : ""), "data-state": state }, state);
  },

  /* Relative times ("3s ago") refresh every second: any element with data-ago. */
  tickAges() {
    setInterval(() => {
      for (const node of document.querySelectorAll("[data-ago]")) {
        node.textContent = cb.ago(node.getAttribute("data-ago"));
      }
    }, 1000);
  },

  debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  },
};

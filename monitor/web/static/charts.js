/* clawbeat dashboard: small SVG time-series charts (bars and lines), no dependencies. */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function niceStep(max, ticks) {
  const raw = max / ticks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return step * mag;
}

function fmtNumber(v) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtTime(ms, spanMs) {
  const d = new Date(ms);
  if (spanMs > 2 * 86400e3) {
    return d.toLocaleDateString(undefined, { weekday: "short" }) + " " + String(d.getHours()).padStart(2, "0") + "h";
  }
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

/*
 * Draw into a .chart element:
 *   spec = {start, end (ms), unit, series: [{name, color, kind: "bar"|"line", points: [[ms, v|null]]}]}
 * Redraws itself when the element is resized (phones turning sideways).
 */
function drawChart(box, spec) {
  box._spec = spec;
  if (!box._observed && window.ResizeObserver) {
    box._observed = true;
    new ResizeObserver(() => { if (box._spec) paint(box, box._spec); }).observe(box);
  }
  paint(box, spec);
}

function paint(box, spec) {
  const svg = box.querySelector("svg");
  const tip = box.querySelector(".tip");
  const W = Math.max(200, Math.floor(svg.clientWidth || box.clientWidth || 600));
  const H = 170;
  const m = { l: 42, r: 8, t: 8, b: 22 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();

  const legend = box.querySelector(".legend");
  if (legend) {
    legend.replaceChildren(...spec.series.map((s) => {
      const item = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = s.color;
      item.append(sw, document.createTextNode(s.name));
      return item;
    }));
  }

  const span = spec.end - spec.start;
  const x = (t) => m.l + ((t - spec.start) / span) * pw;
  let max = 0, any = false;
  for (const s of spec.series) for (const [, v] of s.points) {
    if (v !== null && v !== undefined) { max = Math.max(max, v); if (v > 0) any = true; }
  }
  const step = niceStep(max > 0 ? max : 1, 4);
  const top = Math.max(step, Math.ceil((max > 0 ? max : 1) / step) * step);
  const y = (v) => m.t + ph - (v / top) * ph;

  const grid = svgEl("g", { class: "grid" });
  const axis = svgEl("g", { class: "axis" });
  for (let v = 0; v <= top + 1e-9; v += step) {
    grid.append(svgEl("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    const label = svgEl("text", { x: m.l - 6, y: y(v) + 3, "text-anchor": "end" });
    label.textContent = fmtNumber(v);
    axis.append(label);
  }
  const xTicks = Math.max(2, Math.min(6, Math.floor(pw / 90)));
  for (let i = 0; i <= xTicks; i++) {
    const t = spec.start + (span * i) / xTicks;
    const label = svgEl("text", {
      x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === xTicks ? "end" : "middle",
    });
    label.textContent = fmtTime(t, span);
    axis.append(label);
  }
  svg.append(grid, axis);

  for (const s of spec.series) {
    const pts = s.points;
    if (!pts.length) continue;
    const bucketMs = pts.length > 1 ? pts[1][0] - pts[0][0] : span;
    if (s.kind === "bar") {
      const g = svgEl("g", { fill: s.color });
      const bw = Math.max(1, (bucketMs / span) * pw - 1);
      for (const [t, v] of pts) {
        if (!v) continue;
        g.append(svgEl("rect", { x: x(t) + 0.5, y: y(v), width: bw, height: Math.max(1, y(0) - y(v)), rx: 1 }));
      }
      svg.append(g);
    } else {
      let d = "", pen = false;
      for (const [t, v] of pts) {
        if (v === null || v === undefined) { pen = false; continue; }
        const px = x(t + bucketMs / 2), py = y(v);
        d += (pen ? "L" : "M") + px.toFixed(1) + " " + py.toFixed(1);
        pen = true;
      }
      if (d) svg.append(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round" }));
      const sparse = pts.filter((p) => p[1] !== null && p[1] !== undefined);
      if (sparse.length <= 3) {
        for (const [t, v] of sparse) svg.append(svgEl("circle", { cx: x(t + bucketMs / 2), cy: y(v), r: 3, fill: s.color }));
      }
    }
  }

  if (!any) {
    const empty = svgEl("text", { x: m.l + pw / 2, y: m.t + ph / 2, "text-anchor": "middle", class: "empty" });
    empty.textContent = spec.emptyText || "no data in this range";
    svg.append(empty);
  }

  // Hover: a cursor line and the values of the bucket under the pointer.
  const cursor = svgEl("line", { y1: m.t, y2: m.t + ph, stroke: "#8b98a5", "stroke-dasharray": "3 3", visibility: "hidden" });
  const overlay = svgEl("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent" });
  svg.append(cursor, overlay);
  const first = spec.series.find((s) => s.points.length);
  const hide = () => { cursor.setAttribute("visibility", "hidden"); if (tip) tip.style.display = "none"; };
  overlay.addEventListener("mouseleave", hide);
  overlay.addEventListener("pointermove", (ev) => {
    if (!first || !tip) return;
    const rect = svg.getBoundingClientRect();
    const px = ((ev.clientX - rect.left) / rect.width) * W;
    const t = spec.start + ((px - m.l) / pw) * span;
    let idx = 0, best = Infinity;
    first.points.forEach(([pt], i) => { const dd = Math.abs(pt - t); if (dd < best) { best = dd; idx = i; } });
    const bt = first.points[idx][0];
    cursor.setAttribute("x1", x(bt)); cursor.setAttribute("x2", x(bt));
    cursor.setAttribute("visibility", "visible");
    tip.replaceChildren(document.createTextNode(new Date(bt).toLocaleString()));
    for (const s of spec.series) {
      const v = s.points[idx] ? s.points[idx][1] : null;
      const line = document.createElement("div");
      line.style.color = s.color;
      line.textContent = s.name + ": " + fmtNumber(v) + (v === null || v === undefined ? "" : " " + (s.unit || spec.unit || ""));
      tip.append(line);
    }
    tip.style.display = "block";
    const left = Math.min(Math.max(0, (x(bt) / W) * rect.width + 12), rect.width - tip.offsetWidth);
    tip.style.left = left + "px";
    tip.style.top = "34px";
  });
}

/* The three heartbeat charts from a SeriesOut body. */
function drawHeartbeatCharts(series, boxes) {
  const start = Date.parse(series.start), end = Date.parse(series.end);
  const at = (p) => Date.parse(p.t);
  const perMinute = series.bucket_seconds === 60 ? "heartbeats" : "heartbeats / min (avg)";
  drawChart(boxes.rate, {
    start, end, unit: "/min",
    series: [{ name: perMinute, color: "#3fb950", kind: "bar", points: series.points.map((p) => [at(p), p.per_minute]) }],
    emptyText: "no heartbeats in this range",
  });
  drawChart(boxes.missed, {
    start, end, unit: "",
    series: [{ name: "missed heartbeats", color: "#f85149", kind: "bar", points: series.points.map((p) => [at(p), p.missed]) }],
    emptyText: "no missed heartbeats",
  });
  drawChart(boxes.latency, {
    start, end, unit: "ms",
    series: [
      { name: "latency avg", color: "#4cc2ff", kind: "line", points: series.points.map((p) => [at(p), p.latency_avg_ms]) },
      { name: "jitter avg", color: "#d29922", kind: "line", points: series.points.map((p) => [at(p), p.jitter_avg_ms]) },
      { name: "latency max", color: "#a371f7", kind: "line", points: series.points.map((p) => [at(p), p.latency_max_ms]) },
    ],
    emptyText: "no timing figures (devices send ts for latency)",
  });
}

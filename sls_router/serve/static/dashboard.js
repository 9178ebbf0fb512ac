// The sls-router dashboard: polls /dashboard/data and draws with inline SVG (no library).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#3a6fd8", "#2e8b57", "#d98b2b", "#8e5bd8", "#d9534f", "#1f9bb0",
                 "#a0762b", "#c2418f", "#5f7a1f", "#6b7385"];
const POLL_MS = 2000;

// the same formats the README and the tests use
const fmt = {
  count: (n) => String(Math.round(n)),
  usd: (x) => "$" + x.toFixed(6),
  rate: (x) => (100 * x).toFixed(1) + "%",
  time: (t) => new Date(t * 1000).toLocaleTimeString(),
};

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function frame(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = svg.clientWidth || 400;
  const height = svg.clientHeight || 180;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  return { width, height, left: 56, right: 8, top: 8, bottom: 20 };
}

function axes(svg, box, maxY, label, t0, t1) {
  const y0 = box.height - box.bottom;
  el("line", { x1: box.left, y1: y0, x2: box.width - box.right, y2: y0, stroke: "#e3e6ec" }, svg);
  for (const f of [0, 0.5, 1]) {
    const y = y0 - f * (y0 - box.top);
    el("line", { x1: box.left, y1: y, x2: box.width - box.right, y2: y, stroke: "#f0f1f4" }, svg);
    el("text", { x: box.left - 4, y: y + 3, "text-anchor": "end" }, svg).textContent =
      label(maxY * f);
  }
  if (t0 !== undefined) {
    el("text", { x: box.left, y: box.height - 4 }, svg).textContent = fmt.time(t0);
    el("text", { x: box.width - box.right, y: box.height - 4, "text-anchor": "end" }, svg)
      .textContent = fmt.time(t1);
  }
}

function scales(box, n, maxY) {
  const span = box.width - box.left - box.right;
  const x = (i) => box.left + (n <= 1 ? span / 2 : (span * i) / (n - 1));
  const y = (v) => box.height - box.bottom - (maxY > 0 ? (v / maxY) : 0) *
    (box.height - box.bottom - box.top);
  return { x, y };
}

function line(svg, points, color) {
  if (points.length === 0) return;
  const d = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`);
  el("path", { d: d.join(" "), fill: "none", stroke: color, "stroke-width": 2 }, svg);
  if (points.length === 1) el("circle", { cx: points[0][0], cy: points[0][1], r: 3, fill: color }, svg);
}

function drawSpend(series) {
  const svg = document.getElementById("spend-chart");
  const box = frame(svg);
  let spend = 0;
  let reference = 0;
  const rows = series.map((b) => {
    spend += b.spend_usd;
    reference += b.reference_usd;
    return [spend, reference, reference - spend];
  });
  const maxY = Math.max(1e-9, ...rows.flat());
  const { x, y } = scales(box, rows.length, maxY);
  axes(svg, box, maxY, (v) => "$" + v.toPrecision(2), series[0]?.start,
       series[series.length - 1]?.start);
  line(svg, rows.map((r, i) => [x(i), y(r[1])]), "#9aa3b5");
  line(svg, rows.map((r, i) => [x(i), y(r[0])]), "#d9534f");
  line(svg, rows.map((r, i) => [x(i), y(Math.max(0, r[2]))]), "#2e8b57");
}

function drawHits(series) {
  const svg = document.getElementById("hit-chart");
  const box = frame(svg);
  const rates = series.map((b) => (b.requests ? b.cache_hits / b.requests : 0));
  const { x, y } = scales(box, rates.length, 1);
  axes(svg, box, 1, fmt.rate, series[0]?.start, series[series.length - 1]?.start);
  line(svg, rates.map((r, i) => [x(i), y(r)]), "#3a6fd8");
  // the estimated wrong-hit rate: hits judged wrong / judged hits, cumulative
  const wrong = [];
  series.forEach((b, i) => {
    const judged = b.wrong_hits + b.right_hits;
    if (judged > 0) wrong.push([x(i), y(b.wrong_hits / judged)]);
  });
  line(svg, wrong, "#d98b2b");
}

function drawModels(series, models) {
  const svg = document.getElementById("model-chart");
  const box = frame(svg);
  const colour = (m) => PALETTE[models.indexOf(m) % PALETTE.length];
  const legend = document.getElementById("model-legend");
  legend.textContent = "";
  for (const m of models) {
    const span = document.createElement("span");
    span.style.setProperty("--swatch", colour(m));
    span.textContent = m;
    legend.appendChild(span);
  }
  axes(svg, box, 1, fmt.rate, series[0]?.start, series[series.length - 1]?.start);
  const span = box.width - box.left - box.right;
  const width = series.length ? span / series.length : 0;
  const height = box.height - box.bottom - box.top;
  series.forEach((b, i) => {
    let acc = 0;
    for (const m of models) {
      const share = b.requests ? (b.models[m] || 0) / b.requests : 0;
      if (share <= 0) continue;
      el("rect", {
        x: box.left + i * width + 0.5,
        y: box.top + height * (1 - acc - share),
        width: Math.max(1, width - 1),
        height: height * share,
        fill: colour(m),
      }, svg);
      acc += share;
    }
  });
}

function drawRecent(recent) {
  const body = document.getElementById("recent");
  body.textContent = "";
  document.getElementById("recent-empty").style.display = recent.length ? "none" : "block";
  for (const r of recent.slice(0, 25)) {
    const row = document.createElement("tr");
    const cells = [
      fmt.time(r.time),
      r.model + (r.pinned ? " (pinned)" : ""),
      r.cache_hit ? "hit" : "miss",
      r.tried.join(" > ") || "-",
      r.predicted_quality.toFixed(2),
      r.cost_usd.toFixed(6),
      r.cache_hit ? "-" : r.latency_s.toFixed(2) + (r.latency_modelled ? " (modelled)" : ""),
      r.overhead_ms.toFixed(1),
      r.request_id,
    ];
    cells.forEach((value, i) => {
      const cell = document.createElement("td");
      cell.textContent = value;
      if (i === 2 && r.cache_hit) cell.className = "hit";
      row.appendChild(cell);
    });
    body.appendChild(row);
  }
}

function render(data) {
  const t = data.totals;
  text("requests", fmt.count(t.requests));
  text("hit-rate", fmt.rate(t.cache_hit_rate));
  text("wrong-rate", t.judged_hits ? fmt.rate(t.wrong_hit_rate) : "n/a");
  text("spend", fmt.usd(t.spend_usd));
  text("savings", fmt.usd(t.savings_usd));
  text("savings-label", "Est. savings vs " + (t.reference_model || "paying full price"));
  text("reference-legend", t.reference_model || "reference");
  text("feedback", fmt.count(t.feedback));
  text("refused", fmt.count(t.refused));
  text("overhead", data.overhead_ms.n
    ? `${data.overhead_ms.p50.toFixed(1)} / ${data.overhead_ms.p99.toFixed(1)} ms` : "-");
  text("breakers", t.breakers_open.length ? t.breakers_open.join(", ") : "none");
  drawSpend(data.series);
  drawHits(data.series);
  drawModels(data.series, data.models);
  drawRecent(data.recent);
  text("status", `${data.models.length} models; updated ${fmt.time(data.now)}`);
}

// with an [operator] key in pool.toml the data needs it: asked once, kept for the tab
const KEY_ITEM = "sls-operator-key";

async function fetchData() {
  const key = sessionStorage.getItem(KEY_ITEM);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  const response = await fetch("/dashboard/data", { cache: "no-store", headers });
  if (response.status === 401) {
    const given = window.prompt("The operator's key (pool.toml [operator])");
    if (given) {
      sessionStorage.setItem(KEY_ITEM, given.trim());
      return fetchData();
    }
  }
  return response;
}

async function poll() {
  try {
    const response = await fetchData();
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (error) {
    text("status", "cannot reach the server (" + error.message + "); retrying");
  }
  setTimeout(poll, POLL_MS);
}

poll();

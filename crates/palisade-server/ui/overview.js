// Overview: the counters of /api/stats and /metrics, turned into rates by
// the difference between two polls, and a chart of the last minutes.

import { get, metrics } from "./api.js";
import { el, rate, rows, table } from "./dom.js";

/** Samples kept for the chart: five minutes at one poll every two seconds. */
const KEEP = 150;
const SERIES = [
  ["connections", "open connections", "#1f5fbf"],
  ["in", "messages in/s", "#2e7d32"],
  ["out", "messages out/s", "#b26a00"],
];

let parts = null;
let last = null;
const samples = [];

export function init(root) {
  const tiles = el("div", { class: "tiles", "data-testid": "tiles" });
  const refusals = table(["code", { label: "per second", num: true }, { label: "total", num: true }], "refusals");
  const handshakes = table(["reason", { label: "per second", num: true }, { label: "total", num: true }], "handshakes");
  const chart = el("canvas", { width: 900, height: 180, "data-testid": "chart" });
  const legend = el("p", { class: "legend" }, SERIES.map(([key, label]) => el("span", { class: key }, `— ${label}`)));
  root.replaceChildren(
    el("h2", {}, "Overview"),
    tiles,
    el("h2", {}, "The last minutes"),
    chart,
    legend,
    el(
      "div",
      { class: "columns" },
      el("div", {}, el("h2", {}, "Refused requests, by error code"), refusals.node),
      el("div", {}, el("h2", {}, "Refused handshakes, by reason"), handshakes.node),
    ),
  );
  parts = { tiles, refusals: refusals.body, handshakes: handshakes.body, chart };
}

/** `{name: {labelValue|"": number}}` from Prometheus text, for the series shown here. */
function parseMetrics(text) {
  const out = {};
  for (const line of (text ?? "").split("\n")) {
    const m = /^(palisade_[a-z_]+)(?:\{[a-z_]+="([^"]*)"\})? ([0-9.eE+-]+)$/.exec(line);
    if (!m) continue;
    (out[m[1]] ??= {})[m[2] ?? ""] = Number(m[3]);
  }
  return out;
}

function perSecond(now, before, seconds) {
  if (before === undefined || before === null || seconds <= 0) return null;
  return Math.max(0, (now - before) / seconds);
}

export async function refresh() {
  const [stats, text] = await Promise.all([get("/api/stats"), metrics()]);
  const m = parseMetrics(text);
  const at = Date.now();
  const seconds = last ? (at - last.at) / 1000 : 0;
  const total = (name, label = "") => m[name]?.[label];
  const was = (name, label = "") => last?.m[name]?.[label];
  const r = (name, label = "") => {
    const now = total(name, label);
    const before = was(name, label);
    return now === undefined || before === undefined ? null : perSecond(now, before, seconds);
  };
  const sum = (values) => Object.values(values ?? {}).reduce((a, b) => a + b, 0);
  const refusalsPerSecond = last ? perSecond(sum(m.palisade_rejections_total), sum(last.m.palisade_rejections_total), seconds) : null;
  const refusedTotal = Object.values(stats.refused).reduce((a, b) => a + b, 0);
  const refusedPerSecond = last ? perSecond(refusedTotal, last.refusedTotal, seconds) : null;
  const shown = (v) => (v === null || v === undefined ? "…" : rate(v));
  const tile = (label, value, id) => el("div", { class: "tile", "data-testid": id }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  rows(parts.tiles, [
    tile("open connections", stats.connections_open, "connections_open"),
    tile("messages in/s", shown(r("palisade_messages_in_total")), "messages_in"),
    tile("messages out/s", shown(r("palisade_messages_out_total")), "messages_out"),
    tile("refused requests/s", shown(refusalsPerSecond), "refusals_rate"),
    tile("refusals/s, every kind", shown(refusedPerSecond), "refused_rate"),
    tile("bans in force", stats.bans_active, "bans_active"),
    tile("bans issued", stats.bans_issued, "bans_issued"),
    tile("audit records dropped", stats.audit_dropped, "audit_dropped"),
  ]);
  const byLabel = (name) =>
    Object.entries(m[name] ?? {})
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([label, n]) => el("tr", {}, el("td", {}, label), el("td", { class: "num" }, shown(r(name, label))), el("td", { class: "num" }, n)));
  rows(parts.refusals, byLabel("palisade_rejections_total"));
  rows(parts.handshakes, byLabel("palisade_handshakes_refused_total"));
  samples.push({ connections: stats.connections_open, in: r("palisade_messages_in_total") ?? 0, out: r("palisade_messages_out_total") ?? 0 });
  if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
  parts.chart.dataset.samples = String(samples.length);
  draw(parts.chart);
  last = { at, m, refusedTotal };
}

/** Each series on its own scale (its maximum at the top), newest at the right. */
function draw(canvas) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  g.strokeStyle = "#d8dde3";
  g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    g.beginPath();
    g.moveTo(0, (height * i) / 4);
    g.lineTo(width, (height * i) / 4);
    g.stroke();
  }
  const step = width / (KEEP - 1);
  const x0 = width - step * (samples.length - 1);
  for (const [key, , color] of SERIES) {
    const max = Math.max(1, ...samples.map((s) => s[key]));
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    samples.forEach((s, i) => {
      const y = height - 4 - ((height - 8) * s[key]) / max;
      if (i === 0) g.moveTo(x0, y);
      else g.lineTo(x0 + i * step, y);
    });
    g.stroke();
    g.fillStyle = color;
    g.fillText(`${key} max ${rate(max)}`, 6, 12 + 12 * SERIES.findIndex((s) => s[0] === key));
  }
}

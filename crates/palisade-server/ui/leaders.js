// Anomaly leaders: the addresses and users with the highest anomaly scores
// now (they decay with abuse.score_half_life), against the thresholds at
// which the guard restricts, disconnects and bans.

import { get } from "./api.js";
import { el, rows, table } from "./dom.js";

let parts = null;

export function init(root) {
  const ips = table(["address", { label: "score", num: true }], "leaders-ips");
  const users = table(["user", { label: "score", num: true }], "leaders-users");
  const limits = el("p", { class: "hint", "data-testid": "leaders-limits" });
  root.replaceChildren(
    el("h2", {}, "Anomaly leaders"),
    limits,
    el("div", { class: "columns" }, el("div", {}, el("h2", {}, "By address"), ips.node), el("div", {}, el("h2", {}, "By user"), users.node)),
  );
  parts = { ips: ips.body, users: users.body, limits };
}

function row(name, score, page) {
  const level = score >= page.ban_at ? "critical" : score >= page.restrict_at ? "warning" : undefined;
  return el("tr", { dataset: { name } }, el("td", {}, name), el("td", { class: level ? `num sev-${level}` : "num" }, score.toFixed(2)));
}

export async function refresh() {
  const page = await get("/api/leaders");
  parts.limits.textContent = `Restricted at ${page.restrict_at}, disconnected at ${page.disconnect_at}, banned at ${page.ban_at}.`;
  rows(parts.ips, page.ips.map((l) => row(l.ip, l.score, page)));
  rows(parts.users, page.users.map((l) => row(l.user, l.score, page)));
}

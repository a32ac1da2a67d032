// Alerts: the last operator alerts the server raised (bans, refusal and
// authentication-failure floods, an audit chain break or gap), newest
// first, and the webhook queue's state, from GET /api/alerts. The server
// keeps them (alerts.keep); this panel only shows them.

import { get } from "./api.js";
import { el, rows, table, when } from "./dom.js";

let parts = null;

export function init(root) {
  const list = table(["time", "kind", "severity", "summary", "node"], "alerts");
  const state = el("p", { class: "hint", "data-testid": "alerts-webhook" });
  root.replaceChildren(el("h2", {}, "Alerts"), state, list.node);
  parts = { body: list.body, state };
}

export async function refresh() {
  const page = await get("/api/alerts");
  parts.state.textContent = page.webhook
    ? `Sent to the webhook (alerts.url): ${page.queued} waiting, ${page.dropped} dropped from a full queue.`
    : "Not sent anywhere: alerts.url is not set.";
  rows(
    parts.body,
    page.items.map((a) =>
      el(
        "tr",
        { dataset: { kind: a.kind } },
        el("td", {}, when(a.at_ms)),
        el("td", {}, a.kind),
        el("td", { class: `sev-${a.severity}` }, a.severity),
        el("td", { class: "detail" }, a.summary),
        el("td", {}, a.node),
      ),
    ),
  );
}

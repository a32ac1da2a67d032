// Security events: a live tail of the audit log. The first poll reads the
// last WINDOW_MS; each later one asks only for records after the last seq
// seen, at most MAX_PAGES pages, so a burst costs a bounded number of
// calls. The server filters by kind, the page by severity. Records name
// who and what, never a message's body.

import { get, withQuery } from "./api.js";
import { clock, el, rows, table } from "./dom.js";

const WINDOW_MS = 60 * 60 * 1000;
const PAGE = 200;
const MAX_PAGES = 5;
/** Records kept on screen, newest first. */
const KEEP = 300;
/** The kinds that are not refusals; the refusal kinds come from /api/stats. */
const OTHER_KINDS = ["ban", "unban", "revocation", "refresh_reuse", "session_ended", "admin_action", "config_reload", "gap", "chain_break", "retention"];

let parts = null;
let kind = "";
let severity = "";
let from = null;
let kept = [];
/** Bumped by a new filter, so an answer to the old one is dropped. */
let generation = 0;

export function init(root, ctx) {
  const kinds = el("select", { name: "kind", "data-testid": "event-kind" }, el("option", { value: "" }, "every kind"), OTHER_KINDS.map((k) => el("option", { value: k }, k)));
  const severities = el("select", { name: "severity", "data-testid": "event-severity" }, ["", "info", "warning", "critical"].map((s) => el("option", { value: s }, s || "every severity")));
  kinds.addEventListener("change", () => {
    kind = kinds.value;
    reset();
    refresh().catch(ctx.fail);
  });
  severities.addEventListener("change", () => {
    severity = severities.value;
    render();
  });
  const list = table(["time", "kind", "severity", "address", "user", "detail"], "events");
  root.replaceChildren(
    el("h2", {}, "Security events"),
    el("form", {}, el("label", {}, "Kind", kinds), el("label", {}, "Severity", severities)),
    list.node,
    el("p", { class: "hint" }, `The newest ${KEEP} records of the last hour, then live.`),
  );
  parts = { body: list.body, kinds };
  reset();
  // The refusal kinds are the server's: the keys of its counters.
  get("/api/stats").then((stats) => {
    for (const k of Object.keys(stats.refused).sort()) kinds.append(el("option", { value: k }, k));
  }, ctx.fail);
}

function reset() {
  generation += 1;
  from = null;
  kept = [];
}

export async function refresh() {
  const since = from === null ? Date.now() - WINDOW_MS : undefined;
  let cursor = from;
  const asked = generation;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await get(withQuery("/api/audit", { kind, since, cursor, limit: PAGE }));
    if (asked !== generation) return;
    for (const record of page.items) kept.unshift(record);
    if (page.items.length) from = page.items[page.items.length - 1].seq + 1;
    if (!page.next_cursor) break;
    cursor = Number(page.next_cursor);
  }
  kept.length = Math.min(kept.length, KEEP);
  render();
}

function render() {
  const shown = severity ? kept.filter((r) => r.severity === severity) : kept;
  rows(
    parts.body,
    shown.map((r) =>
      el(
        "tr",
        { dataset: { kind: r.kind, severity: r.severity } },
        el("td", {}, clock(r.ts)),
        el("td", {}, r.kind),
        el("td", { class: `sev-${r.severity}` }, r.severity),
        el("td", {}, r.ip ?? ""),
        el("td", {}, r.user ?? ""),
        el("td", { class: "detail" }, r.detail),
      ),
    ),
  );
}

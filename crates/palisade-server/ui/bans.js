// Bans: those in force, with the time each has left (counted down each
// second on screen, re-read from the server every poll); an operator adds
// and lifts them. Lifted and expired bans are in the security events
// (kinds ban and unban).

import { del, get, post, withQuery } from "./api.js";
import { el, fields, rows, span, table, when } from "./dom.js";

const PAGE = 200;

let parts = null;

export function init(root, ctx) {
  const list = table(["subject", "since", "left", "strikes", "source", "reason", ctx.canAct ? "" : null].filter((h) => h !== null), "bans");
  const more = el("p", { class: "hint" });
  const children = [el("h2", {}, "Bans in force"), list.node, more];
  if (ctx.canAct) {
    const form = el(
      "form",
      { "data-testid": "ban-add" },
      el("label", {}, "Subject", el("input", { name: "subject", placeholder: "ip:203.0.113.7 or user:mallory", required: true })),
      el("label", {}, "Minutes", el("input", { name: "minutes", type: "number", min: 1, value: 60 })),
      el("label", {}, "Permanent", el("input", { name: "permanent", type: "checkbox", value: "yes" })),
      el("label", {}, "Reason", el("input", { name: "reason", maxlength: 200 })),
      el("button", { type: "submit", "data-act": "ban" }, "Ban"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = fields(form);
      const body = { subject: f.subject, reason: f.reason ?? "" };
      if (f.permanent) body.permanent = true;
      else body.duration_secs = Math.round(Number(f.minutes ?? 60) * 60);
      try {
        await post("/api/bans", body);
        form.subject.value = "";
        await refresh(ctx);
      } catch (error) {
        ctx.fail(error);
      }
    });
    children.push(el("h2", {}, "Add a ban"), form);
  }
  root.replaceChildren(...children);
  parts = { body: list.body, more };
}

export async function refresh(ctx) {
  // One page, in subject order: the first PAGE bans, and a note if more.
  const page = await get(withQuery("/api/bans", { limit: PAGE }));
  parts.more.textContent = page.next_cursor ? `The first ${PAGE} bans by subject are shown.` : "";
  rows(
    parts.body,
    page.items.map((b) =>
      el(
        "tr",
        { dataset: { subject: b.subject } },
        el("td", {}, b.subject),
        el("td", {}, when(b.since)),
        el("td", { class: "left", dataset: { until: b.until ?? "" } }, left(b.until)),
        el("td", { class: "num" }, b.strikes),
        el("td", {}, b.source),
        el("td", {}, b.reason),
        ctx.canAct &&
          el("td", {}, el("button", { type: "button", "data-act": "lift", onclick: () => lift(ctx, b.subject) }, "Lift")),
      ),
    ),
  );
}

function left(until) {
  return until === null ? "permanent" : span(until - Date.now());
}

/** Counts each ban's time down between two polls. */
export function tick() {
  for (const cell of parts?.body.querySelectorAll("td.left") ?? []) {
    if (cell.dataset.until) cell.textContent = left(Number(cell.dataset.until));
  }
}

async function lift(ctx, subject) {
  try {
    await del(withQuery("/api/bans", { subject }));
  } catch (error) {
    ctx.fail(error);
  }
  await refresh(ctx).catch(ctx.fail);
}

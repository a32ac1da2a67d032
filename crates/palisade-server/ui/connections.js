// Connections: filtered and paged by the server (user, address, room), a
// page at a time; an operator may close one (4003, like a revocation).

import { del, get, withQuery } from "./api.js";
import { clock, el, fields, rows, table } from "./dom.js";

const PAGE = 50;

let parts = null;
let filter = {};
/** The cursors of the pages before this one, and this one's. */
let back = [];
let cursor = null;
let next = null;

export function init(root, ctx) {
  const form = el(
    "form",
    { "data-testid": "conn-filter" },
    el("label", {}, "User", el("input", { name: "user", placeholder: "user id" })),
    el("label", {}, "Address", el("input", { name: "ip", placeholder: "203.0.113.7" })),
    el("label", {}, "Room", el("input", { name: "room", placeholder: "lobby" })),
    el("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filter = fields(form);
    back = [];
    cursor = null;
    load(ctx).catch(ctx.fail);
  });
  const list = table(["id", "user", "address", "rooms", "since", ctx.canAct ? "" : null].filter((h) => h !== null), "connections");
  const prev = el("button", { type: "button", disabled: true }, "← Previous");
  const more = el("button", { type: "button", disabled: true }, "Next →");
  const where = el("span", { class: "hint" });
  prev.addEventListener("click", () => {
    cursor = back.pop() ?? null;
    load(ctx).catch(ctx.fail);
  });
  more.addEventListener("click", () => {
    back.push(cursor);
    cursor = next;
    load(ctx).catch(ctx.fail);
  });
  root.replaceChildren(el("h2", {}, "Connections"), form, list.node, el("div", { class: "pager" }, prev, more, where));
  parts = { body: list.body, prev, more, where };
}

async function load(ctx) {
  const page = await get(withQuery("/api/connections", { ...filter, limit: PAGE, cursor }));
  next = page.next_cursor;
  parts.prev.disabled = back.length === 0;
  parts.more.disabled = !next;
  parts.where.textContent = `page ${back.length + 1}, ${page.items.length} shown`;
  rows(
    parts.body,
    page.items.map((c) =>
      el(
        "tr",
        { dataset: { id: c.id, user: c.user } },
        el("td", {}, c.id),
        el("td", {}, c.user),
        el("td", {}, c.ip),
        el("td", {}, c.rooms.join(", ")),
        el("td", {}, clock(c.connected_at)),
        ctx.canAct &&
          el("td", {}, el("button", { type: "button", class: "danger", "data-act": "kick", onclick: () => kick(ctx, c.id) }, "Kick")),
      ),
    ),
  );
}

async function kick(ctx, id) {
  try {
    await del(`/api/connections/${encodeURIComponent(id)}`);
  } catch (error) {
    ctx.fail(error);
  }
  await load(ctx).catch(ctx.fail);
}

export const refresh = load;

// Rooms: those with members on this node and their member counts, in name
// order, filtered by name prefix on the server; one page of PAGE, with a
// note when there are more. No room's messages: the API has none to give.

import { get, withQuery } from "./api.js";
import { el, fields, rows, table } from "./dom.js";

const PAGE = 100;

let parts = null;
let prefix = "";

export function init(root, ctx) {
  const list = table(["room", { label: "members", num: true }], "rooms");
  const more = el("p", { class: "hint" });
  const form = el("form", { "data-testid": "room-filter" }, el("label", {}, "Name starts with", el("input", { name: "prefix" })), el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    prefix = fields(form).prefix ?? "";
    refresh().catch(ctx.fail);
  });
  root.replaceChildren(el("h2", {}, "Rooms"), form, list.node, more);
  parts = { body: list.body, more };
}

export async function refresh() {
  const page = await get(withQuery("/api/rooms", { prefix: prefix || undefined, limit: PAGE }));
  parts.more.textContent = page.next_cursor ? `The first ${PAGE} rooms by name are shown; narrow the prefix.` : "";
  rows(
    parts.body,
    page.items.map((r) => el("tr", { dataset: { room: r.name } }, el("td", {}, r.name), el("td", { class: "num" }, r.members))),
  );
}

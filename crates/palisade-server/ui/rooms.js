// Rooms: those with members on this node, their member counts and message
// rates, in name order, filtered by name prefix on the server; one page of
// PAGE, with a note when there are more. A rate is the room's `seq` moving
// between two reads (the server keeps no rate of its own), so a room gets
// one from its second read on. No room's messages: the API has none to
// give.

import { get, withQuery } from "./api.js";
import { el, fields, rate, rows, table } from "./dom.js";

const PAGE = 100;

let parts = null;
let prefix = "";
/** Each listed room's last read: `{ seq, at }` (ms). */
let seen = new Map();

export function init(root, ctx) {
  const list = table(["room", { label: "members", num: true }, { label: "messages/s", num: true }], "rooms");
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

/** Messages per second in `room` since its last read, if there was one. */
function messageRate(room, now) {
  const before = seen.get(room.name);
  if (!before || now <= before.at || room.seq < before.seq) return "–";
  return rate(((room.seq - before.seq) * 1000) / (now - before.at));
}

export async function refresh() {
  const page = await get(withQuery("/api/rooms", { prefix: prefix || undefined, limit: PAGE }));
  const now = Date.now();
  parts.more.textContent = page.next_cursor ? `The first ${PAGE} rooms by name are shown; narrow the prefix.` : "";
  rows(
    parts.body,
    page.items.map((r) =>
      el("tr", { dataset: { room: r.name } }, el("td", {}, r.name), el("td", { class: "num" }, r.members), el("td", { class: "num rate" }, messageRate(r, now))),
    ),
  );
  seen = new Map(page.items.map((r) => [r.name, { seq: r.seq, at: now }]));
}

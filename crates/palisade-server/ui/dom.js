// DOM helpers. Every string from the server goes into the page as text
// (textContent), never as HTML: a user name or an audit detail is data.

/** An element with properties (`class`, `dataset`, `on*` handlers, other attributes) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table with a header row; its body is returned to fill with `rows`. */
export function table(headers, testid) {
  const body = el("tbody");
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : undefined }, h.label ?? h)));
  return { node: el("table", { "data-testid": testid }, el("thead", {}, head), body), body };
}

/** Replaces a table body's rows. */
export function rows(body, list) {
  body.replaceChildren(...list);
}

/** A local time of day for a Unix time in ms. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString();
}

/** A local date and time for a Unix time in ms. */
export function when(ms) {
  return new Date(ms).toLocaleString();
}

/** "1h 2m 3s" for a span in ms (0 for a past one). */
export function span(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  parts.push(`${s}s`);
  return parts.join(" ");
}

/** A rate, per second, to show. */
export function rate(n) {
  return n >= 10 ? n.toFixed(0) : n.toFixed(1);
}

/** The values of a form's fields, trimmed, empty ones left out. */
export function fields(form) {
  const out = {};
  for (const [key, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text) out[key] = text;
  }
  return out;
}

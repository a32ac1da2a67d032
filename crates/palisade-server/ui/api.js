// The admin API from the page. The session is the HttpOnly cookie the
// browser sends by itself; the CSRF token lives in this module's memory
// only (never storage), and a reloaded page gets it back from
// /api/session.

let csrf = null;

/** A refused or failed call: the HTTP status and the JSON error body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error;
  }
}

async function call(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const del = (path) => call("DELETE", path);

/** `GET /metrics` as text, or null when metrics are off. */
export async function metrics() {
  const res = await fetch("/metrics", { credentials: "same-origin", cache: "no-store" });
  if (res.status === 401) throw new ApiError(401, null);
  return res.ok ? res.text() : null;
}

/** `path` with the query parameters that have a value. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export async function login(username, password) {
  const session = await call("POST", "/api/login", { username, password });
  csrf = session.csrf ?? null;
  return session;
}

/** The session in force (and its CSRF token), or an ApiError 401. */
export async function session() {
  const found = await get("/api/session");
  csrf = found.csrf ?? null;
  return found;
}

export async function logout() {
  try {
    await post("/api/logout");
  } finally {
    csrf = null;
  }
}

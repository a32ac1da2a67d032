// The dashboard's shell: login, the panels, and one timer. Only the panel
// on screen is refreshed, every POLL_MS, and not while the tab is hidden,
// so the load on the server is bounded whatever happens on it.

import { ApiError, login, logout, session } from "./api.js";
import * as overview from "./overview.js";
import * as connections from "./connections.js";
import * as rooms from "./rooms.js";
import * as events from "./events.js";
import * as leaders from "./leaders.js";
import * as bans from "./bans.js";
import * as alerts from "./alerts.js";
import * as policy from "./policy.js";

const PANELS = { overview, connections, rooms, events, leaders, bans, alerts, policy };
/** How often the visible panel asks the server again. */
const POLL_MS = 2000;
/** How often the visible panel redraws what only time changes (countdowns). */
const TICK_MS = 1000;
/**
 * The one thing the page keeps in storage: that this tab logged in, so a
 * reload asks for the session. Never a token: the session is the HttpOnly
 * cookie, the CSRF token lives in memory (api.js).
 */
const SIGNED_IN = "palisade.signedIn";

const $ = (id) => document.getElementById(id);
const ctx = { canAct: false, role: null, fail, show };
let current = null;
let ticks = 0;
let busy = false;

/** Says what went wrong; a lost session returns to the login form. */
function fail(error) {
  if (error instanceof ApiError && error.status === 401) {
    signedOut("The session ended; log in again.");
    return;
  }
  $("status").textContent = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error);
}

function signedIn(who) {
  sessionStorage.setItem(SIGNED_IN, "1");
  ctx.role = who.role;
  ctx.canAct = who.role === "operator";
  document.body.dataset.role = who.role;
  $("actor").textContent = who.actor;
  $("role").textContent = who.role;
  $("status").textContent = "";
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  for (const [name, panel] of Object.entries(PANELS)) panel.init($(name), ctx);
  show(location.hash.slice(1) in PANELS ? location.hash.slice(1) : "overview");
}

function signedOut(message) {
  sessionStorage.removeItem(SIGNED_IN);
  current = null;
  ctx.role = null;
  ctx.canAct = false;
  delete document.body.dataset.role;
  for (const name of Object.keys(PANELS)) {
    $(name).hidden = true;
    $(name).replaceChildren();
  }
  $("nav").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("status").textContent = message ?? "";
}

/** Puts panel `name` on screen and refreshes it at once. */
function show(name) {
  current = name;
  for (const key of Object.keys(PANELS)) $(key).hidden = key !== name;
  for (const button of $("nav").querySelectorAll("button")) {
    if (button.dataset.panel === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  history.replaceState(null, "", `#${name}`);
  ticks = 0;
  refresh();
}

async function refresh() {
  if (!current || busy) return;
  busy = true;
  const name = current;
  try {
    await PANELS[name].refresh(ctx);
    if (current === name) $("status").textContent = "";
  } catch (error) {
    fail(error);
  } finally {
    busy = false;
  }
}

function tick() {
  if (!current || document.visibilityState !== "visible") return;
  PANELS[current].tick?.();
  ticks += 1;
  if (ticks % (POLL_MS / TICK_MS) === 0) refresh();
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    const who = await login(form.username.value, form.password.value);
    form.reset();
    signedIn(who);
  } catch (error) {
    $("status").textContent =
      error instanceof ApiError && error.status === 401 ? "Wrong user or password." : `Login refused: ${error.message}`;
  }
});
$("logout").addEventListener("click", async () => {
  await logout().catch(() => {});
  signedOut("Logged out.");
});
$("nav").addEventListener("click", (event) => {
  const name = event.target.closest("button")?.dataset.panel;
  if (name) show(name);
});

// A page that never logged in in this tab shows the form without asking:
// a request without a credential counts as a failed one for the address.
if (sessionStorage.getItem(SIGNED_IN) === "1") session().then(signedIn, () => signedOut());
else signedOut();
setInterval(tick, TICK_MS);

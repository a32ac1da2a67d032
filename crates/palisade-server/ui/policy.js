// Policy and access: the session in force, a policy reload (as SIGHUP)
// with the result of the last one from this page, and revocation of a
// user's tokens and sessions or of one session. The server refuses both
// actions to a viewer whatever this page shows.

import { get, post } from "./api.js";
import { el, fields, when } from "./dom.js";

let parts = null;
/** The last reload from this page: when, and what the server said. */
let lastReload = null;

export function init(root, ctx) {
  const session = el("dl", { "data-testid": "session" });
  const result = el("p", { "data-testid": "reload-result" }, lastReload ?? "No reload from this page yet.");
  const children = [el("h2", {}, "Session"), session, el("h2", {}, "Policy"), result];
  if (ctx.canAct) {
    const reload = el("button", { type: "button", "data-act": "reload" }, "Reload the policy");
    reload.addEventListener("click", async () => {
      let said;
      try {
        said = `reloaded: ${(await post("/api/reload")).status}`;
      } catch (error) {
        if (error.status === 401) return ctx.fail(error);
        said = `refused (${error.code ?? error.status}): ${error.message}`;
      }
      lastReload = `${when(Date.now())}: ${said}`;
      result.textContent = lastReload;
    });
    const revoke = el(
      "form",
      { "data-testid": "revoke" },
      el("label", {}, "What", el("select", { name: "what" }, el("option", { value: "user" }, "every token and session of user"), el("option", { value: "session" }, "one session id"))),
      el("label", {}, "Id", el("input", { name: "ident", required: true })),
      el("label", {}, "Reason", el("input", { name: "reason", maxlength: 200 })),
      el("button", { type: "submit", class: "danger", "data-act": "revoke" }, "Revoke"),
    );
    const revoked = el("p", { class: "hint" });
    revoke.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = fields(revoke);
      try {
        await post("/api/revoke", { [f.what]: f.ident, reason: f.reason ?? "" });
        revoked.textContent = `${when(Date.now())}: revoked ${f.what} ${f.ident}`;
        revoke.ident.value = "";
      } catch (error) {
        ctx.fail(error);
      }
    });
    children.push(el("p", {}, reload), el("h2", {}, "Revoke"), revoke, revoked);
  } else {
    children.push(el("p", { class: "hint" }, "Reloading and revoking need the operator role."));
  }
  root.replaceChildren(...children);
  parts = { session };
}

export async function refresh() {
  const s = await get("/api/session");
  const item = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
  parts.session.replaceChildren(
    ...item("actor", s.actor),
    ...item("role", s.role),
    ...(s.expires_at ? item("expires", when(s.expires_at)) : []),
  );
}

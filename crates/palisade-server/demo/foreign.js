// A page of another origin, as far as this server can tell: the demo loads
// it in a sandboxed frame, so its origin is opaque ("null"). The browser
// writes the Origin header itself (a page cannot forge it) and sends no
// SameSite=Strict cookie from here: exactly what a foreign site's page
// has. It connects once and tells the demo how that went.
// A classic script, not a module: an opaque origin fetches modules with
// CORS, which this server does not grant.
(function () {
  "use strict";
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var report = function (result) {
    parent.postMessage(result, new URL(location.href).origin);
  };
  var ws = new WebSocket(scheme + location.host + "/ws", ["palisade.v1"]);
  var opened = false;
  ws.onopen = function () {
    opened = true;
  };
  ws.onclose = function (e) {
    report({ kind: "foreign", opened: opened, code: e.code });
  };
})();

/* wsgisession's browser helper, served by the app at /wsgisession/client.js.
 *
 *   const socket = io();
 *   wsgisession.keepCookie(socket);
 *
 * When a socket handler starts or rotates the session (a login over the socket), the
 * server sends this socket a single-use token ("session_cookie"); keepCookie trades it
 * for the HttpOnly session cookie with a same-origin POST, so the next HTTP request
 * (a reload, a fetch) knows the session. The page's script never sees a session id.
 *
 *   await wsgisession.cookieSettled();   // every exchange started so far has finished
 *   window.addEventListener("wsgisession:cookie", (e) => e.detail);  // {ok, status, error}
 */
(function (root) {
  "use strict";
  let pending = Promise.resolve();

  function exchange(message) {
    return fetch(message.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: message.token }),
    }).then(
      (response) => (response.ok ? { ok: true, status: response.status, error: null }
        : response.json().catch(() => ({})).then((body) => (
          { ok: false, status: response.status, error: body.error || "exchange_failed" }))),
      () => ({ ok: false, status: 0, error: "network_error" }),
    ).then((detail) => {
      root.dispatchEvent(new CustomEvent("wsgisession:cookie", { detail }));
      return detail;
    });
  }

  root.wsgisession = {
    keepCookie(socket) {
      socket.on("session_cookie", (message) => {
        pending = pending.then(() => exchange(message));
      });
      return socket;
    },
    cookieSettled() {
      return pending;
    },
  };
})(window);

// Shared by every signed-in page, the team's and the portal's: the JSON API (session cookie + the session's
// CSRF token), the live event stream over the websocket (with reconnects), the team's unread bubble and
// "(Away)" flag in the top bar, and a status line. Plain script, no build step; the pages' CSP allows
// scripts from this site only.
(function () {
  "use strict";

  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const me = Number(document.body.dataset.me || 0);

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function signInAgain() {
    if (document.body.classList.contains("portal")) {
      // The server keeps `next` only when it is one of the portal's own pages, and says why (an expired link).
      location.assign("/portal/sign-in?" + new URLSearchParams({ next: location.pathname }));
      return;
    }
    const next = location.pathname + location.search;
    location.assign("/?" + new URLSearchParams({ next: next, notice: "expired" }));
  }

  async function api(method, path, body) {
    const opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch("/api/v1" + path, opts);
    } catch (e) {
      throw new ApiError(0, "network", "The server cannot be reached. Check your connection and try again.");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (resp.status === 401) {
      signInAgain();
      throw new ApiError(401, "unauthenticated", "Your session has ended.");
    }
    if (!resp.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(resp.status, err.code || "error", err.message || "Something went wrong; please try again.");
    }
    if (method !== "GET") clearError();  // what the person did worked: an earlier failure no longer applies
    return data;
  }

  const toastEl = document.getElementById("toast");
  let toastTimer = 0;
  // A note goes after 6 seconds; an error stays until the next change that succeeds (or 30 seconds), so that
  // it is not missed, nor left saying something failed once it works.
  function toast(text, kind) {
    if (!toastEl) return;
    toastEl.textContent = text;
    toastEl.dataset.kind = kind || "info";
    toastEl.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.classList.remove("show"); }, kind === "error" ? 30000 : 6000);
  }
  function clearError() {
    if (toastEl && toastEl.dataset.kind === "error" && toastEl.classList.contains("show")) {
      clearTimeout(toastTimer);
      toastEl.classList.remove("show");
      toastEl.dataset.kind = "info";
    }
  }
  function showError(e) {
    toast(e && e.message ? e.message : "Something went wrong; please try again.", "error");
  }

  // --- top bar -------------------------------------------------------------------------------------
  const bubble = document.querySelector("[data-unread-total]");
  const awayFlag = document.querySelector("[data-away-flag]");
  const baseTitle = document.title;

  function setUnread(n) {
    if (bubble) {
      bubble.querySelector("[data-count]").textContent = n > 99 ? "99+" : String(n);
      bubble.hidden = !n;
    }
    document.title = n ? "(" + n + ") " + baseTitle : baseTitle;
  }
  function setAwayFlag(on) {
    if (awayFlag) awayFlag.hidden = !on;
  }

  // --- access ended (R27) --------------------------------------------------------------------------
  // The server closes the socket with 4401 when the access behind it ends: signed out here or elsewhere,
  // password changed, deactivated, messaging or portal access turned off, session expired. Reconnecting
  // cannot help then, so the page says so and offers a way back in. A team member whose messaging was
  // turned off is still signed in (settings, records): the page says what happened instead.
  const ACCESS_ENDED = 4401;

  function accessEnded(reason) {
    document.body.dataset.live = "ended";
    const portal = document.body.classList.contains("portal");
    let box = document.getElementById("access-ended");
    if (!box) {
      box = document.createElement("div");
      box.id = "access-ended";
      box.className = "access-ended";
      box.setAttribute("role", "alert");
      document.body.insertBefore(box, document.getElementById("main"));
    }
    const text = document.createElement("p");
    if (!portal && reason === "messaging_off") {
      text.textContent = "Secure messaging was turned off for you, so this page no longer updates.";
      box.replaceChildren(text);
      return;
    }
    text.textContent = (portal ? "Your session has ended." : "You were signed out.") +
      (reason === "expired" ? " It expired." : "");
    const link = document.createElement("a");
    link.className = "button small";
    link.textContent = "Sign in again";
    link.href = portal ? "/portal/sign-in" : "/?" + new URLSearchParams({ next: location.pathname + location.search });
    box.replaceChildren(text, link);
  }

  // --- live events ---------------------------------------------------------------------------------
  const listeners = [];
  const reconnectListeners = [];
  let failures = 0;
  let everOpen = false;

  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws";
    const ws = new WebSocket(url);
    ws.addEventListener("open", function () {
      if (everOpen) reconnectListeners.forEach(function (fn) { fn(); });  // catch up on what was missed
      everOpen = true;
      failures = 0;
      document.body.dataset.live = "on";
    });
    ws.addEventListener("message", function (ev) {
      let event;
      try {
        event = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (event.type === "unread") setUnread(event.unread_total);
      if (event.type === "away" && event.participant_id === me) setAwayFlag(event.enabled);
      listeners.forEach(function (fn) { fn(event); });
    });
    ws.addEventListener("close", function (ev) {
      if (ev.code === ACCESS_ENDED) {
        accessEnded(ev.reason);
        return;  // no reconnect: the access behind the socket is gone
      }
      document.body.dataset.live = "off";
      failures += 1;
      const wait = Math.min(30000, 1000 * Math.pow(2, Math.min(failures - 1, 5)));
      setTimeout(async function () {
        if (failures >= 3) {
          // Several failed attempts in a row: perhaps the session has ended (api() then signs in again).
          try {
            await api("GET", "/me");
          } catch (e) {
            if (e.status === 401) return;
          }
        }
        connect();
      }, wait);
    });
  }

  window.Live = {
    api: api,
    ApiError: ApiError,
    toast: toast,
    showError: showError,
    me: me,
    setUnread: setUnread,
    setAwayFlag: setAwayFlag,
    onEvent: function (fn) { listeners.push(fn); },
    onReconnect: function (fn) { reconnectListeners.push(fn); },
  };

  if (me) connect();

  // A practice starts without a time zone (UTC applies). The first owner or manager to open a page gives it
  // their browser's; the settings page shows it (event "practice-time-zone") and they can change it there.
  if (document.body.dataset.setTimeZone === "1") {
    let zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    if (zone) {
      api("PATCH", "/practice/settings", { time_zone: zone }).then(function (s) {
        delete document.body.dataset.setTimeZone;
        document.dispatchEvent(new CustomEvent("practice-time-zone", { detail: s }));
      }).catch(function () {});  // a zone the server does not know: it stays UTC, to be chosen in Settings
    }
  }
})();

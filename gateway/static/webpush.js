// Browser notifications for the web inbox (Web Push), on every team page:
// - an inbox tab goes to the conversation its service worker (/inbox/sw.js) was clicked for;
// - window.WebPush, which the Notifications page's switch uses: subscribe this browser with the server's
//   VAPID key and register the subscription as a device (POST /devices, platform "webpush"), or remove it
//   and unsubscribe. Which device is this browser's: the SHA-256 of its endpoint (`subscription_id`).
(function () {
  "use strict";
  const SW_URL = "/inbox/sw.js";
  const SCOPE = "/inbox";
  const SUBSCRIBE_TIMEOUT_MS = 20000;

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", function (event) {
      const data = event.data;
      if (!data || data.type !== "securemsg.open" || typeof data.url !== "string") return;
      let url;
      try {
        url = new URL(data.url, location.origin);
      } catch (e) {
        return;
      }
      if (url.origin === location.origin && url.pathname === "/inbox") location.assign(url.href);
    });
  }

  class Refused extends Error {}

  function supported() {
    return window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  function bytesOf(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
    return Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); });
  }

  function sameKey(buffer, key) {
    if (!buffer) return false;
    const a = new Uint8Array(buffer);
    const b = bytesOf(key);
    return a.length === b.length && a.every(function (v, i) { return v === b[i]; });
  }

  async function subscriptionId(sub) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(sub.endpoint));
    return "sha256:" + Array.from(new Uint8Array(digest), function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  async function current() {
    if (!supported()) return null;
    const reg = await navigator.serviceWorker.getRegistration(SCOPE);
    return reg ? reg.pushManager.getSubscription() : null;
  }

  // The Notifications page is outside the worker's scope, so navigator.serviceWorker.ready would wait for
  // ever: wait for this registration's own worker to be active instead.
  function activated(reg) {
    return new Promise(function (resolve) {
      if (reg.active) return resolve(reg);
      const worker = reg.installing || reg.waiting;
      worker.addEventListener("statechange", function () {
        if (worker.state === "activated") resolve(reg);
      });
    });
  }

  function within(ms, promise, message) {
    return Promise.race([
      promise,
      new Promise(function (_, reject) { setTimeout(function () { reject(new Refused(message)); }, ms); }),
    ]);
  }

  async function subscribe(reg, key) {
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub.options.applicationServerKey, key)) {
      await sub.unsubscribe();  // made for another server key: the push service would refuse our pushes
      sub = null;
    }
    if (sub) return sub;
    try {
      return await within(
        SUBSCRIBE_TIMEOUT_MS,
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytesOf(key) }),
        "The browser's push service did not answer; try again later."
      );
    } catch (e) {
      if (e instanceof Refused) throw e;
      throw new Refused("This browser refused to subscribe to notifications (" + (e.message || e.name) + ").");
    }
  }

  async function enable(api) {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      throw new Refused("Notifications are blocked for this site. Allow them in the browser's site settings, then try again.");
    }
    const reg = await activated(await navigator.serviceWorker.register(SW_URL, { scope: SCOPE }));
    const key = (await api("GET", "/webpush/vapid-public-key")).public_key;
    const sub = await subscribe(reg, key);
    return api("POST", "/devices", { platform: "webpush", app: "practice", subscription: sub.toJSON() });
  }

  async function disable(api, deviceId) {
    if (deviceId) await api("DELETE", "/devices/" + deviceId);
    const sub = await current();
    if (sub) await sub.unsubscribe();
  }

  window.WebPush = { supported: supported, current: current, subscriptionId: subscriptionId, enable: enable, disable: disable, Refused: Refused };
})();

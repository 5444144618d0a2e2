// The web inbox's service worker, served at /inbox/sw.js for the scope /inbox (Service-Worker-Allowed).
// It does two things and nothing else (no fetch handler, no cache: pages hold health information):
// - `push`: shows the notification a Web Push asks for. The payload is PHI-free by construction (docs/api.md
//   §5: a generic title, ids, the unread count, the conversation's link); the body line here is generic too.
// - `notificationclick`: opens the conversation: an inbox tab already open is told to go there (and
//   focused), else a new window opens on it. Only links of this site are followed.
"use strict";

const BODY = "Open your secure inbox to read it.";
const FALLBACK_TITLE = "New secure message";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function ownUrl(link) {
  try {
    const url = new URL(link, self.location.origin);
    return url.origin === self.location.origin ? url.href : null;
  } catch (e) {
    return null;
  }
}

function inboxUrl() {
  return new URL("/inbox", self.location.origin).href;
}

function notificationFor(data) {
  const title = typeof data.title === "string" && data.title ? data.title : FALLBACK_TITLE;
  const options = {
    body: BODY,
    data: {
      url: ownUrl(data.web_link) || inboxUrl(),
      conversation_id: typeof data.conversation_id === "string" ? data.conversation_id : null,
    },
  };
  if (typeof data.tag === "string" && data.tag) {
    options.tag = data.tag;  // a newer message in the same conversation replaces the older notification
    options.renotify = true;
  }
  return { title: title, options: options };
}

function showPush(data) {
  const shown = notificationFor(data);
  if (typeof data.badge === "number" && self.navigator.setAppBadge) {
    self.navigator.setAppBadge(data.badge).catch(function () {});
  }
  return self.registration.showNotification(shown.title, shown.options);
}

self.addEventListener("push", function (event) {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {};
  }
  event.waitUntil(showPush(data && typeof data === "object" ? data : {}));
});

async function openConversation(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) {
    const path = new URL(client.url).pathname;
    if (path === "/inbox" || path.startsWith("/inbox/")) {
      client.postMessage({ type: "securemsg.open", url: url });
      try {
        await client.focus();
      } catch (e) {
        // Focusing a window needs the person's own click on the notification.
      }
      return client;
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  const data = event.notification.data || {};
  event.waitUntil(openConversation(ownUrl(data.url) || inboxUrl()));
});

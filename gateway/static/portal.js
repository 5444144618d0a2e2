// The portal works without this file; it adds comfort: local times, a character counter near the limit
// (and a notice when pasted text is cut there), Enter to send with a keyboard (Shift+Enter for a new line;
// on a touch screen Enter is a new line), the newest message in view, no double submits, and live
// pages: when the websocket says a message arrived or was removed, or a team member's away banner changed,
// the part of the page that shows it (#live) is read again from the server and swapped in. The server
// stays the one renderer of the portal; the reply box is never replaced, so nothing typed is lost.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at.getTime())) {
        el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      }
    });
  }
  localTimes(document);

  var box = document.getElementById("body");
  var form = document.getElementById("reply");
  var counter = document.querySelector("[data-counter-for='body']");
  var cutNote = document.getElementById("reply-cut");
  // Characters as the server counts them (inbox.messaging.validate_body): after trimming, in code points.
  // The textarea's own maxlength counts UTF-16 units (an emoji is two), so the script counts instead.
  var MAX = box ? Number(box.getAttribute("maxlength")) || 5000 : 5000;
  function chars(text) { return Array.from(text.trim()).length; }
  function cutToLimit() {
    var text = box.value;
    if (chars(text) <= MAX) return false;
    var lead = text.length - text.trimStart().length;
    box.value = text.slice(0, lead) + Array.from(text.slice(lead)).slice(0, MAX).join("");
    return true;
  }
  if (box) {
    box.removeAttribute("maxlength");
    var update = function () {
      var left = MAX - chars(box.value);
      if (counter) counter.textContent = left <= 500 ? left + " characters left" : "";
    };
    box.addEventListener("input", function () {
      if (cutToLimit() && cutNote) {
        cutNote.textContent = "Your text was cut to " + MAX.toLocaleString("en-US") +
          " characters, the most one message can hold. Check the end before you send it.";
        cutNote.hidden = false;
      } else if (cutNote && !box.value.trim()) {
        cutNote.hidden = true;
      }
      update();
    });
    update();
  }
  // On a touch screen (pointer: coarse) Enter makes a new line, as on a phone's keyboard, and the Send
  // button sends; with a keyboard and mouse, Enter sends and Shift+Enter makes a new line.
  var coarse = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
  if (box && form && !coarse) {
    var hint = document.getElementById("reply-hint");
    if (hint) hint.hidden = false;
    box.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.shiftKey || ev.altKey || ev.ctrlKey || ev.metaKey || ev.isComposing) return;
      ev.preventDefault();
      if (box.value.trim() && !box.disabled) form.requestSubmit();
    });
  }

  function newestInView() {
    var messages = document.querySelectorAll(".thread .message");
    if (messages.length) messages[messages.length - 1].scrollIntoView({ block: "nearest" });
  }
  if (!window.location.hash) newestInView();

  // The server says whether this conversation can be written in now (messaging off for someone): the reply
  // box follows it, also after a live refresh.
  function followBlocked(shown) {
    if (!form || !shown) return;
    var blocked = shown.dataset.blocked === "1";
    form.querySelectorAll("textarea, button").forEach(function (el) { el.disabled = blocked; });
  }

  document.querySelectorAll("form").forEach(function (f) {
    f.addEventListener("submit", function () {
      var button = f.querySelector("button[type='submit']");
      if (button) {
        window.setTimeout(function () { button.disabled = true; }, 0);
      }
    });
  });

  // --- read ---------------------------------------------------------------------------------------
  // The server marks a conversation read on a GET only when the browser says the request came from the
  // portal itself (another site must not be able to clear a client's unread state and so cancel their
  // email). A page opened from an email link says otherwise; once it is seen, it tells the server here.
  var readCsrf = form && form.querySelector("input[name='csrf']");
  var readSent = "";
  function markRead() {
    var shown = document.getElementById("live");
    var newest = shown && shown.dataset.newest;
    if (!newest || !readCsrf || document.hidden || newest === readSent) return;
    readSent = newest;
    fetch("/portal/c/" + shown.dataset.conversation + "/read", {
      method: "POST", credentials: "same-origin",
      body: new URLSearchParams({ csrf: readCsrf.value, up_to: newest }),
    }).catch(function () { readSent = ""; });
  }
  markRead();
  document.addEventListener("visibilitychange", markRead);

  // --- live ---------------------------------------------------------------------------------------
  var live = document.getElementById("live");
  var Live = window.Live;
  if (!live || !Live || !Live.me) return;
  var conversationId = Number(live.dataset.conversation || 0);
  if (conversationId && live.dataset.latest !== "1") return;  // an older page of a conversation stays still

  var waiting = false;
  var timer = 0;
  async function refresh() {
    if (document.hidden) {  // reading marks messages read: wait until the page is seen
      waiting = true;
      return;
    }
    var resp;
    try {
      resp = await fetch(location.pathname + location.search, {
        credentials: "same-origin", headers: { Accept: "text/html" },
      });
    } catch (e) {
      return;
    }
    if (!resp.ok || resp.redirected) {  // signed out, or the conversation is gone
      location.reload();
      return;
    }
    var doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    var fresh = doc.getElementById("live");
    if (!fresh) return;
    var before = live.querySelectorAll(".thread .message").length;
    live.replaceChildren.apply(live, Array.from(fresh.childNodes));
    if (fresh.dataset.newest) live.dataset.newest = fresh.dataset.newest;
    live.dataset.blocked = fresh.dataset.blocked || "0";
    followBlocked(live);
    localTimes(live);
    var after = live.querySelectorAll(".thread .message").length;
    if (after > before) {
      newestInView();
      Live.toast("New message");
    }
  }
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && waiting) {
      waiting = false;
      soon();
    }
  });
  Live.onReconnect(soon);
  Live.onEvent(function (e) {
    if (e.type === "away" || e.type === "messaging.changed") {  // a banner, or who may write here, changed
      soon();
    } else if (e.type === "message.created" || e.type === "message.removed") {
      if (!conversationId || e.conversation_id === conversationId) soon();
    } else if (e.type === "conversation.read" && !conversationId) {
      soon();
    }
  });
})();

// The web inbox: conversation list, thread, composer, remove with confirm (the new-message picker and the
// away controls are in inbox_tools.js).
// Everything goes through the JSON API (window.Live.api); live changes arrive over the websocket and the
// list is re-read from the server then, so the server stays the one source of truth for unread counts.
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const me = Live.me;
  const root = document.getElementById("inbox");
  if (!root) return;

  const MAX_BODY = Number(root.dataset.maxBody);
  const COUNTER_FROM = MAX_BODY - 500;
  const $ = function (id) { return document.getElementById(id); };

  const listEl = $("conversations");
  const listEmpty = $("conversations-empty");
  const listMore = $("conversations-more");
  const threadEmpty = $("thread-empty");
  const threadEl = $("thread");
  const titleEl = $("thread-title");
  const bannerEl = $("thread-banner");
  const messagesBox = $("messages");
  const messageList = $("message-list");
  const earlierBtn = $("messages-earlier");
  const composer = $("composer");
  const textarea = $("composer-text");
  const counter = $("composer-count");
  const sendBtn = $("composer-send");

  const state = {
    convs: new Map(),
    order: [],
    cursor: null,
    loaded: false,
    open: null, // {id, detail, byId: Map, order: [], nextBefore, lastRead, needsRead}
  };
  let openSeq = 0;
  let sending = false;
  let pendingSend = null; // {text, id}: a send that failed is retried with the same client_msg_id

  // --- small helpers ------------------------------------------------------------------------------
  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "class") node.className = v;
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === "") continue;
      node.append(child);
    }
    return node;
  }
  function chars(s) { return Array.from(s).length; }  // code points, as the server counts
  function debounce(fn, ms) {
    let t = 0;
    return function () { clearTimeout(t); t = setTimeout(fn, ms); };
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return String(Date.now()) + "-" + Math.random().toString(36).slice(2);
  }
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
    return dateFmt.format(d) + ", " + timeFmt.format(d);
  }
  function htmlToText(html) {
    const t = document.createElement("template");  // inert: nothing in it loads or runs
    t.innerHTML = (html || "").replace(/<br>/g, " ");
    return t.content.textContent || "";
  }
  const ROLE_NAMES = {
    account_owner: "Account owner", practice_manager: "Practice manager", clinician: "Clinician",
    supervisor: "Supervisor", biller: "Biller", scheduler: "Scheduler",
  };
  function kindLabel(p) {
    if (p.kind === "client") return "Client";
    if (p.kind === "contact") return "Client contact";
    return (p.roles || []).map(function (r) { return ROLE_NAMES[r] || r; }).join(", ") || "Team";
  }
  function others(participants) {
    return participants.filter(function (p) { return p.id !== me; });
  }
  function conversationName(participants) {
    const names = others(participants).map(function (p) { return p.name + (p.away ? " (Away)" : ""); });
    return names.join(", ") || "Just you";
  }
  function snippet(m) {
    if (!m) return "No messages yet";
    if (m.removed) return "This message was removed";
    const text = htmlToText(m.body_html).replace(/\s+/g, " ").trim();
    return (m.sender_id === me ? "You: " : "") + (text.length > 140 ? text.slice(0, 140) + "…" : text);
  }

  // --- the conversation list ----------------------------------------------------------------------
  function renderList() {
    const openId = state.open ? state.open.id : null;
    listEl.replaceChildren.apply(listEl, state.order.map(function (id) {
      return conversationItem(state.convs.get(id), id === openId);
    }));
    listEl.setAttribute("aria-busy", state.loaded ? "false" : "true");
    listEmpty.hidden = !state.loaded || state.order.length > 0;
    listMore.hidden = !state.cursor;
  }

  function conversationItem(c, active) {
    const unread = c.unread_count || 0;
    const link = el("a", {
      href: "/inbox?conversation=" + c.id,
      class: "conv-link",
      "data-id": c.id,
      "aria-current": active ? "true" : null,
    },
    el("span", { class: "conv-name", text: conversationName(c.participants) }),
    el("span", { class: "conv-time", text: c.last_message ? fmtTime(c.last_message.created_at) : "" }),
    el("span", { class: "conv-snippet", text: snippet(c.last_message) }),
    unread ? el("span", { class: "badge" }, String(unread), el("span", { class: "visually-hidden", text: " unread" })) : null);
    link.addEventListener("click", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
      ev.preventDefault();
      openConversation(c.id, true);
    });
    return el("li", { class: "conv" + (unread ? " unread" : "") + (active ? " active" : "") }, link);
  }

  async function loadConversations(more) {
    const params = new URLSearchParams();
    if (more && state.cursor) {
      params.set("cursor", state.cursor);
      params.set("limit", "30");
    } else {
      params.set("limit", String(Math.min(100, Math.max(30, state.order.length))));
    }
    const page = await api("GET", "/conversations?" + params);
    if (!more) {
      state.convs.clear();
      state.order = [];
    }
    page.items.forEach(function (c) {
      if (!state.convs.has(c.id)) state.order.push(c.id);
      state.convs.set(c.id, c);
    });
    state.cursor = page.next_cursor;
    state.loaded = true;
    renderList();
  }
  const refreshList = debounce(function () { loadConversations(false).catch(Live.showError); }, 150);
  listMore.addEventListener("click", function () { loadConversations(true).catch(Live.showError); });

  // --- the thread ---------------------------------------------------------------------------------
  function personName(id) {
    const p = state.open && state.open.detail.participants.find(function (x) { return x.id === id; });
    return p ? p.name : "Someone";
  }

  function trashIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M9 3h6l1 2h4v2H4V5h4l1-2zm-3 6h12l-1 12H7L6 9zm4 2v8h2v-8h-2zm4 0v8h2v-8h-2z");
    svg.append(path);
    return svg;
  }

  function messageItem(m) {
    const mine = m.sender_id === me;
    const li = el("li", {
      class: "msg" + (mine ? " mine" : "") + (m.removed ? " removed" : ""),
      id: "message-" + m.id,
      "data-id": m.id,
    });
    li.append(el("div", { class: "msg-meta" },
      el("span", { class: "msg-sender", text: mine ? "You" : personName(m.sender_id) }),
      el("time", { datetime: m.created_at, text: fmtTime(m.created_at) })));
    const body = el("div", { class: "msg-body" });
    if (m.removed) {
      body.append(el("em", { text: "This message was removed" }));
    } else {
      body.innerHTML = m.body_html;  // escaped by the server; emoji codes already turned into emoji
    }
    li.append(body);
    if (mine && !m.removed) {
      const trash = el("button", {
        type: "button", class: "icon-button trash", "aria-label": "Remove message", title: "Remove message",
      }, trashIcon());
      trash.addEventListener("click", function () { confirmRemove(li, m, trash); });
      li.append(trash);
    }
    return li;
  }

  function confirmRemove(li, m, trash) {
    if (li.querySelector(".confirm")) return;
    const yes = el("button", { type: "button", class: "button danger small", text: "Remove" });
    const no = el("button", { type: "button", class: "button subtle small", text: "Cancel" });
    const box = el("div", { class: "confirm", role: "group", "aria-label": "Remove this message?" },
      el("p", { text: "Remove this message? Everyone in this conversation will see that a message was removed." }),
      el("div", { class: "confirm-actions" }, yes, no));
    function close() { box.remove(); trash.focus(); }
    no.addEventListener("click", close);
    box.addEventListener("keydown", function (ev) { if (ev.key === "Escape") close(); });
    yes.addEventListener("click", async function () {
      yes.disabled = true;
      try {
        const r = await api("DELETE", "/messages/" + m.id);
        applyRemoved(r.message.conversation_id, r.message.id, r.message, true);
        Live.toast("The message was removed.");
      } catch (e) {
        yes.disabled = false;
        Live.showError(e);
      }
    });
    li.append(box);
    no.focus();  // the safe choice first; Remove is one Tab away
  }

  function renderThreadHead() {
    const o = state.open;
    titleEl.textContent = conversationName(o.detail.participants);
    const recordsLink = $("thread-records");
    recordsLink.hidden = !o.detail.client_id;
    if (o.detail.client_id) recordsLink.href = "/records?client=" + o.detail.client_id;
    const b = o.detail.banner;
    if (b && b.participant_id === me) {
      bannerEl.textContent = "Your away message is on. Clients in this conversation see it in the portal.";
      bannerEl.hidden = false;
    } else if (b) {
      bannerEl.textContent = (b.name || "A team member") + " is away: " + b.text;
      bannerEl.hidden = false;
    } else {
      bannerEl.hidden = true;
    }
    // Nobody can write here now (messaging off for the practice or for someone in it, an account
    // deactivated): said before anyone types, with who can change it; the composer waits.
    const blocked = o.detail.blocked;
    $("thread-blocked").hidden = !blocked;
    $("thread-blocked").textContent = blocked ? blocked.text : "";
    textarea.disabled = Boolean(blocked);
    updateCounter();
    // R4, R5: the client's own messaging is off; the owner, a manager or their clinician may turn it on here.
    const off = o.detail.client_messaging_off;
    $("thread-off").hidden = !off;
    if (off) {
      $("thread-off-text").textContent = off.can_enable
        ? "Secure messaging is off for " + off.name + ". They won't see new messages until it is on."
        : "Secure messaging is off for " + off.name + ". The account owner, a practice manager or the client’s clinician can turn it on.";
      enableBtn.hidden = !off.can_enable;
      enableBtn.setAttribute("aria-label", "Enable Secure Messaging for " + off.name);
    }
  }

  const enableBtn = $("thread-enable");
  enableBtn.addEventListener("click", async function () {
    const o = state.open;
    const off = o && o.detail.client_messaging_off;
    if (!off) return;
    enableBtn.disabled = true;
    try {
      await api("PATCH", "/clients/" + off.client_id, { messaging_enabled: true });
      Live.toast("Secure messaging is now on for " + off.name + ".");
      const d = await api("GET", "/conversations/" + o.id);
      if (state.open === o) {
        o.detail = d;
        renderThreadHead();
        textarea.focus();
      }
    } catch (e) {
      Live.showError(e);
    } finally {
      enableBtn.disabled = false;
    }
  });

  function renderMessages() {
    const o = state.open;
    messageList.replaceChildren.apply(messageList, o.order.map(function (id) { return messageItem(o.byId.get(id)); }));
    earlierBtn.hidden = !o.nextBefore;
  }

  function nearBottom() {
    return messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 80;
  }
  function scrollToBottom() { messagesBox.scrollTop = messagesBox.scrollHeight; }

  function showThread() {
    threadEmpty.hidden = true;
    threadEl.hidden = false;
    root.dataset.view = "thread";
  }
  function showList(push) {
    state.open = null;
    openSeq += 1;
    threadEl.hidden = true;
    threadEmpty.hidden = false;
    root.dataset.view = "list";
    if (push) history.pushState({}, "", "/inbox");
    renderList();
  }

  async function openConversation(id, push) {
    const seq = ++openSeq;
    let detail, page;
    try {
      const results = await Promise.all([
        api("GET", "/conversations/" + id),
        api("GET", "/conversations/" + id + "/messages?limit=50"),
      ]);
      detail = results[0];
      page = results[1];
    } catch (e) {
      if (seq !== openSeq) return;
      if (e.status === 404) {
        Live.toast("That conversation is not available.", "error");
        showList(true);
        return;
      }
      Live.showError(e);
      return;
    }
    if (seq !== openSeq) return;
    const known = state.convs.get(id);
    state.open = {
      id: id,
      detail: detail,
      byId: new Map(page.items.map(function (m) { return [m.id, m]; })),
      order: page.items.map(function (m) { return m.id; }),
      nextBefore: page.next_before,
      lastRead: 0,
      needsRead: !known || known.unread_count > 0,
    };
    if (push) history.pushState({ conversation: id }, "", "/inbox?conversation=" + id);
    renderThreadHead();
    renderMessages();
    showThread();
    renderList();
    scrollToBottom();
    textarea.value = pendingSend ? pendingSend.text : "";
    updateCounter();
    if (window.matchMedia("(min-width: 760px)").matches) textarea.focus();
    else titleEl.focus();
    markRead();
  }

  async function reloadOpen() {
    if (state.open) await openConversation(state.open.id, false);
  }

  earlierBtn.addEventListener("click", async function () {
    const o = state.open;
    if (!o || !o.nextBefore) return;
    try {
      const page = await api("GET", "/conversations/" + o.id + "/messages?limit=50&before=" + o.nextBefore);
      if (state.open !== o) return;
      const before = messagesBox.scrollHeight - messagesBox.scrollTop;
      page.items.forEach(function (m) { o.byId.set(m.id, m); });
      o.order = page.items.map(function (m) { return m.id; }).concat(o.order);
      o.nextBefore = page.next_before;
      renderMessages();
      messagesBox.scrollTop = messagesBox.scrollHeight - before;
    } catch (e) {
      Live.showError(e);
    }
  });

  function addMessage(m) {
    const o = state.open;
    if (!o || o.id !== m.conversation_id || o.byId.has(m.id)) return;
    const stick = nearBottom() || m.sender_id === me;
    o.byId.set(m.id, m);
    o.order.push(m.id);
    messageList.append(messageItem(m));
    if (stick) scrollToBottom();
    if (m.sender_id !== me) {
      o.needsRead = true;
      markRead();
    }
  }

  // A removed message loses its actions; when focus was on them (the confirm's Remove, or the trash icon when
  // someone else's removal arrives), it moves on to the next message that has actions, else to the composer,
  // never to the top of the page.
  function applyRemoved(conversationId, messageId, message, moveFocus) {
    const o = state.open;
    if (!o || o.id !== conversationId || !o.byId.has(messageId)) return;
    const m = message || Object.assign({}, o.byId.get(messageId), { body: null, body_html: null, removed: { by: null, at: null } });
    o.byId.set(messageId, m);
    const old = document.getElementById("message-" + messageId);
    const fresh = messageItem(m);
    if (old) {
      const hadFocus = moveFocus || old.contains(document.activeElement);
      old.replaceWith(fresh);
      if (hadFocus) focusAfter(fresh);
    }
  }
  function focusAfter(li) {
    for (let next = li.nextElementSibling; next; next = next.nextElementSibling) {
      const action = next.querySelector("button.trash");
      if (action) {
        action.focus();
        return;
      }
    }
    textarea.focus();
  }

  async function markRead() {
    const o = state.open;
    if (!o || document.hidden || !o.needsRead || !o.order.length) return;
    const last = o.order[o.order.length - 1];
    if (last <= o.lastRead) return;
    o.lastRead = last;
    o.needsRead = false;
    try {
      await api("POST", "/conversations/" + o.id + "/read", { up_to_message_id: last });
    } catch (e) {
      o.lastRead = 0;
      o.needsRead = true;
    }
  }
  document.addEventListener("visibilitychange", markRead);

  // --- composing ----------------------------------------------------------------------------------
  function updateCounter() {
    const n = chars(textarea.value.trim());
    if (n >= COUNTER_FROM) {
      counter.hidden = false;
      counter.textContent = n.toLocaleString() + " / " + MAX_BODY.toLocaleString();
      counter.classList.toggle("over", n > MAX_BODY);
    } else {
      counter.hidden = true;
    }
    sendBtn.disabled = sending || n === 0 || n > MAX_BODY || textarea.disabled;
  }

  async function send() {
    const o = state.open;
    const text = textarea.value;
    const n = chars(text.trim());
    if (!o || sending || n === 0) return;
    if (n > MAX_BODY) {
      Live.toast("A message holds at most " + MAX_BODY.toLocaleString() + " characters.", "error");
      return;
    }
    if (!pendingSend || pendingSend.text !== text) pendingSend = { text: text, id: newId() };
    sending = true;
    updateCounter();
    try {
      const r = await api("POST", "/conversations/" + o.id + "/messages", { body: text, client_msg_id: pendingSend.id });
      pendingSend = null;
      if (state.open === o) {
        textarea.value = "";
        addMessage(r.message);
        if (r.banner !== undefined) {
          o.detail.banner = r.banner;
          renderThreadHead();
        }
      }
      refreshList();
    } catch (e) {
      Live.showError(e);
      if (e.status === 403 && state.open === o) rereadOpen(o);  // refused: the thread says why from now on
    } finally {
      sending = false;
      updateCounter();
    }
  }

  // Read the open conversation's details again (who is away, who can write) and redraw its head.
  function rereadOpen(o) {
    return api("GET", "/conversations/" + o.id).then(function (d) {
      if (state.open === o) { o.detail = d; renderThreadHead(); }
    }).catch(function () {});
  }

  textarea.addEventListener("input", updateCounter);
  textarea.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  composer.addEventListener("submit", function (ev) {
    ev.preventDefault();
    send();
  });
  $("thread-back").addEventListener("click", function () { showList(true); });
  window.addEventListener("popstate", function () {
    const id = new URLSearchParams(location.search).get("conversation");
    if (id && /^\d+$/.test(id)) openConversation(Number(id), false);
    else showList(false);
  });

  // --- live events --------------------------------------------------------------------------------
  Live.onEvent(function (e) {
    if (e.type === "message.created") {
      addMessage(e.message);
      refreshList();
    } else if (e.type === "message.removed") {
      applyRemoved(e.conversation_id, e.message_id, null);
      refreshList();
    } else if (e.type === "conversation.read") {
      if (e.participant_id === me) refreshList();
    } else if (e.type === "away") {
      const o = state.open;
      if (o) {
        o.detail.participants.forEach(function (p) { if (p.id === e.participant_id) p.away = e.enabled; });
        rereadOpen(o);
      }
      refreshList();
    } else if (e.type === "messaging.changed") {
      // A switch behind who may write changed (the practice's, a team member's, a client's): say it now.
      if (state.open) rereadOpen(state.open);
    }
  });
  Live.onReconnect(function () {
    refreshList();
    reloadOpen();
  });

  // What the new-message picker and the away controls (inbox_tools.js) use.
  window.Inbox = {
    el: el, chars: chars, debounce: debounce, kindLabel: kindLabel,
    openConversation: openConversation, refreshList: refreshList,
  };

  // --- start --------------------------------------------------------------------------------------
  loadConversations(false).catch(Live.showError);
  const first = root.dataset.conversation;
  if (first) openConversation(Number(first), false);
  else showList(false);
})();

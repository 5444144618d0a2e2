// Client records: read a transcript for the chosen participants (GET /clients/{id}/transcripts), tick
// messages, and copy them into a chart note (POST /clients/{id}/chart-notes). Removed messages are shown
// with their text, marked as removed (the record), and cannot be copied. Messages are grouped by
// conversation, each under its participants, so nobody reads a message to the guardian as one to the client;
// times are in the practice's time zone and say which.
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const root = document.getElementById("records");
  if (!root) return;
  const clientId = root.dataset.client;
  const $ = function (id) { return document.getElementById(id); };
  const form = $("transcript-form");
  const box = $("transcript");
  const list = $("transcript-list");
  const empty = $("transcript-empty");
  const more = $("transcript-more");
  const copy = $("copy-note");
  const count = $("selected-count");
  const notes = $("notes");
  const notesEmpty = $("notes-empty");
  const zoneNote = $("transcript-zone");
  let query = "";
  let cursor = null;
  let sections = new Map();  // conversation id -> its <ol>
  let headings = new Map();  // conversation id -> "Alex Morgan, Dr. Sam Rivera"

  let when = null;
  function useZone(zone) {
    const opts = {
      year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short",
    };
    try {
      when = new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: zone }, opts));
    } catch (e) {  // a zone this browser does not know: UTC, which says so
      when = new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: "UTC" }, opts));
      zone = "UTC";
    }
    zoneNote.textContent = "Times in " + zone.replace(/_/g, " ");
  }
  useZone(root.dataset.timeZone || "UTC");
  function fmt(iso) { return iso ? when.format(new Date(iso)) : ""; }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function item(m) {
    const li = el("li", "t-msg" + (m.removed ? " removed" : ""));
    const label = el("label", "t-pick");
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.value = String(m.id);
    pick.disabled = Boolean(m.removed);
    label.append(pick, el("span", "visually-hidden",
      "Select the message from " + (m.sender_name || "someone") + " at " + fmt(m.created_at)));
    const meta = el("div", "msg-meta");
    meta.append(el("span", "msg-sender", m.sender_name || "Someone"), el("time", "", fmt(m.created_at)));
    if (m.removed) {
      meta.append(el("span", "tag removed-tag",
        "Removed" + (m.removed.by_name ? " by " + m.removed.by_name : "") + " · " + fmt(m.removed.at)));
    }
    const body = el("div", "t-body", m.body);
    const main = el("div", "t-main");
    main.append(meta, body);
    li.append(label, main);
    return li;
  }

  // One section per conversation, in the order of its first message, headed by its participants.
  function section(conversationId) {
    let ol = sections.get(conversationId);
    if (ol) return ol;
    const box = el("section", "t-conv");
    const title = el("h3", "t-conv-title", "Conversation: " + (headings.get(conversationId) || "other participants"));
    title.id = "t-conv-" + conversationId;
    ol = el("ol", "transcript");
    ol.setAttribute("aria-labelledby", title.id);
    box.append(title, ol);
    list.append(box);
    sections.set(conversationId, ol);
    return ol;
  }

  function selected() {
    return Array.from(list.querySelectorAll("input[type=checkbox]:checked")).map(function (b) { return Number(b.value); });
  }
  function updateSelection() {
    const n = selected().length;
    count.textContent = n + " selected";
    copy.disabled = n === 0;
  }
  list.addEventListener("change", updateSelection);

  async function load(next) {
    const params = new URLSearchParams({ limit: "100" });
    if (query) params.set("participants", query);
    if (next && cursor) params.set("cursor", cursor);
    const page = await api("GET", "/clients/" + clientId + "/transcripts?" + params);
    if (!next) {
      list.replaceChildren();
      sections = new Map();
    }
    useZone(page.time_zone || "UTC");
    headings = new Map(page.conversations.map(function (c) { return [c.id, c.heading]; }));
    page.items.forEach(function (m) { section(m.conversation_id).append(item(m)); });
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = sections.size > 0;
    box.hidden = false;
    updateSelection();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    query = Array.from(form.querySelectorAll("input[name=participant]:checked"))
      .map(function (b) { return b.value; }).join(",");
    load(false).catch(Live.showError);
  });
  more.addEventListener("click", function () { load(true).catch(Live.showError); });

  function noteItem(n) {
    const li = el("li", "note");
    const meta = el("div", "msg-meta");
    meta.append(el("span", "msg-sender", n.author_name || "Someone"), el("time", "", fmt(n.created_at)));
    li.append(meta, el("pre", "note-text", n.text));
    return li;
  }
  async function loadNotes() {
    const page = await api("GET", "/clients/" + clientId + "/chart-notes?limit=50");
    notes.replaceChildren.apply(notes, page.items.map(noteItem));
    notesEmpty.hidden = page.items.length > 0;
  }

  copy.addEventListener("click", async function () {
    const ids = selected();
    if (!ids.length) return;
    copy.disabled = true;
    try {
      const note = await api("POST", "/clients/" + clientId + "/chart-notes", { message_ids: ids });
      notes.prepend(noteItem(note));
      notesEmpty.hidden = true;
      list.querySelectorAll("input[type=checkbox]:checked").forEach(function (b) { b.checked = false; });
      Live.toast("Copied " + ids.length + " message" + (ids.length > 1 ? "s" : "") + " into a chart note.");
    } catch (e) {
      Live.showError(e);
    } finally {
      updateSelection();
    }
  });

  loadNotes().catch(Live.showError);
})();

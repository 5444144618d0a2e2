// Settings > Audit log (R24, the account owner): GET /audit newest first, filtered by person, action and
// date, one page at a time ("Show older events").
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const $ = function (id) { return document.getElementById(id); };
  const root = $("audit");
  if (!root) return;
  const names = JSON.parse(root.dataset.names || "{}");
  const form = $("audit-form");
  const tbody = $("events");
  const more = $("audit-more");
  const errorBox = $("audit-error");
  const PAGE = 50;
  let cursor = null;
  let seq = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function nextDay(date) {  // "To" is inclusive: the API's `until` is the start of the following day
    const d = new Date(date + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 1);
    return d.toISOString().slice(0, 10) + "T00:00:00Z";
  }
  function params() {
    const p = new URLSearchParams({ order: "newest", limit: String(PAGE) });
    if (form.elements.actor_id.value) p.set("actor_id", form.elements.actor_id.value);
    if (form.elements.action.value) p.set("action", form.elements.action.value);
    if (form.elements.from.value) p.set("since", form.elements.from.value + "T00:00:00Z");
    if (form.elements.to.value) p.set("until", nextDay(form.elements.to.value));
    return p;
  }
  function who(e) {
    if (e.actor_id === null || e.actor_id === undefined) return e.actor_kind === "api_key" ? "API key" : e.actor_kind || "System";
    return names[String(e.actor_id)] || (e.actor_kind + " #" + e.actor_id);
  }
  function row(e) {
    const tr = el("tr");
    tr.dataset.seq = String(e.seq);
    const about = e.target_type ? e.target_type + " " + (e.target_type === "participant" && names[e.target_id] ? names[e.target_id] : "#" + e.target_id) : "";
    const detail = e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : "";
    tr.append(
      el("td", "nowrap", e.at.replace("T", " ").slice(0, 16)),
      el("td", "", who(e)),
      el("td", "", e.action),
      el("td", "", about),
      el("td", "detail", detail),
      el("td", "", e.ip || ""));
    return tr;
  }

  async function load(older) {
    const mine = ++seq;
    const p = params();
    if (older && cursor) p.set("cursor", cursor);
    let page;
    try {
      page = await api("GET", "/audit?" + p);
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
      return;
    }
    if (mine !== seq) return;
    errorBox.hidden = true;
    tbody.setAttribute("aria-busy", "false");
    const rows = page.items.map(row);
    if (older) {
      tbody.append.apply(tbody, rows);
    } else if (rows.length) {
      tbody.replaceChildren.apply(tbody, rows);
    } else {
      const td = el("td", "muted", "No events match.");
      td.colSpan = 6;
      const tr = el("tr");
      tr.append(td);
      tbody.replaceChildren(tr);
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    load(false);
  });
  more.addEventListener("click", function () { load(true); });
  load(false);
})();

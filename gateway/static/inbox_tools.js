// The web inbox's new-message picker (recently messaged first, search, several people as chips, "Enable
// Secure Messaging" for a client whose messaging is off) and its away controls ("Away message to clients",
// "Customize").
(function () {
  "use strict";
  const Live = window.Live;
  const Inbox = window.Inbox;
  if (!Live || !Inbox) return;
  const api = Live.api;
  const me = Live.me;
  const el = Inbox.el;
  const chars = Inbox.chars;
  const debounce = Inbox.debounce;
  const kindLabel = Inbox.kindLabel;
  const MAX_AWAY = Number(document.getElementById("inbox").dataset.maxAway);
  const $ = function (id) { return document.getElementById(id); };

  // --- the new-message picker ---------------------------------------------------------------------
  // Choosing people adds them as chips; only "Start conversation" opens the exchange (R11: the same set
  // reopens the same one). The arrow keys select a row and Enter adds the selected row: Enter alone never
  // picks whoever happens to be first, so "morg" + Enter cannot write to the wrong Morgan.
  const picker = $("picker");
  const search = $("picker-search");
  const results = $("picker-results");
  const pickerHint = $("picker-hint");
  const chipsEl = $("picker-chips");
  const startBtn = $("picker-start");
  const pickerError = $("picker-error");
  const notices = $("picker-notices");
  let pickSeq = 0;
  let chosen = [];  // [{id, name, ...}] in the order picked
  let active = -1;  // index of the selected row among the choosable ones

  function isChosen(id) { return chosen.some(function (c) { return c.id === id; }); }

  function secondLine(p) {
    const parts = [kindLabel(p)];
    if (p.contact_of) parts[0] = "Contact of " + p.contact_of.name;
    if (p.email) parts.push(p.email);
    return parts.join(" · ");
  }

  function setError(text) {
    pickerError.textContent = text || "";
    pickerError.hidden = !text;
  }

  function rows() { return Array.from(results.querySelectorAll("[data-choosable]")); }

  function select(index) {
    const all = rows();
    all.forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    active = all.length ? Math.max(-1, Math.min(index, all.length - 1)) : -1;
    if (active >= 0) {
      const row = all[active];
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
      search.setAttribute("aria-activedescendant", row.id);
      row.scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  function renderChips() {
    chipsEl.replaceChildren.apply(chipsEl, chosen.map(function (p) {
      const x = el("button", { type: "button", class: "chip-remove", "aria-label": "Remove " + p.name }, "×");
      x.addEventListener("click", function () { unchoose(p.id); search.focus(); });
      return el("li", { class: "chip", "data-id": p.id }, el("span", { text: p.name }), x);
    }));
    chipsEl.hidden = chosen.length === 0;
    startBtn.disabled = chosen.length === 0;
    startBtn.textContent = chosen.length > 1 ? "Start group conversation" : "Start conversation";
    results.querySelectorAll(".recipient-button").forEach(function (b) {
      b.setAttribute("aria-pressed", isChosen(Number(b.dataset.id)) ? "true" : "false");
    });
  }

  function choose(p) {
    setError("");
    if (isChosen(p.id)) unchoose(p.id);
    else chosen.push(p);
    renderChips();
  }
  function unchoose(id) {
    chosen = chosen.filter(function (c) { return c.id !== id; });
    setError("");
    renderChips();
  }

  async function loadRecipients() {
    const seq = ++pickSeq;
    const q = search.value.trim();
    let r;
    try {
      r = await api("GET", "/recipients?" + new URLSearchParams({ q: q, limit: "20", include_disabled: "1" }));
    } catch (e) {
      Live.showError(e);
      return;
    }
    if (seq !== pickSeq) return;
    pickerHint.textContent = q ? "People matching “" + q + "”." : "Recently messaged first.";
    // Who cannot be messaged now and why (messaging off for the practice, for clients, for someone found),
    // with who can turn it on: a missing name is explained, before anyone types a message.
    const notes = r.notices || [];
    notices.replaceChildren.apply(notices, notes.map(function (n) { return el("li", { class: "r-note", text: n.text }); }));
    notices.hidden = notes.length === 0;
    if (!r.items.length) {
      results.replaceChildren(el("li", { class: "muted empty", text: q ? "No one found." : "No one to message yet." }));
    } else {
      results.replaceChildren.apply(results, r.items.map(recipientItem));
    }
    search.setAttribute("aria-expanded", r.items.length ? "true" : "false");
    select(-1);
    renderChips();
  }

  function recipientItem(p) {
    const info = [
      el("span", { class: "r-name", text: p.name }),
      el("span", { class: "r-kind", text: secondLine(p) }),
    ];
    if (p.messaging_enabled === false) {
      const li = el("li", { class: "recipient off" },
        el("div", { class: "r-info" }, info[0], info[1],
          el("span", { class: "r-note", text: "Secure messaging is off for this client." })));
      if (p.can_enable) {
        const b = el("button", {
          type: "button", class: "button primary small", id: "pick-" + p.id, "data-choosable": true, tabindex: "-1",
          text: "Enable Secure Messaging",
        });
        b.setAttribute("aria-label", "Enable Secure Messaging for " + p.name);
        b.addEventListener("click", function () { enableAndChoose(p, b); });
        li.append(b);
      } else {
        li.append(el("span", { class: "hint", text: "The account owner, a practice manager or the client’s clinician can turn it on." }));
      }
      return li;
    }
    const b = el("button", {
      // Out of the Tab order: the arrow keys move through the rows, Tab goes on to "Start conversation".
      type: "button", class: "recipient-button", id: "pick-" + p.id, "data-id": p.id, "data-choosable": true,
      tabindex: "-1", "aria-pressed": isChosen(p.id) ? "true" : "false",
    }, info[0], info[1], p.recent ? el("span", { class: "tag", text: "Recent" }) : null);
    b.addEventListener("click", function () { choose(p); });
    return el("li", { class: "recipient" }, b);
  }

  async function start() {
    if (!chosen.length) return;
    startBtn.disabled = true;
    setError("");
    try {
      const conv = await api("POST", "/conversations", { participant_ids: chosen.map(function (p) { return p.id; }) });
      picker.close();
      Inbox.refreshList();
      await Inbox.openConversation(conv.id, true);
    } catch (e) {
      setError(e.message);  // the server's words: which rule stops this group (R5, R8, R10…)
    } finally {
      startBtn.disabled = chosen.length === 0;
    }
  }

  async function enableAndChoose(p, button) {
    button.disabled = true;
    try {
      await api("PATCH", "/clients/" + p.id, { messaging_enabled: true });
    } catch (e) {
      button.disabled = false;
      setError(e.message);
      return;
    }
    Live.toast("Secure messaging is now on for " + p.name + ".");
    if (!isChosen(p.id)) chosen.push(Object.assign({}, p, { messaging_enabled: true }));
    await loadRecipients();
    search.focus();
  }

  $("new-message").addEventListener("click", function () {
    search.value = "";
    chosen = [];
    setError("");
    renderChips();
    results.replaceChildren();
    picker.showModal();
    search.focus();
    loadRecipients();
  });
  startBtn.addEventListener("click", start);
  search.addEventListener("input", debounce(loadRecipients, 200));
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const n = rows().length;
      if (!n) return;
      if (ev.key === "ArrowDown") select(active < 0 ? 0 : (active + 1) % n);
      else select(active <= 0 ? n - 1 : active - 1);
    } else if (ev.key === "Enter") {
      ev.preventDefault();  // never a submit, never "whoever is first"
      const row = rows()[active];
      if (row) {
        row.click();
        return;
      }
      pickerHint.textContent = chosen.length
        ? "Choose “Start conversation”, or use ↑ ↓ to add someone."
        : "Use ↑ ↓ to choose someone, then Enter.";
    } else if (ev.key === "Backspace" && !search.value && chosen.length) {
      unchoose(chosen[chosen.length - 1].id);
    }
  });

  // --- away ---------------------------------------------------------------------------------------
  const awayToggle = $("away-toggle");
  const awayDialog = $("away-dialog");
  const awayForm = $("away-form");
  const awayText = $("away-text");
  const awayCount = $("away-count");
  let awayMessage = awayText.value;

  function updateAwayCount() {
    const n = chars(awayText.value.trim());
    awayCount.textContent = n.toLocaleString() + " / " + MAX_AWAY.toLocaleString();
    awayCount.classList.toggle("over", n > MAX_AWAY);
    $("away-save").disabled = n > MAX_AWAY;
  }

  awayToggle.addEventListener("change", async function () {
    const enabled = awayToggle.checked;
    try {
      const r = await api("PUT", "/me/away", { enabled: enabled });
      awayToggle.checked = r.enabled;
      Live.setAwayFlag(r.enabled);
      Live.toast(r.enabled ? "Your away message is on. Clients see it in the portal." : "Your away message is off.");
    } catch (e) {
      awayToggle.checked = !enabled;
      Live.showError(e);
    }
  });
  $("away-customize").addEventListener("click", function () {
    awayText.value = awayMessage;
    updateAwayCount();
    awayDialog.showModal();
    awayText.focus();
  });
  awayText.addEventListener("input", updateAwayCount);
  awayForm.addEventListener("submit", async function (ev) {
    if (!ev.submitter || ev.submitter.value !== "save") return;  // Cancel just closes the dialog
    ev.preventDefault();
    try {
      const r = await api("PUT", "/me/away", { enabled: awayToggle.checked, message: awayText.value });
      awayMessage = r.message;
      awayDialog.close();
      Live.toast("Away message saved.");
    } catch (e) {
      Live.showError(e);
    }
  });

  Live.onEvent(function (e) {
    if (e.type === "away" && e.participant_id === me) {  // changed in another tab or on the phone
      awayToggle.checked = e.enabled;
      if (e.text) awayMessage = e.text;
    }
    if (e.type === "messaging.changed" && picker.open) loadRecipients();  // who can be messaged changed
  });
})();

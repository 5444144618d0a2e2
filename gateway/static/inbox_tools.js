// The web inbox's new-message picker (recently messaged first, search, "Enable Secure Messaging" for a
// client whose messaging is off) and its away controls ("Away message to clients", "Customize").
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
  const picker = $("picker");
  const search = $("picker-search");
  const results = $("picker-results");
  const pickerHint = $("picker-hint");
  let pickSeq = 0;

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
    if (!r.items.length) {
      results.replaceChildren(el("li", { class: "muted empty", text: q ? "No one found." : "No one to message yet." }));
      return;
    }
    results.replaceChildren.apply(results, r.items.map(recipientItem));
  }

  function recipientItem(p) {
    const info = [
      el("span", { class: "r-name", text: p.name }),
      el("span", { class: "r-kind", text: kindLabel(p) }),
    ];
    if (p.messaging_enabled === false) {
      const li = el("li", { class: "recipient off" },
        el("div", { class: "r-info" }, info[0], info[1],
          el("span", { class: "r-note", text: "Secure messaging is off for this client." })));
      if (p.can_enable) {
        const b = el("button", { type: "button", class: "button primary small", text: "Enable Secure Messaging" });
        b.setAttribute("aria-label", "Enable Secure Messaging for " + p.name);
        b.addEventListener("click", function () { enableAndStart(p, b); });
        li.append(b);
      } else {
        li.append(el("span", { class: "hint", text: "The account owner or a practice manager can turn it on." }));
      }
      return li;
    }
    const b = el("button", { type: "button", class: "recipient-button" }, info[0], info[1],
      p.recent ? el("span", { class: "tag", text: "Recent" }) : null);
    b.addEventListener("click", function () { startWith(p, b); });
    return el("li", { class: "recipient" }, b);
  }

  async function startWith(p, button) {
    button.disabled = true;
    try {
      const conv = await api("POST", "/conversations", { participant_ids: [p.id] });
      picker.close();
      Inbox.refreshList();
      await Inbox.openConversation(conv.id, true);
    } catch (e) {
      Live.showError(e);
    } finally {
      button.disabled = false;
    }
  }

  async function enableAndStart(p, button) {
    button.disabled = true;
    try {
      await api("PATCH", "/clients/" + p.id, { messaging_enabled: true });
    } catch (e) {
      button.disabled = false;
      Live.showError(e);
      return;
    }
    Live.toast("Secure messaging is now on for " + p.name + ".");
    await startWith(p, button);
  }

  $("new-message").addEventListener("click", function () {
    search.value = "";
    results.replaceChildren();
    picker.showModal();
    search.focus();
    loadRecipients();
  });
  search.addEventListener("input", debounce(loadRecipients, 200));
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      ev.preventDefault();  // not a submit: move to the first result instead
      const first = results.querySelector("button");
      if (first) first.focus();
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
  });
})();

// Settings > API keys, for the account owner (R29): create a named key with its scopes (POST /api-keys),
// whose key is shown here once; list them (GET /api-keys: never the key itself); revoke one with a confirm
// (DELETE /api-keys/{id}), which stops it at once.
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const $ = function (id) { return document.getElementById(id); };
  const SCOPE_NAMES = { integration: "Integration", provisioning: "Provisioning" };

  const when = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  });
  function fmt(iso) { return iso ? when.format(new Date(iso)) : ""; }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function showError(box, e) {
    box.textContent = e && e.message ? e.message : "Something went wrong; please try again.";
    box.hidden = false;
  }

  // --- the list ---
  const tbody = $("keys");
  function row(key) {
    const tr = el("tr");
    tr.dataset.key = String(key.id);
    tr.dataset.name = key.name;
    const name = el("th", null, key.name);
    name.scope = "row";
    tr.appendChild(name);
    tr.appendChild(el("td", null, key.scopes.map(function (s) { return SCOPE_NAMES[s] || s; }).join(", ")));
    tr.appendChild(el("td", null, fmt(key.created_at)));
    tr.appendChild(el("td", key.last_used_at ? null : "muted", key.last_used_at ? fmt(key.last_used_at) : "Never"));
    const actions = el("td", "row-actions");
    if (key.revoked_at) {
      tr.classList.add("revoked");
      actions.appendChild(el("span", "tag", "Revoked " + fmt(key.revoked_at)));
    } else {
      const revoke = el("button", "button subtle small danger-text");
      revoke.type = "button";
      revoke.setAttribute("aria-haspopup", "dialog");
      revoke.append("Revoke", el("span", "visually-hidden", " " + key.name));
      revoke.addEventListener("click", function () { askRevoke(key, revoke); });
      actions.appendChild(revoke);
    }
    tr.appendChild(actions);
    return tr;
  }
  async function load() {
    tbody.setAttribute("aria-busy", "true");
    try {
      const r = await api("GET", "/api-keys");
      // Working keys first, newest first; revoked ones after them.
      const items = r.items.slice().sort(function (a, b) {
        return (!!a.revoked_at - !!b.revoked_at) || (b.id - a.id);
      });
      if (!items.length) {
        const empty = el("tr");
        const cell = el("td", "muted", "No API keys yet.");
        cell.colSpan = 5;
        empty.appendChild(cell);
        tbody.replaceChildren(empty);
      } else {
        tbody.replaceChildren.apply(tbody, items.map(row));
      }
    } catch (e) {
      Live.showError(e);
    } finally {
      tbody.setAttribute("aria-busy", "false");
    }
  }

  // --- creating: the key is shown once ---
  const form = $("key-form");
  const formError = $("key-error");
  const shown = $("new-key");
  const value = $("new-key-value");
  const copyStatus = $("copy-status");
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    formError.hidden = true;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const scopes = Array.from(form.querySelectorAll('input[name="scopes"]:checked')).map(function (b) { return b.value; });
      const made = await api("POST", "/api-keys", { name: form.elements.name.value.trim(), scopes: scopes });
      form.reset();
      value.value = made.key;
      $("new-key-name").textContent = "(" + made.name + ")";
      copyStatus.textContent = "";
      shown.hidden = false;
      // The key, selected, takes the focus: a screen reader reads its label and the warning with it.
      value.focus();
      value.select();
      await load();
    } catch (e) {
      showError(formError, e);
    } finally {
      button.disabled = false;
    }
  });

  $("copy-key").addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(value.value);
    } catch (e) {
      // No clipboard permission: leave it selected, so Ctrl+C (or the phone's Copy) takes it.
      value.focus();
      value.select();
      copyStatus.textContent = "Press Ctrl+C (or ⌘C) to copy the selected key.";
      return;
    }
    copyStatus.textContent = "Copied.";
  });
  $("new-key-done").addEventListener("click", function () {
    // Gone from the page: it is not shown again.
    value.value = "";
    shown.hidden = true;
    $("s-keys").focus();
  });

  // --- revoking, with a confirm ---
  const dialog = $("revoke-dialog");
  const revokeForm = $("revoke-form");
  const revokeError = $("revoke-error");
  let revoking = null;
  let opener = null;
  function askRevoke(key, button) {
    revoking = key;
    opener = button;
    revokeError.hidden = true;
    $("revoke-title").textContent = "Revoke " + key.name + "?";
    dialog.showModal();
  }
  dialog.addEventListener("close", function () {
    if (opener && document.contains(opener)) opener.focus();
    else $("s-keys").focus();
  });
  revokeForm.addEventListener("submit", async function (ev) {
    if (!ev.submitter || ev.submitter.value !== "save") return;  // Cancel just closes the dialog
    ev.preventDefault();
    if (!revoking) return;
    ev.submitter.disabled = true;
    try {
      await api("DELETE", "/api-keys/" + revoking.id);
      opener = null;
      dialog.close();
      Live.toast(revoking.name + " is revoked.");
      await load();
    } catch (e) {
      showError(revokeError, e);
    } finally {
      ev.submitter.disabled = false;
    }
  });

  load();
})();

// Settings > Data export (R23): ask for an export (POST /exports), poll it from pending to ready
// (GET /exports/{id}), then show its password with Copy and the download; past exports below
// (GET /exports). The password is shown only to the person who asked for the export.
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const $ = function (id) { return document.getElementById(id); };
  if (!$("data-export")) return;

  const POLL_MS = 1500;
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
  const select = $("export-clinician");
  const names = {};
  Array.from(select.options).forEach(function (o) { names[o.value] = o.textContent; });
  function what(x) {
    if (x.scope === "all") return "Everything";
    return "Clients of " + (names[String(x.clinician_id)] || "a clinician");
  }
  const STATUS = { pending: "Preparing…", ready: "Ready", failed: "Failed" };

  // --- past exports ---
  const tbody = $("exports");
  async function loadList() {
    let page;
    try {
      page = await api("GET", "/exports");
    } catch (e) {
      Live.showError(e);
      return;
    }
    tbody.setAttribute("aria-busy", "false");
    if (!page.items.length) {
      const td = el("td", "muted", "No exports yet.");
      td.colSpan = 4;
      const tr = el("tr");
      tr.append(td);
      tbody.replaceChildren(tr);
      return;
    }
    tbody.replaceChildren.apply(tbody, page.items.map(function (x) {
      const tr = el("tr");
      tr.dataset.export = String(x.id);
      tr.append(el("td", "", fmt(x.created_at)), el("td", "", what(x)), el("td", "", STATUS[x.status] || x.status));
      const cell = el("td");
      if (x.download_url) {
        const a = el("a", "", "Download");
        a.href = x.download_url;
        a.setAttribute("download", "");
        a.setAttribute("aria-label", "Download the export of " + fmt(x.created_at));
        cell.append(a);
      }
      tr.append(cell);
      return tr;
    }));
  }

  // --- a new export ---
  const form = $("export-form");
  const formError = $("export-error");
  const current = $("export-current");
  const statusEl = $("export-status");
  const ready = $("export-ready");
  const password = $("export-password");
  const copyStatus = $("copy-status");
  let pollTimer = 0;

  form.addEventListener("change", function () {
    $("clinician-field").hidden = form.elements.scope.value !== "clinician";
  });

  function show(x) {
    current.hidden = false;
    if (x.status === "ready") {
      statusEl.textContent = "Your export is ready.";
      ready.hidden = false;
      password.value = x.password || "";
      $("export-download").href = x.download_url;
    } else if (x.status === "failed") {
      statusEl.textContent = "The export failed: " + (x.error || "please try again.");
      ready.hidden = true;
    } else {
      statusEl.textContent = "Preparing your export… This page updates when it is ready.";
      ready.hidden = true;
    }
  }

  async function poll(id) {
    clearTimeout(pollTimer);
    let x;
    try {
      x = await api("GET", "/exports/" + id);
    } catch (e) {
      Live.showError(e);
      return;
    }
    show(x);
    if (x.status === "pending") pollTimer = setTimeout(function () { poll(id); }, POLL_MS);
    else loadList();
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    formError.hidden = true;
    const body = { scope: form.elements.scope.value, require_password: true };
    if (body.scope === "clinician") body.clinician_id = Number(select.value);
    const button = $("export-start");
    button.disabled = true;
    try {
      const x = await api("POST", "/exports", body);
      copyStatus.textContent = "";
      show(x);
      $("export-current-title").focus();
      loadList();
      poll(x.id);
    } catch (e) {
      formError.textContent = e.message;
      formError.hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  $("copy-password").addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(password.value);
    } catch (e) {
      // No clipboard permission: leave it selected, so Ctrl+C (or the phone's Copy) takes it.
      password.focus();
      password.select();
      copyStatus.textContent = "Press Ctrl+C (or ⌘C) to copy the selected password.";
      return;
    }
    copyStatus.textContent = "Copied.";
  });

  loadList();
})();

// Settings for owners and managers: each form calls the provisioning API (PATCH /practice/settings,
// PATCH /team-members/{id}, PATCH /clients/{id}, PUT/DELETE /clients/{id}/access/{member}).
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const $ = function (id) { return document.getElementById(id); };

  function saved(form, text) {
    const status = form.querySelector(".saved");
    status.textContent = text;
    setTimeout(function () { if (status.textContent === text) status.textContent = ""; }, 5000);
  }

  async function busy(form, work) {
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await work();
    } catch (e) {
      Live.showError(e);
    } finally {
      button.disabled = false;
    }
  }

  // --- practice toggles (R1, R2) and the reminder delay ---
  const practice = $("practice-form");
  const team = practice.elements.team_messaging_enabled;
  const clients = practice.elements.client_messaging_enabled;
  function followTeam() {
    // Client messaging cannot be on while the team's is off.
    clients.disabled = !team.checked;
    if (!team.checked) clients.checked = false;
  }
  team.addEventListener("change", followTeam);
  // The practice had no time zone: live.js gave it this browser's; show it, and say where it came from.
  document.addEventListener("practice-time-zone", function (ev) {
    const zone = practice.elements.time_zone;
    zone.value = ev.detail.time_zone;
    zone.dataset.chosen = "1";
    saved(practice, "Time zone set to " + ev.detail.time_zone.replace(/_/g, " ") + ", from this browser.");
  });
  practice.addEventListener("submit", function (ev) {
    ev.preventDefault();
    busy(practice, async function () {
      const s = await api("PATCH", "/practice/settings", {
        team_messaging_enabled: team.checked,
        client_messaging_enabled: clients.checked,
        auto_enable_new_clients: practice.elements.auto_enable_new_clients.checked,
        unread_email_delay_s: Number(practice.elements.unread_email_delay_s.value),
        time_zone: practice.elements.time_zone.value,
      });
      practice.elements.time_zone.value = s.time_zone;
      team.checked = s.team_messaging_enabled;
      clients.checked = s.client_messaging_enabled;
      practice.elements.auto_enable_new_clients.checked = s.auto_enable_new_clients;
      followTeam();
      saved(practice, "Saved.");
    });
  });

  // --- per-person switches: only what changed is sent ---
  function changedBoxes(form) {
    return Array.from(form.querySelectorAll("input[type=checkbox][data-id]")).filter(function (box) {
      return String(box.checked) !== box.dataset.was;
    });
  }
  function saveRows(form, path) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      busy(form, async function () {
        const changes = new Map();
        changedBoxes(form).forEach(function (box) {
          const body = changes.get(box.dataset.id) || {};
          body[box.dataset.field] = box.checked;
          changes.set(box.dataset.id, body);
        });
        for (const [id, body] of changes) {
          const answer = await api("PATCH", path + id, body);
          form.querySelectorAll('input[data-id="' + id + '"]').forEach(function (box) {
            if (box.dataset.field in answer) {
              box.checked = answer[box.dataset.field];
              box.dataset.was = String(box.checked);
            }
          });
        }
        saved(form, changes.size ? "Saved." : "Nothing to save.");
      });
    });
  }
  saveRows($("team-form"), "/team-members/");
  saveRows($("clients-form"), "/clients/");

  const filter = $("client-filter");
  filter.addEventListener("input", function () {
    const q = filter.value.trim().toLowerCase();
    document.querySelectorAll("#clients-form tbody tr[data-search]").forEach(function (row) {
      row.hidden = q !== "" && row.dataset.search.indexOf(q) === -1;
    });
  });

  // --- access grants (R5, R7) ---
  const access = $("access-form");
  const accessClient = $("access-client");
  const members = $("access-members");
  const accessSave = $("access-save");
  let accessFor = null;

  accessClient.addEventListener("change", async function () {
    const id = accessClient.value;
    members.disabled = true;
    accessSave.disabled = true;
    accessFor = null;
    if (!id) return;
    try {
      const r = await api("GET", "/clients/" + id + "/access");
      if (accessClient.value !== id) return;
      members.querySelectorAll("label").forEach(function (label) {
        const box = label.querySelector("input");
        const memberId = Number(box.dataset.id);
        const primary = memberId === r.primary_clinician_id;
        const granted = r.team_member_ids.indexOf(memberId) !== -1;
        box.checked = primary || granted;
        box.dataset.was = String(granted);
        box.dataset.primary = String(primary);
        label.querySelector(".primary-tag").hidden = !primary;
        box.disabled = primary;  // the primary clinician always has access
      });
      accessFor = id;
      members.disabled = false;
      accessSave.disabled = false;
    } catch (e) {
      Live.showError(e);
    }
  });
  access.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!accessFor) return;
    const clientId = accessFor;
    busy(access, async function () {
      const boxes = changedBoxes(members).filter(function (b) { return b.dataset.primary !== "true"; });
      for (const box of boxes) {
        await api(box.checked ? "PUT" : "DELETE", "/clients/" + clientId + "/access/" + box.dataset.id);
        box.dataset.was = String(box.checked);
      }
      saved(access, boxes.length ? "Saved." : "Nothing to save.");
    });
  });
})();

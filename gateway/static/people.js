// Settings > People, for owners and managers: invite a team member (POST /team-members without a password:
// the server emails the invitation), edit roles and can_export (PATCH /team-members/{id}), deactivate and
// reactivate (DELETE /team-members/{id}, PATCH {active: true}), add a client (POST /clients) and a
// contact (POST /clients/{id}/contacts), change a client's primary clinician (PATCH /clients/{id}).
// Every refusal shown is the server's own message. After a change of who is on the page, the page reloads
// (so what it shows is what the server has) and says what happened.
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const $ = function (id) { return document.getElementById(id); };
  const NOTICE_KEY = "securemsg.people.notice";

  // --- what happened before the reload ---
  (function showNotice() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(NOTICE_KEY) || "null");
      sessionStorage.removeItem(NOTICE_KEY);
    } catch (e) {
      saved = null;
    }
    if (!saved) return;
    const notice = $("people-notice");
    notice.textContent = saved.text;
    notice.hidden = false;
    const target = saved.focus && $(saved.focus);
    if (target) target.focus();
  })();

  function reloadWith(text, focusId) {
    try {
      sessionStorage.setItem(NOTICE_KEY, JSON.stringify({ text: text, focus: focusId }));
    } catch (e) { /* private mode: the page still reloads */ }
    location.reload();
  }

  function showFormError(el, e) {
    el.textContent = e && e.message ? e.message : "Something went wrong; please try again.";
    el.hidden = false;
  }
  function clearFormError(el) {
    el.textContent = "";
    el.hidden = true;
  }
  async function busy(button, work) {
    button.disabled = true;
    try {
      await work();
    } finally {
      button.disabled = false;
    }
  }
  function checkedValues(form, name) {
    return Array.from(form.querySelectorAll('input[name="' + name + '"]:checked')).map(function (b) { return b.value; });
  }

  // A dialog opened from a button gives the focus back to it when it closes.
  function openDialog(dialog, opener, first) {
    dialog.returnTo = opener;
    dialog.showModal();
    if (first) first.focus();
  }
  document.querySelectorAll("dialog").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      if (dialog.returnTo && document.contains(dialog.returnTo)) dialog.returnTo.focus();
    });
  });

  // --- inviting a team member (R25: no password here; the invitation email sets it) ---
  const invite = $("invite-form");
  const inviteError = $("invite-error");
  invite.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearFormError(inviteError);
    const button = invite.querySelector('button[type="submit"]');
    busy(button, async function () {
      try {
        const member = await api("POST", "/team-members", {
          name: invite.elements.name.value.trim(),
          email: invite.elements.email.value.trim(),
          roles: checkedValues(invite, "roles"),
        });
        reloadWith("Invitation sent to " + member.email + ". " + member.name + " chooses a password from the email.", "s-team");
      } catch (e) {
        showFormError(inviteError, e);
      }
    });
  });

  // --- editing a team member's roles and can_export ---
  const memberDialog = $("member-dialog");
  const memberForm = $("member-form");
  const memberError = $("member-error");
  const exportField = $("export-field");
  const exportBox = memberForm.elements.can_export;
  let editing = null;

  function followManager() {
    // can_export is a practice manager's flag (R23).
    const manager = memberForm.querySelector('input[value="practice_manager"]').checked;
    exportField.hidden = !manager;
  }
  memberForm.querySelector('input[value="practice_manager"]').addEventListener("change", followManager);

  memberForm.addEventListener("submit", function (ev) {
    if (!ev.submitter || ev.submitter.value !== "save") return;  // Cancel just closes the dialog
    ev.preventDefault();
    if (!editing) return;
    clearFormError(memberError);
    const row = editing;
    const body = { roles: checkedValues(memberForm, "roles") };
    const manager = body.roles.indexOf("practice_manager") !== -1;
    const wasExport = row.dataset.canExport === "true";
    if (!exportBox.disabled && manager && exportBox.checked !== wasExport) body.can_export = exportBox.checked;
    busy(ev.submitter, async function () {
      try {
        await api("PATCH", "/team-members/" + row.dataset.member, body);
        memberDialog.close();
        reloadWith("Saved the roles of " + row.dataset.name + ".", "s-team");
      } catch (e) {
        showFormError(memberError, e);
      }
    });
  });

  // --- deactivating (R26), with a confirm ---
  const deactivateDialog = $("deactivate-dialog");
  const deactivateForm = $("deactivate-form");
  const deactivateError = $("deactivate-error");
  let deactivating = null;
  const DEACTIVATE_TEXT = $("deactivate-text").textContent;
  deactivateForm.addEventListener("submit", function (ev) {
    if (!ev.submitter || ev.submitter.value !== "save") return;
    ev.preventDefault();
    if (!deactivating) return;
    clearFormError(deactivateError);
    const row = deactivating;
    busy(ev.submitter, async function () {
      try {
        await api("DELETE", "/team-members/" + row.dataset.member);
        if (row.dataset.self === "true") {
          location.assign("/");  // this session ended with the others
          return;
        }
        deactivateDialog.close();
        reloadWith(row.dataset.name + " is deactivated and was signed out everywhere.", "s-deactivated");
      } catch (e) {
        showFormError(deactivateError, e);  // the last owner, or an owner for a manager: the server says why
      }
    });
  });

  document.querySelector(".people-table").addEventListener("click", function (ev) {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr[data-member]");
    if (button.dataset.action === "edit") {
      editing = row;
      clearFormError(memberError);
      $("member-title").textContent = "Edit " + row.dataset.name;
      const roles = row.dataset.roles.split(",");
      memberForm.querySelectorAll('input[name="roles"]').forEach(function (box) {
        box.checked = roles.indexOf(box.value) !== -1;
      });
      exportBox.checked = row.dataset.canExport === "true";
      followManager();
      openDialog(memberDialog, button, memberForm.querySelector('input[name="roles"]:not(:disabled)'));
    } else if (button.dataset.action === "deactivate") {
      deactivating = row;
      clearFormError(deactivateError);
      $("deactivate-title").textContent = "Deactivate " + row.dataset.name + "?";
      $("deactivate-text").textContent = row.dataset.self === "true"
        ? "You are signed out everywhere at once, this browser included, and can no longer sign in until someone reactivates you."
        : DEACTIVATE_TEXT;
      openDialog(deactivateDialog, button, null);
    }
  });

  // --- reactivating ---
  document.querySelectorAll('button[data-action="reactivate"]').forEach(function (button) {
    button.addEventListener("click", function () {
      const item = button.closest("[data-member]");
      busy(button, async function () {
        try {
          await api("PATCH", "/team-members/" + item.dataset.member, { active: true });
          reloadWith(item.dataset.name + " is active again and can sign in.", "s-team");
        } catch (e) {
          Live.showError(e);
        }
      });
    });
  });

  // --- clients: the primary clinician (only what changed is sent) ---
  const clientsForm = $("clients-form");
  clientsForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const button = clientsForm.querySelector('button[type="submit"]');
    const status = clientsForm.querySelector(".saved");
    busy(button, async function () {
      const changed = Array.from(clientsForm.querySelectorAll("select[data-id]")).filter(function (s) {
        return s.value !== s.dataset.was;
      });
      try {
        for (const select of changed) {
          const value = select.value ? Number(select.value) : null;
          const answer = await api("PATCH", "/clients/" + select.dataset.id, { primary_clinician_id: value });
          select.dataset.was = answer.primary_clinician_id === null ? "" : String(answer.primary_clinician_id);
        }
        status.textContent = changed.length ? "Saved." : "Nothing to save.";
      } catch (e) {
        status.textContent = "";
        Live.showError(e);
      }
    });
  });

  const filter = $("client-filter");
  filter.addEventListener("input", function () {
    const q = filter.value.trim().toLowerCase();
    clientsForm.querySelectorAll("tbody tr[data-search]").forEach(function (row) {
      row.hidden = q !== "" && row.dataset.search.indexOf(q) === -1;
    });
  });

  // --- a client's contact ---
  const contactDialog = $("contact-dialog");
  const contactForm = $("contact-form");
  const contactError = $("contact-error");
  let contactFor = null;
  clientsForm.addEventListener("click", function (ev) {
    const button = ev.target.closest('button[data-action="contact"]');
    if (!button) return;
    contactFor = button.closest("tr[data-client]");
    contactForm.reset();
    clearFormError(contactError);
    $("contact-title").textContent = "Add a contact for " + contactFor.dataset.name;
    openDialog(contactDialog, button, contactForm.elements.name);
  });
  contactForm.addEventListener("submit", function (ev) {
    if (!ev.submitter || ev.submitter.value !== "save") return;
    ev.preventDefault();
    if (!contactFor) return;
    clearFormError(contactError);
    const row = contactFor;
    busy(ev.submitter, async function () {
      try {
        const contact = await api("POST", "/clients/" + row.dataset.client + "/contacts", {
          name: contactForm.elements.name.value.trim(),
          email: contactForm.elements.email.value.trim(),
        });
        contactDialog.close();
        reloadWith(contact.name + " is now a contact of " + row.dataset.name + ".", "s-clients");
      } catch (e) {
        showFormError(contactError, e);
      }
    });
  });

  // --- adding a client ---
  const addClient = $("client-add-form");
  const addError = $("client-add-error");
  addClient.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearFormError(addError);
    const button = addClient.querySelector('button[type="submit"]');
    busy(button, async function () {
      const primary = addClient.elements.primary_clinician_id.value;
      try {
        const client = await api("POST", "/clients", {
          name: addClient.elements.name.value.trim(),
          email: addClient.elements.email.value.trim(),
          primary_clinician_id: primary ? Number(primary) : null,
          portal_access: addClient.elements.portal_access.checked,
        });
        reloadWith(client.name + " is added as a client.", "s-clients");
      } catch (e) {
        showFormError(addError, e);
      }
    });
  });
})();

// The portal's Notifications page (R19): each switch saves at once (PATCH /api/v1/devices/{id}) and goes
// back, with the server's reason, if the server refuses; "Remove this phone" asks to confirm, then DELETE.
(function () {
  "use strict";
  var Live = window.Live;
  var list = document.getElementById("devices");
  if (!Live || !list) return;

  list.querySelectorAll(".device").forEach(function (card) {
    var id = card.dataset.device;
    card.querySelectorAll("input[data-alert]").forEach(function (input) {
      input.addEventListener("change", async function () {
        var alerts = {};
        alerts[input.dataset.alert] = input.checked;
        input.disabled = true;
        try {
          var device = await Live.api("PATCH", "/devices/" + id, { alerts: alerts });
          input.checked = Boolean(device.alerts[input.dataset.alert]);
          Live.toast("Saved");
        } catch (e) {
          input.checked = !input.checked;
          Live.showError(e);
        } finally {
          input.disabled = false;
        }
      });
    });
    var remove = card.querySelector("[data-remove]");
    var confirm = card.querySelector(".confirm");
    remove.addEventListener("click", function () {
      remove.hidden = true;
      confirm.hidden = false;
      confirm.querySelector("[data-remove-no]").focus();
    });
    confirm.querySelector("[data-remove-no]").addEventListener("click", function () {
      confirm.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    confirm.querySelector("[data-remove-yes]").addEventListener("click", async function () {
      try {
        await Live.api("DELETE", "/devices/" + id);
      } catch (e) {
        if (e.status !== 404) {  // already gone (removed on the phone itself): gone is what was asked
          Live.showError(e);
          return;
        }
      }
      card.remove();
      Live.toast("Phone removed");
      if (!list.querySelector(".device")) document.getElementById("no-devices").hidden = false;
    });
  });
})();

// Your account > Notifications (R19): the signed-in person's phones (GET /devices), the four alert types
// as switches (PATCH /devices/{id}, saved at once), and Remove with a confirm (DELETE /devices/{id}).
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const list = document.getElementById("devices");
  if (!list) return;
  const ALERTS = [
    ["new_message", "New messages"],
    ["appointment", "Appointment reminders"],
    ["appointment_request", "Appointment requests"],
    ["video_appointment", "Video appointments"],
  ];
  const PLATFORMS = { apns: "iPhone or iPad", fcm: "Android" };
  const APPS = { practice: "Practice app", client: "Client app" };
  const when = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function deviceItem(d) {
    const name = (PLATFORMS[d.platform] || d.platform) + " · " + (APPS[d.app] || d.app);
    const li = el("li", "card device");
    li.dataset.device = String(d.id);
    const head = el("div", "device-head");
    const title = el("h3", "", name);
    title.id = "device-" + d.id;
    head.append(title, el("span", "muted", d.created_at ? "Added " + when.format(new Date(d.created_at)) : ""));
    li.append(head);
    if (!d.enabled) li.append(el("p", "r-note", "Notifications to this phone stopped: " + (d.disabled_reason || "it is no longer registered.")));
    const group = el("div", "switches");
    group.setAttribute("role", "group");
    group.setAttribute("aria-labelledby", title.id);
    ALERTS.forEach(function (pair) {
      const label = el("label", "switch");
      const input = el("input");
      input.type = "checkbox";
      input.setAttribute("role", "switch");
      input.checked = !!d.alerts[pair[0]];
      input.setAttribute("aria-label", pair[1] + " on " + name);
      input.addEventListener("change", async function () {
        const body = { alerts: {} };
        body.alerts[pair[0]] = input.checked;
        try {
          const r = await api("PATCH", "/devices/" + d.id, body);
          d.alerts = r.alerts;
          input.checked = !!r.alerts[pair[0]];
          Live.toast(pair[1] + (input.checked ? " on." : " off."));
        } catch (e) {
          input.checked = !input.checked;
          Live.showError(e);
        }
      });
      const track = el("span", "switch-track");
      track.setAttribute("aria-hidden", "true");
      // "On"/"Off" beside the switch, shown from the box's own state by app.css (never out of step with it).
      const state = el("span", "switch-state");
      state.setAttribute("aria-hidden", "true");
      state.append(el("span", "when-on", "On"), el("span", "when-off", "Off"));
      label.append(input, track, el("span", "", pair[1]), state);
      group.append(label);
    });
    li.append(group);
    const remove = el("button", "button subtle small", "Remove this phone");
    remove.type = "button";
    remove.setAttribute("aria-label", "Remove this phone (" + name + ")");  // the visible words first (WCAG 2.5.3)
    remove.addEventListener("click", function () { confirmRemove(li, d, remove); });
    li.append(remove);
    return li;
  }

  function confirmRemove(li, d, remove) {
    if (li.querySelector(".confirm")) return;
    const yes = el("button", "button danger small", "Remove");
    yes.type = "button";
    const no = el("button", "button subtle small", "Cancel");
    no.type = "button";
    const box = el("div", "confirm");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Remove this phone?");
    const actions = el("div", "confirm-actions");
    actions.append(yes, no);
    box.append(el("p", "", "It stops getting notifications until you sign in to the app on it again."), actions);
    no.addEventListener("click", function () { box.remove(); remove.focus(); });
    yes.addEventListener("click", async function () {
      yes.disabled = true;
      try {
        await api("DELETE", "/devices/" + d.id);
        Live.toast("The phone was removed.");
        load();
      } catch (e) {
        yes.disabled = false;
        Live.showError(e);
      }
    });
    li.append(box);
    no.focus();
  }

  async function load() {
    let r;
    try {
      r = await api("GET", "/devices");
    } catch (e) {
      Live.showError(e);
      return;
    }
    list.setAttribute("aria-busy", "false");
    if (!r.items.length) {
      list.replaceChildren(el("li", "muted", "No phones yet. Sign in to the practice app on your phone to get notifications there."));
      return;
    }
    list.replaceChildren.apply(list, r.items.map(deviceItem));
  }
  load();
})();

// Your account > Notifications (R19): the signed-in person's phones and browsers (GET /devices: platform, app,
// added, last seen), the four alert types as switches (PATCH /devices/{id}, saved at once), Remove with a
// confirm (DELETE /devices/{id}), and the "Browser notifications" switch for this browser (window.WebPush,
// webpush.js).
(function () {
  "use strict";
  const Live = window.Live;
  const api = Live.api;
  const list = document.getElementById("devices");
  if (!list) return;
  const ALERTS = [
    ["new_message", "New messages"],
    ["appointment", "Appointment alerts"],
    ["appointment_request", "Appointment requests"],
    ["video_appointment", "Video appointments"],
  ];
  const PLATFORMS = { apns: "iPhone or iPad", fcm: "Android", webpush: "Browser" };
  const APPS = { practice: "Practice app", client: "Client app" };
  const WEB_APPS = { practice: "Web inbox", client: "Portal" };
  const browserSwitch = document.getElementById("webpush-switch");
  const browserStatus = document.getElementById("webpush-status");
  let thisBrowser = null;  // this browser's device, when its subscription is registered
  const when = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function deviceItem(d) {
    const browser = d.platform === "webpush";
    const apps = browser ? WEB_APPS : APPS;
    const what = browser ? "browser" : "phone";
    const name = (PLATFORMS[d.platform] || d.platform) + " · " + (apps[d.app] || d.app);
    const li = el("li", "card device");
    li.dataset.device = String(d.id);
    const head = el("div", "device-head");
    const title = el("h3", "", name);
    title.id = "device-" + d.id;
    // When it was added and when its app (or browser) last checked in, as the portal's page says too.
    const dates = [
      d.created_at ? "Added " + when.format(new Date(d.created_at)) : "",
      d.last_seen_at ? "last seen " + when.format(new Date(d.last_seen_at)) : "",
    ].filter(Boolean).join(" · ");
    const mine = thisBrowser && thisBrowser.id === d.id;
    head.append(title, el("span", "muted", mine ? "This browser · " + dates : dates));
    li.append(head);
    if (!d.enabled) li.append(el("p", "r-note", "Notifications to this " + what + " stopped: " + (d.disabled_reason || "it is no longer registered.")));
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
    const remove = el("button", "button subtle small", "Remove this " + what);
    remove.type = "button";
    remove.setAttribute("aria-label", "Remove this " + what + " (" + name + ")");  // the visible words first (WCAG 2.5.3)
    remove.addEventListener("click", function () { confirmRemove(li, d, remove, what); });
    li.append(remove);
    return li;
  }

  function confirmRemove(li, d, remove, what) {
    if (li.querySelector(".confirm")) return;
    const yes = el("button", "button danger small", "Remove");
    yes.type = "button";
    const no = el("button", "button subtle small", "Cancel");
    no.type = "button";
    const box = el("div", "confirm");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Remove this " + what + "?");
    const actions = el("div", "confirm-actions");
    actions.append(yes, no);
    const after = what === "browser"
      ? "It stops getting notifications until you turn them on in that browser again."
      : "It stops getting notifications until you sign in to the app on it again.";
    box.append(el("p", "", after), actions);
    no.addEventListener("click", function () { box.remove(); remove.focus(); });
    yes.addEventListener("click", async function () {
      yes.disabled = true;
      try {
        if (thisBrowser && thisBrowser.id === d.id) {
          await window.WebPush.disable(api, d.id);  // this browser's own: unsubscribe it too
        } else {
          await api("DELETE", "/devices/" + d.id);
        }
        Live.toast("The " + what + " was removed.");
        load();
      } catch (e) {
        yes.disabled = false;
        Live.showError(e);
      }
    });
    li.append(box);
    no.focus();
  }

  // The switch is on while this browser's subscription is registered (and not disabled) as a device.
  async function showBrowser(items) {
    if (!browserSwitch) return;
    const WebPush = window.WebPush;
    if (!WebPush || !WebPush.supported()) {
      browserSwitch.checked = false;
      browserSwitch.disabled = true;
      browserStatus.textContent = window.isSecureContext
        ? "This browser cannot show notifications from websites."
        : "Browser notifications need the inbox to be opened over https.";
      return;
    }
    let sub = null;
    try {
      sub = await WebPush.current();
    } catch (e) {
      sub = null;
    }
    const id = sub ? await WebPush.subscriptionId(sub) : null;
    thisBrowser = (id && items.find(function (d) { return d.subscription_id === id && d.enabled; })) || null;
    browserSwitch.checked = !!thisBrowser;
    const blocked = Notification.permission === "denied";
    browserSwitch.disabled = blocked && !thisBrowser;
    browserStatus.textContent = blocked
      ? "Notifications are blocked for this site. Allow them in the browser's site settings to turn this on."
      : thisBrowser ? "On: this browser shows a notification when a secure message arrives." : "";
  }

  if (browserSwitch) {
    browserSwitch.addEventListener("change", async function () {
      const on = browserSwitch.checked;
      browserSwitch.disabled = true;
      browserStatus.textContent = on ? "Asking the browser…" : "";
      try {
        if (on) {
          await window.WebPush.enable(api);
          Live.toast("Browser notifications on.");
        } else {
          await window.WebPush.disable(api, thisBrowser && thisBrowser.id);
          Live.toast("Browser notifications off.");
        }
      } catch (e) {
        browserSwitch.checked = !on;
        if (e instanceof window.WebPush.Refused) {
          browserStatus.textContent = e.message;
          browserSwitch.disabled = false;
          return;
        }
        Live.showError(e);
      }
      await load();
    });
  }

  async function load() {
    let r;
    try {
      r = await api("GET", "/devices");
    } catch (e) {
      Live.showError(e);
      return;
    }
    await showBrowser(r.items);
    list.setAttribute("aria-busy", "false");
    if (!r.items.length) {
      list.replaceChildren(el("li", "muted", "No phones or browsers yet. Sign in to the practice app on your phone, or turn on browser notifications above, to get notifications."));
      return;
    }
    list.replaceChildren.apply(list, r.items.map(deviceItem));
  }
  load();
})();

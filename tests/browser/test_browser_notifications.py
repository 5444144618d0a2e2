"""Browser notifications (Web Push) in Chromium: the "Browser notifications" switch on Your account >
Notifications, the service worker (/inbox/sw.js, scope /inbox), and a notification for a new message while
the inbox is closed, whose click opens the conversation.

What headless Chromium refuses, precisely (the first test pins it down):
- `pushManager.subscribe` in a Playwright browser context (an off-the-record profile) rejects at once with
  "AbortError: Registration failed - permission denied", and Chromium logs "Chrome currently does not
  support the Push API in incognito mode". In a persistent profile it never settles instead: Chromium's
  own push service (Google's) cannot be reached without a network. Either way no real subscription exists.
- A script-made `notificationclick` has no user activation: `clients.openWindow` and `client.focus` are
  refused ("Not allowed to open a window"), and `event.waitUntil` throws on a script-made event.

So the second test replaces exactly one step, the browser's registration with its push service:
`PushManager.prototype.subscribe` hands back a subscription made by the loopback push service
(tests/fakes/webpush.py), after recording the applicationServerKey the page passed. Everything else is
real: the permission prompt (granted), the service worker's registration, the page's POST to our API, the
dispatcher's encrypted push, the push service's decryption, a trusted push event delivered to the real
service worker (CDP ServiceWorker.deliverPushMessage) and the notification Chromium shows, then a click
dispatched in the worker that takes an open inbox tab to the conversation.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import messaging
from inbox.models import Device, Participant
from push.webpush import application_server_key, load_vapid_key
from tests.browser.conftest import base_url, open_tab, screenshot, screenshots_wanted
from tests.browser.seed import seed_practice, sign_in
from tests.conftest import make_config
from tests.fakes.webpush import FakeWebPush
from tests.gateway.pushkit import CANARY, drain

pytestmark = pytest.mark.browser


@pytest.fixture
def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(db_url: str, tmp_path: Path, tls_certs, monkeypatch: pytest.MonkeyPatch, port: int):
    # The push service is the loopback fake (trusted through SSL_CERT_FILE, like a private CA); the public
    # URL is the test server's own, so the links a push carries are this site's, as in production.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    return make_config(
        db_url, tmp_path / "var", webpush_allow_private=True, public_url=f"http://127.0.0.1:{port}"
    )


@pytest.fixture
async def client(aiohttp_client, config, clock, port: int):
    from gateway.app import create_app

    return await aiohttp_client(create_app(config, clock=clock), server_kwargs={"port": port})


async def open_notifications(browser, base: str, seeded, clock):
    tab = await open_tab(browser)
    await tab.context.grant_permissions(["notifications"], origin=base)
    await sign_in(tab.page, base, seeded.emails["sam"], code=seeded.code(clock))
    await tab.page.goto(base + "/account/notifications")
    return tab


async def test_headless_chromium_refuses_a_real_subscription_and_the_page_says_so(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    tab = await open_notifications(browser, base, seeded, clock)
    page = tab.page
    switch = page.get_by_role("switch", name="Browser notifications")
    await expect(switch).to_be_enabled()
    await expect(switch).not_to_be_checked()
    # click, not check(): the refusal can come back (and the page turn the switch off again) before
    # Playwright looks at the switch after its click, which check() would report as a failed click.
    await switch.click()
    status = page.locator("#webpush-status")
    await expect(status).to_have_text(
        "This browser refused to subscribe to notifications (Registration failed - permission denied)."
    )
    await expect(switch).not_to_be_checked()
    await expect(switch).to_be_enabled()
    # Up to the refusal everything happened: the worker is registered for the inbox's scope.
    scope = await page.evaluate("navigator.serviceWorker.getRegistration('/inbox').then(r => r && r.scope)")
    assert scope == base + "/inbox"
    assert not await Device.filter(platform="webpush").exists()
    tab.allow("does not support the Push API in incognito mode")
    assert tab.problems == []
    await tab.context.close()


FAKE_SUBSCRIBE = """
(() => {
  const SUB = %s;
  const KEY = "securemsg-test-subscribed";
  function b64url(buffer) {
    return btoa(String.fromCharCode.apply(null, new Uint8Array(buffer)))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  }
  function subscription(key) {
    return {
      endpoint: SUB.endpoint,
      options: { applicationServerKey: key, userVisibleOnly: true },
      toJSON: () => SUB,
      unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
    };
  }
  PushManager.prototype.subscribe = async function (options) {
    const key = options.applicationServerKey;
    localStorage.setItem(KEY, b64url(key));
    return subscription(key.buffer || key);
  };
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem(KEY);
    if (!key) return null;
    const bytes = Uint8Array.from(atob(key.replace(/-/g, "+").replace(/_/g, "/")), c => c.charCodeAt(0));
    return subscription(bytes.buffer);
  };
})();
"""


async def registration_id(cdp) -> str:
    found: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: found.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")
    for _ in range(50):
        live = [r for r in found if r["scopeURL"].endswith("/inbox") and not r["isDeleted"]]
        if live:
            return live[-1]["registrationId"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no service worker registration for /inbox: {found}")


async def test_a_clinician_with_the_inbox_closed_gets_a_notification_that_opens_the_conversation(
    browser, client, config, clock, fake_webpush: FakeWebPush
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    server_key = application_server_key(load_vapid_key((config.var_dir / "vapid.key").read_text()))
    sub = fake_webpush.subscribe(server_key)
    tab = await open_tab(browser)
    await tab.context.grant_permissions(["notifications"], origin=base)
    await tab.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(sub.to_json()))
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await page.goto(base + "/account/notifications")

    # --- turning it on: permission, the worker, subscribe with our VAPID key, POST /devices ---
    switch = page.get_by_role("switch", name="Browser notifications")
    await switch.check()
    await expect(page.locator("#toast")).to_have_text("Browser notifications on.")
    await expect(switch).to_be_checked()
    assert await page.evaluate("localStorage.getItem('securemsg-test-subscribed')") == server_key
    card = page.locator("#devices .device")
    await expect(card).to_have_count(1)
    await expect(card.locator("h3")).to_have_text("Browser · Web inbox")
    await expect(card).to_contain_text("This browser")
    await expect(card.get_by_role("switch", name="New messages on Browser · Web inbox")).to_be_checked()
    [device] = await Device.filter(participant_id=seeded.ids["sam"], platform="webpush")
    assert device.enabled
    await page.reload()
    await expect(switch).to_be_checked()  # found again by its endpoint's hash, not just drawn
    if screenshots_wanted(config):
        await screenshot(page, "notifications-browser.png", full_page=True)

    # --- the inbox is closed (this page is the settings page); Alex writes to Sam ---
    ctx = make_context(config, clock)
    alex = await Participant.get(id=seeded.ids["alex"])
    opened = await messaging.open_conversation(ctx, alex, [seeded.ids["sam"]], CANARY)
    conversation = opened.conversation
    assert conversation is not None
    await drain(client)
    assert fake_webpush.errors == []
    [payload] = fake_webpush.payloads(sub)
    assert CANARY not in json.dumps(payload) and "Alex" not in json.dumps(payload)
    assert payload["web_link"] == f"{base}/inbox?conversation={conversation.id}"

    # --- the push reaches the real service worker (a trusted push event), which shows the notification ---
    cdp = await tab.context.new_cdp_session(page)
    reg_id = await registration_id(cdp)
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": base, "registrationId": reg_id, "data": json.dumps(payload)},
    )
    [worker] = [w for w in tab.context.service_workers if w.url.endswith("/inbox/sw.js")]
    shown = await worker.evaluate(
        """async () => {
          for (let i = 0; i < 50; i++) {
            const ns = await self.registration.getNotifications();
            if (ns.length) return ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data}));
            await new Promise(r => setTimeout(r, 100));
          }
          return [];
        }"""
    )
    assert shown == [
        {
            "title": "New secure message",
            "body": "Open your secure inbox to read it.",
            "tag": f"conversation-{conversation.id}",
            "data": {
                "url": f"{base}/inbox?conversation={conversation.id}",
                "conversation_id": str(conversation.id),
            },
        }
    ]

    # --- a click on it takes the inbox tab (opened meanwhile) to the conversation ---
    inbox = await tab.context.new_page()
    inbox.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    await inbox.goto(base + "/inbox")
    await expect(inbox.locator("#thread")).to_be_hidden()
    await worker.evaluate(
        """async () => {
          const [n] = await self.registration.getNotifications();
          self.dispatchEvent(new NotificationEvent("notificationclick", { notification: n }));
        }"""
    )
    await expect(inbox).to_have_url(f"{base}/inbox?conversation={conversation.id}")
    await expect(inbox.locator("#thread-title")).to_have_text("Alex Morgan")
    await expect(inbox.locator(".msg").last).to_contain_text(CANARY)  # read where it belongs: the inbox
    assert await worker.evaluate("self.registration.getNotifications().then(ns => ns.length)") == 0

    # --- turning it off removes the device and unsubscribes ---
    await page.bring_to_front()
    await switch.uncheck()
    await expect(page.locator("#toast")).to_have_text("Browser notifications off.")
    await expect(page.locator("#devices .device")).to_have_count(0)
    assert not await Device.filter(platform="webpush").exists()
    assert await page.evaluate("localStorage.getItem('securemsg-test-subscribed')") is None
    assert tab.problems == []
    await tab.context.close()

"""In a real browser: a client whose email link has expired signs in with "Sign in with Google" and reads
the thread, then links the Google account from "Sign-in options", a page that passes the axe check; and
the other pages of Sign in with Google (continuing to the provider, choosing a practice, a failed sign-in)
and the portal's "form out of date" page pass it too, each reached the way a person reaches it. The
provider is the loopback OpenID Connect server of tests/fakes/oidc.py; Chromium follows its redirects itself, carrying the app's HttpOnly
cookies as it would with Google."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from playwright.async_api import expect

from gateway.app import create_app, make_context
from gateway.auth import PORTAL_COOKIE
from gateway.keys import CONFIG
from inbox import accounts, messaging
from inbox.models import AuditEvent, OidcIdentity, Participant
from tests.browser.conftest import (
    DESKTOP,
    NO_SIDEWAYS_SCROLL,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
)
from tests.browser.seed import PASSWORD, seed_practice
from tests.browser.test_accessibility import axe_problems
from tests.conftest import make_config
from tests.fakes.oidc import FakeOidc, FakeUser
from tests.gateway.mail_helpers import drain, text_of, to

pytestmark = pytest.mark.browser

NOTE = "Here is the worksheet for Thursday :smile:"
# Pairs of the top bar's items (the practice's name, each link, Sign out) whose boxes overlap.
TOP_BAR_OVERLAPS = """() => {
  const items = [...document.querySelectorAll(".top-row .brand span:last-child, .top-row .account-link,"
    + " .top-row .sign-out button")];
  const boxes = items.map(el => [el.textContent.trim(), el.getBoundingClientRect()]);
  const hits = [];
  boxes.forEach(([a, r], i) => boxes.slice(i + 1).forEach(([b, q]) => {
    if (r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom) hits.push([a, b]);
  }));
  return hits;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fake_oidc(clock):
    fake = FakeOidc(clock)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(aiohttp_client, db_url, tmp_path, smtp, clock, fake_oidc):
    # The provider redirects the browser to the public URL's callback, so the app listens where that says.
    port = _free_port()
    config = make_config(
        db_url,
        tmp_path / "var",
        smtp_port=smtp.port,
        public_url=f"http://127.0.0.1:{port}",
        oidc_issuer=fake_oidc.issuer,
        oidc_client_id=fake_oidc.client_id,
        oidc_client_secret=fake_oidc.client_secret,
    )
    return await aiohttp_client(create_app(config, clock=clock), server_kwargs={"port": port})


async def test_a_client_whose_link_expired_signs_in_with_google_and_reads_the_thread(
    browser, client, clock, smtp, fake_oidc
):
    config = client.server.app[CONFIG]
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], NOTE)
    await drain(client)
    [mail] = to(smtp, seeded.emails["alex"])
    [link] = set(re.findall(re.escape(base_url(client)) + r"/portal/m/[A-Za-z0-9_-]+", text_of(mail)))
    clock.advance(24 * 3600 + 60)  # a day later: the link has expired (R18)

    fake_oidc.user = FakeUser("alex-google-sub", seeded.emails["alex"])
    alex = await open_tab(browser, PHONE)
    portal = alex.page
    await portal.goto(link)
    await expect(portal.get_by_role("heading", name="This link no longer works")).to_be_visible()
    if screenshots_wanted(config):
        await screenshot(portal, "portal-link-expired-google.png", full_page=True)
    await portal.get_by_role("button", name="Sign in with Google").click()

    # Through the provider and back: the conversation list, then the thread.
    await expect(portal).to_have_url(base_url(client) + "/portal")
    await portal.locator("a.conversation", has_text="Dr. Sam Rivera").click()
    await expect(portal.locator(".thread .message").last).to_contain_text(
        "Here is the worksheet for Thursday 😄"
    )
    await expect(portal.locator(".thread-title")).to_have_text("Dr. Sam Rivera")
    assert fake_oidc.token_outcomes == ["ok"]
    assert await AuditEvent.filter(action="auth.oidc_sign_in", actor_id=seeded.ids["alex"]).count() == 1

    # On the phone the top bar holds one more link with Sign in with Google on: nothing in it overlaps.
    assert await portal.evaluate(TOP_BAR_OVERLAPS) == []
    assert await portal.evaluate(NO_SIDEWAYS_SCROLL)

    # Sign-in options: linking the Google account goes through the provider and back to this page.
    await portal.get_by_role("link", name="Sign-in options").click()
    await expect(portal.get_by_role("heading", name="Sign in with Google")).to_be_visible()
    await portal.get_by_role("button", name="Link your Google account").click()
    await expect(portal).to_have_url(base_url(client) + "/portal/account?done=linked")
    await expect(portal.locator(".notice")).to_have_text("Your Google account is linked.")
    await expect(portal.get_by_role("button", name="Unlink your Google account")).to_be_visible()
    assert await OidcIdentity.filter(participant_id=seeded.ids["alex"], subject="alex-google-sub").exists()
    if screenshots_wanted(config):
        await screenshot(portal, "portal-account-google.png", full_page=True)
    alex.allow("status of 404")  # the expired link's page is a 404, on purpose
    assert alex.problems == []

    # The portal's "Sign-in options" page exists only with a provider configured: axe checks it here (as the
    # next test does the other Sign in with Google pages; the rest are in test_accessibility.py), in a context that lets the vendored axe-core in past the CSP.
    checked = await browser.new_context(viewport=PHONE, locale="en-US", timezone_id="UTC", bypass_csp=True)
    await checked.add_cookies(await alex.context.cookies())
    page = await checked.new_page()
    await page.goto(base_url(client) + "/portal/account")
    await expect(page.get_by_role("heading", name="Sign-in options")).to_be_visible()
    assert await axe_problems(page, "/portal/account") == []
    await checked.close()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_the_sign_in_with_google_pages_and_the_expired_form_page_pass_axe(
    browser, client, clock, fake_oidc, screen
):
    """axe-core (tests/browser/test_accessibility.py) on the portal pages only Sign in with Google and a stale
    form lead to, each reached through the real flow, in contexts that let the vendored axe-core past the CSP.
    Each page's heading is checked first, so a check of the wrong page fails."""
    config = client.server.app[CONFIG]
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    base = base_url(client)
    viewport = PHONE if screen == "phone" else DESKTOP
    alex_email = seeded.emails["alex"]
    # Alex is a client at a second practice too, with the same address: one Google account, two people.
    lakeside = await accounts.create_practice(
        ctx,
        name="Lakeside Therapy",
        owner_name="Morgan Hale",
        owner_email="morgan@lakeside.example",
        owner_password=PASSWORD,
    )
    await accounts.update_settings(ctx, lakeside.practice, {"client_messaging_enabled": True})
    await accounts.create_client(
        ctx,
        lakeside.practice,
        name="Alex Morgan",
        email=alex_email,
        primary_clinician_id=None,
        messaging_enabled=True,
    )
    fake_oidc.user = FakeUser("alex-google-sub", alex_email)

    async def checked() -> tuple[Any, Any]:
        made = await browser.new_context(
            viewport=viewport, locale="en-US", timezone_id="UTC", bypass_csp=True
        )
        return made, await made.new_page()

    def at_provider(url: str) -> bool:
        return url.startswith(fake_oidc.issuer + "/authorize")

    async def press_sign_in_with_google(page: Any) -> None:
        await page.goto(base + "/portal/sign-in")
        await page.get_by_role("button", name="Sign in with Google").click()

    # "Continuing to Google": its Refresh header sends the browser on at once. The provider's answer is held
    # back as a 204 (a browser stays on the page it is on), so the page stays to be checked once the
    # browser has asked for the provider's page.
    made, page = await checked()
    await page.route(at_provider, lambda route: route.fulfill(status=204))
    async with page.expect_request(lambda r: at_provider(r.url)):
        await press_sign_in_with_google(page)
    await expect(page.get_by_role("heading", name="Continuing to Google…")).to_be_visible()
    assert await axe_problems(page, "/portal/oidc/start (continuing)") == []
    assert page.url == base + "/portal/oidc/start"
    await expect(page.get_by_role("link", name="Continue to Google")).to_have_attribute(
        "href", re.compile("^" + re.escape(fake_oidc.issuer + "/authorize?"))
    )
    await made.close()

    # One Google account known to two practices: the browser chooses where to sign in.
    made, page = await checked()
    await press_sign_in_with_google(page)
    await expect(page.get_by_role("heading", name="Choose where to sign in")).to_be_visible()
    assert await axe_problems(page, "/portal/oidc/callback (choose)") == []
    await expect(page.get_by_role("button", name="Lakeside Therapy")).to_be_visible()
    await page.get_by_role("button", name="Riverbend Counseling").click()
    await expect(page).to_have_url(base + "/portal")

    # Signed in, a form left open in one tab goes out of date when another sign-in in this browser gives it
    # a new session (the old session stays valid here, so no sign-out event reloads the tab first).
    await page.goto(base + "/portal/account")
    token, _ = await accounts.issue_token(
        ctx, await Participant.get(id=seeded.ids["alex"]), "session", csrf=True
    )
    await made.add_cookies([{"name": PORTAL_COOKIE, "value": token, "url": base}])
    await page.get_by_role("button", name="Link your Google account").click()
    await expect(page.get_by_role("heading", name="Please try again")).to_be_visible()
    assert await axe_problems(page, "/portal/oidc/link (form expired, signed in)") == []
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await made.close()

    # Cancelled at Google: the could-not-sign-you-in page, with both ways in again.
    fake_oidc.deny = True
    made, page = await checked()
    await press_sign_in_with_google(page)
    await expect(page.get_by_role("heading", name="We could not sign you in with Google")).to_be_visible()
    assert await axe_problems(page, "/portal/oidc/callback (failed)") == []
    await expect(page.get_by_label("Your email address")).to_be_visible()
    await made.close()

    # Signed out, the sign-in form goes out of date when the browser's cookies are cleared under it.
    made, page = await checked()
    await page.goto(base + "/portal/sign-in")
    await made.clear_cookies()
    await page.get_by_label("Your email address").fill(alex_email)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await expect(page.get_by_role("heading", name="Please try again")).to_be_visible()
    assert await axe_problems(page, "/portal/sign-in (form expired)") == []
    await expect(page.get_by_role("link", name="Start again")).to_have_attribute("href", "/portal/sign-in")
    await made.close()

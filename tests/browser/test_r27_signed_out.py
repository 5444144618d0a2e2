"""R27 in a real Chromium: when the session behind an open page ends elsewhere, the page says so within two
seconds (the server closed its websocket with 4401), offers to sign in again, and stops reconnecting."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from gateway.auth import PORTAL_COOKIE
from inbox import accounts
from inbox.models import Participant
from tests.browser.conftest import base_url, open_tab
from tests.browser.seed import seed_practice, sign_in

pytestmark = pytest.mark.browser


async def test_r27_the_inbox_says_you_were_signed_out_when_the_session_ends_in_another_tab(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    sam = await open_tab(browser)
    page = sam.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await expect(page.locator("body")).to_have_attribute("data-live", "on")
    notice = page.get_by_role("alert").filter(has_text="You were signed out.")
    await expect(notice).to_have_count(0)

    # The same browser, another tab: Sign out there.
    other = await sam.context.new_page()
    await other.goto(base + "/inbox")
    started = time.monotonic()
    await other.get_by_role("button", name="Sign out").click()
    await other.wait_for_url("**/?notice=signed_out")

    await expect(notice).to_be_visible(timeout=2000)
    assert time.monotonic() - started < 2.5  # the click's own navigation included
    link = notice.get_by_role("link", name="Sign in again")
    assert (await link.get_attribute("href") or "").startswith("/?next=%2Finbox")
    await expect(page.locator("body")).to_have_attribute("data-live", "ended")
    # It does not try again: still ended, and only one notice, a few seconds later.
    await page.wait_for_timeout(2500)
    await expect(page.locator("body")).to_have_attribute("data-live", "ended")
    await expect(page.locator("#access-ended")).to_have_count(1)
    await link.click()
    await expect(page.get_by_label("Password")).to_be_visible()
    assert sam.problems == []


async def test_r27_the_portal_says_its_session_ended_when_portal_access_is_turned_off(
    browser, client, api, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    alex = await Participant.get(id=seeded.ids["alex"])
    token, _ = await accounts.issue_token(make_context(config, clock), alex, "session", csrf=True)
    tab = await open_tab(browser)
    await tab.context.add_cookies([{"name": PORTAL_COOKIE, "value": token, "url": base}])
    page = tab.page
    await page.goto(base + "/portal")
    await expect(page.locator("body")).to_have_attribute("data-live", "on")

    started = time.monotonic()
    status, _ = await api.patch(f"/clients/{alex.id}", {"portal_access": False}, token=seeded.api_key)
    assert status == 200
    notice = page.get_by_role("alert").filter(has_text="Your session has ended.")
    await expect(notice).to_be_visible(timeout=2000)
    assert time.monotonic() - started < 2.0
    link = notice.get_by_role("link", name="Sign in again")
    assert await link.get_attribute("href") == "/portal/sign-in"
    assert tab.problems == []


async def test_r27_the_inbox_says_when_messaging_was_turned_off_for_the_member(
    browser, client, api, config, clock
):
    """R3: the member is still signed in (settings, records), so the page says what happened instead."""
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    sam = await open_tab(browser)
    page = sam.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await expect(page.locator("body")).to_have_attribute("data-live", "on")
    started = time.monotonic()
    status, _ = await api.patch(
        f"/team-members/{seeded.ids['sam']}", {"messaging_enabled": False}, token=seeded.api_key
    )
    assert status == 200
    notice = page.get_by_role("alert").filter(has_text="Secure messaging was turned off for you")
    await expect(notice).to_be_visible(timeout=2000)
    assert time.monotonic() - started < 2.0
    await expect(page.get_by_text("You were signed out.")).to_have_count(0)
    await expect(page.locator("body")).to_have_attribute("data-live", "ended")
    assert sam.problems == []

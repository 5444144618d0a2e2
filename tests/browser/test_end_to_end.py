"""End to end in two real browsers: a clinician in the web inbox, a client in the portal.

The clinician signs in with password and TOTP code and writes to a client with Enter; the client opens the
link from the email (received by a real SMTP server on loopback), reads the message and replies; the
clinician sees the reply and the badges change without reloading; the clinician removes a message and the
client's page shows the removal; the clinician turns away on and the client sees the banner (R8, R13–R16,
R20). The server is the app on a loopback port; the outbox is drained the way the worker would.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import messaging
from inbox.models import Participant
from tests.browser.conftest import PHONE, base_url, open_tab, screenshot, screenshots_wanted, search_people
from tests.browser.seed import seed_practice, sign_in
from tests.gateway.mail_helpers import drain, link_in, mail_config, path_of, to

pytestmark = pytest.mark.browser

AWAY = "I'm out of the office until Monday, January 12. If it is urgent, call the front desk at 555-0100."


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def test_clinician_and_client_end_to_end(browser, client, config, clock, smtp):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    # A colleague's note waits in the clinician's inbox, so that another conversation can be open later.
    priya = await Participant.get(id=seeded.ids["priya"])
    await messaging.open_conversation(ctx, priya, [seeded.ids["sam"]], "Team meeting moved to 3 pm.")
    clock.advance(60)

    # --- the clinician signs in (password, then TOTP code) and writes to Alex with Enter ---
    clinician = await open_tab(browser)
    page = clinician.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await page.get_by_role("button", name="New message").click()
    await search_people(page, "Alex")
    await page.locator(".recipient-button", has_text="Alex Morgan").click()
    await page.get_by_role("button", name="Start conversation").click()
    composer = page.get_by_label("Write a message")
    await composer.fill("Hi Alex, here is the worksheet we talked about :smile:")
    await composer.press("Enter")
    await expect(page.locator(".msg.mine").last.locator(".msg-body")).to_contain_text("worksheet")

    # --- R16: an email at once, with a link and without the message ---
    await drain(client)
    [mail] = to(smtp, seeded.emails["alex"])
    assert b"worksheet" not in mail.raw
    link = path_of(link_in(mail))
    assert link.startswith("/portal/m/")

    # --- the client opens the link on a phone, reads the message ---
    alex = await open_tab(browser, PHONE)
    portal = alex.page
    await portal.goto(base + link)
    newest = portal.locator(".thread .message").last
    await expect(newest).to_contain_text("Hi Alex, here is the worksheet we talked about 😄")
    await expect(portal.locator(".thread-title")).to_have_text("Dr. Sam Rivera")

    # Meanwhile the clinician reads the colleague's note (so Alex's conversation is not the open one).
    await page.locator(".conv", has_text="Priya Shah").locator("a").click()
    await expect(page.locator("#thread-title")).to_have_text("Priya Shah")
    bubble = page.locator("[data-unread-total]")
    await expect(bubble).to_be_hidden()

    # --- the client replies with Enter ---
    clock.advance(120)
    reply = portal.get_by_label("Your reply")
    await reply.fill("Thank you! I will fill it in tonight :thumbsup:")
    await reply.press("Enter")
    await expect(portal.locator(".thread .message.mine").last).to_contain_text(
        "Thank you! I will fill it in tonight 👍"
    )

    # --- the clinician sees the reply and the badges change, without reloading ---
    alex_conv = page.locator(".conv", has_text="Alex Morgan")
    await expect(alex_conv.locator(".badge")).to_contain_text("1")
    await expect(bubble.locator("[data-count]")).to_have_text("1")
    await expect(page.locator(".conv").first).to_contain_text("Alex Morgan")  # newest first
    await expect(alex_conv.locator(".conv-snippet")).to_have_text("Thank you! I will fill it in tonight 👍")
    await alex_conv.locator("a").click()
    await expect(page.locator(".msg").last.locator(".msg-body")).to_have_text(
        "Thank you! I will fill it in tonight 👍"
    )
    await expect(bubble).to_be_hidden()
    await expect(alex_conv.locator(".badge")).to_have_count(0)

    # --- R14: the clinician removes a message; the client's page shows the removal ---
    clock.advance(60)
    await composer.fill("Your lab results: hemoglobin 13.2")  # meant for another client
    await composer.press("Enter")
    await expect(newest).to_contain_text("hemoglobin 13.2")  # it reached the client, live
    wrong = page.locator(".msg.mine").last
    await wrong.get_by_role("button", name="Remove message").click()
    await wrong.get_by_role("button", name="Remove", exact=True).click()
    await expect(wrong.locator(".msg-body")).to_have_text("This message was removed")
    await expect(newest.locator(".body")).to_have_text("This message was removed")
    await expect(portal.get_by_text("hemoglobin")).to_have_count(0)

    # --- R20: the clinician turns away on; the client sees the banner and cannot dismiss it ---
    await page.get_by_role("button", name="Customize").click()
    away_text = page.get_by_label("Away message to clients", exact=True).and_(page.locator("textarea"))
    await away_text.fill(AWAY)
    await page.get_by_role("button", name="Save").click()
    await page.get_by_role("switch", name="Away message to clients").check()
    await expect(page.locator("[data-away-flag]")).to_be_visible()
    banner = portal.locator(".banner")
    await expect(banner).to_contain_text("Dr. Sam Rivera is away")
    await expect(banner).to_contain_text(AWAY)
    await expect(banner.locator("button, a")).to_have_count(0)
    await expect(portal.locator(".thread-title")).to_have_text("Dr. Sam Rivera (Away)")
    assert await reply.input_value() == ""
    if screenshots_wanted(config):
        await screenshot(portal, "portal-away.png", full_page=True)

    # Messages are still delivered while away (R20), and the banner stays.
    await reply.fill("OK, see you Monday.")
    await reply.press("Enter")
    await expect(page.locator(".msg").last.locator(".msg-body")).to_have_text("OK, see you Monday.")
    await expect(portal.locator(".banner")).to_contain_text("Dr. Sam Rivera is away")

    await page.get_by_role("switch", name="Away message to clients").uncheck()
    await expect(portal.locator(".banner")).to_have_count(0)
    await expect(portal.locator(".thread-title")).to_have_text(re.compile(r"^Dr\. Sam Rivera$"))
    assert clinician.problems == [] and alex.problems == []

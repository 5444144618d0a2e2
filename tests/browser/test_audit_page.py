"""Settings > Audit log in Chromium (R24), on a desktop and a 390×844 phone: the owner filters by person,
action and date, newest first, and pages with "Show older events"."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import accounts, audit
from inbox.models import Participant
from tests.browser.conftest import (
    DESKTOP,
    NO_SIDEWAYS_SCROLL,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
)
from tests.browser.seed import seed_practice, sign_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_r24_owner_filters_the_audit_log(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    jordan = await Participant.get(id=seeded.ids["jordan"])
    await accounts.update_client(ctx, jordan, {"messaging_enabled": True})
    await audit.record(
        ctx,
        sam.practice_id,
        sam,
        "client.update",
        "participant",
        jordan.id,
        {"changed": ["messaging_enabled"]},
    )
    for i in range(55):  # more than one page
        await audit.record(ctx, sam.practice_id, sam, "transcript.read", "participant", jordan.id, {"n": i})

    tab = await open_tab(browser, PHONE if screen == "phone" else DESKTOP)
    page = tab.page
    await sign_in(page, base, seeded.emails["dana"])
    await page.goto(base + "/settings")
    await page.get_by_role("link", name="Audit log").click()
    rows = page.locator("#events tr")
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("Dana Whitfield")  # newest first: the sign-in just now

    await page.get_by_label("Person").select_option(label="Dr. Sam Rivera")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(rows).to_have_count(50)
    await expect(rows.first).to_contain_text("transcript.read")
    await page.get_by_role("button", name="Show older events").click()
    await expect(rows).to_have_count(56)
    await expect(rows.last).to_contain_text("client.update")
    await expect(rows.last).to_contain_text("participant Jordan Lee")
    await expect(page.get_by_role("button", name="Show older events")).to_be_hidden()

    await page.get_by_label("Action").select_option("client.update")
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Dr. Sam Rivera")
    await expect(rows.first).to_contain_text('{"changed":["messaging_enabled"]}')
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    if screenshots_wanted(config) and screen == "desktop":
        await screenshot(page, "audit.png", full_page=True)

    yesterday = (clock.now() - dt.timedelta(days=1)).date().isoformat()
    await page.get_by_label("To").fill(yesterday)
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(rows).to_have_text(["No events match."])
    await page.get_by_label("From").fill(yesterday)
    await page.get_by_label("To").fill(clock.now().date().isoformat())
    await page.get_by_role("button", name="Show", exact=True).click()
    await expect(rows).to_have_count(1)
    assert tab.problems == []

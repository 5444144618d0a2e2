"""Your account > Notifications in Chromium on a desktop and a 390×844 phone (R19): a team member's own phones
(platform, app, when added and last seen) with the four alert types as switches, saved at once, and Remove
with a confirm. Someone else's phones never show."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import devices
from inbox.models import Device, Participant
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
async def test_r19_alert_switches_and_remove_a_phone(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    priya = await Participant.get(id=seeded.ids["priya"])
    iphone, _ = await devices.register_device(ctx, sam, None, platform="apns", token="a" * 64, app="practice")
    android, _ = await devices.register_device(ctx, sam, None, platform="fcm", token="b" * 64, app="practice")
    await devices.register_device(ctx, priya, None, platform="fcm", token="c" * 64, app="practice")
    clock.advance(2 * 24 * 3600)  # two days later the iPhone's app signs in again: last seen then
    await devices.register_device(ctx, sam, None, platform="apns", token="a" * 64, app="practice")

    tab = await open_tab(browser, PHONE if screen == "phone" else DESKTOP)
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await page.get_by_role("link", name="Your account").click()
    await page.get_by_role("link", name="Notification preferences").click()
    cards = page.locator("#devices .device")
    await expect(cards).to_have_count(2)  # Sam's phones only, not Priya's
    iphone_card = page.locator(f"[data-device='{iphone.id}']")
    await expect(iphone_card.locator("h3")).to_have_text("iPhone or iPad · Practice app")
    await expect(iphone_card.locator(".device-head .muted")).to_have_text(
        "Added Jan 5, 2026 · last seen Jan 7, 2026"
    )
    await expect(page.locator(f"[data-device='{android.id}'] .device-head .muted")).to_have_text(
        "Added Jan 5, 2026 · last seen Jan 5, 2026"
    )
    switch = iphone_card.get_by_role("switch", name="Appointment alerts on iPhone or iPad · Practice app")
    await expect(switch).to_be_checked()
    await switch.uncheck()
    await expect(page.locator("#toast")).to_have_text("Appointment alerts off.")
    stored = await Device.get(id=iphone.id)
    assert stored.alerts["appointment"] is False and stored.alerts["new_message"] is True
    await page.reload()
    await expect(switch).not_to_be_checked()  # saved, not just drawn
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    if screenshots_wanted(config) and screen == "phone":
        await screenshot(page, "notifications-phone.png", full_page=True)

    android_card = page.locator(f"[data-device='{android.id}']")
    await android_card.get_by_role("button", name="Remove this phone (Android · Practice app)").click()
    confirm = android_card.get_by_role("group", name="Remove this phone?")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(confirm).to_have_count(0)
    await android_card.get_by_role("button", name="Remove this phone (Android · Practice app)").click()
    await confirm.get_by_role("button", name="Remove", exact=True).click()
    await expect(cards).to_have_count(1)
    assert not await Device.filter(id=android.id).exists()
    assert await Device.filter(participant_id=priya.id).count() == 1
    assert tab.problems == []

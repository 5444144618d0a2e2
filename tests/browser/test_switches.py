"""Every switch says "On" or "Off" truthfully (issue 16): on the settings page, the inbox's away switch, and
the team's and the portal's notification pages, the words beside a switch match its state when the page
loads, after it is toggled (by a person, or put back by the page's script), and after a reload. And the
practice's time zone comes from the owner's browser when the practice has none yet."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import devices
from inbox.models import Participant, Practice
from tests.browser.conftest import PHONE, Tab, base_url, open_tab
from tests.browser.seed import PASSWORD, seed_practice, sign_in
from tests.browser.test_portal_screens import APNS_TOKEN, portal_tab, registered

pytestmark = pytest.mark.browser

# For each visible switch: its name, whether it is on, and the words a person sees beside it.
SWITCHES = """() => Array.from(document.querySelectorAll('input[role=switch]'))
  .filter(i => i.closest('label') && i.closest('label').getClientRects().length)
  .map(i => {
    const label = i.closest('label');
    const state = label.querySelector('.switch-state');
    return {name: i.getAttribute('aria-label') || label.innerText.split('\\n')[0].trim(),
            on: i.checked, says: state ? state.innerText.trim() : null};
  })"""


async def truthful(page: Any, expected: int) -> list[dict[str, Any]]:
    """Every visible switch says what it is; returns them for further checks."""
    switches = await page.evaluate(SWITCHES)
    assert len(switches) == expected, switches
    wrong = [s for s in switches if s["says"] != ("On" if s["on"] else "Off")]
    assert wrong == [], wrong
    return switches


def state_of(page: Any, name: str) -> Any:
    """The words beside the switch labelled `name`, as shown (innerText: hidden words are not read)."""
    return page.locator("label.switch", has=page.get_by_role("switch", name=name, exact=True)).locator(
        ".switch-state"
    )


async def test_settings_and_away_switches_say_on_or_off_truthfully(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    tab = await open_tab(browser)
    page = tab.page
    await sign_in(page, base, seeded.emails["dana"])
    # The away switch on the inbox: off, then on, and still on after a reload.
    await truthful(page, 1)
    away = page.get_by_role("switch", name="Away message to clients")
    await expect(state_of(page, "Away message to clients")).to_have_text("Off", use_inner_text=True)
    await away.check()
    await expect(state_of(page, "Away message to clients")).to_have_text("On", use_inner_text=True)
    await expect(page.locator("[data-away-flag]")).to_be_visible()
    await page.reload()
    await expect(away).to_be_checked()
    await truthful(page, 1)

    await page.goto(base + "/settings")
    switches = await truthful(page, 3)
    assert [(s["name"], s["says"]) for s in switches] == [
        ("Secure messaging for the team", "On"),
        ("Secure messaging with clients", "On"),
        ("Automatically allow secure messaging for all new clients", "Off"),
    ]
    form = page.locator("#practice-form")
    await form.get_by_role("switch", name="Automatically allow secure messaging for all new clients").check()
    await truthful(page, 3)
    # Turning the team's off also turns the clients' off (R1), by the script: its words follow.
    await form.get_by_role("switch", name="Secure messaging for the team").uncheck()
    await expect(state_of(page, "Secure messaging with clients")).to_have_text("Off", use_inner_text=True)
    await truthful(page, 3)
    await form.get_by_role("button", name="Save").click()
    await expect(form.locator(".saved")).to_have_text("Saved.")
    practice = await Practice.get(id=(await Participant.get(id=seeded.ids["dana"])).practice_id)
    assert (practice.team_messaging_enabled, practice.client_messaging_enabled) == (False, False)
    assert practice.auto_enable_new_clients is True
    await page.reload()
    switches = await truthful(page, 3)
    assert [s["says"] for s in switches] == ["Off", "Off", "On"]
    # Toggled but not saved: a reload shows what is saved, and says so.
    await form.get_by_role("switch", name="Secure messaging for the team").check()
    await expect(state_of(page, "Secure messaging for the team")).to_have_text("On", use_inner_text=True)
    await page.reload()
    await expect(state_of(page, "Secure messaging for the team")).to_have_text("Off", use_inner_text=True)
    assert tab.problems == []


async def test_notification_switches_say_on_or_off_truthfully(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    await devices.register_device(ctx, sam, None, platform="apns", token="a" * 64, app="practice")
    await registered(config, clock, seeded.ids["alex"], "apns", APNS_TOKEN)

    team: Tab = await open_tab(browser, PHONE)
    page = team.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await page.goto(base + "/account/notifications")
    await expect(page.locator("#devices .device")).to_have_count(1)
    await truthful(
        page, 5
    )  # "Browser notifications" (off: headless Chromium gives no subscription), then the phone's four
    name = "Video appointments on iPhone or iPad · Practice app"
    await page.get_by_role("switch", name=name).uncheck()
    await expect(page.locator("#toast")).to_have_text("Video appointments off.")
    await expect(state_of(page, name)).to_have_text("Off", use_inner_text=True)
    await page.reload()
    await expect(page.get_by_role("switch", name=name)).not_to_be_checked()
    switches = await truthful(page, 5)
    assert [s["says"] for s in switches] == ["Off", "On", "On", "On", "Off"]
    assert team.problems == []

    portal = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=PHONE)
    page = portal.page
    await page.goto(base + "/portal/notifications")
    await truthful(page, 4)
    await page.get_by_role("switch", name="New messages").uncheck()
    await expect(page.locator("#toast")).to_have_text("Saved")
    await expect(state_of(page, "New messages")).to_have_text("Off", use_inner_text=True)
    await page.reload()
    switches = await truthful(page, 4)
    assert [s["says"] for s in switches] == ["Off", "On", "On", "On"]
    assert portal.problems == []


async def test_practice_time_zone_comes_from_the_owners_browser_once(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    practice_id = (await Participant.get(id=seeded.ids["dana"])).practice_id
    # A clinician's browser never sets it: it is the owner's or a manager's setting.
    sam = await open_tab(browser)
    await sign_in(sam.page, base, seeded.emails["sam"], code=seeded.code(clock))
    await expect(sam.page.get_by_role("heading", name="Messages")).to_be_visible()
    assert (await Practice.get(id=practice_id)).time_zone is None

    context = await browser.new_context(locale="en-US", timezone_id="America/Chicago")
    page = await context.new_page()
    await page.goto(base + "/?next=/settings")  # the first page after signing in is the settings page
    await page.get_by_label("Email").fill(seeded.emails["dana"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/settings")
    zone = page.get_by_label("Time zone")
    await expect(zone).to_have_value("America/Chicago")
    await expect(page.locator("#practice-form .saved")).to_have_text(
        "Time zone set to America/Chicago, from this browser."
    )
    assert (await Practice.get(id=practice_id)).time_zone == "America/Chicago"
    # Chosen now: another owner's browser elsewhere does not change it; the settings page does.
    await zone.select_option("Europe/Lisbon")
    await page.locator("#practice-form").get_by_role("button", name="Save").click()
    await expect(page.locator("#practice-form .saved")).to_have_text("Saved.")
    await page.reload()
    await expect(zone).to_have_value("Europe/Lisbon")
    assert await page.evaluate("() => document.body.dataset.setTimeZone") is None
    assert (await Practice.get(id=practice_id)).time_zone == "Europe/Lisbon"
    await context.close()

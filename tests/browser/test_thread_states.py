"""The team's thread and the portal's, in Chromium (issue 16): focus after removing a message goes to the
next message's actions, or to the composer when there is none; and blocked states are said before anyone
types and change while the thread is open, when an owner flips a switch elsewhere (R1, R3, R26)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import messaging
from inbox.models import Participant
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
    search_people,
)
from tests.browser.seed import seed_practice, sign_in
from tests.browser.test_portal_screens import portal_tab

pytestmark = pytest.mark.browser

MANAGERS = "The account owner or a practice manager can turn it on in Settings."


async def as_key(client: Any, api_key: str, method: str, path: str, body: Any = None) -> None:
    """An owner's change made elsewhere (the provisioning API with the practice's key)."""
    resp = await client.request(
        method, "/api/v1" + path, json=body, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_focus_after_removing_a_message(browser, client, config, clock, width):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["priya"]], "First")
    assert opened.conversation is not None
    for text in ("Second", "Third"):
        clock.advance(60)
        await messaging.send_message(ctx, sam, opened.conversation.id, text)

    tab = await open_tab(browser, PHONE if width == "phone" else DESKTOP)
    page = tab.page
    await sign_in(page, base_url(client), seeded.emails["sam"], code=seeded.code(clock))
    await page.goto(base_url(client) + f"/inbox?conversation={opened.conversation.id}")
    rows = page.locator(".msg")
    await expect(rows).to_have_count(3)

    async def remove(n: int) -> None:
        await rows.nth(n).get_by_role("button", name="Remove message").click()
        await (
            rows.nth(n)
            .get_by_role("group", name="Remove this message?")
            .get_by_role("button", name="Remove", exact=True)
            .click()
        )
        await expect(rows.nth(n)).to_contain_text("This message was removed")

    # The first of three: focus goes to the next message's actions, not to the top of the page.
    await remove(0)
    await expect(rows.nth(1).get_by_role("button", name="Remove message")).to_be_focused()
    # The last one: no message after it has actions, so the composer.
    await remove(2)
    await expect(page.get_by_label("Write a message")).to_be_focused()
    # The middle one, now the only one with actions: the composer again (the one after it has none).
    await remove(1)
    await expect(page.get_by_label("Write a message")).to_be_focused()
    assert tab.problems == []


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_team_thread_and_picker_say_blocked_states_live(browser, client, config, clock, width):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["priya"]], "Is the claim in?")
    assert opened.conversation is not None
    tab = await open_tab(browser, PHONE if width == "phone" else None)
    page = tab.page
    await sign_in(page, base_url(client), seeded.emails["sam"], code=seeded.code(clock))
    await page.goto(base_url(client) + f"/inbox?conversation={opened.conversation.id}")
    composer = page.get_by_label("Write a message")
    notice = page.locator("#thread-blocked")
    await expect(page.locator(".msg")).to_have_count(1)
    await expect(notice).to_be_hidden()
    await expect(composer).to_be_enabled()

    # The owner turns Priya's messaging off elsewhere: the open thread says so at once, and waits.
    await as_key(
        client, seeded.api_key, "PATCH", f"/team-members/{seeded.ids['priya']}", {"messaging_enabled": False}
    )
    await expect(notice).to_have_text(f"Secure messaging is off for Priya Shah. {MANAGERS}")
    await expect(composer).to_be_disabled()
    await expect(page.get_by_role("button", name="Send")).to_be_disabled()
    if screenshots_wanted(config) and width == "phone":
        await screenshot(page, "thread-blocked-phone.png")
    # Deactivated: said as such.
    await as_key(client, seeded.api_key, "DELETE", f"/team-members/{seeded.ids['priya']}")
    await expect(notice).to_contain_text("Priya Shah's account is deactivated")
    await expect(notice).to_contain_text("can reactivate it in Settings > People")
    # Reactivated and on again: the notice goes and the composer works.
    await as_key(client, seeded.api_key, "PATCH", f"/team-members/{seeded.ids['priya']}", {"active": True})
    await as_key(
        client, seeded.api_key, "PATCH", f"/team-members/{seeded.ids['priya']}", {"messaging_enabled": True}
    )
    await expect(notice).to_be_hidden()
    await expect(composer).to_be_enabled()
    await page.reload()
    await expect(notice).to_be_hidden()

    # The picker says, before anyone types, that clients cannot be messaged, and who can change that.
    await as_key(client, seeded.api_key, "PATCH", "/practice/settings", {"client_messaging_enabled": False})
    if width == "phone":
        await page.get_by_role("button", name="Conversations").click()
    await page.get_by_role("button", name="New message").click()
    notices = page.get_by_role("list", name="Who cannot be messaged now")
    await expect(notices).to_have_text(
        f"Secure messaging with clients is off for this practice, so no client is listed. {MANAGERS}"
    )
    await expect(page.locator(".recipient", has_text="Alex Morgan")).to_have_count(0)
    if screenshots_wanted(config) and width == "desktop":
        await screenshot(page, "picker-blocked.png")
    # Turned on again while the picker is open: the notice goes and the client is back.
    await as_key(client, seeded.api_key, "PATCH", "/practice/settings", {"client_messaging_enabled": True})
    await expect(notices).to_be_hidden()
    await search_people(page, "Alex")
    await expect(page.locator(".recipient", has_text="Alex Morgan")).to_have_count(1)
    assert tab.problems == []


@pytest.mark.parametrize("width", ["desktop", "phone"])
async def test_portal_thread_says_blocked_states_live(browser, client, config, clock, width):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "How are you this week?")
    assert opened.conversation is not None
    base = base_url(client)
    tab = await portal_tab(
        browser, config, clock, base, seeded.ids["alex"], viewport=PHONE if width == "phone" else DESKTOP
    )
    page = tab.page
    await page.goto(base + f"/portal/c/{opened.conversation.id}")
    reply = page.get_by_label("Your reply")
    await expect(reply).to_be_enabled()
    await expect(page.locator(".blocked")).to_have_count(0)

    await as_key(
        client, seeded.api_key, "PATCH", f"/team-members/{seeded.ids['sam']}", {"messaging_enabled": False}
    )
    await expect(page.locator(".blocked")).to_have_text(
        "Secure messaging is off for Dr. Sam Rivera; ask your practice."
    )
    await expect(reply).to_be_disabled()
    await as_key(
        client, seeded.api_key, "PATCH", f"/team-members/{seeded.ids['sam']}", {"messaging_enabled": True}
    )
    await expect(page.locator(".blocked")).to_have_count(0)
    await expect(reply).to_be_enabled()

    # The practice turns client messaging off: said at once, here and on New message.
    await as_key(client, seeded.api_key, "PATCH", "/practice/settings", {"client_messaging_enabled": False})
    await expect(page.locator(".blocked")).to_have_text(
        "Secure messaging is off for this practice right now; ask your practice."
    )
    await expect(reply).to_be_disabled()
    await page.goto(base + "/portal/new")
    await expect(page.locator(".blocked")).to_have_text(
        "Secure messaging is off for this practice right now; ask your practice."
    )
    assert tab.problems == []

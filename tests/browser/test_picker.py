"""The new-message picker in Chromium, on a desktop and a 390×844 phone: a first-name match above a recent
last-name one, a second line that tells people apart, Enter that never writes to whoever happens to be
first, several people as chips (a client and their guardian: R10), the same set reopening the same exchange
(R11), the server's refusal shown in the dialog, and a clinician turning on messaging for their own client
(R4, R5)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import accounts, messaging
from inbox.models import AuditEvent, Participant, Practice
from tests.browser.conftest import (
    DESKTOP,
    NO_SIDEWAYS_SCROLL,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
    search_people,
)
from tests.browser.seed import seed_practice, sign_in

pytestmark = pytest.mark.browser


async def more_people(config, clock, seeded):
    """Morgan Diaz (another client of Sam's) and Robin Morgan (Alex Morgan's guardian); Sam has written to
    Alex, so Alex is "Recent"."""
    ctx = make_context(config, clock)
    practice = await Practice.get(id=(await Participant.get(id=seeded.ids["sam"])).practice_id)
    diaz = await accounts.create_client(
        ctx,
        practice,
        name="Morgan Diaz",
        email="mdiaz@client.example",
        primary_clinician_id=seeded.ids["sam"],
        messaging_enabled=True,
    )
    alex = await Participant.get(id=seeded.ids["alex"])
    robin = await accounts.add_contact(ctx, alex, name="Robin Morgan", email="robin@family.example")
    sam = await Participant.get(id=seeded.ids["sam"])
    await messaging.open_conversation(ctx, sam, [alex.id], "See you Thursday.")
    clock.advance(60)
    return diaz, robin


def row(page, name):
    """The picker's row for exactly this person (Robin Morgan's second line names Alex Morgan too)."""
    return page.locator(".recipient-button").filter(
        has=page.locator(".r-name", has_text=re.compile("^" + re.escape(name) + "$"))
    )


async def open_picker(page, text):
    if page.viewport_size == PHONE and await page.locator("#thread-title").is_visible():
        # A phone shows one pane at a time: from an open thread, back to the list where New message is.
        await page.get_by_role("button", name="Back to Conversations").click()
    await page.get_by_role("button", name="New message").click()
    await search_people(page, text)


SCREENS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_picker_morg_then_enter_never_writes_to_the_wrong_morgan(
    browser, client, config, clock, screen
):
    seeded = await seed_practice(config, clock)
    diaz, robin = await more_people(config, clock, seeded)
    base = base_url(client)
    tab = await open_tab(browser, SCREENS[screen])
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))

    await open_picker(page, "morg")
    rows = page.locator(".recipient-button")
    await expect(rows).to_have_count(3)
    # The first-name match first; the recent last-name match after it; each with a second line.
    await expect(rows.locator(".r-name")).to_have_text(["Morgan Diaz", "Alex Morgan", "Robin Morgan"])
    await expect(rows.locator(".r-kind")).to_have_text(
        [
            "Client · mdiaz@client.example",
            "Client · alex@client.example",
            "Contact of Alex Morgan · robin@family.example",
        ]
    )
    await expect(rows.nth(1).locator(".tag")).to_have_text("Recent")

    # Enter with no row selected opens nothing and chooses no one.
    await page.keyboard.press("Enter")
    await expect(page.locator("#picker")).to_be_visible()
    await expect(page.locator(".chip")).to_have_count(0)
    await expect(page.locator("#picker-hint")).to_have_text("Use ↑ ↓ to choose someone, then Enter.")
    await expect(page.get_by_role("button", name="Start conversation")).to_be_disabled()

    # The arrow keys select; Enter adds the selected row only.
    search = page.get_by_label("To", exact=True)
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    await expect(search).to_have_attribute("aria-activedescendant", f"pick-{seeded.ids['alex']}")
    await page.keyboard.press("ArrowUp")
    await expect(rows.nth(0)).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Enter")
    await expect(page.locator(".chip > span")).to_have_text(["Morgan Diaz"])
    await expect(rows.nth(0)).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#picker")).to_be_visible()  # still choosing
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    if screenshots_wanted(config) and screen == "desktop":
        await screenshot(page, "picker.png")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Start conversation")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#thread-title")).to_have_text("Morgan Diaz")
    assert tab.problems == []


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_group_conversation_from_chips_same_set_same_exchange(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    diaz, robin = await more_people(config, clock, seeded)
    base = base_url(client)
    tab = await open_tab(browser, SCREENS[screen])
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))

    # A client and their guardian (R10), picked one after the other.
    await open_picker(page, "Alex")
    await row(page, "Alex Morgan").click()
    await search_people(page, "Robin")
    await row(page, "Robin Morgan").click()
    await expect(page.locator(".chip > span")).to_have_text(["Alex Morgan", "Robin Morgan"])
    await page.get_by_role("button", name="Start group conversation").click()
    await expect(page.locator("#thread-title")).to_have_text("Alex Morgan, Robin Morgan")
    first_url = page.url
    await page.get_by_label("Write a message").fill("Hello to you both.")
    await page.get_by_label("Write a message").press("Enter")
    await expect(page.locator(".msg.mine .msg-body")).to_have_text("Hello to you both.")

    # The same set, picked in the other order, reopens the same exchange (R11). From a freshly loaded inbox,
    # so that neither the address nor the messages are still those of the thread that was open.
    await page.goto(base + "/inbox")
    await open_picker(page, "Robin")
    await row(page, "Robin Morgan").click()
    await search_people(page, "Alex")
    await row(page, "Alex Morgan").click()
    await page.get_by_role("button", name="Start group conversation").click()
    await expect(page).to_have_url(first_url)
    await expect(page.locator("#thread-title")).to_have_text("Alex Morgan, Robin Morgan")
    await expect(page.locator(".msg.mine .msg-body")).to_have_text("Hello to you both.")
    sam = await Participant.get(id=seeded.ids["sam"])
    listed = await messaging.list_conversations(make_context(config, clock), sam, None, 10)
    assert len(listed["items"]) == 2  # the one with Alex from more_people, and this one: no third

    # A chip comes off with its button, and two clients in one exchange are refused with the server's words.
    await open_picker(page, "morg")
    await row(page, "Morgan Diaz").click()
    await row(page, "Alex Morgan").click()
    await row(page, "Robin Morgan").click()
    await page.get_by_role("button", name="Remove Robin Morgan").click()
    await expect(page.locator(".chip > span")).to_have_text(["Morgan Diaz", "Alex Morgan"])
    await page.get_by_role("button", name="Start group conversation").click()
    error = page.locator("#picker-error")
    await expect(error).to_have_text("A conversation can include only one client and that client's contacts.")
    await expect(page.locator("#picker")).to_be_visible()
    tab.allow("403")
    # Taking one of them off clears the message; the rest can still start.
    await page.get_by_role("button", name="Remove Alex Morgan").click()
    await expect(error).to_be_hidden()
    await page.get_by_role("button", name="Start conversation").click()
    await expect(page.locator("#thread-title")).to_have_text("Morgan Diaz")
    assert tab.problems == []


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_r5_clinician_enables_their_own_client_from_the_picker(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    # Lena has no access to Jordan: the picker does not even list Jordan for her (R5, R28).
    lena = await open_tab(browser, SCREENS[screen])
    await sign_in(lena.page, base, seeded.emails["lena"])
    await open_picker(lena.page, "Jordan")
    await expect(lena.page.locator("#picker-results")).to_have_text("No one found.")

    tab = await open_tab(browser, SCREENS[screen])
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await open_picker(page, "Jordan")
    off = page.locator(".recipient.off", has_text="Jordan Lee")
    await expect(off).to_contain_text("Secure messaging is off for this client.")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    if screenshots_wanted(config) and screen == "phone":
        await screenshot(page, "picker-enable-phone.png")
    await off.get_by_role("button", name="Enable Secure Messaging for Jordan Lee").click()
    await expect(page.locator("#toast")).to_have_text("Secure messaging is now on for Jordan Lee.")
    await expect(page.locator(".chip > span")).to_have_text(["Jordan Lee"])
    await page.get_by_role("button", name="Start conversation").click()
    await expect(page.locator("#thread-title")).to_have_text("Jordan Lee")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert (await Participant.get(id=seeded.ids["jordan"])).messaging_enabled
    row = await AuditEvent.filter(action="client.update", target_id=str(seeded.ids["jordan"])).first()
    assert row is not None and row.actor_id == seeded.ids["sam"]
    assert re.search("messaging_enabled", str(row.detail))
    assert tab.problems == [] and lena.problems == []


async def test_r5_clinician_enables_the_client_from_the_thread(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    jordan = await Participant.get(id=seeded.ids["jordan"])
    await accounts.update_client(ctx, jordan, {"messaging_enabled": True})
    sam = await Participant.get(id=seeded.ids["sam"])
    priya = await Participant.get(id=seeded.ids["priya"])
    with_sam = await messaging.open_conversation(ctx, sam, [jordan.id], "How was the week?")
    with_priya = await messaging.open_conversation(ctx, priya, [jordan.id], "Your invoice is ready.")
    await accounts.update_client(ctx, jordan, {"messaging_enabled": False})  # the owner turned it off

    # The biller is told, without a button: turning a client on is not a biller's to do.
    biller = await open_tab(browser)
    await sign_in(biller.page, base, seeded.emails["priya"])
    await biller.page.goto(f"{base}/inbox?conversation={with_priya.conversation.id}")
    off = biller.page.locator("#thread-off")
    await expect(off).to_contain_text("Secure messaging is off for Jordan Lee.")
    await expect(off).to_contain_text("the client’s clinician can turn it on")
    await expect(off.get_by_role("button")).to_be_hidden()

    tab = await open_tab(browser, PHONE)
    page = tab.page
    await sign_in(page, base, seeded.emails["sam"], code=seeded.code(clock))
    await page.goto(f"{base}/inbox?conversation={with_sam.conversation.id}")
    off = page.locator("#thread-off")
    await expect(off).to_contain_text("Secure messaging is off for Jordan Lee.")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await off.get_by_role("button", name="Enable Secure Messaging for Jordan Lee").click()
    await expect(off).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text("Secure messaging is now on for Jordan Lee.")
    assert (await Participant.get(id=jordan.id)).messaging_enabled
    # The biller's thread says so too once it is read again.
    await biller.page.reload()
    await expect(biller.page.locator("#thread-title")).to_have_text("Jordan Lee")
    await expect(biller.page.locator("#thread-off")).to_be_hidden()
    assert tab.problems == [] and biller.problems == []

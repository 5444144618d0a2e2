"""The team's web inbox in a real Chromium: sign-in with TOTP, the picker, Enter to send, the counter,
emoji, live badges, remove with confirm, away, "Enable Secure Messaging", settings; phone width, keyboard
only, and a label on every control."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from inbox.crypto import DataKeyring
from inbox.models import ClientAccess, Message, Participant
from tests.browser.conftest import (
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

# Every visible control must have a name a screen reader can say.
UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')).filter(el => {
  if (!el.getClientRects().length) return false;
  const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
    || (el.labels && el.labels.length) || (el.tagName === 'BUTTON' && el.textContent.trim());
  return !named;
}).map(el => el.outerHTML.slice(0, 120))"""


async def new_message(page, search, name):
    await page.get_by_role("button", name="New message").click()
    await search_people(page, search)
    await page.locator(".recipient-button", has_text=name).click()
    await page.get_by_role("button", name="Start conversation").click()
    await expect(page.locator("#thread-title")).to_have_text(re.compile("^" + re.escape(name)))


async def test_team_inbox_end_to_end_in_chromium(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    shots = screenshots_wanted(config)

    # --- the clinician signs in with password and TOTP code, and writes to a client ---
    sam = await open_tab(browser)
    await sign_in(sam.page, base, seeded.emails["sam"], code=seeded.code(clock))
    page = sam.page
    await expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    assert await page.evaluate(UNLABELLED_CONTROLS) == []

    await new_message(page, "Alex", "Alex Morgan")
    composer = page.get_by_label("Write a message")
    await composer.press_sequentially("Hi Alex :smile:")
    await composer.press("Shift+Enter")  # a new line, not a send
    await composer.press_sequentially("See you on Thursday :thumbsup:")
    await expect(composer).to_have_value("Hi Alex :smile:\nSee you on Thursday :thumbsup:")
    await composer.press("Enter")
    mine = page.locator(".msg.mine").last
    await expect(mine.locator(".msg-body")).to_have_text("Hi Alex 😄See you on Thursday 👍")
    await expect(composer).to_have_value("")
    stored = await Message.filter(sender_id=seeded.ids["sam"]).order_by("-id").first()
    assert stored is not None
    keyring = DataKeyring(config.data_keys)
    assert keyring.decrypt(bytes(stored.body_cipher), f"conversation:{stored.conversation_id}") == (
        "Hi Alex :smile:\nSee you on Thursday :thumbsup:"
    )

    # The character counter shows near the 5,000 limit and stops a message that is too long.
    counter = page.locator("#composer-count")
    await composer.fill("x" * 4499)
    await expect(counter).to_be_hidden()
    await composer.fill("x" * 4600)
    await expect(counter).to_have_text("4,600 / 5,000")
    # Counted as the server counts, in characters (code points) after trimming: an emoji is one, not two.
    await composer.fill("  " + "😄" * 5000 + "\n")
    await expect(counter).to_have_text("5,000 / 5,000")
    await expect(counter).not_to_have_class(re.compile(r"\bover\b"))
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()
    await composer.fill("x" * 5001)
    await expect(counter).to_have_class(re.compile(r"\bover\b"))
    await expect(page.get_by_role("button", name="Send")).to_be_disabled()
    await composer.press("Enter")
    await composer.fill("")
    assert await Message.filter(sender_id=seeded.ids["sam"]).count() == 1

    # --- a colleague writes; the clinician's badge and red bubble change without a reload ---
    clock.advance(120)
    priya = await open_tab(browser)
    await sign_in(priya.page, base, seeded.emails["priya"])
    await new_message(priya.page, "Sam", "Dr. Sam Rivera")
    await priya.page.get_by_label("Write a message").fill("Could you sign Alex's superbill? :pray:")
    await priya.page.get_by_label("Write a message").press("Enter")

    bubble = page.locator("[data-unread-total]")
    await expect(bubble).to_be_visible()
    await expect(bubble.locator("[data-count]")).to_have_text("1")
    first = page.locator(".conv").first
    await expect(first.locator(".conv-name")).to_have_text("Priya Shah")
    await expect(first.locator(".badge")).to_contain_text("1")
    await expect(page).to_have_title(re.compile(r"^\(1\) Messages"))
    if shots:
        await screenshot(page, "inbox.png")

    await first.locator("a").click()
    last = page.locator(".msg").last
    await expect(last.locator(".msg-body")).to_have_text("Could you sign Alex's superbill? 🙏")
    await expect(bubble).to_be_hidden()
    await expect(first.locator(".badge")).to_have_count(0)

    clock.advance(60)
    await composer.fill("Done, signed.")
    await composer.press("Enter")
    await expect(priya.page.locator(".msg").last.locator(".msg-body")).to_have_text("Done, signed.")

    # --- remove: the trash icon, a confirm step, then both sides see the removal ---
    clock.advance(60)
    await composer.fill("Alex's date of birth is 04/05/1990")  # meant for someone else
    await composer.press("Enter")
    wrong = page.locator(".msg.mine").last
    await expect(wrong.locator(".msg-body")).to_contain_text("04/05/1990")
    await expect(priya.page.locator(".msg").last.locator(".msg-body")).to_contain_text("04/05/1990")
    await wrong.get_by_role("button", name="Remove message").click()
    confirm = wrong.get_by_role("group", name="Remove this message?")
    await expect(confirm).to_contain_text("Everyone in this conversation will see that a message was removed")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(confirm).to_have_count(0)
    await wrong.get_by_role("button", name="Remove message").click()
    await wrong.get_by_role("button", name="Remove", exact=True).click()
    await expect(wrong.locator(".msg-body")).to_have_text("This message was removed")
    await expect(wrong.get_by_role("button", name="Remove message")).to_have_count(0)
    theirs = priya.page.locator(".msg").last
    await expect(theirs.locator(".msg-body")).to_have_text("This message was removed")
    await expect(priya.page.get_by_text("04/05/1990")).to_have_count(0)
    removed = await Message.filter(sender_id=seeded.ids["sam"]).order_by("-id").first()
    assert removed is not None and removed.removed_at is not None

    # --- away: customize with a 600-character counter, toggle it on, "(Away)" in the top bar ---
    await page.get_by_role("button", name="Customize").click()
    away_text = page.get_by_label("Away message to clients", exact=True).and_(page.locator("textarea"))
    await away_text.fill("y" * 601)
    await expect(page.locator("#away-count")).to_have_text("601 / 600")
    await expect(page.get_by_role("button", name="Save")).to_be_disabled()
    await away_text.fill("Out of the office until Monday. For anything urgent, call the front desk.")
    await expect(page.locator("#away-count")).to_have_text("73 / 600")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#away-dialog")).to_be_hidden()
    await page.get_by_role("switch", name="Away message to clients").check()
    await expect(page.locator("[data-away-flag]")).to_be_visible()
    await expect(priya.page.locator("#thread-title")).to_have_text("Dr. Sam Rivera (Away)")
    member = await Participant.get(id=seeded.ids["sam"])
    assert member.away_enabled and member.away_message and member.away_message.startswith("Out of the office")
    if shots:
        await screenshot(page, "thread.png")

    # --- a biller is told who can turn a client's messaging on; the owner can, from the picker ---
    await priya.page.get_by_role("button", name="New message").click()
    await search_people(priya.page, "Jordan")
    off = priya.page.locator(".recipient.off", has_text="Jordan Lee")
    await expect(off).to_contain_text("Secure messaging is off for this client.")
    await expect(off).to_contain_text(
        "The account owner, a practice manager or the client’s clinician can turn it on."
    )
    await expect(off.get_by_role("button")).to_have_count(0)
    await priya.page.keyboard.press("Escape")

    dana = await open_tab(browser)
    await sign_in(dana.page, base, seeded.emails["dana"])
    await dana.page.get_by_role("button", name="New message").click()
    await search_people(dana.page, "Jordan")
    await dana.page.get_by_role("button", name="Enable Secure Messaging for Jordan Lee").click()
    await expect(dana.page.locator(".chip > span")).to_have_text(["Jordan Lee"])
    await dana.page.get_by_role("button", name="Start conversation").click()
    await expect(dana.page.locator("#thread-title")).to_have_text("Jordan Lee")
    assert (await Participant.get(id=seeded.ids["jordan"])).messaging_enabled

    # --- settings: R3 team member switch and an access grant, through the provisioning API ---
    settings = dana.page
    await settings.get_by_role("link", name="Settings").click()
    await expect(settings.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    assert await settings.evaluate(UNLABELLED_CONTROLS) == []
    if shots:
        await screenshot(settings, "settings.png", full_page=True)
    team_form = settings.locator("#team-form")
    await team_form.get_by_label("Enabled for Priya Shah").uncheck()
    await team_form.get_by_role("button", name="Save").click()
    await expect(team_form.locator(".saved")).to_have_text("Saved.")
    assert not (await Participant.get(id=seeded.ids["priya"])).messaging_enabled

    access = settings.locator("#access-form")
    await access.get_by_label("Client").select_option(label="Alex Morgan")
    sam_box = access.get_by_role("checkbox", name=re.compile(r"^Dr\. Sam Rivera"))
    await expect(sam_box).to_be_checked()
    await expect(sam_box).to_be_disabled()  # the primary clinician always has access
    await access.get_by_role("checkbox", name=re.compile(r"^Dr\. Lena Park")).check()
    await access.get_by_role("button", name="Save access").click()
    await expect(access.locator(".saved")).to_have_text("Saved.")
    assert await ClientAccess.filter(client_id=seeded.ids["alex"], team_member_id=seeded.ids["lena"]).exists()

    practice = settings.locator("#practice-form")
    await practice.get_by_role("switch", name="Secure messaging for the team").uncheck()
    clients_switch = practice.get_by_role("switch", name="Secure messaging with clients")
    await expect(clients_switch).to_be_disabled()  # R1
    await expect(clients_switch).not_to_be_checked()

    for tab in (sam, priya, dana):
        assert tab.problems == []


async def test_inbox_at_phone_width_and_by_keyboard(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    tab = await open_tab(browser, PHONE)
    page = tab.page
    await page.goto(base + "/")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await sign_in(page, base, seeded.emails["priya"])
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await expect(page.locator(".list-pane")).to_be_visible()
    await expect(page.locator(".thread-pane")).to_be_hidden()

    # Keyboard only: focus "New message", search, choose, write, send.
    await page.get_by_role("button", name="New message").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("To", exact=True)).to_be_focused()
    await page.keyboard.type("Alex")
    # The search's own answer is in (not the recent list it replaces, which holds Alex Morgan too).
    await expect(page.locator("#picker-hint")).to_have_text("People matching “Alex”.")
    await expect(page.locator(".recipient-button", has_text="Alex Morgan")).to_be_visible()
    await page.keyboard.press("Enter")  # nothing selected: nothing happens but a hint
    await expect(page.locator("#picker-hint")).to_have_text("Use ↑ ↓ to choose someone, then Enter.")
    await page.keyboard.press("ArrowDown")
    await expect(page.locator(".recipient-button").first).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Enter")
    await expect(page.locator(".chip > span")).to_have_text(["Alex Morgan"])
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Start conversation")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#thread-title")).to_have_text("Alex Morgan")
    await expect(page.locator(".list-pane")).to_be_hidden()  # one pane at a time on a phone
    await page.keyboard.press("Tab")
    await page.get_by_label("Write a message").focus()
    await page.keyboard.type("Your statement is ready :thumbsup:")
    await page.keyboard.press("Enter")
    await expect(page.locator(".msg.mine .msg-body")).to_have_text("Your statement is ready 👍")
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await page.evaluate(UNLABELLED_CONTROLS) == []
    if screenshots_wanted(config):
        await screenshot(page, "thread-phone.png")

    await page.get_by_role("button", name="Back to Conversations").click()
    await expect(page.locator(".list-pane")).to_be_visible()
    await expect(page.locator(".conv").first).to_contain_text("Alex Morgan")
    await page.go_back()  # the browser's Back goes through the same views
    await expect(page.locator("#thread-title")).to_have_text("Alex Morgan")

    # The skip link is the first stop for the keyboard.
    await page.goto(base + "/settings/two-step")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await page.evaluate(UNLABELLED_CONTROLS) == []
    assert tab.problems == []

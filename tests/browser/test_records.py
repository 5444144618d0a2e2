"""Client records in Chromium (R21, R22): choose participants, read the transcript with its removed
message marked, tick messages and copy them into a chart note; messages grouped by conversation under its
participants, times in the practice's time zone saying which, on a desktop and on a phone."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import accounts, messaging
from inbox.models import ChartNote, Participant, Practice
from tests.browser.conftest import (
    NO_SIDEWAYS_SCROLL,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
)
from tests.browser.seed import seed_practice, sign_in

pytestmark = pytest.mark.browser


async def test_r21_r22_transcript_and_copy_to_chart_note(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    alex = await Participant.get(id=seeded.ids["alex"])
    opened = await messaging.open_conversation(ctx, sam, [alex.id], "How did the breathing exercise go?")
    assert opened.conversation is not None
    conv = opened.conversation.id
    clock.advance(300)
    await messaging.send_message(ctx, alex, conv, "Better than last week :smile:\nI slept through twice.")
    clock.advance(60)
    wrong = await messaging.send_message(ctx, sam, conv, "Lab results for J. Lee attached")
    assert wrong.message is not None
    await messaging.remove_message(ctx, sam, wrong.message.id)
    clock.advance(60)
    await messaging.send_message(ctx, sam, conv, "That is real progress. Keep it up :thumbsup:")
    priya = await Participant.get(id=seeded.ids["priya"])
    clock.advance(60)
    billing = await messaging.open_conversation(ctx, priya, [alex.id], "Your invoice for January is ready.")
    assert billing.conversation is not None

    tab = await open_tab(browser)
    page = tab.page
    await sign_in(page, base_url(client), seeded.emails["sam"], code=seeded.code(clock))
    await page.locator(".conv-link", has_text="Alex Morgan").click()
    await page.get_by_role("link", name="Client records").click()
    await expect(page.get_by_role("heading", name="Secure message transcripts: Alex Morgan")).to_be_visible()

    people = page.get_by_role("group", name="Conversation participants")
    await people.get_by_role("checkbox", name="Alex Morgan").check()
    await people.get_by_role("checkbox", name="Dr. Sam Rivera").check()
    await page.get_by_role("button", name="Show transcript").click()
    rows = page.locator(".t-msg")
    await expect(rows).to_have_count(4)
    removed = rows.nth(2)
    await expect(removed).to_contain_text("Removed by Dr. Sam Rivera")
    await expect(removed.locator(".t-body")).to_have_text("Lab results for J. Lee attached")  # the record
    await expect(removed.get_by_role("checkbox")).to_be_disabled()

    copy = page.get_by_role("button", name="Copy to chart note")
    await expect(copy).to_be_disabled()
    await rows.nth(0).get_by_role("checkbox").check()
    await rows.nth(1).get_by_role("checkbox").check()
    await expect(page.locator("#selected-count")).to_have_text("2 selected")
    await copy.click()
    note = page.locator(".note").first
    await expect(note.locator(".note-text")).to_have_text(
        "Conversation: Alex Morgan, Dr. Sam Rivera (times in UTC)\n"
        "[2026-01-05 09:00 UTC] Dr. Sam Rivera: How did the breathing exercise go?\n"
        "[2026-01-05 09:05 UTC] Alex Morgan: Better than last week :smile:\nI slept through twice."
    )
    await expect(copy).to_be_disabled()
    assert await ChartNote.filter(client_id=alex.id).count() == 1
    assert tab.problems == []


async def test_transcripts_grouped_by_conversation_in_the_practice_time_zone(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    practice = await Practice.get(id=(await Participant.get(id=seeded.ids["sam"])).practice_id)
    await accounts.update_settings(ctx, practice, {"time_zone": "America/New_York"})
    sam = await Participant.get(id=seeded.ids["sam"])
    priya = await Participant.get(id=seeded.ids["priya"])
    alex = await Participant.get(id=seeded.ids["alex"])
    care = await messaging.open_conversation(ctx, sam, [alex.id], "How did the breathing exercise go?")
    clock.advance(60)
    await messaging.open_conversation(ctx, priya, [alex.id], "Your invoice for January is ready.")
    clock.advance(60)
    assert care.conversation is not None
    await messaging.send_message(ctx, alex, care.conversation.id, "Better than last week.")
    shots = screenshots_wanted(config)

    for viewport in (None, PHONE):
        tab = await open_tab(browser, viewport)
        page = tab.page
        clock.advance(30)  # a TOTP code works once (R30): the next sign-in takes the next one
        await sign_in(page, base_url(client), seeded.emails["sam"], code=seeded.code(clock))
        await page.goto(base_url(client) + f"/records?client={alex.id}")
        await page.get_by_role("button", name="Show transcript").click()  # no one chosen: every conversation
        groups = page.locator(".t-conv")
        await expect(groups).to_have_count(2)
        care_group = page.get_by_role("list", name="Conversation: Alex Morgan, Dr. Sam Rivera")
        billing_group = page.get_by_role("list", name="Conversation: Alex Morgan, Priya Shah")
        await expect(care_group.locator(".t-msg")).to_have_count(2)
        await expect(billing_group.locator(".t-msg")).to_have_count(1)
        await expect(billing_group).to_contain_text("Your invoice for January is ready.")
        # 09:00 UTC is 4:00 AM in New York in January, and the page says which zone it means.
        await expect(care_group.locator(".t-msg").first.locator("time")).to_have_text(
            "Jan 5, 2026, 4:00 AM EST"
        )
        await expect(page.locator("#transcript-zone")).to_have_text("Times in America/New York")
        if viewport is None:
            await care_group.locator(".t-msg").nth(1).get_by_role("checkbox").check()
            await billing_group.locator(".t-msg").first.get_by_role("checkbox").check()
            await page.get_by_role("button", name="Copy to chart note").click()
            # The note keeps each message's conversation: a reply in one, an invoice in the other.
            await expect(page.locator(".note-text").first).to_have_text(
                "Conversation: Alex Morgan, Priya Shah (times in America/New_York)\n"
                "[2026-01-05 04:01 EST] Priya Shah: Your invoice for January is ready.\n"
                "\n"
                "Conversation: Alex Morgan, Dr. Sam Rivera (times in America/New_York)\n"
                "[2026-01-05 04:02 EST] Alex Morgan: Better than last week."
            )
            if shots:
                await screenshot(page, "records.png", full_page=True)
        else:
            assert await page.evaluate(NO_SIDEWAYS_SCROLL)
            if shots:
                await screenshot(page, "records-phone.png", full_page=True)
        assert tab.problems == []
        await tab.context.close()

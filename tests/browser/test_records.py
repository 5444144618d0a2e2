"""Client records in Chromium (R21, R22): choose participants, read the transcript with its removed
message marked, tick messages and copy them into a chart note."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import messaging
from inbox.models import ChartNote, Participant
from tests.browser.conftest import base_url, open_tab, screenshot, screenshots_wanted
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
        "[2026-01-05 09:00] Dr. Sam Rivera: How did the breathing exercise go?\n"
        "[2026-01-05 09:05] Alex Morgan: Better than last week :smile:\nI slept through twice."
    )
    await expect(copy).to_be_disabled()
    assert await ChartNote.filter(client_id=alex.id).count() == 1
    if screenshots_wanted(config):
        await screenshot(page, "records.png", full_page=True)
    assert tab.problems == []

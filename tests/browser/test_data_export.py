"""Settings > Data export in Chromium (R23): the owner picks a scope, the export goes from preparing to
ready while the page polls, the password is shown with Copy, the zip downloads and opens with it only, past
exports are listed, and the page says how to open an AES zip. A clinician is refused the page."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
import pyzipper
from playwright.async_api import expect

from gateway.app import make_context
from gateway.keys import DISPATCHER
from inbox import messaging
from inbox.models import Participant
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


async def test_r23_owner_exports_one_clinicians_conversations_from_the_page(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    priya = await Participant.get(id=seeded.ids["priya"])
    await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "Here is the worksheet.")
    await messaging.open_conversation(ctx, priya, [seeded.ids["alex"]], "Your invoice is ready.")
    await messaging.open_conversation(ctx, priya, [seeded.ids["lena"]], "Staff meeting moved to 3 pm.")

    tab = await open_tab(browser)
    page = tab.page
    await tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    await sign_in(page, base, seeded.emails["dana"])
    await page.goto(base + "/settings")
    await page.get_by_role("link", name="Data export").click()
    await expect(page.get_by_role("heading", name="Data export", exact=True)).to_be_visible()
    await expect(page.locator("#exports")).to_have_text("No exports yet.")
    how = page.get_by_role("region", name="Opening the zip file")
    for tool in ("7-Zip", "Keka", "WinZip"):
        await expect(how).to_contain_text(tool)

    await page.get_by_label("One clinician's clients").check()
    await page.get_by_label("Clinician", exact=True).select_option(label="Dr. Sam Rivera")
    await page.get_by_role("button", name="Start export").click()
    status = page.locator("#export-status")
    await expect(status).to_contain_text("Preparing your export")
    await expect(page.get_by_label("Password for the zip file")).to_be_hidden()

    await client.server.app[DISPATCHER].drain()  # what the dispatcher does in the background
    await expect(status).to_have_text("Your export is ready.")  # the page polled
    password = await page.get_by_label("Password for the zip file").input_value()
    assert len(password) >= 12
    await page.get_by_role("button", name="Copy").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == password
    if screenshots_wanted(config):
        await screenshot(page, "data-export.png", full_page=True)

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download the zip file").click()
    download = await info.value
    saved = await download.path()
    data = await asyncio.to_thread(Path(saved).read_bytes)
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        with pytest.raises(RuntimeError):
            zf.read(next(n for n in zf.namelist() if n.startswith("secure-messages/")))
        zf.setpassword(password.encode())
        texts = [zf.read(n).decode() for n in zf.namelist() if n.startswith("secure-messages/")]
    # One clinician's scope: every conversation of Sam's clients, not a team conversation without Sam.
    assert any("Here is the worksheet." in t for t in texts)
    assert any("Your invoice is ready." in t for t in texts)
    assert not any("Staff meeting" in t for t in texts)

    past = page.locator("#exports tr")
    await expect(past).to_have_count(1)
    await expect(past.first).to_contain_text("Clients of Dr. Sam Rivera")
    await expect(past.first).to_contain_text("Ready")
    await expect(past.first.get_by_role("link", name="Download the export of")).to_be_visible()
    assert tab.problems == []


async def test_r23_the_export_page_refuses_a_clinician_and_fits_a_phone(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    sam = await open_tab(browser)
    await sign_in(sam.page, base, seeded.emails["sam"], code=seeded.code(clock))
    resp = await sam.page.goto(base + "/settings/data-export")
    assert resp is not None and resp.status == 403
    await expect(
        sam.page.get_by_text("Only the account owner, or a practice manager the owner allows")
    ).to_be_visible()
    sam.allow("403")

    owner = await open_tab(browser, PHONE)
    await sign_in(owner.page, base, seeded.emails["dana"])
    await owner.page.goto(base + "/settings/data-export")
    await owner.page.get_by_role("button", name="Start export").click()
    await expect(owner.page.locator("#export-status")).to_contain_text("Preparing your export")
    await expect(owner.page.locator("#exports tr").first).to_contain_text("Everything")
    assert await owner.page.evaluate(NO_SIDEWAYS_SCROLL)
    assert sam.problems == [] and owner.problems == []

"""The 24-hour link on any device, in real browsers (issue 17, R18, R24).

One notification link from a real email is opened in Chromium on a phone, exchanged by the client app
(`POST /api/v1/auth/magic`, as the app does when an App Link opens it), then opened in a second Chromium
profile on a desktop: all three read the conversation, none of them ends another's session, and a day
after the email all three are refused (the browsers are sent to sign in, the app gets 401). The same flow
through the HTTP client, with the audit rows and R4, is tests/gateway/test_links_any_device.py.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from inbox import messaging
from inbox.models import AuditEvent, LinkToken, Participant
from tests.browser.conftest import PHONE, base_url, open_tab
from tests.browser.seed import seed_practice
from tests.gateway.mail_helpers import drain, link_in, mail_config, path_of, to

pytestmark = pytest.mark.browser

NOTE = "Your worksheet for Thursday is ready."


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def app_reads(client, token: str, conversation_id: int) -> int:
    """What the client app sees when it loads the conversation with its token: the status."""
    resp = await client.get(
        f"/api/v1/conversations/{conversation_id}/messages", headers={"Authorization": f"Bearer {token}"}
    )
    if resp.status == 200:
        assert NOTE in [m["body"] for m in (await resp.json())["items"]]
    return resp.status


async def test_r18_one_notification_link_reads_in_a_browser_the_app_and_a_second_browser_until_it_expires(
    browser, client, config, clock, smtp
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(make_context(config, clock), sam, [seeded.ids["alex"]], NOTE)
    assert opened.conversation is not None
    conversation = opened.conversation.id
    thread = f"{base}/portal/c/{conversation}"
    await drain(client)
    link = path_of(link_in(to(smtp, seeded.emails["alex"])[-1]))
    assert link.startswith("/portal/m/")

    # 1. The phone's browser opens the email's link: the conversation.
    phone = await open_tab(browser, PHONE)
    await phone.page.goto(base + link)
    await expect(phone.page).to_have_url(thread)
    await expect(phone.page.locator(".thread .message").last).to_contain_text(NOTE)

    # 2. The client app is opened by the same link (an App Link) and exchanges its token.
    resp = await client.post("/api/v1/auth/magic", json={"token": link.rsplit("/", 1)[1]})
    assert resp.status == 200, await resp.text()
    exchanged = await resp.json()
    assert exchanged["conversation_id"] == conversation
    app_token = exchanged["token"]
    assert await app_reads(client, app_token, conversation) == 200

    # 3. Later, on the desktop, another browser (its own profile) opens the same email's link.
    clock.advance(6 * 3600)
    desktop = await open_tab(browser)
    await desktop.page.goto(base + link)
    await expect(desktop.page).to_have_url(thread)
    await expect(desktop.page.locator(".thread .message").last).to_contain_text(NOTE)

    # All three still read it: no use ended another's session.
    await phone.page.reload()
    await expect(phone.page.locator(".thread .message").last).to_contain_text(NOTE)
    assert await app_reads(client, app_token, conversation) == 200
    [row] = await LinkToken.filter(participant_id=seeded.ids["alex"], purpose="notify")
    uses = await AuditEvent.filter(target_type="link", target_id=str(row.id)).values_list("action", flat=True)
    assert sorted(uses) == ["auth.link_exchange", "auth.link_sign_in", "auth.link_sign_in"]

    # A day after the email: the link and every session it started are over, everywhere.
    clock.advance(18 * 3600)
    for tab in (phone, desktop):
        await tab.page.goto(thread)
        await tab.page.wait_for_url("**/portal/sign-in?next=*")
        await expect(tab.page.locator("p.notice")).to_contain_text("Your link has expired")
        await expect(tab.page.get_by_text(NOTE)).to_have_count(0)
    assert await app_reads(client, app_token, conversation) == 401
    # The link itself too, in a browser and in the app.
    await desktop.page.goto(base + link)
    await expect(desktop.page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    resp = await client.post("/api/v1/auth/magic", json={"token": link.rsplit("/", 1)[1]})
    assert resp.status == 401
    desktop.allow("status of 404")  # the dead link's page is a 404, on purpose
    assert phone.problems == [] and desktop.problems == []

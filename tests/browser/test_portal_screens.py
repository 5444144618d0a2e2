"""The client portal's screens in a real Chromium, on a desktop and a 390×844 phone (issue 16): "New message"
(R8, R11), the thread's layout (the away banner at the top, the newest message and the reply box in view,
Enter on a touch screen), a conversation that cannot be written in saying so before anyone types, the
phones' alert switches (R19), an expired link said up front and Instant Sign In back to the thread, pasted
text cut at 5,000 characters with a notice, and an error toast that clears on the next success."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from gateway.auth import PORTAL_COOKIE
from inbox import accounts, devices, messaging
from inbox.models import Device, Participant, Practice
from tests.browser.conftest import DESKTOP, PHONE, base_url, open_tab, screenshot, screenshots_wanted
from tests.browser.seed import PASSWORD, Seeded, seed_practice
from tests.gateway.mail_helpers import drain, link_in, mail_config, path_of, to

pytestmark = pytest.mark.browser

SCREENS = {"desktop": DESKTOP, "phone": PHONE}


async def portal_tab(browser: Any, config: Any, clock: Any, base: str, who: int, **context: Any) -> Any:
    """A browser signed in to the portal as `who` (a session like the one an email link starts)."""
    person = await Participant.get(id=who)
    token, _ = await accounts.issue_token(make_context(config, clock), person, "session", csrf=True)
    if context:
        ctx = await browser.new_context(locale="en-US", timezone_id="UTC", **context)
        from tests.browser.conftest import Tab

        page = await ctx.new_page()
        tab = Tab(ctx, page)
        page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    else:
        tab = await open_tab(browser, context.get("viewport"))
    await tab.context.add_cookies([{"name": PORTAL_COOKIE, "value": token, "url": base}])
    return tab


async def with_manager_and_scheduler(config: Any, clock: Any) -> Seeded:
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    practice_id = (await Participant.get(id=seeded.ids["sam"])).practice_id
    for key, name, roles in (
        ("mia", "Mia Chen", ["practice_manager"]),
        ("omar", "Omar Haddad", ["scheduler"]),
    ):
        made = await accounts.create_team_member(
            ctx, practice_id, name=name, email=f"{key}@riverbend.example", roles=roles, password=PASSWORD
        )
        seeded.ids[key] = made.id
    return seeded


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_r8_new_message_lists_exactly_whom_a_client_may_start_with(
    browser, client, config, clock, screen
):
    seeded = await with_manager_and_scheduler(config, clock)
    base = base_url(client)
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    await page.goto(base + "/portal")
    await page.get_by_role("link", name="New message").click()
    await expect(page.get_by_role("heading", name="New message")).to_be_visible()
    people = page.locator(".people button.person")
    # R8: the primary clinician, the practice manager, the biller and the scheduler; not Dr. Lena Park (another
    # clinician), nor the account owner, nor Jordan (another client).
    await expect(people.locator(".who")).to_have_text(
        ["Dr. Sam Rivera", "Mia Chen", "Omar Haddad", "Priya Shah"], use_inner_text=True
    )
    await expect(people.filter(has_text="Dr. Sam Rivera").locator(".role")).to_have_text("Your clinician")
    await expect(people.filter(has_text="Priya Shah").locator(".role")).to_have_text("Billing")
    await expect(page.get_by_text("Dr. Lena Park")).to_have_count(0)
    await expect(page.get_by_text("Dana Whitfield")).to_have_count(0)
    if screenshots_wanted(config) and screen == "phone":
        await screenshot(page, "portal-new-message.png", full_page=True)

    # Choosing one opens the conversation with them, where the first message is written.
    await people.filter(has_text="Priya Shah").click()
    await page.wait_for_url("**/portal/c/*")
    await expect(page.locator(".thread-title")).to_have_text("Priya Shah")
    await expect(page.get_by_text("No messages yet.")).to_be_visible()
    reply = page.get_by_label("Your reply")
    await reply.fill("Hello, a question about my invoice :smile:")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".thread .message.mine").last).to_contain_text("a question about my invoice 😄")
    first = page.url.split("#")[0]

    # R11: choosing the same person again opens the same conversation.
    await page.goto(base + "/portal/new")
    await page.locator(".people button.person", has_text="Priya Shah").click()
    await page.wait_for_url("**/portal/c/*")
    assert page.url.split("#")[0] == first
    await expect(page.locator(".thread .message")).to_have_count(1)
    assert tab.problems == []


async def test_r8_starting_with_another_clinician_is_refused_on_the_page(browser, client, config, clock):
    """A form posted by hand (or a list grown stale) naming Dr. Lena Park: refused with R8's reason, no
    conversation made, the list shown again. Lena has access to Alex's profile: only R8 stands in the way."""
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    alex = await Participant.get(id=seeded.ids["alex"])
    lena = await Participant.get(id=seeded.ids["lena"])
    await accounts.grant_access(make_context(config, clock), alex, lena)
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"])
    page = tab.page
    await page.goto(base + "/portal/new")
    await page.locator("input[name='to']").first.evaluate(
        "(el, id) => { el.value = String(id); }", seeded.ids["lena"]
    )
    await page.locator(".people button.person").first.click()
    await expect(page.get_by_role("alert")).to_have_text(
        "A client can start a conversation only with their primary clinician; another clinician must write first."
    )
    await expect(page.get_by_role("heading", name="New message")).to_be_visible()
    await expect(page.locator(".people button.person", has_text="Dr. Lena Park")).to_have_count(0)
    assert (await messaging.list_conversations(make_context(config, clock), alex, None, 10))["items"] == []
    tab.allow("403")
    assert tab.problems == []


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_the_thread_opens_with_the_banner_on_top_and_the_newest_message_and_reply_box_in_view(
    browser, client, config, clock, screen
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    await messaging.set_away(ctx, sam, True, "Back on Monday :sunny: If it is urgent, call 555-0100.")
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "Message number 1")
    assert opened.conversation is not None
    for n in range(2, 31):
        clock.advance(60)
        await messaging.send_message(
            ctx, sam, opened.conversation.id, f"Message number {n}\nwith a second line"
        )
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    await page.goto(base + f"/portal/c/{opened.conversation.id}")
    banner = page.locator(".banner")
    # R13 in the banner too: the emoji code shows as the emoji.
    await expect(banner).to_contain_text("Back on Monday ☀️ If it is urgent")
    await expect(banner).to_be_in_viewport()
    await expect(page.locator(".thread .message").last).to_contain_text("Message number 30")
    await expect(page.locator(".thread .message").last).to_be_in_viewport()
    await expect(page.get_by_label("Your reply")).to_be_in_viewport()
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    await expect(page.locator(".thread .message").first).not_to_be_in_viewport()
    # The banner is above the messages.
    banner_box = await banner.bounding_box()
    first_box = await page.locator(".thread-scroll").bounding_box()
    assert banner_box and first_box and banner_box["y"] < first_box["y"]
    if screenshots_wanted(config):
        await screenshot(page, f"portal-thread-{screen}.png")

    # A reply arrives at the bottom, in view, with the reply box.
    reply = page.get_by_label("Your reply")
    await reply.fill("Thanks, see you Monday")
    await reply.press("Enter")
    await expect(page.locator(".thread .message.mine").last).to_contain_text("Thanks, see you Monday")
    await expect(page.locator(".thread .message.mine").last).to_be_in_viewport()
    await expect(page.get_by_label("Your reply")).to_be_in_viewport()
    assert tab.problems == []


async def test_on_a_touch_screen_enter_makes_a_new_line_and_send_sends(browser, client, config, clock):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "How are you this week?")
    assert opened.conversation is not None
    tab = await portal_tab(
        browser, config, clock, base, seeded.ids["alex"], viewport=PHONE, has_touch=True, is_mobile=True
    )
    page = tab.page
    await page.goto(base + f"/portal/c/{opened.conversation.id}")
    assert await page.evaluate("matchMedia('(pointer: coarse)').matches")
    reply = page.get_by_label("Your reply")
    await reply.fill("Better, thanks.")
    await reply.press("Enter")
    await reply.type("Sleeping well again.")
    assert await reply.input_value() == "Better, thanks.\nSleeping well again."
    await expect(page.locator(".thread .message")).to_have_count(1)  # nothing sent by Enter
    await expect(page.get_by_text("Enter to send")).to_be_hidden()
    await page.get_by_role("button", name="Send").tap()
    mine = page.locator(".thread .message.mine")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".body")).to_have_text("Better, thanks.Sleeping well again.")  # a <br> between
    assert tab.problems == []


BLOCKED = {
    "practice_clients_off": "Secure messaging is off for this practice right now; ask your practice.",
    "clinician_messaging_off": "Secure messaging is off for Dr. Sam Rivera; ask your practice.",
    "clinician_deactivated": "Secure messaging is off for Dr. Sam Rivera; ask your practice.",
}


@pytest.mark.parametrize("case", sorted(BLOCKED))
@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_a_thread_that_cannot_be_written_in_says_so_before_anyone_types(
    browser, client, config, clock, case, screen
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "See you Thursday.")
    assert opened.conversation is not None
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    url = base + f"/portal/c/{opened.conversation.id}"
    await page.goto(url)
    await expect(page.locator(".blocked")).to_have_count(0)
    await expect(page.get_by_label("Your reply")).to_be_enabled()

    if case == "practice_clients_off":
        practice = await Practice.get(id=sam.practice_id)
        await accounts.update_settings(ctx, practice, {"client_messaging_enabled": False})
    elif case == "clinician_messaging_off":
        await accounts.update_team_member(ctx, sam, {"messaging_enabled": False})
    else:
        await Participant.filter(id=sam.id).update(active=False)
    await page.goto(url)
    await expect(page.locator(".blocked")).to_have_text(BLOCKED[case])
    await expect(page.locator(".blocked")).to_be_in_viewport()
    await expect(page.get_by_label("Your reply")).to_be_disabled()
    await expect(page.get_by_role("button", name="Send")).to_be_disabled()
    await expect(page.locator(".thread .message")).to_contain_text("See you Thursday.")  # still readable
    if screenshots_wanted(config) and screen == "phone" and case == "clinician_messaging_off":
        await screenshot(page, "portal-blocked.png")
    assert tab.problems == []


APNS_TOKEN = "a1" * 32
FCM_TOKEN = "fcm-token_" + "x" * 40


async def registered(config: Any, clock: Any, who: int, platform: str, token: str) -> int:
    """A phone registered by `who`'s app, as POST /api/v1/devices does (with its own app session)."""
    ctx = make_context(config, clock)
    person = await Participant.get(id=who)
    _, session = await accounts.issue_token(ctx, person, "app")
    device, _ = await devices.register_device(
        ctx, person, session.id, platform=platform, token=token, app="client"
    )
    return device.id


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_r19_notifications_show_the_phones_and_switch_their_four_alert_types(
    browser, client, config, clock, screen
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    iphone = await registered(config, clock, seeded.ids["alex"], "apns", APNS_TOKEN)
    clock.advance(3600)
    android = await registered(config, clock, seeded.ids["alex"], "fcm", FCM_TOKEN)
    await registered(config, clock, seeded.ids["jordan"], "fcm", "fcm-token_" + "y" * 40)  # not Alex's
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    await page.goto(base + "/portal")
    await page.get_by_role("link", name="Notifications").click()
    await expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    cards = page.locator(".device")
    await expect(cards.locator("h2")).to_have_text(["iPhone or iPad", "Android phone"])
    await expect(cards.first).to_contain_text("Client app")
    await expect(cards.first).to_contain_text("last seen")
    first = cards.first
    switches = first.get_by_role("switch")
    await expect(switches).to_have_count(4)
    for name in ("New messages", "Appointment alerts", "Appointment requests", "Video appointments"):
        await expect(first.get_by_role("switch", name=name)).to_be_checked()
    if screenshots_wanted(config) and screen == "phone":
        await screenshot(page, "portal-notifications.png", full_page=True)

    # A switch saves at once, and the saved state is what a reload shows.
    await first.get_by_role("switch", name="Appointment alerts").uncheck()
    await expect(page.locator("#toast")).to_have_text("Saved")
    assert (await Device.get(id=iphone)).alerts["appointment"] is False
    assert (await Device.get(id=android)).alerts["appointment"] is True
    await page.reload()
    await expect(
        page.locator(".device").first.get_by_role("switch", name="Appointment alerts")
    ).not_to_be_checked()
    await expect(page.locator(".device").first.get_by_role("switch", name="New messages")).to_be_checked()

    # Remove asks first; "Keep it" keeps it.
    second = page.locator(".device").nth(1)
    await second.get_by_role("button", name="Remove this phone").click()
    await second.get_by_role("button", name="Keep it").click()
    assert await Device.exists(id=android)
    await second.get_by_role("button", name="Remove this phone").click()
    await second.get_by_role("button", name="Remove", exact=True).click()
    await expect(page.locator(".device")).to_have_count(1)
    assert not await Device.exists(id=android)
    await page.locator(".device").get_by_role("button", name="Remove this phone").click()
    await page.locator(".device").get_by_role("button", name="Remove", exact=True).click()
    await expect(page.get_by_text("No phones get alerts.")).to_be_visible()
    assert tab.problems == []


async def test_the_portal_session_changes_only_its_own_devices_and_only_with_its_csrf_token(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    mine = await registered(config, clock, seeded.ids["alex"], "apns", APNS_TOKEN)
    jordans = await registered(config, clock, seeded.ids["jordan"], "fcm", FCM_TOKEN)
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"])
    page = tab.page
    await page.goto(base + "/portal/notifications")
    csrf = await page.locator("meta[name='csrf-token']").get_attribute("content")
    body = {"alerts": {"new_message": False}}
    # Without the session's CSRF token (another site's form, say): refused, nothing changes.
    resp = await page.request.patch(f"{base}/api/v1/devices/{mine}", data=body)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await page.request.delete(f"{base}/api/v1/devices/{mine}")
    assert resp.status == 403
    assert (await Device.get(id=mine)).alerts["new_message"] is True
    # Someone else's phone: not found, untouched.
    headers = {"X-CSRF-Token": csrf or ""}
    resp = await page.request.patch(f"{base}/api/v1/devices/{jordans}", data=body, headers=headers)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await page.request.delete(f"{base}/api/v1/devices/{jordans}", headers=headers)
    assert resp.status == 404
    assert await Device.exists(id=jordans)
    # A switch the server refuses (the phone was removed meanwhile) goes back, with the reason.
    await Device.filter(id=mine).delete()
    switch = page.get_by_role("switch", name="New messages")
    await switch.click()
    await expect(page.locator("#toast")).to_have_attribute("data-kind", "error")
    await expect(switch).to_be_checked()
    tab.allow("404")
    assert tab.problems == []


@pytest.fixture
def config(db_url, tmp_path, smtp):
    """The app with a real SMTP server on loopback, for the emails with links."""
    return mail_config(db_url, tmp_path, smtp)


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_an_expired_link_says_so_and_instant_sign_in_returns_to_the_thread(
    browser, client, config, clock, smtp, screen
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "Your worksheet is ready.")
    assert opened.conversation is not None
    thread = f"/portal/c/{opened.conversation.id}"
    await drain(client)
    link = path_of(link_in(to(smtp, seeded.emails["alex"])[-1]))
    tab = await open_tab(browser, SCREENS[screen])
    page = tab.page
    await page.goto(base + link)
    await expect(page.locator(".thread .message")).to_contain_text("Your worksheet is ready.")

    clock.advance(24 * 3600 + 1)  # R18: the link, and the session it started, end after 24 hours
    await page.goto(base + thread)
    await page.wait_for_url("**/portal/sign-in?next=*")
    await expect(page.locator("p.notice")).to_contain_text(
        "Your link has expired: the links in our emails open your messages for 24 hours."
    )
    if screenshots_wanted(config) and screen == "phone":
        await screenshot(page, "portal-link-expired.png")
    await page.get_by_label("Your email address").fill(seeded.emails["alex"])
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await expect(page.get_by_text("Check your email.")).to_be_visible()
    await drain(client)
    signin = path_of(link_in(to(smtp, seeded.emails["alex"])[-1]))
    assert signin.startswith("/portal/s/")
    await page.goto(base + signin)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{thread}")
    await expect(page.locator(".thread .message")).to_contain_text("Your worksheet is ready.")
    assert tab.problems == []


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_pasted_text_over_5000_characters_is_cut_as_the_server_counts_and_says_so(
    browser, client, config, clock, screen
):
    """The server counts code points after trimming: 5,000 emoji fit (10,000 UTF-16 units, which the
    textarea's own maxlength would have cut to 2,500)."""
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    ctx = make_context(config, clock)
    sam = await Participant.get(id=seeded.ids["sam"])
    opened = await messaging.open_conversation(ctx, sam, [seeded.ids["alex"]], "Send me your notes.")
    assert opened.conversation is not None
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    await page.goto(base + f"/portal/c/{opened.conversation.id}")
    reply = page.get_by_label("Your reply")
    note = page.locator("#reply-cut")
    await reply.fill("  " + "🙂" * 4990 + "  ")  # fits: the spaces are trimmed
    await expect(note).to_be_hidden()
    await expect(page.locator(".counter")).to_have_text("10 characters left")
    await reply.fill("  " + "🙂" * 4990 + "abcdefghijklmnop")
    await expect(note).to_have_text(
        "Your text was cut to 5,000 characters, the most one message can hold. Check the end before you send it."
    )
    value = await reply.input_value()
    assert value == "  " + "🙂" * 4990 + "abcdefghij"
    await expect(page.locator(".counter")).to_have_text("0 characters left")
    await page.get_by_role("button", name="Send").click()
    mine = page.locator(".thread .message.mine")
    await expect(mine).to_have_count(1)
    stored = (await messaging.list_messages(ctx, sam, opened.conversation.id, None, 5))["items"][-1]["body"]
    assert stored == "🙂" * 4990 + "abcdefghij"
    assert tab.problems == []


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_an_error_toast_clears_on_the_next_success(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    gone = await registered(config, clock, seeded.ids["alex"], "apns", APNS_TOKEN)
    kept = await registered(config, clock, seeded.ids["alex"], "fcm", FCM_TOKEN)
    tab = await portal_tab(browser, config, clock, base, seeded.ids["alex"], viewport=SCREENS[screen])
    page = tab.page
    await page.goto(base + "/portal/notifications")
    await Device.filter(id=gone).delete()
    await page.locator(".device").first.get_by_role("switch", name="New messages").click()
    toast = page.locator("#toast")
    await expect(toast).to_have_attribute("data-kind", "error")
    await expect(toast).to_have_text("No such device.")
    await page.wait_for_timeout(7000)  # an error outlasts a note's 6 seconds
    await expect(toast).to_have_class("toast show")
    # The next change that works (here straight through the page's API helper, which shows no note of its own).
    await page.evaluate(
        "id => window.Live.api('PATCH', '/devices/' + id, {alerts: {video_appointment: false}})", kept
    )
    await expect(toast).not_to_have_class("toast show")
    assert (await Device.get(id=kept)).alerts["video_appointment"] is False
    tab.allow("404")
    assert tab.problems == []

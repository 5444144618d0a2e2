"""Issue 12's screens in a real Chromium: Settings > People (invite, roles, deactivate and reactivate,
clients and contacts), Settings > API keys, the Account page (password, two-step sign-in) and
"Forgot your password?" (R25, R26, R27, R29, R30). Emails are read from the real SMTP server on loopback,
the outbox drained the way the worker would."""

from __future__ import annotations

import re
import socket
import time

import pyotp
import pytest
from playwright.async_api import expect

from gateway.app import create_app, make_context
from inbox import accounts
from inbox.models import Participant
from tests.browser.conftest import (
    NO_SIDEWAYS_SCROLL,
    PHONE,
    base_url,
    open_tab,
    screenshot,
    screenshots_wanted,
)
from tests.browser.seed import PASSWORD, seed_practice, sign_in
from tests.browser.test_team_inbox import UNLABELLED_CONTROLS
from tests.conftest import make_config
from tests.gateway.mail_helpers import PUBLIC_URL, drain, mail_config, text_of, to

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a whole new passphrase"
_RESET_LINK = re.compile(re.escape(PUBLIC_URL) + r"(/reset/[A-Za-z0-9_-]+)")
# What the page's own script sends with the session cookie: the JSON API, as a person's browser calls it.
FETCH_AS_PAGE = """async ([method, path, body]) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const resp = await fetch('/api/v1' + path, {method, credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify(body)});
  return [resp.status, await resp.json()];
}"""


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


def said(page, text: str):
    """A status line (role=status) with this text: the page's own, not the empty toast beside it."""
    return page.get_by_role("status").filter(has_text=text)


async def reset_link(client, smtp, address: str) -> str:
    """The path of the newest password link emailed to `address`."""
    await drain(client)
    mails = to(smtp, address)
    assert mails, f"no email to {address}"
    found = _RESET_LINK.search(text_of(mails[-1]))
    assert found, "no /reset/ link in the email"
    return found.group(1)


async def accept_invitation(page, email: str) -> None:
    """On an invitation's page: choose a password, then sign in with it and reach the inbox."""
    await expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_label("The same again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await expect(said(page, "Your new password is set")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/inbox**")
    await expect(page.get_by_role("heading", name="Messages")).to_be_visible()


async def open_people(page) -> None:
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("navigation", name="Settings").get_by_role("link", name="People").click()
    await expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()


async def sign_in_fails(page, base: str, email: str, password: str) -> str:
    """The error the sign-in page shows for this address and password."""
    await page.goto(base + "/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#form-error")
    await expect(alert).to_be_visible()
    return await alert.inner_text()


async def add_manager(config, clock) -> Participant:
    ctx = make_context(config, clock)
    dana = await Participant.get(email="dana@riverbend.example")
    return await accounts.create_team_member(
        ctx,
        dana.practice_id,
        name="Morgan Hale",
        email="morgan@riverbend.example",
        roles=["practice_manager"],
        password=PASSWORD,
    )


async def test_r25_the_owner_invites_a_clinician_who_sets_a_password_from_the_email_and_signs_in(
    browser, client, config, clock, smtp
):
    await seed_practice(config, clock)
    base = base_url(client)
    dana = await open_tab(browser)
    page = dana.page
    await sign_in(page, base, "dana@riverbend.example")
    await open_people(page)
    assert await page.locator("input[type=password]").count() == 0  # R25: nobody sets another's password
    assert await page.evaluate(UNLABELLED_CONTROLS) == []

    invite = page.locator("#invite-form")
    await invite.get_by_label("Name").fill("Dr. Mia Chen")
    await invite.get_by_label("Email").fill("mia@riverbend.example")
    await invite.get_by_label("Clinician", exact=True).check()
    await invite.get_by_role("button", name="Send invitation").click()
    notice = said(page, "Invitation sent to mia@riverbend.example")
    await expect(notice).to_be_visible()
    row = page.locator("tr[data-member]", has_text="Dr. Mia Chen")
    await expect(row).to_contain_text("Clinician")
    await expect(row).to_contain_text("Invited: has not chosen a password yet")
    await expect(page.get_by_role("heading", name="Team members")).to_be_focused()
    mia = await Participant.get(email="mia@riverbend.example")
    assert mia.role_set == {"clinician"} and mia.password_hash is None
    if screenshots_wanted(config):
        await screenshot(page, "people.png", full_page=True)

    # Inviting the same address again: the server's refusal, shown on the form.
    await invite.get_by_label("Name").fill("Mia Again")
    await invite.get_by_label("Email").fill("mia@riverbend.example")
    await invite.get_by_label("Clinician", exact=True).check()
    await invite.get_by_role("button", name="Send invitation").click()
    refusal = invite.get_by_role("alert")
    await expect(refusal).to_be_visible()
    assert (await refusal.inner_text()).strip()
    dana.allow("409")

    # --- the email's link sets her password; she signs in with it ---
    link = await reset_link(client, smtp, "mia@riverbend.example")
    newcomer = await open_tab(browser)
    her = newcomer.page
    await her.goto(base + link)
    await accept_invitation(her, "mia@riverbend.example")

    await page.reload()
    await expect(page.locator("tr[data-member]", has_text="Dr. Mia Chen")).not_to_contain_text("Invited")
    for tab in (dana, newcomer):
        assert tab.problems == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_r25_tried_as_a_new_user_the_invitation_is_read_in_dev_mail_and_the_owner_lets_a_manager_export(
    browser, aiohttp_client, db_url, tmp_path, clock
):
    """The issue's "tried as a new user would": a server started with --dev-mail (its own SMTP sink and
    /dev/mail), its public URL the one the browser uses, so the email's link is clicked as it is. The owner
    invites a clinician from Settings > People; the invitation, read in /dev/mail, sets her password; and
    the owner gives a practice manager `can_export` from the same page."""
    port = free_port()
    config = make_config(
        db_url, tmp_path / "var", smtp_port=free_port(), public_url=f"http://127.0.0.1:{port}"
    )
    client = await aiohttp_client(
        create_app(config, clock=clock, dev_mail=True), server_kwargs={"port": port}
    )
    await seed_practice(config, clock)
    morgan = await add_manager(config, clock)
    base = base_url(client)
    assert base == config.public_url
    dana = await open_tab(browser)
    page = dana.page
    await sign_in(page, base, "dana@riverbend.example")
    await open_people(page)
    invite = page.locator("#invite-form")
    await invite.get_by_label("Name").fill("Dr. Mia Chen")
    await invite.get_by_label("Email").fill("mia@riverbend.example")
    await invite.get_by_label("Clinician", exact=True).check()
    await invite.get_by_role("button", name="Send invitation").click()
    await expect(said(page, "Invitation sent to mia@riverbend.example")).to_be_visible()

    # The owner gives the practice manager the export flag (R23), from Edit.
    await page.get_by_role("button", name="Edit Morgan Hale").click()
    edit = page.get_by_role("dialog", name="Edit Morgan Hale")
    await expect(edit.get_by_label("May export client data")).not_to_be_checked()
    await edit.get_by_label("May export client data").check()
    await edit.get_by_role("button", name="Save").click()
    await expect(said(page, "Saved the roles of Morgan Hale.")).to_be_visible()
    await expect(page.locator("tr[data-member]", has_text="Morgan Hale")).to_contain_text(
        "May export client data"
    )
    assert (await Participant.get(id=morgan.id)).can_export

    # --- the newcomer reads the invitation in /dev/mail and follows its link ---
    await drain(client)
    newcomer = await open_tab(browser)
    her = newcomer.page
    await her.goto(base + "/dev/mail")
    row = her.locator("table.mail tr", has_text="mia@riverbend.example")
    await expect(row).to_have_count(1)
    await row.get_by_role("link").click()
    await expect(her.locator("pre.mail-text")).to_contain_text("7 days")
    await her.locator('pre.mail-text a[href*="/reset/"]').click()
    await accept_invitation(her, "mia@riverbend.example")
    for tab in (dana, newcomer):
        assert tab.problems == []


async def test_r25_r26_a_managers_people_page_has_no_password_field_and_the_server_refusals_show(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    await add_manager(config, clock)
    base = base_url(client)
    morgan = await open_tab(browser, PHONE)
    page = morgan.page
    await sign_in(page, base, "morgan@riverbend.example")
    await open_people(page)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await page.evaluate(UNLABELLED_CONTROLS) == []
    assert await page.locator("input[type=password]").count() == 0
    invite = page.locator("#invite-form")
    await expect(invite.get_by_label("Account owner")).to_have_count(0)  # a manager makes no owners
    await expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    if screenshots_wanted(config):
        await screenshot(page, "people-phone.png")

    # R25: the API the page uses refuses a password for someone else, whoever asks.
    status, body = await page.evaluate(
        FETCH_AS_PAGE, ["PATCH", f"/team-members/{seeded.ids['lena']}", {"password": "set by a manager"}]
    )
    assert (status, body["error"]["code"]) == (403, "password_is_personal")
    morgan.allow("403")

    # R26: a manager cannot deactivate an owner; the dialog shows the server's reason.
    await page.get_by_role("button", name="Deactivate Dana Whitfield").click()
    dialog = page.get_by_role("dialog", name="Deactivate Dana Whitfield?")
    await expect(dialog).to_contain_text("signed out everywhere at once")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await dialog.get_by_role("button", name="Deactivate").click()
    await expect(dialog.get_by_role("alert")).to_have_text(
        "Only the account owner can change an account owner's account."
    )
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_role("button", name="Deactivate Dana Whitfield")).to_be_focused()
    assert (await Participant.get(id=seeded.ids["dana"])).active
    morgan.allow("403")

    # Roles: Dr. Lena Park becomes a supervisor too; the export flag is the owner's to give.
    await page.get_by_role("button", name="Edit Dr. Lena Park").click()
    edit = page.get_by_role("dialog", name="Edit Dr. Lena Park")
    await expect(edit.get_by_label("Clinician", exact=True)).to_be_checked()
    await expect(edit.get_by_label("Account owner")).to_be_disabled()
    await edit.get_by_label("Practice manager").check()
    await expect(edit.get_by_label("May export client data")).to_be_disabled()
    await edit.get_by_label("Practice manager").uncheck()
    await edit.get_by_label("Supervisor").check()
    await edit.get_by_role("button", name="Save").click()
    await expect(said(page, "Saved the roles of Dr. Lena Park.")).to_be_visible()
    assert (await Participant.get(id=seeded.ids["lena"])).role_set == {"clinician", "supervisor"}

    # A client with a primary clinician and portal access, then the client's contact.
    add = page.locator("#client-add-form")
    await add.get_by_label("Name").fill("Casey Nguyen")
    await add.get_by_label("Email").fill("casey@client.example")
    await add.get_by_label("Primary clinician").select_option(label="Dr. Lena Park")
    await expect(add.get_by_label("Client portal access")).to_be_checked()
    await add.get_by_role("button", name="Add client").click()
    await expect(said(page, "Casey Nguyen is added as a client.")).to_be_visible()
    casey = await Participant.get(email="casey@client.example")
    assert casey.primary_clinician_id == seeded.ids["lena"] and casey.portal_access

    await page.get_by_role("button", name="Add a contact for Casey Nguyen").click()
    contact = page.get_by_role("dialog", name="Add a contact for Casey Nguyen")
    await expect(contact.get_by_label("Name")).to_be_focused()
    await contact.get_by_label("Name").fill("Pat Nguyen")
    await contact.get_by_label("Email").fill("not an address")
    await contact.get_by_role("button", name="Add contact").click()
    await expect(contact.get_by_role("alert")).to_be_visible()  # the server's own words
    morgan.allow("422")
    await contact.get_by_label("Email").fill("pat@client.example")
    await contact.get_by_role("button", name="Add contact").click()
    await expect(said(page, "Pat Nguyen is now a contact of Casey Nguyen.")).to_be_visible()
    await expect(page.locator("tr[data-client]", has_text="Casey Nguyen")).to_contain_text("Pat Nguyen")
    pat = await Participant.get(email="pat@client.example")
    assert pat.kind == "contact" and pat.client_id == casey.id

    # A client's primary clinician changes.
    await page.get_by_label("Primary clinician for Alex Morgan").select_option(label="Dr. Lena Park")
    clients = page.locator("#clients-form")
    await clients.get_by_role("button", name="Save primary clinicians").click()
    await expect(clients.locator(".saved")).to_have_text("Saved.")
    assert (await Participant.get(id=seeded.ids["alex"])).primary_clinician_id == seeded.ids["lena"]
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)

    # Settings > API keys is the owner's alone.
    resp = await page.goto(base + "/settings/api-keys")
    assert resp is not None and resp.status == 403
    await expect(
        page.get_by_text("Only the account owner can create, see and revoke API keys.")
    ).to_be_visible()
    morgan.allow("403")
    assert morgan.problems == []


async def test_r26_r27_a_deactivated_clinicians_open_inbox_says_signed_out_and_sign_in_is_refused(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    lena = await open_tab(browser)
    await sign_in(lena.page, base, seeded.emails["lena"])
    await expect(lena.page.locator("body")).to_have_attribute("data-live", "on")

    dana = await open_tab(browser)
    page = dana.page
    await sign_in(page, base, seeded.emails["dana"])
    await open_people(page)
    await page.get_by_role("button", name="Deactivate Dr. Lena Park").click()
    dialog = page.get_by_role("dialog", name="Deactivate Dr. Lena Park?")
    await expect(dialog).to_contain_text("What they wrote stays in transcripts and exports.")
    if screenshots_wanted(config):
        await screenshot(page, "people-deactivate.png")
    started = time.monotonic()
    await dialog.get_by_role("button", name="Deactivate").click()

    notice = lena.page.get_by_role("alert").filter(has_text="You were signed out.")
    await expect(notice).to_be_visible(timeout=2000)
    assert time.monotonic() - started < 2.5  # the click's own round trip included
    await expect(said(page, "Dr. Lena Park is deactivated")).to_be_visible()
    deactivated = page.locator("section", has=page.get_by_role("heading", name="Deactivated"))
    await expect(deactivated).to_contain_text("Dr. Lena Park")
    await expect(page.get_by_role("button", name="Edit Dr. Lena Park")).to_have_count(0)

    # Sign-in is refused exactly as a wrong password is.
    stranger = await open_tab(browser)
    wrong = await sign_in_fails(stranger.page, base, seeded.emails["priya"], "not the password")
    refused = await sign_in_fails(stranger.page, base, seeded.emails["lena"], PASSWORD)
    assert refused == wrong
    stranger.allow("401")

    # The last owner stays: the owner's own deactivation is refused with the server's reason.
    await page.get_by_role("button", name="Deactivate Dana Whitfield").click()
    own = page.get_by_role("dialog", name="Deactivate Dana Whitfield?")
    await expect(own).to_contain_text("You are signed out everywhere at once")
    await own.get_by_role("button", name="Deactivate").click()
    await expect(own.get_by_role("alert")).to_have_text(
        "This is the practice's last account owner; make someone else an owner first."
    )
    await own.get_by_role("button", name="Cancel").click()
    dana.allow("409")

    # Reactivated, she signs in again with her password.
    await deactivated.get_by_role("button", name="Reactivate Dr. Lena Park").click()
    await expect(said(page, "Dr. Lena Park is active again")).to_be_visible()
    await expect(page.get_by_role("button", name="Edit Dr. Lena Park")).to_be_visible()
    await sign_in(stranger.page, base, seeded.emails["lena"])
    for tab in (lena, dana, stranger):
        assert tab.problems == []


async def test_r29_the_owner_creates_an_api_key_sees_it_once_and_revokes_it(
    browser, client, api, config, clock
):
    await seed_practice(config, clock)
    base = base_url(client)
    dana = await open_tab(browser)
    page = dana.page
    await dana.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    await sign_in(page, base, "dana@riverbend.example")
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("link", name="API keys").click()
    await expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    assert await page.evaluate(UNLABELLED_CONTROLS) == []

    form = page.locator("#key-form")
    await form.get_by_label("Name").fill("EHR sync")
    await form.get_by_role("button", name="Create key").click()  # no scope: the server says what is missing
    await expect(form.get_by_role("alert")).to_contain_text("scopes must be a non-empty list")
    dana.allow("422")
    await form.get_by_label("Integration").check()
    await form.get_by_label("Provisioning").check()
    await form.get_by_role("button", name="Create key").click()

    shown = page.locator("#new-key")
    await expect(shown).to_contain_text("It won't be shown again.")
    key_box = shown.get_by_label(re.compile("^API key"))
    await expect(key_box).to_be_focused()
    key = await key_box.input_value()
    assert key.startswith("smk_")
    await shown.get_by_role("button", name="Copy").click()
    await expect(shown.get_by_role("status")).to_have_text("Copied.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == key
    row = page.locator("#keys tr", has_text="EHR sync")
    await expect(row).to_contain_text("Integration, Provisioning")
    await expect(row).to_contain_text("Never")
    if screenshots_wanted(config):
        await screenshot(page, "api-keys.png", full_page=True)

    # The key works; the list says when it was last used, and never shows the key again.
    assert (await api.get("/practice/settings", token=key))[0] == 200
    await page.reload()
    await expect(row).not_to_contain_text("Never")
    assert key not in await page.content()
    await expect(page.locator("#new-key")).to_be_hidden()

    # Revoke, with a confirm: Cancel keeps it, Revoke stops it at once.
    await row.get_by_role("button", name="Revoke EHR sync").click()
    dialog = page.get_by_role("dialog", name="Revoke EHR sync?")
    await expect(dialog).to_contain_text("refused from the next request on")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(row.get_by_role("button", name="Revoke EHR sync")).to_be_focused()
    assert (await api.get("/practice/settings", token=key))[0] == 200
    await row.get_by_role("button", name="Revoke EHR sync").click()
    await dialog.get_by_role("button", name="Revoke").click()
    await expect(row).to_contain_text("Revoked")
    await expect(row.get_by_role("button")).to_have_count(0)
    status, body = await api.get("/practice/settings", token=key)
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    await page.set_viewport_size(PHONE)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await expect(row).to_be_visible()
    assert dana.problems == []


async def test_r25_r27_a_member_changes_their_password_on_the_account_page_and_their_other_session_ends(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    phone = await open_tab(browser, PHONE)
    await sign_in(phone.page, base, seeded.emails["priya"])
    await expect(phone.page.locator("body")).to_have_attribute("data-live", "on")

    desk = await open_tab(browser)
    page = desk.page
    await sign_in(page, base, seeded.emails["priya"])
    await page.get_by_role("link", name="Your account: Priya Shah").click()
    await expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    assert await page.evaluate(UNLABELLED_CONTROLS) == []

    async def change(current: str, new: str, confirm: str) -> None:
        await page.get_by_label("Current password").fill(current)
        await page.get_by_label("New password", exact=True).fill(new)
        await page.get_by_label("Confirm new password").fill(confirm)
        await page.get_by_role("button", name="Change password").click()

    await change("not my password", NEW_PASSWORD, NEW_PASSWORD)
    await expect(page.get_by_role("alert")).to_have_text("The current password is not right.")
    await expect(page.get_by_label("Current password")).to_be_focused()
    await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!")
    await expect(page.get_by_role("alert")).to_have_text("The two new passwords are not the same.")
    await page.evaluate("() => document.querySelectorAll('input[minlength]').forEach(i => i.minLength = 0)")
    await change(PASSWORD, "short", "short")  # what the server says, not only the browser
    await expect(page.get_by_role("alert")).to_have_text("A password must be 10 to 256 characters.")
    desk.allow("403")
    desk.allow("422")

    started = time.monotonic()
    await change(PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    await expect(said(page, "Your password is changed. You were signed out everywhere else.")).to_be_visible()
    await expect(phone.page.get_by_role("alert").filter(has_text="You were signed out.")).to_be_visible(
        timeout=2000
    )
    assert time.monotonic() - started < 2.5
    if screenshots_wanted(config):
        await screenshot(page, "account.png", full_page=True)
    await page.set_viewport_size(PHONE)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await page.evaluate(UNLABELLED_CONTROLS) == []
    # This browser stays signed in; the other one signs in with the new password.
    await page.get_by_role("link", name="Messages").click()
    await expect(page.get_by_role("heading", name="Messages")).to_be_visible()
    await phone.page.goto(base + "/")
    await phone.page.get_by_label("Email").fill(seeded.emails["priya"])
    await phone.page.get_by_label("Password").fill(NEW_PASSWORD)
    await phone.page.get_by_role("button", name="Sign in").click()
    await phone.page.wait_for_url("**/inbox**")
    for tab in (phone, desk):
        assert tab.problems == []


async def test_r30_two_step_sign_in_is_set_up_and_replaced_from_the_account_page(
    browser, client, config, clock
):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    tab = await open_tab(browser, PHONE)
    page = tab.page
    await sign_in(page, base, seeded.emails["lena"])
    await page.get_by_role("link", name="Your account: Dr. Lena Park").click()
    section = page.locator("#two-step")
    await expect(section).to_contain_text("Off")
    await section.get_by_role("link", name="Set up two-step sign-in").click()
    await expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
    await expect(page.get_by_role("img", name="QR code to scan with your authenticator app")).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    assert await page.evaluate(UNLABELLED_CONTROLS) == []
    secret = (await page.locator("code.secret").inner_text()).replace(" ", "")
    totp = pyotp.TOTP(secret)

    await page.get_by_label("Enter the 6-digit code the app shows").fill(totp.at(clock.now()))
    await page.get_by_label("Your password").fill("not my password")
    await page.get_by_role("button", name="Turn on two-step sign-in").click()
    await expect(page.get_by_role("alert")).to_be_visible()  # R30: the password is asked for again
    tab.allow("403")
    tab.allow("422")
    clock.advance(30)
    await page.get_by_label("Enter the 6-digit code the app shows").fill(totp.at(clock.now()))
    await page.get_by_label("Your password").fill(PASSWORD)
    await page.get_by_role("button", name="Turn on two-step sign-in").click()
    await expect(said(page, "Two-step sign-in is now on.")).to_be_visible()
    assert (await Participant.get(id=seeded.ids["lena"])).totp_enabled

    # Replacing it asks for the current code too: without it nothing changes; with it the new app replaces
    # the old one.
    await page.get_by_role("link", name="Back to your account").click()
    await expect(section).to_contain_text("On")
    await section.get_by_role("link", name="Replace your authenticator app").click()
    current = page.get_by_label("The code your current authenticator app shows")
    await expect(current).to_be_visible()
    replacement = pyotp.TOTP((await page.locator("code.secret").inner_text()).replace(" ", ""))
    assert replacement.secret != totp.secret
    clock.advance(30)
    await page.get_by_label("Enter the 6-digit code the app shows").fill(replacement.at(clock.now()))
    await page.get_by_label("Your password").fill(PASSWORD)
    await current.fill("000000" if totp.at(clock.now()) != "000000" else "111111")
    await page.get_by_role("button", name="Turn on two-step sign-in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    tab.allow("403")
    await page.get_by_label("Enter the 6-digit code the app shows").fill(replacement.at(clock.now()))
    await page.get_by_label("Your password").fill(PASSWORD)
    await current.fill(totp.at(clock.now()))
    await page.get_by_role("button", name="Turn on two-step sign-in").click()
    await expect(said(page, "Two-step sign-in is now on.")).to_be_visible()
    await page.get_by_role("link", name="Your account", exact=True).click()

    # Signing in now asks for a code of the new app (from a later time step: a code works once); the old
    # app's codes no longer sign in.
    await page.get_by_role("button", name="Sign out").click()
    clock.advance(30)
    await page.get_by_label("Email").fill(seeded.emails["lena"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/sign-in/code**")
    await page.get_by_label("Authentication code").fill(totp.at(clock.now()))
    await page.get_by_role("button", name="Verify and sign in").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    tab.allow("401")
    await page.get_by_label("Authentication code").fill(replacement.at(clock.now()))
    await page.get_by_role("button", name="Verify and sign in").click()
    await page.wait_for_url("**/inbox**")
    assert tab.problems == []


async def test_r25_a_forgotten_password_is_reset_from_the_sign_in_page(browser, client, config, clock, smtp):
    seeded = await seed_practice(config, clock)
    base = base_url(client)
    tab = await open_tab(browser, PHONE)
    page = tab.page
    answers = []
    for address in ("nobody@riverbend.example", seeded.emails["priya"]):
        await page.goto(base + "/")
        await page.get_by_role("link", name="Forgot your password?").click()
        await expect(page.get_by_role("heading", name="Reset your password")).to_be_visible()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        if screenshots_wanted(config) and not answers:
            await screenshot(page, "forgot-password.png")
        await page.get_by_label("Email").fill(address)
        await page.get_by_role("button", name="Email me a link").click()
        answer = said(page, "If that address belongs to a team account")
        await expect(answer).to_be_visible()
        answers.append(await answer.inner_text())
    assert answers[0] == answers[1]  # the answer never says whether an address is known

    link = await reset_link(client, smtp, seeded.emails["priya"])
    assert to(smtp, "nobody@riverbend.example") == []
    await page.goto(base + link)
    await expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_label("The same again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await expect(said(page, "Your new password is set")).to_be_visible()
    wrong = await sign_in_fails(page, base, seeded.emails["priya"], PASSWORD)  # the old one is gone
    assert wrong
    tab.allow("401")
    await page.get_by_label("Email").fill(seeded.emails["priya"])
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/inbox**")
    # The link worked once.
    await page.goto(base + link)
    await expect(page.get_by_role("alert")).to_contain_text("This link no longer works")
    tab.allow("404")
    assert tab.problems == []

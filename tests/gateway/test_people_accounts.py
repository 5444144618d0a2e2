"""People and access (R25, R26): a password is personal, resets and invitations by email, deactivation,
a lockout that answers like a wrong password, and team addresses unique per practice.

On SQLite and PostgreSQL; the emails go over real SMTP on loopback (the FakeSmtp) and their links are
followed like a browser would, with aiohttp's test client and its cookie jar.
"""

from __future__ import annotations

import re

import pyotp
import pytest

from gateway.team_signin import DEVICE_COOKIE
from inbox.accounts import LOCKOUT_AFTER
from inbox.models import AuditEvent, Device, Participant
from inbox.passwords import INVITE_TTL_S, RESET_TTL_S
from tests.conftest import PASSWORD, build_cast
from tests.gateway.mail_helpers import PUBLIC_URL, drain, html_of, mail_config, text_of, to
from tests.gateway.pages import cookie, hidden_fields, post_sign_in, session_cookie
from tests.gateway.records_helpers import by_people, download, open_zip

NEW_PASSWORD = "a brand new passphrase"
WRONG = "not the password at all"
_RESET_LINK = re.compile(r"http://portal\.test/reset/[A-Za-z0-9_-]+")


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


def error_of(status: int, body: dict) -> tuple[int, str, str]:
    return status, body["error"]["code"], body["error"]["message"]


async def email_of(who: int) -> str:
    return (await Participant.get(id=who)).email


async def login(api, email: str, password: str, **extra) -> tuple[int, dict]:
    return await api.post("/auth/login", {"email": email, "password": password} | extra)


def next_window(clock, window_s: int = 300) -> None:
    """To the start of the next sign-in rate-limit window, so the rate limit is not what answers."""
    clock.advance(window_s - clock.now().timestamp() % window_s)


def reset_link(mail) -> str:
    found = set(_RESET_LINK.findall(text_of(mail)))
    assert len(found) == 1, found
    link = found.pop()
    assert link in html_of(mail)
    return link.removeprefix(PUBLIC_URL)


async def mailed_link(client, smtp, address: str) -> str:
    """Drain the outbox; the newest email to `address` and its /reset/ link."""
    await drain(client)
    mails = to(smtp, address)
    assert mails, f"no email to {address}"
    return reset_link(mails[-1])


async def set_password_page(client, path: str, password: str, confirm: str | None = None):
    page = await client.get(path, allow_redirects=False)
    assert page.status == 200, await page.text()
    fields = hidden_fields(await page.text()) | {"password": password, "confirm": confirm or password}
    return await client.post(path, data=fields, allow_redirects=False)


async def sign_in_page_text(client, email: str, password: str) -> tuple[int, str]:
    resp = await post_sign_in(client, email, password)
    return resp.status, await resp.text()


# --- R25: a password is personal ----------------------------------------------------------------------


async def test_r25_nobody_sets_another_persons_password(api, cast):
    who = cast.id("clinician")
    email = await email_of(who)
    for token in (cast.tok("manager"), cast.tok("owner"), cast.api_key):
        status, body = await api.patch(
            f"/team-members/{who}", {"name": "Taken Over", "password": "taken over at last"}, token=token
        )
        assert (status, body["error"]["code"], body["error"]["rule"]) == (403, "password_is_personal", "R25")
    # Nothing of the refused change happened: not the name, not the password.
    assert (await Participant.get(id=who)).name == "Clinician"
    assert (await login(api, email, "taken over at last"))[0] == 401
    assert (await login(api, email, PASSWORD))[0] == 200


async def test_r25_changing_ones_password_ends_every_other_session_and_trusted_device(
    api, client, cast, smtp
):
    who = cast.id("clinician")
    email = await email_of(who)
    status, first = await login(api, email, PASSWORD)
    assert status == 200
    old_device = first["device_token"]
    _, second = await login(api, email, PASSWORD, device_token=old_device)
    assert second["device_token"] == old_device  # trusted
    assert (await post_sign_in(client, email, PASSWORD)).status == 303  # a web session too
    browser_device = cookie(client, DEVICE_COOKIE)

    await api.post("/auth/password-reset", {"email": email})
    pending = await mailed_link(client, smtp, email)  # a reset link asked for before the change

    change = {"current_password": WRONG, "new_password": NEW_PASSWORD}
    status, body = await api.put("/me/password", change, token=first["token"])
    assert (status, body["error"]["code"]) == (403, "wrong_password")
    status, body = await api.put(
        "/me/password", {"current_password": PASSWORD, "new_password": "short"}, token=first["token"]
    )
    assert (status, body["error"]["code"]) == (422, "weak_password")
    assert (await api.get("/me", token=second["token"]))[0] == 200  # refusals changed nothing

    status, body = await api.put(
        "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=first["token"]
    )
    assert status == 200 and body["ended_sessions"] >= 3  # the cast's token, the second, the web session
    assert (await api.get("/me", token=first["token"]))[0] == 200  # the session used stays
    for token in (second["token"], cast.tok("clinician")):
        status, body = await api.get("/me", token=token)
        assert (status, body["error"]["code"]) == (401, "invalid_token")
    resp = await client.get("/inbox", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/?next=")
    assert (await login(api, email, PASSWORD))[0] == 401
    assert (await client.get(pending)).status == 404  # the live link ended too
    # The device trusted before is trusted no more: it is given a new token, the browser too.
    status, again = await login(api, email, NEW_PASSWORD, device_token=old_device)
    assert status == 200 and again["device_token"] != old_device
    assert (await post_sign_in(client, email, NEW_PASSWORD)).status == 303
    assert cookie(client, DEVICE_COOKIE) not in (None, browser_device)
    # Audited without the secret.
    row = await AuditEvent.filter(action="auth.password_change", target_id=str(who)).first()
    assert row is not None and row.actor_id == who
    assert NEW_PASSWORD not in str(row.detail) and PASSWORD not in str(row.detail)


async def test_r25_the_settings_page_changes_the_password_and_keeps_this_browser_signed_in(api, client, cast):
    email = await email_of(cast.id("clinician"))
    assert (await post_sign_in(client, email, PASSWORD)).status == 303
    page = await client.get("/settings/password")
    assert page.status == 200
    fields = hidden_fields(await page.text())
    wrong = fields | {"current": WRONG, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    resp = await client.post("/settings/password", data=wrong, allow_redirects=False)
    assert resp.status == 403 and "current password is not right" in await resp.text()
    forged = fields | {
        "csrf": "forged",
        "current": PASSWORD,
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    }
    assert (await client.post("/settings/password", data=forged, allow_redirects=False)).status == 403
    right = fields | {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    resp = await client.post("/settings/password", data=right, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/account?done=password"
    page = await client.get(resp.headers["Location"], allow_redirects=False)
    assert page.status == 200 and "Your password is changed" in await page.text()  # this browser stays
    assert (await api.get("/me", token=cast.tok("clinician")))[0] == 401  # the app token ended
    assert (await login(api, email, NEW_PASSWORD))[0] == 200


async def test_r25_a_client_or_the_api_key_has_no_password_to_change(api, cast):
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    for token in (cast.tok("client"), cast.api_key):
        status, body = await api.put("/me/password", change, token=token)
        assert (status, body["error"]["code"]) == (403, "team_only")
    assert (await api.put("/me/password", change))[0] == 401


async def test_r25_changing_the_password_is_rate_limited_like_sign_in(api, cast, clock):
    next_window(clock)
    change = {"current_password": WRONG, "new_password": NEW_PASSWORD}
    for _ in range(10):
        assert (await api.put("/me/password", change, token=cast.tok("clinician")))[0] == 403
    resp = await api.client.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {cast.tok('clinician')}"},
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


# --- R25: reset by email ------------------------------------------------------------------------------


async def test_r25_password_reset_end_to_end_over_smtp(api, client, cast, smtp):
    who = cast.id("clinician")
    email = await email_of(who)
    status, before = await login(api, email, PASSWORD)
    assert status == 200
    trusted = before["device_token"]
    known = await api.post("/auth/password-reset", {"email": email.upper()})
    unknown = await api.post("/auth/password-reset", {"email": "nobody@example.org"})
    assert known == unknown and known[0] == 202  # the same answer for any address
    path = await mailed_link(client, smtp, email)
    assert [m.rcpt_tos for m in smtp.received] == [[email]]  # nothing to the unknown address
    [mail] = smtp.received
    assert "Reset your password" in str(mail.message["Subject"]) and "30 minutes" in text_of(mail)

    # A mail scanner opening the link changes nothing.
    for _ in range(2):
        page = await client.get(path)
        assert page.status == 200 and "Choose a new password" in await page.text()
    resp = await set_password_page(client, path, NEW_PASSWORD, "something else entirely")
    assert resp.status == 422 and "not the same" in await resp.text()
    resp = await set_password_page(client, path, "short")
    assert resp.status == 422 and "10 to 256" in await resp.text()
    resp = await set_password_page(client, path, NEW_PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == "/?notice=password_set"

    # Used up: a clear page, the same for any link that does not work.
    page = await client.get(path)
    assert page.status == 404 and "This link no longer works" in await page.text()
    bogus = await client.get("/reset/" + "x" * 43)
    assert bogus.status == 404 and await bogus.text() == await page.text()
    # Every session of the person ended; the new password works, the old one does not.
    status, body = await api.get("/me", token=cast.tok("clinician"))
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    assert (await login(api, email, PASSWORD))[0] == 401
    # The device trusted before the reset is trusted no more: it is given a new device token.
    status, after = await login(api, email, NEW_PASSWORD, device_token=trusted)
    assert status == 200 and after["device_token"] != trusted
    assert await AuditEvent.filter(action="auth.password_reset", target_id=str(who)).exists()


async def test_r25_the_reset_form_needs_its_csrf_token(api, client, cast, smtp):
    email = await email_of(cast.id("clinician"))
    await api.post("/auth/password-reset", {"email": email})
    path = await mailed_link(client, smtp, email)
    resp = await client.post(
        path,
        data={"csrf": "forged", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert (await login(api, email, NEW_PASSWORD))[0] == 401
    assert (await set_password_page(client, path, NEW_PASSWORD)).status == 303  # the link still works


async def test_r25_only_the_newest_reset_link_works_and_only_for_30_minutes(api, client, cast, smtp, clock):
    email = await email_of(cast.id("clinician"))
    await api.post("/auth/password-reset", {"email": email})
    older = await mailed_link(client, smtp, email)
    await api.post("/auth/password-reset", {"email": email})
    newer = await mailed_link(client, smtp, email)
    assert older != newer
    assert (await client.get(older)).status == 404
    assert (await client.get(newer)).status == 200
    clock.advance(RESET_TTL_S - 1)
    assert (await client.get(newer)).status == 200
    clock.advance(1)
    assert (await client.get(newer)).status == 404
    page = await client.get("/reset")
    fields = hidden_fields(await page.text()) | {"email": email}
    resp = await client.post("/reset", data=fields)  # asking again from the page
    assert resp.status == 200 and "is on its way" in await resp.text()
    assert (
        await set_password_page(client, await mailed_link(client, smtp, email), NEW_PASSWORD)
    ).status == 303


async def test_r25_reset_requests_are_rate_limited_per_address(api, cast, clock):
    next_window(clock, 3600)
    for _ in range(5):
        assert (await api.post("/auth/password-reset", {"email": "someone@example.org"}))[0] == 202
    resp = await api.client.post("/api/v1/auth/password-reset", json={"email": "someone@example.org"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0


async def test_r25_a_new_member_without_a_password_is_invited_by_email(api, client, cast, smtp, clock):
    email = "new.colleague@example.org"
    status, member = await api.post(
        "/team-members", {"name": "New Colleague", "email": email, "roles": ["clinician"]}, token=cast.api_key
    )
    assert status == 201 and member["active"] is True
    path = await mailed_link(client, smtp, email)
    [mail] = to(smtp, email)
    assert "invited" in str(mail.message["Subject"]) and "7 days" in text_of(mail)
    assert (await login(api, email, NEW_PASSWORD))[0] == 401
    page = await client.get(path)
    assert "Choose your password" in await page.text()
    assert (await set_password_page(client, path, NEW_PASSWORD)).status == 303
    status, body = await login(api, email, NEW_PASSWORD)
    assert status == 200 and body["participant"]["id"] == member["id"]

    # An invitation nobody answers expires after 7 days.
    late = "late.colleague@example.org"
    await api.post("/team-members", {"name": "Late", "email": late, "roles": ["biller"]}, token=cast.api_key)
    path = await mailed_link(client, smtp, late)
    clock.advance(INVITE_TTL_S)
    assert (await client.get(path)).status == 404


# --- R26: deactivation --------------------------------------------------------------------------------


async def test_r26_deactivation_ends_everything_and_keeps_the_history(api, client, cast, smtp):
    who = cast.id("clinician")
    email = await email_of(who)
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "see you Tuesday"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    status, app = await login(api, email, PASSWORD)
    await api.post("/devices", {"platform": "fcm", "token": "f" * 64, "app": "practice"}, token=app["token"])
    assert (await post_sign_in(client, email, PASSWORD)).status == 303
    await api.post("/auth/password-reset", {"email": email})
    pending = await mailed_link(client, smtp, email)  # a reset link asked for before, not used yet

    status, body = await api.delete(f"/team-members/{who}", token=cast.tok("owner"))
    assert status == 200 and body["id"] == who and body["active"] is False
    # Every token and session ends at once; the devices go.
    for token in (app["token"], cast.tok("clinician")):
        assert (await api.get("/me", token=token))[0] == 401
    assert (await client.get("/inbox", allow_redirects=False)).status == 303
    assert not await Device.filter(participant_id=who).exists()
    # Sign-in answers exactly like a wrong password, in the API and on the page.
    wrong = error_of(*await login(api, email, WRONG))
    assert error_of(*await login(api, email, PASSWORD)) == wrong
    client.session.cookie_jar.clear()
    assert await sign_in_page_text(client, email, PASSWORD) == await sign_in_page_text(client, email, WRONG)
    # The pending link ended with the rest, and no new reset email goes out.
    assert (await client.get(pending)).status == 404
    await api.post("/auth/password-reset", {"email": email})
    await drain(client)
    assert len(to(smtp, email)) == 1
    # Out of pickers and lists; listed with include_inactive.
    for token in (cast.tok("client"), cast.tok("owner")):
        status, body = await api.get("/recipients", token=token)
        assert status == 200 and who not in [p["id"] for p in body["items"]]
    _, body = await api.get("/team-members", token=cast.api_key)
    assert who not in [m["id"] for m in body["items"]]
    _, body = await api.get("/team-members?include_inactive=1", token=cast.api_key)
    assert [m["active"] for m in body["items"] if m["id"] == who] == [False]
    # Nobody can message them (the refusal names R26); what they wrote stays.
    status, body = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": "are you there?"}, token=cast.tok("client")
    )
    assert (status, body["error"]["code"], body["error"]["rule"]) == (403, "team_member_deactivated", "R26")
    status, body = await api.post("/conversations", {"participant_ids": [who]}, token=cast.tok("owner"))
    assert (status, body["error"]["rule"]) == (403, "R26")
    status, body = await api.get(f"/clients/{cast.id('client')}/transcripts", token=cast.tok("owner"))
    assert status == 200 and "see you Tuesday" in [m["body"] for m in body["items"]]
    assert await AuditEvent.filter(action="team_member.deactivate", target_id=str(who)).exists()

    # Reactivated: the password works again; nothing that ended comes back.
    status, body = await api.patch(f"/team-members/{who}", {"active": True}, token=cast.api_key)
    assert status == 200 and body["active"] is True
    assert (await login(api, email, PASSWORD))[0] == 200
    assert (await api.get("/me", token=app["token"]))[0] == 401
    assert (await client.get(pending)).status == 404
    assert await AuditEvent.filter(action="team_member.reactivate", target_id=str(who)).exists()


async def test_r26_a_deactivated_members_messages_stay_in_exports(api, client, cast):
    """What they wrote stays: in an export of everything, and in one scoped to the deactivated clinician
    (their clients' conversations, for whoever takes them over)."""
    who = cast.id("clinician")
    status, _ = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "see you Tuesday"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    assert (await api.delete(f"/team-members/{who}", token=cast.tok("owner")))[0] == 200
    for request in ({"scope": "all"}, {"scope": "clinician", "clinician_id": who}):
        status, made = await api.post(
            "/exports", request | {"require_password": True}, token=cast.tok("owner")
        )
        assert status == 202, made
        await drain(client)
        status, got = await api.get(f"/exports/{made['id']}", token=cast.tok("owner"))
        assert got["status"] == "ready", got
        status, data, _ = await download(client, made["id"], cast.tok("owner"))
        assert status == 200
        thread = by_people(open_zip(data, got["password"]))["Client Person, Clinician"]
        assert "] Clinician: see you Tuesday\n" in thread, request


async def test_r26_no_unread_email_goes_to_a_deactivated_member(api, client, cast, smtp, clock, config):
    who = cast.id("clinician2")
    status, _ = await api.post(
        "/conversations", {"participant_ids": [who], "body": "lunch?"}, token=cast.tok("owner")
    )
    assert status == 201
    assert (await api.delete(f"/team-members/{who}", token=cast.api_key))[0] == 200
    clock.advance(config.unread_email_delay_s + 1)
    await drain(client)
    assert to(smtp, await email_of(who)) == []


async def test_r26_the_last_owner_stays_and_a_manager_cannot_deactivate_an_owner(api, cast):
    owner = cast.id("owner")
    status, body = await api.delete(f"/team-members/{owner}", token=cast.tok("manager"))
    assert (status, body["error"]["code"]) == (403, "owner_only")
    status, body = await api.patch(f"/team-members/{owner}", {"active": False}, token=cast.tok("manager"))
    assert (status, body["error"]["code"]) == (403, "owner_only")
    # R29: an API key never touches an account owner's account, deactivation included.
    status, body = await api.delete(f"/team-members/{owner}", token=cast.api_key)
    assert (status, body["error"]["code"]) == (403, "owner_only")
    status, body = await api.delete(f"/team-members/{owner}", token=cast.tok("owner"))
    assert (status, body["error"]["code"], body["error"]["rule"]) == (409, "last_account_owner", "R26")
    assert (await api.get("/me", token=cast.tok("owner")))[0] == 200
    # A manager may deactivate other members, and a second owner makes the first one deactivatable.
    assert (await api.delete(f"/team-members/{cast.id('biller')}", token=cast.tok("manager")))[0] == 200
    status, second = await api.post(
        "/team-members",
        {
            "name": "Second Owner",
            "email": "second.owner@example.org",
            "roles": ["account_owner"],
            "password": PASSWORD,
        },
        token=cast.tok("owner"),
    )
    assert status == 201
    status, signed_in = await login(api, "second.owner@example.org", PASSWORD)
    assert status == 200
    second_token = signed_in["token"]
    assert (await api.delete(f"/team-members/{owner}", token=second_token))[0] == 200
    status, body = await api.delete(f"/team-members/{second['id']}", token=second_token)
    assert (status, body["error"]["code"]) == (409, "last_account_owner")


async def test_r26_another_practice_cannot_deactivate_or_see_a_member(api, cast, config, clock):
    other = await build_cast(api, config, clock, name="Another Practice")
    status, _ = await api.delete(f"/team-members/{cast.id('clinician')}", token=other.api_key)
    assert status == 404
    assert (await api.get("/me", token=cast.tok("clinician")))[0] == 200


# --- R24: every change to people and access is audited -----------------------------------------------


async def audit_rows(practice_id: int, action: str, after: int) -> list[tuple[int | None, str | None, dict]]:
    """(who, whom, what) of the practice's `action` rows written after row `after`."""
    rows = await AuditEvent.filter(practice_id=practice_id, action=action, id__gt=after).order_by("id")
    return [(r.actor_id, r.target_id, r.detail) for r in rows]


async def test_r24_people_and_access_changes_are_audited_with_who_whom_and_what_never_a_secret(
    api, client, cast, smtp
):
    owner, manager, supervisor = cast.id("owner"), cast.id("manager"), cast.id("supervisor")
    practice = (await Participant.get(id=owner)).practice_id
    before = (await AuditEvent.all().order_by("-id").first()).id  # the cast's own rows are not these
    # An invitation, and the password its link sets.
    email = "invited.member@example.org"
    status, invited = await api.post(
        "/team-members", {"name": "Invited", "email": email, "roles": ["clinician"]}, token=cast.tok("owner")
    )
    assert status == 201
    assert (
        await set_password_page(client, await mailed_link(client, smtp, email), NEW_PASSWORD)
    ).status == 303
    # Roles and the export flag (the owner), messaging (a manager), access to a client's profile.
    assert (
        await api.patch(
            f"/team-members/{manager}",
            {"roles": ["practice_manager", "clinician"], "can_export": True},
            token=cast.tok("owner"),
        )
    )[0] == 200
    biller = cast.id("biller")
    status, _ = await api.patch(
        f"/team-members/{biller}", {"messaging_enabled": False}, token=cast.tok("manager")
    )
    assert status == 200
    access = f"/clients/{cast.id('client')}/access/{supervisor}"
    assert (await api.put(access, token=cast.tok("manager")))[0] == 201
    assert (await api.delete(access, token=cast.tok("manager")))[0] == 200
    # A second factor, set up with the password.
    status, body = await api.post(
        f"/team-members/{cast.id('clinician')}/totp", {"password": PASSWORD}, token=cast.tok("clinician")
    )
    assert status == 200
    totp_secret = pyotp.parse_uri(body["provisioning_uri"]).secret

    assert await audit_rows(practice, "team_member.create", before) == [
        (owner, str(invited["id"]), {"roles": ["clinician"], "can_export": False, "invited": True})
    ]
    assert await audit_rows(practice, "auth.invitation_accepted", before) == [
        (invited["id"], str(invited["id"]), {})
    ]
    assert await audit_rows(practice, "team_member.update", before) == [
        (
            owner,
            str(manager),
            {
                "changed": ["can_export", "roles"],
                "roles": ["practice_manager", "clinician"],
                "can_export": True,
            },
        ),
        (manager, str(biller), {"changed": ["messaging_enabled"], "messaging_enabled": False}),
    ]
    assert await audit_rows(practice, "access.grant", before) == [
        (manager, str(cast.id("client")), {"team_member_id": supervisor})
    ]
    assert await audit_rows(practice, "access.withdraw", before) == [
        (manager, str(cast.id("client")), {"team_member_id": supervisor})
    ]
    assert await audit_rows(practice, "totp.enrol", before) == [
        (cast.id("clinician"), str(cast.id("clinician")), {})
    ]
    # Never a secret: not the password chosen, not the TOTP secret, not the link.
    every = " ".join(str(r.detail) for r in await AuditEvent.filter(practice_id=practice))
    assert NEW_PASSWORD not in every and totp_secret not in every and "/reset/" not in every


# --- lockout ----------------------------------------------------------------------------------------


async def test_a_lockout_answers_exactly_like_a_wrong_password(api, client, cast, clock):
    email = await email_of(cast.id("clinician"))
    next_window(clock)
    wrong = error_of(*await login(api, email, WRONG))
    wrong_page = await sign_in_page_text(client, email, WRONG)
    next_window(clock)
    for _ in range(LOCKOUT_AFTER):
        await login(api, email, WRONG)
    next_window(clock)
    assert error_of(*await login(api, email, PASSWORD)) == wrong  # locked: even the right password
    assert await sign_in_page_text(client, email, PASSWORD) == wrong_page
    assert wrong_page[0] == 401


# --- one address, several practices ------------------------------------------------------------------


async def test_team_addresses_are_unique_per_practice_and_sign_in_stays_unambiguous(
    api, client, cast, config, clock
):
    email = await email_of(cast.id("clinician"))
    other = await build_cast(api, config, clock, name="Another Practice")
    member = {"name": "Same Person", "email": email.upper(), "roles": ["clinician"]}
    # Another practice's member with this address is neither refused nor revealed.
    status, theirs = await api.post(
        "/team-members", member | {"password": "their own password"}, token=other.api_key
    )
    assert status == 201
    status, body = await api.post("/team-members", member | {"password": PASSWORD}, token=other.api_key)
    assert (status, body["error"]["code"]) == (409, "email_taken")  # within one practice: a conflict

    # Each password opens its own account.
    status, body = await login(api, email, PASSWORD)
    assert status == 200 and body["participant"]["id"] == cast.id("clinician")
    status, body = await login(api, email, "their own password")
    assert status == 200 and body["participant"]["id"] == theirs["id"]
    # The same password at both: the person names the practice.
    status, _ = await api.put(
        "/me/password",
        {"current_password": "their own password", "new_password": PASSWORD},
        token=body["token"],
    )
    assert status == 200
    status, body = await login(api, email, PASSWORD)
    assert (status, body["error"]["code"]) == (409, "practice_required")
    assert sorted(p["name"] for p in body["error"]["practices"]) == [
        "Another Practice",
        "Riverbend Counseling",
    ]
    other_practice = (await Participant.get(id=theirs["id"])).practice_id
    status, body = await login(api, email, PASSWORD, practice_id=other_practice)
    assert status == 200 and body["participant"]["id"] == theirs["id"]
    status, body = await login(api, email, PASSWORD, practice_id=2**40)
    assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    # The web sign-in asks which practice, then signs in to the one chosen.
    resp = await post_sign_in(client, email, PASSWORD)
    page = await resp.text()
    assert resp.status == 409 and "Another Practice" in page and 'name="practice_id"' in page
    fields = hidden_fields(page) | {"email": email, "password": PASSWORD, "practice_id": str(other_practice)}
    resp = await client.post("/", data=fields, allow_redirects=False)
    assert resp.status == 303
    status, body = await api.get("/me", headers={"Cookie": f"securemsg_session={session_cookie(client)}"})
    assert status == 200 and body["participant"]["id"] == theirs["id"]

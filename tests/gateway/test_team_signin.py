"""The team's sign-in pages: password then TOTP code, sessions that rotate, expire and end, TOTP enrolment."""

from __future__ import annotations

import pyotp
import pytest

from gateway.auth import SESSION_COOKIE
from gateway.keys import CTX
from inbox import accounts
from inbox.models import AuthToken, Participant
from inbox.sealed import open_totp
from tests.conftest import PASSWORD
from tests.gateway.pages import (
    code_for,
    email_of,
    hidden_fields,
    meta_csrf,
    post_code,
    post_sign_in,
    session_cookie,
)


async def enrol_totp(client, who_id: int) -> str:
    member = await Participant.get(id=who_id)
    uri = await accounts.start_totp_enrolment(client.server.app[CTX], member, issuer="test")
    return pyotp.parse_uri(uri).secret


def set_cookie_header(resp, name):
    return next(v for v in resp.headers.getall("Set-Cookie") if v.startswith(name + "="))


async def test_sign_in_page_and_its_form_nonce(client):
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 200
    html = await resp.text()
    nonce = hidden_fields(html)["csrf"]
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))["securemsg_form"].value == nonce
    assert 'autocomplete="current-password"' in html and '<label for="email">Email</label>' in html


async def test_sign_in_without_totp_starts_a_rotating_httponly_session(client, cast):
    email = await email_of(cast.id("clinician"))
    resp = await post_sign_in(client, email, PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == "/inbox"
    cookie = set_cookie_header(resp, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    first = session_cookie(client)
    row = await AuthToken.filter(participant_id=cast.id("clinician"), kind="session").first()
    assert row is not None and row.csrf_token and row.expires_at is not None

    page = await client.get("/inbox", allow_redirects=False)
    assert page.status == 200
    assert meta_csrf(await page.text()) == row.csrf_token
    again = await client.get("/", allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/inbox"

    # Signing in again in the same browser replaces the session: the old one stops working.
    await post_sign_in(client, email, PASSWORD)
    second = session_cookie(client)
    assert second and second != first
    status = (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {first}"})).status
    assert status == 401


async def test_cookies_are_secure_behind_https(aiohttp_client, config, clock):
    """Under https every cookie is Secure and named `__Host-…` (Path=/, no Domain), so neither a plain-http
    page nor another host of the domain can plant or overwrite one; the plain names mean nothing there."""
    from gateway.app import create_app, make_context

    secure = await aiohttp_client(
        create_app(config.with_overrides(public_url="https://msg.example.org"), clock=clock)
    )
    await accounts.create_practice(
        make_context(config, clock),
        name="Secure Practice",
        owner_name="Owner",
        owner_email="owner-https@example.org",
        owner_password=PASSWORD,
    )
    page = await secure.get("/")
    form_cookie = set_cookie_header(page, "__Host-securemsg_form")
    assert "Secure" in form_cookie and "Path=/" in form_cookie and "Domain" not in form_cookie
    nonce = hidden_fields(await page.text())["csrf"]
    # The test client does not send Secure cookies over plain http, so the browser's part is played here.
    resp = await secure.post(
        "/",
        data={"csrf": nonce, "email": "owner-https@example.org", "password": PASSWORD},
        headers={"Cookie": f"__Host-securemsg_form={nonce}"},
        allow_redirects=False,
    )
    assert resp.status == 303
    session_cookie = set_cookie_header(resp, "__Host-" + SESSION_COOKIE)
    assert "Secure" in session_cookie and "Path=/" in session_cookie and "HttpOnly" in session_cookie
    assert "Secure" in set_cookie_header(resp, "__Host-securemsg_device")
    assert not [v for v in resp.headers.getall("Set-Cookie") if v.startswith("securemsg_")]
    session = session_cookie.split(";", 1)[0].split("=", 1)[1]
    inbox = await secure.get("/inbox", headers={"Cookie": f"__Host-{SESSION_COOKIE}={session}"})
    assert inbox.status == 200 and str(inbox.url).endswith("/inbox")
    # A cookie under the plain name (planted over http, or by a sibling host) is not a session here.
    planted = await secure.get(
        "/inbox", headers={"Cookie": f"{SESSION_COOKIE}={session}"}, allow_redirects=False
    )
    assert planted.status == 303
    # The form's double-submit cookie under its plain name does not count either.
    refused = await secure.post(
        "/",
        data={"csrf": nonce, "email": "owner-https@example.org", "password": PASSWORD},
        headers={"Cookie": f"securemsg_form={nonce}"},
        allow_redirects=False,
    )
    assert refused.status == 403


async def test_sign_in_form_needs_its_nonce_and_the_right_password(client, cast):
    email = await email_of(cast.id("clinician"))
    await client.get("/")
    resp = await client.post("/", data={"email": email, "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403 and session_cookie(client) is None
    assert "The form had expired" in await resp.text()
    resp = await post_sign_in(client, email, "not the password")
    assert resp.status == 401 and session_cookie(client) is None
    assert "The email or password is not right." in await resp.text()


async def test_totp_sign_in_asks_for_the_code_and_counts_wrong_codes(client, cast, clock):
    who = cast.id("clinician")
    secret = await enrol_totp(client, who)
    email = await email_of(who)
    resp = await post_sign_in(client, email, PASSWORD, next_path="/inbox?conversation=7")
    code_page = resp.headers["Location"]
    assert resp.status == 303 and code_page == "/sign-in/code?next=%2Finbox%3Fconversation%3D7"
    assert session_cookie(client) is None
    ticket = client.session.cookie_jar.filter_cookies(client.make_url("/sign-in/code"))["securemsg_signin"]
    # The pending ticket proves a password, nothing more: it is no token.
    resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {ticket.value}"})
    assert resp.status == 401

    resp = await post_code(client, "000000" if code_for(secret, clock) != "000000" else "111111", code_page)
    assert resp.status == 401 and session_cookie(client) is None
    assert (await Participant.get(id=who)).failed_logins == 1
    # The page that says so still knows where to go afterwards.
    assert 'name="next" value="/inbox?conversation=7"' in await resp.text()

    resp = await post_code(client, code_for(secret, clock), code_page)
    assert resp.status == 303 and resp.headers["Location"] == "/inbox?conversation=7"
    assert session_cookie(client) is not None
    assert (await Participant.get(id=who)).failed_logins == 0


async def test_the_code_step_expires(client, cast, clock):
    who = cast.id("clinician")
    secret = await enrol_totp(client, who)
    await post_sign_in(client, await email_of(who), PASSWORD)
    clock.advance(6 * 60)
    fields = {"csrf": "x", "code": code_for(secret, clock)}
    resp = await client.post("/sign-in/code", data=fields, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/?notice=restart")
    assert session_cookie(client) is None


async def test_ten_wrong_codes_lock_the_account_on_the_page_and_in_the_api(client, api, cast, clock):
    who = cast.id("clinician")
    secret = await enrol_totp(client, who)
    email = await email_of(who)
    good = code_for(secret, clock)
    bad = "000000" if good != "000000" else "111111"
    await post_sign_in(client, email, PASSWORD)
    for _ in range(5):
        assert (await post_code(client, bad)).status == 401
    clock.advance(301)  # past the rate limit's window (a separate guard), so the lockout is what shows
    good = code_for(secret, clock)
    for _ in range(5):  # the API's second factor counts towards the same lockout
        status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD, "otp": bad})
        assert status == 401 and body["error"]["code"] == "invalid_otp"
    status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD, "otp": good})
    assert status == 401 and body["error"]["code"] == "invalid_credentials"
    resp = await post_sign_in(client, email, PASSWORD)
    # Locked: the same page as a wrong password (R26's "exactly as a wrong password" for lockouts too).
    assert resp.status == 401 and "The email or password is not right." in await resp.text()
    clock.advance(15 * 60 + 1)
    status, _ = await api.post(
        "/auth/login", {"email": email, "password": PASSWORD, "otp": code_for(secret, clock)}
    )
    assert status == 200


async def test_sessions_expire(client, cast, config, clock):
    await post_sign_in(client, await email_of(cast.id("clinician")), PASSWORD)
    assert (await client.get("/inbox", allow_redirects=False)).status == 200
    clock.advance(config.session_ttl_s + 1)
    resp = await client.get("/inbox?conversation=3", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?next=%2Finbox%3Fconversation%3D3"
    assert (await client.get("/api/v1/me")).status == 401


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, cast):
    await post_sign_in(client, await email_of(cast.id("clinician")), PASSWORD)
    token = session_cookie(client)
    page = await client.get("/inbox")
    csrf = hidden_fields(await page.text())["csrf"]
    resp = await client.post("/sign-out", data={"csrf": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/inbox", allow_redirects=False)).status == 200
    resp = await client.post("/sign-out", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?notice=signed_out"
    assert session_cookie(client) is None
    resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"],
)
async def test_sign_in_never_redirects_off_site(client, cast, next_path):
    resp = await post_sign_in(client, await email_of(cast.id("clinician")), PASSWORD, next_path=next_path)
    assert resp.status == 303 and resp.headers["Location"] == "/inbox"


async def test_a_client_session_never_opens_the_team_inbox(client, cast, config, clock):
    from gateway.app import make_context

    client_person = await Participant.get(id=cast.id("client"))
    token, _ = await accounts.issue_token(make_context(config, clock), client_person, "session", csrf=True)
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    resp = await client.get("/inbox", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/?next=")


# --- TOTP enrolment -----------------------------------------------------------------------------------


async def test_totp_enrolment_stays_pending_until_a_code_verifies(client, cast, clock):
    who = cast.id("clinician")
    await post_sign_in(client, await email_of(who), PASSWORD)
    page = await client.get("/settings/two-step")
    html = await page.text()
    assert page.status == 200 and 'class="qr"' in html and "<path" in html
    fields = hidden_fields(html)
    assert not (await Participant.get(id=who)).totp_enabled

    wrong = dict(fields, code="12345")
    resp = await client.post("/settings/two-step", data=wrong, allow_redirects=False)
    assert resp.status == 422 and not (await Participant.get(id=who)).totp_enabled

    other_secret = pyotp.random_base32()
    forged = dict(fields, secret=other_secret, code=pyotp.TOTP(other_secret).at(clock.now()))
    resp = await client.post("/settings/two-step", data=forged, allow_redirects=False)
    assert resp.status == 422 and "The set-up had expired" in await resp.text()
    assert not (await Participant.get(id=who)).totp_enabled

    ok = dict(fields, code=pyotp.TOTP(fields["secret"]).at(clock.now()), password=PASSWORD)
    resp = await client.post("/settings/two-step", data=ok, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/settings/two-step?done=1"
    member = await Participant.get(id=who)
    ctx = client.server.app[CTX]
    assert member.totp_enabled and open_totp(ctx.keyring, member) == fields["secret"]
    done = await client.get("/settings/two-step?done=1")
    assert "Two-step sign-in is now on." in await done.text()


async def test_totp_enrolment_form_is_bound_to_its_session(client, aiohttp_client, cast, clock):
    who = cast.id("clinician")
    email = await email_of(who)
    await post_sign_in(client, email, PASSWORD)
    fields = hidden_fields(await (await client.get("/settings/two-step")).text())
    # The same person in another browser cannot confirm the first browser's pending secret.
    other = await aiohttp_client(client.server)  # a second browser: its own cookie jar
    await post_sign_in(other, email, PASSWORD)
    own = hidden_fields(await (await other.get("/settings/two-step")).text())
    stolen = dict(
        fields, csrf=own["csrf"], code=pyotp.TOTP(fields["secret"]).at(clock.now()), password=PASSWORD
    )
    resp = await other.post("/settings/two-step", data=stolen, allow_redirects=False)
    assert resp.status == 422 and not (await Participant.get(id=who)).totp_enabled


async def test_the_api_enrolment_still_turns_totp_on_at_once(api, cast):
    status, body = await api.post(
        f"/team-members/{cast.id('clinician')}/totp", {"password": PASSWORD}, token=cast.tok("clinician")
    )
    assert status == 200 and body["provisioning_uri"].startswith("otpauth://totp/")
    assert (await Participant.get(id=cast.id("clinician"))).totp_enabled


# --- R24 audit and rate limits, as for the API's sign-in -----------------------------------------------


async def actions_for(practice_member_id: int) -> list[tuple[str, dict]]:
    from inbox.models import AuditEvent

    member = await Participant.get(id=practice_member_id)
    # By id, unsealed rows too: a sign-in's row commits with its session and is sealed a moment later.
    rows = await AuditEvent.filter(practice_id=member.practice_id).order_by("id")
    return [(r.action, r.detail) for r in rows if r.action.startswith(("auth.", "totp."))]


async def test_r24_page_sign_ins_sign_outs_and_enrolment_are_audited(client, cast, clock):
    who = cast.id("clinician")
    email = await email_of(who)
    await post_sign_in(client, email, "not the password")
    await post_sign_in(client, email, PASSWORD)
    page = await client.get("/settings/two-step")
    fields = hidden_fields(await page.text())
    fields["code"] = pyotp.TOTP(fields["secret"]).at(clock.now())
    fields["password"] = PASSWORD
    assert (await client.post("/settings/two-step", data=fields, allow_redirects=False)).status == 303
    clock.advance(30)  # R30: the code that confirmed the set-up cannot also sign in
    csrf = hidden_fields(await (await client.get("/inbox")).text())["csrf"]
    await client.post("/sign-out", data={"csrf": csrf}, allow_redirects=False)
    await post_sign_in(client, email, PASSWORD)
    await post_code(client, "000000" if code_for(fields["secret"], clock) != "000000" else "111111")
    await post_code(client, code_for(fields["secret"], clock))
    assert await actions_for(who) == [
        ("auth.login_failed", {"reason": "invalid_credentials"}),
        ("auth.login", {}),
        ("totp.enrol", {}),
        ("auth.logout", {}),
        ("auth.login_failed", {"reason": "invalid_otp"}),
        ("auth.login", {}),
    ]


async def test_page_sign_in_shares_the_apis_rate_limit(client, cast):
    email = await email_of(cast.id("clinician"))
    for _ in range(10):
        assert (await post_sign_in(client, email, "not the password")).status == 401
    resp = await post_sign_in(client, email, "not the password")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Too many sign-in attempts. Please try again in" in await resp.text()
    assert_security_headers_kept(resp)


def assert_security_headers_kept(resp):
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]

"""The client portal and its links, end to end over real SMTP on loopback (R16–R18, R4, R8, R14, R20).

The browser is aiohttp's test client with its cookie jar; the emails are read from the FakeSmtp.
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from gateway.app import create_app
from gateway.auth import PORTAL_COOKIE
from gateway.portal_session import FORM_COOKIE
from gateway.portal_signin import SIGNIN_PER_ADDRESS, SIGNIN_PER_IP
from inbox import outbox
from inbox.models import AuthToken, LinkToken, Message, OutboxJob
from tests.conftest import Api, build_cast
from tests.gateway.mail_helpers import (
    PRACTICE,
    client_msg_id_in,
    csrf_in,
    drain,
    email_of,
    link_in,
    mail_config,
    path_of,
    to,
)
from tests.gateway.test_websocket import connect, next_of

CANARY = "CANARY-51c2 the results from my biopsy"
REPLY = "REPLY-88a1 thank you, I will call the lab :thumbsup:"


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def page(client, path, **kw):
    resp = await client.get(path, allow_redirects=False, **kw)
    return resp, await resp.text()


async def post_form(client, path, data, **kw):
    resp = await client.post(path, data=data, allow_redirects=False, **kw)
    return resp, await resp.text()


async def message_client(api, cast, body=CANARY, to_whom="client"):
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id(to_whom)], "body": body}, token=cast.tok("clinician")
    )
    assert status == 201, conv
    return conv


async def emailed_link(client, smtp, address):
    await drain(client)
    mails = to(smtp, address)
    assert mails, f"no email to {address}"
    return path_of(link_in(mails[-1]))


def newest_in(html):
    """The id of the newest message the conversation page shows (its script marks read up to it)."""
    found = re.search(r'data-newest="(\d+)"', html)
    assert found, "no data-newest on the page"
    return found.group(1)


async def unread_of(api, cast, who="client"):
    status, me = await api.get("/me", token=cast.tok(who))
    assert status == 200
    return me["unread_total"]


def strip_tokens(html):
    """The same page for two visitors differs only in the random CSRF value."""
    return re.sub(r'value="[A-Za-z0-9_-]{20,}"', 'value=""', html)


async def ask_for_signin(client, email, **kw):
    _, form_page = await page(client, "/portal/sign-in", **kw)
    return await post_form(client, "/portal/sign-in", {"csrf": csrf_in(form_page), "email": email}, **kw)


# --- the whole path --------------------------------------------------------------------------------------


async def test_r16_r18_send_email_link_read_reply_and_the_clinician_sees_it(client, api, cast, smtp, clock):
    clinician_ws = await connect(client, cast.tok("clinician"))
    conv = await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    assert link.startswith("/portal/m/")

    resp, _ = await page(client, link)
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"
    cookie = resp.cookies[PORTAL_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]

    resp, html = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 200
    assert CANARY in html and "Clinician" in html
    assert "text/html" in resp.headers["Content-Type"]
    # Once the page is seen, its script marks it read, and the clinician sees that live (R15).
    resp, _ = await post_form(
        client, f"/portal/c/{conv['id']}/read", {"csrf": csrf_in(html), "up_to": newest_in(html)}
    )
    assert resp.status == 204
    read = await next_of(clinician_ws, "conversation.read")
    assert read["participant_id"] == cast.id("client")

    resp, _ = await post_form(
        client,
        f"/portal/c/{conv['id']}",
        {"csrf": csrf_in(html), "client_msg_id": client_msg_id_in(html), "body": REPLY},
    )
    assert resp.status == 303
    created = await next_of(clinician_ws, "message.created")
    assert created["message"]["body"] == REPLY and created["message"]["sender_id"] == cast.id("client")
    status, msgs = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("clinician"))
    assert status == 200 and msgs["items"][-1]["body"] == REPLY
    assert msgs["items"][-1]["body_html"].endswith("\N{THUMBS UP SIGN}")

    resp, html = await page(client, resp.headers["Location"].split("#")[0])
    assert "thank you, I will call the lab \N{THUMBS UP SIGN}" in html
    await clinician_ws.close()

    # The clinician does not read the reply: after the delay, exactly one unread email.
    clock.advance(600)
    await drain(client)
    clock.advance(3600)
    await drain(client)
    [unread] = to(smtp, await email_of(cast.id("clinician")))
    assert "unread secure message" in unread.message["Subject"]
    assert b"REPLY-88a1" not in unread.raw and b"CANARY" not in unread.raw


async def test_reply_resent_with_the_same_form_is_stored_once(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    _, html = await page(client, f"/portal/c/{conv['id']}")
    form = {"csrf": csrf_in(html), "client_msg_id": client_msg_id_in(html), "body": REPLY}
    first, _ = await post_form(client, f"/portal/c/{conv['id']}", form)
    again, _ = await post_form(client, f"/portal/c/{conv['id']}", form)
    assert first.headers["Location"] == again.headers["Location"]
    assert await Message.filter(conversation_id=conv["id"], sender_id=cast.id("client")).count() == 1


async def test_portal_reply_without_the_csrf_token_is_refused(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    for form in ({"body": REPLY}, {"body": REPLY, "csrf": "x" * 32}):
        resp, html = await post_form(client, f"/portal/c/{conv['id']}", form)
        assert resp.status == 403 and "Please try again" in html
    assert await Message.filter(sender_id=cast.id("client")).count() == 0


async def test_r12_empty_reply_shows_the_error_and_keeps_the_page(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    _, html = await page(client, f"/portal/c/{conv['id']}")
    resp, html = await post_form(
        client, f"/portal/c/{conv['id']}", {"csrf": csrf_in(html), "body": "   ", "client_msg_id": "m1"}
    )
    assert resp.status == 422 and "cannot be empty" in html and CANARY in html


async def test_portal_pages_need_a_session(client):
    """To the sign-in page, which comes back to a conversation, "New message" or Notifications afterwards."""
    for path, back in (
        ("/portal", ""),
        ("/portal/c/1", "?next=%2Fportal%2Fc%2F1"),
        ("/portal/new", "?next=%2Fportal%2Fnew"),
        ("/portal/notifications", "?next=%2Fportal%2Fnotifications"),
        ("/portal/sign-out", ""),
    ):
        resp, _ = await page(client, path)
        assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in" + back


async def test_portal_lists_the_persons_conversations_with_unread_counts(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await api.post(f"/conversations/{conv['id']}/messages", {"body": "two"}, token=cast.tok("clinician"))
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    await page(client, link)
    resp, html = await page(client, "/portal")
    assert resp.status == 200
    assert f'href="/portal/c/{conv["id"]}"' in html and "Clinician" in html
    assert '<span class="badge">2' in html
    assert PRACTICE in html


async def test_another_conversation_is_not_found_in_the_portal(client, api, cast, smtp):
    conv = await message_client(api, cast)
    _, team = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("clinician2")], "body": "x"},
        token=cast.tok("clinician"),
    )
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    for path in (f"/portal/c/{team['id']}", "/portal/c/999999", "/portal/c/abc"):
        resp, html = await page(client, path)
        assert resp.status == 404 and "no such conversation" in html
    resp, _ = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 200


async def test_r14_r20_removed_messages_and_the_away_banner(client, api, cast, smtp):
    conv = await message_client(api, cast, "first")
    _, sent = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": CANARY}, token=cast.tok("clinician")
    )
    await api.delete(f"/messages/{sent['message']['id']}", token=cast.tok("clinician"))
    await api.put(
        "/me/away", {"enabled": True, "message": "Back on Monday 9am."}, token=cast.tok("clinician")
    )
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    _, html = await page(client, f"/portal/c/{conv['id']}")
    assert "This message was removed" in html and CANARY not in html
    assert "Back on Monday 9am." in html and "Clinician (Away)" in html
    banner = html[html.index('class="banner"') : html.index("</div>", html.index('class="banner"'))]
    assert "<button" not in banner  # nothing to dismiss it with (R20)
    _, listing = await page(client, "/portal")
    assert "Clinician (Away)" in listing and "Clinician is away" in listing


async def test_pages_follow_the_csp_no_inline_script_or_style(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    for path in (f"/portal/c/{conv['id']}", "/portal", "/portal/sign-in"):
        resp, html = await page(client, path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Referrer-Policy"] == "no-referrer"
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
        assert " style=" not in html and "<style" not in html
        assert 'name="viewport"' in html
    # One stylesheet for the portal and the team pages (issue 5); portal.js and the shared live.js.
    assets = (
        ("/static/app.css", "text/css"),
        ("/static/portal.js", "javascript"),
        ("/static/live.js", "javascript"),
    )
    for asset, kind in assets:
        resp = await client.get(asset)
        assert resp.status == 200 and kind in resp.headers["Content-Type"]


async def test_portal_cookie_is_secure_when_the_public_url_is_https(
    aiohttp_client, db_url, tmp_path, smtp, clock
):
    config = mail_config(db_url, tmp_path, smtp, public_url="https://portal.test")
    client = await aiohttp_client(create_app(config, clock=clock))
    cast = await build_cast(Api(client), config, clock)
    await message_client(Api(client), cast)
    await drain(client)
    [mail] = to(smtp, await email_of(cast.id("client")))
    token = re.search(r"https://portal\.test/portal/m/([A-Za-z0-9_-]+)", mail.message.as_string())
    assert token
    resp, _ = await page(client, f"/portal/m/{token.group(1)}")
    # Under https the name carries the `__Host-` prefix: Secure, Path=/, no Domain, enforced by browsers.
    cookie = resp.cookies["__Host-" + PORTAL_COOKIE]
    assert resp.status == 303 and cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]
    assert PORTAL_COOKIE not in resp.cookies


async def test_r16_one_email_about_two_conversations_opens_the_list(client, api, cast, smtp):
    await message_client(api, cast)
    status, _ = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "invoice"},
        token=cast.tok("biller"),
    )
    assert status == 201
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    assert len(smtp.received) == 1
    resp, _ = await page(client, link)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    _, html = await page(client, "/portal")
    assert html.count('class="conversation unread"') == 2


# --- notification links ------------------------------------------------------------------------------------


async def test_r18_notification_link_works_for_24_hours_then_offers_instant_sign_in(
    client, api, cast, smtp, clock
):
    await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    clock.advance(24 * 3600 - 60)
    resp, _ = await page(client, link)
    assert resp.status == 303
    # The session this made ends with the link, not 12 hours later (R18).
    assert int(resp.cookies[PORTAL_COOKIE]["max-age"]) <= 60
    clock.advance(61)
    resp, _ = await page(client, "/portal")
    assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in"
    resp, html = await page(client, link)
    assert resp.status == 404 and PORTAL_COOKIE not in resp.cookies
    assert "This link no longer works" in html and 'action="/portal/sign-in"' in html


async def test_r18_expired_forged_tampered_and_foreign_links_get_the_same_page(
    client, api, cast, smtp, clock
):
    await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    token = link.rsplit("/", 1)[1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    signin_shaped = f"/portal/s/{token}"  # a notification token is no sign-in link
    pages = []
    for path in (f"/portal/m/{tampered}", "/portal/m/nope", "/portal/m/" + "x" * 43, signin_shaped):
        resp, html = await page(client, path)
        assert resp.status == 404
        pages.append(strip_tokens(html))
    clock.advance(24 * 3600 + 1)
    resp, html = await page(client, link)
    pages.append(strip_tokens(html))
    assert len(set(pages)) == 1
    assert "Client Person" not in pages[0] and PRACTICE not in pages[0]


async def test_r4_turning_the_client_off_ends_links_and_sessions_at_once(client, api, cast, smtp):
    conv = await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    resp, _ = await page(client, link)
    assert resp.status == 303
    status, _ = await api.patch(f"/clients/{cast.id('client')}", {"portal_access": False}, token=cast.api_key)
    assert status == 200
    resp, _ = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 303 and resp.headers["Location"].startswith("/portal/sign-in")
    resp, _ = await page(client, link)
    assert resp.status == 404
    assert await LinkToken.filter(participant_id=cast.id("client"), revoked_at=None).count() == 0
    # Turned back on, the old link stays dead: "off" ended it.
    await api.patch(f"/clients/{cast.id('client')}", {"portal_access": True}, token=cast.api_key)
    resp, _ = await page(client, link)
    assert resp.status == 404


async def test_r4_r10_a_contacts_link_dies_with_the_clients_messaging(client, api, cast, smtp):
    await message_client(api, cast, to_whom="contact")
    link = await emailed_link(client, smtp, await email_of(cast.id("contact")))
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key)
    resp, _ = await page(client, link)
    assert resp.status == 404


async def test_opening_a_link_ends_the_previous_portal_session_in_this_browser(client, api, cast, smtp):
    await message_client(api, cast)
    await message_client(api, cast, to_whom="client2")
    await drain(client)
    first = path_of(link_in(to(smtp, await email_of(cast.id("client")))[0]))
    second = path_of(link_in(to(smtp, await email_of(cast.id("client2")))[0]))
    await page(client, first)
    await page(client, second)
    sessions = await AuthToken.filter(kind="session", participant_id=cast.id("client"))
    assert [s.revoked_at is not None for s in sessions] == [True]


# --- POST /api/v1/auth/magic ------------------------------------------------------------------------------


async def test_r18_auth_magic_exchanges_a_link_for_an_app_token(client, api, cast, smtp):
    conv = await message_client(api, cast)
    token = (await emailed_link(client, smtp, await email_of(cast.id("client")))).rsplit("/", 1)[1]
    status, body = await api.post("/auth/magic", {"token": token})
    assert status == 200
    assert body["participant"]["id"] == cast.id("client") and body["conversation_id"] == conv["id"]
    status, me = await api.get("/me", token=body["token"])
    assert status == 200 and me["participant"]["id"] == cast.id("client")
    # Not used up: the same email opened on the desktop afterwards still works (tests/gateway/test_links_any_device.py).
    resp, _ = await page(client, f"/portal/m/{token}")
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"


@pytest.mark.parametrize("body", [{"token": "forged-token-forged-token"}, {"token": ""}, {"token": 5}, {}])
async def test_r18_auth_magic_refuses_forged_and_malformed_input(client, api, cast, body):
    status, err = await api.post("/auth/magic", body)
    assert status in (401, 422) and "error" in err


async def test_r18_auth_magic_refuses_expired_and_revoked_links(client, api, cast, smtp, clock):
    await message_client(api, cast)
    await message_client(api, cast, to_whom="client2")
    await drain(client)
    expired = link_in(to(smtp, await email_of(cast.id("client")))[0]).rsplit("/", 1)[1]
    revoked = link_in(to(smtp, await email_of(cast.id("client2")))[0]).rsplit("/", 1)[1]
    await api.patch(f"/clients/{cast.id('client2')}", {"messaging_enabled": False}, token=cast.api_key)
    clock.advance(24 * 3600 + 1)
    for token in (expired, revoked):
        status, _ = await api.post("/auth/magic", {"token": token})
        assert status == 401


# --- Instant Sign In ---------------------------------------------------------------------------------------


async def test_r18_sign_in_answer_is_the_same_for_known_and_unknown_addresses(client, api, cast, smtp):
    known = await email_of(cast.id("client"))
    answers = []
    for address in (known, "nobody-here@example.net", known.upper()):
        resp, html = await ask_for_signin(client, address)
        answers.append((resp.status, strip_tokens(html)))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 200 and "If that address is known to us" in answers[0][1]
    # Each request was one outbox row, whether or not it matched anybody.
    assert await OutboxJob.filter(kind=outbox.SIGNIN_EMAIL).count() == 3
    await drain(client)
    assert [m.rcpt_tos for m in smtp.received] == [[known]]  # the two for the client: only the newest
    assert not to(smtp, "nobody-here@example.net")


async def test_r18_scanner_get_does_not_burn_the_sign_in_link_and_it_works_once(client, api, cast, smtp):
    await ask_for_signin(client, await email_of(cast.id("client")))
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    assert link.startswith("/portal/s/")
    [mail] = smtp.received
    assert mail.message["Subject"] == f"Your sign-in link for {PRACTICE}"
    for _ in range(3):  # a mail scanner, a preview, the person
        resp, html = await page(client, link)
        assert resp.status == 200 and PORTAL_COOKIE not in resp.cookies
        assert "<button" in html and "Sign in" in html
    resp, _ = await post_form(client, link, {"csrf": csrf_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    assert PORTAL_COOKIE in resp.cookies
    resp, _ = await page(client, "/portal")
    assert resp.status == 200
    resp, _ = await post_form(client, link, {"csrf": csrf_in(html)})
    assert resp.status == 404  # used up
    resp, _ = await page(client, link)
    assert resp.status == 404


async def test_r18_sign_in_button_needs_its_form_token(client, api, cast, smtp):
    await ask_for_signin(client, await email_of(cast.id("client")))
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    resp, _ = await post_form(client, link, {"csrf": "made-up-value-made-up-value"})
    assert resp.status == 403
    client.session.cookie_jar.clear()
    resp, _ = await post_form(client, link, {})
    assert resp.status == 403
    resp, html = await page(client, link)  # still good after the forged attempts
    assert resp.status == 200
    resp, _ = await post_form(client, link, {"csrf": csrf_in(html)})
    assert resp.status == 303


async def test_r18_only_the_newest_sign_in_link_works(client, api, cast, smtp):
    address = await email_of(cast.id("client"))
    await ask_for_signin(client, address)
    older = await emailed_link(client, smtp, address)
    await ask_for_signin(client, address)
    newer = await emailed_link(client, smtp, address)
    assert older != newer
    resp, _ = await page(client, older)
    assert resp.status == 404
    resp, _ = await page(client, newer)
    assert resp.status == 200


async def test_r18_sign_in_link_works_for_15_minutes(client, api, cast, smtp, clock):
    await ask_for_signin(client, await email_of(cast.id("client")))
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    assert "15 minutes" in smtp.received[0].message.get_body(("plain",)).get_content()
    clock.advance(15 * 60 - 1)
    resp, html = await page(client, link)
    assert resp.status == 200
    clock.advance(2)
    resp, _ = await post_form(client, link, {"csrf": csrf_in(html)})
    assert resp.status == 404


async def test_r4_no_sign_in_link_for_a_client_without_portal_access(client, api, cast, smtp):
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key)
    resp, html = await ask_for_signin(client, await email_of(cast.id("client")))
    assert resp.status == 200 and "If that address is known to us" in html
    await drain(client)
    assert smtp.received == []


async def test_r18_sign_in_requests_are_rate_limited_per_address(client, api, cast, smtp, clock):
    address = await email_of(cast.id("client"))
    limit, window = SIGNIN_PER_ADDRESS
    for _ in range(limit):
        resp, _ = await ask_for_signin(client, address)
        assert resp.status == 200
    resp, html = await ask_for_signin(client, address)
    assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= window
    assert "Too many sign-in requests" in html
    # An unknown address is limited the same way: a 429 tells nothing either.
    for _ in range(limit):
        await ask_for_signin(client, "stranger@example.net")
    resp, _ = await ask_for_signin(client, "stranger@example.net")
    assert resp.status == 429
    clock.advance(window)
    resp, _ = await ask_for_signin(client, address)
    assert resp.status == 200


async def test_r18_a_stranger_cannot_use_up_a_clients_sign_in_quota(
    aiohttp_client, db_url, tmp_path, smtp, clock
):
    # Behind a reverse proxy (played by the test client on 127.0.0.1), so that two people can ask.
    proxy = (ipaddress.ip_network("127.0.0.1/32"),)
    config = mail_config(db_url, tmp_path, smtp, trusted_proxies=proxy)
    client = await aiohttp_client(create_app(config, clock=clock))
    cast = await build_cast(Api(client), config, clock)
    address = await email_of(cast.id("client"))
    stranger, own = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.20"}
    limit, _ = SIGNIN_PER_ADDRESS
    for _ in range(limit):
        resp, _ = await ask_for_signin(client, address, headers=stranger)
        assert resp.status == 200
    resp, _ = await ask_for_signin(client, address, headers=stranger)
    assert resp.status == 429
    await drain(client)
    before = len(to(smtp, address))
    resp, html = await ask_for_signin(client, address, headers=own)  # the client, from their own phone
    assert resp.status == 200 and "Too many" not in html
    await drain(client)
    assert len(to(smtp, address)) == before + 1


async def test_r18_sign_in_requests_are_rate_limited_per_ip(client, api, cast, smtp):
    limit, _ = SIGNIN_PER_IP
    for n in range(limit):
        resp, _ = await ask_for_signin(client, f"someone{n}@example.net")
        assert resp.status == 200
    resp, _ = await ask_for_signin(client, "one-more@example.net")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_sign_in_form_needs_its_form_token_and_an_address(client, api, cast):
    resp, _ = await post_form(client, "/portal/sign-in", {"email": "a@example.net", "csrf": "z" * 32})
    assert resp.status == 403
    _, html = await page(client, "/portal/sign-in")
    resp, html = await post_form(client, "/portal/sign-in", {"email": " ", "csrf": csrf_in(html)})
    assert resp.status == 422 and "Enter your email address" in html
    cookie = [c for c in client.session.cookie_jar if c.key == FORM_COOKIE]
    assert cookie and cookie[0]["httponly"]


async def test_sign_out_ends_the_session(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    _, html = await page(client, f"/portal/c/{conv['id']}")
    resp, _ = await post_form(client, "/portal/sign-out", {"csrf": "wrong"})
    assert resp.status == 403
    resp, _ = await post_form(client, "/portal/sign-out", {"csrf": csrf_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in?signed_out=1"
    resp, _ = await page(client, "/portal")
    assert resp.status == 303
    session = await AuthToken.get(kind="session", participant_id=cast.id("client"))
    assert session.revoked_at is not None


# --- R15/R17: only the portal itself marks read -----------------------------------------------------------


async def test_r15_a_get_from_another_site_shows_the_conversation_but_does_not_mark_it_read(
    client, api, cast, smtp
):
    """Another site could otherwise clear a client's unread state (an <img> or iframe on /portal/c/{id})
    and so cancel the email that would have told them (R17)."""
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {}):
        resp, html = await page(client, f"/portal/c/{conv['id']}", headers=headers)
        assert resp.status == 200 and CANARY in html
        assert await unread_of(api, cast) == 1, headers
    # Following a link inside the portal (or the page's script re-reading itself) is same-origin: read.
    resp, _ = await page(client, f"/portal/c/{conv['id']}", headers={"Sec-Fetch-Site": "same-origin"})
    assert resp.status == 200
    assert await unread_of(api, cast) == 0


async def test_r15_the_pages_read_post_needs_the_session_csrf_token(client, api, cast, smtp):
    conv = await message_client(api, cast)
    await page(client, await emailed_link(client, smtp, await email_of(cast.id("client"))))
    _, html = await page(client, f"/portal/c/{conv['id']}")
    newest = newest_in(html)
    for form in ({"up_to": newest}, {"up_to": newest, "csrf": "x" * 32}):
        resp, _ = await post_form(client, f"/portal/c/{conv['id']}/read", form)
        assert resp.status == 403
    assert await unread_of(api, cast) == 1
    # Not a message of this conversation, or a conversation of someone else's: 404, nothing read.
    other = await message_client(api, cast, body="for the other client", to_whom="client2")
    for path, up_to in (
        (f"/portal/c/{conv['id']}/read", "99999999"),
        (f"/portal/c/{other['id']}/read", newest),
    ):
        resp, _ = await post_form(client, path, {"csrf": csrf_in(html), "up_to": up_to})
        assert resp.status == 404
    assert await unread_of(api, cast) == 1 and await unread_of(api, cast, "client2") == 1
    resp, _ = await post_form(
        client, f"/portal/c/{conv['id']}/read", {"csrf": csrf_in(html), "up_to": newest}
    )
    assert resp.status == 204
    assert await unread_of(api, cast) == 0

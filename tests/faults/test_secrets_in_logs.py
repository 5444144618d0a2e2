"""No token, link, password or secret is ever logged: a full flow with every logger captured at DEBUG.

The flow issues every kind of secret the system has — the practice API key, bearer tokens from sign-in and
from a magic link, the web inbox's session cookie, portal session cookies, CSRF tokens, notification links and Instant Sign In links from
real emails, a TOTP secret, a trusted-device token, a webhook secret, an export's password — and uses each; it also sends wrong passwords and forged
tokens. Afterwards not one of them appears in any log record of any logger (the loggers of the test's own
fake servers aside), nor any device token in full.
"""

from __future__ import annotations

import pyotp
import pytest

from gateway.auth import PORTAL_COOKIE, SESSION_COOKIE
from gateway.keys import CTX
from gateway.metrics import METRICS
from gateway.team_signin import DEVICE_COOKIE
from tests.conftest import PASSWORD
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.faults.system import CLIENT_MSG_ID, CSRF, Logs, Receiver, drain, links_in
from tests.gateway.pages import cookie, meta_csrf, post_sign_in

pytestmark = pytest.mark.slow

APNS_DEVICE = "b" * 64
FCM_DEVICE = "fcm-log-test:APA91b" + "q" * 140


async def team_email(api, cast, who: str) -> str:
    _, body = await api.get("/team-members", token=cast.api_key)
    return next(m["email"] for m in body["items"] if m["id"] == cast.id(who))


def form_field(pattern, html: str) -> str:
    found = pattern.search(html)
    assert found, "field not on the page"
    return found.group(1)


async def test_no_token_link_or_secret_is_logged(
    client, api, cast, smtp: FakeSmtp, fake_apns: FakeApns, fake_fcm: FakeFcm, receiver: Receiver, logs: Logs
):
    secrets: dict[str, str] = {"api key": cast.api_key, "password": PASSWORD}
    secrets |= {f"bearer of {who}": tok for who, tok in cast.tokens.items()}
    email = await team_email(api, cast, "clinician")

    # Sign-in: wrong passwords, a forged token, then the right password; TOTP enrolment and a sign-in with it.
    wrong = "not the password 1234"
    secrets["wrong password"] = wrong
    for _ in range(2):
        status, _ = await api.post("/auth/login", {"email": email, "password": wrong})
        assert status == 401
    forged = "forged-token-" + "z" * 40
    secrets["forged token"] = forged
    assert (await api.get("/me", token=forged))[0] == 401
    status, login = await api.post("/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200
    first = secrets["sign-in token"] = login["token"]
    secrets["device token"] = login["device_token"]
    # The web inbox's sign-in page: a session cookie, its CSRF token, the browser's device token.
    resp = await post_sign_in(client, email, PASSWORD)
    assert resp.status == 303
    secrets["team session cookie"] = cookie(client, SESSION_COOKIE)
    secrets["team browser device token"] = cookie(client, DEVICE_COOKIE)
    page = await client.get("/inbox")
    secrets["team csrf"] = meta_csrf(await page.text())
    client.session.cookie_jar.clear()
    status, enrolled = await api.post(
        f"/team-members/{cast.id('clinician')}/totp", {"password": PASSWORD}, token=first
    )
    assert status == 200, enrolled
    totp_secret = secrets["totp secret"] = pyotp.parse_uri(enrolled["provisioning_uri"]).secret
    now = client.server.app[CTX].clock.now()
    status, login = await api.post(
        "/auth/login", {"email": email, "password": PASSWORD, "otp": pyotp.TOTP(totp_secret).at(now)}
    )
    assert status == 200, login
    token = secrets["sign-in token with otp"] = login["token"]
    status, again = await api.post(
        "/auth/login", {"email": email, "password": wrong, "device_token": login["device_token"]}
    )
    assert status == 401

    # A webhook, devices for pushes.
    status, hook = await api.post(
        "/webhooks", {"url": receiver.url, "events": ["message.created"]}, token=cast.api_key
    )
    assert status == 201
    secrets["webhook secret"] = hook["secret"]
    for platform, device in (("apns", APNS_DEVICE), ("fcm", FCM_DEVICE)):
        status, _ = await api.post(
            "/devices", {"platform": platform, "token": device, "app": "practice"}, token=token
        )
        assert status == 201
        secrets[f"{platform} device token"] = device

    # A message to the client: an email with a notification link, opened in the portal, answered there.
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hello"}, token=token
    )
    assert status == 201
    await drain(client)
    [mail] = smtp.received
    [link] = links_in(mail)
    secrets["notification link"] = link
    resp = await client.get(link, allow_redirects=False)
    assert resp.status == 303
    secrets["portal session"] = resp.cookies[PORTAL_COOKIE].value
    resp = await client.get(f"/portal/c/{conv['id']}")
    html = await resp.text()
    secrets["portal csrf"] = form_field(CSRF, html)
    resp = await client.post(
        f"/portal/c/{conv['id']}",
        data={
            "csrf": form_field(CSRF, html),
            "client_msg_id": form_field(CLIENT_MSG_ID, html),
            "body": "thanks",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    await drain(client)  # the push to the clinician's devices, the webhook

    # Instant Sign In: asked for, emailed, looked at, used.
    client.session.cookie_jar.clear()
    resp = await client.get("/portal/sign-in")
    form_csrf = secrets["sign-in form csrf"] = form_field(CSRF, await resp.text())
    client_email = mail.rcpt_tos[0]
    resp = await client.post("/portal/sign-in", data={"csrf": form_csrf, "email": client_email})
    assert resp.status == 200
    await drain(client)
    [signin_link] = links_in(smtp.received[-1])
    assert signin_link.startswith("/portal/s/")
    secrets["sign-in link"] = signin_link
    resp = await client.get(signin_link)
    resp = await client.post(
        signin_link, data={"csrf": form_field(CSRF, await resp.text())}, allow_redirects=False
    )
    assert resp.status == 303
    secrets["portal session from sign-in"] = resp.cookies[PORTAL_COOKIE].value

    # A second notification link, exchanged for an app token (POST /auth/magic) on two devices, then used
    # and revoked; and a used-up Instant Sign In link, refused.
    status, _ = await api.post(f"/conversations/{conv['id']}/messages", {"body": "one more"}, token=token)
    assert status == 201
    await drain(client)
    [magic_link] = links_in(smtp.received[-1])
    secrets["magic link"] = magic_link
    status, magic = await api.post("/auth/magic", {"token": magic_link.rsplit("/", 1)[1]})
    assert status == 200, magic
    secrets["app token (magic exchange)"] = magic["token"]
    assert (await api.get("/me", token=magic["token"]))[0] == 200
    status, again = await api.post("/auth/magic", {"token": magic_link.rsplit("/", 1)[1]})
    assert status == 200  # a second device: a notification link is not used up
    secrets["app token (second device)"] = again["token"]
    status, _ = await api.post("/auth/magic", {"token": signin_link.rsplit("/", 1)[1]})
    assert status == 401  # used up by the browser above
    assert (await api.post("/auth/logout", {}, token=first))[0] == 200
    assert (await api.get("/me", token=first))[0] == 401  # a revoked token, tried again

    # An export: its zip password.
    status, made = await api.post(
        "/exports", {"scope": "all", "require_password": True}, token=cast.tok("owner")
    )
    assert status == 202 and made["password"]
    secrets["export password"] = made["password"]
    await drain(client)
    status, ready = await api.get(f"/exports/{made['id']}", token=cast.tok("owner"))
    assert ready["status"] == "ready"
    resp = await client.get(ready["download_url"], headers={"Authorization": f"Bearer {cast.tok('owner')}"})
    assert resp.status == 200 and len(await resp.read()) > 100

    # The bare token of each link too, not only the path.
    secrets |= {
        f"{name} token": value.rsplit("/", 1)[1]
        for name, value in list(secrets.items())
        if name.endswith("link")
    }
    assert logs.records, "nothing was captured: the capture is broken"
    # Each record is searched as a plain line and as a JSON line; the JSON lines carry request ids.
    assert any('"request_id": "' in text for _, text in logs.lines())
    hits = logs.hits(secrets.values())
    named = {v: k for k, v in secrets.items()}
    found = [f"{named[needle]} in {logger}: {line}" for needle, logger, line in hits]
    assert not found, "\n".join(found)
    # Nor in what /metrics shows.
    app = client.server.app
    await app[METRICS].refresh(app)
    shown = app[METRICS].render().decode()
    assert [name for name, value in secrets.items() if value in shown] == []

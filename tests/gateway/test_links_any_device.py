"""The 24-hour link, on any device (issue 17, R18, R4, R24).

The guide: "Your client can open the email from either their desktop or mobile device. They'll be able to
view the message and reply back without having to sign in for 24 hours." One notification link from a real
email is opened in a browser, exchanged by the client app (`POST /api/v1/auth/magic`), and opened in a
second browser, each with its own cookie jar; all of them read the conversation until the link ends, and
none after. The Instant Sign In link stays single-use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from inbox.models import AuthToken, LinkToken
from tests.gateway.mail_helpers import drain, email_of, link_in, mail_config, path_of, to
from tests.gateway.test_portal import CANARY, ask_for_signin, message_client, page


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


@pytest.fixture
async def browsers(client) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """Two more browsers against the same server, each with its own cookies (the test client is a third)."""
    sessions = [
        aiohttp.ClientSession(base_url=str(client.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True))
        for _ in range(2)
    ]
    yield sessions
    for session in sessions:
        await session.close()


async def emailed_link(client, smtp, who_id: int) -> str:
    await drain(client)
    mails = to(smtp, await email_of(who_id))
    assert mails, "no email"
    return path_of(link_in(mails[-1]))


async def opens(browser, link: str, conv_id: int) -> None:
    """A browser follows the emailed link: a portal session, then the conversation with the message."""
    resp = await browser.get(link, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv_id}"
    assert await reads(browser, conv_id)


async def reads(browser, conv_id: int) -> bool:
    """Whether this browser's session still shows the conversation (else it is sent to sign in)."""
    resp = await browser.get(f"/portal/c/{conv_id}", allow_redirects=False)
    if resp.status == 303:
        # To sign in, then back to this conversation.
        assert resp.headers["Location"] == f"/portal/sign-in?next=%2Fportal%2Fc%2F{conv_id}"
        return False
    assert resp.status == 200
    assert CANARY in await resp.text()
    return True


async def app_reads(api, token: str, conv_id: int) -> bool:
    status, body = await api.get(f"/conversations/{conv_id}/messages", token=token)
    if status == 401:
        return False
    assert status == 200, body
    assert CANARY in [m["body"] for m in body["items"]]
    return True


async def three_devices(client, api, cast, smtp, browsers) -> tuple[str, int, str]:
    """The link opened on the desktop, in the app, and in another browser: (link, conversation, app token)."""
    conv = await message_client(api, cast)
    link = await emailed_link(client, smtp, cast.id("client"))
    assert link.startswith("/portal/m/")
    desktop, laptop = browsers
    await opens(desktop, link, conv["id"])
    status, exchanged = await api.post("/auth/magic", {"token": link.rsplit("/", 1)[1]})
    assert status == 200 and exchanged["conversation_id"] == conv["id"]
    assert await app_reads(api, exchanged["token"], conv["id"])
    await opens(laptop, link, conv["id"])
    # Each use was its own session: none ended another.
    assert await reads(desktop, conv["id"]) and await app_reads(api, exchanged["token"], conv["id"])
    return link, conv["id"], exchanged["token"]


async def test_r18_one_link_works_on_every_device_until_it_expires(client, api, cast, smtp, clock, browsers):
    before = await AuthToken.all().order_by("-id").first()
    link, conv_id, app_token = await three_devices(client, api, cast, smtp, browsers)
    desktop, laptop = browsers
    # A second phone, and the app's first phone again after a reinstall: the link is not used up.
    status, second = await api.post("/auth/magic", {"token": link.rsplit("/", 1)[1]})
    assert status == 200 and second["token"] != app_token

    # Every use is audited, against the link, never with its token.
    [row] = await LinkToken.filter(participant_id=cast.id("client"), purpose="notify")
    assert row.used_at is None
    status, audit = await api.get("/audit?limit=500", token=cast.tok("owner"))
    assert status == 200
    uses = [
        e["action"]
        for e in audit["items"]
        if e["target_type"] == "link" and str(e["target_id"]) == str(row.id)
    ]
    assert sorted(uses) == ["auth.link_exchange"] * 2 + ["auth.link_sign_in"] * 2
    assert link.rsplit("/", 1)[1] not in str(audit)

    # Each session ends when the link does (R18: 24 hours without signing in, not 24 hours from each use).
    clock.advance(3600)
    sessions = await AuthToken.filter(participant_id=cast.id("client"), id__gt=before.id if before else 0)
    assert sorted(s.kind for s in sessions) == ["app", "app", "session", "session"]
    assert {s.expires_at for s in sessions} == {row.expires_at}
    assert row.expires_at - row.created_at == timedelta(hours=24)
    assert await reads(desktop, conv_id) and await reads(laptop, conv_id)

    clock.advance(23 * 3600 - 1)  # the link's last second
    assert await reads(laptop, conv_id) and await app_reads(api, second["token"], conv_id)
    clock.advance(1)
    assert not await reads(desktop, conv_id)
    assert not await reads(laptop, conv_id)
    assert not await app_reads(api, app_token, conv_id)
    assert not await app_reads(api, second["token"], conv_id)
    # And the link itself, anywhere.
    resp, html = await page(client, link)
    assert resp.status == 404 and CANARY not in html
    status, err = await api.post("/auth/magic", {"token": link.rsplit("/", 1)[1]})
    assert status == 401 and err["error"]["code"] == "invalid_link"


async def test_r4_turning_messaging_off_ends_the_link_and_every_session_it_started(
    client, api, cast, smtp, browsers
):
    link, conv_id, app_token = await three_devices(client, api, cast, smtp, browsers)
    desktop, laptop = browsers
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key
    )
    assert status == 200
    assert not await reads(desktop, conv_id)
    assert not await reads(laptop, conv_id)
    assert not await app_reads(api, app_token, conv_id)
    resp, _ = await page(client, link)
    assert resp.status == 404
    status, _ = await api.post("/auth/magic", {"token": link.rsplit("/", 1)[1]})
    assert status == 401
    # Turned on again within the 24 hours: the revoked link stays dead; a new message brings a new one.
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"messaging_enabled": True}, token=cast.api_key
    )
    assert status == 200
    resp, _ = await page(client, link)
    assert resp.status == 404
    status, _ = await api.post("/auth/magic", {"token": link.rsplit("/", 1)[1]})
    assert status == 401
    assert not await reads(desktop, conv_id) and not await app_reads(api, app_token, conv_id)


async def test_r18_the_instant_sign_in_link_still_works_once(client, api, cast, smtp, browsers):
    await message_client(api, cast)
    await drain(client)
    await ask_for_signin(client, await email_of(cast.id("client")))
    link = await emailed_link(client, smtp, cast.id("client"))
    assert link.startswith("/portal/s/")
    token = link.rsplit("/", 1)[1]
    status, first = await api.post("/auth/magic", {"token": token})
    assert status == 200 and first["participant"]["id"] == cast.id("client")
    status, err = await api.post("/auth/magic", {"token": token})
    assert status == 401 and err["error"]["code"] == "invalid_link"
    # Used up for the browser too: it gets the page for a link that does not work.
    resp = await browsers[0].get(link, allow_redirects=False)
    assert resp.status == 404
    # The app's one session is a full one, not bound to a link's day.
    status, _ = await api.get("/me", token=first["token"])
    assert status == 200

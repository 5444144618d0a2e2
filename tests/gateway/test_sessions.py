"""Sessions rotate on sign-in and end on sign-out: every sign-in makes a new token, a cookie value chosen
before sign-in is never adopted (no session fixation), and a token or cookie that was signed out, or replaced
by a newer sign-in in the same browser, no longer works anywhere (pages, API, websocket)."""

from __future__ import annotations

import pytest

from gateway.auth import PORTAL_COOKIE
from inbox.models import Participant
from tests.conftest import PASSWORD
from tests.gateway.mail_helpers import csrf_in, drain, email_of, link_in, mail_config, path_of, to


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def test_each_api_sign_in_is_a_new_token_and_sign_out_ends_only_that_one(api, cast):
    email = (await Participant.get(id=cast.id("clinician"))).email
    tokens = []
    for _ in range(2):
        status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD})
        assert status == 200
        tokens.append(body["token"])
    assert tokens[0] != tokens[1]
    assert all([(await api.get("/me", token=t))[0] == 200 for t in tokens])
    assert (await api.post("/auth/logout", {}, token=tokens[0]))[0] == 200
    assert (await api.get("/me", token=tokens[0]))[0] == 401
    assert (await api.get("/me", token=tokens[1]))[0] == 200
    resp = await api.client.get("/api/v1/ws", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert resp.status == 401


async def sign_in_through_a_link(client, smtp, address: str) -> str:
    """Instant Sign In in this browser; the new portal cookie's value."""
    resp = await client.get("/portal/sign-in")
    resp = await client.post("/portal/sign-in", data={"csrf": csrf_in(await resp.text()), "email": address})
    assert resp.status == 200
    await drain(client)
    link = path_of(link_in(to(smtp, address)[-1]))
    resp = await client.get(link)
    resp = await client.post(link, data={"csrf": csrf_in(await resp.text())}, allow_redirects=False)
    assert resp.status == 303
    return resp.cookies[PORTAL_COOKIE].value


async def works(client, cookie: str) -> bool:
    """Does this cookie value open the portal, replayed from a browser that has nothing else?"""
    client.session.cookie_jar.clear()
    resp = await client.get("/portal", cookies={PORTAL_COOKIE: cookie}, allow_redirects=False)
    return resp.status == 200


async def test_portal_sessions_rotate_on_sign_in_are_never_fixed_and_end_on_sign_out(client, api, cast, smtp):
    address = await email_of(cast.id("client"))
    chosen = "attacker-chosen-session-value-0123456789"
    client.session.cookie_jar.update_cookies({PORTAL_COOKIE: chosen})
    first = await sign_in_through_a_link(client, smtp, address)
    assert first != chosen and not await works(client, chosen)  # the planted value was not adopted

    client.session.cookie_jar.update_cookies({PORTAL_COOKIE: first})
    second = await sign_in_through_a_link(client, smtp, address)
    assert second != first
    assert not await works(client, first)  # the earlier session of this browser ended at the new sign-in
    assert await works(client, second)

    client.session.cookie_jar.update_cookies({PORTAL_COOKIE: second})
    resp = await client.get("/portal/sign-out")
    resp = await client.post(
        "/portal/sign-out", data={"csrf": csrf_in(await resp.text())}, allow_redirects=False
    )
    assert resp.status == 303
    assert not await works(client, second)  # the old cookie no longer works after sign-out
    resp = await client.get("/api/v1/me", cookies={PORTAL_COOKIE: second})
    assert resp.status == 401
    resp = await client.get("/api/v1/ws", cookies={PORTAL_COOKIE: second})
    assert resp.status == 401

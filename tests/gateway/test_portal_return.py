"""Coming back to the portal (issue 16): after Instant Sign In the client lands on the page they were sent
away from, only ever one of the portal's own; the sign-in page says when a 24-hour link (or a session) has
run out, and not after signing out. Over real SMTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.gateway.mail_helpers import csrf_in, drain, email_of, link_in, mail_config, path_of, to
from tests.gateway.test_portal import emailed_link, message_client, page, post_form

EXPIRED = "Your link has expired: the links in our emails open your messages for 24 hours."


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def sign_in_by_email(client, smtp, address, sign_in_page):
    """Ask for an Instant Sign In link on `sign_in_page` (with its hidden `next`), then use it."""
    resp, html = await page(client, sign_in_page)
    assert resp.status == 200
    fields = {"csrf": csrf_in(html), "email": address}
    if 'name="next"' in html:
        fields["next"] = html.split('name="next" value="', 1)[1].split('"', 1)[0]
    resp, _ = await post_form(client, "/portal/sign-in", fields)
    assert resp.status == 200
    await drain(client)
    link = path_of(link_in(to(smtp, address)[-1]))
    assert link.startswith("/portal/s/")
    _, confirm = await page(client, link)
    return await post_form(client, link, {"csrf": csrf_in(confirm)})


async def test_after_instant_sign_in_the_client_lands_on_the_conversation_they_came_for(
    client, api, cast, smtp, clock
):
    conv = await message_client(api, cast)
    address = await email_of(cast.id("client"))
    resp, _ = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 303
    sign_in = resp.headers["Location"]
    assert sign_in == f"/portal/sign-in?next=%2Fportal%2Fc%2F{conv['id']}"
    resp, _ = await sign_in_by_email(client, smtp, address, sign_in)
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"
    resp, html = await page(client, resp.headers["Location"])
    assert resp.status == 200 and "CANARY" in html
    # Once: the next Instant Sign In in this browser goes to the conversations.
    resp, _ = await sign_in_by_email(client, smtp, address, "/portal/sign-in")
    assert resp.status == 303 and resp.headers["Location"] == "/portal"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/portal",
        "//evil.example/portal",
        "/\\evil.example",
        "/portal/../sign-out",
        "/portal/c/1?x=https://evil.example",
        "/portal/sign-out",
        "/inbox",
        "javascript:alert(1)",
        "/portal/c/0",
    ],
)
async def test_a_return_path_that_is_not_a_portal_page_is_refused(client, api, cast, smtp, clock, target):
    """Not carried into the form, not remembered if posted by hand: Instant Sign In goes to /portal."""
    address = await email_of(cast.id("client"))
    resp, html = await page(client, "/portal/sign-in", params={"next": target})
    assert resp.status == 200 and 'name="next"' not in html
    resp, form_page = await page(client, "/portal/sign-in")
    resp, _ = await post_form(
        client, "/portal/sign-in", {"csrf": csrf_in(form_page), "email": address, "next": target}
    )
    assert resp.status == 200
    await drain(client)
    link = path_of(link_in(to(smtp, address)[-1]))
    _, confirm = await page(client, link)
    resp, _ = await post_form(client, link, {"csrf": csrf_in(confirm)})
    assert resp.status == 303 and resp.headers["Location"] == "/portal"


async def test_the_sign_in_page_says_when_the_24_hour_link_has_expired(client, api, cast, smtp, clock):
    conv = await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    resp, _ = await page(client, link)
    assert resp.status == 303
    resp, html = await page(client, "/portal/sign-in")
    assert EXPIRED not in html  # still working
    clock.advance(24 * 3600 + 1)
    resp, _ = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 303
    resp, html = await page(client, resp.headers["Location"])
    assert resp.status == 200 and EXPIRED in html
    assert f'name="next" value="/portal/c/{conv["id"]}"' in html


async def test_after_signing_out_the_sign_in_page_says_signed_out_not_expired(client, api, cast, smtp, clock):
    await message_client(api, cast)
    link = await emailed_link(client, smtp, await email_of(cast.id("client")))
    await page(client, link)
    _, html = await page(client, "/portal/sign-out")
    resp, _ = await post_form(client, "/portal/sign-out", {"csrf": csrf_in(html)})
    assert resp.status == 303
    clock.advance(24 * 3600 + 1)
    resp, html = await page(client, "/portal/sign-in")
    assert EXPIRED not in html and "Your session has expired" not in html


async def test_the_sign_in_page_says_when_an_instant_sign_in_session_has_expired(
    client, api, cast, smtp, clock
):
    address = await email_of(cast.id("client"))
    resp, _ = await sign_in_by_email(client, smtp, address, "/portal/sign-in")
    assert resp.status == 303
    clock.advance(30 * 86400)
    resp, _ = await page(client, "/portal")
    resp, html = await page(client, resp.headers["Location"])
    assert "Your session has expired." in html and EXPIRED not in html

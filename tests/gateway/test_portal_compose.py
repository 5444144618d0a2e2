"""The portal's "New message" (R8, R10, R11) over HTTP: whom it lists, for a client and for a contact, and
every way a start is refused. On SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from inbox.models import Conversation
from tests.gateway.mail_helpers import csrf_in, drain, email_of, link_in, mail_config, path_of, to
from tests.gateway.test_portal import page, post_form


@pytest.fixture
def config(db_url, tmp_path, smtp):
    return mail_config(db_url, tmp_path, smtp)


async def signed_in(client, smtp, address):
    """An Instant Sign In in this client's cookie jar."""
    _, html = await page(client, "/portal/sign-in")
    await post_form(client, "/portal/sign-in", {"csrf": csrf_in(html), "email": address})
    await drain(client)
    link = path_of(link_in(to(smtp, address)[-1]))
    _, confirm = await page(client, link)
    resp, _ = await post_form(client, link, {"csrf": csrf_in(confirm)})
    assert resp.status == 303


def listed(html):
    return re.findall(r'<span class="who">([^<]+)</span>', html)


@pytest.mark.parametrize("who", ["client", "contact"])
async def test_r8_r10_new_message_lists_the_primary_clinician_managers_billers_and_schedulers(
    client, api, cast, smtp, who
):
    await signed_in(client, smtp, await email_of(cast.id(who)))
    resp, html = await page(client, "/portal/new")
    assert resp.status == 200
    # Not Clinician2 (another clinician), the supervisor without access (R7), the owner, nor Client2.
    assert sorted(listed(html)) == ["Biller", "Clinician", "Manager", "Scheduler"]
    resp, _ = await post_form(client, "/portal/new", {"csrf": csrf_in(html), "to": str(cast.id("scheduler"))})
    assert resp.status == 303
    conv_path = resp.headers["Location"]
    assert re.fullmatch(r"/portal/c/\d+", conv_path)
    # R11: the same exchange again, not a second one.
    resp, _ = await post_form(client, "/portal/new", {"csrf": csrf_in(html), "to": str(cast.id("scheduler"))})
    assert resp.headers["Location"] == conv_path
    assert await Conversation.all().count() == 1


async def test_starting_is_refused_with_a_reason_and_nothing_is_made(client, api, cast, smtp):
    await signed_in(client, smtp, await email_of(cast.id("client")))
    _, html = await page(client, "/portal/new")
    csrf = csrf_in(html)
    cases = [
        ({"csrf": csrf, "to": str(cast.id("clinician2"))}, 403, "only with access"),  # R5
        ({"csrf": csrf, "to": str(cast.id("owner"))}, 403, "primary clinician"),  # R8
        ({"csrf": csrf, "to": str(cast.id("client2"))}, 403, "only one client"),  # R10
        ({"csrf": csrf, "to": "999999"}, 404, "not someone you can write to"),
        ({"csrf": csrf, "to": "abc"}, 422, "Choose whom to write to."),
        ({"csrf": csrf}, 422, "Choose whom to write to."),
        ({"csrf": csrf, "to": str(cast.id("client"))}, 422, ""),  # oneself
    ]
    for form, status, text in cases:
        resp, page_html = await post_form(client, "/portal/new", form)
        assert resp.status == status, (form, page_html[:300])
        assert text in page_html and 'role="alert"' in page_html
    resp, page_html = await post_form(client, "/portal/new", {"csrf": "x" * 32, "to": str(cast.id("biller"))})
    assert resp.status == 403 and "This form was out of date" in page_html
    assert await Conversation.all().count() == 0


async def test_new_message_needs_a_session(client):
    resp, _ = await post_form(client, "/portal/new", {"to": "1"})
    assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in"

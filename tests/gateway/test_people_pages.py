"""The pages of issue 12 over HTTP: who gets Settings > People, Settings > API keys and the Account page,
and what each shows (no password field for anyone else's account, deactivated members apart). What the
pages do is in tests/browser/test_people_screens.py; the rules behind them in test_people_accounts.py."""

from __future__ import annotations

import re

import pyotp

from gateway.app import make_context
from inbox import accounts
from inbox.models import Participant
from tests.conftest import PASSWORD
from tests.gateway.pages import hidden_fields
from tests.gateway.test_team_inbox import sign_in_as

NEW_PASSWORD = "a brand new passphrase"


def invite_form(html: str) -> str:
    found = re.search(r'<form id="invite-form".*?</form>', html, flags=re.S)
    assert found, "no invitation form"
    return found.group(0)


async def test_the_new_pages_need_a_session(client):
    for path in ("/account", "/settings/people", "/settings/api-keys"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/?next=%2F"), path
    resp = await client.get("/settings/password", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/account#password"


async def test_r25_r26_people_is_for_owners_and_managers_and_has_no_password_field(client, cast):
    await sign_in_as(client, cast, "clinician")
    resp = await client.get("/settings/people")
    assert resp.status == 403
    assert "Only the account owner or a practice manager can add and change people." in await resp.text()
    assert "/settings/people" not in await (await client.get("/inbox")).text()  # no Settings link either

    await sign_in_as(client, cast, "manager")
    resp = await client.get("/settings/people")
    assert resp.status == 200
    html = await resp.text()
    assert 'type="password"' not in html  # R25: nobody sets another person's password
    invite = invite_form(html)
    assert 'value="clinician"' in invite and 'value="account_owner"' not in invite  # a manager makes no owner
    assert re.search(r'value="account_owner" disabled', html)  # nor in the roles dialog
    assert re.search(r'name="can_export"[^>]*disabled', html)  # R23: the owner decides who exports
    assert "/settings/api-keys" not in html  # R29: the keys are the owner's

    await sign_in_as(client, cast, "owner")
    html = await (await client.get("/settings/people")).text()
    assert 'value="account_owner"' in invite_form(html)
    assert not re.search(r'name="can_export"[^>]*disabled', html)
    assert 'href="/settings/api-keys"' in html


async def test_r26_deactivated_members_are_listed_apart(api, client, cast):
    biller = cast.id("biller")
    status, _ = await api.delete(f"/team-members/{biller}", token=cast.api_key)
    assert status == 200
    await sign_in_as(client, cast, "owner")
    html = await (await client.get("/settings/people")).text()
    active, deactivated = html.split('id="s-deactivated"', 1)
    assert f'<tr data-member="{biller}"' not in active and f'data-member="{cast.id("clinician")}"' in active
    deactivated = deactivated.split('id="s-clients"', 1)[0]
    assert f'<li data-member="{biller}" data-name="Biller">' in deactivated
    assert "Reactivate<span" in deactivated

    status, _ = await api.patch(f"/team-members/{biller}", {"active": True}, token=cast.api_key)
    assert status == 200
    html = await (await client.get("/settings/people")).text()
    assert "Nobody is deactivated." in html and f'<tr data-member="{biller}"' in html


async def test_r29_the_api_keys_page_is_the_owners_alone(client, cast):
    for who in ("manager", "clinician"):
        await sign_in_as(client, cast, who)
        resp = await client.get("/settings/api-keys")
        assert resp.status == 403, who
        assert "Only the account owner can create, see and revoke API keys." in await resp.text()
    await sign_in_as(client, cast, "owner")
    resp = await client.get("/settings/api-keys")
    assert resp.status == 200
    html = await resp.text()
    assert 'value="integration"' in html and 'value="provisioning"' in html
    assert "smk_" not in html  # the page never holds a key; the script shows a new one once


async def test_r25_the_account_page_changes_the_password_and_says_what_the_server_refused(client, cast):
    await sign_in_as(client, cast, "biller")
    page = await client.get("/account")
    html = await page.text()
    assert page.status == 200 and "Two-step sign-in" in html and 'href="/settings/two-step"' in html
    fields = hidden_fields(html)

    resp = await client.post(
        "/account", data=fields | {"current": PASSWORD, "password": "x" * 12, "confirm": "y" * 12}
    )
    assert resp.status == 422 and "The two new passwords are not the same." in await resp.text()
    resp = await client.post(
        "/account", data=fields | {"current": PASSWORD, "password": "short", "confirm": "short"}
    )
    assert resp.status == 422 and "A password must be 10 to 256 characters." in await resp.text()
    forged = fields | {
        "csrf": "forged",
        "current": PASSWORD,
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
    }
    assert (await client.post("/account", data=forged, allow_redirects=False)).status == 403

    right = fields | {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    resp = await client.post("/account", data=right, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/account?done=password"
    done = await (await client.get("/account?done=password")).text()
    assert "Your password is changed. You were signed out everywhere else." in done


async def test_r30_the_account_page_offers_to_replace_two_step_sign_in_once_it_is_on(
    client, cast, config, clock
):
    await sign_in_as(client, cast, "clinician")
    html = await (await client.get("/account")).text()
    assert "Set up two-step sign-in" in html and "Replace your authenticator app" not in html
    # The name in the top bar is the way here.
    assert re.search(r'<a href="/account" class="account-name"[^>]*aria-current="page"', html)

    member = await Participant.get(id=cast.id("clinician"))
    await accounts.set_totp_secret(make_context(config, clock), member, pyotp.random_base32(), last_step=None)
    html = await (await client.get("/account")).text()
    assert "Set up two-step sign-in" not in html
    assert (
        '<a href="/settings/two-step?new=1" class="button subtle">Replace your authenticator app</a>' in html
    )

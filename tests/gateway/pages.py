"""Helpers for driving the team's server-rendered pages over HTTP with aiohttp's test client."""

from __future__ import annotations

import re
from typing import Any

import pyotp

from gateway.auth import SESSION_COOKIE
from inbox.models import Participant

HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(html: str) -> dict[str, str]:
    return dict(HIDDEN.findall(html))


def meta_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "the page has no csrf-token meta tag"
    return found.group(1)


async def email_of(who_id: int) -> str:
    return (await Participant.get(id=who_id)).email


def cookie(client: Any, name: str) -> str | None:
    for morsel in client.session.cookie_jar:
        if morsel.key == name:
            return str(morsel.value)
    return None


def session_cookie(client: Any) -> str | None:
    return cookie(client, SESSION_COOKIE)


async def post_sign_in(client: Any, email: str, password: str, *, next_path: str | None = None) -> Any:
    page = await client.get("/" + (f"?next={next_path}" if next_path else ""), allow_redirects=False)
    if page.status == 303:  # signed in already: the form's nonce is still in its cookie
        fields = {"csrf": cookie(client, "securemsg_form") or "", "next": next_path or ""}
    else:
        assert page.status == 200, await page.text()
        fields = hidden_fields(await page.text())
    fields.update(email=email, password=password)
    return await client.post("/", data=fields, allow_redirects=False)


async def post_code(client: Any, code: str, path: str = "/sign-in/code") -> Any:
    page = await client.get(path, allow_redirects=False)
    assert page.status == 200, await page.text()
    fields = hidden_fields(await page.text())
    fields["code"] = code
    return await client.post("/sign-in/code", data=fields, allow_redirects=False)


def code_for(secret: str, clock: Any) -> str:
    return pyotp.TOTP(secret).at(clock.now())


async def signed_in_csrf(client: Any) -> str:
    """The session's CSRF token, as the inbox page hands it to its script."""
    page = await client.get("/inbox", allow_redirects=False)
    assert page.status == 200
    return meta_csrf(await page.text())

"""The inbox and settings pages over HTTP: who gets them, CSRF on cookie writes, the provisioning API from
an owner's session, the picker's "Enable Secure Messaging" data, the websocket's origin check, and the
security headers and markup rules every page keeps (CSP without inline script, no third-party hosts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.auth import SESSION_COOKIE
from inbox.models import ClientAccess
from tests.conftest import PASSWORD
from tests.gateway.pages import email_of, post_sign_in, signed_in_csrf

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "gateway" / "templates" / "pages"
STATIC = ROOT / "gateway" / "static"


def scanned(root: Path, pattern: str) -> list[Path]:
    """The files a scanner reads; none found means the templates moved, and the scan would pass vacuously."""
    files = sorted(root.rglob(pattern))
    assert files, f"no {pattern} under {root}"
    return files


async def sign_in_as(client, cast, who):
    resp = await post_sign_in(client, await email_of(cast.id(who)), PASSWORD)
    assert resp.status == 303
    return await signed_in_csrf(client)


async def test_inbox_needs_a_session_and_keeps_the_email_link(client):
    resp = await client.get("/inbox?conversation=12", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?next=%2Finbox%3Fconversation%3D12"
    for path in ("/settings", "/settings/two-step"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/?next=")


async def test_inbox_page_carries_what_its_script_needs(client, api, cast):
    await api.put("/me/away", {"enabled": True}, token=cast.tok("clinician"))
    await api.post(
        "/conversations",
        {"participant_ids": [cast.id("clinician")], "body": "hello"},
        token=cast.tok("biller"),
    )
    await sign_in_as(client, cast, "clinician")
    html = await (await client.get("/inbox?conversation=44")).text()
    assert 'data-conversation="44"' in html and f'data-me="{cast.id("clinician")}"' in html
    assert 'data-max-body="5000"' in html and 'data-max-away="600"' in html
    # The red bubble and "(Away)" are right from the first paint; the websocket keeps them current.
    bubble = re.search(
        r'<span class="bubble" data-unread-total(?P<hidden> hidden)?><span data-count>(\d+)<', html
    )
    assert bubble and bubble.group("hidden") is None and bubble.group(2) == "1"
    assert re.search(r'<span class="away-flag" data-away-flag>\(Away\)</span>', html)
    assert "Away message to clients" in html and 'id="away-toggle" checked' in html


async def test_cookie_session_api_writes_need_the_csrf_header(client, cast):
    csrf = await sign_in_as(client, cast, "clinician")
    body = {"participant_ids": [cast.id("client")]}
    resp = await client.post("/api/v1/conversations", json=body)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await client.post("/api/v1/conversations", json=body, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201


async def test_r1_r3_r4_provisioning_api_takes_an_owners_cookie_session(client, cast):
    csrf = await sign_in_as(client, cast, "owner")
    headers = {"X-CSRF-Token": csrf}
    resp = await client.patch(
        "/api/v1/practice/settings", json={"team_messaging_enabled": False}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["client_messaging_enabled"] is False  # R1
    resp = await client.patch(
        "/api/v1/practice/settings",
        json={"team_messaging_enabled": True, "client_messaging_enabled": True},
        headers=headers,
    )
    assert resp.status == 200
    resp = await client.patch(
        f"/api/v1/team-members/{cast.id('biller')}", json={"messaging_enabled": False}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["messaging_enabled"] is False  # R3
    resp = await client.patch(
        f"/api/v1/clients/{cast.id('client')}", json={"portal_access": False}, headers=headers
    )
    assert resp.status == 200 and (await resp.json())["portal_access"] is False  # R4
    path = f"/api/v1/clients/{cast.id('client2')}/access/{cast.id('clinician2')}"
    assert (await client.put(path, headers=headers)).status == 201
    resp = await client.get(f"/api/v1/clients/{cast.id('client2')}/access")
    assert (await resp.json()) == {
        "primary_clinician_id": cast.id("clinician"),
        "team_member_ids": [cast.id("clinician2")],
    }
    assert (await client.delete(path, headers=headers)).status == 200
    assert not await ClientAccess.filter(client_id=cast.id("client2")).exists()


async def test_settings_page_is_for_owners_and_managers(client, aiohttp_client, cast):
    await sign_in_as(client, cast, "clinician")
    resp = await client.get("/settings")
    assert resp.status == 403 and "Only the account owner or a practice manager" in await resp.text()
    resp = await client.patch("/api/v1/practice/settings", json={}, headers={"X-CSRF-Token": "x"})
    assert resp.status == 403

    owner = await aiohttp_client(client.server)
    await sign_in_as(owner, cast, "owner")
    html = await (await owner.get("/settings")).text()
    for text in (
        "Secure messaging for the team",
        "Secure messaging with clients",
        "Automatically allow secure messaging for all new clients",
        "Client Person",
        "Clinician2",
        "Access to client profiles",
    ):
        assert text in html
    assert html.count('data-field="messaging_enabled"') == 7 + 2  # every team member and client
    assert html.count('data-field="portal_access"') == 2


async def test_r4_picker_offers_enable_secure_messaging_to_those_who_may(api, cast):
    await api.patch(f"/clients/{cast.id('client2')}", {"messaging_enabled": False}, token=cast.api_key)
    _, plain = await api.get("/recipients?q=Client2", token=cast.tok("owner"))
    assert plain["items"] == []
    _, body = await api.get("/recipients?q=Client2&include_disabled=1", token=cast.tok("owner"))
    assert [(i["id"], i["messaging_enabled"], i["can_enable"]) for i in body["items"]] == [
        (cast.id("client2"), False, True)
    ]
    # The primary clinician has access to the client, so may turn it on too (R5).
    _, body = await api.get("/recipients?q=Client2&include_disabled=1", token=cast.tok("clinician"))
    assert [(i["id"], i["can_enable"]) for i in body["items"]] == [(cast.id("client2"), True)]
    # A biller could message the client once it is on, but turning it on is not theirs to do.
    _, body = await api.get("/recipients?q=Client2&include_disabled=1", token=cast.tok("biller"))
    assert [(i["id"], i["can_enable"]) for i in body["items"]] == [(cast.id("client2"), False)]
    # Someone who could not message the client even with messaging on is not offered it (R5).
    _, body = await api.get("/recipients?q=Client2&include_disabled=1", token=cast.tok("clinician2"))
    assert body["items"] == []


async def test_websocket_takes_the_session_cookie_from_this_site_only(client, cast):
    await sign_in_as(client, cast, "clinician")
    ws = await client.ws_connect("/api/v1/ws", headers={"Origin": str(client.make_url("")).rstrip("/")})
    assert (await ws.receive_json(timeout=5))["type"] == "unread"
    await ws.close()
    with pytest.raises(Exception) as refused:
        await client.ws_connect("/api/v1/ws", headers={"Origin": "https://evil.example"})
    assert getattr(refused.value, "status", None) == 403


# --- what every page keeps ----------------------------------------------------------------------------


def assert_security_headers(resp):
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_page_keeps_the_security_headers(client, cast):
    for path in ("/", "/inbox", "/static/app.css", "/static/inbox.js"):
        resp = await client.get(path, allow_redirects=False)
        assert_security_headers(resp)
    await sign_in_as(client, cast, "owner")
    assert session_is_set(client)
    for path in (
        "/inbox",
        "/settings",
        "/settings/two-step",
        "/static/live.js",
        "/static/settings.js",
        "/static/portal.js",
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 200, path
        assert_security_headers(resp)
    resp = await client.post("/sign-out", data={"csrf": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert_security_headers(resp)


def session_is_set(client):
    return any(c.key == SESSION_COOKIE for c in client.session.cookie_jar)


def test_templates_and_static_files_need_no_inline_script_and_no_other_host():
    files = [*scanned(PAGES, "*.html"), *scanned(STATIC, "*.*")]
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{path}: a URL to another host"
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path}: inline script"
            assert not re.search(r"\son[a-z]+\s*=", text), f"{path}: inline event handler"
            assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, f"{path}: inline style"


def test_every_form_carries_a_csrf_token():
    for path in scanned(PAGES, "*.html"):
        text = path.read_text()
        forms = re.findall(r"<form\b.*?</form>", text, flags=re.S)
        for form in forms:
            if 'method="dialog"' in form and "csrf" not in form:
                continue  # the picker's dialog form posts nowhere
            if 'method="get"' in form:
                continue  # a navigation (the records page's client choice) changes nothing
            assert 'name="csrf"' in form, f"{path}: a form without its CSRF token"


def test_every_control_in_the_templates_has_a_label():
    for path in scanned(PAGES, "*.html"):
        text = path.read_text()
        labelled = set(re.findall(r'<label for="([^"]+)"', text))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", text):
            if 'type="hidden"' in tag:
                continue
            control_id = re.search(r'id="([^"]+)"', tag)
            inside_label = re.search(re.escape(tag), text) and _wrapped_in_label(text, tag)
            assert (control_id and control_id.group(1) in labelled) or inside_label or "aria-label" in tag, (
                f"{path}: {tag} has no label"
            )


def _wrapped_in_label(text: str, tag: str) -> bool:
    at = text.index(tag)
    opened = text.rfind("<label", 0, at)
    closed = text.rfind("</label>", 0, at)
    return opened > closed


# --- client records (R21) -----------------------------------------------------------------------------


async def test_r21_records_page_lists_and_opens_only_clients_one_has_access_to(
    client, aiohttp_client, api, cast
):
    await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "Hello"},
        token=cast.tok("clinician"),
    )
    await sign_in_as(client, cast, "clinician")  # primary clinician of both clients
    html = await (await client.get("/records")).text()
    assert "Client Person" in html and "Client2 Person" in html
    page = await client.get(f"/records?client={cast.id('client')}")
    html = await page.text()
    assert page.status == 200 and f'data-client="{cast.id("client")}"' in html
    assert f'value="{cast.id("clinician")}"' in html and "Copy to chart note" in html
    for bad, status in (("99999999", 404), (str(cast.id("clinician2")), 404), ("x1", 404)):
        resp = await client.get(f"/records?client={bad}")
        assert resp.status == status, bad

    owner = await aiohttp_client(client.server)
    await sign_in_as(owner, cast, "owner")  # the owner holds every client's file
    assert (await owner.get(f"/records?client={cast.id('client2')}")).status == 200

    other = await aiohttp_client(client.server)
    await sign_in_as(other, cast, "clinician")
    status, _ = await api.patch(
        f"/clients/{cast.id('client')}", {"primary_clinician_id": cast.id("clinician2")}, token=cast.api_key
    )
    assert status == 200
    resp = await other.get(f"/records?client={cast.id('client')}")
    assert resp.status == 403 and "Only team members with access" in await resp.text()
    html = await (await other.get("/records")).text()
    assert "Client Person<" not in html and "Client2 Person" in html

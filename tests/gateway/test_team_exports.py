"""Settings > Data export over HTTP (R23): who gets the page and the tab; the rest is its script's API calls
(tests/browser/test_data_export.py)."""

from __future__ import annotations

from tests.gateway.test_team_inbox import sign_in_as


async def test_r23_data_export_page_needs_a_session(client):
    resp = await client.get("/settings/data-export", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/?next=%2Fsettings%2Fdata-export"


async def test_r23_data_export_page_for_the_owner_only_unless_allowed(aiohttp_client, client, api, cast):
    await sign_in_as(client, cast, "manager")
    resp = await client.get("/settings/data-export")
    assert resp.status == 403
    assert "Only the account owner, or a practice manager the owner allows" in await resp.text()
    assert 'href="/settings/data-export"' not in await (await client.get("/settings")).text()

    await api.patch(f"/team-members/{cast.id('manager')}", {"can_export": True}, token=cast.api_key)
    resp = await client.get("/settings/data-export")
    html = await resp.text()
    assert resp.status == 200 and "Start export" in html and "7-Zip" in html
    assert f'<option value="{cast.id("clinician")}">Clinician</option>' in html
    assert 'href="/settings/data-export"' in await (await client.get("/settings")).text()

    other = await aiohttp_client(client.server)
    await sign_in_as(other, cast, "clinician")
    assert (await other.get("/settings/data-export")).status == 403

"""Settings > Data export over HTTP (R23): who gets the page and the tab; the rest is its script's API calls
(tests/browser/test_data_export.py)."""

from __future__ import annotations

from gateway.app import make_context
from inbox import accounts
from inbox.models import Participant
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


async def fresh_token(config, clock, who_id):
    participant = await Participant.get(id=who_id)
    token, _ = await accounts.issue_token(make_context(config, clock), participant, "app")
    return token


async def test_r24_audit_filters_by_person_action_and_date_newest_first(api, cast, clock, config):
    key = cast.api_key
    await api.patch(f"/clients/{cast.id('client2')}", {"messaging_enabled": False}, token=key)
    clock.advance(86400)  # the next day (and new tokens: yesterday's have expired)
    status, _ = await api.patch(
        f"/clients/{cast.id('client2')}",
        {"messaging_enabled": True},
        token=await fresh_token(config, clock, cast.id("clinician")),
    )
    assert status == 200
    owner = await fresh_token(config, clock, cast.id("owner"))
    status, page = await api.get(f"/audit?actor_id={cast.id('clinician')}", token=owner)
    assert status == 200, page
    assert [e["action"] for e in page["items"]] == ["client.update"]
    _, page = await api.get("/audit?action=client.update&order=newest", token=owner)
    assert [e["actor_id"] for e in page["items"]] == [cast.id("clinician"), None]  # newest first
    _, page = await api.get("/audit?action=client.", token=owner)  # the whole family
    assert {e["action"] for e in page["items"]} == {"client.create", "client.update"}
    today = clock.now().date().isoformat()
    _, page = await api.get(f"/audit?action=client.update&until={today}T00:00:00Z", token=owner)
    assert [e["actor_id"] for e in page["items"]] == [None]  # before today: the API key's change only
    _, page = await api.get(f"/audit?action=client.update&since={today}", token=owner)
    assert [e["actor_id"] for e in page["items"]] == [cast.id("clinician")]
    # Paging newest first goes to older events.
    _, first = await api.get("/audit?order=newest&limit=2", token=owner)
    _, second = await api.get(f"/audit?order=newest&limit=2&cursor={first['next_cursor']}", token=owner)
    seqs = [e["seq"] for e in first["items"] + second["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4


async def test_r24_bad_audit_filters_are_422_and_others_are_refused(api, cast):
    owner = cast.tok("owner")
    for query, code in (
        ("until=yesterday", "invalid_until"),
        ("action=drop%20table", "invalid_action"),
        ("order=sideways", "invalid_order"),
        ("actor_id=abc", None),
    ):
        status, body = await api.get(f"/audit?{query}", token=owner)
        assert status == 422, query
        if code:
            assert body["error"]["code"] == code
    status, body = await api.get("/audit?action=client.update", token=cast.tok("manager"))
    assert status == 403 and body["error"]["code"] == "owner_only"


async def test_r24_audit_page_for_the_owner_only(aiohttp_client, client, cast):
    await sign_in_as(client, cast, "owner")
    resp = await client.get("/settings/audit")
    html = await resp.text()
    assert resp.status == 200 and "Audit log" in html and '<option value="client.create">' in html
    assert 'href="/settings/audit"' in await (await client.get("/settings")).text()
    other = await aiohttp_client(client.server)
    await sign_in_as(other, cast, "manager")
    resp = await other.get("/settings/audit")
    assert resp.status == 403 and "Only the account owner can read the audit log." in await resp.text()
    assert 'href="/settings/audit"' not in await (await other.get("/settings")).text()

"""R24: device registration and every way a client signs in through a link land in the audit log."""

from __future__ import annotations

from gateway.keys import CTX
from inbox import links
from inbox.models import Participant


async def audit_actions(api, cast):
    status, body = await api.get("/audit?limit=500", token=cast.tok("owner"))
    assert status == 200
    return [(row["action"], row.get("target_type"), row.get("actor_id")) for row in body["items"]]


async def test_r24_device_registration_is_audited(api, cast):
    status, device = await api.post(
        "/devices", {"platform": "apns", "token": "ab" * 32, "app": "practice"}, token=cast.tok("clinician")
    )
    assert status == 201
    assert ("device.register", "device", cast.id("clinician")) in await audit_actions(api, cast)


async def test_r24_link_sign_ins_are_audited_without_the_token(api, cast, client):
    ctx = client.server.app[CTX]
    person = await Participant.get(id=cast.id("client"))
    _, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    token = (await links.issue_notify_link(ctx, person, conv["id"])).rsplit("/", 1)[1]
    resp = await client.get(f"/portal/m/{token}", allow_redirects=False)
    assert resp.status == 303
    other = (await links.issue_notify_link(ctx, person, conv["id"])).rsplit("/", 1)[1]
    status, _ = await api.post("/auth/magic", {"token": other})
    assert status == 200
    actions = await audit_actions(api, cast)
    assert ("auth.link_sign_in", "link", cast.id("client")) in actions
    assert ("auth.link_exchange", "link", cast.id("client")) in actions
    _, body = await api.get("/audit?limit=500", token=cast.tok("owner"))
    assert token not in str(body) and other not in str(body)

"""Issue 12, people and access: who sees which clients (R28), scoped API keys (R29), second factors that
cannot be replayed or replaced with a token alone, and secrets sealed at rest (R30). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyotp
import pytest
from tortoise import Tortoise

from gateway.app import make_context
from gateway.keys import CTX
from inbox import accounts, rotation, sealed
from inbox.crypto import DataKeyring, DecryptError
from inbox.models import AuditEvent, Participant, Webhook
from portal_links import hash_token
from tests.conftest import PASSWORD, Api, Cast, build_cast
from tests.gateway.pages import email_of, hidden_fields, post_code, post_sign_in, session_cookie

STARTS = "2026-03-02T15:00:00Z"


def code_of(status_body: tuple[int, Any]) -> tuple[int, str | None]:
    status, body = status_body
    return status, (body.get("error") or {}).get("code") if isinstance(body, dict) else None


def names(body: dict[str, Any]) -> list[str]:
    return sorted(item["name"] for item in body["items"])


async def new_client(api: Api, cast: Cast, name: str, clinician: str) -> int:
    status, body = await api.post(
        "/clients",
        {
            "name": name,
            "email": f"{uuid.uuid4().hex[:8]}@example.net",
            "primary_clinician_id": cast.id(clinician),
        },
        token=cast.api_key,
    )
    assert status == 201, body
    return int(body["id"])


async def new_member(api: Api, cast: Cast, config: Any, roles: list[str]) -> tuple[int, str]:
    status, body = await api.post(
        "/team-members",
        {"name": "+".join(roles), "email": f"{uuid.uuid4().hex[:8]}@example.org", "roles": roles},
        token=cast.api_key,
    )
    assert status == 201, body
    member = await Participant.get(id=body["id"])
    token, _ = await accounts.issue_token(make_context(config), member, "app")
    return member.id, token


# --- R28: lists show only the clients one may message or read -----------------------------------------


async def test_r28_a_clinician_lists_only_the_clients_they_have_access_to(api: Api, cast: Cast) -> None:
    await new_client(api, cast, "Casey Other", "clinician2")
    mine = ["Client Person", "Client2 Person"]
    assert names((await api.get("/clients", token=cast.tok("clinician")))[1]) == mine
    assert names((await api.get("/clients", token=cast.tok("clinician2")))[1]) == ["Casey Other"]
    # A supervisor without access sees nobody (R7); granted access to one client, that one (R21).
    assert names((await api.get("/clients", token=cast.tok("supervisor")))[1]) == []
    status, _ = await api.put(
        f"/clients/{cast.id('client')}/access/{cast.id('supervisor')}", token=cast.api_key
    )
    assert status == 201
    assert names((await api.get("/clients", token=cast.tok("supervisor")))[1]) == ["Client Person"]
    # Withdrawn, gone again.
    await api.delete(f"/clients/{cast.id('client')}/access/{cast.id('supervisor')}", token=cast.api_key)
    assert names((await api.get("/clients", token=cast.tok("supervisor")))[1]) == []
    # Clients and contacts never list clients.
    assert code_of(await api.get("/clients", token=cast.tok("client"))) == (403, "team_only")
    # The web inbox's new-message picker offers the same clients (GET /recipients, with the session cookie).
    _, offered = await api.get("/recipients?q=Person", token=cast.tok("clinician2"))
    assert [p["name"] for p in offered["items"]] == []
    _, offered = await api.get("/recipients?q=Person", token=cast.tok("clinician"))
    assert sorted(p["name"] for p in offered["items"]) == mine


async def test_r28_billers_schedulers_managers_owners_and_keys_list_every_client(
    api: Api, cast: Cast, config: Any, clock: Any
) -> None:
    await new_client(api, cast, "Casey Other", "clinician2")
    everyone = ["Casey Other", "Client Person", "Client2 Person"]
    for who in ("biller", "scheduler", "manager", "owner"):
        status, body = await api.get("/clients", token=cast.tok(who))
        assert status == 200 and names(body) == everyone, who
    assert names((await api.get("/clients", token=cast.api_key))[1]) == everyone
    # A supervisor who is also a biller may message every client (R7), so sees them all.
    _, token = await new_member(api, cast, config, ["supervisor", "biller"])
    assert names((await api.get("/clients", token=token))[1]) == everyone
    # Another practice's people see none of these.
    other = await build_cast(api, config, clock, name="Else")
    assert "Casey Other" not in names((await api.get("/clients", token=other.tok("owner")))[1])


async def test_r28_a_client_out_of_sight_is_not_found_by_id_or_for_its_contacts(api: Api, cast: Cast) -> None:
    other = await new_client(api, cast, "Casey Other", "clinician2")
    for path in (f"/clients/{other}", f"/clients/{other}/contacts", f"/clients/{cast.id('client')}/contacts"):
        who = "clinician2" if str(cast.id("client")) in path else "clinician"
        assert code_of(await api.get(path, token=cast.tok(who))) == (404, "not_found"), path
    status, body = await api.get(f"/clients/{cast.id('client')}", token=cast.tok("clinician"))
    assert status == 200 and body["name"] == "Client Person"
    status, body = await api.get(f"/clients/{cast.id('client')}/contacts", token=cast.tok("clinician"))
    assert status == 200 and names(body) == ["Guardian"]
    status, body = await api.get(f"/clients/{other}", token=cast.tok("scheduler"))
    assert status == 200 and body["name"] == "Casey Other"


# --- R29: scoped keys, made and revoked by the owner ---------------------------------------------------


async def make_key(api: Api, cast: Cast, *scopes: str) -> dict[str, Any]:
    status, body = await api.post(
        "/api-keys", {"name": f"{'+'.join(scopes)} system", "scopes": list(scopes)}, token=cast.tok("owner")
    )
    assert status == 201, body
    return dict(body)


async def test_r29_the_owner_creates_lists_and_revokes_keys_and_a_revoked_key_stops_at_once(
    api: Api, cast: Cast, clock: Any, config: Any
) -> None:
    made = await make_key(api, cast, "provisioning")
    assert made["key"].startswith("smk_") and made["scopes"] == ["provisioning"]
    assert made["name"] == "provisioning system" and made["revoked_at"] is None
    assert (await api.get("/practice/settings", token=made["key"]))[0] == 200
    # Stored only as its keyed hash (HMAC with the server secret): nowhere in the row in clear.
    [stored] = await raw_rows(f"SELECT * FROM auth_token WHERE id = {int(made['id'])}")  # noqa: S608
    assert stored["token_hash"] == hash_token(made["key"], config.secret_key)
    assert not any(made["key"] in str(value) for value in stored.values())

    status, listed = await api.get("/api-keys", token=cast.tok("owner"))
    assert status == 200
    row = next(k for k in listed["items"] if k["id"] == made["id"])
    assert "key" not in row and row["last_used_at"] is not None and row["created_at"]
    assert made["key"] not in str(listed)

    clock.advance(5)
    status, body = await api.delete(f"/api-keys/{made['id']}", token=cast.tok("owner"))
    assert status == 200 and body["revoked_at"] is not None
    assert code_of(await api.get("/practice/settings", token=made["key"])) == (401, "invalid_token")
    _, listed = await api.get("/api-keys", token=cast.tok("owner"))
    assert next(k for k in listed["items"] if k["id"] == made["id"])["revoked_at"] == body["revoked_at"]
    # The practice's other key is untouched.
    assert (await api.get("/practice/settings", token=cast.api_key))[0] == 200

    rows = await AuditEvent.filter(
        practice_id=(await Participant.get(id=cast.id("owner"))).practice_id
    ).order_by("id")
    actions = [(r.action, r.target_id, r.detail) for r in rows if r.action.startswith("api_key.")]
    assert actions == [
        ("api_key.create", str(made["id"]), {"scopes": ["provisioning"]}),
        ("api_key.revoke", str(made["id"]), {"scopes": ["provisioning"]}),
    ]
    assert all(made["key"] not in str(r.detail) for r in rows)


async def test_r29_an_integration_key_cannot_provision(api: Api, cast: Cast) -> None:
    key = (await make_key(api, cast, "integration"))["key"]
    refused = [
        await api.post(
            "/team-members", {"name": "X", "email": "x@example.org", "roles": ["biller"]}, token=key
        ),
        await api.patch("/practice/settings", {"auto_enable_new_clients": True}, token=key),
        await api.get("/clients", token=key),
        await api.get("/team-members", token=key),
        await api.put(f"/clients/{cast.id('client')}/access/{cast.id('clinician2')}", token=key),
    ]
    assert [code_of(r) for r in refused] == [(403, "key_scope")] * len(refused)
    assert all(r[1]["error"]["rule"] == "R29" for r in refused)
    # What it is for works.
    event = {"type": "appointment_alert", "participant_id": cast.id("client"), "appointment_id": "A-1"}
    assert (await api.post("/events", event | {"starts_at": STARTS}, token=key))[0] == 202
    hook = {"url": "https://example.org/hook", "events": ["message.created"]}
    assert (await api.post("/webhooks", hook, token=key))[0] == 201


async def test_r29_a_provisioning_key_cannot_post_events_or_webhooks(api: Api, cast: Cast) -> None:
    key = (await make_key(api, cast, "provisioning"))["key"]
    event = {"type": "appointment_alert", "participant_id": cast.id("client"), "appointment_id": "A-1"}
    refused = [
        await api.post("/events", event | {"starts_at": STARTS}, token=key),
        await api.post(
            "/webhooks", {"url": "https://example.org/hook", "events": ["message.created"]}, token=key
        ),
        await api.get("/webhooks", token=key),
    ]
    assert [code_of(r) for r in refused] == [(403, "key_scope")] * len(refused)
    status, body = await api.post(
        "/clients",
        {"name": "New Person", "email": "new@example.net", "primary_clinician_id": None},
        token=key,
    )
    assert status == 201, body


async def test_r29_only_the_account_owner_manages_keys(api: Api, cast: Cast, config: Any, clock: Any) -> None:
    body = {"name": "billing", "scopes": ["integration"]}
    for who in ("manager", "clinician", "biller"):
        assert code_of(await api.post("/api-keys", body, token=cast.tok(who))) == (403, "owner_only"), who
        assert code_of(await api.get("/api-keys", token=cast.tok(who))) == (403, "owner_only"), who
    # A key cannot make keys (not even one with both scopes).
    assert code_of(await api.post("/api-keys", body, token=cast.api_key)) == (403, "participant_required")
    owner = cast.tok("owner")
    for bad in ({"name": "x", "scopes": []}, {"name": "x", "scopes": ["everything"]}, {"name": "x"}):
        status, _ = await api.post("/api-keys", bad, token=owner)
        assert status == 422, bad
    assert (await api.post("/api-keys", {"name": " ", "scopes": ["integration"]}, token=owner))[0] == 422
    made = await make_key(api, cast, "integration")
    # Another practice's owner finds no such key to revoke, and it keeps working.
    other = await build_cast(api, config, clock, name="Else")
    assert code_of(await api.delete(f"/api-keys/{made['id']}", token=other.tok("owner"))) == (
        404,
        "not_found",
    )
    assert made["id"] not in [
        k["id"] for k in (await api.get("/api-keys", token=other.tok("owner")))[1]["items"]
    ]
    assert (await api.get("/webhooks", token=made["key"]))[0] == 200
    assert code_of(await api.delete("/api-keys/99999999", token=owner)) == (404, "not_found")


async def test_r29_a_key_never_makes_or_touches_an_account_owner(api: Api, cast: Cast) -> None:
    key = cast.api_key
    new_owner = {"name": "Owen", "email": "owen@example.org", "roles": ["account_owner"]}
    assert code_of(await api.post("/team-members", new_owner, token=key)) == (403, "owner_only")
    promote = {"roles": ["practice_manager", "account_owner"]}
    assert code_of(await api.patch(f"/team-members/{cast.id('manager')}", promote, token=key)) == (
        403,
        "owner_only",
    )
    owner = cast.id("owner")
    for change in ({"roles": ["clinician"]}, {"messaging_enabled": False}, {"name": "Someone Else"}):
        assert code_of(await api.patch(f"/team-members/{owner}", change, token=key)) == (403, "owner_only")
    _, team = await api.get("/team-members", token=cast.tok("owner"))
    assert [m["roles"] for m in team["items"] if m["id"] == owner] == [["account_owner", "clinician"]]
    assert not any("account_owner" in m["roles"] for m in team["items"] if m["id"] != owner)
    # The owner, signed in, still can.
    status, body = await api.patch(f"/team-members/{cast.id('manager')}", promote, token=cast.tok("owner"))
    assert status == 200 and "account_owner" in body["roles"]


async def test_r29_the_key_create_practice_prints_has_both_scopes(api: Api, cast: Cast) -> None:
    status, listed = await api.get("/api-keys", token=cast.tok("owner"))
    assert status == 200 and [k["scopes"] for k in listed["items"]] == [["integration", "provisioning"]]


# --- R30: a code works once; enrolling asks for the password; secrets sealed -------------------------


async def enrol(api: Api, cast: Cast, who: str = "clinician", **extra: str) -> pyotp.TOTP:
    status, body = await api.post(
        f"/team-members/{cast.id(who)}/totp", {"password": PASSWORD, **extra}, token=cast.tok(who)
    )
    assert status == 200, body
    return pyotp.TOTP(pyotp.parse_uri(body["provisioning_uri"]).secret)


async def login(api: Api, email: str, otp: str | None) -> tuple[int, str | None]:
    status, body = await api.post("/auth/login", {"email": email, "password": PASSWORD, "otp": otp})
    return (status, None) if status == 200 else code_of((status, body))


async def test_r30_a_totp_code_works_once_and_never_one_from_an_earlier_step(
    api: Api, cast: Cast, clock: Any
) -> None:
    totp = await enrol(api, cast)
    email = await email_of(cast.id("clinician"))
    now_code, earlier_code = totp.at(clock.now()), totp.at(clock.now(), counter_offset=-1)
    assert await login(api, email, now_code) == (200, None)
    assert await login(api, email, now_code) == (401, "invalid_otp")  # replayed
    # The step before is still within the drift window, but earlier than the one accepted.
    assert await login(api, email, earlier_code) == (401, "invalid_otp")
    clock.advance(30)
    assert await login(api, email, totp.at(clock.now())) == (200, None)


async def test_r30_a_code_used_on_the_sign_in_page_does_not_work_in_the_api(
    api: Api, client: Any, cast: Cast, clock: Any
) -> None:
    totp = await enrol(api, cast)
    email = await email_of(cast.id("clinician"))
    await post_sign_in(client, email, PASSWORD)
    code = totp.at(clock.now())
    assert (await post_code(client, code)).status == 303 and session_cookie(client)
    assert await login(api, email, code) == (401, "invalid_otp")
    # …and the other way round.
    clock.advance(30)
    code = totp.at(clock.now())
    assert await login(api, email, code) == (200, None)
    client.session.cookie_jar.clear()
    await post_sign_in(client, email, PASSWORD)
    resp = await post_code(client, code)
    assert resp.status == 401 and session_cookie(client) is None


async def test_r30_enrolling_or_replacing_a_factor_asks_for_the_password_and_the_current_code(
    api: Api, cast: Cast, clock: Any
) -> None:
    path, token = f"/team-members/{cast.id('clinician')}/totp", cast.tok("clinician")
    assert code_of(await api.post(path, {}, token=token)) == (422, "missing_field")
    assert code_of(await api.post(path, {"password": "not the password"}, token=token)) == (
        403,
        "invalid_password",
    )
    assert not (await Participant.get(id=cast.id("clinician"))).totp_enabled
    first = await enrol(api, cast)

    # Replacing: the token and the password are not enough.
    assert code_of(await api.post(path, {"password": PASSWORD}, token=token)) == (403, "otp_required")
    wrong = "000000" if first.at(clock.now()) != "000000" else "111111"
    assert code_of(await api.post(path, {"password": PASSWORD, "otp": wrong}, token=token)) == (
        403,
        "invalid_otp",
    )
    code = first.at(clock.now())
    assert code_of(await api.post(path, {"password": "nope", "otp": code}, token=token)) == (
        403,
        "invalid_password",
    )
    second = await enrol(api, cast, otp=code)
    assert second.secret != first.secret
    # The code that authorised the change was used up, and the old app's codes no longer sign in.
    clock.advance(30)
    email = await email_of(cast.id("clinician"))
    assert await login(api, email, first.at(clock.now())) == (401, "invalid_otp")
    assert await login(api, email, second.at(clock.now())) == (200, None)


async def test_r30_a_stolen_token_cannot_guess_the_password_at_enrolment(
    api: Api, cast: Cast, clock: Any
) -> None:
    path, token = f"/team-members/{cast.id('clinician')}/totp", cast.tok("clinician")
    for n in range(10):
        assert code_of(await api.post(path, {"password": f"guess number {n}"}, token=token)) == (
            403,
            "invalid_password",
        )
    # Rate-limited like a sign-in, and the failures lock the account like failed sign-ins.
    assert code_of(await api.post(path, {"password": PASSWORD}, token=token))[0] == 429
    clock.advance(301)
    assert code_of(await api.post(path, {"password": PASSWORD}, token=token)) == (403, "account_locked")
    # The locked account signs in like a wrong password (nothing tells a guesser that it is locked), even
    # with the right password.
    assert await login(api, await email_of(cast.id("clinician")), None) == (401, "invalid_credentials")
    assert not (await Participant.get(id=cast.id("clinician"))).totp_enabled


async def test_r30_the_web_set_up_asks_for_the_password_and_the_current_code(
    api: Api, client: Any, cast: Cast, clock: Any
) -> None:
    who = cast.id("clinician")
    email = await email_of(who)
    assert (await post_sign_in(client, email, PASSWORD)).status == 303
    page = await client.get("/settings/two-step")
    html = await page.text()
    assert 'name="password"' in html and 'name="current_code"' not in html
    fields = hidden_fields(html)
    fields["code"] = pyotp.TOTP(fields["secret"]).at(clock.now())
    resp = await client.post("/settings/two-step", data=fields | {"password": "wrong password!"})
    assert resp.status == 403 and "The password is not right." in await resp.text()
    assert not (await Participant.get(id=who)).totp_enabled
    resp = await client.post(
        "/settings/two-step", data=fields | {"password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 303
    first = fields["secret"]
    # The code that confirmed the set-up cannot sign in afterwards.
    assert await login(api, email, fields["code"]) == (401, "invalid_otp")

    # Replacing it asks for the current app's code as well.
    clock.advance(30)
    html = await (await client.get("/settings/two-step?new=1")).text()
    assert 'name="current_code"' in html
    fields = hidden_fields(html)
    fields |= {"code": pyotp.TOTP(fields["secret"]).at(clock.now()), "password": PASSWORD}
    resp = await client.post("/settings/two-step", data=fields)
    assert resp.status == 403 and "Enter the code your authenticator app shows now." in await resp.text()
    resp = await client.post(
        "/settings/two-step",
        data=fields | {"current_code": pyotp.TOTP(first).at(clock.now())},
        allow_redirects=False,
    )
    assert resp.status == 303
    member = await Participant.get(id=who)
    assert sealed.open_totp(client.server.app[CTX].keyring, member) == fields["secret"] != first


async def raw_rows(sql: str) -> list[dict[str, Any]]:
    return list(await Tortoise.get_connection("default").execute_query_dict(sql))


async def test_r30_totp_and_webhook_secrets_are_not_stored_in_clear_and_rotation_reencrypts_them(
    api: Api, cast: Cast, config: Any
) -> None:
    totp = await enrol(api, cast)
    status, hook = await api.post(
        "/webhooks", {"url": "https://example.org/hook", "events": ["message.created"]}, token=cast.api_key
    )
    assert status == 201
    member_row = (await raw_rows(f"SELECT * FROM participant WHERE id = {cast.id('clinician')}"))[0]  # noqa: S608
    hook_row = (await raw_rows(f"SELECT * FROM webhook WHERE id = {int(hook['id'])}"))[0]  # noqa: S608
    for row, secret in ((member_row, totp.secret), (hook_row, hook["secret"])):
        as_text = " ".join(str(v) for v in row.values()) + " ".join(
            bytes(v).decode("latin-1") for v in row.values() if isinstance(v, bytes | bytearray | memoryview)
        )
        assert secret not in as_text and secret[:12] not in as_text
    assert member_row["totp_secret"] is None and hook_row["secret"] == ""

    old = DataKeyring(config.data_keys)
    keyring = DataKeyring([("k2", b"\x07" * 32), *config.data_keys])
    summary = await rotation.rotate(keyring)
    assert summary.tallies["TOTP secrets"].reencrypted == 1
    assert summary.tallies["webhook secrets"].reencrypted == 1
    member = await Participant.get(id=cast.id("clinician"))
    webhook = await Webhook.get(id=hook["id"])
    for blob in (member.totp_secret_cipher, webhook.secret_cipher):
        assert blob is not None and DataKeyring.key_id_of(bytes(blob)) == "k2"
    assert sealed.open_totp(keyring, member) == totp.secret
    assert sealed.open_webhook_secret(keyring, webhook) == hook["secret"]
    assert old.key_ids == ("k1",)
    assert await rotation.rows_under_older_keys(keyring) == 0


async def test_r30_a_sealed_secret_copied_to_another_row_does_not_open(
    api: Api, cast: Cast, config: Any
) -> None:
    await enrol(api, cast)
    keyring = DataKeyring(config.data_keys)
    mine = await Participant.get(id=cast.id("clinician"))
    other = await Participant.get(id=cast.id("clinician2"))
    other.totp_secret_cipher = mine.totp_secret_cipher
    with pytest.raises(DecryptError):
        sealed.open_totp(keyring, other)


# --- device tokens: never moved across practices ---------------------------------------------------------

APNS = "cd" * 32


async def test_a_device_token_registered_in_another_practice_is_neither_moved_nor_revealed(
    api: Api, cast: Cast, config: Any, clock: Any
) -> None:
    from inbox import devices

    body = {"platform": "apns", "token": APNS, "app": "practice"}
    _, mine = await api.post("/devices", body, token=cast.tok("clinician"))
    await api.patch(f"/devices/{mine['id']}", {"alerts": {"appointment": False}}, token=cast.tok("clinician"))
    other = await build_cast(api, config, clock, name="Across Town")
    status, theirs = await api.post("/devices", body, token=other.tok("owner"))
    # Answered as for a new device: their own id, all alerts on (nothing of the first registration shows).
    assert status == 201 and theirs["id"] != mine["id"] and all(theirs["alerts"].values())
    assert (await api.post("/devices", body, token=other.tok("owner")))[1]["id"] == theirs["id"]
    # The first practice's registration is untouched: same person, same choices, still getting pushes.
    _, listed = await api.get("/devices", token=cast.tok("clinician"))
    assert [(d["id"], d["alerts"]["appointment"], d["enabled"]) for d in listed["items"]] == [
        (mine["id"], False, True)
    ]
    targets = await devices.push_targets([cast.id("clinician"), other.id("owner")], "new_message")
    assert [d.id for d in targets[cast.id("clinician")]] == [mine["id"]]
    assert [d.id for d in targets[other.id("owner")]] == [theirs["id"]]
    # Within a practice the phone still changes hands when its new user signs in on it (own token).
    status, moved = await api.post("/devices", body, token=cast.tok("biller"))
    assert status == 201 and moved["id"] == mine["id"]
    assert (await api.get("/devices", token=cast.tok("clinician")))[1]["items"] == []
    assert [d["id"] for d in (await api.get("/devices", token=other.tok("owner")))[1]["items"]] == [
        theirs["id"]
    ]

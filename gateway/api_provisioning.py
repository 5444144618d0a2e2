"""Provisioning (docs/api.md §3): practice settings, team members, clients, contacts, access, sign-in."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from tortoise.transactions import in_transaction

from gateway.auditing import audit_request, audit_throttled_sign_in
from gateway.auth import require_participant, require_principal, require_provisioner
from gateway.keys import CONFIG, CTX, DISPATCHER, HUB
from gateway.limits import client_ip, enforce
from gateway.revocation import access_ended
from gateway.validation import path_int, present, read_json, take
from inbox import access, accounts, apikeys, audit, blocked, messaging, passwords, permissions, visibility
from inbox.accounts import Principal
from inbox.errors import Forbidden, SlowDown, Unauthenticated
from inbox.models import CLIENT, TEAM, ClientAccess, Participant, Practice

routes = web.RouteTableDef()


def team_member_json(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "email": p.email,
        "kind": p.kind,
        "roles": sorted(p.role_set),
        "messaging_enabled": p.messaging_enabled,
        "can_export": p.can_export,
        "totp_enabled": p.totp_enabled,
        "away": p.away_enabled,
        "active": p.active,
    }


def client_json(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "email": p.email,
        "kind": p.kind,
        "primary_clinician_id": p.primary_clinician_id,
        "portal_access": p.portal_access,
        "messaging_enabled": p.messaging_enabled,
    }


def contact_json(p: Participant) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "email": p.email, "kind": p.kind, "client_id": p.client_id}


def _changed(changes: dict[str, Any]) -> dict[str, Any]:
    """An audit detail for a change: which fields changed, and the new value of flags, ids and roles
    (names, email addresses and passwords are named, never copied)."""
    detail: dict[str, Any] = {"changed": sorted(changes)}
    for key, value in changes.items():
        if key not in ("name", "email", "password"):
            detail[key] = value
    return detail


# --- sign-in -----------------------------------------------------------------------------------------


@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    data = await read_json(request, {"email", "password", "otp", "device_token", "practice_id"})
    email = take(data, "email", str, required=True)
    password = take(data, "password", str, required=True)
    otp = take(data, "otp", str, nullable=True)
    device = take(data, "device_token", str, nullable=True)
    practice_id = take(data, "practice_id", int, nullable=True)
    # A device that signed in to this account before is trusted: throttled on its own, never locked out
    # by someone else's failures (see accounts.authenticate).
    trusted = await accounts.trusted_device_member(ctx, email, device, practice_id)
    try:
        if trusted is not None:
            await enforce(request, "login_device", device)
        else:
            await enforce(request, "login", email)
    except SlowDown:
        await audit_throttled_sign_in(request, email)
        raise
    try:
        member = await accounts.authenticate(
            ctx, email, password, otp, trusted_member_id=trusted, practice_id=practice_id
        )
    except Unauthenticated as exc:
        await audit.record_sign_in(ctx, email, None, exc.code, client_ip(request))
        raise
    token, _ = await accounts.issue_token(ctx, member, "app")
    await audit.record_sign_in(ctx, email, member, None, client_ip(request))
    return web.json_response(
        {
            "token": token,
            "participant": messaging.me_json(member),
            "device_token": device if trusted == member.id else accounts.device_token_for(ctx, member),
        }
    )


@routes.post("/api/v1/auth/logout")
async def logout(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if principal.is_api_key:
        raise Forbidden("participant_required", "The practice API key cannot sign out.")
    async with in_transaction():  # the sign-out and its audit row commit together, or neither does
        await accounts.revoke_token(request.app[CTX], principal)
        await audit_request(request, principal, "auth.logout")
    if principal.participant is not None:  # R27: this token's open sockets close too
        await request.app[HUB].access_changed([principal.participant.id])
    return web.json_response({"ok": True})


# --- practice settings -------------------------------------------------------------------------------


_SETTINGS = {
    "client_messaging_enabled": (bool, False),
    "team_messaging_enabled": (bool, False),
    "auto_enable_new_clients": (bool, False),
    "unread_email_delay_s": (int, False),
    "name": (str, False),
    "allow_unencrypted_exports": (bool, False),
    "time_zone": (str, False),
}


@routes.get("/api/v1/practice/settings")
async def get_settings(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    practice = await Practice.get(id=principal.practice_id)
    return web.json_response(accounts.settings_json(practice, request.app[CTX]))


@routes.patch("/api/v1/practice/settings")
async def patch_settings(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    data = await read_json(request, set(_SETTINGS))
    changes = present(data, _SETTINGS)
    practice = await Practice.get(id=principal.practice_id)
    ctx = request.app[CTX]
    was = (practice.team_messaging_enabled, practice.client_messaging_enabled)
    async with in_transaction():  # the change and its audit row commit together, or neither does
        await accounts.update_settings(ctx, practice, changes, testing=request.app[CONFIG].testing)
        await audit_request(request, principal, "settings.update", "practice", practice.id, changes)
    if was != (practice.team_messaging_enabled, practice.client_messaging_enabled):
        await messaging_changed(request, await blocked.practice_people(practice.id))
    return web.json_response(accounts.settings_json(practice, ctx))


async def messaging_changed(request: web.Request, recipients: list[int]) -> None:
    """Who may write where has changed: open threads and pickers read their conversation again, so a
    blocked state shows (or goes) while the page is open (docs/api.md §4)."""
    if recipients:
        await request.app[HUB].publish(recipients, {"type": "messaging.changed"})


# --- team members ------------------------------------------------------------------------------------


@routes.get("/api/v1/team-members")
async def list_team(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if principal.participant is not None and principal.participant.kind != TEAM:
        raise Forbidden("team_only", "Only team members can list the team.")
    apikeys.require_scope(principal, apikeys.PROVISIONING)
    query = Participant.filter(practice_id=principal.practice_id, kind=TEAM)
    if request.query.get("include_inactive") not in ("1", "true"):
        query = query.filter(active=True)  # R26: deactivated members leave the lists
    members = await query.order_by("name")
    return web.json_response({"items": [team_member_json(m) for m in members]})


@routes.post("/api/v1/team-members")
async def create_team_member(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    data = await read_json(request, {"name", "email", "roles", "password", "can_export", "messaging_enabled"})
    roles = take(data, "roles", list, required=True, item=str, max_items=6)
    can_export = bool(take(data, "can_export", bool))
    accounts.check_team_change(principal, None, roles, can_export)

    async def audited(member: Participant) -> None:  # in the creation's transaction (inbox.passwords)
        await audit_request(
            request,
            principal,
            "team_member.create",
            "participant",
            member.id,
            {
                "roles": sorted(member.role_set),
                "can_export": member.can_export,
                "invited": member.password_hash is None,
            },
        )

    # Without a password (the normal way in), the new member gets an invitation email to choose one.
    member = await passwords.add_team_member(
        request.app[CTX],
        principal.practice_id,
        name=take(data, "name", str, required=True),
        email=take(data, "email", str, required=True),
        roles=roles,
        password=take(data, "password", str, nullable=True),
        can_export=can_export,
        messaging_enabled=take(data, "messaging_enabled", bool) is not False,
        then=audited,
    )
    if member.password_hash is None:
        request.app[DISPATCHER].wake()
    return web.json_response(team_member_json(member), status=201)


_MEMBER_PATCH = {
    "messaging_enabled": (bool, False),
    "roles": (list, False),
    "can_export": (bool, False),
    "name": (str, False),
    "active": (bool, False),
}


@routes.patch("/api/v1/team-members/{id}")
async def patch_team_member(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    data = await read_json(request, {*_MEMBER_PATCH, "password"})
    if "password" in data:
        # R25: refused whatever else the body holds, before anything changes.
        raise accounts.password_is_personal()
    changes = present(data, _MEMBER_PATCH)
    if "roles" in changes:
        take(data, "roles", list, item=str, max_items=6)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=TEAM)
    accounts.check_team_change(principal, member, changes.get("roles"), "can_export" in changes)
    active = changes.pop("active", None)
    if active is False:
        await _deactivate(request, principal, member)
    async with in_transaction():  # each change and its audit row commit together, or neither does
        await accounts.update_team_member(request.app[CTX], member, changes)
        if changes:
            await audit_request(
                request, principal, "team_member.update", "participant", member.id, _changed(changes)
            )
    if changes.get("messaging_enabled") is False:  # R3, R27: their open sockets close
        await request.app[HUB].access_changed([member.id])
    if active is True:
        async with in_transaction():
            if await access.reactivate(principal, member):
                await audit_request(request, principal, "team_member.reactivate", "participant", member.id)
    if "messaging_enabled" in changes or active is not None:
        await messaging_changed(request, await blocked.people_sharing_conversations(member.id))
    return web.json_response(team_member_json(member))


@routes.delete("/api/v1/team-members/{id}")
async def deactivate_team_member(request: web.Request) -> web.Response:
    """R26: deactivation, not deletion: what the member wrote stays in transcripts and exports."""
    principal = await require_provisioner(request)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=TEAM)
    await _deactivate(request, principal, member)
    await messaging_changed(request, await blocked.people_sharing_conversations(member.id))
    return web.json_response(team_member_json(member))


async def _deactivate(request: web.Request, principal: accounts.Principal, member: Participant) -> None:
    async with in_transaction():  # the deactivation and its audit row commit together, or neither does
        ended = await access.deactivate(request.app[CTX], principal, member)
        if ended:
            await audit_request(request, principal, "team_member.deactivate", "participant", member.id)
    if ended:
        await access_ended(request, member.id)


@routes.post("/api/v1/team-members/{id}/totp")
async def enrol_totp(request: web.Request) -> web.Response:
    me = await require_participant(request)
    member_id = path_int(request, "id")
    if me.id != member_id or me.kind != TEAM:
        # Only the person themselves may set up their second factor.
        await accounts.get_participant(me.practice_id, member_id, kind=TEAM)
        raise Forbidden("own_account_only", "Only team members themselves can set up their second factor.")
    data = await read_json(request, {"password", "otp"})
    password = take(data, "password", str, required=True)
    otp = take(data, "otp", str, nullable=True)
    # R30: the token alone does not set up or replace the second factor; the password (and the current
    # code) are checked as at sign-in, under the same limits.
    await enforce(request, "login", me.email)
    await accounts.reconfirm(request.app[CTX], me, password, otp)
    practice = await Practice.get(id=me.practice_id)
    async with in_transaction():  # the new secret and its audit row commit together, or neither does
        uri = await accounts.start_totp_enrolment(request.app[CTX], me, issuer=f"securemsg ({practice.name})")
        await audit_request(request, me, "totp.enrol", "participant", me.id)
    return web.json_response({"provisioning_uri": uri})


# --- clients, contacts, access -----------------------------------------------------------------------


async def _client_reader(request: web.Request) -> Principal:
    """Who may see clients at all: team members (which ones, R28 decides) and keys with provisioning."""
    principal = await require_principal(request)
    if principal.participant is not None and principal.participant.kind != TEAM:
        raise Forbidden("team_only", "Only team members can list clients.")
    apikeys.require_scope(principal, apikeys.PROVISIONING)
    return principal


@routes.get("/api/v1/clients")
async def list_clients(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    clients = await visibility.visible_clients(principal)  # R28: only the clients this caller may see
    return web.json_response({"items": [client_json(c) for c in clients]})


@routes.post("/api/v1/clients")
async def create_client(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    data = await read_json(
        request, {"name", "email", "primary_clinician_id", "portal_access", "messaging_enabled"}
    )
    practice = await Practice.get(id=principal.practice_id)
    portal = take(data, "portal_access", bool)
    name = take(data, "name", str, required=True)
    email = take(data, "email", str, required=True)
    primary = take(data, "primary_clinician_id", int, nullable=True)
    messaging = take(data, "messaging_enabled", bool)
    async with in_transaction():  # the client and its audit row commit together, or neither does
        client = await accounts.create_client(
            request.app[CTX],
            practice,
            name=name,
            email=email,
            primary_clinician_id=primary,
            portal_access=True if portal is None else portal,
            messaging_enabled=messaging,
        )
        await audit_request(
            request,
            principal,
            "client.create",
            "participant",
            client.id,
            {
                "primary_clinician_id": client.primary_clinician_id,
                "messaging_enabled": client.messaging_enabled,
            },
        )
    return web.json_response(client_json(client), status=201)


_CLIENT_PATCH = {
    "messaging_enabled": (bool, False),
    "primary_clinician_id": (int, True),
    "portal_access": (bool, False),
    "name": (str, False),
    "email": (str, False),
}


@routes.get("/api/v1/clients/{id}")
async def get_client(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    client = await visibility.visible_client(principal, path_int(request, "id"))
    return web.json_response(client_json(client))


@routes.patch("/api/v1/clients/{id}")
async def patch_client(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if _may_only_enable(principal):
        data = await read_json(request, set(_CLIENT_PATCH))
        changes = present(data, _CLIENT_PATCH)
        client = await _clinician_enables(principal, path_int(request, "id"), changes)
    else:
        accounts.require_manager(principal)
        data = await read_json(request, set(_CLIENT_PATCH))
        changes = present(data, _CLIENT_PATCH)
        client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    async with in_transaction():  # the change and its audit row commit together, or neither does
        await accounts.update_client(request.app[CTX], client, changes)
        await audit_request(request, principal, "client.update", "participant", client.id, _changed(changes))
    if changes.get("messaging_enabled") is False or changes.get("portal_access") is False:
        # R4, R10, R27: the sockets of the client and of its contacts close.
        await request.app[HUB].access_changed(await accounts.client_and_contacts(client))
    if "messaging_enabled" in changes or "portal_access" in changes:
        await messaging_changed(request, await blocked.people_in_client_conversations(client.id))
    return web.json_response(client_json(client))


def _may_only_enable(principal: Principal) -> bool:
    """A clinician or supervisor who is not a manager: they may turn a client's messaging on, nothing else."""
    member = principal.participant
    if principal.is_api_key or member is None or member.kind != TEAM:
        return False
    roles = member.role_set
    return not (roles & permissions.MANAGER_ROLES) and bool(roles & permissions.ENABLE_WITH_ACCESS_ROLES)


async def _clinician_enables(principal: Principal, client_id: int, changes: dict[str, Any]) -> Participant:
    """R4, R5: "Enable Secure Messaging" from the picker or the thread — only on, only that field, and only
    for a client whose profile the clinician has access to. A client outside what they may see is "not
    found" (R28), as in every other call."""
    if changes != {"messaging_enabled": True}:
        raise Forbidden(
            "managers_only",
            "A clinician can only turn a client's secure messaging on; other changes need the account owner "
            "or a practice manager.",
        )
    client = await visibility.visible_client(principal, client_id)
    member = principal.participant
    assert member is not None
    grants = set(
        await ClientAccess.filter(team_member_id=member.id, client_id=client.id).values_list(
            "team_member_id", "client_id"
        )
    )
    party = messaging.party_of(member, {})
    if not permissions.may_enable_client_messaging(party, client.id, client.primary_clinician_id, grants):
        raise Forbidden(
            "clinician_without_client_access",
            "You can turn on secure messaging only for a client whose profile you have access to.",
            rule="R5",
        )
    return client


@routes.post("/api/v1/clients/{id}/contacts")
async def add_contact(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    data = await read_json(request, {"name", "email"})
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    name = take(data, "name", str, required=True)
    email = take(data, "email", str, required=True)
    async with in_transaction():  # the contact and its audit row commit together, or neither does
        contact = await accounts.add_contact(request.app[CTX], client, name=name, email=email)
        await audit_request(
            request, principal, "contact.create", "participant", contact.id, {"client_id": client.id}
        )
    return web.json_response(contact_json(contact), status=201)


@routes.get("/api/v1/clients/{id}/contacts")
async def list_contacts(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    client = await visibility.visible_client(principal, path_int(request, "id"))
    contacts = await Participant.filter(client_id=client.id, kind="contact").order_by("id")
    return web.json_response({"items": [contact_json(c) for c in contacts]})


@routes.get("/api/v1/clients/{id}/access")
async def list_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    return web.json_response(
        {
            "primary_clinician_id": client.primary_clinician_id,
            "team_member_ids": await accounts.access_list(client),
        }
    )


@routes.put("/api/v1/clients/{id}/access/{member_id}")
async def grant_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "member_id"), kind=TEAM)
    async with in_transaction():  # the grant and its audit row commit together, or neither does
        created = await accounts.grant_access(request.app[CTX], client, member)
        await audit_request(
            request, principal, "access.grant", "participant", client.id, {"team_member_id": member.id}
        )
    return web.json_response(
        {"client_id": client.id, "team_member_id": member.id, "access": True}, status=201 if created else 200
    )


@routes.delete("/api/v1/clients/{id}/access/{member_id}")
async def withdraw_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "member_id"), kind=TEAM)
    async with in_transaction():  # the withdrawal and its audit row commit together, or neither does
        await accounts.withdraw_access(client, member)
        await audit_request(
            request, principal, "access.withdraw", "participant", client.id, {"team_member_id": member.id}
        )
    return web.json_response({"client_id": client.id, "team_member_id": member.id, "access": False})

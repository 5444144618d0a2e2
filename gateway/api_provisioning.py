"""Provisioning (docs/api.md §3): practice settings, team members, clients, contacts, access, sign-in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.auditing import audit_request, audit_throttled_sign_in
from gateway.auth import require_participant, require_principal, require_provisioner
from gateway.keys import CONFIG, CTX, DISPATCHER, HUB
from gateway.limits import client_ip, enforce
from gateway.revocation import access_ended
from gateway.routing import MANAGER, NONE, PERSON, TEAM_OR_KEY, operation, path_id, query
from gateway.shapes import people as shapes
from gateway.shapes.common import Ok
from gateway.typed import answer, read_body
from gateway.validation import path_int
from inbox import (
    access,
    accounts,
    apikeys,
    audit,
    blocked,
    db,
    directory,
    messaging,
    passwords,
    permissions,
    visibility,
)
from inbox.accounts import LOCKOUT_AFTER, Principal
from inbox.errors import Forbidden, SlowDown, Unauthenticated
from inbox.kinds import CLIENT, TEAM

if TYPE_CHECKING:
    from inbox.models import Participant

routes = web.RouteTableDef()

MEMBER = [path_id(what="team member")]
CLIENT_ID = [path_id(what="client")]
ACCESS = [path_id(what="client"), path_id("member_id", "team member")]


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
@operation(
    "login",
    "Team sign-in: password, then the TOTP code when enrolled.",
    tag="auth",
    security=NONE,
    body=shapes.LoginBody,
    ok={200: ("Signed in.", shapes.SignedIn)},
    errors=[401, 409, 429],
    description="401 `invalid_credentials`, `otp_required` or `invalid_otp`. A wrong password, an "
    "unknown address, a deactivated account (R26) and an account locked for 15 minutes after "
    f"{LOCKOUT_AFTER} failures all answer the same `invalid_credentials`. The answer's "
    "`device_token` marks this device as trusted: sent back with later sign-ins of the same "
    "account, they are throttled on their own and neither meet nor count towards the account's "
    "lockout (docs/security.md). An address may have an account at several practices: when the "
    "password opens more than one, 409 `practice_required` lists them (`practices: [{id, name}]`) "
    "and the sign-in is sent again with `practice_id`.",
)
async def login(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_body(request, shapes.LoginBody)
    email, password, otp = body.email, body.password, body.otp
    device, practice_id = body.device_token, body.practice_id
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
    async with db.transaction():  # the token and its sign-in's audit row commit together, or neither does
        token, _ = await accounts.issue_token(ctx, member, "app")
        await audit.record_sign_in(ctx, email, member, None, client_ip(request))
    return answer(
        {
            "token": token,
            "participant": messaging.me_json(member),
            "device_token": device if trusted == member.id else accounts.device_token_for(ctx, member),
        }
    )


@routes.post("/api/v1/auth/logout")
@operation(
    "logout",
    "Sign out: the token stops working and the devices it registered stop getting pushes.",
    tag="auth",
    security=PERSON,
    ok={200: ("Signed out.", Ok)},
    errors=[403],
)
async def logout(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if principal.is_api_key:
        raise Forbidden("participant_required", "The practice API key cannot sign out.")
    async with db.transaction():  # the sign-out and its audit row commit together, or neither does
        await accounts.revoke_token(request.app[CTX], principal)
        await audit_request(request, principal, "auth.logout")
    if principal.participant is not None:  # R27: this token's open sockets close too
        await request.app[HUB].access_changed([principal.participant.id])
    return answer(Ok.model_construct(ok=True))


# --- practice settings -------------------------------------------------------------------------------


@routes.get("/api/v1/practice/settings")
@operation(
    "get_settings",
    "The practice's messaging settings.",
    tag="provisioning",
    security=MANAGER,
    ok={200: ("Settings.", shapes.Settings)},
    errors=[403],
)
async def get_settings(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    practice = await directory.get_practice(principal.practice_id)
    return answer(accounts.settings_json(practice, request.app[CTX]))


@routes.patch("/api/v1/practice/settings")
@operation(
    "patch_settings",
    "Change the practice's messaging settings (R1, R2, R17).",
    tag="provisioning",
    security=MANAGER,
    body=shapes.SettingsBody,
    ok={200: ("Settings.", shapes.Settings)},
    errors=[400, 403, 409],
    description="409 `team_messaging_off` (R1) when client messaging is turned on while the "
    "team's is off. `allow_unencrypted_exports` (R23, default false) lets exports be asked for "
    "without a password. 400 `invalid_field` for a `time_zone` that is not an IANA zone name.",
)
async def patch_settings(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    changes = (await read_body(request, shapes.SettingsBody)).model_dump(exclude_unset=True)
    practice = await directory.get_practice(principal.practice_id)
    ctx = request.app[CTX]
    was = (practice.team_messaging_enabled, practice.client_messaging_enabled)
    async with db.transaction():  # the change and its audit row commit together, or neither does
        await accounts.update_settings(ctx, practice, changes, testing=request.app[CONFIG].testing)
        await audit_request(request, principal, "settings.update", "practice", practice.id, changes)
    if was != (practice.team_messaging_enabled, practice.client_messaging_enabled):
        await messaging_changed(request, await blocked.practice_people(practice.id))
    return answer(accounts.settings_json(practice, ctx))


async def messaging_changed(request: web.Request, recipients: list[int]) -> None:
    """Who may write where has changed: open threads and pickers read their conversation again, so a
    blocked state shows (or goes) while the page is open (docs/api.md §4)."""
    if recipients:
        await request.app[HUB].publish(recipients, {"type": "messaging.changed"})


# --- team members ------------------------------------------------------------------------------------


@routes.get("/api/v1/team-members")
@operation(
    "list_team",
    "The practice's active team members.",
    tag="provisioning",
    security=TEAM_OR_KEY,
    params=[
        query(
            "include_inactive",
            {"type": "string", "enum": ["0", "1", "true"]},
            "`1`: deactivated members too (R26).",
        )
    ],
    ok={200: ("Team members.", shapes.TeamMembers)},
    errors=[403],
)
async def list_team(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if principal.participant is not None and principal.participant.kind != TEAM:
        raise Forbidden("team_only", "Only team members can list the team.")
    apikeys.require_scope(principal, apikeys.PROVISIONING)
    # R26: deactivated members leave the lists
    include_inactive = request.query.get("include_inactive") in ("1", "true")
    members = await directory.team_members(principal.practice_id, include_inactive=include_inactive)
    return answer(shapes.TeamMembers.model_construct(items=[shapes.TeamMember.of(m) for m in members]))


@routes.post("/api/v1/team-members")
@operation(
    "create_team_member",
    "Add a team member.",
    tag="provisioning",
    security=MANAGER,
    body=shapes.NewTeamMember,
    ok={201: ("Created.", shapes.TeamMember)},
    errors=[403, 409],
    description="409 `email_taken` when a team member of this practice has the address (another "
    "practice's members are not looked at). Without `password`, the new member gets an "
    "invitation email with a link to choose one (valid 7 days). "
    "`can_export` holds only for an owner or practice manager. "
    "Only the account owner makes an account owner (403 `owner_only` for a manager or any API key, "
    "R29); only the owner or an API key sets `can_export` (403 `owner_only` for a manager).",
)
async def create_team_member(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    body = await read_body(request, shapes.NewTeamMember)
    roles = body.roles
    can_export = bool(body.can_export)
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
        name=body.name,
        email=body.email,
        roles=roles,
        password=body.password,
        can_export=can_export,
        messaging_enabled=body.messaging_enabled is not False,
        then=audited,
    )
    if member.password_hash is None:
        request.app[DISPATCHER].wake()
    return answer(shapes.TeamMember.of(member), status=201)


@routes.patch("/api/v1/team-members/{id}")
@operation(
    "patch_team_member",
    "Change a team member (R3: messaging_enabled).",
    tag="provisioning",
    security=MANAGER,
    params=MEMBER,
    body=shapes.TeamMemberChange,
    ok={200: ("Changed.", shapes.TeamMember)},
    errors=[403, 404, 409],
    description="Only the account owner changes an account owner or makes one: 403 `owner_only` "
    "for a practice manager or an API key (R29). Only the owner or an API key sets `can_export` "
    "(R23): 403 `owner_only` for a practice manager. `password` is always "
    "refused: 403 `password_is_personal` (R25). `active: true` reactivates a deactivated member, "
    "`active: false` deactivates like DELETE (R26).",
)
async def patch_team_member(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    # R25: a password is refused whatever else the body holds, before anything changes (the model does).
    changes = (await read_body(request, shapes.TeamMemberChange)).model_dump(exclude_unset=True)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=TEAM)
    accounts.check_team_change(principal, member, changes.get("roles"), "can_export" in changes)
    active = changes.pop("active", None)
    if active is False:
        await _deactivate(request, principal, member)
    async with db.transaction():  # each change and its audit row commit together, or neither does
        await accounts.update_team_member(request.app[CTX], member, changes)
        if changes:
            await audit_request(
                request, principal, "team_member.update", "participant", member.id, _changed(changes)
            )
    if changes.get("messaging_enabled") is False:  # R3, R27: their open sockets close
        await request.app[HUB].access_changed([member.id])
    if active is True:
        async with db.transaction():
            if await access.reactivate(principal, member):
                await audit_request(request, principal, "team_member.reactivate", "participant", member.id)
    if "messaging_enabled" in changes or active is not None:
        await messaging_changed(request, await blocked.people_sharing_conversations(member.id))
    return answer(shapes.TeamMember.of(member))


@routes.delete("/api/v1/team-members/{id}")
@operation(
    "deactivate_team_member",
    "Deactivate a team member who leaves (R26).",
    tag="provisioning",
    security=MANAGER,
    params=MEMBER,
    ok={200: ("Deactivated (again: nothing changes).", shapes.TeamMember)},
    errors=[403, 404, 409],
    description="Sign-in is then refused like a wrong password; every session, token, link, "
    "trusted device and push device of the member ends; what they wrote stays in transcripts "
    "and exports. 409 `last_account_owner`; a practice manager deactivating an account owner: "
    "403 `owner_only`.",
)
async def deactivate_team_member(request: web.Request) -> web.Response:
    """R26: deactivation, not deletion: what the member wrote stays in transcripts and exports."""
    principal = await require_provisioner(request)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=TEAM)
    await _deactivate(request, principal, member)
    await messaging_changed(request, await blocked.people_sharing_conversations(member.id))
    return answer(shapes.TeamMember.of(member))


async def _deactivate(request: web.Request, principal: accounts.Principal, member: Participant) -> None:
    async with db.transaction():  # the deactivation and its audit row commit together, or neither does
        ended = await access.deactivate(request.app[CTX], principal, member)
        if ended:
            await audit_request(request, principal, "team_member.deactivate", "participant", member.id)
    if ended:
        await access_ended(request, member.id)


@routes.post("/api/v1/team-members/{id}/totp")
@operation(
    "enrol_totp",
    "Enrol or replace a TOTP second factor (the member's own token, with the password).",
    tag="provisioning",
    security=PERSON,
    params=MEMBER,
    body=shapes.TotpBody,
    ok={200: ("The otpauth:// URI to show as a QR code.", shapes.ProvisioningUri)},
    errors=[403, 404, 429],
    description="R30: the password is asked again (403 `invalid_password`), and when a factor is "
    "already on, the code it shows now (403 `otp_required` / `invalid_otp`; a code works once). "
    "Failures count towards the sign-in lockout (403 `account_locked`). Turns the new factor on at "
    "once, replacing the old one.",
)
async def enrol_totp(request: web.Request) -> web.Response:
    me = await require_participant(request)
    member_id = path_int(request, "id")
    if me.id != member_id or me.kind != TEAM:
        # Only the person themselves may set up their second factor.
        await accounts.get_participant(me.practice_id, member_id, kind=TEAM)
        raise Forbidden("own_account_only", "Only team members themselves can set up their second factor.")
    body = await read_body(request, shapes.TotpBody)
    password, otp = body.password, body.otp
    # R30: the token alone does not set up or replace the second factor; the password (and the current
    # code) are checked as at sign-in, under the same limits.
    await enforce(request, "login", me.email)
    await accounts.reconfirm(request.app[CTX], me, password, otp)
    practice = await directory.get_practice(me.practice_id)
    async with db.transaction():  # the new secret and its audit row commit together, or neither does
        uri = await accounts.start_totp_enrolment(request.app[CTX], me, issuer=f"securemsg ({practice.name})")
        await audit_request(request, me, "totp.enrol", "participant", me.id)
    return answer(shapes.ProvisioningUri.model_construct(provisioning_uri=uri))


# --- clients, contacts, access -----------------------------------------------------------------------


async def _client_reader(request: web.Request) -> Principal:
    """Who may see clients at all: team members (which ones, R28 decides) and keys with provisioning."""
    principal = await require_principal(request)
    if principal.participant is not None and principal.participant.kind != TEAM:
        raise Forbidden("team_only", "Only team members can list clients.")
    apikeys.require_scope(principal, apikeys.PROVISIONING)
    return principal


@routes.get("/api/v1/clients")
@operation(
    "list_clients",
    "The clients this caller may message or read (R28).",
    tag="provisioning",
    security=TEAM_OR_KEY,
    ok={200: ("Clients.", shapes.Clients)},
    errors=[403],
    description="Billers, schedulers, practice managers, account owners and API keys: every client. "
    "Clinicians and supervisors: the clients they are primary clinician of or were granted access "
    "to (R5, R7, R21). Clients and contacts: 403 `team_only`.",
)
async def list_clients(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    clients = await visibility.visible_clients(principal)  # R28: only the clients this caller may see
    return answer(shapes.Clients.model_construct(items=[shapes.Client.of(c) for c in clients]))


@routes.post("/api/v1/clients")
@operation(
    "create_client",
    "Add a client; messaging starts as the practice's auto_enable_new_clients says (R2).",
    tag="provisioning",
    security=MANAGER,
    body=shapes.NewClient,
    ok={201: ("Created.", shapes.Client)},
    errors=[403],
)
async def create_client(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    body = await read_body(request, shapes.NewClient)
    practice = await directory.get_practice(principal.practice_id)
    portal, name, email = body.portal_access, body.name, body.email
    primary, messaging = body.primary_clinician_id, body.messaging_enabled
    async with db.transaction():  # the client and its audit row commit together, or neither does
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
    return answer(shapes.Client.of(client), status=201)


@routes.get("/api/v1/clients/{id}")
@operation(
    "get_client",
    "One client, when the caller may see it (R28): else 404, as for another practice's.",
    tag="provisioning",
    security=TEAM_OR_KEY,
    params=CLIENT_ID,
    ok={200: ("The client.", shapes.Client)},
    errors=[403, 404],
)
async def get_client(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    client = await visibility.visible_client(principal, path_int(request, "id"))
    return answer(shapes.Client.of(client))


@routes.patch("/api/v1/clients/{id}")
@operation(
    "patch_client",
    "Change a client; turning messaging or portal access off ends its links and sessions (R4).",
    tag="provisioning",
    security=TEAM_OR_KEY,
    params=CLIENT_ID,
    body=shapes.ClientChange,
    ok={200: ("Changed.", shapes.Client)},
    errors=[403, 404],
    description="Owners, practice managers and the API key change any field. A clinician or "
    "supervisor may send only `{messaging_enabled: true}`, for a client they have access to "
    "(R5), with an audit row: anything else is 403 `managers_only`; a client they may not see "
    "is 404 (R28); a clinician who also holds a role that sees every client but has no access "
    "is 403 `clinician_without_client_access`.",
)
async def patch_client(request: web.Request) -> web.Response:
    principal = await require_principal(request)
    if _may_only_enable(principal):
        changes = (await read_body(request, shapes.ClientChange)).model_dump(exclude_unset=True)
        client = await _clinician_enables(principal, path_int(request, "id"), changes)
    else:
        accounts.require_manager(principal)
        changes = (await read_body(request, shapes.ClientChange)).model_dump(exclude_unset=True)
        client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    async with db.transaction():  # the change and its audit row commit together, or neither does
        await accounts.update_client(request.app[CTX], client, changes)
        await audit_request(request, principal, "client.update", "participant", client.id, _changed(changes))
    if changes.get("messaging_enabled") is False or changes.get("portal_access") is False:
        # R4, R10, R27: the sockets of the client and of its contacts close.
        await request.app[HUB].access_changed(await accounts.client_and_contacts(client))
    if "messaging_enabled" in changes or "portal_access" in changes:
        await messaging_changed(request, await blocked.people_in_client_conversations(client.id))
    return answer(shapes.Client.of(client))


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
    grants = await directory.has_access(member, client)
    party = messaging.party_of(member, {})
    if not permissions.may_enable_client_messaging(party, client.id, client.primary_clinician_id, grants):
        raise Forbidden(
            "clinician_without_client_access",
            "You can turn on secure messaging only for a client whose profile you have access to.",
            rule="R5",
        )
    return client


@routes.post("/api/v1/clients/{id}/contacts")
@operation(
    "add_contact",
    "Add a contact (a guardian, say) who takes part in the client's conversations (R10).",
    tag="provisioning",
    security=MANAGER,
    params=CLIENT_ID,
    body=shapes.NewContact,
    ok={201: ("Created.", shapes.Contact)},
    errors=[403, 404],
)
async def add_contact(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    body = await read_body(request, shapes.NewContact)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    name, email = body.name, body.email
    async with db.transaction():  # the contact and its audit row commit together, or neither does
        contact = await accounts.add_contact(request.app[CTX], client, name=name, email=email)
        await audit_request(
            request, principal, "contact.create", "participant", contact.id, {"client_id": client.id}
        )
    return answer(shapes.Contact.of(contact), status=201)


@routes.get("/api/v1/clients/{id}/contacts")
@operation(
    "list_contacts",
    "The client's contacts, when the caller may see the client (R28): else 404.",
    tag="provisioning",
    security=TEAM_OR_KEY,
    params=CLIENT_ID,
    ok={200: ("Contacts.", shapes.Contacts)},
    errors=[403, 404],
)
async def list_contacts(request: web.Request) -> web.Response:
    principal = await _client_reader(request)
    client = await visibility.visible_client(principal, path_int(request, "id"))
    contacts = await directory.contacts_of(client)
    return answer(shapes.Contacts.model_construct(items=[shapes.Contact.of(c) for c in contacts]))


@routes.get("/api/v1/clients/{id}/access")
@operation(
    "list_access",
    "Who has access to the client's profile: the primary clinician and the grants (R5, R21).",
    tag="provisioning",
    security=MANAGER,
    params=CLIENT_ID,
    ok={200: ("Access.", shapes.AccessList)},
    errors=[403, 404],
)
async def list_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    return answer(
        shapes.AccessList.model_construct(
            primary_clinician_id=client.primary_clinician_id,
            team_member_ids=await accounts.access_list(client),
        )
    )


@routes.put("/api/v1/clients/{id}/access/{member_id}")
@operation(
    "grant_access",
    "Grant a team member access to the client's profile (R5, R7, R21).",
    tag="provisioning",
    security=MANAGER,
    params=ACCESS,
    ok={200: ("Already granted.", shapes.Access), 201: ("Granted.", shapes.Access)},
    errors=[403, 404],
)
async def grant_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "member_id"), kind=TEAM)
    async with db.transaction():  # the grant and its audit row commit together, or neither does
        created = await accounts.grant_access(request.app[CTX], client, member)
        await audit_request(
            request, principal, "access.grant", "participant", client.id, {"team_member_id": member.id}
        )
    return answer(
        shapes.Access.model_construct(client_id=client.id, team_member_id=member.id, access=True),
        status=201 if created else 200,
    )


@routes.delete("/api/v1/clients/{id}/access/{member_id}")
@operation(
    "withdraw_access",
    "Withdraw a team member's access to the client's profile.",
    tag="provisioning",
    security=MANAGER,
    params=ACCESS,
    ok={200: ("Withdrawn.", shapes.Access)},
    errors=[403, 404],
)
async def withdraw_access(request: web.Request) -> web.Response:
    principal = await require_provisioner(request)
    client = await accounts.get_participant(principal.practice_id, path_int(request, "id"), kind=CLIENT)
    member = await accounts.get_participant(principal.practice_id, path_int(request, "member_id"), kind=TEAM)
    async with db.transaction():  # the withdrawal and its audit row commit together, or neither does
        await accounts.withdraw_access(client, member)
        await audit_request(
            request, principal, "access.withdraw", "participant", client.id, {"team_member_id": member.id}
        )
    return answer(shapes.Access.model_construct(client_id=client.id, team_member_id=member.id, access=False))

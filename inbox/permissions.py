"""Who may message whom (docs/rules.md R1–R10): pure functions over plain data.

`check_exchange` answers one question — may `actor` write in an exchange with exactly these participants —
and every refusal names the rule that forbids it. The caller loads the facts (flags, roles, access grants,
who has already written) and passes them in, so these functions do no I/O and are tested as a table.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

TEAM, CLIENT, CONTACT = "team", "client", "contact"

# R6: these roles may message any client. Account owners run the practice and are treated as managers.
ANY_CLIENT_ROLES = frozenset({"biller", "scheduler", "practice_manager", "account_owner"})
# R8: a client may start a conversation with these roles (and with their primary clinician).
CLIENT_MAY_START_ROLES = frozenset({"biller", "scheduler", "practice_manager"})


@dataclass(frozen=True)
class Party:
    id: int
    kind: str  # team | client | contact
    roles: frozenset[str] = frozenset()
    messaging_enabled: bool = False
    portal_access: bool = False
    # For a client: its own id. For a contact: the client it belongs to. None for team members.
    client_id: int | None = None
    # For a client or contact: the client's primary clinician.
    primary_clinician_id: int | None = None
    # R26: a deactivated team member takes part in nothing.
    active: bool = True

    @property
    def is_team(self) -> bool:
        return self.kind == TEAM


@dataclass(frozen=True)
class PracticeFlags:
    client_messaging_enabled: bool
    team_messaging_enabled: bool


@dataclass(frozen=True)
class Refusal:
    code: str
    rule: str
    message: str


def has_client_access(
    member: Party, client_id: int, primary_clinician_id: int | None, grants: Collection[tuple[int, int]]
) -> bool:
    """R5: the primary clinician always has access; others through a grant (team member id, client id)."""
    return member.id == primary_clinician_id or (member.id, client_id) in grants


# R4, R5: besides owners and managers, a clinician (or supervisor) may turn ON a client's messaging, but
# only for a client whose profile they have access to (the guide: "you'll see the option to Enable Secure
# Messaging").
ENABLE_WITH_ACCESS_ROLES = frozenset({"clinician", "supervisor"})
MANAGER_ROLES = frozenset({"account_owner", "practice_manager"})


def may_enable_client_messaging(
    member: Party, client_id: int, primary_clinician_id: int | None, grants: Collection[tuple[int, int]]
) -> bool:
    """May this team member turn a client's own messaging on? Managers always; clinicians with access."""
    if not member.is_team or not member.active:
        return False
    if member.roles & MANAGER_ROLES:
        return True
    return bool(member.roles & ENABLE_WITH_ACCESS_ROLES) and has_client_access(
        member, client_id, primary_clinician_id, grants
    )


def may_message_client(
    member: Party, client_id: int, primary_clinician_id: int | None, grants: Collection[tuple[int, int]]
) -> Refusal | None:
    """R5–R7: may this team member message this client (and the client's contacts)?"""
    if member.roles & ANY_CLIENT_ROLES:
        return None
    if has_client_access(member, client_id, primary_clinician_id, grants):
        return None
    if "supervisor" in member.roles and "clinician" not in member.roles:
        return Refusal(
            "supervisor_without_client_access",
            "R7",
            "A supervisor can message a client only with access to the client's profile.",
        )
    return Refusal(
        "clinician_without_client_access",
        "R5",
        "A clinician can message a client only with access to the client's profile.",
    )


def participation_refusal(party: Party, flags: PracticeFlags, client: Party | None = None) -> Refusal | None:
    """R1, R3, R4, R10, R26: may this person take part in messaging at all right now?

    For a contact, `client` is the client it belongs to: a contact takes part under the client's flags.
    """
    if not flags.team_messaging_enabled:
        return Refusal("team_messaging_off", "R1", "Secure messaging is turned off for this practice.")
    if party.is_team:
        if not party.active:
            return Refusal(
                "team_member_deactivated", "R26", "This team member's account has been deactivated."
            )
        if not party.messaging_enabled:
            return Refusal(
                "team_member_messaging_disabled",
                "R3",
                "Secure messaging is not enabled for this team member.",
            )
        return None
    if not flags.client_messaging_enabled:
        return Refusal(
            "client_messaging_off", "R1", "Secure messaging with clients is turned off for this practice."
        )
    subject = client if party.kind == CONTACT and client is not None else party
    if not (subject.messaging_enabled and subject.portal_access and party.portal_access):
        return Refusal("client_messaging_disabled", "R4", "Secure messaging is not enabled for this client.")
    return None


def check_exchange(
    actor: Party,
    others: Iterable[Party],
    *,
    flags: PracticeFlags,
    grants: Collection[tuple[int, int]],
    clients: dict[int, Party],
    prior_writers: Collection[int] = (),
) -> Refusal | None:
    """May `actor` write to an exchange whose other participants are `others`?

    `clients` maps a client id to its Party (for contacts' flags). `prior_writers` holds the ids of team
    members who have already written in this exchange (R8: a client may answer a clinician who wrote first).
    """
    people = [actor, *others]
    if len({p.id for p in people}) != len(people):
        return Refusal("duplicate_participant", "R11", "A participant is listed twice.")
    if len(people) < 2:
        return Refusal("no_recipients", "R11", "A conversation needs at least one other participant.")

    for party in people:
        refusal = participation_refusal(party, flags, clients.get(party.client_id or -1))
        if refusal is not None:
            return refusal

    client_ids = {p.client_id for p in people if not p.is_team}
    if len(client_ids) > 1:
        return Refusal(
            "one_client_per_conversation",
            "R10",
            "A conversation can include only one client and that client's contacts.",
        )
    team = [p for p in people if p.is_team]
    if not client_ids:
        return None  # R9: enabled team members may message each other.
    if not team:
        return Refusal(
            "team_member_required", "R10", "A client's conversation must include a member of the team."
        )

    client_id = next(iter(client_ids))
    assert client_id is not None
    primary = next((p.primary_clinician_id for p in people if not p.is_team), None)
    for member in team:
        refusal = may_message_client(member, client_id, primary, grants)
        if refusal is not None:
            return refusal

    if not actor.is_team:
        # R8: a client (or contact) starts only with the primary clinician, managers, billers, schedulers,
        # or a supervisor with access; anyone else must have written in this exchange first.
        for member in team:
            if member.id == primary or member.roles & CLIENT_MAY_START_ROLES or member.id in prior_writers:
                continue
            if "supervisor" in member.roles and "clinician" not in member.roles:
                continue  # reached here only with access (R7 checked above)
            return Refusal(
                "client_may_not_start_with_this_clinician",
                "R8",
                "A client can start a conversation only with their primary clinician; "
                "another clinician must write first.",
            )
    return None


def may_message_directly(
    actor: Party,
    target: Party,
    *,
    flags: PracticeFlags,
    grants: Collection[tuple[int, int]],
    clients: dict[int, Party],
) -> bool:
    """For the recipient picker: could `actor` start a one-to-one conversation with `target`?"""
    return check_exchange(actor, [target], flags=flags, grants=grants, clients=clients) is None

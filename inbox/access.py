"""Ending a team member's access (R25, R26), and deactivating and reactivating team members.

`end_access` is what a password change, a password reset and a deactivation share: every token (web
sessions, app tokens) of the person ends, but the one the person is using for a change of their own; every
live link (password reset, invitation) ends; the credential epoch goes up, so every trusted device
(`accounts.device_token_for`) stops being trusted. The devices that the ended tokens registered stop
getting pushes, as at sign-out.

A deactivated member (R26) keeps their row, so everything they wrote stays in transcripts and exports;
`active = false` refuses them everywhere else: sign-in answers like a wrong password, their tokens no
longer resolve (`accounts.principal_from_row`), they are out of pickers and lists and cannot be messaged
(`permissions`, rule R26), and no email or push goes to them (`notify`, `pushes`).

The open websockets of the person are closed by the gateway after the commit (R27).
"""

from __future__ import annotations

from inbox import db
from inbox.accounts import Principal, check_team_change
from inbox.context import InboxContext
from inbox.errors import Conflict
from inbox.models import Participant
from inbox.store import access as access_store
from inbox.store import people
from inbox.store import practices as practices_store


async def end_access(
    ctx: InboxContext, member: Participant, *, keep_token_id: int | None = None, all_devices: bool = False
) -> int:
    """End every session, token, link and trusted device of `member` but the token `keep_token_id`;
    run it inside the transaction of the change that calls for it. How many tokens ended."""
    now = ctx.clock.now()
    ended = await access_store.end_access(
        member.id, now, keep_token_id=keep_token_id, all_devices=all_devices
    )
    member.credential_epoch += 1
    return len(ended)


async def deactivate(ctx: InboxContext, principal: Principal, member: Participant) -> bool:
    """R26. Whether anything changed (deactivating a deactivated member again changes nothing).

    A manager cannot deactivate an account owner (`check_team_change`: 403); nobody deactivates the last
    active account owner (409), or the practice would have nobody left to run it."""
    check_team_change(principal, member, None, False)
    if not member.active:
        return False
    async with db.transaction():
        # Two owners deactivating each other at once must not both pass the check below: the practice row
        # is the lock (PostgreSQL; SQLite runs one writer at a time anyway).
        await practices_store.lock_practice(member.practice_id)
        if "account_owner" in member.role_set and not await people.has_other_active_owner(
            member.practice_id, member.id
        ):
            raise Conflict(
                "last_account_owner",
                "This is the practice's last account owner; make someone else an owner first.",
                rule="R26",
            )
        member.active = False
        await people.set_active(member)
        await end_access(ctx, member, all_devices=True)
    return True


async def reactivate(principal: Principal, member: Participant) -> bool:
    """R26: the member can sign in again (with their password, or a reset link); nothing that ended at
    deactivation comes back. Whether anything changed."""
    check_team_change(principal, member, None, False)
    if member.active:
        return False
    member.active = True
    member.failed_logins = 0
    member.locked_until = None
    await people.set_active_and_unlock(member)
    return True

"""The views' one-line way to write an audit row (R24) for what a request just did, and the audit part:
seals rows that a stopped process left unsealed, and deletes export files past their retention (R23)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.keys import CTX
from gateway.limits import client_ip
from inbox import audit, exports
from inbox.accounts import Principal
from inbox.context import InboxContext

if TYPE_CHECKING:
    from inbox.models import AuditEvent, Participant

log = logging.getLogger(__name__)

# How often the periodic pass runs. Rows are normally sealed within a fraction of a second of their commit
# (inbox.sealer); this pass is for what a process that stopped in between left behind.
SWEEP_EVERY_S = 30.0


async def audit_request(
    request: web.Request,
    who: Participant | Principal,
    action: str,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Call it inside the transaction of the change (`db.transaction()`), so both commit or neither."""
    practice_id = who.practice_id
    return await audit.record(
        request.app[CTX],
        practice_id,
        who,
        action,
        target_type,
        target_id,
        detail,
        client_ip(request),
    )


async def audit_access(request: web.Request, who: Participant, action: str, conversation_id: int) -> None:
    """Who opened which conversation (at most a row per person, conversation and hour)."""
    await audit.record_access(request.app[CTX], who, action, conversation_id, client_ip(request))


async def audit_throttled_sign_in(request: web.Request, email: str) -> None:
    """A sign-in the rate limits refused (HIPAA: log-in monitoring), for a team member's address."""
    await audit.record_sign_in(request.app[CTX], email, None, audit.THROTTLED, client_ip(request))


async def sweep(ctx: InboxContext) -> None:
    await audit.seal_all(ctx)
    await exports.prune_expired(ctx)


async def _sweep_loop(ctx: InboxContext, every_s: float) -> None:
    while True:
        try:
            await sweep(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database briefly away: try again at the next tick
            log.warning("audit and export sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(every_s)


async def audit_part(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]

    async def seal(practice_id: int) -> int:
        return await audit.seal(ctx, practice_id)

    ctx.sealer.start(seal)
    task = asyncio.create_task(_sweep_loop(ctx, SWEEP_EVERY_S), name="securemsg-audit-sweep")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await ctx.sealer.close(seal)

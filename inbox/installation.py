"""This database's own random id, made once and kept in the database (the `installation` table).

Email Message-IDs carry it (`inbox.notify.message_id_for`): row ids start again at 1 in a database made
anew under the same host, and a mail provider drops or threads a later email whose Message-ID it has seen.
A copy of the database (a backup restored) keeps the id, as it keeps the row ids it goes with.
"""

from __future__ import annotations

import secrets

from tortoise.exceptions import IntegrityError

from inbox.context import InboxContext
from inbox.store import installation as installation_store

ROW = 1  # the table has this one row


async def installation_id(ctx: InboxContext) -> str:
    """The id, made on first use (several processes starting at once agree on the first one written)."""
    row = await installation_store.get_installation_or_none(ROW)
    if row is None:
        try:
            await installation_store.add_installation(ROW, secrets.token_hex(8), ctx.clock.now())
        except IntegrityError:
            pass  # another process made it first
        row = await installation_store.get_installation(ROW)
    return row.uid

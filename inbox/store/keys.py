"""What is encrypted under the data keys (R30): any sealed column read and rewritten a batch at a time (key
rotation, `inbox.rotation`), and the secrets still stored in clear from before migration 0005_keys, sealed
in place (`inbox.sealed`). Which columns there are, and how a value is sealed, is the domain's: it passes
the column in, and the ciphertexts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tortoise.models import Model
from tortoise.transactions import in_transaction

from inbox.models import Participant, Webhook


@dataclass(frozen=True)
class SealedColumn:
    """An encrypted column: its table's model, its name, and the column its associated data is made from."""

    model: type[Model]
    name: str
    context_column: str


class SealedValue(NamedTuple):
    id: int
    cipher: bytes | None
    context_id: int  # the row's `context_column`


async def list_sealed_values(column: SealedColumn, after_id: int, limit: int) -> list[SealedValue]:
    """The column's values in the rows after `after_id`, by id, at most `limit` rows."""
    rows: list[dict[str, Any]] = await (
        column.model.filter(id__gt=after_id)
        .order_by("id")
        .limit(limit)
        .values(*dict.fromkeys(("id", column.name, column.context_column)))
    )
    return [SealedValue(int(r["id"]), r[column.name], int(r[column.context_column])) for r in rows]


async def set_sealed_values(column: SealedColumn, ciphers: Sequence[tuple[int, bytes]]) -> None:
    """Each (row id, ciphertext) written into the column, all in one transaction."""
    async with in_transaction():
        for row_id, cipher in ciphers:
            await column.model.filter(id=row_id).update(**{column.name: cipher})


async def list_plaintext_totp_members(limit: int) -> list[Participant]:
    """People whose TOTP secret is still stored in clear, at most `limit`."""
    return list(await Participant.filter(totp_secret__isnull=False).limit(limit))


async def set_totp_secrets_sealed(ciphers: Sequence[tuple[int, bytes]]) -> None:
    """Each (participant id, sealed TOTP secret) stored, its clear column emptied, in one transaction."""
    async with in_transaction():
        for member_id, cipher in ciphers:
            await Participant.filter(id=member_id).update(totp_secret_cipher=cipher, totp_secret=None)


async def list_unsealed_webhooks(limit: int) -> list[Webhook]:
    """Webhooks whose signing secret is not sealed yet, at most `limit`."""
    return list(await Webhook.filter(secret_cipher__isnull=True).limit(limit))


async def set_webhook_secrets_sealed(ciphers: Sequence[tuple[int, bytes]]) -> None:
    """Each (webhook id, sealed secret) stored, its clear column emptied, in one transaction."""
    async with in_transaction():
        for hook_id, cipher in ciphers:
            await Webhook.filter(id=hook_id).update(secret_cipher=cipher, secret="")

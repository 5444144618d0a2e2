"""Re-encrypting stored secrets under the newest data key (`securemsg rotate-data-key`).

Every encrypted column is walked in id order, a batch at a time, each batch in its own short transaction,
so the server keeps serving while this runs. A row is re-encrypted only when its ciphertext names an older
key id (decrypt with the old key, encrypt with the new one, same associated data), which makes a run
idempotent and resumable: stop it at any point and run it again, and it carries on where rows are still old.

Running servers may write a few rows under the old key until they notice the new one (gateway: within a
couple of seconds, see DataKeyring); `rotate` therefore repeats the walk until a whole pass finds nothing
left under an older key. Old keys stay in the keyring file; they are no longer needed for stored rows once
this has finished, but backups made before may still need them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from inbox.crypto import DataKeyring
from inbox.exports import password_context
from inbox.models import ChartNote, Device, Export, Message, Participant, Webhook
from inbox.records import body_context, chart_note_context
from inbox.sealed import totp_context, webhook_secret_context, webpush_context
from inbox.store import keys
from inbox.store.keys import SealedColumn


@dataclass(frozen=True)
class Target:
    label: str
    column: SealedColumn
    context: Callable[[int], str]  # the associated data, from the row's `column.context_column`


TARGETS = (
    Target("message bodies", SealedColumn(Message, "body_cipher", "conversation_id"), body_context),
    Target("chart notes", SealedColumn(ChartNote, "text_cipher", "client_id"), chart_note_context),
    Target("export passwords", SealedColumn(Export, "password_cipher", "id"), password_context),
    Target("TOTP secrets", SealedColumn(Participant, "totp_secret_cipher", "id"), totp_context),
    Target("webhook secrets", SealedColumn(Webhook, "secret_cipher", "id"), webhook_secret_context),
    Target("web push subscriptions", SealedColumn(Device, "subscription_cipher", "id"), webpush_context),
)


@dataclass
class Tally:
    scanned: int = 0
    reencrypted: int = 0


@dataclass
class Summary:
    key_id: str
    passes: int = 0
    tallies: dict[str, Tally] = field(default_factory=lambda: {t.label: Tally() for t in TARGETS})

    @property
    def reencrypted(self) -> int:
        return sum(t.reencrypted for t in self.tallies.values())


async def reencrypt_pass(
    keyring: DataKeyring,
    summary: Summary,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    on_batch: Callable[[str, Tally], None] | None = None,
) -> int:
    """One walk over every encrypted column; returns how many rows it re-encrypted."""
    current = keyring.current_key_id
    done = batches = 0
    for target in TARGETS:
        tally = summary.tallies[target.label]
        after = 0
        while True:
            if max_batches is not None and batches >= max_batches:
                return done
            rows = await keys.list_sealed_values(target.column, after, batch_size)
            if not rows:
                break
            batches += 1
            after = rows[-1].id
            stale = []
            for row in rows:
                blob = row.cipher
                if blob is None or DataKeyring.key_id_of(bytes(blob)) == current:
                    continue
                context = target.context(row.context_id)
                plain = keyring.decrypt(bytes(blob), context)
                stale.append((row.id, keyring.encrypt(plain, context)))
            if stale:
                await keys.set_sealed_values(target.column, stale)
            tally.scanned += len(rows)
            tally.reencrypted += len(stale)
            done += len(stale)
            if on_batch is not None:
                on_batch(target.label, tally)
    return done


async def rotate(
    keyring: DataKeyring,
    *,
    batch_size: int = 500,
    settle_s: float = 0.0,
    max_passes: int = 10,
    on_batch: Callable[[str, Tally], None] | None = None,
) -> Summary:
    """Re-encrypt until a full pass finds no row under an older key. `settle_s` is how long to give running
    servers to notice a key that was just added before the pass that must come back empty."""
    summary = Summary(keyring.current_key_id)
    for n in range(max_passes):
        summary.passes += 1
        found = await reencrypt_pass(keyring, summary, batch_size=batch_size, on_batch=on_batch)
        if found == 0 and (n > 0 or settle_s == 0):
            return summary
        if settle_s:
            await asyncio.sleep(settle_s)
    raise RuntimeError(
        f"rows under older keys keep appearing after {max_passes} passes: is a server still running "
        "without the new key? Run `securemsg rotate-data-key --resume` once every server has it."
    )


async def rows_under_older_keys(keyring: DataKeyring) -> int:
    current = keyring.current_key_id
    left = 0
    for target in TARGETS:
        after = 0
        while rows := await keys.list_sealed_values(target.column, after, 1000):
            after = rows[-1].id
            left += sum(
                1 for r in rows if r.cipher is not None and DataKeyring.key_id_of(bytes(r.cipher)) != current
            )
    return left

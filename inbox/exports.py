"""Complete exports of a practice's secure messages (R23).

Who: the account owner, or a practice manager allowed to export client data (`can_export`).

Scope "all": every conversation of the practice, team-only ones included. Scope "clinician": every
conversation of the clients whose primary clinician is that clinician ("all clients of one clinician"), and
the team-only conversations that clinician is in (what the guide offers for "messages between a certain
clinician and other team members").

The zip is written in the background (outbox kind `export`), conversation by conversation and page by page
of messages, straight into the zip stream, so memory stays flat however many messages a practice holds.
With a password (the default) it is AES-256 encrypted (WinZip AES, pyzipper). The password is generated, kept
encrypted under the data keyring, and shown again only to the person who asked for the export.

Zip encryption covers file contents, not file names, so the names say nothing about anyone: one
`secure-messages/conversation-0001.txt` per conversation, with its participants written inside it, and an
`index.txt` (encrypted like every member) that maps each file to its participants. Without a password
(`require_password: false`) only when the practice has turned on `allow_unencrypted_exports`.

Files are deleted `export_retention_days` after they were written (the audit part's sweep, or a download
that finds it past its time); the export then says `expired` and a download answers 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pyzipper

from inbox import db, outbox
from inbox.context import InboxContext
from inbox.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from inbox.exchange import iso
from inbox.ids import is_id
from inbox.models import CLIENT, CONTACT, TEAM, Conversation, Export, Message, OutboxJob, Participant
from inbox.records import body_context, message_line
from inbox.store import exports as exports_store
from inbox.store import practices
from inbox.store import records as records_store
from inbox.timezones import stamp, zone, zone_name

EXPORT = "export"  # the outbox kind
EXPIRED = "expired"  # an export whose file was deleted after its retention
SCOPES = ("all", "clinician")
MESSAGE_PAGE = 500
CONVERSATION_PAGE = 200
_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 - letters, not a secret; no l/1, o/0


def password_context(export_id: int) -> str:
    return f"export:{export_id}"


def may_export(member: Participant) -> bool:
    roles = member.role_set
    return member.kind == TEAM and (
        "account_owner" in roles or ("practice_manager" in roles and member.can_export)
    )


def _require_exporter(actor: Participant) -> None:
    if not may_export(actor):
        raise Forbidden(
            "export_not_allowed",
            "Only the account owner, or a practice manager allowed to export client data, can do this.",
            rule="R23",
        )


def new_password() -> str:
    """Four groups of five letters or digits: about 99 bits, easy to read out and type."""
    return "-".join("".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(5)) for _ in range(4))


async def request_export(
    ctx: InboxContext,
    actor: Participant,
    scope: str,
    clinician_id: int | None,
    require_password: bool,
) -> Export:
    _require_exporter(actor)
    if scope not in SCOPES:
        raise Invalid("invalid_scope", 'scope must be "all" or "clinician".', field="scope")
    if scope == "clinician":
        if clinician_id is None:
            raise Invalid(
                "missing_field", 'clinician_id is required for scope "clinician".', field="clinician_id"
            )
        clinician = None
        if is_id(clinician_id):
            clinician = await exports_store.get_team_member(actor.practice_id, clinician_id)
        if clinician is None or "clinician" not in clinician.role_set:
            raise Invalid(
                "unknown_clinician",
                "clinician_id is not a clinician of this practice.",
                field="clinician_id",
            )
    else:
        clinician_id = None
    if not require_password:
        practice = await practices.get_practice(actor.practice_id)
        if not practice.allow_unencrypted_exports:
            raise Forbidden(
                "unencrypted_export_not_allowed",
                "This practice keeps exports password-protected. To allow exports without a password, "
                "turn on allow_unencrypted_exports in the practice settings.",
                rule="R23",
            )
    now = ctx.clock.now()
    async with db.transaction():
        export = await exports_store.add_export(
            actor.practice_id, actor.id, scope, clinician_id, require_password, now
        )
        if require_password:
            cipher = ctx.keyring.encrypt(new_password(), password_context(export.id))
            await exports_store.set_password_cipher(export, cipher)
        await outbox.enqueue(ctx, EXPORT, practice_id=actor.practice_id, payload={"export_id": export.id})
    return export


async def get_export(actor: Participant, export_id: int) -> Export:
    """Exports are seen by those who may make them; another practice's export does not exist."""
    export = await exports_store.get_practice_export(actor.practice_id, export_id)
    if export is None or actor.kind != TEAM:
        raise NotFound("export")
    _require_exporter(actor)
    return export


async def list_exports(actor: Participant, limit: int = 50) -> list[Export]:
    _require_exporter(actor)
    return await exports_store.list_exports(actor.practice_id, limit)


def export_json(ctx: InboxContext, export: Export, viewer: Participant) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": export.id,
        "status": export.status,
        "scope": export.scope,
        "clinician_id": export.clinician_id,
        "require_password": export.require_password,
        "requested_by": export.requested_by_id,
        "created_at": iso(export.created_at),
        "finished_at": iso(export.finished_at),
        "error": export.error,
        "download_url": f"/api/v1/exports/{export.id}/download" if export.status == "ready" else None,
        "expires_at": iso(expires_at(ctx, export)),
    }
    if export.password_cipher is not None and viewer.id == export.requested_by_id:
        data["password"] = ctx.keyring.decrypt(bytes(export.password_cipher), password_context(export.id))
    return data


def expires_at(ctx: InboxContext, export: Export) -> datetime | None:
    if export.finished_at is None or export.status not in ("ready", EXPIRED):
        return None
    return export.finished_at + timedelta(days=ctx.export_retention_days)


async def expire(ctx: InboxContext, export: Export) -> bool:
    """Delete the export's file and say so; False when someone else expired it meanwhile."""
    if export.file_path:
        await asyncio.to_thread(Path(export.file_path).unlink, missing_ok=True)
    updated = await exports_store.set_expired(export.id, EXPIRED)
    export.status, export.file_path = EXPIRED, None
    return updated


async def prune_expired(ctx: InboxContext) -> int:
    """Delete every export file past its retention; returns how many."""
    cutoff = ctx.clock.now() - timedelta(days=ctx.export_retention_days)
    done = 0
    for export in await exports_store.list_ready_exports_before(cutoff, 500):
        done += await expire(ctx, export)
    return done


async def download_path(ctx: InboxContext, export: Export) -> Path:
    limit = expires_at(ctx, export)
    if export.status == "ready" and limit is not None and limit <= ctx.clock.now():
        await expire(ctx, export)
    if export.status == EXPIRED:
        raise Gone(
            "export_expired",
            f"Export files are deleted {ctx.export_retention_days} days after they are made; export again.",
        )
    if export.status != "ready" or not export.file_path:
        raise Conflict("export_not_ready", "This export is not ready to download yet.")
    path = Path(export.file_path)
    if not await asyncio.to_thread(path.is_file):
        raise Conflict("export_file_missing", "This export's file is no longer on the server; export again.")
    return path


# --- writing the zip ---------------------------------------------------------------------------------


def member_name(n: int) -> str:
    """Opaque: a zip's member names can be read without its password."""
    return f"secure-messages/conversation-{n:04d}.txt"


def _describe(p: Participant, clients: dict[int, str]) -> str:
    if p.kind == CLIENT:
        return f"{p.name} (client)"
    if p.kind == CONTACT:
        return f"{p.name} (contact of {clients.get(p.client_id or -1, 'a client')})"
    roles = ", ".join(r.replace("_", " ") for r in sorted(p.role_set)) or "team"
    return f"{p.name} ({roles})"


async def _conversations(export: Export) -> AsyncIterator[Conversation]:
    """The conversations in the export's scope (see the module's docstring), by id."""
    after = 0
    while True:
        page = await exports_store.list_conversations_page(
            export.practice_id,
            after,
            CONVERSATION_PAGE,
            of_clinician=export.scope == "clinician",
            clinician_id=export.clinician_id,
        )
        for conv in page:
            yield conv
        if len(page) < CONVERSATION_PAGE:
            return
        after = page[-1].id


async def _messages(conversation_id: int) -> AsyncIterator[list[Message]]:
    after = 0
    while True:
        page = await exports_store.list_messages_page(conversation_id, after, MESSAGE_PAGE)
        if page:
            yield page
        if len(page) < MESSAGE_PAGE:
            return
        after = page[-1].id


@dataclass
class Written:
    path: Path
    conversations: int
    messages: int


class _ZipOut:
    """The zip file, written from a thread so that compression and AES do not stall the event loop. Only
    one write runs at a time (each is awaited), which is all zipfile asks."""

    def __init__(self, fh: IO[bytes], password: str | None) -> None:
        if password:
            self.zf: pyzipper.ZipFile = pyzipper.AESZipFile(
                fh, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
            )
            self.zf.setpassword(password.encode())
        else:
            self.zf = pyzipper.ZipFile(fh, "w", compression=pyzipper.ZIP_DEFLATED)
        self.member: IO[bytes] | None = None

    async def open(self, name: str, when: datetime) -> None:
        # A conversation is a few MB of text at most; zip64 members would only trouble older unzip tools.
        info = self.zf.zipinfo_cls(name, date_time=when.astimezone(UTC).timetuple()[:6])
        info.compress_type = pyzipper.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        self.member = await asyncio.to_thread(self.zf.open, info, "w")

    async def write(self, text: str) -> None:
        assert self.member is not None
        await asyncio.to_thread(self.member.write, text.encode("utf-8"))

    async def close_member(self) -> None:
        if self.member is not None:
            member, self.member = self.member, None
            await asyncio.to_thread(member.close)

    async def close(self) -> None:
        await self.close_member()
        await asyncio.to_thread(self.zf.close)


def _create_part(out_dir: Path, export: Export) -> tuple[Path, Path, IO[bytes]]:
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in out_dir.glob(f"export-{export.practice_id}-{export.id}-*.part"):
        stale.unlink(missing_ok=True)  # an earlier attempt that died half way
    final = out_dir / f"export-{export.practice_id}-{export.id}-{secrets.token_hex(8)}.zip"
    part = final.with_suffix(".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return final, part, os.fdopen(fd, "wb")


async def write_export(
    ctx: InboxContext,
    export: Export,
    out_dir: Path,
    *,
    practice_name: str,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
) -> Written:
    """Write the export's zip under `out_dir` and return where it is. Files are private to the server's
    user (0600 in a 0700 directory); a half-written file is removed on failure."""
    password = None
    if export.require_password and export.password_cipher is not None:
        password = ctx.keyring.decrypt(bytes(export.password_cipher), password_context(export.id))
    practice = await practices.get_practice_or_none(export.practice_id)
    tz_name = zone_name(practice.time_zone if practice else None)
    tz = zone(tz_name)
    final, part, fh = await asyncio.to_thread(_create_part, out_dir, export)
    out = _ZipOut(fh, password)
    index: list[str] = []  # a line per conversation: small next to the messages, which are never held
    n_convs = n_msgs = 0
    try:
        async for conv in _conversations(export):
            n_convs += 1
            count, participants = await _write_conversation(ctx, out, conv, n_convs, heartbeat, tz)
            index.append(f"{member_name(n_convs)}\t{participants}\n")
            n_msgs += count
        await out.open("index.txt", ctx.clock.now())
        await out.write("file\tparticipants\n" + "".join(index))
        await out.close_member()
        await out.open("README.txt", ctx.clock.now())
        await out.write(await _readme(ctx, export, practice_name, n_convs, n_msgs, tz_name))
        await out.close()
        fh.close()
        part.rename(final)
    except BaseException:
        with contextlib.suppress(Exception):
            await out.close()
        fh.close()
        part.unlink(missing_ok=True)
        raise
    return Written(final, n_convs, n_msgs)


async def _write_conversation(
    ctx: InboxContext,
    out: _ZipOut,
    conv: Conversation,
    n: int,
    heartbeat: Callable[[], Awaitable[None]] | None,
    tz: ZoneInfo,
) -> tuple[int, str]:
    """Write conversation number `n`; returns its message count and its participants' line."""
    member_ids = await exports_store.list_member_ids(conv.id)
    people = await records_store.list_people(member_ids)
    # Clients and contacts first, then the team, each by name: "Client Person, Guardian, Dr. Rivera".
    people.sort(key=lambda p: (p.kind == TEAM, p.kind == CONTACT, p.name.lower(), p.id))
    client_names = {p.id: p.name for p in people if p.kind == CLIENT}
    missing = {p.client_id for p in people if p.kind == CONTACT and p.client_id not in client_names}
    if missing:
        for c in await records_store.list_people([m for m in missing if m is not None]):
            client_names[c.id] = c.name
    names = {p.id: p.name for p in people}
    participants = "; ".join(_describe(p, client_names) for p in people)
    await out.open(member_name(n), conv.last_message_at or conv.created_at)
    await out.write(
        f"Participants: {participants}\nConversation {conv.id}, started {stamp(conv.created_at, tz)} "
        f"(times in {tz.key})\n\n"
    )
    count = 0
    async for page in _messages(conv.id):
        lines = []
        for m in page:
            text = ctx.keyring.decrypt(bytes(m.body_cipher), body_context(m.conversation_id))
            line = message_line(m.created_at, names.get(m.sender_id, f"participant {m.sender_id}"), text, tz)
            if m.removed_at is not None:
                by = names.get(m.removed_by_id or -1, "the sender")
                line += f" [removed by {by} at {stamp(m.removed_at, tz)}]"
            lines.append(line + "\n")
        count += len(page)
        await out.write("".join(lines))
        if heartbeat is not None:
            await heartbeat()
    if count == 0:
        await out.write("(no messages)\n")
    await out.close_member()
    return count, participants.replace("\t", " ").replace("\n", " ")


async def _readme(
    ctx: InboxContext, export: Export, practice_name: str, n_convs: int, n_msgs: int, tz_name: str
) -> str:
    tz = zone(tz_name)
    requester = await exports_store.get_participant(export.requested_by_id)
    if export.scope == "clinician":
        clinician = await exports_store.get_participant(export.clinician_id)
        what = (
            f"every conversation of the clients whose primary clinician is "
            f"{clinician.name if clinician else 'a former clinician'}, and the conversations between that "
            "clinician and other team members"
        )
    else:
        what = "every conversation of the practice: with clients, with their contacts, and within the team"
    return (
        "Secure messaging export\n"
        "=======================\n\n"
        f"Practice: {practice_name}\n"
        f"Requested by: {requester.name if requester else 'a former team member'} "
        f"on {stamp(export.created_at, tz)}\n"
        f"Written: {stamp(ctx.clock.now(), tz)}\n"
        f"Holds: {what}.\n"
        f"Conversations: {n_convs}; messages: {n_msgs}.\n\n"
        "The folder secure-messages/ holds one text file per conversation, numbered\n"
        "(conversation-0001.txt, conversation-0002.txt, ...): file names can be read without the\n"
        "password, so they name nobody. index.txt lists each file with its participants (clients and\n"
        "contacts first, then team members). Each file starts with its participants; then every message\n"
        "is one line, oldest first:\n\n"
        "    [YYYY-MM-DD HH:MM ZONE] Sender: text\n\n"
        f"Times are in the practice's time zone, {tz_name}, each with its abbreviation (it changes with\n"
        "daylight saving time). A message that its sender removed is included with its text and marked at\n"
        "the end of its line: [removed by Name at YYYY-MM-DD HH:MM ZONE].\n\n"
        "This file holds health information. Keep it encrypted and delete it when it is no longer needed.\n"
    )


# --- the background job's storage side ---------------------------------------------------------------


async def export_of_job(export_id: int) -> Export | None:
    """The export an outbox job names (the worker's: `gateway.exporter`), or None if it is gone."""
    return await exports_store.get_export(export_id)


async def keep_claim(ctx: InboxContext, job: OutboxJob) -> bool:
    """Extend this worker's lease on the job while the zip is written, so that a long export is not taken
    over by a second worker; False when the job is no longer ours."""
    until = ctx.clock.now() + timedelta(seconds=ctx.outbox_lease_s)
    return await exports_store.set_job_claimed_until(job.id, job.claimed_by, until)


async def mark_ready(ctx: InboxContext, export: Export, written: Written) -> bool:
    updated = await exports_store.set_ready(export.id, str(written.path), ctx.clock.now())
    if not updated:  # finished elsewhere meanwhile: keep theirs
        written.path.unlink(missing_ok=True)
    return updated


async def mark_failed(ctx: InboxContext, export: Export, reason: str) -> bool:
    return await exports_store.set_failed(export.id, reason, ctx.clock.now())

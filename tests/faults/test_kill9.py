"""`kill -9` of `securemsg serve` in the middle of a load of sends, on SQLite and on PostgreSQL.

The senders behave like the mobile app: every message has a `client_msg_id`, and a send that gets no answer
(the connection was cut, refused while the server is down, or timed out) is sent again, with the same
`client_msg_id`, until the server acknowledges it. The server is killed while requests are in flight and
while the dispatcher has an email on the wire that the SMTP server has not yet answered (the fake holds
it: the one moment where "sent" is unknown), then started again on the same port.

Afterwards: every acknowledged message is stored exactly once, under the id it was acknowledged with; every
notification email that is due has gone exactly once (each Message-ID arrives once at the SMTP fake, and
each one is the "sent as" of a settled outbox row); the email that was in flight at the kill went again,
under the same Message-ID; and nothing due is left in the outbox.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from inbox import outbox
from inbox.models import Message, OutboxJob
from tests.fakes.smtp import FakeSmtp
from tests.faults.procs import Http, Server, create_practice, make_people, open_conversation, server_env

pytestmark = pytest.mark.slow

CLIENTS = ("ann", "ben", "cy", "dee", "eve", "fay")
PER_CLIENT_CONVERSATION = 6
TEAM_MESSAGES = 30
COVERED = "covered by the email of outbox row "
PACE_S = 0.03  # between one sender's messages: the load lasts a few seconds, so the kill lands inside it


async def send_until_acknowledged(
    http: Http, token: str, conversation_id: int, client_msg_id: str, body: str, stats: Counter[str]
) -> int:
    """Like the app: the same client_msg_id again after any failure, until a 200/201 comes back."""
    while True:
        try:
            status, data = await http.call(
                "POST",
                f"/conversations/{conversation_id}/messages",
                {"body": body, "client_msg_id": client_msg_id},
                token,
                within_s=10,
            )
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            stats[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        if status in (200, 201):
            stats[f"http {status}"] += 1
            return int(data["message"]["id"])
        assert status in (429, 503), (status, data)
        stats[f"http {status}"] += 1
        await asyncio.sleep(0.2)


async def until(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def email_rows() -> list[OutboxJob]:
    return list(await OutboxJob.filter(kind__in=[outbox.CLIENT_EMAIL, outbox.UNREAD_CHECK]).order_by("id"))


async def settled() -> bool:
    """Nothing due is waiting: every email row is done/skipped, or postponed to later (the hourly throttle)."""
    now = datetime.now(UTC)
    for row in await email_rows():
        if row.status == "failed":
            raise AssertionError(f"outbox row {row.id} failed: {row.last_error}")
        if row.status == "pending" and row.due_at <= now:
            return False
    return True


async def test_kill_9_during_sends_loses_nothing_and_sends_each_email_once(
    storage: str, smtp: FakeSmtp, tmp_path: Path
) -> None:
    server = Server(
        server_env(
            storage,
            tmp_path / "var",
            SECUREMSG_SMTP_PORT=str(smtp.port),
            SECUREMSG_UNREAD_EMAIL_DELAY_S="1",
            # A dead worker's claims hold this long; the restarted process takes the rows after it.
            SECUREMSG_OUTBOX_LEASE_S="2",
        ),
        tmp_path / "logs",
    )
    server.env["SECUREMSG_PUBLIC_URL"] = server.url
    made = await create_practice(server.env, "owner password 123")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(session, server)
            people = await make_people(http, made, ["clinician", "colleague"], list(CLIENTS))
            tok = people.tokens
            to_clients = [await open_conversation(http, tok["clinician"], people.ids[c]) for c in CLIENTS]
            team = await open_conversation(http, tok["colleague"], people.ids["clinician"])

            plan: list[tuple[str, int, str]] = []  # (sender, conversation, client_msg_id)
            for i in range(PER_CLIENT_CONVERSATION):
                plan += [("clinician", conv, f"clin-{conv}-{i}") for conv in to_clients]
            plan += [("colleague", team, f"coll-{i}") for i in range(TEAM_MESSAGES)]
            total = len(plan)
            acked: dict[str, int] = {}
            stats: Counter[str] = Counter()

            async def sender(who: str) -> None:
                for name, conv, cmid in plan:
                    if name == who:
                        acked[cmid] = await send_until_acknowledged(
                            http, tok[who], conv, cmid, f"message {cmid}", stats
                        )
                        await asyncio.sleep(PACE_S)

            load = asyncio.gather(sender("clinician"), sender("colleague"))
            await until(lambda: len(acked) >= 15, 30, "the first acknowledgements")
            smtp.stall_next(1)  # the next email goes out and gets no answer: "sent?" is unknown
            await until(lambda: bool(smtp.dropped), 30, "an email in flight")
            await server.kill9()
            acked_before_kill = len(acked)
            assert acked_before_kill < total, "the load ended before the kill; slow it down"
            await server.start()
            await asyncio.wait_for(load, timeout=60)
            assert len(acked) == total

        # Every acknowledged message is stored exactly once, under the id it was acknowledged with.
        for _name, _conv, cmid in plan:
            stored = await Message.filter(client_msg_id=cmid).values_list("id", flat=True)
            assert stored == [acked[cmid]], (cmid, stored)
        assert await Message.all().count() == total

        deadline = time.monotonic() + 30
        while not await settled():
            assert time.monotonic() < deadline, "the outbox did not settle after the restart"
            await asyncio.sleep(0.1)

        received = [str(m.message["Message-ID"]) for m in smtp.received]
        repeats = {mid: n for mid, n in Counter(received).items() if n > 1}
        assert repeats == {}, f"emails sent more than once: {repeats}"
        rows = await email_rows()
        sent_as = {row.last_error.removeprefix("sent as ") for row in rows if row.status == "done"}
        assert set(received) == sent_as
        by_id = {row.id: row for row in rows}
        for row in rows:
            if row.status == "skipped" and row.last_error.startswith(COVERED):
                covering = by_id[int(row.last_error.removeprefix(COVERED))]
                assert covering.status == "done" and covering.recipient_id == row.recipient_id
        # The email that was in flight at the kill: its rows were taken again after the dead process's
        # claim ran out, and either the same email went again under the same Message-ID, or a later
        # email to the same person (sent meanwhile by the restarted process) had already covered it.
        [in_flight] = [
            line.split(b":", 1)[1].strip().decode()
            for line in smtp.dropped[0].split(b"\r\n")
            if line.lower().startswith(b"message-id:")
        ]
        lead = by_id[int(re.fullmatch(r"<outbox-(\d+)\.[0-9a-f]+@[^>]+>", in_flight)[1])]
        if lead.status == "done":
            assert lead.last_error == f"sent as {in_flight}" and in_flight in received
        else:
            assert lead.status == "skipped" and lead.last_error.startswith(COVERED), lead.last_error
        # Each client was told (R16), and the colleague's unread messages reached the clinician (R17).
        reached = {m.rcpt_tos[0] for m in smtp.received}
        assert {people.emails[c] for c in (*CLIENTS, "clinician")} <= reached
        assert stats["ServerDisconnectedError"] + stats["ClientConnectorError"] + stats["ClientOSError"] > 0
    finally:
        await server.stop()

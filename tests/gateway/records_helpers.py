"""Shared set-up for the records tests: a practice with client, contact, team-only and second-client
conversations, one removed message, all sent through the API as the apps would."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pyzipper


@dataclass
class Seeded:
    conv: dict[str, int] = field(default_factory=dict)
    msg: dict[str, int] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)


TEXTS = {
    "hello": "Hello Client, this is your clinician :smile:",
    "reply": "Thanks, see you on Tuesday.\nSecond line of my reply.",
    "wrong": "Lab results for someone else entirely",
    "guardian": "Hi Guardian, forms are ready",
    "team": "Insurance card for the client is updated",
    "client2": "Hello client two",
    "desk": "Front desk schedule for Friday",
}


async def seed(api: Any, cast: Any, clock: Any) -> Seeded:
    s = Seeded(text=dict(TEXTS))

    async def opened(who: str, others: list[str], key: str) -> None:
        status, body = await api.post(
            "/conversations",
            {"participant_ids": [cast.id(o) for o in others], "body": TEXTS[key]},
            token=cast.tok(who),
        )
        assert status in (200, 201), body
        s.conv[key] = body["id"]
        s.msg[key] = body["message"]["id"]
        clock.advance(60)

    async def sent(who: str, conv: str, key: str) -> None:
        status, body = await api.post(
            f"/conversations/{s.conv[conv]}/messages", {"body": TEXTS[key]}, token=cast.tok(who)
        )
        assert status == 201, body
        s.msg[key] = body["message"]["id"]
        s.conv[key] = s.conv[conv]
        clock.advance(60)

    await opened("clinician", ["client"], "hello")  # 09:00
    await sent("client", "hello", "reply")  # 09:01
    await sent("clinician", "hello", "wrong")  # 09:02, removed below at 09:03
    status, body = await api.delete(f"/messages/{s.msg['wrong']}", token=cast.tok("clinician"))
    assert status == 200, body
    await opened("clinician", ["contact"], "guardian")
    await opened("biller", ["clinician"], "team")
    await opened("clinician", ["client2"], "client2")
    await opened("biller", ["scheduler"], "desk")
    return s


def open_zip(data: bytes, password: str | None) -> dict[str, str]:
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        if password is not None:
            zf.setpassword(password.encode())
        return {name: zf.read(name).decode("utf-8") for name in zf.namelist()}


def by_people(files: dict[str, str]) -> dict[str, str]:
    """The conversations of an unzipped export, by their participants' names ("Client Person, Clinician"),
    through its index.txt (the file names themselves name nobody)."""
    lines = files["index.txt"].splitlines()
    assert lines[0] == "file\tparticipants"
    found = {}
    for line in lines[1:]:
        name, participants = line.split("\t")
        people = ", ".join(p.split(" (")[0] for p in participants.split("; "))
        assert people not in found
        found[people] = files[name]
        assert files[name].startswith(f"Participants: {participants}\n")
    assert len(found) == len([n for n in files if n.startswith("secure-messages/")])
    return found


async def download(client: Any, export_id: int, token: str) -> tuple[int, bytes, Any]:
    resp = await client.get(
        f"/api/v1/exports/{export_id}/download", headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status, await resp.read(), resp.headers

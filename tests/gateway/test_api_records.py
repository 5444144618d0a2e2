"""Transcripts (R21), chart notes (R22) and exports (R23) through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import pyzipper

from gateway.auditing import sweep
from gateway.keys import CTX, DISPATCHER
from inbox import accounts
from inbox.messaging import iso
from inbox.models import AuditEvent, ChartNote, Export, Message, Participant
from tests.conftest import PASSWORD, build_cast
from tests.gateway.records_helpers import by_people, download, open_zip, seed


def on_disk(path: Path) -> bool:
    return path.is_file()


async def fresh_token(client, participant_id):
    """Days later: the earlier session has ended."""
    token, _ = await accounts.issue_token(
        client.server.app[CTX], await Participant.get(id=participant_id), "app"
    )
    return token


async def transcript(api, cast, who, client="client", **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return await api.get(f"/clients/{cast.id(client)}/transcripts?{qs}", token=cast.tok(who))


# --- R21 transcripts ---------------------------------------------------------------------------------


async def test_r21_transcript_access_follows_client_profile_access(api, cast, clock, config):
    await seed(api, cast, clock)
    # The primary clinician and the owner read; a ClientAccess grant opens it to anyone on the team.
    for who in ("clinician", "owner"):
        status, body = await transcript(api, cast, who)
        assert status == 200, (who, body)
    for who in ("clinician2", "supervisor", "biller", "scheduler", "manager"):
        status, body = await transcript(api, cast, who)
        assert status == 403, (who, body)
        assert body["error"]["code"] == "no_client_access" and body["error"]["rule"] == "R21"
    status, _ = await api.put(
        f"/clients/{cast.id('client')}/access/{cast.id('supervisor')}", token=cast.api_key
    )
    assert status == 201
    status, body = await transcript(api, cast, "supervisor")
    assert status == 200 and len(body["items"]) == 4
    # Clients and contacts never read transcripts; the practice API key is not a person.
    for who in ("client", "contact"):
        status, body = await transcript(api, cast, who)
        assert status == 403 and body["error"]["code"] == "team_only"
    status, body = await api.get(f"/clients/{cast.id('client')}/transcripts", token=cast.api_key)
    assert status == 403 and body["error"]["code"] == "participant_required"
    # Another practice's client, a team member's id, an unknown id: all "no such client".
    other = await build_cast(api, config, clock, name="Elsewhere Clinic")
    status, body = await api.get(f"/clients/{cast.id('client')}/transcripts", token=other.tok("owner"))
    assert status == 404 and body["error"]["code"] == "not_found"
    for bad in (cast.id("clinician"), 99999999):
        status, body = await api.get(f"/clients/{bad}/transcripts", token=cast.tok("owner"))
        assert status == 404
    status, body = await transcript(api, cast, "owner", participants="1,x")
    assert status == 422 and body["error"]["field"] == "participants"
    status, body = await transcript(api, cast, "owner", cursor="abc")
    assert status == 422 and body["error"]["code"] == "invalid_cursor"


async def test_r21_transcript_holds_removed_messages_with_text_oldest_first(api, cast, clock):
    s = await seed(api, cast, clock)
    status, body = await transcript(api, cast, "clinician")
    assert status == 200
    # Every conversation whose client is this client: with the client, and with the client's contact.
    assert sorted(c["id"] for c in body["conversations"]) == sorted([s.conv["hello"], s.conv["guardian"]])
    ids = [m["id"] for m in body["items"]]
    assert ids == sorted(ids) == [s.msg[k] for k in ("hello", "reply", "wrong", "guardian")]
    by_id = {m["id"]: m for m in body["items"]}
    wrong = by_id[s.msg["wrong"]]
    assert wrong["body"] == s.text["wrong"]  # the text stays in the record (R14)
    assert wrong["removed"] == {
        "by": cast.id("clinician"),
        "by_name": "Clinician",
        "at": "2026-01-05T09:03:00Z",
    }
    assert by_id[s.msg["reply"]]["body"] == s.text["reply"]
    assert by_id[s.msg["reply"]]["sender_name"] == "Client Person"
    assert by_id[s.msg["hello"]]["removed"] is None
    # Team-only conversations and another client's never show up.
    assert not {s.msg["team"], s.msg["client2"], s.msg["desk"]} & set(ids)


async def test_r21_transcript_filters_to_conversations_with_all_chosen_participants(api, cast, clock):
    s = await seed(api, cast, clock)
    status, body = await transcript(api, cast, "clinician", participants=f"{cast.id('contact')}")
    assert status == 200
    assert [c["id"] for c in body["conversations"]] == [s.conv["guardian"]]
    assert [m["id"] for m in body["items"]] == [s.msg["guardian"]]
    both = f"{cast.id('client')},{cast.id('clinician')}"
    status, body = await transcript(api, cast, "clinician", participants=both)
    assert [m["id"] for m in body["items"]] == [s.msg["hello"], s.msg["reply"], s.msg["wrong"]]
    status, body = await transcript(api, cast, "clinician", participants=f"{cast.id('biller')}")
    assert body["conversations"] == [] and body["items"] == [] and body["next_cursor"] is None


async def test_r21_transcript_pages_by_cursor(api, cast, clock):
    s = await seed(api, cast, clock)
    seen, cursor, pages = [], "", 0
    while True:
        status, body = await transcript(api, cast, "clinician", limit=3, cursor=cursor)
        assert status == 200
        seen += [m["id"] for m in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 2
    assert seen == [s.msg[k] for k in ("hello", "reply", "wrong", "guardian")]


# --- R22 chart notes ---------------------------------------------------------------------------------


async def test_r22_chart_note_holds_chosen_messages_as_dated_lines(api, cast, clock, client):
    s = await seed(api, cast, clock)
    path = f"/clients/{cast.id('client')}/chart-notes"
    status, note = await api.post(
        path,
        {"message_ids": [s.msg["guardian"], s.msg["hello"], s.msg["reply"]]},
        token=cast.tok("clinician"),
    )
    assert status == 201, note
    # Grouped by conversation, each under its participants, so the chart says who a message went to.
    assert note["text"] == (
        "Conversation: Client Person, Clinician (times in UTC)\n"
        "[2026-01-05 09:00 UTC] Clinician: Hello Client, this is your clinician :smile:\n"
        "[2026-01-05 09:01 UTC] Client Person: Thanks, see you on Tuesday.\nSecond line of my reply.\n"
        "\n"
        "Conversation: Guardian, Clinician (times in UTC)\n"
        "[2026-01-05 09:03 UTC] Clinician: Hi Guardian, forms are ready"
    )
    assert note["author_id"] == cast.id("clinician") and note["client_id"] == cast.id("client")
    assert note["message_ids"] == [s.msg["hello"], s.msg["reply"], s.msg["guardian"]]
    # Stored encrypted under the data keyring, bound to the client.
    row = await ChartNote.get(id=note["id"])
    assert b"Tuesday" not in bytes(row.text_cipher)
    keyring = client.server.app[CTX].keyring
    assert keyring.decrypt(bytes(row.text_cipher), f"chart-note:{cast.id('client')}") == note["text"]
    status, listed = await api.get(path, token=cast.tok("owner"))
    assert status == 200 and [n["id"] for n in listed["items"]] == [note["id"]]
    assert listed["items"][0]["text"] == note["text"]


async def test_r22_chart_note_takes_only_messages_of_that_clients_conversations(api, cast, clock):
    s = await seed(api, cast, clock)
    path = f"/clients/{cast.id('client')}/chart-notes"
    tok = cast.tok("clinician")
    for other in ("client2", "team", "desk"):
        status, body = await api.post(path, {"message_ids": [s.msg["hello"], s.msg[other]]}, token=tok)
        assert status == 422, other
        assert body["error"]["code"] == "message_not_in_client_record"
        assert body["error"]["message_id"] == s.msg[other]
    status, body = await api.post(path, {"message_ids": [987654321]}, token=tok)
    assert status == 422 and body["error"]["code"] == "message_not_in_client_record"
    status, body = await api.post(path, {"message_ids": [s.msg["wrong"]]}, token=tok)
    assert status == 422 and body["error"]["code"] == "removed_message"
    for bad in ({"message_ids": []}, {"message_ids": ["1"]}, {}, {"message_ids": [1], "x": 1}):
        status, body = await api.post(path, bad, token=tok)
        assert status == 422, bad
    status, body = await api.post(path, {"message_ids": [s.msg["hello"]]}, token=cast.tok("biller"))
    assert status == 403 and body["error"]["rule"] == "R21"
    status, body = await api.get(path, token=cast.tok("client"))
    assert status == 403
    assert await ChartNote.all().count() == 0


# --- R23 exports -------------------------------------------------------------------------------------


async def run_export(api, client, cast, who="owner", **body):
    status, made = await api.post(
        "/exports", {"scope": "all", "require_password": True} | body, token=cast.tok(who)
    )
    assert status == 202, made
    assert made["status"] == "pending"
    await client.server.app[DISPATCHER].drain()
    status, got = await api.get(f"/exports/{made['id']}", token=cast.tok(who))
    assert status == 200
    return made, got


async def test_r23_owner_exports_everything_with_a_password(api, cast, clock, client, config):
    s = await seed(api, cast, clock)
    status, made = await api.post(
        "/exports", {"scope": "all", "require_password": True}, token=cast.tok("owner")
    )
    assert status == 202 and made["status"] == "pending" and made["password"]
    status, got = await api.get(f"/exports/{made['id']}", token=cast.tok("owner"))
    assert got["status"] == "pending" and got["download_url"] is None
    status, _, _ = await download(client, made["id"], cast.tok("owner"))
    assert status == 409  # not ready yet

    await client.server.app[DISPATCHER].drain()
    status, got = await api.get(f"/exports/{made['id']}", token=cast.tok("owner"))
    assert status == 200 and got["status"] == "ready", got
    password = got["password"]
    assert password == made["password"]  # shown again to the same person
    status, data, headers = await download(client, made["id"], cast.tok("owner"))
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert "attachment" in headers["Content-Disposition"]

    # Without the password, or with a wrong one, nothing opens.
    with pytest.raises(RuntimeError):
        open_zip(data, None)
    with pytest.raises(RuntimeError):
        open_zip(data, "not-the-password")
    files = open_zip(data, password)
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:  # dated, private, plain zip (no zip64) members
        info = zf.getinfo("secure-messages/conversation-0001.txt")
        assert info.date_time == (2026, 1, 5, 9, 2, 0) and info.external_attr >> 16 == 0o600
        assert info.extract_version == 20
        # Every member is encrypted, index.txt and README.txt too: only the numbered names show without it.
        assert [i.filename for i in zf.infolist() if not i.flag_bits & 0x1] == []
    assert "README.txt" in files and "Conversations: 5; messages: 7." in files["README.txt"]
    assert "removed by Name at" in files["README.txt"]
    # Member names can be read without the password: they name nobody. Who is in each file is said inside
    # it and in index.txt, both encrypted.
    assert sorted(files) == [
        "README.txt",
        "index.txt",
        *(f"secure-messages/conversation-000{n}.txt" for n in range(1, 6)),
    ]
    convs = by_people(files)
    assert sorted(convs) == sorted(
        [
            "Client Person, Clinician",
            "Guardian, Clinician",
            "Biller, Clinician",
            "Client2 Person, Clinician",
            "Biller, Scheduler",
        ]
    )
    assert "Client Person (client); Clinician (clinician)" in files["index.txt"]
    main = convs["Client Person, Clinician"]
    assert "[2026-01-05 09:00 UTC] Clinician: Hello Client, this is your clinician :smile:\n" in main
    assert (
        "[2026-01-05 09:01 UTC] Client Person: Thanks, see you on Tuesday.\nSecond line of my reply.\n"
        in main
    )
    assert (
        "[2026-01-05 09:02 UTC] Clinician: Lab results for someone else entirely "
        "[removed by Clinician at 2026-01-05 09:03 UTC]\n" in main
    )
    assert main.index("Hello Client") < main.index("Thanks") < main.index("Lab results")
    assert s.text["desk"] in convs["Biller, Scheduler"]  # team-only included
    assert "Guardian (contact of Client Person)" in convs["Guardian, Clinician"]

    # The file lives under var/exports, readable by the server's user only.
    path = Path((await Export.get(id=made["id"])).file_path)
    assert path.parent == config.var_dir / "exports"
    assert os.stat(path).st_mode & 0o077 == 0
    assert os.stat(path.parent).st_mode & 0o077 == 0


async def test_r23_password_is_shown_only_to_the_requester(api, cast, clock, client):
    await seed(api, cast, clock)
    await api.patch(f"/team-members/{cast.id('manager')}", {"can_export": True}, token=cast.api_key)
    made, got = await run_export(api, client, cast, "manager")
    assert got["password"]
    status, seen = await api.get(f"/exports/{made['id']}", token=cast.tok("owner"))
    assert status == 200 and seen["status"] == "ready" and "password" not in seen
    status, listed = await api.get("/exports", token=cast.tok("owner"))
    assert [e["id"] for e in listed["items"]] == [made["id"]] and "password" not in listed["items"][0]


async def test_r23_manager_without_can_export_and_others_are_refused(api, cast, clock, client, config):
    for who in ("manager", "clinician", "biller", "supervisor"):
        status, body = await api.post("/exports", {"scope": "all"}, token=cast.tok(who))
        assert status == 403, who
        assert body["error"]["code"] == "export_not_allowed" and body["error"]["rule"] == "R23"
    for who in ("client", "contact"):
        status, body = await api.post("/exports", {"scope": "all"}, token=cast.tok(who))
        assert status == 403
    status, body = await api.post("/exports", {"scope": "all"}, token=cast.api_key)
    assert status == 403 and body["error"]["code"] == "participant_required"
    assert await Export.all().count() == 0
    status, _ = await api.patch(
        f"/team-members/{cast.id('manager')}", {"can_export": True}, token=cast.api_key
    )
    assert status == 200
    status, made = await api.post("/exports", {"scope": "all"}, token=cast.tok("manager"))
    assert status == 202 and made["require_password"] is True  # a password unless asked otherwise
    # Status and download: those who may export, in this practice only.
    status, _ = await api.get(f"/exports/{made['id']}", token=cast.tok("clinician"))
    assert status == 403
    other = await build_cast(api, config, clock, name="Elsewhere Clinic")
    status, _ = await api.get(f"/exports/{made['id']}", token=other.tok("owner"))
    assert status == 404
    status, _, _ = await download(client, made["id"], other.tok("owner"))
    assert status == 404


async def test_r23_bad_export_requests_are_422(api, cast):
    tok = cast.tok("owner")
    for bad in (
        {},
        {"scope": "everything"},
        {"scope": "clinician"},
        {"scope": "clinician", "clinician_id": cast.id("biller")},
        {"scope": "clinician", "clinician_id": 987654},
        {"scope": "all", "require_password": "yes"},
        {"scope": "all", "format": "csv"},
    ):
        status, body = await api.post("/exports", bad, token=tok)
        assert status == 422, (bad, body)
    status, body = await api.get("/exports/abc", token=tok)
    assert status == 404


async def test_r23_clinician_scope_holds_their_clients_and_their_team_conversations(api, cast, clock, client):
    s = await seed(api, cast, clock)
    # A client of another clinician, in a conversation this clinician is not in: left out.
    status, other_client = await api.post(
        "/clients",
        {
            "name": "Other Client",
            "email": "other@example.net",
            "primary_clinician_id": cast.id("clinician2"),
            "portal_access": True,
            "messaging_enabled": True,
        },
        token=cast.api_key,
    )
    assert status == 201
    status, body = await api.post(
        "/conversations",
        {"participant_ids": [other_client["id"]], "body": "Not in scope"},
        token=cast.tok("clinician2"),
    )
    assert status == 201
    made, got = await run_export(api, client, cast, scope="clinician", clinician_id=cast.id("clinician"))
    assert got["status"] == "ready" and got["scope"] == "clinician"
    _, data, _ = await download(client, made["id"], cast.tok("owner"))
    files = open_zip(data, got["password"])
    assert sorted(by_people(files)) == sorted(
        ["Client Person, Clinician", "Guardian, Clinician", "Biller, Clinician", "Client2 Person, Clinician"]
    )
    assert "Not in scope" not in "".join(files.values())
    assert s.text["desk"] not in "".join(files.values())
    assert "primary clinician is Clinician" in files["README.txt"]


async def test_r23_export_without_password_is_a_plain_zip(api, cast, clock, client):
    s = await seed(api, cast, clock)
    status, settings = await api.patch(
        "/practice/settings", {"allow_unencrypted_exports": True}, token=cast.api_key
    )
    assert status == 200 and settings["allow_unencrypted_exports"] is True
    made, got = await run_export(api, client, cast, require_password=False)
    assert got["status"] == "ready" and "password" not in got and "password" not in made
    _, data, _ = await download(client, made["id"], cast.tok("owner"))
    files = open_zip(data, None)
    assert s.text["team"] in by_people(files)["Biller, Clinician"]
    assert not any("Clinician" in name or "Person" in name for name in files)


async def test_r23_an_export_that_cannot_be_read_fails_with_a_reason(api, cast, clock, client, config):
    s = await seed(api, cast, clock)
    msg = await Message.get(id=s.msg["reply"])
    blob = bytearray(bytes(msg.body_cipher))
    blob[-1] ^= 0xFF  # a damaged row
    await Message.filter(id=msg.id).update(body_cipher=bytes(blob))
    made, got = await run_export(api, client, cast)
    assert got["status"] == "failed"
    assert "does not decrypt" in got["error"]
    assert got["download_url"] is None
    status, body, _ = await download(client, made["id"], cast.tok("owner"))
    assert status == 409
    assert list((config.var_dir / "exports").iterdir()) == []  # the half-written file is gone


# --- R24 the audit log -------------------------------------------------------------------------------


async def audit_rows(api, cast, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    status, body = await api.get(f"/audit?{qs}", token=cast.tok("owner"))
    assert status == 200, body
    return body


async def test_r24_owner_reads_the_export_removal_and_transcript_read(api, cast, clock, client):
    s = await seed(api, cast, clock)
    await transcript(api, cast, "clinician", participants=str(cast.id("client")))
    made, got = await run_export(api, client, cast)
    status, _, _ = await download(client, made["id"], cast.tok("owner"))
    assert status == 200
    body = await audit_rows(api, cast, limit=500)
    rows = body["items"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    by_action = {}
    for r in rows:
        by_action.setdefault(r["action"], []).append(r)
    (removal,) = by_action["message.remove"]
    assert removal["actor_id"] == cast.id("clinician") and removal["actor_kind"] == "team"
    assert removal["target_type"] == "message" and removal["target_id"] == str(s.msg["wrong"])
    assert removal["detail"] == {"conversation_id": s.conv["wrong"]}
    assert removal["ip"] == "127.0.0.1"
    (read,) = by_action["transcript.read"]
    assert read["actor_id"] == cast.id("clinician") and read["target_id"] == str(cast.id("client"))
    assert read["detail"]["participants"] == [cast.id("client")] and read["detail"]["messages"] == 3
    (requested,) = by_action["export.request"]
    assert requested["actor_id"] == cast.id("owner") and requested["target_id"] == str(made["id"])
    assert requested["detail"] == {"scope": "all", "clinician_id": None, "require_password": True}
    (ready,) = by_action["export.ready"]
    assert ready["actor_kind"] == "system" and ready["detail"] == {"conversations": 5, "messages": 7}
    (downloaded,) = by_action["export.download"]
    assert downloaded["actor_id"] == cast.id("owner")
    # Set-up through the API is there too: settings, people, access.
    assert {"settings.update", "team_member.create", "client.create", "contact.create"} <= set(by_action)
    # Never message text, never the export password.
    dumped = json.dumps(rows)
    for text in s.text.values():
        assert text not in dumped and text.split()[0] + " " + text.split()[1] not in dumped
    assert got["password"] not in dumped
    # Each row chains onto the one before.
    for before, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == before["hash"]


async def test_r24_only_the_owner_reads_the_audit_log(api, cast):
    await api.patch(f"/team-members/{cast.id('manager')}", {"can_export": True}, token=cast.api_key)
    for who in ("manager", "clinician", "biller", "client", "contact"):
        status, body = await api.get("/audit", token=cast.tok(who))
        assert status == 403, who
    status, body = await api.get("/audit", token=cast.api_key)
    assert status == 403
    status, body = await api.get("/audit", token=cast.tok("owner"))
    assert status == 200


async def test_r24_audit_log_pages_and_starts_at_since(api, cast, clock):
    clock.advance(3600)  # 10:00
    later = clock.now()
    for _ in range(3):
        await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
    first = await audit_rows(api, cast, since="2026-01-05T10:00:00Z", limit=2)
    assert [r["action"] for r in first["items"]] == ["export.request", "export.request"]
    assert all(r["at"] >= later.isoformat().replace("+00:00", "") for r in first["items"])
    second = await audit_rows(api, cast, since="2026-01-05T10:00:00Z", limit=2, cursor=first["next_cursor"])
    assert [r["action"] for r in second["items"]] == ["export.request", "audit.read"]
    assert second["items"][0]["seq"] == first["items"][-1]["seq"] + 1
    everything = await audit_rows(api, cast, limit=500)
    assert everything["items"][0]["seq"] == 1 and everything["next_cursor"] is None
    # actor_id names a person: past the largest id a PostgreSQL integer holds it answered 500 (schemathesis)
    for bad in (
        "since=yesterday",
        "cursor=x",
        "limit=0",
        "limit=501",
        "actor_id=0",
        "actor_id=11844816995569",
    ):
        status, body = await api.get(f"/audit?{bad}", token=cast.tok("owner"))
        assert status == 422, bad


async def test_r24_sign_ins_are_recorded_success_and_failure(api, cast):
    status, body = await api.get("/team-members", token=cast.api_key)
    email = next(m["email"] for m in body["items"] if m["id"] == cast.id("clinician"))
    status, _ = await api.post("/auth/login", {"email": email, "password": "wrong password!"})
    assert status == 401
    status, _ = await api.post("/auth/login", {"email": email.upper(), "password": PASSWORD})
    assert status == 200
    status, _ = await api.post("/auth/login", {"email": "nobody@example.org", "password": "whatever123"})
    assert status == 401
    rows = (await audit_rows(api, cast, limit=500))["items"]
    signins = [r for r in rows if r["action"].startswith("auth.login")]
    assert [(r["action"], r["target_id"], r["actor_kind"]) for r in signins] == [
        ("auth.login_failed", str(cast.id("clinician")), "anonymous"),
        ("auth.login", str(cast.id("clinician")), "team"),
    ]
    assert signins[0]["detail"] == {"reason": "invalid_credentials"}
    assert "wrong password" not in json.dumps(rows) and email not in json.dumps(rows)


async def test_r23_an_export_without_a_password_is_refused_unless_the_practice_allows_it(api, cast, client):
    status, settings = await api.get("/practice/settings", token=cast.api_key)
    assert status == 200 and settings["allow_unencrypted_exports"] is False  # off unless turned on
    status, body = await api.post(
        "/exports", {"scope": "all", "require_password": False}, token=cast.tok("owner")
    )
    assert status == 403, body
    assert body["error"]["code"] == "unencrypted_export_not_allowed" and body["error"]["rule"] == "R23"
    assert "allow_unencrypted_exports" in body["error"]["message"]
    assert await Export.all().count() == 0
    assert not await AuditEvent.filter(action="export.request").exists()

    status, _ = await api.patch("/practice/settings", {"allow_unencrypted_exports": True}, token=cast.api_key)
    assert status == 200
    status, made = await api.post(
        "/exports", {"scope": "all", "require_password": False}, token=cast.tok("owner")
    )
    assert status == 202 and made["require_password"] is False
    status, _ = await api.patch(
        "/practice/settings", {"allow_unencrypted_exports": False}, token=cast.tok("owner")
    )
    assert status == 200
    status, body = await api.post(
        "/exports", {"scope": "all", "require_password": False}, token=cast.tok("owner")
    )
    assert status == 403 and body["error"]["code"] == "unencrypted_export_not_allowed"
    status, body = await api.patch(
        "/practice/settings", {"allow_unencrypted_exports": "yes"}, token=cast.api_key
    )
    assert status == 422
    # Who turned it on and off is in the audit log.
    changes = [
        e.detail
        for e in await AuditEvent.filter(action="settings.update").order_by("id")
        if "allow_unencrypted_exports" in e.detail
    ]
    assert changes == [{"allow_unencrypted_exports": True}, {"allow_unencrypted_exports": False}]


async def test_r23_export_files_are_deleted_after_the_retention_period(api, cast, clock, client, config):
    await seed(api, cast, clock)
    made, got = await run_export(api, client, cast)
    kept, _ = await run_export(api, client, cast)
    export = await Export.get(id=made["id"])
    path = Path(export.file_path or "")
    assert on_disk(path)
    assert got["expires_at"] == iso(export.finished_at + timedelta(days=7))

    clock.advance(6 * 86400)
    await sweep(client.server.app[CTX])
    owner = await fresh_token(client, cast.id("owner"))
    status, _, _ = await download(client, made["id"], owner)
    assert status == 200 and on_disk(path)

    clock.advance(86400 + 1)  # seven days after it was written
    await sweep(client.server.app[CTX])  # what the audit part runs on its timer
    assert not on_disk(path)
    owner = await fresh_token(client, cast.id("owner"))
    status, got = await api.get(f"/exports/{made['id']}", token=owner)
    assert got["status"] == "expired" and got["download_url"] is None
    resp = await client.get(
        f"/api/v1/exports/{made['id']}/download", headers={"Authorization": f"Bearer {owner}"}
    )
    body = await resp.json()
    assert resp.status == 410 and body["error"]["code"] == "export_expired"
    assert "7 days" in body["error"]["message"]
    # The other export of that day went with it: none stays on disk.
    assert (await Export.get(id=kept["id"])).status == "expired"
    assert os.listdir(config.var_dir / "exports") == []


async def test_r23_a_download_past_the_retention_deletes_the_file_even_without_the_sweep(
    api, cast, clock, client
):
    await seed(api, cast, clock)
    made, _ = await run_export(api, client, cast)
    path = Path((await Export.get(id=made["id"])).file_path or "")
    clock.advance(7 * 86400 + 1)
    status, data, _ = await download(client, made["id"], await fresh_token(client, cast.id("owner")))
    assert status == 410 and b"export_expired" in data
    assert not on_disk(path)
    assert (await Export.get(id=made["id"])).status == "expired"


# --- times in the practice's time zone ---------------------------------------------------------------


async def test_chart_notes_transcripts_and_exports_use_the_practice_time_zone(api, cast, clock, client):
    s = await seed(api, cast, clock)
    status, body = await api.patch(
        "/practice/settings", {"time_zone": "America/New_York"}, token=cast.tok("owner")
    )
    assert status == 200 and body["time_zone"] == "America/New_York"
    status, page = await transcript(api, cast, "clinician")
    assert status == 200 and page["time_zone"] == "America/New_York"
    headings = {c["id"]: c["heading"] for c in page["conversations"]}
    assert headings == {
        s.conv["hello"]: "Client Person, Clinician",
        s.conv["guardian"]: "Guardian, Clinician",
    }
    status, note = await api.post(
        f"/clients/{cast.id('client')}/chart-notes",
        {"message_ids": [s.msg["hello"]]},
        token=cast.tok("clinician"),
    )
    assert status == 201
    assert note["text"] == (
        "Conversation: Client Person, Clinician (times in America/New_York)\n"
        "[2026-01-05 04:00 EST] Clinician: Hello Client, this is your clinician :smile:"
    )
    made, got = await run_export(api, client, cast)
    files = open_zip((await download(client, made["id"], cast.tok("owner")))[1], got["password"])
    main = by_people(files)["Client Person, Clinician"]
    assert "started 2026-01-05 04:00 EST (times in America/New_York)" in main
    assert "[2026-01-05 04:01 EST] Client Person: Thanks" in main
    assert "[removed by Clinician at 2026-01-05 04:03 EST]" in main
    assert "Times are in the practice's time zone, America/New_York" in files["README.txt"]

"""`securemsg backup` and `securemsg restore` (issue 18): a serving instance is backed up while messages are
being sent, restored into a fresh directory and database, and a server started on the restore reads every
conversation and message through the API — the bodies decrypt, so the data keys travelled, and the old
bearer tokens still work, so the secret key did. On SQLite (the online backup API) and PostgreSQL (pg_dump,
pg_restore). And every refusal: a non-empty directory or database, a wrong passphrase, a damaged file."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sqlite3
import stat
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gateway.config import new_data_key_line
from tests.conftest import _pg_exec, _with_db, need, postgres_url
from tests.faults import procs

PASSPHRASE = "a long backup passphrase"


async def securemsg(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=env, cwd=procs.ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def empty_database(db_url: str) -> Iterator[str]:
    """Where a restore goes: a new SQLite path, or a new, empty PostgreSQL database (not from the
    migrated template: restore refuses a database that has tables)."""
    if db_url.startswith("sqlite://"):
        yield ""  # the restore's var directory holds it (set per test)
        return
    base = need("postgres", postgres_url())
    name = f"securemsg_restore_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    yield _with_db(base, name)
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def target_url(empty_database: str, var: Path) -> str:
    return empty_database or f"sqlite://{var}/securemsg.sqlite3"


def env_for(db_url: str, var: Path, *, keys_in_files: bool) -> dict[str, str]:
    env = procs.server_env(db_url, var, SECUREMSG_SEND_RATE_PER_MIN="1000000")
    if keys_in_files:  # var/secret.key and var/data.key, made at the first start
        del env["SECUREMSG_SECRET_KEY"], env["SECUREMSG_DATA_KEY"]
    return env


async def read_everything(http: procs.Http, token: str) -> dict[int, list[str]]:
    """Every conversation the person is in, and every message body in it, oldest first, via the API."""
    found: dict[int, list[str]] = {}
    cursor = ""
    while True:
        page = await http.ok("GET", "/conversations" + (f"?cursor={cursor}" if cursor else ""), token=token)
        for item in page["items"]:
            found[item["id"]] = []
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    for conv_id in found:
        bodies: list[str] = []
        before = ""
        while True:
            query = f"?limit=200{f'&before={before}' if before else ''}"
            page = await http.ok("GET", f"/conversations/{conv_id}/messages{query}", token=token)
            bodies[:0] = [m["body"] for m in page["items"]]
            before = page.get("next_before") or ""
            if not before:
                break
        found[conv_id] = bodies
    return found


class Senders:
    """One task per conversation, sending numbered messages one after another until stopped; each message
    the server acknowledged is kept with the moment the acknowledgement arrived."""

    def __init__(self, http: procs.Http, plan: dict[int, str]) -> None:
        self.http = http
        self.plan = plan  # conversation id -> sender's token
        self.sent: dict[int, list[tuple[str, float]]] = {c: [] for c in plan}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(c, t)) for c, t in self.plan.items()]

    async def _send(self, conv_id: int, token: str) -> None:
        i = 0
        while not self._stop.is_set():
            body = f"conversation {conv_id}, message {i}: 🌿 the session moved to Tuesday"
            await self.http.ok("POST", f"/conversations/{conv_id}/messages", {"body": body}, token)
            self.sent[conv_id].append((body, time.monotonic()))
            i += 1

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def test_a_backup_of_a_serving_instance_restores_every_conversation_and_message(
    db_url: str, empty_database: str, tmp_path: Path
) -> None:
    keys_in_files = db_url.startswith("sqlite://")  # the other case: keys given in the environment
    var1, var2 = tmp_path / "one" / "var", tmp_path / "two" / "var"
    env1 = env_for(db_url, var1, keys_in_files=keys_in_files)
    made = await procs.create_practice(env1, procs.PASSWORD)
    server = procs.Server(env1, tmp_path / "logs", "--no-worker")
    await server.start()
    archive = tmp_path / "backups" / "securemsg.backup"
    archive.parent.mkdir()
    try:
        async with aiohttp.ClientSession() as session:
            http = procs.Http(session, server)
            people = await procs.make_people(http, made, ["alice", "bob"], ["carol", "dan"])
            alice, bob = people.tokens["alice"], people.tokens["bob"]
            convs = [
                await procs.open_conversation(http, alice, people.ids["carol"]),
                await procs.open_conversation(http, alice, people.ids["dan"]),
                await procs.open_conversation(http, bob, people.ids["alice"]),
            ]
            senders = Senders(http, {convs[0]: alice, convs[1]: alice, convs[2]: bob})
            senders.start()
            await asyncio.sleep(1.0)  # sends are going on, and go on while the backup runs
            began = time.monotonic()
            code, out, err = await securemsg(
                env1 | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}, "backup", str(archive)
            )
            await asyncio.sleep(0.3)
            await senders.stop()
            assert code == 0, err
            assert out.startswith(f"backup written to {archive}")
            before_backup = {c: sum(1 for _, at in sent if at < began) for c, sent in senders.sent.items()}
            assert all(n >= 3 for n in before_backup.values()), before_backup
            assert sum(len(s) for s in senders.sent.values()) > sum(before_backup.values())  # also during it
    finally:
        await server.stop()

    # The file: only the manifest in clear; neither the keys nor any message or name.
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["manifest.json", "keys.enc", "database.enc"]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["database"] == ("sqlite" if keys_in_files else "postgres")
    assert manifest["schema_migration"].startswith("00") and manifest["kdf"]["name"] == "scrypt"
    # The audit key travels too (made in the var directory by the server, or given in the environment), and
    # the Web Push VAPID key, which browsers' subscriptions are bound to.
    assert manifest["key_files"] == ["audit.key", "data.key", "secret.key", "vapid.key"]
    raw = archive.read_bytes()
    if keys_in_files:
        secret_key = (var1 / "secret.key").read_text().strip()
        data_key = (var1 / "data.key").read_text().strip()
    else:
        secret_key, data_key = env1["SECUREMSG_SECRET_KEY"], env1["SECUREMSG_DATA_KEY"]
    key_material = data_key.rpartition(":")[2]
    assert len(secret_key) >= 16 and len(key_material) >= 40
    for secret in (
        b"session moved",
        b"Tuesday",
        b"Carol",
        b"faults.example",
        secret_key.encode(),
        key_material.encode(),
    ):
        assert secret not in raw
    # Nor is any key file in a form a reader could lift: not as its text, not as the base64 of its bytes (as a
    # JSON of the files would hold it), not as the raw key.
    from_env = {
        "secret.key": env1.get("SECUREMSG_SECRET_KEY", "") + "\n",
        "data.key": env1.get("SECUREMSG_DATA_KEY", "") + "\n",
    }
    for name, source in manifest["key_sources"].items():
        held = (var1 / name).read_bytes() if source == "file" else from_env[name].encode()
        forms = [held.strip()[-32:], base64.b64encode(held)[:32], base64.b64encode(held)[-36:-4]]
        material = held.strip().rpartition(b":")[2]
        with contextlib.suppress(ValueError):
            forms.append(base64.urlsafe_b64decode(material + b"=" * (-len(material) % 4))[:16])
        assert [f for f in forms if f in raw] == [], name

    # Restore into a fresh directory (and a fresh database), then serve it.
    env2 = env_for(target_url(empty_database, var2), var2, keys_in_files=True)
    code, out, err = await securemsg(
        env2 | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}, "restore", str(archive)
    )
    assert code == 0, err
    assert "restored the" in out and err == ""
    assert stat.S_IMODE(var2.stat().st_mode) == 0o700
    for name in ("secret.key", "data.key"):
        assert stat.S_IMODE((var2 / name).stat().st_mode) == 0o600
    if keys_in_files:
        assert (var2 / "data.key").read_bytes() == (var1 / "data.key").read_bytes()
        assert stat.S_IMODE((var2 / "securemsg.sqlite3").stat().st_mode) == 0o600
    restored = procs.Server(env2, tmp_path / "logs2", "--no-worker")
    await restored.start()
    try:
        async with aiohttp.ClientSession() as session:
            http = procs.Http(session, restored)
            # The bearer tokens issued before the backup still work: the secret key travelled.
            seen = await read_everything(http, alice)
            assert set(seen) == set(convs)
            for conv_id in convs:
                sent = [body for body, _ in senders.sent[conv_id]]
                got = seen[conv_id]
                # Every body decrypts to what was sent (the data keys travelled), in order, with no gap: one
                # snapshot, which holds at least everything acknowledged before the backup began.
                assert got == sent[: len(got)], conv_id
                assert len(got) >= before_backup[conv_id], (conv_id, len(got), before_backup[conv_id])
            assert await read_everything(http, bob) == {convs[2]: seen[convs[2]]}
            # And signing in with a password works as before.
            login = await http.ok(
                "POST", "/auth/login", {"email": people.emails["bob"], "password": procs.PASSWORD}
            )
            assert login["token"]
    finally:
        await restored.stop()


async def _made_backup(db_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    var = tmp_path / "src" / "var"
    env = env_for(db_url, var, keys_in_files=True)
    await procs.create_practice(env, procs.PASSWORD)
    archive = tmp_path / "b.backup"
    code, _, err = await securemsg(env | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}, "backup", str(archive))
    assert code == 0, err
    return archive, env


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


async def test_restore_refuses_a_wrong_passphrase_and_a_damaged_file_and_writes_nothing(
    db_url: str, empty_database: str, tmp_path: Path
) -> None:
    archive, _ = await _made_backup(db_url, tmp_path)
    var = tmp_path / "target" / "var"
    env = env_for(target_url(empty_database, var), var, keys_in_files=True)
    damaged = tmp_path / "damaged.backup"
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = tar.getmember("database.enc")
    data[member.offset_data + member.size // 2] ^= 0x01  # one bit of the database, deep inside
    damaged.write_bytes(bytes(data))
    cut = tmp_path / "cut.backup"
    cut.write_bytes(archive.read_bytes()[: member.offset_data + member.size - 40])

    for path, passphrase in [(archive, "not the passphrase"), (damaged, PASSPHRASE), (cut, PASSPHRASE)]:
        code, out, err = await securemsg(
            env | {"SECUREMSG_BACKUP_PASSPHRASE": passphrase}, "restore", str(path)
        )
        assert (code, out) == (2, ""), (path, err)
        assert err.strip().splitlines() == ["securemsg: wrong passphrase or damaged backup"] or (
            path == cut and err.strip().startswith("securemsg: ")
        ), err
        assert not var.exists() and _listing(tmp_path / "target") == []
        if not db_url.startswith("sqlite://"):
            assert await _tables(empty_database) == 0
    # The right passphrase, the whole file: it goes in.
    code, _, err = await securemsg(env | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}, "restore", str(archive))
    assert code == 0, err


async def _tables(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
    finally:
        await conn.close()


async def test_restore_refuses_a_directory_or_database_that_is_not_empty(
    db_url: str, empty_database: str, tmp_path: Path
) -> None:
    archive, src_env = await _made_backup(db_url, tmp_path)
    var = tmp_path / "target" / "var"
    var.mkdir(parents=True)
    (var / "notes.txt").write_text("someone's file")
    env = env_for(target_url(empty_database, var), var, keys_in_files=True) | {
        "SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE
    }
    code, out, err = await securemsg(env, "restore", str(archive))
    assert (code, out) == (2, "")
    assert err == f"securemsg: restore needs an empty var directory, and {var} is not empty\n"
    assert _listing(var) == ["notes.txt"]

    # An empty directory but a database that has tables: the source's own database.
    (var / "notes.txt").unlink()
    env = env_for(db_url, var, keys_in_files=True) | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}
    code, out, err = await securemsg(env, "restore", str(archive))
    assert (code, out) == (2, "")
    assert err.startswith("securemsg: restore needs an empty database, and ") and err.count("\n") == 1
    assert _listing(var) == []


async def test_backup_needs_a_passphrase_and_a_new_file(sqlite_url: str, tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = env_for(sqlite_url, var, keys_in_files=True)
    out_path = tmp_path / "b.backup"
    # No passphrase anywhere and no terminal: refused, nothing written.
    code, out, err = await securemsg(env, "backup", str(out_path))
    assert (code, out) == (2, "")
    assert err == (
        "securemsg: a passphrase is needed: give --passphrase-file FILE or set SECUREMSG_BACKUP_PASSPHRASE "
        "(or run on a terminal to be asked)\n"
    )
    code, _, err = await securemsg(env | {"SECUREMSG_BACKUP_PASSPHRASE": "short"}, "backup", str(out_path))
    assert code == 2 and err == "securemsg: the passphrase must be at least 12 characters\n"
    assert not out_path.exists()
    # From a file (its first line), and then the same name again is refused.
    phrase_file = tmp_path / "phrase"
    phrase_file.write_text(PASSPHRASE + "\n")
    code, _, err = await securemsg(env, "backup", str(out_path), "--passphrase-file", str(phrase_file))
    assert code == 0, err
    before = out_path.read_bytes()
    code, _, err = await securemsg(env, "backup", str(out_path), "--passphrase-file", str(phrase_file))
    assert code == 2 and err == f"securemsg: {out_path} already exists: give the backup a new name\n"
    assert out_path.read_bytes() == before
    # The file's passphrase opens it.
    var2 = tmp_path / "two"
    env2 = env_for(f"sqlite://{var2}/securemsg.sqlite3", var2, keys_in_files=True)
    code, _, err = await securemsg(env2, "restore", str(out_path), "--passphrase-file", str(phrase_file))
    assert code == 0, err
    # No working files are left beside the backup or the restore.
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # noqa: ASYNC240
        "b.backup",
        "phrase",
        "securemsg.sqlite3",
        "two",
        "var",
    ]


async def test_restore_refuses_a_backup_of_the_other_database_kind(sqlite_url: str, tmp_path: Path) -> None:
    archive, _ = await _made_backup(sqlite_url, tmp_path)
    var = tmp_path / "t"
    env = procs.server_env("postgres://postgres@127.0.0.1:5432/nothing_here", var)
    code, _, err = await securemsg(env | {"SECUREMSG_BACKUP_PASSPHRASE": PASSPHRASE}, "restore", str(archive))
    assert code == 2
    assert err.startswith(
        "securemsg: this is a sqlite backup and SECUREMSG_DATABASE_URL is a postgres database"
    )
    assert not var.exists()


def test_a_key_given_in_the_environment_that_differs_is_pointed_out(tmp_path: Path) -> None:
    from gateway import backup

    restored = {"data.key": (new_data_key_line("k1") + "\n").encode(), "secret.key": b"s" * 32 + b"\n"}
    same = {"SECUREMSG_DATA_KEY": restored["data.key"].decode(), "SECUREMSG_SECRET_KEY": "s" * 32}
    assert backup._key_warnings(same, restored) == []
    other = {"SECUREMSG_DATA_KEY": new_data_key_line("k1"), "SECUREMSG_SECRET_KEY": "t" * 32}
    notes = backup._key_warnings(other, restored)
    assert len(notes) == 2 and "SECUREMSG_DATA_KEY" in notes[0] and "SECUREMSG_SECRET_KEY" in notes[1]


def _on_a_terminal(env: dict[str, str], args: list[str], answers: list[bytes]) -> tuple[int, str]:
    """Run securemsg with a pseudo-terminal as its controlling terminal, answering each prompt in turn."""
    import fcntl
    import pty
    import subprocess
    import termios

    master, slave = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gateway", *args], stdin=slave, stdout=slave, stderr=slave, env=env,
        cwd=procs.ROOT, start_new_session=True, preexec_fn=take_terminal,  # noqa: PLW1509
    )  # fmt: skip
    os.close(slave)
    seen = b""
    for answer in answers:
        deadline = time.monotonic() + 60
        prompts = seen.count(b": ")
        while seen.count(b": ") == prompts and time.monotonic() < deadline:
            seen += os.read(master, 1024)
        os.write(master, answer + b"\n")
    proc.wait(120)
    with contextlib.suppress(OSError):  # the terminal is closed once the process is gone
        while chunk := os.read(master, 1024):
            seen += chunk
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def test_without_a_file_or_variable_the_passphrase_is_asked_on_the_terminal(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = env_for(sqlite_url, tmp_path / "var", keys_in_files=True)
    out_path = tmp_path / "b.backup"
    code, said = _on_a_terminal(
        env, ["backup", str(out_path)], [PASSPHRASE.encode(), b"something else entirely"]
    )
    assert code == 2 and "securemsg: the two passphrases differ" in said and not out_path.exists()
    code, said = _on_a_terminal(env, ["backup", str(out_path)], [PASSPHRASE.encode()] * 2)
    assert code == 0, said
    assert "Backup passphrase: " in said and PASSPHRASE not in said  # asked twice, never echoed
    var2 = tmp_path / "two"
    env2 = env_for(f"sqlite://{var2}/securemsg.sqlite3", var2, keys_in_files=True)
    code, said = _on_a_terminal(env2, ["restore", str(out_path)], [PASSPHRASE.encode()])
    assert code == 0 and "restored the sqlite backup" in said and PASSPHRASE not in said, said


def test_the_sqlite_copy_holds_what_was_committed_even_in_the_wal_and_nothing_in_flight(
    tmp_path: Path,
) -> None:
    """What the online backup API gives and a copy of the file would not: a serving process's commits that
    are still in the write-ahead log (not yet checkpointed into the file) are in the copy, and a write
    transaction still open while the copy is made is not."""
    from gateway.backup import copy_sqlite

    live = tmp_path / "live.sqlite3"
    server = sqlite3.connect(live, isolation_level=None)
    try:
        server.execute("PRAGMA journal_mode=WAL")
        server.execute("PRAGMA wal_autocheckpoint=0")  # every commit stays in live.sqlite3-wal
        server.execute("CREATE TABLE message (n INTEGER)")
        for n in range(500):
            server.execute("INSERT INTO message VALUES (?)", (n,))  # 500 commits
        server.execute("BEGIN IMMEDIATE")
        server.execute("INSERT INTO message VALUES (-1)")  # a send in flight
        copy_sqlite(live, tmp_path / "copy.sqlite3")
        server.execute("ROLLBACK")
    finally:
        server.close()
    copy = sqlite3.connect(tmp_path / "copy.sqlite3")
    try:
        assert [n for (n,) in copy.execute("SELECT n FROM message ORDER BY rowid")] == list(range(500))
    finally:
        copy.close()

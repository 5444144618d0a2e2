"""`securemsg backup PATH` and `securemsg restore PATH` (docs/operations.md, "Backups and retention").

A backup is one tar file:
- `manifest.json`, in clear: the format and its version, when, the database kind, its newest migration, the
  key derivation's settings and which key files are inside.
- `keys.enc`: the key files (var/secret.key, var/data.key, every other *.key in the var directory, and the
  APNs / FCM credentials when they live there), sealed. Keys given in SECUREMSG_SECRET_KEY or
  SECUREMSG_DATA_KEY are in effect instead of the files, so those values are what the backup holds.
- `database.enc`: the database, sealed. SQLite is copied with SQLite's online backup API and PostgreSQL with
  `pg_dump`; each reads one consistent snapshot while the server goes on writing.

Both sealed members are encrypted under a key made from the operator's passphrase (gateway.backup_box): the
database holds names and email addresses in clear, so it is kept no less secret than the keys. The passphrase
never appears on a command line.

`restore` goes only into an empty var directory and an empty database. It reads and checks everything — the
passphrase, every byte of both members — before it writes anything; key files are written 0600.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.backup_box import SCRYPT, Damaged, derive_key, open_bytes, open_stream, seal_bytes, seal_stream
from gateway.config import Config, ConfigError, database_url, parse_data_keys, var_dir_from

FORMAT = "securemsg-backup"
VERSION = 1
MANIFEST, KEYS, DATABASE = "manifest.json", "keys.enc", "database.enc"
PASSPHRASE_ENV = "SECUREMSG_BACKUP_PASSPHRASE"  # noqa: S105 - the variable's name
MIN_PASSPHRASE = 12
WRONG = "wrong passphrase or damaged backup"
PG_TOOL_TIMEOUT_S = 6 * 3600


class BackupError(Exception):
    """Why a backup or restore cannot go on: one line for the operator (exit status 2)."""


# --- the passphrase -----------------------------------------------------------------------------------


def read_passphrase(file: str | None, environ: Mapping[str, str], *, confirm: bool) -> str:
    """From --passphrase-file (its first line), else SECUREMSG_BACKUP_PASSPHRASE, else asked on the terminal
    (twice when making a backup). Never from the command line itself, where `ps` would show it."""
    if file is not None:
        try:
            text = Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BackupError(
                f"cannot read --passphrase-file {file}: {getattr(exc, 'strerror', exc)}"
            ) from None
        phrase = text.splitlines()[0] if text else ""
    elif environ.get(PASSPHRASE_ENV):
        phrase = environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty():
        phrase = getpass.getpass("Backup passphrase: ")
        if confirm and getpass.getpass("The same passphrase again: ") != phrase:
            raise BackupError("the two passphrases differ")
    else:
        raise BackupError(
            f"a passphrase is needed: give --passphrase-file FILE or set {PASSPHRASE_ENV} "
            "(or run on a terminal to be asked)"
        )
    if not phrase:
        raise BackupError("the passphrase is empty")
    if confirm and len(phrase) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    return phrase


# --- the databases ------------------------------------------------------------------------------------


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


def sqlite_path(url: str) -> Path:
    path = url[len("sqlite://") :].split("?", 1)[0]
    if not path or ":memory:" in path:
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(path)


def pg_settings(url: str) -> dict[str, Any]:
    """The connection settings in a postgres:// URL (Tortoise's own options, such as maxsize, left out)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return {
        "host": unquote(parts.hostname or "localhost"),
        "port": parts.port or 5432,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "database": unquote(parts.path.lstrip("/")),
        "sslmode": query.get("sslmode", [None])[0],
    }


def pg_env(url: str) -> dict[str, str]:
    """For pg_dump and pg_restore: libpq's variables, so the password is never in a process's arguments."""
    s = pg_settings(url)
    env = dict(os.environ)
    env |= {"PGHOST": s["host"], "PGPORT": str(s["port"]), "PGDATABASE": s["database"]}
    for name, key in (("PGUSER", "user"), ("PGPASSWORD", "password"), ("PGSSLMODE", "sslmode")):
        if s[key]:
            env[name] = s[key]
    return env


async def _pg_fetch(url: str, sql: str) -> Any:
    import asyncpg

    s = pg_settings(url)
    try:
        conn = await asyncpg.connect(
            host=s["host"], port=s["port"], user=s["user"], password=s["password"], database=s["database"],
            ssl=s["sslmode"] if s["sslmode"] not in (None, "disable") else None, timeout=30,
        )  # fmt: skip
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot reach the PostgreSQL database {s['database']!r}: {exc}") from None
    try:
        return await conn.fetchval(sql)
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


_NEWEST_MIGRATION = "SELECT max(name) FROM tortoise_migrations WHERE app = 'models'"
_PG_TABLES = (
    "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%'"
)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install the PostgreSQL client tools "
            "(the server's major version or newer)"
        )
    return found


def _run_pg_tool(args: list[str], url: str, what: str) -> None:
    done = subprocess.run(  # noqa: S603 - a fixed tool, arguments of our own
        args, env=pg_env(url), capture_output=True, text=True, timeout=PG_TOOL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {lines[0] if lines else f'exit status {done.returncode}'}")


def copy_sqlite(source: Path, target: Path) -> str | None:
    """A consistent copy of a live SQLite database (its online backup API: one read transaction, which in
    WAL mode never holds up the server's writes), checked; returns its newest migration."""
    if not source.is_file() or source.stat().st_size == 0:
        raise BackupError(f"there is no database at {source}")
    src = sqlite3.connect(source, timeout=30)  # only read (read-only mode could not open a WAL file alone)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return _check_sqlite(target)


def _check_sqlite(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        (ok,) = conn.execute("PRAGMA quick_check").fetchone()
        if ok != "ok":
            raise BackupError(f"the database copy fails SQLite's check: {ok}")
        try:
            found = conn.execute(_NEWEST_MIGRATION).fetchone()[0]
            return str(found) if found is not None else None
        except sqlite3.OperationalError:
            return None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database copy is not a usable SQLite file: {exc}") from None
    finally:
        conn.close()


def dump_postgres(url: str, target: Path) -> str | None:
    """pg_dump's custom format: one snapshot of the whole database, taken while the server writes."""
    pg_dump = _tool("pg_dump")
    migration = asyncio.run(_pg_fetch(url, _NEWEST_MIGRATION))
    _run_pg_tool(
        [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"], url, "pg_dump"
    )
    return migration if isinstance(migration, str) else None


# --- the key files ------------------------------------------------------------------------------------


def key_files(config: Config, environ: Mapping[str, str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """The key files to keep, by name in the var directory, and where each came from (file or environment)."""
    files: dict[str, bytes] = {}
    sources: dict[str, str] = {}
    var = config.var_dir
    extra = [p for p in (config.apns_key_file, config.fcm_credentials_file) if p]
    candidates = sorted(var.glob("*.key")) + [Path(p) for p in extra]
    for path in candidates:
        if path.is_file() and path.resolve().parent == var.resolve():
            files[path.name] = path.read_bytes()
            sources[path.name] = "file"
    if "SECUREMSG_SECRET_KEY" in environ:
        files["secret.key"] = config.secret_key + b"\n"
        sources["secret.key"] = "environment"
    if config.data_key_file is None:
        lines = [f"{kid}:{base64.urlsafe_b64encode(key).decode()}" for kid, key in config.data_keys]
        files["data.key"] = ("\n".join(lines) + "\n").encode()
        sources["data.key"] = "environment"
    if "SECUREMSG_AUDIT_KEY" in environ and config.audit_keys:
        # The audit chain's key (R24): without it `audit verify` cannot vouch for the restored log.
        lines = [f"{kid}:{base64.urlsafe_b64encode(key).decode()}" for kid, key in config.audit_keys]
        files["audit.key"] = ("\n".join(lines) + "\n").encode()
        sources["audit.key"] = "environment"
    if environ.get("SECUREMSG_VAPID_PRIVATE_KEY", "").strip() and config.vapid_private_pem:
        # Browsers' push subscriptions are bound to this key: a restore without it would end them all.
        files["vapid.key"] = config.vapid_private_pem.encode()
        sources["vapid.key"] = "environment"
    return files, sources


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


# --- the archive --------------------------------------------------------------------------------------


def _aad(member: str, manifest: bytes) -> bytes:
    return f"{FORMAT}/{VERSION}\0{member}\0".encode() + hashlib.sha256(manifest).digest()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid = 0o600, int(time.time()), 0, 0
    if path is not None:
        info.size = path.stat().st_size
        with path.open("rb") as fh:
            tar.addfile(info, fh)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def make_backup(config: Config, out: Path, passphrase: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Write the backup to `out` (a new file, written whole or not at all); returns its manifest."""
    if out.exists():
        raise BackupError(f"{out} already exists: give the backup a new name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory")
    files, sources = key_files(config, environ)
    url = config.database_url
    # Working files (the database's copy in clear among them) sit beside the backup, readable by this user
    # only (umask 077, and a 0700 directory), and are gone when this ends, however it ends.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".securemsg-backup-") as tmp_name:
        tmp = Path(tmp_name)
        if is_sqlite(url):
            kind, copy = "sqlite", tmp / "database.sqlite3"
            migration = copy_sqlite(sqlite_path(url), copy)
        else:
            kind, copy = "postgres", tmp / "database.pgdump"
            migration = dump_postgres(url, copy)
        salt = os.urandom(16)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "securemsg": _version(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": kind,
            "schema_migration": migration,
            "key_files": sorted(files),
            "key_sources": sources,
            "kdf": {"name": "scrypt", **SCRYPT, "salt": base64.b64encode(salt).decode()},
            "cipher": "AES-256-GCM in 1 MiB chunks, zlib-compressed",
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
        key = derive_key(passphrase, salt, **SCRYPT)
        keys_json = json.dumps({n: base64.b64encode(b).decode() for n, b in files.items()}).encode()
        sealed_db = tmp / DATABASE
        with copy.open("rb") as src, sealed_db.open("wb") as dst:
            seal_stream(key, _aad(DATABASE, manifest_bytes), src, dst)
        copy.unlink()  # the copy in clear goes as soon as it is sealed
        whole = tmp / "backup.tar"
        with tarfile.open(whole, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, manifest_bytes)
            _add(tar, KEYS, seal_bytes(key, _aad(KEYS, manifest_bytes), keys_json))
            _add(tar, DATABASE, path=sealed_db)
        with whole.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(whole, out)
    return manifest


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("securemsg")
    except PackageNotFoundError:
        return None


def _known_migrations() -> set[str]:
    import inbox.migrations

    return {p.stem for p in Path(inbox.migrations.__file__).parent.glob("[0-9]*.py")}


def _read_manifest(tar: tarfile.TarFile, path: Path) -> tuple[dict[str, Any], bytes]:
    try:
        fh = tar.extractfile(MANIFEST)
        raw = fh.read() if fh else b""
        manifest = json.loads(raw)
    except (KeyError, ValueError, tarfile.TarError):
        raise BackupError(f"{path} is not a securemsg backup (no readable {MANIFEST})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a securemsg backup")
    if manifest.get("version") != VERSION:
        raise BackupError(
            f"{path} is a backup of format version {manifest.get('version')}; this reads {VERSION}"
        )
    return manifest, raw


def _check_target(manifest: dict[str, Any], var: Path, url: str) -> None:
    if var.exists() and (not var.is_dir() or any(var.iterdir())):
        raise BackupError(f"restore needs an empty var directory, and {var} is not empty")
    kind = "sqlite" if is_sqlite(url) else "postgres"
    if manifest.get("database") != kind:
        raise BackupError(
            f"this is a {manifest.get('database')} backup and SECUREMSG_DATABASE_URL is a {kind} database; "
            "point it at an empty database of the backup's kind"
        )
    migration = manifest.get("schema_migration")
    if migration is not None and migration not in _known_migrations():
        raise BackupError(
            f"the backup's schema ({migration}) is newer than this securemsg knows: restore it with the "
            "version that made it, or a newer one"
        )
    if kind == "sqlite":
        path = sqlite_path(url)
        for p in (path, path.with_name(path.name + "-wal")):
            if p.exists() and p.stat().st_size > 0:
                raise BackupError(f"restore needs an empty database, and {p} exists")
    else:
        tables = asyncio.run(_pg_fetch(url, _PG_TABLES))
        if tables:
            name = pg_settings(url)["database"]
            raise BackupError(f"restore needs an empty database, and {name!r} has {tables} tables")


def _nearest_dir(path: Path) -> Path:
    for candidate in [path, *path.absolute().parents]:
        if candidate.is_dir():
            return candidate
    return Path(tempfile.gettempdir())


def restore(archive: Path, passphrase_file: str | None, environ: Mapping[str, str]) -> list[str]:
    """Restore `archive` into the configured (empty) var directory and database; the lines to print."""
    var = var_dir_from(environ)
    url = database_url(environ, var)
    try:
        tar = tarfile.open(archive, "r:")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {archive}: {getattr(exc, 'strerror', None) or exc}") from None
    with tar:
        manifest, manifest_bytes = _read_manifest(tar, archive)
        _check_target(manifest, var, url)
        passphrase = read_passphrase(passphrase_file, environ, confirm=False)
        try:
            kdf = manifest["kdf"]
            salt = base64.b64decode(kdf["salt"])
            key = derive_key(passphrase, salt, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
            sealed_keys = tar.extractfile(KEYS)
            db_member = tar.getmember(DATABASE)
            sealed_db = tar.extractfile(db_member)
            if sealed_keys is None or sealed_db is None:
                raise Damaged("a member is not a file")
            raw_keys = json.loads(open_bytes(key, _aad(KEYS, manifest_bytes), sealed_keys.read()))
            files = {name: base64.b64decode(data) for name, data in raw_keys.items()}
            if not all(_safe_name(n) for n in files):
                raise Damaged("a key file name is not a plain name")
            with tempfile.TemporaryDirectory(
                dir=_nearest_dir(var.parent), prefix=".securemsg-restore-"
            ) as tmp:
                plain = Path(tmp) / "database"
                with plain.open("wb") as out:
                    open_stream(key, _aad(DATABASE, manifest_bytes), sealed_db, db_member.size, out)
                # Every byte checked: only now is anything written where it stays.
                target = _put_database(manifest, url, var, plain)
        except (Damaged, KeyError, TypeError, ValueError, tarfile.TarError):
            raise BackupError(WRONG) from None
    written = _write_keys(var, files)
    lines = [
        f"restored the {manifest['database']} backup made {manifest.get('created_at')} "
        f"(schema {manifest.get('schema_migration')}) into {target}",
        f"key files written to {var} (readable by this user only): {', '.join(written)}",
    ]
    lines += _key_warnings(environ, files)
    return lines


def _put_database(manifest: dict[str, Any], url: str, var: Path, plain: Path) -> str:
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    if manifest["database"] == "sqlite":
        _check_sqlite(plain)
        path = sqlite_path(url)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)  # empty files only: _check_target refused anything more
        shutil.move(plain, path)
        os.chmod(path, 0o600)
        return str(path)
    pg_restore = _tool("pg_restore")
    _run_pg_tool(
        [pg_restore, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
         f"--dbname={pg_settings(url)['database']}", str(plain)],
        url,
        "pg_restore",
    )  # fmt: skip
    return f"the PostgreSQL database {pg_settings(url)['database']!r}"


def _write_keys(var: Path, files: Mapping[str, bytes]) -> list[str]:
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        fd = os.open(var / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return sorted(files)


def _key_warnings(environ: Mapping[str, str], files: Mapping[str, bytes]) -> list[str]:
    """Keys set in the environment win over the restored files: say so when they would not read the data."""
    notes = []
    if "SECUREMSG_DATA_KEY" in environ and "data.key" in files:
        try:
            in_env = dict(parse_data_keys("SECUREMSG_DATA_KEY", environ["SECUREMSG_DATA_KEY"]))
            restored = dict(parse_data_keys("data.key", files["data.key"].decode()))
            lacking = any(in_env.get(key_id) != key for key_id, key in restored.items())
        except (ConfigError, UnicodeDecodeError):
            lacking = True
        if lacking:
            notes.append(
                "note: SECUREMSG_DATA_KEY is set and lacks keys of the restored var/data.key; the server "
                "uses the variable, so unset it (or give it the restored keys) or stored messages will not "
                "decrypt"
            )
    if "SECUREMSG_SECRET_KEY" in environ and "secret.key" in files:
        if environ["SECUREMSG_SECRET_KEY"].encode() != files["secret.key"].strip():
            notes.append(
                "note: SECUREMSG_SECRET_KEY is set and differs from the restored var/secret.key; the server "
                "uses the variable, so unset it to keep signed-in sessions and links working"
            )
    return notes

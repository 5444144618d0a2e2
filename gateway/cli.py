"""The command line (docs/api.md §1): `securemsg serve | worker | migrate | create-practice | demo | ...`."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import ipaddress
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from gateway.config import Config, ConfigError, load_config, settings_environment

# inbox.purge.FLOOR_YEARS (not imported here: the command line starts without the ORM).
RECORDS_FLOOR_YEARS = 7
AUDIT_PURGED = "audit.purged"  # inbox.audit.PURGED

log = logging.getLogger("securemsg")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one clear line and exit status 2
        print(f"securemsg: {message}", file=sys.stderr)
        raise SystemExit(2)


def _processes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="securemsg", description="Secure messaging and mobile push for health practices.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the gateway (HTTP + websocket) and, by default, the dispatcher")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--worker", dest="worker", action="store_true", default=True, help=argparse.SUPPRESS)
    serve.add_argument(
        "--no-worker", dest="worker", action="store_false", help="do not run the dispatcher here"
    )
    serve.add_argument(
        "--dev-mail", action="store_true", help="also run the built-in SMTP sink and /dev/mail"
    )
    serve.add_argument(
        "--processes",
        type=_processes,
        default=None,
        help="gateway processes on the one port (default: one per CPU with PostgreSQL or Redis, else 1)",
    )
    # A child of `--processes N` (gateway.procs): the port is shared, the parent has migrated.
    serve.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    # Its /metrics, on a Unix socket the parent reads (the parent serves SECUREMSG_METRICS_LISTEN).
    serve.add_argument("--metrics-socket", default=None, help=argparse.SUPPRESS)

    sub.add_parser("worker", help="run only the notification dispatcher")
    sub.add_parser("migrate", help="bring the database schema up to date")

    cp = sub.add_parser("create-practice", help="create a practice and its owner; prints JSON")
    cp.add_argument("--name", required=True)
    cp.add_argument("--owner-name", required=True)
    cp.add_argument("--owner-email", required=True)
    cp.add_argument("--owner-password", required=True)

    demo = sub.add_parser("demo", help="migrate, seed a demo practice and serve it with the dev mail sink")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)

    audit = sub.add_parser("audit", help="the audit log (R24)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    verify = audit_sub.add_parser("verify", help="check the hash chain; name the first bad row")
    verify.add_argument("--practice", type=int, default=None, help="only this practice's chain")

    rotate = sub.add_parser(
        "rotate-data-key", help="make a new data key and re-encrypt stored data under it, while serving"
    )
    rotate.add_argument(
        "--resume",
        action="store_true",
        help="make no new key: finish re-encrypting under the current (first) key",
    )
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    rotate.add_argument(
        "--settle-s",
        type=float,
        default=5.0,
        help="seconds to let running servers pick up a new key before the last pass (default 5)",
    )
    backup = sub.add_parser(
        "backup", help="write the database and the key files, encrypted with a passphrase, to one file"
    )
    backup.add_argument("path", help="the backup file to write (must not exist yet)")
    backup.add_argument(
        "--passphrase-file",
        help="read the passphrase from this file's first line "
        "(else SECUREMSG_BACKUP_PASSPHRASE, else asked on the terminal)",
    )
    restore = sub.add_parser(
        "restore", help="restore a backup into an empty var directory and an empty database"
    )
    restore.add_argument("path", help="the backup file")
    restore.add_argument("--passphrase-file", help="read the passphrase from this file's first line")
    for name, what in (
        ("purge-messages", "delete messages older than a date, with what hangs on them (audited)"),
        ("purge-audit", "delete the audit log's oldest rows, before a date, leaving a keyed anchor"),
    ):
        purge = sub.add_parser(name, help=what)
        purge.add_argument(
            "--before", type=_day, required=True, metavar="YYYY-MM-DD",
            help="purge what is older than this day (midnight UTC at its start)",
        )  # fmt: skip
        purge.add_argument("--practice", type=int, default=None, help="only this practice (default: all)")
        purge.add_argument("--dry-run", action="store_true", help="print what would go; change nothing")
        purge.add_argument(
            "--yes", action="store_true", help="do not ask to type the practice name to confirm"
        )
        purge.add_argument(
            f"--force-younger-than-{RECORDS_FLOOR_YEARS}-years", dest="force_younger", action="store_true",
            help=f"allow a cutoff less than {RECORDS_FLOOR_YEARS} years ago (records law may forbid it)",
        )  # fmt: skip
        purge.add_argument(
            "--batch-size", type=_batch, default=500, help="rows per transaction (1-10000, default 500)"
        )
    shown = sub.add_parser(
        "config", help="print every setting's effective value and where it came from, secrets masked"
    )
    shown.add_argument(
        "--table", action="store_true", help="print the table of every setting (docs/api.md §2) instead"
    )
    return parser


def _day(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"must be a day as YYYY-MM-DD, not {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day of the calendar") from None


def _batch(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, not {text!r}")
    return value


def _config(args: argparse.Namespace) -> int:
    """Reads like `serve` (a bad value fails the same way) but makes no key file: one not made yet says so."""
    from gateway import config, config_show

    if args.table:
        print(config_show.markdown_table(), end="")
        return 0
    try:
        loaded = config.load(make_keys=False)
    except ConfigError as exc:
        print(f"securemsg: {exc}", file=sys.stderr)
        return 2
    env_file = os.environ.get(config.ENV_FILE, "").strip() or None
    print("\n".join(config_show.effective_lines(loaded, env_file)))
    return 0


def _backup(config: Config, args: argparse.Namespace) -> int:
    from gateway import backup

    try:
        environ = settings_environment()  # the env file's keys and passphrase count as set
        passphrase = backup.read_passphrase(args.passphrase_file, environ, confirm=True)
        manifest = backup.make_backup(config, Path(args.path), passphrase, environ)
    except backup.BackupError as exc:
        print(f"securemsg: {exc}", file=sys.stderr)
        return 2
    print(
        f"backup written to {args.path}: the {manifest['database']} database "
        f"(schema {manifest['schema_migration']}) and {', '.join(manifest['key_files'])}, "
        "encrypted with the passphrase; keep the passphrase apart from the backup"
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    """Before the configuration is loaded: loading it would make new keys in the var directory that the
    restore must find empty."""
    from gateway import backup

    try:
        for line in backup.restore(Path(args.path), args.passphrase_file, settings_environment()):
            print(line)
    except (backup.BackupError, ConfigError) as exc:
        print(f"securemsg: {exc}", file=sys.stderr)
        return 2
    return 0


def _setup_logging(config: Config) -> None:
    from gateway.logs import setup_logging

    setup_logging(config.log_format)  # SECUREMSG_LOG_FORMAT: plain, or one JSON object a line


async def _migrate(config: Config) -> None:
    from inbox import db, sealed
    from inbox.crypto import DataKeyring

    await db.migrate(config.database_url)
    # TOTP and webhook secrets stored in clear before migration 0004 are sealed now, with the data key
    # that a migration itself does not have (R30).
    await db.connect(config.database_url)
    try:
        count = await sealed.seal_plaintext_rows(DataKeyring(config.data_keys))
    finally:
        await db.disconnect()
    if count:
        log.info("sealed %d TOTP or webhook secrets that were stored in clear", count)


async def _create_practice(config: Config, args: argparse.Namespace) -> dict[str, Any]:
    from gateway.app import make_context
    from inbox import accounts, db

    await db.migrate(config.database_url)
    await db.connect(config.database_url)
    try:
        made = await accounts.create_practice(
            make_context(config),
            name=args.name,
            owner_name=args.owner_name,
            owner_email=args.owner_email,
            owner_password=args.owner_password,
        )
    finally:
        await db.disconnect()
    return {"practice_id": made.practice.id, "owner_id": made.owner.id, "api_key": made.api_key}


def loopback_only(host: str) -> bool:
    """Whether `--host` keeps the server reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_dev_mail_host(host: str) -> None:
    """/dev/mail shows every email the server sent, magic links included, to whoever asks: anyone who could
    reach it could open any client's conversations. So it is only for a server nobody else can reach."""
    if not loopback_only(host):
        raise ConfigError(
            "--dev-mail shows every email and its sign-in links to anyone who can reach the server, "
            f"so it runs only on a loopback host (127.0.0.1, ::1, localhost), not {host!r}"
        )


def serve(
    config: Config,
    host: str,
    port: int,
    *,
    worker: bool,
    dev_mail: bool,
    banner: str | None = None,
    processes: int | None = 1,
    supervised: bool = False,
    metrics_socket: str | None = None,
) -> None:
    from gateway import procs
    from gateway.app import create_app

    count = procs.resolve_processes(config, processes, dev_mail=dev_mail)
    if count > 1:
        procs.check_port_free(host, port)
        asyncio.run(_migrate(config))  # once, before any child serves
        procs.supervise(host, port, count, worker=worker, metrics_listen=config.metrics_listen)
        return
    if dev_mail:
        check_dev_mail_host(host)
        log.warning(
            "DEV MAIL IS ON: every email this server sends, with its sign-in links, is readable at "
            "http://%s:%s/dev/mail; never use --dev-mail with real people's data",
            host,
            port,
        )
    if supervised:
        procs.die_with_parent()
        config = config.with_overrides(metrics_listen=None)  # the parent listens there for every child
    else:
        asyncio.run(_migrate(config))
    app = create_app(
        config, worker=worker, dev_mail=dev_mail, shared_events=supervised, metrics_socket=metrics_socket
    )
    if banner:
        print(banner, flush=True)
    web.run_app(
        app,
        host=host,
        port=port,
        print=lambda s: log.info("%s", s.strip()),
        access_log=None,
        reuse_port=supervised or None,
    )


async def _audit_verify(config: Config, practice_id: int | None) -> int:
    from gateway.app import make_context
    from inbox import audit, db

    await db.connect(config.database_url)
    try:
        reports = await audit.verify(make_context(config), practice_id)
    finally:
        await db.disconnect()
    bad = [r for r in reports if not r.ok]
    for r in reports:
        if r.ok:
            print(f"practice {r.practice_id}: {r.rows} rows verified, head {r.head}")
            if r.purged_through:
                print(
                    f"practice {r.practice_id}: rows up to seq {r.purged_through} were purged by an operator "
                    f"(purged through seq {r.purged_through}; its {AUDIT_PURGED} row says so)"
                )
            if r.unkeyed:
                print(
                    f"practice {r.practice_id}: every row is from before the keyed audit log; its next row "
                    "seals them under the audit key (until then, compare the head above with a kept copy)"
                )
        elif r.bad_seq is None:
            print(
                f"practice {r.practice_id}: bad row id {r.bad_row_id}: {r.problem}; "
                f"the {r.rows} rows of the chain verified"
            )
        else:
            print(
                f"practice {r.practice_id}: first bad row is id {r.bad_row_id} (seq {r.bad_seq}): "
                f"{r.problem}; the {r.rows} rows before it verified"
            )
    total = sum(r.rows for r in reports)
    if bad:
        print(f"audit log BROKEN in {len(bad)} of {len(reports)} practice(s)")
        return 1
    print(f"audit log intact: {total} rows verified in {len(reports)} practice(s)")
    return 0


def _rotate_data_key(config: Config, args: argparse.Namespace) -> int:
    from gateway import keyfile
    from gateway.config import parse_data_keys
    from inbox.crypto import DataKeyring

    if args.batch_size < 1 or args.settle_s < 0:
        raise ConfigError("--batch-size must be at least 1 and --settle-s at least 0")
    keys = config.data_keys
    settle_s = 0.0
    if not args.resume:
        if config.data_key_file is None:
            _, line = keyfile.new_key_line(k for k, _ in config.data_keys)
            print(line)
            print(
                "securemsg: SECUREMSG_DATA_KEY is set, so the new key cannot be written for you: put the "
                "line above first in SECUREMSG_DATA_KEY, keep the old lines after it, restart every "
                "securemsg process, then run `securemsg rotate-data-key --resume` to re-encrypt stored data.",
                file=sys.stderr,
            )
            return 2
        key_id = keyfile.prepend_new_key(config.data_key_file)
        keys = parse_data_keys(str(config.data_key_file), config.data_key_file.read_text())
        settle_s = args.settle_s
        print(
            f"new data key {key_id} is first in {config.data_key_file}; the older keys are kept", flush=True
        )
    keyring = DataKeyring(keys)
    summary = asyncio.run(_reencrypt(config, keyring, args.batch_size, settle_s))
    counts = ", ".join(f"{t.reencrypted} {label}" for label, t in summary.tallies.items())
    print(f"re-encrypted under {summary.key_id}: {counts}; no stored row is under an older key now.")
    print(
        "The older keys stay in the key file: stored rows no longer need them, "
        "but backups made before today may. Remove them once those backups have expired."
    )
    return 0


async def _reencrypt(config: Config, keyring: Any, batch_size: int, settle_s: float) -> Any:
    from inbox import db, rotation

    await db.connect(config.database_url)
    try:
        return await rotation.rotate(keyring, batch_size=batch_size, settle_s=settle_s)
    finally:
        await db.disconnect()


def main(argv: Sequence[str] | None = None) -> int:
    # Everything this process writes — the database and its -wal/-shm files, the key files, exports, the
    # dev mail sink — holds PHI or secrets: readable by the server's own user only (var/ 0700, files 0600).
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "worker") and hasattr(signal, "SIGUSR1"):
        # `kill -USR1 PID`: every thread's stack on stderr (what a stuck process is doing: code locations
        # only, never data), and the process goes on.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.command == "restore":
        return _restore(args)
    if args.command == "config":
        return _config(args)
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"securemsg: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config)
    try:
        if args.command == "audit":
            return asyncio.run(_audit_verify(config, args.practice))
        if args.command == "rotate-data-key":
            return _rotate_data_key(config, args)
        if args.command == "backup":
            return _backup(config, args)
        if args.command in ("purge-messages", "purge-audit"):
            from gateway.purging import run_purge

            return asyncio.run(run_purge(config, args))
        if args.command == "migrate":
            asyncio.run(_migrate(config))
            print("schema is up to date")
        elif args.command == "create-practice":
            print(json.dumps(asyncio.run(_create_practice(config, args))))
        elif args.command == "serve":
            serve(
                config,
                args.host,
                args.port,
                worker=args.worker,
                dev_mail=args.dev_mail,
                processes=args.processes,
                supervised=args.supervised,
                metrics_socket=args.metrics_socket,
            )
        elif args.command == "worker":
            from gateway.worker import run_worker

            asyncio.run(_migrate(config))
            asyncio.run(run_worker(config))
        elif args.command == "demo":
            from gateway.demo import seed_demo

            check_dev_mail_host(args.host)  # the demo serves with --dev-mail

            if not settings_environment().get("SECUREMSG_PUBLIC_URL"):
                # The links in the demo's emails must point at the port it really serves on.
                host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
                config = config.with_overrides(public_url=f"http://{host}:{args.port}")
            asyncio.run(_migrate(config))
            text = asyncio.run(seed_demo(config, Path(config.var_dir), args.host, args.port))
            serve(config, args.host, args.port, worker=True, dev_mail=True, banner=text)
    except ConfigError as exc:
        print(f"securemsg: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        from inbox.errors import DomainError

        if isinstance(exc, DomainError):
            print(f"securemsg: {exc.message}", file=sys.stderr)
            return 2
        raise
    return 0

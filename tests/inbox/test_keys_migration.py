"""Migration 0004 (issue 12) on a database that has data from before it, on SQLite and PostgreSQL: old API
keys keep both scopes (R29), TOTP and webhook secrets stored in clear are sealed by `securemsg migrate` (R30),
devices learn their practice — and a second run changes nothing."""

# ruff: noqa: S608 - the rows are fixed test data written as SQL, because the models are already past 0003

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate

from gateway.cli import _migrate
from inbox import accounts, db, sealed
from inbox.clock import FakeClock
from inbox.context import InboxContext
from inbox.crypto import DataKeyring
from inbox.models import AuthToken, Device, Participant, Webhook
from tests.conftest import _pg_exec, _with_db, make_config, need, postgres_url

BEFORE = "models.0004_exactly"
TOTP_SECRET = pyotp.random_base32()
HOOK_SECRET = "whsec_" + "s3cr3t" * 6
AT = "'2026-01-05 10:00:00+00:00'"
LEGACY_ROWS = [
    f"INSERT INTO practice (id, name, client_messaging_enabled, team_messaging_enabled, auto_enable_new_clients, "
    f"created_at) VALUES (1, 'Old Practice', TRUE, TRUE, FALSE, {AT})",
    "INSERT INTO participant (id, practice_id, kind, name, email, roles, messaging_enabled, portal_access, "
    "can_export, totp_secret, totp_enabled, away_enabled, failed_logins, created_at) VALUES (1, 1, 'team', "
    f"'Olga', 'olga@example.org', 'account_owner', TRUE, FALSE, TRUE, '{TOTP_SECRET}', TRUE, FALSE, 0, {AT})",
    "INSERT INTO auth_token (id, token_hash, kind, practice_id, created_at) "
    f"VALUES (1, '{'a' * 64}', 'api_key', 1, {AT})",
    "INSERT INTO auth_token (id, token_hash, kind, practice_id, participant_id, created_at) "
    f"VALUES (2, '{'b' * 64}', 'app', 1, 1, {AT})",
    "INSERT INTO webhook (id, practice_id, url, events, secret, active, created_at) "
    f"VALUES (1, 1, 'https://example.org/h', '[\"message.created\"]', '{HOOK_SECRET}', TRUE, {AT})",
    "INSERT INTO device (id, participant_id, platform, token, app, alerts, enabled, created_at) "
    f"VALUES (1, 1, 'apns', '{'ef' * 32}', 'practice', '{{}}', TRUE, {AT})",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    import asyncio

    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'old.sqlite3'}"
        return
    base = need("postgres", postgres_url())
    name = f"securemsg_m_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
    yield _with_db(base, name)
    asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _raw(sql: str) -> list[dict[str, Any]]:
    return list(await Tortoise.get_connection("default").execute_query_dict(sql))


async def test_r29_r30_migration_0004_scopes_old_keys_and_seals_secrets_stored_in_clear(
    empty_db: str, tmp_path: Path
) -> None:
    await tortoise_migrate(config=db.tortoise_config(empty_db), target=BEFORE)
    await Tortoise.close_connections()
    await db.connect(empty_db)
    try:
        for sql in LEGACY_ROWS:
            await Tortoise.get_connection("default").execute_script(sql)
    finally:
        await db.disconnect()

    config = make_config(empty_db, tmp_path / "var")
    await _migrate(config)  # what `securemsg migrate` / `serve` / `worker` run
    keyring = DataKeyring(config.data_keys)
    await db.connect(empty_db)
    try:
        assert (await AuthToken.get(id=1)).scopes == "integration,provisioning"
        assert (await AuthToken.get(id=2)).scopes is None  # a person's token has no scopes
        member = await Participant.get(id=1)
        assert member.totp_secret is None and sealed.open_totp(keyring, member) == TOTP_SECRET
        hook = await Webhook.get(id=1)
        assert hook.secret == "" and sealed.open_webhook_secret(keyring, hook) == HOOK_SECRET
        raw = await _raw("SELECT * FROM participant WHERE id = 1") + await _raw("SELECT * FROM webhook")
        assert TOTP_SECRET not in repr(raw) and HOOK_SECRET not in repr(raw)
        assert (await Device.get(id=1)).practice_id == 1
        # The sealed secret still checks codes.
        clock = FakeClock()
        ctx = InboxContext(keyring=keyring, secret=config.secret_key, clock=clock)
        assert accounts.totp_step(ctx, member, pyotp.TOTP(TOTP_SECRET).at(clock.now())) is not None
        before = (member.totp_secret_cipher, hook.secret_cipher)
    finally:
        await db.disconnect()

    await _migrate(config)  # idempotent: nothing left in clear, nothing sealed twice
    await db.connect(empty_db)
    try:
        member, hook = await Participant.get(id=1), await Webhook.get(id=1)
        assert (member.totp_secret_cipher, hook.secret_cipher) == before
    finally:
        await db.disconnect()

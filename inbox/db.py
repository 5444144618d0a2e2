"""Database set-up: the Tortoise configuration, migrations, and start/stop of the connection pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.migrations.api import migrate as _migrate

from inbox import rawsql

MODELS_MODULE = "inbox.models"
MIGRATIONS_MODULE = "inbox.migrations"


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite://") and ":memory:" not in url:
        path = url[len("sqlite://") :].split("?", 1)[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def tortoise_config(database_url: str) -> dict[str, Any]:
    url = database_url
    if url.startswith("postgres://") and "maxsize" not in url:
        url += ("&" if "?" in url else "?") + "minsize=1&maxsize=10"
    return {
        "connections": {"default": url},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str) -> None:
    """Bring the schema up to date; idempotent."""
    _ensure_sqlite_dir(database_url)
    try:
        await _migrate(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def connect(database_url: str) -> None:
    _ensure_sqlite_dir(database_url)
    # The global fallback lets aiohttp's request tasks, which do not inherit the start-up task's context,
    # see the connections opened here.
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def disconnect() -> None:
    rawsql.close_readers()
    await Tortoise.close_connections()


def dialect() -> str:
    return Tortoise.get_connection("default").capabilities.dialect

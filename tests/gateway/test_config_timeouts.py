"""The fault-tolerance settings: the database timeout and the outbox claim lease (docs/api.md §2 extension)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from inbox.db import tortoise_config


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"SECUREMSG_SECRET_KEY": "x" * 32, "SECUREMSG_VAR_DIR": str(tmp_path)} | values


def test_defaults_are_ten_seconds_and_two_minutes(tmp_path: Path) -> None:
    config = load_config(env(tmp_path))
    assert (config.database_timeout_s, config.outbox_lease_s) == (10, 120)


def test_a_short_lease_is_only_for_tests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECUREMSG_OUTBOX_LEASE_S must be between 30 and 3600"):
        load_config(env(tmp_path, SECUREMSG_OUTBOX_LEASE_S="2"))
    assert load_config(env(tmp_path, SECUREMSG_OUTBOX_LEASE_S="2", SECUREMSG_TESTING="1")).outbox_lease_s == 2


@pytest.mark.parametrize("raw", ["0", "301", "soon"])
def test_a_bad_database_timeout_stops_the_start(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="SECUREMSG_DATABASE_TIMEOUT_S"):
        load_config(env(tmp_path, SECUREMSG_DATABASE_TIMEOUT_S=raw))


def test_the_timeout_reaches_postgres_connections_but_not_migrations() -> None:
    url = "postgres://postgres@127.0.0.1:5432/test"
    serving = tortoise_config(url, timeout_s=7)["connections"]["default"]
    assert serving["credentials"]["command_timeout"] == 7 and serving["credentials"]["timeout"] == 7
    assert int(serving["credentials"]["maxsize"]) == 10
    migrating = tortoise_config(url)["connections"]["default"]["credentials"]
    assert "command_timeout" not in migrating and "timeout" not in migrating
    sqlite = tortoise_config("sqlite:///tmp/x.sqlite3", timeout_s=7)["connections"]["default"]
    assert sqlite["engine"] == "inbox.store.sqlite_engine" and "timeout" not in sqlite["credentials"]


def test_redis_calls_give_up_after_half_a_second_by_default(tmp_path: Path) -> None:
    assert load_config(env(tmp_path)).redis_timeout_s == 0.5
    assert load_config(env(tmp_path, SECUREMSG_REDIS_TIMEOUT_S="0.2")).redis_timeout_s == 0.2


@pytest.mark.parametrize("raw", ["0", "31", "nan", "soon"])
def test_a_bad_redis_timeout_stops_the_start(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match="SECUREMSG_REDIS_TIMEOUT_S"):
        load_config(env(tmp_path, SECUREMSG_REDIS_TIMEOUT_S=raw))

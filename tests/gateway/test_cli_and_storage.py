"""The command line and what lands on disk: a new user's first steps, run as real processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env_extra: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREMSG_")}
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


def test_migrate_is_idempotent_and_create_practice_prints_json(tmp_path: Path) -> None:
    env = {"SECUREMSG_VAR_DIR": str(tmp_path / "var")}
    for _ in range(2):
        done = run_cli("migrate", env_extra=env)
        assert done.returncode == 0, done.stderr
    done = run_cli(
        "create-practice",
        "--name",
        "Lakeside Therapy",
        "--owner-name",
        "Lee Owner",
        "--owner-email",
        "lee@lakeside.example",
        "--owner-password",
        "a long enough password",
        env_extra=env,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"practice_id", "owner_id", "api_key"}
    assert out["api_key"].startswith("smk_")
    # Keys were generated into var/ on first start, readable by the owner only.
    for name in ("secret.key", "data.key"):
        assert (tmp_path / "var" / name).stat().st_mode & 0o077 == 0
    # The same owner email at a second practice is fine (team addresses are unique per practice only);
    # a bad value is a clear error, exit 2.
    again = run_cli(
        "create-practice",
        "--name",
        "X",
        "--owner-name",
        "Y",
        "--owner-email",
        "lee@lakeside.example",
        "--owner-password",
        "a long enough password",
        env_extra=env,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["practice_id"] != out["practice_id"]
    bad = run_cli(
        "create-practice",
        "--name",
        "X",
        "--owner-name",
        "Y",
        "--owner-email",
        "not an address",
        "--owner-password",
        "a long enough password",
        env_extra=env,
    )
    assert bad.returncode == 2
    assert "email" in bad.stderr


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("SECUREMSG_DATABASE_URL", "mysql://x", "SECUREMSG_DATABASE_URL"),
        ("SECUREMSG_UNREAD_EMAIL_DELAY_S", "30", "between 600 and 1200"),
        ("SECUREMSG_SMTP_PORT", "smtp", "whole number"),
        ("SECUREMSG_SMTP_STARTTLS", "maybe", "true or false"),
        ("SECUREMSG_PUBLIC_URL", "ftp://x", "SECUREMSG_PUBLIC_URL"),
        ("SECUREMSG_DATA_KEY", "not-a-key", "SECUREMSG_DATA_KEY"),
        ("SECUREMSG_APNS_KEY_FILE", "/nonexistent.p8", "does not exist"),
    ],
)
def test_bad_configuration_stops_with_one_line_and_exit_2(
    tmp_path: Path, var: str, value: str, needle: str
) -> None:
    done = run_cli("migrate", env_extra={"SECUREMSG_VAR_DIR": str(tmp_path), var: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_bad_argument_exit_2(tmp_path: Path) -> None:
    done = run_cli("serve", "--port", "eighty", env_extra={"SECUREMSG_VAR_DIR": str(tmp_path)})
    assert done.returncode == 2 and done.stderr.startswith("securemsg:")


def test_config_is_read_from_the_given_environment_only(tmp_path: Path) -> None:
    cfg = load_config(
        {"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_PUBLIC_URL": "https://msg.example.org/"}
    )
    assert cfg.public_url == "https://msg.example.org" and cfg.cookie_secure
    assert cfg.database_url == f"sqlite://{tmp_path}/securemsg.sqlite3"
    with pytest.raises(ConfigError):
        load_config({"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_LINK_TTL_S": "-5"})


async def test_message_bodies_are_encrypted_at_rest(api, cast, config) -> None:
    canary = "CANARY-7f3e9a lithium dose changed to 600mg"
    _, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
    )
    status, _ = await api.post(
        f"/conversations/{conv['id']}/messages", {"body": canary}, token=cast.tok("clinician")
    )
    assert status == 201
    if config.database_url.startswith("sqlite://"):
        path = Path(config.database_url[len("sqlite://") :])
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
        for file in path.parent.glob(path.name + "*"):
            data = file.read_bytes()
            assert canary.encode() not in data
            assert b"lithium" not in data
    else:
        from tortoise import Tortoise

        rows = await Tortoise.get_connection("default").execute_query_dict(
            "SELECT encode(body_cipher, 'escape') AS b FROM message"
        )
        assert rows and all("lithium" not in r["b"] for r in rows)
    # …and it still reads back for the people in the conversation.
    _, page = await api.get(f"/conversations/{conv['id']}/messages", token=cast.tok("client"))
    assert page["items"][0]["body"] == canary

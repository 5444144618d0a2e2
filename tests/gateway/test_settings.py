"""Settings declared once (gateway/settings.py): `securemsg config` shows them masked, docs/api.md §2's table is
made from them, and a bad value stops every command with one line and exit status 2 (docs/api.md §1, §2)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config_show import markdown_table
from gateway.settings import Config, env_name, setting_names
from tests.inbox.cli_helper import run_cli

ROOT = Path(__file__).resolve().parents[2]
CLI_SECRET = "cli-test-secret-0123456789"  # what tests/inbox/cli_helper.py sets as SECUREMSG_SECRET_KEY


def key_line(key_id: str, fill: int) -> tuple[str, str]:
    """An `id:base64` data-key line and its base64 part (what must never be printed)."""
    b64 = base64.urlsafe_b64encode(bytes([fill]) * 32).decode()
    return f"{key_id}:{b64}", b64


def shown(stdout: str) -> dict[str, str]:
    """`NAME = value  (origin)` lines -> {NAME: "value  (origin)"}."""
    lines = [line.split(" = ", 1) for line in stdout.splitlines()]
    assert all(len(parts) == 2 for parts in lines), stdout
    return dict(lines)  # type: ignore[arg-type]


async def test_config_prints_every_setting_with_its_origin_and_never_a_secret(tmp_path: Path) -> None:
    data_new, data_new_b64 = key_line("k2", 7)
    data_old, data_old_b64 = key_line("k1", 9)
    secrets = {
        "SECUREMSG_SMTP_USERNAME": "mailer",
        "SECUREMSG_SMTP_PASSWORD": "smtp-pass-Zq81",
        "SECUREMSG_OIDC_CLIENT_ID": "portal-client",
        "SECUREMSG_OIDC_CLIENT_SECRET": "oidc-secret-Hy27",
        "SECUREMSG_BACKUP_PASSPHRASE": "backup passphrase Lk55",
        "SECUREMSG_DATA_KEY": f"{data_new}\n{data_old}",
        "SECUREMSG_REDIS_URL": "redis://:redis-pass-Qw09@127.0.0.1:6379/0",
        "SECUREMSG_SMTP_PORT": "2525",
    }
    db = "postgres://app:db-pass-Vb33@127.0.0.1:5432/test"
    code, out, err = await run_cli(db, tmp_path / "var", "config", env=secrets)
    assert (code, err) == (0, "")
    for secret in (
        CLI_SECRET,
        "smtp-pass-Zq81",
        "oidc-secret-Hy27",
        "backup passphrase Lk55",
        data_new_b64,
        data_old_b64,
        "redis-pass-Qw09",
        "db-pass-Vb33",
    ):
        assert secret not in out
    values = shown(out)
    assert set(values) == {"SECUREMSG_ENV_FILE", *(env_name(name) for name in setting_names())}
    assert values["SECUREMSG_SECRET_KEY"] == "****  (environment)"
    assert values["SECUREMSG_SMTP_PASSWORD"] == "****  (environment)"
    assert values["SECUREMSG_OIDC_CLIENT_SECRET"] == "****  (environment)"
    assert values["SECUREMSG_BACKUP_PASSPHRASE"] == "****  (environment)"
    assert values["SECUREMSG_DATA_KEY"] == "k2:****, k1:****  (environment)"
    assert values["SECUREMSG_DATABASE_URL"] == "postgres://app:****@127.0.0.1:5432/test  (environment)"
    assert values["SECUREMSG_REDIS_URL"] == "redis://:****@127.0.0.1:6379/0  (environment)"
    assert values["SECUREMSG_SMTP_PORT"] == "2525  (environment)"
    assert values["SECUREMSG_SMTP_USERNAME"] == "mailer  (environment)"
    assert values["SECUREMSG_SMTP_HOST"] == "127.0.0.1  (default)"
    assert values["SECUREMSG_UNREAD_EMAIL_DELAY_S"] == "600  (default)"
    assert values["SECUREMSG_ENV_FILE"] == "unset  (default)"


async def test_config_makes_no_key_file_and_then_names_the_ones_serve_made(tmp_path: Path) -> None:
    var = tmp_path / "var"
    db = f"sqlite://{tmp_path}/db.sqlite3"
    code, out, _ = await run_cli(db, var, "config")
    assert code == 0
    assert shown(out)["SECUREMSG_DATA_KEY"] == f"unset  (made into {var / 'data.key'} on first start)"
    assert shown(out)["SECUREMSG_AUDIT_KEY"] == f"unset  (made into {var / 'audit.key'} on first start)"
    assert not var.exists()

    config = load_config({"SECUREMSG_VAR_DIR": str(var), "SECUREMSG_SECRET_KEY": CLI_SECRET})  # as serve does
    code, out, _ = await run_cli(db, var, "config")
    assert code == 0
    assert shown(out)["SECUREMSG_DATA_KEY"] == f"k1:****  (key file {var / 'data.key'})"
    assert shown(out)["SECUREMSG_AUDIT_KEY"] == f"a1:****  (key file {var / 'audit.key'})"
    stored = (var / "data.key").read_text().strip().partition(":")[2]
    assert stored and stored not in out and config.data_key_file == var / "data.key"


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ({"SECUREMSG_OUTBOX_LEASE_S": "2"}, "SECUREMSG_OUTBOX_LEASE_S must be between 30 and 3600, not 2"),
        ({"SECUREMSG_SMTP_PORT": "smtp"}, "SECUREMSG_SMTP_PORT must be a whole number, not 'smtp'"),
        ({"SECUREMSG_REDIS_TIMEOUT_S": "nan"}, "SECUREMSG_REDIS_TIMEOUT_S must be a number, not 'nan'"),
        ({"SECUREMSG_LINK_TTL_S": "-5"}, "SECUREMSG_LINK_TTL_S must be between 60 and 2592000, not -5"),
        (
            {"SECUREMSG_WEBHOOK_ALLOW_PRIVATE": "maybe"},
            "SECUREMSG_WEBHOOK_ALLOW_PRIVATE must be true or false",
        ),
        ({"SECUREMSG_LOG_FORMAT": "xml"}, "SECUREMSG_LOG_FORMAT must be plain or json, not 'xml'"),
        ({"SECUREMSG_SMTP_FROM": "no reply"}, "SECUREMSG_SMTP_* settings: SMTP: from address"),
        ({"SECUREMSG_SECRET_KEY": "short"}, "SECUREMSG_SECRET_KEY must be at least 16 characters"),
    ],
)
async def test_a_bad_value_stops_config_and_serve_alike_with_one_line_and_exit_2(
    tmp_path: Path, values: dict[str, str], line: str
) -> None:
    db = f"sqlite://{tmp_path}/db.sqlite3"
    for command in (["config"], ["serve", "--port", "0"]):
        code, out, err = await run_cli(db, tmp_path / "var", *command, env=values)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith(f"securemsg: {line}"), err
    assert not (tmp_path / "var").exists()  # checked before any key file is made


async def test_an_env_file_is_read_under_the_environment_and_named_as_the_origin(tmp_path: Path) -> None:
    env_file = tmp_path / "securemsg.env"
    env_file.write_text(
        "# settings of this practice\n"
        "SECUREMSG_SMTP_HOST=mail.practice.example\n"
        "export SECUREMSG_SMTP_PORT=587\n"
        'SECUREMSG_SMTP_PASSWORD="file-pass-Tr44"\n'
        "SECUREMSG_SMTP_USERNAME=mailer\n"
        "SECUREMSG_PUBLIC_URL=https://file.example\n"
        "UNRELATED=kept out\n"
    )
    environ = {"SECUREMSG_ENV_FILE": str(env_file), "SECUREMSG_PUBLIC_URL": "https://env.example"}
    code, out, err = await run_cli(f"sqlite://{tmp_path}/db.sqlite3", tmp_path / "var", "config", env=environ)
    assert (code, err) == (0, "")
    values = shown(out)
    assert values["SECUREMSG_ENV_FILE"] == f"{env_file}  (environment)"
    assert values["SECUREMSG_SMTP_HOST"] == f"mail.practice.example  (file {env_file})"
    assert values["SECUREMSG_SMTP_PORT"] == f"587  (file {env_file})"
    assert values["SECUREMSG_SMTP_PASSWORD"] == f"****  (file {env_file})"
    assert values["SECUREMSG_PUBLIC_URL"] == "https://env.example  (environment)"
    assert "file-pass-Tr44" not in out

    config = load_config({**environ, "SECUREMSG_VAR_DIR": str(tmp_path / "var")})
    assert (config.smtp_host, config.smtp_port, config.smtp_password) == (
        "mail.practice.example",
        587,
        "file-pass-Tr44",
    )


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "SECUREMSG_ENV_FILE {path} does not exist"),
        ("SECUREMSG_SMTP_PROT=25\n", "SECUREMSG_SMTP_PROT in SECUREMSG_ENV_FILE {path} is not a setting"),
        (
            "SECUREMSG_SMTP_PORT=twenty-five\n",
            "SECUREMSG_SMTP_PORT must be a whole number, not 'twenty-five'",
        ),
    ],
)
async def test_a_bad_env_file_stops_the_start_with_one_line(
    tmp_path: Path, content: str | None, line: str
) -> None:
    env_file = tmp_path / "securemsg.env"
    if content is not None:
        env_file.write_text(content)
    environ = {"SECUREMSG_ENV_FILE": str(env_file)}
    for command in ("config", "migrate"):
        code, _, err = await run_cli(
            f"sqlite://{tmp_path}/db.sqlite3", tmp_path / "var", command, env=environ
        )
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith("securemsg: " + line.format(path=env_file)), err


async def run_bare(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`python -m gateway ARGS` with only these SECUREMSG_* variables (cli_helper always sets a secret key)."""
    full = {k: val for k, val in os.environ.items() if not k.startswith("SECUREMSG_")} | env
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, cwd=ROOT, env=full, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_backup_and_restore_take_keys_and_passphrase_from_the_env_file(tmp_path: Path) -> None:
    """Keys set in the env file are kept by the backup as keys set in the environment are: the var
    directory has no file of them, so a backup that looked at the environment alone would lose them."""
    secret = "env-file-secret-0123456789abcdef"
    data_line, _ = key_line("k1", 5)
    env_file = tmp_path / "securemsg.env"
    env_file.write_text(
        f"SECUREMSG_SECRET_KEY={secret}\nSECUREMSG_DATA_KEY={data_line}\n"
        "SECUREMSG_BACKUP_PASSPHRASE='a long backup passphrase'\n"
    )
    env = {"SECUREMSG_ENV_FILE": str(env_file), "SECUREMSG_VAR_DIR": str(tmp_path / "one")}
    assert (await run_bare(env, "migrate"))[0] == 0
    assert not (tmp_path / "one" / "secret.key").exists()
    code, out, err = await run_bare(env, "backup", str(tmp_path / "b.backup"))
    assert code == 0, err
    assert "audit.key, data.key, secret.key" in out

    two = tmp_path / "two"
    code, _, err = await run_bare(
        env | {"SECUREMSG_VAR_DIR": str(two)}, "restore", str(tmp_path / "b.backup")
    )
    assert code == 0, err
    assert (two / "secret.key").read_text().strip() == secret
    assert (two / "data.key").read_text().strip() == data_line


def test_the_docs_table_is_made_from_the_declarations() -> None:
    """docs/api.md §2 holds exactly what `securemsg config --table` prints; after changing a setting, paste
    that output between the two marker lines."""
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    start = doc.index("<!-- the settings table:")
    start = doc.index("\n", start) + 1
    end = doc.index("<!-- end of the settings table -->")
    assert doc[start:end] == markdown_table()


async def test_config_table_prints_the_docs_table(tmp_path: Path) -> None:
    code, out, _ = await run_cli(f"sqlite://{tmp_path}/db.sqlite3", tmp_path / "var", "config", "--table")
    assert code == 0 and out == markdown_table()
    assert "| `SECUREMSG_SMTP_TLS` | `false` |" in out
    assert "| `SECUREMSG_OUTBOX_LEASE_S` | `120` |" in out and "allowed 30–3600, from 1 with" in out


def test_every_setting_has_its_own_variable_and_one_line_of_help() -> None:
    names = [env_name(name) for name in setting_names()]
    assert len(names) == len(set(names)) and all(name.startswith("SECUREMSG_") for name in names)
    for name in setting_names():
        help_line = Config.model_fields[name].description or ""
        assert help_line and "\n" not in help_line and "|" not in help_line, name
    assert "data_key_file" not in setting_names()  # where the keys came from, not a variable


def test_a_config_built_in_code_reads_no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECUREMSG_SMTP_PORT", "2525")
    assert Config().smtp_port == 1025
    given = {
        "SECUREMSG_VAR_DIR": str(tmp_path),
        "SECUREMSG_SMTP_PORT": "2526",
        "SECUREMSG_DATA_KEY_FILE": "/etc/passwd",
        "securemsg_smtp_host": "lower.example",
    }
    loaded = load_config(given)
    assert loaded.smtp_port == 2526 and loaded.smtp_host == "127.0.0.1"  # upper-case names only
    assert loaded.data_key_file == tmp_path / "data.key"  # not a setting: never read from the environment


def test_a_config_in_a_log_line_shows_no_secret() -> None:
    config = Config(secret_key=b"s" * 32, smtp_username="u", smtp_password="smtp-pass-Zq81")
    assert "smtp-pass-Zq81" not in repr(config) and "sssssss" not in repr(config)
    assert "smtp_username='u'" in repr(config)


def test_overrides_name_existing_settings_only() -> None:
    config = Config()
    assert config.with_overrides(smtp_port=2525).smtp_port == 2525
    with pytest.raises(TypeError, match="smtp_prot"):
        config.with_overrides(smtp_prot=2525)


def test_the_smtp_defaults_are_the_mailers_own() -> None:
    from mailer import SmtpSettings

    config, mailer = Config().smtp(), SmtpSettings()
    assert (config.host, config.port, config.from_addr, config.starttls) == (
        mailer.host,
        mailer.port,
        mailer.from_addr,
        mailer.starttls,
    )
    with pytest.raises(ValueError, match="STARTTLS or implicit TLS"):
        Config(smtp_starttls=True, smtp_use_tls=True)

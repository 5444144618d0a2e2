"""The configuration, read once at start (docs/api.md §2).

Nothing here runs at import time. `load_config(environ)` reads the given environment (and the `.env`-style
file `SECUREMSG_ENV_FILE` names, under it) into a `Config` (declared in `gateway.settings`), then the key
files of the var directory for the keys not given. A bad value raises `ConfigError` with one sentence
naming the variable and what it allows; the CLI prints it and exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource

from gateway import config_values as v
from gateway.config_values import (  # noqa: F401 - re-exported: the rest of the code imports them from here
    ConfigError,
    Keys,
    Network,
    data_key_loader,
    new_data_key_line,
    parse_data_keys,
    parse_networks,
    read_audit_keys,
)
from gateway.settings import (  # noqa: F401 - Config and LOG_FORMATS re-exported
    LOG_FORMATS,
    PREFIX,
    Config,
    bounds,
    env_name,
    number,
    production_ge,
    setting_names,
)

ENV_FILE = "SECUREMSG_ENV_FILE"  # names a `.env`-style file read under the environment (docs/api.md §2)
# --- loading -----------------------------------------------------------------------------------------


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source over the mapping `load_config` is given instead of os.environ
    (tests pass their own; `securemsg` passes os.environ with the env file under it)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(Config)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): val for k, val in self._given.items() if k.startswith(PREFIX) and k == k.upper()}


def read_env_file(environ: Mapping[str, str]) -> dict[str, str]:
    """The SECUREMSG_* lines of the file SECUREMSG_ENV_FILE names ({} when unset), parsed as pydantic-settings
    reads `.env` files. A name there that is not a setting is refused: a typo would otherwise pass unseen."""
    path = environ.get(ENV_FILE, "").strip()
    if not path:
        return {}
    if not Path(path).is_file():
        raise ConfigError(f"{ENV_FILE} {path} does not exist")
    try:
        found = DotEnvSettingsSource(Config, env_file=path, case_sensitive=True).env_vars
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{ENV_FILE} {path} cannot be read: {exc}") from None
    known = {env_name(name) for name in setting_names()}
    values = {k: val or "" for k, val in found.items() if k.startswith(PREFIX)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{key} in {ENV_FILE} {path} is not a setting (see `securemsg config --table`)")
    return values


def settings_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every command reads: the env file's settings under the real environment's."""
    env = dict(os.environ if environ is None else environ)
    return {**read_env_file(env), **env}


@dataclass(frozen=True)
class Loaded:
    config: Config
    # Per setting (field name): "environment", "file PATH" (the env file), "key file PATH",
    # "made into PATH on first start" or "default".
    origins: dict[str, str] = field(default_factory=dict)


def load(
    environ: Mapping[str, str] | None = None, *, var_dir: Path | None = None, make_keys: bool = True
) -> Loaded:
    """Every setting from `environ` (default os.environ) and its env file, checked; then the key files in
    the var directory for the keys not given, made when absent unless `make_keys` is False."""
    given = dict(os.environ if environ is None else environ)
    from_file = read_env_file(given)
    env = {**from_file, **given}
    raw = {_field_of(key): value for key, value in _GivenEnvironment(env)().items()}
    raw = {name: value for name, value in raw.items() if name in set(setting_names())}
    origins = {name: "default" for name in setting_names()}
    for name in raw:
        origins[name] = "environment" if env_name(name) in given else f"file {given[ENV_FILE].strip()}"
    if var_dir is not None and "var_dir" not in raw:
        raw["var_dir"] = var_dir
        origins["var_dir"] = "the command"
    try:
        config = Config(**raw)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, raw)) from None
    var = config.var_dir
    key_files = {
        "secret_key": (var / "secret.key", lambda: v.read_secret_key(var)),
        "data_keys": (var / "data.key", lambda: v.read_data_keys(var / "data.key")),
        "audit_keys": (var / "audit.key", lambda: read_audit_keys(var)),
        "vapid_private_pem": (var / "vapid.key", lambda: _vapid_file(var / "vapid.key")),
    }
    keys: dict[str, Any] = {}
    for name, (path, read) in key_files.items():
        if name in raw:
            continue
        if not make_keys and not path.exists():
            origins[name] = f"made into {path} on first start"
            continue
        keys[name] = read()
        origins[name] = f"key file {path}"
    if "data_keys" in keys:
        keys["data_key_file"] = var / "data.key"  # a running server re-reads it after rotation
    return Loaded(config.with_overrides(**keys), origins)


def load_config(environ: Mapping[str, str] | None = None, *, var_dir: Path | None = None) -> Config:
    return load(environ, var_dir=var_dir).config


def _field_of(key: str) -> str:
    for name, info in Config.model_fields.items():
        if isinstance(info.validation_alias, str) and info.validation_alias.lower() == key.lower():
            return name
    return key


def one_line(exc: ValidationError, raw: Mapping[str, Any]) -> str:
    """The first problem, as one sentence naming the variable and what it allows."""
    error = exc.errors(include_url=False)[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)  # our own sentence (config_values, the validators above)
    name = _field_of(str(error["loc"][0])) if error["loc"] else ""
    if name not in Config.model_fields:
        return f"{name or 'the configuration'}: {error['msg']}"
    var, given = env_name(name), error.get("input")
    kind = error["type"]
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = bounds(name)
        testing = str(raw.get("testing", "")).strip().lower() in v.TRUE
        low = low if testing or production_ge(name) is None else production_ge(name)
        return f"{var} must be between {number(low)} and {number(high)}, not {str(given).strip()}"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{var} must be a whole number, not {given!r}"
    if kind in ("float_parsing", "finite_number", "float_type"):
        return f"{var} must be a number, not {given!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{var} must be true or false, not {given!r}"
    return f"{var}: {error['msg']}"


def var_dir_from(env: Mapping[str, str], var_dir: Path | None = None) -> Path:
    return Path(env.get("SECUREMSG_VAR_DIR", str(var_dir or Path("var"))))


def database_url(env: Mapping[str, str], var: Path) -> str:
    """SECUREMSG_DATABASE_URL checked (default: SQLite in the var directory). `restore` reads it without the
    rest of the configuration, which would make new keys in the var directory it must find empty."""
    raw = env.get("SECUREMSG_DATABASE_URL", f"sqlite://{var}/securemsg.sqlite3")
    return v.parse_database_url("SECUREMSG_DATABASE_URL", raw)


def audit_keys_of(config: Config) -> Keys:
    return config.audit_keys or read_audit_keys(config.var_dir)


def _vapid_file(path: Path) -> str:
    from push.webpush import load_vapid_key, read_or_create_vapid_key

    try:
        pem = read_or_create_vapid_key(path)
        load_vapid_key(pem)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return pem


def vapid_pem_of(config: Config) -> str:
    """The VAPID private key (PEM): SECUREMSG_VAPID_PRIVATE_KEY's, else var/vapid.key (made 0600 at first)."""
    if config.vapid_private_pem:
        return config.vapid_private_pem
    from push.webpush import read_or_create_vapid_key

    return read_or_create_vapid_key(config.var_dir / "vapid.key")


def webpush_subject_of(config: Config) -> str:
    if config.webpush_subject:
        return config.webpush_subject
    if config.public_url.startswith("https://"):
        return config.public_url
    from push.webpush import check_subject

    try:
        return check_subject(f"mailto:{config.smtp_from}")
    except ValueError:
        raise ConfigError(
            f"SECUREMSG_SMTP_FROM must be an email address, not {config.smtp_from!r} (Web Push's VAPID "
            "subject is made from it while SECUREMSG_WEBPUSH_SUBJECT is unset)"
        ) from None

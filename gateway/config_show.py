"""The settings shown to people: `securemsg config` (the effective values, secrets masked, and where each
came from) and `securemsg config --table` (docs/api.md §2's table), both made from `gateway.settings`."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gateway.config import ENV_FILE, Loaded
from gateway.settings import (
    Config,
    bounds,
    env_name,
    is_secret,
    number,
    production_ge,
    setting_names,
    shown_default,
)

MASK = "****"
ENV_FILE_HELP = (
    "a `.env`-style file (`NAME=value` lines) of these settings, read under the environment: a variable "
    "set in both is taken from the environment, and a name in the file that is not a setting stops the start"
)


def _plain(value: Any) -> str:
    if value is None or value == ():
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):  # (host, port)
        host = f"[{value[0]}]" if ":" in str(value[0]) else str(value[0])
        return f"{host}:{value[1]}"
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network | Path):
        return str(value)
    return str(value)


def mask_url_password(text: str) -> str:
    """`postgres://app:hunter2@db/x` -> `postgres://app:****@db/x`; anything else unchanged."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password or not parts.netloc:
        return text
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))


def shown_value(config: Config, name: str) -> str:
    """The value as `securemsg config` prints it: never a secret, only whether it is set (and key ids)."""
    value = getattr(config, name)
    if is_secret(name):
        if not value:
            return "unset"
        if name in ("data_keys", "audit_keys"):  # key ids name keys; they are not the keys
            return ", ".join(f"{key_id}:{MASK}" for key_id, _ in value)
        return MASK
    return mask_url_password(_plain(value))


def effective_lines(loaded: Loaded, environ_file: str | None) -> list[str]:
    """One `NAME = value  (where it came from)` line per setting, in declaration order."""
    lines = [f"{ENV_FILE} = {environ_file or 'unset'}  ({'environment' if environ_file else 'default'})"]
    for name in setting_names():
        origin = loaded.origins.get(name, "default")
        lines.append(f"{env_name(name)} = {shown_value(loaded.config, name)}  ({origin})")
    return lines


# --- docs/api.md §2 ----------------------------------------------------------------------------------


def _default_cell(name: str) -> str:
    shown = shown_default(name)
    if shown is not None:
        return shown
    default = Config.model_fields[name].default
    return "unset" if default is None or default == () else f"`{_plain(default)}`"


def _meaning_cell(name: str) -> str:
    text = str(Config.model_fields[name].description)
    low, high = bounds(name)
    strict = production_ge(name)
    if strict is not None:
        text += f"; allowed {number(strict)}–{number(high)}, from {number(low)} with `SECUREMSG_TESTING=1`"
    elif low is not None or high is not None:
        text += f"; allowed {number(low)}–{number(high)}"
    if is_secret(name):
        text += "; a secret: `securemsg config` masks it"
    return text


def markdown_table() -> str:
    """docs/api.md §2's table of every setting, one row each (tests/gateway/test_settings.py compares)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows.append(f"| `{ENV_FILE}` | unset | {ENV_FILE_HELP} |")
    for name in setting_names():
        rows.append(f"| `{env_name(name)}` | {_default_cell(name)} | {_meaning_cell(name)} |")
    return "\n".join(rows) + "\n"

"""The readers of configuration values that are more than a number or a word, and the key files.

Each parser takes the variable's name and its raw text and returns the value, or raises `ConfigError` with one
sentence that names the variable and says what is allowed. `gateway.config` declares which setting uses which;
`backup`, `keyfile` and the keyring use the key-file helpers directly.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Keys = tuple[tuple[str, bytes], ...]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message is one line for a person."""


TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:  # an empty value is off, as an unset one is
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def parse_url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw.strip().rstrip("/")


def parse_database_url(name: str, raw: str) -> str:
    url = raw.strip()
    if not url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
        raise ConfigError(f"{name} must start with sqlite:// or postgres://")
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    return url


def parse_oidc_issuer(name: str, raw: str) -> str:
    """https, except on loopback (a provider under test); kept as given: the tokens' "iss" must equal it."""
    parts = urlsplit(raw)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"{name} must be an https:// URL such as https://accounts.google.com")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must be a plain URL, without a query or fragment")
    return raw


def parse_scheme(name: str, raw: str) -> str:
    scheme = raw.strip()
    if not scheme or not scheme.replace("-", "").replace(".", "").isalnum():
        raise ConfigError(f"{name} must be a URL scheme such as securemsg")
    return scheme


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, not {raw!r}")
    return value


def parse_networks(name: str, raw: str) -> tuple[Network, ...]:
    """`10.0.0.5, 172.28.0.0/16, ::1`: comma-separated addresses and CIDR blocks."""
    networks = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated IP addresses or CIDR blocks; {entry!r} is neither"
            ) from None
    return tuple(networks)


def parse_listen(name: str, raw: str) -> tuple[str, int] | None:
    """`127.0.0.1:9108`, `[::1]:9108` or `0.0.0.0:9108`; empty is None (off)."""
    raw = raw.strip()
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ConfigError(f"{name} must be host:port, such as 127.0.0.1:9108, not {raw!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                f"{name} must name an IP address (or localhost) and a port, not {raw!r}"
            ) from None
    try:
        number = int(port.strip())
    except ValueError:
        raise ConfigError(f"{name}'s port must be a whole number, not {port!r}") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{name}'s port must be between 0 and 65535, not {number}")
    return host, number


# --- app links ---------------------------------------------------------------------------------------

_IOS_APP_ID = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_CERT_SHA256 = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}")


def _entries(raw: str) -> list[str]:
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def parse_ios_app_ids(name: str, raw: str) -> tuple[str, ...]:
    """`ABCDE12345.org.example.client, …`: an Apple team id (ten capitals and digits), a dot, a bundle id."""
    ids = _entries(raw)
    for app_id in ids:
        if not _IOS_APP_ID.fullmatch(app_id):
            raise ConfigError(
                f"{name} must be comma-separated TEAMID.bundle.id app ids; {app_id!r} is not one"
            )
    return tuple(ids)


def parse_cert_fingerprints(name: str, raw: str) -> tuple[str, ...]:
    """32 colon-separated hex pairs each, as `keytool -list -v` and the Play Console print them; Google's
    format wants capitals, so any case is taken and capitals are kept."""
    certs = tuple(cert.upper() for cert in _entries(raw))
    for cert in certs:
        if not _CERT_SHA256.fullmatch(cert):
            raise ConfigError(
                f"{name} must be comma-separated SHA-256 fingerprints "
                f"(32 hex pairs joined by colons, AB:CD:…); {cert!r} is not one"
            )
    return certs


def parse_android_package(name: str, raw: str) -> str | None:
    package = raw.strip() or None
    if package is not None and not ANDROID_PACKAGE.fullmatch(package):
        raise ConfigError(f"{name} must be an Android package name such as org.example.app")
    return package


# --- keys --------------------------------------------------------------------------------------------


def parse_data_keys(name: str, raw: str) -> Keys:
    """Lines of `keyid:base64key` (newest first), or one bare base64 key (id "k1")."""
    keys: list[tuple[str, bytes]] = []
    for line in raw.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        key_id, _, b64 = line.rpartition(":")
        key_id = key_id or "k1"
        try:
            key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except ValueError:
            raise ConfigError(f"{name} holds a key that is not base64") from None
        if len(key) != 32 or not key_id.isalnum():
            raise ConfigError(f"{name} must hold 32-byte keys as 'id:base64' lines")
        keys.append((key_id, key))
    if not keys:
        raise ConfigError(f"{name} is empty")
    return tuple(keys)


def new_data_key_line(key_id: str) -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"


def read_or_create_secret(path: Path, make: bytes) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # var/: the keys and the database
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(make + b"\n")
    return make


def read_secret_key(var: Path) -> bytes:
    return read_or_create_secret(var / "secret.key", secrets.token_urlsafe(48).encode())


def read_data_keys(path: Path) -> Keys:
    raw = read_or_create_secret(path, new_data_key_line("k1").encode())
    return parse_data_keys(str(path), raw.decode())


def read_audit_keys(var: Path) -> Keys:
    """var/audit.key, made once like data.key: `id:base64key` lines, newest first. It is kept out of the
    database on purpose: someone who can rewrite the audit table cannot recompute its keyed hashes."""
    path = var / "audit.key"
    raw = read_or_create_secret(path, new_data_key_line("a1").encode())
    return parse_data_keys(str(path), raw.decode())


def data_key_loader(path: Path) -> Callable[[], Keys | None]:
    """For a running server's keyring: the keys in `path` when the file changed since the last call (a key
    was added by `rotate-data-key`), else None. A file that cannot be read or parsed keeps the old keys."""
    seen: list[tuple[int, int]] = []

    def load() -> Keys | None:
        try:
            st = path.stat()
            if seen and seen[0] == (st.st_mtime_ns, st.st_size):
                return None
            keys = parse_data_keys(str(path), path.read_text())
        except (OSError, ConfigError, UnicodeDecodeError):
            return None
        seen[:] = [(st.st_mtime_ns, st.st_size)]
        return keys

    return load

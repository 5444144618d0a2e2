"""One typed configuration object, read once at start (docs/api.md §2).

Nothing here runs at import time: `load_config(environ)` is called by the command line, and tests build a
`Config` directly. A bad value raises `ConfigError` with one sentence; the CLI prints it and exits 2.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from push.webpush import check_subject, load_vapid_key, pem_from_raw, read_or_create_vapid_key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message is one line for a person."""


@dataclass(frozen=True)
class Config:
    database_url: str = "sqlite://var/securemsg.sqlite3"
    database_timeout_s: int = 10
    redis_url: str | None = None
    # Every Redis call gives up after this long (SECUREMSG_REDIS_TIMEOUT_S): a hung Redis never holds a send.
    redis_timeout_s: float = 0.5
    public_url: str = "http://127.0.0.1:8080"
    secret_key: bytes = b""
    data_keys: tuple[tuple[str, bytes], ...] = ()  # (key id, 32-byte key); the first one encrypts
    # Where data_keys came from (None: SECUREMSG_DATA_KEY); a running server re-reads it after rotation.
    data_key_file: Path | None = None
    var_dir: Path = Path("var")
    # The audit log's MAC keys, newest first (SECUREMSG_AUDIT_KEY, else var/audit.key); when empty, the
    # key file in var_dir is read, or made (`audit_keys_of`).
    audit_keys: tuple[tuple[str, bytes], ...] = ()
    export_retention_days: int = 7
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_from: str = "no-reply@localhost"
    dev_mail_dir: Path = Path("var/mail")
    unread_email_delay_s: int = 600
    link_ttl_s: int = 86400
    signin_link_ttl_s: int = 900
    session_ttl_s: int = 12 * 3600
    outbox_lease_s: int = 120
    apns_key_file: str | None = None
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None
    apns_endpoint: str = "https://api.push.apple.com"
    fcm_credentials_file: str | None = None
    fcm_endpoint: str = "https://fcm.googleapis.com"
    # Web Push (push.webpush): the VAPID private key as PEM (SECUREMSG_VAPID_PRIVATE_KEY, else var/vapid.key,
    # made on first start); None: read or make the file in var_dir (`vapid_pem_of`).
    vapid_private_pem: str | None = None
    # The contact push services see in the VAPID JWT (`sub`); None: the public URL when it is https, else
    # mailto: the From address (`webpush_subject_of`).
    webpush_subject: str | None = None
    # Browser push endpoints may be loopback or private addresses only when this is set (tests, a push
    # service on the deployment's own network); otherwise they are refused like webhooks' (inbox.webhooks).
    webpush_allow_private: bool = False
    app_link_scheme: str = "securemsg"
    # Sends per person per minute before 429 (per client IP: five times this); a flood guard (R12).
    send_rate_per_min: int = 60
    # Reverse proxies whose X-Forwarded-For is believed (gateway.client_address); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # Webhooks may reach loopback and private addresses only when this is set (inbox.webhooks).
    webhook_allow_private: bool = False
    testing: bool = False
    # Sign in with Google (or any OpenID Connect provider) on the portal: off while oidc_client_id is None.
    oidc_issuer: str = "https://accounts.google.com"
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_name: str = "Google"  # the button's words: "Sign in with Google"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_client_id)

    # App links (gateway.wellknown): the apps that open this server's https links instead of the browser.
    # The client app takes the portal's links, the practice app the web inbox's; each is off when unset.
    ios_app_ids: tuple[str, ...] = ()  # "TEAMID.bundle.id" of the client app
    ios_practice_app_ids: tuple[str, ...] = ()
    android_package: str | None = None  # the client app's package name
    android_cert_sha256: tuple[str, ...] = ()  # "AB:CD:…" (32 pairs) of its signing certificates
    android_practice_package: str | None = None
    android_practice_cert_sha256: tuple[str, ...] = ()

    # Retention (inbox.retention): days kept after a row is finished, made, or expired/revoked.
    retention_outbox_days: int = 30
    retention_webhook_deliveries_days: int = 30
    retention_tokens_days: int = 7

    # Metrics and logs (docs/operations.md). GET /metrics is served only on this (host, port) of its own,
    # never on the public listener; None (SECUREMSG_METRICS_LISTEN unset) leaves it off. Port 0: any free one.
    metrics_listen: tuple[str, int] | None = None
    log_format: str = "plain"  # plain | json (SECUREMSG_LOG_FORMAT): one JSON object a line

    @property
    def cookie_secure(self) -> bool:
        return self.public_url.startswith("https://")

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not lo <= value <= hi:  # also refuses nan
        raise ConfigError(f"{name} must be between {lo:g} and {hi:g}, not {raw.strip()}")
    return value


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw.strip().rstrip("/")


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


def _read_or_create_secret(path: Path, make: bytes) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # var/: the keys and the database
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(make + b"\n")
    return make


def parse_data_keys(name: str, raw: str) -> tuple[tuple[str, bytes], ...]:
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


def data_key_loader(path: Path) -> Callable[[], tuple[tuple[str, bytes], ...] | None]:
    """For a running server's keyring: the keys in `path` when the file changed since the last call (a key
    was added by `rotate-data-key`), else None. A file that cannot be read or parsed keeps the old keys."""
    seen: list[tuple[int, int]] = []

    def load() -> tuple[tuple[str, bytes], ...] | None:
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


LOG_FORMATS = ("plain", "json")


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, not {raw!r}")
    return value


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
    return host, _int(name + "'s port", port, 0, 65535)


def var_dir_from(env: Mapping[str, str], var_dir: Path | None = None) -> Path:
    return Path(env.get("SECUREMSG_VAR_DIR", str(var_dir or Path("var"))))


def read_audit_keys(var: Path) -> tuple[tuple[str, bytes], ...]:
    """var/audit.key, made once like data.key: `id:base64key` lines, newest first. It is kept out of the
    database on purpose: someone who can rewrite the audit table cannot recompute its keyed hashes."""
    path = var / "audit.key"
    raw = _read_or_create_secret(path, new_data_key_line("a1").encode())
    return parse_data_keys(str(path), raw.decode())


def audit_keys_of(config: Config) -> tuple[tuple[str, bytes], ...]:
    return config.audit_keys or read_audit_keys(config.var_dir)


def vapid_pem_of(config: Config) -> str:
    """The VAPID private key (PEM): SECUREMSG_VAPID_PRIVATE_KEY's, else var/vapid.key (made 0600 at first)."""
    return config.vapid_private_pem or read_or_create_vapid_key(config.var_dir / "vapid.key")


def webpush_subject_of(config: Config) -> str:
    if config.webpush_subject:
        return config.webpush_subject
    if config.public_url.startswith("https://"):
        return config.public_url
    return f"mailto:{config.smtp_from}"


def _vapid_from_env(env: Mapping[str, str], var: Path) -> str:
    raw = env.get("SECUREMSG_VAPID_PRIVATE_KEY", "").strip()
    try:
        pem = pem_from_raw(raw) if raw else read_or_create_vapid_key(var / "vapid.key")
        load_vapid_key(pem)
    except ValueError as exc:
        where = "SECUREMSG_VAPID_PRIVATE_KEY" if raw else str(var / "vapid.key")
        raise ConfigError(f"{where}: {exc}") from None
    return pem


def _webpush_subject(env: Mapping[str, str]) -> str | None:
    raw = env.get("SECUREMSG_WEBPUSH_SUBJECT", "").strip()
    if not raw:
        return None
    try:
        return check_subject(raw)
    except ValueError as exc:
        raise ConfigError(f"SECUREMSG_WEBPUSH_SUBJECT: {exc}") from None


def database_url(env: Mapping[str, str], var: Path) -> str:
    """SECUREMSG_DATABASE_URL checked (default: SQLite in the var directory). `restore` reads it without the
    rest of the configuration, which would make new keys in the var directory it must find empty."""
    db_url = env.get("SECUREMSG_DATABASE_URL", f"sqlite://{var}/securemsg.sqlite3").strip()
    if not db_url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
        raise ConfigError("SECUREMSG_DATABASE_URL must start with sqlite:// or postgres://")
    if db_url.startswith("postgresql://"):
        db_url = "postgres://" + db_url[len("postgresql://") :]
    return db_url


def load_config(environ: Mapping[str, str] | None = None, *, var_dir: Path | None = None) -> Config:
    env = dict(os.environ if environ is None else environ)
    var = var_dir_from(env, var_dir)
    testing = _bool("SECUREMSG_TESTING", env.get("SECUREMSG_TESTING", "false"))

    db_url = database_url(env, var)

    redis_url = env.get("SECUREMSG_REDIS_URL") or None
    if redis_url:
        redis_url = _url("SECUREMSG_REDIS_URL", redis_url, ("redis", "rediss", "unix"))

    if "SECUREMSG_SECRET_KEY" in env:
        secret = env["SECUREMSG_SECRET_KEY"].encode()
        if len(secret) < 16:
            raise ConfigError("SECUREMSG_SECRET_KEY must be at least 16 characters")
    else:
        secret = _read_or_create_secret(var / "secret.key", secrets.token_urlsafe(48).encode())

    data_key_file: Path | None = None
    if "SECUREMSG_DATA_KEY" in env:
        data_keys = parse_data_keys("SECUREMSG_DATA_KEY", env["SECUREMSG_DATA_KEY"])
    else:
        data_key_file = var / "data.key"
        raw = _read_or_create_secret(data_key_file, new_data_key_line("k1").encode())
        data_keys = parse_data_keys(str(data_key_file), raw.decode())

    if "SECUREMSG_AUDIT_KEY" in env:
        audit_keys = parse_data_keys("SECUREMSG_AUDIT_KEY", env["SECUREMSG_AUDIT_KEY"])
    else:
        audit_keys = read_audit_keys(var)

    delay_lo = 1 if testing else 600
    delay = _int(
        "SECUREMSG_UNREAD_EMAIL_DELAY_S", env.get("SECUREMSG_UNREAD_EMAIL_DELAY_S", "600"), delay_lo, 1200
    )
    ttl_lo = 1 if testing else 60

    apns_endpoint = _url(
        "SECUREMSG_APNS_ENDPOINT",
        env.get("SECUREMSG_APNS_ENDPOINT", "https://api.push.apple.com"),
        ("https",),
    )
    fcm_endpoint = _url(
        "SECUREMSG_FCM_ENDPOINT",
        env.get("SECUREMSG_FCM_ENDPOINT", "https://fcm.googleapis.com"),
        ("http", "https"),
    )
    apns_key_file = env.get("SECUREMSG_APNS_KEY_FILE") or None
    if apns_key_file and not Path(apns_key_file).is_file():
        raise ConfigError(f"SECUREMSG_APNS_KEY_FILE {apns_key_file} does not exist")
    if apns_key_file and not all(env.get(f"SECUREMSG_APNS_{k}") for k in ("KEY_ID", "TEAM_ID", "TOPIC")):
        raise ConfigError("SECUREMSG_APNS_KEY_FILE needs SECUREMSG_APNS_KEY_ID, _TEAM_ID and _TOPIC too")
    fcm_file = env.get("SECUREMSG_FCM_CREDENTIALS_FILE") or None
    if fcm_file and not Path(fcm_file).is_file():
        raise ConfigError(f"SECUREMSG_FCM_CREDENTIALS_FILE {fcm_file} does not exist")

    scheme = env.get("SECUREMSG_APP_LINK_SCHEME", "securemsg").strip()
    if not scheme or not scheme.replace("-", "").replace(".", "").isalnum():
        raise ConfigError("SECUREMSG_APP_LINK_SCHEME must be a URL scheme such as securemsg")

    oidc_issuer, oidc_client_id, oidc_client_secret, oidc_name = _oidc(env)

    return Config(
        database_url=db_url,
        database_timeout_s=_int(
            "SECUREMSG_DATABASE_TIMEOUT_S", env.get("SECUREMSG_DATABASE_TIMEOUT_S", "10"), 1, 300
        ),
        redis_url=redis_url,
        redis_timeout_s=_float(
            "SECUREMSG_REDIS_TIMEOUT_S", env.get("SECUREMSG_REDIS_TIMEOUT_S", "0.5"), 0.05, 30.0
        ),
        public_url=_url(
            "SECUREMSG_PUBLIC_URL",
            env.get("SECUREMSG_PUBLIC_URL", "http://127.0.0.1:8080"),
            ("http", "https"),
        ),
        secret_key=secret,
        data_keys=data_keys,
        data_key_file=data_key_file,
        var_dir=var,
        audit_keys=audit_keys,
        export_retention_days=_int(
            "SECUREMSG_EXPORT_RETENTION_DAYS", env.get("SECUREMSG_EXPORT_RETENTION_DAYS", "7"), 1, 3650
        ),
        smtp_host=env.get("SECUREMSG_SMTP_HOST", "127.0.0.1"),
        smtp_port=_int("SECUREMSG_SMTP_PORT", env.get("SECUREMSG_SMTP_PORT", "1025"), 1, 65535),
        smtp_username=env.get("SECUREMSG_SMTP_USERNAME") or None,
        smtp_password=env.get("SECUREMSG_SMTP_PASSWORD") or None,
        smtp_starttls=_bool("SECUREMSG_SMTP_STARTTLS", env.get("SECUREMSG_SMTP_STARTTLS", "false")),
        smtp_use_tls=_bool("SECUREMSG_SMTP_TLS", env.get("SECUREMSG_SMTP_TLS", "false")),
        smtp_from=env.get("SECUREMSG_SMTP_FROM", "no-reply@localhost"),
        dev_mail_dir=Path(env.get("SECUREMSG_DEV_MAIL_DIR", str(var / "mail"))),
        unread_email_delay_s=delay,
        link_ttl_s=_int("SECUREMSG_LINK_TTL_S", env.get("SECUREMSG_LINK_TTL_S", "86400"), ttl_lo, 30 * 86400),
        signin_link_ttl_s=_int(
            "SECUREMSG_SIGNIN_LINK_TTL_S", env.get("SECUREMSG_SIGNIN_LINK_TTL_S", "900"), ttl_lo, 86400
        ),
        session_ttl_s=_int(
            "SECUREMSG_SESSION_TTL_S", env.get("SECUREMSG_SESSION_TTL_S", "43200"), ttl_lo, 30 * 86400
        ),
        outbox_lease_s=_int(
            "SECUREMSG_OUTBOX_LEASE_S", env.get("SECUREMSG_OUTBOX_LEASE_S", "120"), 1 if testing else 30, 3600
        ),
        apns_key_file=apns_key_file,
        apns_key_id=env.get("SECUREMSG_APNS_KEY_ID") or None,
        apns_team_id=env.get("SECUREMSG_APNS_TEAM_ID") or None,
        apns_topic=env.get("SECUREMSG_APNS_TOPIC") or None,
        apns_endpoint=apns_endpoint,
        fcm_credentials_file=fcm_file,
        fcm_endpoint=fcm_endpoint,
        vapid_private_pem=_vapid_from_env(env, var),
        webpush_subject=_webpush_subject(env),
        webpush_allow_private=_bool(
            "SECUREMSG_WEBPUSH_ALLOW_PRIVATE", env.get("SECUREMSG_WEBPUSH_ALLOW_PRIVATE", "false")
        ),
        app_link_scheme=scheme,
        send_rate_per_min=_int(
            "SECUREMSG_SEND_RATE_PER_MIN", env.get("SECUREMSG_SEND_RATE_PER_MIN", "60"), 1, 10_000_000
        ),
        trusted_proxies=parse_networks("SECUREMSG_TRUSTED_PROXIES", env.get("SECUREMSG_TRUSTED_PROXIES", "")),
        webhook_allow_private=_bool(
            "SECUREMSG_WEBHOOK_ALLOW_PRIVATE", env.get("SECUREMSG_WEBHOOK_ALLOW_PRIVATE", "false")
        ),
        testing=testing,
        oidc_issuer=oidc_issuer,
        oidc_client_id=oidc_client_id,
        oidc_client_secret=oidc_client_secret,
        oidc_name=oidc_name,
        **app_link_settings(env),
        # Outbox history is read back for a day at most (R17's unread checks, the hourly throttle): 2 days up.
        retention_outbox_days=_int(
            "SECUREMSG_RETENTION_OUTBOX_DAYS", env.get("SECUREMSG_RETENTION_OUTBOX_DAYS", "30"), 2, 3650
        ),
        retention_webhook_deliveries_days=_int(
            "SECUREMSG_RETENTION_WEBHOOK_DELIVERIES_DAYS",
            env.get("SECUREMSG_RETENTION_WEBHOOK_DELIVERIES_DAYS", "30"),
            1,
            3650,
        ),
        retention_tokens_days=_int(
            "SECUREMSG_RETENTION_TOKENS_DAYS", env.get("SECUREMSG_RETENTION_TOKENS_DAYS", "7"), 1, 3650
        ),
        metrics_listen=parse_listen("SECUREMSG_METRICS_LISTEN", env.get("SECUREMSG_METRICS_LISTEN", "")),
        log_format=_choice("SECUREMSG_LOG_FORMAT", env.get("SECUREMSG_LOG_FORMAT", "plain"), LOG_FORMATS),
    )


def _oidc(env: Mapping[str, str]) -> tuple[str, str | None, str | None, str]:
    """The OpenID Connect provider for the portal's "Sign in with Google". The issuer is https, except on
    loopback (a provider under test); a client id needs its secret (a confidential client)."""
    issuer = env.get("SECUREMSG_OIDC_ISSUER", "").strip() or "https://accounts.google.com"
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError("SECUREMSG_OIDC_ISSUER must be an https:// URL such as https://accounts.google.com")
    if parts.query or parts.fragment:
        raise ConfigError("SECUREMSG_OIDC_ISSUER must be a plain URL, without a query or fragment")
    client_id = env.get("SECUREMSG_OIDC_CLIENT_ID", "").strip() or None
    secret = env.get("SECUREMSG_OIDC_CLIENT_SECRET", "").strip() or None
    if client_id and not secret:
        raise ConfigError("SECUREMSG_OIDC_CLIENT_ID needs SECUREMSG_OIDC_CLIENT_SECRET too")
    name = " ".join(env.get("SECUREMSG_OIDC_NAME", "Google").split())[:40] or "Google"
    return issuer, client_id, secret, name  # as given: the tokens' "iss" must equal it exactly


# --- app links ---------------------------------------------------------------------------------------

_IOS_APP_ID = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
_ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
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


def parse_android_app(prefix: str, package_raw: str, certs_raw: str) -> tuple[str | None, tuple[str, ...]]:
    """An Android package name and the SHA-256 fingerprints of its signing certificates, both or neither.
    A fingerprint is 32 colon-separated hex pairs, as `keytool -list -v` and the Play Console print it;
    Google's format wants capitals, so any case is taken and capitals are kept."""
    package = package_raw.strip() or None
    certs = tuple(cert.upper() for cert in _entries(certs_raw))
    for cert in certs:
        if not _CERT_SHA256.fullmatch(cert):
            raise ConfigError(
                f"{prefix}_CERT_SHA256 must be comma-separated SHA-256 fingerprints "
                f"(32 hex pairs joined by colons, AB:CD:…); {cert!r} is not one"
            )
    if package is not None and not _ANDROID_PACKAGE.fullmatch(package):
        raise ConfigError(f"{prefix}_PACKAGE must be an Android package name such as org.example.app")
    if package is not None and not certs:
        raise ConfigError(f"{prefix}_PACKAGE needs {prefix}_CERT_SHA256 too")
    if certs and package is None:
        raise ConfigError(f"{prefix}_CERT_SHA256 needs {prefix}_PACKAGE too")
    return package, certs


def app_link_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The Config fields of the app links, from SECUREMSG_IOS_* and SECUREMSG_ANDROID_*."""
    client_package, client_certs = parse_android_app(
        "SECUREMSG_ANDROID",
        env.get("SECUREMSG_ANDROID_PACKAGE", ""),
        env.get("SECUREMSG_ANDROID_CERT_SHA256", ""),
    )
    practice_package, practice_certs = parse_android_app(
        "SECUREMSG_ANDROID_PRACTICE",
        env.get("SECUREMSG_ANDROID_PRACTICE_PACKAGE", ""),
        env.get("SECUREMSG_ANDROID_PRACTICE_CERT_SHA256", ""),
    )
    return {
        "ios_app_ids": parse_ios_app_ids("SECUREMSG_IOS_APP_IDS", env.get("SECUREMSG_IOS_APP_IDS", "")),
        "ios_practice_app_ids": parse_ios_app_ids(
            "SECUREMSG_IOS_PRACTICE_APP_IDS", env.get("SECUREMSG_IOS_PRACTICE_APP_IDS", "")
        ),
        "android_package": client_package,
        "android_cert_sha256": client_certs,
        "android_practice_package": practice_package,
        "android_practice_cert_sha256": practice_certs,
    }

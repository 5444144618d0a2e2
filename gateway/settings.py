"""Every setting, declared once (docs/api.md §2): `Config`, the typed configuration object the code uses.

Each field is one `SECUREMSG_*` variable with its type, default, bounds, one line of help and whether it is
a secret. docs/api.md's table, `securemsg config` and the one-line errors are all made from these
declarations. Building a `Config(...)` reads nothing (tests build one directly); `gateway.config.load_config`
reads the environment into one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway import config_values as v
from gateway.config_values import ConfigError, Keys, Network
from mailer import SmtpSettings

PREFIX = "SECUREMSG_"
LOG_FORMATS = ("plain", "json")
DAY = 86400


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    secret: bool = False,
    shown: str | None = None,
    ge: float | None = None,
    le: float | None = None,
    production_ge: float | None = None,
) -> Any:
    """One setting: its default, its one line of help, and optionally its variable (else SECUREMSG_ and the
    field's name), whether it is a secret (masked by `securemsg config`), how its default reads in the docs
    (`shown`), and its bounds; `production_ge` is the lower bound unless SECUREMSG_TESTING is on."""
    extra: dict[str, Any] = {"setting": True, "secret": secret}
    if shown is not None:
        extra["shown"] = shown
    if production_ge is not None:
        extra["production_ge"] = production_ge
    finite = False if isinstance(default, float) else None  # "nan" is not a number of seconds
    return Field(
        default,
        description=help,
        validation_alias=env,
        ge=ge,
        le=le,
        allow_inf_nan=finite,
        repr=not secret,  # a Config in a log line or a traceback shows no secret
        json_schema_extra=extra,
    )


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,  # so that SECUREMSG_SMTP_PORT finds smtp_port; only upper-case names are read
        frozen=True,
        extra="forbid",
        validate_default=False,
        validate_by_name=True,
        validate_by_alias=True,
        enable_decoding=False,  # lists are comma-separated, keys are lines: never JSON
    )

    # First: the rest is checked against them.
    testing: bool = setting(
        False,
        "lets tests set shorter delays, lifetimes and leases than a practice may; never set it in production",
    )
    var_dir: Path = setting(
        Path("var"),
        "the directory of the generated keys, the default SQLite database and the dev mail (0700)",
    )

    database_url: str = setting(
        "sqlite://var/securemsg.sqlite3",
        "any Tortoise URL: SQLite in the var directory by default, `postgres://user:pass@host:5432/db` for "
        "production",
        shown="`sqlite://var/securemsg.sqlite3` (in `SECUREMSG_VAR_DIR`)",
    )
    database_timeout_s: int = setting(
        10,
        "PostgreSQL: how long connecting, and each statement, may take before a request answers 503",
        ge=1,
        le=300,
    )
    redis_url: str | None = setting(
        None,
        "`redis://`, `rediss://` or `unix://`: when set, realtime events fan out across gateway processes "
        "through Redis pub/sub, and rate limits are shared",
    )
    redis_timeout_s: float = setting(
        0.5,
        "how long any one Redis call may take; a hung Redis never holds a send: events are published "
        "after the answer, and the rate limiter counts in the process meanwhile",
        ge=0.05,
        le=30,
    )
    public_url: str = setting("http://127.0.0.1:8080", "base of every link put in an email or a push")
    secret_key: bytes = setting(
        b"",
        "signs links and sessions (16 characters at least)",
        secret=True,
        shown="generated once into `var/secret.key`",
    )
    data_keys: Keys = setting(
        (),
        "encrypts message bodies and stored secrets at rest: `id:base64` lines of 32-byte keys, newest first "
        "(the first one encrypts), or one bare base64 key",
        env="SECUREMSG_DATA_KEY",
        secret=True,
        shown="generated once into `var/data.key`",
    )
    # Not a setting: where data_keys came from (None: SECUREMSG_DATA_KEY); a running server re-reads it after
    # rotation.
    data_key_file: Path | None = None
    audit_keys: Keys = setting(
        (),
        "the audit log's HMAC keys (`id:base64` lines, newest first, like the data key), kept out of the "
        "database so that a database writer cannot recompute the chain; back it up with the data key",
        env="SECUREMSG_AUDIT_KEY",
        secret=True,
        shown="generated once into `var/audit.key`",
    )
    export_retention_days: int = setting(
        7,
        "export files are deleted this many days after they were written; a download after that answers 410",
        ge=1,
        le=3650,
    )

    smtp_host: str = setting(SmtpSettings.host, "outgoing mail: the SMTP server")
    smtp_port: int = setting(SmtpSettings.port, "outgoing mail: its port", ge=1, le=65535)
    smtp_username: str | None = setting(SmtpSettings.username, "outgoing mail: the user to sign in as")
    smtp_password: str | None = setting(
        SmtpSettings.password, "outgoing mail: that user's password (needs the username)", secret=True
    )
    smtp_starttls: bool = setting(
        SmtpSettings.starttls,
        "outgoing mail: upgrade the connection with STARTTLS, or fail (never sent in clear)",
    )
    smtp_use_tls: bool = setting(
        SmtpSettings.use_tls,
        "outgoing mail: implicit TLS (port 465); not with STARTTLS",
        env="SECUREMSG_SMTP_TLS",
    )
    smtp_from: str = setting(SmtpSettings.from_addr, "outgoing mail: the sender's address")
    dev_mail_dir: Path = setting(
        Path("var/mail"),
        "where the built-in SMTP sink of `--dev-mail` keeps what it receives (a Maildir)",
        shown="`var/mail` (in `SECUREMSG_VAR_DIR`)",
    )

    unread_email_delay_s: int = setting(
        600,
        "a message still unread this long after it was sent triggers an email (R17)",
        ge=1,
        le=1200,
        production_ge=600,
    )
    link_ttl_s: int = setting(
        DAY, "lifetime of a notification's magic link (24 h)", ge=1, le=30 * DAY, production_ge=60
    )
    signin_link_ttl_s: int = setting(
        900, "lifetime of a single-use Instant Sign In link", ge=1, le=DAY, production_ge=60
    )
    session_ttl_s: int = setting(
        12 * 3600, "lifetime of a sign-in session or app token", ge=1, le=30 * DAY, production_ge=60
    )
    outbox_lease_s: int = setting(
        120,
        "how long a dispatcher's claim on an outbox row holds; after a crash its rows are taken again "
        "after this",
        ge=1,
        le=3600,
        production_ge=30,
    )

    apns_key_file: str | None = setting(
        None, "APNs token auth: the `.p8` key file; APNs is off while unset (needs the next three)"
    )
    apns_key_id: str | None = setting(None, "APNs: the key's id")
    apns_team_id: str | None = setting(None, "APNs: the Apple team id")
    apns_topic: str | None = setting(None, "APNs: the app's bundle id")
    apns_endpoint: str = setting(
        "https://api.push.apple.com", "APNs: where pushes go; may point anywhere (a sandbox, a test server)"
    )
    fcm_credentials_file: str | None = setting(
        None, "FCM HTTP v1: the service account's JSON file; FCM is off while unset"
    )
    fcm_endpoint: str = setting(
        "https://fcm.googleapis.com", "FCM: where pushes go; may point anywhere (a test server)"
    )
    vapid_private_pem: str | None = setting(
        None,
        "Web Push: the VAPID private key, as the base64url of its 32-byte value or as PEM; every process and "
        "host of one deployment needs the same one",
        env="SECUREMSG_VAPID_PRIVATE_KEY",
        secret=True,
        shown="generated once into `var/vapid.key`",
    )
    webpush_subject: str | None = setting(
        None,
        "Web Push: the operator's contact push services see in the VAPID JWT (a mailto: or https: URI)",
        shown="the public URL when it is https, else mailto: the From address",
    )
    webpush_allow_private: bool = setting(
        False,
        "Web Push: allow browser push endpoints at loopback or private addresses (tests, a push service on "
        "the deployment's own network); otherwise refused like webhooks'",
    )
    app_link_scheme: str = setting("securemsg", "deep links in pushes: `securemsg://conversations/{id}`")
    send_rate_per_min: int = setting(
        60,
        "sends per person per minute before 429 (per client address: five times this); a flood guard, not a "
        "cap on messages (R12)",
        ge=1,
        le=10_000_000,
    )
    trusted_proxies: tuple[Network, ...] = setting(
        (),
        "comma-separated addresses/CIDRs of reverse proxies; only a request whose peer is one of them has "
        "its client address taken from `X-Forwarded-For` (the right-most address not itself trusted), "
        "which per-IP limits and audit rows then use",
    )
    webhook_allow_private: bool = setting(
        False,
        "`1` lets webhooks reach loopback and private addresses (receivers on the deployment's own network); "
        "otherwise they are refused",
    )

    oidc_issuer: str = setting(
        "https://accounts.google.com",
        'the OpenID Connect provider behind the portal\'s "Sign in with Google" (any standard one: '
        "Microsoft, Okta); https, or plain http on loopback only; its discovery document's `issuer` must "
        "equal this exactly",
    )
    oidc_client_id: str | None = setting(
        None,
        "the portal's OAuth client at that provider (redirect URI "
        '`{SECUREMSG_PUBLIC_URL}/portal/oidc/callback`); "Sign in with Google" is off while unset, and an id '
        "needs its secret",
    )
    oidc_client_secret: str | None = setting(None, "that OAuth client's secret", secret=True)
    oidc_name: str = setting("Google", 'the provider\'s name on the button: "Sign in with Google"')

    # App links (gateway.wellknown): the apps that open this server's https links instead of the browser.
    ios_app_ids: tuple[str, ...] = setting(
        (),
        "comma-separated `TEAMID.bundle.id` of the client app: `/.well-known/apple-app-site-association` "
        "gives it the portal's links; 404 when this and the next are unset",
    )
    ios_practice_app_ids: tuple[str, ...] = setting(
        (), "the same for the practice app, which gets the web inbox's conversation links"
    )
    android_package: str | None = setting(
        None,
        "the client app's package name, for `/.well-known/assetlinks.json` (with the next; 404 when no "
        "Android app is set)",
    )
    android_cert_sha256: tuple[str, ...] = setting(
        (),
        "the SHA-256 fingerprints of its signing certificates: comma-separated, 32 colon-separated hex "
        "pairs each",
    )
    android_practice_package: str | None = setting(None, "the same for the practice app: its package name")
    android_practice_cert_sha256: tuple[str, ...] = setting((), "and its signing certificates' fingerprints")

    # Retention (inbox.retention): days kept after a row is finished, made, or expired/revoked.
    # Outbox history is read back for a day at most (R17's unread checks, the hourly throttle): 2 days up.
    retention_outbox_days: int = setting(
        30,
        "days finished outbox rows (done, skipped, failed) are kept before the dispatcher prunes them; "
        "pending work is never pruned",
        ge=2,
        le=3650,
    )
    retention_webhook_deliveries_days: int = setting(
        30, "days finished webhook deliveries (delivered, failed, cancelled) are kept", ge=1, le=3650
    )
    retention_tokens_days: int = setting(
        7,
        "days sessions, tokens, API keys and links are kept after they expired or were revoked; messages and "
        "audit rows are never pruned",
        ge=1,
        le=3650,
    )

    metrics_listen: tuple[str, int] | None = setting(
        None,
        "`host:port` (`127.0.0.1:9108`, `[::1]:9108`) of a listener of its own serving `GET /metrics` in "
        "Prometheus' text format; never served on the public listener; off while unset. Under `serve "
        "--processes N` the supervising parent serves it for all N processes, each sample labelled `process` "
        "with its process's index",
    )
    log_format: Literal["plain", "json"] = setting(
        "plain",
        "`plain` (text lines) or `json`: one JSON object a line with `time`, `level`, `logger`, `message`, "
        "the `request_id`, and one access line per request",
    )
    backup_passphrase: str | None = setting(
        None,
        "read by `backup` and `restore` only, when no `--passphrase-file` is given (12 characters at least)",
        secret=True,
    )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_client_id)

    @property
    def cookie_secure(self) -> bool:
        return self.public_url.startswith("https://")

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with these fields changed, as given (unchecked, like the tests' own values)."""
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"Config has no field {', '.join(sorted(unknown))}")
        return self.model_copy(update=changes)

    def smtp(self) -> SmtpSettings:
        """The mailer's settings; its own checks (STARTTLS or TLS, a password needs a user, a plain from
        address) fail here with one line."""
        try:
            return SmtpSettings(
                host=self.smtp_host,
                port=self.smtp_port,
                username=self.smtp_username,
                password=self.smtp_password,
                starttls=self.smtp_starttls,
                use_tls=self.smtp_use_tls,
                from_addr=self.smtp_from,
            )
        except ValueError as exc:
            raise ConfigError(f"SECUREMSG_SMTP_* settings: {exc}") from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller gives: `load_config` reads the environment it is handed, never os.environ here.
        return (init_settings,)

    # --- reading the raw text of each variable (a value given as its type passes unchanged) -------------

    @model_validator(mode="before")
    @classmethod
    def _in_the_var_directory(cls, data: Any) -> Any:
        if isinstance(data, dict):
            var = data.get("var_dir") or "var"
            data.setdefault("database_url", f"sqlite://{var}/securemsg.sqlite3")
            data.setdefault("dev_mail_dir", Path(var) / "mail")
        return data

    @field_validator("testing", "smtp_starttls", "smtp_use_tls", "webhook_allow_private", mode="before")
    @classmethod
    def _bool(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_bool(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator(
        "smtp_username",
        "smtp_password",
        "apns_key_file",
        "apns_key_id",
        "apns_team_id",
        "apns_topic",
        "fcm_credentials_file",
        "backup_passphrase",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, raw: Any) -> Any:
        return raw or None

    @field_validator("oidc_client_id", "oidc_client_secret", mode="before")
    @classmethod
    def _stripped_or_unset(cls, raw: Any) -> Any:
        return (raw.strip() or None) if isinstance(raw, str) else raw

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_database_url(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator("public_url", "redis_url", "apns_endpoint", "fcm_endpoint", mode="before")
    @classmethod
    def _url(cls, raw: Any, info: ValidationInfo) -> Any:
        schemes = {
            "redis_url": ("redis", "rediss", "unix"),
            "apns_endpoint": ("https",),
        }.get(str(info.field_name), ("http", "https"))
        if not isinstance(raw, str) or (info.field_name == "redis_url" and not raw):
            return raw or None
        return v.parse_url(env_name(info.field_name), raw, schemes)

    @field_validator("secret_key", mode="before")
    @classmethod
    def _secret_key(cls, raw: Any) -> Any:
        key = raw.encode() if isinstance(raw, str) else raw
        if isinstance(key, bytes) and len(key) < 16:
            raise ConfigError("SECUREMSG_SECRET_KEY must be at least 16 characters")
        return key

    @field_validator("data_keys", "audit_keys", mode="before")
    @classmethod
    def _keys(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_data_keys(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, raw: Any) -> Any:
        return v.parse_networks("SECUREMSG_TRUSTED_PROXIES", raw) if isinstance(raw, str) else raw

    @field_validator("ios_app_ids", "ios_practice_app_ids", mode="before")
    @classmethod
    def _ios(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_ios_app_ids(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator("android_package", "android_practice_package", mode="before")
    @classmethod
    def _android_package(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_android_package(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator("android_cert_sha256", "android_practice_cert_sha256", mode="before")
    @classmethod
    def _android_certs(cls, raw: Any, info: ValidationInfo) -> Any:
        return v.parse_cert_fingerprints(env_name(info.field_name), raw) if isinstance(raw, str) else raw

    @field_validator("vapid_private_pem", mode="before")
    @classmethod
    def _vapid(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        from push.webpush import load_vapid_key, pem_from_raw

        raw = raw.strip()
        if not raw:
            return None
        try:
            pem = raw if raw.startswith("-----BEGIN") else pem_from_raw(raw)
            load_vapid_key(pem)
        except ValueError as exc:
            raise ValueError(f"SECUREMSG_VAPID_PRIVATE_KEY: {exc}") from None
        return pem

    @field_validator("webpush_subject", mode="before")
    @classmethod
    def _webpush_subject(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        from push.webpush import check_subject

        if not raw.strip():
            return None
        try:
            return check_subject(raw)
        except ValueError as exc:
            raise ValueError(f"SECUREMSG_WEBPUSH_SUBJECT: {exc}") from None

    @field_validator("app_link_scheme", mode="before")
    @classmethod
    def _scheme(cls, raw: Any) -> Any:
        return v.parse_scheme("SECUREMSG_APP_LINK_SCHEME", raw) if isinstance(raw, str) else raw

    @field_validator("oidc_issuer", mode="before")
    @classmethod
    def _issuer(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        return v.parse_oidc_issuer("SECUREMSG_OIDC_ISSUER", raw.strip() or "https://accounts.google.com")

    @field_validator("oidc_name", mode="before")
    @classmethod
    def _oidc_name(cls, raw: Any) -> Any:
        return (" ".join(raw.split())[:40] or "Google") if isinstance(raw, str) else raw

    @field_validator("metrics_listen", mode="before")
    @classmethod
    def _listen(cls, raw: Any) -> Any:
        return v.parse_listen("SECUREMSG_METRICS_LISTEN", raw) if isinstance(raw, str) else raw

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, raw: Any) -> Any:
        return v.parse_choice("SECUREMSG_LOG_FORMAT", raw, LOG_FORMATS) if isinstance(raw, str) else raw

    # --- what only the settings together can say ------------------------------------------------------

    @model_validator(mode="after")
    def _together(self) -> Config:
        if not self.testing:
            for name, info in type(self).model_fields.items():
                low = _extra(info).get("production_ge")
                if low is not None and getattr(self, name) < low:
                    high = bounds(name)[1]
                    raise ConfigError(
                        f"{env_name(name)} must be between {number(low)} and {number(high)}, "
                        f"not {getattr(self, name)}"
                    )
        if self.apns_key_file and not Path(self.apns_key_file).is_file():
            raise ConfigError(f"SECUREMSG_APNS_KEY_FILE {self.apns_key_file} does not exist")
        if self.apns_key_file and not (self.apns_key_id and self.apns_team_id and self.apns_topic):
            raise ConfigError("SECUREMSG_APNS_KEY_FILE needs SECUREMSG_APNS_KEY_ID, _TEAM_ID and _TOPIC too")
        if self.fcm_credentials_file and not Path(self.fcm_credentials_file).is_file():
            raise ConfigError(f"SECUREMSG_FCM_CREDENTIALS_FILE {self.fcm_credentials_file} does not exist")
        if self.oidc_client_id and not self.oidc_client_secret:
            raise ConfigError("SECUREMSG_OIDC_CLIENT_ID needs SECUREMSG_OIDC_CLIENT_SECRET too")
        for prefix in ("SECUREMSG_ANDROID", "SECUREMSG_ANDROID_PRACTICE"):
            attr = prefix.removeprefix(PREFIX).lower()
            if getattr(self, f"{attr}_package") and not getattr(self, f"{attr}_cert_sha256"):
                raise ConfigError(f"{prefix}_PACKAGE needs {prefix}_CERT_SHA256 too")
            if getattr(self, f"{attr}_cert_sha256") and not getattr(self, f"{attr}_package"):
                raise ConfigError(f"{prefix}_CERT_SHA256 needs {prefix}_PACKAGE too")
        self.smtp()
        return self


# --- the declarations, read back ---------------------------------------------------------------------


def _extra(info: Any) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def setting_names() -> list[str]:
    """The fields that are settings, in declaration order."""
    return [name for name, info in Config.model_fields.items() if _extra(info).get("setting")]


def env_name(name: str | None) -> str:
    alias = Config.model_fields[str(name)].validation_alias
    return alias if isinstance(alias, str) else PREFIX + str(name).upper()


def is_secret(name: str) -> bool:
    return bool(_extra(Config.model_fields[name]).get("secret"))


def shown_default(name: str) -> str | None:
    return _extra(Config.model_fields[name]).get("shown")


def production_ge(name: str) -> float | None:
    return _extra(Config.model_fields[name]).get("production_ge")


def number(value: float | None) -> str:
    """3600, 0.05: as a person writes it (no 2.592e+06)."""
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bounds(name: str) -> tuple[float | None, float | None]:
    low = high = None
    for constraint in Config.model_fields[name].metadata:
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high

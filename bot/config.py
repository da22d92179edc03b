"""Configuration: a TOML file, every key overridable as TAWASUL_<SECTION>_<KEY>."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_PREFIX = "TAWASUL_"
WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}


class ConfigError(ValueError):
    """A config that cannot be used; ``str()`` names the key and what is wrong."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any, info: ValidationInfo) -> Any:
        """A list given as text (from the environment) is comma-separated."""
        annotation = cls.model_fields[str(info.field_name)].annotation
        if isinstance(value, str) and get_origin(annotation) is list:
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_mb: float = Field(25, gt=0)
    shutdown_seconds: float = Field(20, gt=0, le=600)


class DatabaseConfig(Section):
    url: str = "sqlite+aiosqlite:///var/tawasul.db"
    # PostgreSQL: how long opening a connection may take before it is given up (a host that
    # drops packets would otherwise hold a command or the server for the driver's minute).
    connect_timeout_seconds: float = Field(10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


# The database URLs Tawasul works with: SQLite through aiosqlite, PostgreSQL through asyncpg.
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
DATABASE_EXAMPLES = (
    "sqlite+aiosqlite:///var/tawasul.db (SQLite) or "
    "postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE (PostgreSQL)"
)


def shown_url(url: str) -> str:
    """A database URL as it may be printed: the password, if any, as ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(not a URL)"


def database_url_problem(url: str) -> str | None:
    """What is wrong with a database URL, naming what to write instead; None when usable.

    The password is never repeated: an error message may end up in a log or a ticket."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return f"not a database URL: write {DATABASE_EXAMPLES}"
    driver = parsed.drivername
    if driver in DATABASE_DRIVERS:
        return None
    backend = driver.split("+", 1)[0]
    if backend == "sqlite":
        fixed = parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=True)
        return f"{driver}:// is not the async driver Tawasul uses: write {fixed}"
    if backend in ("postgresql", "postgres", "pgsql", "psql"):
        fixed = parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=True)
        secret = " (with the password where *** is)" if parsed.password else ""
        return f"{driver}:// is not the async driver Tawasul uses: write {fixed}{secret}"
    return f"{driver}:// is not a database Tawasul works with: write {DATABASE_EXAMPLES}"


class StorageConfig(Section):
    attachments_dir: Path = Path("var/attachments")
    max_attachment_mb: float = Field(20, gt=0)


class OrganizationConfig(Section):
    name_ar: str = "الجمعية"
    name_en: str = "The Association"


class EngineConfig(Section):
    response_days: int = Field(14, ge=1, le=365)
    misunderstood_limit: int = Field(2, ge=1, le=10)
    status_attempts: int = Field(3, ge=1, le=10)
    # Wrong answers to the status check, counted across conversations (see docs/security.md).
    status_sender_attempts: int = Field(5, ge=1, le=100)
    status_reference_attempts: int = Field(10, ge=1, le=1000)
    status_window_minutes: float = Field(60, gt=0)
    status_lock_minutes: float = Field(60, gt=0)
    resume_after_hours: float = Field(6, gt=0)


class HoursConfig(Section):
    timezone: str = "Asia/Riyadh"
    workdays: list[str] = ["sunday", "monday", "tuesday", "wednesday", "thursday"]
    opens: time = time(8, 0)
    closes: time = time(15, 0)

    @field_validator("workdays")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        unknown = [d for d in value if d.lower() not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown day names {unknown}; use e.g. sunday, monday")
        return [d.lower() for d in value]

    @model_validator(mode="after")
    def _shift(self) -> HoursConfig:
        if self.opens == self.closes:
            raise ValueError(
                f"opens and closes are both {self.opens}: give the hours staff work (closes "
                "may be after midnight, e.g. opens 22:00 and closes 02:00)"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class KnowledgeConfig(Section):
    faq_path: Path | None = Path("var/faq.toml")
    forms_dir: Path | None = None
    cache_dir: Path | None = Path("var/cache")
    reload_seconds: float = Field(5, gt=0)


class OutboxConfig(Section):
    max_attempts: int = Field(8, ge=1, le=100)
    base_delay_seconds: float = Field(2, gt=0)
    max_delay_seconds: float = Field(600, gt=0)
    poll_seconds: float = Field(1, gt=0)
    concurrency: int = Field(16, ge=1, le=256)


class WebchatConfig(Section):
    enabled: bool = True
    # Secure whatever this says when the request came over HTTPS (directly, or through the
    # reverse proxy's X-Forwarded-Proto), or staff.public_base_url is https.
    cookie_secure: bool = False
    # New conversations one network address may open in ten minutes before it waits, then is
    # refused for ten minutes at twice as many. Visitors behind a mobile operator's shared
    # address count together: raise it for a busy campaign.
    new_sessions_per_address: int = Field(default=60, ge=1, le=100_000)


class TelegramConfig(Section):
    token: str = ""  # secret: give it as TAWASUL_TELEGRAM_TOKEN
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret: str = ""  # secret: TAWASUL_TELEGRAM_WEBHOOK_SECRET
    public_base_url: str = ""  # https://bot.example.org, for `tawasul telegram set-webhook`
    api_base_url: str = "https://api.telegram.org/bot"
    file_base_url: str = "https://api.telegram.org/file/bot"
    staff_group_id: int | None = None
    per_chat_per_second: float = Field(1.0, gt=0)
    global_per_second: float = Field(30.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.token)


class TwilioConfig(Section):
    account_sid: str = ""
    auth_token: str = ""  # secret: TAWASUL_TWILIO_AUTH_TOKEN
    whatsapp_from: str = ""  # e.g. whatsapp:+9665XXXXXXXX
    sms_from: str = ""  # e.g. +9665XXXXXXXX, or a Messaging Service SID (MG...)
    public_base_url: str = ""  # the URL Twilio calls, without the path
    api_base_url: str = "https://api.twilio.com"
    sms_max_parts: int = Field(4, ge=1, le=10)
    whatsapp_window_hours: float = Field(24, gt=0)
    # Approved WhatsApp templates (ContentSid) per notification kind, used outside the window:
    # decision, survey, reminder, notification, staff.
    templates: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token)


class EmailConfig(Section):
    address: str = ""
    username: str = ""
    password: str = ""  # secret: TAWASUL_EMAIL_PASSWORD
    imap_host: str = ""
    imap_port: int = Field(993, ge=1, le=65535)
    imap_security: Literal["none", "starttls", "tls"] = "tls"
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    imap_folder: str = "INBOX"
    processed_folder: str = ""
    poll_seconds: float = Field(60, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.imap_host)


class StaffConfig(Section):
    secret_key: str = ""  # secret: TAWASUL_STAFF_SECRET_KEY (signs sessions and CSRF tokens)
    # Secure whatever this says when the request came over HTTPS (directly, or through the
    # reverse proxy's X-Forwarded-Proto), or public_base_url is https.
    cookie_secure: bool = False
    login_attempts_per_minute: int = Field(5, ge=1)  # failures per account and client address
    # Failures from one client address over every account (password spraying).
    login_attempts_per_address_per_minute: int = Field(20, ge=1)
    notify_emails: list[str] = []
    public_base_url: str = ""  # https://bot.example.org: links to the console in notifications
    reminder_hours_before: float = Field(24, ge=0)  # remind this long before a request is due


class RetentionConfig(Section):
    months: int = Field(24, ge=1, le=1200)  # content of conversations closed this long goes
    run_hours: float = Field(24, gt=0)


class SecurityConfig(Section):
    # secret: TAWASUL_SECURITY_DATA_KEYS, comma-separated; the first encrypts, all decrypt
    data_keys: list[str] = []
    lookup_key: str = ""  # secret: TAWASUL_SECURITY_LOOKUP_KEY (keyed hashes for lookups)
    # production: refuse to start without keys; demo: generate them into key_file;
    # auto: production on PostgreSQL, demo on SQLite
    mode: Literal["auto", "production", "demo"] = "auto"
    key_file: Path = Path("var/tawasul.keys")


class FloodConfig(Section):
    """Per-sender limits on incoming messages (see docs/security.md, Flood control)."""

    window_seconds: float = Field(60, gt=0)
    slow_after: int = Field(40, ge=1)  # messages in the window answered without delay
    slow_seconds: float = Field(2, ge=0)  # then spaced this far apart
    max_wait_seconds: float = Field(20, ge=0)  # a message that would wait longer is a flood
    block_after: int = Field(100, ge=1)  # messages in the window before the sender is ignored
    block_minutes: float = Field(15, gt=0)
    notify_blocked: bool = True  # tell an ignored sender once (catalogue key security.flood)


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


def can_send_mail(email: EmailConfig) -> bool:
    """Whether the bot has an SMTP server and an address of its own to send mail from."""
    return bool(email.smtp_host) and "@" in (email.address or email.username)


def config_warnings(config: Config) -> list[str]:
    """Settings that are valid each on its own but do nothing together, for the operator."""
    warnings = []
    if config.staff.notify_emails and not can_send_mail(config.email):
        warnings.append(
            "staff.notify_emails: no alert will be mailed until [email] smtp_host and "
            "address are set"
        )
    telegram = config.telegram
    if telegram.enabled and telegram.mode == "webhook" and not telegram.webhook_secret:
        warnings.append(
            "telegram.webhook_secret: not set in webhook mode, so every call Telegram makes is "
            "refused and nothing arrives; set TAWASUL_TELEGRAM_WEBHOOK_SECRET, then run "
            "`tawasul telegram set-webhook`"
        )
    if config.twilio.enabled and not config.twilio.public_base_url.strip():
        warnings.append(
            "twilio.public_base_url: not set, so no webhook's signature can be checked and "
            "every WhatsApp and SMS message Twilio posts is refused; set it to the address "
            "Twilio calls (https://bot.example.org, without the path)"
        )
    if config.twilio.enabled and not (config.twilio.whatsapp_from or config.twilio.sms_from):
        warnings.append(
            "twilio: neither whatsapp_from nor sms_from is set, so no reply can leave by "
            "WhatsApp or SMS"
        )
    if config.email.enabled and not config.email.password:
        warnings.append(
            "email.password: not set, so the mailbox will refuse to log in unless the server "
            "takes no password; give it as TAWASUL_EMAIL_PASSWORD"
        )
    forms_dir = config.knowledge.forms_dir
    if forms_dir is not None and not forms_dir.is_dir():
        warnings.append(
            f"knowledge.forms_dir: {forms_dir} is not a folder, so only the built-in forms are used"
        )
    return warnings


# Environment variables of Tawasul's own that are not settings.
OTHER_VARIABLES = frozenset({"TAWASUL_CONFIG", "TAWASUL_PG_BIN"})


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """TAWASUL_* variables that set nothing (a misspelt name is otherwise silently ignored),
    each with the closest setting's name when one is near."""
    from difflib import get_close_matches

    environ = os.environ if environ is None else environ
    known = {
        env_name(section, key)
        for section, model in Config.model_fields.items()
        for key in _section_type(model.annotation).model_fields
    }
    warnings = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name in known or name in OTHER_VARIABLES:
            continue
        close = get_close_matches(name.upper(), sorted(known | OTHER_VARIABLES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{name}: no such setting, ignored{hint}")
    return warnings


def _section_type(annotation: Any) -> type[Section]:
    assert isinstance(annotation, type) and issubclass(annotation, Section)
    return annotation


class Config(Section):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    organization: OrganizationConfig = OrganizationConfig()
    engine: EngineConfig = EngineConfig()
    hours: HoursConfig = HoursConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    outbox: OutboxConfig = OutboxConfig()
    webchat: WebchatConfig = WebchatConfig()
    telegram: TelegramConfig = TelegramConfig()
    twilio: TwilioConfig = TwilioConfig()
    email: EmailConfig = EmailConfig()
    staff: StaffConfig = StaffConfig()
    logging: LoggingConfig = LoggingConfig()
    retention: RetentionConfig = RetentionConfig()
    security: SecurityConfig = SecurityConfig()
    flood: FloodConfig = FloodConfig()

    @model_validator(mode="after")
    def _secure_cookies_over_https(self) -> Config:
        """A site whose public address is https is served over HTTPS: its cookies are never
        sent over plain HTTP, even when the reverse proxy in front says nothing of it."""
        if self.staff.public_base_url.strip().lower().startswith("https://"):
            self.staff = self.staff.model_copy(update={"cookie_secure": True})
            self.webchat = self.webchat.model_copy(update={"cookie_secure": True})
        return self


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    overrides: dict[str, dict[str, str]] = {}
    for section, model in Config.model_fields.items():
        annotation = model.annotation
        assert isinstance(annotation, type) and issubclass(annotation, Section)
        for key in annotation.model_fields:
            name = env_name(section, key)
            if name in environ:
                overrides.setdefault(section, {})[key] = environ[name]
    return overrides


def _env_value(raw: str) -> Any:
    """Environment values are text; a JSON object or list is read as one, and a list may
    also be given comma-separated (``sunday,monday``)."""
    stripped = raw.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return raw
    return raw


def env_name(section: str, key: str) -> str:
    """The environment variable that sets ``[section] key``."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


def describe(
    error: ValidationError, source: str, from_env: Mapping[tuple[str, str], str] | None = None
) -> str:
    """One line per wrong key, labelled with where its value came from: the environment
    variable that set it (``from_env``), else the file (or the defaults)."""
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        key = ".".join(loc)
        where = (from_env or {}).get((loc[0], loc[1]), source) if len(loc) > 1 else source
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {key!r}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {key}: {message}")
    return "\n".join(lines)


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (when there is one), then apply the environment on top."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = str(path) if path else "defaults"
    if path is not None:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    from_env: dict[tuple[str, str], str] = {}
    for section, values in _env_overrides(environ).items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, raw in values.items():
            target[key] = _env_value(raw)
            from_env[(section, key)] = env_name(section, key)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source, from_env)) from None


def config_path(option: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """--config, else TAWASUL_CONFIG, else ./tawasul.toml when it exists."""
    environ = os.environ if environ is None else environ
    if option:
        return Path(option)
    if environ.get("TAWASUL_CONFIG"):
        return Path(environ["TAWASUL_CONFIG"])
    default = Path("tawasul.toml")
    return default if default.exists() else None

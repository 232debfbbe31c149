"""Settings read once from the environment (12-factor), as API.md's configuration table says.

Secrets are held in :class:`starlette.datastructures.Secret`, whose ``repr`` never shows the value.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.config import Config
from starlette.datastructures import Secret


class ConfigError(ValueError):
    """A setting is present but unusable (the message never contains the value)."""


def _decode_key(name: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} must be base64 of 32 bytes") from exc
    if len(key) != 32:
        raise ConfigError(f"{name} must be base64 of 32 bytes (got {len(key)} bytes)")
    return key


LOG_FORMATS = ("text", "json")


def parse_log_format(value: str | None) -> str:
    """``LOG_FORMAT``: ``text`` (default) or ``json`` (one JSON object per line)."""
    chosen = (value or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT must be text or json")
    return chosen


DEFAULT_RETENTION_DAYS = 30


def parse_retention_days(value: str | None) -> int:
    """``RETENTION_DAYS``: days a delivered event keeps its message content (default 30);
    ``0`` erases every delivered event's content at the next purge."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_RETENTION_DAYS
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise ConfigError("RETENTION_DAYS must be a whole number of days")
    days = int(text)
    if days < 0:
        raise ConfigError("RETENTION_DAYS must be 0 or more")
    return days


@dataclass(frozen=True)
class Settings:
    """Everything the web and worker processes read from the environment."""

    port: int = 8000
    database_url: str = "sqlite:///wootbridge.db"
    redis_url: str | None = None
    encryption_key: Secret | None = None
    encryption_keys_old: tuple[Secret, ...] = ()
    public_url: str = "http://localhost:8000"
    chatwoot_enabled: bool = True
    allow_private_urls: bool = False
    set_wait_seconds: float = 55.0
    live_check_seconds: float = 3.0
    rate_limit_per_minute: int = 100
    rate_limit_new_instance_per_minute: int = 20
    remote_retry_attempts: int = 3
    remote_retry_max_wait: float = 2.0
    remote_timeout_seconds: float = 15.0
    unconfirmed_send_seconds: float = 60.0
    queue_namespace: str = "wootbridge"
    log_format: str = "text"
    retention_days: int = DEFAULT_RETENTION_DAYS
    template_sync_debounce_seconds: float = 10.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def chatwoot_module_enabled(self) -> bool:
        """The module answers only when switched on and secrets can be encrypted."""
        return self.chatwoot_enabled and self.encryption_key is not None

    def current_key(self) -> bytes | None:
        if self.encryption_key is None:
            return None
        return _decode_key("ENCRYPTION_KEY", str(self.encryption_key))

    def old_keys(self) -> list[bytes]:
        return [_decode_key("ENCRYPTION_KEYS_OLD", str(k)) for k in self.encryption_keys_old]

    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``), validating keys early."""
        config = Config(environ=dict(os.environ if environ is None else environ))
        port = config("PORT", cast=int, default=8000)
        key_text = config("ENCRYPTION_KEY", cast=str, default="").strip()
        old_text = config("ENCRYPTION_KEYS_OLD", cast=str, default="")
        settings = cls(
            port=port,
            database_url=config("DATABASE_URL", cast=str, default="sqlite:///wootbridge.db"),
            redis_url=config("REDIS_URL", cast=str, default="") or None,
            encryption_key=Secret(key_text) if key_text else None,
            encryption_keys_old=tuple(
                Secret(part.strip()) for part in old_text.split(",") if part.strip()
            ),
            public_url=config("PUBLIC_URL", cast=str, default=f"http://localhost:{port}").rstrip(
                "/"
            ),
            chatwoot_enabled=config("CHATWOOT_ENABLED", cast=bool, default=True),
            allow_private_urls=config("ALLOW_PRIVATE_URLS", cast=bool, default=False),
            set_wait_seconds=config("SET_WAIT_SECONDS", cast=float, default=55.0),
            live_check_seconds=config("LIVE_CHECK_SECONDS", cast=float, default=3.0),
            rate_limit_per_minute=config("RATE_LIMIT_PER_MINUTE", cast=int, default=100),
            rate_limit_new_instance_per_minute=config(
                "RATE_LIMIT_NEW_INSTANCE_PER_MINUTE", cast=int, default=20
            ),
            remote_retry_attempts=config("REMOTE_RETRY_ATTEMPTS", cast=int, default=3),
            remote_retry_max_wait=config("REMOTE_RETRY_MAX_WAIT", cast=float, default=2.0),
            remote_timeout_seconds=config("REMOTE_TIMEOUT_SECONDS", cast=float, default=15.0),
            unconfirmed_send_seconds=config("UNCONFIRMED_SEND_SECONDS", cast=float, default=60.0),
            queue_namespace=config("QUEUE_NAMESPACE", cast=str, default="wootbridge"),
            log_format=parse_log_format(config("LOG_FORMAT", cast=str, default="text")),
            retention_days=parse_retention_days(config("RETENTION_DAYS", cast=str, default="")),
            template_sync_debounce_seconds=config(
                "TEMPLATE_SYNC_DEBOUNCE_SECONDS", cast=float, default=10.0
            ),
        )
        settings.current_key()
        settings.old_keys()
        return settings


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings.from_environ()
    return _current


def use_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests, and ``wootbridge dev`` after it prepares the env).

    ``None`` forgets them so that the next :func:`get_settings` reads the environment again.
    """
    global _current
    _current = settings

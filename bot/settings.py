"""Deployment settings from the environment and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.i18n import SUPPORTED_LANGUAGES, normalise_language
from bot.org.org_file import DEFAULT_ORG_FILE

# What a person has to set, by field name: the sentence we print when one is wrong.
_HINTS = {
    "telegram_bot_token": "TELEGRAM_BOT_TOKEN (the token @BotFather gave you, like 123456:ABC-DEF…)",
    "telegram_api_base_url": "TELEGRAM_API_BASE_URL (an http(s) URL ending in /bot)",
    "telegram_file_base_url": "TELEGRAM_FILE_BASE_URL (an http(s) URL ending in /file/bot)",
    "database_url": "DATABASE_URL (sqlite:///griddesk.db or postgresql://user@host/db)",
    "org_file": "GRIDDESK_ORG_FILE (the path of an existing organisation file)",
    "media_dir": "GRIDDESK_MEDIA_DIR (a folder for photos)",
    "admin_ids": "GRIDDESK_ADMIN_IDS (comma-separated numeric Telegram user ids, like 12345,67890)",
    "timezone": "GRIDDESK_TIMEZONE (an IANA time zone such as Asia/Shanghai)",
    "default_language": f"GRIDDESK_DEFAULT_LANGUAGE (one of {', '.join(SUPPORTED_LANGUAGES)})",
    "webhook_secret": "GRIDDESK_WEBHOOK_SECRET (1-256 characters: A-Z, a-z, 0-9, _ and -)",
}


class SettingsError(Exception):
    """A setting is missing or malformed; str() is one sentence saying what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: str = Field(default="", validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str = Field(default="https://api.telegram.org/bot", validation_alias="TELEGRAM_API_BASE_URL")
    telegram_file_base_url: str = Field(
        default="https://api.telegram.org/file/bot", validation_alias="TELEGRAM_FILE_BASE_URL"
    )
    database_url: str = Field(default="sqlite:///griddesk.db", validation_alias="DATABASE_URL")
    org_file: Path = Field(default=DEFAULT_ORG_FILE, validation_alias="GRIDDESK_ORG_FILE")
    media_dir: Path = Field(default=Path("media"), validation_alias="GRIDDESK_MEDIA_DIR")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset(), validation_alias="GRIDDESK_ADMIN_IDS")
    timezone: str = Field(default="Asia/Shanghai", validation_alias="GRIDDESK_TIMEZONE")
    default_language: str = Field(default="zh_CN", validation_alias="GRIDDESK_DEFAULT_LANGUAGE")
    invite_ttl_hours: int = Field(default=72, ge=1, validation_alias="GRIDDESK_INVITE_TTL_HOURS")
    duplicate_radius_m: float = Field(default=50, gt=0, validation_alias="GRIDDESK_DUPLICATE_RADIUS_M")
    duplicate_window_days: float = Field(default=7, gt=0, validation_alias="GRIDDESK_DUPLICATE_WINDOW_DAYS")
    report_idle_minutes: int = Field(default=30, ge=1, validation_alias="GRIDDESK_REPORT_IDLE_MINUTES")
    resident_reports_per_hour: int = Field(default=5, ge=1, validation_alias="GRIDDESK_RESIDENT_REPORTS_PER_HOUR")
    worker_reports_per_hour: int = Field(default=60, ge=1, validation_alias="GRIDDESK_WORKER_REPORTS_PER_HOUR")
    verify_hours: float = Field(default=48, gt=0, validation_alias="GRIDDESK_VERIFY_HOURS")
    rating_link_days: float = Field(default=30, gt=0, validation_alias="GRIDDESK_RATING_LINK_DAYS")
    rating_reminder_hours: float = Field(default=24, gt=0, validation_alias="GRIDDESK_RATING_REMINDER_HOURS")
    rate_limit: bool = Field(default=True, validation_alias="GRIDDESK_RATE_LIMIT")
    webhook_secret: str | None = Field(default=None, validation_alias="GRIDDESK_WEBHOOK_SECRET")
    # /map's base tiles (off when unset): an XYZ URL such as https://tile.example/{z}/{x}/{y}.png
    map_tile_url: str | None = Field(default=None, validation_alias="GRIDDESK_MAP_TILE_URL")
    webhook_listen: str = Field(default="0.0.0.0", validation_alias="GRIDDESK_WEBHOOK_LISTEN")
    webhook_port: int = Field(default=8443, ge=1, le=65535, validation_alias="GRIDDESK_WEBHOOK_PORT")
    # A local Bot API server (--local) answers getFile with a path on its own disk: only then
    # may the bot read a file_path as a local file (otherwise it is refused as forged).
    local_bot_api: bool = Field(default=False, validation_alias="GRIDDESK_LOCAL_BOT_API")
    # At start-up the Bot API is asked again until it answers (a service manager's restart
    # would do no better); a positive value gives up after that many seconds instead.
    bot_api_wait_s: float = Field(default=0, ge=0, validation_alias="GRIDDESK_BOT_API_WAIT_S")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            ids = []
            for part in parts:
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"{part!r} is not a numeric user id")
                ids.append(int(part))
            return frozenset(ids)
        return value

    @field_validator("telegram_api_base_url", "telegram_file_base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("default_language")
    @classmethod
    def _check_language(cls, value: str) -> str:
        lang = normalise_language(value)
        if lang is None:
            raise ValueError(f"unsupported language {value!r}")
        return lang

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) > 256 or not all(c.isalnum() or c in "_-" for c in value):
            raise ValueError("has characters Telegram does not allow")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def require_token(self) -> None:
        token = self.telegram_bot_token.strip()
        if not token:
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN is not set: set it to the token @BotFather gave you "
                "(in the environment or in a .env file)."
            )
        bot_id, _, secret = token.partition(":")
        if not bot_id.isdigit() or not secret:
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN looks malformed: set it to the whole token @BotFather gave "
                "you, like 123456:ABC-DEF…"
            )

    def require_org_file(self) -> None:
        if not self.org_file.is_file():
            raise SettingsError(
                f"GRIDDESK_ORG_FILE points to {str(self.org_file)!r}, which is not a file: "
                "set it to the path of your organisation file, or unset it for the sample."
            )


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad value becomes one SettingsError sentence, not a traceback."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        name = _field_to_env(field)
        hint = _HINTS.get(_env_to_field(field), name)
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name} is not valid ({reason}): set {hint}.") from None


def _field_to_env(field: str) -> str:
    for name, info in Settings.model_fields.items():
        if field in (name, info.validation_alias):
            return str(info.validation_alias or name.upper())
    return field.upper()


def _env_to_field(field: str) -> str:
    for name, info in Settings.model_fields.items():
        if field in (name, info.validation_alias):
            return name
    return field

"""Settings from the environment or a `.env` file in the working directory.

A missing or malformed setting stops start-up with one clear line (SettingsError).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from flows.broadcast import BroadcastConfig
from flows.privacy import PrivacyConfig
from flows.reminders import ReminderConfig

TOKEN_RE = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{20,}$")
DEFAULT_DB = "sqlite:///motcua.db"


class SettingsError(Exception):
    """One line that says which setting is wrong and how to fix it."""


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: str | None
    telegram_api_base_url: str | None
    database_url: str
    timezone: str
    procedures_dirs: tuple[Path, ...]
    log_level: str
    # the officer side (all empty: officers are not configured, requests are only recorded)
    communes_file: Path | None = None
    officer_chat_id: int | None = None
    officer_ids: tuple[str, ...] = ()
    reannounce_minutes: int = 30
    # reminders (MOTCUA_REMINDER*, MOTCUA_QUIET_HOURS; flows/reminders.py)
    reminders: ReminderConfig = ReminderConfig()
    # personal data (MOTCUA_DATA_KEY*, MOTCUA_RETENTION_*; flows/privacy.py)
    privacy: PrivacyConfig = PrivacyConfig()
    # broadcasts (MOTCUA_BROADCAST_*; flows/broadcast.py)
    broadcast: BroadcastConfig = BroadcastConfig()
    # operations (bot/ops.py): log format, /healthz and /metrics in polling mode
    log_format: str = "text"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # outbound pacing (bot/pacing.py): seconds between two messages to one private chat,
    # to one group, and messages per second overall; 0 switches that limit off
    pacing: tuple[float, float, float] = (1.0, 3.0, 25.0)
    # concurrency (bot/telegram.py): updates handled at once (MOTCUA_CONCURRENT_UPDATES) and
    # the threads running the conversation service (MOTCUA_WORKER_THREADS, 0: asyncio's
    # default, min(32, CPUs + 4))
    concurrent_updates: int = 24
    worker_threads: int = 0
    # processes making the declaration PDFs (MOTCUA_PDF_WORKERS; flows/pdfworker.py), 0: the
    # bot's own process
    pdf_workers: int = 1

    @property
    def officers_configured(self) -> bool:
        return self.communes_file is not None or self.officer_chat_id is not None

    @property
    def base_url(self) -> str | None:
        """python-telegram-bot's `base_url` for a local Bot API server."""
        if not self.telegram_api_base_url:
            return None
        return self.telegram_api_base_url.rstrip("/") + "/bot"

    @property
    def base_file_url(self) -> str | None:
        if not self.telegram_api_base_url:
            return None
        return self.telegram_api_base_url.rstrip("/") + "/file/bot"


def _env(env_file: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    path = env_file if env_file is not None else Path.cwd() / ".env"
    if path.is_file():
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    values.update(os.environ)  # the real environment wins over the file
    return values


def load_settings(*, require_token: bool = False, env_file: Path | None = None) -> Settings:
    env = _env(env_file)
    token = (env.get("TELEGRAM_BOT_TOKEN") or "").strip() or None
    if require_token and not token:
        raise SettingsError(
            "TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather and put "
            "TELEGRAM_BOT_TOKEN=... in the environment or in .env"
        )
    if token and not TOKEN_RE.match(token):
        raise SettingsError(
            "TELEGRAM_BOT_TOKEN is malformed: expected digits, a colon and the secret "
            "(like 123456:ABC-DEF...)"
        )
    base = (env.get("TELEGRAM_API_BASE_URL") or "").strip() or None
    if base and not re.match(r"^https?://[^\s/]+", base):
        raise SettingsError(
            f"TELEGRAM_API_BASE_URL is malformed: expected http(s)://host[:port], got {base!r}"
        )
    db = (env.get("DATABASE_URL") or "").strip() or DEFAULT_DB
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", db):
        raise SettingsError(
            "DATABASE_URL is malformed: use sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/dbname"
        )
    tz = (env.get("MOTCUA_TIMEZONE") or "").strip() or "Asia/Ho_Chi_Minh"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"MOTCUA_TIMEZONE is not a known time zone: {tz!r} (e.g. Asia/Ho_Chi_Minh)"
        ) from None
    dirs = tuple(
        Path(p) for p in (env.get("MOTCUA_PROCEDURES_DIRS") or "").split(os.pathsep) if p.strip()
    )
    for d in dirs:
        if not d.is_dir():
            raise SettingsError(f"MOTCUA_PROCEDURES_DIRS: {d} is not a folder")
    level = (env.get("MOTCUA_LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(
            f"MOTCUA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
        )
    communes_file, officer_chat_id, officer_ids, reannounce = _officer_settings(env)
    log_format, metrics_port, metrics_host = _ops_settings(env)
    pacing = _pacing_settings(env)
    concurrent_updates = _int_setting(env, "MOTCUA_CONCURRENT_UPDATES", 24, 1, 256)
    worker_threads = _int_setting(env, "MOTCUA_WORKER_THREADS", 0, 0, 256)
    pdf_workers = _int_setting(env, "MOTCUA_PDF_WORKERS", 1, 0, 8)
    try:
        reminders = ReminderConfig.from_env(env)
        privacy = PrivacyConfig.from_env(env)
        broadcast = BroadcastConfig.from_env(env)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return Settings(
        communes_file=communes_file,
        officer_chat_id=officer_chat_id,
        officer_ids=officer_ids,
        reannounce_minutes=reannounce,
        reminders=reminders,
        privacy=privacy,
        broadcast=broadcast,
        telegram_bot_token=token,
        telegram_api_base_url=base,
        database_url=db,
        timezone=tz,
        procedures_dirs=dirs,
        log_level=level,
        log_format=log_format,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        pacing=pacing,
        concurrent_updates=concurrent_updates,
        worker_threads=worker_threads,
        pdf_workers=pdf_workers,
    )


def _int_setting(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _pacing_settings(env: dict[str, str]) -> tuple[float, float, float]:
    """MOTCUA_PACE_CHAT_SECONDS, MOTCUA_PACE_GROUP_SECONDS, MOTCUA_PACE_PER_SECOND."""
    values = []
    for name, default in (
        ("MOTCUA_PACE_CHAT_SECONDS", 1.0),
        ("MOTCUA_PACE_GROUP_SECONDS", 3.0),
        ("MOTCUA_PACE_PER_SECOND", 25.0),
    ):
        raw = (env.get(name) or "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = -1.0
        if not 0 <= value <= 3600:
            raise SettingsError(
                f"{name} must be a number from 0 to 3600 (0: no limit), got {raw!r}"
            )
        values.append(value)
    return values[0], values[1], values[2]


def _officer_settings(env: dict[str, str]) -> tuple[Path | None, int | None, tuple[str, ...], int]:
    raw_file = (env.get("MOTCUA_COMMUNES_FILE") or "").strip()
    communes_file = Path(raw_file).expanduser() if raw_file else None
    if communes_file is not None and not communes_file.is_file():
        raise SettingsError(f"MOTCUA_COMMUNES_FILE: {communes_file} is not a file")
    raw_chat = (env.get("OFFICER_CHAT_ID") or "").strip()
    chat_id = None
    if raw_chat:
        if not re.fullmatch(r"-\d{1,20}", raw_chat):
            raise SettingsError(
                f"OFFICER_CHAT_ID must be the officers' group id, a negative number "
                f"(like -1001234567890), got {raw_chat!r}"
            )
        chat_id = int(raw_chat)
    raw_ids = (env.get("OFFICER_IDS") or "").strip()
    ids = tuple(p.strip() for p in raw_ids.split(",") if p.strip())
    bad = [p for p in ids if not p.isdigit()]
    if bad:
        raise SettingsError(
            f"OFFICER_IDS must be Telegram user ids separated by commas "
            f"(like 111111111,222222222), got {bad[0]!r}"
        )
    if communes_file is not None and (chat_id is not None or ids):
        raise SettingsError(
            "set either MOTCUA_COMMUNES_FILE (several communes) or OFFICER_CHAT_ID and "
            "OFFICER_IDS (one commune), not both"
        )
    if (chat_id is None) != (not ids):
        raise SettingsError(
            "OFFICER_CHAT_ID and OFFICER_IDS go together: the officers' group id and "
            "the officers' Telegram user ids"
        )
    raw_minutes = (env.get("MOTCUA_REANNOUNCE_MINUTES") or "").strip() or "30"
    if not raw_minutes.isdigit() or not 1 <= int(raw_minutes) <= 1440:
        raise SettingsError(
            f"MOTCUA_REANNOUNCE_MINUTES must be a number of working minutes from 1 to 1440, "
            f"got {raw_minutes!r}"
        )
    return communes_file, chat_id, ids, int(raw_minutes)


def _ops_settings(env: dict[str, str]) -> tuple[str, int | None, str]:
    log_format = (env.get("MOTCUA_LOG_FORMAT") or "text").strip().lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"MOTCUA_LOG_FORMAT must be text or json, got {log_format!r}")
    raw_port = (env.get("MOTCUA_METRICS_PORT") or "").strip()
    port = None
    if raw_port:
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            raise SettingsError(
                f"MOTCUA_METRICS_PORT must be a TCP port from 1 to 65535, got {raw_port!r}"
            )
        port = int(raw_port)
    host = (env.get("MOTCUA_METRICS_HOST") or "").strip() or "127.0.0.1"
    return log_format, port, host

"""Composition root: settings -> store, catalog, service."""

from __future__ import annotations

import logging
import threading

from bot.settings import Settings, SettingsError
from flows import pdfworker
from flows.service import ConversationService
from procedures.loader import load_catalog
from storage.crypto import DataKeyError
from storage.store import Store


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr at `level`, as text or one JSON object per line (`fmt="json"`)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        from bot.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)  # warnings become JSON lines too
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    # httpx logs every request URL, which contains the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # at DEBUG python-telegram-bot logs every request's parameters and every update (what
    # people typed) and its base URL (the token): never below INFO
    for name in ("telegram", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    logging.getLogger("fontTools").setLevel(logging.WARNING)


# Set once the bot takes updates (bot/telegram.py `prepare_bot`). The warm-up waits for it
# (at most WARM_UP_WAIT_S): a second thread busy with reference data slows start-up itself
# down, both wanting the GIL (README, Performance).
STARTED = threading.Event()
WARM_UP_WAIT_S = 5.0


def warm_up_in_background() -> threading.Thread:
    """Build the administrative-unit indexes (and the old -> new conversion tables, about
    a second) off the start-up path, so the first reply is not kept waiting. (The PDF
    workers start when a citizen first reaches the review: flows/pdfworker.py.)"""
    from procedures import units

    def warm_up() -> None:
        STARTED.wait(WARM_UP_WAIT_S)
        units.warm_up()

    thread = threading.Thread(target=warm_up, name="units-warm-up", daemon=True)
    thread.start()
    return thread


def build_officers(settings: Settings, catalog):
    """The officer side from the settings, or None when no officer is configured.
    A directory that cannot be used stops start-up with one line (SettingsError)."""
    if not settings.officers_configured:
        return None
    from flows.communes import DirectoryError, load_directory, one_commune
    from flows.officer import OfficerDesk

    try:
        if settings.communes_file is not None:
            directory = load_directory(settings.communes_file, settings.timezone)
        else:
            assert settings.officer_chat_id is not None
            directory = one_commune(
                settings.officer_chat_id, settings.officer_ids, settings.timezone
            )
    except DirectoryError as exc:
        raise SettingsError(f"MOTCUA_COMMUNES_FILE: {exc}") from None
    return OfficerDesk(directory, catalog, reannounce_minutes=settings.reannounce_minutes)


def build_service(settings: Settings, *, upgrade: bool = True) -> ConversationService:
    catalog = load_catalog(settings.procedures_dirs)
    officers = build_officers(settings, catalog)
    try:
        keyring = settings.privacy.keyring()
    except DataKeyError as exc:
        raise SettingsError(str(exc)) from None
    store = Store(settings.database_url, keyring=keyring)
    if upgrade:
        store.upgrade()
    pdfworker.configure(settings.pdf_workers)  # PDFs made in child processes
    warm_up_in_background()
    from flows.reminders import Reminders

    reminders = Reminders(store, catalog, timezone=settings.timezone, config=settings.reminders)
    if officers is not None:  # /thongbao (flows/broadcast.py; sent by bot/broadcast.py)
        from flows.broadcast import Broadcasts

        officers.broadcasts = Broadcasts(store, catalog, officers, settings.broadcast)
    return ConversationService(
        store,
        catalog,
        timezone=settings.timezone,
        officers=officers,
        reminders=reminders,
        privacy=settings.privacy,
    )

"""Composition root: settings -> store, catalog, service."""

from __future__ import annotations

import logging
import threading

from bot.settings import Settings, SettingsError
from flows.service import ConversationService
from procedures.loader import load_catalog
from storage.store import Store


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL, which contains the bot token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.WARNING)


def warm_up_in_background() -> threading.Thread:
    """Build the administrative-unit indexes (and the old -> new conversion tables, about
    a second) off the start-up path, so the first reply is not kept waiting."""
    from procedures import units

    thread = threading.Thread(target=units.warm_up, name="units-warm-up", daemon=True)
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
    store = Store(settings.database_url)
    if upgrade:
        store.upgrade()
    warm_up_in_background()
    from flows.reminders import Reminders

    reminders = Reminders(store, catalog, timezone=settings.timezone, config=settings.reminders)
    return ConversationService(
        store, catalog, timezone=settings.timezone, officers=officers, reminders=reminders
    )

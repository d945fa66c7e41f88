"""Composition root: settings -> store, catalog, service."""

from __future__ import annotations

import logging
import threading

from bot.settings import Settings
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


def build_service(settings: Settings, *, upgrade: bool = True) -> ConversationService:
    catalog = load_catalog(settings.procedures_dirs)
    store = Store(settings.database_url)
    if upgrade:
        store.upgrade()
    warm_up_in_background()
    return ConversationService(store, catalog, timezone=settings.timezone)

"""Composition root: settings -> store, catalog, service."""

from __future__ import annotations

import logging

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


def build_service(settings: Settings, *, upgrade: bool = True) -> ConversationService:
    catalog = load_catalog(settings.procedures_dirs)
    store = Store(settings.database_url)
    if upgrade:
        store.upgrade()
    return ConversationService(store, catalog, timezone=settings.timezone)

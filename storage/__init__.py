"""Storage: SQLite (embedded default) or PostgreSQL, behind the Store interface."""

from storage.store import (
    CitizenRec,
    DraftRec,
    FactRec,
    StaleVersion,
    Store,
    UnitOfWork,
)

__all__ = ["CitizenRec", "DraftRec", "FactRec", "StaleVersion", "Store", "UnitOfWork"]

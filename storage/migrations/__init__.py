"""Alembic migrations for the storage tables (run through storage.store.Store.upgrade)."""

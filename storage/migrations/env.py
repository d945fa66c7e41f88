"""Alembic environment, configured in code by storage.db.alembic_config (no alembic.ini).

Store.upgrade passes its open connection in `config.attributes["connection"]`; otherwise
the URL comes from the `sqlalchemy.url` main option.
"""

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import storage.broadcast  # noqa: F401  (the broadcast tables, revision 0005)
import storage.inbox  # noqa: F401  (the inbox table, revision 0006)
import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import storage.reminders  # noqa: F401  (the reminder tables, revision 0003)
from storage.crypto import EncryptedJSON, EncryptedText
from storage.db import make_engine
from storage.models import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our column types as plain SQLAlchemy types, so revisions import nothing of ours."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EncryptedJSON):
        return "sa.JSON()"
    if type_ == "type" and isinstance(obj, EncryptedText):
        return "sa.String()"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            run_migrations(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

"""Tables.

A draft is an indexed row (who, which procedure, status, stage) plus a JSON payload that
belongs to the flow engine and carries its own schema version, so a changed procedure needs
no table migration. Facts are an append-only record of what happened.

Timestamps are timezone-aware UTC datetimes in Python on every database (see UTCDateTime).
JSON columns use the plain JSON type on every database: it keeps the payload text as written,
key order included (JSONB would reorder keys); nothing queries inside the payload.

Personal data is encrypted at rest (storage/crypto.py, revision 0007): EncryptedJSON and
EncryptedText columns hold Fernet tokens. Columns that are indexed or queried (ids,
statuses, times, the channel's chat id) stay plain and carry no answers.

The schema itself is created by the Alembic migrations in storage/migrations, which must
match these models (tests/test_store.py checks that).
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storage.crypto import EncryptedJSON, EncryptedText

# Named constraints keep future SQLite batch migrations (which rebuild tables) workable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC, always read back as an aware UTC datetime.

    PostgreSQL keeps it in a `timestamptz`; SQLite keeps the naive UTC wall time as text
    (fixed width, so text order is time order). Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Citizen(SQLModel, table=True):
    """A person as one channel knows them (a Telegram chat, the terminal)."""

    __tablename__ = "citizen"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    external_id: str
    display_name: str = Field(default="", sa_type=EncryptedText, nullable=False)
    username: str = Field(default="", sa_type=EncryptedText, nullable=False)
    session: dict[str, Any] = Field(default_factory=dict, sa_type=EncryptedJSON, nullable=False)
    timezone: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    version: int = 1


class Draft(SQLModel, table=True):
    """One application in progress (or finished). `payload` is the engine's state."""

    __tablename__ = "draft"
    __table_args__ = (
        UniqueConstraint("short_id"),
        Index("ix_draft_citizen_status_updated", "citizen_id", "status", "updated_at"),
        Index("ix_draft_status_updated", "status", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    short_id: str = Field(max_length=6)
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    procedure_id: str
    procedure_version: int
    status: str
    stage: str
    # a short label such as the subject's name: personal, never logged
    subject: str = Field(default="", sa_type=EncryptedText, nullable=False)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=EncryptedJSON, nullable=False)
    dossier_code: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    version: int = 1


class Fact(SQLModel, table=True):
    """Append-only: something that happened (AnswerStored, HandoffRequested, ...)."""

    __tablename__ = "fact"

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    draft_id: int | None = Field(
        default=None, foreign_key="draft.id", index=True, ondelete="CASCADE"
    )
    kind: str = Field(index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=EncryptedJSON, nullable=False)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


class Handoff(SQLModel, table=True):
    """A case: a citizen asked for a commune officer. Who owns the conversation follows
    from `status`: "claimed" means an officer does (the bot stays quiet), "open" means it
    waits for one while the bot goes on; "closed" and "withdrawn" are over.

    `version` grows with every change, so a claim is one conditional UPDATE (the first
    officer wins). `claimed_by` is the officer's id in the channel (a Telegram user id)."""

    __tablename__ = "handoff"
    __table_args__ = (
        Index("ix_handoff_status_created", "status", "created_at"),
        Index("ix_handoff_group_topic", "group_chat_id", "topic_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    draft_id: int | None = Field(default=None, foreign_key="draft.id", ondelete="SET NULL")
    reason: str
    status: str = "open"
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    claimed_by: str | None = None
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # the officer side (revision 0002)
    commune_code: int | None = None  # 2025 unit code; None: the default commune
    step: str | None = None  # where the citizen was: a field id or a stage
    claimed_by_name: str | None = Field(default=None, sa_type=EncryptedText, nullable=True)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    group_chat_id: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    group_message_id: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    topic_id: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    # personal: never logged
    callback_phone: str | None = Field(default=None, sa_type=EncryptedText, nullable=True)
    callback_slot: str | None = None  # "2026-11-30T07:30/11:30", local office time
    callback_done_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    announce_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Audit(SQLModel, table=True):
    """Append-only: what an officer did to a case (claim, view, edit, relay, close...).
    `details` never carries personal data (a field id, a message kind, not a value)."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    actor: str  # the officer's id in the channel
    actor_name: str = Field(default="", sa_type=EncryptedText, nullable=False)
    action: str = Field(index=True)
    handoff_id: int | None = Field(
        default=None, foreign_key="handoff.id", index=True, ondelete="SET NULL"
    )
    draft_id: int | None = Field(default=None, foreign_key="draft.id", ondelete="SET NULL")
    details: dict[str, Any] = Field(default_factory=dict, sa_type=EncryptedJSON, nullable=False)

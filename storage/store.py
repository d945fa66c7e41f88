"""The storage interface the conversation service uses.

Records are plain dataclasses, detached from any session: the caller may keep and mutate
them after the unit of work has closed, and hands them back to `save_*` to write them.
Saves are optimistic: `UPDATE ... WHERE id = ? AND version = ?`; if no row matched, another
process changed the row since it was read and `StaleVersion` is raised.

Statements go through a SQLModel session as Core statements on the tables, so there is no
identity map to go stale and every JSON value is serialized afresh on each write.
"""

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from alembic import command
from sqlalchemy import Table, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlmodel import Session

from storage.db import alembic_config, make_engine
from storage.models import Citizen, Draft, Fact, Handoff

DRAFT_STATUSES = frozenset({"active", "completed", "submitted", "cancelled", "exited"})
SHORT_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
SHORT_ID_LENGTH = 6
_SHORT_ID_RE = re.compile(r"[a-z0-9]{6}")

_CITIZEN: Table = Citizen.__table__  # type: ignore[attr-defined]
_DRAFT: Table = Draft.__table__  # type: ignore[attr-defined]
_FACT: Table = Fact.__table__  # type: ignore[attr-defined]
_HANDOFF: Table = Handoff.__table__  # type: ignore[attr-defined]


@dataclass
class CitizenRec:
    id: int
    channel: str
    external_id: str
    display_name: str
    username: str
    session: dict
    timezone: str | None
    created_at: datetime
    last_seen_at: datetime
    version: int


@dataclass
class DraftRec:
    id: int | None
    short_id: str
    citizen_id: int
    procedure_id: str
    procedure_version: int
    status: str
    stage: str
    subject: str  # personal: never log it
    payload: dict
    dossier_code: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass
class FactRec:
    kind: str
    data: dict
    citizen_id: int
    draft_id: int | None
    at: datetime


class StaleVersion(Exception):
    """The row changed since it was read (another process won)."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return value.astimezone(UTC)


def _check_status(status: str) -> None:
    if status not in DRAFT_STATUSES:
        raise ValueError(f"unknown draft status {status!r}")


def _citizen_rec(row: Row[Any]) -> CitizenRec:
    return CitizenRec(**row._mapping)


def _draft_rec(row: Row[Any]) -> DraftRec:
    return DraftRec(**row._mapping)


class UnitOfWork:
    """One transaction. Use it as a context manager; nothing is kept unless `commit()` runs.

    Leaving the block without committing (or with an exception) rolls back. After a commit
    the unit of work may go on; later changes again need a commit.
    """

    def __init__(self, session: Session) -> None:
        self._s = session

    def __enter__(self) -> "UnitOfWork":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._s.rollback()
        finally:
            self._s.close()

    def commit(self) -> None:
        self._s.commit()

    # ------------------------------------------------------------------------- citizens

    def citizen(self, channel: str, external_id: str) -> CitizenRec | None:
        stmt = select(_CITIZEN).where(
            _CITIZEN.c.channel == channel, _CITIZEN.c.external_id == external_id
        )
        row = self._s.exec(stmt).first()
        return _citizen_rec(row) if row is not None else None

    def citizen_by_id(self, citizen_id: int) -> CitizenRec | None:
        row = self._s.exec(select(_CITIZEN).where(_CITIZEN.c.id == citizen_id)).first()
        return _citizen_rec(row) if row is not None else None

    def add_citizen(
        self, channel: str, external_id: str, display_name: str, username: str, now: datetime
    ) -> CitizenRec:
        now = _utc(now)
        values: dict[str, Any] = {
            "channel": channel,
            "external_id": external_id,
            "display_name": display_name,
            "username": username,
            "session": {},
            "timezone": None,
            "created_at": now,
            "last_seen_at": now,
            "version": 1,
        }
        result = self._s.exec(insert(_CITIZEN).values(values))
        return CitizenRec(id=result.inserted_primary_key[0], **values)

    def save_citizen(self, rec: CitizenRec) -> None:
        """Write the mutable fields (names, session, timezone, last_seen_at); bump version."""
        stmt = (
            update(_CITIZEN)
            .where(_CITIZEN.c.id == rec.id, _CITIZEN.c.version == rec.version)
            .values(
                display_name=rec.display_name,
                username=rec.username,
                session=dict(rec.session),
                timezone=rec.timezone,
                last_seen_at=_utc(rec.last_seen_at),
                version=rec.version + 1,
            )
        )
        if self._s.exec(stmt).rowcount != 1:
            raise StaleVersion(f"citizen {rec.id} is no longer at version {rec.version}")
        rec.version += 1

    # --------------------------------------------------------------------------- drafts

    def drafts_of(self, citizen_id: int, statuses: Iterable[str] | None = None) -> list[DraftRec]:
        """The citizen's drafts, most recently updated first."""
        stmt = select(_DRAFT).where(_DRAFT.c.citizen_id == citizen_id)
        if statuses is not None:
            wanted = [statuses] if isinstance(statuses, str) else list(statuses)
            stmt = stmt.where(_DRAFT.c.status.in_(wanted))
        stmt = stmt.order_by(_DRAFT.c.updated_at.desc(), _DRAFT.c.id.desc())
        return [_draft_rec(row) for row in self._s.exec(stmt)]

    def draft(self, draft_id: int) -> DraftRec | None:
        row = self._s.exec(select(_DRAFT).where(_DRAFT.c.id == draft_id)).first()
        return _draft_rec(row) if row is not None else None

    def draft_by_short_id(self, short_id: str) -> DraftRec | None:
        row = self._s.exec(select(_DRAFT).where(_DRAFT.c.short_id == short_id)).first()
        return _draft_rec(row) if row is not None else None

    def add_draft(self, rec: DraftRec) -> DraftRec:
        """Insert the draft; set `rec.id`, and a fresh `rec.short_id` if it is "". Returns rec.

        `rec.version` is stored as given (start at 1).
        """
        _check_status(rec.status)
        if rec.short_id:
            if not _SHORT_ID_RE.fullmatch(rec.short_id):
                raise ValueError("short_id must be 6 characters from a-z and 0-9")
        else:
            rec.short_id = self._free_short_id()
        rec.created_at = _utc(rec.created_at)
        rec.updated_at = _utc(rec.updated_at)
        values = {
            "short_id": rec.short_id,
            "citizen_id": rec.citizen_id,
            "procedure_id": rec.procedure_id,
            "procedure_version": rec.procedure_version,
            "status": rec.status,
            "stage": rec.stage,
            "subject": rec.subject,
            "payload": dict(rec.payload),
            "dossier_code": rec.dossier_code,
            "created_at": rec.created_at,
            "updated_at": rec.updated_at,
            "version": rec.version,
        }
        result = self._s.exec(insert(_DRAFT).values(values))
        rec.id = result.inserted_primary_key[0]
        return rec

    def save_draft(self, rec: DraftRec) -> None:
        """Write status, stage, subject, payload, dossier_code, procedure_version and
        updated_at (as the caller set it); bump version. Raises StaleVersion."""
        _check_status(rec.status)
        stmt = (
            update(_DRAFT)
            .where(_DRAFT.c.id == rec.id, _DRAFT.c.version == rec.version)
            .values(
                procedure_version=rec.procedure_version,
                status=rec.status,
                stage=rec.stage,
                subject=rec.subject,
                payload=dict(rec.payload),
                dossier_code=rec.dossier_code,
                updated_at=_utc(rec.updated_at),
                version=rec.version + 1,
            )
        )
        if self._s.exec(stmt).rowcount != 1:
            raise StaleVersion(f"draft {rec.id} is no longer at version {rec.version}")
        rec.version += 1

    def delete_draft(self, draft_id: int) -> None:
        """Delete the draft and its facts (personal data). Its handoffs stay, unlinked."""
        self._s.exec(update(_HANDOFF).where(_HANDOFF.c.draft_id == draft_id).values(draft_id=None))
        self._s.exec(delete(_FACT).where(_FACT.c.draft_id == draft_id))
        self._s.exec(delete(_DRAFT).where(_DRAFT.c.id == draft_id))

    def _free_short_id(self) -> str:
        for _ in range(20):
            candidate = "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(SHORT_ID_LENGTH))
            taken = self._s.exec(select(_DRAFT.c.id).where(_DRAFT.c.short_id == candidate))
            if taken.first() is None:
                return candidate
        raise RuntimeError("no free draft short_id found")

    # ---------------------------------------------------------------------------- facts

    def add_facts(self, facts: Iterable[FactRec]) -> None:
        rows = [
            {
                "kind": fact.kind,
                "data": dict(fact.data),
                "citizen_id": fact.citizen_id,
                "draft_id": fact.draft_id,
                "at": _utc(fact.at),
            }
            for fact in facts
        ]
        if rows:
            self._s.exec(insert(_FACT), params=rows)

    def facts(
        self,
        *,
        citizen_id: int | None = None,
        draft_id: int | None = None,
        kind: str | None = None,
    ) -> list[FactRec]:
        """Facts matching every filter given, oldest first."""
        stmt = select(_FACT.c.kind, _FACT.c.data, _FACT.c.citizen_id, _FACT.c.draft_id, _FACT.c.at)
        if citizen_id is not None:
            stmt = stmt.where(_FACT.c.citizen_id == citizen_id)
        if draft_id is not None:
            stmt = stmt.where(_FACT.c.draft_id == draft_id)
        if kind is not None:
            stmt = stmt.where(_FACT.c.kind == kind)
        stmt = stmt.order_by(_FACT.c.at, _FACT.c.id)
        return [FactRec(**row._mapping) for row in self._s.exec(stmt)]

    # ------------------------------------------------------------------------- handoffs

    def add_handoff(self, citizen_id: int, draft_id: int | None, reason: str, now: datetime) -> int:
        result = self._s.exec(
            insert(_HANDOFF).values(
                citizen_id=citizen_id,
                draft_id=draft_id,
                reason=reason,
                status="open",
                created_at=_utc(now),
            )
        )
        return result.inserted_primary_key[0]

    def open_handoffs(self, citizen_id: int) -> list[dict]:
        """The citizen's handoffs with status "open", oldest first, as column dicts."""
        stmt = (
            select(_HANDOFF)
            .where(_HANDOFF.c.citizen_id == citizen_id, _HANDOFF.c.status == "open")
            .order_by(_HANDOFF.c.created_at, _HANDOFF.c.id)
        )
        return [dict(row._mapping) for row in self._s.exec(stmt)]

    # ---------------------------------------------------------------------------- erase

    def delete_citizen_data(self, citizen_id: int) -> None:
        """Remove the citizen with all their drafts, facts and handoffs."""
        their_drafts = select(_DRAFT.c.id).where(_DRAFT.c.citizen_id == citizen_id)
        self._s.exec(
            delete(_FACT).where(
                or_(_FACT.c.citizen_id == citizen_id, _FACT.c.draft_id.in_(their_drafts))
            )
        )
        self._s.exec(
            update(_HANDOFF).where(_HANDOFF.c.draft_id.in_(their_drafts)).values(draft_id=None)
        )
        self._s.exec(delete(_HANDOFF).where(_HANDOFF.c.citizen_id == citizen_id))
        self._s.exec(delete(_DRAFT).where(_DRAFT.c.citizen_id == citizen_id))
        self._s.exec(delete(_CITIZEN).where(_CITIZEN.c.id == citizen_id))


class Store:
    """A database: SQLite (`sqlite:///path.db`) or PostgreSQL (`postgresql://...`)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.engine = make_engine(url, echo=echo)

    @property
    def dialect(self) -> str:
        """The database kind: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Create or migrate the schema to the newest revision (alembic upgrade head)."""
        cfg = alembic_config()
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(Session(self.engine, expire_on_commit=False))

    def dispose(self) -> None:
        self.engine.dispose()

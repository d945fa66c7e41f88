"""The storage interface the conversation service uses.

Records are plain dataclasses, detached from any session: the caller may keep and mutate
them after the unit of work has closed, and hands them back to `save_*` to write them.
Saves are optimistic: `UPDATE ... WHERE id = ? AND version = ?`; if no row matched, another
process changed the row since it was read and `StaleVersion` is raised.

Statements go through a SQLModel session as Core statements on the tables, so there is no
identity map to go stale and every JSON value is serialized afresh on each write.
"""

import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, CursorResult, Engine, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

from storage import crypto
from storage.db import AnyOf, alembic_config, at_heads, column_param, make_engine
from storage.models import Audit, Citizen, Draft, Fact, Handoff

DRAFT_STATUSES = frozenset({"active", "completed", "submitted", "cancelled", "exited"})
SHORT_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
SHORT_ID_LENGTH = 6
_SHORT_ID_RE = re.compile(r"[a-z0-9]{6}")

_CITIZEN: Table = Citizen.__table__  # type: ignore[attr-defined]
_DRAFT: Table = Draft.__table__  # type: ignore[attr-defined]
_FACT: Table = Fact.__table__  # type: ignore[attr-defined]
_HANDOFF: Table = Handoff.__table__  # type: ignore[attr-defined]
_AUDIT: Table = Audit.__table__  # type: ignore[attr-defined]
HANDOFF_STATUSES = frozenset({"open", "claimed", "closed", "withdrawn"})
# columns a caller may set on a case (id, citizen, creation time and version are the store's)
_CASE_COLUMNS = frozenset(
    {
        "draft_id",
        "reason",
        "status",
        "claimed_by",
        "closed_at",
        "commune_code",
        "step",
        "claimed_by_name",
        "claimed_at",
        "group_chat_id",
        "group_message_id",
        "topic_id",
        "callback_phone",
        "callback_slot",
        "callback_done_at",
        "announced_at",
        "announce_count",
    }
)
_CASE_TIMES = frozenset({"closed_at", "claimed_at", "callback_done_at", "announced_at"})
# many rows by id in one query (a batch): built once, the ids as one bound list
_CONTACTS = select(
    _CITIZEN.c.id, _CITIZEN.c.channel, _CITIZEN.c.external_id, _CITIZEN.c.timezone
).where(AnyOf(_CITIZEN.c.id, "ids"))
_DRAFT_HEADS = select(
    _DRAFT.c.id,
    _DRAFT.c.short_id,
    _DRAFT.c.citizen_id,
    _DRAFT.c.procedure_id,
    _DRAFT.c.status,
    _DRAFT.c.subject,
    _DRAFT.c.dossier_code,
).where(AnyOf(_DRAFT.c.id, "ids"))
_CITIZENS_WITH_CASES = (
    select(_HANDOFF.c.citizen_id)
    .where(
        AnyOf(_HANDOFF.c.citizen_id, "ids"),
        _HANDOFF.c.status.in_(bindparam("statuses", expanding=True)),
    )
    .distinct()
)


# The statements of every conversation update, built once with bind parameters: building a
# statement and its cache key per call costs more than running it (86 against 33
# microseconds per statement on SQLite; with those of storage/reminders.py, 2.8 -> 1.8 ms
# of CPU per update of the whole service, PDF aside). A parameter set in the SET or VALUES clause must
# not be named like a column (SQLAlchemy reserves those names there), hence the "b_"
# prefix; every parameter carries its column's type, so the encrypted columns
# (storage/crypto.py) are encrypted and the times converted as with literal values.
_p = column_param
_C, _D, _H = _CITIZEN.c, _DRAFT.c, _HANDOFF.c
_CITIZEN_BY_KEY = select(_CITIZEN).where(
    _C.channel == _p(_C.channel), _C.external_id == _p(_C.external_id)
)
_CITIZEN_BY_KEY_LOCKED = _CITIZEN_BY_KEY.with_for_update()  # SQLite: plain SELECT
_CITIZEN_BY_ID = select(_CITIZEN).where(_C.id == _p(_C.id))
_SAVE_CITIZEN = (
    update(_CITIZEN)
    .where(_C.id == _p(_C.id), _C.version == _p(_C.version))
    .values(
        display_name=_p(_C.display_name),
        username=_p(_C.username),
        session=_p(_C.session),
        timezone=_p(_C.timezone),
        last_seen_at=_p(_C.last_seen_at),
        version=_p(_C.version, "b_new_version"),
    )
)
_DRAFT_BY_ID = select(_DRAFT).where(_D.id == _p(_D.id))
_DRAFT_BY_SHORT_ID = select(_DRAFT).where(_D.short_id == _p(_D.short_id))
_NEWEST_FIRST = (_D.updated_at.desc(), _D.id.desc())
_DRAFTS_OF = select(_DRAFT).where(_D.citizen_id == _p(_D.citizen_id)).order_by(*_NEWEST_FIRST)
_DRAFTS_OF_IN = (
    select(_DRAFT)
    .where(_D.citizen_id == _p(_D.citizen_id), _D.status.in_(_p(_D.status, expanding=True)))
    .order_by(*_NEWEST_FIRST)
)
_SAVE_DRAFT = (
    update(_DRAFT)
    .where(_D.id == _p(_D.id), _D.version == _p(_D.version))
    .values(
        procedure_version=_p(_D.procedure_version),
        status=_p(_D.status),
        stage=_p(_D.stage),
        subject=_p(_D.subject),
        payload=_p(_D.payload),
        dossier_code=_p(_D.dossier_code),
        updated_at=_p(_D.updated_at),
        version=_p(_D.version, "b_new_version"),
    )
)
_ADD_FACTS = insert(_FACT)
# `handoffs`: the filters given, in this order (statuses as a list, `since` a lower bound)
_HANDOFF_FILTERS = ("statuses", "citizen_id", "group_chat_id", "topic_id", "since")


@functools.cache
def _handoffs_stmt(given: tuple[str, ...]) -> Any:
    """The `handoffs` query for one combination of filters, built once per combination."""
    stmt = select(_HANDOFF)
    for name in given:
        if name == "statuses":
            stmt = stmt.where(_H.status.in_(_p(_H.status, "b_statuses", expanding=True)))
        elif name == "since":
            stmt = stmt.where(_H.created_at >= _p(_H.created_at, "b_since"))
        else:
            stmt = stmt.where(_H[name] == _p(_H[name]))
    return stmt.order_by(_H.created_at, _H.id)


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


@dataclass(frozen=True)
class Contact:
    """Where to reach a citizen, and their time zone: the citizen's columns a reminder
    needs, none of them encrypted (reading many costs no decryption)."""

    id: int
    channel: str
    external_id: str
    timezone: str | None


@dataclass(frozen=True)
class DraftHead:
    """A draft without its answers (the payload, the largest column to decrypt): what a
    reminder about it shows and checks."""

    id: int
    short_id: str
    citizen_id: int
    procedure_id: str
    status: str
    subject: str  # personal: never log it
    dossier_code: str | None


@dataclass
class FactRec:
    kind: str
    data: dict
    citizen_id: int
    draft_id: int | None
    at: datetime


@dataclass
class HandoffRec:
    """A case (a handoff row). Personal: callback_phone, claimed_by_name."""

    id: int
    citizen_id: int
    draft_id: int | None
    reason: str
    status: str
    created_at: datetime
    claimed_by: str | None
    closed_at: datetime | None
    commune_code: int | None
    step: str | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    group_chat_id: int | None
    group_message_id: int | None
    topic_id: int | None
    callback_phone: str | None
    callback_slot: str | None
    callback_done_at: datetime | None
    announced_at: datetime | None
    announce_count: int
    version: int


@dataclass
class AuditRec:
    at: datetime
    actor: str
    actor_name: str
    action: str
    handoff_id: int | None
    draft_id: int | None
    details: dict


class StaleVersion(Exception):
    """The row changed since it was read (another process won)."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return value.astimezone(UTC)


def _check_status(status: str) -> None:
    if status not in DRAFT_STATUSES:
        raise ValueError(f"unknown draft status {status!r}")


def _case_values(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - _CASE_COLUMNS
    if unknown:
        raise ValueError(f"not case columns: {sorted(unknown)}")
    if "status" in values and values["status"] not in HANDOFF_STATUSES:
        raise ValueError(f"unknown case status {values['status']!r}")
    return {k: (_utc(v) if k in _CASE_TIMES and v is not None else v) for k, v in values.items()}


def _citizen_rec(row: Row[Any]) -> CitizenRec:
    return CitizenRec(**row._mapping)


def _draft_rec(row: Row[Any]) -> DraftRec:
    return DraftRec(**row._mapping)


class Transaction:
    """The statements of one unit of work, on one Core connection taken from the pool at
    the first statement (and given back on `close`). Every statement here is a Core one
    (tables, not ORM entities), so an ORM Session added only its own bookkeeping around
    each: 6-13 % of an update's CPU on SQLite, in-process (README, Performance, seventh
    round).
    `exec(statement, params=...)` is Session.exec's call; a list of parameter sets runs
    the statement for each (executemany)."""

    __slots__ = ("_engine", "_conn")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def exec(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        conn = self._conn
        if conn is not None:
            return conn.execute(statement, params)
        conn = self._conn = self._engine.connect()
        try:
            return conn.execute(statement, params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection the server dropped (a PostgreSQL restart, an idle
            # timeout): nothing ran in this transaction yet, so the first statement runs
            # again on a new connection (SQLAlchemy has invalidated the older ones). This
            # replaces the pool's ping before every checkout (pool_pre_ping), one more
            # round trip per unit of work.
            self.close()
            conn = self._conn = self._engine.connect()
            return conn.execute(statement, params)

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.rollback()
        finally:
            self.close()

    def get_bind(self) -> Engine:
        return self._engine

    def commit(self) -> None:
        if self._conn is not None:
            self._conn.commit()

    def rollback(self) -> None:
        if self._conn is not None:
            self._conn.rollback()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class UnitOfWork:
    """One transaction. Use it as a context manager; nothing is kept unless `commit()` runs.

    Leaving the block without committing (or with an exception) rolls back. After a commit
    the unit of work may go on; later changes again need a commit.
    """

    def __init__(self, transaction: Transaction) -> None:
        self._s = transaction
        # citizens whose row this transaction holds locked (PostgreSQL's FOR UPDATE)
        self._locked: set[int] = set()
        # the records `citizen(..., lock=True)` returned, by chat: the officer desk and then
        # the bot's turn ask for the same citizen in one transaction (one SELECT)
        self._turn_citizens: dict[tuple[str, str], CitizenRec] = {}

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
        self._locked.clear()  # a commit releases the row locks
        self._turn_citizens.clear()

    # ------------------------------------------------------------------------- citizens

    def citizen(self, channel: str, external_id: str, *, lock: bool = False) -> CitizenRec | None:
        """The citizen of this chat, or None. `lock`: on PostgreSQL the row stays locked
        until this transaction ends (SELECT ... FOR UPDATE), so another transaction's turn
        of the same citizen waits for this one: turns of one citizen never interleave, and
        `keep_citizen` needs no write. SQLite has no row locks (its writers queue for the
        whole file); there the version check of `save_citizen` stays the guard.
        A second `lock=True` call for the same chat in this transaction returns the same
        record (as this transaction left it: `save_citizen` updates it) without a query."""
        if lock and (found := self._turn_citizens.get((channel, external_id))) is not None:
            return found
        params = {"b_channel": channel, "b_external_id": external_id}
        stmt = _CITIZEN_BY_KEY_LOCKED if lock else _CITIZEN_BY_KEY
        row = self._s.exec(stmt, params=params).first()
        if row is None:
            return None
        rec = _citizen_rec(row)
        if lock:
            self._turn_citizens[(channel, external_id)] = rec
            if self._s.get_bind().dialect.name == "postgresql":
                self._locked.add(rec.id)
        return rec

    def citizen_by_id(self, citizen_id: int) -> CitizenRec | None:
        row = self._s.exec(_CITIZEN_BY_ID, params={"b_id": citizen_id}).first()
        return _citizen_rec(row) if row is not None else None

    def contacts(self, citizen_ids: Iterable[int]) -> dict[int, Contact]:
        """How to reach the citizens with these ids that still exist, by id (one query)."""
        wanted = sorted(set(citizen_ids))
        if not wanted:
            return {}
        found = self._s.exec(_CONTACTS, params={"ids": wanted})
        return {row[0]: Contact(*row) for row in found}

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

    def keep_citizen(self, rec: CitizenRec) -> None:
        """The turn changed nothing of the citizen worth a write (the caller decides: its
        session, names and timezone as read, last seen a moment ago). Without a write when
        this transaction holds the row locked (`citizen(..., lock=True)` on PostgreSQL):
        no other turn of the citizen can have changed it meanwhile. Otherwise the write
        is made (`save_citizen`), for its version check: a concurrent change of the
        citizen makes this transaction start again."""
        if rec.id not in self._locked:
            self.save_citizen(rec)

    def save_citizen(self, rec: CitizenRec) -> None:
        """Write the mutable fields (names, session, timezone, last_seen_at); bump version."""
        params = {
            "b_id": rec.id,
            "b_version": rec.version,
            "b_display_name": rec.display_name,
            "b_username": rec.username,
            "b_session": dict(rec.session),
            "b_timezone": rec.timezone,
            "b_last_seen_at": _utc(rec.last_seen_at),
            "b_new_version": rec.version + 1,
        }
        if self._s.exec(_SAVE_CITIZEN, params=params).rowcount != 1:
            raise StaleVersion(f"citizen {rec.id} is no longer at version {rec.version}")
        rec.version += 1

    # --------------------------------------------------------------------------- drafts

    def drafts_of(self, citizen_id: int, statuses: Iterable[str] | None = None) -> list[DraftRec]:
        """The citizen's drafts, most recently updated first."""
        if statuses is None:
            found = self._s.exec(_DRAFTS_OF, params={"b_citizen_id": citizen_id})
        else:
            wanted = [statuses] if isinstance(statuses, str) else list(statuses)
            params = {"b_citizen_id": citizen_id, "b_status": wanted}
            found = self._s.exec(_DRAFTS_OF_IN, params=params)
        return [_draft_rec(row) for row in found]

    def draft(self, draft_id: int) -> DraftRec | None:
        row = self._s.exec(_DRAFT_BY_ID, params={"b_id": draft_id}).first()
        return _draft_rec(row) if row is not None else None

    def draft_by_short_id(self, short_id: str) -> DraftRec | None:
        row = self._s.exec(_DRAFT_BY_SHORT_ID, params={"b_short_id": short_id}).first()
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
        params = {
            "b_id": rec.id,
            "b_version": rec.version,
            "b_procedure_version": rec.procedure_version,
            "b_status": rec.status,
            "b_stage": rec.stage,
            "b_subject": rec.subject,
            "b_payload": dict(rec.payload),
            "b_dossier_code": rec.dossier_code,
            "b_updated_at": _utc(rec.updated_at),
            "b_new_version": rec.version + 1,
        }
        if self._s.exec(_SAVE_DRAFT, params=params).rowcount != 1:
            raise StaleVersion(f"draft {rec.id} is no longer at version {rec.version}")
        rec.version += 1

    def delete_draft(self, draft_id: int) -> None:
        """Delete the draft and its facts (personal data). Its handoffs stay, unlinked."""
        self._s.exec(update(_HANDOFF).where(_HANDOFF.c.draft_id == draft_id).values(draft_id=None))
        self._s.exec(delete(_FACT).where(_FACT.c.draft_id == draft_id))
        self._s.exec(delete(_DRAFT).where(_DRAFT.c.id == draft_id))

    def drafts_by_ids(self, draft_ids: Iterable[int]) -> list[DraftRec]:
        """The drafts with these ids that still exist, in id order."""
        wanted = sorted(set(draft_ids))
        if not wanted:
            return []
        stmt = select(_DRAFT).where(_DRAFT.c.id.in_(wanted)).order_by(_DRAFT.c.id)
        return [_draft_rec(row) for row in self._s.exec(stmt)]

    def draft_heads(self, draft_ids: Iterable[int]) -> dict[int, DraftHead]:
        """The drafts with these ids that still exist, without their answers, by id."""
        wanted = sorted(set(draft_ids))
        if not wanted:
            return {}
        return {
            row[0]: DraftHead(*row) for row in self._s.exec(_DRAFT_HEADS, params={"ids": wanted})
        }

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
            self._s.exec(_ADD_FACTS, params=rows)

    def facts(
        self,
        *,
        citizen_id: int | None = None,
        draft_id: int | None = None,
        kind: str | None = None,
        kinds: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[FactRec]:
        """Facts matching every filter given (`since` <= at < `until`), oldest first."""
        stmt = select(_FACT.c.kind, _FACT.c.data, _FACT.c.citizen_id, _FACT.c.draft_id, _FACT.c.at)
        if citizen_id is not None:
            stmt = stmt.where(_FACT.c.citizen_id == citizen_id)
        if draft_id is not None:
            stmt = stmt.where(_FACT.c.draft_id == draft_id)
        if kind is not None:
            stmt = stmt.where(_FACT.c.kind == kind)
        if kinds is not None:
            stmt = stmt.where(_FACT.c.kind.in_(list(kinds)))
        if since is not None:
            stmt = stmt.where(_FACT.c.at >= _utc(since))
        if until is not None:
            stmt = stmt.where(_FACT.c.at < _utc(until))
        stmt = stmt.order_by(_FACT.c.at, _FACT.c.id)
        return [FactRec(**row._mapping) for row in self._s.exec(stmt)]

    # ------------------------------------------------------------------------- handoffs

    def add_handoff(
        self,
        citizen_id: int,
        draft_id: int | None,
        reason: str,
        now: datetime,
        **case: Any,
    ) -> int:
        """Open a case (status "open", version 1); `case` sets more case columns."""
        values = {"status": "open", **_case_values(case)}
        result = self._s.exec(
            insert(_HANDOFF).values(
                citizen_id=citizen_id,
                draft_id=draft_id,
                reason=reason,
                created_at=_utc(now),
                version=1,
                **values,
            )
        )
        return result.inserted_primary_key[0]

    def handoff(self, handoff_id: int) -> HandoffRec | None:
        row = self._s.exec(select(_HANDOFF).where(_HANDOFF.c.id == handoff_id)).first()
        return HandoffRec(**row._mapping) if row is not None else None

    def handoffs(
        self,
        *,
        statuses: Iterable[str] | None = None,
        citizen_id: int | None = None,
        group_chat_id: int | None = None,
        topic_id: int | None = None,
        since: datetime | None = None,
    ) -> list[HandoffRec]:
        """Cases matching every filter given (`since`: created at or after), oldest first."""
        values = {
            "statuses": list(statuses) if statuses is not None else None,
            "citizen_id": citizen_id,
            "group_chat_id": group_chat_id,
            "topic_id": topic_id,
            "since": _utc(since) if since is not None else None,
        }
        given = tuple(name for name in _HANDOFF_FILTERS if values[name] is not None)
        params = {f"b_{name}": values[name] for name in given}
        found = self._s.exec(_handoffs_stmt(given), params=params)
        return [HandoffRec(**row._mapping) for row in found]

    def citizens_with_cases(self, citizen_ids: Iterable[int], statuses: Iterable[str]) -> set[int]:
        """Which of these citizens have a case in one of `statuses` (one query)."""
        wanted = sorted(set(citizen_ids))
        if not wanted:
            return set()
        params = {"ids": wanted, "statuses": list(statuses)}
        return {row[0] for row in self._s.exec(_CITIZENS_WITH_CASES, params=params)}

    def update_handoff(
        self,
        handoff_id: int,
        *,
        expect_status: str | Iterable[str] | None = None,
        expect_version: int | None = None,
        **values: Any,
    ) -> bool:
        """Set case columns and bump the version, only if the case is (still) in
        `expect_status` / at `expect_version`. One conditional UPDATE: of two officers
        claiming at once (`expect_status="open"`), exactly one gets True."""
        stmt = update(_HANDOFF).where(_HANDOFF.c.id == handoff_id)
        if expect_status is not None:
            wanted = [expect_status] if isinstance(expect_status, str) else list(expect_status)
            stmt = stmt.where(_HANDOFF.c.status.in_(wanted))
        if expect_version is not None:
            stmt = stmt.where(_HANDOFF.c.version == expect_version)
        stmt = stmt.values(version=_HANDOFF.c.version + 1, **_case_values(values))
        return self._s.exec(stmt).rowcount == 1

    # ---------------------------------------------------------------------------- audit

    def add_audit(
        self,
        actor: str,
        action: str,
        at: datetime,
        *,
        actor_name: str = "",
        handoff_id: int | None = None,
        draft_id: int | None = None,
        details: dict | None = None,
    ) -> None:
        self._s.exec(
            insert(_AUDIT).values(
                at=_utc(at),
                actor=actor,
                actor_name=actor_name,
                action=action,
                handoff_id=handoff_id,
                draft_id=draft_id,
                details=dict(details or {}),
            )
        )

    def audit(self, *, handoff_id: int | None = None) -> list[AuditRec]:
        """Officer actions (of one case, if given), oldest first."""
        stmt = select(
            _AUDIT.c.at,
            _AUDIT.c.actor,
            _AUDIT.c.actor_name,
            _AUDIT.c.action,
            _AUDIT.c.handoff_id,
            _AUDIT.c.draft_id,
            _AUDIT.c.details,
        )
        if handoff_id is not None:
            stmt = stmt.where(_AUDIT.c.handoff_id == handoff_id)
        stmt = stmt.order_by(_AUDIT.c.at, _AUDIT.c.id)
        return [AuditRec(**row._mapping) for row in self._s.exec(stmt)]

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
        self._turn_citizens = {k: c for k, c in self._turn_citizens.items() if c.id != citizen_id}
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
    """A database: SQLite (`sqlite:///path.db`) or PostgreSQL (`postgresql://...`).

    `keyring` encrypts and decrypts the personal-data columns (storage/crypto.py); without
    one, the keys come from the process environment (MOTCUA_DATA_KEYS, MOTCUA_DATA_KEY_FILE)
    or ./motcua.key. The application passes the keyring of its settings."""

    def __init__(
        self, url: str, *, echo: bool = False, keyring: crypto.Keyring | None = None
    ) -> None:
        self.engine = make_engine(url, echo=echo)
        self.keyring = keyring if keyring is not None else crypto.keyring_from_environ()
        crypto.install(self.engine, self.keyring)
        # the same pool, its connections in autocommit while checked out (`autocommit`)
        self._autocommit_engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )

    @property
    def dialect(self) -> str:
        """The database kind: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Create or migrate the schema to the newest revisions (alembic upgrade heads).
        A database already there costs one query: Alembic is not even imported."""
        with self.engine.begin() as connection:
            if at_heads(connection):
                return
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(Transaction(self.engine))

    def transaction(self) -> Transaction:
        """Bare statements in one transaction (`with store.transaction() as tx:
        tx.exec(...)`), rolled back at the end unless committed: for readers outside the
        unit of work's methods (health checks, metrics)."""
        return Transaction(self.engine)

    def autocommit(self) -> Transaction:
        """For a unit of work of one statement: on PostgreSQL it runs in autocommit, each
        statement its own transaction, and the driver sends no BEGIN (psycopg sends BEGIN
        as a round trip of its own before a transaction's first statement) and no COMMIT
        (`commit()` does nothing). On SQLite, a plain transaction: no round trips to save.
        Several statements here would each commit on its own: use `transaction()`."""
        return Transaction(self._autocommit_engine)

    def dispose(self) -> None:
        self.engine.dispose()

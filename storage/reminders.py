"""Reminder rows and a citizen's reminder preferences, on the unit of work's session.

A reminder is a row: who, which draft, which kind, when it is due, its state. The bot's
ticker claims due rows and sends them (flows/reminders.py decides, bot/reminders.py sends).
Claiming is exactly-once across processes: on PostgreSQL the due rows are locked with
`FOR UPDATE SKIP LOCKED` (a second process skips them, and after the first commits they
are no longer "planned"); on SQLite (one writer at a time) each row is taken with a
conditional `UPDATE ... WHERE status = 'planned'`.

Rows go with their citizen and draft (ON DELETE CASCADE): deleting a draft or erasing a
citizen's data removes their reminders.

Functions take the `UnitOfWork` and run inside its transaction; the caller commits.

A dispatch reads what it needs for its whole claimed batch with one query each (`prefs`,
`sent_counts`, `due_planned`) and writes the outcomes with `settle`, in bulk, before it
commits: those statements are built once, with bind parameters, so SQLAlchemy compiles
each of them once per process.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Index, Table, and_, bindparam, case, func, insert, not_, or_, select, update
from sqlalchemy import false as sa_false
from sqlmodel import JSON, Field, SQLModel

from storage.db import AnyOf, column_param
from storage.models import UTCDateTime

if TYPE_CHECKING:
    from storage.store import Transaction

PLANNED, SENT, CANCELLED = "planned", "sent", "cancelled"
REMINDER_STATUSES = frozenset({PLANNED, SENT, CANCELLED})
CITIZEN, OFFICER = "citizen", "officer"  # whom a row is for (revision 0004)


class Reminder(SQLModel, table=True):
    """One planned message. `seq` numbers the reminders of one kind for one draft (1: after
    24 h, 2: after 72 h...) or one case; `note` says why a row was cancelled or moved (no
    personal data). `audience` (revision 0004) is "citizen" (the row's citizen) or
    "officer" (the officer who owns the row's case, else its officers' group); `handoff_id`
    ties call-back and appointment reminders to their case."""

    __tablename__ = "reminder"
    __table_args__ = (
        Index("ix_reminder_status_due", "status", "due_at"),
        Index("ix_reminder_draft_kind", "draft_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    draft_id: int | None = Field(
        default=None, foreign_key="draft.id", nullable=True, ondelete="CASCADE"
    )
    kind: str
    seq: int = 1
    status: str = PLANNED
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    note: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    handoff_id: int | None = Field(
        default=None, foreign_key="handoff.id", nullable=True, ondelete="CASCADE", index=True
    )
    audience: str = Field(default=CITIZEN, sa_column_kwargs={"server_default": CITIZEN})


class ReminderPref(SQLModel, table=True):
    """A citizen's reminder switch: `stopped` (they sent /tatnhac) and `unreachable`
    (Telegram answered 403: they blocked the bot). No row: reminders are on."""

    __tablename__ = "reminder_pref"

    citizen_id: int = Field(primary_key=True, foreign_key="citizen.id", ondelete="CASCADE")
    stopped: bool = False
    unreachable: bool = False
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


_REM: Table = Reminder.__table__  # type: ignore[attr-defined]
_PREF: Table = ReminderPref.__table__  # type: ignore[attr-defined]


@dataclass
class ReminderRec:
    id: int
    citizen_id: int
    draft_id: int | None
    kind: str
    seq: int
    status: str
    due_at: datetime
    created_at: datetime
    sent_at: datetime | None
    note: str
    data: dict
    handoff_id: int | None = None
    audience: str = CITIZEN


def _session(uow: Any) -> Transaction:
    return uow._s  # the unit of work's Transaction (storage.store): same transaction


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return value.astimezone(UTC)


def _rec(row: Any) -> ReminderRec:
    return ReminderRec(**row._mapping)


# The statements a draft change runs (`plan`, `cancel`, from Reminders.on_draft on every
# update that saves a draft), built once with bind parameters ("b_" + column, typed as the
# column: storage.db.column_param): building a statement per call cost more than running it.
_R = _REM.c
_p = column_param
_ADD = insert(_REM)
_PLANNED_OF = (_R.citizen_id == _p(_R.citizen_id), _R.kind == _p(_R.kind), _R.status == PLANNED)


@functools.cache
def _replan_stmt(seqs: int, with_draft: bool) -> Any:
    """`plan` in one statement: the planned rows of (citizen, kind, draft) whose seq is one
    of the `seqs` given ("b_seq1".., due times "b_due1"..) are moved to their due time, the
    others cancelled ("replanned"); RETURNING tells which seqs had a planned row (the
    others are inserted). One UPDATE instead of one per seq plus one for the rest: it runs
    on every update that saves an active draft. Built once per (number of seqs, draft)."""
    seq_params = [bindparam(f"b_seq{i}", type_=_R.seq.type) for i in range(1, seqs + 1)]
    due_params = [_p(_R.due_at, f"b_due{i}") for i in range(1, seqs + 1)]
    kept = _R.seq.in_(seq_params) if seqs else sa_false()
    stmt = update(_REM).where(*_PLANNED_OF)
    if with_draft:
        stmt = stmt.where(_R.draft_id == _p(_R.draft_id))
    else:  # the rows without a draft are moved; other seqs are cancelled of any draft
        stmt = stmt.where(or_(_R.draft_id.is_(None), not_(kept)))
        kept = and_(kept, _R.draft_id.is_(None))
    due = (
        case(
            *((_R.seq == s, d) for s, d in zip(seq_params, due_params, strict=True)),
            else_=_R.due_at,
        )
        if seqs
        else _R.due_at
    )
    return stmt.values(
        due_at=due,
        status=case((kept, PLANNED), else_=CANCELLED),
        note=case((kept, ""), else_="replanned"),
    ).returning(_R.seq, _R.status)


# `cancel` and `reminders`, restricted by the filters given (`_matching`)
_BASES = {
    "cancel": update(_REM).where(_R.status == PLANNED).values(status=CANCELLED, note=_p(_R.note)),
    "list": select(_REM).order_by(_R.due_at, _R.id),
}


@functools.cache
def _matching_stmt(base: str, shape: tuple[tuple[str, bool], ...]) -> Any:
    """The `base` statement restricted by one bound filter per (column, many) of `shape`:
    the column's value ("b_<column>"), or with `many` one of a list of values. Built once
    per base and shape."""
    stmt = _BASES[base]
    for column, many in shape:
        col = _REM.c[column]
        stmt = stmt.where(col.in_(_p(col, expanding=True)) if many else col == _p(col))
    return stmt


def _matching(base: str, **filters: Any) -> tuple[Any, dict[str, Any]]:
    """The `base` statement ("cancel", "list") restricted to the reminder rows matching
    every filter given (not None): a column's value, or for an iterable (kinds, statuses)
    one of its values; and the parameters to run it with."""
    shape: list[tuple[str, bool]] = []
    params: dict[str, Any] = {}
    for column, wanted in filters.items():
        if wanted is None:
            continue
        many = not isinstance(wanted, str | int)
        shape.append((column, many))
        params[f"b_{column}"] = list(wanted) if many else wanted
    return _matching_stmt(base, tuple(shape)), params


def _insert(
    s: Transaction,
    citizen_id: int,
    draft_id: int | None,
    kind: str,
    seq: int,
    due_at: datetime,
    now: datetime,
    data: dict | None,
    **extra: Any,
) -> None:
    """One planned row (`extra`: a case's `handoff_id` and `audience`)."""
    row = {
        "citizen_id": citizen_id,
        "draft_id": draft_id,
        "kind": kind,
        "seq": seq,
        "status": PLANNED,
        "due_at": _utc(due_at),
        "created_at": _utc(now),
        "note": "",
        "data": dict(data or {}),
        **extra,
    }
    s.exec(_ADD, params=row)


def plan(
    uow: Any,
    citizen_id: int,
    draft_id: int | None,
    kind: str,
    due: Iterable[tuple[int, datetime]],
    now: datetime,
    data: dict | None = None,
) -> None:
    """Plan the reminders of (`draft_id`, `kind`): one planned row per (seq, due_at), the
    planned row of that seq moved in place if there is one; other planned seqs cancelled."""
    s = _session(uow)
    due = list(due)
    params: dict[str, Any] = {"b_citizen_id": citizen_id, "b_kind": kind}
    if draft_id is not None:
        params["b_draft_id"] = draft_id
    for i, (seq, due_at) in enumerate(due, 1):
        params[f"b_seq{i}"] = seq
        params[f"b_due{i}"] = _utc(due_at)
    stmt = _replan_stmt(len(due), draft_id is not None)
    moved = {seq for seq, status in s.exec(stmt, params=params) if status == PLANNED}
    for seq, due_at in due:
        if seq not in moved:
            _insert(s, citizen_id, draft_id, kind, seq, due_at, now, data)


def plan_case(
    uow: Any,
    citizen_id: int,
    handoff_id: int,
    draft_id: int | None,
    kind: str,
    due: Iterable[tuple[int, str, datetime]],
    now: datetime,
    data: dict | None = None,
) -> None:
    """Plan the reminders of one case's call-back or appointment: the planned rows of
    (`handoff_id`, `kind`) are cancelled ("replanned") and one row per (seq, audience,
    due_at) is added, each with `data`."""
    cancel(uow, now, handoff_id=handoff_id, kinds=[kind], note="replanned")
    s = _session(uow)
    for seq, audience, due_at in due:
        _insert(
            s,
            citizen_id,
            draft_id,
            kind,
            seq,
            due_at,
            now,
            data,
            handoff_id=handoff_id,
            audience=audience,
        )


def cancel(
    uow: Any,
    now: datetime,
    *,
    citizen_id: int | None = None,
    draft_id: int | None = None,
    handoff_id: int | None = None,
    kinds: Iterable[str] | None = None,
    audience: str | None = None,
    note: str = "",
) -> int:
    """Cancel planned reminders matching every filter given; returns how many."""
    stmt, params = _matching(
        "cancel",
        citizen_id=citizen_id,
        draft_id=draft_id,
        handoff_id=handoff_id,
        audience=audience,
        kind=kinds,
    )
    return _session(uow).exec(stmt, params={**params, "b_note": note[:40]}).rowcount


def claim_due(uow: Any, now: datetime, limit: int = 100) -> list[ReminderRec]:
    """Take up to `limit` planned reminders due at `now` or earlier, oldest first, for this
    transaction. Rows another process holds are skipped (PostgreSQL) or lost to it (the
    conditional UPDATE). The caller must set each row's outcome (`finish`, `move`) before
    committing; rows left as they are stay planned."""
    s = _session(uow)
    stmt = (
        select(_REM)
        .where(_REM.c.status == PLANNED, _REM.c.due_at <= _utc(now))
        .order_by(_REM.c.due_at, _REM.c.id)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        return [_rec(row) for row in s.exec(stmt.with_for_update(skip_locked=True))]
    # SQLite: the claim is the transaction's first statement, a write, so it waits for
    # another writer (busy timeout) instead of reading a snapshot that is about to change
    token = "claim:" + secrets.token_hex(8)
    ids = select(_REM.c.id).where(_REM.c.status == PLANNED, _REM.c.due_at <= _utc(now))
    ids = ids.order_by(_REM.c.due_at, _REM.c.id).limit(limit).scalar_subquery()
    s.exec(
        update(_REM)
        .where(_REM.c.id.in_(ids), _REM.c.status == PLANNED, _REM.c.due_at <= _utc(now))
        .values(note=token)
    )
    mine = select(_REM).where(_REM.c.note == token, _REM.c.status == PLANNED)
    return [_rec(row) for row in s.exec(mine.order_by(_REM.c.due_at, _REM.c.id))]


def finish(uow: Any, reminder_id: int, status: str, now: datetime, note: str = "") -> None:
    """A claimed reminder was sent (SENT) or dropped (CANCELLED, with the reason)."""
    if status not in (SENT, CANCELLED):
        raise ValueError(f"not a final reminder status: {status!r}")
    values: dict[str, Any] = {"status": status, "note": note[:40]}
    if status == SENT:
        values["sent_at"] = _utc(now)
    _session(uow).exec(update(_REM).where(_REM.c.id == reminder_id).values(**values))


def move(uow: Any, reminder_id: int, due_at: datetime, note: str) -> None:
    """A claimed reminder stays planned, due later (quiet hours, an officer owns the case)."""
    _session(uow).exec(
        update(_REM)
        .where(_REM.c.id == reminder_id)
        .values(status=PLANNED, due_at=_utc(due_at), note=note[:40])
    )


# ----------------------------------------------------------------------------- batches
# One statement per question for a whole claimed batch, built once with the ids as one
# bound list (storage.db.AnyOf): compiled once per process, whatever the batch's size.

# Only the ids filter the rows read, so that the index on them is the one used: SQLite
# (no statistics) would otherwise pick ix_reminder_status_due and walk every sent or
# planned row of the table. A citizen, draft or case has a handful of rows.
_LIGHT = (
    _REM.c.id,
    _REM.c.draft_id,
    _REM.c.handoff_id,
    _REM.c.kind,
    _REM.c.seq,
    _REM.c.audience,
    _REM.c.status,
    _REM.c.due_at,
)
_ROWS_OF_DRAFTS = select(*_LIGHT).where(AnyOf(_REM.c.draft_id, "ids"))
_ROWS_OF_CASES = select(*_LIGHT).where(AnyOf(_REM.c.handoff_id, "ids"))
_PREFS = select(_PREF.c.citizen_id, _PREF.c.stopped, _PREF.c.unreachable).where(
    AnyOf(_PREF.c.citizen_id, "ids")
)
_SENT_COUNTS = (
    select(
        _REM.c.citizen_id,
        func.count().filter((_REM.c.status == SENT) & (_REM.c.audience == CITIZEN)),
    )
    .where(AnyOf(_REM.c.citizen_id, "ids"))
    .group_by(_REM.c.citizen_id)
)
# the outcomes: the rows given the same values are written by one UPDATE
_SET_SENT = (
    update(_REM)
    .where(AnyOf(_REM.c.id, "ids"))
    .values(status=SENT, note="", sent_at=bindparam("at"))
)
_SET_CANCELLED = (
    update(_REM).where(AnyOf(_REM.c.id, "ids")).values(status=CANCELLED, note=bindparam("why"))
)
_SET_MOVED = (
    update(_REM)
    .where(AnyOf(_REM.c.id, "ids"))
    .values(status=PLANNED, due_at=bindparam("at"), note=bindparam("why"))
)


class DueRow(NamedTuple):
    """A planned reminder due now, as `due_planned` gives it (no data, no times but due)."""

    id: int
    draft_id: int | None
    handoff_id: int | None
    kind: str
    seq: int
    audience: str
    due_at: datetime


def due_planned(
    uow: Any,
    now: datetime,
    *,
    draft_ids: Iterable[int] = (),
    handoff_ids: Iterable[int] = (),
) -> list[DueRow]:
    """The planned reminders due at `now` or earlier of these drafts, or of these cases
    (give one of the two)."""
    if draft_ids and handoff_ids:
        raise ValueError("due_planned: drafts or cases, not both")
    ids = sorted(set(draft_ids or handoff_ids))
    if not ids:
        return []
    stmt = _ROWS_OF_DRAFTS if draft_ids else _ROWS_OF_CASES
    now = _utc(now)
    return [
        DueRow(rid, draft_id, handoff_id, kind, seq, audience, due_at)
        for rid, draft_id, handoff_id, kind, seq, audience, status, due_at in _session(uow).exec(
            stmt, params={"ids": ids}
        )
        if status == PLANNED and due_at <= now
    ]


def prefs(uow: Any, citizen_ids: Iterable[int]) -> dict[int, tuple[bool, bool]]:
    """(stopped, unreachable) per citizen that has a preference row (others: both False)."""
    ids = sorted(set(citizen_ids))
    if not ids:
        return {}
    found = _session(uow).exec(_PREFS, params={"ids": ids})
    return {cid: (bool(stopped), bool(unreachable)) for cid, stopped, unreachable in found}


def sent_counts(uow: Any, citizen_ids: Iterable[int]) -> dict[int, int]:
    """`sent_count` for many citizens at once (0 for those without reminders)."""
    ids = sorted(set(citizen_ids))
    if not ids:
        return {}
    return {cid: int(n) for cid, n in _session(uow).exec(_SENT_COUNTS, params={"ids": ids})}


def settle(
    uow: Any,
    now: datetime,
    *,
    sent: Iterable[int] = (),
    cancelled: Iterable[tuple[int, str]] = (),
    moved: Iterable[tuple[int, datetime, str]] = (),
) -> None:
    """The outcomes of claimed reminders, written together: `sent` ids (as `finish` with
    SENT), `cancelled` (id, reason) and `moved` (id, new due time, note). Rows sharing
    their new values are written by one statement."""
    s = _session(uow)
    ids = list(sent)
    if ids:
        s.exec(_SET_SENT, params={"ids": ids, "at": _utc(now)})
    reasons: dict[str, list[int]] = {}
    for rid, note in cancelled:
        reasons.setdefault(note[:40], []).append(rid)
    for note, ids in reasons.items():
        s.exec(_SET_CANCELLED, params={"ids": ids, "why": note})
    later: dict[tuple[datetime, str], list[int]] = {}
    for rid, due_at, note in moved:
        later.setdefault((_utc(due_at), note[:40]), []).append(rid)
    for (due_at, note), ids in later.items():
        s.exec(_SET_MOVED, params={"ids": ids, "at": due_at, "why": note})


def reminders(
    uow: Any,
    *,
    citizen_id: int | None = None,
    draft_id: int | None = None,
    handoff_id: int | None = None,
    kinds: Iterable[str] | None = None,
    statuses: Iterable[str] | None = None,
) -> list[ReminderRec]:
    """Reminders matching every filter given, by due time."""
    stmt, params = _matching(
        "list",
        citizen_id=citizen_id,
        draft_id=draft_id,
        handoff_id=handoff_id,
        kind=kinds,
        status=statuses,
    )
    return [_rec(row) for row in _session(uow).exec(stmt, params=params)]


def sent_count(uow: Any, citizen_id: int) -> int:
    """Reminders sent to the citizen (officers' reminders about their case not counted)."""
    stmt = select(func.count()).where(
        _REM.c.citizen_id == citizen_id, _REM.c.status == SENT, _REM.c.audience == CITIZEN
    )
    return int(_session(uow).exec(stmt).one()[0])


def pref(uow: Any, citizen_id: int) -> tuple[bool, bool]:
    """(stopped, unreachable) for the citizen; (False, False) without a row."""
    row = _session(uow).exec(select(_PREF).where(_PREF.c.citizen_id == citizen_id)).first()
    return (bool(row.stopped), bool(row.unreachable)) if row is not None else (False, False)


def set_pref(uow: Any, citizen_id: int, now: datetime, **values: bool) -> None:
    """Set `stopped` and/or `unreachable` for the citizen (creating the row)."""
    unknown = set(values) - {"stopped", "unreachable"}
    if unknown:
        raise ValueError(f"not preference columns: {sorted(unknown)}")
    s = _session(uow)
    done = s.exec(
        update(_PREF).where(_PREF.c.citizen_id == citizen_id).values(updated_at=_utc(now), **values)
    )
    if done.rowcount == 0:
        row = {"stopped": False, "unreachable": False, **values}
        s.exec(insert(_PREF).values(citizen_id=citizen_id, updated_at=_utc(now), **row))

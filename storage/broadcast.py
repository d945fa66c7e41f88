"""Broadcast rows: an officer's announcement to the citizens of a commune, and one row per
recipient with its delivery state, on the unit of work's session.

A broadcast is "preview" until its officer confirms it, then "sending" (its recipient rows
exist from that moment, all "pending"), then "done"; a preview can be "cancelled".
A recipient row goes pending -> sending (claimed by one sender, committed before the
message goes out) -> sent | blocked (403) | failed. A row is never claimed twice: after a
restart the pending rows are sent and the sent ones never again. A row left "sending" by a
process that died may or may not have reached the person; it is closed as failed
("interrupted") after a timeout rather than sent a second time.

Claiming is exactly-once across processes, as for reminders (storage/reminders.py): on
PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`; on SQLite one
conditional UPDATE marks them with a token (a write as the transaction's first statement).

Rows go with their citizen (ON DELETE CASCADE): erasing a citizen's data removes them.
Functions take the `UnitOfWork` and run inside its transaction; the caller commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, Table, UniqueConstraint, func, insert, select, update
from sqlmodel import Field, SQLModel

from storage.models import UTCDateTime

if TYPE_CHECKING:
    from storage.store import Transaction

# broadcast statuses
PREVIEW, SENDING, DONE, CANCELLED = "preview", "sending", "done", "cancelled"
# recipient statuses
PENDING, CLAIMED, SENT, BLOCKED, FAILED = "pending", "sending", "sent", "blocked", "failed"
FINAL = (SENT, BLOCKED, FAILED)


class Broadcast(SQLModel, table=True):
    """One announcement. `text` is what the officer typed; `message` the text citizens get
    (rendered once, at confirmation). `chat_id`/`thread_id`: where the officer asked, where
    the progress message (`progress_message_id`, the preview turned into progress) lives."""

    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_status", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    commune_code: int | None = None
    officer_id: str
    officer_name: str = ""
    channel: str
    chat_id: str
    thread_id: int | None = None
    text: str
    message: str = ""
    status: str = PREVIEW
    skipped_stopped: int = 0  # citizens left out: they sent /tatnhac
    skipped_unreachable: int = 0  # left out: they had blocked the bot
    progress_message_id: int | None = None
    progress_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class BroadcastRecipient(SQLModel, table=True):
    """One citizen of one broadcast. `note` says why a row failed (no personal data)."""

    __tablename__ = "broadcast_recipient"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "citizen_id"),
        Index("ix_broadcast_recipient_status", "status", "broadcast_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", ondelete="CASCADE")
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    status: str = PENDING
    attempts: int = 0
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    note: str = ""


_B: Table = Broadcast.__table__  # type: ignore[attr-defined]
_R: Table = BroadcastRecipient.__table__  # type: ignore[attr-defined]


@dataclass
class BroadcastRec:
    id: int
    commune_code: int | None
    officer_id: str
    officer_name: str
    channel: str
    chat_id: str
    thread_id: int | None
    text: str
    message: str
    status: str
    skipped_stopped: int
    skipped_unreachable: int
    progress_message_id: int | None
    progress_at: datetime | None
    created_at: datetime
    confirmed_at: datetime | None
    finished_at: datetime | None


@dataclass
class Claimed:
    """A recipient row taken for sending, with where to send it."""

    id: int
    broadcast_id: int
    citizen_id: int
    attempts: int
    channel: str
    external_id: str


@dataclass
class Counts:
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.blocked + self.failed


def _session(uow: Any) -> Transaction:
    return uow._s  # the unit of work's Transaction (storage.store): same transaction


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------- broadcasts


def add(
    uow: Any,
    *,
    commune_code: int | None,
    officer_id: str,
    officer_name: str,
    channel: str,
    chat_id: str,
    thread_id: int | None,
    text: str,
    now: datetime,
) -> int:
    """A new broadcast in "preview"; returns its id."""
    result = _session(uow).exec(
        insert(_B).values(
            commune_code=commune_code,
            officer_id=officer_id,
            officer_name=officer_name[:128],
            channel=channel,
            chat_id=chat_id,
            thread_id=thread_id,
            text=text,
            message="",
            status=PREVIEW,
            skipped_stopped=0,
            skipped_unreachable=0,
            created_at=_utc(now),
        )
    )
    return int(result.inserted_primary_key[0])


def get(uow: Any, broadcast_id: int) -> BroadcastRec | None:
    row = _session(uow).exec(select(_B).where(_B.c.id == broadcast_id)).first()
    return BroadcastRec(**row._mapping) if row is not None else None


def broadcasts(uow: Any, statuses: Iterable[str] | None = None) -> list[BroadcastRec]:
    stmt = select(_B).order_by(_B.c.id)
    if statuses is not None:
        stmt = stmt.where(_B.c.status.in_(list(statuses)))
    return [BroadcastRec(**row._mapping) for row in _session(uow).exec(stmt)]


def change(uow: Any, broadcast_id: int, *, expect_status: str | None = None, **values: Any) -> bool:
    """Update a broadcast (only if it is in `expect_status`, when given); True if it was."""
    for key in ("progress_at", "confirmed_at", "finished_at"):
        if values.get(key) is not None:
            values[key] = _utc(values[key])
    stmt = update(_B).where(_B.c.id == broadcast_id)
    if expect_status is not None:
        stmt = stmt.where(_B.c.status == expect_status)
    return _session(uow).exec(stmt.values(**values)).rowcount == 1


def confirm(
    uow: Any,
    broadcast_id: int,
    citizen_ids: Iterable[int],
    now: datetime,
    *,
    message: str,
    skipped_stopped: int,
    skipped_unreachable: int,
    progress_message_id: int | None,
) -> bool:
    """Preview -> sending, with one pending row per recipient, in the caller's transaction.
    False (and nothing written) when the broadcast is no longer a preview."""
    if not change(
        uow,
        broadcast_id,
        expect_status=PREVIEW,
        status=SENDING,
        message=message,
        confirmed_at=now,
        skipped_stopped=skipped_stopped,
        skipped_unreachable=skipped_unreachable,
        progress_message_id=progress_message_id,
    ):
        return False
    rows = [
        {
            "broadcast_id": broadcast_id,
            "citizen_id": c,
            "status": PENDING,
            "attempts": 0,
            "note": "",
        }
        for c in citizen_ids
    ]
    s = _session(uow)
    for start in range(0, len(rows), 1000):
        s.exec(insert(_R), params=rows[start : start + 1000])
    return True


def take_progress(uow: Any, broadcast_id: int, now: datetime, every_seconds: float) -> bool:
    """Book the right to edit the progress message now: at most once per `every_seconds`
    for a broadcast, whichever process asks (a conditional UPDATE)."""
    limit = _utc(now) - timedelta(seconds=every_seconds)
    stmt = (
        update(_B)
        .where(_B.c.id == broadcast_id, _B.c.status == SENDING)
        .where((_B.c.progress_at.is_(None)) | (_B.c.progress_at <= limit))
        .values(progress_at=_utc(now))
    )
    return _session(uow).exec(stmt).rowcount == 1


# ----------------------------------------------------------------------------- recipients


def counts(uow: Any, broadcast_id: int) -> Counts:
    stmt = (
        select(_R.c.status, func.count())
        .where(_R.c.broadcast_id == broadcast_id)
        .group_by(_R.c.status)
    )
    out = Counts()
    for status, n in _session(uow).exec(stmt):
        out.total += int(n)
        key = {CLAIMED: "sending"}.get(status, status)
        if hasattr(out, key):
            setattr(out, key, getattr(out, key) + int(n))
    return out


def claim(uow: Any, now: datetime, limit: int = 1) -> list[Claimed]:
    """Take up to `limit` pending recipients of broadcasts being sent (oldest broadcast
    first) and mark them "sending" in this transaction; commit before sending."""
    s = _session(uow)
    live = select(_B.c.id).where(_B.c.status == SENDING)
    base = (
        select(_R.c.id)
        .where(_R.c.status == PENDING, _R.c.broadcast_id.in_(live))
        .order_by(_R.c.broadcast_id, _R.c.id)
        .limit(limit)
    )
    token = "claim:" + secrets.token_hex(8)
    if s.get_bind().dialect.name == "postgresql":
        ids = [row[0] for row in s.exec(base.with_for_update(skip_locked=True))]
        if not ids:
            return []
        where = _R.c.id.in_(ids)
    else:
        where = _R.c.id.in_(base.scalar_subquery())
    s.exec(
        update(_R)
        .where(where, _R.c.status == PENDING)
        .values(status=CLAIMED, claimed_at=_utc(now), note=token, attempts=_R.c.attempts + 1)
    )
    from storage.models import Citizen

    _C: Table = Citizen.__table__  # type: ignore[attr-defined]
    mine = (
        select(_R.c.id, _R.c.broadcast_id, _R.c.citizen_id, _R.c.attempts, _C.c.channel)
        .add_columns(_C.c.external_id)
        .join(_C, _C.c.id == _R.c.citizen_id)
        .where(_R.c.note == token, _R.c.status == CLAIMED)
        .order_by(_R.c.broadcast_id, _R.c.id)
    )
    return [Claimed(*row) for row in s.exec(mine)]


def finish(uow: Any, recipient_id: int, status: str, now: datetime, note: str = "") -> None:
    """A claimed recipient's outcome: SENT, BLOCKED, FAILED, or PENDING (try again later)."""
    if status not in (*FINAL, PENDING):
        raise ValueError(f"not a recipient outcome: {status!r}")
    values: dict[str, Any] = {"status": status, "note": note[:40]}
    if status in FINAL:
        values["done_at"] = _utc(now)
    _session(uow).exec(
        update(_R).where(_R.c.id == recipient_id, _R.c.status == CLAIMED).values(**values)
    )


def close_stale(uow: Any, before: datetime) -> int:
    """Rows left "sending" since before `before` (their sender died mid-send): failed,
    never sent again (the message may have gone out). Returns how many."""
    stmt = (
        update(_R)
        .where(_R.c.status == CLAIMED, _R.c.claimed_at < _utc(before))
        .values(status=FAILED, note="interrupted", done_at=_utc(before))
    )
    return _session(uow).exec(stmt).rowcount


def finish_broadcast(uow: Any, broadcast_id: int, now: datetime) -> bool:
    """Sending -> done when no recipient is pending or being sent; True for the one caller
    that made the change (it reports the final count)."""
    busy = select(func.count()).where(
        _R.c.broadcast_id == broadcast_id, _R.c.status.in_([PENDING, CLAIMED])
    )
    if int(_session(uow).exec(busy).one()[0]):
        return False
    return change(uow, broadcast_id, expect_status=SENDING, status=DONE, finished_at=now)


def recipients(uow: Any, broadcast_id: int) -> list[tuple[int, str, str]]:
    """(citizen id, status, note) of every recipient, in order (tests, operators)."""
    stmt = (
        select(_R.c.citizen_id, _R.c.status, _R.c.note)
        .where(_R.c.broadcast_id == broadcast_id)
        .order_by(_R.c.id)
    )
    return [(int(a), str(b), str(c)) for a, b, c in _session(uow).exec(stmt)]


# ----------------------------------------------------------------------------- audience


@dataclass
class Candidate:
    """A citizen who might receive a broadcast: their reminder switch and their latest
    draft (procedure and answers, to find their commune)."""

    citizen_id: int
    stopped: bool
    unreachable: bool
    procedure_id: str | None = None
    payload: dict | None = None


def candidates(uow: Any, channel: str, *, with_drafts: bool) -> list[Candidate]:
    """Every citizen of `channel` with their reminder switch; with `with_drafts`, also
    the procedure and answers of their most recently updated draft."""
    from storage.models import Citizen, Draft
    from storage.reminders import ReminderPref

    c: Table = Citizen.__table__  # type: ignore[attr-defined]
    p: Table = ReminderPref.__table__  # type: ignore[attr-defined]
    s = _session(uow)
    stmt = (
        select(c.c.id, p.c.stopped, p.c.unreachable)
        .select_from(c.outerjoin(p, p.c.citizen_id == c.c.id))
        .where(c.c.channel == channel)
        .order_by(c.c.id)
    )
    found = {
        int(cid): Candidate(int(cid), bool(stopped), bool(unreach))
        for cid, stopped, unreach in s.exec(stmt)
    }
    if with_drafts and found:
        d: Table = Draft.__table__  # type: ignore[attr-defined]
        drafts = (
            select(d.c.citizen_id, d.c.procedure_id, d.c.payload)
            .join(c, c.c.id == d.c.citizen_id)
            .where(c.c.channel == channel)
            .order_by(d.c.citizen_id, d.c.updated_at, d.c.id)
        )
        for cid, proc, payload in s.exec(drafts):
            cand = found.get(int(cid))
            if cand is not None:  # the last one per citizen wins: the latest
                cand.procedure_id, cand.payload = proc, payload
    return list(found.values())

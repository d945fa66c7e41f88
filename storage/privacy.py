"""Personal data in the database: re-encryption with the current key, and retention purges.

Functions take a connection or the `UnitOfWork` and run inside its transaction (except
`reencrypt`, which commits batch by batch so a large database is not one long transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table, delete, exists, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from storage import crypto
from storage.models import Citizen, Draft, Fact, Handoff

_CITIZEN: Table = Citizen.__table__  # type: ignore[attr-defined]
_DRAFT: Table = Draft.__table__  # type: ignore[attr-defined]
_FACT: Table = Fact.__table__  # type: ignore[attr-defined]
_HANDOFF: Table = Handoff.__table__  # type: ignore[attr-defined]
LIVE_CASES = ("open", "claimed")
OVER_CASES = ("closed", "withdrawn")
BATCH = 500


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------- encryption


def encrypted_columns(metadata: sa.MetaData | None = None) -> dict[str, list[str]]:
    """Every table with encrypted columns (of the models' metadata): table -> columns."""
    found: dict[str, list[str]] = {}
    for table in (metadata or SQLModel.metadata).sorted_tables:
        cols = [
            c.name
            for c in table.columns
            if isinstance(c.type, crypto.EncryptedJSON | crypto.EncryptedText)
        ]
        if cols and len(table.primary_key.columns) == 1:
            found[table.name] = cols
    return found


def _kinds(metadata: sa.MetaData | None, columns: dict[str, list[str]]) -> dict[str, dict]:
    """table -> {column: True if JSON}, from the metadata when it knows the table."""
    meta = metadata or SQLModel.metadata
    out: dict[str, dict] = {}
    for name, cols in columns.items():
        table = meta.tables.get(name)
        out[name] = {
            c: (
                table is not None
                and isinstance(table.columns[c].type, crypto.EncryptedJSON | sa.JSON)
            )
            for c in cols
        }
    return out


@dataclass
class Reencrypted:
    rows: int = 0  # rows rewritten
    values: int = 0  # values encrypted with the current key
    tables: dict[str, int] = field(default_factory=dict)


def reencrypt(
    bind: Engine | Connection,
    keyring: crypto.Keyring,
    columns: dict[str, list[str]] | None = None,
    *,
    json_columns: dict[str, set[str]] | None = None,
    pk: str = "id",
    batch: int = BATCH,
) -> Reencrypted:
    """Encrypt with the keyring's first key every value that is not already: values made
    with an older key, and values written before encryption (plain text or JSON).
    Idempotent and resumable. With an Engine each batch is its own transaction; with a
    Connection (a migration) everything runs in the caller's transaction."""
    columns = columns if columns is not None else encrypted_columns()
    if json_columns is None:
        kinds = _kinds(None, columns)
        json_columns = {t: {c for c, is_json in k.items() if is_json} for t, k in kinds.items()}
    report = Reencrypted()
    for table_name, cols in columns.items():
        jcols = json_columns.get(table_name, set())
        known = SQLModel.metadata.tables.get(table_name)
        key = known.primary_key.columns.values()[0].name if known is not None else pk
        raw = sa.table(
            table_name,
            sa.column(key, sa.Integer()),
            *(sa.column(c, sa.JSON() if c in jcols else sa.String()) for c in cols),
        )
        typed = sa.table(
            table_name,
            sa.column(key, sa.Integer()),
            *(
                sa.column(c, crypto.EncryptedJSON() if c in jcols else crypto.EncryptedText())
                for c in cols
            ),
        )
        last: Any = None
        count = 0
        while True:
            stmt = select(raw).order_by(raw.c[key]).limit(batch)
            if last is not None:
                stmt = stmt.where(raw.c[key] > last)

            args = (stmt, cols, jcols, typed, keyring, key)
            if isinstance(bind, Engine):
                with bind.begin() as conn:
                    last, n_rows, n_values = _reencrypt_batch(conn, *args)
            else:
                last, n_rows, n_values = _reencrypt_batch(bind, *args)
            count += n_rows
            report.values += n_values
            if last is None:
                break
        report.rows += count
        report.tables[table_name] = count
    return report


def _reencrypt_batch(
    conn: Connection,
    stmt: Any,
    cols: list[str],
    jcols: set[str],
    typed: Any,
    keyring: crypto.Keyring,
    pk: str,
) -> tuple[Any, int, int]:
    """One batch: rewrite the rows whose values are not under the current key. Returns
    (the batch's last key or None when there were no rows, rows rewritten, values)."""
    rows = conn.execute(stmt).all()
    done_rows = done_values = 0
    for row in rows:
        values: dict[str, Any] = {}
        for c in cols:
            value = row._mapping[c]
            if value is None or value == "":
                continue
            if crypto.is_token(value):
                if keyring.is_current(value):
                    continue
                text = keyring.decrypt(value)
                values[c] = json.loads(text) if c in jcols else text
            else:
                values[c] = value  # written before encryption
        if values:
            conn.execute(update(typed).where(typed.c[pk] == row._mapping[pk]).values(**values))
            done_rows += 1
            done_values += len(values)
    return (rows[-1]._mapping[pk] if rows else None), done_rows, done_values


# ----------------------------------------------------------------------------- retention


@dataclass
class Purged:
    drafts: int = 0
    cases: int = 0
    citizens: int = 0

    @property
    def total(self) -> int:
        return self.drafts + self.cases + self.citizens


def _session(uow: Any) -> Any:
    return uow._s  # the unit of work's Transaction (storage.store): same transaction


def purge(uow: Any, now: datetime, *, draft_days: int, case_days: int) -> Purged:
    """Delete what the retention periods no longer allow keeping:

    - drafts (any status) with no activity for `draft_days`, with their facts and
      reminders, unless a case about them is still open or claimed;
    - cases closed or withdrawn `case_days` ago or more (their reminders go with them;
      the officers' audit rows stay, without the link);
    - citizens not seen for `draft_days` who have no draft and no case left, with their
      facts (consent, unrecognised messages) and reminder preferences.
    """
    s = _session(uow)
    now = _utc(now)
    draft_cutoff = now - timedelta(days=draft_days)
    case_cutoff = now - timedelta(days=case_days)
    out = Purged()

    live_case = exists().where(
        _HANDOFF.c.draft_id == _DRAFT.c.id, _HANDOFF.c.status.in_(LIVE_CASES)
    )
    old_drafts = [
        row[0]
        for row in s.exec(select(_DRAFT.c.id).where(_DRAFT.c.updated_at < draft_cutoff, ~live_case))
    ]
    for start in range(0, len(old_drafts), BATCH):
        ids = old_drafts[start : start + BATCH]
        s.exec(update(_HANDOFF).where(_HANDOFF.c.draft_id.in_(ids)).values(draft_id=None))
        s.exec(delete(_FACT).where(_FACT.c.draft_id.in_(ids)))
        s.exec(delete(_DRAFT).where(_DRAFT.c.id.in_(ids)))
    out.drafts = len(old_drafts)

    ended = func.coalesce(_HANDOFF.c.closed_at, _HANDOFF.c.created_at)
    old_cases = s.exec(
        delete(_HANDOFF).where(_HANDOFF.c.status.in_(OVER_CASES), ended < case_cutoff)
    )
    out.cases = old_cases.rowcount

    has_draft = exists().where(_DRAFT.c.citizen_id == _CITIZEN.c.id)
    has_case = exists().where(_HANDOFF.c.citizen_id == _CITIZEN.c.id)
    idle = [
        row[0]
        for row in s.exec(
            select(_CITIZEN.c.id).where(
                _CITIZEN.c.last_seen_at < draft_cutoff, ~has_draft, ~has_case
            )
        )
    ]
    for start in range(0, len(idle), BATCH):
        ids = idle[start : start + BATCH]
        s.exec(delete(_FACT).where(_FACT.c.citizen_id.in_(ids)))
        s.exec(delete(_CITIZEN).where(_CITIZEN.c.id.in_(ids)))
    out.citizens = len(idle)
    return out

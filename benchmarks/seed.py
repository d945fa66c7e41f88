"""Seed a database with many citizens and drafts, fast, and show the hot queries' plans.

Seeding writes straight through the database driver (executemany on SQLite, COPY on
PostgreSQL) into a schema made by the real migrations. Draft payloads are real engine
states captured while planning the load (benchmarks.scripts), so rows have realistic
sizes (about 1.3 KB of JSON). Each citizen gets `drafts // citizens` drafts with a mix of
statuses; the seeded chat ids never collide with the simulated citizens'.

`hot_query_plans` runs one citizen's whole conversation through the real service on the
seeded database, records every distinct SQL statement it issued, and asks the database for
each one's plan (EXPLAIN QUERY PLAN / EXPLAIN): a full table scan shows up as such.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from typing import Any

import sqlalchemy as sa

from benchmarks.scripts import Plan
from flows.service import ConversationService
from flows.types import Command, Inbound, Press, Sender, Text
from procedures.loader import Catalog
from storage.db import normalize_url
from storage.store import SHORT_ID_ALPHABET, Store

SEED_ID_BASE = 100_000_000  # seeded chat ids: 100000000, 100000001, ...
_STATUS_MIX = (
    ("active", 30),
    ("completed", 30),
    ("submitted", 20),
    ("cancelled", 10),
    ("exited", 10),
)
_BATCH = 20_000
_SHORT_SPACE = len(SHORT_ID_ALPHABET) ** 6
_SHORT_STEP = 1_000_000_007  # coprime with 36**6: i -> i * step mod 36**6 is one-to-one


def short_id(n: int) -> str:
    """A unique 6-character short id for seeded draft number n."""
    value = (n * _SHORT_STEP + 12345) % _SHORT_SPACE
    chars = []
    for _ in range(6):
        value, rest = divmod(value, len(SHORT_ID_ALPHABET))
        chars.append(SHORT_ID_ALPHABET[rest])
    return "".join(chars)


def _statuses(rnd: random.Random, n: int) -> list[str]:
    names = [s for s, _ in _STATUS_MIX]
    weights = [w for _, w in _STATUS_MIX]
    return rnd.choices(names, weights, k=n)


def _rows(plan: Plan, citizens: int, drafts: int, seed: int = 7) -> tuple[list[tuple], list[tuple]]:
    """(citizen rows, draft rows) with explicit ids; times are aware UTC datetimes."""
    rnd = random.Random(seed)
    payloads = [p for _, p in plan.payloads]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    per = max(drafts // max(citizens, 1), 1)
    citizen_rows: list[tuple] = []
    draft_rows: list[tuple] = []
    statuses = _statuses(rnd, drafts)
    procs = [s.proc_id for s in plan.scripts]
    draft_id = 0
    for c in range(1, citizens + 1):
        created = now - dt.timedelta(days=rnd.randint(1, 365), seconds=rnd.randint(0, 86_400))
        last_seen = created + dt.timedelta(days=rnd.randint(0, 30))
        first = draft_id + 1
        mine = per if c < citizens else drafts - draft_id
        for _ in range(max(min(mine, drafts - draft_id), 0)):
            draft_id += 1
            status = statuses[draft_id - 1]
            updated = created + dt.timedelta(hours=rnd.randint(0, 24 * 30))
            draft_rows.append(
                (
                    draft_id,
                    short_id(draft_id),
                    c,
                    procs[draft_id % len(procs)],
                    1,
                    status,
                    "result" if status in ("completed", "submitted") else "questions",
                    f"Seeded Person {draft_id}",
                    payloads[draft_id % len(payloads)],
                    f"HS{draft_id:010d}" if status == "submitted" else None,
                    created,
                    updated,
                    1,
                )
            )
        session = json.dumps({"active": first if draft_id >= first else None, "turn": 3})
        citizen_rows.append(
            (
                c,
                "telegram",
                str(SEED_ID_BASE + c),
                f"Seeded {c}",
                "",
                session,
                None,
                created,
                last_seen,
                1,
            )
        )
    return citizen_rows, draft_rows


_CITIZEN_COLS = (
    "id, channel, external_id, display_name, username, session, timezone, created_at, "
    "last_seen_at, version"
)
_DRAFT_COLS = (
    "id, short_id, citizen_id, procedure_id, procedure_version, status, stage, subject, "
    "payload, dossier_code, created_at, updated_at, version"
)


def _sqlite_time(value: dt.datetime) -> str:
    # what storage.models.UTCDateTime stores on SQLite: the naive UTC wall time
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(url: str, plan: Plan, citizens: int, drafts: int) -> dict[str, Any]:
    """Migrate the database at `url`, then insert the citizens and drafts. Returns timings."""
    store = Store(url)
    t0 = time.perf_counter()
    store.upgrade()
    citizen_rows, draft_rows = _rows(plan, citizens, drafts)
    t1 = time.perf_counter()
    if store.dialect == "sqlite":
        _seed_sqlite(store, citizen_rows, draft_rows)
    else:
        _seed_postgres(url, citizen_rows, draft_rows)
    t2 = time.perf_counter()
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:  # the seed's dirty buffers, written now
            conn.exec_driver_sql("CHECKPOINT")
    store.dispose()
    # The seed wrote about 1.3 GB without syncing: left to the kernel's writeback, the
    # first load's commits wait behind it (SQLite's checkpoint fsyncs the whole file:
    # commits measured 3x slower right after the seed, the same as the small file's once
    # it was written). Years of drafts are not written in the minute before a load.
    os.sync()
    t3 = time.perf_counter()
    return {
        "citizens": len(citizen_rows),
        "drafts": len(draft_rows),
        "prepare_s": round(t1 - t0, 1),
        "insert_s": round(t2 - t1, 1),
        "settle_s": round(t3 - t2, 1),
    }


def _seed_sqlite(store: Store, citizen_rows: list[tuple], draft_rows: list[tuple]) -> None:
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        marks = ", ".join("?" * 10)
        for start in range(0, len(citizen_rows), _BATCH):
            batch = [
                (*r[:7], _sqlite_time(r[7]), _sqlite_time(r[8]), r[9])
                for r in citizen_rows[start : start + _BATCH]
            ]
            cur.executemany(f"INSERT INTO citizen ({_CITIZEN_COLS}) VALUES ({marks})", batch)
        marks = ", ".join("?" * 13)
        for start in range(0, len(draft_rows), _BATCH):
            batch = [
                (*r[:10], _sqlite_time(r[10]), _sqlite_time(r[11]), r[12])
                for r in draft_rows[start : start + _BATCH]
            ]
            cur.executemany(f"INSERT INTO draft ({_DRAFT_COLS}) VALUES ({marks})", batch)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()


def _pg_dsn(url: str) -> tuple[str, str | None]:
    """A libpq connection string and the search_path schema from a SQLAlchemy URL."""
    sa_url = sa.make_url(normalize_url(url))
    options = sa_url.query.get("options")
    schema = None
    if isinstance(options, str) and options.startswith("-csearch_path="):
        schema = options.split("=", 1)[1]
    plain = sa_url.set(drivername="postgresql", query={})
    return plain.render_as_string(hide_password=False), schema


def _seed_postgres(url: str, citizen_rows: list[tuple], draft_rows: list[tuple]) -> None:
    import psycopg

    dsn, schema = _pg_dsn(url)
    with psycopg.connect(dsn) as conn:
        if schema:
            conn.execute(f'SET search_path TO "{schema}"')
        with conn.cursor() as cur:
            with cur.copy(f"COPY citizen ({_CITIZEN_COLS}) FROM STDIN") as copy:
                for row in citizen_rows:
                    copy.write_row(row)
            with cur.copy(f"COPY draft ({_DRAFT_COLS}) FROM STDIN") as copy:
                for row in draft_rows:
                    copy.write_row(row)
            for table in ("citizen", "draft"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        conn.commit()
        conn.autocommit = True
        # finish now what autovacuum and the checkpointer would do during the load
        conn.execute("VACUUM (ANALYZE) citizen, draft")
        conn.execute("CHECKPOINT")


# ----------------------------------------------------------------------------- plans

_NAMES = (
    ("citizen by (channel, external_id)", "FROM citizen", "citizen.external_id ="),
    ("draft by short_id", "FROM draft", "draft.short_id ="),
    ("drafts of a citizen by status", "FROM draft", "draft.citizen_id ="),
    ("draft by id", "FROM draft", "draft.id ="),
    ("insert citizen", "INSERT INTO citizen", ""),
    ("insert draft", "INSERT INTO draft", ""),
    ("insert fact", "INSERT INTO fact", ""),
    ("insert handoff", "INSERT INTO handoff", ""),
    ("update citizen", "UPDATE citizen", ""),
    ("update draft", "UPDATE draft", ""),
)


def _name(sql: str) -> str:
    flat = " ".join(sql.split())
    for name, head, needle in _NAMES:
        if head in flat and needle in flat:
            return name
    return flat[:60]


def hot_query_plans(url: str, plan: Plan, catalog: Catalog) -> list[dict[str, Any]]:
    """Every distinct statement of one conversation, with the database's plan for it."""
    store = Store(url)
    seen: dict[str, Any] = {}

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            params = parameters[0] if executemany and parameters else parameters
            seen.setdefault(statement, params)

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        svc = ConversationService(store, catalog)
        sender = Sender("telegram", "explain-1", "Explain")
        script = plan.scripts[0]
        last = []
        for step in script.steps:
            for kind, value in step.events:
                if kind == "cmd":
                    name, _, arg = value[1:].partition(" ")
                    event: Any = Command(name, arg)
                elif kind == "text":
                    event = Text(value)
                else:
                    data = next(
                        b.data
                        for r in reversed(last)
                        for row in r.buttons
                        for b in row
                        if b.data.split(".", 2)[-1] == value
                    )
                    event = Press(data)
                last = svc.handle(Inbound(sender, event)).replies
        sa.event.remove(store.engine, "before_cursor_execute", capture)
        plans = []
        with store.engine.connect() as conn:
            for statement, params in seen.items():
                plans.append(_explain(conn, store.dialect, statement, params))
        return sorted(plans, key=lambda p: p["query"])
    finally:
        store.dispose()


def _explain(conn, dialect: str, statement: str, params: Any) -> dict[str, Any]:
    if dialect == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
        lines = [str(r[-1]) for r in rows]
        full = [
            line
            for line in lines
            if line.startswith("SCAN ") and " USING " not in line and "CONSTANT ROW" not in line
        ]
    else:
        rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
        lines = [str(r[0]) for r in rows]
        full = [line for line in lines if "Seq Scan" in line]
    return {
        "query": _name(statement),
        "sql": " ".join(statement.split()),
        "plan": lines,
        "full_scan": bool(full),
    }

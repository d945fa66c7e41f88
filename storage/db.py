"""Engines and the Alembic configuration.

SQLite is the embedded default: a file database in WAL mode (synchronous=NORMAL), with a
busy timeout and foreign keys on. PostgreSQL (psycopg 3) is the scale-out store.
"""

import ast
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.visitors import InternalTraversal

if TYPE_CHECKING:  # Alembic is imported only when a migration runs (0.3 s of start-up)
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 5000


def normalize_url(url: str) -> str:
    """Point plain PostgreSQL URLs at the psycopg 3 driver; leave others as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_dumps(value: Any) -> str:
    # Vietnamese text stays readable in the database instead of \\u escapes.
    return json.dumps(value, ensure_ascii=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In-memory databases answer "memory" and stay so; files switch to WAL for good.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives
        # the process crashing (it is in the WAL file), only a power cut or an OS crash
        # may lose the last ones. FULL's fsync per commit was one of the largest costs of
        # an update under load (README, Performance).
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


POOL_SIZE = 16  # connections kept open per process
POOL_OVERFLOW = 16  # more, opened for a moment when all of those are busy


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for a SQLite or PostgreSQL URL.

    Statement parameters are never logged or put into error messages (hide_parameters):
    they carry personal data.
    """
    sa_url = make_url(normalize_url(url))
    options: dict[str, Any] = {
        "echo": echo,
        "hide_parameters": True,
        "json_serializer": _json_dumps,
    }
    # Connections kept open: SQLAlchemy's default keeps 5 and closes any further one when
    # it is given back, so with more threads than that (the bot's workers, the inbox, the
    # reminders) connections were opened and closed all the time (PRAGMAs on SQLite, a
    # login on PostgreSQL). Opened when first needed, so an idle process holds few.
    pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        database = sa_url.database or ""
        in_memory = database in ("", ":memory:") or sa_url.query.get("mode") == "memory"
        if in_memory:
            # One shared connection, so every session sees the same in-memory database.
            options["poolclass"] = StaticPool
            options["connect_args"] = {"check_same_thread": False}
        else:
            options.update(pool)
            if not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # No pool_pre_ping on PostgreSQL: a round trip before every checkout. A connection the
    # server dropped fails its first statement, which storage.store.Transaction runs again
    # on a new connection (nothing else ran in that transaction yet).
    options.update(pool)
    return create_engine(sa_url, **options)


def column_param(column: Any, name: str | None = None, **kw: Any) -> Any:
    """A bind parameter with the column's type, named "b_<column>" unless `name` is given,
    for statements built once and run with `params=`. The prefix: SQLAlchemy reserves
    parameter names equal to column names in the SET / VALUES of an update or insert. The
    type is explicit so that the column's own conversion (encryption, UTC times) applies,
    wherever the parameter stands; `kw` goes to `bindparam` (`expanding=True` for a list)."""
    return sa.bindparam(name or f"b_{column.name}", type_=column.type, **kw)


class _IdList(sa.types.TypeDecorator[list[int]]):
    """A list of ids as one bound value: a PostgreSQL integer array, a JSON array on
    SQLite (read there with json_each)."""

    impl = sa.String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.ARRAY(sa.BigInteger))
        return dialect.type_descriptor(sa.String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        ids = [int(v) for v in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class AnyOf(sa.sql.expression.ColumnElement[bool]):
    """`column` is one of the ids given as the parameter `name` (a list of ints), in one
    bound value however many there are: `column = ANY(:name)` on PostgreSQL,
    `column IN (SELECT value FROM json_each(:name))` on SQLite. Unlike an expanding IN
    (one placeholder per id), the SQL text does not change with the number of ids, so a
    statement built once is compiled and converted by the driver once; with a thousand
    ids that conversion cost milliseconds per statement."""

    __visit_name__ = "any_of"
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a predicate: SQLite needs no "= 1" after it
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("param", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, name: str) -> None:
        self.column = column
        self.param = sa.bindparam(name, type_=_IdList())


@compiles(AnyOf)
def _any_of(element: AnyOf, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.param, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"


@compiles(AnyOf, "postgresql")
def _any_of_postgresql(element: AnyOf, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.param, **kw)
    return f"{column} = ANY({ids})"


def alembic_config(url: str | None = None) -> "Config":
    """An Alembic configuration built in code (no alembic.ini), usable from any directory.

    Pass the database URL to use Alembic commands directly, for example
    `alembic.command.revision(alembic_config(url), message="...", autogenerate=True)`.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


@functools.cache
def migration_heads() -> frozenset[str]:
    """The head revisions of storage/migrations/versions, read from the files' `revision`
    and `down_revision` assignments without importing Alembic (a revision that is no
    other's down_revision is a head, as for Alembic; tests/test_startup.py compares)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name, value = node.target.id, node.value
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name, value = node.targets[0].id, node.value
            else:
                continue
            if name == "revision" and value is not None:
                revisions.add(ast.literal_eval(value))
            elif name == "down_revision" and value is not None:
                down = ast.literal_eval(value)
                parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def at_heads(connection: sa.Connection) -> bool:
    """Whether the database is already at every head revision: one query, no Alembic."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    current = {row[0] for row in rows}
    return bool(current) and current == migration_heads()

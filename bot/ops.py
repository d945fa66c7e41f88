"""Operations: Prometheus metrics, `/healthz` and `/metrics`, and `motcua backup`.

Metrics (one registry per process, `REGISTRY`):

- `motcua_updates_handled_total{outcome="ok"|"error"}` and the histogram
  `motcua_update_seconds`: every update that reached the conversation service, from the
  moment its chat lock was requested until its replies were sent (`update_timer`, or
  `observe_update(seconds, ok)` for a dispatcher that times itself).
- `motcua_errors_total{type}`: failures reported to the error handler, by exception type.
- `motcua_outgoing_waiting`: sends waiting for their slot on the Application's Pacer.
- `motcua_cases{status="open"|"claimed"}`, `motcua_reminders_due`, `motcua_database_up`:
  read from the database at most every `STATE_TTL` seconds, whatever the scrape rate.
- the client library's `process_*` and `python_*` metrics.

`ops_routes(app, store)` returns the aiohttp routes; the webhook server mounts them, and in
polling mode `serve_in_polling` runs them on their own port (MOTCUA_METRICS_PORT).
Nothing here carries personal data: counts, durations and exception type names only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

STATE_TTL = 5.0  # seconds the database gauges are reused between scrapes
HEALTH_DB_TIMEOUT = 3.0  # seconds /healthz waits for the database

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

UPDATES = Counter(
    "motcua_updates_handled",
    "Updates handed to the conversation service, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "motcua_errors",
    "Failures reported to the error handler, by exception type",
    ["type"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "motcua_update_seconds",
    "Time from an update's dispatch to its last reply sent",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
for _outcome in ("ok", "error"):
    UPDATES.labels(_outcome)  # both series exist from the start (0), for rate()


def observe_update(seconds: float, ok: bool) -> None:
    """Count one handled update and its handling time."""
    UPDATES.labels("ok" if ok else "error").inc()
    LATENCY.observe(seconds)


def observe_error(error: BaseException | None) -> None:
    """Count one failure seen by the error handler (its type only)."""
    ERRORS.labels(type(error).__name__ if error is not None else "None").inc()


@contextlib.asynccontextmanager
async def update_timer(update_id: int | None = None) -> AsyncIterator[None]:
    """Time the block as one update: `async with ops.update_timer(uid), lock: ...`.
    An exception leaving the block counts as an error (and goes on)."""
    started = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        seconds = time.monotonic() - started
        observe_update(seconds, ok)
        log.debug(
            "update %s handled in %.3fs (%s)",
            update_id,
            seconds,
            "ok" if ok else "error",
            extra={"update_id": update_id, "seconds": round(seconds, 4), "ok": ok},
        )


# ----------------------------------------------------------------------------- state gauges


class _State:
    """The gauges that read the database (cached) and the Application (live)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = None
        self.app = None
        self.clock = clock
        self._lock = threading.Lock()
        self._at = -1e18
        self._values: tuple[dict[str, int], int] | None = None

    def bind(self, app, store) -> None:
        self.app, self.store = app, store
        self._at, self._values = -1e18, None

    def _read(self) -> tuple[dict[str, int], int] | None:
        """(cases by status, reminders due) or None when the database does not answer."""
        from sqlalchemy import func, select

        from storage.models import Handoff
        from storage.reminders import PLANNED, Reminder

        handoff = Handoff.__table__  # type: ignore[attr-defined]
        reminder = Reminder.__table__  # type: ignore[attr-defined]
        now = dt.datetime.now(dt.UTC)
        try:
            with self.store.transaction() as conn:
                cases = {"open": 0, "claimed": 0}
                rows = conn.exec(
                    select(handoff.c.status, func.count())
                    .where(handoff.c.status.in_(list(cases)))
                    .group_by(handoff.c.status)
                )
                for status, count in rows:
                    cases[status] = int(count)
                due = conn.exec(
                    select(func.count()).where(
                        reminder.c.status == PLANNED, reminder.c.due_at <= now
                    )
                ).scalar_one()
            return cases, int(due)
        except Exception as exc:  # reported as motcua_database_up 0
            log.warning("metrics: database not readable: %s", type(exc).__name__)
            return None

    def values(self) -> tuple[dict[str, int], int] | None:
        with self._lock:
            if self.clock() - self._at >= STATE_TTL:
                self._values = self._read()
                self._at = self.clock()
            return self._values

    def collect(self):
        if self.app is not None:
            from bot.pacing import PACER_KEY

            pacer = self.app.bot_data.get(PACER_KEY)
            yield GaugeMetricFamily(
                "motcua_outgoing_waiting",
                "Messages waiting for a send slot (Telegram's rate limits)",
                value=pacer.waiting if pacer is not None else 0,
            )
        if self.store is None:
            return
        values = self.values()
        yield GaugeMetricFamily(
            "motcua_database_up",
            "1 when the last read of the database worked",
            value=1 if values is not None else 0,
        )
        if values is None:
            return
        cases, due = values
        family = GaugeMetricFamily(
            "motcua_cases", "Cases waiting for or held by an officer", labels=["status"]
        )
        for status, count in cases.items():
            family.add_metric([status], count)
        yield family
        yield GaugeMetricFamily(
            "motcua_reminders_due", "Planned reminders whose time has come", value=due
        )


_STATE = _State()
REGISTRY.register(_STATE)


# ----------------------------------------------------------------------------- HTTP


def _database_answers(store) -> bool:
    from sqlalchemy import text

    try:
        with store.transaction() as conn:
            conn.exec(text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("healthz: database error %s", type(exc).__name__)
        return False


def bot_alive(app, *, polling: bool = False) -> bool:
    """The Application is running (and, when polling, its updater too). Answering at all
    shows the event loop is not blocked: the routes run on the bot's loop."""
    if not app.running:
        return False
    return not polling or (app.updater is not None and app.updater.running)


def ops_routes(app, store, *, alive: Callable[[], bool] | None = None) -> list:
    """aiohttp routes `GET /healthz` and `GET /metrics` for the bot `app` and its `store`.

    /healthz: 200 {"status": "ok", ...} when the database answers and `alive()` (default:
    the Application is running); 503 with the failing part otherwise."""
    from aiohttp import web

    _STATE.bind(app, store)
    is_alive = alive if alive is not None else (lambda: bot_alive(app))

    async def healthz(request: web.Request) -> web.Response:
        try:
            db_ok = await asyncio.wait_for(
                asyncio.to_thread(_database_answers, store), HEALTH_DB_TIMEOUT
            )
        except TimeoutError:
            db_ok = False
        bot_ok = is_alive()
        body = {
            "status": "ok" if db_ok and bot_ok else "fail",
            "database": "ok" if db_ok else "fail",
            "bot": "ok" if bot_ok else "fail",
        }
        return web.json_response(body, status=200 if db_ok and bot_ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        # in a thread: the cached database read must not block the bot's loop
        payload = await asyncio.to_thread(generate_latest, REGISTRY)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]


_RUNNER_KEY = "motcua_ops_runner"


def serve_in_polling(app, store, host: str, port: int) -> None:
    """Serve `ops_routes` on host:port while `app` runs under `run_polling`: started after
    the bot's own post_init, stopped at shutdown."""
    from aiohttp import web

    from bot.settings import SettingsError

    previous_init, previous_shutdown = app.post_init, app.post_shutdown

    async def post_init(application) -> None:
        if previous_init is not None:
            await previous_init(application)
        web_app = web.Application()
        web_app.add_routes(
            ops_routes(application, store, alive=lambda: bot_alive(app, polling=True))
        )
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise SettingsError(
                f"MOTCUA_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        application.bot_data[_RUNNER_KEY] = runner
        log.info("serving /healthz and /metrics on %s:%s", host, port)

    async def post_shutdown(application) -> None:
        runner = application.bot_data.pop(_RUNNER_KEY, None)
        if runner is not None:
            await runner.cleanup()
        if previous_shutdown is not None:
            await previous_shutdown(application)

    app.post_init = post_init
    app.post_shutdown = post_shutdown


# ----------------------------------------------------------------------------- backup


class BackupError(Exception):
    """One line saying why no backup was written."""


def sqlite_path(database_url: str) -> Path:
    """The file of a SQLite URL; BackupError for PostgreSQL or an in-memory database."""
    from sqlalchemy.engine import make_url

    from storage.db import normalize_url

    url = make_url(normalize_url(database_url))
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise BackupError(
            "the database is PostgreSQL: back it up with pg_dump "
            "(for example: pg_dump -Fc -f motcua.dump DBNAME)"
        )
    if backend != "sqlite":
        raise BackupError(f"cannot back up a {backend} database")
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        raise BackupError("the database is in memory: there is nothing on disk to copy")
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database).expanduser()


def backup_sqlite(source: Path, target: Path, *, overwrite: bool = False) -> tuple[Path, int]:
    """Copy the SQLite database `source` to `target` (a file, or a folder to put a dated
    file in) with SQLite's online backup API: a consistent snapshot even while the bot
    writes (WAL readers do not block writers). Written to a temporary file, checked, then
    renamed into place, readable by the owner only. Returns (path written, bytes)."""
    if not source.is_file():
        raise BackupError(f"no database file at {source}")
    if target.is_dir():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        target = target / f"{source.stem}-{stamp}.db"
    if target.exists():
        if target.resolve() == source.resolve():
            raise BackupError(f"{target} is the database itself: choose another path")
        if not overwrite:
            raise BackupError(f"{target} exists: choose another path or pass --force")
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data
    os.close(fd)
    try:
        # mode=rw: never create an empty database where the real one was expected
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=rw", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)  # all pages in one step: one read snapshot
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        if check != "ok":
            raise BackupError(f"the copy failed its check: {check}")
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target, target.stat().st_size

"""Operations: /healthz and /metrics, JSON logs, `motcua backup`, the pacer's queue.

The end-to-end test runs `motcua run` as a subprocess against the fake Bot API server,
with MOTCUA_METRICS_PORT and MOTCUA_LOG_FORMAT=json at DEBUG level, plays a whole
application that carries a CCCD number, a phone number, a name and a birth date, then
reads /metrics and /healthz over HTTP and checks every stderr line is JSON without any
of those values. The backup test copies a SQLite file while another connection writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot import ops
from bot.logs import JsonFormatter
from bot.pacing import PACER_KEY, Pacer
from bot.settings import SettingsError, load_settings
from bot.telegram import build_application
from storage.store import FactRec, Store
from tests.conftest import PG_URL
from tests.fakebot import FakeBotAPI
from tests.test_e2e_telegram import TOKEN, act, sample_actions, start_with_consent, stop_bot

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MOTCUA_METRICS_PORT", None)
    env.update(extra)
    return env


def _metrics(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the Prometheus text format."""
    values: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


# ----------------------------------------------------------------------------- end to end


async def test_polling_serves_healthz_metrics_and_json_logs(tmp_path: Path) -> None:
    proc, answers, actions = sample_actions("xac_nhan_tinh_trang_hon_nhan")
    personal = [
        str(answers["subject_id_number"]),  # the CCCD number
        str(answers["contact_phone"]),
        str(answers["contact_phone"]).replace(" ", ""),
        str(answers["contact_phone"]).replace(" ", "")[1:],
        str(answers["subject_full_name"]),
        str(answers["subject_birth_date"]),
        str(answers["contact_email"]),
        "Thu Hà",  # the Telegram profile name
        TOKEN.split(":", 1)[1],
    ]
    assert "0" in personal[0] and len(personal[0]) == 12
    port = _free_port()
    stderr_path = tmp_path / "stderr.log"
    async with FakeBotAPI(token=TOKEN) as api:
        env = _env(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{api.port}",
            DATABASE_URL=f"sqlite:///{tmp_path / 'motcua.db'}",
            MOTCUA_LOG_LEVEL="DEBUG",
            MOTCUA_LOG_FORMAT="json",
            MOTCUA_METRICS_PORT=str(port),
        )
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=(tmp_path / "stdout.log").open("wb"),
            stderr=stderr_path.open("wb"),
        )
        try:
            user = api.user(717171, first_name="Thu Hà")
            last = await start_with_consent(user, proc.id)
            last += await user.wait_quiet(0.4)
            for action in actions:
                last = await act(user, last, action)
            assert [m for m in last if m.kind == "document"], "the application did not finish"
            sent = 2 + len(actions)  # /start, the consent button, the answers
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                async with http.get(f"{base}/healthz") as r:
                    assert r.status == 200
                    assert await r.json() == {"status": "ok", "database": "ok", "bot": "ok"}
                async with http.get(f"{base}/metrics") as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"].startswith("text/plain")
                    text = await r.text()
        finally:
            await stop_bot(bot)
    assert bot.returncode == 0, stderr_path.read_text()[-2000:]

    m = _metrics(text)
    ok = m[("motcua_updates_handled_total", (("outcome", "ok"),))]
    assert ok >= sent
    assert m[("motcua_updates_handled_total", (("outcome", "error"),))] == 0
    assert m[("motcua_update_seconds_count", ())] == ok
    assert m[("motcua_update_seconds_sum", ())] > 0
    assert m[("motcua_update_seconds_bucket", (("le", "+Inf"),))] == ok
    assert m[("motcua_database_up", ())] == 1
    assert ("motcua_cases", (("status", "open"),)) in m
    assert ("motcua_reminders_due", ()) in m
    assert m[("motcua_outgoing_waiting", ())] == 0
    assert ("process_cpu_seconds_total", ()) in m

    raw = stderr_path.read_text(encoding="utf-8")
    lines = [line for line in raw.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    handled = [r for r in records if r.get("update_id") is not None and "seconds" in r]
    assert len(handled) >= sent
    assert any(r["logger"].startswith("telegram") for r in records)
    for value in personal:
        assert value not in raw, f"{value!r} was logged"
    assert (tmp_path / "stdout.log").read_text() == ""


def _fixed_state(store: Store, now: dt.datetime) -> None:
    from storage import reminders

    with store.unit_of_work() as uow:
        citizen = uow.add_citizen("telegram", "42", "", "", now)
        for reason in ("officer", "officer", "officer"):
            uow.add_handoff(citizen.id, None, reason, now)
        reminders.plan(uow, citizen.id, None, "draft", [(1, now - dt.timedelta(hours=1))], now)
        reminders.plan(uow, citizen.id, None, "later", [(1, now + dt.timedelta(days=9))], now)
        uow.commit()
        cases = uow.handoffs(citizen_id=citizen.id)
        uow.update_handoff(cases[0].id, status="claimed", claimed_by="7")
        uow.update_handoff(cases[1].id, status="closed")
        uow.commit()


def test_state_gauges_read_the_database_and_are_cached(store: Store) -> None:
    clock = [100.0]
    state = ops._State(clock=lambda: clock[0])
    state.bind(None, store)
    _fixed_state(store, dt.datetime.now(dt.UTC))
    m = {(f.name, tuple(s.labels.items())): s.value for f in state.collect() for s in f.samples}
    assert m[("motcua_cases", (("status", "open"),))] == 1
    assert m[("motcua_cases", (("status", "claimed"),))] == 1
    assert m[("motcua_reminders_due", ())] == 1
    assert m[("motcua_database_up", ())] == 1

    with store.unit_of_work() as uow:
        uow.add_handoff(uow.citizen("telegram", "42").id, None, "officer", NOW)
        uow.commit()
    assert state.values()[0]["open"] == 1  # within STATE_TTL: the cached value
    clock[0] += ops.STATE_TTL
    assert state.values()[0]["open"] == 2


def test_state_gauges_report_a_database_that_does_not_answer() -> None:
    store = Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        state = ops._State()
        state.bind(None, store)
        families = list(state.collect())
    finally:
        store.dispose()
    assert [(f.name, f.samples[0].value) for f in families] == [("motcua_database_up", 0)]


async def _get(routes: list, path: str) -> tuple[int, dict | str]:
    web_app = web.Application()
    web_app.add_routes(routes)
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get(path)
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_healthz_fails_when_bot_stopped_or_database_down(tmp_path: Path) -> None:
    app = build_application(object(), TOKEN, base_url="http://127.0.0.1:9/bot")  # not started
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    down = Store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        store.upgrade()
        status, body = await _get(ops.ops_routes(app, store), "/healthz")
        assert (status, body) == (503, {"status": "fail", "database": "ok", "bot": "fail"})
        status, body = await _get(ops.ops_routes(app, store, alive=lambda: True), "/healthz")
        assert (status, body) == (200, {"status": "ok", "database": "ok", "bot": "ok"})
        status, body = await _get(ops.ops_routes(app, down, alive=lambda: True), "/healthz")
        assert (status, body) == (503, {"status": "fail", "database": "fail", "bot": "ok"})
        app.bot_data[PACER_KEY] = Pacer()
        status, text = await _get(ops.ops_routes(app, store), "/metrics")
        assert status == 200
        assert _metrics(text)[("motcua_outgoing_waiting", ())] == 0
    finally:
        store.dispose()
        down.dispose()


async def test_pacer_reports_sends_waiting_for_their_slot() -> None:
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await release.wait()

    pacer = Pacer(clock=lambda: 0.0, sleep=sleep)
    first = asyncio.create_task(pacer.wait(5))  # goes at once
    second = asyncio.create_task(pacer.wait(5))  # one second later: waits
    third = asyncio.create_task(pacer.wait(6))  # the overall spacing: waits
    await asyncio.sleep(0)
    await first
    assert pacer.waiting == 2
    release.set()
    await asyncio.gather(second, third)
    assert pacer.waiting == 0


# ----------------------------------------------------------------------------- logs


def test_json_formatter_keeps_extras_and_drops_exception_messages() -> None:
    logger = logging.getLogger("motcua.test.json")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("update %s refused", 7, extra={"update_id": 7, "kind": "text"})
        try:
            raise ValueError("bad CCCD 001099012345")
        except ValueError:
            logger.exception("handler failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(JsonFormatter().format(r)) for r in records)
    assert first["message"] == "update 7 refused"
    assert (first["update_id"], first["kind"], first["level"]) == (7, "text", "WARNING")
    assert first["logger"] == "motcua.test.json" and first["time"].endswith("Z")
    assert second["exc_type"] == "ValueError"
    assert second["exc_where"][-1].startswith("test_ops.py:")
    assert "001099012345" not in JsonFormatter().format(records[1])


def test_ops_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MOTCUA_LOG_FORMAT", "MOTCUA_METRICS_PORT", "MOTCUA_METRICS_HOST"):
        monkeypatch.delenv(key, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("")
    s = load_settings(env_file=env_file)
    assert (s.log_format, s.metrics_port, s.metrics_host) == ("text", None, "127.0.0.1")
    env_file.write_text("MOTCUA_LOG_FORMAT=JSON\nMOTCUA_METRICS_PORT=9109\n")
    s = load_settings(env_file=env_file)
    assert (s.log_format, s.metrics_port) == ("json", 9109)
    for bad in ("MOTCUA_METRICS_PORT=0", "MOTCUA_METRICS_PORT=http", "MOTCUA_LOG_FORMAT=xml"):
        env_file.write_text(bad + "\n")
        with pytest.raises(SettingsError, match=bad.split("=")[0]):
            load_settings(env_file=env_file)


# ----------------------------------------------------------------------------- backup


def _backup(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "backup", *args],
        cwd=tmp_path,
        env=_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_is_consistent_while_another_connection_writes(tmp_path: Path) -> None:
    source = tmp_path / "motcua.db"
    store = Store(f"sqlite:///{source}")
    store.upgrade()
    committed = [0]
    started = threading.Event()
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        # every transaction adds a citizen and its one fact: a copy taken in the middle
        # of one would show a citizen without its fact
        try:
            while not stop.is_set():
                with store.unit_of_work() as uow:
                    n = committed[0]
                    now = dt.datetime.now(dt.UTC)
                    citizen = uow.add_citizen("telegram", str(n), "", "", now)
                    uow.add_facts([FactRec("Test", {"n": n}, citizen.id, None, now)])
                    uow.commit()
                committed[0] = n + 1
                if n + 1 == 50:
                    started.set()
        except BaseException as exc:  # reported below
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(60)
        before = committed[0]
        done = _backup(tmp_path, f"sqlite:///{source}", "copy.db")
        during = committed[0]
    finally:
        stop.set()
        thread.join()
        store.dispose()
    assert not failures, failures
    assert done.returncode == 0, done.stderr
    assert "backup written to copy.db" in done.stdout
    assert during > before  # the writer went on while the copy was taken

    copy = tmp_path / "copy.db"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".copy.db*"))  # no partial file left
    db = sqlite3.connect(copy)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        citizens = db.execute("SELECT count(*) FROM citizen").fetchone()[0]
        facts = db.execute("SELECT count(*) FROM fact").fetchone()[0]
        orphans = db.execute(
            "SELECT count(*) FROM citizen c WHERE NOT EXISTS "
            "(SELECT 1 FROM fact f WHERE f.citizen_id = c.id)"
        ).fetchone()[0]
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] >= 1
    finally:
        db.close()
    assert before <= citizens <= committed[0]
    assert facts == citizens and orphans == 0
    # the copy is a working database for the bot
    restored = Store(f"sqlite:///{copy}")
    try:
        restored.upgrade()
        with restored.unit_of_work() as uow:
            assert uow.citizen("telegram", "0") is not None
    finally:
        restored.dispose()


def test_backup_refusals(tmp_path: Path) -> None:
    source = tmp_path / "motcua.db"
    url = f"sqlite:///{source}"
    done = _backup(tmp_path, url, "copy.db")
    assert done.returncode == 2 and "no database file" in done.stderr
    assert not source.exists()  # not created by the attempt
    store = Store(url)
    store.upgrade()
    store.dispose()
    assert _backup(tmp_path, url, "copy.db").returncode == 0
    again = _backup(tmp_path, url, "copy.db")
    assert again.returncode == 2 and "exists" in again.stderr
    assert _backup(tmp_path, url, "copy.db", "--force").returncode == 0
    itself = _backup(tmp_path, url, "motcua.db", "--force")
    assert itself.returncode == 2 and "the database itself" in itself.stderr
    (tmp_path / "backups").mkdir()
    dated = _backup(tmp_path, url, "backups")
    assert dated.returncode == 0, dated.stderr
    assert len(list((tmp_path / "backups").glob("motcua-*.db"))) == 1
    pg = _backup(tmp_path, PG_URL, "pg.db")
    assert pg.returncode == 2 and "pg_dump" in pg.stderr
    assert not (tmp_path / "pg.db").exists()


async def test_metrics_port_in_use_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeBotAPI(token=TOKEN) as api:
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.cli",
                "run",
                cwd=tmp_path,
                env=_env(
                    TELEGRAM_BOT_TOKEN=TOKEN,
                    TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{api.port}",
                    DATABASE_URL=f"sqlite:///{tmp_path / 'motcua.db'}",
                    MOTCUA_METRICS_PORT=str(port),
                ),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _, stderr = await asyncio.wait_for(bot.communicate(), 120)
    assert bot.returncode == 2
    assert f"motcua: MOTCUA_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in stderr.decode()

"""Reminder dispatch: reminders claimed, rendered and sent per CPU second of the bot.

The real path: `motcua run` (its reminder ticker, bot/reminders.py, every second) against
the fake Bot API server, which answers at once and never paces. The database is seeded
with `count` citizens, one active draft each (benchmarks/seed.py), and one "continue your
draft" reminder per draft planned through storage.reminders.plan, all falling due a few
seconds after the bot started. CPU is the bot process's (all threads), from the moment
they fall due to the last reminder's arrival: claiming, deciding, rendering, committing
and sending, plus what an idle bot spends meanwhile (long polling, the ticker); that idle
rate is measured before they fall due and also reported taken out. The bot's own pacer
(bot/pacing.py, 25 messages/s overall, Telegram's limit) stays on: it sets the wall-clock
rate, not the CPU per reminder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from benchmarks import common, seed
from benchmarks.scripts import Plan
from storage import reminders as rows
from storage.store import Store

DUE_AFTER_S = 10.0  # the reminders fall due this long after the bot is launched
IDLE_S = 3.0  # the idle CPU rate is measured over this long before they fall due
TIMEZONE = "Asia/Ho_Chi_Minh"


def _quiet_hours_elsewhere(now: dt.datetime) -> str:
    """MOTCUA_QUIET_HOURS that do not cover the next hours here (the run is not moved)."""
    hour = now.astimezone(ZoneInfo(TIMEZONE)).hour
    return f"{(hour + 6) % 24}-{(hour + 7) % 24}"


def prepare(url: str, plan: Plan, count: int, due_at: dt.datetime) -> list[int]:
    """Seed `count` citizens with one active draft each and plan one draft reminder per
    draft at `due_at`. Returns the citizens' chat ids."""
    seed.seed(url, plan, citizens=count, drafts=count)
    store = Store(url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE draft SET status = 'active', stage = 'questions'"))
        now = dt.datetime.now(dt.UTC)
        with store.unit_of_work() as uow:
            ids = uow._s.exec(sa.text("SELECT id, citizen_id FROM draft")).all()  # noqa: SLF001
            for draft_id, citizen_id in ids:
                rows.plan(uow, citizen_id, draft_id, "draft", [(1, due_at)], now)
            uow.commit()
        with store.engine.connect() as conn:
            chats = conn.execute(sa.text("SELECT external_id FROM citizen")).scalars().all()
    finally:
        store.dispose()
    return [int(c) for c in chats]


def _statuses(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            found = conn.execute(sa.text("SELECT status, COUNT(*) FROM reminder GROUP BY status"))
            return {status: n for status, n in found}
    finally:
        store.dispose()


async def run_reminders(folder: Path, plan: Plan, database_url: str, count: int) -> dict:
    t_seed = time.monotonic()
    chats = prepare(database_url, plan, count, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    seed_s = time.monotonic() - t_seed
    due_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DUE_AFTER_S)
    store = Store(database_url)
    try:  # due DUE_AFTER_S from now, through the same function the flows use
        with store.unit_of_work() as uow:
            planned = uow._s.exec(  # noqa: SLF001
                sa.text("SELECT citizen_id, draft_id FROM reminder WHERE status = 'planned'")
            ).all()
            for citizen_id, draft_id in planned:
                rows.plan(uow, citizen_id, draft_id, "draft", [(1, due_at)], due_at)
            uow.commit()
    finally:
        store.dispose()
    async with common.BenchAPI() as api:
        for chat in chats:
            api.user(chat, first_name="Seeded")
        env = common.bot_env(api, database_url)
        env.update(
            MOTCUA_REMINDER_TICK_SECONDS="1",
            MOTCUA_REMINDER_BATCH=str(max(count, 1)),
            MOTCUA_QUIET_HOURS=_quiet_hours_elsewhere(due_at),
            MOTCUA_TIMEZONE=TIMEZONE,
            **common.PACING_OFF,  # the dispatch cost, not Telegram's pace
        )
        proc = common.launch(common.motcua_command(), env, folder / "reminders.log", folder)
        try:
            await common.wait_first_poll(api, proc)
            # idle for IDLE_S before they fall due (the start-up warm-up is over by then):
            # what the bot spends doing nothing
            wait = (due_at - dt.datetime.now(dt.UTC)).total_seconds() - 0.1
            await asyncio.sleep(max(wait - IDLE_S, 0.0))
            t0, cpu0 = time.monotonic(), common.cpu_seconds(proc.pid)
            await asyncio.sleep(IDLE_S)
            t_due, cpu_due = time.monotonic(), common.cpu_seconds(proc.pid)
            boxes = [api.outbox(chat) for chat in chats]
            deadline = time.monotonic() + count / 10 + 30
            while time.monotonic() < deadline:
                if sum(len(box) for box in boxes) >= count:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the bot exited with {proc.returncode}")
                await asyncio.sleep(0.02)
            t1, cpu1 = time.monotonic(), common.cpu_seconds(proc.pid)
            peak = common.peak_rss_mb(proc.pid)
        finally:
            await common.stop_process(proc)
    messages = [m for box in boxes for m in box]
    sent = len(messages)
    right = sum(1 for box in boxes if len(box) == 1 and box[0].buttons)
    arrivals = sorted(m.at for m in messages)
    idle_per_s = (cpu_due - cpu0) / max(t_due - t0, 1e-9)
    cpu = max(cpu1 - cpu_due, 1e-9)
    net = max(cpu - idle_per_s * (t1 - t_due), 1e-9)
    return {
        "reminders": count,
        "sent": sent,
        "right": right,
        "cpu_s": round(cpu, 2),
        "idle_cpu_per_s": round(idle_per_s, 3),
        "per_cpu_s": round(sent / cpu, 1),
        "per_cpu_s_net_of_idle": round(sent / net, 1),
        "wall_per_s": round((sent - 1) / (arrivals[-1] - arrivals[0]), 1) if sent > 1 else 0.0,
        "peak_rss_mb": round(peak, 1),
        "seed_s": round(seed_s, 1),
        "rows": _statuses(database_url),
        "log_errors": sum(
            1
            for line in (folder / "reminders.log").read_text(errors="replace").splitlines()
            if " ERROR " in line
        ),
    }

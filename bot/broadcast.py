"""The broadcast sender: a job on python-telegram-bot's JobQueue that looks for broadcasts
being sent (flows/broadcast.py) and drains them in a background task.

Every `tick_seconds` the job asks whether a broadcast is being sent; if so, and no drain is
running in this process, it starts one with `Application.create_task` (so `app.stop()`
waits for it: the drain notices the application stopping, finishes the messages in flight,
records them, and ends; the rest stay pending for the next start). A drain runs `workers`
senders, each: claim one recipient (committed as "sending"), send through the shared
Pacer (`pacer_for(app)`: ≤ 1 message per second per chat, ~25 per second overall, shared
with every other sender of the process), record the outcome. A progress coroutine edits
the progress message at most every `progress_seconds` (officers' groups allow 20
messages a minute, edits included) and, when nothing is left, posts the final count.

Errors, per message: 429 waits `retry_after` (and tells the Pacer) and tries again; 403
(blocked, deactivated) is "blocked" and marks the citizen unreachable; 400 is "failed";
a connection error before the request was sent is tried again (up to `attempts`); a
timeout is "failed", not retried: the message may have arrived, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable

from telegram import ReplyParameters
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, ContextTypes

from bot.pacing import Pacer, pacer_for
from flows.broadcast import Broadcasts, Edit, Job
from storage import broadcast as rows

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0
RETRY_AFTER_TRIES = 5
NETWORK_BACKOFF = 1.0
PROGRESS_POLL = 0.5  # seconds between looks at the progress (edits are rarer)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.asynccontextmanager
async def _paced(pacer: Pacer, chat_id: int) -> AsyncIterator[None]:
    """Send inside the chat's next slot of the shared Pacer."""
    slot = getattr(pacer, "slot", None)
    if slot is not None:
        async with slot(chat_id):
            yield
    else:
        await pacer.wait(chat_id)
        yield


def _seconds(err: RetryAfter) -> float:
    wait = err.retry_after
    return wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)


async def _call(pacer: Pacer, chat_id: int, call: Callable) -> None:
    """One Bot API call in a paced slot; 429s are waited out and retried."""
    for attempt in range(1, RETRY_AFTER_TRIES + 1):
        try:
            async with _paced(pacer, chat_id):
                await call()
            return
        except RetryAfter as err:
            seconds = _seconds(err)
            if attempt == RETRY_AFTER_TRIES or seconds > MAX_RETRY_AFTER:
                raise
            defer = getattr(pacer, "defer", None)
            if defer is not None:
                defer(chat_id, seconds)
            log.warning("broadcast rate limited by Telegram, retrying in %.1fs", seconds)
            await asyncio.sleep(seconds)


async def send_one(bot, pacer: Pacer, job: Job) -> tuple[str, str]:
    """Send one citizen's message; (recipient status, note)."""
    chat_id = int(job.target.chat_id)
    try:
        await _call(pacer, chat_id, lambda: bot.send_message(chat_id=chat_id, text=job.text))
        return rows.SENT, ""
    except Forbidden:
        return rows.BLOCKED, "forbidden"
    except RetryAfter:
        return rows.FAILED, "rate_limited"
    except BadRequest:
        return rows.FAILED, "bad_request"
    except TimedOut:
        return rows.FAILED, "timeout"  # it may have arrived: never sent again
    except NetworkError:  # no connection, or a 5xx: not sent, tried again (up to `attempts`)
        await asyncio.sleep(NETWORK_BACKOFF)
        return rows.PENDING, "network"
    except TelegramError:
        return rows.FAILED, "error"


async def send_edit(bot, pacer: Pacer, edit: Edit) -> None:
    """Edit a progress message, then post the final report if there is one."""
    chat_id = int(edit.target.chat_id)
    if edit.message_id is not None:
        try:
            await _call(
                pacer,
                chat_id,
                lambda: bot.edit_message_text(
                    chat_id=chat_id, message_id=edit.message_id, text=edit.text
                ),
            )
        except BadRequest as err:  # "message is not modified", "message to edit not found"
            log.debug("progress edit refused: %s", err.message)
        except TelegramError as err:
            log.warning("progress edit failed: %s", type(err).__name__)
    if edit.final:
        where: dict = {}
        if edit.target.thread_id is not None:
            where["message_thread_id"] = edit.target.thread_id
        if edit.message_id is not None:
            where["reply_parameters"] = ReplyParameters(
                edit.message_id, allow_sending_without_reply=True
            )
        try:
            await _call(
                pacer,
                chat_id,
                lambda: bot.send_message(chat_id=chat_id, text=edit.final, **where),
            )
        except TelegramError as err:
            log.warning("final broadcast report not sent: %s", type(err).__name__)


async def drain(
    bot,
    broadcasts: Broadcasts,
    pacer: Pacer,
    *,
    running: Callable[[], bool] = lambda: True,
    clock: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Send until no recipient is pending (or `running()` turns false); returns how many
    messages went out."""
    sent = 0
    await asyncio.to_thread(broadcasts.close_stale, clock())

    async def worker() -> None:
        nonlocal sent
        while running():
            jobs = await asyncio.to_thread(broadcasts.claim, clock(), 1)
            if not jobs:
                return
            for job in jobs:
                if job.target.channel != "telegram" or not job.target.chat_id.isdigit():
                    status, note = rows.FAILED, "not_telegram"
                else:
                    status, note = await send_one(bot, pacer, job)
                await asyncio.to_thread(broadcasts.outcome, job, status, clock(), note)
                sent += status == rows.SENT

    shown: dict[tuple[str, int | None], str] = {}

    async def progress() -> None:
        for edit in await asyncio.to_thread(broadcasts.progress, clock()):
            key = (edit.target.chat_id, edit.message_id)
            if shown.get(key) == edit.text and not edit.final:
                continue  # nothing changed since the last edit
            shown[key] = edit.text
            await send_edit(bot, pacer, edit)

    workers = [asyncio.create_task(worker()) for _ in range(broadcasts.cfg.workers)]
    try:
        while not all(w.done() for w in workers):
            await asyncio.wait(workers, timeout=PROGRESS_POLL)
            await progress()
    finally:
        await asyncio.gather(*workers, return_exceptions=True)
    for w in workers:
        if w.exception() is not None:
            log.error("broadcast sender failed: %s", type(w.exception()).__name__)
    await progress()
    return sent


def schedule(
    app: Application,
    broadcasts: Broadcasts,
    *,
    seconds: float | None = None,
    first: float = 1.0,
    clock: Callable[[], dt.datetime] = utcnow,
) -> None:
    """Look for broadcast work every `seconds` (the config's `tick_seconds` by default) in
    the application's job queue; drain it in a task `app.stop()` waits for."""
    if app.job_queue is None:
        raise RuntimeError("python-telegram-bot's job queue is missing (install PTB[job-queue])")
    pacer = pacer_for(app)
    current: list[asyncio.Task] = []

    async def job(context: ContextTypes.DEFAULT_TYPE) -> None:
        if current and not current[0].done():
            return
        current.clear()
        try:
            if not app.running or not await asyncio.to_thread(broadcasts.busy):
                return
        except Exception as exc:  # the database is away: the next tick tries again
            log.error("broadcast check failed: %s", type(exc).__name__)
            return
        current.append(
            app.create_task(
                drain(context.bot, broadcasts, pacer, running=lambda: app.running, clock=clock)
            )
        )

    interval = seconds if seconds is not None else broadcasts.cfg.tick_seconds
    app.job_queue.run_repeating(job, interval=interval, first=first, name="broadcast")

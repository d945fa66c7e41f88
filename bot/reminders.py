"""The reminder ticker: an APScheduler job (python-telegram-bot's JobQueue) that drains due
reminder rows and sends them.

The rows and the decisions are flows/reminders.py's; this job only calls
`Reminders.dispatch(now)` in a worker thread and sends the deliveries. Its first run comes
a moment after start, so reminders that fell due while the bot was down go out once, then.
A 403 (the person blocked the bot) marks the citizen unreachable and cancels their
reminders; an officer's reminder refused by their private chat (they never opened one with
the bot) goes to their officers' group instead. Other errors are logged (type only) and
the rest go on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.pacing import Pacer, pacer_for
from bot.telegram import Deliverer
from flows.reminders import Reminders
from flows.types import Delivery

log = logging.getLogger(__name__)

FIRST_RUN_SECONDS = 1.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def send_reminders(
    bot,
    reminders: Reminders,
    deliverer: Deliverer,
    deliveries: list[Delivery],
    now: dt.datetime,
    pacer: Pacer | None = None,
) -> int:
    """Send the deliveries (paced); returns how many went out. A deliverer with a pacer
    books each message itself; `pacer` is only for one without (never both: no double
    booking)."""
    sent = 0
    for d in deliveries:
        try:
            if (
                pacer is not None
                and deliverer.pacer is None
                and d.target.chat_id.lstrip("-").isdigit()
            ):
                await pacer.wait(int(d.target.chat_id))
            await deliverer.send(bot, d)
            sent += 1
        except Forbidden:
            fallback = getattr(d, "fallback", None)  # an officer's reminder: their group
            if fallback is None:
                await asyncio.to_thread(
                    reminders.unreachable, d.target.channel, d.target.chat_id, now
                )
                continue
            try:
                if pacer is not None and fallback.target.chat_id.lstrip("-").isdigit():
                    await pacer.wait(int(fallback.target.chat_id))
                await deliverer.send(bot, fallback)
                sent += 1
            except TelegramError as err:
                log.warning("reminder not sent: %s", type(err).__name__)
        except TelegramError as err:
            log.warning("reminder not sent: %s", type(err).__name__)
    return sent


async def tick(
    bot,
    reminders: Reminders,
    deliverer: Deliverer,
    clock: Callable[[], dt.datetime] = utcnow,
    pacer: Pacer | None = None,
) -> int:
    """One run of the ticker: claim what is due now and send it."""
    now = clock()
    deliveries = await asyncio.to_thread(reminders.dispatch, now)
    return await send_reminders(bot, reminders, deliverer, deliveries, now, pacer)


def schedule(
    app: Application,
    reminders: Reminders,
    seconds: float,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    first: float = FIRST_RUN_SECONDS,
) -> None:
    """Run `tick` every `seconds` in the application's job queue (first run after `first`)."""
    if app.job_queue is None:
        raise RuntimeError("python-telegram-bot's job queue is missing (install PTB[job-queue])")
    # the Application's one pacer, shared with the other senders (bot/ops.py reports its
    # queue); the deliverer books every message on it
    deliverer = Deliverer(app.bot_data.get("motcua_handler"), pacer_for(app))

    async def job(context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await tick(context.bot, reminders, deliverer, clock)
        except Exception as exc:  # the next tick tries again
            log.error("reminder tick failed: %s", type(exc).__name__)

    app.job_queue.run_repeating(job, interval=seconds, first=first, name="reminders")

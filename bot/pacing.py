"""Outbound pacing: keep bulk sends inside Telegram's limits.

Telegram asks bots to send at most about one message per second to one private chat, 20 per
minute to one group, and about 30 per second overall (more and it answers 429 "retry
after", which `bot.telegram._with_retry` honours). The reminder ticker can fall due for many
people at once (07:00, when the quiet hours end), so it reserves a slot here before each
message: slots are handed out in order, evenly spaced overall and per chat.

Used by bot/reminders.py. Conversation replies are answers to a person's own message and
are not paced here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

PRIVATE_INTERVAL = 1.0  # seconds between two messages to one private chat
GROUP_INTERVAL = 3.0  # 20 a minute to one group
OVERALL_PER_SECOND = 25.0  # a margin under Telegram's ~30/s


class Pacer:
    """Hands out send times: `await pacer.wait(chat_id)` returns when a message to that chat
    may go. Safe for concurrent callers of one event loop."""

    def __init__(
        self,
        *,
        private_interval: float = PRIVATE_INTERVAL,
        group_interval: float = GROUP_INTERVAL,
        per_second: float = OVERALL_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.private_interval = private_interval
        self.group_interval = group_interval
        self.spacing = 1.0 / per_second
        self.clock = clock
        self.sleep = sleep
        self._next_any = 0.0
        self._next_chat: dict[int, float] = {}

    def reserve(self, chat_id: int) -> float:
        """The time (on `clock`) the next message to `chat_id` may be sent; books it."""
        now = self.clock()
        at = max(now, self._next_any, self._next_chat.get(chat_id, 0.0))
        self._next_any = at + self.spacing
        interval = self.group_interval if chat_id < 0 else self.private_interval
        self._next_chat[chat_id] = at + interval
        # forget chats whose slot has passed, so the table stays small
        if len(self._next_chat) > 10_000:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        return at

    async def wait(self, chat_id: int) -> None:
        delay = self.reserve(chat_id) - self.clock()
        if delay > 0:
            await self.sleep(delay)


PACER_KEY = "motcua_pacer"


def pacer_for(app) -> Pacer:
    """The one Pacer of an Application (kept in `app.bot_data`): every sender of the
    process (conversation replies, deliveries, reminders, broadcasts) books its slots on
    it, so together they stay inside Telegram's limits."""
    pacer = app.bot_data.get(PACER_KEY)
    if pacer is None:
        pacer = app.bot_data[PACER_KEY] = Pacer()
    return pacer

"""Outbound pacing: keep bulk sends inside Telegram's limits.

Telegram asks bots to send at most about one message per second to one private chat, 20 per
minute to one group, and about 30 per second overall (more and it answers 429 "retry
after", which `bot.telegram._with_retry` honours). The reminder ticker can fall due for many
people at once (07:00, when the quiet hours end), and a conversation reply can be several
messages (a long text, a PDF and its text), so every message the bot sends books a slot
here (`async with pacer.slot(chat_id): send`, done by bot/telegram.py's senders): one
message per chat at a time, in call order; the chat's next message `interval` after the
previous one reached Telegram; overall evenly spaced, counted among messages ready to go
(a chat waiting for its own interval holds up no other chat). A single reply after a
quiet second goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

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
        self.spacing = 1.0 / per_second if per_second > 0 else 0.0  # 0: no overall limit
        self.clock = clock
        self.sleep = sleep
        self._next_any = 0.0
        self._next_chat: dict[int, float] = {}
        self._waiting = 0
        self._locks: dict[int, asyncio.Lock] = {}  # chats with a send booked or in flight
        self._users: dict[int, int] = {}

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
        """Return when a message to `chat_id` may go, and book it (the chat's next slot
        counts from now). Prefer `slot`: it counts from when the send has finished."""
        async with self.slot(chat_id):
            pass

    @contextlib.asynccontextmanager
    async def slot(self, chat_id: int) -> AsyncIterator[None]:
        """Send one message to `chat_id` inside this block. It is entered when the chat's
        previous message is done plus its interval, and the overall spacing allows; one
        block per chat at a time, in call order. The chat's next slot comes `interval`
        after this block ends (a slow request cannot squeeze two messages together)."""
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        self._users[chat_id] = self._users.get(chat_id, 0) + 1
        self._waiting += 1
        queued = True
        try:
            async with lock:
                # the chat's own interval (longer if a 429 `defer`s it meanwhile)
                target = self._next_chat.get(chat_id, 0.0)
                while (delay := target - self.clock()) > 0:
                    await self.sleep(delay)
                    if self._next_chat.get(chat_id, 0.0) <= target:
                        break
                    target = self._next_chat[chat_id]
                # then the overall spacing, among messages that are ready to go
                at = max(self.clock(), self._next_any)
                self._next_any = at + self.spacing
                if (delay := at - self.clock()) > 0:
                    await self.sleep(delay)
                self._waiting -= 1
                queued = False
                try:
                    yield
                finally:
                    self._done(chat_id)
        finally:
            if queued:
                self._waiting -= 1
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id]
                del self._locks[chat_id]

    def _done(self, chat_id: int) -> None:
        now = self.clock()
        interval = self.group_interval if chat_id < 0 else self.private_interval
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), now + interval)
        # forget chats whose slot has passed, so the table stays small
        if len(self._next_chat) > 10_000:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}

    def defer(self, chat_id: int, seconds: float) -> None:
        """Telegram answered 429 "retry after `seconds`" for this chat: no message to it
        before then (the retried one included)."""
        until = self.clock() + seconds
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), until)

    @property
    def waiting(self) -> int:
        """How many sends are waiting for their slot (`slot`, `wait`): the outgoing
        queue (bot/ops.py reports it as motcua_outgoing_waiting)."""
        return self._waiting


PACER_KEY = "motcua_pacer"


def pacer_for(app) -> Pacer:
    """The one Pacer of an Application (kept in `app.bot_data`): every sender of the
    process (conversation replies, deliveries, reminders, broadcasts) books its slots on
    it, so together they stay inside Telegram's limits."""
    pacer = app.bot_data.get(PACER_KEY)
    if pacer is None:
        pacer = app.bot_data[PACER_KEY] = Pacer()
    return pacer

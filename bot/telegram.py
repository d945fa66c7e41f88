"""Telegram transport: python-telegram-bot as a pipe, nothing more.

Each update becomes a transport-neutral `flows.types.Inbound`; the handler (the conversation
service) answers with an `Outbound`, and its replies are sent back in order. No conversation
state lives here: no ConversationHandler, no persistence. All user-facing text comes from the
handler.

Concurrency: the Application runs updates concurrently; a per-chat lock keeps the updates of
one chat in arrival order while different chats proceed in parallel. The handler is
synchronous (database I/O) and runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import logging
import re
import sys
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from telegram import (
    CallbackQuery,
    InputFile,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes, TypeHandler
from telegram.warnings import PTBDeprecationWarning

from bot import ops
from bot.http import AiohttpRequest, call_raw
from bot.inbox import POLL_READ_SLACK, Inbox, InboxUpdater
from bot.pacing import PACER_KEY, Pacer, pacer_for
from flows.types import (
    Attachment,
    Command,
    Delivery,
    Event,
    Inbound,
    Origin,
    Other,
    Outbound,
    Press,
    Reply,
    Sender,
    Text,
)

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096  # characters (UTF-16 code units) per message
CAPTION_LIMIT = 1024
NOTICE_LIMIT = 200  # callback query answer text
MAX_RETRY_AFTER = 60.0  # seconds we are willing to wait on a 429 before giving up
SEND_ATTEMPTS = 5  # calls of one request answered 429 before giving up
NETWORK_BACKOFF = (0.5, 1.5, 4.0)  # waits before the retries after a 5xx, timeout, lost link
# Refusals that are expected in normal use and need nothing done (logged at debug by name).
_HARMLESS = {
    "message is not modified": "not modified",
    "query is too old": "query too old",
    "query id is invalid": "query too old",
    "message to edit not found": "message to edit not found",
    "message can't be edited": "cannot be edited",
}
# Updates handled at once, and as many HTTP connections to the Bot API (so no request ever
# waits for a connection). With httpx, PTB's default pool of 256 spent more CPU on
# httpcore's pool bookkeeping than on the conversation; the bot now uses aiohttp
# (bot/http.py) and keeps the same bound. 24 in flight keep one process busy up to
# ~100 ms round trips to the Bot API (a press takes three calls); farther away, raise it
# (README, Performance).
MAX_CONCURRENT_UPDATES = 24  # MOTCUA_CONCURRENT_UPDATES (bot/settings.py)
_THREADS_KEY = "motcua_worker_threads"

# httpcore (1.0.x) runs `import sniffio` on every request; when sniffio is not installed
# (anyio >= 4.11 no longer brings it) that failed import searches sys.path each time and
# cost a fifth of the bot's CPU under load (encode/httpcore discussion #1102).
# A None entry in sys.modules makes the import fail at once; nothing changes when sniffio
# is installed. The bot's Bot API calls no longer go through httpx (bot/http.py), so this
# only matters for httpx used elsewhere (PTB still imports it); it costs nothing.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

# Message content kinds reported as Other(kind), checked in this order (an animation also
# carries `document`, a venue also carries `location`).
_CONTENT_KINDS = (
    "animation",
    "sticker",
    "photo",
    "voice",
    "video_note",
    "video",
    "audio",
    "document",
    "venue",
    "location",
    "contact",
    "poll",
    "dice",
    "game",
    "story",
    "paid_media",
    "invoice",
    "giveaway",
    "checklist",
)

_HANDLER_KEY = "motcua_handler"
WEBHOOK_KEY = "motcua_webhook"  # bot_data flag: served by webhook (keep the webhook set)
_COMMAND_RE = re.compile(r"/(\S*)\s*(.*)", re.DOTALL)

T = TypeVar("T")


class Handler(Protocol):
    """What the transport needs from the conversation service.

    Optional, used when present: `record_sent(tag, chat_id, message_id, thread_id)` (a
    Delivery with `record=tag` was sent), `tick() -> Outbound` (periodic work, run by
    the job queue when `build_application(tick_seconds=...)` is given) and
    `unreachable(channel, external_id)` (a private chat answered 403)."""

    def handle(self, inbound: Inbound) -> Outbound: ...

    def commands(self) -> list[tuple[str, str]]: ...


# ----------------------------------------------------------------------------- inbound


def _command(text: str) -> Command | None:
    """Parse "/Start@SomeBot rest of line" into Command("start", "rest of line")."""
    match = _COMMAND_RE.match(text)
    if match is None:
        return None
    name = match.group(1).split("@", 1)[0].lower()
    if not name:
        return None
    return Command(name=name, arg=match.group(2).strip())


def _content_kind(message: Message) -> str | None:
    for kind in _CONTENT_KINDS:
        if getattr(message, kind, None):
            return kind
    return None


def update_to_inbound(update: Update, groups: frozenset[int] = frozenset()) -> Inbound | None:
    """Translate one update into an Inbound event, or None when it is not for the service.

    Private chats are handled, and the groups in `groups` (the officers' groups: their
    events carry `Origin(group=True)`). Other groups, channel posts, polls, membership
    changes, service messages and updates without a chat or a user are ignored.
    """
    chat = update.effective_chat
    user = update.effective_user
    if chat is None or user is None:
        return None
    group = chat.type in (ChatType.GROUP, ChatType.SUPERGROUP) and chat.id in groups
    if chat.type != ChatType.PRIVATE and not (group and not user.is_bot):
        return None
    if group and update.callback_query is None and update.message is None:
        return None  # edits and the rest, in a group: nothing to relay

    event: Event | None = None
    if update.callback_query is not None:
        if update.callback_query.data is None:
            return None  # game callbacks carry no data
        event = Press(update.callback_query.data)
    elif update.edited_message is not None:
        event = Other("edited")
    elif update.message is not None:
        message = update.message
        if message.text is not None:
            text = message.text
            if text.startswith("/"):
                event = _command(text) or Text(text)
            else:
                event = Text(text)
        else:
            kind = _content_kind(message)
            if kind is not None:
                event = Other(kind)
    if event is None:
        return None

    sender = Sender(
        channel=CHANNEL,
        external_id=str(user.id if group else chat.id),
        display_name=user.full_name,
        username=user.username or "",
    )
    return Inbound(sender=sender, event=event, origin=_origin(update, group))


def _origin(update: Update, group: bool) -> Origin:
    """Where the event's message sits: chat, forum topic, message id, what it answers."""
    chat = update.effective_chat
    query = update.callback_query
    message = query.message if query is not None else update.message
    if not isinstance(message, Message):
        return Origin(chat_id=str(chat.id) if chat else "", group=group)
    thread = message.message_thread_id if message.is_topic_message else None
    replied = message.reply_to_message if query is None else None
    if replied is not None and replied.forum_topic_created is not None:
        replied = None  # a message in a topic "answers" the topic's first message
    author = replied.from_user if replied is not None else None
    return Origin(
        chat_id=str(message.chat.id),
        group=group,
        thread_id=thread,
        message_id=message.message_id,
        reply_to_id=replied.message_id if replied is not None else None,
        reply_to_text=(replied.text or replied.caption or "") if replied is not None else "",
        reply_to_user=str(author.id) if author is not None else "",
        reply_to_name=author.full_name if author is not None else "",
        caption=(message.caption or "") if query is None else "",
    )


# ----------------------------------------------------------------------------- outbound


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """Number of characters of `text` that fit in `limit` UTF-16 code units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split text into messages of at most `limit` UTF-16 units, preferring paragraph, then
    line, then word boundaries. Returns no empty or whitespace-only pieces."""
    pieces: list[str] = []
    rest = text
    while _utf16_len(rest) > limit:
        window = _fitting_prefix(rest, limit)
        cut = -1
        for separator in ("\n\n", "\n", " "):
            position = rest.rfind(separator, 0, window)
            if position > 0:
                cut = position
                break
        if cut <= 0:
            head, rest = rest[:window], rest[window:]
        else:
            head, rest = rest[:cut], rest[cut:].lstrip("\n ")
        if head.strip():
            pieces.append(head.rstrip())
    if rest.strip():
        pieces.append(rest)
    return pieces


def keyboard(reply: Reply) -> dict | None:
    """The reply's buttons as the Bot API's JSON (an inline keyboard): sent as they are,
    by `call_raw` and by PTB's methods alike, with no objects built."""
    if not reply.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": b.data} for b in row] for row in reply.buttons
        ]
    }


def _retry_after(err: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22.2+ warns that this int becomes a timedelta in v23; accept both.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = err.retry_after
    return wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)


def harmless(err: BadRequest) -> str | None:
    """The name of an expected refusal ("not modified", "query too old", ...), else None."""
    text = err.message.lower()
    return next((name for key, name in _HARMLESS.items() if key in text), None)


async def _with_retry(
    call: Callable[[], Awaitable[T]], pacer: Pacer | None = None, chat_id: int | None = None
) -> T:
    """Run one Bot API call. With a `pacer`, the call is one message to `chat_id`: each
    attempt books a slot on the pacer first.

    429: wait `retry_after` (the chat is deferred on the pacer) and retry, up to
    SEND_ATTEMPTS calls. 5xx, timeouts and lost connections (NetworkError, TimedOut):
    retry after NETWORK_BACKOFF. A timeout after the request went out may mean Telegram
    did deliver it, so a retried send can show twice: we prefer that to losing it.
    Anything else (400, 403, ...) is raised at once."""
    limited = failed = 0
    while True:
        try:
            if pacer is None or chat_id is None:
                return await call()
            async with pacer.slot(chat_id):
                return await call()
        except RetryAfter as err:
            seconds = _retry_after(err)
            limited += 1
            if limited >= SEND_ATTEMPTS or seconds > MAX_RETRY_AFTER:
                raise
            log.warning("rate limited by Telegram, retrying in %.1fs", seconds)
            if pacer is not None and chat_id is not None:
                pacer.defer(chat_id, seconds)  # the retry's slot comes after the wait
            else:
                await asyncio.sleep(seconds)
        except BadRequest:
            raise
        except NetworkError as err:  # TimedOut, 5xx, connection errors
            if failed >= len(NETWORK_BACKOFF):
                raise
            delay = NETWORK_BACKOFF[failed]
            failed += 1
            log.warning(
                "Telegram request failed (%s), retry %d in %.1fs", type(err).__name__, failed, delay
            )
            await asyncio.sleep(delay)


async def _send_attachment(
    bot, chat_id: int, attachment: Attachment, markup, *, pacer: Pacer | None = None, **where
) -> str:
    """Send the document (an image as a photo); return caption text that did not fit and
    must go as a message."""
    caption = attachment.caption
    overflow = ""
    if _utf16_len(caption) > CAPTION_LIMIT:
        caption, overflow = "", caption

    def make_file() -> InputFile:
        file = InputFile(attachment.content, filename=attachment.filename)
        if attachment.mime:
            file.mimetype = attachment.mime
        return file

    image = attachment.mime.startswith("image/")
    send, field = (bot.send_photo, "photo") if image else (bot.send_document, "document")
    await _with_retry(
        lambda: send(
            chat_id=chat_id,
            caption=caption or None,
            reply_markup=markup,
            **{field: make_file()},
            **where,
        ),
        pacer,
        chat_id,
    )
    return overflow


async def send_outbound(
    bot,
    chat_id: int,
    outbound: Outbound,
    thread_id: int | None = None,
    *,
    pacer: Pacer | None = None,
) -> None:
    """Send every reply of `outbound` to `chat_id` (in that forum topic), in order, each
    message booked on `pacer` (None: not paced). Raises on the first failure; the
    conversation path is `Deliverer.send_outbound`."""
    for reply in outbound.replies:
        await send_reply(bot, chat_id, reply, thread_id=thread_id, pacer=pacer)


def _where(thread_id: int | None, reply_to: int | None) -> dict:
    where: dict = {}
    if thread_id is not None:
        where["message_thread_id"] = thread_id
    if reply_to is not None:
        where["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
    return where


async def send_reply(
    bot,
    chat_id: int,
    reply: Reply,
    thread_id: int | None = None,
    reply_to: int | None = None,
    *,
    pacer: Pacer | None = None,
) -> int | None:
    """Send one reply (a file, then its text split in pieces: each a message booked on
    `pacer`); return the id of the last message sent."""
    where = _where(thread_id, reply_to)
    last_id: int | None = None
    text = reply.text or ""
    if reply.attachment is not None:
        # Buttons go under the last message of the reply: the text if any, else the file.
        has_text = bool(text.strip()) or _utf16_len(reply.attachment.caption) > CAPTION_LIMIT
        markup = None if has_text else keyboard(reply)
        overflow = await _send_attachment(
            bot, chat_id, reply.attachment, markup, pacer=pacer, **where
        )
        if overflow:
            text = f"{overflow}\n\n{text}" if text.strip() else overflow
    pieces = split_text(text)
    buttons = keyboard(reply)
    for index, piece in enumerate(pieces):
        params = {"chat_id": chat_id, "text": piece, **where}
        if index == len(pieces) - 1:
            params["reply_markup"] = buttons
        # the raw answer: only the message id is kept (bot/http.py, call_raw)
        sent = await _with_retry(lambda p=params: call_raw(bot, "sendMessage", p), pacer, chat_id)
        last_id = sent["message_id"]
    return last_id


class Deliverer:
    """Sends what the handler answers: the conversation's replies (`send_outbound`) and
    deliveries to other chats (a citizen, an officers' group or its topic, an officer's
    private chat), and reports recorded ones back to the handler. With a `pacer` (the
    Application's one, `pacer_for(app)`) every message books its slot there; callers do
    not wait on the pacer themselves. A failed delivery is logged (its kind and error type
    only) and the others go on. A private chat that refuses messages (403: the person
    blocked the bot or was deactivated) is reported to the handler's optional
    `unreachable(channel, external_id)`."""

    def __init__(self, handler: Handler, pacer: Pacer | None = None) -> None:
        self.handler = handler
        self.pacer = pacer
        self._forums: dict[int, bool] = {}

    async def send_outbound(
        self, bot, chat_id: int, outbound: Outbound, thread_id: int | None = None
    ) -> None:
        """The answer to an update: its replies to `chat_id` (in that topic), in order,
        then its deliveries. Raises no TelegramError: a reply that fails (after the
        retries) is logged and the next one still goes; after a 403 the chat gets nothing
        more."""
        for reply in outbound.replies:
            try:
                await send_reply(bot, chat_id, reply, thread_id=thread_id, pacer=self.pacer)
            except Forbidden:
                await self.unreachable(chat_id)
                break
            except TelegramError as err:
                log.warning("reply failed: %s", type(err).__name__)
        await self.send_all(bot, outbound.deliveries)

    async def unreachable(self, chat_id: int) -> None:
        """A 403 from a private chat: tell the handler (reminders stop), log the fact."""
        log.info("a private chat refuses messages (403)")
        mark = getattr(self.handler, "unreachable", None)
        if chat_id <= 0 or mark is None:
            return
        try:
            await asyncio.to_thread(mark, CHANNEL, str(chat_id))
        except Exception as exc:
            log.error("marking a chat unreachable failed: %s", type(exc).__name__)

    async def is_forum(self, bot, chat_id: int) -> bool:
        if chat_id not in self._forums:
            try:
                chat = await _with_retry(lambda: bot.get_chat(chat_id))
                self._forums[chat_id] = bool(getattr(chat, "is_forum", False))
            except TelegramError as err:
                log.warning("cannot read group %s: %s", chat_id, type(err).__name__)
                return False
        return self._forums[chat_id]

    async def send_all(self, bot, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            try:
                await self.send(bot, delivery)
            except TelegramError as err:
                kind = "edit" if delivery.edit_message_id else "copy" if delivery.copy else "send"
                log.warning("delivery (%s) failed: %s", kind, type(err).__name__)
                if isinstance(err, Forbidden) and delivery.target.channel == CHANNEL:
                    await self.unreachable(int(delivery.target.chat_id))

    async def send(self, bot, d: Delivery) -> None:
        if d.target.channel != CHANNEL:
            return  # a citizen of another channel (the terminal chat): not ours to reach
        chat_id = int(d.target.chat_id)
        thread = d.target.thread_id
        if d.edit_message_id is not None:
            if d.reply is not None:
                await self._edit(bot, chat_id, d.edit_message_id, d.reply)
            return
        if d.new_topic and thread is None and await self.is_forum(bot, chat_id):
            try:
                # its "topic created" service message counts as a message of the group
                topic = await _with_retry(
                    lambda: bot.create_forum_topic(chat_id, d.new_topic), self.pacer, chat_id
                )
                thread = topic.message_thread_id
            except TelegramError as err:  # no "manage topics" right: post in the group
                log.warning("cannot open a topic in %s: %s", chat_id, type(err).__name__)
        message_id: int | None = None
        if d.copy is not None:
            copy = d.copy
            sent = await _with_retry(
                lambda: bot.copy_message(
                    chat_id=chat_id,
                    from_chat_id=int(copy.from_chat_id),
                    message_id=copy.message_id,
                    caption=copy.caption,
                    **_where(thread, d.reply_to_id),
                ),
                self.pacer,
                chat_id,
            )
            message_id = sent.message_id
        elif d.reply is not None:
            message_id = await send_reply(
                bot, chat_id, d.reply, thread, d.reply_to_id, pacer=self.pacer
            )
        record = getattr(self.handler, "record_sent", None)
        if d.record and message_id is not None and record is not None:
            try:
                await asyncio.to_thread(record, d.record, str(chat_id), message_id, thread)
            except Exception as exc:  # the message is out; carry on with the others
                log.error("recording a sent message failed: %s", type(exc).__name__)

    @staticmethod
    async def _edit(bot, chat_id: int, message_id: int, reply: Reply) -> None:
        # An edit adds no message to the chat: not paced (Telegram's limits count
        # messages); a 429 on it is still waited out and retried.
        params = {
            "chat_id": chat_id,
            "message_id": message_id,
            "text": split_text(reply.text)[0] if reply.text.strip() else "-",
            "reply_markup": keyboard(reply),
        }
        try:
            await _with_retry(lambda: call_raw(bot, "editMessageText", params))
        except BadRequest as err:
            # "not modified": it already shows this; "not found", "can't be edited": the
            # card was deleted or is too old, there is nothing left to update.
            if harmless(err) is None:
                raise
            log.debug("edit refused: %s", harmless(err))


# ----------------------------------------------------------------------------- dispatch


class ChatLocks:
    """One asyncio.Lock per chat with updates in flight; a lock is dropped when free."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        self._users[chat_id] = self._users.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id]
                del self._locks[chat_id]

    def __len__(self) -> int:
        return len(self._locks)


async def _answer_callback(query: CallbackQuery, notice: str) -> None:
    # Best effort, one try, not paced (not a message): the spinner stops by itself, and
    # waiting out a retry would only hold back the replies.
    try:
        await query.answer(text=notice[:NOTICE_LIMIT] or None)
    except BadRequest as err:
        # Too old or already answered: nothing the person can see depends on it.
        if harmless(err) is None:
            log.warning("callback answer refused: %s", type(err).__name__)
        else:
            log.debug("callback answer refused: %s", harmless(err))
    except TelegramError as err:
        # The replies still matter more than the spinner: carry on.
        log.warning("callback answer failed: %s", type(err).__name__)


async def _remove_keyboard(query: CallbackQuery) -> None:
    message = query.message
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    # Best effort like `_answer_callback`: an edit, not a message (not paced); a stale
    # button left behind is refused by the service anyway.
    # (no reply_markup: the keyboard goes; the raw call builds no Message from the answer)
    params = {"chat_id": message.chat_id, "message_id": message.message_id}
    try:
        await call_raw(query.get_bot(), "editMessageReplyMarkup", params)
    except BadRequest as err:
        # "message is not modified", "message to edit not found", "can't be edited".
        if harmless(err) is None:
            log.warning("keyboard removal refused: %s", type(err).__name__)
        else:
            log.debug("keyboard removal refused: %s", harmless(err))
    except TelegramError as err:
        log.warning("keyboard removal failed: %s", type(err).__name__)


def _make_callback(
    handler: Handler,
    locks: ChatLocks,
    deliverer: Deliverer,
    groups: frozenset[int],
    inbox: Inbox | None = None,
):
    async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Take the chat lock before the first await so updates keep their arrival order.
        chat = update.effective_chat
        inbound = update_to_inbound(update, groups)
        query = update.callback_query
        # an update from the durable inbox (bot/inbox.py): applied with its receipt,
        # finished once its replies are out
        durable = inbox if inbox is not None and inbox.tracked(update.update_id) else None
        if inbound is None or chat is None:
            if query is not None:
                await _answer_callback(query, "")
            if durable is not None:
                await durable.finish(update.update_id)
                durable.release(update.update_id)
            return
        async with ops.update_timer(update.update_id), locks.hold(chat.id):
            log.debug("update %s: %s", update.update_id, type(inbound.event).__name__.lower())
            answered = False
            try:
                if durable is not None:
                    found = await durable.apply(handler, inbound, update.update_id)
                    if found is None:
                        return  # a duplicate: applied (and answered) elsewhere
                    outbound = found
                else:
                    outbound = await asyncio.to_thread(handler.handle, inbound)
                if query is not None:
                    await _answer_callback(query, outbound.notice)
                    answered = True
                    await _remove_keyboard(query)
                thread = inbound.origin.thread_id if inbound.origin.group else None
                await deliverer.send_outbound(context.bot, chat.id, outbound, thread)
                if durable is not None:
                    await durable.finish(update.update_id)
            finally:
                if durable is not None:
                    durable.release(update.update_id)
                if query is not None and not answered:
                    await _answer_callback(query, "")

    return on_update


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure without personal data: exception type, update id, code location."""
    error = context.error
    ops.observe_error(error)
    update_id = update.update_id if isinstance(update, Update) else None
    where = ""
    if error is not None and error.__traceback__ is not None:
        frames = traceback.extract_tb(error.__traceback__)
        where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[-4:])
    log.error(
        "update %s failed: %s at %s",
        update_id,
        type(error).__name__,
        where,
        extra={"update_id": update_id},
    )


async def prepare_bot(app: Application) -> None:
    """Publish the command menu and (polling) make sure no webhook blocks polling."""
    handler: Handler = app.bot_data[_HANDLER_KEY]
    threads = app.bot_data.get(_THREADS_KEY)
    if threads:  # the conversation service runs in these (asyncio.to_thread)
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(threads, thread_name_prefix="motcua-worker")
        )
    if not app.bot_data.get(WEBHOOK_KEY):
        await app.bot.delete_webhook()
    await app.bot.set_my_commands(handler.commands())
    from bot.app import STARTED  # the reference data warm-up may start now

    STARTED.set()


async def release_pdf_workers(app: Application) -> None:
    """post_shutdown: the PDF worker processes (flows/pdfworker.py) stop with the bot."""
    from flows import pdfworker

    pdfworker.shutdown()


def build_application(
    handler: Handler,
    token: str,
    base_url: str | None = None,
    base_file_url: str | None = None,
    *,
    groups: frozenset[int] = frozenset(),
    tick_seconds: float | None = None,
    inbox: Inbox | None = None,
    pacer: Pacer | None = None,
    concurrent_updates: int = MAX_CONCURRENT_UPDATES,
    worker_threads: int | None = None,
) -> Application:
    """Build the Application: one TypeHandler feeding `handler`, an error handler, and
    `prepare_bot` as post_init (run by `run_polling`; call it yourself otherwise).

    `groups`: the officers' group chat ids whose messages and presses go to the handler
    (every other group is ignored). `tick_seconds`: run `handler.tick()` that often in
    the job queue and send what it returns. `inbox`: the durable inbox (bot/inbox.py):
    no update is lost to a crash. Updates come from `InboxUpdater` (our getUpdates loop,
    or the webhook server of `run_webhook`) either way. `pacer`: the process's one pacer
    (default: Telegram's limits, bot/pacing.py). `concurrent_updates`: updates handled at
    once (and HTTP connections to the Bot API); `worker_threads`: the threads that run the
    conversation service (None: asyncio's default, min(32, CPUs + 4))."""
    builder = (
        Application.builder()
        .token(token)
        .concurrent_updates(concurrent_updates)
        .post_init(prepare_bot)
        .post_shutdown(release_pdf_workers)
        # aiohttp instead of PTB's default httpx: half the CPU per call (bot/http.py)
        .request(
            AiohttpRequest(
                connection_pool_size=concurrent_updates,
                connect_timeout=10,
                read_timeout=15,
                write_timeout=30,
                media_write_timeout=60,
            )
        )
        # getUpdates, one call at a time; the poll time is added to this read timeout
        # (InboxUpdater._get_updates)
        .get_updates_request(AiohttpRequest(connection_pool_size=1, read_timeout=POLL_READ_SLACK))
    )
    if base_url:
        builder = builder.base_url(base_url)
        if base_file_url is None and base_url.endswith("/bot"):
            base_file_url = base_url[: -len("/bot")] + "/file/bot"
    if base_file_url:
        builder = builder.base_file_url(base_file_url)
    app = builder.build()
    app.updater = InboxUpdater(app.bot, app.update_queue, inbox)
    app.bot_data[_HANDLER_KEY] = handler
    app.bot_data[_THREADS_KEY] = worker_threads
    if pacer is not None:
        app.bot_data[PACER_KEY] = pacer
    deliverer = Deliverer(handler, pacer_for(app))  # every message paced (bot/pacing.py)
    callback = _make_callback(handler, ChatLocks(), deliverer, frozenset(groups), inbox)
    app.add_handler(TypeHandler(Update, callback))
    app.add_error_handler(on_error)
    if tick_seconds is not None and app.job_queue is not None:
        app.job_queue.run_repeating(
            _make_tick(handler, deliverer), interval=tick_seconds, first=tick_seconds
        )
    return app


def _make_tick(handler: Handler, deliverer: Deliverer):
    async def tick(context: ContextTypes.DEFAULT_TYPE) -> None:
        outbound = await asyncio.to_thread(handler.tick)  # type: ignore[attr-defined]
        await deliverer.send_all(context.bot, outbound.deliveries)

    return tick


async def start(app: Application, poll_timeout: float = 10) -> None:
    """Start polling inside a running event loop (tests, embedding); pair with `stop`."""
    await app.initialize()
    await prepare_bot(app)
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(
        timeout=dt.timedelta(seconds=poll_timeout), allowed_updates=Update.ALL_TYPES
    )


async def stop(app: Application) -> None:
    """Stop what `start` started."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()


def run_polling(app: Application) -> None:
    """Run the bot until interrupted (blocking; owns the event loop)."""
    app.run_polling(allowed_updates=Update.ALL_TYPES, timeout=30)

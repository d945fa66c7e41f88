"""A local fake of the Telegram Bot API for end-to-end tests.

The real bot (python-telegram-bot) talks to this server over loopback, either in the test
process or as a subprocess (`motcua run` with `TELEGRAM_API_BASE_URL` pointing here):

    async with FakeBotAPI() as api:
        app = build_application(handler, api.token, api.base_url, api.base_file_url)
        ...
        user = api.user(1001, "Lan")
        await user.send_text("xin chao")
        [reply] = await user.replies()

The server keeps the state a bot can observe (updates, messages, files, commands), enforces
the message limits Telegram enforces (text length, caption length, callback data size) and
counts, without rejecting, sends that go over Telegram's pacing guidance. It is a test double:
one bot, one process, no persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# Telegram limits (https://core.telegram.org/bots/api, https://core.telegram.org/bots/faq).
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes

# Pacing guidance: (max messages, window in seconds).
PRIVATE_CHAT_RATE = (1, 1.0)
GROUP_CHAT_RATE = (20, 60.0)
GLOBAL_RATE = (30, 1.0)
INJECTED_KEPT = 1_000  # updates kept for `FakeBotAPI.injected`

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)

# Parameters that arrive JSON-encoded in form and multipart bodies.
_STRUCTURED = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "commands",
        "scope",
        "menu_button",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "media",
        "message_ids",
    }
)

# Methods whose successful call puts a new message into a chat (counted for pacing).
_SENDING = frozenset({"sendmessage", "senddocument", "sendphoto", "copymessage", "forwardmessage"})

_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# Sent only when asked for explicitly.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


class ApiError(Exception):
    """An error answer: HTTP status = error_code, as Telegram does."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Upload:
    """A file the bot uploaded in a multipart body."""

    filename: str
    content: bytes
    content_type: str

    def __repr__(self) -> str:  # keep `calls` readable
        return f"Upload({self.filename!r}, {len(self.content)} bytes, {self.content_type!r})"


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    content: bytes
    filename: str
    mime_type: str
    path: str


@dataclass
class BotMessage:
    """One thing the bot put into a chat, as a test wants to see it."""

    kind: str  # "message", "document", "photo", "edit", "copy", "forward"
    chat_id: int
    message_id: int
    text: str = ""  # message text, or the caption for documents and photos
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)
    document: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    caption: str = ""
    seq: int = 0  # global order of arrival over all chats
    at: float = 0.0  # time.monotonic() on arrival
    thread_id: int | None = None  # the forum topic it was sent to
    reply_to: int | None = None  # the message it answers

    def labels(self) -> list[str]:
        return [label for row in self.buttons for label, _ in row]

    def data(self) -> list[str]:
        return [d for row in self.buttons for _, d in row]


@dataclass
class AnsweredCallback:
    callback_query_id: str
    text: str
    show_alert: bool
    data: str
    chat_id: int | None
    message_id: int | None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _int(params: dict, key: str, default: int | None = None) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {key} specified") from None


def _float(params: dict, key: str, default: float = 0.0) -> float:
    value = params.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {key} specified") from None


def _bool(params: dict, key: str) -> bool:
    value = params.get(key)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _buttons(markup: dict | None) -> list[list[tuple[str, str]]]:
    if not markup or "inline_keyboard" not in markup:
        return []
    rows = []
    for row in markup["inline_keyboard"]:
        rows.append(
            [(b.get("text", ""), b.get("callback_data") or b.get("url") or "") for b in row]
        )
    return rows


class _Signal:
    """Wake every waiter when something changes; no lost wake-ups on one event loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for the next fire(). Grab the event before checking the condition."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), max(timeout, 0))
            return True
        except TimeoutError:
            return False

    def snapshot(self) -> asyncio.Event:
        return self._event


class FakeChat:
    """A chat as the test sees it: what the bot sent there, read with a cursor."""

    def __init__(self, api: FakeBotAPI, chat: dict):
        self.api = api
        self.chat = chat
        self.chat_id: int = chat["id"]
        self._cursor = 0

    # Both `api.user(...)` and `await api.user(...)` give the helper.
    def __await__(self):
        return self._self().__await__()

    async def _self(self):
        return self

    def history(self) -> list[BotMessage]:
        """Everything the bot sent to this chat so far, read or not."""
        return list(self.api.outbox(self.chat_id))

    async def replies(self, n: int = 1, timeout: float = 10.0) -> list[BotMessage]:
        """Wait until at least `n` new bot messages arrived since the last read; return them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            snapshot = self.api._outbox_signal.snapshot()
            box = self.api.outbox(self.chat_id)
            if len(box) - self._cursor >= n:
                new = box[self._cursor :]
                self._cursor = len(box)
                return list(new)
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = [(m.kind, m.text[:80]) for m in box[self._cursor :]]
                raise AssertionError(
                    f"expected {n} bot message(s) in chat {self.chat_id} within {timeout}s, "
                    f"got {len(got)}: {got}"
                )
            try:
                await asyncio.wait_for(snapshot.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_quiet(self, seconds: float = 0.3, max_wait: float = 15.0) -> list[BotMessage]:
        """Return everything that arrives until nothing new came for `seconds`, and (with
        `api.paced_quiet`, the default) nothing came to this chat for longer than the gap
        a paced bot leaves between two messages of one answer (`paced_gap`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        floor = self.api.paced_gap(self.chat_id) if self.api.paced_quiet else 0.0
        while loop.time() < deadline:
            box = self.api.outbox(self.chat_id)
            idle = time.monotonic() - box[-1].at if box else floor
            quiet = max(seconds, floor - idle)
            changed = await self.api._outbox_signal.wait(min(quiet, deadline - loop.time()))
            if not changed:
                break
        box = self.api.outbox(self.chat_id)
        new = box[self._cursor :]
        self._cursor = len(box)
        return list(new)

    def _message(self, sender: dict, fields: dict) -> dict:
        message = {
            "message_id": self.api._next_message_id(self.chat_id),
            "date": int(time.time()),
            "chat": dict(self.chat),
            "from": dict(sender),
        }
        message.update(fields)
        self.api._messages[(self.chat_id, message["message_id"])] = message
        return message


class FakeUser(FakeChat):
    """A person in a private chat with the bot."""

    def __init__(
        self,
        api: FakeBotAPI,
        user_id: int,
        first_name: str,
        username: str | None,
        last_name: str | None,
        language_code: str | None,
    ):
        self.user_id = user_id
        self.first_name = first_name
        self.username = username
        self.last_name = last_name
        self.language_code = language_code
        self.blocked = False  # when True, sends to this chat fail with 403
        chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        if last_name:
            chat["last_name"] = last_name
        if username:
            chat["username"] = username
        super().__init__(api, chat)
        self._last_sent_id: int | None = None

    @property
    def user_dict(self) -> dict:
        user: dict[str, Any] = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    async def send_raw(self, fields: dict) -> int:
        """Send a message with arbitrary content fields; returns its message_id."""
        message = self._message(self.user_dict, fields)
        self._last_sent_id = message["message_id"]
        self.api.inject({"message": message})
        await asyncio.sleep(0)
        return message["message_id"]

    async def send_text(self, text: str) -> int:
        return await self.send_raw({"text": text})

    async def send_command(self, command: str = "/start", arg: str = "") -> int:
        command = command if command.startswith("/") else "/" + command
        text = f"{command} {arg}" if arg else command
        entity = {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
        return await self.send_raw({"text": text, "entities": [entity]})

    async def send_sticker(self) -> int:
        file = self.api._store_file(b"RIFF-sticker", "sticker.webp", "image/webp", "stickers")
        sticker = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "\U0001f44d",
        }
        return await self.send_raw({"sticker": sticker})

    async def send_photo(self, caption: str = "") -> int:
        sizes = []
        for width, height in ((90, 120), (600, 800)):
            file = self.api._store_file(
                b"\xff\xd8\xff" + bytes(16), "photo.jpg", "image/jpeg", "photos"
            )
            sizes.append(
                {
                    "file_id": file.file_id,
                    "file_unique_id": file.file_unique_id,
                    "width": width,
                    "height": height,
                    "file_size": len(file.content),
                }
            )
        fields: dict[str, Any] = {"photo": sizes}
        if caption:
            fields["caption"] = caption
        return await self.send_raw(fields)

    async def send_voice(self, duration: int = 3) -> int:
        file = self.api._store_file(b"OggS" + bytes(16), "voice.oga", "audio/ogg", "voice")
        voice = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(file.content),
        }
        return await self.send_raw({"voice": voice})

    async def send_location(self, latitude: float = 21.0278, longitude: float = 105.8342) -> int:
        return await self.send_raw({"location": {"latitude": latitude, "longitude": longitude}})

    async def send_document(
        self,
        content: bytes = b"%PDF-1.4\n",
        filename: str = "file.pdf",
        mime: str = "application/pdf",
    ) -> int:
        file = self.api._store_file(content, filename, mime, "documents")
        document = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_name": filename,
            "mime_type": mime,
            "file_size": len(content),
        }
        return await self.send_raw({"document": document})

    async def send_contact(self, phone_number: str = "+84000000000") -> int:
        contact = {"phone_number": phone_number, "first_name": self.first_name}
        return await self.send_raw({"contact": contact})

    async def edited_text(self, text: str, message_id: int | None = None) -> int:
        """The person edits one of their messages (the last one by default)."""
        message_id = message_id or self._last_sent_id
        if message_id is None or (self.chat_id, message_id) not in self.api._messages:
            message = self._message(self.user_dict, {"text": text})
        else:
            message = self.api._messages[(self.chat_id, message_id)]
            message["text"] = text
        edited = dict(message, edit_date=int(time.time()))
        self.api.inject({"edited_message": edited})
        await asyncio.sleep(0)
        return edited["message_id"]

    async def press(self, callback_data: str, message_id: int | None = None) -> str:
        """Press an inline button. Without `message_id`: the latest bot message carrying a
        button with this data, else the latest bot message. Returns the callback query id."""
        message = self.api._bot_message_for_press(self.chat_id, callback_data, message_id)
        query_id = str(next(self.api._ids))
        query = {
            "id": query_id,
            "from": self.user_dict,
            "chat_instance": f"ci{self.chat_id}",
            "data": callback_data,
        }
        if message is not None:
            query["message"] = dict(message)
        self.api._open_callbacks[query_id] = (callback_data, message)
        self.api.inject({"callback_query": query})
        await asyncio.sleep(0)
        return query_id


class FakeGroup(FakeChat):
    """A group chat the bot is a member of (negative chat id). A forum supergroup has
    topics: `createForumTopic` opens one, and messages carry `message_thread_id`."""

    def __init__(
        self, api: FakeBotAPI, chat_id: int, title: str, supergroup: bool, forum: bool = False
    ):
        chat: dict[str, Any] = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": title,
        }
        if forum:
            chat["is_forum"] = True
        super().__init__(api, chat)
        self.forum = forum
        self.topics: dict[int, str] = {}  # message_thread_id -> name

    def _placed(self, fields: dict, thread_id: int | None, reply_to: int | None) -> dict:
        """A member's message in a topic and/or answering another message."""
        if thread_id is not None:
            if thread_id not in self.topics:
                raise ValueError(f"no topic {thread_id} in chat {self.chat_id}")
            fields["message_thread_id"] = thread_id
            fields["is_topic_message"] = True
            if reply_to is None:  # Telegram: a topic message answers the topic's first one
                reply_to = thread_id
        if reply_to is not None:
            replied = self.api._messages.get((self.chat_id, reply_to))
            if replied is None:
                raise ValueError(f"no message {reply_to} in chat {self.chat_id}")
            fields["reply_to_message"] = copy.deepcopy(
                {k: v for k, v in replied.items() if k != "reply_to_message"}
            )
        return fields

    async def _send(
        self, user: FakeUser, fields: dict, thread_id: int | None, reply_to: int | None
    ) -> int:
        message = self._message(user.user_dict, self._placed(fields, thread_id, reply_to))
        self.api.inject({"message": message})
        await asyncio.sleep(0)
        return message["message_id"]

    async def send_text(
        self,
        user: FakeUser,
        text: str,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            fields["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        return await self._send(user, fields, thread_id, reply_to)

    async def send_photo(
        self,
        user: FakeUser,
        caption: str = "",
        thread_id: int | None = None,
        reply_to: int | None = None,
        content: bytes = b"\xff\xd8\xff" + bytes(16),
    ) -> int:
        """A member posts a photo (one size); returns its message_id."""
        file = self.api._store_file(content, "photo.jpg", "image/jpeg", "photos")
        size = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "width": 600,
            "height": 800,
            "file_size": len(file.content),
        }
        fields: dict[str, Any] = {"photo": [size]}
        if caption:
            fields["caption"] = caption
        return await self._send(user, fields, thread_id, reply_to)

    async def press(self, user: FakeUser, callback_data: str, message_id: int | None = None) -> str:
        """A member presses an inline button on one of the bot's messages in this group."""
        message = self.api._bot_message_for_press(self.chat_id, callback_data, message_id)
        query_id = str(next(self.api._ids))
        query = {
            "id": query_id,
            "from": user.user_dict,
            "chat_instance": f"ci{self.chat_id}",
            "data": callback_data,
        }
        if message is not None:
            query["message"] = dict(message)
        self.api._open_callbacks[query_id] = (callback_data, message)
        self.api.inject({"callback_query": query})
        await asyncio.sleep(0)
        return query_id

    def in_topic(self, thread_id: int | None) -> list[BotMessage]:
        """What the bot sent into one topic (None: outside any topic)."""
        return [m for m in self.history() if m.thread_id == thread_id]


class FakeBotAPI:
    """The fake server. See the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "motcua_test_bot",
        bot_name: str = "Motcua Test",
    ):
        self.token = token
        head = token.split(":", 1)[0]
        self.bot_user = {
            "id": int(head) if head.isdigit() else 123456,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.base_url = ""
        self.base_file_url = ""

        # Observations for tests.
        self.calls: list[tuple[str, dict]] = []
        self.answered_callbacks: list[AnsweredCallback] = []
        self.violations: list[str] = []
        self.deleted: list[tuple[int, int]] = []
        self.commands_by_scope: dict[tuple[str, str], list[dict]] = {}
        self.menu_buttons: dict[int | None, dict] = {}

        # Fault injection.
        self.delay = 0.0
        self._faults: dict[str, deque[ApiError]] = {}
        self._drops: dict[str, deque[bool]] = {}

        # `wait_quiet` also waits out the pacing gap since the chat's last message, so
        # "quiet" means a paced bot has finished its answer.
        self.paced_quiet = True
        self._holds: dict[str, asyncio.Event] = {}  # `hold`: calls wait until `release`

        # Webhook mode (after setWebhook): updates are POSTed to the registered URL, one at
        # a time in order, again after any answer but 200 (as Telegram does). Tests may
        # put a load balancer in front: `webhook_backends` (URLs taken in turn).
        self.webhook_backends: list[str] = []
        self.webhook_secret: str | None = None  # send this secret instead of the bot's
        self.webhook_retry_delay = 0.1  # seconds before a refused delivery is tried again
        self.webhook_duplicates = 0  # deliver the next N updates twice (after their 200)
        self.webhook_deliveries: list[tuple[int, str, int | None]] = []  # id, URL, status
        self._webhook_secret_token = ""
        self._webhook_task: asyncio.Task | None = None
        self._webhook_turn = 0
        self._confirmed = 0  # the highest getUpdates offset seen: ids below it are confirmed

        # State.
        self._chats: dict[int, FakeChat] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._message_ids: dict[int, itertools.count] = {}
        self._outboxes: dict[int, list[BotMessage]] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1000)
        self._files: dict[str, StoredFile] = {}
        self._open_callbacks: dict[str, tuple[str, dict | None]] = {}
        self._pending: list[dict] = []
        self._injected: dict[int, dict] = {}  # the last INJECTED_KEPT updates, by id
        self._next_update_id = 500_000
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._webhook_url = ""
        self._send_times: dict[int, deque[float]] = {}
        self._send_times_all: deque[float] = deque()
        self._closing = False

        self._updates_signal: _Signal | None = None
        self._outbox_signal_: _Signal | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._updates_signal = _Signal()
        self._outbox_signal_ = _Signal()
        self._closing = False
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, shutdown_timeout=0.5, handler_cancellation=True, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{self.port}/bot"
        self.base_file_url = f"http://{host}:{self.port}/file/bot"
        return self.port

    async def stop(self) -> None:
        self._closing = True
        await self._stop_webhook()
        if self._updates_signal:
            self._updates_signal.fire()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test-side API

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "vi",
    ) -> FakeUser:
        """The person with this id in a private chat with the bot (created on first use).
        Works with or without `await`."""
        existing = self._chats.get(user_id)
        if isinstance(existing, FakeUser):
            return existing
        fake = FakeUser(self, user_id, first_name, username, last_name, language_code)
        self._chats[user_id] = fake
        return fake

    def group(
        self,
        chat_id: int,
        title: str = "Group",
        supergroup: bool = True,
        forum: bool = False,
    ) -> FakeGroup:
        """A group chat with the bot in it; `chat_id` must be negative. `forum=True`: a
        supergroup with topics."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        if forum and not supergroup:
            raise ValueError("only supergroups have topics")
        existing = self._chats.get(chat_id)
        if isinstance(existing, FakeGroup):
            return existing
        fake = FakeGroup(self, chat_id, title, supergroup, forum)
        self._chats[chat_id] = fake
        return fake

    def inject(self, fields: dict) -> int:
        """Queue an update (`{"message": {...}}` etc.) and return its update_id."""
        self._next_update_id += 1
        update = {"update_id": self._next_update_id, **copy.deepcopy(fields)}
        self._pending.append(update)
        self._injected[self._next_update_id] = update
        if len(self._injected) > INJECTED_KEPT:
            del self._injected[next(iter(self._injected))]
        if self._updates_signal:
            self._updates_signal.fire()
        return self._next_update_id

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
    ) -> None:
        """Make the next call of `method` fail (queued: call several times for several)."""
        parameters = None
        if status == 429:
            retry_after = retry_after or 1
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after}
        description = description or f"Error {status}"
        self._faults.setdefault(method.lower(), deque()).append(
            ApiError(status, description, parameters)
        )

    @staticmethod
    def paced_gap(chat_id: int) -> float:
        """Longest pause a bot pacing itself within the limits leaves between two messages
        to `chat_id` (the even spacing of the chat's rate), plus a round-trip margin."""
        limit, window = GROUP_CHAT_RATE if chat_id < 0 else PRIVATE_CHAT_RATE
        return window / limit + 0.3

    def drop_next(self, method: str, delivered: bool = False) -> None:
        """Make the next call of `method` get no answer: the server closes the connection,
        as when a request times out or the link breaks (python-telegram-bot raises
        NetworkError). `delivered=True`: the call was carried out before the connection
        dropped, so the bot cannot tell whether it went through (queued like `fail_next`)."""
        self._drops.setdefault(method.lower(), deque()).append(delivered)

    def hold(self, method: str) -> None:
        """Calls of `method` from now on wait (after being counted in `calls`) until
        `release(method)`; a call whose client went away meanwhile is not carried out."""
        self._holds.setdefault(method.lower(), asyncio.Event())

    def release(self, method: str) -> None:
        event = self._holds.pop(method.lower(), None)
        if event is not None:
            event.set()

    @property
    def last_update_id(self) -> int:
        """The update_id of the last update injected."""
        return self._next_update_id

    def injected(self, update_id: int) -> dict:
        """The update as it was queued (and delivered: the JSON of getUpdates or of the
        webhook call); the last INJECTED_KEPT are kept."""
        return copy.deepcopy(self._injected[update_id])

    def confirmed(self, update_id: int) -> bool:
        """The bot confirmed the update: it called getUpdates with a higher offset."""
        return self._confirmed > update_id

    async def wait_confirmed(self, update_id: int, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.confirmed(update_id):
            if loop.time() > deadline:
                raise AssertionError(f"update {update_id} not confirmed in {timeout}s")
            await asyncio.sleep(0.01)

    def outbox(self, chat_id: int) -> list[BotMessage]:
        """Everything the bot sent to `chat_id`, in order (live list: do not modify)."""
        return self._outboxes.setdefault(chat_id, [])

    def sent(self) -> list[BotMessage]:
        """Everything the bot sent to any chat, in arrival order."""
        return sorted((m for box in self._outboxes.values() for m in box), key=lambda m: m.seq)

    async def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        """Wait until `method` was called at least `count` times; return those calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.calls_to(method)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{method} was not called {count} time(s) in {timeout}s")
            await asyncio.sleep(0.01)
        return self.calls_to(method)

    def calls_to(self, method: str) -> list[dict]:
        return [params for name, params in self.calls if name.lower() == method.lower()]

    @property
    def commands(self) -> list[tuple[str, str]]:
        """The command menu for the default scope and language."""
        stored = self.commands_by_scope.get(('{"type": "default"}', ""), [])
        return [(c["command"], c["description"]) for c in stored]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The current state of a message (bot's or person's)."""
        return self._messages.get((chat_id, message_id))

    def pending_updates(self) -> int:
        return len(self._pending)

    @property
    def file_contents(self) -> dict[str, bytes]:
        return {file_id: f.content for file_id, f in self._files.items()}

    # ------------------------------------------------------------------ internals

    @property
    def _outbox_signal(self) -> _Signal:
        if self._outbox_signal_ is None:
            self._outbox_signal_ = _Signal()
        return self._outbox_signal_

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _store_file(self, content: bytes, filename: str, mime: str, folder: str) -> StoredFile:
        n = next(self._ids)
        suffix = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        file = StoredFile(
            file_id=f"FILE{n:08d}",
            file_unique_id=f"U{n:08d}",
            content=content,
            filename=filename,
            mime_type=mime,
            path=f"{folder}/file_{n}.{suffix}",
        )
        self._files[file.file_id] = file
        return file

    def _bot_message_for_press(
        self, chat_id: int, data: str, message_id: int | None
    ) -> dict | None:
        if message_id is not None:
            return self._messages.get((chat_id, message_id))
        bot_id = self.bot_user["id"]
        ours = [
            m
            for (cid, _), m in self._messages.items()
            if cid == chat_id and m.get("from", {}).get("id") == bot_id
        ]
        ours.sort(key=lambda m: m["message_id"])
        for m in reversed(ours):
            if data in (d for row in _buttons(m.get("reply_markup")) for _, d in row):
                return m
        return ours[-1] if ours else None

    def _record(self, kind: str, chat_id: int, message: dict, upload: StoredFile | None = None):
        text = message.get("text") or message.get("caption") or ""
        record = BotMessage(
            kind=kind,
            chat_id=chat_id,
            message_id=message["message_id"],
            text=text,
            buttons=_buttons(message.get("reply_markup")),
            document=upload.content if upload else None,
            filename=upload.filename if upload else None,
            mime_type=upload.mime_type if upload else None,
            caption=message.get("caption", ""),
            seq=next(self._seq),
            at=time.monotonic(),
            thread_id=message.get("message_thread_id"),
            reply_to=(message.get("reply_to_message") or {}).get("message_id"),
        )
        self.outbox(chat_id).append(record)
        self._outbox_signal.fire()

    def _count_pace(self, chat_id: int) -> None:
        now = time.monotonic()
        limit, window = GROUP_CHAT_RATE if chat_id < 0 else PRIVATE_CHAT_RATE
        times = self._send_times.setdefault(chat_id, deque())
        times.append(now)
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) > limit:
            self.violations.append(
                f"chat {chat_id}: {len(times)} messages within {window:g}s (limit {limit})"
            )
        g_limit, g_window = GLOBAL_RATE
        self._send_times_all.append(now)
        while self._send_times_all and self._send_times_all[0] <= now - g_window:
            self._send_times_all.popleft()
        if len(self._send_times_all) > g_limit:
            self.violations.append(
                f"all chats: {len(self._send_times_all)} messages within {g_window:g}s "
                f"(limit {g_limit})"
            )

    def _target_chat(self, params: dict, key: str = "chat_id") -> FakeChat:
        raw = params.get(key)
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None
        chat = self._chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if isinstance(chat, FakeUser) and chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _own_message(self, params: dict) -> tuple[FakeChat, dict]:
        if params.get("inline_message_id"):
            raise _bad("inline messages are not supported by the fake")
        chat = self._target_chat(params)
        message_id = _int(params, "message_id")
        message = self._messages.get((chat.chat_id, message_id or 0))
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_user["id"]:
            raise _bad("message can't be edited")
        return chat, message

    @staticmethod
    def _check_text(text: Any, what: str = "text") -> str:
        if not isinstance(text, str) or not text.strip():
            raise _bad(f"message {what} is empty")
        if _utf16_len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        return text

    @staticmethod
    def _check_caption(caption: Any) -> str:
        caption = caption or ""
        if not isinstance(caption, str):
            raise _bad("can't parse caption")
        if _utf16_len(caption) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return caption

    @staticmethod
    def _check_markup(markup: Any) -> dict | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad("text buttons are unallowed in the inline keyboard")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not (
                        1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT
                    ):
                        raise _bad("BUTTON_DATA_INVALID")
                elif not _BUTTON_ACTIONS & button.keys():
                    raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _placement(self, chat: FakeChat, params: dict) -> dict:
        """message_thread_id and reply_parameters of a send, checked as Telegram does."""
        fields: dict[str, Any] = {}
        thread_id = _int(params, "message_thread_id")
        if thread_id is not None:
            if not isinstance(chat, FakeGroup) or not chat.forum:
                raise _bad("message thread not found")
            if thread_id not in chat.topics:
                raise _bad("message thread not found")
            fields["message_thread_id"] = thread_id
            fields["is_topic_message"] = True
        reply = params.get("reply_parameters") or {}
        reply_id = reply.get("message_id") if isinstance(reply, dict) else None
        if reply_id is None and params.get("reply_to_message_id"):
            reply_id = _int(params, "reply_to_message_id")
        if reply_id is not None:
            replied = self._messages.get((chat.chat_id, int(reply_id)))
            if replied is None:
                if not (isinstance(reply, dict) and reply.get("allow_sending_without_reply")):
                    raise _bad("message to be replied not found")
            else:
                fields["reply_to_message"] = copy.deepcopy(
                    {k: v for k, v in replied.items() if k != "reply_to_message"}
                )
        elif thread_id is not None:
            fields["reply_to_message"] = copy.deepcopy(self._messages[(chat.chat_id, thread_id)])
        return fields

    def _new_bot_message(self, chat: FakeChat, fields: dict, markup: dict | None) -> dict:
        message = chat._message(self.bot_user, fields)
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _resolve_file(
        self, params: dict, uploads: dict[str, Upload], key: str, folder: str
    ) -> StoredFile:
        value = params.get(key)
        if isinstance(value, Upload):
            return self._store_file(value.content, value.filename, value.content_type, folder)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value[len("attach://") :])
            if upload is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            return self._store_file(upload.content, upload.filename, upload.content_type, folder)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if not value:
            raise _bad(f"there is no {key} in the request")
        raise _bad("wrong file identifier/HTTP URL specified")

    def _chat_full_info(self, chat: FakeChat) -> dict:
        info = dict(chat.chat)
        info.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        return info

    # ------------------------------------------------------------------ HTTP

    async def _read_params(self, request: web.Request) -> tuple[dict, dict[str, Upload]]:
        params: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        upload = Upload(
                            filename=value.filename or key,
                            content=value.file.read(),
                            content_type=value.content_type or "application/octet-stream",
                        )
                        uploads[key] = upload
                        params[key] = upload
                    else:
                        params[key] = value
        for key in _STRUCTURED & params.keys():
            if isinstance(params[key], str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    raise _bad(f"can't parse {key} JSON object") from None
        return params, uploads

    async def _handle_method(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if token != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        try:
            params, uploads = await self._read_params(request)
        except ApiError as err:
            return self._error(err)
        self.calls.append((method, params))
        if self.delay:
            await asyncio.sleep(self.delay)
        name = method.lower()
        held = self._holds.get(name)
        if held is not None:
            await held.wait()
            if request.transport is None or request.transport.is_closing():
                return web.Response()  # the bot is gone: nothing carried out
        faults = self._faults.get(name)
        if faults:
            return self._error(faults.popleft())
        impl = getattr(self, f"_m_{name}", None)
        drops = self._drops.get(name)
        if drops:
            if drops.popleft() and impl is not None:
                with contextlib.suppress(ApiError):
                    await impl(params, uploads)
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never reaches the bot
        if impl is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status=404,
            )
        try:
            result = await impl(params, uploads)
        except ApiError as err:
            return self._error(err)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(err: ApiError) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": err.status,
            "description": err.description,
        }
        if err.parameters:
            body["parameters"] = err.parameters
        return web.json_response(body, status=err.status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for file in self._files.values():
            if file.path == path:
                return web.Response(body=file.content, content_type=file.mime_type)
        return web.Response(status=404)

    # ------------------------------------------------------------------ methods

    async def _m_getme(self, params, uploads):
        return dict(self.bot_user)

    async def _m_logout(self, params, uploads):
        return True

    async def _m_close(self, params, uploads):
        return True

    async def _m_getupdates(self, params, uploads):
        if self._webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params, "offset", 0) or 0
        limit = min(max(_int(params, "limit", 100) or 100, 1), 100)
        timeout = max(_float(params, "timeout", 0.0), 0.0)
        allowed = params.get("allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)

        if offset > 0:
            self._confirmed = max(self._confirmed, offset)
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]

        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self._updates_signal is not None
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            self._drop_unwanted()
            if self._pending or self._closing:
                return self._pending[:limit]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._updates_signal.wait(remaining)

    async def _stop_webhook(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _post_update(self, session: Any, update: dict, attempt: int) -> int | None:
        """POST one update; the load balancer (`webhook_backends`) sends each update to the
        backend after the previous update's, and each new attempt to the next one."""
        targets = self.webhook_backends or [self._webhook_url]
        url = targets[(self._webhook_turn + attempt) % len(targets)]
        secret = (
            self.webhook_secret if self.webhook_secret is not None else self._webhook_secret_token
        )
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        try:
            async with session.post(url, json=update, headers=headers) as response:
                status: int | None = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None  # not reachable: like any answer but 200, try again later
        self.webhook_deliveries.append((update["update_id"], url, status))
        return status

    async def _deliver_webhook(self) -> None:
        """Telegram's side of a webhook: each pending update POSTed until answered 200."""
        assert self._updates_signal is not None
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self._webhook_url and not self._closing:
                self._drop_unwanted()
                if not self._pending:
                    await self._updates_signal.wait(1.0)
                    continue
                update = self._pending[0]
                attempt = 0
                while await self._post_update(session, update, attempt) != 200:
                    attempt += 1
                    await asyncio.sleep(self.webhook_retry_delay)
                if update in self._pending:
                    self._pending.remove(update)
                if self.webhook_duplicates > 0:  # as after a timeout: the same update again
                    self.webhook_duplicates -= 1
                    attempt += 1
                    while await self._post_update(session, update, attempt) != 200:
                        attempt += 1
                        await asyncio.sleep(self.webhook_retry_delay)
                self._webhook_turn += 1

    def _drop_unwanted(self) -> None:
        wanted = set(self._allowed_updates) or (set(_UPDATE_TYPES) - _OPT_IN_UPDATES)
        self._pending = [
            u for u in self._pending if any(k in wanted for k in u if k != "update_id")
        ]

    async def _m_setwebhook(self, params, uploads):
        self._webhook_url = str(params.get("url") or "")
        self._webhook_secret_token = str(params.get("secret_token") or "")
        if _bool(params, "drop_pending_updates"):
            self._pending.clear()
        if self._webhook_url and self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._deliver_webhook())
        return True

    async def _m_deletewebhook(self, params, uploads):
        self._webhook_url = ""
        await self._stop_webhook()
        if _bool(params, "drop_pending_updates"):
            self._pending.clear()
        return True

    async def _m_getwebhookinfo(self, params, uploads):
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    @staticmethod
    def _scope_key(params: dict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _m_setmycommands(self, params, uploads):
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be a list of at most 100 BotCommand")
        for c in commands:
            if not isinstance(c, dict) or not _COMMAND_RE.match(str(c.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands_by_scope[self._scope_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _m_getmycommands(self, params, uploads):
        return self.commands_by_scope.get(self._scope_key(params), [])

    async def _m_deletemycommands(self, params, uploads):
        self.commands_by_scope.pop(self._scope_key(params), None)
        return True

    async def _m_setchatmenubutton(self, params, uploads):
        chat_id = _int(params, "chat_id")
        self.menu_buttons[chat_id] = params.get("menu_button") or {"type": "default"}
        return True

    async def _m_getchatmenubutton(self, params, uploads):
        chat_id = _int(params, "chat_id")
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "commands"}

    async def _m_getchat(self, params, uploads):
        return self._chat_full_info(self._target_chat(params))

    async def _m_sendchataction(self, params, uploads):
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _m_sendmessage(self, params, uploads):
        chat = self._target_chat(params)
        text = self._check_text(params.get("text"))
        markup = self._check_markup(params.get("reply_markup"))
        fields: dict[str, Any] = {"text": text}
        if params.get("entities"):
            fields["entities"] = params["entities"]
        fields.update(self._placement(chat, params))
        message = self._new_bot_message(chat, fields, markup)
        self._count_pace(chat.chat_id)
        self._record("message", chat.chat_id, message)
        return message

    async def _m_senddocument(self, params, uploads):
        chat = self._target_chat(params)
        caption = self._check_caption(params.get("caption"))
        markup = self._check_markup(params.get("reply_markup"))
        file = self._resolve_file(params, uploads, "document", "documents")
        fields: dict[str, Any] = {
            "document": {
                "file_id": file.file_id,
                "file_unique_id": file.file_unique_id,
                "file_name": file.filename,
                "mime_type": file.mime_type,
                "file_size": len(file.content),
            }
        }
        if caption:
            fields["caption"] = caption
        fields.update(self._placement(chat, params))
        message = self._new_bot_message(chat, fields, markup)
        self._count_pace(chat.chat_id)
        self._record("document", chat.chat_id, message, file)
        return message

    async def _m_sendphoto(self, params, uploads):
        chat = self._target_chat(params)
        caption = self._check_caption(params.get("caption"))
        markup = self._check_markup(params.get("reply_markup"))
        file = self._resolve_file(params, uploads, "photo", "photos")
        size = {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "width": 800,
            "height": 600,
            "file_size": len(file.content),
        }
        fields: dict[str, Any] = {"photo": [size]}
        if caption:
            fields["caption"] = caption
        fields.update(self._placement(chat, params))
        message = self._new_bot_message(chat, fields, markup)
        self._count_pace(chat.chat_id)
        self._record("photo", chat.chat_id, message, file)
        return message

    async def _m_editmessagetext(self, params, uploads):
        chat, message = self._own_message(params)
        text = self._check_text(params.get("text"))
        markup = self._check_markup(params.get("reply_markup"))
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        new_markup = markup if markup and "inline_keyboard" in markup else None
        if message.get("text") == text and message.get("reply_markup") == new_markup:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        message["text"] = text
        message.pop("entities", None)
        if params.get("entities"):
            message["entities"] = params["entities"]
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        self._record("edit", chat.chat_id, message)
        return dict(message)

    async def _m_editmessagereplymarkup(self, params, uploads):
        chat, message = self._own_message(params)
        markup = self._check_markup(params.get("reply_markup"))
        new_markup = markup if markup and "inline_keyboard" in markup else None
        if message.get("reply_markup") == new_markup:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        return dict(message)

    async def _m_deletemessage(self, params, uploads):
        chat = self._target_chat(params)
        message_id = _int(params, "message_id") or 0
        if self._messages.pop((chat.chat_id, message_id), None) is None:
            raise _bad("message to delete not found")
        self.deleted.append((chat.chat_id, message_id))
        return True

    async def _m_answercallbackquery(self, params, uploads):
        query_id = str(params.get("callback_query_id") or "")
        opened = self._open_callbacks.pop(query_id, None)
        if opened is None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        data, message = opened
        self.answered_callbacks.append(
            AnsweredCallback(
                callback_query_id=query_id,
                text=str(params.get("text") or ""),
                show_alert=_bool(params, "show_alert"),
                data=data,
                chat_id=message["chat"]["id"] if message else None,
                message_id=message["message_id"] if message else None,
            )
        )
        return True

    def _source_message(self, params: dict) -> dict:
        source = self._target_chat(params, "from_chat_id")
        message = self._messages.get((source.chat_id, _int(params, "message_id") or 0))
        if message is None:
            raise _bad("message to copy not found")
        return message

    async def _m_copymessage(self, params, uploads):
        chat = self._target_chat(params)
        source = self._source_message(params)
        markup = self._check_markup(params.get("reply_markup"))
        content = {
            k: v
            for k, v in source.items()
            if k
            not in (
                "message_id",
                "date",
                "chat",
                "from",
                "reply_markup",
                "edit_date",
                "message_thread_id",
                "is_topic_message",
                "reply_to_message",
            )
        }
        if "caption" in params:
            content["caption"] = self._check_caption(params.get("caption"))
        content.update(self._placement(chat, params))
        message = self._new_bot_message(chat, content, markup)
        self._count_pace(chat.chat_id)
        self._record("copy", chat.chat_id, message)
        return {"message_id": message["message_id"]}

    async def _m_forwardmessage(self, params, uploads):
        chat = self._target_chat(params)
        source = self._source_message(params)
        content = {
            k: v
            for k, v in source.items()
            if k not in ("message_id", "date", "chat", "from", "reply_markup", "edit_date")
        }
        content["forward_origin"] = (
            {"type": "user", "date": source["date"], "sender_user": source["from"]}
            if source["chat"]["type"] == "private"
            else {"type": "chat", "date": source["date"], "sender_chat": source["chat"]}
        )
        message = self._new_bot_message(chat, content, None)
        self._count_pace(chat.chat_id)
        self._record("forward", chat.chat_id, message)
        return message

    async def _m_createforumtopic(self, params, uploads):
        chat = self._target_chat(params)
        if not isinstance(chat, FakeGroup) or not chat.forum:
            raise _bad("the chat is not a forum")
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise _bad("TOPIC_TITLE_EMPTY" if not name else "topic name is too long")
        # Telegram: the topic's id is the id of its "topic created" service message
        created = {"name": name, "icon_color": 7322096}
        message = chat._message(self.bot_user, {"forum_topic_created": created})
        thread_id = message["message_id"]
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        chat.topics[thread_id] = name
        self._count_pace(chat.chat_id)
        return {"message_thread_id": thread_id, **created}

    async def _m_getfile(self, params, uploads):
        file = self._files.get(str(params.get("file_id") or ""))
        if file is None:
            raise _bad("invalid file_id")
        return {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": len(file.content),
            "file_path": file.path,
        }


__all__ = [
    "AnsweredCallback",
    "ApiError",
    "BotMessage",
    "FakeBotAPI",
    "FakeChat",
    "FakeGroup",
    "FakeUser",
    "Upload",
    "CALLBACK_DATA_LIMIT",
    "CAPTION_LIMIT",
    "TEXT_LIMIT",
]

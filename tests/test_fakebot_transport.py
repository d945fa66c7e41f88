"""The Telegram transport, end to end against the local fake Bot API server.

The real python-telegram-bot Application polls the fake server over loopback; a small
handler defined here stands in for the conversation service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import aiohttp
import pytest
import pytest_asyncio
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest

from bot.telegram import build_application, split_text, start, stop
from flows.types import (
    Attachment,
    Button,
    Command,
    Inbound,
    Other,
    Outbound,
    Press,
    Reply,
    Sender,
    Text,
)
from tests.fakebot import CALLBACK_DATA_LIMIT, TEXT_LIMIT, FakeBotAPI

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
LONG = "\n".join(f"{i:03d} " + "x" * 95 for i in range(50))  # 4,999 characters
SECRET = "012345678901"  # stands for personal data that must not reach the logs


class EchoHandler:
    """A stand-in conversation service that records what it receives."""

    def __init__(self) -> None:
        self.inbound: list[Inbound] = []
        self.calls: list[tuple[str, float, float]] = []  # (chat, start, end)
        self._lock = threading.Lock()

    def commands(self) -> list[tuple[str, str]]:
        return [("start", "Start over"), ("help", "How this works")]

    def events(self, chat_id: int | None = None) -> list:
        with self._lock:
            return [
                i.event
                for i in self.inbound
                if chat_id is None or i.sender.external_id == str(chat_id)
            ]

    def handle(self, inbound: Inbound) -> Outbound:
        started = time.monotonic()
        with self._lock:
            self.inbound.append(inbound)
        try:
            return self._answer(inbound.event)
        finally:
            with self._lock:
                self.calls.append((inbound.sender.external_id, started, time.monotonic()))

    def _answer(self, event) -> Outbound:
        match event:
            case Text(text="file"):
                attachment = Attachment(filename="ho-so.pdf", content=PDF, caption="Your file")
                buttons = ((Button("Done", "f.1.done"),),)
                return Outbound([Reply("Here it is", buttons=buttons, attachment=attachment)])
            case Text(text="long"):
                return Outbound([Reply(LONG, buttons=((Button("OK", "l.1.ok"),),))])
            case Text(text=text) if text.startswith("slow"):
                time.sleep(1.0)
                return Outbound([Reply(f"done: {text}")])
            case Text(text=text) if SECRET in text:
                raise RuntimeError(f"cannot handle {text}")
            case Text(text=text):
                buttons = (
                    (Button("Yes", "d1.1.yes"), Button("No", "d1.1.no")),
                    (Button("Max", "m" * CALLBACK_DATA_LIMIT),),
                )
                return Outbound([Reply(f"echo: {text}", buttons=buttons, expect="choice")])
            case Press(data=data):
                return Outbound([Reply(f"pressed: {data}")], notice="noted")
            case Command(name=name, arg=arg):
                return Outbound([Reply(f"command {name} [{arg}]")])
            case Other(kind=kind):
                return Outbound([Reply(f"other {kind}")])
        raise AssertionError(f"unexpected event {event!r}")


@pytest_asyncio.fixture
async def api():
    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
def handler() -> EchoHandler:
    return EchoHandler()


@pytest_asyncio.fixture
async def app(api: FakeBotAPI, handler: EchoHandler):
    application = build_application(handler, api.token, api.base_url, api.base_file_url)
    await start(application, poll_timeout=2)
    try:
        yield application
    finally:
        await stop(application)


async def test_start_publishes_commands_and_polls_without_webhook(api, app, handler):
    assert api.commands == handler.commands()
    await api.wait_for_call("getUpdates")
    methods = [name for name, _ in api.calls]
    assert "deleteWebhook" in methods
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert methods.index("setMyCommands") < methods.index("getUpdates")
    allowed = api.calls_to("getUpdates")[0]["allowed_updates"]
    assert "callback_query" in allowed and "message" in allowed


async def test_text_gets_buttons_and_a_press_round_trips(api, app, handler):
    user = api.user(1001, "Lan", username="lan_t", last_name="Tran")
    await user.send_text("hello")
    [reply] = await user.replies()
    assert reply.kind == "message"
    assert reply.text == "echo: hello"
    assert reply.buttons == [
        [("Yes", "d1.1.yes"), ("No", "d1.1.no")],
        [("Max", "m" * CALLBACK_DATA_LIMIT)],
    ]
    assert handler.inbound[0] == Inbound(
        Sender("telegram", "1001", display_name="Lan Tran", username="lan_t"), Text("hello")
    )

    await user.press(reply.buttons[0][0][1])
    [pressed] = await user.replies()
    assert pressed.text == "pressed: d1.1.yes"
    assert handler.events(1001) == [Text("hello"), Press("d1.1.yes")]
    [answer] = api.answered_callbacks
    assert (answer.data, answer.text, answer.message_id) == ("d1.1.yes", "noted", reply.message_id)
    # The keyboard is gone from the pressed message, the text stays.
    message = api.message(1001, reply.message_id)
    assert "reply_markup" not in message and message["text"] == "echo: hello"

    await user.press("m" * CALLBACK_DATA_LIMIT, message_id=reply.message_id)
    [again] = await user.replies()
    assert again.text == "pressed: " + "m" * CALLBACK_DATA_LIMIT
    assert len(api.answered_callbacks) == 2


async def test_two_presses_on_one_keyboard_are_both_answered(api, app, handler):
    user = api.user(1002)
    await user.send_text("hi")
    [reply] = await user.replies()
    # Both presses carry the keyboard; the second removal is refused as "not modified".
    await user.press("d1.1.yes", message_id=reply.message_id)
    await user.press("d1.1.no", message_id=reply.message_id)
    texts = [r.text for r in await user.replies(n=2)]
    assert texts == ["pressed: d1.1.yes", "pressed: d1.1.no"]
    assert [a.data for a in api.answered_callbacks] == ["d1.1.yes", "d1.1.no"]
    assert len(api.calls_to("editMessageReplyMarkup")) >= 1


async def test_non_text_messages_become_other_events(api, app, handler):
    user = api.user(1003)
    await user.send_sticker()
    await user.send_photo(caption="a caption")
    await user.send_voice()
    await user.send_location()
    await user.send_document()
    await user.send_contact()
    await user.send_text("typo")
    await user.edited_text("fixed")
    replies = await user.replies(n=8)
    kinds = ["sticker", "photo", "voice", "location", "document", "contact"]
    expected = [Other(k) for k in kinds] + [Text("typo"), Other("edited")]
    assert handler.events(1003) == expected
    assert [r.text for r in replies[:6]] == [f"other {k}" for k in kinds]


async def test_commands_keep_their_argument(api, app, handler):
    user = api.user(1004)
    await user.send_command("/start", arg="hs-2024.abc")
    await user.send_text("/HuongDan@motcua_test_bot")
    await user.send_text("/")
    replies = await user.replies(n=3)
    assert handler.events(1004) == [
        Command("start", "hs-2024.abc"),
        Command("huongdan", ""),
        Text("/"),
    ]
    assert replies[0].text == "command start [hs-2024.abc]"


async def test_attachment_arrives_as_a_document_then_the_text(api, app, handler):
    user = api.user(1005)
    await user.send_text("file")
    document, text = await user.replies(n=2)
    assert document.kind == "document"
    assert document.document == PDF
    assert document.filename == "ho-so.pdf"
    assert document.mime_type == "application/pdf"
    assert document.caption == "Your file"
    assert document.buttons == []
    assert (text.kind, text.text, text.buttons) == (
        "message",
        "Here it is",
        [[("Done", "f.1.done")]],
    )


async def test_long_text_is_split_on_line_boundaries(api, app, handler):
    user = api.user(1006)
    await user.send_text("long")
    pieces = await user.wait_quiet(0.5)
    assert len(pieces) >= 2
    assert all(p.kind == "message" and len(p.text) <= TEXT_LIMIT for p in pieces)
    assert "\n".join(p.text for p in pieces) == LONG
    assert [p.buttons for p in pieces[:-1]] == [[]] * (len(pieces) - 1)
    assert pieces[-1].buttons == [[("OK", "l.1.ok")]]


def test_split_text_limits_and_boundaries():
    assert split_text("short") == ["short"]
    assert split_text("") == []
    para = "a" * 30 + "\n\n" + "b" * 30
    assert split_text(para, limit=40) == ["a" * 30, "b" * 30]
    # No separator at all: hard cut.
    assert split_text("c" * 25, limit=10) == ["c" * 10, "c" * 10, "c" * 5]
    # Emoji count twice (UTF-16), as Telegram counts them.
    emoji = "\U0001f600" * 6
    assert split_text(emoji, limit=4) == ["\U0001f600" * 2] * 3


async def test_chats_run_concurrently_and_each_chat_keeps_its_order(api, app, handler):
    a = api.user(2001, "A")
    b = api.user(2002, "B")
    await a.send_text("slow one")
    await a.send_text("a second")
    await b.send_text("b hello")
    [b_reply] = await b.replies(timeout=5)
    a_replies = await a.replies(n=2, timeout=10)
    assert [r.text for r in a_replies] == ["done: slow one", "echo: a second"]
    assert b_reply.text == "echo: b hello"
    assert b_reply.seq < a_replies[0].seq
    assert handler.events(2001) == [Text("slow one"), Text("a second")]
    # B's handler call started while A's slow call was still running.
    slow = next(c for c in handler.calls if c[0] == "2001")
    b_call = next(c for c in handler.calls if c[0] == "2002")
    assert slow[1] < b_call[1] < slow[2]


async def test_slow_sequence_records_no_violations(api, app, handler):
    user = api.user(2003)
    await user.send_text("one")
    [first] = await user.replies()
    await asyncio.sleep(1.05)
    await user.press("d1.1.no", message_id=first.message_id)
    await user.replies()
    await asyncio.sleep(1.05)
    await user.send_text("two")
    await user.replies()
    assert api.violations == []


async def test_fake_server_enforces_and_reports_limits(api, app):
    bot = app.bot
    api.user(3001)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(3001, "x" * (TEXT_LIMIT + 1))
    too_long_data = InlineKeyboardMarkup(
        [[InlineKeyboardButton("x", callback_data="d" * (CALLBACK_DATA_LIMIT + 1))]]
    )
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(3001, "hi", reply_markup=too_long_data)
    with pytest.raises(BadRequest, match="(?i)caption is too long"):
        await bot.send_document(3001, InputFile(PDF, filename="a.pdf"), caption="c" * 1025)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(9999, "hi")
    assert api.violations == []
    await bot.send_message(3001, "x" * TEXT_LIMIT)
    await bot.send_message(3001, "and again at once")
    assert api.violations and "chat 3001" in api.violations[0]

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.base_url}{api.token}/fooBar", json={}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }


async def test_rate_limited_send_is_retried(api, app, handler):
    user = api.user(3002)
    api.fail_next("sendMessage", status=429, retry_after=1)
    await user.send_text("hi")
    [reply] = await user.replies(timeout=8)
    assert reply.text == "echo: hi"
    assert len(api.calls_to("sendMessage")) == 2


async def test_groups_and_channel_posts_are_ignored(api, app, handler):
    group = api.group(-100123, "Officers")
    user = api.user(4001)
    await group.send_text(user, "hello group")
    await group.send_text(user, "/start")
    api.inject(
        {
            "channel_post": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": -100999, "type": "channel", "title": "News"},
                "text": "post",
            }
        }
    )
    await user.send_text("private")
    [reply] = await user.replies()
    assert reply.text == "echo: private"
    assert handler.events() == [Text("private")]
    assert await group.wait_quiet(0.2) == []


async def test_handler_failure_is_logged_without_data_and_does_not_stop_the_bot(
    api, app, handler, caplog
):
    caplog.set_level(logging.ERROR, logger="bot.telegram")
    user = api.user(4002)
    await user.send_text(f"my id {SECRET}")
    await user.send_text("still there?")
    [reply] = await user.replies()
    assert reply.text == "echo: still there?"
    failures = [r for r in caplog.records if r.name == "bot.telegram"]
    assert len(failures) == 1
    assert "RuntimeError" in failures[0].getMessage()
    assert SECRET not in caplog.text


async def test_worker_threads_and_concurrent_updates_are_settings(api: FakeBotAPI):
    """MOTCUA_WORKER_THREADS: the service runs in that many threads of the bot's own, so
    four chats' slow updates at once run at most two at a time; every one is answered."""
    names: list[str] = []

    class Recording(EchoHandler):
        def handle(self, inbound: Inbound) -> Outbound:
            with self._lock:
                names.append(threading.current_thread().name)
            return super().handle(inbound)

    handler = Recording()
    application = build_application(
        handler, api.token, api.base_url, api.base_file_url, concurrent_updates=4, worker_threads=2
    )
    await start(application, poll_timeout=2)
    try:
        users = [api.user(3001 + i, f"U{i}") for i in range(4)]
        for user in users:
            await user.send_text(f"slow {user.chat_id}")
        for user in users:
            replies = await user.replies(1, timeout=20)
            assert replies[0].text == f"done: slow {user.chat_id}"
    finally:
        await stop(application)
    assert len(names) == 4 and all(n.startswith("motcua-worker") for n in names)
    spans = [(start, end) for _, start, end in handler.calls]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2

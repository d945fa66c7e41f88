"""bot/http.py: python-telegram-bot's Bot on the aiohttp backend, against the local fake
Bot API server (tests/fakebot.py) and small real servers over loopback.

Where PTB's default HTTPXRequest is the reference (what arrives at the server, which
exception an answer becomes), the test runs on both backends and expects the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import pytest
import pytest_asyncio
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.http import AiohttpRequest
from bot.telegram import build_application
from tests.fakebot import FakeBotAPI

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n" + bytes(range(256)) * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 500
NAME = 'T\u1edd khai "m\u1eabu 01".pdf'  # non-ASCII and quotes: sent raw UTF-8, quotes %22
USER = 1001

BACKENDS: dict[str, Callable[..., BaseRequest]] = {
    "aiohttp": AiohttpRequest,
    "httpx": HTTPXRequest,
}


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as fake:
        fake.user(USER)
        yield fake


@contextlib.asynccontextmanager
async def bot_on(api: FakeBotAPI, request: BaseRequest, updates: BaseRequest | None = None):
    bot = Bot(
        api.token,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        request=request,
        get_updates_request=updates or AiohttpRequest(connection_pool_size=1),
    )
    async with bot:  # initialize (getMe) ... shutdown
        yield bot


async def test_send_message_round_trip(api: FakeBotAPI):
    async with bot_on(api, AiohttpRequest(8)) as bot:
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Ti\u1ebfp t\u1ee5c", callback_data="c.1")]]
        )
        message = await bot.send_message(USER, "Xin ch\u00e0o & = + %", reply_markup=markup)
    assert message.chat.id == USER and message.text == "Xin ch\u00e0o & = + %"
    [sent] = api.outbox(USER)
    assert sent.text == "Xin ch\u00e0o & = + %"
    assert sent.buttons == [[("Ti\u1ebfp t\u1ee5c", "c.1")]]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_uploads_arrive_intact(api: FakeBotAPI, backend: str):
    async with bot_on(api, BACKENDS[backend]()) as bot:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])
        await bot.send_document(
            USER,
            InputFile(PDF, filename=NAME),
            caption="H\u1ed3 s\u01a1 c\u1ee7a b\u1ea1n",
            reply_markup=markup,
            thumbnail=InputFile(PNG, filename="thumb.png", attach=True),
        )
        await bot.send_photo(USER, InputFile(PNG, filename="anh.png"))
    document, photo = api.outbox(USER)
    assert document.kind == "document"
    assert document.document == PDF
    # what httpx sends too (the fake server is aiohttp's parser): raw UTF-8, quotes as %22
    assert document.filename == NAME.replace('"', "%22")
    assert document.mime_type == "application/pdf"
    assert document.text == "H\u1ed3 s\u01a1 c\u1ee7a b\u1ea1n"
    assert document.buttons == [[("OK", "ok")]]
    # the thumbnail went as its own part, named by the attach:// parameter
    params = api.calls_to("sendDocument")[0]
    attach = params["thumbnail"]
    assert isinstance(attach, str) and attach.startswith("attach://")
    thumb = params[attach[len("attach://") :]]
    assert (thumb.content, thumb.filename, thumb.content_type) == (PNG, "thumb.png", "image/png")
    assert (photo.kind, photo.document, photo.filename, photo.mime_type) == (
        "photo",
        PNG,
        "anh.png",
        "image/png",
    )


class Recorder:
    """A Bot API stand-in that records each request's headers and form, answers ok."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, dict]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), parse_qs(body.decode())))
        return web.json_response({"ok": True, "result": True})

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/bot1:T/sendMessage"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_form_and_headers(backend: str):
    data = RequestData(
        [
            RequestParameter.from_input("chat_id", USER),
            RequestParameter.from_input("text", "a&b=c + \u0111\u1eb9p"),
            RequestParameter.from_input("reply_markup", {"inline_keyboard": []}),
        ]
    )
    request = BACKENDS[backend]()
    async with Recorder() as server, request:
        assert await request.post(server.url, data) is True
    [(headers, form)] = server.requests
    assert headers["User-Agent"] == BaseRequest.USER_AGENT
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form == {
        "chat_id": [str(USER)],
        "text": ["a&b=c + \u0111\u1eb9p"],
        "reply_markup": ['{"inline_keyboard": []}'],
    }


@pytest.mark.parametrize("backend", BACKENDS)
async def test_error_answers_become_ptb_exceptions(api: FakeBotAPI, backend: str):
    async with bot_on(api, BACKENDS[backend]()) as bot:
        api.fail_next("sendMessage", status=429, retry_after=7)
        with pytest.raises(RetryAfter) as retry:
            await bot.send_message(USER, "x")
        assert "7" in str(retry.value)
        api.fail_next("sendMessage", status=400, description="Bad Request: message is too long")
        with pytest.raises(BadRequest, match="[Mm]essage is too long"):
            await bot.send_message(USER, "x")
        api.fail_next("sendMessage", status=502, description="Bad Gateway")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(USER, "x")
        api.user(USER).blocked = True
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(USER, "x")


async def test_read_timeout_default_and_per_call(api: FakeBotAPI):
    async with bot_on(api, AiohttpRequest(8, read_timeout=0.3)) as bot:
        api.hold("sendMessage")
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "default read timeout")
        # a call's own value wins over the constructor's
        with pytest.raises(TimedOut):
            await bot.send_message(USER, "per call", read_timeout=0.2)
        # an explicit None: no limit, the answer comes after the default would have fired
        late = asyncio.create_task(bot.send_message(USER, "no limit", read_timeout=None))
        await api.wait_for_call("sendMessage", count=3)
        await asyncio.sleep(0.8)
        assert not late.done()
        api.release("sendMessage")
        assert (await late).text == "no limit"
        # the connections closed by the timeouts are replaced
        assert (await bot.send_message(USER, "after")).text == "after"
    assert [m.text for m in api.outbox(USER)] == ["no limit", "after"]


async def test_long_poll_outlasts_the_default_read_timeout(api: FakeBotAPI):
    updates = AiohttpRequest(connection_pool_size=1, read_timeout=1.0)
    async with bot_on(api, AiohttpRequest(8), updates) as bot:
        # the fake server holds getUpdates for the whole 2 s poll when nothing comes
        assert await bot.get_updates(timeout=2) == ()
        await api.user(USER).send_text("hi")
        [update] = await bot.get_updates(timeout=2)
        assert update.message is not None and update.message.text == "hi"


async def test_pool_exhausted_raises_timed_out(api: FakeBotAPI):
    request = AiohttpRequest(1, pool_timeout=0.2, connect_timeout=0.2)
    async with bot_on(api, request) as bot:
        api.hold("sendMessage")
        first = asyncio.create_task(bot.send_message(USER, "first"))
        await api.wait_for_call("sendMessage")
        with pytest.raises(TimedOut, match="[Pp]ool") as err:
            await bot.send_message(USER, "second")
        assert api.token not in str(err.value)
        api.release("sendMessage")
        assert (await first).text == "first"
    assert len(api.calls_to("sendMessage")) == 1


async def test_write_timeout_bounds_an_upload_nobody_reads():
    """A server that accepts and never reads: the upload fills the socket buffers and the
    write phase (where aiohttp has no timer of its own) must still end in TimedOut."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = AiohttpRequest(
        1, read_timeout=0.5, connect_timeout=0.5, pool_timeout=0.5, media_write_timeout=0.5
    )
    data = RequestData(
        [
            RequestParameter.from_input("chat_id", USER),
            RequestParameter.from_input("document", InputFile(b"x" * (64 << 20), "big.pdf")),
        ]
    )
    try:
        async with request:
            with pytest.raises(TimedOut):
                await asyncio.wait_for(
                    request.post(f"http://127.0.0.1:{port}/bot1:T/sendDocument", data), 60
                )
        assert accepted  # it did connect: the time went in the write
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_closed_port_raises_network_error(backend: str):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens
    token = "123456:SECRET-TOKEN"
    async with BACKENDS[backend]() as request:
        with pytest.raises(NetworkError) as err:
            await request.post(f"http://127.0.0.1:{port}/bot{token}/getMe")
    assert not isinstance(err.value, TimedOut)
    assert ("ClientConnectorError" if backend == "aiohttp" else "ConnectError") in str(err.value)
    assert token not in str(err.value)


async def test_shutdown_then_initialize(api: FakeBotAPI):
    request = AiohttpRequest(4)
    async with bot_on(api, request) as bot:
        await bot.send_message(USER, "one")
    await request.shutdown()  # a second shutdown is harmless
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(f"{api.base_url}{api.token}/getMe")
    async with bot_on(api, request) as bot:
        await bot.send_message(USER, "two")
    assert [m.text for m in api.outbox(USER)] == ["one", "two"]


def test_build_application_uses_aiohttp_with_the_same_timeouts():
    class Handler:
        def commands(self) -> list[tuple[str, str]]:
            return []

    app = build_application(Handler(), "123456:T")  # type: ignore[arg-type]
    assert isinstance(app.bot.request, AiohttpRequest)
    assert app.bot.request.read_timeout == 15
    # getUpdates keeps PTB's defaults (5 s read, then the poll time on top)
    updates = app.bot._request[0]
    assert isinstance(updates, AiohttpRequest) and updates is not app.bot.request
    assert updates.read_timeout == 5.0

"""The Bot API's HTTP client: python-telegram-bot's `BaseRequest` on aiohttp.

PTB documents `telegram.request.BaseRequest` as the way to bring another asyncio HTTP
library; its default, `HTTPXRequest`, spends more than twice the CPU per Bot API call
(httpx + httpcore + anyio against aiohttp's C parser, measured in README, Performance).
aiohttp is a dependency already (the webhook server), so the bot's calls go through it.

Behaviour follows `HTTPXRequest`:

- one `ClientSession` (a `TCPConnector` with `connection_pool_size` connections), made by
  `initialize()` inside the running loop and closed by `shutdown()`; `initialize()` again
  makes a new one;
- the constructor's timeouts apply unless a call passes its own (`DEFAULT_NONE`: not
  passed; an explicit `None`: no limit). aiohttp has other knobs than httpx, so:
  `read_timeout` is `sock_read` (the longest silence while waiting for the answer; a
  getUpdates long poll passes the poll time on top, Bot.get_updates does that),
  `connect_timeout` is `sock_connect`, and waiting for a free connection plus connecting
  is bounded by `pool_timeout + connect_timeout` (aiohttp has one timer for both).
  aiohttp has no write timeout: a request with a body is bounded as a whole by
  connect + pool + write + read, so a peer that stops reading the upload cannot hang it;
- parameters go as an urlencoded form, as a multipart form when there are files (every
  parameter a field, each file with its name and type; file names in the HTML5 style
  httpx uses, raw UTF-8);
- timeouts raise `TimedOut`, other aiohttp errors `NetworkError` (with the class name);
  every HTTP status is returned, `BaseRequest.post` turns errors into exceptions;
- proxies from the environment (HTTPS_PROXY, ...) are honoured, as httpx does, when set;
  certifi's CA bundle is used when installed, again as httpx does.
"""

from __future__ import annotations

import re
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_FORM = "application/x-www-form-urlencoded"
# What httpx does to a file name in a multipart header (the HTML5 form encoding): a quote
# and control characters (but ESC) percent-encoded; aiohttp doubles the backslash itself.
_NAME_ESCAPES = {'"': "%22"} | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
_NAME_RE = re.compile("|".join(re.escape(c) for c in _NAME_ESCAPES))
# A bot token in a URL (`/bot123456:ABC-def/sendMessage`): never in an error message.
_TOKEN_RE = re.compile(r"bot\d+:[\w-]+")
_CACHE_LIMIT = 64  # distinct timeout combinations kept (a handful in practice)
# A timeout while getting a connection (waiting for the pool or connecting); aiohttp < 3.10
# raises a plain ServerTimeoutError there, told apart from a read timeout by nothing.
_CONNECTION_TIMEOUT: Any = getattr(aiohttp, "ConnectionTimeoutError", ())


def _file_name(name: str) -> str:
    return _NAME_RE.sub(lambda m: _NAME_ESCAPES[m.group(0)], name)


def _ssl_context() -> ssl.SSLContext | bool:
    try:
        import certifi
    except ImportError:  # the system's CA store
        return True
    return ssl.create_default_context(cafile=certifi.where())


def _sum(*values: float | None) -> float | None:
    if any(v is None for v in values):
        return None
    return sum(values)  # type: ignore[arg-type]


class AiohttpRequest(BaseRequest):
    """`BaseRequest` on one aiohttp `ClientSession`. Arguments as `HTTPXRequest`'s."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_timeouts",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ):
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple, aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (Bot.get_updates adds the long poll time to it)."""
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        trust_env = any(
            key in ("http", "https", "all") for key in urllib.request.getproxies_environment()
        )  # looked up per request by aiohttp, so only when a proxy is set
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._pool_size, ssl=_ssl_context()),
            headers={"User-Agent": self.USER_AGENT},
            trust_env=trust_env,
        )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _timeout(
        self, read: Any, write: Any, connect: Any, pool: Any, files: bool, body: bool
    ) -> aiohttp.ClientTimeout:
        if isinstance(read, DefaultValue):
            read = self._read_timeout
        if isinstance(write, DefaultValue):
            write = self._media_write_timeout if files else self._write_timeout
        if isinstance(connect, DefaultValue):
            connect = self._connect_timeout
        if isinstance(pool, DefaultValue):
            pool = self._pool_timeout
        key = (read, write, connect, pool, body)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=_sum(connect, pool, write, read) if body else None,
                connect=_sum(pool, connect),
                sock_connect=connect,
                sock_read=read,
            )
            if len(self._timeouts) >= _CACHE_LIMIT:
                self._timeouts.clear()
            self._timeouts[key] = timeout
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")

        files = request_data.multipart_data if request_data is not None else None
        data: Any = None
        headers = None
        if files:
            data = aiohttp.FormData(quote_fields=False)
            for name, value in request_data.json_parameters.items():  # type: ignore[union-attr]
                data.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                data.add_field(name, content, filename=_file_name(filename), content_type=mimetype)
        elif request_data is not None:
            data = urlencode(request_data.json_parameters).encode()
            headers = {"Content-Type": _FORM}

        timeout = self._timeout(
            read_timeout,
            write_timeout,
            connect_timeout,
            pool_timeout,
            bool(files),
            request_data is not None,
        )
        try:
            async with session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as err:  # every aiohttp timeout error is one too
            if isinstance(err, _CONNECTION_TIMEOUT):
                raise TimedOut(
                    "Pool or connect timeout: no connection to the Bot API in time (all "
                    "connections of the pool busy, or connecting took too long)."
                ) from err
            raise TimedOut from err
        except aiohttp.ClientError as err:
            message = _TOKEN_RE.sub("bot<token>", str(err))
            raise NetworkError(f"aiohttp.{type(err).__name__}: {message}") from err


# ----------------------------------------------------------------------------- raw calls


async def call_raw(bot: Any, method: str, params: dict[str, Any], **timeouts: Any) -> Any:
    """Call the Bot API `method` (camelCase) and return its JSON result as it came.

    The named wrappers of python-telegram-bot (`Bot.send_message`, `Bot.get_updates`) build
    objects from every answer: a whole `Message` for each reply sent, of which the bot keeps
    the id; the updates, which the inbox would then turn back into a dict to store. That
    was about a tenth of the bot's CPU under load (README, Performance).

    This is `Bot.do_api_request` without its warning (it is meant for methods PTB has no
    wrapper for, and says so for the others): `Bot._post`, the step every wrapper and
    `do_api_request` share, so the request, its defaults, timeouts and errors are the same.
    `params` with None values dropped, objects (`ReplyParameters`) serialised by PTB, plain
    dicts (a keyboard as JSON) sent as they are. Retries are the caller's."""
    return await bot._post(method, params, **timeouts)

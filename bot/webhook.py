"""Webhook mode (`motcua webhook`): Telegram POSTs each update to our aiohttp server.

A request must carry the secret token in `X-Telegram-Bot-Api-Secret-Token` (compared in
constant time); without it, or with a wrong one, the answer is 403 and nothing is stored.
The HTTP 200 goes back only once the update is committed in the inbox (bot/inbox.py), so
Telegram delivers it again if the process dies first; the same update_id delivered twice
is applied once. Several identical processes behind one address can share one PostgreSQL
database: within a process the updates of one chat run in order (a per-chat lock), across
processes an update waits for an older one of its chat still being applied elsewhere, and
the row versions with retry keep two processes from losing each other's changes.

Settings (environment or .env): MOTCUA_WEBHOOK_URL (the public https URL Telegram calls;
its path is the path served), MOTCUA_WEBHOOK_SECRET (required: 1-256 characters of
A-Z a-z 0-9 _ -), MOTCUA_WEBHOOK_LISTEN (default 0.0.0.0), MOTCUA_WEBHOOK_PORT (default
8443).

`build_web_app` makes the aiohttp application; extra routes (bot/ops.py's /healthz and
/metrics) are mounted next to the webhook path.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update

from bot.settings import SettingsError, _env

if TYPE_CHECKING:
    from bot.inbox import InboxUpdater

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
DEFAULT_PORT = 8443
MAX_BODY = 1024 * 1024  # an update is a few kilobytes


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str
    listen: str = "0.0.0.0"
    port: int = DEFAULT_PORT

    @property
    def path(self) -> str:
        """The path served: the public URL's path ("/" when it has none)."""
        return urlsplit(self.url).path or "/"


def load_webhook_settings(env_file: Path | None = None) -> WebhookSettings:
    """The MOTCUA_WEBHOOK_* settings; a missing or malformed one raises SettingsError."""
    env = _env(env_file)
    url = (env.get("MOTCUA_WEBHOOK_URL") or "").strip()
    if not url:
        raise SettingsError(
            "MOTCUA_WEBHOOK_URL is not set: the public https address Telegram sends "
            "updates to (like https://bot.example.gov.vn/telegram)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise SettingsError(
            f"MOTCUA_WEBHOOK_URL is malformed: expected https://host/path, got {url!r}"
        )
    secret = (env.get("MOTCUA_WEBHOOK_SECRET") or "").strip()
    if not SECRET_RE.match(secret):
        raise SettingsError(
            "MOTCUA_WEBHOOK_SECRET must be set: 1 to 256 characters from A-Z, a-z, 0-9, _ "
            "and - (for example the output of `openssl rand -hex 32`)"
        )
    listen = (env.get("MOTCUA_WEBHOOK_LISTEN") or "").strip() or "0.0.0.0"
    raw_port = (env.get("MOTCUA_WEBHOOK_PORT") or "").strip() or str(DEFAULT_PORT)
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        raise SettingsError(f"MOTCUA_WEBHOOK_PORT must be a port number, got {raw_port!r}")
    return WebhookSettings(url=url, secret=secret, listen=listen, port=int(raw_port))


def build_web_app(
    updater: InboxUpdater, path: str, secret: str, extra_routes: Iterable[Any] = ()
) -> web.Application:
    """The aiohttp application: POST `path` receives updates; `extra_routes` (aiohttp
    RouteDefs, such as bot/ops.py's /healthz and /metrics) are served next to it."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("webhook request refused: wrong or missing secret token")
            return web.Response(status=403)
        try:
            raw = json.loads(await request.read())
            if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(raw, updater.bot)
        except Exception as exc:  # nothing to store: Telegram would send it again and again
            log.warning("webhook request ignored: unreadable update (%s)", type(exc).__name__)
            return web.Response(status=400)
        try:
            await updater.receive(update, raw)
        except Exception as exc:  # not stored: Telegram delivers it again later
            log.error("update %s not stored: %s", raw["update_id"], type(exc).__name__)
            return web.Response(status=500)
        return web.Response(status=200)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(path, receive)
    app.add_routes(list(extra_routes))
    return app


def run_webhook(app: Any, settings: WebhookSettings, extra_routes: Iterable[Any] = ()) -> None:
    """Run the bot as a webhook server until interrupted (blocking; owns the event loop),
    through python-telegram-bot's Application life cycle. `extra_routes` are served on the
    same port (bot/ops.py's /healthz and /metrics)."""
    from bot.telegram import WEBHOOK_KEY

    app.bot_data[WEBHOOK_KEY] = True
    app.updater.extra_routes = list(extra_routes)
    app.run_webhook(
        listen=settings.listen,
        port=settings.port,
        url_path=settings.path,
        webhook_url=settings.url,
        secret_token=settings.secret,
        allowed_updates=Update.ALL_TYPES,
    )

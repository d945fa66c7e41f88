"""No update lost: the durable inbox between Telegram and the conversation service.

python-telegram-bot's own Updater confirms a polled update as soon as it is fetched, so a
crash inside a handler loses that update for good. Here every update is written to the
inbox table (storage/inbox.py) before it is confirmed, processed from there, and marked
applied in the same transaction as its effects (the `receipt` of `flows.types.Inbound`,
which the conversation service runs inside its unit of work). The replies are stored with
that mark, sent, and then the row is finished:

- polling (`InboxUpdater.start_polling`, our own getUpdates loop): fetched updates are
  inserted (duplicates ignored) before the next getUpdates call confirms them (its offset);
- webhook (`InboxUpdater.start_webhook`, bot/webhook.py): the HTTP 200 is returned only
  once the update is in the inbox;
- on start, unfinished rows are processed first, in update_id order: "new" ones are
  applied, "applied" ones (the process died after the commit, before its replies went out)
  have their stored replies sent. A sweep every `SWEEP_SECONDS` takes over rows whose
  lease ran out (another process died) and prunes finished rows.

A duplicate delivery of an update_id is applied once: the insert ignores it, and if two
processes apply the same row anyway, the conditional mark lets one commit
(`AlreadyHandled` rolls the other back).

InboxUpdater subclasses python-telegram-bot's Updater, so `Application.run_polling` /
`run_webhook` keep their life cycle (post_init, signals, stop, post_shutdown).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Updater

from bot.http import call_raw
from flows.types import AlreadyHandled, Inbound, Outbound
from storage import inbox as rows

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=120)  # how long a process owns a row it is working on
SWEEP_SECONDS = 30.0  # how often abandoned rows are taken over and old rows pruned
KEEP_DONE = dt.timedelta(hours=48)  # finished ids kept against late duplicates (Telegram
# keeps an undelivered update at most 24 hours)
# a getUpdates long poll is given up this long after its poll time (the read timeout of
# the getUpdates request, bot/telegram.py)
POLL_READ_SLACK = 5.0
TURN_WAIT_SECONDS = 10.0  # webhook: how long an update waits for an older one of its chat
TURN_POLL_SECONDS = 0.05


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_owner(suffix: str) -> str:
    """This process's name in the inbox: host and role (a webhook process: its port), so a
    restarted process takes back its own rows at once."""
    return f"{socket.gethostname()}:{suffix}"[:120]


# ----------------------------------------------------------------------------- outbox codec


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _type(name: str) -> type:
    """A dataclass of the flows package by name (any other module is refused)."""
    module, _, qualname = name.partition(":")
    if module != "flows" and not module.startswith("flows."):
        raise ValueError(f"not a flows type: {name!r}")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise ValueError(f"not a dataclass: {name!r}")
    return found


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$t": _type_name(type(value)), **data}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if "$b" in value:
            return base64.b64decode(value["$b"])
        cls = _type(value["$t"])
        known = {f.name for f in dataclasses.fields(cls)}
        args = {k: _decode(v) for k, v in value.items() if k in known}
        if issubclass(cls, Outbound):
            args = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
        return cls(**args)
    return value


def encode_outbound(outbound: Outbound) -> dict[str, Any]:
    """The replies as JSON for the inbox row (files base64-encoded)."""
    return _encode(outbound)


def decode_outbound(data: dict[str, Any]) -> Outbound:
    return _decode(data)


# ----------------------------------------------------------------------------- the inbox


class Receipt:
    """Given to the service with the Inbound; run inside its unit of work just before the
    commit: marks the inbox row applied and stores the replies, or raises AlreadyHandled."""

    def __init__(self, inbox: Inbox, update_id: int) -> None:
        self.inbox = inbox
        self.update_id = update_id
        self.applied = False

    def __call__(self, uow: Any, outbound: Outbound) -> None:
        if not rows.mark_applied(uow, self.update_id, encode_outbound(outbound), utcnow()):
            raise AlreadyHandled(self.update_id)
        self.applied = True


def _chat_key(update: Update) -> str | None:
    chat = update.effective_chat
    return str(chat.id) if chat is not None else None


class Inbox:
    """One process's view of the inbox: what it accepted and works on, and the replies of
    recovered rows still to send."""

    def __init__(self, store: Any, owner: str, *, ordered_across_processes: bool = False):
        self.store = store
        self.owner = owner
        # webhook mode: an update waits (up to TURN_WAIT_SECONDS) while an older update of
        # its chat is still unapplied, maybe in another process
        self.ordered_across_processes = ordered_across_processes
        self._working: set[int] = set()
        self._stored: dict[int, Outbound] = {}
        # finish marks waiting for the transaction in flight (group commit, see `finish`)
        self._finishing: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- receiving
    def tracked(self, update_id: int) -> bool:
        """This process accepted (or recovered) the update and works on it."""
        return update_id in self._working

    async def accept(self, pairs: list[tuple[Update, dict]]) -> list[Update]:
        """Store the updates, each with its JSON as received (committed when this returns);
        return the new ones."""
        if not pairs:
            return []
        by_id = {u.update_id: (u, raw) for u, raw in pairs}  # one row per id
        fresh_ids = [i for i in by_id if i not in self._working]
        self._working.update(fresh_ids)  # before the insert: the sweep must not take them
        now = utcnow()
        received = [rows.Received(i, _chat_key(u), raw) for i, (u, raw) in by_id.items()]
        try:
            new = await asyncio.to_thread(
                rows.accept, self.store, received, self.owner, now, now + LEASE
            )
        except BaseException:
            self._working.difference_update(fresh_ids)
            raise
        inserted = set(new)
        self._working.difference_update(i for i in fresh_ids if i not in inserted)
        return [by_id[i][0] for i in new]

    async def recover(self, bot: Any, *, steal: bool) -> list[Update]:
        """Take over unfinished rows (see storage.inbox.claim), oldest first, as updates to
        process; the replies of applied ones are kept for `apply`."""
        now = utcnow()
        claimed = await asyncio.to_thread(
            rows.claim,
            self.store,
            self.owner,
            now,
            now + LEASE,
            steal=steal,
            exclude=set(self._working),
        )
        updates: list[Update] = []
        for row in claimed:
            try:
                update = Update.de_json(row.payload, bot)
                if row.status == rows.APPLIED:
                    self._stored[row.update_id] = decode_outbound(row.outbound or {})
            except Exception as exc:  # an unreadable row must not block the others
                log.error("inbox row %s unreadable: %s", row.update_id, type(exc).__name__)
                await self.finish(row.update_id)
                continue
            self._working.add(row.update_id)
            updates.append(update)
        if updates:
            log.info("inbox: %d unfinished update(s) taken over", len(updates))
        return updates

    # -- processing
    async def apply(self, handler: Any, inbound: Inbound, update_id: int) -> Outbound | None:
        """The replies to send for this update: applying it (effects and inbox mark in one
        transaction), or the stored replies of a row applied before a restart. None: the
        update was applied elsewhere (a duplicate)."""
        stored = self._stored.pop(update_id, None)
        if stored is not None:
            return stored
        if self.ordered_across_processes and inbound.origin.chat_id:
            await self._wait_turn(update_id, inbound.origin.chat_id)
        receipt = Receipt(self, update_id)
        try:
            outbound = await asyncio.to_thread(
                handler.handle, dataclasses.replace(inbound, receipt=receipt)
            )
        except AlreadyHandled:
            log.info("update %s was already applied: skipped", update_id)
            return None
        except Exception:
            await self.finish(update_id)  # a handler that raises is not retried forever
            raise
        if not receipt.applied:
            # nothing was committed with the mark (the service failed and apologises, or the
            # handler keeps no state): record the replies now, once
            encoded = encode_outbound(outbound)
            ok = await asyncio.to_thread(rows.apply_alone, self.store, update_id, encoded, utcnow())
            if not ok:
                return None
        return outbound

    async def _wait_turn(self, update_id: int, chat_key: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_WAIT_SECONDS
        while loop.time() < deadline:
            older = await asyncio.to_thread(
                rows.older_unapplied, self.store, chat_key, update_id, utcnow()
            )
            if not older:
                return
            await asyncio.sleep(TURN_POLL_SECONDS)
        log.warning("update %s: an older update of its chat is still pending; going on", update_id)

    async def finish(self, update_id: int) -> None:
        """Mark the row done; returns once that is committed. Marks that come while one
        transaction is in flight are committed together in the next (group commit: one
        commit for the updates finished in the same moments, no added wait)."""
        future = asyncio.get_running_loop().create_future()
        self._finishing.append((update_id, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_finishes())
        await future

    async def _flush_finishes(self) -> None:
        try:
            while self._finishing:
                batch, self._finishing = self._finishing, []
                ids = [update_id for update_id, _ in batch]
                try:
                    await asyncio.to_thread(rows.finish, self.store, ids, utcnow())
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                except BaseException:  # cancelled (shutting down): so are the waiters
                    for _, future in batch + self._finishing:
                        future.cancel()
                    self._finishing = []
                    raise
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flusher = None

    def release(self, update_id: int) -> None:
        """This process no longer works on the update (finished, or left for a retry)."""
        self._working.discard(update_id)
        self._stored.pop(update_id, None)

    async def prune(self) -> int:
        return await asyncio.to_thread(rows.prune, self.store, utcnow() - KEEP_DONE)


# ----------------------------------------------------------------------------- the updater


class InboxUpdater(Updater):
    """python-telegram-bot's Updater with our transport: a getUpdates loop or an aiohttp
    webhook server, both feeding the Application's update queue through the inbox (when
    `inbox` is given; without it, updates go straight to the queue, as before)."""

    def __init__(self, bot: Any, update_queue: asyncio.Queue, inbox: Inbox | None = None):
        super().__init__(bot, update_queue)
        self.inbox = inbox
        # aiohttp routes served next to the webhook (bot/ops.py's /healthz and /metrics)
        self.extra_routes: list = []
        self._tasks: list[asyncio.Task] = []
        self._runner: Any = None

    # -- polling
    async def start_polling(  # type: ignore[override]
        self,
        poll_interval: float = 0.0,
        timeout: dt.timedelta | float = dt.timedelta(seconds=10),
        bootstrap_retries: int = 0,
        allowed_updates: Any = None,
        drop_pending_updates: bool | None = None,
        error_callback: Callable[[TelegramError], None] | None = None,
    ) -> asyncio.Queue:
        self._begin()
        try:
            await self._recover(steal=True)  # the only poller: everything unfinished is ours
            self._tasks.append(
                asyncio.create_task(
                    self._poll(timeout, allowed_updates, poll_interval), name="motcua:poll"
                )
            )
            self._start_sweep()
        except BaseException:
            await self._end()
            raise
        return self.update_queue

    async def _poll(self, timeout: Any, allowed_updates: Any, interval: float) -> None:
        offset: int | None = None
        backoff = 0.0
        while self._running:
            try:
                raw = await self._get_updates(offset, timeout, allowed_updates)
                updates = [Update.de_json(item, self.bot) for item in raw]
                # stored as they came (no to_dict of the parsed objects)
                pairs = list(zip(updates, raw, strict=True))
                fresh = await self.inbox.accept(pairs) if self.inbox else updates
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the Bot API or the database: wait and ask again
                backoff = min(max(backoff * 2, 1.0), 30.0)
                log.warning("polling failed (%s); retrying in %.0fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            for update in fresh:
                await self.update_queue.put(update)
            if updates:
                # the next call confirms these: they are in the inbox now
                offset = max(u.update_id for u in updates) + 1
            if interval:
                await asyncio.sleep(interval)

    async def _get_updates(self, offset: int | None, timeout: Any, allowed: Any) -> list[dict]:
        """getUpdates as `Bot.get_updates` makes it, answering the raw JSON (call_raw)."""
        poll = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout or 0
        params = {"offset": offset, "timeout": timeout, "allowed_updates": allowed}
        return await call_raw(self.bot, "getUpdates", params, read_timeout=POLL_READ_SLACK + poll)

    # -- webhook
    async def start_webhook(  # type: ignore[override]
        self,
        listen: str = "127.0.0.1",
        port: int = 80,
        url_path: str = "",
        cert: Any = None,
        key: Any = None,
        bootstrap_retries: int = 0,
        webhook_url: str | None = None,
        allowed_updates: Any = None,
        drop_pending_updates: bool | None = None,
        ip_address: str | None = None,
        max_connections: int = 40,
        secret_token: str | None = None,
        unix: Any = None,
    ) -> asyncio.Queue:
        from aiohttp import web

        from bot.webhook import build_web_app

        if not secret_token:
            raise ValueError("a webhook needs a secret token")
        self._begin()
        try:
            await self._recover(steal=False)
            web_app = build_web_app(self, url_path, secret_token, self.extra_routes)
            self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5)
            await self._runner.setup()
            await web.TCPSite(self._runner, listen, port).start()
            if webhook_url:
                await self.bot.set_webhook(
                    webhook_url,
                    secret_token=secret_token,
                    allowed_updates=allowed_updates,
                    max_connections=max_connections,
                    drop_pending_updates=drop_pending_updates,
                    ip_address=ip_address,
                )
            self._start_sweep()
        except BaseException:
            await self._end()
            raise
        log.info("webhook server listening on %s:%s", listen, port)
        return self.update_queue

    async def receive(self, update: Update, raw: dict) -> None:
        """One update from the webhook: durable (when this returns) and queued, or ignored
        as a duplicate. Raises when it could not be stored (the caller answers 500)."""
        fresh = await self.inbox.accept([(update, raw)]) if self.inbox else [update]
        for u in fresh:
            await self.update_queue.put(u)

    # -- common
    def _begin(self) -> None:
        if self._running:
            raise RuntimeError("This Updater is already running!")
        if not self._initialized:
            raise RuntimeError("This Updater was not initialized via `Updater.initialize`!")
        self._running = True

    async def _recover(self, *, steal: bool) -> None:
        if self.inbox is None:
            return
        for update in await self.inbox.recover(self.bot, steal=steal):
            await self.update_queue.put(update)

    def _start_sweep(self) -> None:
        if self.inbox is not None:
            self._tasks.append(asyncio.create_task(self._sweep(), name="motcua:inbox-sweep"))

    async def _sweep(self) -> None:
        while self._running:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self._recover(steal=False)
                await self.inbox.prune()  # type: ignore[union-attr]
            except Exception as exc:  # the next sweep tries again
                log.warning("inbox sweep failed: %s", type(exc).__name__)

    async def _end(self) -> None:
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def stop(self) -> None:
        if not self._running:
            raise RuntimeError("This Updater is not running!")
        await self._end()

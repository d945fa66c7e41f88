"""Broadcasts: an officer's announcement to the citizens of their commune, transport-free.

`/thongbao <text>` (the text may also go on the following lines), from a configured
officer in a private chat with the bot or in their commune's officers' group:
1. a preview: exactly what citizens will get, how many will get it, how many are left
   out (they sent /tatnhac, or they blocked the bot), with the Send / Cancel buttons
   (`b.<id>.y` / `b.<id>.n`). Only the officer who asked may press them; anyone else gets
   a short refusal and the buttons stay.
2. Send: the recipient list is fixed in the same transaction (one row per citizen,
   storage/broadcast.py) and the preview message becomes the progress message; the
   sending job (bot/broadcast.py) claims the rows, sends, records each outcome, edits the
   progress at most every `progress_seconds`, and posts the final count (sent, blocked,
   failed). Nothing is sent twice: a row is claimed and committed before its message
   goes out, and after a restart only the pending rows are sent.

Who belongs to a commune: with one commune configured (OFFICER_CHAT_ID), every citizen.
With a directory of communes, a citizen belongs to the commune their requests are routed
to (`OfficerDesk.commune_for`): the residence commune answered in their most recently
updated draft when the directory knows it, else the default commune. Citizens who sent
/tatnhac (stopped) or whose chat refused a message (unreachable, storage/reminders.py
ReminderPref) are left out. A 403 while sending marks the citizen unreachable and cancels
their planned reminders, as a reminder's 403 does.

All text comes from procedures/_shared/templates/broadcast.j2.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows.communes import Commune
from flows.render import macro_text
from flows.types import Button, Command, Delivery, Inbound, Outbound, Press, Reply, Target
from procedures.loader import Catalog
from storage import broadcast as rows
from storage import reminders as prefs
from storage.store import Store

if TYPE_CHECKING:
    from flows.officer import OfficerDesk

log = logging.getLogger(__name__)

COMMAND = "thongbao"
BUTTON_KEY = "b"
CODE_FIRST = re.compile(r"(\d{1,12})(?:\s+(.*))?$", re.DOTALL)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class BroadcastConfig:
    """Settings of the sending job (MOTCUA_BROADCAST_*)."""

    max_chars: int = 3000  # the officer's text (the preview must fit one message)
    progress_seconds: float = 10.0  # at most one progress edit this often (groups: 20/min)
    workers: int = 4  # messages in flight at once (the shared Pacer spaces them)
    attempts: int = 3  # tries per citizen on network errors (never after a possible send)
    stale_minutes: float = 10.0  # a row left "sending" this long: its sender died
    tick_seconds: float = 2.0  # how often the job looks for work

    @classmethod
    def from_env(cls, env: dict[str, str]) -> BroadcastConfig:
        """Read the settings; raises ValueError with one line naming the bad one."""
        kw: dict[str, Any] = {}
        for name, key, low, high in (
            ("MOTCUA_BROADCAST_MAX_CHARS", "max_chars", 100, 3500),
            ("MOTCUA_BROADCAST_PROGRESS_SECONDS", "progress_seconds", 3, 600),
            ("MOTCUA_BROADCAST_WORKERS", "workers", 1, 30),
            ("MOTCUA_BROADCAST_STALE_MINUTES", "stale_minutes", 1, 1440),
        ):
            raw = (env.get(name) or "").strip()
            if raw:
                if not raw.isdigit() or not low <= int(raw) <= high:
                    raise ValueError(f"{name} must be a whole number from {low} to {high}")
                kw[key] = int(raw)
        return cls(**kw)


@dataclass
class Audience:
    citizen_ids: list[int]
    stopped: int
    unreachable: int


@dataclass
class Job:
    """One recipient to send to, with the text."""

    recipient_id: int
    broadcast_id: int
    citizen_id: int
    attempts: int
    target: Target
    text: str


@dataclass
class Edit:
    """A progress message to edit (or, with `final`, also a final report to post)."""

    target: Target
    message_id: int | None
    text: str
    final: str = ""


class Broadcasts:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        desk: OfficerDesk,
        config: BroadcastConfig | None = None,
    ) -> None:
        self.store = store
        self.desk = desk
        self.dir = desk.dir
        self.cfg = config or BroadcastConfig()
        self._t = catalog.env.get_template("broadcast.j2").module

    def t(self, macro: str, /, **ctx: Any) -> str:
        return macro_text(self._t, macro, ctx)

    # ------------------------------------------------------------------ routing
    def wants(self, inbound: Inbound) -> bool:
        ev = inbound.event
        if isinstance(ev, Command):
            return ev.name == COMMAND
        return isinstance(ev, Press) and ev.data.startswith(BUTTON_KEY + ".")

    def handle(self, uow: Any, inbound: Inbound, now: dt.datetime) -> Outbound:
        out = Outbound()
        ev = inbound.event
        if isinstance(ev, Command):
            self._command(uow, inbound, ev.arg, now, out)
        elif isinstance(ev, Press):
            self._press(uow, inbound, ev.data, now, out)
        return out

    # ------------------------------------------------------------------ who and whom
    def _communes(self, inbound: Inbound) -> list[Commune]:
        """The communes this sender may broadcast for, here (a group: only its communes)."""
        sender = inbound.sender
        if sender.channel != self.dir.channel:
            return []
        who = sender.external_id
        if inbound.origin.group:
            try:
                chat = int(inbound.origin.chat_id)
            except ValueError:
                return []
            return [c for c in self.dir.by_group(chat) if who in c.officers]
        return self.dir.communes_of(who)

    def audience(self, uow: Any, commune: Commune) -> Audience:
        """The citizens of `commune` who get a broadcast now, and how many are left out."""
        several = len(self.dir.communes) > 1
        ids: list[int] = []
        stopped = unreachable = 0
        for c in rows.candidates(uow, self.dir.channel, with_drafts=several):
            if several:
                draft = c if c.procedure_id is not None else None
                if self.desk.commune_for(draft) is not commune:  # type: ignore[arg-type]
                    continue
            if c.unreachable:
                unreachable += 1
            elif c.stopped:
                stopped += 1
            else:
                ids.append(c.citizen_id)
        return Audience(ids, stopped, unreachable)

    # ------------------------------------------------------------------ /thongbao
    def _command(
        self, uow: Any, inbound: Inbound, arg: str, now: dt.datetime, out: Outbound
    ) -> None:
        communes = self._communes(inbound)
        if not communes:
            out.replies.append(Reply(self.desk.t("refusal")))
            return
        text = arg.strip()
        commune = communes[0]
        if len(communes) > 1:  # the commune's code goes first: /thongbao 23152 text
            m = CODE_FIRST.match(text)
            chosen = [c for c in communes if m and str(c.code) == m.group(1)]
            if not chosen:
                codes = [str(c.code) for c in communes]
                out.replies.append(Reply(self.t("choose_commune", codes=codes, communes=communes)))
                return
            commune, text = chosen[0], (m.group(2) or "").strip()
        if not text:
            out.replies.append(Reply(self.t("usage", max=self.cfg.max_chars)))
            return
        if utf16_len(text) > self.cfg.max_chars:
            out.replies.append(
                Reply(self.t("too_long", max=self.cfg.max_chars, length=utf16_len(text)))
            )
            return
        aud = self.audience(uow, commune)
        if not aud.citizen_ids:
            out.replies.append(Reply(self.t("nobody", aud=aud, commune=commune)))
            return
        o = inbound.origin
        sender = inbound.sender
        chat = o.chat_id if o.group else sender.external_id
        bid = rows.add(
            uow,
            commune_code=commune.code,
            officer_id=sender.external_id,
            officer_name=sender.display_name or sender.username or "",
            channel=sender.channel,
            chat_id=chat,
            thread_id=o.thread_id if o.group else None,
            text=text,
            now=now,
        )
        self._audit(uow, inbound, now, "broadcast_preview", id=bid, recipients=len(aud.citizen_ids))
        out.replies.append(self._preview(uow, rows.get(uow, bid), commune, aud))

    def message(self, commune: Commune, text: str) -> str:
        """What citizens get: the officer's text with the commune's header and the way to
        stop such messages."""
        return self.t("announcement", commune=commune, text=text)

    def _preview(
        self, uow: Any, b: rows.BroadcastRec, commune: Commune, aud: Audience | None = None
    ) -> Reply:
        aud = aud or self.audience(uow, commune)
        text = self.t(
            "preview",
            b=b,
            aud=aud,
            n=len(aud.citizen_ids),
            commune=commune,
            message=self.message(commune, b.text),
        )
        buttons = (
            (
                Button(self.t("btn_send"), f"{BUTTON_KEY}.{b.id}.y"),
                Button(self.t("btn_cancel"), f"{BUTTON_KEY}.{b.id}.n"),
            ),
        )
        return Reply(text, buttons, "choice")

    # ------------------------------------------------------------------ send / cancel
    def _press(
        self, uow: Any, inbound: Inbound, data: str, now: dt.datetime, out: Outbound
    ) -> None:
        sender = inbound.sender
        parts = data.split(".")
        b = None
        if len(parts) == 3 and parts[1].isdigit() and parts[2] in ("y", "n"):
            b = rows.get(uow, int(parts[1]))
        officer = self.dir.is_officer(sender.channel, sender.external_id)
        if b is None:
            out.notice = self.t("notice_gone") if officer else self.desk.t("notice_refused")
            return
        commune = self.dir.commune(b.commune_code)
        mine = (
            sender.channel == b.channel
            and sender.external_id == b.officer_id
            and self.dir.may_act(sender.channel, sender.external_id, b.commune_code)
        )
        if not mine:
            out.notice = self.t("notice_author_only") if officer else self.desk.t("notice_refused")
            # the transport takes the buttons off the pressed message: put them back
            if b.status == rows.PREVIEW and inbound.origin.message_id is not None:
                target = Target(b.channel, b.chat_id)
                reply = self._preview(uow, b, commune)
                out.deliveries.append(
                    Delivery(target, reply, edit_message_id=inbound.origin.message_id)
                )
            return
        if b.status != rows.PREVIEW:
            out.notice = self.t("notice_over", b=b)
            return
        if parts[2] == "n":
            rows.change(uow, b.id, expect_status=rows.PREVIEW, status=rows.CANCELLED)
            self._audit(uow, inbound, now, "broadcast_cancel", id=b.id)
            out.notice = self.t("notice_cancelled", b=b)
            out.replies.append(Reply(self.t("cancelled", b=b)))
            return
        aud = self.audience(uow, commune)
        message = self.message(commune, b.text)
        if not rows.confirm(
            uow,
            b.id,
            aud.citizen_ids,
            now,
            message=message,
            skipped_stopped=aud.stopped,
            skipped_unreachable=aud.unreachable,
            progress_message_id=inbound.origin.message_id,
        ):
            out.notice = self.t("notice_over", b=b)
            return
        self._audit(uow, inbound, now, "broadcast_send", id=b.id, recipients=len(aud.citizen_ids))
        out.notice = self.t("notice_started", b=b, n=len(aud.citizen_ids))
        b = rows.get(uow, b.id)
        assert b is not None
        counts = rows.Counts(total=len(aud.citizen_ids), pending=len(aud.citizen_ids))
        progress = Reply(self.t("progress", b=b, counts=counts, commune=commune))
        if b.progress_message_id is not None:
            out.deliveries.append(
                Delivery(
                    Target(b.channel, b.chat_id), progress, edit_message_id=b.progress_message_id
                )
            )
        else:
            out.replies.append(progress)

    def _audit(self, uow: Any, inbound: Inbound, now: dt.datetime, action: str, **details: Any):
        s = inbound.sender
        uow.add_audit(s.external_id, action, now, actor_name=s.display_name, details=details)

    # ------------------------------------------------------------------ the sending job
    def busy(self) -> bool:
        """Whether a broadcast is being sent (the job has work)."""
        with self.store.unit_of_work() as uow:
            return bool(rows.broadcasts(uow, [rows.SENDING]))

    def claim(self, now: dt.datetime, limit: int = 1) -> list[Job]:
        """Take up to `limit` recipients to send to (committed as "sending" before return)."""
        with self.store.unit_of_work() as uow:
            taken = rows.claim(uow, now, limit)
            texts: dict[int, str] = {}
            jobs = []
            for r in taken:
                if r.broadcast_id not in texts:
                    b = rows.get(uow, r.broadcast_id)
                    texts[r.broadcast_id] = b.message if b else ""
                jobs.append(
                    Job(
                        r.id,
                        r.broadcast_id,
                        r.citizen_id,
                        r.attempts,
                        Target(r.channel, r.external_id),
                        texts[r.broadcast_id],
                    )
                )
            uow.commit()
        return jobs

    def outcome(self, job: Job, status: str, now: dt.datetime, note: str = "") -> None:
        """Record what happened to one message. BLOCKED also marks the citizen unreachable
        and cancels their planned reminders; a retryable failure goes back to pending
        until `attempts` is used up."""
        if status == rows.PENDING and job.attempts >= self.cfg.attempts:
            status = rows.FAILED
        with self.store.unit_of_work() as uow:
            rows.finish(uow, job.recipient_id, status, now, note)
            if status == rows.BLOCKED:
                prefs.set_pref(uow, job.citizen_id, now, unreachable=True)
                prefs.cancel(uow, now, citizen_id=job.citizen_id, note="unreachable")
            uow.commit()

    def close_stale(self, now: dt.datetime) -> int:
        before = now - dt.timedelta(minutes=self.cfg.stale_minutes)
        with self.store.unit_of_work() as uow:
            n = rows.close_stale(uow, before)
            uow.commit()
        if n:
            log.warning("broadcast: %d message(s) interrupted mid-send, counted as failed", n)
        return n

    def progress(self, now: dt.datetime, *, force: bool = False) -> list[Edit]:
        """Progress edits due now (at most one per broadcast per `progress_seconds`, across
        processes) and, for broadcasts with nothing left to send, the final report (once)."""
        out: list[Edit] = []
        with self.store.unit_of_work() as uow:
            for b in rows.broadcasts(uow, [rows.SENDING]):
                commune = self.dir.commune(b.commune_code)
                target = Target(b.channel, b.chat_id, b.thread_id)
                if rows.finish_broadcast(uow, b.id, now):
                    counts = rows.counts(uow, b.id)
                    b = rows.get(uow, b.id)
                    assert b is not None
                    out.append(
                        Edit(
                            target,
                            b.progress_message_id,
                            self.t("progress", b=b, counts=counts, commune=commune),
                            final=self.t("final", b=b, counts=counts, commune=commune),
                        )
                    )
                    self._finished_log(b, counts)
                elif b.progress_message_id is not None and rows.take_progress(
                    uow, b.id, now, 0 if force else self.cfg.progress_seconds
                ):
                    counts = rows.counts(uow, b.id)
                    text = self.t("progress", b=b, counts=counts, commune=commune)
                    out.append(Edit(target, b.progress_message_id, text))
            uow.commit()
        return out

    @staticmethod
    def _finished_log(b: rows.BroadcastRec, c: rows.Counts) -> None:
        log.info(
            "broadcast %s done: %d sent, %d blocked, %d failed", b.id, c.sent, c.blocked, c.failed
        )

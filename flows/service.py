"""The conversation service: load -> advance -> save in one transaction -> replies.

Transports call `handle(inbound)` and send what comes back. Every accepted answer is
committed before this returns, so a crash after it loses nothing and a crash before it
loses only the message in flight (which the person sees unanswered and sends again).

Citizen-level routing (the main menu, the list of drafts, deep links, starting a
procedure) lives here; everything inside a draft is the engine's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, IntegrityError

from flows import engine as eng
from flows import intents, pdfworker
from flows import privacy as priv
from flows.render import MAX_TEXT, Renderer, tidy
from flows.types import (
    AlreadyHandled,
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
from procedures.loader import Catalog
from procedures.model import Procedure
from storage.store import DraftRec, FactRec, StaleVersion, Store

if TYPE_CHECKING:
    from flows.officer import OfficerDesk
    from flows.reminders import Reminders

log = logging.getLogger(__name__)

OPEN_STATUSES = (eng.ACTIVE, eng.COMPLETED, eng.EXITED)
RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
LISTED_STATUSES = (eng.ACTIVE, eng.COMPLETED, eng.SUBMITTED, eng.EXITED)
MAX_LISTED = 8


def subject_of(proc: Procedure, state: dict[str, Any]) -> str:
    """Whom a draft is for, to tell drafts apart in /hoso: the subject's name when the
    procedure asks it (`subject_*`), else the first name answered."""
    shown = state.get("shown", {})
    names = [f.id for f in proc.fields if f.type == "name" and shown.get(f.id)]
    names.sort(key=lambda fid: not fid.startswith("subject_"))
    return shown[names[0]][:80] if names else ""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConversationService:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        clock: Callable[[], dt.datetime] = utcnow,
        raise_errors: bool = False,
        officers: OfficerDesk | None = None,
        reminders: Reminders | None = None,
        privacy: priv.PrivacyConfig | None = None,
    ) -> None:
        self.raise_errors = raise_errors  # tests see the real exception
        self.privacy = privacy or priv.PrivacyConfig()  # consent notice, retention
        self._next_purge: dt.datetime | None = None
        self._privacy_t = catalog.env.get_template("privacy.j2").module
        self.officers = officers  # the officer side (flows/officer.py); None: not configured
        self.reminders = reminders  # reminder rows (flows/reminders.py); None: no reminders
        self.store = store
        self.catalog = catalog
        self.renderer = Renderer(catalog)
        self.intents = intents.model_for(catalog)
        self.tz = ZoneInfo(timezone)
        self.clock = clock

    # ------------------------------------------------------------------ public
    def commands(self) -> list[tuple[str, str]]:
        return list(self.catalog.ui["commands"].items())

    def handle(self, inbound: Inbound) -> Outbound:
        """Apply one event; never raises: an unexpected error is logged (type and place
        only, no personal data) and the person gets a short apology, nothing committed."""
        try:
            return self._handle(inbound)
        except AlreadyHandled:
            raise  # a duplicate delivery: nothing applied, nothing to say
        except Exception as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
            log.error("event failed: %s at %s", type(exc).__name__, where)
            if self.raise_errors:
                raise
            return Outbound(replies=[Reply(self.renderer.msg("internal_error"))])

    def _handle(self, inbound: Inbound) -> Outbound:
        last: Exception | None = None
        for _attempt in range(5):
            try:
                with self.store.unit_of_work() as uow:
                    now = self.clock()
                    # the officer side first: group events, officer commands, and the
                    # citizen whose case an officer owns (the engine must not answer)
                    out = self.officers.route(self, uow, inbound, now) if self.officers else None
                    if out is None:
                        out = _Turn(self, uow, inbound, now).run()
                    if inbound.receipt is not None:  # the transport's inbox, same transaction
                        inbound.receipt(uow, out)
                    uow.commit()
                    return out
            except (StaleVersion, IntegrityError) as exc:  # another process won: redo
                last = exc
                continue
            except DBAPIError as exc:
                # PostgreSQL gave up on this transaction for another's sake (a deadlock
                # between two turns locking a citizen and a case in opposite orders, a
                # serialization failure): nothing was applied, redo
                if getattr(exc.orig, "sqlstate", None) not in RETRY_SQLSTATES:
                    raise
                last = exc
                continue
        raise RuntimeError("could not apply the update after several retries") from last

    # ------------------------------------------------------------------ officer side
    def resume_citizen(
        self, uow: Any, citizen_id: int, draft_id: int | None, now: dt.datetime
    ) -> list[Reply]:
        """The bot takes a conversation back from an officer: re-render where the citizen
        is (the case's draft, else their active one, else the menu), inside `uow`."""
        citizen = uow.citizen_by_id(citizen_id)
        if citizen is None:
            return []
        sender = Sender(citizen.channel, citizen.external_id)
        turn = _Turn(self, uow, Inbound(sender, Command("start")), now)
        if draft_id is not None and turn.uow.draft(draft_id) is not None:
            turn.session["active"] = draft_id
        draft = turn._active()
        if draft is not None:
            turn._engine_resume(draft)
        else:
            turn._menu(note="choose_procedure")
        turn.citizen.session = turn.session
        uow.save_citizen(turn.citizen)
        return turn.out.replies

    def record_sent(self, tag: str, chat_id: str, message_id: int, thread_id: int | None) -> None:
        """The transport reports a message it sent for a Delivery with `record=tag`."""
        if self.officers is None:
            return
        with self.store.unit_of_work() as uow:
            self.officers.record_sent(uow, tag, chat_id, message_id, thread_id)
            uow.commit()

    def unreachable(self, channel: str, external_id: str) -> None:
        """The transport reports a chat that refuses messages (blocked the bot, account
        deactivated): the citizen's reminders stop, as when a reminder hits the 403."""
        if self.reminders is not None:
            self.reminders.unreachable(channel, external_id, self.clock())

    def privacy_text(self, macro: str, /, **ctx: Any) -> str:
        ctx = {"draft_days": self.privacy.draft_days, "case_days": self.privacy.case_days} | ctx
        return tidy(str(getattr(self._privacy_t, macro)(ctx)))

    def purge_due(self) -> None:
        """The retention purge (flows/privacy.py), at most once per PURGE_EVERY."""
        now = self.clock()
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + priv.PURGE_EVERY
        priv.purge(self.store, now, self.privacy)

    def tick(self) -> Outbound:
        """Periodic work (the transport's job queue calls it): the retention purge, and
        unclaimed cases announced again. Returns deliveries only."""
        self.purge_due()
        if self.officers is None:
            return Outbound()
        with self.store.unit_of_work() as uow:
            deliveries = self.officers.due_reannouncements(uow, self.clock())
            uow.commit()
        return Outbound(deliveries=deliveries)


# How stale a citizen's `last_seen_at` may get before a turn that changes nothing else of
# the citizen writes it (storage.store.UnitOfWork.keep_citizen). It only dates the
# citizen for the retention purge, counted in days (flows/privacy.py).
SEEN_EVERY = dt.timedelta(minutes=5)


def _citizen_fields(citizen: Any) -> tuple:
    """What a turn may change of a citizen besides `last_seen_at`: a deep copy of the
    session (a nested value changed in place must not compare equal to itself)."""
    session = eng.clone_json(citizen.session or {})
    return (session, citizen.display_name, citizen.username, citizen.timezone)


class _Turn:
    """One inbound event for one citizen, inside one unit of work."""

    def __init__(self, svc: ConversationService, uow: Any, inbound: Inbound, now: dt.datetime):
        self.svc = svc
        self.uow = uow
        self.inbound = inbound
        self.now = now
        self.today = now.astimezone(svc.tz).date()
        self.r = svc.renderer
        self.catalog = svc.catalog
        self.out = Outbound()
        sender = inbound.sender
        # locked until the commit (PostgreSQL): another process's turn of this citizen waits
        citizen = uow.citizen(sender.channel, sender.external_id, lock=True)
        self.is_new = citizen is None
        if citizen is None:  # no name kept before consent (flows/privacy.py)
            citizen = uow.add_citizen(sender.channel, sender.external_id, "", "", now)
        self.citizen = citizen
        self.session: dict[str, Any] = dict(citizen.session or {})
        self._as_read = _citizen_fields(citizen)
        self.erased = False

    # ------------------------------------------------------------------ dispatch
    def run(self) -> Outbound:
        ev = self.inbound.event
        if isinstance(ev, Command):
            self._command(ev)
        elif isinstance(ev, Press):
            self._press(ev.data)
        elif isinstance(ev, Text):
            self._text(ev.text)
        elif isinstance(ev, Other):
            draft = self._active()
            if draft and self.session.get("screen") != "menu":
                self._engine_event(draft, ev)
            elif draft:
                self._engine_resume(draft, note="resume_note")
            else:
                self._menu(note="not_text_menu")
        if not self.erased:
            citizen = self.citizen
            seen_before = citizen.last_seen_at
            citizen.session = self.session
            citizen.last_seen_at = self.now
            if self.inbound.sender.display_name and priv.consented(self.session):
                citizen.display_name = self.inbound.sender.display_name
                citizen.username = self.inbound.sender.username
            if (
                self.is_new
                or _citizen_fields(citizen) != self._as_read
                or not seen_before <= self.now < seen_before + SEEN_EVERY
            ):
                self.uow.save_citizen(citizen)
            else:  # most answers change nothing of the citizen (README, Performance)
                citizen.last_seen_at = seen_before
                self.uow.keep_citizen(citizen)
        return self.out

    def _command(self, cmd: Command) -> None:
        name = cmd.name
        if name == "start":
            arg = cmd.arg.strip()
            if arg and self.catalog.get(arg):
                self._start_procedure(self.catalog.get(arg))
                return
            draft = self._active()
            if draft and draft.status in (eng.ACTIVE, eng.COMPLETED):
                self._resume_offer(draft)
            else:
                self._menu(returning=not self.is_new)
        elif name == "hoso":
            self._drafts_list()
        elif name == "huongdan":
            self._say(self.r.msg("general_help"))
            draft = self._active()
            if draft:
                self._engine_resume(draft)
            else:
                self._menu(note="choose_procedure")
        elif name in ("tatnhac", "batnhac") and self.svc.reminders is not None:
            self._say(self.svc.reminders.command(self.uow, self.citizen, name, self.now))
            draft = self._active()
            if draft:
                self._engine_resume(draft)
            else:
                self._menu(note="choose_procedure")
        elif name == "xoadulieu":
            self._ask_erase()
        elif name in ("canbo", "huy"):
            draft = self._active()
            if draft:
                self._engine_event(draft, cmd)
            elif name == "canbo":
                self._officer_from_menu(None)
            else:
                self._menu(note="choose_procedure")
        else:
            draft = self._active()
            if draft:
                self._engine_event(draft, cmd)
            else:
                self._say(self.r.msg("unknown_command", name=name[:32]))
                self._menu(note="choose_procedure")

    def _text(self, text: str) -> None:
        draft = self._active()
        if draft and self.session.get("screen") != "menu":
            self._engine_event(draft, Text(text))
            return
        # at a menu (or after "save and leave") typed text is never taken as the answer
        # to a question that is not on the screen
        intent = self.svc.intents.classify(text)
        kind = intent.kind if intent.score >= 0.45 else "unknown"
        proc = self.catalog.get(intent.procedure) if intent.procedure else None
        if kind == "start_procedure" and proc and intent.confident:
            self._start_procedure(proc)
        elif kind in ("greeting", "thanks", "resume") and draft is not None:
            self._engine_resume(draft, note="resume_note")
        elif kind in ("question", "greeting", "thanks", "ambiguous", "start_procedure"):
            self._menu(text=intents.render_reply(self.catalog, intent, None, self.today))
        elif kind == "officer":
            self._officer_from_menu(draft.id if draft else None)
        elif kind == "help":
            self._say(self.r.msg("general_help"))
            self._menu(note="choose_procedure")
        elif draft is not None:
            self._engine_resume(draft, note="resume_note")
        elif kind == "resume":
            self._drafts_list()
        elif kind == "list_procedures":
            self._menu(note="choose_procedure")
        elif not priv.consented(self.session):
            self._menu(note="unknown_text")  # nothing recorded before consent
        else:
            self.uow.add_facts(
                [
                    FactRec(
                        kind="UnknownMessage",
                        data={"text": intents.redact(text)[:500]},
                        citizen_id=self.citizen.id,
                        draft_id=None,
                        at=self.now,
                    )
                ]
            )
            self._menu(note="unknown_text")

    def _press(self, data: str) -> None:
        parts = data.split(".", 2)
        if len(parts) != 3:
            self._stale()
            return
        key, turn, token = parts
        if key == "rm":  # a reminder's button (flows/reminders.py): no stale-turn check
            rem = self.svc.reminders
            if rem is not None and rem.answers(turn):  # got / unused / used the result
                replies = rem.press(self.uow, self.citizen, turn, token, self.now)
                if replies is None:
                    self._stale()  # not this citizen's draft
                else:
                    self.out.replies.extend(replies)
                return
            self._menu_token(f"r:{token}")
            return
        if key == "m":
            if turn != str(self.session.get("turn", 0)):
                self._stale()
                return
            self._menu_token(token)
            return
        draft = self.uow.draft_by_short_id(key)
        if draft is None or draft.citizen_id != self.citizen.id:
            self._stale()  # a forged button or someone else's: never reveal anything
            return
        if draft.status == eng.CANCELLED:
            self._stale()
            return
        self.session["active"] = draft.id
        self._engine_event(draft, Press(data))

    def _stale(self) -> None:
        draft = self._active()
        if draft:
            self._engine_event(draft, Press("x.x.stale"))
        else:
            self._say(self.r.msg("stale_button"))
            self._menu(note="choose_procedure")

    # ------------------------------------------------------------------ menu
    def _menu_token(self, token: str) -> None:
        op, _, arg = token.partition(":")
        if op in ("p", "n", "officer"):  # pressed under the consent notice: agreed
            self._consent(op)
        if op == "p" and self.catalog.get(arg):
            self._start_procedure(self.catalog.get(arg))
        elif op == "n" and self.catalog.get(arg):
            self._start_procedure(self.catalog.get(arg), force_new=True)
        elif op in ("r", "d", "dy"):
            draft = self.uow.draft_by_short_id(arg)
            if draft is None or draft.citizen_id != self.citizen.id:
                self._stale()
            elif op == "r":
                self.session["active"] = draft.id
                self._engine_resume(draft)
            elif op == "d":
                proc = self.catalog.get(draft.procedure_id)
                rows = [
                    [
                        self._mbtn(self.r.label("delete"), f"dy:{draft.short_id}"),
                        self._mbtn(self.r.label("keep"), "list"),
                    ]
                ]
                name = proc.short_name if proc else draft.procedure_id
                self._say(self.r.msg("delete_confirm", name=name, subject=draft.subject), rows)
            else:
                if self.session.get("active") == draft.id:
                    self.session["active"] = None
                self.uow.delete_draft(draft.id)
                self._say(self.r.msg("deleted"))
                self._drafts_list()
        elif op == "list":
            self._drafts_list()
        elif op == "officer":
            self._officer_from_menu(None)
        elif op == "ey":
            self._erase()
        elif op == "en":
            self._say(self.r.msg("kept"))
            self._menu(note="choose_procedure")
        else:
            self._menu(note="choose_procedure")

    def _next_menu_turn(self) -> int:
        turn = int(self.session.get("turn", 0)) + 1
        self.session["turn"] = turn
        self.session["screen"] = "menu"  # typed text is no longer an answer
        return turn

    def _mbtn(self, label: str, token: str) -> Button:
        data = f"m.{self.session.get('turn', 0)}.{token}"
        return Button(label, data)

    def _menu(self, note: str | None = None, returning: bool = False, text: str = "") -> None:
        self._next_menu_turn()
        rows = [[self._mbtn(p.short_name, f"p:{p.id}")] for p in self.catalog.ordered()]
        rows.append([self._mbtn(self.r.label("list"), "list")])
        rows.append([self._mbtn(self.r.label("officer"), "officer")])
        if not text:
            text = self.r.msg(note) if note else self.r.msg("welcome", returning=returning)
        if not priv.consented(self.session):  # the notice goes with the first menus
            notice = self.svc.privacy_text("menu_consent", short=self._notice_seen())
            if len(text) + len(notice) + 2 > MAX_TEXT:
                self._say(text)
                text = notice
            else:
                text += "\n\n" + notice
        self._say(text, rows)

    def _resume_offer(self, draft: DraftRec) -> None:
        self._next_menu_turn()
        proc = self.catalog.get(draft.procedure_id)
        rows = [
            [self._mbtn(self.r.label("resume"), f"r:{draft.short_id}")],
            [self._mbtn(self.r.label("new"), "procs"), self._mbtn(self.r.label("list"), "list")],
        ]
        self._say(self.r.msg("resume_offer", proc=proc, subject=draft.subject), rows)

    def _drafts_list(self) -> None:
        self._next_menu_turn()
        drafts = self.uow.drafts_of(self.citizen.id, LISTED_STATUSES)[:MAX_LISTED]
        items = []
        rows: list[list[Button]] = []
        stages = self.catalog.ui.get("stages", {})
        for n, d in enumerate(drafts, start=1):
            proc = self.catalog.get(d.procedure_id)
            items.append(
                {
                    "name": proc.short_name if proc else d.procedure_id,
                    "subject": d.subject,
                    "status": d.status,
                    "stage_text": stages.get(d.stage, d.stage),
                    "dossier_code": d.dossier_code,
                    "updated": d.updated_at.astimezone(self.svc.tz).strftime("%d/%m/%Y"),
                }
            )
            resume = self.r.msg("draft_button", verb=self.r.msg("resume_label"), n=n)
            delete = self.r.msg("draft_button", verb=self.r.msg("delete_label"), n=n)
            rows.append(
                [self._mbtn(resume, f"r:{d.short_id}"), self._mbtn(delete, f"d:{d.short_id}")]
            )
        rows += [[self._mbtn(p.short_name, f"p:{p.id}")] for p in self.catalog.ordered()]
        self._say(self.r.msg("drafts_list", drafts=items), rows)

    def _ask_erase(self) -> None:
        self._next_menu_turn()
        rows = [
            [self._mbtn(self.r.label("erase_yes"), "ey"), self._mbtn(self.r.label("keep"), "en")]
        ]
        self._say(self.r.msg("erase_confirm"), rows)

    # ------------------------------------------------------------------ drafts
    def _active(self) -> DraftRec | None:
        draft_id = self.session.get("active")
        if not draft_id:
            return None
        draft = self.uow.draft(draft_id)
        if draft is None or draft.citizen_id != self.citizen.id or draft.status == eng.CANCELLED:
            self.session["active"] = None
            return None
        if self.catalog.get(draft.procedure_id) is None:
            self.session["active"] = None
            return None
        return draft

    def _start_procedure(self, proc: Procedure, force_new: bool = False) -> None:
        if not priv.consented(self.session):  # a deep link or a typed request
            self._ask_consent(f"p:{proc.id}", proc.short_name)
            return
        if not force_new:
            existing = [
                d
                for d in self.uow.drafts_of(self.citizen.id, (eng.ACTIVE, eng.COMPLETED))
                if d.procedure_id == proc.id
            ]
            if existing:
                draft = existing[0]
                self._next_menu_turn()
                rows = [
                    [self._mbtn(self.r.label("resume"), f"r:{draft.short_id}")],
                    [self._mbtn(self.r.label("new_other"), f"n:{proc.id}")],
                ]
                self._say(self.r.msg("existing_draft", proc=proc, subject=draft.subject), rows)
                return
        draft = DraftRec(
            id=None,
            short_id="",
            citizen_id=self.citizen.id,
            procedure_id=proc.id,
            procedure_version=proc.version,
            status=eng.ACTIVE,
            stage="questions",
            subject="",
            payload=eng.new_state(proc),
            dossier_code=None,
            created_at=self.now,
            updated_at=self.now,
            version=1,
        )
        draft = self.uow.add_draft(draft)
        self.session["active"] = draft.id
        step = eng.Engine(self._ctx(proc, draft), draft.payload, draft.status).start()
        self._apply(draft, proc, step)

    def _ctx(self, proc: Procedure, draft: DraftRec) -> eng.Ctx:
        return eng.Ctx(
            proc=proc,
            renderer=self.r,
            key=draft.short_id,
            today=self.today,
            keywords=self.catalog.keywords,
            intents=self.svc.intents,
        )

    def _engine_event(self, draft: DraftRec, event: Any) -> None:
        proc = self.catalog.get(draft.procedure_id)
        if proc is None:
            self._menu(note="choose_procedure")
            return
        step = eng.Engine(self._ctx(proc, draft), draft.payload, draft.status).handle(event)
        self._apply(draft, proc, step)

    def _engine_resume(self, draft: DraftRec, note: str = "") -> None:
        proc = self.catalog.get(draft.procedure_id)
        if proc is None:
            self._menu(note="choose_procedure")
            return
        step = eng.Engine(self._ctx(proc, draft), draft.payload, draft.status).resume(note)
        self._apply(draft, proc, step)

    def _apply(self, draft: DraftRec, proc: Procedure, step: eng.Step) -> None:
        draft.payload = step.state
        draft.status = step.status
        draft.stage = step.state.get("stage", "questions")
        if draft.stage == "review":  # the PDF may be asked for next: its worker starts
            pdfworker.prepare()
        draft.procedure_version = proc.version
        draft.dossier_code = step.state.get("dossier_code")
        draft.subject = subject_of(proc, step.state)
        draft.updated_at = self.now
        self.uow.save_draft(draft)
        if self.svc.reminders is not None:  # plan or void this draft's reminders
            self.svc.reminders.on_draft(self.uow, self.citizen, draft, self.now)
        self.uow.add_facts(
            FactRec(
                kind=f.kind,
                data=f.data | {"procedure": proc.id},
                citizen_id=self.citizen.id,
                draft_id=draft.id,
                at=self.now,
            )
            for f in step.facts
        )
        if step.handoff:
            self._record_case(draft, step.handoff)
        self.out.replies.extend(step.replies)
        paused = any(f.kind == "Paused" for f in step.facts)
        self.session["screen"] = "menu" if paused else "draft"
        if step.to_menu:
            self.session["active"] = None
            self._menu(note="choose_procedure")
        elif step.start and self.catalog.get(step.start):
            self._start_procedure(self.catalog.get(step.start))

    def _record_case(self, draft: DraftRec | None, reason: str) -> None:
        """A request for an officer: the officer side opens a case (and tells the group),
        or, with no officer configuration, the request is only recorded."""
        if self.svc.officers is None:
            self.uow.add_handoff(self.citizen.id, draft.id if draft else None, reason, self.now)
        else:
            self.svc.officers.open_case(self.uow, self.citizen, draft, reason, self.now, self.out)

    def _handoff(self, draft_id: int | None, reason: str) -> None:
        self._record_case(self.uow.draft(draft_id) if draft_id else None, reason)
        self.uow.add_facts(
            [
                FactRec(
                    kind="HandoffRequested",
                    data={"reason": reason},
                    citizen_id=self.citizen.id,
                    draft_id=draft_id,
                    at=self.now,
                )
            ]
        )

    # ------------------------------------------------------------------ personal data
    def _consent(self, via: str) -> None:
        """The citizen agreed to the notice (flows/privacy.py): recorded once."""
        if priv.consented(self.session):
            return
        self.session[priv.CONSENT_KEY] = priv.NOTICE_VERSION
        fact = {"version": priv.NOTICE_VERSION, "via": via}
        self.uow.add_facts([FactRec("ConsentGiven", fact, self.citizen.id, None, self.now)])

    def _ask_consent(self, token: str, action: str) -> None:
        """The notice with the agree button, which does `token` (a menu token) once agreed."""
        self._next_menu_turn()
        rows = [
            [self._mbtn(self.svc.privacy_text("btn_agree"), token)],
            [self._mbtn(self.svc.privacy_text("btn_other"), "procs")],
        ]
        text = self.svc.privacy_text("ask_consent", action=action, short=self._notice_seen())
        self._say(text, rows)

    def _notice_seen(self) -> bool:
        """Whether this citizen has already been shown the whole notice (then a reminder
        line is enough: a tired person scrolls past the same paragraph three times);
        marks it shown."""
        seen = self.session.get(priv.NOTICE_SHOWN_KEY) == priv.NOTICE_VERSION
        self.session[priv.NOTICE_SHOWN_KEY] = priv.NOTICE_VERSION
        return seen

    def _officer_from_menu(self, draft_id: int | None) -> None:
        if not priv.consented(self.session):
            self._ask_consent("officer", self.svc.privacy_text("action_officer"))
            return
        self._handoff(draft_id, "asked_menu")
        self._menu(note="officer_noted_menu")

    def _erase(self) -> None:
        """/xoadulieu, confirmed: everything about the citizen goes (drafts, facts,
        cases, reminders and their switch), and the office hears of their cases."""
        cases = self.uow.handoffs(citizen_id=self.citizen.id)
        told = False
        if self.svc.officers is not None:
            for case in cases:
                live = case.status in ("open", "claimed")
                text = self.svc.privacy_text("erased_case", case_id=case.id)
                sent = self.svc.officers.tell_erased(case, text, note=live)
                self.out.deliveries += sent
                told = told or (live and bool(sent))
        if cases:
            self.uow.add_audit(
                "citizen", "erase", self.now, details={"cases": [c.id for c in cases]}
            )
        self.uow.delete_citizen_data(self.citizen.id)
        self.erased = True
        self._say(self.r.msg("erased", told_office=told))

    def _say(self, text: str, rows: list[list[Button]] | None = None) -> None:
        self.out.replies.append(
            Reply(text, tuple(tuple(r) for r in (rows or [])), "choice" if rows else "none")
        )

"""The officer side of a case, transport-free.

A citizen asks for an officer (the engine's `Step.handoff`, the menu, `/canbo`): the
service calls `OfficerDesk.open_case`, which routes the case to the competent commune (the
residence commune in the draft, else the default one), records it, tells the citizen the
office hours and the expected wait, and posts one card per case to the commune's officers'
group (in a forum topic of its own when the group has topics).

Who owns the conversation is one field: the case's `status`. "claimed" means an officer
does; the service asks `route` first for every event, and while an officer owns the case
the citizen's messages are relayed to the officer's thread and the engine does not run.
The officer ends with the return button or /trave and the bot re-renders the draft where the
citizen was. Every officer action is written to the audit table.

Inputs are `Inbound` events whose `Origin` says which chat they came from; outputs are
replies to that chat plus `Delivery`s to other chats (the citizen, the group, an officer's
private chat). Button data: `o.<action>.<case id>` for officers, `c.<case id>.<token>` for
the citizen (neither collides with a draft's `<6 chars>.<turn>.<token>` or the menu's `m.`).
All text comes from `procedures/_shared/templates/officer.j2`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flows import engine as eng
from flows.communes import Commune, Directory
from flows.render import Renderer, macro_text
from flows.types import (
    Button,
    Command,
    Copy,
    Delivery,
    Inbound,
    Other,
    Outbound,
    Press,
    Reply,
    Target,
    Text,
)
from procedures import validators
from procedures.loader import Catalog
from procedures.model import FieldSpec, Procedure
from procedures.results import Ambiguous, Confirm, Invalid, Valid
from procedures.text import fold
from storage.store import CitizenRec, DraftRec, FactRec, HandoffRec

if TYPE_CHECKING:
    from flows.service import ConversationService

log = logging.getLogger(__name__)

LIVE = ("open", "claimed")
AWAIT = "case_await"  # citizen session key: waiting for a call-back phone number
OFFICER_COMMANDS = frozenset({"hangdoi", "thongke"})
THREAD_COMMANDS = frozenset({"trave", "sua", "giao", "hen"})
CAPTIONED = frozenset({"photo", "document", "video", "audio", "voice", "animation"})
ROUTING_FIELDS = ("subject_residence_commune", "requester_residence_commune")
TAG_RE = re.compile(r"#(\d{1,12})\b")
LONG_DIGITS = re.compile(r"\d[\d .]{7,}\d")
# An ID number in a citizen's own words: 12 digits (CCCD) or 9 (old CMND), maybe grouped
# with spaces, dots or dashes; not part of a longer number (a 10-digit phone stays), nor
# the 9 digits after +84 (a phone).
ID_LIKE = re.compile(r"(?<!\d)\d(?:[ .-]?\d){8}(?:(?:[ .-]?\d){3})?(?!\d)")
PHONE_CC = re.compile(r"(?:\+|\b)84[ .-]?$")
SUMMARY_LINES = 14
SUMMARY_VALUE = 60
QUEUE_LINES = 20
DEFAULT_STATS_DAYS = 7
MAX_STATS_DAYS = 366
SLOT_FORMAT = "%y%m%d%H%M"
APPOINTMENT_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{4}|\d{2}))?\b")
APPOINTMENT_TIME = re.compile(r"\b(\d{1,2})\s*(?:[:hg]\s*(\d{2})?)(?!\s*[/.-]\d)")
APPOINTMENT_CANCEL = frozenset({"huy", "xoa", "bo"})
MAX_APPOINTMENT_DAYS = 366
CALLBACK_FIELD = FieldSpec(id="callback_phone", type="phone", label="phone", question="phone")


def mask_id(value: str) -> str:
    """An ID number shown in a group: only its last four digits."""
    digits = re.sub(r"\D", "", value)
    if len(digits) <= 4:
        return "•" * len(digits)
    return "•" * (len(digits) - 4) + digits[-4:]


def mask_digits(text: str) -> str:
    """Any long run of digits in free text (an ID number typed in a text field)."""
    return LONG_DIGITS.sub(lambda m: mask_id(m.group(0)), text)


def mask_ids(text: str) -> str:
    """ID numbers in a citizen's message relayed to the officers' group; phone numbers and
    dates stay readable (the officer may need to call back)."""

    def masked(m: re.Match[str]) -> str:
        phone = PHONE_CC.search(text, 0, m.start()) is not None
        return m.group(0) if phone else mask_id(m.group(0))

    return ID_LIKE.sub(masked, text)


@dataclass
class _Act:
    """One officer-side event being handled."""

    inbound: Inbound
    now: dt.datetime
    out: Outbound
    reminders: Any = None  # flows.reminders.Reminders, when reminders are on

    @property
    def who(self) -> str:
        return self.inbound.sender.external_id

    @property
    def name(self) -> str:
        s = self.inbound.sender
        return s.display_name or (f"@{s.username}" if s.username else s.external_id)


class OfficerDesk:
    def __init__(
        self,
        directory: Directory,
        catalog: Catalog,
        *,
        reannounce_minutes: int = 30,
    ) -> None:
        self.dir = directory
        self.catalog = catalog
        self.reannounce_minutes = reannounce_minutes
        self._t = catalog.env.get_template("officer.j2").module
        self._renderer = Renderer(catalog)  # validation error messages
        self.broadcasts: Any = None  # flows.broadcast.Broadcasts (/thongbao), when wired

    # ------------------------------------------------------------------ texts
    def t(self, macro: str, /, **ctx: Any) -> str:
        return macro_text(self._t, macro, ctx)

    def groups(self) -> frozenset[int]:
        return self.dir.groups()

    # ------------------------------------------------------------------ routing
    def commune_for(self, draft: DraftRec | None) -> Commune:
        """The competent commune: the residence commune answered in the draft when the
        directory knows it, else the default commune."""
        if draft is not None:
            answers = draft.payload.get("answers", {})
            proc = self.catalog.get(draft.procedure_id)
            ids = list(ROUTING_FIELDS)
            if proc is not None:
                ids += [f.id for f in proc.fields if f.type == "commune" and f.id not in ids]
            for fid in ids:
                commune = self.dir.known(answers.get(fid))
                if commune is not None:
                    return commune
        return self.dir.default

    def owner(self, uow: Any, citizen_id: int) -> str:
        """Who talks to this citizen now: "officer" (a claimed case) or "bot"."""
        live = self._live(uow, citizen_id)
        return "officer" if live is not None and live.status == "claimed" else "bot"

    def route(
        self, svc: ConversationService, uow: Any, inbound: Inbound, now: dt.datetime
    ) -> Outbound | None:
        """Handle the event on the officer side, or return None to let the bot have it."""
        act = _Act(inbound, now, Outbound(), getattr(svc, "reminders", None))
        ev = inbound.event
        if self.broadcasts is not None and self.broadcasts.wants(inbound):
            return self.broadcasts.handle(uow, inbound, now)  # /thongbao and its buttons
        if inbound.origin.group:
            self._group(svc, uow, act)
            return act.out
        if isinstance(ev, Press) and ev.data.startswith("o."):
            self._officer_press(svc, uow, act, ev.data)
            return act.out
        if isinstance(ev, Command) and (
            ev.name in OFFICER_COMMANDS or (ev.name == "hoso" and ev.arg.strip())
        ):
            self._officer_command(svc, uow, act, ev)
            return act.out
        sender = inbound.sender
        # locked until the commit, as the bot's turn does (ConversationService `_Turn`)
        citizen = uow.citizen(sender.channel, sender.external_id, lock=True)
        if citizen is None:
            return None
        if isinstance(ev, Press) and ev.data.startswith("c."):
            self._citizen_press(svc, uow, act, citizen, ev.data)
            return act.out
        if (isinstance(ev, Command) and ev.name == "xoadulieu") or (
            isinstance(ev, Press) and ev.data.startswith("m.") and ev.data.endswith((".ey", ".en"))
        ):
            return None  # erasing one's data is the bot's, even while an officer talks
        live = self._live(uow, citizen.id)
        if live is not None and live.status == "claimed":
            self._relay_from_citizen(uow, act, citizen, live)
            return act.out
        waiting = (citizen.session or {}).get(AWAIT)
        if waiting:
            if live is not None and live.id == waiting and isinstance(ev, Text):
                self._callback_phone(uow, act, citizen, live, ev.text)
                return act.out
            session = dict(citizen.session)
            session.pop(AWAIT, None)
            citizen.session = session
            uow.save_citizen(citizen)
        return None

    # ------------------------------------------------------------------ opening a case
    def open_case(
        self,
        uow: Any,
        citizen: CitizenRec,
        draft: DraftRec | None,
        reason: str,
        now: dt.datetime,
        out: Outbound,
    ) -> None:
        """Record the request as a case and tell the officers (once per case)."""
        live = self._live(uow, citizen.id)
        if live is not None:
            commune = self.dir.commune(live.commune_code)
            out.replies.append(self._waiting_reply(uow, live, commune, now, again=True))
            return
        commune = self.commune_for(draft)
        proc = self.catalog.get(draft.procedure_id) if draft else None
        step = self._where(proc, draft, now)
        if draft is not None and proc is not None:
            state = draft.payload
            stage = state.get("stage", "questions")
            field = proc.field(step) if step else None
            if reason == "asked":
                if stage in ("review", "result"):
                    reason = "asked_review"
                elif field is not None and int(state.get("failures", {}).get(field.id, 0)) >= (
                    eng.MAX_FAILURES
                ):
                    reason = "asked_failed"
        reachable = commune.reachable
        case_id = uow.add_handoff(
            citizen.id,
            draft.id if draft else None,
            reason,
            now,
            commune_code=commune.code,
            step=step,
            group_chat_id=commune.group if reachable else None,
            announced_at=now if reachable else None,
            announce_count=1 if reachable else 0,
        )
        case = uow.handoff(case_id)
        if reachable:
            out.deliveries.append(
                Delivery(
                    target=self._group_target(case),
                    reply=self._card(uow, case, now),
                    new_topic=self.t("topic_title", case=case, proc=proc)[:128],
                    record=f"case:{case.id}",
                )
            )
        out.replies.append(self._waiting_reply(uow, case, commune, now, again=False))

    def _waiting_reply(
        self, uow: Any, case: HandoffRec, commune: Commune, now: dt.datetime, again: bool
    ) -> Reply:
        hours = commune.hours
        rows: list[list[Button]] = []
        if commune.reachable and case.status == "open":
            row = [Button(self.t("btn_withdraw"), f"c.{case.id}.w")]
            if not case.callback_slot:
                row.insert(0, Button(self.t("btn_callback"), f"c.{case.id}.cb"))
            rows.append(row)
        text = self.t(
            "case_opened",
            again=again,
            case=case,
            commune=commune,
            hours=hours.table(),
            open_now=hours.is_open(now),
            next_open=hours.next_open(now),
            wait=self._expected_wait(uow, commune, now),
            reachable=commune.reachable,
            callback_slot=self._slot_of(case, commune),
        )
        return Reply(text, tuple(tuple(r) for r in rows), "choice" if rows else "none")

    def _expected_wait(self, uow: Any, commune: Commune, now: dt.datetime) -> int:
        """Median working minutes to claim over the commune's last 20 claims in 60 days,
        rounded up to 5; the re-announce delay when there is no history yet."""
        done = [
            c
            for c in uow.handoffs(since=now - dt.timedelta(days=60))
            if c.claimed_at is not None and self.dir.commune(c.commune_code) is commune
        ][-20:]
        if len(done) < 3:
            return self.reannounce_minutes
        med = statistics.median(
            commune.hours.working_minutes(c.created_at, c.claimed_at) for c in done
        )
        return max(5, int(-(-med // 5) * 5))

    # ------------------------------------------------------------------ the card
    def _case_ctx(
        self, uow: Any, case: HandoffRec, now: dt.datetime, masked: bool
    ) -> dict[str, Any]:
        """What the card (masked, for the group) and the full view (private) show."""
        citizen = uow.citizen_by_id(case.citizen_id)
        draft = uow.draft(case.draft_id) if case.draft_id else None
        proc = self.catalog.get(draft.procedure_id) if draft else None
        commune = self.dir.commune(case.commune_code)
        return {
            "case": case,
            "commune": commune,
            "citizen": citizen,
            "proc": proc,
            "draft": draft,
            "step": self._step_label(proc, self._where(proc, draft, now) or case.step),
            "field": self._reason_field(proc, case.reason),
            "age": self._minutes(case.created_at, now),
            "summary": self._summary(proc, draft, masked, self._today(now)),
            "callback_slot": self._slot_of(case, commune),
        }

    def _card(self, uow: Any, case: HandoffRec, now: dt.datetime) -> Reply:
        text = self.t("card", **self._case_ctx(uow, case, now, True))
        return Reply(text[:4000], self._card_buttons(case), "choice")

    def _card_buttons(self, case: HandoffRec) -> tuple[tuple[Button, ...], ...]:
        def b(key: str, action: str) -> Button:
            return Button(self.t(key), f"o.{action}.{case.id}")

        if case.status == "open":
            rows = [[b("btn_claim", "c"), b("btn_view", "v")], [b("btn_close", "x")]]
        elif case.status == "claimed":
            rows = [
                [b("btn_return", "r"), b("btn_release", "f")],
                [b("btn_view", "v"), b("btn_close", "x")],
            ]
        else:
            return ()
        if case.callback_slot and not case.callback_done_at:
            rows[-1].append(b("btn_called", "d"))
        return tuple(tuple(r) for r in rows)

    def _card_edits(self, uow: Any, case: HandoffRec, act: _Act) -> list[Delivery]:
        """Edit the case's card (and the card pressed, an older one after a re-announce)."""
        if case.group_chat_id is None:
            return []
        o = act.inbound.origin
        pressed = None
        if (
            isinstance(act.inbound.event, Press)
            and o.group
            and o.chat_id == str(case.group_chat_id)
        ):
            pressed = o.message_id
        now = act.now
        ids = [m for m in (case.group_message_id, pressed) if m is not None]
        card = self._card(uow, case, now)
        target = Target(self.dir.channel, str(case.group_chat_id))
        return [Delivery(target, card, edit_message_id=m) for m in dict.fromkeys(ids)]

    def _group_target(self, case: HandoffRec) -> Target:
        return Target(self.dir.channel, str(case.group_chat_id), case.topic_id)

    def _to_group(self, case: HandoffRec, text: str) -> Delivery | None:
        if case.group_chat_id is None:
            return None
        reply_to = None if case.topic_id else case.group_message_id
        return Delivery(self._group_target(case), Reply(text), reply_to_id=reply_to)

    def tell_erased(self, case: HandoffRec, text: str, *, note: bool) -> list[Delivery]:
        """The citizen erased their data (/xoadulieu): the case card in the group is
        replaced by `text` (no personal data left on it, no buttons) and, with `note`, the
        officers also get `text` as a new message in the case's thread."""
        out: list[Delivery] = []
        if case.group_chat_id is None:
            return out
        if case.group_message_id is not None:
            out.append(
                Delivery(
                    self._group_target(case), Reply(text), edit_message_id=case.group_message_id
                )
            )
        if note:
            out.append(self._to_group(case, text))  # type: ignore[arg-type]
        return out

    def _to_citizen(self, uow: Any, case: HandoffRec, replies: list[Reply]) -> list[Delivery]:
        citizen = uow.citizen_by_id(case.citizen_id)
        if citizen is None:
            return []
        target = Target(citizen.channel, citizen.external_id)
        return [Delivery(target, r) for r in replies]

    # ------------------------------------------------------------------ describing
    def _today(self, now: dt.datetime) -> dt.date:
        return self.dir.default.hours.local(now).date()

    @staticmethod
    def _minutes(start: dt.datetime, end: dt.datetime) -> int:
        return max(int((end - start).total_seconds() // 60), 0)

    def _where(self, proc: Procedure | None, draft: DraftRec | None, now: dt.datetime):
        """Where the citizen is in the draft now: the current field's id, or the stage."""
        if proc is None or draft is None:
            return None
        state = eng.migrate_state(proc, draft.payload)
        stage = state.get("stage", "questions")
        if stage != "questions":
            return stage
        field = eng.current_field(proc, state, self._today(now))
        return field.id if field is not None else stage

    def _step_label(self, proc: Procedure | None, step: str | None) -> str:
        if not step:
            return ""
        if proc is not None and proc.field(step) is not None:
            return proc.field(step).label
        return self.catalog.ui.get("stages", {}).get(step, step)

    def _reason_field(self, proc: Procedure | None, reason: str) -> str:
        fid = reason.removeprefix("asked_")
        if proc is not None and reason.startswith("asked_") and proc.field(fid) is not None:
            return proc.field(fid).label
        return ""

    def _fields(
        self, proc: Procedure, draft: DraftRec, today: dt.date
    ) -> list[tuple[FieldSpec, str]]:
        """The draft's applicable fields with their shown answers, in review order (the
        numbers `/sua` takes)."""
        state = eng.migrate_state(proc, draft.payload)
        eff, shown = eng.effective_answers(proc, state, today)
        return [
            (f, shown.get(f.id, "")) for f in eng.applicable(proc, eff, today) if f.type != "info"
        ]

    def _summary(
        self, proc: Procedure | None, draft: DraftRec | None, masked: bool, today: dt.date
    ) -> list[dict[str, str]]:
        if proc is None or draft is None:
            return []
        items = []
        for n, (f, value) in enumerate(self._fields(proc, draft, today), start=1):
            if not value:
                continue
            if masked:
                if f.type == "id_number":
                    value = mask_id(value)
                elif f.type != "phone":
                    value = mask_digits(value)
                if len(value) > SUMMARY_VALUE:
                    value = value[: SUMMARY_VALUE - 1] + "…"
            items.append({"n": n, "label": f.label, "value": value})
        return items[:SUMMARY_LINES] if masked else items

    def _slot_of(self, case: HandoffRec, commune: Commune) -> dict[str, Any] | None:
        if not case.callback_slot:
            return None
        start = dt.datetime.fromisoformat(case.callback_slot.split("/")[0])
        start = start.replace(tzinfo=commune.hours.tz)
        interval = commune.hours.interval_at(start)
        end = interval[1] if interval else start
        return {"start": start, "end": end, "phone": case.callback_phone or ""}

    # ------------------------------------------------------------------ store helpers
    def _live(self, uow: Any, citizen_id: int) -> HandoffRec | None:
        live = uow.handoffs(citizen_id=citizen_id, statuses=LIVE)
        return live[-1] if live else None

    def _audit(
        self, uow: Any, act: _Act, action: str, case: HandoffRec | None, **details: Any
    ) -> None:
        uow.add_audit(
            act.who,
            action,
            act.now,
            actor_name=act.name,
            handoff_id=case.id if case else None,
            draft_id=case.draft_id if case else None,
            details=details,
        )

    def _fact(self, uow: Any, case: HandoffRec, kind: str, now: dt.datetime, **data: Any):
        uow.add_facts([FactRec(kind, data, case.citizen_id, case.draft_id, now)])

    def _resume(
        self,
        svc: ConversationService,
        uow: Any,
        case: HandoffRec,
        now: dt.datetime,
        at_case_draft: bool = True,
    ) -> list[Reply]:
        """The bot takes the conversation back: where the citizen was, re-rendered (the
        case's draft, or with `at_case_draft=False` the draft they are on now)."""
        citizen = uow.citizen_by_id(case.citizen_id)
        if citizen is None:
            return []
        if AWAIT in (citizen.session or {}):
            session = dict(citizen.session)
            session.pop(AWAIT, None)
            citizen.session = session
            uow.save_citizen(citizen)
        draft_id = case.draft_id if at_case_draft else None
        return svc.resume_citizen(uow, case.citizen_id, draft_id, now)

    # ------------------------------------------------------------------ group events
    def _group(self, svc: ConversationService, uow: Any, act: _Act) -> None:
        o = act.inbound.origin
        ev = act.inbound.event
        try:
            chat_id = int(o.chat_id)
        except ValueError:
            return
        communes = self.dir.by_group(chat_id)
        if not communes:
            return
        here = any(act.who in c.officers for c in communes) and (
            act.inbound.sender.channel == self.dir.channel
        )
        if isinstance(ev, Press):
            if ev.data.startswith("o."):
                self._officer_press(svc, uow, act, ev.data)
            return
        if isinstance(ev, Command):
            if not here:
                if ev.name in THREAD_COMMANDS | OFFICER_COMMANDS | {"hoso"}:
                    act.out.replies.append(Reply(self.t("refusal")))
                return
            if ev.name in OFFICER_COMMANDS or ev.name == "hoso":
                act.out.replies.append(Reply(self.t("private_only")))
                return
            if ev.name not in THREAD_COMMANDS:
                return
        case = self._case_in_group(uow, chat_id, act)
        if case is None or not here:
            if isinstance(ev, Command) and here:
                act.out.replies.append(Reply(self.t("no_case_here")))
            return
        if not self.dir.may_act(act.inbound.sender.channel, act.who, case.commune_code):
            return
        if isinstance(ev, Command):
            if ev.name == "trave":
                self._return(svc, uow, act, case)
            elif ev.name == "sua":
                self._edit(uow, act, case, ev.arg)
            elif ev.name == "giao":
                self._reassign(svc, uow, act, case, ev.arg)
            elif ev.name == "hen":
                self._appoint(uow, act, case, ev.arg)
            return
        if case.status == "open":
            act.out.replies.append(Reply(self.t("claim_first", case=case)))
            return
        if case.status != "claimed" or case.claimed_by != act.who:
            return  # officers talking among themselves, or a case that is over
        self._relay_from_officer(uow, act, case)

    def _case_in_group(self, uow: Any, chat_id: int, act: _Act) -> HandoffRec | None:
        o = act.inbound.origin
        if o.thread_id is not None:
            found = uow.handoffs(group_chat_id=chat_id, topic_id=o.thread_id)
            if found:
                return found[-1]
        if o.reply_to_id is not None:
            m = TAG_RE.search(o.reply_to_text or "")
            if m:
                case = uow.handoff(int(m.group(1)))
                if case is not None and case.group_chat_id == chat_id:
                    return case
        return None

    # ------------------------------------------------------------------ officer buttons
    def _officer_press(self, svc: ConversationService, uow: Any, act: _Act, data: str) -> None:
        parts = data.split(".")
        if len(parts) != 3 or not parts[2].isdigit():
            act.out.notice = self.t("notice_refused")
            return
        action, case_id = parts[1], int(parts[2])
        if action == "c":
            self._claim(svc, uow, act, case_id)
            return
        case = self._case_for(uow, act, case_id)
        if case is None:
            return
        if action == "v":
            self._view(uow, act, case)
        elif action == "r":
            self._return(svc, uow, act, case)
        elif action == "f":
            self._release(svc, uow, act, case)
        elif action == "x":
            self._close(svc, uow, act, case)
        elif action == "d":
            self._called_back(svc, uow, act, case)
        else:
            act.out.notice = self.t("notice_refused")

    def _case_for(self, uow: Any, act: _Act, case_id: int) -> HandoffRec | None:
        """The case a button points to, if this officer may act on it; else None, with
        a notice that tells an officer the case is gone and anyone else nothing."""
        channel = act.inbound.sender.channel
        case = uow.handoff(case_id)
        if case is None and self.dir.is_officer(channel, act.who):
            act.out.notice = self.t("notice_gone")
            return None
        if case is None or not self.dir.may_act(channel, act.who, case.commune_code):
            act.out.notice = self.t("notice_refused")
            return None
        return case

    def _claim(self, svc: ConversationService, uow: Any, act: _Act, case_id: int) -> None:
        case = self._case_for(uow, act, case_id)
        if case is None:
            return
        # one conditional UPDATE: of two officers pressing at once, the first one wins
        won = uow.update_handoff(
            case_id,
            expect_status="open",
            status="claimed",
            claimed_by=act.who,
            claimed_by_name=act.name,
            claimed_at=act.now,
        )
        case = uow.handoff(case_id)
        if not won:
            if case.status == "claimed":
                act.out.notice = self.t(
                    "notice_taken", name=case.claimed_by_name, mine=case.claimed_by == act.who
                )
            else:
                act.out.notice = self.t("notice_over", case=case)
            return
        self._audit(uow, act, "claim", case)
        self._fact(uow, case, "OfficerJoined", act.now)
        commune = self.dir.commune(case.commune_code)
        act.out.notice = self.t("notice_claimed", case=case)
        act.out.deliveries += self._card_edits(uow, case, act)
        note = self._to_group(case, self.t("claimed_note", case=case))
        if note:
            act.out.deliveries.append(note)
        act.out.deliveries += self._to_citizen(
            uow, case, [Reply(self.t("officer_joined", name=act.name, commune=commune))]
        )

    def _view(self, uow: Any, act: _Act, case: HandoffRec) -> None:
        self._audit(uow, act, "view", case)
        reply = self._full_view(uow, case, act.now)
        if act.inbound.origin.group:
            target = Target(act.inbound.sender.channel, act.who)
            act.out.deliveries.append(Delivery(target, reply))
            act.out.notice = self.t("notice_view_sent", case=case)
        else:
            act.out.replies.append(reply)

    def _full_view(self, uow: Any, case: HandoffRec, now: dt.datetime) -> Reply:
        ctx = self._case_ctx(uow, case, now, False)
        text = self.t(
            "case_full",
            **ctx,
            lines=ctx["summary"],
            audit=uow.audit(handoff_id=case.id)[-5:],
            tz=ctx["commune"].hours.tz,
        )
        return Reply(text)

    def _return(self, svc: ConversationService, uow: Any, act: _Act, case: HandoffRec) -> None:
        if case.status != "claimed" or case.claimed_by != act.who:
            self._not_owner(act, case)
            return
        if not uow.update_handoff(
            case.id, expect_version=case.version, status="closed", closed_at=act.now
        ):
            act.out.notice = self.t("notice_over", case=case)
            return
        case = uow.handoff(case.id)
        self._audit(uow, act, "return", case)
        self._reminders_follow(uow, act, case)
        self._fact(uow, case, "OfficerLeft", act.now, returned=True)
        act.out.deliveries += self._card_edits(uow, case, act)
        note = self._to_group(case, self.t("returned_note", case=case))
        if note:
            act.out.deliveries.append(note)
        left = Reply(self.t("officer_left", name=act.name, resumed=True))
        act.out.deliveries += self._to_citizen(
            uow, case, [left, *self._resume(svc, uow, case, act.now)]
        )
        act.out.notice = self.t("notice_returned", case=case)

    def _release(self, svc: ConversationService, uow: Any, act: _Act, case: HandoffRec) -> None:
        if case.status != "claimed":
            act.out.notice = self.t("notice_over", case=case)
            return
        was = case.claimed_by_name or ""
        if not uow.update_handoff(
            case.id,
            expect_version=case.version,
            status="open",
            claimed_by=None,
            claimed_by_name=None,
            claimed_at=None,
            announced_at=act.now,
        ):
            act.out.notice = self.t("notice_over", case=case)
            return
        case = uow.handoff(case.id)
        self._audit(uow, act, "release", case)
        self._fact(uow, case, "OfficerLeft", act.now, returned=False)
        act.out.deliveries += self._card_edits(uow, case, act)
        note = self._to_group(case, self.t("released_note", case=case, name=act.name))
        if note:
            act.out.deliveries.append(note)
        left = Reply(self.t("officer_left", name=was, resumed=False))
        act.out.deliveries += self._to_citizen(
            uow, case, [left, *self._resume(svc, uow, case, act.now)]
        )
        act.out.notice = self.t("notice_released", case=case)

    def _reassign(
        self, svc: ConversationService, uow: Any, act: _Act, case: HandoffRec, arg: str
    ) -> None:
        if case.status != "claimed" or case.claimed_by != act.who:
            self._not_owner(act, case)
            return
        o = act.inbound.origin
        to_id, to_name = arg.strip(), ""
        if not to_id and o.reply_to_user:
            to_id, to_name = o.reply_to_user, o.reply_to_name
        commune = self.dir.commune(case.commune_code)
        if not to_id.isdigit() or to_id not in commune.officers or to_id == act.who:
            act.out.replies.append(Reply(self.t("reassign_usage")))
            return
        to_name = to_name or to_id
        if not uow.update_handoff(
            case.id,
            expect_version=case.version,
            claimed_by=to_id,
            claimed_by_name=to_name,
            claimed_at=act.now,
        ):
            act.out.replies.append(Reply(self.t("notice_over", case=case)))
            return
        case = uow.handoff(case.id)
        self._audit(uow, act, "reassign", case, to=to_id)
        act.out.deliveries += self._card_edits(uow, case, act)
        act.out.replies.append(Reply(self.t("reassigned_note", case=case, name=to_name)))
        act.out.deliveries += self._to_citizen(
            uow,
            case,
            [
                Reply(self.t("officer_left", name=act.name, resumed=False, handed=True)),
                Reply(self.t("officer_joined", name=to_name, commune=commune)),
            ],
        )

    def _close(self, svc: ConversationService, uow: Any, act: _Act, case: HandoffRec) -> None:
        if case.status not in LIVE:
            act.out.notice = self.t("notice_over", case=case)
            return
        was_claimed = case.status == "claimed"
        if not uow.update_handoff(
            case.id, expect_version=case.version, status="closed", closed_at=act.now
        ):
            act.out.notice = self.t("notice_over", case=case)
            return
        case = uow.handoff(case.id)
        self._audit(uow, act, "close", case)
        self._reminders_follow(uow, act, case)
        act.out.deliveries += self._card_edits(uow, case, act)
        act.out.notice = self.t("notice_closed", case=case)
        if was_claimed:
            self._fact(uow, case, "OfficerLeft", act.now, returned=True)
            left = Reply(self.t("officer_left", name=act.name, resumed=True))
            replies = [left, *self._resume(svc, uow, case, act.now)]
        else:
            replies = [Reply(self.t("case_closed_citizen"))]
        act.out.deliveries += self._to_citizen(uow, case, replies)

    def _called_back(self, svc: ConversationService, uow: Any, act: _Act, case: HandoffRec) -> None:
        if not case.callback_slot or case.callback_done_at is not None:
            act.out.notice = self.t("notice_over", case=case)
            return
        was_claimed = case.status == "claimed"
        values: dict[str, Any] = {"callback_done_at": act.now}
        if case.status in LIVE:
            values.update(status="closed", closed_at=act.now)
        if not uow.update_handoff(case.id, expect_version=case.version, **values):
            act.out.notice = self.t("notice_over", case=case)
            return
        case = uow.handoff(case.id)
        self._audit(uow, act, "callback_done", case)
        self._reminders_follow(uow, act, case)
        self._fact(uow, case, "CallbackDone", act.now)
        act.out.deliveries += self._card_edits(uow, case, act)
        act.out.notice = self.t("notice_closed", case=case)
        replies = [Reply(self.t("callback_done_citizen"))]
        if was_claimed:
            replies += self._resume(svc, uow, case, act.now)
        act.out.deliveries += self._to_citizen(uow, case, replies)

    def _reminders_follow(self, uow: Any, act: _Act, case: HandoffRec) -> None:
        """The case changed: its call-back / appointment reminders lose their reason."""
        if act.reminders is not None:
            act.reminders.case_changed(uow, case, act.now)

    # ------------------------------------------------------------------ appointments
    def _appoint(self, uow: Any, act: _Act, case: HandoffRec, arg: str) -> None:
        """/hen <dd/mm[/yyyy]> <hh:mm>: an appointment at the office for a case the officer
        owns; the citizen is told, and reminded (flows/reminders.py). /hen huy cancels it
        (the owner, or any of the commune's officers once nobody owns the case)."""
        commune = self.dir.commune(case.commune_code)
        if act.reminders is None:
            act.out.replies.append(Reply(self.t("appointment_off")))
            return
        words = fold(arg).split()
        if words and words[0] in APPOINTMENT_CANCEL:
            if case.status == "claimed" and case.claimed_by != act.who:
                self._not_owner(act, case)
                return
            at = act.reminders.appointment(uow, case.id)
            if at is None or not act.reminders.cancel_appointment(uow, case.id, act.now):
                act.out.replies.append(Reply(self.t("appointment_none", case=case)))
                return
            self._audit(uow, act, "appointment_cancelled", case)
            self._fact(uow, case, "AppointmentCancelled", act.now)
            local = commune.hours.local(at)
            act.out.replies.append(Reply(self.t("appointment_cancelled", case=case, at=local)))
            text = self.t("appointment_cancelled_citizen", commune=commune, at=local)
            act.out.deliveries += self._to_citizen(uow, case, [Reply(text)])
            return
        if case.status != "claimed" or case.claimed_by != act.who:
            self._not_owner(act, case)
            return
        at = self._appointment_time(arg, act.now, commune)
        if at is None:
            act.out.replies.append(Reply(self.t("appointment_usage")))
            return
        if not commune.hours.is_open(at):
            act.out.replies.append(
                Reply(self.t("appointment_closed", at=at, hours=commune.hours.table()))
            )
            return
        office = {
            "office": self.t("office_name", commune=commune),
            "address": commune.address,
            "phone": commune.phone,
        }
        act.reminders.plan_appointment(uow, case, at, office, act.now)
        self._audit(uow, act, "appointment", case, at=at.astimezone(dt.UTC).isoformat())
        self._fact(uow, case, "AppointmentSet", act.now, at=at.astimezone(dt.UTC).isoformat())
        act.out.replies.append(Reply(self.t("appointment_set", case=case, at=at)))
        text = self.t("appointment_citizen", commune=commune, at=at, name=act.name)
        act.out.deliveries += self._to_citizen(uow, case, [Reply(text)])

    def _appointment_time(self, arg: str, now: dt.datetime, commune: Commune) -> dt.datetime | None:
        """`30/11 9:00`, `9h30 30/11/2026`...: a future local time within a year, or None."""
        d = APPOINTMENT_DATE.search(arg)
        rest = arg[: d.start()] + " " + arg[d.end() :] if d else arg
        t = APPOINTMENT_TIME.search(rest)
        if d is None or t is None:
            return None
        today = commune.hours.local(now).date()
        day, month = int(d.group(1)), int(d.group(2))
        year = int(d.group(3)) if d.group(3) else today.year
        if year < 100:
            year += 2000
        hour, minute = int(t.group(1)), int(t.group(2) or 0)
        try:
            at = dt.datetime(year, month, day, hour, minute, tzinfo=commune.hours.tz)
            if not d.group(3) and (today - at.date()).days > 180:  # 5/1 typed in December
                at = at.replace(year=year + 1)
        except ValueError:
            return None
        if at <= now or at.date() > today + dt.timedelta(days=MAX_APPOINTMENT_DAYS):
            return None
        return at

    def _not_owner(self, act: _Act, case: HandoffRec) -> None:
        if case.status == "claimed":
            text = self.t("notice_taken", name=case.claimed_by_name, mine=False)
        else:
            text = self.t("notice_over", case=case)
        if isinstance(act.inbound.event, Press):
            act.out.notice = text
        else:
            act.out.replies.append(Reply(text))

    # ------------------------------------------------------------------ relays
    def _relay_from_citizen(
        self, uow: Any, act: _Act, citizen: CitizenRec, case: HandoffRec
    ) -> None:
        ev = act.inbound.event
        o = act.inbound.origin
        name = citizen.display_name or citizen.username
        if isinstance(ev, Press):
            act.out.notice = self.t("notice_officer_busy")
            return
        if case.group_chat_id is None:
            return
        if isinstance(ev, Text | Command):
            text = ev.text if isinstance(ev, Text) else f"/{ev.name} {ev.arg}".strip()
            text = mask_ids(text)  # never a full ID number in the group
            note = self._to_group(case, self.t("from_citizen", case=case, name=name, text=text))
            if note:
                act.out.deliveries.append(note)
            return
        if isinstance(ev, Other) and o.message_id is not None and ev.kind != "edited":
            reply_to = None if case.topic_id else case.group_message_id
            target = self._group_target(case)
            caption = mask_ids(o.caption)
            label = self.t("from_citizen_caption", case=case, name=name, caption=caption)
            if ev.kind in CAPTIONED:
                copy = Copy(citizen.external_id, o.message_id, caption=label[:1000])
            else:
                act.out.deliveries.append(Delivery(target, Reply(label), reply_to_id=reply_to))
                copy = Copy(citizen.external_id, o.message_id)
            act.out.deliveries.append(Delivery(target, copy=copy, reply_to_id=reply_to))

    def _relay_from_officer(self, uow: Any, act: _Act, case: HandoffRec) -> None:
        ev = act.inbound.event
        o = act.inbound.origin
        commune = self.dir.commune(case.commune_code)
        citizen = uow.citizen_by_id(case.citizen_id)
        if citizen is None:
            return
        target = Target(citizen.channel, citizen.external_id)
        if isinstance(ev, Text):
            text = self.t("to_citizen", commune=commune, name=act.name, text=ev.text)
            act.out.deliveries.append(Delivery(target, Reply(text)))
            self._audit(uow, act, "relay", case, kind="text")
        elif isinstance(ev, Other) and o.message_id is not None and ev.kind != "edited":
            label = self.t("to_citizen_caption", commune=commune, name=act.name, caption=o.caption)
            if ev.kind in CAPTIONED:
                copy = Copy(o.chat_id, o.message_id, caption=label[:1000])
            else:
                act.out.deliveries.append(Delivery(target, Reply(label)))
                copy = Copy(o.chat_id, o.message_id)
            act.out.deliveries.append(Delivery(target, copy=copy))
            self._audit(uow, act, "relay", case, kind=ev.kind)

    # ------------------------------------------------------------------ officer edits
    def _edit(self, uow: Any, act: _Act, case: HandoffRec, arg: str) -> None:
        if case.status != "claimed" or case.claimed_by != act.who:
            self._not_owner(act, case)
            return
        draft = uow.draft(case.draft_id) if case.draft_id else None
        proc = self.catalog.get(draft.procedure_id) if draft else None
        if draft is None or proc is None or draft.status in (eng.SUBMITTED, eng.CANCELLED):
            act.out.replies.append(Reply(self.t("edit_refused", draft=draft)))
            return
        key, _, value = arg.strip().partition(" ")
        value = value.strip()
        today = self._today(act.now)
        fields = self._fields(proc, draft, today)
        chosen: FieldSpec | None = None
        if key.isdigit() and 1 <= int(key) <= len(fields):
            chosen = fields[int(key) - 1][0]
        elif proc.field(key) is not None and any(f.id == key for f, _ in fields):
            chosen = proc.field(key)
        if chosen is None or not value or chosen.type in ("computed", "info"):
            act.out.replies.append(Reply(self.t("edit_usage")))
            return
        state = eng.migrate_state(proc, draft.payload)
        answers, _ = eng.effective_answers(proc, state, today)
        outcome = validators.validate(chosen, value, answers, today)
        if isinstance(outcome, Confirm):
            outcome = outcome.candidate
        if isinstance(outcome, Ambiguous):
            options = ", ".join(o.display for o in outcome.options)
            act.out.replies.append(Reply(self.t("edit_ambiguous", options=options)))
            return
        if isinstance(outcome, Invalid) or not isinstance(outcome, Valid):
            error = self._renderer.error(outcome.code, outcome.params) if outcome else ""
            act.out.replies.append(Reply(self.t("edit_invalid", error=error)))
            return
        state["answers"][chosen.id] = outcome.value
        state["shown"][chosen.id] = outcome.display
        state["failures"].pop(chosen.id, None)
        if chosen.id in state["skipped"]:
            state["skipped"].remove(chosen.id)
        if state.get("pending") and state["pending"].get("field") == chosen.id:
            state["pending"] = None
        if state.get("stage") == "result":  # a new declaration is needed: review again
            state["stage"] = "review"
            draft.status = eng.ACTIVE
        draft.payload = state
        draft.stage = state.get("stage", draft.stage)
        draft.updated_at = act.now
        uow.save_draft(draft)
        uow.add_facts(
            [
                FactRec(
                    "AnswerCorrected",
                    {"field": chosen.id, "by": act.who, "procedure": proc.id},
                    case.citizen_id,
                    draft.id,
                    act.now,
                )
            ]
        )
        self._audit(uow, act, "edit", case, field=chosen.id)
        act.out.replies.append(Reply(self.t("edit_done", label=chosen.label)))
        shown = mask_id(outcome.display) if chosen.type == "id_number" else outcome.display
        act.out.deliveries += self._to_citizen(
            uow,
            case,
            [Reply(self.t("corrected_citizen", label=chosen.label, value=shown, name=act.name))],
        )

    # ------------------------------------------------------------------ citizen buttons
    def _citizen_press(
        self,
        svc: ConversationService,
        uow: Any,
        act: _Act,
        citizen: CitizenRec,
        data: str,
    ) -> None:
        parts = data.split(".", 2)
        case = uow.handoff(int(parts[1])) if len(parts) == 3 and parts[1].isdigit() else None
        if case is None or case.citizen_id != citizen.id or case.status != "open":
            if case is not None and case.citizen_id == citizen.id and case.status == "claimed":
                act.out.notice = self.t("notice_officer_busy")
                return
            act.out.replies.append(Reply(self.t("case_gone")))
            act.out.replies += svc.resume_citizen(uow, citizen.id, None, act.now)
            return
        token = parts[2]
        commune = self.dir.commune(case.commune_code)
        if token == "w":
            if not uow.update_handoff(
                case.id, expect_status="open", status="withdrawn", closed_at=act.now
            ):
                act.out.notice = self.t("notice_officer_busy")
                return
            case = uow.handoff(case.id)
            self._fact(uow, case, "HandoffWithdrawn", act.now)
            self._reminders_follow(uow, act, case)
            act.out.deliveries += self._card_edits(uow, case, act)
            note = self._to_group(case, self.t("withdrawn_note", case=case))
            if note:
                act.out.deliveries.append(note)
            act.out.replies.append(Reply(self.t("withdrawn")))
            act.out.replies += self._resume(svc, uow, case, act.now, at_case_draft=False)
        elif token == "cb":
            session = dict(citizen.session or {})
            session[AWAIT] = case.id
            citizen.session = session
            uow.save_citizen(citizen)
            act.out.replies.append(self._ask_phone(uow, case))
        elif token == "p":
            phone = self._draft_phone(uow, case)
            if phone:
                self._ask_slot(uow, act, citizen, case, commune, phone)
            else:
                act.out.replies.append(self._ask_phone(uow, case))
        elif token == "n":
            self._drop_await(uow, citizen)
            act.out.replies.append(Reply(self.t("callback_dropped")))
            act.out.replies += svc.resume_citizen(uow, citizen.id, None, act.now)
        elif token.startswith("s") and token[1:].isdigit():
            self._pick_slot(uow, act, citizen, case, commune, token[1:])
        else:
            act.out.replies += svc.resume_citizen(uow, citizen.id, None, act.now)

    def _drop_await(self, uow: Any, citizen: CitizenRec) -> None:
        if AWAIT in (citizen.session or {}):
            session = dict(citizen.session)
            session.pop(AWAIT, None)
            citizen.session = session
            uow.save_citizen(citizen)

    def _draft_phone(self, uow: Any, case: HandoffRec) -> str:
        draft = uow.draft(case.draft_id) if case.draft_id else None
        proc = self.catalog.get(draft.procedure_id) if draft else None
        if draft is None or proc is None:
            return ""
        answers = draft.payload.get("answers", {})
        for f in proc.fields:
            if f.type == "phone" and answers.get(f.id):
                return str(answers[f.id])
        return ""

    def _ask_phone(self, uow: Any, case: HandoffRec) -> Reply:
        phone = self._draft_phone(uow, case)
        rows = []
        if phone:
            rows.append([Button(self.t("btn_use_phone", phone=phone), f"c.{case.id}.p")])
        rows.append([Button(self.t("btn_no_callback"), f"c.{case.id}.n")])
        return Reply(
            self.t("callback_ask_phone", phone=phone), tuple(tuple(r) for r in rows), "text"
        )

    def _callback_phone(
        self, uow: Any, act: _Act, citizen: CitizenRec, case: HandoffRec, text: str
    ) -> None:
        today = self._today(act.now)
        outcome = validators.validate(CALLBACK_FIELD, text, {}, today)
        if not isinstance(outcome, Valid):
            code = outcome.code if isinstance(outcome, Invalid) else "phone_format"
            params = outcome.params if isinstance(outcome, Invalid) else {}
            error = self._renderer.error(code, params)
            act.out.replies.append(Reply(error))
            act.out.replies.append(self._ask_phone(uow, case))
            return
        commune = self.dir.commune(case.commune_code)
        self._ask_slot(uow, act, citizen, case, commune, outcome.value)

    def _ask_slot(
        self,
        uow: Any,
        act: _Act,
        citizen: CitizenRec,
        case: HandoffRec,
        commune: Commune,
        phone: str,
    ) -> None:
        uow.update_handoff(case.id, callback_phone=phone)
        self._drop_await(uow, citizen)
        slots = commune.hours.slots(act.now, 4)
        rows = [
            [Button(self.t("slot_label", start=s, end=e), f"c.{case.id}.s{s:{SLOT_FORMAT}}")]
            for s, e in slots
        ]
        rows.append([Button(self.t("btn_no_callback"), f"c.{case.id}.n")])
        act.out.replies.append(
            Reply(self.t("callback_ask_slot"), tuple(tuple(r) for r in rows), "choice")
        )

    def _pick_slot(
        self,
        uow: Any,
        act: _Act,
        citizen: CitizenRec,
        case: HandoffRec,
        commune: Commune,
        stamp: str,
    ) -> None:
        try:
            start = dt.datetime.strptime(stamp, SLOT_FORMAT).replace(tzinfo=commune.hours.tz)
        except ValueError:
            start = None
        interval = commune.hours.interval_at(start) if start else None
        if interval is None or interval[1] <= act.now or not case.callback_phone:
            act.out.replies.append(self._ask_phone(uow, case))
            return
        slot = f"{interval[0]:%Y-%m-%dT%H:%M}/{interval[1]:%H:%M}"
        uow.update_handoff(case.id, callback_slot=slot)
        case = uow.handoff(case.id)
        self._fact(uow, case, "CallbackRequested", act.now)
        if act.reminders is not None:  # the day before and an hour before (flows/reminders.py)
            office = self.t("office_name", commune=commune)
            act.reminders.plan_callback(uow, case, interval[0], interval[1], office, act.now)
        act.out.deliveries += self._card_edits(uow, case, act)
        note = self._to_group(case, self.t("callback_note", case=case))
        if note:
            act.out.deliveries.append(note)
        act.out.replies.append(
            Reply(self.t("callback_noted", slot=self._slot_of(case, commune), commune=commune))
        )

    # ------------------------------------------------------------------ private commands
    def _officer_command(self, svc: ConversationService, uow: Any, act: _Act, cmd: Command) -> None:
        sender = act.inbound.sender
        communes = self.dir.communes_of(act.who) if sender.channel == self.dir.channel else []
        if not communes:
            act.out.replies.append(Reply(self.t("refusal")))
            return
        if cmd.name == "hangdoi":
            self._queue(uow, act, communes)
        elif cmd.name == "hoso":
            code = cmd.arg.strip().lstrip("#")
            case = uow.handoff(int(code)) if code.isdigit() else None
            if case is None and code:
                draft = uow.draft_by_short_id(code.lower())
                found = uow.handoffs(citizen_id=draft.citizen_id) if draft else []
                found = [c for c in found if c.draft_id == draft.id]
                case = found[-1] if found else None
            if case is None or not self.dir.may_act(sender.channel, act.who, case.commune_code):
                act.out.replies.append(Reply(self.t("case_unknown", code=code[:20])))
                return
            self._view(uow, act, case)
        elif cmd.name == "thongke":
            self._stats(uow, act, communes, cmd.arg)

    def _queue(self, uow: Any, act: _Act, communes: list[Commune]) -> None:
        cases = [
            c for c in uow.handoffs(statuses=LIVE) if self.dir.commune(c.commune_code) in communes
        ]
        self._audit(uow, act, "queue", None, count=len(cases))
        items = []
        for c in cases[:QUEUE_LINES]:
            draft = uow.draft(c.draft_id) if c.draft_id else None
            proc = self.catalog.get(draft.procedure_id) if draft else None
            items.append(
                {
                    "case": c,
                    "proc": proc,
                    "age": self._minutes(c.created_at, act.now),
                    "commune": self.dir.commune(c.commune_code),
                    "slot": self._slot_of(c, self.dir.commune(c.commune_code)),
                }
            )
        rows = [
            [Button(self.t("btn_view_n", case=i["case"]), f"o.v.{i['case'].id}")]
            for i in items[:10]
        ]
        act.out.replies.append(
            Reply(
                self.t("queue", lines=items, more=max(len(cases) - QUEUE_LINES, 0)),
                tuple(tuple(r) for r in rows),
                "choice" if rows else "none",
            )
        )

    def _stats(self, uow: Any, act: _Act, communes: list[Commune], arg: str) -> None:
        from flows import officer_stats

        arg = arg.strip()
        if arg and not (arg.isdigit() and 1 <= int(arg) <= MAX_STATS_DAYS):
            act.out.replies.append(Reply(self.t("stats_usage", max=MAX_STATS_DAYS)))
            return
        days = int(arg) if arg else DEFAULT_STATS_DAYS
        tz = communes[0].hours.tz
        figures = officer_stats.compute(self, uow, communes, days, act.now, tz)
        self._audit(uow, act, "stats", None, days=days)
        act.out.replies.append(Reply(self.t("stats", f=figures, communes=communes)))
        png = officer_stats.chart_png(figures, self)
        if png:
            from flows.types import Attachment

            caption = self.t("chart_caption", f=figures)
            act.out.replies.append(
                Reply("", attachment=Attachment("thong-ke.png", png, "image/png", caption))
            )

    # ------------------------------------------------------------------ the transport's reports
    def record_sent(
        self, uow: Any, tag: str, chat_id: str, message_id: int, thread_id: int | None
    ) -> None:
        """The transport sent a case card: remember where, for edits, replies and topics."""
        kind, _, ident = tag.partition(":")
        if kind != "case" or not ident.isdigit():
            return
        values: dict[str, Any] = {"group_message_id": message_id}
        if thread_id is not None:
            values["topic_id"] = thread_id
        try:
            values["group_chat_id"] = int(chat_id)
        except ValueError:
            return
        uow.update_handoff(int(ident), **values)

    # ------------------------------------------------------------------ re-announcements
    def due_reannouncements(self, uow: Any, now: dt.datetime) -> list[Delivery]:
        """Cards of cases still unclaimed after `reannounce_minutes` working minutes since
        they were last announced, posted again; the citizen hears once that the office was
        reminded and that they may withdraw."""
        out: list[Delivery] = []
        for case in uow.handoffs(statuses=("open",)):
            commune = self.dir.commune(case.commune_code)
            if case.group_chat_id is None or not commune.reachable:
                continue
            since = case.announced_at or case.created_at
            if commune.hours.working_minutes(since, now) < self.reannounce_minutes:
                continue
            if not uow.update_handoff(
                case.id,
                expect_version=case.version,
                announced_at=now,
                announce_count=case.announce_count + 1,
            ):
                continue
            case = uow.handoff(case.id)
            out.append(
                Delivery(
                    self._group_target(case),
                    self._card(uow, case, now),
                    record=f"case:{case.id}",
                )
            )
            if case.announce_count == 2:
                rows = ((Button(self.t("btn_withdraw"), f"c.{case.id}.w"),),)
                text = self.t("reannounced_citizen", commune=commune)
                out += self._to_citizen(uow, case, [Reply(text, rows, "choice")])
        return out

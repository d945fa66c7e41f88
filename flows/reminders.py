"""Reminders that bring citizens back, transport-free.

Reminders are rows (storage/reminders.py), planned relative to dates in the case:
- "draft": an unfinished (active) draft, `draft_hours` after its last activity (24 h, then
  72 h, then never). Every activity on the draft plans them again; a draft that is
  finished, submitted, cancelled or left as not needed voids them; a deleted draft takes
  its rows with it.
- "result": once the dossier code is recorded, when the procedure's `processing_days`
  working days have passed (weekends and the public holidays of
  procedures/_shared/holidays.yaml not counted), at `result_hour` local time. Its buttons:
  open the draft, or "I got the result" (`rm.got.<draft>`): the result reminders are void,
  and when the procedure's result expires (`validity_months` in procedure.yaml) the citizen
  is asked whether they used it yet (`rm.unused.<draft>` / `rm.used.<draft>`).
- "validity": the citizen said the result is not used yet: `validity_days` before it
  expires, at `validity_hour`. The expiry is counted from the day the dossier code was
  recorded (the earliest the result can have been issued: the reminder is never late);
  "used" voids it.
- "callback" and "appointment" (rows tied to a case, `handoff_id`): an officer's call-back
  slot picked by the citizen (flows/officer.py `_pick_slot`) or an appointment at the
  office an officer set with /hen. The citizen `appointment_hours` before the start
  (24 h and 1 h), and the officer `officer_minutes` before it: the officer who owns the
  case (private chat; their group if that chat is refused), or the commune's officers'
  group (its topic) when nobody owns it then. A call-back is void once it is done, its
  slot changed, or the case is over (closed, returned, withdrawn); an appointment once
  replaced or cancelled (/hen huy) or the case withdrawn, and it survives the case being
  returned to the bot (the visit is later). These go out even while an officer owns the
  case (they are the officer's own plan); /tatnhac stops the citizen's, not the officer's.
  Inside the quiet hours they move to the end of them if that is still before the start,
  else they are dropped ("quiet_late"); past the start they are dropped ("past").

`dispatch(now)` claims the due rows (exactly once across processes) and decides, per row:
dropped when the citizen stopped reminders (/tatnhac) or is unreachable (blocked the bot),
or when the draft no longer needs it; moved to the end of the quiet hours when it falls
inside them in the citizen's time zone; moved later while an officer owns the case (a
claimed case: the bot and an officer never talk over each other); else sent. It returns
the messages as `Delivery`s; the transport sends them (bot/reminders.py). A reminder due
while the bot was down is simply due at the first tick after start, and sent once.

All text comes from procedures/_shared/templates/reminders.j2. The button of a reminder is
`rm.<kind>.<draft short id>`: the service resumes that draft where it stands (no stale-turn
check: a reminder is not part of the current screen); `rm.got|unused|used.<draft>` are the
answers `press` handles. An officer's reminder has the officer desk's `o.v.<case>` button.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from flows import engine as eng
from flows.render import macro_text
from flows.types import Button, Delivery, Reply, Target
from procedures import conditions
from procedures.loader import Catalog
from storage import reminders as rows
from storage.store import CitizenRec, Contact, DraftHead, DraftRec, FactRec, HandoffRec, Store

log = logging.getLogger(__name__)

DRAFT, RESULT, VALIDITY = "draft", "result", "validity"
CALLBACK, APPOINTMENT = "callback", "appointment"
CASE_KINDS = (CALLBACK, APPOINTMENT)
KINDS = (DRAFT, RESULT, VALIDITY, *CASE_KINDS)
GOT, UNUSED, USED = "got", "unused", "used"  # the citizen's answers: rm.<answer>.<draft>
ANSWERS = frozenset({GOT, UNUSED, USED})
LIVE_CASE = ("open", "claimed")
BUTTON_KEY = "rm"
HOLIDAYS_FILE = Path(__file__).resolve().parent.parent / "procedures/_shared/holidays.yaml"


@dataclass(frozen=True)
class ReminderConfig:
    """Every delay and count of the reminders (settings MOTCUA_REMINDER_*, MOTCUA_QUIET_HOURS)."""

    enabled: bool = True
    draft_hours: tuple[float, ...] = (24.0, 72.0)
    quiet_start: int = 21  # local hour the quiet hours begin
    quiet_end: int = 7  # local hour they end (a reminder inside is moved to it)
    result_hour: int = 17  # local hour of the "check the result" reminder
    owner_recheck_minutes: int = 60  # an officer owns the case: look again this much later
    appointment_hours: tuple[float, ...] = (24.0, 1.0)  # citizen: hours before a call-back/visit
    officer_minutes: int = 60  # the officer: minutes before a call-back slot or a visit
    validity_days: int = 14  # days before a result expires (the citizen has not used it)
    validity_hour: int = 9  # local hour of that reminder
    batch: int = 100  # rows claimed per tick
    tick_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> ReminderConfig:
        """Read the settings; raises ValueError with one line naming the bad one."""

        def get(name: str) -> str:
            return (env.get(name) or "").strip()

        kw: dict[str, Any] = {}
        if raw := get("MOTCUA_REMINDERS"):
            if raw.lower() not in ("on", "off", "1", "0", "true", "false"):
                raise ValueError(f"MOTCUA_REMINDERS must be on or off, got {raw!r}")
            kw["enabled"] = raw.lower() in ("on", "1", "true")
        if raw := get("MOTCUA_REMINDER_DRAFT_HOURS"):
            try:
                hours = tuple(float(p) for p in raw.split(",") if p.strip())
            except ValueError:
                hours = ()
            if not hours or any(h <= 0 for h in hours) or list(hours) != sorted(set(hours)):
                raise ValueError(
                    f"MOTCUA_REMINDER_DRAFT_HOURS must be increasing hours separated by "
                    f"commas (like 24,72), got {raw!r}"
                )
            kw["draft_hours"] = hours
        if raw := get("MOTCUA_REMINDER_APPOINTMENT_HOURS"):
            try:
                before = tuple(float(p) for p in raw.split(",") if p.strip())
            except ValueError:
                before = ()
            if (
                not before
                or any(h <= 0 for h in before)
                or list(before) != sorted(set(before), reverse=True)
            ):
                raise ValueError(
                    f"MOTCUA_REMINDER_APPOINTMENT_HOURS must be decreasing hours before the "
                    f"start separated by commas (like 24,1), got {raw!r}"
                )
            kw["appointment_hours"] = before
        if raw := get("MOTCUA_QUIET_HOURS"):
            parts = raw.split("-")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"MOTCUA_QUIET_HOURS must look like 21-7, got {raw!r}")
            start, end = (int(p) for p in parts)
            if not (0 <= start <= 23 and 0 <= end <= 23):
                raise ValueError(f"MOTCUA_QUIET_HOURS: hours go from 0 to 23, got {raw!r}")
            kw["quiet_start"], kw["quiet_end"] = start, end
        for name, key, low, high in (
            ("MOTCUA_REMINDER_RESULT_HOUR", "result_hour", 0, 23),
            ("MOTCUA_REMINDER_OWNER_RECHECK_MINUTES", "owner_recheck_minutes", 1, 10080),
            ("MOTCUA_REMINDER_OFFICER_MINUTES", "officer_minutes", 1, 10080),
            ("MOTCUA_REMINDER_VALIDITY_DAYS", "validity_days", 1, 365),
            ("MOTCUA_REMINDER_VALIDITY_HOUR", "validity_hour", 0, 23),
            ("MOTCUA_REMINDER_BATCH", "batch", 1, 10000),
            ("MOTCUA_REMINDER_TICK_SECONDS", "tick_seconds", 1, 3600),
        ):
            if raw := get(name):
                if not raw.isdigit() or not low <= int(raw) <= high:
                    raise ValueError(f"{name} must be a whole number from {low} to {high}")
                kw[key] = int(raw)
        return cls(**kw)


# ----------------------------------------------------------------------------- time


def in_quiet(local: dt.datetime, cfg: ReminderConfig) -> bool:
    """Whether a local time falls inside the quiet hours (which may span midnight)."""
    h, start, end = local.hour, cfg.quiet_start, cfg.quiet_end
    if start == end:
        return False
    if start < end:
        return start <= h < end
    return h >= start or h < end


def after_quiet(when: dt.datetime, tz: ZoneInfo, cfg: ReminderConfig) -> dt.datetime:
    """`when` itself, or the end of the quiet hours it falls in (in `tz`), as UTC."""
    local = when.astimezone(tz)
    if not in_quiet(local, cfg):
        return when
    day = local.date()
    if local.hour >= cfg.quiet_end and cfg.quiet_start > cfg.quiet_end:
        day += dt.timedelta(days=1)  # evening: the end is tomorrow morning
    end = dt.datetime.combine(day, dt.time(cfg.quiet_end), tz)
    return end.astimezone(dt.UTC)


def load_holidays(path: Path = HOLIDAYS_FILE) -> frozenset[dt.date]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return frozenset(
        h["date"] if isinstance(h["date"], dt.date) else dt.date.fromisoformat(h["date"])
        for h in data.get("holidays", [])
    )


def add_working_days(start: dt.date, days: int, holidays: frozenset[dt.date]) -> dt.date:
    """The `days`-th working day after `start` (Monday-Friday, not a holiday); with 0, the
    first working day from `start` on."""
    day = start
    if days == 0:
        while day.weekday() >= 5 or day in holidays:
            day += dt.timedelta(days=1)
        return day
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            counted += 1
    return day


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later (the month's last day when it is shorter)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _instant(raw: Any) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


@dataclass(frozen=True)
class ReminderDelivery(Delivery):
    """A reminder to send; `fallback` goes instead when the chat refuses it (an officer
    who never opened a private chat with the bot: their officers' group)."""

    fallback: Delivery | None = None


# ----------------------------------------------------------------------------- service


@dataclass(frozen=True)
class Planned:
    """One row as operators see it (`motcua reminders`): no personal data."""

    id: int
    citizen_id: int
    draft_id: int | None
    kind: str
    seq: int
    status: str
    due_at: dt.datetime
    note: str
    handoff_id: int | None = None
    audience: str = rows.CITIZEN


_WANTED = {DRAFT: eng.ACTIVE, RESULT: eng.SUBMITTED, VALIDITY: eng.SUBMITTED}


class _Batch:
    """One dispatch's claimed rows: what deciding them reads, read with one query each,
    and the outcomes decided, written together (`write`) before the commit.

    The rows are decided one after the other, in claim order, and each sees the outcomes
    of those before it, as if they had been written at once: a row decided (sent,
    cancelled or moved later) no longer counts as a later reminder due too, and a
    citizen's sent count includes the reminders sent to them earlier in the batch (the
    "first reminder" flag)."""

    def __init__(self) -> None:
        self.citizens: dict[int, Contact] = {}
        self.drafts: dict[int, DraftRec | DraftHead] = {}  # with the answers when needed
        self.prefs: dict[int, tuple[bool, bool]] = {}
        self.owned: set[int] = set()  # citizens with a case an officer owns (claimed)
        self.sent_counts: dict[int, int] = {}
        self._due_drafts: dict[int, list[rows.DueRow]] = {}
        self._due_cases: dict[int, list[rows.DueRow]] = {}
        self._cases: dict[int, HandoffRec | None] = {}
        self._decided: set[int] = set()
        self._sent: list[int] = []
        self._cancelled: list[tuple[int, str]] = []
        self._moved: list[tuple[int, dt.datetime, str]] = []

    @classmethod
    def read(cls, uow: Any, claimed: list[rows.ReminderRec], now: dt.datetime) -> _Batch:
        b = cls()
        citizen_ids = {r.citizen_id for r in claimed}
        draft_ids = {r.draft_id for r in claimed if r.draft_id is not None}
        plain = [r for r in claimed if r.kind not in CASE_KINDS]
        plain_drafts = {r.draft_id for r in plain if r.draft_id is not None}
        case_ids = {r.handoff_id for r in claimed if r.kind in CASE_KINDS and r.handoff_id}
        b.citizens = uow.contacts(citizen_ids)
        # the answers (decrypted, the largest column) only for what the result reminder
        # says the citizen should bring
        answers = {r.draft_id for r in plain if r.kind == RESULT and r.draft_id is not None}
        b.drafts = dict(uow.draft_heads(draft_ids - answers))
        b.drafts.update((d.id, d) for d in uow.drafts_by_ids(answers))
        b.prefs = rows.prefs(uow, citizen_ids)
        if plain:  # only these wait while an officer owns the case
            b.owned = uow.citizens_with_cases({r.citizen_id for r in plain}, ["claimed"])
        b.sent_counts = rows.sent_counts(uow, citizen_ids)
        for r in rows.due_planned(uow, now, draft_ids=plain_drafts):
            b._due_drafts.setdefault(r.draft_id, []).append(r)  # type: ignore[arg-type]
        for r in rows.due_planned(uow, now, handoff_ids=case_ids):
            b._due_cases.setdefault(r.handoff_id, []).append(r)  # type: ignore[arg-type]
        return b

    def due_of_draft(self, draft_id: int | None) -> list[rows.DueRow]:
        """The draft's planned reminders due now, those decided in this batch left out."""
        return [r for r in self._due_drafts.get(draft_id, ()) if r.id not in self._decided]

    def due_of_case(self, handoff_id: int | None) -> list[rows.DueRow]:
        return [r for r in self._due_cases.get(handoff_id, ()) if r.id not in self._decided]

    def case(self, uow: Any, handoff_id: int) -> HandoffRec | None:
        """The case (read once per batch: its citizen's and officer's rows come together)."""
        if handoff_id not in self._cases:
            self._cases[handoff_id] = uow.handoff(handoff_id)
        return self._cases[handoff_id]

    def draft(self, uow: Any, draft_id: int) -> DraftRec | DraftHead | None:
        if draft_id not in self.drafts:
            found = uow.draft(draft_id)
            if found is None:
                return None
            self.drafts[draft_id] = found
        return self.drafts[draft_id]

    def send(self, rem: rows.ReminderRec) -> bool:
        """The row is sent; whether it is the first reminder its citizen gets (an
        officer's reminder about their case is not counted)."""
        self._decided.add(rem.id)
        self._sent.append(rem.id)
        if rem.audience != rows.CITIZEN:
            return False
        before = self.sent_counts.get(rem.citizen_id, 0)
        self.sent_counts[rem.citizen_id] = before + 1
        return before == 0

    def cancel(self, rem: rows.ReminderRec, reason: str) -> None:
        self._decided.add(rem.id)
        self._cancelled.append((rem.id, reason))

    def move(self, rem: rows.ReminderRec, due_at: dt.datetime, note: str) -> None:
        self._decided.add(rem.id)
        self._moved.append((rem.id, due_at, note))

    def write(self, uow: Any, now: dt.datetime) -> None:
        rows.settle(uow, now, sent=self._sent, cancelled=self._cancelled, moved=self._moved)


class Reminders:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        timezone: str = "Asia/Ho_Chi_Minh",
        config: ReminderConfig | None = None,
        holidays: frozenset[dt.date] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.tz = ZoneInfo(timezone)
        self.cfg = config or ReminderConfig()
        self.holidays = load_holidays() if holidays is None else holidays
        self._t = catalog.env.get_template("reminders.j2").module
        self._labels: dict[str, str] = {}

    def t(self, macro: str, /, **ctx: Any) -> str:
        return macro_text(self._t, macro, ctx)

    def tz_of(self, citizen: CitizenRec | Contact) -> ZoneInfo:
        if citizen.timezone:
            try:
                return ZoneInfo(citizen.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        return self.tz

    # ------------------------------------------------------------------ planning
    def on_draft(self, uow: Any, citizen: CitizenRec, draft: DraftRec, now: dt.datetime) -> None:
        """A draft changed (inside the service's unit of work): plan or void its reminders."""
        if draft.id is None:
            return
        if draft.status == eng.ACTIVE and self.cfg.enabled:
            due = [(n, now + dt.timedelta(hours=h)) for n, h in enumerate(self.cfg.draft_hours, 1)]
            rows.plan(uow, citizen.id, draft.id, DRAFT, due, now)
        else:
            rows.cancel(uow, now, draft_id=draft.id, kinds=[DRAFT], note=draft.status)
        if draft.status == eng.SUBMITTED and draft.dossier_code and self.cfg.enabled:
            proc = self.catalog.get(draft.procedure_id)
            days = proc.processing_days if proc is not None else None
            if days is None or any(
                r.kind == RESULT for r in rows.reminders(uow, draft_id=draft.id)
            ):
                return
            tz = self.tz_of(citizen)
            due_day = add_working_days(now.astimezone(tz).date(), days, self.holidays)
            at = dt.datetime.combine(due_day, dt.time(self.cfg.result_hour), tz)
            rows.plan(uow, citizen.id, draft.id, RESULT, [(1, at.astimezone(dt.UTC))], now)

    def plan_callback(
        self,
        uow: Any,
        case: HandoffRec,
        start: dt.datetime,
        end: dt.datetime,
        office: str,
        now: dt.datetime,
    ) -> None:
        """The citizen picked (or changed) a call-back slot of `case`: plan its reminders."""
        data = {
            "at": start.astimezone(dt.UTC).isoformat(),
            "end": end.astimezone(dt.UTC).isoformat(),
            "slot": case.callback_slot,
            "office": office,
        }
        self._plan_case(uow, case, CALLBACK, start, data, now)

    def plan_appointment(
        self, uow: Any, case: HandoffRec, at: dt.datetime, office: dict, now: dt.datetime
    ) -> None:
        """An officer set (or moved) an appointment at the office: plan its reminders.
        `office`: the office's name, address and phone, shown to the citizen."""
        data = {"at": at.astimezone(dt.UTC).isoformat(), **office}
        self._plan_case(uow, case, APPOINTMENT, at, data, now)

    def _plan_case(
        self, uow: Any, case: HandoffRec, kind: str, start: dt.datetime, data: dict, now
    ) -> None:
        due = [
            (n, rows.CITIZEN, start - dt.timedelta(hours=h))
            for n, h in enumerate(self.cfg.appointment_hours, 1)
        ]
        due.append((1, rows.OFFICER, start - dt.timedelta(minutes=self.cfg.officer_minutes)))
        due = [d for d in due if d[2] > now] if self.cfg.enabled else []
        rows.plan_case(uow, case.citizen_id, case.id, case.draft_id, kind, due, now, data)

    def appointment(self, uow: Any, case_id: int) -> dt.datetime | None:
        """When the case's appointment is (its planned reminders'), or None."""
        for r in rows.reminders(
            uow, handoff_id=case_id, kinds=[APPOINTMENT], statuses=[rows.PLANNED, rows.SENT]
        ):
            if r.status == rows.PLANNED:
                return _instant(r.data.get("at"))
        return None

    def cancel_appointment(self, uow: Any, case_id: int, now: dt.datetime) -> int:
        return rows.cancel(uow, now, handoff_id=case_id, kinds=[APPOINTMENT], note="cancelled")

    def case_changed(self, uow: Any, case: HandoffRec, now: dt.datetime) -> None:
        """A case changed (done, closed, returned, withdrawn): void what lost its reason."""
        if case.callback_done_at is not None:
            rows.cancel(uow, now, handoff_id=case.id, kinds=[CALLBACK], note="done")
        elif case.status not in LIVE_CASE:
            rows.cancel(uow, now, handoff_id=case.id, kinds=[CALLBACK], note=case.status)
        if case.status == "withdrawn":
            rows.cancel(uow, now, handoff_id=case.id, kinds=[APPOINTMENT], note="withdrawn")

    def answers(self, name: str) -> bool:
        return name in ANSWERS

    def press(
        self, uow: Any, citizen: CitizenRec, answer: str, short: str, now: dt.datetime
    ) -> list[Reply] | None:
        """The citizen answered about a result (`rm.<answer>.<draft>`): got it, not used
        yet, used. None: not their draft (the service treats it as a stale button)."""
        draft = uow.draft_by_short_id(short)
        proc = self.catalog.get(draft.procedure_id) if draft is not None else None
        if draft is None or draft.citizen_id != citizen.id or proc is None:
            return None
        months = proc.validity_months
        ctx: dict[str, Any] = {"proc": proc, "code": draft.dossier_code, "months": months}
        facts = {GOT: "ResultReceived", UNUSED: "ResultNotUsed", USED: "ResultUsed"}
        uow.add_facts([FactRec(facts[answer], {"procedure": proc.id}, citizen.id, draft.id, now)])
        if answer == GOT:
            rows.cancel(uow, now, draft_id=draft.id, kinds=[RESULT], note="collected")
            if not months:
                return [Reply(self.t("result_noted", **ctx))]
            buttons = (
                (
                    Button(self.t("button_unused"), f"{BUTTON_KEY}.{UNUSED}.{draft.short_id}"),
                    Button(self.t("button_used"), f"{BUTTON_KEY}.{USED}.{draft.short_id}"),
                ),
            )
            return [Reply(self.t("ask_used", **ctx), buttons, "choice")]
        if answer == USED or not months:
            rows.cancel(uow, now, draft_id=draft.id, kinds=[VALIDITY], note="used")
            return [Reply(self.t("validity_used", **ctx))]
        tz = self.tz_of(citizen)
        issued = self._earliest_issue(uow, draft, tz)
        expires = add_months(issued, months)
        day = expires - dt.timedelta(days=self.cfg.validity_days)
        at = dt.datetime.combine(day, dt.time(self.cfg.validity_hour), tz).astimezone(dt.UTC)
        ctx |= {"issued": issued, "expires": expires, "remind": max(day, now.astimezone(tz).date())}
        if expires <= now.astimezone(tz).date():
            return [Reply(self.t("validity_expired", **ctx))]
        if self.cfg.enabled:
            data = {"from": issued.isoformat(), "expires": expires.isoformat()}
            rows.plan(uow, citizen.id, draft.id, VALIDITY, [(1, max(at, now))], now, data)
        button = Button(self.t("button_used"), f"{BUTTON_KEY}.{USED}.{draft.short_id}")
        ctx["planned"] = self.cfg.enabled
        return [Reply(self.t("validity_planned", **ctx), ((button,),), "choice")]

    def _earliest_issue(self, uow: Any, draft: DraftRec, tz: ZoneInfo) -> dt.date:
        """The earliest day the result can have been issued: the day the dossier code was
        recorded (the last time, if it was typed again), else the draft's last change."""
        stored = uow.facts(draft_id=draft.id, kind="DossierCodeStored")
        at = stored[-1].at if stored else draft.updated_at
        return at.astimezone(tz).date()

    def command(self, uow: Any, citizen: CitizenRec, name: str, now: dt.datetime) -> str:
        """/tatnhac (stop) or /batnhac (start again); returns the answer to show."""
        if name == "tatnhac":
            rows.set_pref(uow, citizen.id, now, stopped=True)
            return self.t("stopped")
        rows.set_pref(uow, citizen.id, now, stopped=False, unreachable=False)
        return self.t("started")

    def unreachable(self, channel: str, external_id: str, now: dt.datetime) -> None:
        """The channel refused a message (the person blocked the bot): no more reminders."""
        with self.store.unit_of_work() as uow:
            citizen = uow.citizen(channel, external_id)
            if citizen is None:
                return
            rows.set_pref(uow, citizen.id, now, unreachable=True)
            # the officers' reminders about this citizen's case still go (they may phone)
            rows.cancel(uow, now, citizen_id=citizen.id, audience=rows.CITIZEN, note="unreachable")
            uow.commit()
        log.info("citizen %s unreachable: reminders cancelled", citizen.id)

    # ------------------------------------------------------------------ sending
    def dispatch(self, now: dt.datetime) -> list[Delivery]:
        """Claim the reminders due at `now`, decide each, commit, and return what to send.

        What the decisions read (citizens, drafts, preferences, cases owned by an officer,
        the later reminders due too, how many reminders each citizen was sent) is read
        for the whole batch at once; the outcomes are written together before the commit
        (`_Batch`). The rows are decided in claim order, as if one after the other."""
        out: list[Delivery] = []
        with self.store.unit_of_work() as uow:
            claimed = rows.claim_due(uow, now, self.cfg.batch)
            if not claimed:
                return out
            batch = _Batch.read(uow, claimed, now)
            for rem in claimed:
                if rem.kind in CASE_KINDS:
                    delivery = self._decide_case(uow, batch, rem, now)
                else:
                    delivery = self._decide(batch, rem, now)
                if delivery is not None:
                    out.append(delivery)
            batch.write(uow, now)
            uow.commit()
        return out

    def _label(self, macro: str) -> str:
        """A button's label (the same text every time)."""
        label = self._labels.get(macro)
        if label is None:
            label = self._labels[macro] = self.t(macro)
        return label

    def _decide(self, batch: _Batch, rem: rows.ReminderRec, now: dt.datetime) -> Delivery | None:
        citizen = batch.citizens.get(rem.citizen_id)
        draft = batch.drafts.get(rem.draft_id) if rem.draft_id is not None else None
        proc = self.catalog.get(draft.procedure_id) if draft is not None else None
        stopped, unreachable = batch.prefs.get(rem.citizen_id, (False, False))
        wanted = _WANTED.get(rem.kind)
        reason = ""
        if citizen is None or draft is None or proc is None or wanted is None:
            reason = "gone"
        elif unreachable:
            reason = "unreachable"
        elif stopped or not self.cfg.enabled:
            reason = "stopped"
        elif draft.status != wanted:
            reason = draft.status
        elif any(r.kind == rem.kind and r.seq > rem.seq for r in batch.due_of_draft(rem.draft_id)):
            reason = "superseded"  # a later one is due too (the bot was down): send that one
        if reason:
            batch.cancel(rem, reason)
            return None
        assert citizen is not None and draft is not None and proc is not None
        if citizen.id in batch.owned:
            batch.move(rem, now + dt.timedelta(minutes=self.cfg.owner_recheck_minutes), "officer")
            return None
        tz = self.tz_of(citizen)
        if in_quiet(now.astimezone(tz), self.cfg):
            batch.move(rem, after_quiet(now, tz, self.cfg), "quiet")
            return None
        first = batch.send(rem)
        ctx = {
            "proc": proc,
            "subject": draft.subject,
            "code": draft.dossier_code,
            "first": first,
        }
        label = self._label("button_continue" if rem.kind == DRAFT else "button_open")
        buttons = [(Button(label, f"{BUTTON_KEY}.{rem.kind}.{draft.short_id}"),)]
        if rem.kind == DRAFT:
            macro = f"draft_{min(rem.seq, 2)}"
        elif rem.kind == RESULT:
            macro = "result_check"
            assert isinstance(draft, DraftRec)  # read with its answers (_Batch.read)
            ctx["collect"] = self._collect(proc, draft, now.astimezone(tz).date())
            got = Button(self._label("button_got"), f"{BUTTON_KEY}.{GOT}.{draft.short_id}")
            buttons.append((got,))
        else:
            macro = "validity_expiring"
            ctx["months"] = proc.validity_months
            ctx["rules"] = [f.text for f in proc.validity if not f.when]
            for key in ("from", "expires"):
                try:
                    ctx[key] = dt.date.fromisoformat(str(rem.data.get(key)))
                except ValueError:
                    ctx[key] = None
            used = Button(self._label("button_used"), f"{BUTTON_KEY}.{USED}.{draft.short_id}")
            buttons.insert(0, (used,))
        reply = Reply(self.t(macro, **ctx), tuple(buttons), "choice")
        return Delivery(Target(citizen.channel, citizen.external_id), reply=reply)

    @staticmethod
    def _collect(proc: Any, draft: DraftRec, today: dt.date) -> list[str]:
        """The procedure's `collect` facts that hold for this draft's answers (how the
        citizen chose to receive the result): what to bring, what to expect."""
        if not proc.collect:
            return []
        answers, _ = eng.effective_answers(proc, eng.migrate_state(proc, draft.payload), today)
        return [f.text for f in proc.collect if conditions.holds(f.when, answers, today)]

    def _decide_case(
        self, uow: Any, batch: _Batch, rem: rows.ReminderRec, now: dt.datetime
    ) -> Delivery | None:
        """A call-back or appointment reminder: sent even while an officer owns the case."""
        case = batch.case(uow, rem.handoff_id) if rem.handoff_id is not None else None
        citizen = batch.citizens.get(rem.citizen_id)
        start = _instant(rem.data.get("at"))
        for_citizen = rem.audience == rows.CITIZEN
        reason = ""
        if case is None or citizen is None or start is None:
            reason = "gone"
        elif start <= now:
            reason = "past"
        elif rem.kind == CALLBACK and case.callback_done_at is not None:
            reason = "done"
        elif rem.kind == CALLBACK and case.callback_slot != rem.data.get("slot"):
            reason = "changed"
        elif rem.kind == CALLBACK and case.status not in LIVE_CASE:
            reason = case.status
        elif rem.kind == APPOINTMENT and case.status == "withdrawn":
            reason = case.status
        elif not self.cfg.enabled:
            reason = "stopped"
        elif for_citizen:
            stopped, unreachable = batch.prefs.get(rem.citizen_id, (False, False))
            reason = "unreachable" if unreachable else "stopped" if stopped else ""
        if not reason and any(
            r.kind == rem.kind and r.audience == rem.audience and r.seq > rem.seq
            for r in batch.due_of_case(rem.handoff_id)
        ):
            reason = "superseded"
        if reason:
            batch.cancel(rem, reason)
            return None
        assert case is not None and citizen is not None and start is not None
        tz = self.tz_of(citizen) if for_citizen else self.tz
        if in_quiet(now.astimezone(tz), self.cfg):
            later = after_quiet(now, tz, self.cfg)
            if later < start:
                batch.move(rem, later, "quiet")
            else:
                batch.cancel(rem, "quiet_late")
            return None
        end = _instant(rem.data.get("end"))
        ctx = {
            "case": case,
            "start": start.astimezone(self.tz),
            "end": end.astimezone(self.tz) if end else None,
            "minutes": max(int((start - now).total_seconds() // 60), 0),
            "phone": case.callback_phone or "",
            "office": rem.data.get("office") or "",
            "address": rem.data.get("address") or "",
            "office_phone": rem.data.get("phone") or "",
        }
        if for_citizen:
            ctx["first"] = batch.send(rem)
            draft = batch.draft(uow, case.draft_id) if case.draft_id else None
            buttons: tuple = ()
            if draft is not None:
                data = f"{BUTTON_KEY}.{rem.kind}.{draft.short_id}"
                buttons = ((Button(self._label("button_open"), data),),)
            reply = Reply(
                self.t(f"{rem.kind}_citizen", **ctx), buttons, "choice" if buttons else "none"
            )
            return Delivery(Target(citizen.channel, citizen.external_id), reply=reply)
        view = ((Button(self._label("button_view_case"), f"o.v.{case.id}"),),)
        group = None
        if case.group_chat_id is not None:
            text = self.t(f"{rem.kind}_officer", owner=False, **ctx)
            group = Delivery(
                Target(citizen.channel, str(case.group_chat_id), case.topic_id),
                Reply(text, view, "choice"),
                reply_to_id=None if case.topic_id else case.group_message_id,
            )
        if case.claimed_by:
            batch.send(rem)
            text = self.t(f"{rem.kind}_officer", owner=True, **ctx)
            return ReminderDelivery(
                Target(citizen.channel, case.claimed_by),
                Reply(text, view, "choice"),
                fallback=group,
            )
        if group is None:  # no officers' group: nobody to tell
            batch.cancel(rem, "no_officer")
            return None
        batch.send(rem)
        return group

    # ------------------------------------------------------------------ operators
    def listing(self, now: dt.datetime, *, all_rows: bool = False) -> list[Planned]:
        """Planned rows (all rows with `all_rows`), by due time; due ones have due_at <= now."""
        with self.store.unit_of_work() as uow:
            found = rows.reminders(uow, statuses=None if all_rows else [rows.PLANNED])
        return [
            Planned(
                r.id,
                r.citizen_id,
                r.draft_id,
                r.kind,
                r.seq,
                r.status,
                r.due_at,
                r.note,
                r.handoff_id,
                r.audience,
            )
            for r in found
        ]

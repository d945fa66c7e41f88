"""Reminders that bring citizens back, transport-free.

Reminders are rows (storage/reminders.py), planned relative to dates in the case:
- "draft": an unfinished (active) draft, `draft_hours` after its last activity (24 h, then
  72 h, then never). Every activity on the draft plans them again; a draft that is
  finished, submitted, cancelled or left as not needed voids them; a deleted draft takes
  its rows with it.
- "result": once the dossier code is recorded, when the procedure's `processing_days`
  working days have passed (weekends and the public holidays of
  procedures/_shared/holidays.yaml not counted), at `result_hour` local time.

`dispatch(now)` claims the due rows (exactly once across processes) and decides, per row:
dropped when the citizen stopped reminders (/tatnhac) or is unreachable (blocked the bot),
or when the draft no longer needs it; moved to the end of the quiet hours when it falls
inside them in the citizen's time zone; moved later while an officer owns the case (a
claimed case: the bot and an officer never talk over each other); else sent. It returns
the messages as `Delivery`s; the transport sends them (bot/reminders.py). A reminder due
while the bot was down is simply due at the first tick after start, and sent once.

All text comes from procedures/_shared/templates/reminders.j2. The button of a reminder is
`rm.<kind>.<draft short id>`: the service resumes that draft where it stands (no stale-turn
check: a reminder is not part of the current screen).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from flows import engine as eng
from flows.render import tidy
from flows.types import Button, Delivery, Reply, Target
from procedures.loader import Catalog
from storage import reminders as rows
from storage.store import CitizenRec, DraftRec, Store

log = logging.getLogger(__name__)

DRAFT, RESULT = "draft", "result"
KINDS = (DRAFT, RESULT)
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

    def t(self, macro: str, /, **ctx: Any) -> str:
        return tidy(str(getattr(self._t, macro)(ctx)))

    def tz_of(self, citizen: CitizenRec) -> ZoneInfo:
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
            rows.cancel(uow, now, citizen_id=citizen.id, note="unreachable")
            uow.commit()
        log.info("citizen %s unreachable: reminders cancelled", citizen.id)

    # ------------------------------------------------------------------ sending
    def dispatch(self, now: dt.datetime) -> list[Delivery]:
        """Claim the reminders due at `now`, decide each, commit, and return what to send."""
        out: list[Delivery] = []
        with self.store.unit_of_work() as uow:
            for rem in rows.claim_due(uow, now, self.cfg.batch):
                delivery = self._decide(uow, rem, now)
                if delivery is not None:
                    out.append(delivery)
            uow.commit()
        return out

    def _decide(self, uow: Any, rem: rows.ReminderRec, now: dt.datetime) -> Delivery | None:
        citizen = uow.citizen_by_id(rem.citizen_id)
        draft = uow.draft(rem.draft_id) if rem.draft_id is not None else None
        proc = self.catalog.get(draft.procedure_id) if draft is not None else None
        stopped, unreachable = rows.pref(uow, rem.citizen_id)
        wanted = {DRAFT: eng.ACTIVE, RESULT: eng.SUBMITTED}.get(rem.kind)
        reason = ""
        if citizen is None or draft is None or proc is None or wanted is None:
            reason = "gone"
        elif unreachable:
            reason = "unreachable"
        elif stopped or not self.cfg.enabled:
            reason = "stopped"
        elif draft.status != wanted:
            reason = draft.status
        elif any(
            r.kind == rem.kind and r.seq > rem.seq and r.due_at <= now
            for r in rows.reminders(uow, draft_id=draft.id, statuses=[rows.PLANNED])
        ):
            reason = "superseded"  # a later one is due too (the bot was down): send that one
        if reason:
            rows.finish(uow, rem.id, rows.CANCELLED, now, reason)
            return None
        assert citizen is not None and draft is not None and proc is not None
        if uow.handoffs(citizen_id=citizen.id, statuses=["claimed"]):
            later = now + dt.timedelta(minutes=self.cfg.owner_recheck_minutes)
            rows.move(uow, rem.id, later, "officer")
            return None
        tz = self.tz_of(citizen)
        if in_quiet(now.astimezone(tz), self.cfg):
            rows.move(uow, rem.id, after_quiet(now, tz, self.cfg), "quiet")
            return None
        first = rows.sent_count(uow, citizen.id) == 0
        ctx = {
            "proc": proc,
            "subject": draft.subject,
            "code": draft.dossier_code,
            "first": first,
        }
        macro = f"draft_{min(rem.seq, 2)}" if rem.kind == DRAFT else "result_check"
        label = self.t("button_continue" if rem.kind == DRAFT else "button_open")
        button = Button(label, f"{BUTTON_KEY}.{rem.kind}.{draft.short_id}")
        reply = Reply(self.t(macro, **ctx), ((button,),), "choice")
        rows.finish(uow, rem.id, rows.SENT, now)
        return Delivery(Target(citizen.channel, citizen.external_id), reply=reply)

    # ------------------------------------------------------------------ operators
    def listing(self, now: dt.datetime, *, all_rows: bool = False) -> list[Planned]:
        """Planned rows (all rows with `all_rows`), by due time; due ones have due_at <= now."""
        with self.store.unit_of_work() as uow:
            found = rows.reminders(uow, statuses=None if all_rows else [rows.PLANNED])
        return [
            Planned(r.id, r.citizen_id, r.draft_id, r.kind, r.seq, r.status, r.due_at, r.note)
            for r in found
        ]

"""The commune directory: which offices the bot serves, their hours, and where their
officers work on Telegram.

A YAML file (`MOTCUA_COMMUNES_FILE`) lists the communes; `OFFICER_CHAT_ID` and
`OFFICER_IDS` describe the one-commune case without a file. Office hours are per weekday
in the commune's time zone ("07:30-11:30,13:30-17:00"); "working minutes" count only
those hours. Public holidays are not known here yet.

    default: 23152              # the commune that gets cases with no commune of its own
    communes:
      - code: 23152             # the 2025 unit code (vietnam-provinces)
        office: "..."           # the office name citizens see
        address: "..."
        phone: "..."
        hours:                  # mon..sun, or ranges such as mon-fri; "" = closed
          mon-fri: "07:30-11:30,13:30-17:00"
        group: -1001234567890   # the officers' Telegram group (a supergroup)
        officers: [111111111, 222222222]   # their Telegram user ids
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = {"mon-fri": "07:30-11:30,13:30-17:00"}
_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
MAX_SCAN_DAYS = 400  # working-time arithmetic never looks further than this


class DirectoryError(Exception):
    """The commune directory cannot be used; one line that says why."""


Interval = tuple[dt.time, dt.time]


@dataclass(frozen=True)
class OfficeHours:
    """Opening intervals per weekday (Monday first), in one time zone."""

    week: tuple[tuple[Interval, ...], ...]
    tz: ZoneInfo

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None, tz: ZoneInfo) -> OfficeHours:
        spec = DEFAULT_HOURS if spec is None else spec
        if not isinstance(spec, Mapping):
            raise DirectoryError("hours must be a mapping such as {mon-fri: '07:30-11:30'}")
        week: list[tuple[Interval, ...]] = [() for _ in DAYS]
        for key, value in spec.items():
            days = _days(str(key))
            intervals = _intervals(str(value or ""))
            for d in days:
                week[d] = intervals
        if not any(week):
            raise DirectoryError("hours: the office is never open")
        return cls(tuple(week), tz)

    # -- questions about time
    def local(self, at: dt.datetime) -> dt.datetime:
        return at.astimezone(self.tz)

    def _day_intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        out = []
        for start, end in self.week[day.weekday()]:
            out.append(
                (
                    dt.datetime.combine(day, start, tzinfo=self.tz),
                    dt.datetime.combine(day, end, tzinfo=self.tz),
                )
            )
        return out

    def intervals_from(self, at: dt.datetime) -> Iterable[tuple[dt.datetime, dt.datetime]]:
        """Opening intervals that end after `at`, in order (local datetimes)."""
        local = self.local(at)
        for offset in range(MAX_SCAN_DAYS):
            for start, end in self._day_intervals(local.date() + dt.timedelta(days=offset)):
                if end > local:
                    yield start, end

    def is_open(self, at: dt.datetime) -> bool:
        local = self.local(at)
        return any(s <= local < e for s, e in self._day_intervals(local.date()))

    def next_open(self, at: dt.datetime) -> dt.datetime | None:
        """`at` (local) if the office is open then, else when it next opens."""
        local = self.local(at)
        for start, _end in self.intervals_from(at):
            return max(start, local)
        return None

    def working_minutes(self, start: dt.datetime, end: dt.datetime) -> float:
        """Minutes of office time between two instants."""
        if end <= start:
            return 0.0
        total = 0.0
        end_local = self.local(end)
        for s, e in self.intervals_from(start):
            if s >= end_local:
                break
            lo = max(s, self.local(start))
            hi = min(e, end_local)
            total += max((hi - lo).total_seconds(), 0.0) / 60
        return total

    def slots(self, after: dt.datetime, n: int = 4) -> list[tuple[dt.datetime, dt.datetime]]:
        """The next `n` opening intervals that start after `after` (call-back slots)."""
        local = self.local(after)
        out = []
        for s, e in self.intervals_from(after):
            if s > local:
                out.append((s, e))
            if len(out) == n:
                break
        return out

    def interval_at(self, start: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The opening interval that starts exactly at `start`, if there is one."""
        local = self.local(start)
        for s, e in self._day_intervals(local.date()):
            if s == local:
                return s, e
        return None

    def table(self) -> list[dict[str, Any]]:
        """Days grouped by identical hours, for templates: [{days: [0..4], ranges: [...]}]."""
        groups: list[dict[str, Any]] = []
        for day, intervals in enumerate(self.week):
            if not intervals:
                continue
            ranges = [f"{s:%H:%M}–{e:%H:%M}" for s, e in intervals]
            last = groups[-1] if groups else None
            if last and last["ranges"] == ranges and last["days"][-1] == day - 1:
                last["days"].append(day)
            else:
                groups.append({"days": [day], "ranges": ranges})
        return groups


def _days(key: str) -> list[int]:
    key = key.strip().lower()
    if "-" in key:
        first, _, last = key.partition("-")
        if first not in DAYS or last not in DAYS:
            raise DirectoryError(f"hours: unknown days {key!r} (use mon..sun, e.g. mon-fri)")
        a, b = DAYS.index(first), DAYS.index(last)
        if b < a:
            raise DirectoryError(f"hours: days {key!r} run backwards")
        return list(range(a, b + 1))
    if key not in DAYS:
        raise DirectoryError(f"hours: unknown day {key!r} (use mon..sun, e.g. mon-fri)")
    return [DAYS.index(key)]


def _intervals(text: str) -> tuple[Interval, ...]:
    if text.strip().lower() in ("", "closed"):
        return ()
    out: list[Interval] = []
    for part in text.split(","):
        m = _RANGE_RE.match(part)
        if not m:
            raise DirectoryError(f"hours: {part.strip()!r} is not like 07:30-11:30")
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        try:
            start, end = dt.time(h1, m1), dt.time(h2, m2)
        except ValueError:
            raise DirectoryError(f"hours: {part.strip()!r} is not a time of day") from None
        if end <= start or (out and start < out[-1][1]):
            raise DirectoryError(f"hours: {text!r} must be increasing, non-overlapping ranges")
        out.append((start, end))
    return tuple(out)


@dataclass(frozen=True)
class Commune:
    code: int | None  # the 2025 unit code; None for the nameless one-commune setup
    office: str  # the office name citizens see ("" = a generic name)
    hours: OfficeHours
    address: str = ""
    phone: str = ""
    group: int | None = None  # the officers' Telegram group
    officers: frozenset[str] = frozenset()  # Telegram user ids, as text
    default: bool = False

    @property
    def reachable(self) -> bool:
        """Officers can be told on Telegram."""
        return self.group is not None and bool(self.officers)


@dataclass
class Directory:
    communes: list[Commune]
    channel: str = "telegram"
    _by_code: dict[int, Commune] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_code = {c.code: c for c in self.communes if c.code is not None}

    @property
    def default(self) -> Commune:
        return next((c for c in self.communes if c.default), self.communes[0])

    def commune(self, code: int | None) -> Commune:
        """The commune of a case (its code), the default one for None or an unknown code."""
        if code is not None and code in self._by_code:
            return self._by_code[code]
        return self.default

    def known(self, code: Any) -> Commune | None:
        try:
            return self._by_code.get(int(code))
        except (TypeError, ValueError):
            return None

    def by_group(self, chat_id: int) -> list[Commune]:
        return [c for c in self.communes if c.group == chat_id]

    def groups(self) -> frozenset[int]:
        return frozenset(c.group for c in self.communes if c.group is not None)

    def communes_of(self, officer_id: str) -> list[Commune]:
        return [c for c in self.communes if officer_id in c.officers]

    def is_officer(self, channel: str, officer_id: str) -> bool:
        return channel == self.channel and bool(self.communes_of(officer_id))

    def may_act(self, channel: str, officer_id: str, code: int | None) -> bool:
        """An officer of the commune that owns a case with this commune code."""
        return channel == self.channel and officer_id in self.commune(code).officers


def _ids(raw: Any, where: str) -> frozenset[str]:
    items = raw if isinstance(raw, list) else str(raw or "").split(",")
    out = set()
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit():
            raise DirectoryError(f"{where}: {text!r} is not a Telegram user id (digits only)")
        out.add(text)
    return frozenset(out)


def _group(raw: Any, where: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise DirectoryError(f"{where}: {raw!r} is not a Telegram group id") from None
    if value >= 0:
        raise DirectoryError(f"{where}: group ids are negative (like -1001234567890)")
    return value


def one_commune(chat_id: int, officer_ids: Iterable[str], timezone: str) -> Directory:
    """The directory for `OFFICER_CHAT_ID` + `OFFICER_IDS`: one nameless commune."""
    tz = ZoneInfo(timezone)
    commune = Commune(
        code=None,
        office="",
        hours=OfficeHours.parse(None, tz),
        group=_group(chat_id, "OFFICER_CHAT_ID"),
        officers=_ids(list(officer_ids), "OFFICER_IDS"),
        default=True,
    )
    return Directory([commune])


def load_directory(path: Path, timezone: str) -> Directory:
    """Read and check the directory file; DirectoryError names the problem."""
    from procedures import units

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DirectoryError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("communes"), list):
        raise DirectoryError(f"{path}: expected a mapping with a `communes:` list")
    tz = ZoneInfo(timezone)
    default_code = raw.get("default")
    communes: list[Commune] = []
    seen: set[int] = set()
    for n, item in enumerate(raw["communes"], start=1):
        where = f"{path.name}: commune {n}"
        if not isinstance(item, dict):
            raise DirectoryError(f"{where}: expected a mapping")
        unknown = set(item) - {"code", "office", "address", "phone", "hours", "group", "officers"}
        if unknown:
            raise DirectoryError(f"{where}: unknown keys {sorted(unknown)}")
        try:
            code = int(item.get("code"))
            unit = units.unit(code)
        except (TypeError, ValueError, KeyError):
            raise DirectoryError(
                f"{where}: code {item.get('code')!r} is not a 2025 commune code"
            ) from None
        if code in seen:
            raise DirectoryError(f"{where}: code {code} is listed twice")
        seen.add(code)
        try:
            hours = OfficeHours.parse(item.get("hours"), tz)
        except DirectoryError as exc:
            raise DirectoryError(f"{where}: {exc}") from None
        communes.append(
            Commune(
                code=code,
                office=str(item.get("office") or unit.name),
                hours=hours,
                address=str(item.get("address") or ""),
                phone=str(item.get("phone") or ""),
                group=_group(item.get("group"), where),
                officers=_ids(item.get("officers"), where),
                default=default_code is not None and str(default_code) == str(code),
            )
        )
    if not communes:
        raise DirectoryError(f"{path}: the `communes:` list is empty")
    if default_code is not None and not any(c.default for c in communes):
        raise DirectoryError(f"{path}: default {default_code!r} is not one of the communes")
    return Directory(communes)

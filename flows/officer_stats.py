"""The figures a commune reports, from the fact, draft and handoff tables, and a chart.

- started / finished / submitted online: ProcedureStarted, DraftCompleted (the declaration
  was produced) and DossierCodeStored (the citizen gave the portal's dossier code) facts in
  the period;
- handed off: cases opened in the period; call-backs done: cases whose call-back was
  marked done in the period;
- online ratio per week and month: of the drafts started in that week (month) that were
  eligible (did not end on an exit such as "you do not need this"), the share submitted;
- median time to claim, in working minutes of the commune's office hours;
- drop-off per step: drafts started in the period, cancelled or idle for a day, whose last
  question asked was never answered, counted per procedure and field.

A draft belongs to the commune the officer side routes it to (its residence commune, else
the default commune). Deleted drafts take their facts with them and are not counted.
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flows import engine as eng
from flows.communes import Commune

if TYPE_CHECKING:
    from flows.officer import OfficerDesk

KINDS = (
    "ProcedureStarted",
    "DraftCompleted",
    "DossierCodeStored",
    "QuestionAsked",
    "AnswerStored",
    "AnswerSkipped",
)
IDLE = dt.timedelta(days=1)
CASE_LOOKBACK = dt.timedelta(days=60)  # claims and call-backs of older cases are not seen
TOP_STEPS = 5


@dataclass
class Ratio:
    start: dt.date  # first day of the week (Monday) or month
    eligible: int = 0
    submitted: int = 0

    @property
    def percent(self) -> float | None:
        return 100.0 * self.submitted / self.eligible if self.eligible else None


@dataclass
class Figures:
    days: int
    since: dt.datetime  # local
    until: dt.datetime  # local
    started: int = 0
    finished: int = 0
    submitted: int = 0
    handed_off: int = 0
    callbacks_done: int = 0
    claimed: int = 0
    median_claim: float | None = None  # working minutes
    weeks: list[Ratio] = field(default_factory=list)
    months: list[Ratio] = field(default_factory=list)
    dropoff: list[dict[str, Any]] = field(default_factory=list)


def compute(
    desk: OfficerDesk,
    uow: Any,
    communes: list[Commune],
    days: int,
    now: dt.datetime,
    tz: ZoneInfo,
) -> Figures:
    start = now - dt.timedelta(days=days)
    fig = Figures(days=days, since=start.astimezone(tz), until=now.astimezone(tz))
    facts = uow.facts(kinds=KINDS, since=start)
    drafts = {d.id: d for d in uow.drafts_by_ids({f.draft_id for f in facts if f.draft_id})}
    ours = {i for i, d in drafts.items() if desk.commune_for(d) in communes}

    started_at: dict[int, dt.datetime] = {}
    asked: dict[int, tuple[str, dt.datetime]] = {}
    answered: dict[int, dict[str, dt.datetime]] = defaultdict(dict)
    for f in facts:
        if f.draft_id not in ours:
            continue
        if f.kind == "ProcedureStarted":
            fig.started += 1
            started_at[f.draft_id] = f.at
        elif f.kind == "DraftCompleted":
            fig.finished += 1
        elif f.kind == "DossierCodeStored":
            fig.submitted += 1
        elif f.kind == "QuestionAsked":
            asked[f.draft_id] = (str(f.data.get("field")), f.at)
        else:
            answered[f.draft_id][str(f.data.get("field"))] = f.at

    # online ratio: cohorts by the week / month the draft was started
    weeks: dict[dt.date, Ratio] = {}
    months: dict[dt.date, Ratio] = {}
    for draft_id, at in started_at.items():
        day = at.astimezone(tz).date()
        week = day - dt.timedelta(days=day.weekday())
        month = day.replace(day=1)
        status = drafts[draft_id].status
        for bucket, key in ((weeks, week), (months, month)):
            ratio = bucket.setdefault(key, Ratio(key))
            if status != eng.EXITED:
                ratio.eligible += 1
            if status == eng.SUBMITTED:
                ratio.submitted += 1
    first = fig.since.date()
    cursor = first - dt.timedelta(days=first.weekday())
    while cursor <= fig.until.date():
        weeks.setdefault(cursor, Ratio(cursor))
        cursor += dt.timedelta(days=7)
    cursor = first.replace(day=1)
    while cursor <= fig.until.date():
        months.setdefault(cursor, Ratio(cursor))
        cursor = (cursor + dt.timedelta(days=32)).replace(day=1)
    fig.weeks = [weeks[k] for k in sorted(weeks)]
    fig.months = [months[k] for k in sorted(months)]

    # drop-off: the last question asked, never answered, in drafts that stopped
    stops: dict[str, Counter[str]] = defaultdict(Counter)
    for draft_id in started_at:
        draft = drafts[draft_id]
        stopped = draft.status == eng.CANCELLED or (
            draft.status == eng.ACTIVE and now - draft.updated_at >= IDLE
        )
        if not stopped or draft_id not in asked:
            continue
        field_id, at = asked[draft_id]
        done = answered[draft_id].get(field_id)
        if done is None or done < at:
            stops[draft.procedure_id][field_id] += 1
    for proc_id, counter in sorted(stops.items()):
        proc = desk.catalog.get(proc_id)
        steps = []
        for field_id, n in counter.most_common(TOP_STEPS):
            spec = proc.field(field_id) if proc else None
            steps.append({"label": spec.label if spec else field_id, "count": n})
        fig.dropoff.append({"proc": proc.short_name if proc else proc_id, "steps": steps})

    # cases
    waits = []
    for case in uow.handoffs(since=start - CASE_LOOKBACK):
        commune = desk.dir.commune(case.commune_code)
        if commune not in communes:
            continue
        if case.created_at >= start:
            fig.handed_off += 1
        if case.callback_done_at is not None and start <= case.callback_done_at <= now:
            fig.callbacks_done += 1
        if case.claimed_at is not None and start <= case.claimed_at <= now:
            waits.append(commune.hours.working_minutes(case.created_at, case.claimed_at))
    fig.claimed = len(waits)
    fig.median_claim = statistics.median(waits) if waits else None
    return fig


def chart_png(fig: Figures, desk: OfficerDesk) -> bytes:
    """Drafts started and submitted per week, with the online ratio: a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state across threads

    labels = [f"{w.start:%d/%m}" for w in fig.weeks]
    xs = list(range(len(labels)))
    started = [w.eligible for w in fig.weeks]
    submitted = [w.submitted for w in fig.weeks]
    ratio = [w.percent if w.percent is not None else float("nan") for w in fig.weeks]
    figure = Figure(figsize=(7, 4), dpi=100)
    ax = figure.subplots()
    width = 0.38
    ax.bar([x - width / 2 for x in xs], started, width, label=desk.t("chart_eligible"))
    ax.bar([x + width / 2 for x in xs], submitted, width, label=desk.t("chart_submitted"))
    ax.set_xticks(xs, labels)
    ax.set_xlabel(desk.t("chart_week"))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax2 = ax.twinx()
    ax2.plot(xs, ratio, color="black", marker="o", label=desk.t("chart_ratio"))
    ax2.set_ylim(0, 100)
    ax2.set_ylabel("%")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title(desk.t("chart_title", f=fig))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

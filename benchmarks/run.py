"""Run every benchmark, print one table, write the results as JSON.

    python -m benchmarks.run                 # the full set (about 12 minutes on 2 cores)
    python -m benchmarks.run --quick         # tiny numbers, well under a minute
    python -m benchmarks.run --only startup --only micro
    python -m benchmarks.run --profile       # also profile one load with py-spy

Sections: conversation (no delay), delay (50 ms per Bot API call), growth (1,000 vs
1,000,000 stored drafts, with the hot queries' plans), memory (from the growth run with
1,000,000 drafts), startup, reminders (dispatch per CPU second), micro. Every load runs the real
`motcua run` (or the echo bot) as a subprocess against tests.fakebot over loopback; see
benchmarks/load.py. PostgreSQL: MOTCUA_BENCH_PG_URL (default postgres@127.0.0.1:5432/test);
each run uses a private schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import common, load, micro, seed
from benchmarks import reminders as reminder_bench
from benchmarks.profile import format_summary, summarize
from benchmarks.scripts import Plan, plan_scripts
from procedures.loader import load_catalog

SECTIONS = ("conversation", "delay", "growth", "memory", "startup", "reminders", "micro")
DEFAULT_JSON = common.ROOT / "benchmarks" / "results" / "latest.json"


@dataclass(frozen=True)
class Level:
    name: str
    dbs: tuple[str, ...]
    citizens: int  # saturated, no delay: they complete their procedures (PDF included)
    wide_citizens: int  # saturated, no delay, many at once for `wide_s` (a backlog)
    wide_dbs: tuple[str, ...]
    wide_s: float
    delay_citizens: int  # saturated and paced, 50 ms
    paced_citizens: int
    think: float
    saturated_s: float
    paced_s: float
    delay_s: float
    delays: tuple[float, ...]
    echo_bots: dict[float, tuple[str, ...]]  # floors run at each delay
    paced_delays: tuple[float, ...]
    growth: tuple[tuple[int, int], tuple[int, int]]  # (citizens, drafts) small, large
    growth_dbs: tuple[str, ...]
    growth_citizens: int  # conversations active during the growth runs
    growth_s: float
    growth_rounds: int  # loads of each size, alternating (see Bench.growth)
    startup_runs: int
    reminders: int  # reminders falling due at once (one citizen each)
    micro_runs: int
    pdf_runs: int
    settle: float
    drain: float
    samples: int | None = None  # sample answer sets played per procedure (None: all)


FULL = Level(
    name="full",
    dbs=("sqlite", "postgresql"),
    citizens=100,
    wide_citizens=500,
    wide_dbs=("sqlite",),
    wide_s=30,
    delay_citizens=200,
    paced_citizens=200,
    think=2.0,
    saturated_s=180,
    paced_s=30,
    delay_s=30,
    delays=(0.0, 0.05),
    echo_bots={0.0: ("echo", "echo_concurrent"), 0.05: ("echo", "echo_concurrent")},
    paced_delays=(0.0, 0.05),
    growth=((100, 1_000), (100_000, 1_000_000)),
    growth_dbs=("sqlite", "postgresql"),
    growth_citizens=1_000,
    growth_s=20,
    growth_rounds=2,
    startup_runs=3,
    reminders=1_000,
    micro_runs=2_000,
    pdf_runs=10,
    settle=1.0,
    drain=10.0,
)
QUICK = Level(
    name="quick",
    dbs=("sqlite",),
    citizens=20,
    wide_citizens=0,
    wide_dbs=(),
    wide_s=0,
    delay_citizens=10,
    paced_citizens=10,
    think=0.3,
    saturated_s=3,
    paced_s=2,
    delay_s=2,
    delays=(0.0, 0.05),
    echo_bots={0.0: ("echo",), 0.05: ("echo_concurrent",)},
    paced_delays=(0.0,),
    growth=((10, 100), (100, 1_000)),
    growth_dbs=("sqlite",),
    growth_citizens=20,
    growth_s=2,
    growth_rounds=1,
    startup_runs=1,
    reminders=100,
    micro_runs=100,
    pdf_runs=1,
    settle=0.2,
    drain=5.0,
)
# The test suite's smoke run: SQLite only, no delay, a handful of citizens.
SMOKE = replace(
    QUICK,
    name="smoke",
    dbs=("sqlite",),
    citizens=4,
    paced_citizens=3,
    delay_citizens=3,
    saturated_s=1.5,
    paced_s=1,
    delays=(0.0,),
    echo_bots={0.0: ("echo",)},
    growth=((5, 50), (10, 200)),
    growth_citizens=4,
    growth_s=1,
    growth_rounds=2,  # the alternating rounds run in the test suite too
    reminders=20,
    micro_runs=20,
    settle=0.0,
    drain=3.0,
    samples=1,
)
LEVELS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, level: Level, folder: Path, plan: Plan, catalog, profile: bool) -> None:
        self.level = level
        self.folder = folder
        self.plan = plan
        self.catalog = catalog
        self.profile = profile
        self.runs: dict[str, dict] = {}
        self.extra: dict[str, Any] = {}

    async def load(self, spec: load.LoadSpec, database_url: str | None = None, **kw) -> dict:
        spec = replace(spec, settle=self.level.settle, drain=self.level.drain)
        _log(f"load {spec.name}: {spec.citizens} citizens, {spec.shape}, {spec.bot}")
        result = await load.run_load(spec, self.plan, self.folder, database_url, **kw)
        self.runs[spec.name] = result.as_dict()
        _log(
            f"  {result.updates} updates, {result.updates_per_s}/s, p99 {result.p99_ms} ms, "
            f"CPU {result.cpu_s_per_1k} s/1k, RSS {result.peak_rss_mb} MB "
            f"({result.tree_peak_rss_mb} MB with {result.children} children), "
            f"wrong {result.wrong}, out of order {result.out_of_order}"
        )
        return self.runs[spec.name]

    async def motcua(self, spec: load.LoadSpec, db: str) -> dict:
        with common.database(db, self.folder) as url:
            return await self.load(replace(spec, db=db), url)

    # ------------------------------------------------------------------ sections
    async def conversation(self, delay: float) -> None:
        lv = self.level
        tag = f"{round(delay * 1000)}ms"
        citizens = lv.citizens if delay == 0 else lv.delay_citizens
        duration = lv.saturated_s if delay == 0 else lv.delay_s
        base = load.LoadSpec(name="", citizens=citizens, delay=delay, duration=duration)
        for bot in lv.echo_bots.get(delay, ()):
            await self.load(replace(base, name=f"{bot}-saturated-{tag}", bot=bot, db=None))
        for db in lv.dbs:
            await self.motcua(replace(base, name=f"motcua-{db}-saturated-{tag}"), db)
        if delay == 0 and lv.wide_citizens:
            wide = replace(base, citizens=lv.wide_citizens, duration=lv.wide_s)
            for db in lv.wide_dbs:
                await self.motcua(replace(wide, name=f"motcua-{db}-wide-{tag}"), db)
        paced = replace(
            base,
            citizens=lv.paced_citizens,
            shape="paced",
            think=lv.think,
            duration=lv.paced_s,
        )
        if delay not in lv.paced_delays:
            return
        for db in lv.dbs:
            await self.motcua(replace(paced, name=f"motcua-{db}-paced-{tag}"), db)
            if delay == 0:  # the same load without the pacer: motcua's own latency
                name = f"motcua-{db}-paced-nopacer-{tag}"
                await self.motcua(replace(paced, name=name, pacer=False), db)

    async def growth(self, sizes: tuple[tuple[int, int], ...]) -> None:
        """Both databases of a kind are seeded first, then their loads alternate
        (small, large, small, large...: `growth_rounds`), so that the machine's speed,
        which drifts over minutes here, weighs on both alike. Each round's citizens are
        new chat ids (a citizen of the round before would be asked to resume), its update
        ids new too (the bot's inbox remembers those it has seen)."""
        lv = self.level
        for db in lv.growth_dbs:
            with contextlib.ExitStack() as stack:
                urls = {}
                for citizens, drafts in sizes:
                    name = f"growth-{db}-{drafts}"
                    url = stack.enter_context(common.database(db, self.folder, f"{name}.db"))
                    _log(f"seed {db}: {citizens} citizens, {drafts} drafts")
                    timing = seed.seed(url, self.plan, citizens, drafts)
                    _log(
                        f"  seeded in {timing['insert_s']} s, written out in {timing['settle_s']} s"
                    )
                    plans = seed.hot_query_plans(url, self.plan, self.catalog)
                    self.extra.setdefault("seed", {})[name] = timing
                    self.extra.setdefault("query_plans", {})[name] = plans
                    urls[name] = url
                for round_ in range(1, lv.growth_rounds + 1):
                    for name, url in urls.items():
                        spec = load.LoadSpec(
                            name=growth_run_name(name, round_),
                            db=db,
                            citizens=lv.growth_citizens,
                            duration=lv.growth_s,
                            id_base=7_000_000 + 1_000_000 * round_,
                            skip_update_ids=10_000_000 * (round_ - 1),
                        )
                        await self.load(spec, url)

    async def startup(self) -> None:
        with common.sqlite_url(self.folder, "startup.db") as url:
            _log("start-up")
            self.extra["startup"] = await load.run_startup(
                self.folder, url, self.level.startup_runs
            )

    async def reminders(self) -> None:
        with common.sqlite_url(self.folder, "reminders.db") as url:
            _log(f"reminders: {self.level.reminders} due at once")
            self.extra["reminders"] = await reminder_bench.run_reminders(
                self.folder, self.plan, url, self.level.reminders
            )

    def micro(self) -> None:
        _log("micro-benchmarks")
        self.extra["micro"] = micro.run_micro(
            self.catalog, self.plan, self.level.micro_runs, self.level.pdf_runs
        )

    async def profile_run(self, out: Path) -> None:
        if shutil.which("py-spy") is None:
            _log("py-spy not found: pip install py-spy (profile skipped)")
            return
        lv = self.level
        spec = load.LoadSpec(name="profile-sqlite", citizens=lv.citizens, duration=lv.saturated_s)
        with common.database("sqlite", self.folder) as url:
            await self.load(spec, url, profile=out)
        self.extra["profile"] = summarize(out)
        _log("profile:\n" + format_summary(self.extra["profile"]))


# ----------------------------------------------------------------------------- table


def _row(section, metric, value, unit="", target="", ratio=None, ok=None, note=""):
    return {
        "section": section,
        "metric": metric,
        "value": value,
        "unit": unit,
        "target": target,
        "ratio": None if ratio is None else round(ratio, 2),
        "pass": ok,
        "note": note,
    }


def growth_run_name(name: str, round_: int) -> str:
    """The first round keeps the plain name (`growth-sqlite-1000`), later ones add `-r2`..."""
    return name if round_ == 1 else f"{name}-r{round_}"


def _growth_rounds(runs: dict, name: str) -> list[dict]:
    found, round_ = [], 1
    while (run := runs.get(growth_run_name(name, round_))) is not None:
        found.append(run)
        round_ += 1
    return found


def _tree_note(run: dict) -> str:
    """What the bot's children (the PDF worker) add to its peak RSS."""
    if not run.get("children"):
        return "no child process"
    return f"{run['tree_peak_rss_mb']} MB with {run['children']} child process(es)"


def _lat(run: dict) -> str:
    return f"{run['p50_ms']:.0f} / {run['p95_ms']:.0f} / {run['p99_ms']:.0f}"


def build_rows(level: Level, runs: dict, extra: dict) -> list[dict]:
    rows: list[dict] = []
    for delay in (0.0, 0.05):
        tag = f"{round(delay * 1000)}ms"
        section = "conversation" if delay == 0 else "conversation, 50 ms Bot API"
        skipped = delay not in level.delays
        echo = runs.get(f"echo-saturated-{tag}")
        echo_c = runs.get(f"echo_concurrent-saturated-{tag}")
        for name, run in (("echo bot", echo), ("echo bot, concurrent_updates", echo_c)):
            if run is None:
                rows.append(_row(section, f"{name}: saturated updates/s", None, note="skipped"))
                continue
            rows.append(_row(section, f"{name}: saturated updates/s", run["updates_per_s"], "/s"))
            rows.append(_row(section, f"{name}: CPU per 1k updates", run["cpu_s_per_1k"], "s"))
        for db in ("sqlite", "postgresql"):
            sat = runs.get(f"motcua-{db}-saturated-{tag}")
            paced = runs.get(f"motcua-{db}-paced-{tag}")
            bare = runs.get(f"motcua-{db}-paced-nopacer-{tag}")
            wide = runs.get(f"motcua-{db}-wide-{tag}")
            if sat is None or skipped:
                rows.append(_row(section, f"{db}: saturated updates/s", None, note="skipped"))
            else:
                if delay == 0:
                    floor, target, need = echo, ">= 0.5 x echo", 0.5
                else:
                    floor, target, need = echo_c, ">= echo concurrent", 1.0
                ratio = sat["updates_per_s"] / floor["updates_per_s"] if floor else None
                rows.append(
                    _row(
                        section,
                        f"{db}: saturated updates/s",
                        sat["updates_per_s"],
                        "/s",
                        target,
                        ratio,
                        None if ratio is None else ratio >= need,
                        f"{sat['citizens']} citizens, {sat['finished_citizens']} finished, "
                        "pacing off",
                    )
                )
                rows.append(_row(section, f"{db}: saturated latency p50/p95/p99", _lat(sat), "ms"))
                cpu_ratio = sat["cpu_s_per_1k"] / echo["cpu_s_per_1k"] if echo else None
                notes = []
                if sat.get("children_cpu_s_per_1k"):
                    notes.append(f"of which PDF worker {sat['children_cpu_s_per_1k']} s")
                if sat.get("db_cpu_s_per_1k") is not None:
                    notes.append(f"+ PostgreSQL server {sat['db_cpu_s_per_1k']} s")
                note = "; ".join(notes)
                rows.append(
                    _row(
                        section,
                        f"{db}: CPU per 1k updates",
                        sat["cpu_s_per_1k"],
                        "s",
                        "",
                        cpu_ratio,
                        None,
                        note,
                    )
                )
                rows.append(
                    _row(
                        section,
                        f"{db}: peak RSS",
                        sat["peak_rss_mb"],
                        "MB",
                        note=_tree_note(sat),
                    )
                )
            if wide is not None and not skipped:
                rows.append(
                    _row(
                        section,
                        f"{db}: {wide['citizens']} at once: updates/s, p99, peak RSS",
                        f"{wide['updates_per_s']} /s, {wide['p99_ms']:.0f} ms, "
                        f"{wide['peak_rss_mb']} MB",
                        note=f"{wide['elapsed_s']:.0f} s window",
                    )
                )
            if paced is None or skipped:
                rows.append(_row(section, f"{db}: paced latency p99", None, note="skipped"))
            else:
                rows.append(
                    _row(
                        section,
                        f"{db}: paced latency p50/p95/p99, pacer on",
                        _lat(paced),
                        "ms",
                        note=f"{paced['citizens']} citizens, {paced['updates_per_s']}/s; "
                        "Telegram's limits (25 messages/s in all, 1/s per chat) hold replies",
                    )
                )
            if bare is not None and not skipped:
                rows.append(
                    _row(
                        section,
                        f"{db}: paced latency p50/p95/p99, pacer off",
                        _lat(bare),
                        "ms",
                        "< 100",
                        None,
                        bare["p99_ms"] < 100,
                        f"{bare['citizens']} citizens, {bare['updates_per_s']}/s, "
                        f"CPU {bare['cpu_s_per_1k']} s per 1k",
                    )
                )
            bad = [r for r in (sat, paced, bare, wide) if r is not None and not skipped]
            if bad:
                wrong = sum(r["wrong"] for r in bad)
                order = sum(r["out_of_order"] for r in bad)
                lost = sum(r["timeouts"] + r["log_errors"] for r in bad)
                rows.append(
                    _row(
                        section,
                        f"{db}: replies wrong / out of order / lost",
                        f"{wrong} / {order} / {lost}",
                        "",
                        "0 / 0 / 0",
                        None,
                        wrong == 0 and order == 0 and lost == 0,
                    )
                )
    section = "growth"
    for db in ("sqlite", "postgresql"):
        (c_small, d_small), (c_large, d_large) = level.growth
        smalls = _growth_rounds(runs, f"growth-{db}-{d_small}")
        larges = _growth_rounds(runs, f"growth-{db}-{d_large}")
        if not smalls or not larges:
            rows.append(
                _row(section, f"{db}: throughput at {d_large:,} drafts", None, note="skipped")
            )
            continue
        # the ratio of the sums over the alternating rounds
        small_sum = sum(r["updates_per_s"] for r in smalls)
        ratio = sum(r["updates_per_s"] for r in larges) / small_sum if small_sum else 0
        value = ", ".join(
            f"{s['updates_per_s']} -> {g['updates_per_s']}"
            for s, g in zip(smalls, larges, strict=False)
        )
        rounds = f"{len(smalls)} alternating rounds; " if len(smalls) > 1 else ""
        rows.append(
            _row(
                section,
                f"{db}: updates/s at {d_small:,} -> {d_large:,} drafts",
                value,
                "/s",
                ">= 0.9",
                ratio,
                ratio >= 0.9,
                f"{rounds}{c_large:,} citizens stored, {larges[0]['citizens']} talking",
            )
        )
        plans = extra.get("query_plans", {}).get(f"growth-{db}-{d_large}", [])
        scans = [p["query"] for p in plans if p["full_scan"]]
        rows.append(
            _row(
                section,
                f"{db}: hot queries with a full scan",
                len(scans),
                f"of {len(plans)}",
                "0",
                None,
                not scans,
                ", ".join(scans),
            )
        )
    section = "memory"
    (c_large, d_large) = level.growth[1]
    # the round with the highest peak
    mem = max(
        _growth_rounds(runs, f"growth-sqlite-{d_large}"),
        key=lambda r: max(r["peak_rss_mb"], r.get("tree_peak_rss_mb", 0.0)),
        default=None,
    )
    if mem is None:
        rows.append(_row(section, "peak RSS", None, note="skipped"))
    else:
        # the bot's process and its children (a PDF worker, if one was started)
        peak = max(mem["peak_rss_mb"], mem.get("tree_peak_rss_mb", 0.0))
        rows.append(
            _row(
                section,
                f"peak RSS, {c_large:,} citizens stored, {mem['citizens']:,} talking",
                peak,
                "MB",
                "< 150",
                None,
                peak < 150,
                "; ".join(filter(None, ["SQLite", _tree_note(mem)])),
            )
        )
    section = "start-up"
    startup = extra.get("startup")
    if startup is None:
        rows.append(_row(section, "process start -> first getUpdates", None, note="skipped"))
    else:
        worst = max(startup["startup_s"])
        rows.append(
            _row(
                section,
                "process start -> first getUpdates",
                round(worst, 2),
                "s",
                "< 2",
                None,
                worst < 2,
                f"database at head, worst of {len(startup['startup_s'])}",
            )
        )
        if "new_database_s" in startup:
            rows.append(
                _row(
                    section,
                    "process start -> first getUpdates, new database",
                    round(startup["new_database_s"], 2),
                    "s",
                    note="first start: the migrations run",
                )
            )
            cpu = max(startup["main_thread_cpu_s"])
            rows.append(
                _row(section, "main thread CPU until the first getUpdates", round(cpu, 2), "s")
            )
        first = max(startup["first_reply_ms"])
        rows.append(_row(section, "first /start -> its reply", round(first), "ms"))
    section = "reminders and broadcast"
    rem = extra.get("reminders")
    if rem is None:
        rows.append(_row(section, "reminders dispatched per CPU second", None, note="skipped"))
    else:
        rows.append(
            _row(
                section,
                "reminders dispatched per CPU second",
                rem["per_cpu_s"],
                "/s",
                ">= 2000",
                rem["per_cpu_s"] / 2000,
                rem["per_cpu_s"] >= 2000,
                f"{rem['sent']} of {rem['reminders']} sent, claimed, rendered and sent by "
                f"`motcua run` (SQLite); {rem['wall_per_s']}/s wall clock, pacing off",
            )
        )
        rows.append(
            _row(
                section,
                "reminders wrong / lost",
                f"{rem['reminders'] - rem['right']} / {rem['reminders'] - rem['sent']}",
                "",
                "0 / 0",
                None,
                rem["right"] == rem["sent"] == rem["reminders"] and not rem["log_errors"],
            )
        )
    section = "engine and language"
    m = extra.get("micro")
    if m is None:
        rows.append(_row(section, "engine step", None, note="skipped"))
    else:
        for name, r in m.items():
            if name.startswith("engine step"):
                target, limit = "< 100", 100
            elif name == "free-text interpretation":
                target, limit = "< 500", 500
            else:
                target, limit = "", None
            rows.append(
                _row(
                    section,
                    f"{name}: median / p99",
                    f"{r['median_us']:.0f} / {r['p99_us']:.0f}",
                    "us",
                    target,
                    None,
                    None if limit is None else r["median_us"] < limit,
                    r.get("what", ""),
                )
            )
    return rows


def format_table(rows: list[dict]) -> str:
    head = ("section", "metric", "value", "target", "ratio", "pass")
    body = []
    for r in rows:
        value = "—" if r["value"] is None else f"{r['value']} {r['unit']}".strip()
        if r["note"]:
            value = f"{value} ({r['note']})" if r["value"] is not None else r["note"]
        ok = {True: "yes", False: "NO", None: ""}[r["pass"]]
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        body.append((r["section"], r["metric"], value, r["target"], ratio, ok))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in line) + " |" for line in body]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


async def run(level: Level, only: set[str], profile: bool) -> dict:
    # SIGTERM cancels the run, so every bot process it started is stopped on the way out
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    catalog = load_catalog()
    _log("planning the citizens' scripts")
    plan = plan_scripts(catalog, per_procedure=level.samples)
    # the administrative-unit indexes, built from vietnam-provinces once per library
    # version and then loaded from the cache (procedures/units.py): built here, so that no
    # bot below pays the first start of a machine in the middle of its load
    _log("the administrative-unit index cache")
    subprocess.run(
        [sys.executable, "-c", "from procedures import units; units.warm_up()"],
        cwd=common.ROOT,
        check=True,
    )
    started = time.monotonic()
    with common.workdir() as folder:
        bench = Bench(level, folder, plan, catalog, profile)
        if "conversation" in only:
            await bench.conversation(0.0)
        if "delay" in only and 0.05 in level.delays:
            await bench.conversation(0.05)
        if "growth" in only:
            await bench.growth(level.growth)
        elif "memory" in only:
            await bench.growth(level.growth[1:])
        if "startup" in only:
            await bench.startup()
        if "reminders" in only:
            await bench.reminders()
        if "micro" in only:
            bench.micro()
        if profile:
            await bench.profile_run(folder / "profile.txt")
    rows = build_rows(level, bench.runs, bench.extra)
    return {
        "machine": common.machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "level": level.name,
        "sections": sorted(only),
        "seconds": round(time.monotonic() - started, 1),
        "scripts": {
            "count": len(plan.scripts),
            "updates_per_citizen": [s.updates for s in plan.scripts],
        },
        "rows": rows,
        "runs": bench.runs,
        **bench.extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny numbers, under a minute")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run this section")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--profile", action="store_true", help="profile a load with py-spy")
    args = parser.parse_args(argv)
    level = SMOKE if args.smoke else QUICK if args.quick else FULL
    only = set(args.only or SECTIONS)
    results = asyncio.run(run(level, only, args.profile))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\n{results['machine']}; {level.name} run, {results['seconds']} s\n")
    print(format_table(results["rows"]))
    if "profile" in results:
        print("\n" + format_summary(results["profile"]))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

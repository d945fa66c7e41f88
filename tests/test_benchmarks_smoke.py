"""The benchmarks still run: the smallest configuration of `python -m benchmarks.run`
(a handful of citizens, SQLite, no added delay) end to end, real bot processes included.

This checks that every benchmark ran and reported every metric, and that the simulated
citizens got every reply in order from the right step. It does not check the targets:
timings on a shared CI machine say little.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN_METRICS = (
    "updates",
    "elapsed_s",
    "updates_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_s_per_1k",
    "peak_rss_mb",
    "wrong",
    "out_of_order",
    "timeouts",
)


def test_smoke_run_reports_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))

    # every load ran against a live bot and every reply came back, in order, right
    expected_runs = {
        "echo-saturated-0ms",
        "motcua-sqlite-saturated-0ms",
        "motcua-sqlite-paced-0ms",
        "growth-sqlite-50",
        "growth-sqlite-200",
        "growth-sqlite-50-r2",  # the second round of the alternating growth loads
        "growth-sqlite-200-r2",
    }
    assert expected_runs <= set(results["runs"]), sorted(results["runs"])
    for name in expected_runs:
        run = results["runs"][name]
        for metric in RUN_METRICS:
            assert isinstance(run[metric], int | float), (name, metric, run[metric])
        assert run["updates"] > 0, name
        assert run["updates_per_s"] > 0 and run["p99_ms"] > 0, name
        assert run["peak_rss_mb"] > 0 and run["cpu_s_per_1k"] > 0, name
        assert (run["wrong"], run["out_of_order"], run["timeouts"]) == (0, 0, 0), run
        assert run["log_errors"] == 0, name

    # the citizens' scripts mix buttons, typed answers, an error, a back and an edit
    assert results["scripts"]["count"] >= 2
    assert min(results["scripts"]["updates_per_citizen"]) > 20

    # every section has its rows, with values where the smoke run measured them
    rows = {(row["section"], row["metric"]): row for row in results["rows"]}
    sections = {section for section, _ in rows}
    assert {
        "conversation",
        "conversation, 50 ms Bot API",
        "growth",
        "memory",
        "start-up",
        "reminders and broadcast",
        "engine and language",
    } <= sections
    measured = {
        "conversation": [
            "echo bot: saturated updates/s",
            "sqlite: saturated updates/s",
            "sqlite: saturated latency p50/p95/p99",
            "sqlite: CPU per 1k updates",
            "sqlite: peak RSS",
            "sqlite: paced latency p50/p95/p99, pacer on",
            "sqlite: paced latency p50/p95/p99, pacer off",
            "sqlite: replies wrong / out of order / lost",
        ],
        "growth": ["sqlite: updates/s at 50 -> 200 drafts", "sqlite: hot queries with a full scan"],
        "start-up": [
            "process start -> first getUpdates",
            "process start -> first getUpdates, new database",
            "main thread CPU until the first getUpdates",
            "first /start -> its reply",
        ],
        "reminders and broadcast": ["reminders dispatched per CPU second"],
        "engine and language": [
            "engine step, typed date, cold: median / p99",
            "engine step, button press, cold: median / p99",
            "free-text interpretation: median / p99",
            "declaration PDF: median / p99",
        ],
    }
    for section, metrics in measured.items():
        for metric in metrics:
            assert (section, metric) in rows, (section, metric, sorted(rows))
            assert rows[section, metric]["value"] is not None, metric
    assert any(s == "memory" and rows[s, m]["value"] is not None for s, m in rows)
    assert rows["conversation", "sqlite: saturated updates/s"]["ratio"] is not None
    growth = rows["growth", "sqlite: updates/s at 50 -> 200 drafts"]
    assert growth["value"].count("->") == 2 and "2 alternating rounds" in growth["note"]
    # every reminder that fell due was claimed and sent once, to its citizen, with buttons
    assert rows["reminders and broadcast", "reminders wrong / lost"]["pass"] is True
    assert results["reminders"]["rows"] == {"sent": results["reminders"]["reminders"]}

    # the hot queries' plans were read from the seeded database
    plans = results["query_plans"]["growth-sqlite-200"]
    names = {p["query"] for p in plans}
    assert {"citizen by (channel, external_id)", "draft by id", "update draft"} <= names
    assert all(p["plan"] or p["query"].startswith("insert") for p in plans)

    # the table was printed
    assert "| sqlite: saturated updates/s |" in proc.stdout.replace("| conversation ", "")


def test_service_benchmark_runs_on_both_databases() -> None:
    """`python -m benchmarks.service` (in-process, the bot's wiring): one sample of each
    procedure, once, on SQLite and PostgreSQL; every update counted with its statements."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.service", "--rounds", "1", "--samples", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    lines = [line for line in out.splitlines() if " updates, CPU " in line]
    assert [line.split(":")[0] for line in lines] == ["sqlite", "postgresql"]
    for line in lines:
        updates = int(line.split(": ")[1].split(" updates")[0])
        statements = float(line.split("), ")[1].split(" statements")[0])
        assert updates > 20 and 3 < statements < 20

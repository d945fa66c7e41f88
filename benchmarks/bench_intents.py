"""Time the intent classifier over the labelled messages (run by hand, not a test).

    python benchmarks/bench_intents.py [--rounds 20]

Prints the time to build the model once, then the mean and 99th percentile of one
`IntentModel.classify` call (microseconds, one core), and the same for `render_reply`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.intents import IntentModel, render_reply  # noqa: E402
from procedures.loader import load_catalog  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="passes over the messages")
    args = parser.parse_args()

    raw = yaml.safe_load((ROOT / "tests" / "data" / "messages.yaml").read_text("utf-8"))
    procs = raw["procedures"]
    messages = [(m["text"], procs.get(m.get("cur"))) for m in raw["messages"]]

    catalog = load_catalog()
    t0 = time.perf_counter()
    model = IntentModel.from_catalog(catalog)
    build_ms = (time.perf_counter() - t0) * 1000

    for text, cur in messages:  # warm up caches (abbreviations, conditions)
        model.classify(text, cur)

    samples: list[float] = []
    for _ in range(args.rounds):
        for text, cur in messages:
            t = time.perf_counter_ns()
            model.classify(text, cur)
            samples.append((time.perf_counter_ns() - t) / 1000)

    today = dt.date(2026, 11, 27)
    intents = [(model.classify(text, cur), cur) for text, cur in messages]
    renders: list[float] = []
    for intent, cur in intents:
        t = time.perf_counter_ns()
        render_reply(catalog, intent, {} if cur else None, today)
        renders.append((time.perf_counter_ns() - t) / 1000)

    print(f"messages: {len(messages)}, rounds: {args.rounds}, calls: {len(samples)}")
    print(f"build model: {build_ms:.1f} ms (once, at start-up)")
    print(
        f"classify: mean {statistics.fmean(samples):.1f} us, "
        f"p50 {percentile(samples, 50):.1f} us, p99 {percentile(samples, 99):.1f} us, "
        f"max {max(samples):.1f} us"
    )
    print(
        f"render_reply: mean {statistics.fmean(renders):.1f} us, "
        f"p99 {percentile(renders, 99):.1f} us"
    )


if __name__ == "__main__":
    main()

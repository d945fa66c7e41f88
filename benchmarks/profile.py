"""Read a py-spy "raw" profile (collapsed stacks) of the bot: where its CPU goes.

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;... count`,
root first, each frame `function (file:line)`. Only samples of threads that were running
are recorded (py-spy leaves idle threads out by default).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Innermost frame wins: the first pattern (in this order) found walking up from the leaf.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("PDF (fpdf2, fontTools)", r"(^|/)(fpdf|fontTools)/"),
    ("Jinja2 templates", r"/jinja2/|\.j2$|<template>"),
    ("SQLAlchemy", r"(^|/)(sqlalchemy|sqlmodel)/"),
    ("database driver (sqlite3, psycopg)", r"(^|/)(sqlite3|psycopg|psycopg_binary)/"),
    (
        "Telegram + HTTP (PTB, aiohttp, httpx, httpcore, h11)",
        r"(^|/)(telegram|aiohttp|yarl|multidict|httpx|httpcore|h11|anyio)/",
    ),
    ("engine + service (flows/)", r"(^|/)flows/"),
    ("procedures (validators, conditions, text)", r"(^|/)procedures/"),
    ("transport (bot/)", r"(^|/)bot/"),
    ("storage/", r"(^|/)storage/"),
    ("JSON", r"(^|/)json/"),
    ("asyncio event loop", r"(^|/)asyncio/|selectors\.py"),
    ("threads, queues", r"threading\.py|concurrent/futures|queue\.py"),
)
_COMPILED = [(name, re.compile(pattern)) for name, pattern in CATEGORIES]


# Functions worth following across profiles (inclusive share).
WATCH = (
    ("failed `import sniffio` in httpcore", "current_async_library"),
    ("httpcore pool bookkeeping", "_assign_requests_to_connections"),
    ("SQLite commit (fsync)", "DefaultDialect.do_commit"),
    ("declaration PDF", "render_pdf"),
    ("conversation service (in threads)", "ConversationService.handle"),
    ("Bot API calls (PTB + HTTP)", "Bot._do_post"),
)


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME_RE.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match.group("func"), match.group("file")


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return file


def load(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        stacks.append(([_parse(f) for f in head.split(";") if f], int(count)))
    return stacks


def summarize(path: Path, top: int = 15) -> dict:
    """Total samples, samples by category, top functions by self and inclusive samples."""
    stacks = load(path)
    total = sum(count for _, count in stacks) or 1
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    watched: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        func, file = frames[-1]
        self_counts[f"{func} ({_short(file)})"] += count
        seen = set()
        for f, fl in frames:
            key = f"{f} ({_short(fl)})"
            if key not in seen:
                seen.add(key)
                incl_counts[key] += count
        category = "other"
        for _f, fl in reversed(frames):
            hit = next((name for name, rx in _COMPILED if rx.search(fl)), None)
            if hit is not None:
                category = hit
                break
        categories[category] += count
        names = {f for f, _ in frames}
        for label, func in WATCH:
            if any(func in name for name in names):
                watched[label] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1)

    skip = ("_bootstrap", "run (threading.py)", "_worker (concurrent", "<module>", "main (")
    inclusive = [(k, pct(v)) for k, v in incl_counts.most_common() if not any(s in k for s in skip)]
    return {
        "samples": total,
        "categories": [(k, pct(v)) for k, v in categories.most_common()],
        "watch": [(label, pct(watched[label])) for label, _ in WATCH],
        "self": [(k, pct(v)) for k, v in self_counts.most_common(top)],
        "inclusive": inclusive[:top],
    }


def format_summary(summary: dict, top: int = 12) -> str:
    lines = [f"samples: {summary['samples']}", "", "where the CPU goes (innermost known code):"]
    lines += [f"  {p:5.1f}%  {name}" for name, p in summary["categories"]]
    lines += ["", "followed (inclusive):"]
    lines += [f"  {p:5.1f}%  {name}" for name, p in summary.get("watch", [])]
    lines += ["", "top functions, inclusive:"]
    lines += [f"  {p:5.1f}%  {name}" for name, p in summary["inclusive"][:top]]
    lines += ["", "top functions, self:"]
    lines += [f"  {p:5.1f}%  {name}" for name, p in summary["self"][:top]]
    return "\n".join(lines)

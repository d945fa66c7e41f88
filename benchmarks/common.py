"""Shared pieces: the fake server with per-chat wake-ups, launching bots, databases, /proc.

Everything talks over loopback only. CPU and memory of the bot process are read from
/proc/<pid>/stat and /proc/<pid>/status (Linux), so no extra dependency is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.fakebot import FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:AAEbenchTOKENbenchTOKENbench12"
PG_URL = os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU of one thread of the process (the main thread: tid == pid)."""
    raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def descendants(pid: int) -> list[int]:
    """The live children of `pid`, their children and so on (the PDF worker, say)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError):
                    for child in (task / "children").read_text().split():
                        found.append(int(child))
                        todo.append(int(child))
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of `pid` and each live descendant; key -1: what the children `pid` has
    already reaped used (cutime + cstime)."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        fields = _stat_fields(pid)
        out[-1] = (int(fields[13]) + int(fields[14])) / _CLK_TCK
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            out[p] = cpu_seconds(p)
    return out


def tree_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the process tree used between two `tree_cpu` readings (a process born in
    between counts from zero)."""
    return sum(v - before.get(p, 0.0) for p, v in after.items())


def tree_peak_rss_mb(pid: int) -> float:
    """Sum of the peak RSS (VmHWM) of `pid` and its live descendants, in MiB: an upper
    bound of the tree's peak (the peaks need not coincide)."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            total += _status_kb(p, "VmHWM")
    return total / 1024


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of the process, in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def postgres_cpu_seconds() -> float:
    """CPU of every `postgres` process on this machine (the server the bot talks to).

    Approximate: anything else using PostgreSQL at the same time is counted too."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        if comm.startswith("postgres"):
            fields = raw[raw.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


def child_pid(pid: int, timeout: float = 10.0) -> int:
    """The first child of `pid` (the Python process a profiler started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} started no child")


def machine() -> str:
    """One line: CPU model, cores, memory, Python."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = float(line.split()[1]) / 1024 / 1024
    py = ".".join(map(str, sys.version_info[:3]))
    return f"{model}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, Python {py}, Linux"


# ----------------------------------------------------------------------------- fake server


class BenchAPI(FakeBotAPI):
    """tests.fakebot.FakeBotAPI plus what a load needs: one wake-up per chat (instead of
    waking every waiter on every message) and the time of the first getUpdates."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__(token=token)
        self.first_poll_at: float | None = None
        self._chat_events: dict[int, asyncio.Event] = {}

    async def _handle_method(self, request):
        if self.first_poll_at is None and request.match_info["method"].lower() == "getupdates":
            self.first_poll_at = time.monotonic()
        return await super()._handle_method(request)

    def _record(self, kind, chat_id, message, upload=None):
        super()._record(kind, chat_id, message, upload)
        event = self._chat_events.get(chat_id)
        if event is not None:
            event.set()

    def skip_update_ids(self, count: int) -> None:
        """Start the update ids `count` further on (a bot's inbox drops ids it has seen)."""
        self._next_update_id += count

    def chat_event(self, chat_id: int) -> asyncio.Event:
        event = self._chat_events.get(chat_id)
        if event is None:
            event = self._chat_events[chat_id] = asyncio.Event()
        return event

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# ----------------------------------------------------------------------------- bots


# motcua's outbound pacer switched off (bot/pacing.py; the fake server still counts what
# would be over Telegram's limits)
PACING_OFF = {"MOTCUA_PACE_CHAT_SECONDS": "0", "MOTCUA_PACE_PER_SECOND": "0"}


def bot_env(api: BenchAPI, database_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_BASE_URL=api.api_url,
        MOTCUA_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        # the bot runs in a scratch folder (no .env, no database of yours found there)
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def motcua_command() -> list[str]:
    return [sys.executable, "-m", "bot.cli", "run"]


def echo_command(concurrent: bool) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.echo_bot"]
    return cmd + ["--concurrent"] if concurrent else cmd


def launch(cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_first_poll(api: BenchAPI, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    """Wait for the bot's first getUpdates; returns when it came (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while api.first_poll_at is None:
        if proc.poll() is not None:
            raise RuntimeError(f"the bot exited with {proc.returncode} before polling")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot did not poll within {timeout:.0f}s")
        await asyncio.sleep(0.005)
    return api.first_poll_at


async def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; the fake server keeps answering meanwhile."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- databases


@contextlib.contextmanager
def sqlite_url(folder: Path, name: str = "motcua.db") -> Iterator[str]:
    path = folder / name
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (path.parent / (path.name + suffix)).unlink()


@contextlib.contextmanager
def postgres_url(prefix: str = "motcua_bench") -> Iterator[str]:
    """A private schema on the PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


@contextlib.contextmanager
def database(kind: str, folder: Path, name: str = "motcua.db") -> Iterator[str]:
    if kind == "sqlite":
        with sqlite_url(folder, name) as url:
            yield url
    elif kind == "postgresql":
        with postgres_url() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}")


@contextlib.contextmanager
def workdir(prefix: str = "motcua-bench-") -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]

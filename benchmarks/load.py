"""Conversation load: simulated citizens talk to a real bot process over loopback.

The fake Bot API server (tests.fakebot, via common.BenchAPI) and the citizens run in this
process's event loop; the bot (`motcua run`, or the echo bot) is a subprocess, so its CPU
and memory are its own and are read from /proc.

A citizen follows a planned script (benchmarks.scripts): it sends an update (or two, for
the validation error), waits for the reply that carries buttons, checks it is the expected
one, then answers at once (saturated) or after a pause of about `think` seconds (paced).
After `duration` seconds no citizen starts a new step; the run ends when every reply in
flight arrived, or `drain` seconds later (a backlog left then is counted as abandoned).
Throughput is updates answered / (last reply - start).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import common
from benchmarks.scripts import Plan, Script, echo_expect

STEP_TIMEOUT = 60.0  # seconds a citizen waits for one reply before giving up


@dataclass
class LoadSpec:
    name: str
    bot: str = "motcua"  # "motcua", "echo", "echo_concurrent"
    db: str | None = "sqlite"  # "sqlite", "postgresql" or None (echo)
    citizens: int = 500
    shape: str = "saturated"  # or "paced"
    delay: float = 0.0  # seconds the fake server adds to every Bot API call
    think: float = 2.0  # paced: mean seconds between a reply and the next answer
    duration: float = 60.0  # no new step is started after this many seconds
    drain: float = 15.0  # then replies in flight are awaited this long at most
    settle: float = 1.0  # seconds between the bot's first answer and the load
    id_base: int = 7_000_000  # chat ids of the simulated citizens start here
    # update ids start this much further on (a database a bot used before has seen the
    # fake server's first ids: its inbox would drop them as duplicates)
    skip_update_ids: int = 0
    seed: int = 1
    # motcua's outbound pacer (bot/pacing.py); None: on for paced loads, off for saturated
    pacer: bool | None = None


@dataclass
class LoadResult:
    name: str
    bot: str
    db: str | None
    shape: str
    citizens: int
    delay_ms: float
    updates: int = 0
    elapsed_s: float = 0.0
    updates_per_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_s: float = 0.0
    cpu_s_per_1k: float = 0.0  # the bot's process and its children (the PDF worker)
    children_cpu_s_per_1k: float = 0.0  # of which its children
    db_cpu_s_per_1k: float | None = None
    harness_cpu_s_per_1k: float = 0.0
    peak_rss_mb: float = 0.0  # the bot's process
    tree_peak_rss_mb: float = 0.0  # with its children (sum of their peaks)
    children: int = 0  # child processes alive at the end (the PDF worker)
    rss_end_mb: float = 0.0
    finished_citizens: int = 0
    wrong: int = 0
    out_of_order: int = 0
    timeouts: int = 0
    abandoned: int = 0
    log_errors: int = 0
    # Bot API calls per update during the load, by method (getUpdates included)
    calls_per_update: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    updates: int = 0
    last_reply_at: float = 0.0
    finished: int = 0
    wrong: int = 0
    out_of_order: int = 0
    timeouts: int = 0


def _find_button(message, token: str, echo: bool) -> str:
    for row in message.buttons:
        for _label, data in row:
            if echo or data.split(".", 2)[-1] == token:
                return data
    raise LookupError(token)


async def _citizen(
    api: common.BenchAPI,
    user,
    script: Script,
    spec: LoadSpec,
    stop_at: float,
    tally: _Tally,
    rnd: random.Random,
) -> None:
    echo = spec.bot != "motcua"
    paced = spec.shape == "paced"
    box = api.outbox(user.chat_id)
    cursor = len(box)
    wake = api.chat_event(user.chat_id)
    last = None
    if paced:
        await asyncio.sleep(rnd.uniform(0, spec.think))
    for index, step in enumerate(script.steps):
        if time.monotonic() >= stop_at:
            return
        if paced and index:
            await asyncio.sleep(rnd.uniform(0.5, 1.5) * spec.think)
        sent: list[float] = []
        for kind, value in step.events:
            sent.append(time.monotonic())
            if kind == "cmd":
                command, _, arg = value.partition(" ")
                await user.send_command(command, arg)
            elif kind == "text":
                await user.send_text(value)
            else:
                try:
                    data = _find_button(last, value, echo)
                except LookupError:
                    tally.wrong += 1
                    return
                await user.press(data, message_id=last.message_id)
        want = len(step.events)
        got = []
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            while cursor < len(box) and len(got) < want:
                message = box[cursor]
                cursor += 1
                if message.buttons:
                    got.append(message)
            if len(got) >= want:
                break
            wake.clear()
            if cursor < len(box):
                continue
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(wake.wait(), max(remaining, 0.001))
            except TimeoutError:
                tally.timeouts += 1
                tally.updates += len(got)
                return
        for at, message in zip(sent, got, strict=True):
            tally.latencies.append(message.at - at)
            tally.last_reply_at = max(tally.last_reply_at, message.at)
        tally.updates += want
        expected = [echo_expect(e) for e in step.events] if echo else step.expect
        texts = [m.text for m in got]
        if texts != expected:
            if sorted(texts) == sorted(expected):
                tally.out_of_order += 1
            else:
                tally.wrong += 1
            if not echo:
                return  # the conversation is off its script: stop this citizen
        last = got[-1]
    tally.finished += 1


async def _warm_up(api: common.BenchAPI, chat_id: int) -> None:
    """One /start from a citizen outside the measured set: the bot is up and answering."""
    user = api.user(chat_id, first_name="Warm")
    await user.send_command("/start")
    box = api.outbox(chat_id)
    deadline = time.monotonic() + 60
    while not any(m.buttons for m in box):
        if time.monotonic() > deadline:
            raise RuntimeError("the bot did not answer the warm-up /start within 60s")
        await asyncio.sleep(0.02)


def _command(spec: LoadSpec) -> list[str]:
    if spec.bot == "motcua":
        return common.motcua_command()
    if spec.bot in ("echo", "echo_concurrent"):
        return common.echo_command(spec.bot == "echo_concurrent")
    raise ValueError(f"unknown bot {spec.bot!r}")


async def run_load(
    spec: LoadSpec,
    plan: Plan,
    folder: Path,
    database_url: str | None = None,
    profile: Path | None = None,
    profile_rate: int = 100,
    command: list[str] | None = None,
    profile_gil: bool = False,
) -> LoadResult:
    """Run one load against a fresh bot process; see the module docstring."""
    result = LoadResult(spec.name, spec.bot, spec.db, spec.shape, spec.citizens, spec.delay * 1000)
    log_path = folder / f"{spec.name}.log"
    cmd = command or _command(spec)
    if profile is not None:
        cmd = [
            "py-spy",
            "record",
            "--nonblocking",
            "--rate",
            str(profile_rate),
            "--format",
            "raw",
            *(["--gil"] if profile_gil else []),
            "-o",
            str(profile),
            "--",
            *cmd,
        ]
    rnd = random.Random(spec.seed)
    async with common.BenchAPI() as api:
        api.delay = spec.delay
        api.skip_update_ids(spec.skip_update_ids)
        env = common.bot_env(api, database_url)
        if spec.pacer is False or (spec.pacer is None and spec.shape != "paced"):
            # Throughput is the cost of motcua itself: the bot's outbound pacer (Telegram's
            # 1 message/s per chat, 25/s overall) is off, as the echo bot has none. The paced
            # shape (people answering every ~2 s) keeps it on: that latency is what people feel.
            env.update(common.PACING_OFF)
        proc = common.launch(cmd, env, log_path, folder)
        pid = proc.pid
        try:
            if profile is not None:
                pid = common.child_pid(proc.pid)
            await common.wait_first_poll(api, proc)
            await _warm_up(api, spec.id_base - 1)
            await asyncio.sleep(spec.settle)  # let start-up work in the background settle
            users = []
            for i in range(spec.citizens):
                user = api.user(spec.id_base + i, first_name=f"Citizen{i}")
                api.chat_event(user.chat_id)
                users.append(user)
            tally = _Tally()
            cpu0 = common.tree_cpu(pid)
            pg0 = pg1 = common.postgres_cpu_seconds() if spec.db == "postgresql" else 0.0
            harness0 = time.process_time()
            calls0 = len(api.calls)
            t0 = time.monotonic()
            stop_at = t0 + spec.duration
            tasks = [
                asyncio.create_task(
                    _citizen(
                        api,
                        user,
                        plan.scripts[i % len(plan.scripts)],
                        spec,
                        stop_at,
                        tally,
                        random.Random(rnd.random()),
                    )
                )
                for i, user in enumerate(users)
            ]
            # Replies still in flight at the stop may come until the drain limit; a slow
            # bot's backlog beyond that is abandoned (counted, not waited for).
            _done, pending = await asyncio.wait(tasks, timeout=spec.duration + spec.drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            result.abandoned = len(pending)
            called = collections.Counter(name for name, _ in api.calls[calls0:])
            cpu1 = common.tree_cpu(pid)
            harness1 = time.process_time()
            if spec.db == "postgresql":
                pg1 = common.postgres_cpu_seconds()
            result.peak_rss_mb = round(common.peak_rss_mb(pid), 1)
            result.tree_peak_rss_mb = round(common.tree_peak_rss_mb(pid), 1)
            result.children = len(common.descendants(pid))
            result.rss_end_mb = round(common.rss_mb(pid), 1)
        finally:
            if profile is not None and pid != proc.pid:
                # stop the profiled bot; py-spy writes its file when the bot has exited
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                await _wait_exit(proc)
            await common.stop_process(proc)
    elapsed = max(tally.last_reply_at - t0, 1e-9)
    result.updates = tally.updates
    result.elapsed_s = round(elapsed, 2)
    result.updates_per_s = round(tally.updates / elapsed, 1)
    ms = [x * 1000 for x in tally.latencies]
    result.p50_ms = round(common.percentile(ms, 50), 1)
    result.p95_ms = round(common.percentile(ms, 95), 1)
    result.p99_ms = round(common.percentile(ms, 99), 1)
    result.max_ms = round(max(ms, default=0.0), 1)
    per_1k = 1000 / max(tally.updates, 1)
    cpu = common.tree_cpu_delta(cpu0, cpu1)
    own = cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0)
    result.cpu_s = round(cpu, 2)
    result.cpu_s_per_1k = round(cpu * per_1k, 2)
    result.children_cpu_s_per_1k = round((cpu - own) * per_1k, 2)
    result.harness_cpu_s_per_1k = round((harness1 - harness0) * per_1k, 2)
    if spec.db == "postgresql":
        result.db_cpu_s_per_1k = round((pg1 - pg0) * per_1k, 2)
    result.finished_citizens = tally.finished
    result.wrong = tally.wrong
    result.out_of_order = tally.out_of_order
    result.timeouts = tally.timeouts
    log = log_path.read_text(encoding="utf-8", errors="replace")
    result.calls_per_update = {
        name: round(n * per_1k / 1000, 2) for name, n in sorted(called.items())
    }
    result.log_errors = sum(1 for line in log.splitlines() if " ERROR " in line)
    if "Traceback" in log:
        result.notes.append("traceback in the bot log")
    return result


async def _wait_exit(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def run_startup(folder: Path, database_url: str, runs: int = 3) -> dict:
    """Start `motcua run` 1 + `runs` times on one database: seconds from Popen to the first
    getUpdates, CPU seconds of the bot's main thread by then, and milliseconds from a
    /start sent at that moment to its reply. The first start finds a new database (the
    migrations run); the others find it at head, as every later start does."""
    starts: list[float] = []
    main_cpu: list[float] = []
    first_replies: list[float] = []
    for n in range(runs + 1):
        async with common.BenchAPI() as api:
            # the bot's inbox keeps update ids: each start gets ids the database never saw
            api.skip_update_ids(1_000_000 * (n + 1))
            log_path = folder / f"startup-{n}.log"
            t0 = time.monotonic()
            proc = common.launch(
                common.motcua_command(), common.bot_env(api, database_url), log_path, folder
            )
            try:
                polled = await common.wait_first_poll(api, proc)
                main_cpu.append(common.thread_cpu_seconds(proc.pid, proc.pid))
                starts.append(polled - t0)
                user = api.user(4_000_000 + n, first_name="First")
                sent = time.monotonic()
                await user.send_command("/start")
                box = api.outbox(user.chat_id)
                deadline = sent + 60
                while not any(m.buttons for m in box) and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                first = next((m for m in box if m.buttons), None)
                first_replies.append((first.at - sent) * 1000 if first else float("inf"))
            finally:
                await common.stop_process(proc)
    return {
        "new_database_s": starts[0],
        "startup_s": starts[1:],
        "main_thread_cpu_s": main_cpu[1:],
        "first_reply_ms": first_replies[1:],
    }

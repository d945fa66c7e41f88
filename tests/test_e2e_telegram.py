"""End to end: `motcua run` as a subprocess against the local fake Bot API server.

A citizen completes each procedure with buttons and typed text and receives the PDF; the
bot is killed with SIGKILL in the middle of a form and restarted: nothing is lost.
The answers come from each procedure's first sample, played once through the engine to
learn which button or text each step takes, then replayed here over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.lint import play, samples_of
from flows.pdf import pdf_text
from procedures.loader import load_catalog
from tests.fakebot import FakeBotAPI
from tests.test_pdf_worker import alive

TOKEN = "123456:AAEtestTOKENtestTOKENtest123"
ROOT = Path(__file__).resolve().parent.parent


def _motcua() -> list[str]:
    return [sys.executable, "-m", "bot.cli", "run"]


def start_bot(
    api: FakeBotAPI, db_path: Path, log_path: Path, pdf_workers: str = "1"
) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{api.port}",
        DATABASE_URL=f"sqlite:///{db_path}",
        MOTCUA_LOG_LEVEL="INFO",
        MOTCUA_PDF_WORKERS=pdf_workers,
    )
    return subprocess.Popen(
        _motcua(),
        cwd=db_path.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def start_with_consent(user, proc_id: str) -> list:
    """A deep link on first contact: the consent notice (flows/privacy.py) comes first;
    "Đồng ý" starts the procedure. Returns the procedure's first messages."""
    await user.send_command("/start", arg=proc_id)
    [notice] = await user.replies(1, timeout=30)
    assert "/xoadulieu" in notice.text
    await user.press(next(d for row in notice.buttons for label, d in row if "Đồng ý" in label))
    return await user.replies(2, timeout=30)


def pdf_workers_of(pid: int) -> list[int]:
    """The PDF worker processes (flows/pdfworker.py) the process `pid` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid and b"flows.pdfworker" in cmdline:
            found.append(int(stat.parent.name))
    return found


def maps(pid: int) -> str:
    """The files mapped by `pid`: numpy is there once fpdf2 is imported (except in a PDF
    worker, which skips it)."""
    return Path(f"/proc/{pid}/maps").read_text()


async def stop_bot(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the bot while the fake server (same event loop) keeps answering it."""
    if proc.poll() is None:
        proc.send_signal(sig)
        for _ in range(300):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.05)
        proc.kill()
        proc.wait()


def find_button(messages, token: str) -> str:
    for m in reversed(messages):
        for row in m.buttons:
            for _label, data in row:
                if data.split(".", 2)[-1] == token:
                    return data
    raise AssertionError(f"no button {token!r} in the last messages")


async def act(user, last, action) -> list:
    kind, value = action
    if kind == "text":
        await user.send_text(value)
    else:
        await user.press(find_button(last, value))
    first = await user.replies(1, timeout=30)
    return first + await user.wait_quiet(0.4)


def sample_actions(proc_id: str):
    catalog = load_catalog()
    proc = catalog.get(proc_id)
    name, answers = next(iter(samples_of(catalog, proc).items()))
    played = play(catalog, proc, answers, dt.date.today())
    assert not played.problems, played.problems
    return proc, answers, played.actions


@pytest.mark.parametrize(
    ("proc_id", "pdf_workers"),
    [("xac_nhan_tinh_trang_hon_nhan", "1"), ("cap_ban_sao_trich_luc_khai_sinh", "0")],
)
async def test_citizen_completes_procedure_over_telegram(
    tmp_path: Path, proc_id: str, pdf_workers: str
) -> None:
    """The PDF is made by the worker process (MOTCUA_PDF_WORKERS=1, the default: the bot
    never imports fpdf2) or by the bot itself (0)."""
    proc, answers, actions = sample_actions(proc_id)
    workers: list[int] = []
    async with FakeBotAPI(token=TOKEN) as api:
        bot = start_bot(api, tmp_path / "motcua.db", tmp_path / "bot.log", pdf_workers)
        try:
            user = api.user(424242, first_name="Lan")
            last = await start_with_consent(user, proc_id)
            last += await user.wait_quiet(0.4)
            assert any("Bước 1/" in m.text for m in last)
            for i, action in enumerate(actions):
                if i == len(actions) - 1:  # at the review: the worker was started for the PDF
                    await asyncio.sleep(0.5)
                    assert len(pdf_workers_of(bot.pid)) == int(pdf_workers)
                elif i == len(actions) // 2:  # mid-form: no PDF worker runs yet
                    assert pdf_workers_of(bot.pid) == []
                last = await act(user, last, action)
                assert last, f"no reply after {action}"
            docs = [m for m in last if m.kind == "document"]
            assert len(docs) == 1, [m.kind for m in last]
            assert docs[0].filename.endswith(".pdf")
            text = " ".join(pdf_text(docs[0].document).split())
            for key in ("requester_full_name", "subject_full_name"):
                if key in answers:
                    assert str(answers[key]).split()[-1] in text
            assert all(len(m.text or "") <= 4096 for m in user.history())
            assert not [v for v in api.violations if "30" in v], api.violations
            workers = pdf_workers_of(bot.pid)
            assert len(workers) == int(pdf_workers)
            assert ("numpy" in maps(bot.pid)) == (pdf_workers == "0")
            for worker in workers:  # nothing of the bot's own (SQLAlchemy...), nor numpy
                assert "sqlalchemy" not in maps(worker) and "numpy" not in maps(worker)
        finally:
            await stop_bot(bot)
    await asyncio.sleep(0.2)
    assert not [w for w in workers if alive(w)], "PDF workers outlived the bot"
    log = (tmp_path / "bot.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "PDF worker" not in log  # no worker failed


async def test_kill_9_mid_form_loses_nothing(tmp_path: Path) -> None:
    proc_id = "xac_nhan_tinh_trang_hon_nhan"
    proc, answers, actions = sample_actions(proc_id)
    half = len(actions) // 2
    async with FakeBotAPI(token=TOKEN) as api:
        bot = start_bot(api, tmp_path / "motcua.db", tmp_path / "bot.log")
        user = api.user(515151, first_name="Hùng")
        try:
            last = await start_with_consent(user, proc_id)
            last += await user.wait_quiet(0.4)
            for action in actions[:half]:
                last = await act(user, last, action)
            await asyncio.sleep(0.5)  # let the poller confirm the last update
        finally:
            await stop_bot(bot, signal.SIGKILL)
        assert bot.returncode == -signal.SIGKILL
        bot = start_bot(api, tmp_path / "motcua.db", tmp_path / "bot.log")
        try:
            await user.send_command("/start")
            last = await user.replies(1, timeout=30)
            assert any("làm dở" in m.text for m in last), [m.text for m in last]
            resume = next(d for m in last for row in m.buttons for _l, d in row if ".r:" in d)
            await user.press(resume)
            last = await user.wait_quiet(0.5)
            # the question shown is the one after the last answer before the kill
            for action in actions[half:]:
                last = await act(user, last, action)
            docs = [m for m in last if m.kind == "document"]
            assert len(docs) == 1
            text = " ".join(pdf_text(docs[0].document).split())
            assert str(answers["subject_full_name"]).split()[-1] in text
        finally:
            await stop_bot(bot)

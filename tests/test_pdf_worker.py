"""flows.pdfworker: declaration PDFs made in a child process (MOTCUA_PDF_WORKERS).

Real worker processes throughout; the bot's own run with a worker is in
tests/test_e2e_telegram.py."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from flows import pdfworker
from flows.pdf import pdf_text, render_pdf
from tests.test_pdf import DECLARATION, VALUES

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Tờ khai cấp Giấy xác nhận tình trạng hôn nhân"
BOT_MODULES = ("bot", "flows.engine", "flows.service", "storage", "telegram", "sqlalchemy")


def stable(pdf: bytes) -> bytes:
    """The PDF without its creation time and the file id made from it."""
    pdf = re.sub(rb"/CreationDate \(D:[^)]*\)", b"", pdf)
    return re.sub(rb"/ID \[<[0-9A-F]+><[0-9A-F]+>\]", b"", pdf)


def alive(pid: int) -> bool:
    """Running (a zombie left by a parent that does not reap counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    return wait_for(lambda: not alive(pid), timeout)


@pytest.fixture
def pool() -> Iterator[pdfworker.PdfWorkers]:
    workers = pdfworker.configure(1)
    assert workers is not None
    try:
        yield workers
    finally:
        pdfworker.shutdown()


def test_worker_pdf_is_the_in_process_pdf(pool: pdfworker.PdfWorkers) -> None:
    made = pdfworker.make_pdf(DECLARATION, title=TITLE)
    [pid] = pool.pids()
    assert pid != os.getpid()
    here = render_pdf(DECLARATION, title=TITLE)
    assert stable(made) == stable(here)
    assert pdf_text(made) == pdf_text(here)
    # the same worker makes the next one
    assert stable(pdfworker.make_pdf(DECLARATION, title=TITLE)) == stable(here)
    assert pool.pids() == [pid]


def test_a_killed_worker_is_replaced(pool: pdfworker.PdfWorkers, caplog) -> None:
    caplog.set_level(logging.INFO, logger="flows.pdfworker")
    first = pdfworker.make_pdf(DECLARATION, title=TITLE)
    [pid] = pool.pids()
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    second = pdfworker.make_pdf(DECLARATION, title=TITLE)
    assert stable(second) == stable(first)
    [new_pid] = pool.pids()
    assert new_pid != pid
    # seen dead before the request ("had exited"), or by the request ("failed, try 1")
    assert f"PDF worker {pid} " in caplog.text
    assert VALUES[1] not in caplog.text


def test_workers_that_fail_leave_the_pdf_to_the_bots_process(caplog) -> None:
    """Two tries that both time out (a worker needs far more than 10 ms to start): each
    worker is killed, and the PDF is made in this process; the log names no value."""
    caplog.set_level(logging.INFO, logger="flows.pdfworker")
    pool = pdfworker.configure(1, timeout=0.01)
    assert pool is not None
    try:
        made = pdfworker.make_pdf(DECLARATION, title=TITLE)
        assert pool.pids() == []  # both killed
    finally:
        pdfworker.shutdown()
    assert stable(made) == stable(render_pdf(DECLARATION, title=TITLE))
    assert caplog.text.count("no reply in time") == 2
    assert "made in the bot's process instead" in caplog.text
    # the messages (not the file:line prefix), without the worker pids: "01" may be in those
    logged = re.sub(r"PDF worker \d+", "PDF worker N", "\n".join(caplog.messages))
    for value in VALUES:
        assert value not in logged


def test_after_shutdown_pdfs_are_made_here() -> None:
    pool = pdfworker.configure(1)
    assert pool is not None
    [thread] = pdfworker.warm_up()
    thread.join(30)
    [pid] = pool.pids()
    pdfworker.shutdown()
    assert wait_gone(pid)
    assert pool.pids() == []
    assert pdf_text(pdfworker.make_pdf(DECLARATION, title=TITLE)) == pdf_text(
        render_pdf(DECLARATION, title=TITLE)
    )


def test_an_unused_worker_stops_and_the_next_pdf_starts_one(caplog) -> None:
    caplog.set_level(logging.INFO, logger="flows.pdfworker")
    pool = pdfworker.configure(1, idle=0.5)
    assert pool is not None
    try:
        first = pdfworker.make_pdf(DECLARATION, title=TITLE)
        [pid] = pool.pids()
        assert wait_gone(pid, timeout=10), "an idle worker kept running"
        assert pool.pids() == []
        assert f"PDF worker {pid} stopped after 0 s unused" in caplog.text
        second = pdfworker.make_pdf(DECLARATION, title=TITLE)
        [new_pid] = pool.pids()
        assert new_pid != pid and stable(second) == stable(first)
    finally:
        pdfworker.shutdown()


def test_a_busy_worker_is_not_stopped_as_idle() -> None:
    """Used more often than `idle`: the same worker makes every PDF."""
    pool = pdfworker.configure(1, idle=1.0)
    assert pool is not None
    try:
        pdfworker.make_pdf(DECLARATION, title=TITLE)
        [pid] = pool.pids()
        for _ in range(6):
            time.sleep(0.3)
            pdfworker.make_pdf(DECLARATION, title=TITLE)
        assert pool.pids() == [pid]
    finally:
        pdfworker.shutdown()


def test_prepare_starts_one_worker_in_the_background() -> None:
    pool = pdfworker.configure(1)
    assert pool is not None
    try:
        assert pool.pids() == []  # nothing at configure time
        for _ in range(20):  # many citizens reach the review at once: one start
            pdfworker.prepare()
        assert wait_for(lambda: len(pool.pids()) == 1)
        [pid] = pool.pids()
        assert wait_for(lambda: not pool._warming)  # the fonts are parsed
        pdfworker.prepare()  # one runs: nothing more
        pdfworker.make_pdf(DECLARATION, title=TITLE)
        assert pool.pids() == [pid]
    finally:
        pdfworker.shutdown()
    pdfworker.prepare()  # no workers configured: nothing, no error


# `motcua` is a script that imports bot.cli: multiprocessing's spawn and forkserver children
# would import it again (SQLAlchemy, the store, the engine). This one runs like it.
SCRIPT = """\
import os, sys, time
from bot.cli import main
from flows import pdfworker

if __name__ == "__main__":
    pool = pdfworker.configure(1)
    [thread] = pdfworker.warm_up()
    thread.join(30)
    print(pool.pids()[0], " ".join(pool.call("modules")), flush=True)
    time.sleep(60)
"""


def test_worker_imports_nothing_of_the_bot_and_dies_with_it(tmp_path: Path) -> None:
    """Nor does it get the bot's secrets; and a bot killed with SIGKILL takes it along."""
    script = tmp_path / "motcua"
    script.write_text(SCRIPT, encoding="utf-8")
    bot = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": "123456:secret"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bot.stdout is not None
        pid_text, modules_text = bot.stdout.readline().split(" ", 1)
        pid, modules = int(pid_text), modules_text.split()
        assert "flows.pdf" in modules and "fpdf" in modules
        assert [m for m in modules if m.startswith(BOT_MODULES)] == []
        # nor what fpdf2 would import for images, encryption and variable fonts
        assert [m for m in modules if m.split(".")[0] in pdfworker.OPTIONAL_IMPORTS] == []
        assert alive(pid)
        assert b"TELEGRAM_BOT_TOKEN" not in Path(f"/proc/{pid}/environ").read_bytes()
        bot.kill()  # SIGKILL: no shutdown, no atexit
        bot.wait()
        assert wait_gone(pid), "the PDF worker outlived the bot"
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()


@pytest.mark.parametrize(("raw", "expected"), [(None, 1), ("", 1), ("0", 0), ("2", 2), ("8", 8)])
def test_pdf_workers_setting(tmp_path: Path, monkeypatch, raw: str | None, expected: int) -> None:
    if raw is None:
        monkeypatch.delenv("MOTCUA_PDF_WORKERS", raising=False)
    else:
        monkeypatch.setenv("MOTCUA_PDF_WORKERS", raw)
    assert load_settings(env_file=tmp_path / ".env").pdf_workers == expected


@pytest.mark.parametrize("raw", ["9", "-1", "one", "1.5"])
def test_pdf_workers_setting_refuses(tmp_path: Path, monkeypatch, raw: str) -> None:
    monkeypatch.setenv("MOTCUA_PDF_WORKERS", raw)
    with pytest.raises(SettingsError, match="MOTCUA_PDF_WORKERS must be a whole number from 0"):
        load_settings(env_file=tmp_path / ".env")

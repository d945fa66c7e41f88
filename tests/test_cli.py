"""The `motcua` command line, run as a subprocess like a person would."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from flows.pdf import pdf_text

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_permit"
ROOT = Path(__file__).resolve().parent.parent


def motcua(args: list[str], cwd: Path, stdin: str = "", env: dict | None = None, timeout=120):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "MOTCUA_"))}
    full_env.pop("DATABASE_URL", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env | {"PYTHONPATH": str(ROOT)},
        timeout=timeout,
    )


def test_chat_through_stdin_completes_a_procedure(tmp_path: Path) -> None:
    procs = tmp_path / "procs"
    shutil.copytree(FIXTURE, procs / "tiny_permit")
    sample = yaml.safe_load((FIXTURE / "samples" / "basic.yaml").read_text(encoding="utf-8"))
    lines = [
        "1",  # button 1 under the consent notice (flows/privacy.py): "Đồng ý"
        "1",  # button 1: "Chó"
        sample["owner_name"],
        "khong biet",  # not a date: refused, asked again
        sample["owner_birth"],
        "co",
        sample["vaccine_date"],
        sample["dog_count"],
        sample["nickname"],
        "1",  # button 1 on the review: confirm
        "G22.99-261127-0001",
    ]
    result = motcua(
        ["chat", "--user", "tester", "--procedure", "tiny_permit", "--out", "pdfs"],
        cwd=tmp_path,
        stdin="\n".join(lines) + "\n",
        env={"MOTCUA_PROCEDURES_DIRS": str(procs)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Bước 1/" in out and "[1] Chó" in out
    assert "⚠️" in out  # the wrong date was refused with a message
    assert "XEM LẠI" in out
    pdf = tmp_path / "pdfs" / "to-khai-tiny-permit.pdf"
    assert pdf.is_file() and str(pdf) in out
    assert "Trần Thị Bình" in " ".join(pdf_text(pdf.read_bytes()).split())
    assert "G22.99-261127-0001" in out
    # the default database is a SQLite file in the working directory, in WAL mode
    db = tmp_path / "motcua.db"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("select count(*) from draft").fetchone()[0] == 1


def test_chat_resumes_after_restart(tmp_path: Path) -> None:
    procs = tmp_path / "procs"
    shutil.copytree(FIXTURE, procs / "tiny_permit")
    env = {"MOTCUA_PROCEDURES_DIRS": str(procs)}
    first = motcua(
        ["chat", "--user", "u", "--procedure", "tiny_permit"],
        cwd=tmp_path,
        stdin="1\n1\nLê Văn Tám\n",  # "Đồng ý" (the consent notice), "Chó", the name
        env=env,
    )
    assert first.returncode == 0, first.stderr
    second = motcua(["chat", "--user", "u"], cwd=tmp_path, stdin="1\n", env=env)
    assert second.returncode == 0, second.stderr
    assert "làm dở" in second.stdout  # offered to continue
    assert "Bạn sinh ngày nào?" in second.stdout  # continued at the next question


def test_db_upgrade_and_procedures_check(tmp_path: Path) -> None:
    up = motcua(["db", "upgrade"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    assert "up to date" in up.stdout
    check = motcua(["procedures", "check"], cwd=tmp_path, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "xac_nhan_tinh_trang_hon_nhan" in check.stdout
    assert "cap_ban_sao_trich_luc_khai_sinh" in check.stdout
    graph = motcua(["procedures", "graph", "xac_nhan_tinh_trang_hon_nhan"], cwd=tmp_path)
    assert graph.returncode == 0 and graph.stdout.startswith("flowchart TD")


def test_bad_settings_stop_with_one_clear_line(tmp_path: Path) -> None:
    cases = [
        (["run"], {}, "TELEGRAM_BOT_TOKEN is not set"),
        (["run"], {"TELEGRAM_BOT_TOKEN": "nonsense"}, "TELEGRAM_BOT_TOKEN is malformed"),
        (["db", "upgrade"], {"DATABASE_URL": "mysql://x"}, "DATABASE_URL is malformed"),
        (["chat"], {"MOTCUA_TIMEZONE": "Mars/Base"}, "MOTCUA_TIMEZONE"),
        (
            ["run"],
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAEtestTOKENtestTOKENtest123",
                "TELEGRAM_API_BASE_URL": "ftp:x",
            },
            "TELEGRAM_API_BASE_URL is malformed",
        ),
        (
            ["run"],
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAEtestTOKENtestTOKENtest123",
                "MOTCUA_PACE_PER_SECOND": "fast",
            },
            "MOTCUA_PACE_PER_SECOND must be a number",
        ),
        (
            ["run"],
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAEtestTOKENtestTOKENtest123",
                "MOTCUA_WORKER_THREADS": "many",
            },
            "MOTCUA_WORKER_THREADS must be a whole number from 0 to 256",
        ),
        (
            ["run"],
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAEtestTOKENtestTOKENtest123",
                "MOTCUA_PDF_WORKERS": "9",
            },
            "MOTCUA_PDF_WORKERS must be a whole number from 0 to 8",
        ),
        (
            ["run"],
            {
                "TELEGRAM_BOT_TOKEN": "123456:AAEtestTOKENtestTOKENtest123",
                "MOTCUA_CONCURRENT_UPDATES": "0",
            },
            "MOTCUA_CONCURRENT_UPDATES must be a whole number from 1 to 256",
        ),
    ]
    for args, env, needle in cases:
        result = motcua(args, cwd=tmp_path, env=env)
        assert result.returncode == 2, (args, env, result.stderr)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], result.stderr


def test_settings_from_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-dotenv.db\n", encoding="utf-8")
    result = motcua(["db", "upgrade"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-dotenv.db").is_file()


def test_questions_lists_unknown_messages_redacted(tmp_path: Path) -> None:
    unknown = "cai may giat bi hong sdt 0912345678\n"
    # before consent nothing is recorded; asking for an officer and "Đồng ý" (button 1) is it
    for stdin in (unknown + "gap can bo\n1\n" + unknown, unknown):
        chat = motcua(["chat", "--user", "q"], cwd=tmp_path, stdin=stdin)
        assert chat.returncode == 0, chat.stderr
    result = motcua(["questions"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "    2  " in result.stdout and "0912345678" not in result.stdout

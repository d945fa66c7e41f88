"""What start-up skips: Alembic when the database is already at head, heavy imports.

The time itself is a benchmark (`python -m benchmarks.run --only startup`), not a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from storage.db import alembic_config, at_heads, migration_heads
from storage.store import Store
from tests.conftest import make_store

ROOT = Path(__file__).resolve().parents[1]


def test_heads_read_from_the_files_are_alembics() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert migration_heads() == frozenset(script.get_heads())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_at_heads_only_after_every_migration(kind: str) -> None:
    with make_store(kind, upgrade=False) as store:
        with store.engine.connect() as conn:
            assert not at_heads(conn)  # empty database
        store.upgrade()
        with store.engine.connect() as conn:
            assert at_heads(conn)
            # one head missing (a database from before the newest migration): not at head
            heads = sorted(migration_heads())
            conn.exec_driver_sql(
                "DELETE FROM alembic_version WHERE version_num = ?"
                if kind == "sqlite"
                else "DELETE FROM alembic_version WHERE version_num = %s",
                (heads[-1],),
            )
            assert not at_heads(conn)
            conn.rollback()
        store.upgrade()  # idempotent at head
        with store.engine.connect() as conn:
            assert at_heads(conn)


def test_a_database_behind_is_still_upgraded(tmp_path: Path) -> None:
    """At head nothing runs; below head Alembic runs as before and brings it to head."""
    store = Store(f"sqlite:///{tmp_path}/old.db")
    try:
        from alembic import command

        cfg = alembic_config()
        with store.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "0001")
        with store.engine.connect() as conn:
            assert not at_heads(conn)
        store.upgrade()
        with store.engine.connect() as conn:
            assert at_heads(conn)
    finally:
        store.dispose()


def _imported_after(code: str, cwd: Path) -> set[str]:
    probe = (
        "import sys\n"
        f"{code}\n"
        "heavy = ('alembic', 'mako', 'matplotlib', 'fpdf', 'fontTools', 'pygments')\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_start_up_imports_no_alembic_at_head_nor_pdf_or_charts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/motcua.db"
    Store(url).upgrade()  # a database at head, as on every start but the first
    code = (
        "import os\n"
        f"os.environ['DATABASE_URL'] = {url!r}\n"
        "os.environ['TELEGRAM_BOT_TOKEN'] = '123456:AAEtestTOKENtestTOKENtest12345'\n"
        "import bot.cli\n"
        "from bot.app import build_service\n"
        "from bot.telegram import build_application\n"
        "from bot.settings import load_settings\n"
        "s = load_settings(require_token=True)\n"
        "service = build_service(s)\n"
        "build_application(service, s.telegram_bot_token)\n"
    )
    assert _imported_after(code, ROOT) == set()
    # the first start of an empty database does run Alembic
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    assert "alembic" in _imported_after(
        f"from storage.store import Store\nStore({fresh!r}).upgrade()", ROOT
    )

"""Shared fixtures.

`store` runs a test once per backend: SQLite (a temp file) and PostgreSQL. PostgreSQL
tests get a private schema on the shared database (dropped afterwards); if the server
cannot be reached they fail, unless MOTCUA_SKIP_PG=1 is set. MOTCUA_TEST_PG_URL overrides
the server URL.
"""

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from storage.store import Store

PG_URL = os.environ.get("MOTCUA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# the units index cache (procedures/units.py) goes to a temporary folder for the run, shared
# by the xdist workers, never to the real ~/.cache; XDG_CACHE_HOME too, for the CLI tests that
# drop the MOTCUA_* variables
if "MOTCUA_CACHE_DIR" not in os.environ:
    _cache_home = tempfile.mkdtemp(prefix="motcua-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _cache_home
    os.environ["MOTCUA_CACHE_DIR"] = os.path.join(_cache_home, "motcua")
    atexit.register(shutil.rmtree, _cache_home, True)

# personal-data columns are encrypted (storage/crypto.py): one data key for the whole run,
# used by every Store the tests open and inherited by the bot processes they start
os.environ.setdefault("MOTCUA_DATA_KEYS", Fernet.generate_key().decode("ascii"))


@contextmanager
def make_store(kind: str, *, upgrade: bool = True) -> Iterator[Store]:
    """A fresh Store of `kind` ("sqlite" or "postgresql"), migrated unless upgrade=False.

    Everything it created is removed when the block ends.
    """
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="motcua-test-") as folder:
            store = Store(f"sqlite:///{folder}/motcua.db")
            try:
                if upgrade:
                    store.upgrade()
                yield store
            finally:
                store.dispose()
        return
    if kind != "postgresql":
        raise ValueError(f"unknown store kind {kind!r}")

    schema = f"motcua_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        except sa.exc.OperationalError as error:
            if os.environ.get("MOTCUA_SKIP_PG") == "1":
                pytest.skip(f"PostgreSQL unreachable and MOTCUA_SKIP_PG=1: {error}")
            raise
        url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        store = Store(url.render_as_string(hide_password=False))
        try:
            if upgrade:
                store.upgrade()
            yield store
        finally:
            store.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    with make_store(request.param) as fresh:
        yield fresh


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.txt from the current behaviour (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))

"""`motcua keys generate|rotate` and `motcua purge`: personal data for operators.

Output is counts only: never a stored value.
"""

from __future__ import annotations

import argparse
import datetime as dt

from bot.settings import SettingsError, load_settings
from storage.crypto import DataKeyError


def open_store(settings):
    """The settings' database with the settings' data keys."""
    from storage.store import Store

    try:
        keyring = settings.privacy.keyring()
    except DataKeyError as exc:
        raise SettingsError(str(exc)) from None
    return Store(settings.database_url, keyring=keyring)


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from storage.crypto import generate_key

    print(generate_key())
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every stored personal value with the first data key."""
    from storage.privacy import reencrypt

    settings = load_settings()
    store = open_store(settings)
    try:
        store.upgrade()
        done = reencrypt(store.engine, store.keyring)
    finally:
        store.dispose()
    detail = ", ".join(f"{t} {n}" for t, n in done.tables.items() if n)
    print(
        f"motcua: {done.rows} rows re-encrypted with the first data key"
        + (f" ({detail})" if detail else "")
        + f"; {len(store.keyring.keys) - 1} older keys may now be removed"
    )
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete what the retention periods no longer allow keeping (as the bot's tick does)."""
    from flows.privacy import purge

    settings = load_settings()
    store = open_store(settings)
    try:
        store.upgrade()
        done = purge(store, dt.datetime.now(dt.UTC), settings.privacy)
    finally:
        store.dispose()
    p = settings.privacy
    print(
        f"motcua: purged {done.drafts} drafts idle for {p.draft_days} days, "
        f"{done.cases} cases closed {p.case_days} days ago, {done.citizens} idle citizens"
    )
    return 0


def add_parsers(sub) -> None:
    keys = sub.add_parser("keys", help="data keys (personal data encrypted at rest)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    ksub.add_parser("generate", help="print a new data key").set_defaults(func=cmd_keys_generate)
    ksub.add_parser(
        "rotate", help="re-encrypt every stored value with the first key of MOTCUA_DATA_KEYS"
    ).set_defaults(func=cmd_keys_rotate)
    purge = sub.add_parser("purge", help="delete drafts and cases past their retention period")
    purge.set_defaults(func=cmd_purge)

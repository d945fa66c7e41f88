"""Personal data encrypted at rest: Fernet keys and the column types that use them.

Columns that hold personal data (a draft's answers, names, phone numbers, a fact's data,
the citizen's session...) use `EncryptedJSON` or `EncryptedText`: the value is encrypted
with Fernet (AES-128-CBC plus HMAC-SHA256, from the `cryptography` package) when it is
written and decrypted when it is read, so the database file alone does not reveal them and
no caller sees the difference.

Keys: a `Keyring` holds one or more Fernet keys (MultiFernet): the first encrypts, every one
decrypts, so a new key can be put first and the rows re-encrypted (`motcua keys rotate`)
before the old key is dropped. The keyring belongs to an engine (`install`): column types
find it on the engine's dialect, so two stores in one process may use different keys.

Stored form: an `EncryptedJSON` column keeps the Fernet token as a JSON string; an
`EncryptedText` column keeps the token as text. Rows written before encryption (a JSON
object, a plain string) are read as they are and encrypted on their next write (or by
migration 0007 / `motcua keys rotate`). A token that no configured key opens raises
`DataKeyError`: the wrong key must never pass for data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, String
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

TOKEN_PREFIX = "gAAAAA"  # every Fernet token (version byte 0x80, base64url) starts so
DEFAULT_KEY_FILE = "motcua.key"
_ATTR = "motcua_keyring"


class DataKeyError(Exception):
    """No key configured, a malformed key, or stored data that no key opens."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Keyring:
    """Fernet keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise DataKeyError("no data key given")
        fernets = []
        for n, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise DataKeyError(
                    f"data key #{n} is not a Fernet key (32 url-safe base64-encoded bytes; "
                    "make one with `motcua keys generate`)"
                ) from None
        self.keys = tuple(k.strip() for k in keys)
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)

    def encrypt(self, text: str) -> str:
        return self._primary.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._all.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError):
            raise DataKeyError(
                "stored personal data cannot be decrypted with the configured data keys "
                "(MOTCUA_DATA_KEYS / MOTCUA_DATA_KEY_FILE): is this the key the database "
                "was written with?"
            ) from None

    def is_current(self, token: str) -> bool:
        """Whether the token was made with the first (current) key."""
        try:
            self._primary.decrypt(token.encode("ascii"))
            return True
        except InvalidToken:
            return False


def parse_keys(raw: str) -> list[str]:
    """Keys separated by commas or newlines; blank entries and # comments ignored."""
    parts = raw.replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("#")]


def key_file_keyring(path: Path, *, create: bool = True) -> Keyring:
    """The keys in `path` (one per line, the first encrypts). A missing file is created
    with one new key, readable by its owner only (mode 0600), when `create` is set."""
    path = path.expanduser()
    if not path.exists():
        if not create:
            raise DataKeyError(f"data key file {path} does not exist")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(generate_key() + "\n")
    try:
        keys = parse_keys(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataKeyError(f"data key file {path} cannot be read: {type(exc).__name__}") from None
    if not keys:
        raise DataKeyError(f"data key file {path} holds no key")
    return Keyring(keys)


def load_keyring(keys: Iterable[str] = (), key_file: Path | None = None) -> Keyring:
    """Keys given directly win; else the key file (default ./motcua.key, created on first
    use so a fresh machine works)."""
    keys = list(keys)
    if keys:
        return Keyring(keys)
    return key_file_keyring(key_file if key_file is not None else Path(DEFAULT_KEY_FILE))


def keyring_from_environ() -> Keyring:
    """For a Store opened without a keyring: MOTCUA_DATA_KEYS, MOTCUA_DATA_KEY_FILE from the
    process environment, else ./motcua.key (the application passes its settings instead)."""
    raw = os.environ.get("MOTCUA_DATA_KEYS", "")
    file = os.environ.get("MOTCUA_DATA_KEY_FILE", "").strip()
    return load_keyring(parse_keys(raw), Path(file) if file else None)


def install(engine: Engine, keyring: Keyring) -> None:
    """Make the engine's encrypted columns use this keyring."""
    setattr(engine.dialect, _ATTR, keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring = getattr(dialect, _ATTR, None)
    if keyring is None:
        raise DataKeyError("no data key is installed on this database engine")
    return keyring


def is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value, stored as a JSON string holding its Fernet token."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return keyring_of(dialect).encrypt(text)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if is_token(value):
            return json.loads(keyring_of(dialect).decrypt(value))
        return value  # written before encryption (or None)


class EncryptedText(TypeDecorator[str]):
    """A text value, stored as its Fernet token. The empty string stays empty (it says
    nothing), so defaults such as `display_name = ""` need no key."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or value == "":
            return value
        return keyring_of(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if is_token(value):
            return keyring_of(dialect).decrypt(value)  # type: ignore[arg-type]
        return value

"""Small text helpers for Vietnamese input.

`fold` is the key every matcher uses: people type with or without diacritics, in NFC or NFD,
with odd punctuation and spacing, sometimes with Telex leftovers ("ddang" for "đang").
"""

from __future__ import annotations

import re
import unicodedata

_COMBINING = {cp: None for cp in range(0x0300, 0x0370)}
_FOLD_TABLE = str.maketrans({**_COMBINING, "đ": "d", "Đ": "d", "ð": "d", "_": " "})
_NOT_WORD = re.compile(r"[^\w\s]+")
_TELEX_DD = re.compile(r"\bdd(?=[a-z])")
_SPACES = re.compile(r"\s+")
# Characters never wanted in stored text: control and format characters (zero-width
# spaces, BOM, direction marks). Newlines and tabs are whitespace and get collapsed.
_CONTROL_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def fold(s: str) -> str:
    """A matching key: lower case, no diacritics, "đ" -> "d", punctuation -> spaces,
    whitespace collapsed. "Xã  Bắc-Ruộng!" -> "xa bac ruong"; "ddang" -> "dang"."""
    if not s:
        return ""
    s = unicodedata.normalize("NFD", s).lower().translate(_FOLD_TABLE)
    s = _NOT_WORD.sub(" ", s)
    s = " ".join(s.split())
    if "dd" in s:
        s = _TELEX_DD.sub("d", s)
    return s


def squash(s: str) -> str:
    """`fold` without any spaces, for names typed with odd spacing ("bacruong")."""
    return fold(s).replace(" ", "")


def clean_text(s: str, max_len: int | None = None) -> str:
    """NFC, control characters removed, whitespace collapsed to single spaces, stripped;
    cut to `max_len` characters when given."""
    s = nfc(s or "")
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in s if not ch.isspace()):
        s = "".join(
            ch for ch in s if ch.isspace() or unicodedata.category(ch) not in _CONTROL_CATEGORIES
        )
    s = _SPACES.sub(" ", s).strip()
    if max_len is not None and len(s) > max_len:
        s = s[:max_len].rstrip()
    return s


def has_letter_or_digit(s: str) -> bool:
    """True if `s` holds at least one letter or digit (not only punctuation or emoji)."""
    return any(ch.isalnum() for ch in s)

"""Small text helpers for Vietnamese input.

`fold` is the key every matcher uses: people type with or without diacritics, in NFC or NFD,
with odd punctuation and spacing, sometimes with Telex leftovers ("ddang" for "đang") or VNI
digits inside a word ("vie6t" for "việt"). The answer validators rely on it, so it stays
conservative: numbers, dates, ID numbers and codes come out as they went in.

`normalize` goes further for understanding free messages (`flows.intents`): it also drops
Telex vowel leftovers ("thaan" -> "than") and expands chat abbreviations from
`_shared/abbreviations.yaml` ("ko dc" -> "khong duoc", "bn tien" -> "bao nhieu tien").
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_COMBINING = {cp: None for cp in range(0x0300, 0x0370)}
_FOLD_TABLE = str.maketrans({**_COMBINING, "đ": "d", "Đ": "d", "ð": "d", "_": " "})
_NOT_WORD = re.compile(r"[^\w\s]+")
_TELEX_DD = re.compile(r"\bdd(?=[a-z])")
# VNI typing leftovers inside a word: tone/shape digits 1-8 right after a vowel, or 9 right
# after "d", with a letter following ("vie6t" -> "viet", "d9a8ng" -> "dang"). A digit after
# a consonant, or at the end of a word, is kept: "q1", "p12", "b2", "m12345678", "12a".
_VNI_INSIDE = re.compile(r"(?<=[aeiouy])[1-8]{1,2}(?=[a-z])|(?<=d)9(?=[a-z])")
_HAS_DIGIT = re.compile(r"[0-9]")
_SPACES = re.compile(r"\s+")
# Characters never wanted in stored text: control and format characters (zero-width
# spaces, BOM, direction marks). Newlines and tabs are whitespace and get collapsed.
_CONTROL_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def fold(s: str) -> str:
    """A matching key: lower case, no diacritics, "đ" -> "d", punctuation -> spaces,
    whitespace collapsed. "Xã  Bắc-Ruộng!" -> "xa bac ruong"; "ddang" -> "dang";
    "vie6t" -> "viet". Digits standing alone or after a consonant are kept."""
    if not s:
        return ""
    s = unicodedata.normalize("NFD", s).lower().translate(_FOLD_TABLE)
    s = _NOT_WORD.sub(" ", s)
    s = " ".join(s.split())
    if _HAS_DIGIT.search(s):
        s = _VNI_INSIDE.sub("", s)
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


# ---------------------------------------------------------------- normalize

_ABBREVIATIONS = Path(__file__).resolve().parent / "_shared" / "abbreviations.yaml"
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: much faster
_DOUBLE_VOWEL = re.compile(r"([aeo])\1")
_TELEX_W = re.compile(r"(?<=[aou])w")


@cache
def _abbreviations() -> tuple[dict[str, str], dict[tuple[str, ...], tuple[str, ...]], frozenset]:
    with _ABBREVIATIONS.open(encoding="utf-8") as fh:
        raw: dict[str, Any] = yaml.load(fh, Loader=_SAFE_LOADER) or {}  # noqa: S506
    words = {fold(str(k)): fold(str(v)) for k, v in (raw.get("words") or {}).items()}
    phrases = {
        tuple(fold(str(k)).split()): tuple(fold(str(v)).split())
        for k, v in (raw.get("phrases") or {}).items()
    }
    keep = frozenset(fold(str(w)) for w in raw.get("telex_keep") or [])
    return words, phrases, keep


def _telex(word: str, keep: frozenset) -> str:
    """Telex vowel leftovers in one word: "thaan" -> "than", "cuwowis" -> "cuois".
    Trailing tone letters ("giays") are left: the intent matcher repairs those only when
    the word without them is one it knows."""
    if word in keep or not word.isalpha():
        return word
    if "w" in word:
        word = _TELEX_W.sub("", word)
    return _DOUBLE_VOWEL.sub(r"\1", word)


def normalize(s: str) -> str:
    """`fold`, then Telex leftovers dropped and chat abbreviations expanded:
    "Ko biết đc ko?" -> "khong biet duoc khong"; "bn tien" -> "bao nhieu tien";
    "xin gks" -> "xin giay khai sinh". Numbers and codes are kept as `fold` leaves them."""
    tokens = fold(s).split()
    if not tokens:
        return ""
    words, phrases, keep = _abbreviations()
    longest = max((len(k) for k in phrases), default=0)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 1, -1):
            hit = phrases.get(tuple(tokens[i : i + n]))
            if hit is not None:
                out.extend(hit)
                i += n
                break
        else:
            word = tokens[i]
            expanded = words.get(word)
            if expanded is not None:
                out.append(expanded)
            else:
                out.append(_telex(word, keep))
            i += 1
    return " ".join(out)

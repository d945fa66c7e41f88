"""The 2025 administrative units: 34 provinces and 3,321 communes (xã, phường, đặc khu).

Data comes from the `vietnam-provinces` package. Two versions exist:

* 2026.x (Python >= 3.12) also carries the pre-2025 units (`vietnam_provinces.legacy`) and
  the conversion tables, so an old address ("xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận")
  can be converted to the current commune ("Xã Bắc Ruộng, tỉnh Lâm Đồng").
* 2025.10 (Python 3.11) has only the current units; `legacy_available()` is then False and
  `convert_legacy` returns nothing.

Both indexes are built lazily, once, behind a lock: call `warm_up()` from a background
thread at start-up to keep the first request fast. Built from the library, they are also
written (plain dicts and tuples, `marshal`) to `units-<key>-current.marshal` and
`units-<key>-legacy.marshal` in the cache directory: `MOTCUA_CACHE_DIR`, else
`$XDG_CACHE_HOME/motcua`, else `~/.cache/motcua` (read when the index is first needed). The
key hashes the library version, this file's and `procedures/text.py`'s source, the CCCD codes
CSV and the Python version, so any change starts a new file (old ones are left behind). A
later process loads the file and never imports `vietnam_provinces`: about 20 ms and 5 MB
instead of 300 ms and 27 MB. A missing, unreadable or corrupt cache is rebuilt from the
library (with a warning); an unwritable directory only means rebuilding in every process.

Matching works on folded tokens (`procedures.text.fold`): the text may carry a leading
house/hamlet detail, type words ("xã", "phường", "huyện"...), a province with or without
"tỉnh"/"thành phố"/"tp", in any punctuation. A named province restricts the search.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import marshal
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from procedures.text import fold, nfc

SHARED_DIR = Path(__file__).resolve().parent / "_shared"
CCCD_CODES_CSV = SHARED_DIR / "cccd_province_codes.csv"

log = logging.getLogger(__name__)

# Unit codes of one name: a bare int when there is one (most names), else a tuple.
_Codes = int | tuple[int, ...]

# Folded type words, in the order they are tried (longest first where they overlap).
_COMMUNE_MARKERS: dict[str, str] = {
    "dac khu": "dac khu",
    "thi tran": "thi tran",
    "phuong": "phuong",
    "xa": "xa",
    "p": "phuong",
    "tt": "thi tran",
}
_DISTRICT_MARKERS = ("thi xa", "huyen", "quan", "tx")
_PROVINCE_MARKERS = ("thanh pho", "tinh", "tp")
_HAMLET_MARKERS = (
    "to dan pho",
    "khu pho",
    "so nha",
    "thon",
    "ap",
    "xom",
    "ban",
    "to",
    "khu",
    "kp",
    "khom",
    "so",
    "duong",
    "ngo",
    "ngach",
    "hem",
    "kiet",
    "lang",
    "buon",
    "bon",
    "plei",
    "doi",
    "cum",
)
# Common short forms of province names (folded).
_PROVINCE_ALIASES: dict[str, str] = {
    "hcm": "ho chi minh",
    "tphcm": "ho chi minh",
    "sai gon": "ho chi minh",
    "hanoi": "ha noi",
    "danang": "da nang",
}
_COUNTRY = ("viet nam", "vietnam", "vn")
# Type words that never join a name when spaces are squeezed out ("p hoan" is not "phoan").
_MARKER_TOKENS = frozenset(
    {"p", "x", "q", "tt", "tx", "tp", "xa", "phuong", "huyen", "quan", "tinh", "thon", "ap"}
)
_MAX_TOKENS = 60
_PUNCT = re.compile(r"[^\w\s]+")

# Score weights (higher is better).
_W_TOKEN = 10  # per word of the matched name: longer names are more specific
_W_MARKER_SAME = 30  # "xã X" and X is a xã
_W_MARKER_OTHER = 15  # "phường X" and X is a xã (or an old "thị trấn")
_W_HAMLET = -40  # "thôn X": X names a hamlet here, not the commune
_W_OTHER_LEVEL = -40  # "huyện X" / "tỉnh X": X is a district or province here
_W_PROVINCE = 50  # the named province holds the unit
_W_DISTRICT = 50  # (legacy) the named district holds the old unit
_W_AT_END = 10  # the name ends the text or is followed by the province/district
_W_SQUASHED = -5  # matched only with spaces removed ("bacruong")
_W_MARKS = 5  # typed with diacritics: they match the name (+) or not (-)


@dataclass(frozen=True)
class Unit:
    """A current (2025) commune-level unit."""

    code: int
    name: str  # "Xã Bắc Ruộng"
    province_code: int
    province_name: str  # "Lâm Đồng" (no "Tỉnh"/"Thành phố")
    province_full: str  # "Tỉnh Lâm Đồng", "Thành phố Hà Nội"
    display: str  # "Xã Bắc Ruộng, tỉnh Lâm Đồng"


@dataclass(frozen=True)
class Lookup:
    """What a text names, for the commune validator."""

    units: tuple[Unit, ...]  # current communes that fit best (ties), best first
    provinces: tuple[int, ...]  # current provinces named outside the commune name
    only_province: str | None  # the province name when the text names only a province
    old_signal: bool  # district words or a pre-2025 province name: an old address
    explicit: bool = False  # the best name follows "xã"/"phường" or opens the text


# ---------------------------------------------------------------- helpers


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s else s


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def _strip_words(key: str, prefixes: Iterable[str]) -> str:
    for p in prefixes:
        if key.startswith(p + " ") and len(key) > len(p) + 1:
            return key[len(p) + 1 :]
    return key


def _ngrams(tokens: list[str], max_n: int) -> Iterator[tuple[int, int]]:
    for i in range(len(tokens)):
        for n in range(1, min(max_n, len(tokens) - i) + 1):
            yield i, i + n


def _tokens(text: str) -> list[str]:
    tokens = fold(text).split()[:_MAX_TOKENS]
    # a trailing country name carries no information
    while tokens:
        for c in _COUNTRY:
            cw = c.split()
            if tokens[-len(cw) :] == cw:
                del tokens[-len(cw) :]
                break
        else:
            break
    return tokens


def _marked(text: str, tokens: list[str]) -> list[str] | None:
    """The words of `text` with their diacritics (lower case), aligned with `tokens`;
    None if they do not line up."""
    words = _fold_marked(text)[: len(tokens)]
    if [fold(w) for w in words] != tokens:
        return None
    return words


def _fold_marked(text: str) -> list[str]:
    """Like `fold(text).split()` but keeping the diacritics: "Xã Bắc-Ruộng" -> ["xã",
    "bắc", "ruộng"]."""
    return [w for w in _PUNCT.sub(" ", nfc(text).lower().replace("_", " ")).split() if w]


def _typed_marked(marked: list[str] | None, span: tuple[int, int]) -> str | None:
    """The words at `span` as typed, with their diacritics; None when typed without them
    (nothing to compare) or when unknown."""
    if marked is None:
        return None
    typed = " ".join(marked[span[0] : span[1]])
    return None if typed.isascii() else typed


def _marks_score(typed: str, name: str) -> int:
    return _W_MARKS if typed == name else -_W_MARKS


def _bare_marked(name: str, kind: str) -> str:
    """The name without its type word, with diacritics: "Xã Bắc Ruộng" -> "bắc ruộng"."""
    return " ".join(_fold_marked(name)[len(kind.split()) :])


def _plain_marked(name: str, kind: str) -> str:
    """`_bare_marked` the quick way, right for all but a few dozen names (punctuation):
    those are kept in the indexes' `odd_marked`."""
    return " ".join(name.lower().split()[kind.count(" ") + 1 :])


def _odd_marked(code: int, name: str, kind: str, odd: dict[int, str]) -> None:
    marked = _bare_marked(name, kind)
    if marked != _plain_marked(name, kind):
        odd[code] = marked


def _codes(found: _Codes) -> tuple[int, ...]:
    return (found,) if isinstance(found, int) else found


def _pack(
    groups: dict[str, list[int]], seen: dict[tuple[int, ...], tuple[int, ...]]
) -> dict[str, _Codes]:
    """{key: [codes]} -> {key: code or (codes...)}; equal tuples are shared through `seen`."""
    out: dict[str, _Codes] = {}
    for key, codes in groups.items():
        if len(codes) == 1:
            out[key] = codes[0]
        else:
            t = tuple(codes)
            out[key] = seen.setdefault(t, t)
    return out


def _word_before(tokens: list[str], i: int, words: Iterable[str]) -> str | None:
    """The marker (one of `words`, possibly several tokens) right before position i."""
    for w in words:
        ww = w.split()
        if i >= len(ww) and tokens[i - len(ww) : i] == ww:
            return w
    return None


def _needs_marker(key: str) -> bool:
    # "1", "kép": a bare number or a very short name is too easily a house number or a
    # word of the detail; accept it only after "xã"/"phường".
    return key.replace(" ", "").isdigit() or len(key.replace(" ", "")) <= 2


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# ---------------------------------------------------------------- disk cache

_T = TypeVar("_T")
# what a damaged or foreign cache file can raise, from marshal or while unpacking it
_BAD_CACHE = (ValueError, EOFError, TypeError, KeyError, IndexError, AttributeError)


def _cache_dir() -> Path | None:
    """MOTCUA_CACHE_DIR, else $XDG_CACHE_HOME/motcua, else ~/.cache/motcua."""
    if env := os.environ.get("MOTCUA_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "motcua"
    try:
        return Path.home() / ".cache" / "motcua"
    except RuntimeError:  # no home directory: no cache
        return None


@cache
def _cache_key() -> str:
    """Everything the indexes depend on: the library's version (from its metadata, without
    importing it), this module's and `fold`'s source, the CCCD codes and the marshal format."""
    # imported here, not at the top: a few MB each in a process that has not loaded them yet
    # (the bot and the CLI have, through their other dependencies)
    import hashlib
    import importlib.metadata

    try:
        version = importlib.metadata.version("vietnam-provinces")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        version = "-"
    text_source = sys.modules[fold.__module__].__file__ or ""
    digest = hashlib.sha256()
    for part in (
        version.encode(),
        Path(__file__).read_bytes(),
        Path(text_source).read_bytes(),
        CCCD_CODES_CSV.read_bytes(),
        repr((sys.implementation.name, sys.version_info[:2], marshal.version)).encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def _cache_path(part: str) -> Path | None:
    folder = _cache_dir()
    return None if folder is None else folder / f"units-{_cache_key()}-{part}.marshal"


def _cached(
    part: str,
    build: Callable[[], _T],
    dump: Callable[[_T], dict[str, Any]],
    load: Callable[[dict[str, Any]], _T],
) -> _T:
    """The `part` index from its cache file, else built (and the cache written)."""
    path = _cache_path(part)
    if path is not None:
        try:
            key, data = marshal.loads(path.read_bytes())
            if key != _cache_key():
                raise ValueError("cache key mismatch")
            return load(data)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("units %s cache unreadable (%s): rebuilding", part, _why(error))
        except _BAD_CACHE as error:
            log.warning("units %s cache damaged (%s): rebuilding", part, type(error).__name__)
    index = build()
    if path is not None:
        _write_cache(path, (_cache_key(), dump(index)))
    return index


def _write_cache(path: Path, payload: tuple[str, dict[str, Any]]) -> None:
    """Write atomically: a temp file in the same folder, then `os.replace` (other processes
    may be reading or writing the same file)."""
    import tempfile

    tmp: str | None = None
    try:
        blob = marshal.dumps(payload)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
        tmp = None
    except (OSError, ValueError) as error:
        log.warning("units cache not written (%s)", _why(error))
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


def _why(error: Exception) -> str:
    # the error's kind and reason, never its paths (they can hold a user name)
    reason = error.strerror if isinstance(error, OSError) else None
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


# ---------------------------------------------------------------- current index


@dataclass
class _Current:
    units: dict[int, Unit]
    kinds: dict[int, str]  # unit code -> "xa" / "phuong" / "dac khu" (interned)
    odd_marked: dict[int, str]  # unit code -> `_bare_marked` where `_plain_marked` is wrong
    names: dict[str, _Codes]  # folded name without type word -> unit code(s)
    squashed: dict[str, _Codes]  # same without spaces
    provinces: dict[str, int]  # folded province name (and aliases) -> province code
    province_names: dict[int, str]  # province code -> short name
    old_provinces: dict[str, int]  # folded pre-2025 province names not current -> CCCD code
    max_words: int
    max_province_words: int
    legacy: bool  # the library carries the pre-2025 tables (see `legacy_available`)

    def marked(self, code: int) -> str:
        """The unit's name without its type word, with diacritics ("bắc ruộng")."""
        odd = self.odd_marked.get(code)
        return odd if odd is not None else _plain_marked(self.units[code].name, self.kinds[code])


_lock = threading.Lock()
_current: _Current | None = None
_legacy: _Legacy | None = None


def _province_words() -> tuple[str, str]:
    """The two level-1 type words, from the library's data ("tỉnh", "thành phố")."""
    from vietnam_provinces import VietNamDivisionType

    province_word = str(VietNamDivisionType.TINH.value)
    city_word = " ".join(str(VietNamDivisionType.THANH_PHO_TRUNG_UONG.value).split()[:2])
    return province_word, city_word


def _short_province(name: str, words: Iterable[str]) -> str:
    for w in words:
        if name.lower().startswith(w + " "):
            return name[len(w) + 1 :]
    return name


def _cccd_names() -> list[tuple[int, str]]:
    """The 63 pre-2025 provinces (CCCD code, name), from the copy of the domain CSV."""
    with CCCD_CODES_CSV.open(encoding="utf-8") as fh:
        return [(int(row["code"]), row["province_name_vi"]) for row in csv.DictReader(fh)]


def _build_current() -> _Current:
    from vietnam_provinces import Province, VietNamDivisionType, Ward

    province_word, city_word = _province_words()
    provinces: dict[int, tuple[str, str, str]] = {}  # code -> (short, full, in sentence)
    province_keys: dict[str, int] = {}
    for p in Province.iter_all():
        short = _short_province(p.name, (province_word, city_word))
        word = province_word if p.division_type == VietNamDivisionType.TINH else city_word
        provinces[int(p.code)] = (short, f"{_upper_first(word)} {short}", f"{word} {short}")
        province_keys[fold(short)] = int(p.code)
    for alias, target in _PROVINCE_ALIASES.items():
        if target in province_keys:
            province_keys[alias] = province_keys[target]

    units: dict[int, Unit] = {}
    kinds: dict[int, str] = {}
    odd_marked: dict[int, str] = {}
    names: dict[str, list[int]] = {}
    squashed: dict[str, list[int]] = {}
    for w in Ward.iter_all():
        code, pcode = int(w.code), int(w.province_code)
        short, full, in_sentence = provinces[pcode]
        units[code] = Unit(
            code=code,
            name=w.name,
            province_code=pcode,
            province_name=short,
            province_full=full,
            display=f"{w.name}, {in_sentence}",
        )
        kind = sys.intern(fold(str(w.division_type.value)))
        kinds[code] = kind
        _odd_marked(code, w.name, kind, odd_marked)
        key = _strip_words(fold(w.name), (kind,))
        names.setdefault(key, []).append(code)
        squashed.setdefault(key.replace(" ", ""), []).append(code)

    old = {fold(n): c for c, n in _cccd_names() if fold(n) not in province_keys}
    seen: dict[tuple[int, ...], tuple[int, ...]] = {}
    return _Current(
        units=units,
        kinds=kinds,
        odd_marked=odd_marked,
        names=_pack(names, seen),
        squashed=_pack(squashed, seen),
        provinces=province_keys,
        province_names={c: v[0] for c, v in provinces.items()},
        old_provinces=old,
        max_words=max(len(k.split()) for k in names),
        max_province_words=max(len(k.split()) for k in province_keys),
        legacy=_library_has_legacy(),
    )


def _dump_current(idx: _Current) -> dict[str, Any]:
    data = {f.name: getattr(idx, f.name) for f in fields(idx)}
    data["units"] = {
        c: (u.name, u.province_code, u.province_name, u.province_full, u.display)
        for c, u in idx.units.items()
    }
    return data


def _load_current(data: dict[str, Any]) -> _Current:
    units = {c: Unit(c, *t) for c, t in data["units"].items()}
    return _Current(**(data | {"units": units}))


def _index() -> _Current:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = _cached("current", _build_current, _dump_current, _load_current)
    return _current


@dataclass
class _Hit:
    span: tuple[int, int]
    code: int
    squashed: bool = False


def _find_hits(
    tokens: list[str], names: dict[str, _Codes], squashed: dict[str, _Codes], max_n: int
) -> list[_Hit]:
    hits: list[_Hit] = []
    for i, j in _ngrams(tokens, max_n):
        key = " ".join(tokens[i:j])
        codes = names.get(key)
        if codes is not None:
            hits.extend(_Hit((i, j), c) for c in _codes(codes))
            continue
        # "bacruong", "dak rong": the same name with other spacing (never across a type word)
        part = tokens[i:j]
        if j - i > 3 or any(t in _MARKER_TOKENS for t in part):
            continue
        joined = "".join(part)
        codes = squashed.get(joined) if len(joined) >= 5 else None
        if codes is not None:
            hits.extend(_Hit((i, j), c, squashed=True) for c in _codes(codes))
    return hits


def _accept(tokens: list[str], hit: _Hit, marker: int, higher: list[tuple[int, int]]) -> bool:
    """Whether a name found in the text can be the commune."""
    key = " ".join(tokens[hit.span[0] : hit.span[1]])
    if _needs_marker(key) and marker <= 0:
        return False
    if marker == _W_OTHER_LEVEL:  # "huyện X", "tỉnh X": X is a district or a province
        return False
    # "lam dong" is the province, not "Xã Đông" inside it; "Bắc Ruộng, Bình Thuận" names
    # the province Bình Thuận, not "Phường Bình Thuận". A name that opens the text stays
    # ("Lào Cai" alone is then dealt with as a province-only answer).
    if marker > 0:
        return True
    for s in higher:
        if s[0] <= hit.span[0] and hit.span[1] <= s[1] and (s != hit.span or s[0] > 0):
            return False
    return True


def _province_hits(
    tokens: list[str], keys: Mapping[str, _Codes], max_n: int
) -> list[tuple[tuple[int, int], int]]:
    """Places of a higher level (province, or district for old addresses) named in the
    tokens. A name right after "xã"/"phường" is a commune, not this; a bare number or a
    very short name counts only after "huyện"/"quận"/"tỉnh"..."""
    out: list[tuple[tuple[int, int], int]] = []
    for i, j in _ngrams(tokens, max_n):
        key = " ".join(tokens[i:j])
        found = keys.get(key)
        if found is None:
            continue
        if _word_before(tokens, i, _COMMUNE_MARKERS):
            continue
        if _needs_marker(key) and not _word_before(
            tokens, i, _DISTRICT_MARKERS + _PROVINCE_MARKERS
        ):
            continue
        for code in _codes(found):
            out.append(((i, j), code))
    return out


def _marker_score(tokens: list[str], i: int, kind: str) -> int:
    """Score for the type word right before a name (0 when there is none)."""
    m = _word_before(tokens, i, _COMMUNE_MARKERS)
    if m is not None:
        return _W_MARKER_SAME if _COMMUNE_MARKERS[m] == kind else _W_MARKER_OTHER
    if _word_before(tokens, i, _HAMLET_MARKERS):
        return _W_HAMLET
    if _word_before(tokens, i, _DISTRICT_MARKERS + _PROVINCE_MARKERS):
        return _W_OTHER_LEVEL
    return 0


def _at_end(tokens: list[str], j: int, follow: list[tuple[int, int]]) -> bool:
    """The name ends the text, or the province/district (or its type word) comes next."""
    if j >= len(tokens) or any(span[0] == j for span in follow):
        return True
    return any(
        tokens[j : j + len(w.split())] == w.split() for w in _PROVINCE_MARKERS + _DISTRICT_MARKERS
    )


def _weak(tokens: list[str], hit: _Hit, marker: int) -> bool:
    """A one-word name with nothing to back it ("chợ" in "nhà tôi ở gần chợ"): no type word
    before it, no province or district named, and other words around it."""
    return hit.span[1] - hit.span[0] == 1 and marker <= 0 and len(tokens) > 1


def _best(scored: dict[int, int]) -> list[int]:
    if not scored:
        return []
    top = max(scored.values())
    return [c for c, s in scored.items() if s == top]


def lookup(text: str) -> Lookup:
    """Current communes named in `text` (best ties), provinces named, and whether the text
    looks like a pre-2025 address."""
    idx = _index()
    tokens = _tokens(text)
    if not tokens:
        return Lookup((), (), None, False, False)
    marked = _marked(text, tokens)
    prov_hits = _province_hits(tokens, idx.provinces, idx.max_province_words)
    old_hits = _province_hits(tokens, idx.old_provinces, idx.max_province_words)
    higher = [s for s, _ in prov_hits + old_hits]

    scored: dict[int, int] = {}
    spans: dict[int, tuple[int, int]] = {}
    markers: dict[int, int] = {}
    for hit in _find_hits(tokens, idx.names, idx.squashed, idx.max_words):
        unit = idx.units[hit.code]
        marker = _marker_score(tokens, hit.span[0], idx.kinds[hit.code])
        if not _accept(tokens, hit, marker, higher):
            continue
        score = _W_TOKEN * (hit.span[1] - hit.span[0]) + marker
        named = {c for span, c in prov_hits if not _overlaps(span, hit.span)}
        if named:
            if unit.province_code not in named:
                continue  # a province was named and this commune is not in it
            score += _W_PROVINCE
        elif _weak(tokens, hit, marker):
            continue
        if _at_end(tokens, hit.span[1], higher):
            score += _W_AT_END
        if hit.squashed:
            score += _W_SQUASHED
        typed = _typed_marked(marked, hit.span)
        if typed is not None:
            score += _marks_score(typed, idx.marked(hit.code))
        if score > scored.get(hit.code, -(10**6)):
            scored[hit.code] = score
            spans[hit.code] = hit.span
            markers[hit.code] = marker

    best = sorted(_best(scored))
    units = tuple(idx.units[c] for c in best)
    used = spans[best[0]] if best else (0, 0)
    explicit = bool(best) and (markers[best[0]] > 0 or used[0] == 0)

    # what lies outside the commune name
    outside = [t if not (used[0] <= k < used[1]) else "" for k, t in enumerate(tokens)]
    named_provinces = tuple(
        dict.fromkeys(c for span, c in prov_hits if not (best and _overlaps(span, used)))
    )
    old_signal = _has_old_signal(outside, idx)

    only_province = None
    key = _strip_words(" ".join(tokens), _PROVINCE_MARKERS)
    if key in idx.provinces:
        only_province = idx.province_names[idx.provinces[key]]
        units = ()
    return Lookup(units, named_provinces, only_province, old_signal, explicit)


def _has_old_signal(outside: list[str], idx: _Current) -> bool:
    text = " " + " ".join(outside) + " "
    if any(f" {m} " in text for m in _DISTRICT_MARKERS + ("thi tran",)):
        return True
    if any(f" {name} " in text for name in idx.old_provinces):
        return True
    # "thành phố Phan Thiết": a city that is not a province was an old district
    for k in range(len(outside)):
        for m in ("thanh pho", "tp"):
            mw = m.split()
            if outside[k : k + len(mw)] == mw:
                after = outside[k + len(mw) :]
                if (
                    after
                    and after[0]
                    and not any(" ".join(after[:n]) in idx.provinces for n in range(1, 5))
                ):
                    return True
    # "quận 1", "q 3", "q1": old urban districts
    for k, t in enumerate(outside):
        if t == "q" and k + 1 < len(outside) and outside[k + 1].isdigit():
            return True
        if len(t) > 1 and t[0] == "q" and t[1:].isdigit():
            return True
    return False


def find_commune(text: str) -> list[Unit]:
    """Current communes named in `text`, the best fits (ties) first; [] if none."""
    return list(lookup(text).units)


def unit(code: int) -> Unit:
    """The current unit with this code (KeyError if unknown)."""
    return _index().units[int(code)]


def province_names() -> list[str]:
    """The 34 current province names, without "Tỉnh"/"Thành phố"."""
    return list(_index().province_names.values())


# ---------------------------------------------------------------- legacy (pre-2025)


class _OldWard(NamedTuple):
    name: str  # "Xã Măng Tố"
    kind: str  # "xa" / "phuong" / "thi tran" (interned)
    district: int
    province: int
    new: _Codes | tuple[()]  # the current unit(s) it went into; () for none


@dataclass
class _Legacy:
    wards: dict[int, _OldWard]  # old ward code -> ward
    odd_marked: dict[int, str]  # old ward code -> `_bare_marked` where `_plain_marked` is wrong
    names: dict[str, _Codes]
    squashed: dict[str, _Codes]
    districts: dict[str, _Codes]  # folded name without type word -> district code(s)
    district_names: dict[int, str]
    provinces: dict[str, _Codes]
    province_names: dict[int, str]
    max_words: int
    max_district_words: int
    max_province_words: int

    def marked(self, code: int) -> str:
        odd = self.odd_marked.get(code)
        w = self.wards[code]
        return odd if odd is not None else _plain_marked(w.name, w.kind)


def _library_has_legacy() -> bool:
    try:
        from vietnam_provinces import Ward
    except ImportError:  # pragma: no cover - the package is a dependency
        return False
    return (
        hasattr(Ward, "search_from_legacy")
        and hasattr(Ward, "get_legacy_sources")
        and importlib.util.find_spec("vietnam_provinces.legacy") is not None
    )


def legacy_available() -> bool:
    """True when the installed `vietnam-provinces` carries the pre-2025 tables (known from
    the current index, so from its cache without importing the library)."""
    return _index().legacy


def _build_legacy() -> _Legacy:
    from vietnam_provinces import Ward
    from vietnam_provinces import legacy as old

    province_names = {int(p.code): p.name for p in old.Province.iter_all()}
    provinces: dict[str, list[int]] = {}
    for code, name in province_names.items():
        key = _strip_words(fold(name), _PROVINCE_MARKERS)
        provinces.setdefault(key, []).append(code)
    # one int object per code, shared by every ward that refers to it
    province_code = {c: c for c in province_names}
    district_names: dict[int, str] = {}
    district_province: dict[int, int] = {}
    districts: dict[str, list[int]] = {}
    for d in old.District.iter_all():
        code = int(d.code)
        district_names[code] = d.name
        district_province[code] = province_code.get(int(d.province_code), int(d.province_code))
        key = _strip_words(fold(d.name), ("thanh pho", "thi xa", "huyen", "quan"))
        districts.setdefault(key, []).append(code)
    district_code = {c: c for c in district_names}
    old_to_new: dict[int, list[int]] = {}
    for nw in Ward.iter_all():
        new_code = int(nw.code)
        for src in nw.get_legacy_sources():
            old_to_new.setdefault(int(src.code), []).append(new_code)
    wards: dict[int, _OldWard] = {}
    odd_marked: dict[int, str] = {}
    names: dict[str, list[int]] = {}
    squashed: dict[str, list[int]] = {}
    seen: dict[tuple[int, ...], tuple[int, ...]] = {}
    for w in old.Ward.iter_all():
        code, dcode = int(w.code), district_code[int(w.district_code)]
        kind = sys.intern(fold(str(w.division_type.value)))
        new = old_to_new.get(code, ())
        if len(new) == 1:
            new = new[0]
        elif new:
            new = seen.setdefault(tuple(new), tuple(new))
        wards[code] = _OldWard(w.name, kind, dcode, district_province[dcode], new)
        _odd_marked(code, w.name, kind, odd_marked)
        key = _strip_words(fold(w.name), (kind,))
        names.setdefault(key, []).append(code)
        squashed.setdefault(key.replace(" ", ""), []).append(code)
    return _Legacy(
        wards=wards,
        odd_marked=odd_marked,
        names=_pack(names, seen),
        squashed=_pack(squashed, seen),
        districts=_pack(districts, seen),
        district_names=district_names,
        provinces=_pack(provinces, seen),
        province_names=province_names,
        max_words=max(len(k.split()) for k in names),
        max_district_words=max(len(k.split()) for k in districts),
        max_province_words=max(len(k.split()) for k in provinces),
    )


def _dump_legacy(lg: _Legacy) -> dict[str, Any]:
    data = {f.name: getattr(lg, f.name) for f in fields(lg)}
    data["wards"] = {c: tuple(w) for c, w in lg.wards.items()}  # marshal: plain tuples only
    return data


def _load_legacy(data: dict[str, Any]) -> _Legacy:
    wards = {c: _OldWard(*t) for c, t in data["wards"].items()}
    return _Legacy(**(data | {"wards": wards}))


def _legacy_index() -> _Legacy | None:
    global _legacy
    if not legacy_available():
        return None
    if _legacy is None:
        with _lock:
            if _legacy is None:
                _legacy = _cached("legacy", _build_legacy, _dump_legacy, _load_legacy)
    return _legacy


def _old_display(w: _OldWard, lg: _Legacy) -> str:
    return ", ".join(
        [
            w.name,
            _lower_first(lg.district_names[w.district]),
            _lower_first(lg.province_names[w.province]),
        ]
    )


def convert_legacy(text: str) -> list[tuple[Unit, str]]:
    """Current communes for an old (pre-2025) address, best fits first, each with the old
    unit's full name ("Xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận"). [] when the legacy
    tables are not installed or nothing fits."""
    lg = _legacy_index()
    if lg is None:
        return []
    idx = _index()
    tokens = _tokens(text)
    if not tokens:
        return []
    marked = _marked(text, tokens)
    district_hits = _province_hits(tokens, lg.districts, lg.max_district_words)
    province_hits = _province_hits(tokens, lg.provinces, lg.max_province_words)
    current_hits = _province_hits(tokens, idx.provinces, idx.max_province_words)
    # "Kép, Bắc Giang": Bắc Giang is the province here, not the city of the same name
    province_spans = {s for s, _ in province_hits + current_hits}
    district_hits = [
        (s, c)
        for s, c in district_hits
        if s not in province_spans
        or _word_before(tokens, s[0], _DISTRICT_MARKERS + ("tp",))
        or _word_before(tokens, s[0], ("thanh pho",))
    ]
    follow = [s for s, _ in district_hits + province_hits + current_hits]

    scored: dict[int, int] = {}
    for hit in _find_hits(tokens, lg.names, lg.squashed, lg.max_words):
        w = lg.wards[hit.code]
        if not w.new:
            continue
        marker = _marker_score(tokens, hit.span[0], w.kind)
        if not _accept(tokens, hit, marker, follow):
            continue
        score = _W_TOKEN * (hit.span[1] - hit.span[0]) + marker
        dists = {c for span, c in district_hits if not _overlaps(span, hit.span)}
        provs = {c for span, c in province_hits if not _overlaps(span, hit.span)}
        news = {c for span, c in current_hits if not _overlaps(span, hit.span)}
        if dists:
            if w.district not in dists:
                continue  # a district was named and this old unit is not in it
            score += _W_DISTRICT
        if provs or news:
            in_new = {idx.units[c].province_code for c in _codes(w.new)}
            if w.province in provs or in_new & news:
                score += _W_PROVINCE
            else:
                continue
        elif not dists and _weak(tokens, hit, marker):
            continue
        if _at_end(tokens, hit.span[1], follow):
            score += _W_AT_END
        if hit.squashed:
            score += _W_SQUASHED
        typed = _typed_marked(marked, hit.span)
        if typed is not None:
            score += _marks_score(typed, lg.marked(hit.code))
        scored[hit.code] = max(score, scored.get(hit.code, -(10**6)))

    out: list[tuple[Unit, str]] = []
    seen: set[int] = set()
    for old_code in sorted(_best(scored)):
        w = lg.wards[old_code]
        for new_code in _codes(w.new):
            if new_code in seen:
                continue
            seen.add(new_code)
            out.append((idx.units[new_code], _old_display(w, lg)))
    return out


def warm_up() -> None:
    """Build the indexes now (call from a background thread at start-up)."""
    _index()
    _legacy_index()

"""The 2025 administrative units: 34 provinces and 3,321 communes (xã, phường, đặc khu).

Data comes from the `vietnam-provinces` package. Two versions exist:

* 2026.x (Python >= 3.12) also carries the pre-2025 units (`vietnam_provinces.legacy`) and
  the conversion tables, so an old address ("xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận")
  can be converted to the current commune ("Xã Bắc Ruộng, tỉnh Lâm Đồng").
* 2025.10 (Python 3.11) has only the current units; `legacy_available()` is then False and
  `convert_legacy` returns nothing.

Both indexes are built lazily, once, behind a lock. The legacy one takes about a second:
call `warm_up()` from a background thread at start-up to keep the first request fast.

Matching works on folded tokens (`procedures.text.fold`): the text may carry a leading
house/hamlet detail, type words ("xã", "phường", "huyện"...), a province with or without
"tỉnh"/"thành phố"/"tp", in any punctuation. A named province restricts the search.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from procedures.text import fold, nfc

SHARED_DIR = Path(__file__).resolve().parent / "_shared"
CCCD_CODES_CSV = SHARED_DIR / "cccd_province_codes.csv"

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


def _marks_score(marked: list[str] | None, span: tuple[int, int], name: str) -> int:
    if marked is None:
        return 0
    typed = " ".join(marked[span[0] : span[1]])
    if typed.isascii():
        return 0  # typed without diacritics: nothing to compare
    return _W_MARKS if typed == name else -_W_MARKS


def _bare_marked(name: str, kind: str) -> str:
    """The name without its type word, with diacritics: "Xã Bắc Ruộng" -> "bắc ruộng"."""
    return " ".join(_fold_marked(name)[len(kind.split()) :])


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


# ---------------------------------------------------------------- current index


@dataclass
class _Current:
    units: dict[int, Unit]
    kinds: dict[int, str]  # unit code -> "xa" / "phuong" / "dac khu"
    marked: dict[int, str]  # unit code -> name without type word, with diacritics
    names: dict[str, list[int]]  # folded name without type word -> unit codes
    squashed: dict[str, list[int]]  # same without spaces
    provinces: dict[str, int]  # folded province name (and aliases) -> province code
    province_names: dict[int, str]  # province code -> short name
    old_provinces: dict[str, int]  # folded pre-2025 province names not current -> CCCD code
    max_words: int
    max_province_words: int


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
    marked: dict[int, str] = {}
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
        kind = fold(str(w.division_type.value))
        kinds[code] = kind
        marked[code] = _bare_marked(w.name, kind)
        key = _strip_words(fold(w.name), (kind,))
        names.setdefault(key, []).append(code)
        squashed.setdefault(key.replace(" ", ""), []).append(code)

    old = {fold(n): c for c, n in _cccd_names() if fold(n) not in province_keys}
    return _Current(
        units=units,
        kinds=kinds,
        marked=marked,
        names=names,
        squashed=squashed,
        provinces=province_keys,
        province_names={c: v[0] for c, v in provinces.items()},
        old_provinces=old,
        max_words=max(len(k.split()) for k in names),
        max_province_words=max(len(k.split()) for k in province_keys),
    )


def _index() -> _Current:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = _build_current()
    return _current


@dataclass
class _Hit:
    span: tuple[int, int]
    code: int
    squashed: bool = False


def _find_hits(
    tokens: list[str], names: dict[str, list[int]], squashed: dict[str, list[int]], max_n: int
) -> list[_Hit]:
    hits: list[_Hit] = []
    for i, j in _ngrams(tokens, max_n):
        key = " ".join(tokens[i:j])
        codes = names.get(key)
        if codes:
            hits.extend(_Hit((i, j), c) for c in codes)
            continue
        # "bacruong", "dak rong": the same name with other spacing (never across a type word)
        part = tokens[i:j]
        if j - i > 3 or any(t in _MARKER_TOKENS for t in part):
            continue
        joined = "".join(part)
        codes = squashed.get(joined) if len(joined) >= 5 else None
        if codes:
            hits.extend(_Hit((i, j), c, squashed=True) for c in codes)
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
    tokens: list[str], keys: dict[str, int] | dict[str, list[int]], max_n: int
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
        for code in found if isinstance(found, list) else [found]:
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
        score += _marks_score(marked, hit.span, idx.marked[hit.code])
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


@dataclass
class _OldWard:
    code: int
    name: str
    kind: str
    district: int
    province: int
    marked: str


@dataclass
class _Legacy:
    wards: dict[int, _OldWard]
    names: dict[str, list[int]]
    squashed: dict[str, list[int]]
    districts: dict[str, list[int]]  # folded name without type word -> district codes
    district_names: dict[int, str]
    provinces: dict[str, list[int]]
    province_names: dict[int, str]
    old_to_new: dict[int, list[int]]  # old ward code -> current unit codes
    max_words: int
    max_district_words: int
    max_province_words: int


@cache
def legacy_available() -> bool:
    """True when the installed `vietnam-provinces` carries the pre-2025 tables."""
    try:
        from vietnam_provinces import Ward
    except ImportError:  # pragma: no cover - the package is a dependency
        return False
    return (
        hasattr(Ward, "search_from_legacy")
        and hasattr(Ward, "get_legacy_sources")
        and importlib.util.find_spec("vietnam_provinces.legacy") is not None
    )


def _build_legacy() -> _Legacy:
    from vietnam_provinces import Ward
    from vietnam_provinces import legacy as old

    province_names = {int(p.code): p.name for p in old.Province.iter_all()}
    provinces: dict[str, list[int]] = {}
    for code, name in province_names.items():
        key = _strip_words(fold(name), _PROVINCE_MARKERS)
        provinces.setdefault(key, []).append(code)
    district_names: dict[int, str] = {}
    district_province: dict[int, int] = {}
    districts: dict[str, list[int]] = {}
    for d in old.District.iter_all():
        code = int(d.code)
        district_names[code] = d.name
        district_province[code] = int(d.province_code)
        key = _strip_words(fold(d.name), ("thanh pho", "thi xa", "huyen", "quan"))
        districts.setdefault(key, []).append(code)
    wards: dict[int, _OldWard] = {}
    names: dict[str, list[int]] = {}
    squashed: dict[str, list[int]] = {}
    for w in old.Ward.iter_all():
        code, dcode = int(w.code), int(w.district_code)
        kind = fold(str(w.division_type.value))
        wards[code] = _OldWard(
            code, w.name, kind, dcode, district_province[dcode], _bare_marked(w.name, kind)
        )
        key = _strip_words(fold(w.name), (kind,))
        names.setdefault(key, []).append(code)
        squashed.setdefault(key.replace(" ", ""), []).append(code)
    old_to_new: dict[int, list[int]] = {}
    for nw in Ward.iter_all():
        for src in nw.get_legacy_sources():
            old_to_new.setdefault(int(src.code), []).append(int(nw.code))
    return _Legacy(
        wards=wards,
        names=names,
        squashed=squashed,
        districts=districts,
        district_names=district_names,
        provinces=provinces,
        province_names=province_names,
        old_to_new=old_to_new,
        max_words=max(len(k.split()) for k in names),
        max_district_words=max(len(k.split()) for k in districts),
        max_province_words=max(len(k.split()) for k in provinces),
    )


def _legacy_index() -> _Legacy | None:
    global _legacy
    if not legacy_available():
        return None
    if _legacy is None:
        with _lock:
            if _legacy is None:
                _legacy = _build_legacy()
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
        if not lg.old_to_new.get(w.code):
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
            in_new = {idx.units[c].province_code for c in lg.old_to_new[w.code]}
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
        score += _marks_score(marked, hit.span, w.marked)
        scored[w.code] = max(score, scored.get(w.code, -(10**6)))

    out: list[tuple[Unit, str]] = []
    seen: set[int] = set()
    for old_code in sorted(_best(scored)):
        w = lg.wards[old_code]
        for new_code in lg.old_to_new[old_code]:
            if new_code in seen:
                continue
            seen.add(new_code)
            out.append((idx.units[new_code], _old_display(w, lg)))
    return out


def warm_up() -> None:
    """Build the indexes now (call from a background thread at start-up)."""
    _index()
    _legacy_index()

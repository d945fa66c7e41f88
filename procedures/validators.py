"""Parse and check what a person typed (or the label of the button they pressed).

`validate(field, raw, answers, today)` parses `raw` by the field's type, then runs each
named validator of the field whose `when` holds. It returns a `procedures.results` outcome:
`Valid(value, display)` (value is JSON-serialisable and stored), `Invalid(code, params)`
(`code` names a macro in `_shared/templates/errors.j2`), `Ambiguous(options)` or
`Confirm(candidate, code, params)`.

Named validators live in `VALIDATORS`, so procedure YAML can name them:

    validators:
      - past_date
      - min_age: {years: 18}
      - after: {field: subject_birth_date, label: "ngày sinh"}
      - id_number: {type_field: subject_id_type, gender_field: subject_gender,
                    birth_date_field: subject_birth_date}
      - max_length: {n: 120}       # text and name fields
      - min: {n: 1}                # number fields; also max: {n: 10}
      - allow_year_only            # a date field may take "1928"

`check_spec(field)` is what the procedure linter calls: unknown names, missing or unknown
parameters, a validator on a field type it does not apply to. `error_codes()` lists every
code returned here; each has a macro in errors.j2 (tests/test_validators.py checks it).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from procedures import conditions, units
from procedures.model import FieldSpec, ValidatorSpec
from procedures.results import Ambiguous, Confirm, Invalid, Outcome, Valid
from procedures.text import clean_text, fold, has_letter_or_digit, nfc

SHARED_DIR = Path(__file__).resolve().parent / "_shared"

TEXT_MAX = 200
NAME_MAX = 100
MAX_OPTIONS = 6  # Ambiguous answers offer at most this many options
MIN_YEAR, MAX_YEAR = 1850, 2100

# Choice ids of the ID-type field (procedure YAML) and what they expect.
PERSONAL_ID_TYPES = frozenset(
    {"the_can_cuoc", "cccd", "can_cuoc_dien_tu", "giay_chung_nhan_can_cuoc"}
)
OLD_ID_TYPE = "cmnd"  # 9 digits, or 12 for the last CMND cards
PASSPORT_TYPE = "ho_chieu"  # a Vietnamese passport: one letter + 7 digits

ERROR_CODES = frozenset(
    {
        # used by the engine as well
        "required",
        "not_text",
        "too_long",
        # name
        "name_digits",
        "name_symbols",
        "name_too_short",
        "name_not_name",
        # date
        "date_format",
        "date_invalid",
        "date_need_full",
        "date_year",
        "date_future",
        "date_before",
        "too_young",
        "too_old",
        # choice, yes/no, number
        "choice_unknown",
        "yesno_unknown",
        "number_format",
        "number_min",
        "number_max",
        # identity numbers
        "id_not_digits",
        "id_length",
        "id_cmnd_length",
        "id_passport_format",
        "id_other_format",
        "id_province_unknown",
        "id_century",
        "id_gender_mismatch",
        "id_birth_year_mismatch",
        # phone, email
        "phone_format",
        "phone_foreign",
        "phone_landline",
        "phone_old",
        "phone_length",
        "phone_invalid",
        "email_format",
        # commune
        "commune_unknown",
        "commune_need_commune",
        "commune_old_unsupported",
        "commune_converted",
        "name_no_diacritics",
    }
)


def error_codes() -> set[str]:
    """Every Invalid/Confirm code this module can return (each has a macro in errors.j2)."""
    return set(ERROR_CODES)


# ---------------------------------------------------------------- shared data


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: much faster


@cache
def _yaml(name: str) -> Any:
    with (SHARED_DIR / name).open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


@cache
def _keywords() -> dict[str, frozenset[str]]:
    """keywords.yaml, folded (entries like "co ạ" become "co a")."""
    raw = _yaml("keywords.yaml") or {}
    return {key: frozenset(fold(p) for p in phrases if fold(p)) for key, phrases in raw.items()}


def _ui() -> dict[str, Any]:
    return _yaml("ui.yaml")


@cache
def cccd_province_codes() -> dict[str, str]:
    """The 63 province codes that open a 12-digit ID number -> province name.
    From `_shared/cccd_province_codes.csv` (a copy of the domain file)."""
    with (SHARED_DIR / "cccd_province_codes.csv").open(encoding="utf-8") as fh:
        return {row["code"]: row["province_name_vi"] for row in csv.DictReader(fh)}


@cache
def phone_prefixes() -> frozenset[str]:
    data = _yaml("phone_prefixes.yaml")
    return frozenset(p for prefixes in data["networks"].values() for p in prefixes)


# Folded answers that are never a person's name (besides the command phrases of
# keywords.yaml such as "khong biet", "bo qua", "huong dan").
_NOT_NAMES = frozenset(
    {
        "khong",
        "ko",
        "k",
        "co",
        "chua",
        "roi",
        "ok",
        "khong ro",
        "ko ro",
        "k ro",
        "chua biet",
        "khong co",
        "ten",
        "ho ten",
        "ho va ten",
        "ten toi",
        "toi",
        "test",
        "abc",
        "asdf",
        "xyz",
        "me toi",
        "bo toi",
        "cha toi",
        "ba toi",
    }
)
_NAME_COMMAND_LISTS = (
    "back",
    "skip",
    "help",
    "documents",
    "officer",
    "pause",
    "cancel",
    "menu",
)


@cache
def _non_names() -> frozenset[str]:
    kw = _keywords()
    out = set(_NOT_NAMES)
    for key in _NAME_COMMAND_LISTS:
        out |= kw.get(key, frozenset())
    return frozenset(out)


# ---------------------------------------------------------------- registry


ValidatorFn = Callable[[Valid, Mapping[str, Any], FieldSpec, Mapping[str, Any], dt.date], Any]


@dataclass(frozen=True)
class _Meta:
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    types: tuple[str, ...] | None = None  # field types it applies to (None: any)
    ints: tuple[str, ...] = ()  # parameters that must be whole numbers


VALIDATORS: dict[str, ValidatorFn] = {}
_META: dict[str, _Meta] = {}


def validator(
    name: str,
    *,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    types: tuple[str, ...] | None = None,
    ints: tuple[str, ...] = (),
) -> Callable[[ValidatorFn], ValidatorFn]:
    """Register a named validator. It gets (valid, params, field, answers, today) and
    returns an Invalid, or None when the answer passes."""

    def register(fn: ValidatorFn) -> ValidatorFn:
        VALIDATORS[name] = fn
        _META[name] = _Meta(required, optional, types, ints)
        return fn

    return register


def known_validators() -> set[str]:
    return set(VALIDATORS)


def check_spec(field: FieldSpec) -> list[str]:
    """Problems with a field's validators, for the procedure linter ([] if none)."""
    problems: list[str] = []
    for spec in field.validators:
        meta = _META.get(spec.name)
        if meta is None:
            problems.append(
                f"unknown validator {spec.name!r} (known: {', '.join(sorted(VALIDATORS))})"
            )
            continue
        for p in meta.required:
            if p not in spec.params:
                problems.append(f"validator {spec.name!r} needs parameter {p!r}")
        allowed = set(meta.required) | set(meta.optional)
        for p in spec.params:
            if p not in allowed:
                problems.append(f"validator {spec.name!r} has unknown parameter {p!r}")
        for p in meta.ints:
            v = spec.params.get(p)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                problems.append(f"validator {spec.name!r}: {p!r} must be a whole number")
        if meta.types is not None and field.type not in meta.types:
            problems.append(
                f"validator {spec.name!r} does not apply to a {field.type!r} field"
                f" (only {', '.join(meta.types)})"
            )
    if field.type == "computed" and field.validators:
        problems.append("a computed field is never validated: remove its validators")
    return problems


def _spec(active: list[ValidatorSpec], name: str) -> ValidatorSpec | None:
    for s in active:
        if s.name == name:
            return s
    return None


def _param(active: list[ValidatorSpec], name: str, key: str, default: Any = None) -> Any:
    s = _spec(active, name)
    if s is None:
        return default
    return s.params.get(key, default)


# ---------------------------------------------------------------- entry point


def validate(field: FieldSpec, raw: str, answers: Mapping[str, Any], today: dt.date) -> Outcome:
    """Parse `raw` for `field`, then run the field's validators whose `when` holds."""
    if field.type == "computed":
        raise ValueError(f"field {field.id}: a computed field is never validated")
    active = [v for v in field.validators if conditions.holds(v.when, answers, today)]
    if field.type == "info":
        return Valid("ok", _ui()["buttons"]["ok"])
    raw = raw or ""
    if not clean_text(raw):
        return Invalid("required")
    outcome = _PARSERS[field.type](field, raw, active, answers, today)
    if not isinstance(outcome, Valid):
        return outcome
    for spec in active:
        fn = VALIDATORS.get(spec.name)
        if fn is None:
            raise KeyError(f"field {field.id}: unknown validator {spec.name!r}")
        problem = fn(outcome, spec.params, field, answers, today)
        if problem is not None:
            return problem
    return outcome


# ---------------------------------------------------------------- text and names


def _parse_text(field, raw, active, answers, today) -> Outcome:
    limit = int(_param(active, "max_length", "n", TEXT_MAX))
    s = clean_text(raw)
    if not has_letter_or_digit(s):
        return Invalid("not_text")
    if len(s) > limit:
        return Invalid("too_long", {"max": limit})
    return Valid(s, s)


_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_HYPHENS = str.maketrans({"‐": "-", "‑": "-", "–": "-", "—": "-"})
_NAME_PART = re.compile(r"([-'])")


def _capitalise(word: str) -> str:
    return "".join(p.capitalize() if p not in "-'" else p for p in _NAME_PART.split(word))


def _parse_name(field, raw, active, answers, today) -> Outcome:
    limit = int(_param(active, "max_length", "n", NAME_MAX))
    s = clean_text(raw).translate(_APOSTROPHES).translate(_HYPHENS)
    if len(s) > limit:
        return Invalid("too_long", {"max": limit})
    if any(ch.isdigit() for ch in s):
        return Invalid("name_digits")
    for ch in s:
        if not (ch.isalpha() or ch in " -'" or unicodedata.category(ch).startswith("M")):
            return Invalid("name_symbols")
    words = [w.strip("-'") for w in s.split(" ")]
    words = [w for w in words if w]
    if sum(ch.isalpha() for ch in s) < 2:
        return Invalid("name_too_short")
    if fold(s) in _non_names():
        return Invalid("name_not_name")
    name = nfc(" ".join(_capitalise(w) for w in words))
    if name.isascii() and len(words) >= 2:
        # typed without diacritics: papers carry them, so ask before keeping it so
        return Confirm(Valid(name, name), "name_no_diacritics", {"name": name})
    return Valid(name, name)


# ---------------------------------------------------------------- dates

# Folded words people put around a date: "ngày 12 tháng 3 năm 1990", "sinh ngày ...".
_DATE_WORDS = frozenset({"ngay", "thang", "nam", "sinh", "vao", "la", "luc", "sn", "ns", "dob"})


def _digits(s: str) -> bool:
    """ASCII digits only ("¹" and "٣" are digits to str.isdigit, not to a form)."""
    return s.isascii() and s.isdigit()


def _full_year(y: str, today: dt.date) -> int | None:
    if len(y) == 4:
        return int(y)
    if len(y) == 2:
        yy = int(y)
        return 2000 + yy if yy <= today.year % 100 else 1900 + yy
    return None


def _make_date(d: str, m: str, y: str, today: dt.date) -> dt.date | Invalid:
    if not (1 <= len(d) <= 2 and 1 <= len(m) <= 2):
        return Invalid("date_format")
    year = _full_year(y, today)
    if year is None:
        return Invalid("date_format")
    if not MIN_YEAR <= year <= MAX_YEAR:
        return Invalid("date_year", {"year": year})
    day, month = int(d), int(m)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return Invalid("date_invalid", {"day": day, "month": month, "year": year})


def parse_date(raw: str, today: dt.date, allow_year_only: bool = False) -> Outcome:
    """Day-month-year in every way people type it (never month first)."""
    tokens = [t for t in fold(raw).split() if t not in _DATE_WORDS]
    if not tokens or not all(_digits(t) for t in tokens):
        return Invalid("date_format")
    result: dt.date | Invalid
    if len(tokens) == 3:
        a, b, c = tokens
        result = _make_date(c, b, a, today) if len(a) == 4 else _make_date(a, b, c, today)
    elif len(tokens) == 1 and len(tokens[0]) == 8:
        t = tokens[0]
        result = _make_date(t[:2], t[2:4], t[4:], today)
        if isinstance(result, Invalid):  # 19900312: year first
            alt = _make_date(t[6:], t[4:6], t[:4], today)
            if isinstance(alt, dt.date):
                result = alt
    elif len(tokens) == 1 and len(tokens[0]) == 6:
        t = tokens[0]
        result = _make_date(t[:2], t[2:4], t[4:], today)
    elif len(tokens) == 1 and len(tokens[0]) == 4:
        year = int(tokens[0])
        if not allow_year_only:
            return Invalid("date_need_full")
        if not MIN_YEAR <= year <= MAX_YEAR:
            return Invalid("date_year", {"year": year})
        return Valid(str(year), str(year))
    elif len(tokens) == 2 and len(tokens[-1]) in (2, 4) and len(tokens[0]) <= 2:
        return Invalid("date_need_full")  # "3/1990": month and year only
    else:
        return Invalid("date_format")
    if isinstance(result, Invalid):
        return result
    return Valid(result.isoformat(), result.strftime("%d/%m/%Y"))


def _parse_date_field(field, raw, active, answers, today) -> Outcome:
    return parse_date(raw, today, allow_year_only=_spec(active, "allow_year_only") is not None)


def _year_only(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 4 and _digits(value)


def _date_of(value: Any) -> dt.date | None:
    return conditions.parse_stored_date(value)


@validator("allow_year_only", types=("date",))
def _v_allow_year_only(valid, params, field, answers, today):
    return None  # a flag read by the date parser


@validator("past_date", types=("date",))
@validator("not_future", types=("date",))
def _v_past_date(valid, params, field, answers, today):
    if _year_only(valid.value):
        future = int(valid.value) > today.year
    else:
        d = _date_of(valid.value)
        future = d is not None and d > today
    return Invalid("date_future") if future else None


def _age_range(value: Any, today: dt.date) -> tuple[int, int] | None:
    """The youngest and oldest whole age possible for a stored date (a year-only record
    leaves a one-year range)."""
    if _year_only(value):
        oldest = today.year - int(value)
        return max(oldest - 1, 0), oldest
    d = _date_of(value)
    if d is None:
        return None
    age = conditions.years_between(d, today)
    return age, age


@validator("min_age", required=("years",), types=("date",), ints=("years",))
def _v_min_age(valid, params, field, answers, today):
    ages = _age_range(valid.value, today)
    years = int(params["years"])
    if ages is not None and ages[1] < years:
        return Invalid("too_young", {"years": years})
    return None


@validator("max_age", required=("years",), types=("date",), ints=("years",))
def _v_max_age(valid, params, field, answers, today):
    ages = _age_range(valid.value, today)
    years = int(params["years"])
    if ages is not None and ages[0] > years:
        return Invalid("too_old", {"years": years})
    return None


@validator("after", required=("field", "label"), types=("date",))
def _v_after(valid, params, field, answers, today):
    other = answers.get(params["field"])
    mine, theirs = _date_of(valid.value), _date_of(other)
    if mine is None or theirs is None:
        return None
    if _year_only(valid.value) or _year_only(other):
        before = mine.year < theirs.year
        shown = str(theirs.year)
    else:
        before = mine < theirs
        shown = theirs.strftime("%d/%m/%Y")
    if before:
        return Invalid("date_before", {"label": params["label"], "date": shown})
    return None


# ---------------------------------------------------------------- choices


_FORMS: dict[int, tuple[FieldSpec, list[tuple[Any, list[str]]]]] = {}


def _choice_forms(field: FieldSpec) -> list[tuple[Any, list[str]]]:
    """Folded forms of every choice, computed once per field (fields are immutable)."""
    hit = _FORMS.get(id(field))
    if hit is not None and hit[0] is field:
        return hit[1]
    out = []
    for c in field.choices:
        forms = [fold(x) for x in (c.label, c.value or "", *c.synonyms, c.id.replace("_", " "))]
        out.append((c, [f for f in forms if f]))
    if len(_FORMS) > 4096:
        _FORMS.clear()
    _FORMS[id(field)] = (field, out)
    return out


def _choice_outcome(field: FieldSpec, found: list[Any]) -> Outcome:
    if len(found) == 1:
        return Valid(found[0].id, found[0].text)
    return Ambiguous(tuple(Valid(c.id, c.text) for c in found[:MAX_OPTIONS]))


def _parse_choice(field, raw, active, answers, today) -> Outcome:
    f = fold(raw)
    squashed = f.replace(" ", "")
    forms = _choice_forms(field)
    exact = [
        c
        for c, fs in forms
        if f in fs or (squashed and squashed in {x.replace(" ", "") for x in fs})
    ]
    if exact:
        return _choice_outcome(field, exact)
    if _digits(f) and 1 <= int(f) <= len(field.choices):
        return _choice_outcome(field, [field.choices[int(f) - 1]])
    if len(f) >= 3:
        # the start of a word of a label: "ly hon" -> "Đã ly hôn", "doc th" -> "Độc thân"
        part = [c for c, fs in forms if any(f" {f}" in f" {x}" for x in fs)]
        if part:
            return _choice_outcome(field, part)
    return Invalid("choice_unknown", {"options": [c.label for c in field.choices]})


def _parse_yesno(field, raw, active, answers, today) -> Outcome:
    f = fold(raw)
    kw = _keywords()
    labels = _ui()["yesno"]
    for key in ("yes", "no"):
        if f in kw.get(key, frozenset()) or f == fold(labels[key]):
            return Valid(key, labels[key])
    return Invalid("yesno_unknown")


# ---------------------------------------------------------------- numbers

_NUMBER_WORDS = {
    "mot": 1,
    "hai": 2,
    "ba": 3,
    "bon": 4,
    "tu": 4,
    "nam": 5,
    "lam": 5,
    "sau": 6,
    "bay": 7,
    "tam": 8,
    "chin": 9,
    "muoi": 10,
}
_GROUPED = re.compile(r"\d{1,3}(?:[. ]\d{3})+", re.ASCII)


def _parse_number(field, raw, active, answers, today) -> Outcome:
    s = clean_text(raw)
    f = fold(s)
    if f in _NUMBER_WORDS:
        n = _NUMBER_WORDS[f]
    elif _digits(s):
        n = int(s)
    elif _GROUPED.fullmatch(s):
        n = int(re.sub(r"[. ]", "", s))
    else:
        return Invalid("number_format")
    return Valid(n, str(n))


@validator("min", required=("n",), types=("number",), ints=("n",))
def _v_min(valid, params, field, answers, today):
    if valid.value < int(params["n"]):
        return Invalid("number_min", {"min": int(params["n"])})
    return None


@validator("max", required=("n",), types=("number",), ints=("n",))
def _v_max(valid, params, field, answers, today):
    if valid.value > int(params["n"]):
        return Invalid("number_max", {"max": int(params["n"])})
    return None


@validator("max_length", required=("n",), types=("text", "name"), ints=("n",))
def _v_max_length(valid, params, field, answers, today):
    if len(str(valid.display)) > int(params["n"]):
        return Invalid("too_long", {"max": int(params["n"])})
    return None


# ---------------------------------------------------------------- identity numbers

_ID_SEPARATORS = re.compile(r"[\s.\-_/]+")


def id_birth_year(digits: str) -> int:
    """The birth year a 12-digit personal ID encodes: digit 4 gives the century (0/1:
    1900s, 2/3: 2000s, ...), digits 5-6 the year within it."""
    return 1900 + (int(digits[3]) // 2) * 100 + int(digits[4:6])


def _parse_id(field, raw, active, answers, today) -> Outcome:
    type_field = _param(active, "id_number", "type_field")
    id_type = answers.get(type_field) if type_field else None
    compact = _ID_SEPARATORS.sub("", nfc(clean_text(raw))).upper()
    if id_type == PASSPORT_TYPE:
        if re.fullmatch(r"[A-Z]\d{7}", compact, re.ASCII):
            return Valid(compact, compact)
        return Invalid("id_passport_format")
    if id_type is not None and id_type not in PERSONAL_ID_TYPES and id_type != OLD_ID_TYPE:
        # another paper: letters and digits, as printed
        if re.fullmatch(r"[A-Z0-9]{5,20}", compact, re.ASCII):
            return Valid(compact, compact)
        return Invalid("id_other_format")
    if not _digits(compact):
        return Invalid("id_not_digits")
    if id_type == OLD_ID_TYPE and len(compact) == 9:
        return Valid(compact, compact)
    if len(compact) != 12:
        code = "id_cmnd_length" if id_type == OLD_ID_TYPE else "id_length"
        return Invalid(code, {"count": len(compact)})
    if compact[:3] not in cccd_province_codes():
        return Invalid("id_province_unknown", {"code": compact[:3]})
    if id_birth_year(compact) > today.year:
        return Invalid("id_century")
    return Valid(compact, compact)


@validator(
    "id_number",
    optional=("type_field", "gender_field", "birth_date_field"),
    types=("id_number",),
)
def _v_id_number(valid, params, field, answers, today):
    digits = valid.value
    if not (isinstance(digits, str) and len(digits) == 12 and _digits(digits)):
        return None
    gender_field = params.get("gender_field")
    gender = answers.get(gender_field) if gender_field else None
    if gender in ("male", "female") and (int(digits[3]) % 2 == 0) != (gender == "male"):
        return Invalid("id_gender_mismatch")
    birth_field = params.get("birth_date_field")
    born = _date_of(answers.get(birth_field)) if birth_field else None
    if born is not None and id_birth_year(digits) != born.year:
        return Invalid("id_birth_year_mismatch", {"year": id_birth_year(digits)})
    return None


# ---------------------------------------------------------------- phone and email

_PHONE_SEPARATORS = re.compile(r"[\s.\-()]+")
_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


def _parse_phone(field, raw, active, answers, today) -> Outcome:
    compact = _PHONE_SEPARATORS.sub("", clean_text(raw))
    if not re.fullmatch(r"\+?\d{6,15}", compact, re.ASCII):
        return Invalid("phone_format")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, "VN")
    except phonenumbers.NumberParseException:
        return Invalid("phone_format")
    if number.country_code != 84:
        return Invalid("phone_foreign")
    national = "0" + str(number.national_number)
    if national.startswith("02"):
        return Invalid("phone_landline")
    if national.startswith("01") and len(national) == 11:
        return Invalid("phone_old")  # 11-digit numbers were converted in 2018-2019
    if len(national) != 10:
        return Invalid("phone_length", {"count": len(national)})
    if (
        not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE_TYPES
        or national[:3] not in phone_prefixes()
    ):
        return Invalid("phone_invalid")
    return Valid(national, f"{national[:4]} {national[4:7]} {national[7:]}")


_EMAIL = re.compile(r"([^@\s]+)@([^@\s]+\.[^@\s.]{2,})")


def _parse_email(field, raw, active, answers, today) -> Outcome:
    s = clean_text(raw).strip("<>")
    if s.lower().startswith("mailto:"):
        s = s[7:]
    m = _EMAIL.fullmatch(s)
    if not m or ".." in s or not s.isascii():
        return Invalid("email_format")
    value = f"{m.group(1)}@{m.group(2).lower()}"
    return Valid(value, value)


# ---------------------------------------------------------------- communes


def _unit_outcome(found: list[units.Unit] | tuple[units.Unit, ...]) -> Outcome:
    if len(found) == 1:
        return Valid(found[0].code, found[0].display)
    return Ambiguous(tuple(Valid(u.code, u.display) for u in found[:MAX_OPTIONS]))


def _converted(candidates: list[units.Unit], typed: str, old_unit: str | None) -> Outcome:
    if len(candidates) > 1:
        return _unit_outcome(candidates)
    u = candidates[0]
    params = {"old": typed, "new": u.display}
    if old_unit:
        params["old_unit"] = old_unit
    return Confirm(Valid(u.code, u.display), "commune_converted", params)


def _parse_commune(field, raw, active, answers, today) -> Outcome:
    typed = clean_text(raw, TEXT_MAX)
    found = units.lookup(typed)
    if found.only_province and not found.old_signal:
        return Invalid("commune_need_commune", {"province": found.only_province})
    if found.units and not found.old_signal:
        return _unit_outcome(found.units)
    # an old (pre-2025) address, or no current commune of that name
    converted = units.convert_legacy(typed)
    if converted:
        news = list({u.code: u for u, _ in converted}.values())
        olds = {old for _, old in converted}
        return _converted(news, typed, olds.pop() if len(olds) == 1 else None)
    if found.units and found.explicit:
        # the old commune's name is also a current commune's: ask before taking it
        return _converted(list(found.units), typed, None)
    if found.old_signal and not units.legacy_available():
        return Invalid("commune_old_unsupported")
    if found.only_province:
        return Invalid("commune_need_commune", {"province": found.only_province})
    return Invalid("commune_unknown")


# ---------------------------------------------------------------- dispatch

_PARSERS: dict[str, Callable[..., Outcome]] = {
    "text": _parse_text,
    "name": _parse_name,
    "date": _parse_date_field,
    "choice": _parse_choice,
    "yesno": _parse_yesno,
    "number": _parse_number,
    "id_number": _parse_id,
    "phone": _parse_phone,
    "email": _parse_email,
    "commune": _parse_commune,
}

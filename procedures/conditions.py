"""Conditions and small templates over a draft's answers, in a Jinja2 sandbox (never eval).

A condition such as ``purpose in ['foreign', 'land'] and age('subject_birth_date') >= 18``
sees every answered field by its id (its stored value; a choice gives the choice id),
``has(id)``, ``age(id)`` (whole years at ``today``) and ``today``. Unanswered fields are
``None``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")


class ConditionError(ValueError):
    pass


class _Env(ImmutableSandboxedEnvironment):
    pass


_env = _Env(undefined=Undefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
_strict_env = _Env(undefined=StrictUndefined, autoescape=False)


def years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def parse_stored_date(value: Any) -> dt.date | None:
    """Stored dates are ISO strings ("1990-03-12"); year-only records are "1928"."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 4 and value.isdigit():
                return dt.date(int(value), 1, 1)
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def namespace(answers: Mapping[str, Any], today: dt.date, **extra: Any) -> dict[str, Any]:
    """The names a condition or template can use."""

    def has(field_id: str) -> bool:
        return answers.get(field_id) not in (None, "")

    def age(field_id: str) -> int | None:
        born = parse_stored_date(answers.get(field_id))
        return years_between(born, today) if born else None

    ns: dict[str, Any] = dict(answers)
    ns.update(has=has, age=age, today=today)
    ns.update(extra)
    return ns


@lru_cache(maxsize=4096)
def _compiled(expr: str):
    try:
        return _env.compile_expression(expr, undefined_to_none=True)
    except Exception as exc:  # jinja2.TemplateSyntaxError and friends
        raise ConditionError(f"condition {expr!r} does not compile: {exc}") from exc


def check_syntax(expr: str) -> None:
    _compiled(expr)


def names_in(expr: str) -> set[str]:
    """Variable names a condition reads (for the procedure linter)."""
    ast = _env.parse("{{ " + expr + " }}")
    return {n.name for n in ast.find_all(nodes.Name)}


def holds(expr: str | None, answers: Mapping[str, Any], today: dt.date) -> bool:
    if not expr:
        return True
    try:
        return bool(_compiled(expr)(**namespace(answers, today)))
    except ConditionError:
        raise
    except Exception:  # a type error inside a condition means "does not hold"
        return False


@lru_cache(maxsize=4096)
def _template(source: str):
    return _env.from_string(source)


def render_string(source: str, ctx: Mapping[str, Any]) -> str:
    """Render a small template from YAML (a question, a fact, a computed value)."""
    if "{" not in source:
        return source
    # a condition inside a sentence leaves runs of spaces behind: fold them
    return _SPACES.sub(" ", _template(source).render(**ctx))


def render_strict(source: str, ctx: Mapping[str, Any]) -> str:
    """Like render_string but fails on unknown names (the linter uses this)."""
    return _strict_env.from_string(source).render(**ctx)

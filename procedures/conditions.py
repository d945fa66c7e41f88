"""Conditions and small templates over a draft's answers, in a Jinja2 sandbox (never eval).

A condition such as ``purpose in ['foreign', 'land'] and age('subject_birth_date') >= 18``
sees every answered field by its id (its stored value; a choice gives the choice id),
``has(id)``, ``age(id)`` (whole years at ``today``) and ``today``. Unanswered fields are
``None``.
"""

from __future__ import annotations

import ast
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


# -- a fast path for the simple conditions procedures use (==, !=, in, and/or/not,
# has(), age(), comparisons): the expression is parsed once into a small tree of
# closures over a whitelist of node types. Nothing is ever passed to eval(); anything
# outside the whitelist (filters, tests, attribute access...) goes through Jinja.

_CMP = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_CONSTS = {"true": True, "false": False, "none": None, "True": True, "False": False, "None": None}


class _Unsupported(Exception):
    pass


def _build(node: ast.AST):
    if isinstance(node, ast.Expression):
        return _build(node.body)
    if isinstance(node, ast.BoolOp):
        parts = [_build(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda ns: all(p(ns) for p in parts)
        return lambda ns: any(p(ns) for p in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _build(node.operand)
        return lambda ns: not inner(ns)
    if isinstance(node, ast.Compare):
        left = _build(node.left)
        ops = [_CMP[type(op)] for op in node.ops if type(op) in _CMP]
        if len(ops) != len(node.ops):
            raise _Unsupported
        rights = [_build(c) for c in node.comparators]

        def compare(ns):
            a = left(ns)
            for op, right in zip(ops, rights, strict=True):
                b = right(ns)
                if not op(a, b):
                    return False
                a = b
            return True

        return compare
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        value = node.value
        return lambda ns: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in _CONSTS:
            const = _CONSTS[name]
            return lambda ns: const
        return lambda ns: ns.get(name)
    if isinstance(node, ast.List | ast.Tuple):
        items = [_build(e) for e in node.elts]
        return lambda ns: [i(ns) for i in items]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("has", "age")
        and len(node.args) == 1
        and not node.keywords
    ):
        fn = node.func.id
        arg = _build(node.args[0])
        return lambda ns: ns[fn](arg(ns))
    raise _Unsupported


@lru_cache(maxsize=4096)
def _fast(expr: str):
    try:
        return _build(ast.parse(expr.strip(), mode="eval"))
    except (SyntaxError, _Unsupported, KeyError):
        return None


def holds(expr: str | None, answers: Mapping[str, Any], today: dt.date) -> bool:
    if not expr:
        return True
    return holds_ns(expr, namespace(answers, today))


def holds_ns(expr: str | None, ns: Mapping[str, Any]) -> bool:
    """`holds` with a namespace built once (see `namespace`) for many conditions."""
    if not expr:
        return True
    fast = _fast(expr)
    try:
        if fast is not None:
            return bool(fast(ns))
        return bool(_compiled(expr)(**ns))
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

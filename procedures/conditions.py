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
from collections.abc import Callable, Mapping
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
        if len(parts) == 2:  # the common case without a generator: same result as below
            p0, p1 = parts
            if isinstance(node.op, ast.And):
                return lambda ns: True if p0(ns) and p1(ns) else False
            return lambda ns: True if p0(ns) or p1(ns) else False
        if isinstance(node.op, ast.And):
            return lambda ns: all(p(ns) for p in parts)
        return lambda ns: any(p(ns) for p in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _build(node.operand)
        return lambda ns: not inner(ns)
    simple = _simple_compare(node)
    if simple is not None:
        return simple
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
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "isoformat"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id not in _CONSTS
        and not node.args
        and not node.keywords
    ):
        # `today.isoformat()`: Jinja calls the date's method; on anything that is not a
        # date it fails, and a failing condition does not hold (see holds_ns)
        date_name = node.func.value.id

        def isoformat(ns):
            value = ns.get(date_name)
            if not isinstance(value, dt.date):
                raise TypeError("not a date")
            return value.isoformat()

        return isoformat
    raise _Unsupported


def _constant(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) for a literal `_build` accepts, else (False, None)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return True, node.value
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return True, _CONSTS[node.id]
    return False, None


def _simple_compare(node: ast.AST):
    """`name == 'x'`, `name != 'x'`, `name in ['a', 'b']`...: one closure instead of
    three, with the result `compare` in `_build` gives (True or False; errors raise)."""
    if not (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and type(node.ops[0]) in _CMP
        and isinstance(node.left, ast.Name)
        and node.left.id not in _CONSTS
    ):
        return None
    name = node.left.id
    op = type(node.ops[0])
    right = node.comparators[0]
    ok, value = _constant(right)
    if not ok and op in (ast.In, ast.NotIn) and isinstance(right, ast.List | ast.Tuple):
        items = [_constant(e) for e in right.elts]
        if not all(known for known, _ in items):
            return None
        # membership in a tuple is membership in the list `_build` makes (== per item)
        ok, value = True, tuple(v for _, v in items)
    if not ok:
        return None
    if op is ast.Eq:
        return lambda ns: True if ns.get(name) == value else False
    if op is ast.NotEq:
        return lambda ns: True if ns.get(name) != value else False
    if op is ast.In:
        return lambda ns: True if ns.get(name) in value else False
    if op is ast.NotIn:
        return lambda ns: True if ns.get(name) not in value else False
    cmp = _CMP[op]
    return lambda ns: True if cmp(ns.get(name), value) else False


@lru_cache(maxsize=4096)
def _fast(expr: str):
    try:
        tree = ast.parse(expr.strip(), mode="eval")
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_CONSTS)
        if any(isinstance(c.func, ast.Attribute) for c in calls) and names != {"today"}:
            # `today.isoformat()` among other names: Jinja, whose unknown names are not
            # None (the rule of this fast path) in every expression
            return None
        return _build(tree)
    except (SyntaxError, _Unsupported, KeyError):
        return None


def predicate(expr: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """`holds_ns(expr, ns)` as one callable of ns, looked up once (the engine keeps one
    per field); None when there is no condition (it always holds)."""
    if not expr:
        return None
    fast = _fast(expr)
    if fast is None:
        return lambda ns: holds_ns(expr, ns)

    def check(ns: Mapping[str, Any]) -> bool:
        try:
            return bool(fast(ns))
        except Exception:  # as holds_ns: a failing condition does not hold
            return False

    return check


def reads(expr: str) -> frozenset[str] | None:
    """Every name a condition can read: the variables it names and the ids given to
    has()/age(). None when that is not known from the text (has() of a variable, a
    function passed around, a syntax error)."""
    try:
        tree = _env.parse("{{ " + expr + " }}")
    except Exception:
        return None
    names: set[str] = set()
    calls = 0
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in ("has", "age"):
            if call.kwargs or call.dyn_args or call.dyn_kwargs:
                return None
            for arg in call.args:
                if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                    return None
                names.add(arg.value)
            calls += 1
    functions = 0
    for name in tree.find_all(nodes.Name):
        if name.name in ("has", "age"):
            functions += 1
        else:
            names.add(name.name)
    if functions != calls:
        return None
    return frozenset(names)


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
    fast = _fast_template(source)
    if fast is not None:
        try:
            text = fast(ctx)
        except Exception:  # anything unexpected: Jinja renders it (or raises) as always
            text = None
        if text is not None:
            return _SPACES.sub(" ", text)
    # a condition inside a sentence leaves runs of spaces behind: fold them
    return _SPACES.sub(" ", _template(source).render(**ctx))


def render_jinja(source: str, ctx: Mapping[str, Any]) -> str:
    """render_string through Jinja alone (the tests compare the fast path with it)."""
    if "{" not in source:
        return source
    return _SPACES.sub(" ", _template(source).render(**ctx))


# -- a fast path for the small templates procedures use (computed values, questions,
# facts): Jinja parses the template once and its tree is turned into closures for a
# whitelist of nodes, each doing what the code Jinja generates for it does (see
# Environment.compile(source, raw=True)): text, `{{ expr }}` (str() of the value),
# top-level `{% set name = expr %}`, `{% if %}/{% elif %}/{% else %}`, names (an unknown
# name is Jinja's own Undefined), literals, lists, `a if b else c`, and/or/not,
# comparisons, `~`, slices, the filters in _FILTERS, `dict.get(...)`, a dict's key as
# an attribute, `has()`/`age()` and a date's `isoformat()`. Nothing is passed to eval().
# A template with any other node has no fast path; a fast render that meets anything it
# does not handle (an attribute of an Undefined, a key that is not there...) raises
# _Fallback and Jinja renders the template instead.


class _Fallback(Exception):
    pass


_FILTERS = frozenset({"lower", "upper", "capitalize", "title", "trim"})
_DATE_ATTRS = frozenset({"isoformat", "year", "month", "day"})
_NODE_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
_MISSING = object()


def _t_expr(node: nodes.Node):
    """A closure (ctx, local) -> value for one expression node; _Unsupported if none."""
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda c, loc: value
    if isinstance(node, nodes.Name) and node.ctx == "load":
        name = node.name
        undefined = _env.undefined

        def load(c, loc):
            value = loc.get(name, _MISSING)
            if value is _MISSING:
                value = c.get(name, _MISSING)
                if value is _MISSING:
                    if name in _env.globals:  # range, dict...: Jinja's own
                        raise _Fallback
                    return undefined(name=name)
            return value

        return load
    if isinstance(node, nodes.List) or (isinstance(node, nodes.Tuple) and node.ctx == "load"):
        items = [_t_expr(i) for i in node.items]
        if isinstance(node, nodes.Tuple):
            return lambda c, loc: tuple(i(c, loc) for i in items)
        return lambda c, loc: [i(c, loc) for i in items]
    if isinstance(node, nodes.CondExpr):
        if node.expr2 is None:  # Jinja gives an Undefined of its own there
            raise _Unsupported
        test, yes, no = _t_expr(node.test), _t_expr(node.expr1), _t_expr(node.expr2)
        return lambda c, loc: yes(c, loc) if test(c, loc) else no(c, loc)
    if isinstance(node, nodes.And):
        left, right = _t_expr(node.left), _t_expr(node.right)
        return lambda c, loc: left(c, loc) and right(c, loc)
    if isinstance(node, nodes.Or):
        left, right = _t_expr(node.left), _t_expr(node.right)
        return lambda c, loc: left(c, loc) or right(c, loc)
    if isinstance(node, nodes.Not):
        inner = _t_expr(node.node)
        return lambda c, loc: not inner(c, loc)
    if isinstance(node, nodes.Compare):
        first = _t_expr(node.expr)
        ops = []
        for operand in node.ops:
            if operand.op not in _NODE_OPS:
                raise _Unsupported
            ops.append((_NODE_OPS[operand.op], _t_expr(operand.expr)))
        if len(ops) == 1:
            ((op, right),) = ops
            return lambda c, loc: op(first(c, loc), right(c, loc))

        def chain(c, loc):  # Python's chained comparison, as Jinja writes it
            a = first(c, loc)
            result = True
            for op, right in ops:
                b = right(c, loc)
                result = op(a, b)
                if not result:
                    return result
                a = b
            return result

        return chain
    if isinstance(node, nodes.Concat):
        parts = [_t_expr(n) for n in node.nodes]
        return lambda c, loc: "".join([str(p(c, loc)) for p in parts])
    if isinstance(node, nodes.Getitem) and node.ctx == "load":
        obj = _t_expr(node.node)
        if isinstance(node.arg, nodes.Slice):
            given = (node.arg.start, node.arg.stop, node.arg.step)
            if all(b is None or isinstance(b, nodes.Const) for b in given):
                # `c[:1]`: x[a:b] is x[slice(a, b)] for every object
                fixed = slice(*(None if b is None else b.value for b in given))
                return lambda c, loc: obj(c, loc)[fixed]
            bounds = [None if b is None else _t_expr(b) for b in given]

            def sliced(c, loc):
                start, stop, step = (None if b is None else b(c, loc) for b in bounds)
                return obj(c, loc)[start:stop:step]

            return sliced
        arg = _t_expr(node.arg)

        def item(c, loc):
            value = obj(c, loc)
            if isinstance(value, Undefined):
                raise _Fallback
            try:
                return value[arg(c, loc)]
            except (TypeError, LookupError):  # Jinja then tries an attribute
                raise _Fallback from None

        return item
    if isinstance(node, nodes.Getattr) and node.ctx == "load":
        obj = _t_expr(node.node)
        attr = node.attr
        if attr.startswith("_"):
            raise _Unsupported

        def attribute(c, loc):
            value = obj(c, loc)
            kind = type(value)
            if kind is dict:
                if attr == "get":
                    return value.get
                if not hasattr(dict, attr) and attr in value:
                    return value[attr]
            elif (kind is dt.date or kind is dt.datetime) and attr in _DATE_ATTRS:
                return getattr(value, attr)
            raise _Fallback

        return attribute
    if isinstance(node, nodes.Filter) and node.name in _FILTERS:
        if node.node is None or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _Unsupported
        fn = _env.filters[node.name]
        inner = _t_expr(node.node)

        def apply(c, loc):
            value = inner(c, loc)
            if type(value) is not str:
                raise _Fallback
            return fn(value)

        return apply
    if isinstance(node, nodes.Call):
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _Unsupported
        callee = node.node
        if isinstance(callee, nodes.Getattr) and callee.attr in ("get", "isoformat"):
            pass
        elif isinstance(callee, nodes.Name) and callee.name in ("has", "age"):
            pass
        else:
            raise _Unsupported
        fn_of = _t_expr(callee)
        args = [_t_expr(a) for a in node.args]

        def call(c, loc):
            fn = fn_of(c, loc)
            kind = type(fn)
            if kind is _BUILTIN_METHOD:
                owner = type(fn.__self__)
                if not (
                    (owner is dict and fn.__name__ == "get")
                    or (owner in (dt.date, dt.datetime) and fn.__name__ == "isoformat")
                ):
                    raise _Fallback
            elif kind is not _FUNCTION or getattr(fn, "jinja_pass_arg", None) is not None:
                raise _Fallback
            elif getattr(fn, "unsafe_callable", False) or getattr(fn, "alters_data", False):
                raise _Fallback
            return fn(*[a(c, loc) for a in args])

        return call
    raise _Unsupported


_BUILTIN_METHOD = type({}.get)
_FUNCTION = type(lambda: None)


def _t_body(body: list[nodes.Node], top: bool):
    """Closures (ctx, local, out) for a list of statement nodes."""
    steps = []
    for node in body:
        if isinstance(node, nodes.Output):
            parts = []
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append(child.data)
                else:
                    parts.append(_t_expr(child))
            steps.append(_t_output(parts))
        elif isinstance(node, nodes.Assign) and top:
            if not (isinstance(node.target, nodes.Name) and node.target.ctx == "store"):
                raise _Unsupported
            steps.append(_t_assign(node.target.name, _t_expr(node.node)))
        elif isinstance(node, nodes.If):
            steps.append(_t_if(node))
        else:
            raise _Unsupported
    return steps


def _t_output(parts: list):
    def output(c, loc, out):
        for p in parts:
            out.append(p if type(p) is str else str(p(c, loc)))

    return output


def _t_assign(name: str, value):
    def assign(c, loc, out):
        loc[name] = value(c, loc)

    return assign


def _t_if(node: nodes.If):
    branches = [(_t_expr(node.test), _t_body(node.body, top=False))]
    for elif_ in node.elif_:
        branches.append((_t_expr(elif_.test), _t_body(elif_.body, top=False)))
    otherwise = _t_body(node.else_, top=False)

    def branch(c, loc, out):
        chosen = otherwise
        for test, steps in branches:
            if test(c, loc):
                chosen = steps
                break
        for step in chosen:
            step(c, loc, out)

    return branch


@lru_cache(maxsize=4096)
def _fast_template(source: str):
    """A fast render (ctx -> str) for `source`, or None when Jinja must render it."""
    try:
        steps = _t_body(_env.parse(source).body, top=True)
    except Exception:  # _Unsupported, a syntax error (Jinja reports it), anything else
        return None

    def render(ctx: Mapping[str, Any]) -> str:
        out: list[str] = []
        loc: dict[str, Any] = {}
        for step in steps:
            step(ctx, loc, out)
        return "".join(out)

    return render


def render_strict(source: str, ctx: Mapping[str, Any]) -> str:
    """Like render_string but fails on unknown names (the linter uses this)."""
    return _strict_env.from_string(source).render(**ctx)

"""The engine step's fast paths give what the plain paths give.

- Templates (`conditions.render_string`): small templates run as closures built from
  Jinja's parse tree; every template of every procedure (computed fields, questions,
  facts, documents, exits, portal steps) renders exactly as Jinja renders it, over every
  state of every sample answer set, and odd cases fall back to Jinja.
- Conditions: the specialised shapes (`x == 'a'`, `x in [...]`, `today.isoformat()`)
  hold when Jinja says they hold.
- The analysis of a state (effective answers and applicable fields in one walk, see
  `engine._compute_analysis`) equals `_compute_effective` + `applicable`, also for
  conditions that read later or computed fields; its memo and per-procedure plan are
  not stale after a change.
- Message arguments (`flows.render.MacroArgs`) render as a plain dict does.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from flows import engine as eng
from flows.lint import LINT_KEY, play, samples_of
from flows.render import MacroArgs, Renderer, tidy
from flows.types import Press, Text
from procedures import conditions
from procedures.loader import load_catalog
from procedures.model import FieldSpec

TINY = Path(__file__).parent / "fixtures"  # holds tiny_permit
# the marital-status procedure shows a notice between these dates: one day inside, one out
TODAYS = (dt.date(2026, 11, 28), dt.date(2027, 6, 1))


def _walk(catalog, proc, answers: dict[str, Any], today: dt.date) -> list[dict[str, Any]]:
    """Every state a sample answer set passes through, from the start to the result."""
    played = play(catalog, proc, answers, today)
    ctx = eng.Ctx(
        proc=proc, renderer=Renderer(catalog), key=LINT_KEY, today=today, keywords=catalog.keywords
    )
    step = eng.Engine(ctx, eng.new_state(proc), eng.ACTIVE).start()
    states = [step.state]
    for kind, value in played.actions:
        if kind == "text":
            event: Any = Text(value)
        else:
            event = Press(f"{LINT_KEY}.{step.state['turn']}.{value}")
        step = eng.Engine(ctx, step.state, step.status).handle(event)
        states.append(step.state)
    assert step.state["stage"] == "result", (proc.id, played.problems)
    return states


@pytest.fixture(scope="module")
def walked() -> list[tuple[Any, dt.date, dict[str, Any]]]:
    """(procedure, today, state) for every state of every sample, both catalogs."""
    out = []
    for catalog in (load_catalog(), load_catalog([TINY], include_builtin=False)):
        for proc in catalog.ordered():
            samples = samples_of(catalog, proc)
            assert samples, proc.id
            for today in TODAYS:
                for answers in samples.values():
                    out += [(proc, today, s) for s in _walk(catalog, proc, answers, today)]
    return out


def _templates(data: Any, out: set[str]) -> set[str]:
    if isinstance(data, str):
        if "{" in data:
            out.add(data)
    elif isinstance(data, dict):
        for value in data.values():
            _templates(value, out)
    elif isinstance(data, list):
        for value in data:
            _templates(value, out)
    return out


def test_every_template_renders_as_jinja_renders_it(walked) -> None:
    fast_renders = 0
    computed_seen = set()
    procs = {p.id: p for p, _, _ in walked}
    sources = {pid: _templates(p.model_dump(), set()) for pid, p in procs.items()}
    for proc in procs.values():
        for f in proc.fields:
            if f.type == "computed":  # the point of the fast path: each has one
                assert conditions._fast_template(f.value) is not None, f.value
    for proc, today, state in walked:
        answers, shown = eng.effective_answers(proc, state, today)
        ctx = eng.template_ctx(proc, answers, shown, today)
        for source in sources[proc.id]:
            expected = conditions.render_jinja(source, ctx)
            assert conditions.render_string(source, ctx) == expected, source
            fast = conditions._fast_template(source)
            if fast is None:
                continue
            try:
                raw = fast(ctx)
            except conditions._Fallback:
                continue
            assert raw == conditions._template(source).render(**ctx), source
            fast_renders += 1
        for f in proc.fields:
            if f.type == "computed" and f.id in answers:
                computed_seen.add((proc.id, f.id))
                expected = conditions.render_jinja(f.value, ctx).strip()
                assert answers[f.id] == expected
    assert fast_renders > 1000
    assert len(computed_seen) == sum(
        1 for p in procs.values() for f in p.fields if f.type == "computed"
    )


KEEP = "{% set c = shown.get('a') or shown.get('b', '') %}UBND {{ c[:1] | lower }}{{ c[1:] }}"

EDGE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("{{ x }}", {}),  # an unknown name is Jinja's Undefined: ''
    ("{{ x }}", {"x": None}),
    ("{{ x }}", {"x": 5}),
    ("{{ x }}", {"x": ["a", 1]}),
    ("{{ 'you' if x == 'self' else 'they' }}", {}),
    ("{{ 'you' if x == 'self' else 'they' }}", {"x": "self"}),
    ("{{ 'you' if x != 'self' else 'they' }}", {}),
    (KEEP, {"shown": {}}),
    (KEEP, {"shown": {"a": "Xã An Phú"}}),
    (KEEP, {"shown": {"b": "Phường Bến Thành"}}),
    (KEEP, {"shown": {"a": "", "b": "Phường B"}}),
    (KEEP, {"shown": {"a": 5}}),  # 5[:1] fails: Jinja fails the same way
    (KEEP, {}),  # no `shown`: an attribute of an Undefined
    ("{{ shown.owner }}", {"shown": {"owner": "Xã A"}}),
    ("{{ shown.owner or 'xã' }}", {"shown": {}}),  # a missing key: Jinja's Undefined
    ("{{ shown.items }}", {"shown": {"items": 1}}),  # a dict's own attribute comes first
    ("{{ shown['k'] }}", {"shown": {"k": "v"}}),
    ("{{ shown['k'] }}", {"shown": {}}),
    ("{{ range }}", {}),  # a Jinja global
    ("{{ x }}{% set x = 'b' %}{{ x }}", {"x": "a"}),
    ("{% if a %}{% set z = 1 %}{% endif %}{{ z }}", {"a": True}),  # no fast path
    ("{% if a == 1 %}one{% elif a == 2 %}two{% else %}many{% endif %}", {"a": 1}),
    ("{% if a == 1 %}one{% elif a == 2 %}two{% else %}many{% endif %}", {"a": 2}),
    ("{% if a == 1 %}one{% elif a == 2 %}two{% else %}many{% endif %}", {}),
    ("{% if a %}\n  yes  {{ a }}\n{% endif %}\nend\n", {"a": "x"}),  # trim/lstrip blocks
    ("{{ 1 < x < 3 }}", {"x": 2}),
    ("{{ 1 < x < 3 }}", {"x": 5}),
    ("{{ 1 < x < 3 }}", {}),  # Undefined < 3 fails in both
    ("{{ x ~ '-' ~ y }}", {"x": 1}),
    ("{{ x in ['a', 'b'] }} {{ x not in 'abc' }} {{ not x }}", {"x": "a"}),
    ("{{ x in ['a', 'b'] }} {{ x not in ['a'] }}", {}),
    ("{{ x and y }} {{ x or y }} {{ (x, y) }} {{ [x, 1] }}", {"x": "", "y": 0}),
    ("{{ today.isoformat() }} {{ today.year }}/{{ today.month }}", {"today": TODAYS[0]}),
    ("{{ today.isoformat() }}", {"today": "2026-01-01"}),  # not a date
    ("{{ x | upper }} {{ x | capitalize }} {{ x | title }} {{ x | trim }}", {"x": " ab c "}),
    ("{{ x | upper }}", {"x": 5}),
    ("{{ x | default('z') }}", {}),  # a filter outside the list: no fast path
    ("{{ x[1:3] }} {{ x[::2] }} {{ x[i:] }}", {"x": "abcdef", "i": 4}),
    ("{{ x.y }}", {"x": "str"}),
]


def _outcome(render, source: str, ctx: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", render(source, ctx)
    except Exception as exc:  # the same failure, by type
        return "raises", type(exc).__name__


@pytest.mark.parametrize(("source", "ctx"), EDGE_CASES)
def test_odd_templates_render_or_fail_as_jinja_does(source: str, ctx: dict[str, Any]) -> None:
    fns = {"has": lambda name: ctx.get(name) not in (None, ""), "age": lambda name: None}
    ctx = {**fns, **ctx} if "has(" in source or "age(" in source else ctx
    expected = _outcome(conditions.render_jinja, source, ctx)
    assert _outcome(conditions.render_string, source, ctx) == expected


def test_fast_template_coverage() -> None:
    assert conditions._fast_template(KEEP) is not None
    assert conditions._fast_template("{{ has('a') }} {{ age('b') }}") is not None
    # set inside a block, filters outside the list, tests, loops: Jinja only
    for source in (
        "{% if a %}{% set z = 1 %}{% endif %}",
        "{{ x | default('z') }}",
        "{{ x is defined }}",
        "{% for i in x %}{{ i }}{% endfor %}",
        "{{ x.y() }}",
        "{{ 'a' if x }}",
        "{{ x",  # a syntax error: Jinja reports it
    ):
        assert conditions._fast_template(source) is None, source
    with pytest.raises(Exception):  # noqa: B017 - whatever Jinja raises
        conditions.render_string("{{ x", {})


def test_has_and_age_in_templates_are_the_namespace_functions() -> None:
    answers = {"a": "yes", "b": "1990-03-12"}
    ctx = conditions.namespace(answers, TODAYS[0], shown={})
    source = "{{ has('a') }} {{ has('c') }} {{ age('b') }} {{ age('c') }}"
    assert conditions.render_string(source, ctx) == conditions.render_jinja(source, ctx)
    assert conditions.render_string(source, ctx) == "True False 36 None"
    ctx["has"] = "not a function"  # a field named `has`: Jinja decides
    assert _outcome(conditions.render_string, source, ctx) == _outcome(
        conditions.render_jinja, source, ctx
    )
    with pytest.raises(UndefinedError):
        conditions.render_string("{{ missing.x }}", {})


CONDITIONS = [
    "x == 'a'",
    "x != 'a'",
    "x in ['a', 'b']",
    "x not in ['a', 'b']",
    "x in ('a', 5)",
    "x in 'abc'",
    "x < 5",
    "x >= 18",
    "x == 'a' and y == 'b'",
    "x == 'a' or y == 'b'",
    "x == 'a' and y == 'b' and x != y",
    "not x == 'a'",
    "x == true",
    "x in [none, 'a']",
    "x == y",
    "x in [y, 'a']",
    "today.isoformat() >= '2026-08-15' and today.isoformat() <= '2027-02-28'",
    "today.isoformat() < '2027-01-01'",
]
VALUES = [None, "a", "b", 5, 20, True, ["a"], dt.date(2020, 1, 1)]


def _jinja_holds(expr: str, ns: dict[str, Any]) -> bool:
    try:
        return bool(conditions._compiled(expr)(**ns))
    except Exception:
        return False


@pytest.mark.parametrize("expr", CONDITIONS)
def test_conditions_hold_when_jinja_says_they_hold(expr: str) -> None:
    check = conditions.predicate(expr)
    assert check is not None
    assert conditions._fast(expr) is not None  # these all take the fast path
    for x, y, today in itertools.product(VALUES, ("b", None), TODAYS):
        ns = conditions.namespace({"x": x, "y": y}, today)
        got = check(ns)
        assert got is conditions.holds_ns(expr, ns)
        assert got == _jinja_holds(expr, ns), (expr, x, y, today)
        # an unanswered field reads as None (the fast path's rule since the start)
        if x is None:
            assert check(conditions.namespace({"y": y}, today)) == got


def test_predicate_without_condition_and_through_jinja() -> None:
    assert conditions.predicate(None) is None and conditions.predicate("") is None
    expr = "x | length > 1"  # a filter: Jinja evaluates it
    assert conditions._fast(expr) is None
    check = conditions.predicate(expr)
    assert check({"x": "ab"}) is True and check({"x": "a"}) is False and check({}) is False
    assert conditions.reads("x == 'a' and has('b') and age('c') > 1") == {"x", "b", "c"}
    assert conditions.reads("has(x)") is None  # which field is not known from the text
    assert conditions.reads("f(has)") is None
    assert conditions.reads("x ==") is None
    # a method call with other names than `today`: Jinja, as before
    for expr in ("x.isoformat() == '2020-01-01'", "today.isoformat() > '2026' and y == 1"):
        assert conditions._fast(expr) is None


# -- the analysis


def test_analysis_matches_the_reference_on_every_sample_state(walked) -> None:
    for proc, today, state in walked:
        eng._EFF_CACHE.clear()
        got = eng._analysis(proc, state, today)
        answers, shown = eng._compute_effective(proc, state, today)
        assert (got.answers, got.shown) == (answers, shown)
        assert got.fields == tuple(eng.applicable(proc, answers, today))


def _odd_procedure(extra_id: str = "e"):
    """Conditions reading later fields, computed fields and a variable has()."""
    base = load_catalog([TINY], include_builtin=False).ordered()[0]

    def text(fid: str, when: str | None = None) -> FieldSpec:
        return FieldSpec(id=fid, type="text", label=fid, question=f"{fid}?", when=when)

    fields = [
        text("a"),
        text("b", "has('c')"),  # a later field
        text("c", "a == 'x'"),
        text("d", "k == 'Kx'"),  # a computed field
        text(extra_id, "has(a)"),  # which field has() asks about depends on an answer
        text("g", "g == 'x' or a != 'y'"),  # itself
        FieldSpec(id="k", type="computed", label="k", value="K{{ a }}", when="a != 'z'"),
        FieldSpec(id="m", type="computed", label="m", value="{{ shown.get('k', '-') }}"),
    ]
    return base.model_copy(update={"fields": fields, "id": "odd_" + extra_id})


@pytest.mark.parametrize("extra_id", ["e", "today", "has"])
def test_analysis_of_conditions_on_later_and_computed_fields(extra_id: str) -> None:
    proc = _odd_procedure(extra_id)
    ids = ["a", "b", "c", "d", extra_id, "g"]
    plan = eng._plan(proc)
    prefix = {f.id: p for f, _check, p in plan.asked}
    if extra_id == "e":
        assert prefix == {"a": True, "b": False, "c": True, "d": False, "e": False, "g": False}
    else:  # a field named like a namespace function: every condition checked at the end
        assert not any(prefix.values())
    for today in TODAYS:
        for values in itertools.product(("x", "y", "a", "z", None), repeat=len(ids)):
            state = eng.new_state(proc)
            for fid, value in zip(ids, values, strict=True):
                if value is not None:
                    state["answers"][fid] = value
            got = eng._compute_analysis(proc, state, today)
            answers, shown = eng._compute_effective(proc, state, today)
            assert (got.answers, got.shown) == (answers, shown), values
            assert got.fields == tuple(eng.applicable(proc, answers, today)), values


def test_the_memo_follows_changes() -> None:
    proc = _odd_procedure()
    today = TODAYS[0]
    state = eng.new_state(proc)
    state["answers"].update(a="x", c="1")
    first = eng._analysis(proc, state, today)
    assert eng._analysis(proc, state, today) is first  # the same answers: the memo
    assert [f.id for f in first.fields] == ["a", "b", "c", "d", "g"]  # k is "Kx"
    state["answers"]["a"] = "y"  # changed in place: not the analysis of before
    second = eng._analysis(proc, state, today)
    assert second.answers["k"] == "Ky" and "c" not in second.answers
    state["shown"]["a"] = "Y"  # the shown text is part of it too
    third = eng._analysis(proc, state, today)
    assert third is not second and third.shown["a"] == "Y"
    assert eng._analysis(proc, state, TODAYS[1]) is not third  # another day
    eng._EFF_CACHE.clear()  # what the benchmarks do: computed again
    assert eng._analysis(proc, state, today) is not third
    # a procedure changed under the same id gets its own plan
    changed = proc.model_copy(
        update={"fields": [f.model_copy(update={"when": None}) for f in proc.fields]}
    )
    assert eng._plan(changed).proc is changed and eng._plan(proc).proc is proc
    eng._EFF_CACHE.clear()
    assert [f.id for f in eng._analysis(changed, state, today).fields] == ids_of(changed)
    state["answers"]["tail"] = ["un", "hashable"]  # no memo: computed every time
    assert eng._analysis(proc, state, today) is not eng._analysis(proc, state, today)


def ids_of(proc) -> list[str]:
    return [f.id for f in proc.fields if f.asked]


def test_validator_reads_are_what_recheck_asked_for() -> None:
    for catalog in (load_catalog(), load_catalog([TINY], include_builtin=False)):
        for proc in catalog.ordered():
            known = eng._plan(proc).validator_reads
            assert any(known.values())
            for changed, g in itertools.product(proc.fields, proc.fields):
                reads = any(
                    changed.id in [str(x) for x in v.params.values()]
                    or (v.when and changed.id in conditions.names_in(v.when))
                    for v in g.validators
                )
                assert reads == (changed.id in known[g.id]), (changed.id, g.id)


# -- messages


def test_message_arguments_read_as_attributes_and_keys() -> None:
    args = MacroArgs({"items": 1, "x": 2})
    assert args.x == 2 and args["items"] == 1
    assert args.items == dict.items.__get__(args)  # a dict's own attribute first
    with pytest.raises(AttributeError):
        _ = args.missing
    catalog = load_catalog()
    r = Renderer(catalog)
    proc = catalog.ordered()[0]
    f = next(f for f in proc.fields if f.asked and f.example)
    for stored, previous in ((None, None), ("A", "B")):
        kw = dict(
            index=2,
            total=9,
            stage=f.stage,
            stage_title="T",
            question="Q?",
            field=f,
            previous=previous,
            stored=stored,
            unconfirmed=True,
        )
        assert r.msg("question", **kw) == tidy(str(r._messages.question(dict(kw))))
    with pytest.raises(UndefinedError):  # a missing argument fails as before
        r.msg("question", index=1)
    params = {"max": 5}
    assert r.error("too_long", params) == tidy(str(r._errors.too_long(dict(params))))
    # the review's items read as attributes too (`it.label`): the same text
    items = [
        {"n": i, "label": f.label, "value": "v", "skipped": i == 2, "section": f.section}
        for i, f in enumerate(proc.fields, start=1)
    ]
    sections = {s.id: s.title for s in proc.sections}
    plain = tidy(str(r._messages.review({"proc": proc, "items": items, "sections": sections})))
    fast = r.msg("review", proc=proc, items=[MacroArgs(i) for i in items], sections=sections)
    assert fast == plain and "XEM" in fast


def test_memoised_messages_are_the_messages() -> None:
    r = Renderer(load_catalog())
    for n in (1, 2, 27):
        assert r.msg_memo("edit_label", n=n) == r.msg("edit_label", n=n)
        assert r.msg_memo("edit_label", n=n) == r.msg("edit_label", n=n)  # from the memo
    assert (
        r.msg_memo("edit_label", n=True)
        == r.msg("edit_label", n=True)
        != r.msg_memo("edit_label", n=1)
    )
    for stage in ("eligibility", "account", "form"):
        assert r.msg_memo("stage_title", stage=stage) == r.msg("stage_title", stage=stage)

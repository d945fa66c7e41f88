"""In-process micro-benchmarks: one engine step, one free-text interpretation, one PDF.

Each case is timed call by call (timeit, number=1) and reported as median and p99 in
microseconds. The engine memoises effective answers between calls of one step; timing the
same state over and over would hit that cache every time, so the "cold" engine cases
clear it before each call (what a step costs when the cache was evicted), and the "warm"
ones do not (a state seen before, as within one update).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import timeit
from typing import Any

from benchmarks.common import percentile
from benchmarks.scripts import Plan
from flows import engine as eng
from flows.render import Renderer
from flows.types import Press, Text
from procedures import validators
from procedures.loader import Catalog

ENGINE_KEY = "bench0"


def _timed(fn, runs: int, setup=None) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        if setup is not None:
            setup()
        samples.append(timeit.timeit(fn, number=1) * 1e6)
    return {
        "median_us": round(statistics.median(samples), 1),
        "p99_us": round(percentile(samples, 99), 1),
        "runs": runs,
    }


def _states(catalog: Catalog, plan: Plan, today: dt.date):
    """Walk each script through the engine alone; yield (ctx, state before, event, field)
    for every answer step (text and button presses)."""
    renderer = Renderer(catalog)
    for script in plan.scripts:
        proc = catalog.get(script.proc_id)
        ctx = eng.Ctx(
            proc=proc, renderer=renderer, key=ENGINE_KEY, today=today, keywords=catalog.keywords
        )
        step = eng.Engine(ctx, eng.new_state(proc), eng.ACTIVE).start()
        for planned in script.steps[1:]:
            for kind, value in planned.events:
                state = step.state
                if state["stage"] != "questions":
                    break
                f = eng.current_field(proc, state, today)
                if kind == "text":
                    event: Any = Text(value)
                else:
                    event = Press(f"{ENGINE_KEY}.{state['turn']}.{value}")
                yield ctx, state, event, f
                step = eng.Engine(ctx, state, step.status).handle(event)


def engine_cases(catalog: Catalog, plan: Plan, runs: int) -> dict[str, dict]:
    today = plan.today
    typed = pressed = None
    for ctx, state, event, f in _states(catalog, plan, today):
        if typed is None and isinstance(event, Text) and f is not None and f.type == "date":
            typed = (ctx, state, event)
        if pressed is None and isinstance(event, Press) and event.data.endswith(".c:" + "self"):
            pressed = (ctx, state, event)
        if typed and pressed:
            break
    if pressed is None:  # any button press will do
        pressed = next(
            (c, s, e) for c, s, e, _ in _states(catalog, plan, today) if isinstance(e, Press)
        )
    assert typed is not None and pressed is not None
    out = {}
    for name, (ctx, state, event) in (("typed date", typed), ("button press", pressed)):

        def step(ctx=ctx, state=state, event=event):
            return eng.Engine(ctx, state, eng.ACTIVE).handle(event)

        step()
        out[f"engine step, {name}, cold"] = _timed(step, runs, setup=eng._EFF_CACHE.clear)
        out[f"engine step, {name}, warm"] = _timed(step, runs)
    out["engine step, whole conversations"] = conversation_steps(catalog, plan, runs)
    return out


def conversation_steps(catalog: Catalog, plan: Plan, runs: int) -> dict[str, float]:
    """Every answer step of every script, in order, as a conversation makes them: the
    state before a step was seen by the step before it (its memo is warm), the state
    after it is new. Replayed until `runs` steps were timed."""
    cases = list(_states(catalog, plan, plan.today))
    samples: list[float] = []
    eng._EFF_CACHE.clear()
    while len(samples) < runs:
        for ctx, state, event, _f in cases:
            eng.effective_answers(ctx.proc, state, ctx.today)  # what the step before did
            t0 = time.perf_counter()
            eng.Engine(ctx, state, eng.ACTIVE).handle(event)
            samples.append((time.perf_counter() - t0) * 1e6)
        eng._EFF_CACHE.clear()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p99_us": round(percentile(samples, 99), 1),
        "runs": len(samples),
        "what": f"{len(cases)} steps of {len(plan.scripts)} scripts",
    }


def interpretation_case(catalog: Catalog, plan: Plan, runs: int) -> tuple[str, dict]:
    """Free-text interpretation: flows.intents if it is there, else the validators."""
    phrases = [v for s in plan.scripts for st in s.steps for k, v in st.events if k == "text"]
    try:
        from flows.intents import IntentModel  # written in parallel; may not exist yet
    except ImportError:
        IntentModel = None  # noqa: N806
    if IntentModel is not None:
        model = IntentModel.from_catalog(catalog)
        queries = phrases + [
            "toi can giay xac nhan doc than de vay ngan hang",
            "xin ban sao giay khai sinh cho con",
            "le phi bao nhieu",
            "mat bao lau",
            "can giay to gi",
        ]
        index = iter(range(10**9))

        def classify():
            text = queries[next(index) % len(queries)]
            return model.classify(text, current_procedure=None)

        classify()
        return "flows.intents IntentModel.classify", _timed(classify, runs)
    pairs = []
    today = plan.today
    for ctx, state, event, f in _states(catalog, plan, today):
        if isinstance(event, Text) and f is not None and f.type not in ("info", "computed"):
            eff, _ = eng.effective_answers(ctx.proc, state, today)
            pairs.append((f, event.text, eff))
    index = iter(range(10**9))

    def validate():
        f, text, eff = pairs[next(index) % len(pairs)]
        return validators.validate(f, text, eff, today)

    return "procedures.validators.validate (flows.intents not there)", _timed(validate, runs)


def pdf_case(catalog: Catalog, plan: Plan, runs: int) -> dict:
    """One declaration PDF (what the confirm button costs), from the first sample."""
    from flows.pdf import render_pdf

    script = plan.scripts[0]
    proc = catalog.get(script.proc_id)
    state = None
    for ctx, st, event, _f in _states(catalog, plan, plan.today):
        if ctx.proc.id == proc.id:
            state = eng.Engine(ctx, st, eng.ACTIVE).handle(event).state
            engine_ctx = ctx
    assert state is not None
    markup = eng.Engine(engine_ctx, state, eng.ACTIVE).declaration_markup()
    render_pdf(markup, title=proc.name)
    return _timed(lambda: render_pdf(markup, title=proc.name), runs)


def run_micro(catalog: Catalog, plan: Plan, runs: int = 2000, pdf_runs: int = 10) -> dict:
    out = engine_cases(catalog, plan, runs)
    name, result = interpretation_case(catalog, plan, runs)
    result["what"] = name
    out["free-text interpretation"] = result
    out["declaration PDF"] = pdf_case(catalog, plan, pdf_runs)
    return out

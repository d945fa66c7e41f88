"""The engine's memo (effective answers and applicable fields per distinct answers) and its
state copy change nothing: the answers are those computed from scratch, callers get their
own dicts, and a step never changes the state it was given."""

from __future__ import annotations

import copy

import pytest

from benchmarks.micro import _states
from benchmarks.scripts import plan_scripts
from flows import engine as eng
from procedures.loader import load_catalog


@pytest.fixture(scope="module")
def walked():
    catalog = load_catalog()
    plan = plan_scripts(catalog, per_procedure=1)
    return list(_states(catalog, plan, plan.today))


def _missing_from_scratch(proc, state, today):
    answers, _ = eng._compute_effective(proc, state, today)
    for f in eng.applicable(proc, answers, today):
        if f.id not in answers and f.id not in set(state["skipped"]):
            return f
    return None


def test_memo_gives_what_a_fresh_computation_gives(walked) -> None:
    assert len(walked) > 20
    for ctx, state, _event, _f in walked:
        for cold in (True, False):  # first call fills the memo, the second reads it
            if cold:
                eng._EFF_CACHE.clear()
            answers, shown = eng.effective_answers(ctx.proc, state, ctx.today)
            assert (answers, shown) == eng._compute_effective(ctx.proc, state, ctx.today)
            expected = _missing_from_scratch(ctx.proc, state, ctx.today)
            assert eng.missing(ctx.proc, state, ctx.today) is expected


def test_callers_get_their_own_dicts(walked) -> None:
    ctx, state, _event, _f = walked[-1]
    answers, shown = eng.effective_answers(ctx.proc, state, ctx.today)
    answers["intruder"] = 1
    shown.clear()
    again, shown_again = eng.effective_answers(ctx.proc, state, ctx.today)
    assert "intruder" not in again and shown_again


def test_a_step_leaves_the_given_state_as_it_was(walked) -> None:
    for ctx, state, event, _f in walked:
        before = copy.deepcopy(state)
        step = eng.Engine(ctx, state, eng.ACTIVE).handle(event)
        assert state == before
        assert step.state is not state
        for key in ("answers", "shown", "failures", "skipped"):
            assert step.state[key] is not state[key]


def test_migrate_state_copies_deeply() -> None:
    proc = load_catalog().ordered()[0]
    state = eng.new_state(proc)
    state["answers"]["x"] = {"nested": [1, {"deep": "a"}]}
    state["pending"] = {"kind": "pick", "options": [["v", "shown"]]}
    migrated = eng.migrate_state(proc, state)
    migrated["answers"]["x"]["nested"][1]["deep"] = "changed"
    migrated["pending"]["options"][0][1] = "changed"
    assert state["answers"]["x"] == {"nested": [1, {"deep": "a"}]}
    assert state["pending"]["options"] == [["v", "shown"]]

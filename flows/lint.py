"""Lint procedures by walking them: every sample answer set in `procedures/<id>/samples/`
is played through the real engine (no database) from the first question to the filled
declaration, and every message, button and template on the way is checked against
Telegram's limits. Also draws a procedure as a Mermaid diagram for officers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows import engine as eng
from flows.render import Renderer
from flows.types import Press, Reply, Text
from procedures import conditions
from procedures.loader import Catalog
from procedures.model import Procedure

LINT_KEY = "lint00"
MAX_STEPS = 400


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def samples_of(catalog: Catalog, proc: Procedure) -> dict[str, dict[str, Any]]:
    folder: Path = catalog.folders[proc.id] / "samples"
    out: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            out[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return out


def _press(replies: list[Reply], token: str) -> Press | None:
    for reply in reversed(replies):
        for row in reply.buttons:
            for b in row:
                if b.data.split(".", 2)[-1] == token:
                    return Press(b.data)
    return None


@dataclass
class Played:
    step: eng.Step
    replies: list[Reply]
    problems: list[str]
    actions: list[tuple[str, str]]  # ("text", what was typed) or ("press", token)


def play(
    catalog: Catalog,
    proc: Procedure,
    answers: dict[str, Any],
    today: dt.date,
    renderer: Renderer | None = None,
) -> Played:
    """Answer `proc` with `answers` (field id -> what a person types or presses) through
    the engine, up to the filled declaration. The actions taken can be replayed through
    any transport (the end-to-end tests replay them through Telegram)."""
    r = renderer or Renderer(catalog)
    ctx = eng.Ctx(proc=proc, renderer=r, key=LINT_KEY, today=today, keywords=catalog.keywords)
    problems: list[str] = []
    actions: list[tuple[str, str]] = []
    step = eng.Engine(ctx, eng.new_state(proc), eng.ACTIVE).start()
    replies = list(step.replies)
    for _ in range(MAX_STEPS):
        state = step.state
        if state["stage"] != "questions":
            break
        pending = state.get("pending")
        f = eng.current_field(proc, state, today)
        if f is None:
            break
        if pending and pending.get("kind") == "confirm":
            event = _press(step.replies, "y")
        elif pending and pending.get("kind") == "pick":
            event = _press(step.replies, "p:0")
        elif f.id in answers:
            value = answers[f.id]
            choice = f.choice(str(value)) if f.type == "choice" else None
            if choice is not None:
                event = _press(step.replies, "c:" + choice.id)
            elif f.type == "info":
                event = _press(step.replies, "ok")
            else:
                event = Text(str(value))
        elif not f.required:
            event = _press(step.replies, "skip")
        elif f.type == "info":
            event = _press(step.replies, "ok")
        else:
            problems.append(f"{proc.id}: no sample answer for required field {f.id}")
            break
        if event is None:
            problems.append(f"{proc.id}: field {f.id}: expected button not found")
            break
        if isinstance(event, Text):
            actions.append(("text", event.text))
        else:
            actions.append(("press", event.data.split(".", 2)[2]))
        before = dict(state["failures"])
        step = eng.Engine(ctx, step.state, step.status).handle(event)
        replies.extend(step.replies)
        if step.state["failures"].get(f.id, 0) > before.get(f.id, 0):
            problems.append(
                f"{proc.id}: sample answer for {f.id} was refused: {step.replies[0].text[:160]!r}"
            )
            break
    else:
        problems.append(f"{proc.id}: did not reach the review in {MAX_STEPS} steps")
    if step.state["stage"] == "review":
        confirm = _press(step.replies, "confirm")
        if confirm is None:
            problems.append(f"{proc.id}: review has no confirm button")
        else:
            actions.append(("press", "confirm"))
            step = eng.Engine(ctx, step.state, step.status).handle(confirm)
            replies.extend(step.replies)
    return Played(step, replies, problems, actions)


def check_replies(proc: Procedure, replies: list[Reply]) -> list[str]:
    problems = []
    for reply in replies:
        if len(reply.text) > 4096:
            problems.append(f"{proc.id}: a message is {len(reply.text)} characters (> 4096)")
        if not reply.text.strip():
            problems.append(f"{proc.id}: an empty message")
        for row in reply.buttons:
            for b in row:
                if len(b.data.encode()) > 64 or not b.data.isascii():
                    problems.append(f"{proc.id}: callback data {b.data!r} is not ASCII <= 64 bytes")
                if not b.label.strip():
                    problems.append(f"{proc.id}: a button without a label")
    return problems


def lint_procedure(catalog: Catalog, proc: Procedure, today: dt.date) -> Report:
    report = Report()
    samples = samples_of(catalog, proc)
    if not samples:
        report.problems.append(f"{proc.id}: no samples in samples/*.yaml")
    renderer = Renderer(catalog)
    for name, answers in samples.items():
        played = play(catalog, proc, answers, today, renderer)
        step, replies, problems = played.step, played.replies, played.problems
        report.problems += [f"{p} (sample {name})" for p in problems]
        report.problems += check_replies(proc, replies)
        pdfs = [r.attachment for r in replies if r.attachment is not None]
        if step.state["stage"] != "result" or not pdfs:
            report.problems.append(f"{proc.id}: sample {name} did not produce a declaration")
        else:
            report.lines.append(
                f"{proc.id}: sample {name}: {len(replies)} messages, "
                f"PDF {len(pdfs[0].content) // 1024} KiB"
            )
        # every fact, document, exit and portal step renders with these answers
        eff, shown = eng.effective_answers(proc, step.state, today)
        ctx = eng.template_ctx(proc, eff, shown, today)
        texts = [f.text for f in proc.legal_basis + proc.agency + proc.who_may_apply]
        texts += [f.text for f in proc.fee + proc.processing_time + proc.result + proc.validity]
        texts += [d.text for d in proc.documents] + [e.text for e in proc.exits]
        texts += proc.portal.steps + [proc.intro]
        texts += [f.question for f in proc.fields] + [f.help or "" for f in proc.fields]
        for t in texts:
            try:
                conditions.render_string(t, ctx)
            except Exception as exc:
                report.problems.append(f"{proc.id}: template {t[:50]!r} fails: {exc}")
    return report


def lint_catalog(catalog: Catalog, today: dt.date | None = None) -> Report:
    today = today or dt.date.today()
    total = Report()
    for proc in catalog.ordered():
        r = lint_procedure(catalog, proc, today)
        total.lines += r.lines
        total.problems += r.problems
    return total


def mermaid(proc: Procedure, labels: dict[str, str]) -> str:
    """The questions as a flowchart: one node per field, edges labelled by conditions."""
    lines = ["flowchart TD", f'  start(["{proc.short_name}"])']
    prev = "start"
    for f in proc.fields:
        if not f.asked:
            continue
        label = f.label.replace('"', "'")
        lines.append(f'  {f.id}["{label}"]')
        if f.when:
            cond = f.when.replace('"', "'")
            lines.append(f'  {prev} -->|"{cond}"| {f.id}')
        else:
            lines.append(f"  {prev} --> {f.id}")
        for c in f.choices:
            if c.exit:
                lines.append(f'  {f.id} -->|"{c.label}"| exit_{c.exit}(["{c.exit}"])')
        prev = f.id
    lines.append(f'  review(["{labels["review"]}"])')
    lines.append(f'  {prev} --> review --> result(["{labels["result"]}"])')
    return "\n".join(lines)

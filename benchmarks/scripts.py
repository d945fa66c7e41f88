"""What each simulated citizen does, planned once through the real conversation service.

For every sample answer set of every procedure (`procedures/<id>/samples/*.yaml`) the
planner plays the conversation through `ConversationService` on an in-memory SQLite
database, deciding each step the way `flows.lint.play` does, and adds what people do:

- one validation error: a wrong value typed for a date, ID number, phone, number or e-mail
  field, immediately followed by the right value (two updates in flight for one chat: the
  replies must come back in that order);
- one "back" button press, then the earlier question answered again;
- one edit from the review (the "edit n" button), then that answer given again.

Each step records the events to send and, for each event, the text of the reply message
that carries the buttons (every reply of the bot ends with one), so the load can check
that every reply came in order and from the right step. Draft payloads seen on the way are
kept as realistic seed data for the growth benchmark.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flows import engine as eng
from flows.lint import samples_of
from flows.service import ConversationService
from flows.types import Command, Inbound, Press, Reply, Sender, Text
from procedures import validators
from procedures.loader import Catalog, load_catalog
from procedures.results import Invalid
from storage.crypto import Keyring, generate_key
from storage.store import Store

# Event kinds: ("cmd", "/start arg"), ("text", typed), ("press", token)
Event = tuple[str, str]

ERROR_TYPES = ("date", "id_number", "phone", "number", "email")
WRONG_VALUES = ("32/13/2020", "12345", "abc", "0", "@@@", "xyz 123")
BACK_AFTER = 3  # answers given before the citizen presses "back" once
MAX_STEPS = 300


@dataclass
class Step:
    events: list[Event]
    expect: list[str]  # text of the reply with buttons, one per event
    label: str  # start, answer, error, back, edit, confirm


@dataclass
class Script:
    proc_id: str
    sample: str
    steps: list[Step] = field(default_factory=list)

    @property
    def updates(self) -> int:
        return sum(len(s.events) for s in self.steps)


@dataclass
class Plan:
    scripts: list[Script]
    payloads: list[tuple[str, str]]  # (draft status, payload JSON) seen while planning
    today: dt.date


def _kb_texts(replies: list[Reply]) -> list[str]:
    return [r.text for r in replies if r.buttons]


def _data_for(replies: list[Reply], token: str) -> str:
    for reply in reversed(replies):
        for row in reply.buttons:
            for b in row:
                if b.data.split(".", 2)[-1] == token:
                    return b.data
    raise RuntimeError(f"no button {token!r} in the last reply")


class _Planner:
    def __init__(self, svc: ConversationService, catalog: Catalog, today: dt.date) -> None:
        self.svc = svc
        self.catalog = catalog
        self.today = today
        self.payloads: list[tuple[str, str]] = []

    def plan(self, proc_id: str, sample: str, answers: dict, external_id: str) -> Script:
        proc = self.catalog.get(proc_id)
        assert proc is not None
        sender = Sender("telegram", external_id, "Bench Citizen")
        script = Script(proc_id, sample)
        last: list[Reply] = []

        def send(kind: str, value: str) -> list[str]:
            nonlocal last
            if kind == "cmd":
                name, _, arg = value[1:].partition(" ")
                event = Command(name, arg)
            elif kind == "text":
                event = Text(value)
            else:
                event = Press(_data_for(last, value))
            replies = self.svc.handle(Inbound(sender, event)).replies
            texts = _kb_texts(replies)
            if len(texts) != 1:
                raise RuntimeError(f"{proc_id}/{sample}: {len(texts)} replies with buttons")
            last = replies
            return texts

        def step(label: str, *events: Event) -> None:
            expect: list[str] = []
            for kind, value in events:
                expect += send(kind, value)
            script.steps.append(Step(list(events), expect, label))
            draft = self._draft(external_id, required=label != "start")
            if draft is not None:
                payload = json.dumps(draft.payload, ensure_ascii=False)
                self.payloads.append((draft.status, payload))

        step("start", ("cmd", f"/start {proc_id}"))
        if self._draft(external_id, required=False) is None:
            # a first-time citizen is shown what is kept about them, and agrees first
            step("consent", ("press", self._start_token(last, proc_id)))
        answered = 0
        did_error = did_back = did_edit = False
        for _ in range(MAX_STEPS):
            draft = self._draft(external_id)
            state = draft.payload
            stage = state["stage"]
            if stage == "review":
                if not did_edit:
                    target = self._edit_target(proc, state, answers)
                    did_edit = True
                    if target:
                        step("edit", ("press", "e:" + target))
                        continue
                step("confirm", ("press", "confirm"))
                break
            if stage != "questions":
                raise RuntimeError(f"{proc_id}/{sample}: unexpected stage {stage}")
            f = eng.current_field(proc, state, self.today)
            if f is None:
                raise RuntimeError(f"{proc_id}/{sample}: no current field")
            pending = state.get("pending")
            if pending and pending.get("kind") == "confirm":
                action: Event = ("press", "y")
            elif pending and pending.get("kind") == "pick":
                action = ("press", "p:0")
            elif f.id in answers:
                value = str(answers[f.id])
                choice = f.choice(value) if f.type == "choice" else None
                if choice is not None:
                    action = ("press", "c:" + choice.id)
                elif f.type == "info":
                    action = ("press", "ok")
                else:
                    action = ("text", value)
            elif not f.required:
                action = ("press", "skip")
            elif f.type == "info":
                action = ("press", "ok")
            else:
                raise RuntimeError(f"{proc_id}/{sample}: no answer for {f.id}")
            if not did_back and answered >= BACK_AFTER and not pending:
                did_back = True
                step("back", ("press", "back"))
                continue
            wrong = None
            if not did_error and action[0] == "text" and f.type in ERROR_TYPES:
                wrong = self._wrong_value(proc, state, f)
            if wrong is not None:
                did_error = True
                step("error", ("text", wrong), action)
            else:
                step("answer", action)
            answered += 1
        else:
            raise RuntimeError(f"{proc_id}/{sample}: did not reach the review")
        if self._draft(external_id).payload["stage"] != "result":
            raise RuntimeError(f"{proc_id}/{sample}: did not produce the declaration")
        return script

    def _draft(self, external_id: str, *, required: bool = True):
        with self.svc.store.unit_of_work() as uow:
            citizen = uow.citizen("telegram", external_id)
            assert citizen is not None
            active = citizen.session.get("active")
            draft = uow.draft(active) if active is not None else None
            if required and draft is None:
                raise RuntimeError(f"{external_id}: no active draft")
            return draft

    @staticmethod
    def _start_token(replies: list[Reply], proc_id: str) -> str:
        """The button of the last reply that starts `proc_id` (its token ends with the id)."""
        for reply in reversed(replies):
            for row in reply.buttons:
                for b in row:
                    token = b.data.split(".", 2)[-1]
                    if token.endswith(":" + proc_id):
                        return token
        raise RuntimeError(f"{proc_id}: no draft after /start and no button to start it")

    def _wrong_value(self, proc, state, f) -> str | None:
        eff, _ = eng.effective_answers(proc, state, self.today)
        for candidate in WRONG_VALUES:
            if isinstance(validators.validate(f, candidate, eff, self.today), Invalid):
                return candidate
        return None

    def _edit_target(self, proc, state, answers) -> str | None:
        eff, _ = eng.effective_answers(proc, state, self.today)
        for f in eng.applicable(proc, eff, self.today):
            if f.type in ("name", "text", "date") and f.id in answers and f.id in eff:
                return f.id
        return None


def plan_scripts(
    catalog: Catalog | None = None,
    timezone: str = "Asia/Ho_Chi_Minh",
    per_procedure: int | None = None,
) -> Plan:
    """Plan one script per sample of every procedure (see the module docstring); with
    `per_procedure`, only that many samples of each."""
    catalog = catalog or load_catalog()
    today = dt.datetime.now(ZoneInfo(timezone)).date()
    # an in-memory database with a throwaway key (no ./motcua.key left in the folder)
    store = Store("sqlite://", keyring=Keyring([generate_key()]))
    store.upgrade()
    try:
        svc = ConversationService(store, catalog, timezone=timezone, raise_errors=True)
        planner = _Planner(svc, catalog, today)
        scripts = []
        n = 0
        for proc in catalog.ordered():
            samples = list(samples_of(catalog, proc).items())[:per_procedure]
            for sample, answers in samples:
                n += 1
                scripts.append(planner.plan(proc.id, sample, answers, f"plan{n}"))
        return Plan(scripts, planner.payloads, today)
    finally:
        store.dispose()


def echo_expect(event: Event) -> str:
    """What benchmarks/echo_bot.py answers to an event."""
    kind, value = event
    return value if kind in ("cmd", "text") else "ok"

"""The conversation engine for one draft: (procedure, state, event, now) -> (state, facts, replies).

No I/O, no clock reads, no randomness: the service passes `now`/`today` in and writes what
comes out. The state is a JSON dict (the draft payload) with a schema version and stable
field ids; the next question is always recomputed from it ("ask for the first missing
field"), so resume, back, edit-from-review and a changed procedure all work the same way.

Stages: `questions` (eligibility, account readiness and the form: the procedure's fields)
-> `review` -> `result` (declaration PDF, checklist, portal steps, waiting for the dossier
code) -> `submitted`. Side stages: `exit` (the procedure is not needed), `cancel` (asking to
confirm a cancel), `cancelled`.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from flows.render import MacroArgs, Renderer, split_text
from flows.types import Attachment, Button, Command, Event, Other, Press, Reply, Text
from procedures import conditions, validators
from procedures.model import FieldSpec, Procedure
from procedures.results import Ambiguous, Confirm, Invalid, Valid
from procedures.text import fold

SCHEMA = 1
MAX_FAILURES = 3
DOSSIER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_/]{5,39}$")
MAX_INPUT = 1000  # longer typed input is refused before parsing

# draft statuses (the storage row mirrors these)
ACTIVE, COMPLETED, SUBMITTED, CANCELLED, EXITED = (
    "active",
    "completed",
    "submitted",
    "cancelled",
    "exited",
)


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class FactOut:
    """A past-tense fact for the fact table. Never carries answer values."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    state: dict[str, Any]
    replies: list[Reply]
    facts: list[FactOut]
    status: str
    to_menu: bool = False  # the person left the draft for the main menu
    handoff: str | None = None  # reason, when an officer was requested
    start: str | None = None  # the person asked to start this other procedure


@dataclass(frozen=True)
class Ctx:
    proc: Procedure
    renderer: Renderer
    key: str  # the draft's short id, first part of callback data
    today: dt.date
    keywords: dict[str, list[str]]
    intents: Any = None  # flows.intents.IntentModel, or None: typed text is only answers


# intent kinds the engine handles inside a draft (others fall back to the field's error)
DRAFT_INTENTS = {"question", "greeting", "thanks", "officer", "cancel", "help", "start_procedure"}
DRAFT_INTENTS |= {"list_procedures", "ambiguous"}


def new_state(proc: Procedure) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "proc": proc.id,
        "pv": proc.version,
        "stage": "questions",
        "answers": {},
        "shown": {},
        "skipped": [],
        "focus": None,
        "failures": {},
        "pending": None,
        "exit": None,
        "exit_field": None,
        "before_cancel": None,
        "turn": 0,
        "dossier_code": None,
        "awaiting_code": False,
    }


def _clone(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars), several times faster than
    copy.deepcopy; anything else is handed to copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        # scalars are taken as they are without a call per value (most of a state)
        return {k: v if type(v) in _IMMUTABLE else _clone(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _IMMUTABLE else _clone(v) for v in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


_IMMUTABLE = frozenset({str, int, float, bool, type(None), dt.date, dt.datetime})
clone_json = _clone  # for the service's snapshot of a citizen's session


def _narrowed(pending: dict[str, Any], text: str) -> tuple[Any, str] | None:
    """The one offered option whose label contains the typed words (folded, whole words),
    e.g. the province typed under several communes of one name; None when none or several
    do, so the text is read as a new answer."""
    words = fold(text).strip(" .,")
    if len(words) < 3:
        return None
    pattern = re.compile(rf"(?<!\w){re.escape(words)}(?!\w)")
    found = [o for o in pending.get("options", []) if pattern.search(fold(str(o[1])))]
    return (found[0][0], found[0][1]) if len(found) == 1 else None


def migrate_state(proc: Procedure, state: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored draft up to this procedure version: renamed fields keep their
    answers (`formerly:`), unknown keys are kept but ignored. Works on a deep copy: the
    caller's state is never changed."""
    st = _clone(state)
    for k, v in new_state(proc).items():
        st.setdefault(k, v)
    renames = _plan(proc).renames
    for bucket in ("answers", "shown", "failures"):
        data = st.get(bucket) or {}
        for old, new in renames.items():
            if old in data and new not in data:
                data[new] = data.pop(old)
        st[bucket] = data
    st["skipped"] = [renames.get(s, s) for s in st.get("skipped", [])]
    if st.get("focus") in renames:
        st["focus"] = renames[st["focus"]]
    st["pv"] = proc.version
    return st


# --------------------------------------------------------------------------- navigation


def applicable(proc: Procedure, answers: dict[str, Any], today: dt.date) -> list[FieldSpec]:
    """Asked fields whose condition holds, in declared order."""
    ns = conditions.namespace(answers, today)
    return [f for f in proc.fields if f.asked and conditions.holds_ns(f.when, ns)]


@dataclass(frozen=True)
class _Analysis:
    """What a state's answers imply, computed once per distinct answers (read-only)."""

    answers: dict[str, Any]  # effective answers (see effective_answers)
    shown: dict[str, str]
    fields: tuple[FieldSpec, ...]  # applicable(proc, answers, today)


_EFF_CACHE: dict[tuple, _Analysis] = {}
# the last analysis looked up: (proc, today, answers, shown, result, memo key), answers
# and shown copied. A step asks for the same answers several times in a row, and
# comparing two dicts is cheaper than building the sorted memo key again; equal dicts
# are equal keys (only states whose values are all hashable get here: JSON scalars)
_LAST: tuple | None = None


def _analysis(proc: Procedure, state: dict[str, Any], today: dt.date) -> _Analysis:
    """Effective answers and applicable fields, memoised on (procedure, day, answers,
    shown): a step asks for them several times (current field, progress, review)."""
    global _LAST
    raw = state["answers"]
    shown_in = state["shown"]
    last = _LAST  # one read: another thread may replace it meanwhile
    if (
        last is not None
        and last[0] is proc
        and last[1] == today
        and last[2] == raw
        and last[3] == shown_in
        and _EFF_CACHE.get(last[5]) is last[4]  # not cleared since (benchmarks clear it)
    ):
        return last[4]
    try:
        key = (
            proc.id,
            proc.version,
            today,
            tuple(sorted(raw.items())),
            tuple(sorted(shown_in.items())),
        )
        hit = _EFF_CACHE.get(key)
    except TypeError:  # an unhashable stored value: compute without the cache
        key, hit = None, None
    if hit is None:
        hit = _compute_analysis(proc, state, today)
        if key is not None:
            if len(_EFF_CACHE) > 2048:
                _EFF_CACHE.clear()
            _EFF_CACHE[key] = hit
    if key is not None:  # hashable values: the copies below cannot change under us
        _LAST = (proc, today, dict(raw), dict(shown_in), hit, key)
    return hit


@dataclass(frozen=True)
class _Plan:
    """What the engine reads of a procedure at every analysis, looked up once: the asked
    fields with their condition as a callable (None: always holds) and whether the
    condition reads earlier asked fields only (then it holds over the answers so far
    exactly when it holds over all effective answers, see _compute_analysis), and the
    computed fields with their condition."""

    proc: Procedure
    asked: tuple[tuple[FieldSpec, Any, bool], ...]
    computed: tuple[tuple[FieldSpec, Any], ...]
    renames: dict[str, str]
    # field id -> every name its validators read (their parameters, the names in their
    # conditions); None when a condition does not parse (the engine then asks as it goes)
    validator_reads: dict[str, frozenset[str] | None]


_PLANS: dict[int, _Plan] = {}


def _plan(proc: Procedure) -> _Plan:
    plan = _PLANS.get(id(proc))
    if plan is not None and plan.proc is proc:
        return plan
    asked_ids = [f.id for f in proc.fields if f.asked]
    computed_ids = {f.id for f in proc.fields if not f.asked}
    # a field named like a namespace function would change `has`/`today` in the walk
    shadowing = bool({"has", "age", "today"} & set(asked_ids))
    asked = []
    for i, f in enumerate(f for f in proc.fields if f.asked):
        names = conditions.reads(f.when) if f.when else frozenset()
        not_yet = computed_ids.union(asked_ids[i:])
        prefix = not shadowing and names is not None and not (names & not_yet)
        asked.append((f, conditions.predicate(f.when), prefix))
    computed = tuple((f, conditions.predicate(f.when)) for f in proc.fields if not f.asked)
    plan = _Plan(proc, tuple(asked), computed, proc.renames(), _validator_reads(proc))
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(proc)] = plan
    return plan


def _validator_reads(proc: Procedure) -> dict[str, frozenset[str] | None]:
    out: dict[str, frozenset[str] | None] = {}
    for g in proc.fields:
        names: set[str] | None = set()
        for v in g.validators:
            names.update(str(x) for x in v.params.values())
            if v.when:
                try:
                    names.update(conditions.names_in(v.when))
                except Exception:
                    names = None
                    break
        out[g.id] = None if names is None else frozenset(names)
    return out


def _compute_analysis(proc: Procedure, state: dict[str, Any], today: dt.date) -> _Analysis:
    """_compute_effective and applicable() in one walk. An asked field's condition is
    evaluated once, over the answers of the fields before it, when it reads only those
    (what procedures declare: conditions depend on earlier answers): those answers are
    the same among all effective answers, so it gives what applicable() gives. Any
    other condition is evaluated again over all effective answers, as applicable() does."""
    plan = _plan(proc)
    raw = state["answers"]
    shown_in = state["shown"]
    answers: dict[str, Any] = {}
    shown: dict[str, str] = {}
    ns = conditions.namespace(answers, today)
    holds: list[bool | None] = []
    for f, check, prefix in plan.asked:
        fid = f.id
        if fid in raw:
            ok = check is None or check(ns)
            if ok:
                value = raw[fid]
                answers[fid] = value
                ns[fid] = value
                shown[fid] = shown_in.get(fid, str(value))
            holds.append(ok if prefix else None)
        elif prefix:
            holds.append(check is None or check(ns))
        else:
            holds.append(None)
    if plan.computed:
        ctx = template_ctx(proc, answers, shown, today)
        ns = conditions.namespace(answers, today)
        for f, check in plan.computed:
            if check is None or check(ns):
                value = conditions.render_string(f.value or "", ctx).strip()
                answers[f.id] = value
                shown[f.id] = value
    fields = []
    final = None
    for (f, check, _prefix), ok in zip(plan.asked, holds, strict=True):
        if ok is None:
            if final is None:
                final = conditions.namespace(answers, today)
            ok = check is None or check(final)
        if ok:
            fields.append(f)
    return _Analysis(answers, shown, tuple(fields))


def effective_answers(
    proc: Procedure, state: dict[str, Any], today: dt.date
) -> tuple[dict[str, Any], dict[str, str]]:
    """Answers of fields that still apply (a changed branch hides old answers), plus
    computed fields. Pure; memoised on the answers because every step asks it often.
    The dicts are the caller's own (copies of the memo)."""
    hit = _analysis(proc, state, today)
    return dict(hit.answers), dict(hit.shown)


def _compute_effective(
    proc: Procedure, state: dict[str, Any], today: dt.date
) -> tuple[dict[str, Any], dict[str, str]]:
    raw = state["answers"]
    answers: dict[str, Any] = {}
    shown: dict[str, str] = {}
    ns = conditions.namespace(answers, today)
    # conditions may depend on earlier answers only; walk in order
    for f in proc.fields:
        if not f.asked:
            continue
        if f.id in raw and conditions.holds_ns(f.when, ns):
            answers[f.id] = raw[f.id]
            ns[f.id] = raw[f.id]
            shown[f.id] = state["shown"].get(f.id, str(raw[f.id]))
    ctx = template_ctx(proc, answers, shown, today)
    ns = conditions.namespace(answers, today)
    for f in proc.fields:
        if f.type == "computed" and conditions.holds_ns(f.when, ns):
            value = conditions.render_string(f.value or "", ctx).strip()
            answers[f.id] = value
            shown[f.id] = value
    return answers, shown


def template_ctx(
    proc: Procedure, answers: dict[str, Any], shown: dict[str, str], today: dt.date
) -> dict[str, Any]:
    return conditions.namespace(answers, today, shown=shown, proc=proc)


def missing(proc: Procedure, state: dict[str, Any], today: dt.date) -> FieldSpec | None:
    skipped = state["skipped"]
    known = _analysis(proc, state, today)
    for f in known.fields:
        if f.id not in known.answers and f.id not in skipped:
            return f
    return None


def current_field(proc: Procedure, state: dict[str, Any], today: dt.date) -> FieldSpec | None:
    if state.get("focus"):
        f = proc.field(state["focus"])
        eff = _analysis(proc, state, today).answers
        if f is not None and f.asked and conditions.holds(f.when, eff, today):
            return f
        state["focus"] = None
    return missing(proc, state, today)


def progress(
    proc: Procedure, state: dict[str, Any], f: FieldSpec, today: dt.date
) -> tuple[int, int]:
    ids = [x.id for x in _analysis(proc, state, today).fields]
    index = ids.index(f.id) + 1 if f.id in ids else len(ids)
    return index, len(ids)


# --------------------------------------------------------------------------- the step


class Engine:
    """Turns one event into a new state, facts and replies. Stateless between calls."""

    def __init__(self, ctx: Ctx, state: dict[str, Any], status: str) -> None:
        self.c = ctx
        self.proc = ctx.proc
        self.r = ctx.renderer
        self.s = migrate_state(ctx.proc, state)
        self.status = status
        self.replies: list[Reply] = []
        self.facts: list[FactOut] = []
        self.to_menu = False
        self.handoff: str | None = None
        self.start_other: str | None = None

    # -- public
    def start(self) -> Step:
        """A new draft: say what the procedure is, then ask the first question."""
        self._bump()
        ctx = self._tctx()
        intro = conditions.render_string(self.proc.intro, ctx) if self.proc.intro else ""
        self._say(self.r.msg("intro", proc=self.proc, intro=intro))
        self.facts.append(FactOut("ProcedureStarted", {"procedure": self.proc.id}))
        self._ask_current()
        return self._done()

    def resume(self, note: str = "") -> Step:
        """Show where the person is, without changing anything but the turn."""
        self._bump()
        if note:
            self._say(self.r.msg(note, proc=self.proc))
        self._render_current()
        return self._done()

    def handle(self, event: Event) -> Step:
        if isinstance(event, Press):
            parts = event.data.split(".", 2)
            if len(parts) != 3 or parts[0] != self.c.key or parts[1] != str(self.s["turn"]):
                self._bump()
                self._say(self.r.msg("stale_button"))
                self._render_current()
                return self._done()
            self._bump()
            self._on_token(parts[2])
            return self._done()
        self._bump()
        if isinstance(event, Text):
            self._on_text(event.text)
        elif isinstance(event, Command):
            self._on_command(event)
        elif isinstance(event, Other):
            self._reject("not_text", {"kind": event.kind})
        return self._done()

    # -- plumbing
    def _done(self) -> Step:
        return Step(
            state=self.s,
            replies=self.replies,
            facts=self.facts,
            status=self.status,
            to_menu=self.to_menu,
            handoff=self.handoff,
            start=self.start_other,
        )

    def _bump(self) -> None:
        self.s["turn"] = int(self.s.get("turn", 0)) + 1

    def _data(self, token: str) -> str:
        data = f"{self.c.key}.{self.s['turn']}.{token}"
        assert len(data.encode()) <= 64, data
        return data

    def _btn(self, label_key: str, token: str) -> Button:
        return Button(self.r.label(label_key), self._data(token))

    def _say(self, text: str, buttons: list[list[Button]] | None = None, expect="none") -> None:
        chunks = split_text(text)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            rows = tuple(tuple(r) for r in (buttons or [])) if last else ()
            self.replies.append(Reply(chunk, rows, expect if last else "none"))

    def _eff(self) -> tuple[dict[str, Any], dict[str, str]]:
        return effective_answers(self.proc, self.s, self.c.today)

    def _fields(self) -> tuple[FieldSpec, ...]:
        """The applicable fields of the current answers."""
        return _analysis(self.proc, self.s, self.c.today).fields

    def _tctx(self) -> dict[str, Any]:
        answers, shown = self._eff()
        return template_ctx(self.proc, answers, shown, self.c.today)

    def _keyword(self, text: str) -> str | None:
        folded = fold(text)
        if not folded:
            return None
        for action in ("back", "help", "skip", "documents", "officer", "pause", "cancel", "menu"):
            phrases = self.c.keywords.get(action, [])
            if folded in phrases:
                return action
        return None

    # -- events
    def _on_text(self, text: str) -> None:
        text = text.strip()
        stage = self.s["stage"]
        if len(text) > MAX_INPUT:
            self._reject("too_long", {"max": MAX_INPUT})
            return
        action = self._keyword(text)
        if action and stage == "questions":
            f = current_field(self.proc, self.s, self.c.today)
            # a one-word keyword typed into a name/text field is an answer, not a command
            if f is not None and f.type in ("name", "text") and " " not in fold(text):
                action = None
        if action:
            self._on_token(action)
            return
        if stage == "questions":
            self._answer(text)
        elif stage == "review":
            m = re.fullmatch(r"(?:sua\s*)?(\d{1,3})", fold(text))
            fields = self._review_fields()
            if m and 1 <= int(m.group(1)) <= len(fields):
                self._on_token("e:" + fields[int(m.group(1)) - 1].id)
            elif fold(text) in self.c.keywords.get("yes", []):
                self._on_token("confirm")
            elif self.c.intents is not None and self._intent(text):
                pass
            else:
                self._say(self.r.msg("review_hint"))
                self._render_current()
        elif stage == "result":
            if self.c.intents is not None and self.c.intents.is_clear_question(text, self.proc.id):
                if self._intent(text):
                    return
            self._dossier_code(text)
        elif stage == "cancel":
            folded = fold(text)
            if folded in self.c.keywords.get("yes", []):
                self._on_token("cy")
            elif folded in self.c.keywords.get("no", []):
                self._on_token("cn")
            else:
                self._render_current()
        elif self.c.intents is not None and self._intent(text):
            pass
        else:
            self._render_current()

    def _on_command(self, cmd: Command) -> None:
        mapping = {"huy": "cancel", "canbo": "officer", "huongdan": "help"}
        if cmd.name in mapping:
            self._on_token(mapping[cmd.name])
        else:
            self._say(self.r.msg("unknown_command", name=cmd.name))
            self._render_current()

    def _on_token(self, token: str) -> None:
        stage = self.s["stage"]
        if token == "help":
            self._help()
        elif token == "documents":
            self._say(self._checklist_text())
            self._render_current()
        elif token == "officer":
            self._officer("asked")
        elif token == "pause":
            self._say(
                self.r.msg("paused", proc=self.proc),
                [[self._btn("resume", "resume")]],
            )
            self.facts.append(FactOut("Paused", {}))
        elif token == "resume":
            self._render_current()
        elif token == "menu":
            self.to_menu = True
        elif token == "more":
            self._more()
        elif token == "cancel":
            if stage in ("cancelled", "cancel"):
                self._render_current()
            else:
                self.s["before_cancel"] = stage
                self.s["stage"] = "cancel"
                self._render_current()
        elif token == "cy" and stage == "cancel":
            self.s["stage"] = "cancelled"
            self.status = CANCELLED
            self.facts.append(FactOut("DraftCancelled", {}))
            self._say(self.r.msg("cancelled", proc=self.proc))
            self.to_menu = True
        elif token == "cn" and stage == "cancel":
            self.s["stage"] = self.s.get("before_cancel") or "questions"
            self._render_current()
        elif token == "back":
            self._back()
        elif stage == "questions":
            self._question_token(token)
        elif stage == "review":
            if token == "confirm":
                self._finish()
            elif token.startswith("e:") and self.proc.field(token[2:]):
                self.s["stage"] = "questions"
                self.s["focus"] = token[2:]
                self._render_current()
            else:
                self._render_current()
        elif stage == "exit":
            if token == "again":
                field_id = self.s.get("exit_field")
                self.s["stage"] = "questions"
                self.s["exit"] = None
                self.status = ACTIVE
                if field_id:
                    self.s["answers"].pop(field_id, None)
                    self.s["shown"].pop(field_id, None)
                    self.s["focus"] = field_id
                self._render_current()
            else:
                self._render_current()
        elif stage == "result":
            if token == "sub":
                self.s["awaiting_code"] = True
                self._say(self.r.msg("dossier_ask"), self._nav_row(back=False), expect="text")
            elif token == "later":
                self._say(self.r.msg("result_later", proc=self.proc))
            elif token == "review":
                self.s["stage"] = "review"
                self.status = ACTIVE
                self._render_current()
            else:
                self._render_current()
        else:
            self._render_current()

    # -- questions
    def _question_token(self, token: str) -> None:
        f = current_field(self.proc, self.s, self.c.today)
        if f is None:
            self._advance()
            return
        pending = self.s.get("pending")
        if token == "skip":
            self._skip(f)
        elif token.startswith("c:"):
            choice = f.choice(token[2:])
            if choice is None:
                self._render_current()
                return
            self._answer(choice.label, via_button=True)
        elif token in ("y", "n") and f.type == "yesno" and not pending:
            self._answer(self.c.keywords["yes" if token == "y" else "no"][0], via_button=True)
        elif token == "ok" and f.type == "info":
            self._store(f, Valid("ok", self.r.label("ok")))
        elif token.startswith("s:") and token[2:].isdigit() and int(token[2:]) < len(f.suggest):
            self._answer(f.suggest[int(token[2:])], via_button=True)
        elif token in ("y", "n") and pending and pending.get("kind") == "confirm":
            self._confirm_pending(f, token == "y")
        elif token.startswith("p:") and pending and pending.get("kind") == "pick":
            idx = token[2:]
            options = pending.get("options", [])
            if idx.isdigit() and int(idx) < len(options):
                value, display = options[int(idx)]
                self.s["pending"] = None
                self._store(f, Valid(value, display))
            else:
                self._render_current()
        else:
            self._render_current()

    def _answer(self, text: str, via_button: bool = False) -> None:
        f = current_field(self.proc, self.s, self.c.today)
        if f is None:
            self._advance()
            return
        pending = self.s.get("pending")
        if pending and pending.get("kind") == "confirm":
            folded = fold(text)
            if folded in self.c.keywords.get("yes", []):
                self._confirm_pending(f, True)
                return
            if folded in self.c.keywords.get("no", []):
                self._confirm_pending(f, False)
                return
            self.s["pending"] = None  # a new answer replaces the pending one
        elif pending:
            self.s["pending"] = None
            picked = _narrowed(pending, text) if pending.get("kind") == "pick" else None
            if picked is not None:  # "tay ninh" typed under the communes named Tan Phu
                self._store(f, Valid(picked[0], picked[1]))
                return
        if f.type == "info":
            self._store(f, Valid("ok", self.r.label("ok")))
            return
        for suggestion in f.suggest:  # "kinh" typed for the "Kinh" button is that button
            if fold(suggestion) == fold(text):
                text = suggestion
        model = self.c.intents
        if (
            model is not None
            and not via_button
            and f.type in ("text", "name")
            and model.is_clear_question(text, self.proc.id)
            and self._intent(text)
        ):
            return  # "bao nhieu tien?" typed where a name is asked is a question
        answers, _ = self._eff()
        outcome = validators.validate(f, text, answers, self.c.today)
        if isinstance(outcome, Valid):
            self._store(f, outcome)
        elif isinstance(outcome, Invalid):
            if via_button or model is None or not self._intent(text):
                self._reject(outcome.code, outcome.params, f)
        elif isinstance(outcome, Ambiguous):
            options = [[o.value, o.display] for o in outcome.options]
            self.s["pending"] = {"kind": "pick", "field": f.id, "options": options}
            self._render_current()
        elif isinstance(outcome, Confirm):
            self.s["pending"] = {
                "kind": "confirm",
                "field": f.id,
                "value": outcome.candidate.value,
                "display": outcome.candidate.display,
                "code": outcome.code,
                "params": outcome.params,
            }
            self._render_current()

    def _intent(self, text: str) -> bool:
        """Handle typed text as a question or request if it clearly is one; True if so.
        Answers come from the procedure's own facts (flows.intents), then the person is
        asked the current question again: their place is never lost."""
        from flows import intents as it

        intent = self.c.intents.classify(text, current_procedure=self.proc.id)
        if not intent.confident or intent.kind not in DRAFT_INTENTS:
            return False
        kind = intent.kind
        if kind == "officer":
            self._officer("asked")
        elif kind == "cancel":
            self._on_token("cancel")
        elif kind == "help":
            self._help()
        elif kind == "list_procedures":
            self.to_menu = True
        elif kind == "start_procedure" and intent.procedure not in (None, self.proc.id):
            self.start_other = intent.procedure
        elif kind == "start_procedure":
            self._render_current()
        else:
            answers, shown = self._eff()
            text = it.render_reply(
                self.r.catalog, intent, answers, self.c.today, shown=shown, in_draft=True
            )
            self.facts.append(FactOut("QuestionAnswered", {"topic": intent.topic}))
            self._say(text)
            self._render_current()
        return True

    def _confirm_pending(self, f: FieldSpec, yes: bool) -> None:
        pending = self.s.get("pending") or {}
        self.s["pending"] = None
        if yes:
            self._store(f, Valid(pending["value"], pending["display"]))
        else:
            self._say(self.r.msg("confirm_refused", code=pending.get("code")))
            self._render_current()

    def _store(self, f: FieldSpec, valid: Valid) -> None:
        self.s["answers"][f.id] = valid.value
        self.s["shown"][f.id] = valid.display
        if f.id in self.s["skipped"]:
            self.s["skipped"].remove(f.id)
        self.s["failures"].pop(f.id, None)
        self.s["pending"] = None
        if self.s.get("focus") == f.id:
            self.s["focus"] = None
        self.facts.append(FactOut("AnswerStored", {"field": f.id}))
        if f.type == "choice":
            choice = f.choice(valid.value)
            if choice and choice.action == "handoff":
                # the officer choice is a request, not an answer
                self.s["answers"].pop(f.id, None)
                self.s["shown"].pop(f.id, None)
                self._officer("asked_" + f.id)
                return
            if choice and choice.exit:
                ex = self.proc.exit(choice.exit)
                self.s["stage"] = "exit"
                self.s["exit"] = choice.exit
                self.s["exit_field"] = f.id
                self.status = EXITED
                self.facts.append(FactOut("ExitTaken", {"exit": choice.exit}))
                self._render_exit(ex)
                return
        for label in self._recheck_dependents(f):
            self._say(self.r.msg("recheck", changed=f.label, label=label))
        self._advance(confirm=valid.display)

    def _recheck_dependents(self, changed: FieldSpec) -> list[str]:
        """An edit can make a later answer wrong (the gender against the ID number, the
        purpose against the number of copies): check the answers whose validators read
        the changed field again; a failing one is removed, so it is asked again."""
        dropped: list[str] = []
        known = _plan(self.proc).validator_reads
        for g in self.proc.fields:
            if g.id == changed.id or g.id not in self.s["answers"]:
                continue
            names = known[g.id]
            if names is not None:
                reads = changed.id in names
            else:
                reads = any(
                    changed.id in [str(x) for x in v.params.values()]
                    or (v.when and changed.id in conditions.names_in(v.when))
                    for v in g.validators
                )
            if not reads:
                continue
            answers, shown = self._eff()
            if g.id not in answers:
                continue
            others = {k: v for k, v in answers.items() if k != g.id}
            outcome = validators.validate(g, shown.get(g.id, ""), others, self.c.today)
            if isinstance(outcome, Invalid):
                self.s["answers"].pop(g.id, None)
                self.s["shown"].pop(g.id, None)
                self.facts.append(FactOut("AnswerInvalidated", {"field": g.id}))
                dropped.append(g.label)
        return dropped

    def _advance(self, confirm: str | None = None) -> None:
        nxt = current_field(self.proc, self.s, self.c.today)
        if nxt is None:
            self.s["stage"] = "review"
            if confirm:
                self._say(self.r.msg("stored", display=confirm))
            self._render_current()
            return
        # after an edit from review nothing is missing any more, so this lands on review
        self._render_current(stored=confirm)

    def _skip(self, f: FieldSpec) -> None:
        if f.required:
            self._reject("required", {}, f)
            return
        if f.id not in self.s["skipped"]:
            self.s["skipped"].append(f.id)
        self.s["answers"].pop(f.id, None)
        self.s["shown"].pop(f.id, None)
        if self.s.get("focus") == f.id:
            self.s["focus"] = None
        self.facts.append(FactOut("AnswerSkipped", {"field": f.id}))
        self._advance()

    def _reject(self, code: str, params: dict[str, Any], f: FieldSpec | None = None) -> None:
        if f is None and self.s["stage"] == "questions":
            f = current_field(self.proc, self.s, self.c.today)
        failures = 0
        if f is not None:
            failures = int(self.s["failures"].get(f.id, 0)) + 1
            self.s["failures"][f.id] = failures
            self.facts.append(FactOut("AnswerRejected", {"field": f.id, "code": code}))
        text = self.r.error(code, params)
        offer = failures >= MAX_FAILURES
        self._say(self.r.msg("rejected", error=text, field=f, offer_officer=offer))
        self._render_current()

    def _back(self) -> None:
        stage = self.s["stage"]
        self.s["pending"] = None
        if stage in ("review", "result", "exit"):
            if stage == "exit":
                self._on_token("again")
                return
            self.status = ACTIVE
            self.s["stage"] = "questions"
            fields = self._fields()
            if fields:
                self.s["focus"] = fields[-1].id
            self._render_current()
            return
        if stage != "questions":
            self._render_current()
            return
        f = current_field(self.proc, self.s, self.c.today)
        ids = [x.id for x in self._fields()]
        if f is None or f.id not in ids or ids.index(f.id) == 0:
            self._say(self.r.msg("first_question"))
            self._render_current()
            return
        self.s["focus"] = ids[ids.index(f.id) - 1]
        self._render_current()

    def _help(self) -> None:
        stage = self.s["stage"]
        f = current_field(self.proc, self.s, self.c.today) if stage == "questions" else None
        ctx = self._tctx()
        help_text = conditions.render_string(f.help, ctx) if f and f.help else ""
        self._say(
            self.r.msg("help", field=f, help=help_text, stage=stage, proc=self.proc),
        )
        self._render_current()

    def _officer(self, reason: str) -> None:
        f = (
            current_field(self.proc, self.s, self.c.today)
            if self.s["stage"] == "questions"
            else None
        )
        self.handoff = reason
        self.facts.append(
            FactOut(
                "HandoffRequested",
                {"reason": reason, "field": f.id if f else None, "stage": self.s["stage"]},
            )
        )
        self._say(self.r.msg("officer_noted", proc=self.proc))
        self._render_current()

    def _more(self) -> None:
        rows = [
            [self._btn("documents", "documents"), self._btn("pause", "pause")],
            [self._btn("cancel", "cancel"), self._btn("menu", "menu")],
            [self._btn("back", "resume")],
        ]
        self._say(self.r.msg("more"), rows)

    # -- rendering the current place
    def _nav_row(self, back: bool = True, skip: bool = False) -> list[list[Button]]:
        row1 = []
        if back:
            row1.append(self._btn("back", "back"))
        row1.append(self._btn("help", "help"))
        if skip:
            row1.append(self._btn("skip", "skip"))
        row2 = [self._btn("officer", "officer"), self._btn("more", "more")]
        return [row1, row2]

    def _render_current(self, stored: str | None = None) -> None:
        stage = self.s["stage"]
        if stage == "questions":
            self._ask_current(stored)
        elif stage == "review":
            self._render_review()
        elif stage == "exit":
            self._render_exit(self.proc.exit(self.s.get("exit") or ""))
        elif stage == "cancel":
            self._say(
                self.r.msg("cancel_confirm", proc=self.proc),
                [[self._btn("cancel_yes", "cy"), self._btn("cancel_no", "cn")]],
                expect="choice",
            )
        elif stage == "result":
            self._render_result_prompt()
        elif stage == "submitted":
            self._say(
                self.r.msg("submitted_status", proc=self.proc, code=self.s.get("dossier_code")),
                [[self._btn("menu", "menu")]],
            )
        elif stage == "cancelled":
            self._say(self.r.msg("cancelled", proc=self.proc), [[self._btn("menu", "menu")]])
            self.to_menu = True

    def _ask_current(self, stored: str | None = None) -> None:
        f = current_field(self.proc, self.s, self.c.today)
        if f is None:
            self.s["stage"] = "review"
            if stored:
                self._say(self.r.msg("stored", display=stored))
            self._render_review()
            return
        index, total = progress(self.proc, self.s, f, self.c.today)
        # a question without a template is its own text (render_string says the same)
        question = f.question
        if "{" in question:
            question = conditions.render_string(question, self._tctx())
        previous = self.s["shown"].get(f.id) if f.id in self.s["answers"] else None
        pending = self.s.get("pending")
        rows: list[list[Button]] = []
        expect = "text"
        if pending and pending.get("kind") == "confirm":
            text = self.r.error(pending["code"], pending.get("params", {}))
            rows.append([self._btn("yes", "y"), self._btn("no", "n")])
            self._say(text, rows + self._nav_row(), expect="choice")
            return
        if pending and pending.get("kind") == "pick":
            for i, (_value, display) in enumerate(pending["options"]):
                rows.append([Button(display, self._data(f"p:{i}"))])
            self._say(self.r.msg("pick", field=f), rows + self._nav_row(), expect="choice")
            return
        if f.type == "choice":
            expect = "choice"
            rows.extend(_pack([Button(c.label, self._data("c:" + c.id)) for c in f.choices]))
        elif f.type == "yesno":
            expect = "choice"
            rows.append([self._btn("yes", "y"), self._btn("no", "n")])
        elif f.type == "info":
            expect = "choice"
            rows.append([self._btn("ok", "ok")])
        for i, s in enumerate(f.suggest):
            rows.append([Button(s, self._data(f"s:{i}"))])
        stage_title = self.r.msg_memo("stage_title", stage=f.stage)
        text = self.r.msg(
            "question",
            index=index,
            total=total,
            stage=f.stage,
            stage_title=stage_title,
            question=question,
            field=f,
            previous=previous,
            stored=stored,
            unconfirmed=f.unconfirmed,
        )
        self.facts.append(FactOut("QuestionAsked", {"field": f.id}))
        self._say(text, rows + self._nav_row(back=True, skip=not f.required), expect=expect)

    def _review_fields(self) -> list[FieldSpec]:
        return [f for f in self._fields() if f.type != "info"]

    def _render_review(self) -> None:
        eff, shown = self._eff()
        fields = self._review_fields()
        items = []
        for i, f in enumerate(fields, start=1):
            items.append(
                MacroArgs(  # a dict whose keys the template reads as attributes cheaply
                    n=i,
                    label=f.label,
                    value=shown.get(f.id),
                    skipped=f.id in self.s["skipped"],
                    section=f.section,
                    stage=f.stage,
                )
            )
        sections = {s.id: s.title for s in self.proc.sections}
        text = self.r.msg("review", proc=self.proc, items=items, sections=sections)
        edit_buttons = [
            Button(self.r.msg_memo("edit_label", n=i), self._data("e:" + f.id))
            for i, f in enumerate(fields, start=1)
        ]
        rows = [[self._btn("confirm", "confirm")]]
        rows += _pack(edit_buttons, per_row=5, max_len=99)
        rows += self._nav_row()
        self.facts.append(FactOut("ReviewShown", {}))
        self._say(text, rows, expect="choice")

    def _render_exit(self, ex) -> None:
        ctx = self._tctx()
        body = conditions.render_string(ex.text, ctx) if ex else ""
        rows = [
            [self._btn("choose_again", "again")],
            [self._btn("officer", "officer"), self._btn("other_procedure", "menu")],
        ]
        self._say(self.r.msg("exit", proc=self.proc, body=body), rows, expect="choice")

    # -- result
    def _checklist_text(self) -> str:
        eff, _ = self._eff()
        ctx = self._tctx()
        docs = []
        for d in self.proc.documents:
            if conditions.holds(d.when, eff, self.c.today):
                docs.append(
                    {
                        "text": conditions.render_string(d.text, ctx),
                        "note": conditions.render_string(d.note, ctx) if d.note else "",
                        "unconfirmed": d.unconfirmed,
                    }
                )
        return self.r.msg("checklist", proc=self.proc, docs=docs)

    def declaration_markup(self) -> str:
        ctx = self._tctx()
        text = self.r.template(self.proc, "declaration.j2", ctx)
        if text is None:
            eff, shown = self._eff()
            items = [
                {"label": f.label, "value": shown.get(f.id, ""), "section": f.section}
                for f in self.proc.fields
                if f.in_declaration
                and f.type != "info"
                and conditions.holds(f.when, eff, self.c.today)
            ]
            sections = {s.id: s.title for s in self.proc.sections}
            text = self.r.msg(
                "declaration_default",
                proc=self.proc,
                items=items,
                sections=sections,
                today=self.c.today,
            )
        return text

    def _finish(self) -> None:
        from flows.pdfworker import make_pdf  # in a worker process when configured

        markup = self.declaration_markup()
        pdf = make_pdf(markup, title=self.proc.name)
        self.s["stage"] = "result"
        self.status = COMPLETED
        self.facts.append(FactOut("DraftCompleted", {}))
        ctx = self._tctx()
        eff, _ = self._eff()
        filename = f"to-khai-{self.proc.id.replace('_', '-')}.pdf"
        self.replies.append(
            Reply(
                self.r.msg("result_pdf_intro", proc=self.proc),
                attachment=Attachment(
                    filename, pdf, caption=self.r.msg("pdf_caption", proc=self.proc)
                ),
            )
        )
        self._say(self._checklist_text())
        steps = [conditions.render_string(s, ctx) for s in self.proc.portal.steps]
        fee = self.r.facts(self.proc.fee, eff, ctx)
        time = self.r.facts(self.proc.processing_time, eff, ctx)
        agency = self.r.facts(self.proc.agency, eff, ctx)
        self._say(
            self.r.msg(
                "submit_steps", proc=self.proc, steps=steps, fee=fee, time=time, agency=agency
            )
        )
        self._render_result_prompt()

    def _render_result_prompt(self) -> None:
        rows = [
            [self._btn("submitted", "sub"), self._btn("later", "later")],
            [self._btn("review", "review"), self._btn("officer", "officer")],
        ]
        self._say(self.r.msg("result_prompt", proc=self.proc), rows, expect="text")

    def _dossier_code(self, text: str) -> None:
        code = text.strip().upper()
        if not DOSSIER_RE.match(code) or not any(ch.isdigit() for ch in code):
            self._say(self.r.error("dossier_code", {}))
            self._render_result_prompt()
            return
        self.s["dossier_code"] = code
        self.s["stage"] = "submitted"
        self.status = SUBMITTED
        self.facts.append(FactOut("DossierCodeStored", {}))
        eff, _ = self._eff()
        ctx = self._tctx()
        time = self.r.facts(self.proc.processing_time, eff, ctx)
        validity = self.r.facts(self.proc.validity, eff, ctx)
        self._say(
            self.r.msg("submitted", proc=self.proc, code=code, time=time, validity=validity),
            [[self._btn("menu", "menu")]],
        )


def _pack(buttons: list[Button], per_row: int = 2, max_len: int = 16) -> list[list[Button]]:
    """Short labels two to a row, long labels one to a row (cheap phones are narrow)."""
    rows: list[list[Button]] = []
    row: list[Button] = []
    for b in buttons:
        if len(b.label) > max_len:
            if row:
                rows.append(row)
                row = []
            rows.append([b])
            continue
        row.append(b)
        if len(row) == per_row:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return rows

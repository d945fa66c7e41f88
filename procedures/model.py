"""The shape of a procedure, as declared in `procedures/<id>/procedure.yaml`.

A procedure is data: its facts (name, code, legal basis, fee, time, documents, portal steps,
sources) and the fields of its declaration, each with a type, validators, an optional
condition and help. The loader (`procedures.loader`) reads and checks these files; the
engine (`flows.engine`) walks them. Adding a procedure means adding a folder, not code.

Conditions (`when:`) are Jinja2 expressions evaluated in a sandbox against the answers so
far: a field's name gives its stored value (for a choice, the choice id), `has('x')` tells
whether x has an answer, `age('birth_field')` gives a whole age in years at `today`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

FieldType = Literal[
    "text",  # free text, trimmed, length-limited
    "name",  # a person's full name: NFC, capitalised, no digits
    "date",  # a calendar date typed as people type it
    "choice",  # one of `choices` (buttons; typed labels/synonyms match without diacritics)
    "yesno",  # a choice with the shared yes/no buttons; value "yes" / "no"
    "number",  # a whole number
    "id_number",  # CCCD / thẻ căn cước (12 digits), CMND (9), passport
    "phone",  # a Vietnamese mobile number
    "email",
    "commune",  # a 2025 commune/ward (3,321 units), old addresses converted
    "info",  # a message to read, acknowledged with one button (value "ok")
    "computed",  # not asked: `value` is a Jinja template over the answers
]

Stage = Literal["eligibility", "account", "form"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Strict):
    id: str
    title: str
    url: str
    checked: dt.date  # the date someone last checked the page


class Fact(Strict):
    """A statement shown to citizens. `unconfirmed` facts are worded with care."""

    text: str
    sources: list[str] = []  # ids of `sources`
    unconfirmed: bool = False
    when: str | None = None  # optional condition over the answers


class Choice(Strict):
    id: str
    label: str  # button label, short
    value: str | None = None  # text written in the declaration (default: label)
    synonyms: list[str] = []  # other typed forms, compared without diacritics
    exit: str | None = None  # id of an exit the procedure takes when this is chosen
    action: Literal["handoff"] | None = None  # chosen -> officer requested, question stays

    @field_validator("id")
    @classmethod
    def _ascii_id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"choice id {v!r} must be lowercase ASCII [a-z0-9_], <= 40 chars")
        return v

    @property
    def text(self) -> str:
        return self.value or self.label


class ValidatorSpec(Strict):
    name: str
    params: dict[str, Any] = {}
    when: str | None = None


class FieldSpec(Strict):
    id: str
    type: FieldType
    label: str  # short label used in the review screen and the declaration
    question: str = ""  # Jinja template; what the bot asks
    example: str | None = None  # an example answer, shown under the question
    help: str | None = None  # shown when the person asks for help on this question
    stage: Stage = "form"
    section: str | None = None  # id of a `sections` entry (review and declaration headings)
    required: bool = True
    when: str | None = None  # condition: ask only when it holds
    choices: list[Choice] = []
    validators: list[ValidatorSpec] = []
    suggest: list[str] = []  # quick-answer buttons for typed fields (e.g. "Việt Nam")
    value: str | None = None  # for `computed`: Jinja template over the answers
    formerly: list[str] = []  # earlier ids of this field (old drafts keep working)
    in_declaration: bool = True
    unconfirmed: bool = False  # the field itself (labels/options) is not confirmed

    @field_validator("id")
    @classmethod
    def _ascii_id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"field id {v!r} must be lowercase ASCII [a-z0-9_], <= 40 chars")
        return v

    @field_validator("validators", mode="before")
    @classmethod
    def _short_validators(cls, v: Any) -> Any:
        # YAML may say `- past_date` or `- min_age: {years: 18}`.
        out = []
        for item in v or []:
            if isinstance(item, str):
                out.append({"name": item})
            elif isinstance(item, dict) and "name" not in item and len(item) == 1:
                ((name, params),) = item.items()
                params = dict(params or {})
                when = params.pop("when", None)
                out.append({"name": name, "params": params, "when": when})
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"field {self.id}: a choice field needs choices")
        if self.type == "computed" and not self.value:
            raise ValueError(f"field {self.id}: a computed field needs `value`")
        if self.type not in ("computed",) and not self.question:
            raise ValueError(f"field {self.id}: a question is required")
        ids = [c.id for c in self.choices]
        if len(ids) != len(set(ids)):
            raise ValueError(f"field {self.id}: choice ids are not unique")
        return self

    @property
    def asked(self) -> bool:
        return self.type != "computed"

    def choice(self, choice_id: str) -> Choice | None:
        for c in self.choices:
            if c.id == choice_id:
                return c
        return None


class Section(Strict):
    id: str
    title: str


class Document(Strict):
    """A paper to prepare (or upload), with an optional condition."""

    id: str
    text: str
    when: str | None = None
    note: str | None = None
    sources: list[str] = []
    unconfirmed: bool = False


class Exit(Strict):
    """An early end: e.g. "you no longer need this certificate"."""

    id: str
    text: str  # Jinja template
    sources: list[str] = []


class Portal(Strict):
    name: str
    url: str  # the page of this procedure (or the search page) on the national portal
    search_keyword: str
    steps: list[str]  # Jinja templates, one per step


class Include(Strict):
    include: str  # name of a fragment in procedures/_shared/fragments/<name>.yaml


class Procedure(Strict):
    id: str
    version: int
    code: str  # national procedure code, e.g. "1.004873"
    name: str  # official name
    short_name: str  # what the bot calls it in sentences
    aliases: list[str] = []  # colloquial names ("giấy độc thân")
    summary: str  # one or two sentences: what it is for
    intro: str = ""  # Jinja: shown when the procedure starts
    legal_basis: list[Fact]
    agency: list[Fact]  # who is competent; may use conditions/answers
    who_may_apply: list[Fact]
    fee: list[Fact]
    processing_time: list[Fact]
    # working days after submission when the result is due: the "check the result" reminder
    # (flows/reminders.py); the number stated in `processing_time`, None: no such reminder
    processing_days: int | None = Field(default=None, ge=0, le=60)
    result: list[Fact] = []
    validity: list[Fact] = []
    # months the result stays valid from its issue: the "before it expires" reminder
    # (flows/reminders.py); the number stated in `validity`, None: the result does not expire
    validity_months: int | None = Field(default=None, ge=1, le=120)
    # what to bring or expect when the result is handed over (conditions over the answers,
    # e.g. how the citizen chose to receive it): shown in the "check the result" reminder
    collect: list[Fact] = []
    portal: Portal
    documents: list[Document]
    sections: list[Section] = []
    fields: list[FieldSpec]
    exits: list[Exit] = []
    sources: list[Source]
    account_required: bool = True

    @field_validator("id")
    @classmethod
    def _ascii_id(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError(f"procedure id {v!r} must be lowercase ASCII [a-z0-9_]")
        return v

    @model_validator(mode="after")
    def _refs(self) -> Procedure:
        ids = [f.id for f in self.fields]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate field ids: {sorted(dup)}")
        old = [o for f in self.fields for o in f.formerly]
        clash = set(old) & set(ids)
        if clash or len(old) != len(set(old)):
            raise ValueError(f"`formerly` ids clash: {sorted(clash) or old}")
        source_ids = {s.id for s in self.sources}
        exits = {e.id for e in self.exits}
        sections = {s.id for s in self.sections}
        facts = (
            self.legal_basis
            + self.agency
            + self.who_may_apply
            + self.fee
            + self.processing_time
            + self.result
            + self.validity
        )
        if self.validity_months is not None and not self.validity:
            raise ValueError("validity_months needs the `validity` facts that state it")
        for fact in facts:
            for s in fact.sources:
                if s not in source_ids:
                    raise ValueError(f"unknown source {s!r} in fact {fact.text[:40]!r}")
        for d in self.documents:
            for s in d.sources:
                if s not in source_ids:
                    raise ValueError(f"unknown source {s!r} in document {d.id}")
        for e in self.exits:
            for s in e.sources:
                if s not in source_ids:
                    raise ValueError(f"unknown source {s!r} in exit {e.id}")
        for f in self.fields:
            if f.section and f.section not in sections:
                raise ValueError(f"field {f.id}: unknown section {f.section!r}")
            for c in f.choices:
                if c.exit and c.exit not in exits:
                    raise ValueError(f"field {f.id}: unknown exit {c.exit!r}")
        return self

    # -- lookups used by the engine
    def field(self, field_id: str) -> FieldSpec | None:
        for f in self.fields:
            if f.id == field_id:
                return f
        return None

    def exit(self, exit_id: str) -> Exit | None:
        for e in self.exits:
            if e.id == exit_id:
                return e
        return None

    def renames(self) -> dict[str, str]:
        """old id -> current id, for drafts saved under an earlier version."""
        return {old: f.id for f in self.fields for old in f.formerly}

    def source(self, source_id: str) -> Source | None:
        for s in self.sources:
            if s.id == source_id:
                return s
        return None


class ProcedureFile(BaseModel):
    """The raw file before fragments are expanded (fields may be `include:` entries)."""

    model_config = ConfigDict(extra="allow")
    fields: list[dict[str, Any]] = Field(default_factory=list)

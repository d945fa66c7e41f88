"""What a typed message means: a small, deterministic intent classifier, and the answers to
the questions it recognises, taken from the procedures' own facts.

People do not press the right button. They type "lam giay doc than", "bn tien", "mat may
ngay", "gap can bo", "toi di lam o Binh Duong co lam duoc khong". `IntentModel.classify`
turns such a message into an `Intent`; `answer_context` collects the facts that answer a
question (never invented: every sentence comes from YAML that cites its sources) and
`render_reply` renders them with `procedures/_shared/templates/intents.j2`.

How a message is read (all data, no Python, so an officer can add a phrase):
1. `procedures.text.normalize`: folded (no diacritics, lower case), Telex leftovers dropped,
   chat abbreviations expanded ("ko" -> "khong", "bn" -> "bao nhieu").
2. Words the model does not know are repaired when the repair is a word it knows: a Telex
   tone letter at the end ("giays" -> "giay"), VNI digits at the end ("ky1" -> "ky"), words
   run together ("giaydocthan"), one typo in a long word ("trick" -> "trich").
3. The longest phrases of `procedures/_shared/intents.yaml` and `procedures/<id>/intents.yaml`
   are found (each word used once). Each phrase points to a meaning (a command, a question
   topic, a procedure, a FAQ entry, an ambiguity) with a weight; weights of one meaning add
   up as independent evidence (1 - prod(1 - w)).
4. Question words ("bao nhieu", "... khong") and start words ("lam", "xin") strengthen a
   topic or a procedure; words the model cannot explain weaken everything.
5. A fixed order decides: explicit requests (stop reminders, cancel, officer, resume), then
   questions, ambiguities, procedures, help, list, greeting, thanks; else unknown.

`Intent.score`: >= 0.75 confident (act on it), 0.45-0.75 unsure (ask a clarifying question:
`answer_context` then picks the `clarify` macro), < 0.45 unknown. `Intent.matched` lists the
phrases that decided, for logs and tests (never the message itself).

Pure at call time: the data is read once by `IntentModel.from_catalog`; `classify` does no
I/O (well under a millisecond per message: see benchmarks/bench_intents.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from flows.render import tidy
from procedures import conditions
from procedures.loader import SHARED_DIR, Catalog, ProcedureError, read_yaml
from procedures.model import Fact, Procedure, Source
from procedures.text import clean_text, normalize

KINDS = (
    "start_procedure",
    "list_procedures",
    "resume",
    "officer",
    "help",
    "cancel",
    "stop_reminders",
    "greeting",
    "thanks",
    "question",
    "ambiguous",
    "unknown",
)
TOPICS = (
    "fee",
    "time",
    "documents",
    "where",
    "who",
    "remote",
    "account",
    "validity",
    "what",
    "faq",  # a question with an answer of its own: `Intent.entry` names it
)
# When two topics are equally supported, the more specific one wins.
_TOPIC_PRIORITY = (
    "faq",
    "fee",
    "time",
    "documents",
    "validity",
    "account",
    "remote",
    "who",
    "where",
    "what",
)
CONFIDENT = 0.75
UNSURE = 0.45

TIERS = {"strong": 0.95, "medium": 0.75, "weak": 0.5, "hint": 0.3}
PURPOSE_WEIGHT = 0.6  # a purpose ("de vay ngan hang") alone: ask before starting
NAME_WEIGHT = 0.95  # official name, short name, aliases
MAX_GAP = 5  # words allowed inside "a ... b"
MAX_TOKENS = 60  # longer messages are read up to here
MAX_CHARS = 1000

QUESTION_BOOST = 0.5  # a question word outside the topic phrase adds half the doubt left
START_BOOST = 0.4  # a start word ("xin", "lam") next to a procedure name
CONTEXT_BOOST = 0.25  # a topic asked while a procedure is named or being filled
COVERAGE_POWER = 0.8  # how much unexplained words weaken the score

# Explicit requests win over everything else, in this order when equally strong.
_REQUESTS = ("stop_reminders", "cancel", "officer", "resume")
_SOFT = ("help", "list_procedures", "greeting", "thanks")

INTENTS_FILE = "intents.yaml"
_FRAGMENT = SHARED_DIR / "fragments" / "vneid_account.yaml"


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Intent:
    """What a message means.

    kind: one of KINDS. procedure: the procedure id it is about (named in the message, or
    the one being filled for a question), else None. topic: for questions, one of TOPICS.
    score: 0..1 (see CONFIDENT / UNSURE). candidates: for "ambiguous" (and for a question
    about no particular procedure) the procedure ids to choose from. entry: the id of the
    FAQ entry (topic "faq") or ambiguity entry that matched. asks: the message has the form
    of a question ("?", "bao nhieu", "... khong"). matched: the phrases that decided,
    as "label=phrase" (data, never the message)."""

    kind: str
    procedure: str | None = None
    topic: str | None = None
    score: float = 0.0
    candidates: tuple[str, ...] = ()
    entry: str | None = None
    asks: bool = False
    matched: tuple[str, ...] = field(default=(), compare=False)

    @property
    def confident(self) -> bool:
        return self.score >= CONFIDENT

    @property
    def unsure(self) -> bool:
        return UNSURE <= self.score < CONFIDENT


UNKNOWN = Intent("unknown")


# --------------------------------------------------------------------------- data files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tiered(_Strict):
    strong: list[str] = []
    medium: list[str] = []
    weak: list[str] = []
    hint: list[str] = []

    def weighted(self) -> Iterable[tuple[str, float]]:
        for tier, weight in TIERS.items():
            for phrase in getattr(self, tier):
                yield str(phrase), weight


class FaqEntry(Tiered):
    id: str
    answer: list[Fact]


class AmbiguityOption(_Strict):
    label: str  # button label, short
    procedure: str | None = None  # start this procedure
    faq: str | None = None  # or answer this FAQ entry (of the file's procedure)


class Ambiguity(Tiered):
    id: str
    options: list[AmbiguityOption]

    @field_validator("options")
    @classmethod
    def _two(cls, v: list[AmbiguityOption]) -> list[AmbiguityOption]:
        if len(v) < 2:
            raise ValueError("an ambiguity needs at least two options")
        for o in v:
            if (o.procedure is None) == (o.faq is None):
                raise ValueError(f"option {o.label!r}: give either `procedure` or `faq`")
        return v


class ProcedureIntents(_Strict):
    names: Tiered = Tiered()
    purposes: list[str] = []
    faq: list[FaqEntry] = []
    ambiguous: list[Ambiguity] = []


class SharedIntents(_Strict):
    version: int
    fillers: list[str] = []
    question_words: list[str] = []
    question_endings: list[str] = []
    trailing_particles: list[str] = []
    start_words: list[str] = []
    neutral: list[str] = []
    intents: dict[str, Tiered]
    topics: dict[str, Tiered]
    places: list[str] = []
    answers: dict[str, list[Fact]] = {}
    redaction: dict[str, str]
    sources: list[Source] = []

    @field_validator("intents")
    @classmethod
    def _kinds(cls, v: dict[str, Tiered]) -> dict[str, Tiered]:
        unknown = set(v) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown intent kinds {sorted(unknown)}")
        return v

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: dict[str, Tiered]) -> dict[str, Tiered]:
        unknown = set(v) - set(TOPICS)
        if unknown:
            raise ValueError(f"unknown topics {sorted(unknown)}")
        return v


@cache
def _shared_file(path: Path) -> SharedIntents:
    try:
        return SharedIntents.model_validate(read_yaml(path) or {})
    except ValidationError as exc:
        raise ProcedureError(f"{path}: {exc}") from exc


def shared_intents() -> SharedIntents:
    """procedures/_shared/intents.yaml, read once."""
    return _shared_file(SHARED_DIR / INTENTS_FILE)


@cache
def _fragment_help() -> tuple[str, ...]:
    """The help of the VNeID account fragment, the account answer."""
    raw = read_yaml(_FRAGMENT) or {}
    out = []
    for f in raw.get("fields", []):
        if f.get("id") == "vneid_next" and f.get("help"):
            out.append(clean_text(str(f["help"])))
    return tuple(out)


@dataclass(frozen=True)
class _Data:
    shared: SharedIntents
    procedures: dict[str, ProcedureIntents]


def _check_sources(path: Path, facts: Iterable[Fact], known: set[str]) -> None:
    for fact in facts:
        for s in fact.sources:
            if s not in known:
                raise ProcedureError(f"{path}: unknown source {s!r} in {fact.text[:40]!r}")


def load_data(catalog: Catalog) -> _Data:
    """Read and check the shared and per-procedure intents files of a catalog."""
    shared = shared_intents()
    shared_path = SHARED_DIR / INTENTS_FILE
    shared_sources = {s.id for s in shared.sources}
    for facts in shared.answers.values():
        _check_sources(shared_path, facts, shared_sources)
    for key in ("id_number", "phone", "email", "date", "number"):
        if key not in shared.redaction:
            raise ProcedureError(f"{shared_path}: redaction needs a {key!r} placeholder")
    procs: dict[str, ProcedureIntents] = {}
    faq_ids: set[str] = set()
    amb_ids: set[str] = set()
    for pid, proc in catalog.procedures.items():
        path = catalog.folders[pid] / INTENTS_FILE
        if not path.is_file():
            procs[pid] = ProcedureIntents()
            continue
        try:
            data = ProcedureIntents.model_validate(read_yaml(path) or {})
        except ValidationError as exc:
            raise ProcedureError(f"{path}: {exc}") from exc
        known = {s.id for s in proc.sources} | shared_sources
        own_faq = {f.id for f in data.faq}
        for entry in data.faq:
            if entry.id in faq_ids:
                raise ProcedureError(f"{path}: FAQ id {entry.id!r} is used twice")
            faq_ids.add(entry.id)
            if not entry.answer:
                raise ProcedureError(f"{path}: FAQ {entry.id!r} has no answer")
            _check_sources(path, entry.answer, known)
        for amb in data.ambiguous:
            if amb.id in amb_ids:
                raise ProcedureError(f"{path}: ambiguity id {amb.id!r} is used twice")
            amb_ids.add(amb.id)
            for o in amb.options:
                if o.procedure and o.procedure not in catalog.procedures:
                    raise ProcedureError(f"{path}: {amb.id}: unknown procedure {o.procedure!r}")
                if o.faq and o.faq not in own_faq:
                    raise ProcedureError(f"{path}: {amb.id}: unknown FAQ {o.faq!r}")
        procs[pid] = data
    return _Data(shared=shared, procedures=procs)


_DATA_CACHE: dict[tuple, _Data] = {}


def _data_for(catalog: Catalog) -> _Data:
    key = tuple(sorted((pid, str(path)) for pid, path in catalog.folders.items()))
    data = _DATA_CACHE.get(key)
    if data is None:
        data = load_data(catalog)
        _DATA_CACHE[key] = data
    return data


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Phrase:
    label: str  # "cmd:<kind>", "topic:<topic>", "proc:<id>", "faq:<proc>:<id>", "amb:<id>"
    parts: tuple[tuple[str, ...], ...]  # contiguous parts; "..." between them
    weight: float
    size: int  # literal words
    text: str


def _split_phrase(text: str) -> tuple[tuple[str, ...], ...]:
    parts = []
    for chunk in re.split(r"\s*(?:\.\.\.|\u2026)\s*", text):
        words = tuple(normalize(chunk).split())
        if words:
            parts.append(words)
    return tuple(parts)


def _match_at(ph: _Phrase, tokens: list[str], i: int) -> tuple[int, ...] | None:
    first = ph.parts[0]
    n = len(first)
    if tuple(tokens[i : i + n]) != first:
        return None
    positions = list(range(i, i + n))
    pos = i + n
    for part in ph.parts[1:]:
        m = len(part)
        found = None
        for j in range(pos, min(pos + MAX_GAP, len(tokens) - m) + 1):
            if tuple(tokens[j : j + m]) == part:
                found = j
                break
        if found is None:
            return None
        positions.extend(range(found, found + m))
        pos = found + m
    return tuple(positions)


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _noisy_or(weights: Iterable[float]) -> float:
    doubt = 1.0
    for w in weights:
        doubt *= 1.0 - w
    return 1.0 - doubt


def _boost(score: float, amount: float) -> float:
    """Add `amount` of the doubt that is left: 0.6 boosted by 0.5 -> 0.8."""
    return 1.0 - (1.0 - score) * (1.0 - amount)


class _Features:
    """Words that only colour a message (question words, start words): every occurrence
    counts, overlapping or not."""

    def __init__(self, phrases: list[tuple[tuple[str, ...], ...]]) -> None:
        self.plain = {p[0] for p in phrases if len(p) == 1}
        self.lengths = tuple(sorted({len(p) for p in self.plain}))
        self.gapped = [_Phrase("", p, 0.0, 0, "") for p in phrases if len(p) > 1]
        self.words = {w for p in phrases for part in p for w in part}

    def positions(self, tokens: list[str]) -> set[int]:
        hits: set[int] = set()
        count = len(tokens)
        for i in range(count):
            for n in self.lengths:
                if i + n <= count and tuple(tokens[i : i + n]) in self.plain:
                    hits.update(range(i, i + n))
        for ph in self.gapped:
            first = ph.parts[0][0]
            for i, tok in enumerate(tokens):
                if tok == first:
                    pos = _match_at(ph, tokens, i)
                    if pos is not None:
                        hits.update(pos)
        return hits


_TONE_LETTERS = "sfrxj"
_VNI_TAIL = re.compile(r"^([a-z]{2,}?)([1-9]{1,2})$")


class IntentModel:
    """Built once from the catalog and the intents YAML files; `classify` is pure."""

    def __init__(self, catalog: Catalog, data: _Data) -> None:
        self.catalog = catalog
        self.data = data
        sh = data.shared
        self.procedure_ids = tuple(catalog.procedures)
        phrases: list[_Phrase] = []

        def add(label: str, text: str, weight: float) -> None:
            parts = _split_phrase(text)
            if not parts:
                return
            size = sum(len(p) for p in parts)
            phrases.append(_Phrase(label, parts, weight, size, text))

        for kind, tiers in sh.intents.items():
            for text, w in tiers.weighted():
                add(f"cmd:{kind}", text, w)
        for topic, tiers in sh.topics.items():
            for text, w in tiers.weighted():
                add(f"topic:{topic}", text, w)
        for text in sh.places:
            add("topic:remote", text, TIERS["hint"])
        for text in sh.neutral:
            add("none", text, 0.0)
        self._amb_options: dict[str, tuple[str, ...]] = {}
        for pid, proc in catalog.procedures.items():
            pdata = data.procedures.get(pid, ProcedureIntents())
            for text in (proc.name, proc.short_name, *proc.aliases):
                add(f"proc:{pid}", text, NAME_WEIGHT)
            for text, w in pdata.names.weighted():
                add(f"proc:{pid}", text, w)
            for text in pdata.purposes:
                add(f"proc:{pid}", text, PURPOSE_WEIGHT)
            for entry in pdata.faq:
                for text, w in entry.weighted():
                    add(f"faq:{pid}:{entry.id}", text, w)
            for amb in pdata.ambiguous:
                for text, w in amb.weighted():
                    add(f"amb:{amb.id}", text, w)
                cands = []
                for o in amb.options:
                    target = o.procedure or pid
                    if target not in cands:
                        cands.append(target)
                self._amb_options[amb.id] = tuple(cands)

        # the same words under two meanings: keep the stronger (first wins on a tie)
        best: dict[tuple, _Phrase] = {}
        for ph in phrases:
            key = ph.parts
            if key not in best or ph.weight > best[key].weight:
                best[key] = ph
        self._phrases = list(best.values())
        # plain phrases are looked up by their words; "a ... b" ones by their first word
        self._plain: dict[tuple[str, ...], _Phrase] = {}
        self._gapped: dict[str, list[_Phrase]] = {}
        for ph in self._phrases:
            if len(ph.parts) == 1:
                self._plain[ph.parts[0]] = ph
            else:
                self._gapped.setdefault(ph.parts[0][0], []).append(ph)
        self._lengths = tuple(sorted({len(k) for k in self._plain}, reverse=True))

        def seqs(items: Iterable[str]) -> _Features:
            return _Features([p for p in (_split_phrase(t) for t in items) if p])

        self._question = seqs(sh.question_words)
        self._start = seqs(sh.start_words)
        self._endings = frozenset(normalize(w) for w in sh.question_endings)
        self._particles = frozenset(normalize(w) for w in sh.trailing_particles)
        self._fillers = frozenset(w for f in sh.fillers for w in normalize(f).split())

        vocab: set[str] = set(self._fillers)
        for ph in self._phrases:
            for part in ph.parts:
                vocab.update(part)
        for group in (self._question, self._start):
            vocab.update(group.words)
        vocab.update(self._endings)
        self._vocab = frozenset(vocab)
        self._squashed: dict[str, tuple[str, ...]] = {}
        for ph in self._phrases:
            if len(ph.parts) == 1 and len(ph.parts[0]) > 1:
                self._squashed.setdefault("".join(ph.parts[0]), ph.parts[0])
        self._typo: dict[str, set[str]] = {}
        for word in self._vocab:
            if len(word) >= 4:
                for d in _deletes(word):
                    self._typo.setdefault(d, set()).add(word)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> IntentModel:
        return cls(catalog, _data_for(catalog))

    # -- reading the words
    def _repair(self, word: str) -> tuple[str, ...]:
        if word in self._vocab or word.isdigit():
            return (word,)
        if len(word) >= 3 and word[-1] in _TONE_LETTERS and word[:-1] in self._vocab:
            return (word[:-1],)  # Telex tone letter left at the end: "giays"
        m = _VNI_TAIL.match(word)
        if m and m.group(1) in self._vocab:
            return (m.group(1),)  # VNI digits left at the end: "ky1"
        if len(word) >= 6 and word in self._squashed:
            return self._squashed[word]  # run together: "giaydocthan"
        if len(word) >= 5 and word.isalpha():
            found = set(self._typo.get(word, ()))  # one letter too many
            for d in _deletes(word):
                if d in self._vocab:
                    found.add(d)  # one letter missing
                found.update(self._typo.get(d, ()))  # one letter wrong
            found = {f for f in found if abs(len(f) - len(word)) <= 1 and len(f) >= 4}
            if found:
                return (min(found, key=lambda f: (abs(len(f) - len(word)), f)),)
        return (word,)

    def tokens(self, text: str) -> list[str]:
        """The words of a message as the model reads them (normalised and repaired)."""
        words = normalize(text[:MAX_CHARS]).split()[:MAX_TOKENS]
        out: list[str] = []
        for w in words:
            out.extend(self._repair(w))
        return out

    def _find(self, tokens: list[str]) -> list[tuple[_Phrase, tuple[int, ...]]]:
        found = []
        count = len(tokens)
        plain = self._plain
        for i, tok in enumerate(tokens):
            for n in self._lengths:
                if i + n <= count:
                    ph = plain.get(tuple(tokens[i : i + n]))
                    if ph is not None:
                        found.append((ph, tuple(range(i, i + n))))
            for ph in self._gapped.get(tok, ()):
                pos = _match_at(ph, tokens, i)
                if pos is not None:
                    found.append((ph, pos))
        # longest first, then strongest, then leftmost: each word is used once
        found.sort(key=lambda x: (-x[0].size, -x[0].weight, x[1][0]))
        used: set[int] = set()
        chosen = []
        for ph, pos in found:
            if used.isdisjoint(pos):
                chosen.append((ph, pos))
                used.update(pos)
        return chosen

    # -- the decision
    def classify(self, text: str, current_procedure: str | None = None) -> Intent:
        """What `text` means. `current_procedure`: the procedure being filled, if any (a
        question that names no procedure is about it)."""
        if current_procedure not in self.catalog.procedures:
            current_procedure = None
        tokens = self.tokens(text or "")
        if not tokens:
            return UNKNOWN
        chosen = self._find(tokens)
        q_pos = self._question.positions(tokens)
        end = len(tokens) - 1
        while end > 0 and tokens[end] in self._particles:
            end -= 1
        if tokens[end] in self._endings and end > 0:
            q_pos.add(end)
        asks = "?" in text or bool(q_pos)
        start_pos = self._start.positions(tokens)

        by_label: dict[str, list[tuple[_Phrase, tuple[int, ...]]]] = {}
        covered: set[int] = set()
        neutral: set[int] = set()
        for ph, pos in chosen:
            if ph.label == "none":
                neutral.update(pos)
                continue
            by_label.setdefault(ph.label, []).append((ph, pos))
            covered.update(pos)
        explained = covered | neutral | q_pos | start_pos
        unexplained = sum(
            1 for i, t in enumerate(tokens) if i not in explained and t not in self._fillers
        )
        meaningful = len(covered)
        coverage = meaningful / (meaningful + unexplained) if meaningful else 0.0
        factor = coverage**COVERAGE_POWER

        def raw(label: str) -> float:
            return _noisy_or(ph.weight for ph, _ in by_label.get(label, ()))

        def positions(label: str) -> set[int]:
            return {p for _, pos in by_label.get(label, ()) for p in pos}

        def why(*labels: str) -> tuple[str, ...]:
            return tuple(
                f"{lab}={ph.text}" for lab in labels if lab for ph, _ in by_label.get(lab, ())
            )

        # procedures named (directly or by a purpose)
        procs: list[tuple[float, str]] = []
        for pid in self.procedure_ids:
            s = raw(f"proc:{pid}")
            if s > 0:
                if start_pos - positions(f"proc:{pid}") or (start_pos and s < NAME_WEIGHT):
                    s = _boost(s, START_BOOST)
                procs.append((s * factor, pid))
        procs.sort(key=lambda x: -x[0])
        p1, pid1 = procs[0] if procs else (0.0, None)
        p1_raw = raw(f"proc:{pid1}") if pid1 else 0.0
        p2 = procs[1][0] if len(procs) > 1 else 0.0
        ambs = [(raw(lab) * factor, lab[4:]) for lab in by_label if lab.startswith("amb:")]
        ambs.sort(key=lambda x: -x[0])
        a1, amb1 = ambs[0] if ambs else (0.0, None)

        # topics and FAQ entries
        context = pid1 is not None or amb1 is not None or current_procedure is not None
        topics: list[tuple[float, float, str]] = []  # (score, raw, label)
        for lab in by_label:
            if not (lab.startswith("topic:") or lab.startswith("faq:")):
                continue
            r = raw(lab)
            s = r
            if q_pos - positions(lab) or ("?" in text):
                s = _boost(s, QUESTION_BOOST)
            if context and r >= TIERS["weak"]:
                s = _boost(s, CONTEXT_BOOST)
            topics.append((s * factor, r, lab))
        order = {f"topic:{t}": i for i, t in enumerate(_TOPIC_PRIORITY)}
        # the best supported topic (raw evidence), then the more specific one
        topics.sort(key=lambda x: (-x[1], order.get(x[2], -1)))
        t1, t1_raw, tlab = topics[0] if topics else (0.0, 0.0, None)

        cmds = {k: raw(f"cmd:{k}") * factor for k in KINDS if f"cmd:{k}" in by_label}

        # 1. explicit requests
        req = max(_REQUESTS, key=lambda k: (cmds.get(k, 0.0), -_REQUESTS.index(k)))
        c1 = cmds.get(req, 0.0)
        if c1 >= UNSURE and c1 >= t1 and (c1 >= CONFIDENT or c1 >= max(p1, a1)):
            proc = pid1 if req in ("resume", "cancel") and p1 >= UNSURE else None
            return Intent(req, proc, None, round(c1, 3), asks=asks, matched=why(f"cmd:{req}"))

        # 2. questions
        # a topic is a question when asked as one, when its words say it all ("le phi"),
        # or, in the context of a procedure, when nothing else explains the message better
        is_question = t1 >= UNSURE and (asks or t1_raw >= 0.9 or (context and t1 >= max(p1, a1)))
        if tlab is not None and is_question:
            topic, entry, proc = tlab.split(":", 1)[1], None, None
            candidates: tuple[str, ...] = ()
            if tlab.startswith("faq:"):
                proc, entry = tlab[4:].split(":", 1)
                topic = "faq"
            elif pid1 is not None and p1_raw >= TIERS["weak"] and (amb1 is None or p1 >= a1):
                proc = pid1
            elif amb1 is not None:
                candidates, entry = self._amb_options[amb1], amb1
            elif current_procedure is not None:
                proc = current_procedure
            elif pid1 is not None:
                proc = pid1
            else:
                candidates = self.procedure_ids
            return Intent(
                "question",
                proc,
                topic,
                round(t1, 3),
                candidates=candidates,
                entry=entry,
                asks=asks,
                matched=why(tlab, f"proc:{proc}" if proc else ""),
            )

        # 3. ambiguous phrases ("lam giay khai sinh"), unless the rest of the message settles it
        if amb1 is not None and a1 >= UNSURE:
            cands = self._amb_options[amb1]
            settled = [s for s, pid in procs if pid in cands and s >= UNSURE]
            if not settled:
                return Intent(
                    "ambiguous",
                    None,
                    None,
                    round(a1, 3),
                    candidates=cands,
                    entry=amb1,
                    asks=asks,
                    matched=why(f"amb:{amb1}"),
                )

        # 4. a procedure, or two that cannot be told apart
        if pid1 is not None and p1 >= UNSURE:
            if p2 >= UNSURE and p1 - p2 < 0.1:
                cands = tuple(pid for s, pid in procs if s >= UNSURE)
                return Intent(
                    "ambiguous",
                    None,
                    None,
                    round(p1, 3),
                    candidates=cands,
                    asks=asks,
                    matched=why(*(f"proc:{c}" for c in cands)),
                )
            if pid1 == current_procedure and p1 < CONFIDENT:
                # a purpose typed while filling this very procedure is an answer
                return Intent("unknown", None, None, round(min(p1, UNSURE - 0.01), 3), asks=asks)
            return Intent(
                "start_procedure",
                pid1,
                None,
                round(p1, 3),
                asks=asks,
                matched=why(f"proc:{pid1}"),
            )

        # 5. help, the list, greetings, thanks
        soft = max(_SOFT, key=lambda k: (cmds.get(k, 0.0), -_SOFT.index(k)))
        s1 = cmds.get(soft, 0.0)
        if s1 >= UNSURE:
            return Intent(soft, None, None, round(s1, 3), asks=asks, matched=why(f"cmd:{soft}"))

        best = max([t1, p1, a1, c1, s1, 0.0])
        return Intent("unknown", None, None, round(min(best, UNSURE - 0.01), 3), asks=asks)

    def is_clear_question(self, text: str, current_procedure: str | None = None) -> bool:
        """True when `text` is plainly a question the bot can answer: a recognised topic,
        confident, in the form of a question. The engine checks this before taking free
        text as the answer to a text field ("bao nhieu tien?" is not a purpose)."""
        intent = self.classify(text, current_procedure)
        return intent.kind == "question" and intent.confident and intent.asks

    def explain(self, text: str) -> dict[str, Any]:
        """For developers: the words as read and the phrases found."""
        tokens = self.tokens(text)
        return {
            "tokens": tokens,
            "phrases": [(ph.label, ph.text, ph.weight, pos) for ph, pos in self._find(tokens)],
        }


# --------------------------------------------------------------------------- answers


def _facts(
    facts: Iterable[Fact], answers: Mapping[str, Any], ctx: Mapping[str, Any], today: dt.date
) -> list[dict[str, Any]]:
    out = []
    for fact in facts:
        if not conditions.holds(fact.when, answers, today):
            continue
        text = conditions.render_string(fact.text, ctx).strip()
        if text:
            out.append({"text": text, "unconfirmed": fact.unconfirmed, "sources": fact.sources})
    return out


def _documents(
    proc: Procedure, answers: Mapping[str, Any] | None, ctx: Mapping[str, Any], today: dt.date
) -> tuple[list[dict[str, Any]], bool]:
    """Documents that apply to the answers so far, and whether others may apply later
    (a condition reads a question not answered yet)."""
    given = answers or {}
    docs, pending = [], False
    for d in proc.documents:
        if d.when:
            unanswered = conditions.names_in(d.when) - set(given) - {"has", "age", "today"}
            if answers is None or unanswered:
                pending = True
                continue
            if not conditions.holds(d.when, given, today):
                continue
        docs.append(
            {
                "text": conditions.render_string(d.text, ctx).strip(),
                "note": conditions.render_string(d.note, ctx).strip() if d.note else "",
                "unconfirmed": d.unconfirmed,
            }
        )
    return docs, pending


def _option_contexts(
    catalog: Catalog, data: _Data, amb_id: str | None, candidates: Iterable[str]
) -> list[dict[str, Any]]:
    """The buttons of a clarifying question: {label, procedure, faq}."""
    if amb_id:
        for pid, pdata in data.procedures.items():
            for amb in pdata.ambiguous:
                if amb.id == amb_id:
                    return [
                        {
                            "label": o.label,
                            "procedure": o.procedure or pid,
                            "faq": o.faq,
                            "token": f"p:{o.procedure}" if o.procedure else f"f:{pid}:{o.faq}",
                        }
                        for o in amb.options
                    ]
    out = []
    for pid in candidates:
        proc = catalog.get(pid)
        if proc is not None:
            out.append(
                {"label": proc.short_name, "procedure": pid, "faq": None, "token": f"p:{pid}"}
            )
    return out


def _macro_for(intent: Intent) -> str:
    if intent.kind == "unknown" or intent.score < UNSURE:
        return "unknown_menu"
    if intent.kind == "ambiguous":
        return "clarify"
    if intent.score < CONFIDENT:
        return "clarify"
    if intent.kind == "question":
        if intent.procedure is None and intent.topic not in ("remote", "account"):
            return "clarify"
        return intent.topic or "unknown_menu"
    if intent.kind in ("greeting", "thanks"):
        return intent.kind
    return "action"


def answer_context(
    catalog: Catalog,
    intent: Intent,
    answers: Mapping[str, Any] | None,
    today: dt.date,
    *,
    shown: Mapping[str, str] | None = None,
    in_draft: bool | None = None,
) -> dict[str, Any]:
    """Everything the reply to `intent` needs, from the YAML facts only.

    answers: the draft's answers so far (field id -> stored value; None outside a draft).
    Facts with a `when` are kept when it holds for these answers; documents whose
    condition reads an unanswered question are left out and `pending_documents` says so.
    in_draft: the person is filling a form (default: answers is not None): the reply then
    ends by leading back to the current question, which the engine sends after it.
    `macro` names the macro of intents.j2 to render (`render_reply` does it)."""
    data = _data_for(catalog)
    given: Mapping[str, Any] = answers or {}
    proc = catalog.get(intent.procedure) if intent.procedure else None
    ns = conditions.namespace(given, today, shown=dict(shown or {}), proc=proc)
    c: dict[str, Any] = {
        "macro": _macro_for(intent),
        "kind": intent.kind,
        "topic": intent.topic,
        "score": intent.score,
        "proc": proc,
        "in_draft": answers is not None if in_draft is None else in_draft,
        "facts": [],
        "docs": [],
        "pending_documents": False,
        "portal": proc.portal if proc else None,
        "options": [],
        "entry": intent.entry,
        "procedures": catalog.ordered(),
    }
    if c["macro"] == "clarify":
        c["options"] = _option_contexts(catalog, data, intent.entry, intent.candidates)
        if not c["options"] and intent.kind != "ambiguous" and proc is None:
            c["options"] = _option_contexts(catalog, data, None, catalog.procedures)
        c["mode"] = (
            "ambiguous"
            if intent.kind == "ambiguous" or (intent.kind == "question" and intent.entry)
            else "which"
            if intent.kind == "question" and proc is None
            else "confirm"
        )
    topic = intent.topic if intent.kind == "question" else None
    if topic == "fee" and proc:
        c["facts"] = _facts(proc.fee, given, ns, today)
    elif topic == "time" and proc:
        c["facts"] = _facts(proc.processing_time, given, ns, today)
    elif topic == "documents" and proc:
        c["docs"], c["pending_documents"] = _documents(proc, answers, ns, today)
    elif topic == "where" and proc:
        c["facts"] = _facts(proc.agency, given, ns, today)
    elif topic == "who" and proc:
        c["facts"] = _facts(proc.who_may_apply, given, ns, today)
    elif topic == "validity" and proc:
        c["facts"] = _facts(proc.validity, given, ns, today)
    elif topic == "what" and proc:
        c["facts"] = [{"text": clean_text(proc.summary), "unconfirmed": False, "sources": []}]
    elif topic == "remote":
        c["facts"] = _facts(data.shared.answers.get("remote", []), given, ns, today)
    elif topic == "account":
        helps = [{"text": h, "unconfirmed": False, "sources": []} for h in _fragment_help()]
        c["facts"] = helps + _facts(data.shared.answers.get("account", []), given, ns, today)
    elif topic == "faq" and proc and intent.entry:
        for entry in data.procedures[proc.id].faq:
            if entry.id == intent.entry:
                c["facts"] = _facts(entry.answer, given, ns, today)
    return c


def render_reply(
    catalog: Catalog,
    intent: Intent,
    answers: Mapping[str, Any] | None,
    today: dt.date,
    *,
    shown: Mapping[str, str] | None = None,
    in_draft: bool | None = None,
) -> str:
    """The text of the reply to `intent` (intents.j2), tidy and never empty. The engine
    adds the buttons (`answer_context(...)["options"]`) and, in a draft, the current
    question after it."""
    ctx = answer_context(catalog, intent, answers, today, shown=shown, in_draft=in_draft)
    module = catalog.env.get_template("intents.j2").module
    text = tidy(str(getattr(module, ctx["macro"])(ctx)))
    if not text:
        text = tidy(str(module.unknown_menu(ctx)))
    return text


# --------------------------------------------------------------------------- unknown messages

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_DATE_WORDS = re.compile(
    r"(?i)\b(?:ng[a\u00e0]y\s*)?[0-9]{1,2}\s*(?:th[a\u00e1]ng|/|-|\.)\s*[0-9]{1,2}\s*"
    r"(?:n[a\u0103]m|/|-|\.)\s*(?:[0-9]{4}|[0-9]{2})(?![0-9])"
)
_BIRTH_YEAR = re.compile(r"(?i)\b(?:sinh|sn|ns)\s*(?:n[a\u0103]m\s*)?[0-9]{4}\b")
_PASSPORT = re.compile(r"\b[A-Za-z][0-9]{7,8}\b")
_NUMBERISH = re.compile(r"\+?[0-9](?:[0-9]|[ .\-](?=[0-9]))*")


def _digits_kind(span: str) -> str | None:
    digits = re.sub(r"[^0-9]", "", span)
    n = len(digits)
    plus = span.startswith("+")
    if (n == 10 and digits[0] == "0") or (n == 11 and digits.startswith("84")):
        return "phone"
    if n == 11 and digits.startswith("02") and not plus:
        return "phone"  # a landline: 02x + 8 digits
    if n in (9, 12) and not plus:
        return "id_number"
    if n >= 7:
        return "number"
    return None


def _numbers(span: str, ph: Mapping[str, str]) -> str:
    """Numbers side by side ("0912 345 678 060196008899"): the longest groups of chunks
    that make a phone or ID number first, then each chunk on its own."""
    chunks = span.split(" ")
    out: list[str] = []
    i = 0
    while i < len(chunks):
        for j in range(len(chunks), i, -1):
            kind = _digits_kind(" ".join(chunks[i:j]))
            if kind in ("phone", "id_number"):
                out.append(ph[kind])
                i = j
                break
        else:
            kind = _digits_kind(chunks[i])
            out.append(ph[kind] if kind else chunks[i])
            i += 1
    return " ".join(out)


def redact(text: str) -> str:
    """`text` with personal data replaced by placeholders (from intents.yaml `redaction`):
    e-mails, dates (of birth), phone numbers in any Vietnamese format, 9/12-digit ID
    numbers, passport numbers, and any other run of 7 or more digits. Used before an
    unknown message is stored."""
    ph = shared_intents().redaction
    s = clean_text(text)
    s = _EMAIL.sub(ph["email"], s)
    s = _DATE_WORDS.sub(ph["date"], s)
    s = _BIRTH_YEAR.sub(ph["date"], s)
    s = _PASSPORT.sub(ph["id_number"], s)

    def number(m: re.Match[str]) -> str:
        return _numbers(m.group(0), ph)

    return _NUMBERISH.sub(number, s)


def top_questions(texts: Iterable[str], n: int = 20) -> list[tuple[str, int]]:
    """The most frequent messages, grouped by normalised form (case, diacritics,
    abbreviations and punctuation ignored). Each group is shown by its most common
    spelling. Give it redacted texts."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        key = normalize(t)
        if not key:
            continue
        counts[key] += 1
        spellings.setdefault(key, Counter())[clean_text(t)] += 1
        first.setdefault(key, i)
    ranked = sorted(counts, key=lambda k: (-counts[k], first[k]))[:n]
    out = []
    for key in ranked:
        sp = spellings[key]
        shown = max(sp, key=lambda s: (sp[s], -list(sp).index(s)))
        out.append((shown, counts[key]))
    return out


def model_for(catalog: Catalog) -> IntentModel:
    """The catalog's intent model, built once (about 0.2 s) and kept with the catalog."""
    model = getattr(catalog, "_intent_model", None)
    if model is None:
        model = IntentModel.from_catalog(catalog)
        catalog._intent_model = model  # type: ignore[attr-defined]
    return model

"""Load and check procedures: `procedures/<id>/procedure.yaml` + templates.

`load_catalog()` reads every procedure folder under the package (and any extra folders
given), expands `- include: <fragment>` entries from `_shared/fragments/`, validates each
against `procedures.model.Procedure`, compiles every condition, and checks the validators
exist. A broken procedure stops start-up with a message naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
)
from pydantic import ValidationError

from procedures import conditions
from procedures.model import Procedure

PACKAGE_DIR = Path(__file__).resolve().parent
SHARED_DIR = PACKAGE_DIR / "_shared"


class ProcedureError(Exception):
    """A procedure folder could not be loaded; the message names the file."""


@dataclass
class Catalog:
    procedures: dict[str, Procedure]
    folders: dict[str, Path]
    ui: dict[str, Any]
    keywords: dict[str, list[str]]
    env: Environment = field(repr=False)

    def get(self, procedure_id: str) -> Procedure | None:
        return self.procedures.get(procedure_id)

    def ordered(self) -> list[Procedure]:
        return list(self.procedures.values())

    def template_name(self, procedure_id: str, name: str) -> str | None:
        """`<id>/templates/<name>` if the procedure has it, else None."""
        folder = self.folders[procedure_id]
        if (folder / "templates" / name).is_file():
            return f"{folder.name}/templates/{name}"
        return None


# libyaml's parser when PyYAML has it (the wheels do): the same safe loading, about ten
# times faster (procedures and shared YAML were a third of start-up in pure Python)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ProcedureError(f"{path}: not valid YAML: {exc}") from exc


def _expand(fields: list[Any], path: Path) -> list[Any]:
    out: list[Any] = []
    for item in fields or []:
        if isinstance(item, dict) and set(item) == {"include"}:
            frag_path = SHARED_DIR / "fragments" / f"{item['include']}.yaml"
            if not frag_path.is_file():
                raise ProcedureError(f"{path}: unknown fragment {item['include']!r}")
            frag = read_yaml(frag_path) or {}
            out.extend(_expand(frag.get("fields", []), frag_path))
        else:
            out.append(item)
    return out


def load_procedure(folder: Path) -> Procedure:
    path = folder / "procedure.yaml"
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ProcedureError(f"{path}: expected a mapping at the top")
    raw = dict(raw)
    raw["fields"] = _expand(raw.get("fields", []), path)
    try:
        proc = Procedure.model_validate(raw)
    except ValidationError as exc:
        raise ProcedureError(f"{path}: {exc}") from exc
    if proc.id != folder.name:
        raise ProcedureError(f"{path}: id {proc.id!r} differs from the folder name")
    problems = check_procedure(proc)
    if problems:
        raise ProcedureError(f"{path}: " + "; ".join(problems))
    return proc


def check_procedure(proc: Procedure) -> list[str]:
    """Static checks beyond the schema: conditions compile and read known names,
    validators exist with their parameters."""
    from procedures import validators  # imported here: validators load unit data lazily

    problems: list[str] = []
    known = {f.id for f in proc.fields} | {"has", "age", "today", "true", "false", "none"}
    exprs: list[tuple[str, str]] = []
    for f in proc.fields:
        if f.when:
            exprs.append((f"field {f.id}", f.when))
        for v in f.validators:
            if v.when:
                exprs.append((f"field {f.id} validator {v.name}", v.when))
        problems.extend(f"field {f.id}: {p}" for p in validators.check_spec(f))
    for d in proc.documents:
        if d.when:
            exprs.append((f"document {d.id}", d.when))
    facts = (
        proc.legal_basis
        + proc.agency
        + proc.who_may_apply
        + proc.fee
        + proc.processing_time
        + proc.result
        + proc.validity
    )
    for fact in facts:
        if fact.when:
            exprs.append((f"fact {fact.text[:30]!r}", fact.when))
    for where, expr in exprs:
        try:
            conditions.check_syntax(expr)
        except conditions.ConditionError as exc:
            problems.append(f"{where}: {exc}")
            continue
        unknown = conditions.names_in(expr) - known
        if unknown:
            problems.append(f"{where}: condition reads unknown names {sorted(unknown)}")
    return problems


def _procedure_folders(roots: Iterable[Path]) -> list[Path]:
    folders: list[Path] = []
    for root in roots:
        for child in sorted(root.iterdir()):
            if child.name.startswith(("_", ".")) or not (child / "procedure.yaml").is_file():
                continue
            folders.append(child)
    return folders


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    """Compiled templates kept between runs (Jinja2's private folder in the temp directory,
    keyed by each template's source): compiling them was a quarter of start-up. None (compile
    every time) where that folder cannot be made."""
    try:
        return FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def make_env(roots: Iterable[Path]) -> Environment:
    loaders = [FileSystemLoader(str(SHARED_DIR / "templates"))]
    loaders += [FileSystemLoader(str(r)) for r in roots]
    return Environment(
        loader=ChoiceLoader(loaders),
        bytecode_cache=_bytecode_cache(),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=StrictUndefined,
    )


def load_catalog(extra_roots: Iterable[Path] = (), *, include_builtin: bool = True) -> Catalog:
    roots = ([PACKAGE_DIR] if include_builtin else []) + [Path(r) for r in extra_roots]
    procedures: dict[str, Procedure] = {}
    folders: dict[str, Path] = {}
    for folder in _procedure_folders(roots):
        proc = load_procedure(folder)
        if proc.id in procedures:
            raise ProcedureError(f"{folder}: procedure id {proc.id!r} is defined twice")
        procedures[proc.id] = proc
        folders[proc.id] = folder
    ui = read_yaml(SHARED_DIR / "ui.yaml")
    from procedures.text import fold

    keywords = {
        action: [fold(p) for p in phrases]
        for action, phrases in (read_yaml(SHARED_DIR / "keywords.yaml") or {}).items()
    }
    return Catalog(
        procedures=procedures,
        folders=folders,
        ui=ui,
        keywords=keywords,
        env=make_env(roots),
    )

"""What a field validator returns. Shared by `procedures.validators` and `flows.engine`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Valid:
    """An accepted answer: `value` is stored (JSON-serialisable), `display` is shown."""

    value: Any
    display: str


@dataclass(frozen=True)
class Invalid:
    """A refused answer. `code` names a macro in procedures/_shared/templates/errors.j2;
    `params` are passed to it (never personal data that should not be echoed)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ambiguous:
    """Several answers fit (e.g. communes with one name in two provinces): ask which."""

    options: tuple[Valid, ...]


@dataclass(frozen=True)
class Confirm:
    """An answer that needs a yes/no confirmation first (e.g. an old address converted to
    the 2025 commune). `code` names a macro in errors.j2 that words the question."""

    candidate: Valid
    code: str
    params: dict[str, Any] = field(default_factory=dict)


Outcome = Valid | Invalid | Ambiguous | Confirm

"""Rendering: every user-facing sentence comes from a Jinja2 template or the UI labels.

Messages are macros in `procedures/_shared/templates/messages.j2` (and validation errors in
`errors.j2`); button labels come from `procedures/_shared/ui.yaml`. This module only picks
the macro and passes data to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from procedures import conditions
from procedures.loader import Catalog
from procedures.model import Fact, Procedure

MAX_TEXT = 4096


class Renderer:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._messages = catalog.env.get_template("messages.j2").module
        self._errors = catalog.env.get_template("errors.j2").module
        self._memo: dict[tuple, str] = {}

    # -- labels
    def label(self, key: str) -> str:
        return self.catalog.ui["buttons"][key]

    # -- messages
    def msg(self, macro_name: str, /, **ctx: Any) -> str:
        macro = getattr(self._messages, macro_name)
        return tidy(str(macro(MacroArgs(ctx))))

    def msg_memo(self, macro_name: str, /, **ctx: Any) -> str:
        """msg() for a macro whose text depends on its (hashable) arguments alone, such as
        a button label with a number: each distinct call is rendered once."""
        key = (macro_name, *((k, type(v), v) for k, v in sorted(ctx.items())))
        text = self._memo.get(key)
        if text is None:
            text = self.msg(macro_name, **ctx)
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = text
        return text

    def error(self, code: str, params: Mapping[str, Any]) -> str:
        macro = getattr(self._errors, code, None)
        if macro is None:
            macro = self._errors.invalid
        return tidy(str(macro(MacroArgs(params))))

    def has_error(self, code: str) -> bool:
        return hasattr(self._errors, code)

    # -- procedure data
    def template(self, proc: Procedure, name: str, ctx: Mapping[str, Any]) -> str | None:
        tname = self.catalog.template_name(proc.id, name)
        if tname is None:
            return None
        return tidy(self.catalog.env.get_template(tname).render(**ctx))

    def facts(
        self, facts: list[Fact], answers: Mapping[str, Any], ctx: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Facts whose condition holds, rendered, with their `unconfirmed` flag."""
        today = ctx["today"]
        out = []
        for fact in facts:
            if not conditions.holds(fact.when, answers, today):
                continue
            out.append(
                {
                    "text": conditions.render_string(fact.text, ctx),
                    "unconfirmed": fact.unconfirmed,
                    "sources": fact.sources,
                }
            )
        return out


class MacroArgs(dict):
    """The dict a message macro gets (`c`), whose keys also read as attributes.

    A template's `c.name` is Jinja's getattr: the attribute first, the key when the
    attribute raises AttributeError. For a plain dict that is an exception raised and
    caught at every `c.name` (most of the cost of a message); here the key comes without
    one. Same values: a dict's own attributes (get, items...) still come first, and a
    missing key is still Jinja's undefined."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def macro_text(module: Any, macro: str, ctx: dict[str, Any]) -> str:
    """A template module's macro called with `ctx` as its `c`, tidied: the text of one
    message (reminders, broadcasts and the officer desk keep their macros this way)."""
    return tidy(str(getattr(module, macro)(MacroArgs(ctx))))


def tidy(text: str) -> str:
    """Strip template whitespace: no trailing spaces, at most one blank line in a row."""
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    out: list[str] = []
    for ln in lines:
        if not ln and out and not out[-1]:
            continue
        out.append(ln)
    return "\n".join(out)


def split_text(text: str, limit: int = MAX_TEXT - 96) -> list[str]:
    """Split a long message on blank lines, then lines, to stay under Telegram's limit."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for para in text.split("\n"):
        candidate = f"{current}\n{para}" if current else para
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while len(para) > limit:
            chunks.append(para[:limit])
            para = para[limit:]
        current = para
    if current:
        chunks.append(current)
    return chunks


def fmt_date(d: dt.date) -> str:
    return d.strftime("%d/%m/%Y")

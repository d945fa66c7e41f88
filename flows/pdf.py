"""Render a filled declaration (its line-based markup) to PDF, and read the text back.

The engine renders a procedure's declaration template into markup, one element per line:

    # text           centred, bold, larger (the national motto)
    ## text          centred, bold (the motto's second line, the form title)
    ### text         a left-aligned bold section heading
    - Label: value   a form line: label in normal weight, value in bold; an empty value
                     prints a dotted leader so it can be filled in by hand
    > text           a right-aligned line (place and date, signature)
    ~ text           a small italic note
    ---              vertical space
    anything else    a normal paragraph; consecutive lines join, blank lines separate them

Text is NFC-normalised before drawing: DejaVu Sans has every precomposed Vietnamese letter,
so no text shaping is needed. The font comes from matplotlib's package data, found
without importing matplotlib.

Fonts are parsed once per process (`_font_templates`): fpdf2's `add_font` reads a whole TTF
(cmap, widths, glyph table) for every document, and its subsetter then parses all 6,000
glyphs and the layout tables it drops anyway. Each document gets a light copy of the
parsed font and, when it is written, a fresh fontTools object (the subsetter cuts it down
in place, so it cannot be shared) over bytes held in memory: the font without the tables
fpdf2 drops, cut down to Latin, Vietnamese and common symbols when the document draws
nothing else. The PDF bytes are the same as with `add_font` (tests/test_pdf.py compares
them).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import io
import logging
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpdf import FPDF

log = logging.getLogger(__name__)

FONT_FAMILY = "DejaVuSans"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}

MARGIN_MM = 20.0
FONT_SIZE = 12.0
MOTTO_SIZE = 13.0
NOTE_SIZE = 10.0
LINE_HEIGHT = 1.45  # line height as a multiple of the font size
PT_TO_MM = 25.4 / 72
LEADER_MIN_MM = 30.0  # a dotted leader shorter than this moves to the next line


@functools.cache
def font_paths() -> dict[str, Path]:
    """The DejaVu Sans TTF files in matplotlib's package data, by fpdf style ("", "B", "I")."""
    spec = importlib.util.find_spec("matplotlib")
    locations = (spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "mpl-data" / "fonts" / "ttf"
        paths = {style: folder / name for style, name in _FONT_FILES.items()}
        if all(path.is_file() for path in paths.values()):
            return paths
    raise RuntimeError(
        "DejaVu Sans fonts not found: install matplotlib (its mpl-data/fonts/ttf is used)"
    )


# Tables fpdf2 removes before subsetting (fpdf/output.py, `_add_fonts`: `drop_tables`).
# Removing them once per process spares the subsetter from parsing GSUB/GPOS per document.
_DROPPED_TABLES = (
    "FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix",
    "CBDT", "CBLC", "EBDT", "EBLC", "EBSC", "SVG ", "CPAL", "COLR",
)  # fmt: skip
# What a declaration almost always draws: Latin with Vietnamese, punctuation, currency,
# letterlike symbols, arrows, check boxes. A document drawing only these embeds its subset
# from a font cut down to them (about 1,000 glyphs instead of 6,000: much less to parse);
# any other character and it takes the whole font. The embedded subset is the same.
_COMMON_RANGES = (
    (0x0020, 0x024F), (0x0300, 0x036F), (0x1E00, 0x1EFF), (0x2000, 0x206F),
    (0x20A0, 0x20CF), (0x2100, 0x21FF), (0x2460, 0x24FF), (0x25A0, 0x25FF),
    (0x2610, 0x2613), (0x2713, 0x2718),
)  # fmt: skip


@dataclass(frozen=True)
class _FontTemplate:
    font: Any  # fpdf.fonts.TTFFont, parsed once: widths, cmap, glyph ids (read-only)
    whole: bytes  # the font file without the tables fpdf2 drops
    common: bytes  # the same, cut down to _COMMON_RANGES
    common_glyphs: frozenset[str]  # the glyph names `common` has


def _without_dropped_tables(path: Path):
    """The font with the tables fpdf2's subsetter would drop anyway already gone.

    "kern" goes too when the font has GPOS: the subsetter drops a legacy kern table next to
    GPOS (fontTools `legacy_kern` is off), and would keep it once GPOS is gone."""
    from fontTools import ttLib

    font = ttLib.TTFont(path, recalcTimestamp=False, lazy=True)
    if "GPOS" in font and "kern" in font:
        del font["kern"]
    for tag in _DROPPED_TABLES:
        if tag in font:
            del font[tag]
    return font


def _saved(font) -> bytes:
    out = io.BytesIO()
    font.save(out)
    font.close()
    return out.getvalue()


def _common_subset(data: bytes) -> tuple[bytes, frozenset[str]]:
    """`data` cut down to _COMMON_RANGES, keeping everything else as it is (glyph names,
    hinting, name table, legacy cmaps) so that fpdf2's own subset of it comes out the same."""
    from fontTools import subset, ttLib

    font = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
    unicodes = [cp for cp in font.getBestCmap() if any(lo <= cp <= hi for lo, hi in _COMMON_RANGES)]
    options = subset.Options(
        glyph_names=True,
        notdef_glyph=True,
        notdef_outline=True,
        recommended_glyphs=True,
        hinting=True,
        legacy_kern=True,
        legacy_cmap=True,
        symbol_cmap=True,
        layout_features=["*"],
        name_IDs=["*"],
        name_languages=["*"],
        name_legacy=True,
        prune_unicode_ranges=False,
        prune_codepage_ranges=False,
        drop_tables=[],
    )
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=unicodes)
    subsetter.subset(font)
    glyphs = frozenset(font.getGlyphOrder())
    return _saved(font), glyphs


_templates: dict[str, _FontTemplate] | None = None
_templates_lock = threading.Lock()


def _font_templates() -> dict[str, _FontTemplate]:
    """Each style's parsed font and font data, built once per process on the first
    declaration (not at start-up: about half a second)."""
    global _templates
    if _templates is None:
        with _templates_lock:
            if _templates is None:
                scratch = FPDF()
                built = {}
                for style, path in font_paths().items():
                    scratch.add_font(FONT_FAMILY, style, str(path))
                    font = scratch.fonts[f"{FONT_FAMILY.lower()}{style}"]
                    font.ttfont.close()
                    whole = _saved(_without_dropped_tables(path))
                    common, glyphs = _common_subset(whole)
                    built[style] = _FontTemplate(font, whole, common, glyphs)
                _templates = built
    return _templates


def _document_font(template: _FontTemplate):
    """A copy of a parsed font for one document: shared read-only tables (widths, cmap,
    glyph ids), and what the document changes of its own (subset, missing glyphs, the
    fontTools object the subsetter cuts down, the descriptor that gets an object id).
    Its font data is chosen when the document is written (`_Declaration.output`)."""
    from fpdf.fonts import SubsetMap, TTFFont

    font = TTFFont.__new__(TTFFont)
    for slot in TTFFont.__slots__:
        if hasattr(template.font, slot):
            setattr(font, slot, getattr(template.font, slot))
    font.ttfont = None
    font.desc = copy.copy(template.font.desc)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    font.subset = SubsetMap(font)
    return font


def _clean(text: str) -> str:
    """NFC, tabs as spaces, other control characters dropped, outer spaces stripped."""
    text = unicodedata.normalize("NFC", text).replace("\t", " ")
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()


class _Declaration(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(True, margin=MARGIN_MM)
        self.add_fonts()
        self.add_page()

    def add_fonts(self) -> None:
        """The three DejaVu styles, from the per-process templates (fpdf2's own `add_font`
        if this fpdf2 does not look the way `_document_font` expects)."""
        self._cached_fonts: list[tuple[Any, _FontTemplate]] = []
        try:
            fonts = {style: _document_font(t) for style, t in _font_templates().items()}
        except AttributeError as exc:  # another fpdf2 version's TTFFont
            log.warning("cached PDF fonts unavailable (%s); parsing them per document", exc)
            for style, path in font_paths().items():
                self.add_font(FONT_FAMILY, style, str(path))
            return
        for style, font in fonts.items():
            font.i = len(self.fonts) + 1
            self.fonts[f"{FONT_FAMILY.lower()}{style}"] = font
            self._cached_fonts.append((font, _font_templates()[style]))

    def output(self, *args: Any, **kwargs: Any) -> Any:
        """Give each cached font its font data for the subsetter: the common cut when every
        glyph the document drew is in it, else the whole font."""
        from fontTools import ttLib

        for font, template in getattr(self, "_cached_fonts", ()):
            if font.ttfont is None:
                names = font.subset.get_all_glyph_names()
                data = template.common if template.common_glyphs >= set(names) else template.whole
                font.ttfont = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
        return super().output(*args, **kwargs)

    def font(self, style: str = "", size: float = FONT_SIZE) -> float:
        """Set the font; return the matching line height in mm."""
        self.set_font(FONT_FAMILY, style, size)
        return size * PT_TO_MM * LINE_HEIGHT

    def block(
        self, text: str, *, style: str = "", size: float = FONT_SIZE, align: str = "L"
    ) -> None:
        h = self.font(style, size)
        self.multi_cell(0, h, text, align=align, new_x="LMARGIN", new_y="NEXT")

    def form_line(self, label: str, value: str) -> None:
        h = self.font()
        self.set_x(self.l_margin)
        self.write(h, f"{label}: ")
        if value:
            self.font("B")
            self.write(h, value)
        else:
            right = self.w - self.r_margin
            if right - self.x < LEADER_MIN_MM:
                self.ln(h)
            dots = int((right - self.x - 2 * self.c_margin) / self.get_string_width("."))
            self.write(h, "." * max(dots, 3))
        self.ln(h)

    def space(self, lines: float) -> None:
        self.ln(self.font() * lines)


def render_pdf(markup: str, *, title: str = "", author: str = "motcua") -> bytes:
    """Turn declaration markup into the bytes of an A4 PDF."""
    return _render(_Declaration(), markup, title=title, author=author)


def _render(pdf: _Declaration, markup: str, *, title: str, author: str) -> bytes:
    pdf.set_title(_clean(title))
    pdf.set_author(_clean(author))
    pdf.set_creator("motcua")

    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            pdf.block(" ".join(paragraph), align="J")
            paragraph.clear()

    for raw in markup.splitlines():
        line = _clean(raw)
        if not line:
            flush()
            pdf.space(0.4)
        elif line.startswith("### "):
            flush()
            pdf.block(line[4:].strip(), style="B")
        elif line.startswith("## "):
            flush()
            pdf.block(line[3:].strip(), style="B", align="C")
        elif line.startswith("# "):
            flush()
            pdf.block(line[2:].strip(), style="B", size=MOTTO_SIZE, align="C")
        elif line.startswith("- ") and ":" in line:
            flush()
            label, _, value = line[2:].partition(":")
            pdf.form_line(label.strip(), value.strip())
        elif line.startswith("> "):
            flush()
            pdf.block(line[2:].strip(), align="R")
        elif line.startswith("~ "):
            flush()
            pdf.block(line[2:].strip(), style="I", size=NOTE_SIZE)
        elif line == "---":
            flush()
            pdf.space(1.0)
        else:
            paragraph.append(line)
    flush()
    return bytes(pdf.output())


def pdf_text(pdf_bytes: bytes) -> str:
    """The text of a PDF, page after page, NFC-normalised (needs the dev dependency pypdf)."""
    try:
        from pypdf import PdfReader
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("pdf_text needs pypdf: pip install 'motcua[dev]'") from exc
    reader = PdfReader(io.BytesIO(pdf_bytes))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return unicodedata.normalize("NFC", text)

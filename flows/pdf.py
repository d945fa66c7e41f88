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
fpdf2 drops, cut down to the smallest of two precomputed cuts that has every glyph the
document drew (Vietnamese: about 350 glyphs; Latin, Vietnamese and common symbols: about
1,400), else the whole font. A subset of a cut is saved without recomputing bounding boxes
(`recalcBBoxes=False`): fontTools would otherwise decode and re-encode every glyph's
outline, a third of the PDF's time (the cut's glyphs were re-encoded once, when it was
made). So the glyphs, widths and character maps embedded are
byte for byte fpdf2's own (`add_font`), and only the font-wide bounds in the head, hhea and
maxp tables are those of the cut, which contain the subset's (tests/test_pdf.py compares
both ways).
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
# What a declaration almost always draws: Vietnamese (ASCII, Latin-1, the Vietnamese letters
# and tone marks, dashes and quotes, the dong sign, check boxes); then Latin with
# Vietnamese, punctuation, currency, letterlike symbols, arrows, check boxes. A document
# drawing only these embeds its subset from a font cut down to them (about 350 or 1,400
# glyphs instead of 6,000: much less to parse); any other character and it takes the whole
# font. The embedded glyphs are the same.
_VIETNAMESE_RANGES = (
    (0x0020, 0x007E), (0x00A0, 0x00FF), (0x0102, 0x0103), (0x0110, 0x0111),
    (0x0128, 0x0129), (0x0168, 0x0169), (0x01A0, 0x01A1), (0x01AF, 0x01B0),
    (0x0300, 0x0303), (0x0309, 0x0309), (0x0323, 0x0323), (0x1EA0, 0x1EF9),
    (0x2010, 0x2026), (0x20AB, 0x20AB), (0x2610, 0x2612), (0x2713, 0x2714),
)  # fmt: skip
_COMMON_RANGES = (
    (0x0020, 0x024F), (0x0300, 0x036F), (0x1E00, 0x1EFF), (0x2000, 0x206F),
    (0x20A0, 0x20CF), (0x2100, 0x21FF), (0x2460, 0x24FF), (0x25A0, 0x25FF),
    (0x2610, 0x2613), (0x2713, 0x2718),
)  # fmt: skip


@dataclass(frozen=True)
class _FontTemplate:
    font: Any  # fpdf.fonts.TTFFont, parsed once: widths, cmap, glyph ids (read-only)
    whole: bytes  # the font file without the tables fpdf2 drops
    cuts: tuple[tuple[frozenset[str], bytes], ...]  # (glyph names, font file), smallest first

    def data_for(self, glyphs: set[str]) -> bytes:
        """The smallest font file that has every glyph in `glyphs`."""
        for names, data in self.cuts:
            if names >= glyphs:
                return data
        return self.whole


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


def _cut(data: bytes, ranges: tuple[tuple[int, int], ...]) -> tuple[frozenset[str], bytes]:
    """`data` cut down to the characters in `ranges`, keeping everything else as it is (glyph names,
    hinting, name table, legacy cmaps) so that fpdf2's own subset of it comes out the same."""
    from fontTools import subset, ttLib

    font = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
    unicodes = [cp for cp in font.getBestCmap() if any(lo <= cp <= hi for lo, hi in ranges)]
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
    return glyphs, _saved(font)


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
                    cuts = tuple(_cut(whole, r) for r in (_VIETNAMESE_RANGES, _COMMON_RANGES))
                    built[style] = _FontTemplate(font, whole, cuts)
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
        """Give each cached font its font data for the subsetter: the smallest cut that has
        every glyph the document drew, else the whole font (saved without recomputing the
        bounding boxes: see the module docstring)."""
        from fontTools import ttLib

        for font, template in getattr(self, "_cached_fonts", ()):
            if font.ttfont is None:
                data = template.data_for(set(font.subset.get_all_glyph_names()))
                # a cut's glyphs were re-encoded by fontTools when it was made, the whole
                # font's are as the TTF has them: re-encoded here, as fpdf2 does
                font.ttfont = ttLib.TTFont(
                    io.BytesIO(data),
                    recalcTimestamp=False,
                    recalcBBoxes=data is template.whole,
                    lazy=True,
                )
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

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
"""

from __future__ import annotations

import functools
import importlib.util
import io
import unicodedata
from pathlib import Path

from fpdf import FPDF

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


def _clean(text: str) -> str:
    """NFC, tabs as spaces, other control characters dropped, outer spaces stripped."""
    text = unicodedata.normalize("NFC", text).replace("\t", " ")
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc").strip()


class _Declaration(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(True, margin=MARGIN_MM)
        for style, path in font_paths().items():
            self.add_font(FONT_FAMILY, style, str(path))
        self.add_page()

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
    pdf = _Declaration()
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

"""flows.pdf: declaration markup -> PDF, read back with pypdf."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader

from flows.pdf import (
    FONT_FAMILY,
    _Declaration,
    _font_templates,
    _render,
    font_paths,
    pdf_text,
    render_pdf,
)

LONG_ADDRESS = (
    "Thôn 3, xã Bắc Ruộng, tỉnh Lâm Đồng; hiện đang làm việc tại Khu công nghiệp Sóng Thần, "
    "phường Dĩ An, Thành phố Hồ Chí Minh, phòng trọ số 12, dãy trọ của bà Trần Thị Mỹ Dung, "
    "gần chợ Tân Đông Hiệp, ngõ có cây bàng lớn"
)

VALUES = [
    "Ủy ban nhân dân xã Bắc Ruộng, tỉnh Lâm Đồng",
    "NGUYỄN THỊ HƯỞNG",
    "12/03/1995",
    "Thẻ căn cước",
    "068195001234",
    "15/08/2024",
    "Bộ Công an",
    "Bản thân",
    "Nữ",
    "Kinh",
    "Việt Nam",
    "Chưa kết hôn với ai",
    "Bổ túc hồ sơ xin việc",
    "01",
]

DECLARATION = f"""\
# CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM
## Độc lập - Tự do - Hạnh phúc
---
## TỜ KHAI CẤP GIẤY XÁC NHẬN TÌNH TRẠNG HÔN NHÂN

- Kính gửi: {VALUES[0]}

### Thông tin người yêu cầu
- Họ, chữ đệm, tên người yêu cầu: {VALUES[1]}
- Ngày, tháng, năm sinh: {VALUES[2]}
- Nơi cư trú: {LONG_ADDRESS}
- Giấy tờ tùy thân: {VALUES[3]}
- Số giấy tờ tùy thân: {VALUES[4]}
- Ngày cấp: {VALUES[5]}
- Nơi cấp: {VALUES[6]}
- Quan hệ với người được cấp Giấy xác nhận tình trạng hôn nhân: {VALUES[7]}

### Đề nghị cấp Giấy xác nhận tình trạng hôn nhân cho người có tên dưới đây
- Họ, chữ đệm, tên: {VALUES[1]}
- Giới tính: {VALUES[8]}
- Dân tộc: {VALUES[9]}
- Quốc tịch: {VALUES[10]}
- Tình trạng hôn nhân: {VALUES[11]}
- Mục đích sử dụng: {VALUES[12]}
- Số lượng bản đề nghị cấp: {VALUES[13]}
- Số điện thoại liên hệ:

Tôi cam đoan những nội dung khai trên đây là đúng sự thật
và chịu trách nhiệm trước pháp luật về cam đoan của mình.

> Lâm Đồng, ngày 20 tháng 5 năm 2026
> Người yêu cầu
> (Ký, ghi rõ họ, chữ đệm, tên)
---
> Nguyễn Thị Hưởng
~ Bản này do motcua điền sẵn từ câu trả lời của bạn; hãy kiểm tra trước khi nộp.
"""


def collapse(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def declaration_pdf() -> bytes:
    return render_pdf(DECLARATION, title="Tờ khai cấp Giấy xác nhận tình trạng hôn nhân")


def test_output_is_a_pdf_with_title(declaration_pdf: bytes) -> None:
    assert declaration_pdf.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(declaration_pdf))
    assert len(reader.pages) == 1
    assert reader.metadata is not None
    assert reader.metadata.title == "Tờ khai cấp Giấy xác nhận tình trạng hôn nhân"
    assert reader.metadata.author == "motcua"
    # A4 portrait, in points.
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_every_value_and_heading_extracts_back(declaration_pdf: bytes) -> None:
    text = collapse(pdf_text(declaration_pdf))
    for value in VALUES:
        assert value in text
    for line in (
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Thông tin người yêu cầu",
        "Lâm Đồng, ngày 20 tháng 5 năm 2026",
        "Nguyễn Thị Hưởng",
        "Bản này do motcua điền sẵn",
    ):
        assert line in text
    # The markup's prefixes are not drawn.
    assert "#" not in text and "~" not in text and ">" not in text


def test_long_value_wraps_and_keeps_every_word(declaration_pdf: bytes) -> None:
    raw = pdf_text(declaration_pdf)
    assert collapse(f"Nơi cư trú: {LONG_ADDRESS}") in collapse(raw)
    words = LONG_ADDRESS.split()
    start = raw.index("Nơi cư trú:")
    end = raw.index("Giấy tờ tùy thân:")
    found = raw[start:end].split()
    assert found[3:] == words  # after "Nơi cư trú:"
    # It did not fit on one line, so it wrapped (a line break inside the value).
    assert "\n" in raw[start:end].strip()


def test_consecutive_plain_lines_form_one_paragraph(declaration_pdf: bytes) -> None:
    text = collapse(pdf_text(declaration_pdf))
    assert "đúng sự thật và chịu trách nhiệm trước pháp luật" in text


def test_empty_value_prints_a_dotted_leader(declaration_pdf: bytes) -> None:
    text = pdf_text(declaration_pdf)
    assert re.search(r"Số điện thoại liên hệ: \.{20,}", text)
    # Filled values get no leader.
    assert not re.search(r"Dân tộc: \.", text)


def test_empty_value_after_a_long_label_gets_a_leader_on_the_next_line() -> None:
    label = "Quan hệ với người được cấp Giấy xác nhận tình trạng hôn nhân, ghi rõ"
    text = pdf_text(render_pdf(f"- {label}:"))
    head, _, rest = text.partition(":")
    assert collapse(head) == label
    assert re.fullmatch(r"\s*\.{20,}\s*", rest)


def test_unbroken_long_text_wraps_instead_of_overflowing() -> None:
    token = "x" * 300 + "@example.com"
    text = pdf_text(render_pdf(f"- Thư điện tử: {token}"))
    lines = text.splitlines()
    assert len(lines) >= 4
    assert "".join(lines).replace("Thư điện tử: ", "") == token


def test_two_hundred_lines_make_several_pages() -> None:
    markup = "\n".join(f"- Dòng số {i}: Nguyễn Văn Hưởng {i}" for i in range(200))
    pdf = render_pdf(markup)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    text = collapse(pdf_text(pdf))
    for i in (0, 57, 123, 199):
        assert f"Dòng số {i}: Nguyễn Văn Hưởng {i}" in text
    assert "Dòng số 199:" in collapse(reader.pages[-1].extract_text())


def test_nfd_input_is_drawn_as_nfc() -> None:
    nfc = "Nguyễn Thị Hưởng ỷ Ở ặ"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    pdf = render_pdf(f"## {nfd}\n- Họ tên: {nfd}\n{nfd}")
    # Read with pypdf directly: pdf_text would normalise and hide decomposed glyphs.
    raw = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert raw.count(nfc) == 3
    assert not any(unicodedata.combining(ch) for ch in raw)
    assert pdf_text(pdf).count(nfc) == 3


def test_fonts_come_from_matplotlib_package_data() -> None:
    paths = font_paths()
    assert set(paths) == {"", "B", "I"}
    for path in paths.values():
        assert path.is_file()
        assert path.parent.parts[-3:] == ("mpl-data", "fonts", "ttf")
        assert path.name.startswith("DejaVuSans")
    assert font_paths() is paths  # cached


def test_rendering_does_not_import_matplotlib() -> None:
    code = (
        "import sys\n"
        "from flows.pdf import render_pdf\n"
        "assert render_pdf('# A').startswith(b'%PDF')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_embedded_font_is_dejavu(declaration_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(declaration_pdf))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = {str(font.get_object()["/BaseFont"]) for font in fonts.values()}
    assert names and all("DejaVuSans" in name for name in names)


class _AddFontEveryTime(_Declaration):
    """fpdf2's own way: parse the TTF files for this document (what render_pdf did before
    the fonts were parsed once per process)."""

    def add_fonts(self) -> None:
        for style, path in font_paths().items():
            self.add_font(FONT_FAMILY, style, str(path))


def _bytes_with(document: _Declaration, markup: str) -> bytes:
    document.set_creation_date(dt.datetime(2026, 5, 20, 8, 0, tzinfo=dt.UTC))
    return _render(document, markup, title="Tờ khai", author="motcua")


def _objects(pdf: bytes) -> dict[int, bytes]:
    return {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj\n(.*?)\nendobj", pdf, re.S)}


def _embedded_font(obj: bytes):
    from fontTools import ttLib

    data = obj.split(b"stream\n", 1)[1].rsplit(b"\nendstream", 1)[0]
    return ttLib.TTFont(io.BytesIO(zlib.decompress(data)))


# Font-wide bounds the subset keeps from the cut it was made from (flows/pdf.py saves it
# without recomputing them): each must hold the reference's value on the safe side.
_AT_MOST = {("head", "xMin"), ("head", "yMin"), ("hhea", "minLeftSideBearing"),
            ("hhea", "minRightSideBearing")}  # fmt: skip
_AT_LEAST = {("head", "xMax"), ("head", "yMax"), ("hhea", "advanceWidthMax"),
             ("hhea", "xMaxExtent"), ("maxp", "maxPoints"), ("maxp", "maxContours"),
             ("maxp", "maxCompositePoints"), ("maxp", "maxCompositeContours"),
             ("maxp", "maxComponentElements"), ("maxp", "maxComponentDepth")}  # fmt: skip


def _assert_same_as_add_font(ours: bytes, reference: bytes) -> None:
    """Every PDF object byte for byte the same, but the embedded font files; in those every
    table the same (glyph outlines, widths, character maps...) but the font-wide bounds,
    which must contain the reference's."""
    mine, theirs = _objects(ours), _objects(reference)
    assert set(mine) == set(theirs)
    for number, obj in theirs.items():
        if b"/Length1" not in obj:  # not a FontFile2 stream
            assert mine[number] == obj, number
            continue
        font, ref = _embedded_font(mine[number]), _embedded_font(obj)
        assert font.getGlyphOrder() == ref.getGlyphOrder()
        assert sorted(font.keys()) == sorted(ref.keys())
        for tag in ref.keys():
            if tag == "GlyphOrder" or font.getTableData(tag) == ref.getTableData(tag):
                continue
            assert tag in ("head", "hhea", "maxp"), tag
            for name, want in vars(ref[tag]).items():
                got = getattr(font[tag], name)
                if (tag, name) in _AT_MOST:
                    assert got <= want, (tag, name)
                elif (tag, name) in _AT_LEAST:
                    assert got >= want, (tag, name)
                elif (tag, name) == ("head", "flags"):  # bit 1 follows the bounds
                    assert got | 2 == want | 2
                elif (tag, name) != ("head", "checkSumAdjustment"):
                    assert got == want, (tag, name)


@pytest.mark.parametrize(
    "markup",
    [
        DECLARATION,
        "\n".join(f"- Dòng số {i}: Nguyễn Văn Hưởng {i}" for i in range(200)),
        "## Ωμέγα Привет ✓ ₫\n~ ghi chú nghiêng\n- Họ tên:",
        "## ₫ № ™ → ☐ ✓ «x» – “y” …\n~ Ghi chú: Đặng Thị Ỷ\n- Số: ① ②",
    ],
)
def test_fonts_parsed_once_embed_the_same_glyphs_as_add_font(markup: str) -> None:
    reference = _bytes_with(_AddFontEveryTime(), markup)
    # Twice, with another document in between: nothing of one document leaks into the next.
    first = _bytes_with(_Declaration(), markup)
    render_pdf("# A\n- B: ữ")
    second = _bytes_with(_Declaration(), markup)
    assert first == second
    _assert_same_as_add_font(first, reference)


def _with_glyph_moved(pdf: bytes) -> bytes:
    """`pdf` with one point of one glyph outline of its first embedded font moved."""
    number, obj = next((n, o) for n, o in _objects(pdf).items() if b"/Length1" in o)
    font = _embedded_font(obj)
    glyf = font["glyf"]
    name = next(g for g in font.getGlyphOrder() if glyf[g].numberOfContours > 0)
    glyph = glyf[name]
    x, y = glyph.coordinates[0]
    glyph.coordinates[0] = (x + 7, y)
    font.recalcTimestamp = font.recalcBBoxes = False  # only the outline changes
    out = io.BytesIO()
    font.save(out)
    data = zlib.compress(out.getvalue())
    head = obj.split(b"stream\n", 1)[0]
    head = re.sub(rb"/Length \d+", b"/Length %d" % len(data), head)
    head = re.sub(rb"/Length1 \d+", b"/Length1 %d" % len(out.getvalue()), head)
    start = pdf.index(b"%d 0 obj\n" % number)
    end = pdf.index(b"\nendobj", start)
    return (
        pdf[:start]
        + b"%d 0 obj\n" % number
        + head
        + b"stream\n"
        + data
        + b"\nendstream"
        + pdf[end:]
    )


def test_the_comparison_sees_a_changed_glyph() -> None:
    """The check above is not blind: the same document with one point of one glyph
    outline moved fails it, on the glyph tables (glyf, or loca when its size changed)."""
    reference = _bytes_with(_AddFontEveryTime(), DECLARATION)
    ours = _bytes_with(_Declaration(), DECLARATION)
    _assert_same_as_add_font(ours, reference)
    with pytest.raises(AssertionError, match="glyf|loca"):
        _assert_same_as_add_font(_with_glyph_moved(ours), reference)
    broken = _bytes_with(_AddFontEveryTime(), DECLARATION.replace("Việt", "Viet"))
    with pytest.raises(AssertionError):  # other text: other objects
        _assert_same_as_add_font(broken, reference)


def test_documents_share_the_parsed_widths_not_the_font_objects() -> None:
    one, two = _Declaration(), _Declaration()
    assert set(one.fonts) == set(two.fonts) == {"dejavusans", "dejavusansB", "dejavusansI"}
    for doc, text in ((one, "# A\n~ b\nc"), (two, "# Ω\n~ d\ne")):
        _render(doc, text, title="", author="")
    for key in one.fonts:
        template = _font_templates()[key.removeprefix("dejavusans")]
        assert one.fonts[key].cw is two.fonts[key].cw is template.font.cw  # parsed once
        assert one.fonts[key].subset is not two.fonts[key].subset
        assert one.fonts[key].desc is not two.fonts[key].desc
        # Each document's subsetter cut its own fontTools object: the first document drew
        # common letters only (the small cut), the second an Omega in bold (whole font).
        assert one.fonts[key].ttfont is not two.fonts[key].ttfont
    assert len(one.fonts["dejavusansB"].ttfont.getGlyphOrder()) < 10
    assert "Omega" in two.fonts["dejavusansB"].ttfont.getGlyphOrder()


def test_documents_rendered_at_once_in_threads_are_all_right() -> None:
    """The bot renders declarations in worker threads: the shared parsed fonts must not
    leak one document's glyphs into another's."""
    from concurrent.futures import ThreadPoolExecutor

    markups = [DECLARATION, "## Ωμέγα Nguyễn\n- Họ tên: Привет", "# A\n- B: ữ"] * 4
    expected = [_bytes_with(_AddFontEveryTime(), m) for m in markups]
    alone = [_bytes_with(_Declaration(), m) for m in markups]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda m: _bytes_with(_Declaration(), m), markups))
    assert got == alone
    for ours, reference in zip(got, expected, strict=True):
        _assert_same_as_add_font(ours, reference)

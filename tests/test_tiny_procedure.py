"""A third, tiny procedure loaded from a temporary folder and completed: no Python added.

Also exercises the engine's navigation (back, skip, help, conditions, exits, review/edit,
cancel) on a procedure small enough to read at a glance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.lint import lint_catalog
from flows.pdf import pdf_text
from flows.service import ConversationService
from procedures.loader import ProcedureError, load_catalog
from tests.conftest import make_store
from tests.harness import Chat, Clock

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_permit"


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "tiny_permit")
    return tmp_path


@pytest.fixture
def chat(tiny_root: Path):
    catalog = load_catalog([tiny_root], include_builtin=False)
    with make_store("sqlite") as store:
        service = ConversationService(store, catalog, clock=Clock(), raise_errors=True)
        yield Chat(service)


def test_tiny_procedure_loads_and_lints(tiny_root: Path) -> None:
    catalog = load_catalog([tiny_root], include_builtin=False)
    assert list(catalog.procedures) == ["tiny_permit"]
    report = lint_catalog(catalog)
    assert report.problems == []
    assert any("sample basic" in line for line in report.lines)


def test_tiny_procedure_completed_end_to_end(chat: Chat) -> None:
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)
    assert "Bước 1/" in chat.text and "Bạn nuôi con gì?" in chat.text
    chat.press("Chó")
    assert "Họ tên của bạn" in chat.text
    chat.send("tran thi binh")  # no diacritics: asked to confirm or retype
    assert "không dấu" in chat.text and "Tran Thi Binh" in chat.text
    chat.send("Trần Thị Bình")  # retyped with diacritics replaces the pending answer
    assert "Đã lưu: Trần Thị Bình" in chat.text
    chat.send("5/6/1988")
    assert "tiêm phòng" in chat.text
    chat.send("co")  # typed yes without diacritics
    assert "Tiêm ngày nào" in chat.text  # the condition opened this question
    chat.send("1-2-26")
    chat.send("2")
    assert "Bỏ qua" in " ".join(chat.labels())  # optional field offers skip
    chat.send("Vàng")
    assert "XEM LẠI" in chat.text
    assert "Ngày tiêm: 01/02/2026" in chat.text
    chat.press("Xác nhận")
    files = chat.attachments()
    assert len(files) == 1
    text = " ".join(pdf_text(files[0].content).split())
    assert "Người đứng tên" in text and "01/02/2026" in text
    assert "Giấy tiêm phòng dại" in chat.text  # conditional document listed
    chat.send("G22.99-261127-0001")
    assert "G22.99-261127-0001" in chat.text


def test_back_skip_help_and_edit_from_review(chat: Chat) -> None:
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)
    chat.press("Chó")
    chat.send("Trần Thị Bình")
    chat.press("Quay lại")  # from the birth date back to the name, answer shown
    assert "Họ tên của bạn" in chat.text and "Câu trả lời hiện tại: Trần Thị Bình" in chat.text
    chat.send("quay lai")  # typed works too
    assert "Bạn nuôi con gì?" in chat.text
    chat.press("Chó")
    assert "Bạn sinh ngày nào?" in chat.text  # the name was kept, next missing is asked
    chat.press("Hướng dẫn")
    assert "Ví dụ: 12/3/1990" in chat.text and "Bạn sinh ngày nào?" in chat.text
    chat.send("31/02/1990")
    assert "⚠️" in chat.text and "Bạn sinh ngày nào?" in chat.text
    chat.send("1/1/2015")  # too young
    assert "⚠️" in chat.text
    chat.send("1/1/1980")
    chat.press("Không")  # not vaccinated: the vaccine date is never asked
    assert "Bạn nuôi mấy con?" in chat.text
    chat.send("9")
    assert "⚠️" in chat.text
    chat.send("1")
    chat.press("Bỏ qua")
    assert "XEM LẠI" in chat.text and "(bỏ trống)" in chat.text
    assert "Ngày tiêm" not in chat.text
    # edit the vaccination answer from review: the new branch asks the date, then review
    edit_vacc = [b for b in chat.labels() if b.startswith("✏️")]
    assert edit_vacc
    chat.send("4")  # the 4th line: "Đã tiêm phòng"
    assert "tiêm phòng dại chưa" in chat.text and "Câu trả lời hiện tại: Không" in chat.text
    chat.press("Có")
    assert "Tiêm ngày nào?" in chat.text
    chat.send("3/3/2026")
    assert "XEM LẠI" in chat.text and "Ngày tiêm: 03/03/2026" in chat.text


def test_exit_choose_again_and_cancel(chat: Chat) -> None:
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)
    chat.send("meo")
    assert "Mèo không cần giấy phép này." in chat.text
    chat.press("Chọn lại")
    assert "Bạn nuôi con gì?" in chat.text
    chat.press("Chó")
    chat.send("huy ho so")
    assert "hủy" in chat.text.lower()
    chat.press("Không, giữ lại")
    assert "Họ tên của bạn" in chat.text
    chat.cmd("huy")
    chat.press("Có, hủy hồ sơ")
    assert "Đã hủy" in chat.text
    chat.send("xin chao")
    assert "Chào bạn" in chat.text and chat.labels()  # a greeting gets the menu
    chat.send("qwerty zxcv")
    assert "chưa hiểu" in chat.text and chat.labels()  # never silent


def test_stale_button_and_sticker_rerender_current_question(chat: Chat) -> None:
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)
    old = chat.button("Chó").data
    chat.press("Chó")
    chat.press_data(old)
    assert "Nút này đã cũ" in chat.text and "Họ tên của bạn" in chat.text
    chat.other("sticker")
    assert "Họ tên của bạn" in chat.text
    chat.press_data("zzzzzz.1.c:dog")  # forged
    assert "Họ tên của bạn" in chat.text
    chat.send("x" * 5000)
    assert "Họ tên của bạn" in chat.text
    assert all(len(r.text) <= 4096 for r in chat.history)


def test_a_broken_procedure_stops_loading(tiny_root: Path) -> None:
    path = tiny_root / "tiny_permit" / "procedure.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "when: \"vaccinated == 'yes'\"\n    validators",
            'when: "vaccinated == "\n    validators',
        ),
        encoding="utf-8",
    )
    with pytest.raises(ProcedureError, match="vaccine_date"):
        load_catalog([tiny_root], include_builtin=False)

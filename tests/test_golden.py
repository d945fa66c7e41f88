"""Golden conversations for both procedures, as a tired migrant worker on a cheap phone chats.

Each scenario drives the real `ConversationService` over a real database and records what
the citizen sees in `tests/golden/<name>.txt` (rewrite with `pytest --update-golden`, then
READ the diff). A golden file alone tests nothing: every scenario also asserts what matters
(the answer stored, the error shown, the question asked again, "Bước k/N", the PDF text).

Procedures: "xntthn" = Cấp Giấy xác nhận tình trạng hôn nhân (1.004873), "ban_sao" = Cấp
bản sao Trích lục hộ tịch, bản sao Giấy khai sinh (2.000635).

Tests marked xfail(strict=True) are bugs found while writing these scenarios: they describe
the behaviour a citizen needs and fail today.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from flows.pdf import pdf_text
from flows.service import ConversationService
from procedures import units
from procedures.loader import load_catalog
from storage.store import DraftRec, Store
from tests.conftest import make_store
from tests.harness import Chat, Clock, check_golden

CATALOG = load_catalog()
XN = "xac_nhan_tinh_trang_hon_nhan"
BS = "cap_ban_sao_trich_luc_khai_sinh"
USER = "1001"
STEP_RE = re.compile(r"Bước (\d+)/(\d+)")
TELEGRAM_TEXT_MAX = 4096
TELEGRAM_CAPTION_MAX = 1024
CALLBACK_DATA_MAX = 64
BACKENDS = ["sqlite", "postgresql"]
# Converting a pre-2025 address needs vietnam-provinces 2026.x (Python >= 3.12).
needs_old_addresses = pytest.mark.skipif(
    not units.legacy_available(), reason="pre-2025 address conversion not installed"
)


# --------------------------------------------------------------------------- helpers


@contextmanager
def open_chat(backend: str = "sqlite", clock: Clock | None = None) -> Iterator[tuple[Chat, Store]]:
    with make_store(backend) as store:
        service = ConversationService(store, CATALOG, clock=clock or Clock(), raise_errors=True)
        yield Chat(service, user=USER, name="An"), store


def check_limits(chat: Chat) -> None:
    """Every reply fits one Telegram message; every button's callback data is ASCII and
    at most 64 bytes; nothing is silent."""
    assert chat.history, "the bot said nothing"
    for reply in chat.history:
        assert reply.text.strip(), "an empty reply"
        assert len(reply.text) <= TELEGRAM_TEXT_MAX, reply.text[:200]
        for row in reply.buttons:
            for b in row:
                assert b.label.strip()
                assert b.data.isascii(), b.data
                assert len(b.data.encode()) <= CALLBACK_DATA_MAX, b.data
        if reply.attachment is not None:
            assert len(reply.attachment.caption) <= TELEGRAM_CAPTION_MAX
            assert reply.attachment.content.startswith(b"%PDF")


def finish(chat: Chat, name: str, update_golden: bool) -> None:
    check_limits(chat)
    check_golden(name, chat.transcript_text(), update_golden)


def step(chat: Chat) -> tuple[int, int]:
    """The last "Bước k/N" in the latest replies."""
    found = STEP_RE.findall(chat.text)
    assert found, f"no progress shown in:\n{chat.text}"
    k, n = found[-1]
    return int(k), int(n)


def asked(chat: Chat, question: str, k: int | None = None) -> None:
    """The latest replies ask `question` (at step k, if given) and nothing went wrong."""
    text = chat.text
    assert question in text, text
    if k is not None:
        assert step(chat)[0] == k, text


def refused(chat: Chat, error: str, question: str, k: int | None = None) -> None:
    """The answer was refused with `error`, and `question` is asked again (same step)."""
    text = chat.text
    assert "⚠️" in text and error in text, text
    asked(chat, question, k)


def stored(chat: Chat, display: str) -> None:
    assert f"✔️ Đã lưu: {display}" in chat.text, chat.text


def drafts(store: Store, user: str = USER) -> list[DraftRec]:
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", user)
        assert citizen is not None
        return uow.drafts_of(citizen.id)


def draft(store: Store, proc: str) -> DraftRec:
    """The citizen's most recently updated draft of `proc`."""
    found = [d for d in drafts(store) if d.procedure_id == proc]
    assert found, [d.procedure_id for d in drafts(store)]
    return found[0]


def answers(store: Store, proc: str) -> dict[str, Any]:
    return draft(store, proc).payload["answers"]


def shown(store: Store, proc: str) -> dict[str, str]:
    return draft(store, proc).payload["shown"]


def fact_kinds(store: Store) -> list[str]:
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", USER)
        return [f.kind for f in uow.facts(citizen_id=citizen.id)]


def open_handoffs(store: Store) -> list[dict]:
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", USER)
        return uow.open_handoffs(citizen.id)


def the_pdf(chat: Chat) -> str:
    files = chat.attachments()
    assert len(files) == 1, files
    assert files[0].filename.endswith(".pdf")
    return " ".join(pdf_text(files[0].content).split())


def review_line(chat: Chat, label: str) -> int:
    """The number of the review line labelled `label`."""
    m = re.search(rf"^(\d+)\. {re.escape(label)}:", chat.text, re.M)
    assert m, f"no review line {label!r} in:\n{chat.text}"
    return int(m.group(1))


def listed(chat: Chat, name: str) -> int:
    """The number of the draft of procedure `name` in the /hoso list."""
    m = re.search(rf"^(\d+)\. {re.escape(name)} – ", chat.text, re.M)
    assert m, f"{name!r} not listed in:\n{chat.text}"
    return int(m.group(1))


def note(chat: Chat, text: str) -> None:
    """A comment line in the transcript (not something the citizen sees)."""
    chat.transcript.append(f"### {text}")


# --------------------------------------------------------------------------- scripts

# The marital status certificate, never married, for a bank loan, to the review.
XN_TO_REVIEW: list[tuple[str, str]] = [
    ("cmd", "start"),
    ("send", "lam giay doc than"),
    ("press", "Đồng ý"),  # first contact: the consent notice (flows/privacy.py)
    ("send", "vay ngan hang"),
    ("press", "Có, mức 2"),
    ("send", "ban than"),
    ("send", "Nguyễn Văn Hùng"),
    ("press", "Nam"),
    ("send", "12/3/90"),
    ("send", "kinh"),
    ("press", "Việt Nam"),
    ("send", "co ho khau"),
    ("send", "bac ruong, lam dong"),
    ("send", "thon 3"),
    ("send", "cccd"),
    ("send", "060 090 012 345"),
    ("send", "15-8-2024"),
    ("press", "Cục Cảnh sát QLHC về TTXH"),
    ("send", "doc than"),
    ("press", "Lần đầu"),
    ("press", "2"),
    ("send", "buu dien"),
    ("send", "0912.345.678"),
    ("press", "Bỏ qua"),
]

# A copy of one's own birth certificate, to the review.
BS_SELF_TO_REVIEW: list[tuple[str, str]] = [
    ("cmd", "start"),
    ("send", "xin ban sao giay khai sinh"),
    ("press", "Đồng ý"),
    ("press", "Bản sao giấy khai sinh"),
    ("press", "Có, mức 2"),
    ("send", "cua toi"),
    ("send", "Trần Thị Mai"),
    ("send", "nu"),
    ("send", "20/5/1996"),
    ("press", "Kinh"),
    ("press", "Việt Nam"),
    ("send", "phuong di an, tp hcm"),
    ("press", "Bỏ qua"),
    ("press", "Thẻ căn cước"),
    ("send", "060196008899"),
    ("send", "1/7/2024"),
    ("press", "Bộ Công an"),
    ("send", "xa bac ruong, lam dong"),
    ("send", "20/5/1996"),
    ("send", "112"),
    ("send", "01/1996"),
    ("press", "1"),
    ("send", "gui buu dien"),
    ("send", "0978 456 123"),
    ("press", "Bỏ qua"),
]


def act(chat: Chat, script: list[tuple[str, str]]) -> None:
    for kind, value in script:
        if kind == "cmd":
            chat.cmd(value)
        elif kind == "send":
            chat.send(value)
        else:
            chat.press(value)


def play(chat: Chat, script: list[tuple[str, str]]) -> None:
    act(chat, script)
    assert "XEM LẠI TỜ KHAI" in chat.text, chat.text


# ===================================================================== 1. happy paths


@pytest.mark.parametrize("backend", BACKENDS)
def test_xntthn_happy_path(backend: str, update_golden: bool) -> None:
    with open_chat(backend) as (chat, store):
        chat.cmd("start")
        assert "Xin chào" in chat.text
        assert {"Giấy xác nhận tình trạng hôn nhân", "Bản sao giấy khai sinh"} <= set(chat.labels())
        chat.send("lam giay doc than")  # the colloquial name starts the procedure
        chat.press("Đồng ý")  # first contact: the consent notice (flows/privacy.py)
        assert "GIẤY XÁC NHẬN TÌNH TRẠNG HÔN NHÂN" in chat.text
        asked(chat, "Bạn cần Giấy xác nhận tình trạng hôn nhân để làm gì?", 1)
        chat.send("vay ngan hang")
        stored(chat, "Để bổ sung hồ sơ vay vốn ngân hàng")
        asked(chat, "tài khoản VNeID", 2)
        chat.press("Có, mức 2")
        asked(chat, "cho chính mình hay cho người khác", 3)
        chat.send("ban than")
        asked(chat, "Họ và tên đầy đủ của bạn là gì?", 4)
        assert step(chat)[1] == 21  # the requester block is not asked for oneself
        chat.send("Nguyễn Văn Hùng")
        chat.press("Nam")
        chat.send("12/3/90")
        stored(chat, "12/03/1990")
        chat.send("kinh")  # typed, same as the "Kinh" button
        stored(chat, "Kinh")
        chat.press("Việt Nam")
        chat.send("co ho khau")
        stored(chat, "Thường trú")
        chat.send("bac ruong, lam dong")
        stored(chat, "Xã Bắc Ruộng, tỉnh Lâm Đồng")
        chat.send("thon 3")
        chat.send("cccd")
        stored(chat, "Thẻ căn cước công dân")
        chat.send("060 090 012 345")
        stored(chat, "060090012345")
        chat.send("15-8-2024")
        stored(chat, "15/08/2024")
        chat.press("Cục Cảnh sát QLHC về TTXH")
        chat.send("doc than")
        stored(chat, "Hiện tại chưa đăng ký kết hôn với ai")
        chat.press("Lần đầu")
        chat.press("2")
        stored(chat, "2")
        chat.send("buu dien")
        chat.send("0912.345.678")
        stored(chat, "0912 345 678")
        asked(chat, "thư điện tử", 21)
        chat.press("Bỏ qua")

        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        for line in (
            "Mục đích sử dụng: Để bổ sung hồ sơ vay vốn ngân hàng",
            "Họ, chữ đệm, tên: Nguyễn Văn Hùng",
            "Ngày, tháng, năm sinh: 12/03/1990",
            "Nơi cư trú (xã, tỉnh): Xã Bắc Ruộng, tỉnh Lâm Đồng",
            "Số giấy tờ tùy thân: 060090012345",
            "Số lượng bản: 2",
            "Số điện thoại: 0912 345 678",
            "Thư điện tử: (bỏ trống)",
        ):
            assert line in text, line
        got = answers(store, XN)
        assert got["purpose"] == "bank_loan"
        assert got["subject_birth_date"] == "1990-03-12"
        assert got["subject_id_number"] == "060090012345"
        assert got["marital_status"] == "never_married"
        assert got["copies_count"] == 2
        assert got["contact_phone"] == "0912345678"
        assert "contact_email" in draft(store, XN).payload["skipped"]

        chat.press("Xác nhận")
        pdf = the_pdf(chat)
        for piece in (
            "TỜ KHAI CẤP GIẤY XÁC NHẬN TÌNH TRẠNG HÔN NHÂN",
            "Kính gửi: Ủy ban nhân dân xã Bắc Ruộng, tỉnh Lâm Đồng",
            "Nguyễn Văn Hùng",
            "12/03/1990",
            "060090012345",
            "Hiện tại chưa đăng ký kết hôn với ai",
            "Để bổ sung hồ sơ vay vốn ngân hàng",
            "ngày 27 tháng 11 năm 2026",
        ):
            assert piece in pdf, piece
        text = chat.text
        assert "📄 Giấy tờ cần có" in text and "bản án" not in text
        assert "dichvucong.gov.vn" in text and "1.004873" in text
        assert "Xã Bắc Ruộng, tỉnh Lâm Đồng (nơi thường trú)" in text  # portal step 4
        assert draft(store, XN).status == "completed"

        chat.send("g22.99-261127-0001")  # typed straight away, in lower case
        assert "Đã lưu mã hồ sơ G22.99-261127-0001" in chat.text
        d = draft(store, XN)
        assert (d.status, d.dossier_code) == ("submitted", "G22.99-261127-0001")
        chat.cmd("hoso")
        assert "Đã nộp, mã hồ sơ G22.99-261127-0001" in chat.text
        finish(chat, "xntthn_happy_path", update_golden)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ban_sao_happy_path_mother_for_her_child(backend: str, update_golden: bool) -> None:
    with open_chat(backend) as (chat, store):
        chat.cmd("start")
        chat.send("xin ban sao giay khai sinh")
        chat.press("Đồng ý")
        assert "BẢN SAO GIẤY KHAI SINH" in chat.text
        asked(chat, "Bạn cần bản sao giấy gì?", 1)
        chat.send("khai sinh")
        stored(chat, "Giấy khai sinh")
        chat.send("muc 1")
        asked(chat, "Bạn đã có tài khoản mức 1", 3)
        assert "nâng lên mức 2" in chat.text
        chat.press("Tiếp tục chuẩn bị tờ khai, nộp sau")
        asked(chat, "Bạn xin bản sao của chính mình hay của người khác?", 4)
        chat.send("toi la me")
        stored(chat, "Mẹ")
        chat.send("Lê Thị Ngọc Ánh")
        chat.send("di an tp hcm")
        stored(chat, "Phường Dĩ An, thành phố Hồ Chí Minh")
        chat.send("kp Thong Nhat 1")
        chat.press("Thẻ căn cước")
        chat.send("060194005678")
        chat.send("3/3/2025")
        chat.press("Bộ Công an")
        asked(chat, "Họ và tên đầy đủ của người có tên trên giấy khai sinh?")
        chat.send("Trần Gia Bảo")
        chat.send("trai")
        stored(chat, "Nam")
        chat.send("15/3/2019")
        chat.press("Kinh")
        chat.press("Việt Nam")
        chat.send("phuong di an, tp ho chi minh")
        chat.send("kp Thong Nhat 1")
        asked(chat, "Giấy tờ tùy thân của người đó là loại nào?")
        chat.press("Bỏ qua")  # a seven-year-old has no card
        asked(chat, "Việc khai sinh đã được đăng ký ở xã/phường nào?")
        chat.send("di an hcm")
        chat.send("3/4/2019")
        chat.send("112")
        chat.send("01/2019")
        chat.press("2")
        chat.press("Nhận tại xã")
        chat.send("0978456123")
        chat.send("ngocanh.le@gmail.com")

        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        for line in (
            "Quan hệ với người được cấp: Mẹ",
            "Họ, chữ đệm, tên người yêu cầu: Lê Thị Ngọc Ánh",
            "Họ, chữ đệm, tên: Trần Gia Bảo",
            "Loại giấy tờ tùy thân: (bỏ trống)",
            "Đã đăng ký tại: Phường Dĩ An, thành phố Hồ Chí Minh",
            "Số lượng bản sao yêu cầu: 2",
        ):
            assert line in text, line
        assert "Số giấy tờ tùy thân: 060194005678" in text  # the mother's card
        got = answers(store, BS)
        assert got["requester_relationship"] == "mother"
        assert got["subject_birth_date"] == "2019-03-15"
        assert "subject_id_number" not in got
        assert got["registration_book_number"] == "01/2019"

        chat.send("ok")  # a typed yes at the review confirms
        pdf = the_pdf(chat)
        for piece in (
            "TỜ KHAI CẤP BẢN SAO TRÍCH LỤC HỘ TỊCH",
            "Họ, chữ đệm, tên người yêu cầu: Lê Thị Ngọc Ánh",
            "Quan hệ với người được cấp bản sao Trích lục hộ tịch: Mẹ",
            "Đề nghị cấp bản sao Giấy khai sinh",
            "Họ, chữ đệm, tên: Trần Gia Bảo",
            "15/03/2019",
            "Ủy ban nhân dân phường Dĩ An, thành phố Hồ Chí Minh, ngày 03/04/2019",
            "Số: 112",
            "Quyển số: 01/2019",
        ):
            assert piece in pdf, piece
        text = chat.text
        # the mother of a minor needs no authorisation letter
        assert "📄 Giấy tờ cần có" in text and "ủy quyền" not in text
        assert "8.000 đồng" in text and "2.000635" in text

        chat.press("Tôi đã nộp xong")
        asked(chat, "Bạn gõ mã hồ sơ")
        chat.send("abc")
        assert "Mã hồ sơ này chưa đúng" in chat.text
        assert draft(store, BS).dossier_code is None
        chat.send("G22.99-261127-0002")
        assert "Đã lưu mã hồ sơ G22.99-261127-0002" in chat.text
        assert draft(store, BS).status == "submitted"
        finish(chat, "ban_sao_happy_path", update_golden)


# ===================================================================== 2. validation errors


@needs_old_addresses
def test_xntthn_every_validation_error(update_golden: bool) -> None:
    """A mother files for her son who marries a Korean woman: each field refuses what it
    must, says why, asks again; then the right answer is taken."""
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.send("xin giay xac nhan doc than")
        chat.press("Đồng ý")
        purpose_q = "Bạn cần Giấy xác nhận tình trạng hôn nhân để làm gì?"
        chat.other("sticker")
        refused(chat, "Mình chỉ đọc được chữ", purpose_q, 1)
        chat.send("x" * 5000)
        refused(chat, "tối đa 1000 ký tự", purpose_q, 1)
        assert "Có vẻ câu này khó" not in chat.text
        chat.send("abcxyz")
        refused(chat, "Mình chưa rõ bạn chọn gì", purpose_q, 1)
        # the third failure in a row on one field: the officer is offered
        assert "Có vẻ câu này khó" in chat.text and "👤 Gặp cán bộ" in chat.labels()
        assert draft(store, XN).payload["failures"]["purpose"] == 3
        chat.send("lay chong han quoc")
        stored(chat, "Để đăng ký kết hôn với người nước ngoài")
        assert draft(store, XN).payload["failures"].get("purpose") is None
        chat.send(
            "Kết hôn với chị Kim Ji Won, sinh năm 1995, quốc tịch Hàn Quốc, "
            "hộ chiếu M12345678, tại Hàn Quốc"
        )
        chat.send("muc 2")
        chat.send("toi la me")
        stored(chat, "Mẹ")

        name_q = "Họ và tên đầy đủ của bạn (người đi làm thủ tục) là gì?"
        chat.send("tran thi 2")
        refused(chat, "Họ tên không có chữ số", name_q, 5)
        chat.send("tran thi lan")
        assert "Bạn gõ tên không dấu: Tran Thi Lan." in chat.text
        assert {"Có", "Không"} <= set(chat.labels())
        chat.send("co")  # keeps the name as typed
        stored(chat, "Tran Thi Lan")
        assert answers(store, XN)["requester_full_name"] == "Tran Thi Lan"

        commune_q = "Bạn đang cư trú ở xã/phường nào, tỉnh/thành phố nào?"
        chat.send("xa abcxyz, tinh lam dong")
        refused(chat, "Mình chưa tìm thấy xã, phường này", commune_q, 6)
        chat.send("dong nai")
        refused(chat, "Bạn mới gõ tên tỉnh Đồng Nai", commune_q, 6)
        chat.send("xa tan phu")  # five provinces have a Xã Tân Phú
        assert "Có vài nơi trùng tên" in chat.text
        assert {"Xã Tân Phú, tỉnh Tây Ninh", "Xã Tân Phú, tỉnh Nghệ An"} <= set(chat.labels())
        chat.press("Xã Tân Phú, tỉnh Tây Ninh")
        stored(chat, "Xã Tân Phú, tỉnh Tây Ninh")

        detail_q = "Số nhà, đường, thôn hoặc tổ nơi bạn cư trú?"
        chat.other("sticker")  # a sticker where text is expected
        refused(chat, "Mình chỉ đọc được chữ", detail_q, 7)
        chat.send("khong biet")  # typed skip of an optional field
        asked(chat, "Giấy tờ tùy thân của bạn là loại nào?", 8)
        assert "requester_residence_detail" in draft(store, XN).payload["skipped"]
        chat.send("cccd")

        rid_q = "Số trên giấy tờ tùy thân của bạn là gì?"
        chat.send("999195004321")
        refused(chat, "Số định danh không thể bắt đầu bằng 999", rid_q, 9)
        chat.send("12345")
        refused(chat, "Số định danh có 12 chữ số, bạn đã gõ 5 số", rid_q, 9)
        chat.send("068195004321")
        stored(chat, "068195004321")

        date_q = "Giấy tờ đó được cấp ngày nào?"
        chat.send("31/02/2025")
        refused(chat, "Không có ngày 31 tháng 2", date_q, 10)
        chat.send("1/1/2027")
        refused(chat, "Ngày này chưa tới", date_q, 10)
        chat.send("hom qua")
        refused(chat, "Mình chưa hiểu ngày này", date_q, 10)
        assert "Có vẻ câu này khó" in chat.text
        chat.send("15/8/2024")
        stored(chat, "15/08/2024")
        chat.press("Bộ Công an")

        subj_q = "Họ và tên đầy đủ của người cần giấy là gì?"
        chat.send("nguyen van 2")
        refused(chat, "Họ tên không có chữ số", subj_q, 12)
        chat.send("nguyen van hung")
        assert "Bạn gõ tên không dấu: Nguyen Van Hung." in chat.text
        chat.send("Nguyễn Văn Hùng")  # retyped with diacritics replaces the pending one
        stored(chat, "Nguyễn Văn Hùng")
        assert answers(store, XN)["subject_full_name"] == "Nguyễn Văn Hùng"
        chat.press("Nam")

        birth_q = "Ngày sinh của người cần giấy?"
        chat.send("1/1/2010")  # a man marrying abroad must be 20
        refused(chat, "Người này chưa đủ 20 tuổi", birth_q, 14)
        chat.send("12/3/1990")
        chat.press("Kinh")
        chat.press("Việt Nam")
        chat.send("thuong tru")

        old = "xa mang to, huyen tanh linh, tinh binh thuan"  # a pre-2025 address
        chat.send(old)
        assert (
            "Địa chỉ cũ Xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận nay là "
            "Xã Bắc Ruộng, tỉnh Lâm Đồng. Đúng không?"
        ) in chat.text
        chat.send("ko")
        assert "Bạn gõ lại địa chỉ mới" in chat.text
        assert "subject_residence_commune" not in answers(store, XN)
        chat.send(old)
        chat.press("Có")
        stored(chat, "Xã Bắc Ruộng, tỉnh Lâm Đồng")
        assert shown(store, XN)["subject_residence_commune"] == "Xã Bắc Ruộng, tỉnh Lâm Đồng"
        chat.send("thon 3")
        chat.send("the can cuoc")

        sid_q = "Số trên giấy tờ đó là gì?"
        chat.send("999090012345")
        refused(chat, "Số định danh không thể bắt đầu bằng 999", sid_q, 21)
        chat.send("060190012345")  # 4th digit 1: a woman born in the 1900s
        refused(chat, "không khớp với giới tính đã khai", sid_q, 21)
        chat.send("060095012345")  # born 1995, not 1990
        refused(chat, "là của người sinh năm 1995", sid_q, 21)
        assert "Có vẻ câu này khó" in chat.text
        chat.send("060090012345")
        stored(chat, "060090012345")

        chat.send("1/1/1980")
        refused(chat, "Ngày này phải sau ngày sinh (12/03/1990)", date_q, 22)
        chat.send("15/8/2024")
        chat.press("Bộ Công an")
        chat.send("chua ket hon")
        chat.send("lan dau")

        copies_q = "Bạn cần mấy bản?"
        chat.send("2")  # only one copy for a marriage
        refused(chat, "Số lớn nhất là 1", copies_q, 26)
        chat.send("mot")
        stored(chat, "1")
        chat.send("nhan tai xa")

        phone_q = "Số điện thoại di động để cơ quan nhắn tin về hồ sơ?"
        chat.send("0283 822 1234")
        refused(chat, "Đây là số máy bàn", phone_q, 28)
        chat.send("so dt cua toi")
        refused(chat, "Mình chưa hiểu số điện thoại này", phone_q, 28)
        assert "Có vẻ câu này khó" not in chat.text
        chat.send("0123")
        refused(chat, "Mình chưa hiểu số điện thoại này", phone_q, 28)
        assert "Có vẻ câu này khó" in chat.text
        chat.send("0912 345 678")
        stored(chat, "0912 345 678")

        chat.send("abc@")
        refused(chat, "Địa chỉ email chưa đúng", "thư điện tử", 29)
        chat.send("hung@gmail.com")

        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        assert "Họ, chữ đệm, tên người yêu cầu: Tran Thi Lan" in text
        assert "Số lượng bản: 1" in text
        assert "Số giấy tờ tùy thân: 068195004321" in text
        got = answers(store, XN)
        assert got["copies_count"] == 1 and got["contact_email"] == "hung@gmail.com"
        rejected = [k for k in fact_kinds(store) if k == "AnswerRejected"]
        assert len(rejected) == 23  # one per refusal above
        finish(chat, "xntthn_validation_errors", update_golden)


@needs_old_addresses
def test_ban_sao_every_validation_error(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.send("xin trich luc khai sinh")
        chat.press("Đồng ý")
        doc_q = "Bạn cần bản sao giấy gì?"
        chat.send("kham benh")
        refused(chat, "Mình chưa rõ bạn chọn gì", doc_q, 1)
        chat.send("ban sao")  # fits three choices: pick one
        assert "hợp với nhiều lựa chọn" in chat.text and "nơi" not in chat.text
        chat.press("Giấy khai sinh")
        stored(chat, "Giấy khai sinh")
        chat.send("khong ro")
        assert "hỏi công an xã, phường" in chat.text
        chat.send("tiep tuc")

        chat.send("cho con")  # a father or a mother: asked which
        assert {"Cha", "Mẹ"} <= set(chat.labels())
        chat.press("Mẹ")
        stored(chat, "Mẹ")

        name_q = "Họ và tên đầy đủ của bạn (người đi làm thủ tục) là gì?"
        chat.send("le thi anh")
        assert "Bạn gõ tên không dấu: Le Thi Anh." in chat.text
        chat.press("Không")
        asked(chat, name_q, 5)
        assert "Bạn gõ lại câu trả lời" in chat.text
        assert "requester_full_name" not in answers(store, BS)
        chat.send("Lê Thị Ánh")
        stored(chat, "Lê Thị Ánh")

        chat.send("phu my")  # in four provinces
        assert "Có vài nơi trùng tên" in chat.text
        chat.press("Phường Phú Mỹ, thành phố Hồ Chí Minh")
        stored(chat, "Phường Phú Mỹ, thành phố Hồ Chí Minh")

        detail_q = "Số nhà, đường, thôn hoặc tổ nơi bạn cư trú?"
        chat.send("to 5 " * 1000)
        refused(chat, "tối đa 1000 ký tự", detail_q, 7)
        chat.send("khu pho 3 " * 15)
        refused(chat, "tối đa 120 ký tự", detail_q, 7)
        chat.press("Bỏ qua")
        chat.send("cmnd")
        chat.send("12345678")
        refused(chat, "Số chứng minh nhân dân có 9 hoặc 12 chữ số", "Số trên giấy tờ tùy thân", 9)
        chat.send("123456789")
        stored(chat, "123456789")
        chat.send("20/10/2010")
        chat.send("CA tinh Binh Thuan")

        chat.send("tran gia bao")
        chat.send("Trần Gia Bảo")
        chat.send("trai")
        birth_q = "Ngày sinh của người đó?"
        chat.send("31/02/2019")
        refused(chat, "Không có ngày 31 tháng 2", birth_q, 14)
        chat.send("1/1/2030")
        refused(chat, "Ngày này chưa tới", birth_q, 14)
        chat.send("muoi lam thang ba")
        refused(chat, "Mình chưa hiểu ngày này", birth_q, 14)
        chat.send("3/2019")
        refused(chat, "Hãy gõ đủ ngày, tháng và năm", birth_q, 14)
        chat.send("15/3/2019")
        chat.press("Bỏ qua")  # ethnicity is optional here
        chat.send("viet nam")
        stored(chat, "Việt Nam")

        chat.send("xa abc")
        refused(chat, "Mình chưa tìm thấy xã, phường này", "đang cư trú ở xã/phường nào", 17)
        chat.send("xa mang to, huyen tanh linh, tinh binh thuan")
        assert "nay là Xã Bắc Ruộng, tỉnh Lâm Đồng. Đúng không?" in chat.text
        chat.send("dung roi")
        stored(chat, "Xã Bắc Ruộng, tỉnh Lâm Đồng")
        chat.press("Bỏ qua")
        chat.send("the can cuoc")

        sid_q = "Số trên giấy tờ đó là gì?"
        chat.send("999219001234")
        refused(chat, "không thể bắt đầu bằng 999", sid_q, 20)
        chat.send("060319001234")  # 4th digit 3: a girl born in the 2000s
        refused(chat, "không khớp với giới tính đã khai", sid_q, 20)
        chat.send("079019001234")  # 4th digit 0: born 1919
        refused(chat, "là của người sinh năm 1919", sid_q, 20)
        chat.send("060219001234")
        stored(chat, "060219001234")
        chat.send("1/1/2018")
        refused(chat, "Ngày này phải sau ngày sinh (15/03/2019)", "được cấp ngày nào", 21)
        chat.send("20/5/2024")
        chat.press("Bộ Công an")

        chat.send("khong nho")  # the place of registration is forgotten: skipped
        assert "registered_at" in draft(store, BS).payload["skipped"]
        asked(chat, "Ngày đăng ký ghi trên giấy cũ là ngày nào?", 24)
        chat.send("2019")  # a year alone is enough here
        stored(chat, "2019")
        chat.press("Bỏ qua")
        chat.press("Bỏ qua")

        copies_q = "Bạn cần mấy bản sao?"
        chat.send("0")
        refused(chat, "Số nhỏ nhất là 1", copies_q, 27)
        chat.send("11")
        refused(chat, "Số lớn nhất là 10", copies_q, 27)
        chat.send("hai")
        stored(chat, "2")
        chat.send("online")
        stored(chat, "Nhận kết quả trực tuyến")

        phone_q = "Số điện thoại di động để cơ quan liên hệ về hồ sơ?"
        chat.send("+1 415 555 0100")
        refused(chat, "Đây là số nước ngoài", phone_q, 29)
        chat.send("0123 456 7890")
        refused(chat, "Số 11 số đã được đổi sang 10 số", phone_q, 29)
        chat.send("097 845 6123")
        chat.press("Bỏ qua")

        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        assert "Đã đăng ký tại: (bỏ trống)" in text and "Ngày đăng ký: 2019" in text
        chat.press("Xác nhận")
        pdf = the_pdf(chat)
        assert "Kính gửi: Ủy ban nhân dân xã Bắc Ruộng, tỉnh Lâm Đồng" in pdf
        assert "Thẻ căn cước số 060219001234, cấp ngày 20/05/2024" in pdf
        assert "Chứng minh nhân dân số 123456789" in pdf
        assert "năm 2019" in pdf and "ngày 2019" not in pdf
        # no place of registration: the bot says it suggests the place of residence
        assert "(nơi cư trú, vì bạn không nhớ nơi đăng ký)" in chat.text
        finish(chat, "ban_sao_validation_errors", update_golden)


# ===================================================================== 3. navigation


def test_xntthn_back_skip_help_documents_pause(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.press("Giấy xác nhận tình trạng hôn nhân")
        chat.press("Quay lại")
        assert "Đây là câu hỏi đầu tiên rồi." in chat.text
        asked(chat, "để làm gì?", 1)
        chat.press("Hướng dẫn")
        assert "❓ Hướng dẫn" in chat.text and "Giấy chỉ dùng được cho đúng mục đích" in chat.text
        asked(chat, "để làm gì?", 1)
        chat.send("ban dat")
        stored(chat, "Để làm thủ tục mua bán, chuyển nhượng, thế chấp nhà đất")
        chat.send("muc 2")
        chat.send("ban than")
        chat.send("Nguyễn Văn Hùng")
        chat.press("Nữ")  # a slip of the thumb
        asked(chat, "Ngày sinh của bạn?", 6)
        chat.press("Quay lại")
        asked(chat, "Giới tính của bạn?", 5)
        assert "Câu trả lời hiện tại: Nữ" in chat.text
        chat.press("Nam")
        asked(chat, "Ngày sinh của bạn?", 6)  # the name is not asked again
        chat.send("12/3/1990")
        asked(chat, "Dân tộc của bạn?", 7)
        chat.send("quay lai")
        asked(chat, "Ngày sinh của bạn?", 6)
        assert "Câu trả lời hiện tại: 12/03/1990" in chat.text
        chat.send("tro lai")
        asked(chat, "Giới tính của bạn?", 5)
        chat.send("quay lai")
        asked(chat, "Họ và tên đầy đủ của bạn là gì?", 4)
        assert "Câu trả lời hiện tại: Nguyễn Văn Hùng" in chat.text
        chat.send("Nguyễn Văn Hưng")  # answered again: on to the first unanswered question
        stored(chat, "Nguyễn Văn Hưng")
        asked(chat, "Dân tộc của bạn?", 7)
        got = answers(store, XN)
        assert got["subject_full_name"] == "Nguyễn Văn Hưng"
        assert (got["subject_gender"], got["subject_birth_date"]) == ("male", "1990-03-12")

        chat.send("bo qua")  # a required field cannot be skipped
        refused(chat, "Câu này cần có câu trả lời", "Dân tộc của bạn?", 7)
        assert "⏭ Bỏ qua" not in chat.labels()
        chat.send("Kinh")
        chat.press("Việt Nam")
        chat.press("Có thường trú")
        chat.send("bac ruong lam dong")
        asked(chat, "Số nhà, đường, thôn hoặc tổ", 11)
        chat.press("Bỏ qua")  # optional
        asked(chat, "Giấy tờ tùy thân của bạn là loại nào?", 12)
        assert "subject_residence_detail" in draft(store, XN).payload["skipped"]
        chat.send("huong dan")
        assert "Thẻ do Bộ Công an cấp từ 01/07/2024" in chat.text
        asked(chat, "Giấy tờ tùy thân của bạn là loại nào?", 12)
        chat.press("Thêm")
        assert {"📄 Giấy tờ cần có", "💾 Lưu và thoát", "✖️ Hủy hồ sơ"} <= set(chat.labels())
        chat.press("Giấy tờ cần có")
        assert "📄 Giấy tờ cần có (Giấy xác nhận tình trạng hôn nhân)" in chat.text
        assert "Tờ khai cấp Giấy xác nhận tình trạng hôn nhân." in chat.text
        asked(chat, "Giấy tờ tùy thân của bạn là loại nào?", 12)
        chat.press("Thêm")
        chat.press("Lưu và thoát")
        assert "💾 Đã lưu hồ sơ Giấy xác nhận tình trạng hôn nhân" in chat.text
        assert "Paused" in fact_kinds(store)
        chat.cmd("start")
        assert "Bạn đang làm dở: Giấy xác nhận tình trạng hôn nhân (cho Nguyễn Văn Hưng)" in (
            chat.text
        )
        chat.press("Tiếp tục hồ sơ")
        asked(chat, "Giấy tờ tùy thân của bạn là loại nào?", 12)
        finish(chat, "xntthn_navigation", update_golden)


def test_ban_sao_back_skip_help_documents_pause(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.send("sao luc giay khai sinh")
        chat.press("Đồng ý")
        asked(chat, "Bạn cần bản sao giấy gì?", 1)
        chat.press("Bản sao giấy khai sinh")
        chat.press("Có, mức 2")
        chat.press("Bản thân")
        name_q = "Họ và tên đầy đủ của bạn, như trên giấy cũ?"
        asked(chat, name_q, 4)
        chat.send("bo qua")
        refused(chat, "Câu này cần có câu trả lời", name_q, 4)
        chat.send("Trần Thị Mai")
        chat.press("Nữ")
        chat.send("1996")  # a year alone for the birth date of a living adult
        stored(chat, "1996")
        asked(chat, "Dân tộc của bạn?", 7)
        chat.press("Bỏ qua")
        asked(chat, "Quốc tịch của bạn?", 8)
        chat.press("Quay lại")
        asked(chat, "Dân tộc của bạn?", 7)
        assert "Câu trả lời hiện tại" not in chat.text  # skipped, nothing to show
        chat.send("quay lai")
        asked(chat, "Ngày sinh của bạn?", 6)
        chat.send("20/5/1996")
        stored(chat, "20/05/1996")
        asked(chat, "Quốc tịch của bạn?", 8)  # the skipped question stays skipped
        chat.press("Việt Nam")
        chat.send("di an, ho chi minh")
        chat.press("Bỏ qua")
        chat.press("Bỏ qua")  # no ID card given: its number is not asked
        asked(chat, "Việc khai sinh đã được đăng ký ở xã/phường nào?", 12)
        assert step(chat)[1] == 19
        chat.press("Hướng dẫn")
        assert "Xem tên Ủy ban nhân dân đã đóng dấu trên giấy cũ" in chat.text
        asked(chat, "Việc khai sinh đã được đăng ký ở xã/phường nào?", 12)
        chat.send("giay to can co")  # typed, like the "Giấy tờ cần có" button
        assert "📄 Giấy tờ cần có (Bản sao giấy khai sinh)" in chat.text
        assert "Giấy tờ hộ tịch cũ nếu còn" in chat.text
        asked(chat, "Việc khai sinh đã được đăng ký ở xã/phường nào?", 12)
        chat.press("Thêm")
        chat.press("Lưu và thoát")
        assert "💾 Đã lưu hồ sơ Bản sao giấy khai sinh" in chat.text
        chat.press("Tiếp tục hồ sơ")
        asked(chat, "Việc khai sinh đã được đăng ký ở xã/phường nào?", 12)
        got = answers(store, BS)
        assert got["subject_birth_date"] == "1996-05-20"
        assert "subject_ethnicity" not in got
        assert set(draft(store, BS).payload["skipped"]) == {
            "subject_ethnicity",
            "subject_residence_detail",
            "subject_id_type",
        }
        finish(chat, "ban_sao_navigation", update_golden)


# ===================================================================== 4. edit from review


def test_xntthn_edit_from_review(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        play(chat, XN_TO_REVIEW)
        chat.transcript = []
        note(chat, "answers as in xntthn_happy_path, up to the review")
        total = review_line(chat, "Thư điện tử")
        status_n = review_line(chat, "Tình trạng hôn nhân")
        chat.press_token("e:marital_status")
        asked(chat, "Hiện nay tình trạng hôn nhân của bạn thế nào?", status_n)
        assert "Câu trả lời hiện tại: Hiện tại chưa đăng ký kết hôn với ai" in chat.text
        chat.send("ly hon")  # opens three questions about the divorce
        asked(chat, "Số của bản án hoặc quyết định ly hôn?", status_n + 1)
        assert step(chat)[1] == total + 3
        chat.send("25/2021/QĐST-HNGĐ")
        chat.send("18/6/2021")
        chat.send("TAND huyen Tanh Linh, tinh Binh Thuan")
        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text  # straight back to the review
        assert "Số bản án/quyết định ly hôn: 25/2021/QĐST-HNGĐ" in text
        assert "Ngày của bản án/quyết định ly hôn: 18/06/2021" in text

        chat.press_token("e:marital_status")
        chat.send("vo mat")  # now widowed: the divorce answers leave the review
        asked(chat, "Số Giấy chứng tử hoặc Trích lục khai tử của vợ đã mất?")
        chat.send("12")
        chat.send("3/9/2020")
        chat.send("UBND xa Mang To")
        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        assert (
            "Tình trạng hôn nhân: Đã đăng ký kết hôn hoặc đã có vợ/chồng nhưng vợ/chồng đã chết"
            in (text)
        )
        assert "Số bản án" not in text and "Số giấy chứng tử/trích lục khai tử: 12" in text

        phone_n = review_line(chat, "Số điện thoại")
        chat.send(f"sua {phone_n}")  # typed edit of a simple field
        asked(chat, "Số điện thoại di động", phone_n)
        assert "Câu trả lời hiện tại: 0912 345 678" in chat.text
        chat.send("0987654321")
        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text and "Bước" not in text  # no other question
        assert "Số điện thoại: 0987 654 321" in text

        chat.press("Xác nhận")
        pdf = the_pdf(chat)
        assert "nhưng vợ đã chết (Giấy chứng tử/Trích lục khai tử số 12" in pdf
        assert "25/2021" not in pdf
        checklist = chat.text
        assert "Giấy chứng tử hoặc Trích lục khai tử" in checklist
        assert "quyết định ly hôn" not in checklist
        assert "Tải lên ảnh chụp giấy chứng tử" in checklist  # portal step 8
        assert answers(store, XN)["contact_phone"] == "0987654321"
        finish(chat, "xntthn_edit_from_review", update_golden)


def test_ban_sao_edit_from_review(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        play(chat, BS_SELF_TO_REVIEW)
        chat.transcript = []
        note(chat, "a copy of one's own birth certificate, up to the review")
        assert "NGƯỜI YÊU CẦU\n3. Quan hệ với người được cấp: Bản thân\n\nNGƯỜI" in chat.text
        rel_n = review_line(chat, "Quan hệ với người được cấp")
        chat.send(str(rel_n))  # the line number alone edits it
        asked(chat, "Bạn xin bản sao của chính mình hay của người khác?", rel_n)
        chat.press("Anh, chị, em ruột")  # opens the requester block: 7 questions
        asked(chat, "Họ và tên đầy đủ của bạn (người đi làm thủ tục) là gì?", rel_n + 1)
        chat.send("Trần Văn Nam")
        chat.send("bac ruong lam dong")
        chat.press("Bỏ qua")
        chat.press("Thẻ căn cước")
        chat.send("060092001122")
        chat.send("2/1/2025")
        chat.press("Bộ Công an")
        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text
        assert "Họ, chữ đệm, tên người yêu cầu: Trần Văn Nam" in text
        assert "Quan hệ với người được cấp: Anh/chị/em ruột" in text

        chat.press_token("e:requester_relationship")
        chat.press("Bản thân")  # back to oneself: the requester block leaves the review
        text = chat.text
        assert "XEM LẠI TỜ KHAI" in text and "Trần Văn Nam" not in text
        assert "người yêu cầu" not in text

        phone_n = review_line(chat, "Số điện thoại")
        chat.press_token("e:contact_phone")
        asked(chat, "Số điện thoại di động để cơ quan liên hệ về hồ sơ?", phone_n)
        chat.send("0333 222 111")
        assert "XEM LẠI TỜ KHAI" in chat.text and "Số điện thoại: 0333 222 111" in chat.text
        chat.press("Xác nhận")
        pdf = the_pdf(chat)
        assert "Họ, chữ đệm, tên người yêu cầu: Trần Thị Mai" in pdf
        assert "Trần Văn Nam" not in pdf and "ủy quyền" not in chat.text
        finish(chat, "ban_sao_edit_from_review", update_golden)


# ===================================================================== 5. resume, drafts


def test_resume_after_restart_and_two_drafts(update_golden: bool) -> None:
    clock = Clock()
    with open_chat("sqlite", clock) as (chat, store):
        chat.cmd("start")
        chat.send("giay xac nhan tinh trang hon nhan")
        chat.press("Đồng ý")
        chat.send("vay")
        chat.press("Có, mức 2")
        chat.send("ban than")
        chat.send("Nguyễn Văn Hùng")
        chat.press("Nam")
        asked(chat, "Ngày sinh của bạn?", 6)

        # the process stops; a new one opens the same database file
        note(chat, "restart: a new Store and ConversationService on the same database file")
        url = store.engine.url.render_as_string(hide_password=False)
        restarted = Store(url)
        try:
            clock.advance(days=2)
            chat.service = ConversationService(
                restarted, load_catalog(), clock=clock, raise_errors=True
            )
            chat.cmd("start")
            assert "Chào bạn quay lại! Bạn đang làm dở: Giấy xác nhận tình trạng hôn nhân" in (
                chat.text
            )
            assert "(cho Nguyễn Văn Hùng)" in chat.text
            chat.press("Tiếp tục hồ sơ")
            asked(chat, "Ngày sinh của bạn?", 6)
            chat.send("12/3/1990")
            asked(chat, "Dân tộc của bạn?", 7)
            got = answers(store, XN)
            assert got["purpose"] == "bank_loan" and got["subject_gender"] == "male"
            assert got["subject_full_name"] == "Nguyễn Văn Hùng"

            # a second draft, for the other procedure
            chat.cmd("hoso")
            chat.press("Bản sao giấy khai sinh")
            chat.press("Bản sao giấy khai sinh")
            chat.press("Có, mức 2")
            chat.send("ban than")
            chat.send("Trần Thị Mai")
            asked(chat, "Giới tính của bạn?")

            clock.advance(hours=1)
            chat.cmd("hoso")
            text = chat.text
            assert "1. Bản sao giấy khai sinh – Trần Thị Mai" in text
            assert "2. Giấy xác nhận tình trạng hôn nhân – Nguyễn Văn Hùng" in text
            assert text.count("Đang làm (đang trả lời câu hỏi)") == 2
            chat.press(f"Tiếp tục {listed(chat, 'Giấy xác nhận tình trạng hôn nhân')}")
            asked(chat, "Dân tộc của bạn?", 7)

            chat.cmd("hoso")
            n = listed(chat, "Bản sao giấy khai sinh")
            chat.press(f"Xóa {n}")
            assert "Xóa hẳn hồ sơ Bản sao giấy khai sinh (Trần Thị Mai)?" in chat.text
            chat.press("Không, giữ lại")
            assert "Trần Thị Mai" in chat.text and len(drafts(store)) == 2
            chat.press(f"Xóa {listed(chat, 'Bản sao giấy khai sinh')}")
            chat.press("🗑 Xóa")
            text = chat.text
            assert "Đã xóa hồ sơ" in text
            assert "Trần Thị Mai" not in text and "1. Giấy xác nhận tình trạng hôn nhân" in text
            assert [d.procedure_id for d in drafts(store)] == [XN]
            chat.press("Tiếp tục 1")
            asked(chat, "Dân tộc của bạn?", 7)
            chat.send("Kinh")
            assert answers(store, XN)["subject_ethnicity"] == "Kinh"
        finally:
            restarted.dispose()
        finish(chat, "resume_after_restart_and_drafts", update_golden)


# ===================================================================== 6. cancel


@pytest.mark.parametrize(
    ("proc", "typed_name", "first_answer", "golden"),
    [
        (XN, "lam giay doc than", "vay ngan hang", "xntthn_cancel"),
        (BS, "xin ban sao giay khai sinh", "khai sinh", "ban_sao_cancel"),
    ],
)
def test_cancel(proc: str, typed_name: str, first_answer: str, golden: str, update_golden):
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.send(typed_name)
        chat.press("Đồng ý")
        chat.send(first_answer)
        asked(chat, "tài khoản VNeID", 2)
        chat.cmd("huy")
        assert "Bạn muốn hủy hồ sơ" in chat.text
        assert {"Có, hủy hồ sơ", "Không, giữ lại"} <= set(chat.labels())
        chat.press("Không, giữ lại")
        asked(chat, "tài khoản VNeID", 2)
        chat.send("huy ho so")  # typed
        assert "Bạn muốn hủy hồ sơ" in chat.text
        chat.send("ko")
        asked(chat, "tài khoản VNeID", 2)
        assert draft(store, proc).status == "active"
        chat.press("Thêm")
        chat.press("Hủy hồ sơ")
        chat.press("Có, hủy hồ sơ")
        assert "Đã hủy hồ sơ" in chat.text
        assert "Bạn cần làm thủ tục nào?" in chat.text  # the main menu, with its buttons
        assert "📂 Hồ sơ của tôi" in chat.labels()
        assert draft(store, proc).status == "cancelled"
        assert "DraftCancelled" in fact_kinds(store)
        chat.send("alo")  # a greeting: the menu, never silence
        assert "Chào bạn" in chat.text and chat.labels()
        chat.send("co")
        assert "Mình chưa hiểu ý bạn." in chat.text
        chat.cmd("huy")
        assert "Bạn cần làm thủ tục nào?" in chat.text
        chat.cmd("hoso")
        assert "Bạn chưa có hồ sơ nào." in chat.text
        finish(chat, golden, update_golden)


# ===================================================================== 7. XNTTHN only


def test_xntthn_marriage_exit_vneid_and_officer(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.send("giay chung nhan doc than")
        chat.press("Đồng ý")
        chat.send("dang ky ket hon o viet nam")
        text = chat.text
        assert "09/01/2025" in text and "Nghị định 07/2025/NĐ-CP" in text
        assert "bạn không cần Giấy xác nhận tình trạng hôn nhân nữa" in text
        assert "Bạn làm thẳng thủ tục đăng ký kết hôn" in text
        assert "↩️ Chọn lại" in chat.labels()
        assert draft(store, XN).status == "exited" and "ExitTaken" in fact_kinds(store)
        chat.press("Chọn lại")
        asked(chat, "Bạn cần Giấy xác nhận tình trạng hôn nhân để làm gì?", 1)
        assert draft(store, XN).status == "active"
        assert "purpose" not in answers(store, XN)
        chat.send("the chap")
        stored(chat, "Để làm thủ tục mua bán, chuyển nhượng, thế chấp nhà đất")

        chat.send("chua co")
        text = chat.text
        asked(chat, "Bạn cần tài khoản VNeID để nộp trực tuyến.", 3)
        assert "Cài ứng dụng VNeID" in text and "công an xã, phường bất kỳ" in text
        assert "không quá 3 ngày làm việc" in text
        assert {"Tiếp tục chuẩn bị tờ khai, nộp sau", "Nhờ cán bộ hướng dẫn"} <= set(chat.labels())
        assert open_handoffs(store) == []
        chat.press("Nhờ cán bộ hướng dẫn")
        assert "Đã ghi nhận: bạn muốn gặp cán bộ xã" in chat.text
        asked(chat, "Bạn cần tài khoản VNeID để nộp trực tuyến.", 3)  # still here
        (handoff,) = open_handoffs(store)
        assert handoff["reason"] == "asked_vneid_next"
        assert handoff["draft_id"] == draft(store, XN).id
        assert "HandoffRequested" in fact_kinds(store)
        assert "vneid_next" not in answers(store, XN)
        chat.press("Tiếp tục chuẩn bị tờ khai, nộp sau")
        asked(chat, "Bạn xin giấy này cho chính mình hay cho người khác?", 4)
        assert answers(store, XN)["vneid_next"] == "continue"

        chat.cmd("canbo")  # the command, anywhere
        assert "Đã ghi nhận" in chat.text
        asked(chat, "Bạn xin giấy này cho chính mình hay cho người khác?", 4)
        assert [h["reason"] for h in open_handoffs(store)] == ["asked_vneid_next", "asked"]
        finish(chat, "xntthn_exit_vneid_officer", update_golden)


# ===================================================================== 8. extract only


@needs_old_addresses
def test_ban_sao_first_birth_exit_and_death_extract(update_golden: bool) -> None:
    with open_chat() as (chat, store):
        chat.cmd("start")
        chat.press("Bản sao giấy khai sinh")
        chat.send("khai sinh cho con")  # never registered: the wrong procedure
        text = chat.text
        assert "Đăng ký khai sinh (mã 1.001193)" in text
        assert "không phải thủ tục xin bản sao này" in text
        assert draft(store, BS).status == "exited"
        chat.press("Thủ tục khác")
        assert "Bạn cần làm thủ tục nào?" in chat.text
        chat.cmd("hoso")
        assert "Không cần làm thủ tục này" in chat.text

        # the father died in 2020, born in 1928 by the old book
        chat.send("xin ban sao trich luc khai tu cua bo")
        assert "BẢN SAO GIẤY KHAI SINH" in chat.text
        chat.send("trich luc khai tu")
        stored(chat, "Trích lục khai tử")
        chat.press("Có, mức 2")
        asked(chat, "Bạn là gì của người đã mất?", 3)
        chat.send("con trai")
        stored(chat, "Con")
        chat.send("Nguyễn Văn Tư")
        chat.send("bac ruong, lam dong")
        chat.press("Bỏ qua")
        chat.send("cccd")
        chat.send("060090012345")
        chat.send("15/8/2024")
        chat.press("Bộ Công an")
        asked(chat, "Họ và tên đầy đủ của người đã mất?", 11)
        chat.send("Nguyễn Văn Sáu")
        chat.press("Nam")
        chat.send("3/1928")
        refused(chat, "Hãy gõ đủ ngày, tháng và năm", "Ngày sinh của người đó?", 13)
        chat.send("1928")
        stored(chat, "1928")
        assert answers(store, BS)["subject_birth_date"] == "1928"
        chat.press("Bỏ qua")
        chat.press("Bỏ qua")
        asked(chat, "Nơi cư trú cuối cùng của người đã mất", 16)
        chat.send("xa mang to huyen tanh linh binh thuan")
        chat.press("Có")
        chat.press("Bỏ qua")
        chat.press("Bỏ qua")
        asked(chat, "Việc khai tử đã được đăng ký ở xã/phường nào?", 19)
        chat.send("xa bac ruong tinh lam dong")
        chat.send("2020")
        chat.press("Bỏ qua")
        chat.press("Bỏ qua")
        chat.press("1")
        chat.send("buu dien")
        chat.send("0912345678")
        chat.press("Bỏ qua")
        text = chat.text
        assert "Giấy đề nghị cấp bản sao: Trích lục khai tử" in text
        assert "Ngày, tháng, năm sinh: 1928" in text
        chat.press("Xác nhận")
        pdf = the_pdf(chat)
        assert "Đề nghị cấp bản sao Trích lục khai tử" in pdf
        assert "Ngày, tháng, năm sinh: 1928" in pdf
        assert "Quan hệ với người được cấp bản sao Trích lục hộ tịch: Con" in pdf
        assert "Ủy ban nhân dân xã Bắc Ruộng, tỉnh Lâm Đồng, năm 2020" in pdf
        text = chat.text
        assert "Xin bản sao trích lục khai tử của người thân" in text
        assert "Văn bản ủy quyền" not in text
        # the checklist lists one document per line
        bullets = [ln for ln in text.splitlines() if ln.startswith("• ")]
        assert all(ln.count("•") == 1 for ln in bullets)
        finish(chat, "ban_sao_first_birth_exit_and_death_extract", update_golden)


# ===================================================================== bugs found while writing these (fixed)


def _xn_at_ethnicity(chat: Chat) -> None:
    act(chat, XN_TO_REVIEW[:9])
    asked(chat, "Dân tộc của bạn?", 7)


def test_text_after_the_drafts_list_is_not_stored_as_an_answer() -> None:
    with open_chat() as (chat, store):
        _xn_at_ethnicity(chat)
        chat.cmd("hoso")
        chat.send("hello")
        check_limits(chat)
        assert "subject_ethnicity" not in answers(store, XN)


def test_text_after_the_resume_offer_is_not_stored_as_an_answer() -> None:
    with open_chat() as (chat, store):
        _xn_at_ethnicity(chat)
        chat.cmd("start")
        assert "Tiếp tục hồ sơ" in chat.text
        chat.send("lam giay doc than")
        check_limits(chat)
        assert "subject_ethnicity" not in answers(store, XN)


def test_greeting_after_save_and_exit_is_not_stored_as_an_answer() -> None:
    with open_chat() as (chat, store):
        _xn_at_ethnicity(chat)
        chat.press("Thêm")
        chat.press("Lưu và thoát")
        chat.send("alo")
        check_limits(chat)
        assert "subject_ethnicity" not in answers(store, XN)


def test_edit_purpose_to_marriage_abroad_rechecks_the_copies() -> None:
    with open_chat() as (chat, store):
        play(chat, XN_TO_REVIEW)
        assert "Số lượng bản: 2" in chat.text
        chat.press_token("e:purpose")
        chat.press("Kết hôn với người nước ngoài")
        chat.send("Kết hôn với chị Kim Ji Won, quốc tịch Hàn Quốc, tại Hàn Quốc")
        check_limits(chat)
        assert "Số lượng bản: 2" not in chat.text
        assert answers(store, XN).get("copies_count") != 2


def test_edit_gender_rechecks_the_id_number() -> None:
    with open_chat() as (chat, _store):
        play(chat, XN_TO_REVIEW)
        chat.press_token("e:subject_gender")
        chat.press("Nữ")
        check_limits(chat)
        assert not (
            "XEM LẠI TỜ KHAI" in chat.text and "Số giấy tờ tùy thân: 060090012345" in chat.text
        )


def test_typed_province_picks_among_the_communes_offered() -> None:
    with open_chat() as (chat, store):
        act(chat, XN_TO_REVIEW[:12])
        asked(chat, "Nơi thường trú của bạn ở xã/phường nào", 10)
        chat.send("xa tan phu")
        assert "Xã Tân Phú, tỉnh Tây Ninh" in chat.labels()
        chat.send("tay ninh")
        check_limits(chat)
        assert shown(store, XN).get("subject_residence_commune") == "Xã Tân Phú, tỉnh Tây Ninh"

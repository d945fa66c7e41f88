"""Questions and requests typed in the middle of a form: answered from the procedure's
own facts, then the same question again; the place is never lost, nothing is stored."""

from __future__ import annotations

from flows.service import ConversationService
from procedures.loader import load_catalog
from tests.conftest import make_store
from tests.harness import Chat, Clock


def test_questions_mid_form_are_answered_and_the_form_goes_on() -> None:
    with make_store("sqlite") as store:
        chat = Chat(ConversationService(store, load_catalog(), clock=Clock(), raise_errors=True))
        chat.send("toi muon lam giay doc than de vay ngan hang")
        assert "✅ Đồng ý" in chat.labels()  # first contact: the consent notice (flows/privacy.py)
        chat.press("Đồng ý")
        assert "Bước 1/" in chat.text
        chat.press("Vay vốn ngân hàng")
        chat.press("Có, mức 2")
        chat.press("Bản thân")
        assert "Họ và tên" in chat.text
        chat.send("bao nhieu tien vay")  # a question typed where a name is asked
        assert "Nghị quyết 66.22/2026" in chat.text or "lệ phí" in chat.text.lower()
        assert "Họ và tên" in chat.text  # asked again
        chat.send("mat may ngay thi co giay")
        assert "03 ngày làm việc" in chat.text and "Họ và tên" in chat.text
        chat.send("toi di lam o binh duong co lam duoc khong")
        assert "Họ và tên" in chat.text
        chat.send("Nguyễn Văn Hùng")
        assert "Đã lưu: Nguyễn Văn Hùng" in chat.text
        chat.send("gap can bo")
        assert "Đã ghi nhận" in chat.text
        with store.unit_of_work() as uow:
            citizen = uow.citizen("test", "1001")
            (draft,) = uow.drafts_of(citizen.id)
            assert draft.payload["answers"]["subject_full_name"] == "Nguyễn Văn Hùng"
            kinds = [f.kind for f in uow.facts(citizen_id=citizen.id)]
        assert kinds.count("QuestionAnswered") >= 2
        assert all(len(r.text) <= 4096 for r in chat.history)


def test_unknown_messages_at_the_menu_are_recorded_redacted() -> None:
    with make_store("sqlite") as store:
        chat = Chat(ConversationService(store, load_catalog(), clock=Clock(), raise_errors=True))
        chat.send("cai may giat bi hong")
        assert chat.text and chat.labels()
        with store.unit_of_work() as uow:  # before consent nothing is recorded
            assert uow.facts(kind="UnknownMessage") == []
        chat.send("toi muon lam giay doc than")
        chat.press("Đồng ý")
        chat.cmd("huy")
        chat.press("Có, hủy hồ sơ")
        chat.send("cai may giat bi hong, sdt 0912345678, cccd 060090012345")
        assert chat.text and chat.labels()
        with store.unit_of_work() as uow:
            citizen = uow.citizen("test", "1001")
            texts = [
                f.data["text"] for f in uow.facts(citizen_id=citizen.id, kind="UnknownMessage")
            ]
        assert texts, "unknown message not recorded"
        assert "0912345678" not in texts[0] and "060090012345" not in texts[0]

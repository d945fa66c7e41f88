"""The conversation service over a real database (SQLite and PostgreSQL): commits before
replies, drafts survive procedure changes, strangers learn nothing, data can be erased."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.service import ConversationService
from procedures.loader import load_catalog
from tests.harness import Chat, Clock

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_permit"


def tiny_catalog(root: Path, rename: bool = False):
    target = root / "tiny_permit"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(FIXTURE, target)
    if rename:
        path = target / "procedure.yaml"
        text = path.read_text(encoding="utf-8")
        text = text.replace("version: 1", "version: 2", 1)
        text = text.replace(
            "  - id: owner_name\n", "  - id: full_name\n    formerly: [owner_name]\n"
        )
        text = text.replace("shown.owner_name", "shown.full_name")
        path.write_text(text, encoding="utf-8")
    return load_catalog([root], include_builtin=False)


def service(store, catalog, clock=None) -> ConversationService:
    return ConversationService(store, catalog, clock=clock or Clock(), raise_errors=True)


def draft_payloads(store) -> list[dict]:
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", "1001")
        return [d.payload for d in uow.drafts_of(citizen.id)]


def test_every_accepted_answer_is_committed_before_the_reply(store, tmp_path: Path) -> None:
    chat = Chat(service(store, tiny_catalog(tmp_path)))
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)
    chat.press("Chó")
    chat.send("Trần Thị Bình")
    # a fresh unit of work (as another process would) sees the answers already
    (payload,) = draft_payloads(store)
    assert payload["answers"]["animal"] == "dog"
    assert payload["answers"]["owner_name"] == "Trần Thị Bình"
    chat.send("30/02/1990")  # refused: nothing stored for the birth date
    (payload,) = draft_payloads(store)
    assert "owner_birth" not in payload["answers"]
    assert payload["failures"]["owner_birth"] == 1


def test_renamed_field_keeps_old_drafts_working(store, tmp_path: Path) -> None:
    chat = Chat(service(store, tiny_catalog(tmp_path)))
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")
    chat.press("Chó")
    chat.send("Trần Thị Bình")
    # the procedure changes: owner_name becomes full_name (formerly: [owner_name]), version 2
    chat2 = Chat(service(store, tiny_catalog(tmp_path, rename=True)))
    chat2.cmd("start")
    chat2.press("Tiếp tục hồ sơ")
    assert "Bạn sinh ngày nào?" in chat2.text  # not asked for the name again
    for text in ("5/6/1988", "khong", "1"):
        chat2.send(text)
    chat2.press("Bỏ qua")
    assert "Họ tên chủ nuôi: Trần Thị Bình" in chat2.text
    (payload,) = draft_payloads(store)
    assert payload["pv"] == 2 and payload["answers"]["full_name"] == "Trần Thị Bình"


def test_a_stranger_pressing_someone_elses_button_learns_nothing(store, tmp_path: Path) -> None:
    catalog = tiny_catalog(tmp_path)
    svc = service(store, catalog)
    owner = Chat(svc, user="1001")
    owner.cmd("start", "tiny_permit")
    owner.press("Đồng ý")
    owner.press("Chó")
    owner.send("Trần Thị Bình")
    button = owner.button("Quay lại").data
    stranger = Chat(svc, user="2002", name="Mallory")
    stranger.press_data(button)
    everything = "\n".join(r.text for r in stranger.history)
    assert "Trần Thị Bình" not in everything
    assert "Bạn cần làm thủ tục nào" in everything or "Nút này đã cũ" in everything
    # and the owner's draft did not move
    (payload,) = draft_payloads(store)
    assert payload["answers"]["owner_name"] == "Trần Thị Bình"


def test_junk_deep_link_and_unknown_command_get_the_menu(store, tmp_path: Path) -> None:
    chat = Chat(service(store, tiny_catalog(tmp_path)))
    chat.cmd("start", "../../etc/passwd")
    assert "Bạn cần làm thủ tục nào" in chat.text
    chat.cmd("abcxyz")
    assert "/abcxyz" in chat.text and chat.labels()
    chat.other("voice")
    assert chat.text and chat.labels()


def test_erase_all_my_data(store, tmp_path: Path) -> None:
    chat = Chat(service(store, tiny_catalog(tmp_path)))
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")
    chat.press("Chó")
    chat.send("Trần Thị Bình")
    chat.cmd("xoadulieu")
    chat.press("Không, giữ lại")
    assert draft_payloads(store)
    chat.cmd("xoadulieu")
    chat.press("Có, xóa hết")
    assert "Đã xóa toàn bộ dữ liệu" in chat.text
    with store.unit_of_work() as uow:
        assert uow.citizen("test", "1001") is None
    chat.cmd("start")  # a new beginning, nothing remembered
    assert "Xin chào" in chat.text


def test_several_drafts_one_per_procedure_and_person(store, tmp_path: Path) -> None:
    chat = Chat(service(store, tiny_catalog(tmp_path)))
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")
    chat.press("Chó")
    chat.send("Trần Thị Bình")
    chat.cmd("start", "tiny_permit")  # same procedure again: continue or a new one
    assert "đang làm dở" in chat.text
    chat.press("Làm hồ sơ mới")
    assert "Bạn nuôi con gì?" in chat.text
    chat.press("Chó")
    chat.send("Lê Văn Tám")
    chat.cmd("hoso")
    assert "Trần Thị Bình" in chat.text and "Lê Văn Tám" in chat.text
    chat.press("Xóa 2")
    assert "Xóa hẳn hồ sơ" in chat.text
    chat.press("Xóa")
    assert "Đã xóa hồ sơ" in chat.text
    assert len(draft_payloads(store)) == 1


@pytest.mark.parametrize("kind", ["sqlite"])
def test_same_citizen_two_services_no_lost_update(kind: str, tmp_path: Path) -> None:
    """Two service instances (two processes) over one database: both answers are kept."""
    from tests.conftest import make_store

    with make_store(kind) as store:
        catalog = tiny_catalog(tmp_path)
        a = Chat(service(store, catalog))
        b = Chat(service(store, catalog))
        a.cmd("start", "tiny_permit")
        a.press("Đồng ý")
        a.press("Chó")
        b.send("Trần Thị Bình")  # the second process sees the first one's state
        a.send("5/6/1988")
        (payload,) = draft_payloads(store)
        assert payload["answers"]["owner_name"] == "Trần Thị Bình"
        assert payload["answers"]["owner_birth"] == "1988-06-05"

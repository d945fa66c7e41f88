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


def _citizen_writes(store):
    """Count the UPDATEs of the citizen table the store's engine runs."""
    import sqlalchemy as sa

    seen = {"n": 0}

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE CITIZEN"):
            seen["n"] += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    return seen


def _citizen_row(store):
    with store.unit_of_work() as uow:
        return uow.citizen("test", "1001")


def test_an_answer_that_changes_nothing_of_the_citizen_writes_it_only_when_needed(
    store, tmp_path: Path
) -> None:
    """Most answers change only the draft. On PostgreSQL the turn holds the citizen's row
    locked (FOR UPDATE), so the citizen is not written again; `last_seen_at` is written
    once it is SEEN_EVERY old. On SQLite the write stays: its version check is the guard
    against a concurrent change."""
    from flows.service import SEEN_EVERY

    clock = Clock()
    chat = Chat(service(store, tiny_catalog(tmp_path), clock))
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")
    chat.press("Chó")
    before = _citizen_row(store)
    writes = _citizen_writes(store)
    clock.advance(seconds=30)
    chat.send("Trần Thị Bình")  # an answer: the session does not change
    after = _citizen_row(store)
    (payload,) = draft_payloads(store)
    assert payload["answers"]["owner_name"] == "Trần Thị Bình"
    if store.dialect == "postgresql":
        assert writes["n"] == 0
        assert (after.version, after.last_seen_at) == (before.version, before.last_seen_at)
    else:
        assert writes["n"] == 1
        assert after.version == before.version + 1
    assert after.session == before.session

    clock.advance(seconds=SEEN_EVERY.total_seconds())
    chat.send("5/6/1988")
    assert writes["n"] == (1 if store.dialect == "postgresql" else 2)
    assert _citizen_row(store).last_seen_at == clock()

    chat.cmd("hoso")  # a screen change is a session change: written at once
    assert writes["n"] == (2 if store.dialect == "postgresql" else 3)
    assert _citizen_row(store).session != after.session


def test_turns_of_one_citizen_wait_for_each_other_on_postgresql(tmp_path: Path) -> None:
    """Another process's turn of the same citizen waits for the row lock of the turn in
    flight from its first statement, the citizen's SELECT ... FOR UPDATE (seen waiting in
    pg_stat_activity), then sees what it committed."""
    import threading
    import time

    import sqlalchemy as sa

    from tests.conftest import PG_URL, make_store

    with make_store("postgresql") as store:
        catalog = tiny_catalog(tmp_path)
        first = Chat(service(store, catalog))
        first.cmd("start", "tiny_permit")
        first.press("Đồng ý")
        first.press("Chó")
        with store.unit_of_work() as holder:  # a turn in flight elsewhere: the row locked
            assert holder.citizen("test", "1001", lock=True) is not None
            other = Chat(service(store, catalog))
            done = threading.Event()
            worker = threading.Thread(
                target=lambda: (other.send("Trần Thị Bình"), done.set()), daemon=True
            )
            worker.start()
            admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            try:
                waiting = False
                for _ in range(200):  # until the other turn waits on the lock (<= 10 s)
                    with admin.connect() as conn:
                        waiting = bool(
                            conn.exec_driver_sql(
                                "SELECT count(*) FROM pg_stat_activity"
                                " WHERE wait_event_type = 'Lock' AND query ILIKE 'SELECT %%FROM citizen%%FOR UPDATE%%'"
                            ).scalar_one()
                        )
                    if waiting or done.is_set():
                        break
                    time.sleep(0.05)
            finally:
                admin.dispose()
            assert waiting and not done.is_set()
            holder.commit()
        worker.join(30)
        assert done.is_set()
        (payload,) = draft_payloads(store)
        assert payload["answers"]["owner_name"] == "Trần Thị Bình"

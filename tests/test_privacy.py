"""Personal data (flows/privacy.py, storage/crypto.py, storage/privacy.py), through the real
conversation service on SQLite and PostgreSQL, and `motcua keys rotate` / `motcua purge` as
subprocesses:

- the raw database (SQLite file and its WAL; PostgreSQL column text) holds no ID number,
  phone number, birth date or name;
- nothing is stored before consent, and consent is recorded with the notice's version;
- /xoadulieu deletes every row about the citizen (reminders included) and tells the office;
- retention: old drafts, closed cases and idle citizens are purged by the tick (test clock);
- key rotation: after `motcua keys rotate` the old key can be dropped.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.privacy import NOTICE_VERSION, PrivacyConfig
from flows.reminders import Reminders
from flows.service import ConversationService
from storage import crypto
from storage.store import Store
from tests.conftest import make_store
from tests.harness import Chat, Clock
from tests.test_cli import motcua
from tests.test_officer import CATALOG, XN, actions, sample

SECRETS = (
    b"060090012345",  # the CCCD number
    b"0912345678",  # the phone, as stored
    b"0912 345 678",  # the phone, as typed
    b"1990-03-12",  # the birth date, as stored
    b"12/03/1990",  # the birth date, as shown
    "Nguyễn Văn Hùng".encode(),  # the subject's name
    "Trần Thị Lan".encode(),  # the citizen's Telegram name
    "Hà Cán Bộ".encode(),  # the officer's name
)
TABLES = ("citizen", "draft", "fact", "handoff", "audit", "reminder", "reminder_pref")


def service(store: Store, clock: Clock, **kw) -> ConversationService:
    reminders = Reminders(store, CATALOG)  # drafts get reminder rows
    return ConversationService(
        store, CATALOG, clock=clock, raise_errors=True, reminders=reminders, **kw
    )


def fill_form(chat: Chat) -> None:
    """First contact by deep link, "Đồng ý", then every answer up to the PDF."""
    chat.cmd("start", XN)
    chat.press("Đồng ý")
    for kind, value in actions(sample()):
        if kind == "text":
            chat.send(value)
        else:
            chat.press_token(value)


def write_personal_data(store: Store, clock: Clock) -> None:
    chat = Chat(service(store, clock), user="7001", name="Trần Thị Lan")
    fill_form(chat)
    assert any(r.attachment for r in chat.history), "the form did not reach its PDF"
    chat.cmd("canbo")
    with store.unit_of_work() as uow:  # the officer side: a call-back phone, a claim, audit
        (case,) = uow.handoffs()
        uow.update_handoff(
            case.id, callback_phone="0912345678", claimed_by_name="Hà Cán Bộ", status="claimed"
        )
        uow.add_audit("9001", "claim", clock(), actor_name="Hà Cán Bộ", handoff_id=case.id)
        uow.commit()
    with store.unit_of_work() as uow:  # and everything reads back, decrypted
        citizen = uow.citizen("test", "7001")
        assert citizen.display_name == "Trần Thị Lan"
        (draft,) = uow.drafts_of(citizen.id)
        assert draft.payload["answers"]["subject_id_number"] == "060090012345"
        assert draft.subject == "Nguyễn Văn Hùng"
        assert uow.handoffs()[0].callback_phone == "0912345678"
        assert uow.audit()[0].actor_name == "Hà Cán Bộ"


def test_the_sqlite_file_and_its_wal_reveal_no_personal_data() -> None:
    with make_store("sqlite") as store:
        write_personal_data(store, Clock())
        db = Path(store.engine.url.database)
        wal = db.with_name(db.name + "-wal")
        raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert wal.exists() and len(raw) > 10_000  # the data is there, in WAL mode
        assert XN.encode() in raw and b"7001" in raw  # the grep sees plain columns
        found = [s.decode() for s in SECRETS if s in raw]
        assert found == []
        assert crypto.TOKEN_PREFIX.encode() in raw  # encrypted, not missing


def test_postgresql_columns_hold_no_personal_data_in_plain_text() -> None:
    with make_store("postgresql") as store:
        write_personal_data(store, Clock())
        with store.engine.connect() as conn:
            raw = "\n".join(
                text
                for table in TABLES
                for (text,) in conn.execute(sa.text(f"SELECT row_to_json(t)::text FROM {table} t"))
            ).encode()
        assert XN.encode() in raw and b"7001" in raw  # the grep sees plain columns
        assert [s.decode() for s in SECRETS if s in raw] == []
        assert crypto.TOKEN_PREFIX.encode() in raw


# ----------------------------------------------------------------------------- consent


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("draft", "fact", "handoff", "reminder")
        }


def test_nothing_is_stored_before_consent_and_consent_is_recorded(store: Store) -> None:
    chat = Chat(service(store, Clock()), user="7002", name="Lan")
    chat.cmd("start", XN)  # a deep link: the notice and "Đồng ý", no draft yet
    assert "/xoadulieu" in chat.text and "90 ngày" in chat.text
    assert chat.labels()[0] == "✅ Đồng ý"
    chat.send("cai may giat bi hong")  # not understood: answered, not recorded
    chat.send("gap can bo")  # an officer: asked to agree first
    assert "✅ Đồng ý" in chat.labels()
    # the whole notice came once; now one line recalls it (and how to delete)
    assert "90 ngày" not in chat.text and "/xoadulieu" in chat.text
    chat.other("sticker")
    assert counts(store) == {"draft": 0, "fact": 0, "handoff": 0, "reminder": 0}
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", "7002")
        assert citizen.display_name == "" and "consent" not in citizen.session
    chat.cmd("start")
    assert "Bấm chọn thủ tục hoặc nút bên dưới là bạn đồng ý" in chat.text
    assert "90 ngày" not in chat.text
    chat.press("Giấy xác nhận tình trạng hôn nhân")  # a button under the notice: agreed
    assert "Bước 1/" in chat.text
    with store.unit_of_work() as uow:
        citizen = uow.citizen("test", "7002")
        assert citizen.display_name == "Lan"
        assert citizen.session["consent"] == NOTICE_VERSION
        (fact,) = uow.facts(kind="ConsentGiven")
        assert fact.data == {"version": NOTICE_VERSION, "via": "p"}
    chat.cmd("start")  # asked once only
    assert "/xoadulieu" not in chat.text


# ----------------------------------------------------------------------------- erasure


def rows_of(store: Store, citizen_id: int) -> dict[str, int]:
    with store.engine.connect() as conn:
        found = {
            t: conn.execute(
                sa.text(f"SELECT count(*) FROM {t} WHERE citizen_id = :c"), {"c": citizen_id}
            ).scalar_one()
            for t in ("draft", "fact", "handoff", "reminder", "reminder_pref")
        }
        found["citizen"] = conn.execute(
            sa.text("SELECT count(*) FROM citizen WHERE id = :c"), {"c": citizen_id}
        ).scalar_one()
    return found


def test_xoadulieu_deletes_everything_about_the_citizen(store: Store) -> None:
    clock = Clock()
    svc = service(store, clock)
    chat = Chat(svc, user="7003", name="Lan")
    other = Chat(svc, user="7004", name="Mai")
    for person in (chat, other):
        person.cmd("start", XN)
        person.press("Đồng ý")
        person.press("Vay vốn ngân hàng")
    chat.cmd("canbo")
    chat.cmd("tatnhac")  # a reminder preference row
    with store.unit_of_work() as uow:
        me = uow.citizen("test", "7003").id
        mate = uow.citizen("test", "7004").id
    before = rows_of(store, me)
    assert all(before[t] >= 1 for t in ("citizen", "draft", "fact", "handoff", "reminder_pref"))
    assert before["reminder"] >= 1
    chat.cmd("xoadulieu")
    assert "Xóa toàn bộ dữ liệu của bạn?" in chat.text
    chat.press("Có, xóa hết")
    assert "Đã xóa toàn bộ dữ liệu" in chat.text
    assert rows_of(store, me) == dict.fromkeys(before, 0)
    assert rows_of(store, mate)["draft"] == 1  # someone else's data stays
    chat.cmd("start")  # a new first contact: the notice again
    assert "/xoadulieu" in chat.text


# ----------------------------------------------------------------------------- retention


def test_retention_purge_by_the_tick_with_a_test_clock(store: Store) -> None:
    t0 = Clock().now
    clock = Clock(t0)
    svc = service(store, clock, privacy=PrivacyConfig(draft_days=30, case_days=10))
    an = Chat(svc, user="7101", name="An")  # a draft left at T0
    an.cmd("start", XN)
    an.press("Đồng ý")
    an.press("Vay vốn ngân hàng")
    binh = Chat(svc, user="7102", name="Bình")  # a case closed at T0 + 1 day
    binh.send("gap can bo")
    binh.press("Đồng ý")
    with store.unit_of_work() as uow:
        (case,) = uow.handoffs()
        uow.update_handoff(case.id, status="closed", closed_at=t0 + dt.timedelta(days=1))
        uow.commit()
    svc.tick()  # nothing is old yet
    assert counts(store)["draft"] == 1 and counts(store)["handoff"] == 1
    clock.advance(days=12)  # the case was closed 11 days ago: past 10
    svc.tick()
    assert counts(store)["handoff"] == 0 and counts(store)["draft"] == 1
    clock.advance(days=10)  # 22 days: the draft stays (30)
    cuong = Chat(svc, user="7103", name="Cường")  # active now
    cuong.cmd("start", XN)
    cuong.press("Đồng ý")
    svc.tick()
    assert counts(store)["draft"] == 2
    clock.advance(days=9)  # An's draft idle 31 days; Cường's 9
    svc.tick()  # within the hour of the last pass? no: a day later
    with store.unit_of_work() as uow:
        assert uow.citizen("test", "7101") is None  # An: draft, facts, reminders, citizen
        assert uow.citizen("test", "7102") is None  # Bình: nothing left, not seen for 31 days
        (left,) = uow.drafts_of(uow.citizen("test", "7103").id)
        purges = [a.details for a in uow.audit() if a.action == "purge"]
    with store.engine.connect() as conn:
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM reminder WHERE citizen_id NOT IN (SELECT id FROM citizen)"
            )
        ).scalar_one()
    assert orphans == 0
    assert purges == [
        {"drafts": 0, "cases": 1, "citizens": 0},
        {"drafts": 1, "cases": 0, "citizens": 2},
    ]


# ----------------------------------------------------------------------------- CLI


def _url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_keys_rotate_then_the_old_key_can_go(kind: str, tmp_path: Path) -> None:
    old, new = crypto.generate_key(), crypto.generate_key()
    with make_store(kind) as base:
        url = _url(base)
        store = Store(url, keyring=crypto.Keyring([old]))
        write_personal_data(store, Clock())
        with store.engine.begin() as conn:  # a row written before encryption (pre-0007)
            conn.execute(
                sa.text(
                    "UPDATE citizen SET username = 'lan_plain' WHERE id = (SELECT min(id) FROM citizen)"
                )
            )
        store.dispose()
        done = motcua(
            ["keys", "rotate"],
            cwd=tmp_path,
            env={"DATABASE_URL": url, "MOTCUA_DATA_KEYS": f"{new},{old}"},
        )
        assert done.returncode == 0, done.stderr
        assert "rows re-encrypted with the first data key" in done.stdout
        assert not any(s.decode() in done.stdout for s in SECRETS)
        rotated = Store(url, keyring=crypto.Keyring([new]))  # the old key is gone
        with rotated.unit_of_work() as uow:
            citizen = uow.citizen("test", "7001")
            assert citizen.username == "lan_plain"
            (draft,) = uow.drafts_of(citizen.id)
            assert draft.payload["answers"]["subject_id_number"] == "060090012345"
            assert uow.facts(citizen_id=citizen.id)
            assert uow.handoffs()[0].callback_phone == "0912345678"
        with rotated.engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT username FROM citizen")).scalar_one()
        assert crypto.is_token(raw)  # the plain row is encrypted now
        rotated.dispose()
        stale = Store(url, keyring=crypto.Keyring([old]))
        with pytest.raises(crypto.DataKeyError), stale.unit_of_work() as uow:
            uow.drafts_of(1)
        stale.dispose()
        again = motcua(
            ["keys", "rotate"], cwd=tmp_path, env={"DATABASE_URL": url, "MOTCUA_DATA_KEYS": new}
        )
        assert again.returncode == 0 and "motcua: 0 rows re-encrypted" in again.stdout


def test_purge_command_and_a_key_file_made_on_first_use(tmp_path: Path) -> None:
    db = tmp_path / "motcua.db"
    key_file = tmp_path / "motcua.key"
    upgrade = motcua(["db", "upgrade"], cwd=tmp_path)  # nothing configured: ./motcua.key
    assert upgrade.returncode == 0, upgrade.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    keyring = crypto.key_file_keyring(key_file, create=False)
    store = Store(f"sqlite:///{db}", keyring=keyring)
    clock = Clock(dt.datetime.now(dt.UTC) - dt.timedelta(days=100))  # a draft 100 days old
    chat = Chat(service(store, clock), user="7201")
    chat.cmd("start", XN)
    chat.press("Đồng ý")
    store.dispose()
    done = motcua(["purge"], cwd=tmp_path, env={"MOTCUA_RETENTION_DRAFT_DAYS": "120"})
    assert done.returncode == 0, done.stderr
    assert "purged 0 drafts idle for 120 days" in done.stdout
    done = motcua(["purge"], cwd=tmp_path)  # the default: 90 days
    assert "purged 1 drafts idle for 90 days" in done.stdout and "1 idle citizens" in done.stdout
    bad = motcua(["purge"], cwd=tmp_path, env={"MOTCUA_DATA_KEYS": "not-a-key"})
    assert bad.returncode == 2 and "MOTCUA_DATA_KEYS" in bad.stderr
    wrong = motcua(["purge"], cwd=tmp_path, env={"MOTCUA_RETENTION_CASE_DAYS": "0"})
    assert wrong.returncode == 2 and "MOTCUA_RETENTION_CASE_DAYS" in wrong.stderr

"""Contract tests for storage.store, run on SQLite and PostgreSQL (see conftest.store)."""

import re
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from storage.db import alembic_config, normalize_url
from storage.models import Audit, Fact, Handoff
from storage.store import DraftRec, FactRec, StaleVersion, Store
from tests.conftest import PG_URL, make_store

KINDS = ["sqlite", "postgresql"]
T0 = datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)
HANOI = timezone(timedelta(hours=7))
TABLES = ["citizen", "draft", "fact", "handoff", "audit"]


def new_citizen(store: Store, external_id: str = "1001", channel: str = "telegram") -> int:
    with store.unit_of_work() as uow:
        rec = uow.add_citizen(channel, external_id, "Lan", "lan_hn", T0)
        uow.commit()
    return rec.id


def new_draft(
    citizen_id: int,
    *,
    status: str = "active",
    updated_at: datetime = T0,
    short_id: str = "",
    subject: str = "",
    payload: dict | None = None,
) -> DraftRec:
    return DraftRec(
        id=None,
        short_id=short_id,
        citizen_id=citizen_id,
        procedure_id="marital_status",
        procedure_version=1,
        status=status,
        stage="ask",
        subject=subject,
        payload={"state_version": 1} if payload is None else payload,
        dossier_code=None,
        created_at=T0,
        updated_at=updated_at,
        version=1,
    )


def add_draft(store: Store, rec: DraftRec) -> DraftRec:
    with store.unit_of_work() as uow:
        uow.add_draft(rec)
        uow.commit()
    return rec


def count(store: Store, table: str, **where: object) -> int:
    t = SQLModel.metadata.tables[table]
    stmt = sa.select(sa.func.count()).select_from(t)
    for column, value in where.items():
        stmt = stmt.where(t.c[column] == value)
    with store.engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


# ----------------------------------------------------------------------------- schema


@pytest.mark.parametrize("kind", KINDS)
def test_upgrade_creates_the_schema_and_is_idempotent(kind: str) -> None:
    with make_store(kind, upgrade=False) as store:
        assert store.dialect == kind
        assert not set(TABLES) & set(sa.inspect(store.engine).get_table_names())
        store.upgrade()
        assert set(TABLES) <= set(sa.inspect(store.engine).get_table_names())
        citizen_id = new_citizen(store)

        store.upgrade()  # again: nothing to do, nothing lost

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
        with store.unit_of_work() as uow:
            assert uow.citizen_by_id(citizen_id) is not None


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_works_from_any_working_directory(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with make_store("sqlite") as store:
        assert "draft" in sa.inspect(store.engine).get_table_names()


def test_sqlite_file_db_uses_wal_busy_timeout_and_foreign_keys() -> None:
    with make_store("sqlite") as store:
        for _ in range(2):  # every pooled connection, not only the first
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                conn.invalidate()


def test_in_memory_sqlite_is_one_database_for_all_units_of_work() -> None:
    store = Store("sqlite://")
    try:
        store.upgrade()
        citizen_id = new_citizen(store)
        with store.unit_of_work() as uow:
            assert uow.citizen_by_id(citizen_id) is not None
    finally:
        store.dispose()


def test_normalize_url() -> None:
    assert normalize_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///data/motcua.db") == "sqlite:///data/motcua.db"


def test_postgresql_engine_uses_psycopg3_without_a_ping_per_checkout() -> None:
    """A dropped connection is replaced at its first statement instead (see the test
    below, and `storage.store.Transaction`)."""
    store = Store("postgresql://postgres@127.0.0.1:5432/test")  # no connection is made
    try:
        assert store.engine.dialect.driver == "psycopg"
        assert store.engine.pool._pre_ping is False
    finally:
        store.dispose()


# ---------------------------------------------------------------------------- citizens


def test_citizen_add_get_and_save(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.citizen("telegram", "42") is None
        rec = uow.add_citizen("telegram", "42", "Nguyễn Thị Lan", "lan", T0)
        uow.commit()
    assert rec.id is not None and rec.version == 1 and rec.session == {}

    with store.unit_of_work() as uow:
        got = uow.citizen("telegram", "42")
        assert got == rec
        assert uow.citizen_by_id(rec.id) == rec
        assert uow.citizen("console", "42") is None
        assert uow.citizen_by_id(rec.id + 1000) is None

    # The record outlives its unit of work: mutate it and save it in another one.
    got.session["menu"] = {"page": 2, "items": ["hôn nhân", "khai sinh"]}
    got.timezone = "Asia/Ho_Chi_Minh"
    got.display_name = "Lan"
    got.last_seen_at = T0 + timedelta(minutes=5)
    with store.unit_of_work() as uow:
        uow.save_citizen(got)
        uow.commit()
    assert got.version == 2

    with store.unit_of_work() as uow:
        assert uow.citizen_by_id(rec.id) == got

    # Nested in-place mutation of the session dict is saved too.
    got.session["menu"]["page"] = 3
    with store.unit_of_work() as uow:
        uow.save_citizen(got)
        uow.commit()
    with store.unit_of_work() as uow:
        again = uow.citizen_by_id(rec.id)
    assert again.session["menu"]["page"] == 3
    assert again.version == 3


def test_citizen_is_unique_per_channel(store: Store) -> None:
    new_citizen(store, "7", channel="telegram")
    new_citizen(store, "7", channel="console")  # same id in another channel is fine
    with store.unit_of_work() as uow, pytest.raises(sa.exc.IntegrityError):
        uow.add_citizen("telegram", "7", "", "", T0)


def test_concurrent_citizen_save_raises_stale_version(store: Store) -> None:
    citizen_id = new_citizen(store)
    with store.unit_of_work() as first, store.unit_of_work() as second:
        a = first.citizen_by_id(citizen_id)
        b = second.citizen_by_id(citizen_id)
        assert a.version == b.version == 1
        a.session = {"from": "a"}
        first.save_citizen(a)
        first.commit()
        b.session = {"from": "b"}
        with pytest.raises(StaleVersion):
            second.save_citizen(b)
        assert b.version == 1  # untouched on failure
        second.commit()
    with store.unit_of_work() as uow:
        final = uow.citizen_by_id(citizen_id)
    assert final.session == {"from": "a"}
    assert final.version == 2


def test_optimistic_retries_from_threads_lose_no_update(store: Store) -> None:
    citizen_id = new_citizen(store)
    rounds, workers = 15, 3
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(rounds):
                while True:
                    with store.unit_of_work() as uow:
                        rec = uow.citizen_by_id(citizen_id)
                        rec.session["n"] = rec.session.get("n", 0) + 1
                        try:
                            uow.save_citizen(rec)
                        except StaleVersion:
                            continue
                        uow.commit()
                        break
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with store.unit_of_work() as uow:
        final = uow.citizen_by_id(citizen_id)
    assert final.session["n"] == rounds * workers
    assert final.version == 1 + rounds * workers


# ------------------------------------------------------------------------------ drafts


def test_drafts_add_list_order_and_status_filter(store: Store) -> None:
    citizen_id = new_citizen(store)
    other_id = new_citizen(store, "2002")
    old = add_draft(store, new_draft(citizen_id, updated_at=T0))
    newest = add_draft(store, new_draft(citizen_id, updated_at=T0 + timedelta(hours=2)))
    done = add_draft(
        store, new_draft(citizen_id, status="submitted", updated_at=T0 + timedelta(hours=1))
    )
    add_draft(store, new_draft(other_id, updated_at=T0 + timedelta(hours=3)))

    assert old.id is not None and newest.id is not None and done.id is not None
    with store.unit_of_work() as uow:
        assert [d.id for d in uow.drafts_of(citizen_id)] == [newest.id, done.id, old.id]
        assert [d.id for d in uow.drafts_of(citizen_id, ["active"])] == [newest.id, old.id]
        assert [d.id for d in uow.drafts_of(citizen_id, "submitted")] == [done.id]
        assert [d.id for d in uow.drafts_of(citizen_id, {"submitted", "active"})] == [
            newest.id,
            done.id,
            old.id,
        ]
        assert uow.drafts_of(citizen_id, []) == []
        assert uow.drafts_of(citizen_id, ["cancelled"]) == []
        assert uow.draft(newest.id) == newest
        assert uow.draft(newest.id + 1000) is None


def test_draft_short_ids_are_fresh_unique_and_found(store: Store) -> None:
    citizen_id = new_citizen(store)
    with store.unit_of_work() as uow:
        drafts = [uow.add_draft(new_draft(citizen_id)) for _ in range(40)]
        uow.commit()
    short_ids = [d.short_id for d in drafts]
    assert all(re.fullmatch(r"[a-z0-9]{6}", s) for s in short_ids)
    assert len(set(short_ids)) == len(short_ids)

    with store.unit_of_work() as uow:
        for rec in drafts[:5]:
            assert uow.draft_by_short_id(rec.short_id) == rec
        assert uow.draft_by_short_id("zzzzzz" if "zzzzzz" not in short_ids else "000000") is None

    # A given short_id is kept; the database refuses a second one.
    add_draft(store, new_draft(citizen_id, short_id="abc123"))
    with store.unit_of_work() as uow:
        assert uow.draft_by_short_id("abc123") is not None
        with pytest.raises(sa.exc.IntegrityError):
            uow.add_draft(new_draft(citizen_id, short_id="abc123"))
    with store.unit_of_work() as uow, pytest.raises(ValueError):
        uow.add_draft(new_draft(citizen_id, short_id="ABC-12"))


def test_draft_needs_an_existing_citizen_and_a_known_status(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(sa.exc.IntegrityError):
        uow.add_draft(new_draft(999_999))
    citizen_id = new_citizen(store)
    with store.unit_of_work() as uow, pytest.raises(ValueError):
        uow.add_draft(new_draft(citizen_id, status="paused"))


def test_draft_save_and_stale_version(store: Store) -> None:
    citizen_id = new_citizen(store)
    rec = add_draft(store, new_draft(citizen_id))

    rec.stage = "review"
    rec.status = "completed"
    rec.subject = "Trần Văn Bình"
    rec.dossier_code = "G01.123"
    rec.procedure_version = 2
    rec.payload["answers"] = {"ho_ten": "Trần Văn Bình"}
    rec.updated_at = T0 + timedelta(minutes=10)
    with store.unit_of_work() as uow:
        uow.save_draft(rec)
        uow.commit()
    assert rec.version == 2
    with store.unit_of_work() as uow:
        assert uow.draft(rec.id) == rec

    with store.unit_of_work() as first, store.unit_of_work() as second:
        a = first.draft(rec.id)
        b = second.draft(rec.id)
        a.stage = "from-a"
        first.save_draft(a)
        first.commit()
        b.stage = "from-b"
        with pytest.raises(StaleVersion):
            second.save_draft(b)
    with store.unit_of_work() as uow:
        final = uow.draft(rec.id)
    assert final.stage == "from-a" and final.version == 3


def test_json_payload_round_trip(store: Store) -> None:
    citizen_id = new_citizen(store)
    payload = {
        "state_version": 3,
        "zeta": "first key stays first",
        "answers": {
            "ho_ten": "Nguyễn Thị Ánh Tuyết",
            "noi_cu_tru": {"tinh": "Thành phố Hà Nội", "xa": "Xã Ô Diên"},
            "lich_su": ["Đã kết hôn", "Ly hôn năm 2019"],
            "so_ban_sao": 2,
            "ty_le": 0.5,
            "dong_y": True,
            "ghi_chu": None,
        },
        "empty": {},
        "alpha": [],
    }
    rec = add_draft(store, new_draft(citizen_id, subject="Ánh Tuyết", payload=payload))
    with store.unit_of_work() as uow:
        got = uow.draft(rec.id)
    assert got.payload == payload
    assert list(got.payload) == list(payload)  # key order kept
    assert got.subject == "Ánh Tuyết"

    # In-place nested mutation of a loaded payload is persisted on save.
    got.payload["answers"]["noi_cu_tru"]["xa"] = "Phường Hoàn Kiếm"
    got.payload["answers"]["lich_su"].append("Tái hôn")
    with store.unit_of_work() as uow:
        uow.save_draft(got)
        uow.commit()
    with store.unit_of_work() as uow:
        again = uow.draft(rec.id)
    assert again.payload["answers"]["noi_cu_tru"]["xa"] == "Phường Hoàn Kiếm"
    assert again.payload["answers"]["lich_su"][-1] == "Tái hôn"


def test_delete_draft_removes_it_and_its_facts(store: Store) -> None:
    citizen_id = new_citizen(store)
    gone = add_draft(store, new_draft(citizen_id))
    kept = add_draft(store, new_draft(citizen_id))
    with store.unit_of_work() as uow:
        uow.add_facts(
            [
                FactRec("AnswerStored", {"field": "ho_ten"}, citizen_id, gone.id, T0),
                FactRec("AnswerStored", {"field": "ho_ten"}, citizen_id, kept.id, T0),
                FactRec("Started", {}, citizen_id, None, T0),
            ]
        )
        handoff_id = uow.add_handoff(citizen_id, gone.id, "asked", T0)
        uow.commit()

    with store.unit_of_work() as uow:
        uow.delete_draft(gone.id)
        uow.commit()

    with store.unit_of_work() as uow:
        assert uow.draft(gone.id) is None
        assert uow.draft_by_short_id(gone.short_id) is None
        assert uow.draft(kept.id) == kept
        assert uow.facts(draft_id=gone.id) == []
        assert [f.draft_id for f in uow.facts(citizen_id=citizen_id)] == [kept.id, None]
        [handoff] = uow.open_handoffs(citizen_id)
    assert handoff["id"] == handoff_id and handoff["draft_id"] is None


# ------------------------------------------------------------------------------- facts


def test_facts_append_and_filter(store: Store) -> None:
    citizen_id = new_citizen(store)
    other_id = new_citizen(store, "3003")
    draft = add_draft(store, new_draft(citizen_id))
    later = T0 + timedelta(minutes=1)
    with store.unit_of_work() as uow:
        uow.add_facts(
            [
                FactRec("AnswerStored", {"field": "b"}, citizen_id, draft.id, later),
                FactRec(
                    "AnswerStored", {"field": "a", "value": "Lê Hữu Đức"}, citizen_id, draft.id, T0
                ),
                FactRec("HandoffRequested", {"reason": "asked"}, citizen_id, None, later),
                FactRec("AnswerStored", {"field": "x"}, other_id, None, T0),
            ]
        )
        uow.add_facts([])  # nothing to add is fine
        uow.commit()
    with store.unit_of_work() as uow:  # appending keeps what is there
        uow.add_facts([FactRec("Submitted", {}, citizen_id, draft.id, later)])
        uow.commit()

    with store.unit_of_work() as uow:
        mine = uow.facts(citizen_id=citizen_id)
        assert [(f.kind, f.data.get("field")) for f in mine] == [
            ("AnswerStored", "a"),  # oldest first
            ("AnswerStored", "b"),  # same time: insertion order
            ("HandoffRequested", None),
            ("Submitted", None),
        ]
        assert mine[0].data == {"field": "a", "value": "Lê Hữu Đức"}
        assert mine[0] == FactRec(
            "AnswerStored", {"field": "a", "value": "Lê Hữu Đức"}, citizen_id, draft.id, T0
        )
        assert [f.kind for f in uow.facts(draft_id=draft.id)] == [
            "AnswerStored",
            "AnswerStored",
            "Submitted",
        ]
        assert len(uow.facts(kind="AnswerStored")) == 3
        assert len(uow.facts(citizen_id=citizen_id, kind="AnswerStored")) == 2
        assert uow.facts(draft_id=draft.id, kind="HandoffRequested") == []
        assert len(uow.facts()) == 5


# ---------------------------------------------------------------------------- handoffs


def test_handoff_add_and_open_list(store: Store) -> None:
    citizen_id = new_citizen(store)
    other_id = new_citizen(store, "4004")
    draft = add_draft(store, new_draft(citizen_id))
    with store.unit_of_work() as uow:
        first = uow.add_handoff(citizen_id, draft.id, "asked_for_officer", T0)
        second = uow.add_handoff(citizen_id, None, "stuck", T0 + timedelta(minutes=1))
        closed = uow.add_handoff(citizen_id, None, "old", T0 - timedelta(days=1))
        uow.add_handoff(other_id, None, "theirs", T0)
        uow.commit()
    with store.engine.begin() as conn:  # the officer side does not exist yet
        table = Handoff.__table__
        conn.execute(
            table.update().where(table.c.id == closed).values(status="closed", closed_at=T0)
        )

    with store.unit_of_work() as uow:
        listed = uow.open_handoffs(citizen_id)
    assert [h["id"] for h in listed] == [first, second]
    assert listed[0]["draft_id"] == draft.id
    assert listed[0]["reason"] == "asked_for_officer"
    assert listed[0]["status"] == "open"
    assert listed[0]["created_at"] == T0
    assert listed[0]["claimed_by"] is None and listed[0]["closed_at"] is None


def test_case_columns_filters_and_conditional_updates(store: Store) -> None:
    citizen_id = new_citizen(store)
    other_id = new_citizen(store, "4004")
    draft = add_draft(store, new_draft(citizen_id))
    with store.unit_of_work() as uow:
        first = uow.add_handoff(
            citizen_id,
            draft.id,
            "asked",
            T0,
            commune_code=23152,
            step="subject_birth_date",
            group_chat_id=-1001234567890,  # beyond 32 bits
            announced_at=T0,
            announce_count=1,
        )
        second = uow.add_handoff(other_id, None, "asked_menu", T0 + timedelta(minutes=5))
        uow.commit()
    with store.unit_of_work() as uow:
        case = uow.handoff(first)
        assert (case.status, case.version, case.reason, case.commune_code) == (
            "open",
            1,
            "asked",
            23152,
        )
        assert case.group_chat_id == -1001234567890 and case.announced_at == T0
        assert case.claimed_by is None and case.topic_id is None
        assert uow.handoff(second).announce_count == 0
        assert uow.handoff(999) is None
        # filters
        assert [c.id for c in uow.handoffs()] == [first, second]
        assert [c.id for c in uow.handoffs(citizen_id=other_id)] == [second]
        assert [c.id for c in uow.handoffs(group_chat_id=-1001234567890)] == [first]
        assert [c.id for c in uow.handoffs(since=T0 + timedelta(minutes=1))] == [second]
        # a conditional update: only from the expected status / version
        assert uow.update_handoff(first, expect_status="claimed", status="closed") is False
        claimed_at = datetime(2026, 1, 5, 15, 0, tzinfo=HANOI)
        assert uow.update_handoff(
            first,
            expect_status="open",
            status="claimed",
            claimed_by="111",
            claimed_by_name="Hà",
            claimed_at=claimed_at,
        )
        assert uow.update_handoff(first, expect_status="open", status="claimed") is False
        assert uow.update_handoff(first, expect_version=1, topic_id=77) is False  # now 2
        assert uow.update_handoff(first, expect_version=2, topic_id=77, group_message_id=5)
        assert [c.id for c in uow.handoffs(statuses=["claimed"])] == [first]
        assert [c.id for c in uow.handoffs(group_chat_id=-1001234567890, topic_id=77)] == [first]
        with pytest.raises(ValueError, match="not case columns"):
            uow.update_handoff(first, citizen_id=other_id)
        with pytest.raises(ValueError, match="unknown case status"):
            uow.update_handoff(first, status="lost")
        with pytest.raises(ValueError):
            uow.update_handoff(first, closed_at=datetime(2026, 1, 5))  # naive
        uow.commit()
    with store.unit_of_work() as uow:
        case = uow.handoff(first)
    assert (case.status, case.claimed_by, case.claimed_by_name, case.version) == (
        "claimed",
        "111",
        "Hà",
        3,
    )
    assert case.claimed_at == claimed_at and case.claimed_at.utcoffset() == timedelta(0)
    assert (case.topic_id, case.group_message_id) == (77, 5)
    with store.unit_of_work() as uow:  # the old reader keeps working
        assert [h["id"] for h in uow.open_handoffs(other_id)] == [second]


def test_concurrent_claims_exactly_one_wins(store: Store) -> None:
    citizen_id = new_citizen(store)
    with store.unit_of_work() as uow:
        case_id = uow.add_handoff(citizen_id, None, "asked", T0)
        uow.commit()
    officers = [str(n) for n in range(1, 6)]
    barrier = threading.Barrier(len(officers))
    won: dict[str, bool] = {}
    errors: list[BaseException] = []

    def claim(officer: str) -> None:
        try:
            with store.unit_of_work() as uow:
                barrier.wait()
                won[officer] = uow.update_handoff(
                    case_id, expect_status="open", status="claimed", claimed_by=officer
                )
                uow.commit()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=claim, args=(o,)) for o in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    winners = [o for o, ok in won.items() if ok]
    assert len(winners) == 1 and len(won) == len(officers)
    with store.unit_of_work() as uow:
        case = uow.handoff(case_id)
    assert case.claimed_by == winners[0] and case.version == 2


def test_audit_append_list_and_it_outlives_the_case(store: Store) -> None:
    citizen_id = new_citizen(store)
    draft = add_draft(store, new_draft(citizen_id))
    with store.unit_of_work() as uow:
        case_id = uow.add_handoff(citizen_id, draft.id, "asked", T0)
        other = uow.add_handoff(citizen_id, None, "asked", T0)
        uow.add_audit("111", "claim", T0, actor_name="Hà", handoff_id=case_id, draft_id=draft.id)
        uow.add_audit(
            "111",
            "edit",
            T0 + timedelta(seconds=1),
            handoff_id=case_id,
            draft_id=draft.id,
            details={"field": "subject_full_name"},
        )
        uow.add_audit("222", "stats", T0 + timedelta(seconds=2), details={"days": 7})
        uow.add_audit("111", "view", T0, handoff_id=other)
        uow.commit()
    with store.unit_of_work() as uow:
        mine = uow.audit(handoff_id=case_id)
        assert [(a.actor, a.action) for a in mine] == [("111", "claim"), ("111", "edit")]
        assert mine[0].actor_name == "Hà" and mine[0].at == T0
        assert mine[1].details == {"field": "subject_full_name"}
        assert [a.action for a in uow.audit()] == ["claim", "view", "edit", "stats"]
    with store.unit_of_work() as uow:  # the citizen erases their data: the log stays, unlinked
        uow.delete_citizen_data(citizen_id)
        uow.commit()
    with store.unit_of_work() as uow:
        after = uow.audit()
    assert [a.action for a in after] == ["claim", "view", "edit", "stats"]
    assert all(a.handoff_id is None and a.draft_id is None for a in after)


def test_facts_by_period_and_kinds_and_drafts_by_ids(store: Store) -> None:
    citizen_id = new_citizen(store)
    a = add_draft(store, new_draft(citizen_id))
    b = add_draft(store, new_draft(citizen_id))
    with store.unit_of_work() as uow:
        uow.add_facts(
            [
                FactRec("ProcedureStarted", {}, citizen_id, a.id, T0),
                FactRec("QuestionAsked", {"field": "x"}, citizen_id, a.id, T0 + timedelta(hours=1)),
                FactRec("DraftCompleted", {}, citizen_id, a.id, T0 + timedelta(hours=2)),
                FactRec("ProcedureStarted", {}, citizen_id, b.id, T0 + timedelta(days=1)),
            ]
        )
        uow.commit()
    with store.unit_of_work() as uow:
        since = T0 + timedelta(minutes=30)
        until = T0 + timedelta(days=1)
        assert [f.kind for f in uow.facts(since=since)] == [
            "QuestionAsked",
            "DraftCompleted",
            "ProcedureStarted",
        ]
        assert [f.kind for f in uow.facts(since=since, until=until)] == [
            "QuestionAsked",
            "DraftCompleted",
        ]
        started = uow.facts(kinds=["ProcedureStarted", "DraftCompleted"])
        assert [(f.kind, f.draft_id) for f in started] == [
            ("ProcedureStarted", a.id),
            ("DraftCompleted", a.id),
            ("ProcedureStarted", b.id),
        ]
        assert [d.id for d in uow.drafts_by_ids([b.id, a.id, 999, a.id])] == [a.id, b.id]
        assert uow.drafts_by_ids([]) == []


# ------------------------------------------------------------------------------- erase


def test_delete_citizen_data_removes_everything_of_theirs(store: Store) -> None:
    citizen_id = new_citizen(store)
    other_id = new_citizen(store, "5005")
    for who in (citizen_id, other_id):
        draft = add_draft(store, new_draft(who, subject="Phạm Thu Hà"))
        with store.unit_of_work() as uow:
            uow.add_facts(
                [
                    FactRec("AnswerStored", {"v": "Phạm Thu Hà"}, who, draft.id, T0),
                    FactRec("Started", {}, who, None, T0),
                ]
            )
            uow.add_handoff(who, draft.id, "asked", T0)
            uow.commit()

    with store.unit_of_work() as uow:
        uow.delete_citizen_data(citizen_id)
        uow.commit()

    for table in ("draft", "fact", "handoff"):
        assert count(store, table, citizen_id=citizen_id) == 0
        assert count(store, table, citizen_id=other_id) > 0
    assert count(store, "citizen", id=citizen_id) == 0
    assert count(store, "citizen", id=other_id) == 1
    with store.unit_of_work() as uow:
        assert uow.citizen_by_id(citizen_id) is None
        assert uow.drafts_of(citizen_id) == []
        assert len(uow.drafts_of(other_id)) == 1


# ----------------------------------------------------------------------------- datetimes


def test_aware_datetimes_round_trip_as_utc(store: Store) -> None:
    local = datetime(2026, 3, 1, 9, 30, 15, 654321, tzinfo=HANOI)
    with store.unit_of_work() as uow:
        citizen = uow.add_citizen("telegram", "6006", "", "", local)
        uow.commit()
    with store.unit_of_work() as uow:
        got = uow.citizen_by_id(citizen.id)
    assert got.created_at == local
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.created_at.hour == 2 and got.created_at.microsecond == 654321

    # Order follows the instant, not the wall clock: 10:00 in Hanoi is 03:00 UTC.
    early = add_draft(
        store, new_draft(citizen.id, updated_at=datetime(2026, 3, 2, 10, tzinfo=HANOI))
    )
    late = add_draft(store, new_draft(citizen.id, updated_at=datetime(2026, 3, 2, 4, tzinfo=UTC)))
    with store.unit_of_work() as uow:
        listed = uow.drafts_of(citizen.id)
    assert [d.id for d in listed] == [late.id, early.id]
    assert all(d.updated_at.tzinfo is not None for d in listed)

    # The column type itself stores UTC, also when written around the store.
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(Fact.__table__).values(
                kind="Local", data={}, citizen_id=citizen.id, at=local + timedelta(hours=1)
            )
        )
    with store.unit_of_work() as uow:
        uow.add_facts([FactRec("Utc", {}, citizen.id, None, datetime(2026, 3, 1, 3, tzinfo=UTC))])
        uow.commit()
        [first, second] = uow.facts(citizen_id=citizen.id)
    assert (first.kind, second.kind) == ("Utc", "Local")  # 02:30 UTC + 1h is after 03:00 UTC
    assert second.at == local + timedelta(hours=1) and second.at.utcoffset() == timedelta(0)

    with store.unit_of_work() as uow:
        with pytest.raises(ValueError):
            uow.add_citizen("telegram", "7007", "", "", datetime(2026, 3, 1, 9, 30))
        with pytest.raises(ValueError):
            uow.add_facts([FactRec("X", {}, citizen.id, None, datetime(2026, 3, 1))])


# ----------------------------------------------------------------------------- rollback


def test_unit_of_work_rolls_back_without_commit(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.add_citizen("telegram", "8008", "", "", T0)
    assert count(store, "citizen") == 0

    with pytest.raises(RuntimeError, match="boom"):
        with store.unit_of_work() as uow:
            uow.add_citizen("telegram", "8008", "", "", T0)
            uow.commit()  # kept
            uow.add_citizen("telegram", "9009", "", "", T0)
            raise RuntimeError("boom")  # this one is not
    with store.unit_of_work() as uow:
        assert uow.citizen("telegram", "8008") is not None
        assert uow.citizen("telegram", "9009") is None


def test_postgresql_connections_recover_after_the_server_drops_them() -> None:
    """What a PostgreSQL restart does to a running bot: every pooled connection is cut.
    A unit of work whose first statement meets a dropped connection runs it again on a
    new one (`storage.store.Transaction`), so the next unit of work succeeds instead of
    failing; so do the health check and the metrics (bot/ops.py)."""
    with make_store("postgresql") as store:
        now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        with store.unit_of_work() as uow:
            uow.add_citizen("telegram", "501", "", "", now)
            uow.commit()
        # three connections in the pool, all cut below
        held = [store.transaction() for _ in range(3)]
        pids = {tx.exec(sa.text("SELECT pg_backend_pid()")).scalar_one() for tx in held}
        for tx in held:
            tx.close()
        assert len(pids) == 3
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                for pid in pids:
                    conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        finally:
            admin.dispose()
        with store.unit_of_work() as uow:
            assert uow.citizen("telegram", "501") is not None
            uow.add_citizen("telegram", "502", "", "", now)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.citizen("telegram", "502") is not None
        from bot.ops import _database_answers

        assert _database_answers(store)
        with store.transaction() as tx:
            assert tx.exec(sa.text("SELECT pg_backend_pid()")).scalar_one() not in pids


def test_autocommit_on_postgresql_and_a_plain_transaction_on_sqlite(store: Store) -> None:
    """`Store.autocommit` (the inbox's one-statement units of work): on PostgreSQL each
    statement is a transaction of its own, so psycopg sends no BEGIN before it, and a
    statement is kept without `commit()`; the pooled connection goes back to transactions
    for the next unit of work. On SQLite it is a transaction like any other."""
    audit = sa.insert(Audit.__table__).values(at=T0, actor="1", action="view")
    if store.dialect == "postgresql":
        txid = sa.text("SELECT txid_current()")
        with store.autocommit() as tx:
            pid = tx.exec(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert tx.exec(txid).scalar_one() != tx.exec(txid).scalar_one()
            tx.exec(audit)  # no commit
        assert count(store, "audit") == 1
        with store.transaction() as tx:
            assert tx.exec(sa.text("SELECT pg_backend_pid()")).scalar_one() == pid
            assert tx.exec(txid).scalar_one() == tx.exec(txid).scalar_one()
            tx.exec(audit)  # no commit: rolled back
        assert count(store, "audit") == 1
    else:
        with store.autocommit() as tx:
            tx.exec(audit)  # no commit: rolled back
        assert count(store, "audit") == 0
        with store.autocommit() as tx:
            tx.exec(audit)
            tx.commit()
        assert count(store, "audit") == 1

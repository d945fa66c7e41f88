"""Reminders through the real conversation service and a real database (SQLite and
PostgreSQL), with a test clock: planning on draft activity, `dispatch(now)`, quiet hours,
opt-out, an officer owning the case, the "check the result" reminder in working days, and
the exactly-once claim with two workers at once."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from flows.reminders import (
    DRAFT,
    RESULT,
    ReminderConfig,
    Reminders,
    add_working_days,
    after_quiet,
    in_quiet,
    load_holidays,
)
from flows.service import ConversationService
from procedures.loader import load_catalog
from storage import reminders as rows
from storage.store import Store
from tests.conftest import make_store
from tests.harness import FIXED_NOW, Chat, Clock
from tests.test_officer import actions, sample

CATALOG = load_catalog()
VN = ZoneInfo("Asia/Ho_Chi_Minh")
XN = "xac_nhan_tinh_trang_hon_nhan"
HOLIDAYS = load_holidays()
H = dt.timedelta(hours=1)


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0, tz: ZoneInfo = VN) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=tz).astimezone(dt.UTC)


class World:
    def __init__(self, store: Store, config: ReminderConfig | None = None) -> None:
        self.store = store
        self.clock = Clock()
        self.reminders = Reminders(store, CATALOG, config=config or ReminderConfig())
        self.svc = ConversationService(
            store, CATALOG, clock=self.clock, raise_errors=True, reminders=self.reminders
        )

    def chat(self, user: str = "1001") -> Chat:
        return Chat(self.svc, user=user)

    def dispatch(self):
        return self.reminders.dispatch(self.clock())

    def rows(self, **filters):
        with self.store.unit_of_work() as uow:
            return rows.reminders(uow, **filters)

    def citizen_id(self, user: str = "1001") -> int:
        with self.store.unit_of_work() as uow:
            return uow.citizen("test", user).id


def start_draft(chat: Chat) -> None:
    chat.cmd("start", XN)  # the draft exists from here on


def act(chat: Chat, action: tuple[str, str]) -> None:
    kind, value = action
    chat.press_token(value) if kind == "press" else chat.send(value)


# ----------------------------------------------------------------------------- pure parts


def test_quiet_hours_span_midnight_and_move_to_their_end() -> None:
    cfg = ReminderConfig()
    assert in_quiet(dt.datetime(2026, 11, 27, 21, 0, tzinfo=VN), cfg)
    assert in_quiet(dt.datetime(2026, 11, 27, 6, 59, tzinfo=VN), cfg)
    assert not in_quiet(dt.datetime(2026, 11, 27, 7, 0, tzinfo=VN), cfg)
    assert not in_quiet(dt.datetime(2026, 11, 27, 20, 59, tzinfo=VN), cfg)
    assert after_quiet(local(2026, 11, 27, 22, 30), VN, cfg) == local(2026, 11, 28, 7)
    assert after_quiet(local(2026, 11, 28, 3, 0), VN, cfg) == local(2026, 11, 28, 7)
    assert after_quiet(local(2026, 11, 28, 12, 0), VN, cfg) == local(2026, 11, 28, 12)
    day = ReminderConfig(quiet_start=12, quiet_end=14)  # a window inside one day
    assert after_quiet(local(2026, 11, 28, 13, 0), VN, day) == local(2026, 11, 28, 14)


def test_working_days_skip_weekends_and_tet() -> None:
    # Tết Nguyên Đán 2027: mùng 1 is Saturday 6 Feb; the days off run 4-10 Feb
    assert dt.date(2027, 2, 6) in HOLIDAYS and dt.date(2027, 2, 10) in HOLIDAYS
    assert add_working_days(dt.date(2027, 2, 3), 1, HOLIDAYS) == dt.date(2027, 2, 11)
    assert add_working_days(dt.date(2027, 2, 3), 3, HOLIDAYS) == dt.date(2027, 2, 15)
    # 2026: mùng 1 Tết is 17 Feb; 16-20 Feb off
    assert {dt.date(2026, 2, d) for d in range(16, 21)} <= HOLIDAYS
    assert add_working_days(dt.date(2026, 2, 13), 1, HOLIDAYS) == dt.date(2026, 2, 23)
    # 2028: mùng 1 Tết is 26 Jan
    assert dt.date(2028, 1, 26) in HOLIDAYS
    # a plain Friday: three working days later is Wednesday
    assert add_working_days(dt.date(2026, 11, 27), 3, HOLIDAYS) == dt.date(2026, 12, 2)
    assert add_working_days(dt.date(2026, 11, 28), 0, HOLIDAYS) == dt.date(2026, 11, 30)


def test_config_from_env() -> None:
    cfg = ReminderConfig.from_env(
        {
            "MOTCUA_REMINDER_DRAFT_HOURS": "1,5",
            "MOTCUA_QUIET_HOURS": "22-6",
            "MOTCUA_REMINDERS": "on",
        }
    )
    assert cfg.draft_hours == (1.0, 5.0) and (cfg.quiet_start, cfg.quiet_end) == (22, 6)
    assert ReminderConfig.from_env({}) == ReminderConfig()
    for bad in (
        {"MOTCUA_REMINDER_DRAFT_HOURS": "72,24"},
        {"MOTCUA_REMINDER_DRAFT_HOURS": "x"},
        {"MOTCUA_QUIET_HOURS": "21"},
        {"MOTCUA_QUIET_HOURS": "25-7"},
        {"MOTCUA_REMINDERS": "maybe"},
        {"MOTCUA_REMINDER_BATCH": "0"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ReminderConfig.from_env(bad)


# ----------------------------------------------------------------------------- service + DB


def test_draft_reminders_after_24_and_72_hours_then_never(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    start_draft(chat)
    planned = w.rows(statuses=["planned"])
    assert [(r.kind, r.seq, r.due_at) for r in planned] == [
        (DRAFT, 1, FIXED_NOW + 24 * H),
        (DRAFT, 2, FIXED_NOW + 72 * H),
    ]
    w.clock.advance(hours=23, minutes=59)
    assert w.dispatch() == []
    w.clock.advance(minutes=1)
    (first,) = w.dispatch()
    assert first.target.chat_id == "1001"
    assert "còn dở" in first.reply.text
    assert "/tatnhac" in first.reply.text  # the first reminder says how to stop them
    assert w.dispatch() == []  # sent once
    w.clock.advance(hours=48)
    (second,) = w.dispatch()
    assert "lần cuối" in second.reply.text and "/tatnhac" not in second.reply.text
    w.clock.advance(days=30)
    assert w.dispatch() == []
    assert [r.status for r in w.rows()] == ["sent", "sent"]

    # the button continues exactly where the draft stands, whatever the menu turn
    with store.unit_of_work() as uow:
        short = uow.drafts_of(w.citizen_id())[0].short_id
    chat.cmd("hoso")  # a newer menu turn: the reminder's button is not stale for all that
    before = chat.history[-1]
    assert second.reply.buttons[0][0].data == f"rm.draft.{short}"
    chat.press_data(second.reply.buttons[0][0].data)
    assert chat.replies[-1].buttons[0][0].data.startswith(f"{short}.")
    chat.cmd("start")  # the same place as the resume offer leads to
    chat.press_token(f"r:{short}")
    assert chat.replies[-1] == chat.history[-1] and chat.history[-1] != before


def test_activity_replans_and_finishing_voids(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    start_draft(chat)
    w.clock.advance(hours=20)
    act(chat, actions(sample())[0])
    planned = w.rows(statuses=["planned"])
    assert [r.due_at for r in planned] == [w.clock() + 24 * H, w.clock() + 72 * H]
    w.clock.advance(hours=5)  # 25 h after the start, 5 h after the last activity
    assert w.dispatch() == []

    chat.cmd("huy")
    chat.press_token("cy")
    assert w.rows(statuses=["planned"]) == []
    w.clock.advance(days=5)
    assert w.dispatch() == []


def test_deleted_draft_takes_its_reminders(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    start_draft(chat)
    assert len(w.rows()) == 2
    chat.cmd("hoso")
    chat.press_token(
        next(
            b.data for r in chat.replies for row in r.buttons for b in row if ".d:" in b.data
        ).split(".", 2)[2]
    )
    chat.press_token(
        next(
            b.data for r in chat.replies for row in r.buttons for b in row if ".dy:" in b.data
        ).split(".", 2)[2]
    )
    assert w.rows() == []


def test_quiet_hours_postpone_to_seven_in_the_citizens_zone(store: Store) -> None:
    w = World(store, ReminderConfig(draft_hours=(2.0,)))
    w.clock.now = local(2026, 11, 27, 20, 0)
    chat = w.chat()
    start_draft(chat)
    w.clock.now = local(2026, 11, 27, 22, 0)
    assert w.dispatch() == []  # inside 21:00-07:00: moved, not dropped
    (row,) = w.rows(statuses=["planned"])
    assert row.due_at == local(2026, 11, 28, 7, 0) and row.note == "quiet"
    w.clock.now = local(2026, 11, 28, 6, 59)
    assert w.dispatch() == []
    w.clock.now = local(2026, 11, 28, 7, 0)
    assert len(w.dispatch()) == 1

    # a citizen in Tokyo (two hours ahead): 05:30 there while 03:30 in Viet Nam
    other = w.chat("2002")
    with store.unit_of_work() as uow:
        citizen = uow.add_citizen("test", "2002", "Mai", "", w.clock())
        citizen.timezone = "Asia/Tokyo"
        uow.save_citizen(citizen)
        uow.commit()
    w.clock.now = local(2026, 11, 29, 1, 30)  # VN time
    start_draft(other)
    w.clock.now = local(2026, 11, 29, 3, 30)
    assert w.dispatch() == []
    moved = w.rows(citizen_id=w.citizen_id("2002"), statuses=["planned"])
    assert moved[0].due_at == local(2026, 11, 29, 7, 0, tz=ZoneInfo("Asia/Tokyo"))


def test_opt_out_and_back_in(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    start_draft(chat)
    chat.cmd("tatnhac")
    assert "Đã tắt nhắc nhở" in chat.replies[0].text
    w.clock.advance(hours=24)
    assert w.dispatch() == []
    assert [r.note for r in w.rows(statuses=["cancelled"])] == ["stopped"]
    chat.cmd("batnhac")
    assert "Đã bật nhắc nhở" in chat.replies[0].text
    w.clock.advance(hours=48)
    assert len(w.dispatch()) == 1  # the 72 h one, planned before, goes out again
    assert ("tatnhac", "Tắt nhắc nhở") in w.svc.commands()
    assert ("batnhac", "Bật lại nhắc nhở") in w.svc.commands()


def test_never_while_an_officer_owns_the_case(store: Store) -> None:
    w = World(store, ReminderConfig(owner_recheck_minutes=30))
    chat = w.chat()
    start_draft(chat)
    cid = w.citizen_id()
    with store.unit_of_work() as uow:
        case = uow.add_handoff(cid, None, "asked", w.clock())
        uow.update_handoff(case, status="claimed", claimed_by="42", claimed_at=w.clock())
        uow.commit()
    w.clock.advance(hours=24)
    assert w.dispatch() == []
    (row, _) = w.rows(statuses=["planned"])
    assert row.note == "officer" and row.due_at == w.clock() + dt.timedelta(minutes=30)
    with store.unit_of_work() as uow:
        uow.update_handoff(case, status="closed", closed_at=w.clock())
        uow.commit()
    w.clock.advance(minutes=30)
    assert len(w.dispatch()) == 1


def test_unreachable_cancels_everything(store: Store) -> None:
    w = World(store)
    start_draft(w.chat())
    w.reminders.unreachable("test", "1001", w.clock())
    assert w.rows(statuses=["planned"]) == []
    with store.unit_of_work() as uow:
        assert rows.pref(uow, w.citizen_id()) == (False, True)


def test_result_check_after_processing_days(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    chat.cmd("start", XN)
    for action in actions(sample()):
        act(chat, action)
    chat.send("000.00.12.H01-261127-0001")  # Friday 27/11/2026, 09:00
    (result,) = w.rows(statuses=["planned"])  # the draft ones are void
    assert result.kind == RESULT
    assert result.due_at == local(2026, 12, 2, 17, 0)  # three working days: Wednesday 17:00
    chat.cmd("hoso")  # more activity does not plan it twice
    assert len(w.rows(statuses=["planned"])) == 1
    w.clock.now = local(2026, 12, 2, 17, 0)
    (sent,) = w.dispatch()
    assert "000.00.12.H01-261127-0001" in sent.reply.text
    assert "Hồ sơ của tôi" in sent.reply.text


# ----------------------------------------------------------------------------- exactly once


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_workers_send_each_reminder_exactly_once(kind: str) -> None:
    with make_store(kind) as store:
        w = World(store)
        for n in range(30):
            start_draft(w.chat(str(3000 + n)))
        w.clock.advance(hours=100)
        second = Reminders(Store(str(store.engine.url.render_as_string(False))), CATALOG)
        got: list[list] = [[], []]
        barrier = threading.Barrier(2)

        def work(i: int, reminders: Reminders) -> None:
            barrier.wait()
            for _ in range(10):
                got[i].extend(reminders.dispatch(w.clock()))

        threads = [
            threading.Thread(target=work, args=(0, w.reminders)),
            threading.Thread(target=work, args=(1, second)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        second.store.dispose()
        sent = [(d.target.chat_id, d.reply.text) for d in got[0] + got[1]]
        # 30 citizens; both reminders were due, only the later one goes out
        assert len(sent) == 30 and len(set(sent)) == 30
        assert all("lần cuối" in text for _, text in sent)
        assert sorted(r.status for r in w.rows()) == ["cancelled"] * 30 + ["sent"] * 30


# ----------------------------------------------------------------------------- settings, CLI


def test_settings_read_and_refuse_reminder_values(tmp_path) -> None:
    from bot.settings import SettingsError, load_settings

    env_file = tmp_path / ".env"
    env_file.write_text("MOTCUA_REMINDER_DRAFT_HOURS=2,6\nMOTCUA_QUIET_HOURS=22-6\n")
    settings = load_settings(env_file=env_file)
    assert settings.reminders.draft_hours == (2.0, 6.0)
    assert settings.reminders.quiet_start == 22
    env_file.write_text("MOTCUA_QUIET_HOURS=late\n")
    with pytest.raises(SettingsError, match="MOTCUA_QUIET_HOURS"):
        load_settings(env_file=env_file)


def test_cli_lists_planned_and_due_reminders(tmp_path) -> None:
    from tests.test_cli import motcua

    db = tmp_path / "motcua.db"
    store = Store(f"sqlite:///{db}")
    store.upgrade()
    w = World(store)
    w.clock.now = dt.datetime.now(dt.UTC) - 30 * H  # 30 hours ago: the 24 h one is due
    start_draft(w.chat())
    store.dispose()
    done = motcua(["reminders"], tmp_path, env={"DATABASE_URL": f"sqlite:///{db}"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("DUE ") and " draft  #1 " in lines[0]
    assert not lines[1].startswith("DUE") and " draft  #2 " in lines[1]
    assert lines[-1] == "motcua: 2 reminders listed, 1 due now"

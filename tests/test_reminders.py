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
    APPOINTMENT,
    CALLBACK,
    DRAFT,
    RESULT,
    VALIDITY,
    ReminderConfig,
    Reminders,
    add_months,
    add_working_days,
    after_quiet,
    in_quiet,
    load_holidays,
)
from flows.service import ConversationService
from flows.types import Delivery
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
    chat.press("Đồng ý")  # the consent notice (flows/privacy.py)


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
    chat.press("Đồng ý")
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
    # this sample receives by post: what that means, not what to bring to the office
    assert "bưu chính công ích" in sent.reply.text and "CCCD" not in sent.reply.text


def test_result_check_says_what_to_bring_to_the_office(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    chat.cmd("start", XN)
    chat.press("Đồng ý")
    for action in actions(sample(result_delivery="office")):
        act(chat, action)
    chat.send("000.00.12.H01-261127-0002")
    w.clock.now = local(2026, 12, 2, 17, 0)
    (sent,) = w.dispatch()
    assert "Khi nhận kết quả:" in sent.reply.text
    assert "CCCD (thẻ căn cước) bản gốc" in sent.reply.text
    assert "văn bản ủy quyền" in sent.reply.text
    assert "bưu chính công ích đến" not in sent.reply.text


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


# ----------------------------------------------------------------------------- call-backs,
# appointments (the officer desk plans them) and the validity of a result


class Desk:
    """The service with the officer desk (tests/test_officer.py's two communes) and
    reminders; draft reminders pushed out of the way."""

    def __init__(self, store: Store, config: ReminderConfig | None = None) -> None:
        from flows.officer import OfficerDesk
        from tests.test_officer import World as OfficerWorld
        from tests.test_officer import directory

        self.store = store
        self.clock = Clock()  # Friday 27/11/2026, 09:00 in Viet Nam
        self.reminders = Reminders(
            store, CATALOG, config=config or ReminderConfig(draft_hours=(1000.0,))
        )
        desk = OfficerDesk(directory(), CATALOG, reannounce_minutes=30)
        svc = ConversationService(
            store,
            CATALOG,
            clock=self.clock,
            raise_errors=True,
            officers=desk,
            reminders=self.reminders,
        )
        self.w = OfficerWorld(svc, store, self.clock)

    def dispatch(self) -> list[Delivery]:
        return self.reminders.dispatch(self.clock())

    def rows(self, kinds=(CALLBACK, APPOINTMENT), **filters):
        with self.store.unit_of_work() as uow:
            return rows.reminders(uow, kinds=kinds, **filters)


def with_callback(d: Desk, slot: int = 1):
    """A citizen mid-form asks for an officer and a call-back on the `slot`-th offered slot
    (1: 07:30-11:30 Monday 30/11)."""
    from tests.test_officer import citizen_mid_form

    lan = citizen_mid_form(d.w)
    lan.press_token("cb")
    lan.send("0912 345 678")
    slots = [b for r in lan.out.replies for row in r.buttons for b in row if ".s" in b.data]
    lan.press(slots[slot].data)
    return lan


def test_call_back_reminds_citizen_day_before_and_hour_before_and_the_owner(
    store: Store,
) -> None:
    from tests.test_officer import GROUP_A, TU, Officer

    d = Desk(store)
    with_callback(d)
    planned = d.rows(statuses=["planned"])
    monday = local(2026, 11, 30, 7, 30)
    assert [(r.kind, r.audience, r.seq, r.due_at) for r in planned] == [
        (CALLBACK, "citizen", 1, monday - 24 * H),
        (CALLBACK, "citizen", 2, monday - H),
        (CALLBACK, "officer", 1, monday - H),
    ]
    d.clock.now = monday - 24 * H - dt.timedelta(minutes=1)
    assert d.dispatch() == []
    d.clock.now = monday - 24 * H  # Sunday 07:30
    (day_before,) = d.dispatch()
    assert day_before.target.chat_id == "5001"
    assert "sẽ gọi cho bạn số 0912345678, khoảng 07:30–11:30 thứ hai 30/11" in day_before.reply.text
    assert "/tatnhac" in day_before.reply.text  # the first reminder says how to stop them
    short = d.w.draft_of("5001").short_id
    assert day_before.reply.buttons[0][0].data == f"rm.callback.{short}"

    # Tú claims the case: these reminders are the officers' own plan and still go
    d.clock.now = local(2026, 11, 29, 10, 0)
    Officer(d.w, TU, "Tú").press("o.c.1")
    # 06:30 is inside the quiet hours: both move to 07:00, still before the slot
    d.clock.now = monday - H
    assert d.dispatch() == []
    assert {(r.note, r.due_at) for r in d.rows(statuses=["planned"])} == {
        ("quiet", local(2026, 11, 30, 7, 0))
    }
    d.clock.now = local(2026, 11, 30, 7, 0)
    sent = d.dispatch()
    to_citizen = [x for x in sent if x.target.chat_id == "5001"]
    to_officer = [x for x in sent if x.target.chat_id == TU]
    assert len(sent) == 2 and len(to_citizen) == 1 and len(to_officer) == 1
    assert "Còn khoảng 30 phút nữa" in to_citizen[0].reply.text
    assert "/tatnhac" not in to_citizen[0].reply.text
    officer = to_officer[0]
    assert "#1: còn 30 phút đến giờ gọi lại" in officer.reply.text
    assert "0912345678" in officer.reply.text and "Chưa có cán bộ" not in officer.reply.text
    assert officer.reply.buttons[0][0].data == "o.v.1"
    # if Tú never opened a private chat with the bot, the group's topic gets it instead
    assert officer.fallback.target.chat_id == str(GROUP_A)
    assert d.dispatch() == [] and d.rows(statuses=["planned"]) == []


def test_nobody_claimed_the_officer_reminder_goes_to_the_group(store: Store) -> None:
    from tests.test_officer import GROUP_A

    d = Desk(store)
    with_callback(d)
    d.clock.now = local(2026, 11, 30, 7, 0)
    sent = d.dispatch()
    (group,) = [x for x in sent if x.target.chat_id == str(GROUP_A)]
    assert "Chưa có cán bộ nào nhận yêu cầu này" in group.reply.text
    assert group.reply_to_id == d.w.case().group_message_id  # under the case's card
    assert not hasattr(group, "fallback")


def test_call_back_done_or_case_closed_voids_its_reminders(store: Store) -> None:
    from tests.test_officer import HA, Officer

    d = Desk(store)
    with_callback(d)
    Officer(d.w, HA, "Hà").press("o.d.1")  # called back already
    assert {r.note for r in d.rows(statuses=["cancelled"])} == {"done"}
    assert d.rows(statuses=["planned"]) == []

    other = Desk(store)  # a second citizen on the same database
    from tests.test_officer import Person

    lan = Person(other.w, "5002")
    lan.cmd("start")
    lan.press_label("Gặp cán bộ")
    lan.press_token("cb")
    lan.send("0987 654 321")
    slots = [b for r in lan.out.replies for row in r.buttons for b in row if ".s" in b.data]
    lan.press(slots[1].data)
    (case,) = [c for c in _cases(store) if c.callback_phone == "0987654321"]
    assert len(other.rows(handoff_id=case.id, statuses=["planned"])) == 3
    Officer(other.w, HA, "Hà").press(f"o.x.{case.id}")  # closed without calling
    assert {r.note for r in other.rows(handoff_id=case.id)} == {"closed"}
    other.clock.now = local(2026, 11, 30, 7, 0)
    assert other.dispatch() == []


def _cases(store: Store):
    with store.unit_of_work() as uow:
        return uow.handoffs()


def test_hour_before_inside_quiet_hours_is_dropped_when_too_late(store: Store) -> None:
    d = Desk(store, ReminderConfig(draft_hours=(1000.0,), quiet_end=8))  # quiet 21:00-08:00
    with_callback(d)
    d.clock.now = local(2026, 11, 29, 7, 30)  # Sunday 07:30, quiet: moved to 08:00
    assert d.dispatch() == []
    d.clock.now = local(2026, 11, 29, 8, 0)
    assert len(d.dispatch()) == 1
    d.clock.now = local(2026, 11, 30, 6, 30)  # the end of quiet hours, 08:00, is too late
    assert d.dispatch() == []
    assert {r.note for r in d.rows(statuses=["cancelled"])} == {"quiet_late"}
    assert [r.note for r in d.rows(statuses=["sent"])] == [""]  # the day-before one


def test_a_citizen_who_stopped_reminders_or_blocked_the_bot_still_gets_the_officer_told(
    store: Store,
) -> None:
    from tests.test_officer import GROUP_A

    d = Desk(store)
    lan = with_callback(d)
    lan.cmd("tatnhac")
    d.reminders.unreachable("telegram", "5001", d.clock())
    assert [(r.audience, r.status) for r in d.rows()] == [
        ("citizen", "cancelled"),
        ("citizen", "cancelled"),
        ("officer", "planned"),
    ]
    d.clock.now = local(2026, 11, 30, 7, 0)
    (sent,) = d.dispatch()
    assert sent.target.chat_id == str(GROUP_A)


def test_appointment_with_hen(store: Store) -> None:
    from tests.test_officer import HA, TU, Officer, citizen_mid_form

    d = Desk(store)
    lan = citizen_mid_form(d.w)
    ha, tu = Officer(d.w, HA, "Hà"), Officer(d.w, TU, "Tú")
    out = ha.cmd("hen", "30/11 9:00")  # nobody owns the case yet: claim first
    assert out.replies and d.rows() == []
    ha.press("o.c.1")
    tu_out = tu.cmd("hen", "30/11 9:00")  # not the owner
    assert "Hà" in tu_out.replies[0].text and d.rows() == []
    assert "Cách hẹn" in ha.cmd("hen", "mai nhé").replies[0].text
    assert "Cách hẹn" in ha.cmd("hen", "26/11 9:00").replies[0].text  # yesterday
    closed = ha.cmd("hen", "29/11 9:00").replies[0].text  # a Sunday
    assert "ngoài giờ làm việc" in closed and d.rows() == []

    out = ha.cmd("hen", "30/11 9:00")
    assert "Đã hẹn người dân của yêu cầu #1 đến xã lúc 09:00 thứ hai 30/11" in out.replies[0].text
    told = [x.reply.text for x in out.deliveries if x.target.chat_id == "5001"]
    assert told and "Cán bộ Hà (UBND xã Bắc Ruộng) hẹn bạn" in told[0]
    assert "Thôn 1, xã Bắc Ruộng" in told[0] and "0263 3880 000" in told[0]
    visit = local(2026, 11, 30, 9, 0)
    assert [(r.audience, r.seq, r.due_at) for r in d.rows(statuses=["planned"])] == [
        ("citizen", 1, visit - 24 * H),
        ("citizen", 2, visit - H),
        ("officer", 1, visit - H),
    ]
    assert [a.action for a in d.w.audit(1)][-1] == "appointment"
    assert "at" in d.w.audit(1)[-1].details  # a time, no personal data

    # moved: the old rows are void, the new ones planned
    ha.cmd("hen", "1/12 14:00")
    assert {r.note for r in d.rows(statuses=["cancelled"])} == {"replanned"}
    visit = local(2026, 12, 1, 14, 0)
    # the officer gives the conversation back to the bot: the visit stays planned
    ha.cmd("trave")
    assert d.w.case().status == "closed"
    assert len(d.rows(statuses=["planned"])) == 3
    d.clock.now = visit - 24 * H
    (day_before,) = d.dispatch()
    assert "bạn có hẹn tại UBND xã Bắc Ruộng lúc 14:00 thứ ba 01/12" in day_before.reply.text
    d.clock.now = visit - H
    sent = d.dispatch()
    assert sorted(x.target.chat_id for x in sent) == sorted(["5001", HA])
    (officer,) = [x for x in sent if x.target.chat_id == HA]
    assert "#1: còn 1 giờ đến lịch hẹn người dân" in officer.reply.text
    assert lan  # the citizen took no part in the planning


def test_appointment_cancelled_with_hen_huy(store: Store) -> None:
    from tests.test_officer import HA, Officer, citizen_mid_form

    d = Desk(store)
    citizen_mid_form(d.w)
    ha = Officer(d.w, HA, "Hà")
    ha.press("o.c.1")
    assert "không có lịch hẹn" in ha.cmd("hen", "huy").replies[0].text
    ha.cmd("hen", "30/11 9:00")
    out = ha.cmd("hen", "hủy")
    assert "Đã hủy lịch hẹn 09:00 thứ hai 30/11 của yêu cầu #1" in out.replies[0].text
    told = [x.reply.text for x in out.deliveries if x.target.chat_id == "5001"]
    assert told and "đã hủy lịch hẹn lúc 09:00 thứ hai 30/11" in told[0]
    assert d.rows(statuses=["planned"]) == []
    d.clock.now = local(2026, 11, 30, 8, 0)
    assert d.dispatch() == []


def submitted(w: World, chat: Chat) -> str:
    """A marital-status draft submitted with a dossier code on Friday 27/11/2026."""
    chat.cmd("start", XN)
    chat.press("Đồng ý")
    for action in actions(sample()):
        act(chat, action)
    chat.send("000.00.12.H01-261127-0001")
    with w.store.unit_of_work() as uow:
        return uow.drafts_of(w.citizen_id())[0].short_id


def test_validity_reminder_only_when_the_result_is_not_used_yet(store: Store) -> None:
    assert CATALOG.get(XN).validity_months == 6  # procedure.yaml, from TT 04/2020 art. 12.2
    w = World(store)
    chat = w.chat()
    short = submitted(w, chat)
    w.clock.now = local(2026, 12, 2, 17, 0)
    (result,) = w.dispatch()
    assert [b.data for row in result.reply.buttons for b in row] == [
        f"rm.result.{short}",
        f"rm.got.{short}",
    ]
    chat.press_data(f"rm.got.{short}")
    assert "Bạn đã dùng giấy này chưa?" in chat.replies[0].text
    assert [b.data for row in chat.replies[0].buttons for b in row] == [
        f"rm.unused.{short}",
        f"rm.used.{short}",
    ]
    chat.press_data(f"rm.unused.{short}")
    text = chat.replies[0].text
    assert "6 tháng kể từ ngày cấp" in text and "27/11/2026" in text
    assert "không sớm hơn ngày 27/05/2027" in text and "nhắc bạn ngày 13/05/2027" in text
    (row,) = w.rows(statuses=["planned"])
    assert row.kind == VALIDITY and row.due_at == local(2027, 5, 13, 9, 0)
    w.clock.now = local(2027, 5, 13, 8, 59)
    assert w.dispatch() == []
    w.clock.now = local(2027, 5, 13, 9, 0)
    (sent,) = w.dispatch()
    assert "hết hạn không sớm hơn ngày 27/05/2027" in sent.reply.text
    assert "hoặc đến khi tình trạng hôn nhân thay đổi" in sent.reply.text  # the YAML's facts
    assert sent.reply.buttons[0][0].data == f"rm.used.{short}"
    chat.press_data(f"rm.used.{short}")
    assert "không nhắc hạn" in chat.replies[0].text


def test_used_result_plans_nothing_and_voids_the_validity_reminder(store: Store) -> None:
    w = World(store)
    chat = w.chat()
    short = submitted(w, chat)
    chat.press_data(f"rm.got.{short}")  # collected before the result reminder: it is void
    assert [r.note for r in w.rows(statuses=["cancelled"]) if r.kind == RESULT] == ["collected"]
    chat.press_data(f"rm.used.{short}")
    assert w.rows(statuses=["planned"]) == []
    chat.press_data(f"rm.unused.{short}")  # changed their mind: planned
    assert [r.kind for r in w.rows(statuses=["planned"])] == [VALIDITY]
    chat.press_data(f"rm.used.{short}")  # and used it after all: void
    assert w.rows(statuses=["planned"]) == []
    assert [r.note for r in w.rows(statuses=["cancelled"]) if r.kind == VALIDITY] == ["used"]
    w.clock.advance(days=400)
    assert w.dispatch() == []
    # someone else's draft: a stale button, nothing revealed or planned
    other = w.chat("1002")
    other.cmd("start")
    other.press_data(f"rm.unused.{short}")
    assert w.rows(statuses=["planned"]) == []


def test_appointment_and_validity_settings() -> None:
    cfg = ReminderConfig.from_env(
        {
            "MOTCUA_REMINDER_APPOINTMENT_HOURS": "48,2",
            "MOTCUA_REMINDER_OFFICER_MINUTES": "30",
            "MOTCUA_REMINDER_VALIDITY_DAYS": "7",
            "MOTCUA_REMINDER_VALIDITY_HOUR": "8",
        }
    )
    assert cfg.appointment_hours == (48.0, 2.0) and cfg.officer_minutes == 30
    assert (cfg.validity_days, cfg.validity_hour) == (7, 8)
    for bad in (
        {"MOTCUA_REMINDER_APPOINTMENT_HOURS": "1,24"},
        {"MOTCUA_REMINDER_APPOINTMENT_HOURS": "0"},
        {"MOTCUA_REMINDER_OFFICER_MINUTES": "0"},
        {"MOTCUA_REMINDER_VALIDITY_DAYS": "x"},
        {"MOTCUA_REMINDER_VALIDITY_HOUR": "24"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ReminderConfig.from_env(bad)
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2026, 11, 27), 6) == dt.date(2027, 5, 27)


def test_appointment_dates_as_officers_type_them() -> None:
    from flows.officer import OfficerDesk
    from tests.test_officer import directory

    desk = OfficerDesk(directory(), CATALOG)
    commune = desk.dir.default
    now = FIXED_NOW  # Friday 27/11/2026, 09:00

    def parse(arg: str):
        return desk._appointment_time(arg, now, commune)

    assert parse("30/11 9:00") == dt.datetime(2026, 11, 30, 9, 0, tzinfo=VN)
    assert parse("9h30 30/11/2026") == dt.datetime(2026, 11, 30, 9, 30, tzinfo=VN)
    assert parse("14g 1-12") == dt.datetime(2026, 12, 1, 14, 0, tzinfo=VN)
    assert parse("5/1 8:00") == dt.datetime(2027, 1, 5, 8, 0, tzinfo=VN)  # next January
    assert parse("26/11 9:00") is None  # yesterday
    assert parse("27/11 8:00") is None  # an hour ago
    assert parse("31/2 9:00") is None and parse("30/11") is None and parse("9:00") is None
    assert parse("30/11/2028 9:00") is None  # more than a year ahead

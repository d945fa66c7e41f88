"""Reminders end to end: python-telegram-bot (bot.telegram with the bot.reminders ticker,
in this process) polls the local fake Bot API; the real service and Reminders run over a
real SQLite database with a test clock the ticker reads (no sleeping for hours: the test
moves the clock and the ticker, every 0.05 s, sends what became due)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from telegram.ext import Application

from bot.pacing import Pacer
from bot.reminders import schedule
from bot.telegram import build_application, start, stop
from flows.reminders import ReminderConfig, Reminders
from flows.service import ConversationService
from flows.types import Command, Inbound, Press, Sender
from procedures.loader import load_catalog
from storage import reminders as rows
from storage.store import Store
from tests.conftest import make_store
from tests.fakebot import FakeBotAPI, FakeUser
from tests.harness import Clock
from tests.test_e2e_telegram import TOKEN

CATALOG = load_catalog()
XN = "xac_nhan_tinh_trang_hon_nhan"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
TICK = 0.05


@dataclass
class Scene:
    api: FakeBotAPI
    store: Store
    clock: Clock
    svc: ConversationService
    reminders: Reminders

    def app(self) -> Application:
        app = build_application(self.svc, self.api.token, self.api.base_url, self.api.base_file_url)
        schedule(app, self.reminders, TICK, clock=self.clock, first=TICK)
        return app

    def planned(self) -> list[rows.ReminderRec]:
        with self.store.unit_of_work() as uow:
            return rows.reminders(uow, statuses=[rows.PLANNED])

    def pref(self, user: FakeUser) -> tuple[bool, bool]:
        with self.store.unit_of_work() as uow:
            return rows.pref(uow, uow.citizen("telegram", str(user.user_id)).id)


@contextlib.asynccontextmanager
async def scene(config: ReminderConfig | None = None) -> AsyncIterator[Scene]:
    async with FakeBotAPI(token=TOKEN) as api:
        with make_store("sqlite") as store:
            clock = Clock()  # Friday 27/11/2026, 09:00 in Viet Nam
            reminders = Reminders(store, CATALOG, config=config)
            svc = ConversationService(store, CATALOG, clock=clock, reminders=reminders)
            s = Scene(api, store, clock, svc, reminders)
            yield s


@contextlib.asynccontextmanager
async def running(s: Scene) -> AsyncIterator[Application]:
    app = s.app()
    await start(app, poll_timeout=1)
    try:
        yield app
    finally:
        await stop(app)


async def begin(user: FakeUser) -> None:
    await user.send_command("/start", XN)
    [notice] = await user.replies(1)  # first contact: the consent notice (flows/privacy.py)
    await user.press(next(d for row in notice.buttons for label, d in row if "Đồng ý" in label))
    await user.replies(1)
    await user.wait_quiet(0.2)


async def nothing_more(user: FakeUser, seconds: float = 0.4) -> None:
    assert await user.wait_quiet(seconds) == []


async def test_unfinished_draft_reminded_after_24_h_and_72_h_then_never() -> None:
    async with scene() as s, running(s):
        lan = s.api.user(5001, "Lan")
        await begin(lan)
        s.clock.advance(hours=23)
        await nothing_more(lan)
        s.clock.advance(hours=1)
        (first,) = await lan.replies(1)
        assert "còn dở" in first.text and "/tatnhac" in first.text
        assert first.data()[0].startswith("rm.draft.")
        await nothing_more(lan)
        s.clock.advance(hours=48)
        (second,) = await lan.replies(1)
        assert "lần cuối" in second.text and "/tatnhac" not in second.text
        s.clock.advance(days=20)
        await nothing_more(lan)

        # the button continues the draft where it stands
        await lan.press(second.data()[0])
        resumed = await lan.replies(1) + await lan.wait_quiet(0.2)
        short = second.data()[0].rsplit(".", 1)[1]
        assert any(d.startswith(short + ".") for m in resumed for d in m.data())


async def test_quiet_hours_postpone_to_seven() -> None:
    async with scene(ReminderConfig(draft_hours=(2.0,))) as s, running(s):
        s.clock.now = dt.datetime(2026, 11, 27, 20, 0, tzinfo=VN).astimezone(dt.UTC)
        binh = s.api.user(5002, "Bình")
        await begin(binh)
        s.clock.now = dt.datetime(2026, 11, 27, 22, 0, tzinfo=VN).astimezone(dt.UTC)
        await nothing_more(binh)
        (row,) = s.planned()
        assert row.due_at == dt.datetime(2026, 11, 28, 7, 0, tzinfo=VN)
        s.clock.now = dt.datetime(2026, 11, 28, 7, 0, tzinfo=VN).astimezone(dt.UTC)
        (sent,) = await binh.replies(1)
        assert "còn dở" in sent.text


async def test_due_during_downtime_sent_once_after_restart() -> None:
    async with scene() as s:
        chi = s.api.user(5003, "Chi")
        async with running(s):
            await begin(chi)
        s.clock.advance(hours=30)  # the bot is down when the 24 h reminder falls due
        async with running(s):
            (sent,) = await chi.replies(1)
            assert "còn dở" in sent.text
            await nothing_more(chi)
        async with running(s):  # and restarted again: not sent twice
            await nothing_more(chi, 0.5)
        assert len(s.planned()) == 1  # the 72 h one waits


async def test_opt_out_is_honoured() -> None:
    async with scene() as s, running(s):
        dung = s.api.user(5004, "Dũng")
        await begin(dung)
        await dung.send_command("/tatnhac")
        got = await dung.replies(1) + await dung.wait_quiet(0.2)
        assert "Đã tắt nhắc nhở" in got[0].text
        s.clock.advance(hours=100)
        await nothing_more(dung, 0.5)
        assert s.pref(dung) == (True, False)
        assert ("tatnhac", "Tắt nhắc nhở") in s.api.commands


async def test_blocked_bot_marks_unreachable_and_cancels() -> None:
    async with scene() as s, running(s):
        em = s.api.user(5005, "Em")
        await begin(em)
        em.blocked = True
        s.clock.advance(hours=24)
        for _ in range(200):
            if s.pref(em) == (False, True):
                break
            await asyncio.sleep(0.02)
        assert s.pref(em) == (False, True)
        assert s.planned() == []  # the 72 h one is cancelled too
        em.blocked = False
        s.clock.advance(hours=48)
        await nothing_more(em)


async def test_many_due_at_once_are_paced_within_telegram_limits() -> None:
    async with scene() as s, running(s):
        users = [s.api.user(6000 + n, f"P{n}") for n in range(40)]
        for user in users:  # drafts started earlier (no messages through Telegram now)
            sender = Sender("telegram", str(user.user_id))
            notice = s.svc.handle(Inbound(sender, Command("start", XN)))  # the consent notice
            agree = next(b.data for r in notice.replies for row in r.buttons for b in row)
            s.svc.handle(Inbound(sender, Press(agree)))
        other = next(p.id for p in CATALOG.ordered() if p.id != XN)
        s.svc.handle(Inbound(Sender("telegram", str(users[0].user_id)), Command("start", other)))
        s.api.fail_next("sendMessage", status=429, retry_after=1)  # once: waited and retried
        s.clock.advance(hours=24)
        for user in users[1:]:
            (got,) = await user.replies(1, timeout=15)
            assert "còn dở" in got.text
        both = await users[0].replies(2, timeout=15)
        assert both[1].at - both[0].at >= 0.95  # one chat: a second apart
        await asyncio.sleep(1.0)
        assert s.api.violations == []
        assert len([m for m in s.api.sent() if "còn dở" in m.text]) == 41  # each once


async def test_pacer_spaces_sends() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    for chat in (1, 2, 1, -5, -5):
        await pacer.wait(chat)
    # 1 and 2 go 0.04 s apart; 1 again waits for its second; the group, then 3 s later
    assert [round(x, 2) for x in slept] == [0.04, 0.96, 0.04, 3.0]


# ----------------------------------------------------------------------------- call-backs,
# appointments and the validity of a result, with the officer desk


def desk_scene(config: ReminderConfig | None = None):
    """tests/test_e2e_officer.py's two communes (Bắc Ruộng a forum) plus the reminders
    ticker; draft reminders pushed out of the way."""
    from tests.test_e2e_officer import scene as officer_scene

    return officer_scene(
        reminders=config or ReminderConfig(draft_hours=(1000.0,)), reminder_tick=TICK
    )


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=VN).astimezone(dt.UTC)


async def expect(user: FakeUser, fragment: str):
    """The next bot message to `user` containing `fragment` (messages before it skipped)."""
    for _ in range(10):
        for m in await user.replies(1, timeout=15):
            if fragment in m.text:
                return m
    raise AssertionError(f"no message with {fragment!r}")


async def until(predicate, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def call_back_on_monday(s, lan: FakeUser) -> None:
    """Lan asks for an officer, then a call-back 07:30-11:30 Monday 30/11."""
    from tests.test_e2e_officer import ask_officer

    await ask_officer(s, lan)
    await lan.press("c.1.cb")
    await expect(lan, "số điện thoại")
    await lan.send_text("0912 345 678")
    slots = await expect(lan, "giờ")
    monday = next(d for d in slots.data() if d.endswith(".s2611300730"))
    await lan.press(monday)
    noted = await expect(lan, "Đã ghi lại")
    assert "07:30–11:30 thứ hai 30/11" in noted.text
    await lan.wait_quiet(0.2)


async def test_call_back_reminders_through_telegram() -> None:
    async with desk_scene() as s:
        lan = s.api.user(5001, "Lan", username="lan_hn")
        await call_back_on_monday(s, lan)
        card = s.case().group_message_id
        await s.group_a.press(s.ha, "o.c.1", card)  # Hà owns the case from now on
        await expect(lan, "Cán bộ Hà")

        s.clock.now = at(2026, 11, 29, 7, 29)
        await nothing_more(lan)
        s.clock.now = at(2026, 11, 29, 7, 30)  # the day before
        (day_before,) = await lan.replies(1)
        assert "sẽ gọi cho bạn số 0912345678, khoảng 07:30–11:30 thứ hai 30/11" in day_before.text
        assert "/tatnhac" in day_before.text
        assert await s.ha.wait_quiet(0.2) == []

        s.clock.now = at(2026, 11, 30, 6, 30)  # an hour before is inside the quiet hours
        await nothing_more(lan)
        assert await s.ha.wait_quiet(0.2) == []
        s.clock.now = at(2026, 11, 30, 7, 0)  # their end, still before the slot
        (hour_before,) = await lan.replies(1)
        assert "Còn khoảng 30 phút nữa" in hour_before.text  # sent though Hà owns the case
        (officer,) = await s.ha.replies(1)
        assert "#1: còn 30 phút đến giờ gọi lại" in officer.text and "0912345678" in officer.text
        assert officer.data() == ["o.v.1"]
        s.clock.advance(days=3)
        await nothing_more(lan)
        assert s.api.violations == []


async def test_call_back_done_or_unclaimed_through_telegram() -> None:
    async with desk_scene() as s:
        lan = s.api.user(5001, "Lan", username="lan_hn")
        await call_back_on_monday(s, lan)
        [topic] = s.group_a.topics
        # nobody claimed it: the officers' reminder goes to the case's topic
        s.clock.now = at(2026, 11, 30, 7, 0)
        (hour_before,) = await lan.replies(1)  # the day-before one, due too, is superseded
        assert "Còn khoảng 30 phút nữa" in hour_before.text
        await until(lambda: reminded(s.group_a.in_topic(topic)))
        (note,) = reminded(s.group_a.in_topic(topic))
        assert "Chưa có cán bộ nào nhận" in note.text and note.data() == ["o.v.1"]

    async with desk_scene() as s:
        lan = s.api.user(5001, "Lan", username="lan_hn")
        await call_back_on_monday(s, lan)
        await s.group_a.press(s.tu, "o.d.1", s.case().group_message_id)  # called already
        await expect(lan, "đã ghi nhận cuộc gọi lại")
        await lan.wait_quiet(0.2)
        s.clock.now = at(2026, 11, 30, 7, 0)  # the day-before one was due too: all void
        await nothing_more(lan, 0.5)
        await s.group_a.wait_quiet(0.5)
        assert reminded(s.group_a.history()) == []
        assert s.api.violations == []


def reminded(messages) -> list:
    return [m for m in messages if "#1: còn 30 phút đến giờ gọi lại" in m.text]


async def test_validity_reminder_only_when_not_used_yet_through_telegram() -> None:
    from flows.types import Press, Text
    from tests.test_officer import actions, sample

    async with scene(ReminderConfig(draft_hours=(1000.0,))) as s, running(s):
        people = [s.api.user(5101, "Giang"), s.api.user(5102, "Hải")]
        for person in people:  # the form answered earlier (through the service)
            sender = Sender("telegram", str(person.user_id))
            last = s.svc.handle(Inbound(sender, Command("start", XN)))
            # first contact: the consent notice (flows/privacy.py); "Đồng ý" starts the form
            agree = next(b.data for r in last.replies for row in r.buttons for b in row)
            last = s.svc.handle(Inbound(sender, Press(agree)))
            for kind, value in actions(sample()):
                if kind == "text":
                    last = s.svc.handle(Inbound(sender, Text(value)))
                else:
                    data = next(
                        b.data
                        for r in reversed(last.replies)
                        for row in r.buttons
                        for b in row
                        if b.data.split(".", 2)[-1] == value
                    )
                    last = s.svc.handle(Inbound(sender, Press(data)))
            await person.send_text("000.00.12.H01-261127-0001")
            await person.replies(1)
            await person.wait_quiet(0.2)
        s.clock.now = dt.datetime(2026, 12, 2, 17, 0, tzinfo=VN).astimezone(dt.UTC)
        for person, answer in zip(people, ("unused", "used"), strict=True):
            (result,) = await person.replies(1)
            assert "đã qua thời gian giải quyết" in result.text
            got = next(d for d in result.data() if d.startswith("rm.got."))
            await person.press(got)
            (question,) = await person.replies(1)
            assert "Bạn đã dùng giấy này chưa?" in question.text
            await person.press(next(d for d in question.data() if d.startswith(f"rm.{answer}.")))
            (noted,) = await person.replies(1)
            assert ("nhắc bạn ngày 13/05/2027" in noted.text) == (answer == "unused")
        s.clock.now = dt.datetime(2027, 5, 13, 9, 0, tzinfo=VN).astimezone(dt.UTC)
        (expiring,) = await people[0].replies(1)
        assert "hết hạn không sớm hơn ngày 27/05/2027" in expiring.text
        assert expiring.data()[0].startswith("rm.used.")
        await nothing_more(people[1], 0.5)  # used already: nothing
        assert s.api.violations == []

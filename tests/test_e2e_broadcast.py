"""Broadcasts (/thongbao) end to end: python-telegram-bot (bot.telegram plus the
bot.broadcast job, in this process) polls the local fake Bot API; the real service,
OfficerDesk and Broadcasts run over a real SQLite database.

Citizens are put in the database directly (people who talked to the bot earlier); what the
officers do and what citizens receive goes through Telegram. The fake server counts sends
over Telegram's pacing guidance (`api.violations`); edits in the officers' group are
checked here against 20 a minute.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from telegram.ext import Application

from bot.broadcast import schedule
from bot.telegram import build_application, start, stop
from flows.broadcast import BroadcastConfig, Broadcasts
from flows.communes import Directory, one_commune
from flows.officer import OfficerDesk
from flows.service import ConversationService
from storage import broadcast as rows
from storage import reminders as prefs
from storage.store import DraftRec, Store
from tests.conftest import make_store
from tests.fakebot import BotMessage, FakeBotAPI, FakeGroup, FakeUser
from tests.test_e2e_officer import answered, until
from tests.test_e2e_telegram import TOKEN, start_bot, stop_bot
from tests.test_officer import BA_DINH, CATALOG, GROUP_A, HA, STRANGER, TU, XN, directory

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
HEADER = "📢 Thông báo của UBND xã Bắc Ruộng"
REFUSED = "Xin lỗi, nút này chỉ dành cho cán bộ"


@dataclass
class Scene:
    api: FakeBotAPI
    store: Store
    desk: OfficerDesk
    svc: ConversationService
    group: FakeGroup
    ha: FakeUser
    tu: FakeUser
    stranger: FakeUser

    def app(self) -> Application:
        app = build_application(
            self.svc,
            self.api.token,
            self.api.base_url,
            self.api.base_file_url,
            groups=self.desk.groups(),
        )
        schedule(app, self.desk.broadcasts, seconds=0.1, first=0.1)
        return app

    def citizens(
        self, n: int, first: int, commune: int | None = None, **pref: bool
    ) -> list[FakeUser]:
        """`n` citizens who talked to the bot before; with `commune`, a draft that names
        it as the residence commune; `pref`: their reminder switch (stopped, unreachable)."""
        users = [self.api.user(first + i, f"Dân {i}") for i in range(n)]
        with self.store.unit_of_work() as uow:
            for u in users:
                c = uow.add_citizen("telegram", str(u.user_id), u.first_name, "", T0)
                if commune is not None:
                    uow.add_draft(draft(c.id, commune))
                if pref:
                    prefs.set_pref(uow, c.id, T0, **pref)
            uow.commit()
        return users

    def broadcast(self, bid: int = 1) -> rows.BroadcastRec:
        with self.store.unit_of_work() as uow:
            b = rows.get(uow, bid)
            assert b is not None
            return b

    def recipients(self, bid: int = 1) -> list[tuple[int, str, str]]:
        with self.store.unit_of_work() as uow:
            return rows.recipients(uow, bid)


def draft(citizen_id: int, commune: int) -> DraftRec:
    return DraftRec(
        id=None,
        short_id="",
        citizen_id=citizen_id,
        procedure_id=XN,
        procedure_version=1,
        status="active",
        stage="questions",
        subject="",
        payload={"answers": {"subject_residence_commune": commune}, "shown": {}},
        dossier_code=None,
        created_at=T0,
        updated_at=T0,
        version=1,
    )


@contextlib.asynccontextmanager
async def scene(
    dirs: Directory | None = None, config: BroadcastConfig | None = None
) -> AsyncIterator[Scene]:
    async with FakeBotAPI(token=TOKEN) as api:
        group = api.group(GROUP_A, "Cán bộ Bắc Ruộng")
        with make_store("sqlite") as store:
            desk = OfficerDesk(dirs or directory(), CATALOG)
            desk.broadcasts = Broadcasts(
                store, CATALOG, desk, config or BroadcastConfig(progress_seconds=1)
            )
            svc = ConversationService(store, CATALOG, officers=desk)
            yield Scene(
                api,
                store,
                desk,
                svc,
                group,
                api.user(int(HA), "Hà"),
                api.user(int(TU), "Tú"),
                api.user(int(STRANGER), "Mallory"),
            )


@contextlib.asynccontextmanager
async def running(s: Scene) -> AsyncIterator[Application]:
    app = s.app()
    await start(app, poll_timeout=1)
    try:
        yield app
    finally:
        await stop(app)


def announcements(user: FakeUser) -> list[BotMessage]:
    return [m for m in user.history() if m.text.startswith("📢")]


def final_report(chat: FakeGroup | FakeUser) -> BotMessage | None:
    found = [m for m in chat.history() if m.kind == "message" and "Đã gửi xong" in m.text]
    return found[-1] if found else None


async def test_preview_refusals_then_send_in_the_officers_group() -> None:
    async with scene() as s, running(s):
        ours = s.citizens(3, 5100)
        theirs = s.citizens(2, 5200, commune=BA_DINH)  # Ba Đình's citizens
        (quiet,) = s.citizens(1, 5300, stopped=True)
        (gone,) = s.citizens(1, 5400, unreachable=True)

        await s.group.send_text(s.ha, "/thongbao Lịch tiếp dân\nSáng thứ Bảy làm việc đến 11 giờ.")
        (preview,) = await s.group.replies(1)
        assert preview.text.startswith("👀 Xem trước thông báo #1")
        assert "Gửi tới: 3 người dân của UBND xã Bắc Ruộng" in preview.text
        assert "1 người đã tắt nhắc nhở (/tatnhac), 1 người đã chặn trợ lý" in preview.text
        assert f"{HEADER}\n\nLịch tiếp dân\nSáng thứ Bảy làm việc đến 11 giờ." in preview.text
        assert "/tatnhac" in preview.text.rsplit(HEADER, 1)[1]
        assert preview.data() == ["b.1.y", "b.1.n"]

        # a non-officer, then another officer of the commune: refused, the buttons stay
        def restored() -> int:
            return len([m for m in s.group.history() if m.kind == "edit" and m.data()])

        for n, (who, notice) in enumerate(((s.stranger, REFUSED), (s.tu, "Chỉ cán bộ đã soạn"))):
            q = await s.group.press(who, "b.1.y", preview.message_id)
            assert (await answered(s.api, q)).startswith(notice)
            await until(lambda n=n: restored() == n + 1)
            await s.group.wait_quiet(0.3)
            markup = s.api.message(GROUP_A, preview.message_id).get("reply_markup")
            assert markup and markup["inline_keyboard"][0][0]["callback_data"] == "b.1.y"
        assert s.broadcast().status == rows.PREVIEW
        assert all(not announcements(u) for u in ours)

        q = await s.group.press(s.ha, "b.1.y", preview.message_id)
        assert (await answered(s.api, q)) == "Bắt đầu gửi thông báo #1 tới 3 người."
        await until(lambda: final_report(s.group) is not None)
        report = final_report(s.group)
        assert report.text.startswith("✅ Đã gửi xong thông báo #1 tới người dân")
        assert "• Đã gửi: 3\n• Đã chặn trợ lý: 0\n• Không gửi được: 0" in report.text
        assert "1 người đã tắt nhắc nhở, 1 người đã chặn trợ lý" in report.text
        assert report.reply_to == preview.message_id
        for u in ours:
            (got,) = announcements(u)
            assert got.text.startswith(HEADER) and "Sáng thứ Bảy" in got.text
        for u in (*theirs, quiet, gone):
            assert u.history() == []
        progress = s.api.message(GROUP_A, preview.message_id)
        assert progress["text"].startswith("✅ Thông báo #1: đã gửi xong.")
        assert "reply_markup" not in progress

        # pressing again: nothing is sent twice
        q = await s.group.press(s.ha, "b.1.y", preview.message_id)
        assert "đã được gửi đi rồi" in await answered(s.api, q)
        await s.group.wait_quiet(0.5)
        assert all(len(announcements(u)) == 1 for u in ours)
        assert s.broadcast().status == rows.DONE
        with s.store.unit_of_work() as uow:
            assert [a.action for a in uow.audit()] == ["broadcast_preview", "broadcast_send"]
        assert s.api.violations == []


async def test_private_chat_usage_cancel_and_refusals() -> None:
    async with scene(config=BroadcastConfig(max_chars=100)) as s, running(s):
        (lan,) = s.citizens(1, 5100)
        await s.stranger.send_command("/thongbao", "Mất điện")
        (no,) = await s.stranger.replies(1)
        assert no.text.startswith("Xin lỗi, lệnh này chỉ dành cho cán bộ xã")
        await s.ha.send_command("/thongbao")
        (usage,) = await s.ha.replies(1)
        assert usage.text.startswith("Cách gửi thông báo") and "100 ký tự" in usage.text
        await s.ha.send_command("/thongbao", "x" * 101)
        (long,) = await s.ha.replies(1)
        assert long.text.startswith("Nội dung dài 101 ký tự, quá giới hạn 100")

        await s.ha.send_command("/thongbao", "Chiều nay mất điện từ 14 giờ.")
        (preview,) = await s.ha.replies(1)
        assert "Gửi tới: 1 người dân" in preview.text and "Không gửi:" not in preview.text
        q = await s.ha.press("b.1.n", preview.message_id)
        assert await answered(s.api, q) == "Đã huỷ thông báo #1."
        (cancelled,) = await s.ha.replies(1)
        assert cancelled.text == "Đã huỷ thông báo #1. Không gửi cho ai."
        q = await s.ha.press("b.1.y", preview.message_id)  # too late: cancelled
        assert await answered(s.api, q) == "Thông báo #1 đã huỷ."
        q = await s.stranger.press("b.1.y")  # forged
        assert (await answered(s.api, q)).startswith(REFUSED)
        await lan.wait_quiet(0.5)
        assert lan.history() == [] and s.broadcast().status == rows.CANCELLED
        assert s.recipients() == []


async def test_blocked_citizen_counted_marked_unreachable_and_reminders_cancelled() -> None:
    async with scene() as s, running(s):
        an, binh = s.citizens(2, 5100)
        binh.blocked = True
        with s.store.unit_of_work() as uow:
            cid = uow.citizen("telegram", str(binh.user_id)).id
            d = uow.add_draft(draft(cid, 23152))
            prefs.plan(uow, cid, d.id, "draft", [(1, T0 + dt.timedelta(days=1))], T0)
            uow.commit()
        await s.ha.send_command("/thongbao", "Họp dân tối thứ Sáu.")
        (preview,) = await s.ha.replies(1)
        await s.ha.press("b.1.y", preview.message_id)
        await until(lambda: final_report(s.ha) is not None)
        assert "• Đã gửi: 1\n• Đã chặn trợ lý: 1\n• Không gửi được: 0" in final_report(s.ha).text
        assert len(announcements(an)) == 1 and binh.history() == []
        with s.store.unit_of_work() as uow:
            assert prefs.pref(uow, cid) == (False, True)
            assert prefs.reminders(uow, citizen_id=cid, statuses=[prefs.PLANNED]) == []
        assert sorted(st for _, st, _ in s.recipients()) == [rows.BLOCKED, rows.SENT]

        # the next broadcast leaves them out from the start
        await s.ha.wait_quiet(0.3)
        await s.ha.send_command("/thongbao", "Lần hai.")
        (again,) = await s.ha.replies(1, timeout=15)
        assert "Gửi tới: 1 người dân" in again.text and "1 người đã chặn trợ lý" in again.text


async def test_restart_mid_broadcast_sends_the_rest_once() -> None:
    async with scene() as s:
        users = s.citizens(200, 6000)
        async with running(s):
            await s.ha.send_command("/thongbao", "Tiêm phòng cho trẻ vào thứ Hai.")
            (preview,) = await s.ha.replies(1)
            await s.ha.press("b.1.y", preview.message_id)
            await until(lambda: sum(len(announcements(u)) for u in users) >= 20)
        first = sum(len(announcements(u)) for u in users)
        left = [r for r in s.recipients() if r[1] == rows.PENDING]
        assert first < 200 and len(left) == 200 - first  # stopped cleanly: none in flight
        assert s.broadcast().status == rows.SENDING and final_report(s.ha) is None
        # a process that died mid-send leaves one row "sending": never sent again
        with s.store.unit_of_work() as uow:
            rows._session(uow).exec(
                rows._R.update()
                .where(rows._R.c.citizen_id == left[0][0])
                .values(status=rows.CLAIMED, claimed_at=T0)
            )
            uow.commit()
        async with running(s):
            await until(lambda: final_report(s.ha) is not None, timeout=30)
        assert [len(announcements(u)) for u in users].count(1) == 199
        assert sum(len(announcements(u)) for u in users) == 199
        report = final_report(s.ha).text
        assert "• Đã gửi: 199\n• Đã chặn trợ lý: 0\n• Không gửi được: 1" in report
        assert (left[0][0], rows.FAILED, "interrupted") in s.recipients()
        assert s.api.violations == []


async def test_two_thousand_citizens_paced_within_limits_each_once() -> None:
    """About 80 s: 2,000 messages at 25 a second."""
    one = one_commune(GROUP_A, [HA], "Asia/Ho_Chi_Minh")
    async with scene(dirs=one, config=BroadcastConfig()) as s:
        with s.store.unit_of_work() as uow:  # 2,000 citizens, quickly
            for i in range(2000):
                s.api.user(100_000 + i)
                uow.add_citizen("telegram", str(100_000 + i), "", "", T0)
            uow.commit()
        async with running(s):
            await s.group.send_text(
                s.ha, "/thongbao Từ 01/12 bộ phận một cửa làm việc cả sáng thứ Bảy."
            )
            (preview,) = await s.group.replies(1)
            assert "Gửi tới: 2.000 người dân" in preview.text
            await s.group.press(s.ha, "b.1.y", preview.message_id)
            await until(lambda: final_report(s.group) is not None, timeout=150)
        assert "• Đã gửi: 2.000\n" in final_report(s.group).text
        sent = [m for m in s.api.sent() if m.chat_id > 0 and m.text.startswith("📢")]
        assert len(sent) == 2000 and len({m.chat_id for m in sent}) == 2000
        assert s.api.violations == []
        # the officers' group: at most 20 messages a minute, edits included
        times = [m.at for m in s.group.history()]
        for i, t in enumerate(times):
            assert len([x for x in times[i:] if x - t < 60]) <= 20
        assert {st for _, st, _ in s.recipients()} == {rows.SENT}
        assert any(m.kind == "edit" and "đang gửi" in m.text for m in s.group.history())


async def test_motcua_run_broadcasts(tmp_path: Path) -> None:
    """The wiring of `motcua run`: OFFICER_CHAT_ID / OFFICER_IDS, the job on its queue."""
    db = tmp_path / "motcua.db"
    store = Store(f"sqlite:///{db}")
    store.upgrade()
    with store.unit_of_work() as uow:
        uow.add_citizen("telegram", "5001", "Lan", "", T0)
        uow.commit()
    store.dispose()
    async with FakeBotAPI(token=TOKEN) as api:
        group = api.group(-100555, "Cán bộ xã")
        (tmp_path / ".env").write_text("OFFICER_CHAT_ID=-100555\nOFFICER_IDS=9001\n")
        bot = start_bot(api, db, tmp_path / "bot.log")
        try:
            lan = api.user(5001, "Lan")
            ha = api.user(9001, "Hà")
            await group.send_text(ha, "/thongbao Mai nghỉ lễ.")
            (preview,) = await group.replies(1, timeout=30)
            assert "Gửi tới: 1 người dân" in preview.text
            await group.press(ha, "b.1.y", preview.message_id)
            (got,) = await lan.replies(1, timeout=15)
            assert got.text.startswith("📢 Thông báo của Ủy ban nhân dân xã\n\nMai nghỉ lễ.")
            await until(lambda: final_report(group) is not None)
        finally:
            await stop_bot(bot)
    log = (tmp_path / "bot.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]

"""The officer side end to end: python-telegram-bot (bot.telegram, in this process) polls the
local fake Bot API; the real ConversationService with an OfficerDesk answers over a real
SQLite database and a test clock. One more test starts `motcua run` as a subprocess with
OFFICER_CHAT_ID / OFFICER_IDS.

Bắc Ruộng's officers work in a forum supergroup (one topic per case); Ba Đình's in a plain
supergroup (they answer a case by replying to its messages).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.reminders import schedule
from bot.telegram import build_application, start, stop
from flows.officer import OfficerDesk
from flows.reminders import ReminderConfig, Reminders
from flows.service import ConversationService
from flows.types import Command, Inbound, Press, Sender, Text
from storage.store import Store
from tests.conftest import make_store
from tests.fakebot import BotMessage, FakeBotAPI, FakeGroup, FakeUser
from tests.harness import Clock
from tests.test_e2e_telegram import TOKEN, start_bot, stop_bot
from tests.test_officer import (
    BA_DINH,
    BAC_RUONG,
    BINH,
    CATALOG,
    CCCD,
    GROUP_A,
    GROUP_B,
    HA,
    STRANGER,
    TU,
    XN,
    actions,
    directory,
    sample,
)


@dataclass
class Scene:
    api: FakeBotAPI
    svc: ConversationService
    store: Store
    clock: Clock
    group_a: FakeGroup  # Bắc Ruộng: a forum
    group_b: FakeGroup  # Ba Đình: no topics
    ha: FakeUser
    tu: FakeUser
    binh: FakeUser
    stranger: FakeUser

    def case(self, case_id: int = 1):
        with self.store.unit_of_work() as uow:
            return uow.handoff(case_id)

    def prefill(self, user: FakeUser, until: str, **changes) -> None:
        """Answer the form up to `until` through the service (what the citizen typed
        earlier); the officer part below goes through Telegram."""
        sender = Sender("telegram", str(user.user_id), user.first_name, user.username or "")
        last = self.svc.handle(Inbound(sender, Command("start", XN)))
        # first contact: the consent notice (flows/privacy.py); "Đồng ý" starts the form
        agree = next(b.data for r in last.replies for row in r.buttons for b in row)
        last = self.svc.handle(Inbound(sender, Press(agree)))
        for kind, value in actions(sample(**changes)):
            if kind == "text":
                last = self.svc.handle(Inbound(sender, Text(value)))
            else:
                data = next(
                    b.data
                    for r in reversed(last.replies)
                    for row in r.buttons
                    for b in row
                    if b.data.split(".", 2)[-1] == value
                )
                last = self.svc.handle(Inbound(sender, Press(data)))
            with self.store.unit_of_work() as uow:
                citizen = uow.citizen("telegram", str(user.user_id))
                if until in uow.drafts_of(citizen.id)[0].payload["answers"]:
                    return
        raise AssertionError(f"{until} never answered")


@contextlib.asynccontextmanager
async def scene(
    tick_seconds: float | None = None,
    *,
    reminders: ReminderConfig | None = None,
    reminder_tick: float = 1.0,
) -> AsyncIterator[Scene]:
    """Two communes (Bắc Ruộng's group a forum) and the real bot on SQLite. `reminders`:
    also the reminders (with that config) and their ticker every `reminder_tick` s."""
    async with FakeBotAPI(token=TOKEN) as api:
        group_a = api.group(GROUP_A, "Cán bộ Bắc Ruộng", forum=True)
        group_b = api.group(GROUP_B, "Cán bộ Ba Đình")
        with make_store("sqlite") as store:
            clock = Clock()  # Friday 09:00 in Viet Nam: the office is open
            desk = OfficerDesk(directory(), CATALOG, reannounce_minutes=30)
            ticker = None if reminders is None else Reminders(store, CATALOG, config=reminders)
            svc = ConversationService(store, CATALOG, clock=clock, officers=desk, reminders=ticker)
            app = build_application(
                svc,
                api.token,
                api.base_url,
                api.base_file_url,
                groups=desk.groups(),
                tick_seconds=tick_seconds,
            )
            if ticker is not None:
                schedule(app, ticker, reminder_tick, clock=clock, first=reminder_tick)
            await start(app, poll_timeout=1)
            try:
                yield Scene(
                    api,
                    svc,
                    store,
                    clock,
                    group_a,
                    group_b,
                    api.user(int(HA), "Hà", username="ha_cb"),
                    api.user(int(TU), "Tú", username="tu_cb"),
                    api.user(int(BINH), "Bình"),
                    api.user(int(STRANGER), "Mallory"),
                )
            finally:
                await stop(app)


def card_of(messages: list[BotMessage]) -> BotMessage:
    return next(m for m in messages if m.kind == "message" and "🆘 Yêu cầu" in m.text)


async def answered(api: FakeBotAPI, query_id: str, timeout: float = 10.0) -> str:
    for _ in range(int(timeout / 0.02)):
        for a in api.answered_callbacks:
            if a.callback_query_id == query_id:
                return a.text
        await asyncio.sleep(0.02)
    raise AssertionError(f"callback {query_id} never answered")


async def until(predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def ask_officer(s: Scene, user: FakeUser, until_field: str = "subject_id_number", **ch):
    s.prefill(user, until_field, **ch)
    await user.send_command("/canbo")
    return await user.replies(2, timeout=15) + await user.wait_quiet(0.3)


# ----------------------------------------------------------------------------- the story


async def test_mid_form_claim_race_relay_with_photos_and_return() -> None:
    async with scene() as s:
        lan = s.api.user(5001, "Lan", username="lan_hn")
        got = await ask_officer(s, lan)
        assert "Đã báo cho cán bộ UBND xã Bắc Ruộng" in got[0].text
        assert "Giấy tờ đó được cấp ngày nào?" in got[-1].text

        # one card, in a topic of its own, ID masked
        await until(lambda: s.case().group_message_id is not None)
        [topic] = s.group_a.topics
        assert s.group_a.topics[topic].startswith("#1")
        card = card_of(s.group_a.in_topic(topic))
        assert "••••••••2345" in card.text and CCCD not in card.text
        assert card.labels() == ["✋ Nhận xử lý", "📄 Xem hồ sơ", "✖️ Đóng"]
        assert s.case().topic_id == topic and s.case().group_message_id == card.message_id

        # two officers press "claim" at the same moment: one wins
        q_ha = await s.group_a.press(s.ha, "o.c.1", card.message_id)
        q_tu = await s.group_a.press(s.tu, "o.c.1", card.message_id)
        notices = {await answered(s.api, q_ha), await answered(s.api, q_tu)}
        assert notices == {"Bạn đã nhận yêu cầu #1.", "Đã có cán bộ Hà nhận yêu cầu này."}
        assert s.case().claimed_by == HA
        joined = await lan.replies(1)
        assert "Cán bộ Hà (UBND xã Bắc Ruộng) đã tham gia" in joined[0].text
        await until(lambda: "✅ Hà đang xử lý" in s.api.message(GROUP_A, card.message_id)["text"])

        # the citizen writes and sends a photo: both land in the topic, the bot is quiet
        await lan.send_text("Em không nhớ ngày cấp")
        await lan.send_photo(caption="ảnh mặt sau thẻ")
        await until(lambda: len([m for m in s.group_a.in_topic(topic) if m.kind == "copy"]) == 1)
        in_topic = s.group_a.in_topic(topic)
        assert any(m.text == "💬 #1 · Lan:\nEm không nhớ ngày cấp" for m in in_topic)
        [copied] = [m for m in in_topic if m.kind == "copy"]
        assert copied.caption == "💬 #1 · Lan gửi:\nảnh mặt sau thẻ"
        assert "photo" in s.api.message(GROUP_A, copied.message_id)
        assert await lan.wait_quiet(0.3) == []

        # the officer answers in the topic, with a photo too
        await s.group_a.send_text(s.ha, "Chị xem dòng ngày cấp ở mặt sau nhé", thread_id=topic)
        await s.group_a.send_photo(s.ha, caption="ở đây", thread_id=topic)
        back = await lan.replies(2)
        assert back[0].text == (
            "🏛 UBND xã Bắc Ruộng – cán bộ Hà:\nChị xem dòng ngày cấp ở mặt sau nhé"
        )
        assert (
            back[1].kind == "copy" and back[1].caption == "🏛 UBND xã Bắc Ruộng – cán bộ Hà:\nở đây"
        )
        assert "photo" in s.api.message(5001, back[1].message_id)
        # another officer talking in the topic is not relayed
        await s.group_a.send_text(s.tu, "ok anh", thread_id=topic)
        assert await lan.wait_quiet(0.4) == []

        # the officer hands back: the citizen continues at the same step
        await s.group_a.send_text(s.ha, "/trave", thread_id=topic)
        resumed = await lan.replies(2)
        assert "Cán bộ Hà đã rời cuộc trò chuyện" in resumed[0].text
        assert "Giấy tờ đó được cấp ngày nào?" in resumed[-1].text
        await lan.send_text("15/8/2024")
        [stored] = await lan.replies(1)
        assert "Đã lưu: 15/08/2024" in stored.text
        assert s.case().status == "closed"
        assert any("trả lại cho trợ lý" in m.text for m in s.group_a.in_topic(topic))
        assert not [v for v in s.api.violations if "all chats" in v]


async def test_routing_to_two_communes_and_replies_in_a_group_without_topics() -> None:
    async with scene() as s:
        lan = s.api.user(5001, "Lan")
        an = s.api.user(5002, "An")
        await ask_officer(s, lan)
        await ask_officer(s, an, subject_residence_commune="phường Ba Đình, Hà Nội")
        await until(lambda: s.case(2) is not None and s.case(2).group_message_id is not None)
        assert (s.case(1).commune_code, s.case(2).commune_code) == (BAC_RUONG, BA_DINH)
        card_b = card_of(s.group_b.history())
        assert "UBND phường Ba Đình" in card_b.text and card_b.thread_id is None
        assert not [m for m in s.group_a.history() if "#2" in m.text]
        assert not [m for m in s.group_b.history() if "#1" in m.text]

        # Bình cannot take Bắc Ruộng's case; takes his own
        card_a = card_of(s.group_a.history())
        q = await s.group_a.press(s.binh, "o.c.1", card_a.message_id)
        assert (await answered(s.api, q)).startswith("Xin lỗi, nút này chỉ dành cho cán bộ")
        q = await s.group_b.press(s.binh, "o.c.2", card_b.message_id)
        assert await answered(s.api, q) == "Bạn đã nhận yêu cầu #2."
        await an.replies(1)
        # no topics: the officer replies to the case's messages
        await an.send_text("Chào anh")
        await until(lambda: any(m.text.startswith("💬 #2") for m in s.group_b.history()))
        relay = next(m for m in s.group_b.history() if m.text.startswith("💬 #2"))
        assert relay.reply_to == card_b.message_id
        await s.group_b.send_text(s.binh, "Chào chị", reply_to=relay.message_id)
        [hello] = await an.replies(1)
        assert hello.text == "🏛 UBND phường Ba Đình – cán bộ Bình:\nChào chị"
        await s.group_b.send_text(s.binh, "nói chuyện trong nhóm")  # not a reply: stays
        assert await an.wait_quiet(0.4) == []


async def test_a_non_officer_tries_every_officer_command_and_button() -> None:
    async with scene() as s:
        lan = s.api.user(5001, "Lan")
        await ask_officer(s, lan)
        await until(lambda: s.case().group_message_id is not None)
        card = card_of(s.group_a.history())
        refusal = "Xin lỗi, lệnh này chỉ dành cho cán bộ xã đã được đăng ký."
        for command, arg in (("/hangdoi", ""), ("/thongke", "30"), ("/hoso", "1")):
            await s.stranger.send_command(command, arg)
            [reply] = await s.stranger.replies(1)
            assert reply.text.startswith(refusal) and reply.kind == "message"
            assert "Lan" not in reply.text and "#1" not in reply.text
        for action in "cvrfxd":
            q = await s.group_a.press(s.stranger, f"o.{action}.1", card.message_id)
            assert (await answered(s.api, q)).startswith("Xin lỗi, nút này chỉ dành cho cán bộ")
        topic = s.case().topic_id
        await s.group_a.wait_quiet(0.3)  # the card read: what follows are answers
        for command in ("/trave", "/sua 4 X", "/giao", "/hangdoi"):
            await s.group_a.send_text(s.stranger, command, thread_id=topic)
            [reply] = await s.group_a.replies(1)
            assert reply.text.startswith(refusal) and reply.thread_id == topic
        await s.group_a.send_text(s.stranger, "xin chào", thread_id=topic)
        assert await s.stranger.wait_quiet(0.3) == [] and await lan.wait_quiet(0.3) == []
        case = s.case()
        assert (case.status, case.claimed_by) == ("open", None)
        with s.store.unit_of_work() as uow:
            assert uow.audit() == []
        assert not [m for m in s.stranger.history() if CCCD in m.text]


async def test_officer_private_commands_and_the_chart() -> None:
    async with scene() as s:
        lan = s.api.user(5001, "Lan")
        await ask_officer(s, lan)
        await until(lambda: s.case().group_message_id is not None)
        card = card_of(s.group_a.history())
        # "Xem hồ sơ" in the group: the full draft in Hà's private chat only
        q = await s.group_a.press(s.ha, "o.v.1", card.message_id)
        assert "tin nhắn riêng" in await answered(s.api, q)
        [full] = await s.ha.replies(1)
        assert CCCD in full.text and "Số giấy tờ tùy thân" in full.text
        assert not [m for m in s.group_a.history() if CCCD in m.text]
        await s.ha.send_command("/hangdoi")
        [queue] = await s.ha.replies(1)
        assert "#1 · ⏳ Chờ cán bộ nhận" in queue.text
        await s.ha.send_command("/thongke", "30")
        text, chart = await s.ha.replies(2)
        assert "Nhờ cán bộ: 1" in text.text
        assert chart.kind == "photo" and chart.document.startswith(b"\x89PNG")
        assert chart.mime_type == "image/png"


async def test_unclaimed_case_is_announced_again_by_the_job_queue() -> None:
    async with scene(tick_seconds=0.2) as s:
        lan = s.api.user(5001, "Lan")
        await ask_officer(s, lan)
        await until(lambda: s.case().group_message_id is not None)
        first = s.case().group_message_id
        await asyncio.sleep(0.6)  # ticks run; 0 working minutes passed: nothing
        assert s.case().announce_count == 1
        s.clock.advance(minutes=31)
        await until(lambda: s.case().announce_count == 2)
        await until(lambda: s.case().group_message_id != first)
        again = s.api.message(GROUP_A, s.case().group_message_id)
        assert "NHẮC LẠI (lần 2)" in again["text"]
        assert again["message_thread_id"] == s.case().topic_id
        [told] = await lan.replies(1)
        assert "chưa nhận được yêu cầu" in told.text
        await lan.press("c.1.w", message_id=told.message_id)
        await lan.replies(2)
        assert s.case().status == "withdrawn"


# ----------------------------------------------------------------------------- `motcua run`


async def test_motcua_run_with_officer_settings(tmp_path: Path) -> None:
    async with FakeBotAPI(token=TOKEN) as api:
        group = api.group(-100555, "Cán bộ xã")
        env_file = tmp_path / ".env"
        env_file.write_text("OFFICER_CHAT_ID=-100555\nOFFICER_IDS=9001\n", encoding="utf-8")
        bot = start_bot(api, tmp_path / "motcua.db", tmp_path / "bot.log")
        try:
            lan = api.user(5001, "Lan")
            await lan.send_command("/canbo")
            # first contact: the consent notice (flows/privacy.py); "Đồng ý" asks the officer
            [notice] = await lan.replies(1, timeout=30)
            assert "/xoadulieu" in notice.text and group.history() == []
            await lan.press(next(d for row in notice.buttons for x, d in row if "Đồng ý" in x))
            got = await lan.replies(2, timeout=30)
            assert "Đã báo cho cán bộ" in got[0].text
            [card] = await group.replies(1, timeout=15)
            assert "🆘 Yêu cầu #1" in card.text
            ha = api.user(9001, "Hà")
            await group.press(ha, "o.c.1", card.message_id)
            joined = await lan.replies(1, timeout=15)
            assert "Cán bộ Hà" in joined[0].text
            await group.replies(1, timeout=15)  # "claimed" note
            # the citizen erases their data: the office is told, the card loses its data
            await lan.send_command("/xoadulieu")
            [ask] = await lan.replies(1, timeout=15)
            await lan.press(next(d for row in ask.buttons for x, d in row if "xóa hết" in x))
            [done] = await lan.replies(1, timeout=15)
            assert "Đã xóa toàn bộ dữ liệu" in done.text and "báo cho cán bộ" in done.text
            [note] = await group.replies(1, timeout=15)
            assert "#1" in note.text and "đã xóa toàn bộ dữ liệu" in note.text
            assert "Lan" not in note.text
            await until(lambda: "đã xóa" in api.message(-100555, card.message_id)["text"])
            assert "Lan" not in api.message(-100555, card.message_id)["text"]
        finally:
            await stop_bot(bot)
    log = (tmp_path / "bot.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("OFFICER_CHAT_ID=12345\nOFFICER_IDS=9001\n", "OFFICER_CHAT_ID must be"),
        ("MOTCUA_COMMUNES_FILE=missing.yaml\n", "MOTCUA_COMMUNES_FILE"),
    ],
)
async def test_motcua_run_refuses_malformed_officer_settings(
    tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / ".env").write_text(line, encoding="utf-8")
    async with FakeBotAPI(token=TOKEN) as api:
        bot = start_bot(api, tmp_path / "motcua.db", tmp_path / "bot.log")
        for _ in range(200):
            if bot.poll() is not None:
                break
            await asyncio.sleep(0.05)
        await stop_bot(bot)
    assert bot.returncode == 2
    log = (tmp_path / "bot.log").read_text(encoding="utf-8")
    assert len(log.strip().splitlines()) == 1 and message in log, log

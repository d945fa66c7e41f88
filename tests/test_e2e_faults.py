"""Outbound pacing and Telegram faults, end to end.

python-telegram-bot (bot.telegram) polls the local fake Bot API (tests/fakebot.py), which
counts every send that goes over Telegram's pacing guidance and injects faults: 429 with
retry_after, 5xx, dropped connections (what a timeout looks like to the bot), 400 refusals
and 403. Transport tests use a small stand-in handler with fixed answers, so every message
can be counted; the blocked-citizen and mid-conversation tests run the real conversation
service and reminders over SQLite. The Pacer itself is checked with a test clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from telegram.ext import Application

from bot.pacing import Pacer, pacer_for
from bot.telegram import build_application, start, stop
from flows.reminders import Reminders
from flows.service import ConversationService
from flows.types import (
    Attachment,
    Button,
    Command,
    Delivery,
    Inbound,
    Outbound,
    Press,
    Reply,
    Target,
    Text,
)
from procedures.loader import load_catalog
from storage import reminders as rows
from tests.conftest import make_store
from tests.fakebot import NOT_MODIFIED, FakeBotAPI, FakeUser
from tests.harness import Clock

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
LONG = "\n".join(f"{i:03d} " + "x" * 95 for i in range(50))  # 4,999 characters: 2 messages
GROUP = -100200300
SECRET = "079201001234"  # stands for personal data that must not reach the logs
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
XN = "xac_nhan_tinh_trang_hon_nhan"


class Script:
    """The transport's Handler with fixed answers (stands in for the conversation
    service, so each test knows exactly which messages must arrive)."""

    def __init__(self) -> None:
        self.unreachable_chats: list[tuple[str, str]] = []
        self.edit_target = 0  # a message of the officers' group the "edit" answers update

    def commands(self) -> list[tuple[str, str]]:
        return [("start", "Start")]

    def unreachable(self, channel: str, external_id: str) -> None:
        self.unreachable_chats.append((channel, external_id))

    def handle(self, inbound: Inbound) -> Outbound:
        group = Target("telegram", str(GROUP))
        match inbound.event:
            case Text(text="many"):  # 2 pieces, a PDF, its long caption as text, a last one
                file = Attachment("ho-so.pdf", PDF, caption="c" * 1100)
                return Outbound(
                    [
                        Reply(LONG),
                        Reply("", attachment=file),
                        Reply("last", buttons=((Button("OK", "s.1.ok"),),)),
                    ],
                    deliveries=[
                        Delivery(group, Reply("card"), new_topic="Case 1"),
                        Delivery(group, Reply("second card")),
                    ],
                )
            case Text(text="three"):
                return Outbound([Reply("one"), Reply("two"), Reply("three")])
            case Text(text="edit same"):  # the card already shows this: "not modified"
                return Outbound(
                    [Reply("edited")],
                    deliveries=[Delivery(group, Reply("card"), edit_message_id=self.edit_target)],
                )
            case Text(text="edit gone"):  # the card was deleted: "message to edit not found"
                return Outbound(
                    [Reply("edited")],
                    deliveries=[Delivery(group, Reply("new card"), edit_message_id=987654)],
                )
            case Text(text=text):
                buttons = ((Button("Yes", "s.1.yes"),),)
                return Outbound([Reply(f"echo: {text}", buttons=buttons)])
            case Press(data=data):
                return Outbound([Reply(f"pressed: {data}")], notice="ok")
            case Command(name=name):
                return Outbound([Reply(f"command {name}")])
        return Outbound([Reply("other")])


@contextlib.asynccontextmanager
async def bot(handler) -> AsyncIterator[tuple[FakeBotAPI, Application]]:
    async with FakeBotAPI() as api:
        app = build_application(handler, api.token, api.base_url, api.base_file_url)
        await start(app, poll_timeout=1)
        try:
            yield api, app
        finally:
            await stop(app)


def texts(messages) -> list[str]:
    return [m.text for m in messages]


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors, the bot's warnings, and any record that carries the test's personal data."""
    return [
        f"{r.name} {r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
        or (r.levelno >= logging.WARNING and r.name.startswith("bot"))
        or SECRET in r.getMessage()
    ]


async def test_a_multi_message_reply_and_its_deliveries_are_paced() -> None:
    async with bot(Script()) as (api, app):
        group = api.group(GROUP, "Officers", forum=True)
        lan = api.user(1001, "Lan")
        await lan.send_text("many")
        got = await lan.replies(5, timeout=20)
        assert [m.kind for m in got] == ["message", "message", "document", "message", "message"]
        assert got[0].text + "\n" + got[1].text == LONG
        assert got[3].text == "c" * 1100 and got[4].text == "last"
        cards = await group.replies(2, timeout=20)
        assert texts(cards) == ["card", "second card"]
        assert group.topics  # the topic was opened, and counted as a message of the group
        assert api.violations == []
        assert pacer_for(app).waiting == 0


async def test_429_mid_reply_waits_and_every_message_arrives_once() -> None:
    async with bot(Script()) as (api, app):
        an = api.user(1002, "An")
        api.fail_next("sendMessage", status=429, retry_after=1)
        api.fail_next("sendMessage", status=429, retry_after=1)
        await an.send_text("three")
        got = await an.replies(3, timeout=20)
        assert texts(got) == ["one", "two", "three"]
        await an.send_text("after")  # the conversation goes on
        [echo] = await an.replies(1, timeout=10)
        assert echo.text == "echo: after"
        assert texts(an.history()) == ["one", "two", "three", "echo: after"]  # each once
        assert len(api.calls_to("sendMessage")) == 6  # 2 refused, 4 delivered
        assert api.violations == []


async def test_5xx_and_lost_connections_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")  # the bot's own logs, debug included
    async with bot(Script()) as (api, app):
        binh = api.user(1003, "Bình")
        api.fail_next("sendMessage", status=502, description="Bad Gateway")
        api.fail_next("sendMessage", status=500, description="Internal Server Error")
        api.drop_next("sendMessage")  # lost before Telegram acted on it
        await binh.send_text(f"three {SECRET}")
        await binh.send_text("three")
        got = await binh.replies(4, timeout=30)
        assert texts(got) == [f"echo: three {SECRET}", "one", "two", "three"]
        assert api.violations == []

        # Lost after Telegram delivered it (a timeout on the answer): the retry sends it
        # again. We prefer a duplicate to a lost message (README).
        api.drop_next("sendMessage", delivered=True)
        await binh.send_text("again")
        got = await binh.replies(2, timeout=20)
        assert texts(got) == ["echo: again", "echo: again"]

        # Telegram down for longer than the retries: that reply is given up (logged by
        # error type), the next replies of the same answer still go.
        for _ in range(4):
            api.fail_next("sendMessage", status=503, description="Service Unavailable")
        await binh.send_text("three")
        got = await binh.replies(2, timeout=30)
        assert texts(got) == ["two", "three"]
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.telegram"]
    assert "reply failed: NetworkError" in logged
    assert not [line for line in logged if "Bình" in line]
    assert not [p for p in problems(caplog) if "WARNING" not in p]  # no error, no secret


async def test_refusals_that_need_nothing_done(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")  # the bot's own logs, debug included
    script = Script()
    async with bot(script) as (api, app):
        group = api.group(GROUP, "Officers")
        chi = api.user(1004, "Chi")
        # "query is too old" on the press, "message is not modified" removing its keyboard
        await chi.send_text("hello")
        [asked] = await chi.replies(1)
        api.fail_next("answerCallbackQuery", status=400, description=TOO_OLD)
        api.fail_next("editMessageReplyMarkup", status=400, description=NOT_MODIFIED)
        await chi.press("s.1.yes", message_id=asked.message_id)
        [pressed] = await chi.replies(1)
        assert pressed.text == "pressed: s.1.yes"

        # an edit that changes nothing, and an edit of a message that is gone
        script.edit_target = (await app.bot.send_message(GROUP, "card")).message_id
        await chi.send_text("edit same")
        await chi.send_text("edit gone")
        assert texts(await chi.replies(2)) == ["edited", "edited"]
        await chi.send_text("still here")
        [echo] = await chi.replies(1)
        assert echo.text == "echo: still here"
        assert texts(group.history()) == ["card"]
    assert problems(caplog) == []
    quiet = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "callback answer refused: query too old" in quiet
    assert "keyboard removal refused: not modified" in quiet
    assert "edit refused: not modified" in quiet
    assert "edit refused: message to edit not found" in quiet


async def test_a_chat_that_refuses_is_reported_and_others_go_on() -> None:
    script = Script()
    async with bot(script) as (api, app):
        dung = api.user(1005, "Dũng")
        em = api.user(1006, "Em")
        await dung.send_text("three")
        dung.blocked = True  # blocked the bot before the answer went out
        await em.send_text("hi")
        [echo] = await em.replies(1)
        assert echo.text == "echo: hi"
        for _ in range(200):
            if script.unreachable_chats:
                break
            await asyncio.sleep(0.02)
        assert script.unreachable_chats == [("telegram", "1005")]  # once: the rest skipped
        assert dung.history() == []
        assert api.violations == []


# ----------------------------------------------------------------------------- real service


@contextlib.asynccontextmanager
async def service_bot() -> AsyncIterator[tuple[FakeBotAPI, ConversationService]]:
    catalog = load_catalog()
    with make_store("sqlite") as store:
        reminders = Reminders(store, catalog)
        svc = ConversationService(store, catalog, clock=Clock(), reminders=reminders)
        async with bot(svc) as (api, _app):
            yield api, svc


def pref(svc: ConversationService, user: FakeUser) -> tuple[bool, bool]:
    with svc.store.unit_of_work() as uow:
        return rows.pref(uow, uow.citizen("telegram", str(user.user_id)).id)


def planned(svc: ConversationService) -> list:
    with svc.store.unit_of_work() as uow:
        return rows.reminders(uow, statuses=[rows.PLANNED])


async def start_draft(user: FakeUser) -> list:
    """/start the procedure and press on (consent, if asked) until its first step shows."""
    await user.send_command("/start", XN)
    last = await user.replies(1, timeout=20) + await user.wait_quiet(1.5)
    for _ in range(3):
        if any("Bước 1/" in m.text for m in last):
            return last
        data = next(m for m in reversed(last) if m.buttons).data()[0]
        await user.press(data)
        last = await user.replies(1, timeout=20)
        last += await user.wait_quiet(1.5)  # the rest of the answer, a paced second apart
    raise AssertionError(f"no first step: {texts(last)}")


async def test_429_and_5xx_mid_conversation_with_the_real_service() -> None:
    async with service_bot() as (api, svc):
        lan = api.user(2001, "Lan")
        api.fail_next("sendMessage", status=429, retry_after=1)
        api.fail_next("sendMessage", status=502, description="Bad Gateway")
        last = await start_draft(lan)
        step = next(m for m in last if "Bước 1/" in m.text)
        sent = [m.text for m in lan.history()]
        assert len(sent) == len(set(sent))  # nothing twice
        # the conversation goes on: a press on the step's first choice moves it forward
        await lan.press(step.data()[0])
        assert await lan.replies(1, timeout=20) + await lan.wait_quiet(1.5)
        sent = [m.text for m in lan.history()]
        assert all(a != b for a, b in zip(sent, sent[1:], strict=False))  # nothing twice
        assert api.violations == []


async def test_a_citizen_who_blocked_the_bot_is_marked_unreachable() -> None:
    async with service_bot() as (api, svc):
        hung = api.user(2002, "Hùng")
        last = await start_draft(hung)
        assert planned(svc)  # the unfinished-draft reminders
        step = next(m for m in last if "Bước 1/" in m.text)
        api.fail_next("sendMessage", status=403, description="Forbidden: user is deactivated")
        await hung.press(step.data()[0])
        for _ in range(200):
            if pref(svc, hung) == (False, True):
                break
            await asyncio.sleep(0.02)
        assert pref(svc, hung) == (False, True)
        assert planned(svc) == []  # reminders cancelled
        # the process goes on for everyone else
        other = api.user(2003, "Khánh")
        assert await start_draft(other)


async def test_pacer_sends_a_reply_after_silence_at_once() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    async with pacer.slot(7):
        pass
    now[0] += 1.5  # the person's next message came after more than a second
    async with pacer.slot(7):
        pass
    async with pacer.slot(8):  # another chat right after: only the overall spacing
        pass
    assert slept == [pytest.approx(0.04)]


async def test_pacer_a_chat_waiting_for_its_second_holds_up_no_other_chat() -> None:
    now = [100.0]
    slept: list[tuple[str, float]] = []
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        task = asyncio.current_task()
        slept.append((task.get_name() if task else "", round(seconds, 2)))
        await gate.wait()
        now[0] += seconds

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)

    async def send(chat: int) -> None:
        async with pacer.slot(chat):
            pass

    await send(1)
    now[0] += 0.5  # the second message of chat 1's answer, half a second later
    second = asyncio.create_task(send(1), name="a2")
    await asyncio.sleep(0)
    third = asyncio.create_task(send(1), name="a3")  # queued behind a2, in order
    await asyncio.sleep(0)
    await asyncio.create_task(send(2), name="b")  # another chat meanwhile: no wait at all
    assert slept == [("a2", 0.5)]
    assert pacer.waiting == 2
    gate.set()
    await asyncio.gather(second, third)
    assert slept == [("a2", 0.5), ("a3", 1.0)]
    assert pacer.waiting == 0


async def test_pacer_429_defers_the_chat() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 2))
        now[0] += seconds

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    async with pacer.slot(5):
        pacer.defer(5, 7.0)  # Telegram: retry after 7 s
    async with pacer.slot(5):
        pass
    async with pacer.slot(-9):  # another chat: only the overall spacing
        pass
    assert slept == [7.0, 0.04]


def test_pacing_settings(tmp_path) -> None:
    from bot.settings import SettingsError, load_settings

    env_file = tmp_path / ".env"
    env_file.write_text("")
    assert load_settings(env_file=env_file).pacing == (1.0, 3.0, 25.0)  # Telegram's limits
    env_file.write_text("MOTCUA_PACE_CHAT_SECONDS=0\nMOTCUA_PACE_PER_SECOND=0\n")
    assert load_settings(env_file=env_file).pacing == (0.0, 3.0, 0.0)
    for bad in ("MOTCUA_PACE_CHAT_SECONDS=-1", "MOTCUA_PACE_GROUP_SECONDS=x"):
        env_file.write_text(bad + "\n")
        with pytest.raises(SettingsError, match=bad.split("=")[0]):
            load_settings(env_file=env_file)


async def test_a_pacer_with_its_limits_off_never_waits() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(private_interval=0, per_second=0, clock=lambda: now[0], sleep=sleep)
    for chat in (1, 1, 1, 2, 2):
        async with pacer.slot(chat):
            pass
    assert [s for s in slept if s > 0] == []
    paced = Pacer(clock=lambda: now[0], sleep=sleep)  # the defaults do wait
    for chat in (1, 1):
        async with paced.slot(chat):
            pass
    assert sum(slept) == pytest.approx(1.0)

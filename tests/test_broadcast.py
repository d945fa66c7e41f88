"""Broadcast decisions through the conversation service (no transport): which citizens
belong to which commune, an officer of several communes naming one, and the citizen text
from the template."""

from __future__ import annotations

import pytest

from flows.broadcast import BroadcastConfig, Broadcasts
from flows.communes import Commune, Directory, OfficeHours
from flows.officer import OfficerDesk
from flows.service import ConversationService
from flows.types import Command, Inbound, Origin, Press, Sender
from storage import broadcast as rows
from storage.store import Store
from tests.test_e2e_broadcast import T0, draft
from tests.test_officer import BA_DINH, BAC_RUONG, CATALOG, GROUP_A, GROUP_B, TZ

BOTH = "9100"  # an officer of both communes


def two_communes() -> Directory:
    hours = OfficeHours.parse(None, TZ)
    return Directory(
        [
            Commune(BAC_RUONG, "UBND xã Bắc Ruộng", hours, group=GROUP_A,
                    officers=frozenset({BOTH}), default=True),
            Commune(BA_DINH, "UBND phường Ba Đình", hours, group=GROUP_B,
                    officers=frozenset({BOTH})),
        ]
    )  # fmt: skip


@pytest.fixture
def world(store: Store) -> tuple[ConversationService, Store]:
    desk = OfficerDesk(two_communes(), CATALOG)
    desk.broadcasts = Broadcasts(store, CATALOG, desk, BroadcastConfig())
    with store.unit_of_work() as uow:
        for n, commune in enumerate((None, BAC_RUONG, BA_DINH, BA_DINH, 99999)):
            c = uow.add_citizen("telegram", str(8000 + n), "", "", T0)
            if commune is not None:
                uow.add_draft(draft(c.id, commune))
        uow.add_citizen("console", "someone", "", "", T0)  # not reachable on Telegram
        uow.commit()
    return ConversationService(store, CATALOG, officers=desk), store


def say(svc: ConversationService, arg: str, group: int | None = None) -> str:
    origin = Origin(chat_id=str(group), group=True) if group else Origin()
    out = svc.handle(Inbound(Sender("telegram", BOTH, "Hà"), Command("thongbao", arg), origin))
    return out.replies[0].text


def test_an_officer_of_two_communes_names_one_in_a_private_chat(world) -> None:
    svc, store = world
    text = say(svc, "Lịch họp")
    assert text.startswith("Bạn là cán bộ của nhiều xã") and "• 4: UBND phường Ba Đình" in text
    text = say(svc, "4\nLịch họp tổ dân phố")
    assert "Gửi tới: 2 người dân của UBND phường Ba Đình" in text
    assert "📢 Thông báo của UBND phường Ba Đình\n\nLịch họp tổ dân phố" in text
    # no draft, a draft naming Bắc Ruộng, or a commune the directory does not know: the
    # default commune (where their requests go)
    text = say(svc, f"{BAC_RUONG} Lịch họp")
    assert "Gửi tới: 3 người dân của UBND xã Bắc Ruộng" in text


def test_in_a_group_the_group_names_the_commune(world) -> None:
    svc, store = world
    text = say(svc, "Cắt nước sáng mai", group=GROUP_B)
    assert "Gửi tới: 2 người dân của UBND phường Ba Đình" in text
    with store.unit_of_work() as uow:
        b = rows.get(uow, 1)
    assert (b.commune_code, b.chat_id, b.text) == (BA_DINH, str(GROUP_B), "Cắt nước sáng mai")


def test_confirming_fixes_the_recipients(world) -> None:
    svc, store = world
    say(svc, "Cắt nước sáng mai", group=GROUP_B)
    origin = Origin(chat_id=str(GROUP_B), group=True, message_id=7)
    out = svc.handle(Inbound(Sender("telegram", BOTH, "Hà"), Press("b.1.y"), origin))
    assert out.notice == "Bắt đầu gửi thông báo #1 tới 2 người."
    (edit,) = out.deliveries
    assert edit.edit_message_id == 7 and edit.reply.text.startswith("📤 Thông báo #1: đang gửi 0/2")
    with store.unit_of_work() as uow:
        b = rows.get(uow, 1)
        ids = [r[0] for r in rows.recipients(uow, 1)]
        ours = [uow.citizen("telegram", str(8000 + n)).id for n in (2, 3)]
    assert b.status == rows.SENDING and b.progress_message_id == 7 and ids == ours
    assert b.message.startswith("📢 Thông báo của UBND phường Ba Đình\n\nCắt nước sáng mai")

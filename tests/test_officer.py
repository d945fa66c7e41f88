"""The officer side through the real path: `ConversationService` with an `OfficerDesk`,
a real database (SQLite; the claim race on PostgreSQL too) and a test clock.

Citizens and officers are senders on channel "telegram"; an officer's group message carries
`Origin(group=True, chat_id=<group>)`. What the transport would send elsewhere comes back as
`Outbound.deliveries`; the fake Bot API tests (test_e2e_officer.py) send them for real.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_officers
from bot.settings import SettingsError, load_settings
from flows.communes import Commune, Directory, DirectoryError, OfficeHours, load_directory
from flows.lint import play, samples_of
from flows.officer import OfficerDesk, mask_digits, mask_id
from flows.service import ConversationService
from flows.types import (
    Command,
    Delivery,
    Inbound,
    Origin,
    Other,
    Outbound,
    Press,
    Sender,
    Text,
)
from procedures.loader import load_catalog
from storage.store import Store
from tests.conftest import make_store
from tests.harness import FIXED_NOW, Clock

CATALOG = load_catalog()
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
XN = "xac_nhan_tinh_trang_hon_nhan"
BAC_RUONG, BA_DINH = 23152, 4
GROUP_A, GROUP_B = -100111, -100222
HA, TU, BINH, STRANGER = "9001", "9002", "9003", "7777"
CCCD = "060090012345"  # the sample's ID number: never in full in a group


def directory() -> Directory:
    hours = OfficeHours.parse(None, TZ)
    return Directory(
        [
            Commune(
                BAC_RUONG,
                "UBND xã Bắc Ruộng",
                hours,
                address="Thôn 1, xã Bắc Ruộng",
                phone="0263 3880 000",
                group=GROUP_A,
                officers=frozenset({HA, TU}),
                default=True,
            ),
            Commune(
                BA_DINH,
                "UBND phường Ba Đình",
                hours,
                group=GROUP_B,
                officers=frozenset({BINH}),
            ),
        ]
    )


@contextmanager
def desk_service(
    kind: str = "sqlite", clock: Clock | None = None, forum: bool = False
) -> Iterator[World]:
    """The service with the two-commune directory. `forum`: the groups have topics."""
    with make_store(kind) as store:
        clock = clock or Clock()
        desk = OfficerDesk(directory(), CATALOG, reannounce_minutes=30)
        svc = ConversationService(store, CATALOG, clock=clock, raise_errors=True, officers=desk)
        yield World(svc, store, clock, forum)


@dataclass
class World:
    svc: ConversationService
    store: Store
    clock: Clock
    forum: bool = False
    sent: list[Delivery] = field(default_factory=list)
    _mid: int = 1000

    def next_id(self) -> int:
        self._mid += 1
        return self._mid

    def handle(self, inbound: Inbound) -> Outbound:
        out = self.svc.handle(inbound)
        self.sent.extend(out.deliveries)
        # the transport reports the cards it sent: give them message ids (and topics)
        for d in out.deliveries:
            if d.record:
                thread = self.next_id() if d.new_topic and self.forum else None
                self.svc.record_sent(d.record, d.target.chat_id, self.next_id(), thread)
        return out

    def case(self, case_id: int = 1):
        with self.store.unit_of_work() as uow:
            return uow.handoff(case_id)

    def audit(self, case_id: int | None = None):
        with self.store.unit_of_work() as uow:
            return uow.audit(handoff_id=case_id)

    def draft_of(self, user: str):
        with self.store.unit_of_work() as uow:
            citizen = uow.citizen("telegram", user)
            return uow.drafts_of(citizen.id)[0]


class Person:
    """A citizen in a private chat."""

    def __init__(self, world: World, user: str, name: str = "Lan", username: str = "lan_hn"):
        self.w = world
        self.sender = Sender("telegram", user, name, username)
        self.out = Outbound()
        self.seen: list[str] = []

    def _do(self, event, **origin) -> Outbound:
        origin.setdefault("message_id", self.w.next_id())
        self.out = self.w.handle(Inbound(self.sender, event, Origin(**origin)))
        self.seen += [r.text for r in self.out.replies]
        return self.out

    def send(self, text: str) -> Outbound:
        return self._do(Text(text))

    def cmd(self, name: str, arg: str = "") -> Outbound:
        return self._do(Command(name, arg))

    def photo(self, caption: str = "") -> Outbound:
        return self._do(Other("photo"), caption=caption)

    def press(self, data: str) -> Outbound:
        return self._do(Press(data))

    def press_token(self, token: str) -> Outbound:
        for reply in reversed(self.out.replies):
            for row in reply.buttons:
                for b in row:
                    if b.data.split(".", 2)[-1] == token:
                        return self.press(b.data)
        raise AssertionError(f"no button {token!r} in {self.labels()}")

    def press_label(self, label: str) -> Outbound:
        for reply in reversed(self.out.replies):
            for row in reply.buttons:
                for b in row:
                    if label in b.label:
                        return self.press(b.data)
        raise AssertionError(f"no button {label!r} in {self.labels()}")

    def labels(self) -> list[str]:
        return [b.label for r in self.out.replies for row in r.buttons for b in row]

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.out.replies)


class Officer:
    """Someone in an officers' group (or in a private chat with the bot)."""

    def __init__(self, world: World, user: str, name: str, group: int = GROUP_A):
        self.w = world
        self.sender = Sender("telegram", user, name, name.lower())
        self.group = group
        self.out = Outbound()

    def in_group(self, event, **origin) -> Outbound:
        origin.setdefault("message_id", self.w.next_id())
        where = Origin(chat_id=str(self.group), group=True, **origin)
        self.out = self.w.handle(Inbound(self.sender, event, where))
        return self.out

    def private(self, event) -> Outbound:
        self.out = self.w.handle(Inbound(self.sender, event, Origin(message_id=1)))
        return self.out

    def press(self, data: str, message_id: int | None = None) -> Outbound:
        return self.in_group(Press(data), message_id=message_id or self.w.next_id())

    def say(self, text: str, case_id: int = 1, **origin) -> Outbound:
        """A message answering the case's card (a group without topics)."""
        origin.setdefault("reply_to_id", self.w.case(case_id).group_message_id)
        origin.setdefault("reply_to_text", f"🆘 Yêu cầu #{case_id}")
        return self.in_group(Text(text), **origin)

    def cmd(self, name: str, arg: str = "", case_id: int = 1, **origin) -> Outbound:
        case = self.w.case(case_id)
        origin.setdefault("reply_to_id", case.group_message_id if case else 1)
        origin.setdefault("reply_to_text", f"#{case_id}")
        return self.in_group(Command(name, arg), **origin)


def to_chat(out: Outbound | list[Delivery], chat_id: str) -> list[Delivery]:
    deliveries = out.deliveries if isinstance(out, Outbound) else out
    return [d for d in deliveries if d.target.chat_id == chat_id]


def texts(deliveries: list[Delivery]) -> str:
    return "\n".join(d.reply.text for d in deliveries if d.reply is not None)


def actions(answers: dict):
    proc = CATALOG.get(XN)
    played = play(CATALOG, proc, answers, FIXED_NOW.date())
    assert not played.problems, played.problems
    return played.actions


def sample(**changes) -> dict:
    answers = dict(samples_of(CATALOG, CATALOG.get(XN))["never_married_bank_loan"])
    answers.update(changes)
    return answers


def fill(world: World, person: Person, answers: dict, until: str | None = None) -> None:
    """Play the answers through the service until `until` is answered (all: the PDF)."""
    person.cmd("start", XN)
    person.press_label("Đồng ý")  # the consent notice (flows/privacy.py)
    for kind, value in actions(answers):
        if kind == "text":
            person.send(value)
        else:
            person.press_token(value)
        if until and until in world.draft_of(person.sender.external_id).payload["answers"]:
            return


def citizen_mid_form(world: World, user: str = "5001", **changes) -> Person:
    """A citizen who answered up to the ID number and asks for an officer."""
    person = Person(world, user)
    fill(world, person, sample(**changes), until="subject_id_number")
    person.cmd("canbo")
    return person


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_with_the_desk_an_answer_looks_the_citizen_up_once(kind: str) -> None:
    """The officer desk looks at the citizen first (is an officer talking to them?), then
    the bot's turn: one SELECT of the citizen for both, in one transaction."""
    import sqlalchemy as sa

    with desk_service(kind) as w:
        person = Person(w, "5001")
        person.cmd("start", XN)
        person.press_label("Đồng ý")
        lookups: list[str] = []

        def count(conn, cursor, statement, params, context, executemany) -> None:
            if re.match(r"\s*SELECT\b.*\sFROM citizen\b", statement, re.S):
                lookups.append(statement)

        sa.event.listen(w.store.engine, "before_cursor_execute", count)
        (kind_, value), *_ = list(actions(sample()))
        person.send(value) if kind_ == "text" else person.press_token(value)
        sa.event.remove(w.store.engine, "before_cursor_execute", count)
        assert len(lookups) == 1
        draft = w.draft_of("5001")
        assert len(draft.payload["answers"]) == 1  # the answer was taken


# ----------------------------------------------------------------------------- asking


def test_request_mid_form_goes_to_the_residence_commune_masked() -> None:
    with desk_service() as w:
        lan = Person(w, "5001")
        fill(w, lan, sample(), until="subject_id_number")
        before = w.draft_of("5001").payload
        asked = [r.text for r in lan.out.replies if "Bước" in r.text][-1]
        lan.press_label("Gặp cán bộ")
        # the citizen: told who was told, the hours, the wait; the question is still there
        assert "Đã báo cho cán bộ UBND xã Bắc Ruộng" in lan.text
        assert "Thứ Hai – Thứ Sáu: 07:30–11:30, 13:30–17:00" in lan.text
        assert "khoảng 30 phút" in lan.text
        assert asked.split("\n")[-3:] == lan.out.replies[-1].text.split("\n")[-3:]
        assert {"📞 Nhờ xã gọi lại", "↩️ Thôi, làm tiếp với trợ lý"} <= set(lan.labels())
        # one card in Bắc Ruộng's group, in a new topic when the group has topics
        [card] = lan.out.deliveries
        assert card.target.chat_id == str(GROUP_A) and card.new_topic.startswith("#1")
        text = card.reply.text
        assert "Lan (@lan_hn)" in text and "Giấy xác nhận tình trạng hôn nhân" in text
        assert "Đang ở bước: Ngày cấp giấy tờ tùy thân" in text
        assert "Số giấy tờ tùy thân: ••••••••2345" in text
        assert CCCD not in text
        assert [b.data for row in card.reply.buttons for b in row] == ["o.c.1", "o.v.1", "o.x.1"]
        case = w.case()
        assert (case.status, case.commune_code, case.reason) == ("open", BAC_RUONG, "asked")
        assert case.step == "subject_id_issue_date" and case.group_message_id is not None
        # asking again opens no second case and posts no second card
        lan.cmd("canbo")
        assert "đã gửi yêu cầu gặp cán bộ rồi" in lan.text and not lan.out.deliveries
        assert w.case(2) is None
        # while the case waits, the bot goes on: the draft did not move back
        assert w.draft_of("5001").payload["answers"] == before["answers"]


def test_reasons_three_failures_account_and_review() -> None:
    with desk_service() as w:
        lan = Person(w, "5001")
        fill(w, lan, sample(), until="subject_gender")  # the birth date is asked next
        for wrong in ("abc", "xyz", "45/13/1990"):
            lan.send(wrong)
        assert "Gặp cán bộ" in lan.text  # offered after the third failure
        lan.press_label("Gặp cán bộ")
        assert w.case().reason == "asked_failed"
        assert "Trả lời sai một câu nhiều lần" in lan.out.deliveries[0].reply.text

        hung = Person(w, "5002", "Hùng", "")
        hung.cmd("start", XN)
        hung.press_label("Đồng ý")
        hung.press_label("Vay vốn")
        hung.press_label("Chưa có")
        hung.press_label("Nhờ cán bộ hướng dẫn")
        assert w.case(2).reason == "asked_vneid_next"
        assert "Vướng ở bước tài khoản VNeID" in hung.out.deliveries[0].reply.text

        mai = Person(w, "5003", "Mai", "")
        fill(w, mai, sample())  # to the declaration
        mai.cmd("canbo")
        assert w.case(3).reason == "asked_review"
        assert "Nhờ xã kiểm tra tờ khai" in mai.out.deliveries[0].reply.text


def test_routing_to_two_communes() -> None:
    with desk_service() as w:
        lan = citizen_mid_form(w, "5001")
        an = citizen_mid_form(w, "5002", subject_residence_commune="phường Ba Đình, Hà Nội")
        assert to_chat(lan.out, str(GROUP_A)) and not to_chat(lan.out, str(GROUP_B))
        assert to_chat(an.out, str(GROUP_B)) and not to_chat(an.out, str(GROUP_A))
        assert "UBND phường Ba Đình" in an.text
        assert (w.case(1).commune_code, w.case(2).commune_code) == (BAC_RUONG, BA_DINH)
        # no draft (from the menu): the default commune
        khoa = Person(w, "5003", "Khoa", "")
        khoa.cmd("start")
        khoa.press_label("Gặp cán bộ")
        assert w.case(3).commune_code == BAC_RUONG and to_chat(khoa.out, str(GROUP_A))
        # an officer of one commune cannot act on the other's case
        binh = Officer(w, BINH, "Bình", GROUP_B)
        out = binh.press("o.c.1")
        assert "chỉ dành cho cán bộ" in out.notice and w.case(1).status == "open"
        out = binh.private(Command("hoso", "1"))
        assert "Không tìm thấy" in out.replies[0].text and "Lan" not in out.replies[0].text
        out = binh.private(Command("hangdoi"))
        assert "#2" in out.replies[0].text and "#1 " not in out.replies[0].text


def test_commune_without_a_group_gives_contact_details() -> None:
    hours = OfficeHours.parse({"mon-fri": "08:00-11:00"}, TZ)
    offline = Directory(
        [Commune(BAC_RUONG, "UBND xã Bắc Ruộng", hours, phone="0263 1", default=True)]
    )
    with make_store("sqlite") as store:
        desk = OfficerDesk(offline, CATALOG)
        svc = ConversationService(store, CATALOG, clock=Clock(), raise_errors=True, officers=desk)
        lan = Person(World(svc, store, Clock()), "5001")
        lan.cmd("start")
        lan.press_label("Gặp cán bộ")
        assert "chưa kết nối được" in lan.text and "Điện thoại: 0263 1" in lan.text
        assert "Thứ Hai – Thứ Sáu: 08:00–11:00" in lan.text
        assert not lan.out.deliveries
        with store.unit_of_work() as uow:
            [case] = uow.handoffs()
        assert case.status == "open" and case.group_chat_id is None


def test_without_officer_configuration_requests_are_only_recorded() -> None:
    with make_store("sqlite") as store:
        svc = ConversationService(store, CATALOG, clock=Clock(), raise_errors=True)
        lan = Person(World(svc, store, Clock()), "5001")
        lan.cmd("start")
        lan.press_label("Gặp cán bộ")
        assert "Đã ghi nhận: bạn muốn gặp cán bộ xã" in lan.text
        assert not lan.out.deliveries
        lan.cmd("hangdoi")  # not an officer command here: an unknown command
        assert "/hangdoi" in lan.text
        with store.unit_of_work() as uow:
            [case] = uow.handoffs()
        assert (case.reason, case.status, case.commune_code) == ("asked_menu", "open", None)


# ----------------------------------------------------------------------------- claim


def test_claim_edits_the_card_and_a_second_press_is_told_who_has_it() -> None:
    with desk_service() as w:
        citizen_mid_form(w)
        ha, tu = Officer(w, HA, "Hà"), Officer(w, TU, "Tú")
        card_id = w.case().group_message_id
        out = ha.press("o.c.1", card_id)
        assert out.notice == "Bạn đã nhận yêu cầu #1."
        [edit] = [d for d in out.deliveries if d.edit_message_id == card_id]
        assert "✅ Hà đang xử lý" in edit.reply.text and CCCD not in edit.reply.text
        assert [b.data for row in edit.reply.buttons for b in row][:2] == ["o.r.1", "o.f.1"]
        assert "Cán bộ Hà (UBND xã Bắc Ruộng) đã tham gia" in texts(to_chat(out, "5001"))
        out = tu.press("o.c.1", card_id)
        assert out.notice == "Đã có cán bộ Hà nhận yêu cầu này." and not out.deliveries
        assert ha.press("o.c.1", card_id).notice == "Bạn đã nhận yêu cầu này rồi."
        case = w.case()
        assert (case.status, case.claimed_by, case.claimed_by_name) == ("claimed", HA, "Hà")
        assert [a.action for a in w.audit(1)] == ["claim"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_officers_claim_at_the_same_moment_one_wins(kind: str) -> None:
    with desk_service(kind) as w:
        citizen_mid_form(w)
        ha, tu = Officer(w, HA, "Hà"), Officer(w, TU, "Tú")
        for _round in range(3):
            barrier = threading.Barrier(2)
            notices: dict[str, str] = {}

            def press(officer: Officer, notices=notices, barrier=barrier) -> None:
                barrier.wait()
                out = w.svc.handle(
                    Inbound(
                        officer.sender,
                        Press("o.c.1"),
                        Origin(chat_id=str(GROUP_A), group=True, message_id=5),
                    )
                )
                notices[officer.sender.external_id] = out.notice

            threads = [threading.Thread(target=press, args=(o,)) for o in (ha, tu)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            case = w.case()
            winner = case.claimed_by
            loser = TU if winner == HA else HA
            assert notices[winner] == "Bạn đã nhận yêu cầu #1."
            assert (
                notices[loser].startswith("Đã có cán bộ") and case.claimed_by_name in notices[loser]
            )
            assert [a.action for a in w.audit(1)].count("claim") == _round + 1
            # give it back for the next round
            Officer(w, winner, "x").press("o.f.1")
            assert w.case().status == "open"


# ----------------------------------------------------------------------------- relay


def test_relay_both_ways_with_photos_while_the_engine_stays_silent() -> None:
    with desk_service() as w:
        lan = citizen_mid_form(w)
        ha, tu = Officer(w, HA, "Hà"), Officer(w, TU, "Tú")
        ha.press("o.c.1")
        turn = w.draft_of("5001").payload["turn"]
        card = w.case().group_message_id

        out = lan.send("Số CCCD em ghi đâu ạ?")
        assert out.replies == []  # the bot does not answer
        [relay] = out.deliveries
        assert relay.target.chat_id == str(GROUP_A) and relay.reply_to_id == card
        assert relay.reply.text == "💬 #1 · Lan:\nSố CCCD em ghi đâu ạ?"

        out = lan.photo("ảnh thẻ")
        [copy] = out.deliveries
        assert copy.copy.from_chat_id == "5001" and copy.copy.message_id == w._mid
        assert copy.copy.caption == "💬 #1 · Lan gửi:\nảnh thẻ"

        out = lan.press("abcdef.3.back")  # an old button: no bot answer, a toast
        assert out.replies == [] and "Cán bộ xã đang hỗ trợ bạn" in out.notice
        assert w.draft_of("5001").payload["turn"] == turn  # the engine never ran

        out = ha.say("Chị gõ đủ 12 số nhé")
        [answer] = out.deliveries
        assert answer.target.chat_id == "5001"
        assert answer.reply.text == "🏛 UBND xã Bắc Ruộng – cán bộ Hà:\nChị gõ đủ 12 số nhé"
        out = ha.in_group(Other("photo"), caption="mẫu", reply_to_id=card, reply_to_text="#1")
        [photo] = out.deliveries
        assert photo.target.chat_id == "5001" and photo.copy.from_chat_id == str(GROUP_A)
        assert photo.copy.caption == "🏛 UBND xã Bắc Ruộng – cán bộ Hà:\nmẫu"

        assert tu.say("mình nói riêng với Hà").deliveries == []  # not the owner: not relayed
        assert ha.in_group(Text("chuyện khác")).deliveries == []  # no case answered
        assert [a.details for a in w.audit(1) if a.action == "relay"] == [
            {"kind": "text"},
            {"kind": "photo"},
        ]


def test_forum_topic_holds_the_exchange() -> None:
    with desk_service(forum=True) as w:
        lan = citizen_mid_form(w)
        topic = w.case().topic_id
        assert topic is not None  # recorded from the new topic the transport opened
        ha = Officer(w, HA, "Hà")
        out = ha.press("o.c.1")
        note = [
            d
            for d in out.deliveries
            if d.target.chat_id == str(GROUP_A) and d.reply and not d.edit_message_id
        ]
        assert note[0].target.thread_id == topic and note[0].reply_to_id is None
        out = lan.send("alo")
        assert out.deliveries[0].target.thread_id == topic
        out = ha.in_group(Text("Chào chị"), thread_id=topic)  # in the topic: no reply needed
        assert texts(to_chat(out, "5001")).endswith("Chào chị")
        out = ha.in_group(Command("trave"), thread_id=topic)
        assert "đã rời" in texts(to_chat(out, "5001"))


def test_return_resumes_the_citizen_at_the_same_step() -> None:
    with desk_service() as w:
        lan = citizen_mid_form(w)
        question = lan.out.replies[-1].text
        assert "Giấy tờ đó được cấp ngày nào?" in question
        ha = Officer(w, HA, "Hà")
        ha.press("o.c.1")
        lan.send("em cảm ơn")
        w.clock.advance(minutes=5)
        out = ha.cmd("trave")
        back = to_chat(out, "5001")
        assert "Cán bộ Hà đã rời cuộc trò chuyện" in back[0].reply.text
        assert "Giấy tờ đó được cấp ngày nào?" in back[-1].reply.text
        assert back[-1].reply.buttons  # the question's buttons, live again
        assert "trả lại cho trợ lý" in texts(to_chat(out, str(GROUP_A)))
        assert w.case().status == "closed" and w.case().closed_at == w.clock.now
        # the citizen goes on with the bot, from the same step
        out = lan.send("15/8/2024")
        assert "Đã lưu: 15/08/2024" in lan.text and not out.deliveries
        assert w.draft_of("5001").payload["answers"]["subject_id_issue_date"] == "2024-08-15"
        assert [a.action for a in w.audit(1)] == ["claim", "return"]


def test_officer_corrects_a_field_with_who_recorded() -> None:
    with desk_service() as w:
        citizen_mid_form(w)
        ha = Officer(w, HA, "Hà")
        ha.press("o.c.1")
        out = ha.cmd("sua", "4 Nguyễn Văn Hưng")
        assert out.replies[0].text.startswith("✏️ Đã sửa: Họ, chữ đệm, tên")
        assert "Họ, chữ đệm, tên → Nguyễn Văn Hưng" in texts(to_chat(out, "5001"))
        out = ha.cmd("sua", "13 060090099999")
        assert "••••••••9999" in texts(to_chat(out, "5001"))
        out = ha.cmd("sua", "6 31/02/1990")
        assert out.replies[0].text.startswith("Chưa sửa được") and not out.deliveries
        assert "Cách sửa" in ha.cmd("sua", "99 x").replies[0].text
        answers = w.draft_of("5001").payload["answers"]
        assert answers["subject_full_name"] == "Nguyễn Văn Hưng"
        assert answers["subject_id_number"] == "060090099999"
        with w.store.unit_of_work() as uow:
            corrected = uow.facts(kind="AnswerCorrected")
        assert [(f.data["field"], f.data["by"]) for f in corrected] == [
            ("subject_full_name", HA),
            ("subject_id_number", HA),
        ]
        edits = [a for a in w.audit(1) if a.action == "edit"]
        assert [(a.actor, a.details) for a in edits] == [
            (HA, {"field": "subject_full_name"}),
            (HA, {"field": "subject_id_number"}),
        ]
        assert "060090099999" not in str([a.details for a in w.audit()])


def test_release_reassign_close_and_view() -> None:
    with desk_service() as w:
        citizen_mid_form(w)
        ha, tu = Officer(w, HA, "Hà"), Officer(w, TU, "Tú")
        ha.press("o.c.1")
        # view from the group: the full draft goes to Hà's private chat, audited
        out = ha.press("o.v.1")
        [full] = to_chat(out, HA)
        assert CCCD in full.reply.text and "13. Số giấy tờ tùy thân" in full.reply.text
        assert "tin nhắn riêng" in out.notice and not to_chat(out, str(GROUP_A))
        # release: open again, the citizen back with the bot
        out = ha.press("o.f.1")
        assert w.case().status == "open" and w.case().claimed_by is None
        assert "Yêu cầu của bạn vẫn chờ cán bộ khác" in texts(to_chat(out, "5001"))
        # reassign: Tú claims, then hands over to Hà by answering one of Hà's messages
        tu.press("o.c.1")
        out = tu.cmd("giao", reply_to_user=HA, reply_to_name="Hà")
        assert w.case().claimed_by == HA
        assert "giao cho Hà" in out.replies[0].text
        assert "Cán bộ Hà (UBND xã Bắc Ruộng) đã tham gia" in texts(to_chat(out, "5001"))
        assert "Cách giao" in ha.cmd("giao", "123").replies[0].text  # not an officer here
        # close: any officer of the commune; the citizen is told and resumed
        out = tu.press("o.x.1")
        assert w.case().status == "closed" and out.notice == "Đã đóng yêu cầu #1."
        assert "đã rời" in texts(to_chat(out, "5001"))
        assert tu.press("o.x.1").notice == "Yêu cầu #1 không còn chờ xử lý."
        actions = [(a.actor, a.action) for a in w.audit(1)]
        assert actions == [
            (HA, "claim"),
            (HA, "view"),
            (HA, "release"),
            (TU, "claim"),
            (TU, "reassign"),
            (TU, "close"),
        ]


# ----------------------------------------------------------------------------- strangers


def test_a_non_officer_tries_every_officer_command_and_button() -> None:
    with desk_service() as w:
        citizen_mid_form(w)
        Officer(w, HA, "Hà").press("o.c.1")
        before = w.case()
        mallory = Officer(w, STRANGER, "Mallory")
        for name, arg in (("hangdoi", ""), ("thongke", "30"), ("hoso", "1"), ("hoso", "#1")):
            out = mallory.private(Command(name, arg))
            [reply] = out.replies
            assert reply.text.startswith("Xin lỗi, lệnh này chỉ dành cho cán bộ xã")
            assert not out.deliveries and reply.attachment is None
        for action in "cvrfxd":
            for where in ("group", "private"):
                data = f"o.{action}.1"
                if where == "group":
                    out = mallory.press(data)
                else:
                    out = mallory.private(Press(data))
                assert out.notice.startswith("Xin lỗi, nút này chỉ dành cho cán bộ")
                assert not out.deliveries and not out.replies
        for name in ("trave", "sua", "giao", "hangdoi", "thongke"):
            out = mallory.cmd(name, "1 x")
            assert [r.text for r in out.replies] == [
                "Xin lỗi, lệnh này chỉ dành cho cán bộ xã đã được đăng ký. "
                "Nếu bạn cần làm thủ tục, gõ /start."
            ]
            assert not out.deliveries
        assert mallory.say("xin chào").deliveries == []  # not relayed to the citizen
        # nothing changed, nothing leaked
        after = w.case()
        assert (after.status, after.claimed_by, after.version) == (
            before.status,
            before.claimed_by,
            before.version,
        )
        assert [a.actor for a in w.audit()] == [HA]
        # the citizen's own /hoso still lists their drafts
        lan_again = Person(w, "5009", "Khách", "")
        lan_again.cmd("hoso")
        assert "Bạn chưa có hồ sơ nào" in lan_again.text
        # an officer's /hangdoi in the group: told to use the private chat, nothing shown
        out = Officer(w, HA, "Hà").cmd("hangdoi")
        assert "tin nhắn riêng" in out.replies[0].text and "#1" not in out.replies[0].text


def test_a_case_erased_by_its_citizen_is_gone_for_officers() -> None:
    with desk_service() as w:
        lan = citizen_mid_form(w)
        lan.cmd("xoadulieu")
        erased = lan.press_label("Có, xóa hết")
        assert w.case() is None
        # the office is told (flows/privacy.py), with no personal data in the message
        [note] = [d for d in erased.deliveries if d.edit_message_id is None]
        assert "#1" in note.reply.text and "đã xóa toàn bộ dữ liệu" in note.reply.text
        assert "Lan" not in note.reply.text and not re.search(r"\d{4,}", note.reply.text)
        assert "đã báo cho cán bộ xã" in erased.replies[0].text
        ha = Officer(w, HA, "Hà")
        assert "không còn nữa" in ha.press("o.c.1").notice
        assert "không còn nữa" in ha.press("o.v.1").notice
        assert [(a.actor, a.action, a.details) for a in w.audit()] == [
            ("citizen", "erase", {"cases": [1]})
        ]


def test_officer_private_commands() -> None:
    with desk_service() as w:
        citizen_mid_form(w)
        w.clock.advance(minutes=12)
        ha = Officer(w, HA, "Hà")
        out = ha.private(Command("hangdoi"))
        assert "#1 · ⏳ Chờ cán bộ nhận · 12 phút" in out.replies[0].text
        assert [b.data for row in out.replies[0].buttons for b in row] == ["o.v.1"]
        out = ha.private(Press("o.v.1"))
        assert CCCD in out.replies[0].text and not out.deliveries
        out = ha.private(Command("hoso", "#1"))
        assert "Hồ sơ yêu cầu #1" in out.replies[0].text
        short = w.draft_of("5001").short_id
        assert "Hồ sơ yêu cầu #1" in ha.private(Command("hoso", short)).replies[0].text
        assert "Không tìm thấy" in ha.private(Command("hoso", "999")).replies[0].text
        assert "Cách dùng" in ha.private(Command("thongke", "abc")).replies[0].text
        assert [a.action for a in w.audit(1)] == ["view", "view", "view"]


# ----------------------------------------------------------------------------- waiting


def at_local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ).astimezone(dt.UTC)


def test_reannounce_counts_working_minutes_only() -> None:
    friday_late = at_local(2026, 11, 27, 16, 50)
    with desk_service(clock=Clock(friday_late)) as w:
        lan = citizen_mid_form(w)
        assert "khoảng 30 phút" in lan.text
        desk = w.svc.officers

        def due(when: dt.datetime) -> list[Delivery]:
            with w.store.unit_of_work() as uow:
                got = desk.due_reannouncements(uow, when)
                uow.commit()
            return got

        lan.send("15/8/2024")  # the bot goes on while the case waits
        assert due(at_local(2026, 11, 27, 17, 5)) == []  # 10 working minutes
        assert due(at_local(2026, 11, 29, 22, 0)) == []  # the weekend counts for nothing
        assert due(at_local(2026, 11, 30, 7, 49)) == []  # 10 + 19
        again = due(at_local(2026, 11, 30, 7, 51))  # 10 + 21 >= 30
        [card] = to_chat(again, str(GROUP_A))
        assert "NHẮC LẠI (lần 2)" in card.reply.text and card.record == "case:1"
        assert "Đang ở bước: Nơi cấp giấy tờ tùy thân" in card.reply.text  # where Lan is now
        [told] = to_chat(again, "5001")
        assert "chưa nhận được yêu cầu" in told.reply.text
        assert [b.data for row in told.reply.buttons for b in row] == ["c.1.w"]
        assert due(at_local(2026, 11, 30, 8, 10)) == []  # the clock restarted
        third = due(at_local(2026, 11, 30, 8, 22))
        assert "lần 3" in third[0].reply.text and not to_chat(third, "5001")  # told once
        # a claimed case is never announced again
        Officer(w, HA, "Hà").press("o.c.1")
        assert due(at_local(2026, 12, 2, 9, 0)) == []


def test_out_of_hours_the_citizen_is_told_when_it_will_be_seen() -> None:
    saturday = at_local(2026, 11, 28, 10, 0)
    with desk_service(clock=Clock(saturday)) as w:
        lan = Person(w, "5001")
        lan.cmd("start")
        lan.press_label("Gặp cán bộ")
        assert "Bây giờ ngoài giờ làm việc" in lan.text
        assert "từ 07:30 thứ hai 30/11" in lan.text
        assert "khoảng 30 phút" not in lan.text


def test_withdraw_goes_back_to_the_bot() -> None:
    with desk_service() as w:
        lan = citizen_mid_form(w)
        lan.press("c.1.w")
        assert w.case().status == "withdrawn"
        assert "Đã hủy yêu cầu gặp cán bộ" in lan.text
        assert "Giấy tờ đó được cấp ngày nào?" in lan.out.replies[-1].text
        [edit] = [d for d in lan.out.deliveries if d.edit_message_id]
        assert "Người dân đã rút yêu cầu" in edit.reply.text and not edit.reply.buttons
        assert "đã rút yêu cầu #1" in texts(to_chat(lan.out, str(GROUP_A)))
        # the claim comes too late
        assert "không còn chờ" in Officer(w, HA, "Hà").press("o.c.1").notice
        # someone else's case button: nothing about it
        other = Person(w, "5002", "Khoa", "")
        other.cmd("start")
        other.press("c.1.cb")
        assert "không còn nữa" in other.text


def test_call_back_with_phone_and_slot() -> None:
    with desk_service() as w:  # Friday 09:00
        lan = citizen_mid_form(w)
        lan.press_token("cb")
        assert "gõ số điện thoại" in lan.text
        lan.send("12345")
        assert "Không cần gọi" in lan.labels()  # asked again after the error
        assert "Đã ghi lại" not in lan.text
        lan.send("0912 345 678")
        slots = [b for r in lan.out.replies for row in r.buttons for b in row if ".s" in b.data]
        assert [b.label for b in slots] == [
            "13:30–17:00 thứ sáu 27/11",
            "07:30–11:30 thứ hai 30/11",
            "13:30–17:00 thứ hai 30/11",
            "07:30–11:30 thứ ba 01/12",
        ]
        lan.press(slots[1].data)
        assert "sẽ gọi số 0912345678, khoảng 07:30–11:30 thứ hai 30/11" in lan.text
        case = w.case()
        assert (case.callback_phone, case.callback_slot) == ("0912345678", "2026-11-30T07:30/11:30")
        [edit] = [d for d in lan.out.deliveries if d.edit_message_id]
        assert "Xin gọi lại: 0912345678, 07:30–11:30 thứ hai 30/11" in edit.reply.text
        assert "o.d.1" in [b.data for row in edit.reply.buttons for b in row]
        # the citizen's answers are not disturbed: the bot is still at the same question
        lan.send("15/8/2024")
        assert "Đã lưu: 15/08/2024" in lan.text
        # the officer calls, then marks it
        out = Officer(w, TU, "Tú").press("o.d.1")
        case = w.case()
        assert case.callback_done_at == w.clock.now and case.status == "closed"
        assert "đã ghi nhận cuộc gọi lại" in texts(to_chat(out, "5001"))
        assert [a.action for a in w.audit(1)] == ["callback_done"]


# ----------------------------------------------------------------------------- figures


def test_stats_figures_and_chart() -> None:
    with desk_service() as w:
        # one draft submitted online, with a claimed request on the way
        lan = Person(w, "5001")
        fill(w, lan, sample(), until="subject_id_number")
        lan.cmd("canbo")
        w.clock.advance(minutes=20)
        Officer(w, HA, "Hà").press("o.c.1")
        Officer(w, HA, "Hà").press("o.r.1")
        lan2 = Person(w, "5002", "Hoa", "")
        fill(w, lan2, sample())
        lan2.press_token("sub")
        lan2.send("000.00.00.H01-261127-0001")
        assert "0001" in lan2.text
        # one that does not need the certificate (an exit)
        kim = Person(w, "5003", "Kim", "")
        kim.cmd("start", XN)
        kim.press_label("Đồng ý")
        kim.press_label("Đăng ký kết hôn ở Việt Nam")
        # one stopped at the birth date, two days ago
        tam = Person(w, "5004", "Tâm", "")
        fill(w, tam, sample(), until="subject_full_name")
        w.clock.advance(days=2)
        # and one in Ba Đình, not Bắc Ruộng's
        citizen_mid_form(w, "5005", subject_residence_commune="phường Ba Đình, Hà Nội")
        out = Officer(w, HA, "Hà").private(Command("thongke", "7"))
        text, chart = out.replies
        assert "Bắt đầu làm hồ sơ: 4" in text.text
        assert "Làm xong tờ khai: 1" in text.text
        assert "Đã nộp trực tuyến (có mã hồ sơ): 1" in text.text
        assert "Nhờ cán bộ: 1" in text.text
        assert "20 phút làm việc (1 lần nhận)" in text.text
        assert "Tuần từ 23/11: 33% (1/3)" in text.text  # the exit is not eligible
        assert "Tháng 11/2026: 33% (1/3)" in text.text
        assert "– Giới tính: 1" in text.text  # Tâm stopped there
        assert "– Ngày cấp giấy tờ tùy thân: 1" in text.text  # Lan, after the officer
        assert chart.attachment.mime == "image/png"
        assert chart.attachment.content.startswith(b"\x89PNG")
        assert [a.action for a in w.audit() if a.actor == HA][-1] == "stats"
        # Ba Đình's officer sees Ba Đình's figures only
        out = Officer(w, BINH, "Bình", GROUP_B).private(Command("thongke"))
        assert "Bắt đầu làm hồ sơ: 1" in out.replies[0].text
        assert "Nhờ cán bộ: 1" in out.replies[0].text


# ----------------------------------------------------------------------------- pieces


def test_masking() -> None:
    assert mask_id("060090012345") == "••••••••2345"
    assert mask_id("123") == "•••"
    assert mask_digits("số 0600 9001 2345 nhé") == "số ••••••••2345 nhé"
    assert mask_digits("Thôn 3, số 12") == "Thôn 3, số 12"


def test_office_hours() -> None:
    hours = OfficeHours.parse({"mon-fri": "07:30-11:30,13:30-17:00", "sat": "07:30-11:30"}, TZ)
    assert hours.is_open(at_local(2026, 11, 28, 8, 0))  # Saturday morning
    assert not hours.is_open(at_local(2026, 11, 28, 14, 0))
    assert not hours.is_open(at_local(2026, 11, 27, 12, 0))  # lunch
    assert hours.next_open(at_local(2026, 11, 27, 12, 0)) == dt.datetime(
        2026, 11, 27, 13, 30, tzinfo=TZ
    )
    assert hours.working_minutes(at_local(2026, 11, 27, 11, 0), at_local(2026, 11, 27, 14, 0)) == 60
    assert hours.working_minutes(at_local(2026, 11, 28, 11, 0), at_local(2026, 11, 30, 8, 0)) == 60
    assert [g["days"] for g in hours.table()] == [[0, 1, 2, 3, 4], [5]]
    for bad in ({"mon": "7h-11h"}, {"xyz": "07:30-11:30"}, {"mon": "11:30-07:30"}, {"mon": ""}):
        with pytest.raises(DirectoryError):
            OfficeHours.parse(bad, TZ)


def test_directory_file(tmp_path: Path) -> None:
    path = tmp_path / "communes.yaml"
    path.write_text(
        "default: 23152\n"
        "communes:\n"
        "  - code: 23152\n"
        "    office: UBND xã Bắc Ruộng\n"
        "    phone: '0263 3880 000'\n"
        "    hours: {mon-fri: '07:30-11:30,13:30-17:00'}\n"
        "    group: -1001234567890\n"
        "    officers: [111, 222]\n"
        "  - code: 4\n"
        "    group: -1009876543210\n"
        "    officers: [333]\n",
        encoding="utf-8",
    )
    d = load_directory(path, "Asia/Ho_Chi_Minh")
    assert d.default.code == 23152 and d.commune(4).office == "Phường Ba Đình"
    assert d.groups() == {-1001234567890, -1009876543210}
    assert d.communes_of("333")[0].code == 4 and d.is_officer("telegram", "111")
    assert not d.is_officer("console", "111") and not d.is_officer("telegram", "444")
    for text, message in (
        ("communes: [{code: 99999999}]", "not a 2025 commune code"),
        ("communes: [{code: 4, group: 123}]", "group ids are negative"),
        ("communes: [{code: 4, officers: [abc]}]", "not a Telegram user id"),
        ("communes: [{code: 4, colour: red}]", "unknown keys"),
        ("default: 5\ncommunes: [{code: 4}]", "not one of the communes"),
        ("communes: [", "not valid YAML"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DirectoryError, match=message):
            load_directory(path, "Asia/Ho_Chi_Minh")


def test_officer_settings(tmp_path: Path) -> None:
    env = tmp_path / ".env"

    def settings(text: str):
        env.write_text(text, encoding="utf-8")
        return load_settings(env_file=env)

    s = settings("")
    assert not s.officers_configured and s.reannounce_minutes == 30
    assert build_officers(s, CATALOG) is None
    s = settings("OFFICER_CHAT_ID=-100123\nOFFICER_IDS=111, 222\nMOTCUA_REANNOUNCE_MINUTES=45\n")
    assert (s.officer_chat_id, s.officer_ids, s.reannounce_minutes) == (-100123, ("111", "222"), 45)
    desk = build_officers(s, CATALOG)
    assert desk.groups() == {-100123} and desk.reannounce_minutes == 45
    assert desk.dir.default.officers == {"111", "222"}
    for text, message in (
        ("OFFICER_CHAT_ID=100123\nOFFICER_IDS=1\n", "OFFICER_CHAT_ID must be"),
        ("OFFICER_CHAT_ID=-100123\nOFFICER_IDS=ab\n", "OFFICER_IDS must be"),
        ("OFFICER_CHAT_ID=-100123\n", "go together"),
        ("MOTCUA_REANNOUNCE_MINUTES=0\n", "MOTCUA_REANNOUNCE_MINUTES"),
        ("MOTCUA_COMMUNES_FILE=/nonexistent.yaml\n", "is not a file"),
    ):
        with pytest.raises(SettingsError, match=message):
            settings(text)
    broken = tmp_path / "c.yaml"
    broken.write_text("communes: [{code: 1}]", encoding="utf-8")
    with pytest.raises(SettingsError, match="MOTCUA_COMMUNES_FILE: .*not a 2025 commune code"):
        build_officers(settings(f"MOTCUA_COMMUNES_FILE={broken}\n"), CATALOG)
    with pytest.raises(SettingsError, match="not both"):
        settings(f"MOTCUA_COMMUNES_FILE={broken}\nOFFICER_CHAT_ID=-1\nOFFICER_IDS=1\n")

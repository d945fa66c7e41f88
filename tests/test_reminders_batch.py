"""One `dispatch` decides a whole claimed batch with what it read once (flows/reminders.py
`_Batch`): these batches mix what used to be decided row by row against the database.
A citizen with several reminders in one batch (the "first reminder" hint only once, an
earlier reminder superseded by a later one that is due too), draft, result and case kinds
together, and rows cancelled, moved and sent side by side; the final rows and the
deliveries are checked. The real service and `Reminders` on a real database (SQLite and
PostgreSQL), with a test clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flows.reminders import CALLBACK, DRAFT, RESULT, ReminderConfig
from storage import reminders as rows
from storage.store import DraftRec, Store
from tests.harness import FIXED_NOW, Chat
from tests.test_officer import actions, sample
from tests.test_reminders import XN, World, act, local, start_draft

STOP_HINT = "/tatnhac"
GROUP = -1001234567
NEW_YORK = ZoneInfo("America/New_York")
T = local(2026, 12, 2, 17, 0)  # Wednesday 17:00 in Viet Nam (05:00 in New York)


def submit(chat: Chat, code: str) -> None:
    chat.cmd("start", XN)
    chat.press("Đồng ý")
    for action in actions(sample()):
        act(chat, action)
    chat.send(code)  # Friday 27/11: the result is due Wednesday 2/12 at 17:00


def states(w: World, user: str) -> list[tuple]:
    return [
        (r.kind, r.audience, r.seq, r.status, r.note)
        for r in sorted(w.rows(citizen_id=w.citizen_id(user)), key=lambda r: (r.kind, r.id))
    ]


def test_a_mixed_batch_is_decided_as_row_by_row(store: Store) -> None:
    w = World(store)
    a = w.chat("1001")  # both draft reminders due, and a call-back soon: three sends
    start_draft(a)
    submit(w.chat("1002"), "000.00.12.H01-261127-0002")  # the result reminder
    c = w.chat("1003")  # stopped reminders
    start_draft(c)
    c.cmd("tatnhac")
    start_draft(w.chat("1004"))  # an officer owns their case
    with store.unit_of_work() as uow:  # lives in New York: 05:00 there, quiet hours
        e = uow.add_citizen("test", "1005", "Emma", "", w.clock())
        e.timezone = "America/New_York"
        uow.save_citizen(e)
        uow.commit()
    start_draft(w.chat("1005"))
    with store.unit_of_work() as uow:
        d = uow.citizen("test", "1004")
        case = uow.add_handoff(d.id, None, "asked", w.clock())
        uow.update_handoff(case, status="claimed", claimed_by="42", claimed_at=w.clock())
        citizen = uow.citizen("test", "1001")
        (draft,) = uow.drafts_of(citizen.id)
        case = uow.add_handoff(
            citizen.id,
            draft.id,
            "asked",
            w.clock(),
            callback_slot="wed-pm",
            callback_phone="0912345678",
            group_chat_id=GROUP,
        )
        start = T + dt.timedelta(minutes=30)
        w.reminders.plan_callback(
            uow, uow.handoff(case), start, start + 3 * dt.timedelta(hours=1), "UBND xã", w.clock()
        )
        uow.commit()

    w.clock.now = T
    sent = w.dispatch()
    # in claim order (due time): A's second draft reminder, A's call-back (the citizen's
    # second one: no hint), the officers' group, B's result
    assert [d.target.chat_id for d in sent] == ["1001", "1001", str(GROUP), "1002"]
    draft_2, call_back, group, result = sent
    assert "lần cuối" in draft_2.reply.text and STOP_HINT in draft_2.reply.text
    assert "sẽ gọi cho bạn số 0912345678" in call_back.reply.text
    assert STOP_HINT not in call_back.reply.text
    assert call_back.reply.buttons[0][0].data == f"rm.callback.{draft.short_id}"
    assert "Chưa có cán bộ nào nhận yêu cầu này" in group.reply.text
    assert "000.00.12.H01-261127-0002" in result.reply.text and STOP_HINT in result.reply.text
    assert "bưu chính công ích" in result.reply.text  # read with the draft's answers
    assert w.dispatch() == []  # each once

    assert states(w, "1001") == [
        (CALLBACK, "citizen", 1, "cancelled", "superseded"),
        (CALLBACK, "citizen", 2, "sent", ""),
        (CALLBACK, "officer", 1, "sent", ""),
        (DRAFT, "citizen", 1, "cancelled", "superseded"),
        (DRAFT, "citizen", 2, "sent", ""),
    ]
    assert states(w, "1002") == [
        (DRAFT, "citizen", 1, "cancelled", "completed"),
        (DRAFT, "citizen", 2, "cancelled", "completed"),
        (RESULT, "citizen", 1, "sent", ""),
    ]
    assert states(w, "1003") == [
        (DRAFT, "citizen", 1, "cancelled", "stopped"),
        (DRAFT, "citizen", 2, "cancelled", "stopped"),
    ]
    assert states(w, "1004") == [
        (DRAFT, "citizen", 1, "cancelled", "superseded"),
        (DRAFT, "citizen", 2, "planned", "officer"),
    ]
    assert states(w, "1005") == [
        (DRAFT, "citizen", 1, "cancelled", "superseded"),
        (DRAFT, "citizen", 2, "planned", "quiet"),
    ]
    (owned,) = w.rows(citizen_id=w.citizen_id("1004"), statuses=[rows.PLANNED])
    assert owned.due_at == T + dt.timedelta(minutes=60)
    (quiet,) = w.rows(citizen_id=w.citizen_id("1005"), statuses=[rows.PLANNED])
    assert quiet.due_at == dt.datetime(2026, 12, 2, 7, 0, tzinfo=NEW_YORK)
    sent_at = {r.sent_at for r in w.rows(statuses=[rows.SENT])}
    assert sent_at == {T}

    # two hours later: the officer still owns D's case (moved again), E's morning came
    w.clock.now = T + dt.timedelta(hours=2)
    (morning,) = w.dispatch()
    assert morning.target.chat_id == "1005" and STOP_HINT in morning.reply.text
    assert states(w, "1005")[-1] == (DRAFT, "citizen", 2, "sent", "")
    (owned,) = w.rows(citizen_id=w.citizen_id("1004"), statuses=[rows.PLANNED])
    assert owned.due_at == w.clock() + dt.timedelta(minutes=60) and owned.note == "officer"


def add_draft(w: World, user: str) -> DraftRec:
    """Another active draft of the citizen, planned as the service plans one."""
    with w.store.unit_of_work() as uow:
        citizen = uow.citizen("test", user)
        draft = uow.add_draft(
            DraftRec(
                None, "", citizen.id, XN, 1, "active", "questions", "", {}, None,
                w.clock(), w.clock(), 1,
            )
        )  # fmt: skip
        w.reminders.on_draft(uow, citizen, draft, w.clock())
        uow.commit()
    return draft


def test_one_citizen_several_reminders_in_one_batch_says_how_to_stop_once(store: Store) -> None:
    w = World(store, ReminderConfig(draft_hours=(24.0,)))
    chat = w.chat()
    start_draft(chat)
    add_draft(w, "1001")
    add_draft(w, "1001")
    w.clock.advance(hours=24)
    sent = w.dispatch()
    assert [d.target.chat_id for d in sent] == ["1001"] * 3
    assert [STOP_HINT in d.reply.text for d in sent] == [True, False, False]
    assert len({d.reply.buttons[0][0].data for d in sent}) == 3  # one per draft
    # a later batch counts what earlier ones sent
    add_draft(w, "1001")
    w.clock.advance(hours=24)
    (later,) = w.dispatch()
    assert STOP_HINT not in later.reply.text
    assert [r.status for r in w.rows()] == ["sent"] * 4


def test_a_later_reminder_due_but_left_for_the_next_batch_still_supersedes(
    store: Store,
) -> None:
    w = World(store, ReminderConfig(batch=1))  # one row per dispatch
    start_draft(w.chat())
    w.clock.now = FIXED_NOW + dt.timedelta(hours=100)  # the bot was down: both due
    assert w.dispatch() == []  # seq 1 alone was claimed: seq 2 is due too
    (second,) = w.dispatch()
    assert "lần cuối" in second.reply.text and STOP_HINT in second.reply.text
    assert [(r.seq, r.status, r.note) for r in w.rows()] == [
        (1, "cancelled", "superseded"),
        (2, "sent", ""),
    ]


def test_plan_moves_inserts_and_cancels_in_one_pass(store: Store) -> None:
    """`rows.plan` (one UPDATE ... RETURNING, then inserts): the planned rows of the seqs
    given move to their new time, missing seqs are added, other planned seqs of the same
    draft and kind are cancelled ("replanned"); sent rows, other kinds and other drafts are
    left alone. Without a draft, rows without a draft move and other seqs of any draft go."""
    from tests.test_store import new_draft

    now = FIXED_NOW
    with store.unit_of_work() as uow:
        c = uow.add_citizen("test", "plan-1", "", "", now)
        d1 = uow.add_draft(new_draft(c.id))
        d2 = uow.add_draft(new_draft(c.id))
        uow.commit()
    at = [now + dt.timedelta(hours=h) for h in range(1, 8)]

    def state() -> list[tuple]:
        with store.unit_of_work() as uow:
            found = rows.reminders(uow, citizen_id=c.id)
        rows_ = [(r.draft_id, r.kind, r.seq, r.status, r.due_at, r.note) for r in found]
        return sorted(rows_, key=lambda t: (t[0] or 0, *t[1:]))

    with store.unit_of_work() as uow:
        rows.plan(uow, c.id, d1.id, DRAFT, [(1, at[0]), (2, at[1]), (3, at[2])], now)
        rows.plan(uow, c.id, d2.id, DRAFT, [(1, at[0])], now)
        rows.plan(uow, c.id, d1.id, RESULT, [(1, at[3])], now)
        uow.commit()
    with store.unit_of_work() as uow:  # seq 1 of draft 1 was sent: not moved, planned anew
        sent = [r for r in rows.reminders(uow, draft_id=d1.id) if r.kind == DRAFT and r.seq == 1]
        rows.finish(uow, sent[0].id, rows.SENT, now)
        uow.commit()
    with store.unit_of_work() as uow:  # fewer seqs, new times
        rows.plan(uow, c.id, d1.id, DRAFT, [(1, at[4]), (2, at[5])], now)
        uow.commit()
    assert state() == [
        (d1.id, DRAFT, 1, "planned", at[4], ""),
        (d1.id, DRAFT, 1, "sent", at[0], ""),
        (d1.id, DRAFT, 2, "planned", at[5], ""),
        (d1.id, DRAFT, 3, "cancelled", at[2], "replanned"),
        (d1.id, RESULT, 1, "planned", at[3], ""),
        (d2.id, DRAFT, 1, "planned", at[0], ""),
    ]
    with store.unit_of_work() as uow:  # no seq left: every planned one of the kind goes
        rows.plan(uow, c.id, d1.id, DRAFT, [], now)
        uow.commit()
    assert [s[3] for s in state() if s[0] == d1.id and s[1] == DRAFT] == [
        "cancelled",
        "sent",
        "cancelled",
        "cancelled",
    ]
    with store.unit_of_work() as uow:  # without a draft
        rows.plan(uow, c.id, None, "later", [(1, at[0])], now)
        rows.plan(uow, c.id, d2.id, "later", [(1, at[1]), (2, at[2])], now)
        rows.plan(uow, c.id, None, "later", [(1, at[6])], now)
        uow.commit()
    later = [s for s in state() if s[1] == "later"]
    assert later == [
        (None, "later", 1, "planned", at[6], ""),  # moved
        (d2.id, "later", 1, "planned", at[1], ""),  # same seq, another draft: kept
        (d2.id, "later", 2, "cancelled", at[2], "replanned"),  # another seq: cancelled
    ]

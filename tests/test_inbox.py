"""The durable inbox on SQLite and PostgreSQL: duplicates ignored, an update applied once and
marked in the same transaction as its effects, unfinished rows taken over, finished rows
emptied of personal data; the stored replies survive the round trip."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from bot.inbox import Inbox, Receipt, decode_outbound, encode_outbound
from flows.types import (
    AlreadyHandled,
    Attachment,
    Button,
    Copy,
    Delivery,
    Inbound,
    Outbound,
    Press,
    Reply,
    Target,
)
from storage import inbox as rows
from tests.harness import Chat
from tests.test_service import draft_payloads, service, tiny_catalog

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
LEASE = NOW + dt.timedelta(minutes=2)


def received(*ids: int, chat: str = "1001") -> list[rows.Received]:
    return [rows.Received(i, chat, {"update_id": i, "message": {"text": f"m{i}"}}) for i in ids]


def statuses(store) -> dict[int, str]:
    return {r.update_id: r.status for r in rows.rows(store)}


def test_accept_stores_each_update_once(store) -> None:
    assert rows.accept(store, received(7, 5), "a", NOW, LEASE) == [7, 5]
    # delivered again, with one new: only the new one is reported
    assert rows.accept(store, received(5, 9, 7), "b", NOW, LEASE) == [9]
    assert statuses(store) == {5: "new", 7: "new", 9: "new"}
    [five] = [r for r in rows.rows(store) if r.update_id == 5]
    assert five.owner == "a" and five.payload["message"]["text"] == "m5"
    # Telegram's ids go beyond 32 bits
    assert rows.accept(store, received(2**40), "a", NOW, LEASE) == [2**40]
    # the raw update is personal data: encrypted at rest
    with store.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT payload FROM inbox").scalars().all()
    # (a plain JSON key: base64 ciphertext has no quotes, so this cannot match by chance)
    assert raw and not any('"text"' in str(value) for value in raw)


def test_an_update_is_applied_once(store) -> None:
    rows.accept(store, received(1), "a", NOW, LEASE)
    with store.unit_of_work() as uow:
        assert rows.mark_applied(uow, 1, {"n": 1}, NOW)
        # not committed: the row is still new for everybody else
    assert statuses(store) == {1: "new"}
    with store.unit_of_work() as uow:
        assert rows.mark_applied(uow, 1, {"n": 1}, NOW)
        uow.commit()
    with store.unit_of_work() as uow:
        assert not rows.mark_applied(uow, 1, {"n": 2}, NOW)  # a second delivery loses
    assert not rows.apply_alone(store, 1, {"n": 3}, NOW)
    [row] = rows.rows(store)
    assert (row.status, row.outbound) == ("applied", {"n": 1})


def test_finish_keeps_only_the_id_and_prune_drops_old_rows(store) -> None:
    rows.accept(store, received(1, 2), "a", NOW, LEASE)
    rows.apply_alone(store, 1, {"replies": ["personal"]}, NOW)
    rows.finish(store, 1, NOW)
    [one] = [r for r in rows.rows(store) if r.update_id == 1]
    assert (one.status, one.payload, one.outbound, one.finished_at) == ("done", {}, None, NOW)
    assert rows.accept(store, received(1), "b", NOW, LEASE) == []  # a late duplicate
    assert rows.prune(store, NOW) == 0
    assert rows.prune(store, NOW + dt.timedelta(seconds=1)) == 1
    assert statuses(store) == {2: "new"}  # unfinished rows are never pruned


async def test_finish_marks_made_together_share_one_commit(store) -> None:
    """Inbox.finish: marks that arrive while a transaction is in flight go in the next one;
    every caller returns only once its own mark is committed."""
    from sqlalchemy import event

    ids = list(range(10, 30))
    rows.accept(store, received(*ids), "a", NOW, LEASE)
    for i in ids:
        rows.apply_alone(store, i, {"replies": []}, NOW)
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    inbox = Inbox(store, "a")
    await asyncio.gather(*(inbox.finish(i) for i in ids))
    assert set(statuses(store).values()) == {"done"}
    # the 20 marks asked for in the same moment: one transaction
    assert len(commits) == 1
    # one at a time: one commit each
    rows.accept(store, received(40, 41), "a", NOW, LEASE)
    commits.clear()
    await inbox.finish(40)
    await inbox.finish(41)
    assert len(commits) == 2 and statuses(store)[41] == "done"


async def test_a_failed_finish_reaches_every_caller_of_its_batch(store) -> None:
    rows.accept(store, received(1, 2, 3), "a", NOW, LEASE)
    inbox = Inbox(store, "a")

    def rename(old: str, new: str) -> None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")

    rename("inbox", "inbox_away")  # the statement fails in the database
    try:
        results = await asyncio.gather(
            *(inbox.finish(i) for i in (1, 2, 3)), return_exceptions=True
        )
    finally:
        rename("inbox_away", "inbox")
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)
    await inbox.finish(1)  # the inbox goes on after a failure
    assert statuses(store) == {1: "done", 2: "new", 3: "new"}


def test_claim_takes_abandoned_rows_in_order(store) -> None:
    rows.accept(store, received(3, 1), "dead", NOW, LEASE)
    rows.accept(store, received(2), "alive", NOW, LEASE)
    rows.apply_alone(store, 3, {"x": 1}, NOW)
    rows.accept(store, received(4), "me", NOW, LEASE)
    rows.finish(store, 4, NOW)
    # within the leases: nothing but one's own rows
    assert rows.claim(store, "other", NOW, LEASE) == []
    # the leases ran out: every unfinished row, oldest first; "applied" with its replies
    later = LEASE + dt.timedelta(seconds=1)
    taken = rows.claim(store, "me", later, later + dt.timedelta(minutes=2), exclude={2})
    assert [(t.update_id, t.status) for t in taken] == [(1, "new"), (3, "applied")]
    assert taken[1].outbound == {"x": 1} and taken[0].payload["message"]["text"] == "m1"
    # now leased to "me": another process does not take them, "me" restarted does
    assert [t.update_id for t in rows.claim(store, "other", later, later)] == [2]
    assert [t.update_id for t in rows.claim(store, "me", later, later)] == [1, 3]
    # the only poller takes everything unfinished at once
    assert [t.update_id for t in rows.claim(store, "poll", NOW, LEASE, steal=True)] == [1, 2, 3]


def test_older_unapplied_update_of_the_chat(store) -> None:
    rows.accept(store, received(1, chat="a") + received(2, chat="b"), "p", NOW, LEASE)
    rows.accept(store, received(3, chat="a"), "p", NOW, LEASE)
    assert rows.older_unapplied(store, "a", 3, NOW)
    assert not rows.older_unapplied(store, "b", 2, NOW)  # the first of its chat
    assert not rows.older_unapplied(store, "a", 3, LEASE + dt.timedelta(seconds=1))  # abandoned
    rows.apply_alone(store, 1, {}, NOW)
    assert not rows.older_unapplied(store, "a", 3, NOW)


def test_stored_replies_round_trip() -> None:
    keyboard = ((Button("Có", "ab12cd.3.y"), Button("Không", "ab12cd.3.n")),)
    pdf = bytes(range(256)) * 3
    out = Outbound(
        replies=[
            Reply("Câu hỏi tiếp theo", keyboard, "choice"),
            Reply("Tờ khai", attachment=Attachment("to-khai.pdf", pdf, caption="Bản PDF")),
        ],
        notice="Đã lưu",
        deliveries=[
            Delivery(Target("telegram", "-100123", 7), Reply("Thẻ hồ sơ"), record="case:1"),
            Delivery(Target("telegram", "42"), copy=Copy("-100123", 9, None), reply_to_id=3),
            Delivery(Target("telegram", "-100123"), Reply("sửa"), edit_message_id=11),
        ],
    )
    import json

    encoded = json.loads(json.dumps(encode_outbound(out)))  # as the database gives it back
    assert decode_outbound(encoded) == out


def test_decoding_refuses_types_outside_flows() -> None:
    with pytest.raises(ValueError):
        decode_outbound({"$t": "os:system"})


def test_the_service_marks_the_update_with_its_effects(store, tmp_path: Path) -> None:
    svc = service(store, tiny_catalog(tmp_path))
    chat = Chat(svc)
    chat.cmd("start", "tiny_permit")
    chat.press("Đồng ý")  # the consent notice
    dog = chat.button("Chó").data
    inbox = Inbox(store, "test")
    rows.accept(store, received(100, 101, 102), "test", NOW, LEASE)

    # a receipt that fails inside the transaction takes the effects with it
    def broken(uow, outbound) -> None:
        Receipt(inbox, 101)(uow, outbound)
        raise RuntimeError("the commit never happens")

    with pytest.raises(RuntimeError):
        svc.handle(Inbound(chat.sender, Press(dog), receipt=broken))
    assert "animal" not in draft_payloads(store)[0]["answers"]
    assert statuses(store)[101] == "new"

    out = svc.handle(Inbound(chat.sender, Press(dog), receipt=Receipt(inbox, 100)))
    assert draft_payloads(store)[0]["answers"]["animal"] == "dog"
    [row] = [r for r in rows.rows(store) if r.update_id == 100]
    assert row.status == "applied" and decode_outbound(row.outbound) == out

    # the same update again (a duplicate delivery): refused, nothing committed
    with store.unit_of_work() as uow:
        version = uow.citizen("test", "1001").version
    with pytest.raises(AlreadyHandled):
        svc.handle(Inbound(chat.sender, Press(dog), receipt=Receipt(inbox, 100)))
    with store.unit_of_work() as uow:
        assert uow.citizen("test", "1001").version == version

"""Broadcast rows (storage/broadcast.py) on SQLite and PostgreSQL: the audience query,
confirmation, exactly-once claiming (also from several threads at once), outcomes, stale
rows after a crash, the final transition, the progress booking, and erasure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from storage import broadcast as rows
from storage import reminders as prefs
from storage.store import Store

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def citizens(store: Store, n: int, channel: str = "telegram", first: int = 7000) -> list[int]:
    with store.unit_of_work() as uow:
        ids = [uow.add_citizen(channel, str(first + i), "", "", T0).id for i in range(n)]
        uow.commit()
    return ids


def new_broadcast(store: Store, ids: list[int]) -> int:
    with store.unit_of_work() as uow:
        bid = rows.add(
            uow,
            commune_code=None,
            officer_id="111",
            officer_name="Hà",
            channel="telegram",
            chat_id="-100",
            thread_id=None,
            text="Thông báo",
            now=T0,
        )
        assert rows.confirm(
            uow,
            bid,
            ids,
            T0,
            message="📢 Thông báo",
            skipped_stopped=0,
            skipped_unreachable=0,
            progress_message_id=5,
        )
        uow.commit()
    return bid


def test_candidates_carry_the_reminder_switch_and_the_latest_draft(store: Store) -> None:
    a, b, c = citizens(store, 3)
    (other,) = citizens(store, 1, channel="console")
    with store.unit_of_work() as uow:
        prefs.set_pref(uow, b, T0, stopped=True)
        prefs.set_pref(uow, c, T0, unreachable=True)
        uow.commit()
    from tests.test_store import add_draft, new_draft

    add_draft(store, new_draft(a, updated_at=T0, payload={"answers": {"x": "old"}}))
    add_draft(
        store, new_draft(a, updated_at=T0 + timedelta(hours=1), payload={"answers": {"x": "new"}})
    )
    with store.unit_of_work() as uow:
        plain = rows.candidates(uow, "telegram", with_drafts=False)
        full = rows.candidates(uow, "telegram", with_drafts=True)
    assert [(x.citizen_id, x.stopped, x.unreachable) for x in plain] == [
        (a, False, False),
        (b, True, False),
        (c, False, True),
    ]
    assert plain[0].payload is None and other not in [x.citizen_id for x in plain]
    assert full[0].payload == {"answers": {"x": "new"}} and full[1].payload is None


def test_confirm_claim_finish_and_counts(store: Store) -> None:
    ids = citizens(store, 5)
    bid = new_broadcast(store, ids)
    with store.unit_of_work() as uow:
        # a second confirmation changes nothing (the preview is gone)
        assert not rows.confirm(
            uow,
            bid,
            ids,
            T0,
            message="x",
            skipped_stopped=0,
            skipped_unreachable=0,
            progress_message_id=None,
        )
        taken = rows.claim(uow, T0, 2)
        uow.commit()
    assert [t.citizen_id for t in taken] == ids[:2]
    assert [t.external_id for t in taken] == ["7000", "7001"] and taken[0].attempts == 1
    with store.unit_of_work() as uow:
        rows.finish(uow, taken[0].id, rows.SENT, T0)
        rows.finish(uow, taken[1].id, rows.BLOCKED, T0, "forbidden")
        rows.finish(uow, taken[1].id, rows.SENT, T0)  # not claimed any more: no change
        counts = rows.counts(uow, bid)
        assert not rows.finish_broadcast(uow, bid, T0)
        uow.commit()
    assert (counts.total, counts.sent, counts.blocked, counts.pending) == (5, 1, 1, 3)
    with store.unit_of_work() as uow:
        rest = rows.claim(uow, T0, 10)
        assert len(rest) == 3 and rows.claim(uow, T0, 10) == []
        rows.finish(uow, rest[0].id, rows.PENDING, T0, "network")  # back in the queue
        again = rows.claim(uow, T0, 10)
        assert [r.id for r in again] == [rest[0].id] and again[0].attempts == 2
        for r in [*again, *rest[1:]]:
            rows.finish(uow, r.id, rows.FAILED if r is rest[2] else rows.SENT, T0)
        assert rows.finish_broadcast(uow, bid, T0)
        assert not rows.finish_broadcast(uow, bid, T0)  # once
        uow.commit()
    with store.unit_of_work() as uow:
        b = rows.get(uow, bid)
        c = rows.counts(uow, bid)
        assert b.status == rows.DONE and b.finished_at == T0
        assert (c.sent, c.blocked, c.failed, c.done) == (3, 1, 1, 5)


def test_only_broadcasts_being_sent_are_claimed(store: Store) -> None:
    ids = citizens(store, 2)
    with store.unit_of_work() as uow:
        bid = rows.add(
            uow,
            commune_code=None,
            officer_id="111",
            officer_name="",
            channel="telegram",
            chat_id="111",
            thread_id=None,
            text="x",
            now=T0,
        )
        assert rows.claim(uow, T0, 10) == []  # a preview has no recipients
        assert rows.change(uow, bid, expect_status=rows.PREVIEW, status=rows.CANCELLED)
        assert not rows.confirm(
            uow,
            bid,
            ids,
            T0,
            message="x",
            skipped_stopped=0,
            skipped_unreachable=0,
            progress_message_id=None,
        )
        assert rows.claim(uow, T0, 10) == [] and rows.recipients(uow, bid) == []
        uow.commit()


def test_claims_from_several_threads_never_overlap(store: Store) -> None:
    ids = citizens(store, 60)
    new_broadcast(store, ids)
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            while True:
                with store.unit_of_work() as uow:
                    taken = rows.claim(uow, T0, 3)
                    uow.commit()
                if not taken:
                    return
                with lock:
                    got.extend(t.citizen_id for t in taken)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(got) == ids  # every recipient once, none twice


def test_stale_sending_rows_are_failed_not_resent(store: Store) -> None:
    ids = citizens(store, 2)
    bid = new_broadcast(store, ids)
    with store.unit_of_work() as uow:
        (taken,) = rows.claim(uow, T0, 1)
        uow.commit()
    with store.unit_of_work() as uow:  # its sender died; not old enough yet
        assert rows.close_stale(uow, T0 - timedelta(seconds=1)) == 0
        assert rows.close_stale(uow, T0 + timedelta(minutes=10)) == 1
        (rest,) = rows.claim(uow, T0, 5)
        uow.commit()
    assert rest.citizen_id == ids[1]
    with store.unit_of_work() as uow:
        assert rows.recipients(uow, bid)[0] == (ids[0], rows.FAILED, "interrupted")


def test_progress_is_booked_once_per_interval(store: Store) -> None:
    bid = new_broadcast(store, citizens(store, 1))
    with store.unit_of_work() as uow:
        assert rows.take_progress(uow, bid, T0, 10)
        assert not rows.take_progress(uow, bid, T0 + timedelta(seconds=9), 10)
        assert rows.take_progress(uow, bid, T0 + timedelta(seconds=10), 10)
        uow.commit()


def test_erasing_a_citizen_removes_their_recipient_rows(store: Store) -> None:
    ids = citizens(store, 2)
    bid = new_broadcast(store, ids)
    with store.unit_of_work() as uow:
        uow.delete_citizen_data(ids[0])
        uow.commit()
    with store.unit_of_work() as uow:
        assert [r[0] for r in rows.recipients(uow, bid)] == [ids[1]]

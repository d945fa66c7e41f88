"""No update lost, webhook mode: `motcua run` and `motcua webhook` as subprocesses against
the local fake Bot API server.

- kill -9 while an update is in flight (its reply held by the fake server) and a second
  update is fetched and confirmed but not handled yet: after the restart both are answered
  from the inbox, in order, each once, and the form goes on to the PDF;
- two `motcua webhook` processes behind one address (the fake server's delivery takes them
  in turn, as a load balancer would) on one PostgreSQL database: a wrong or missing secret
  is refused with nothing stored, an update delivered twice is applied once, and one
  citizen's messages, alternately handled by both processes, all get their answers, two
  sent at once included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from flows.pdf import pdf_text
from storage import inbox as rows
from storage.store import Store
from tests.conftest import make_store
from tests.fakebot import FakeBotAPI
from tests.test_e2e_telegram import TOKEN, find_button, sample_actions, start_bot, stop_bot

PROC = "xac_nhan_tinh_trang_hon_nhan"
SECRET = "s3cr3t-webhook_token"


async def act(user, last, action) -> list:
    """One answer (typed or pressed); returns the whole reply (paced a second apart)."""
    kind, value = action
    if kind == "text":
        await user.send_text(value)
    else:
        await user.press(find_button(last, value))
    first = await user.replies(1, timeout=30)
    return first + await user.wait_quiet(1.5)


async def begin(user) -> list:
    """/start the procedure and accept the consent notice (if asked) until step 1 shows."""
    await user.send_command("/start", arg=PROC)
    last = await user.replies(1, timeout=30)
    last += await user.wait_quiet(1.5)
    for _ in range(3):
        if any("Bước 1/" in m.text for m in last):
            return last
        labels = [(label, data) for m in last for row in m.buttons for label, data in row]
        data = next((d for label, d in labels if "Đồng ý" in label), labels[0][1])
        await user.press(data)
        last = await user.replies(1, timeout=30)
        last += await user.wait_quiet(1.5)  # the rest of the answer, a paced second apart
    raise AssertionError(f"no first step: {[m.text[:60] for m in last]}")


def answers_of(store: Store, user_id: int) -> dict:
    with store.unit_of_work() as uow:
        citizen = uow.citizen("telegram", str(user_id))
        assert citizen is not None
        [draft] = uow.drafts_of(citizen.id)
        return dict(draft.payload["answers"])


async def test_kill_9_with_updates_in_flight_loses_none(tmp_path: Path) -> None:
    proc, answers, actions = sample_actions(PROC)
    # two typed answers in a row: the second is typed before the first one's reply came
    k = next(i for i in range(4, len(actions) - 1) if actions[i][0] == actions[i + 1][0] == "text")
    db = tmp_path / "motcua.db"
    async with FakeBotAPI(token=TOKEN) as api:
        bot = start_bot(api, db, tmp_path / "bot.log")
        user = api.user(616161, first_name="Hà")
        try:
            last = await begin(user)
            for action in actions[:k]:
                last = await act(user, last, action)
            sent_before = len(api.calls_to("sendMessage"))
            api.hold("sendMessage")
            await user.send_text(actions[k][1])  # applied, its reply held in flight
            first = api.last_update_id
            calls = await api.wait_for_call("sendMessage", sent_before + 1, timeout=30)
            in_flight = calls[-1]["text"]
            await user.send_text(actions[k + 1][1])  # fetched and confirmed, not handled
            second = api.last_update_id
            await api.wait_confirmed(second, timeout=30)
        finally:
            await stop_bot(bot, signal.SIGKILL)
        assert bot.returncode == -signal.SIGKILL
        api.release("sendMessage")
        assert api.confirmed(first) and api.pending_updates() == 0
        assert await user.wait_quiet(0.3) == []  # nothing reached the citizen meanwhile
        # the update waiting in the inbox is stored as getUpdates delivered it
        store = Store(f"sqlite:///{db}")
        try:
            waiting = {r.update_id: r for r in rows.rows(store, [rows.NEW])}
            assert waiting[second].payload == api.injected(second)
        finally:
            store.dispose()

        bot = start_bot(api, db, tmp_path / "bot.log")
        try:
            # no new message from the citizen: both answers come from the inbox
            last = await user.replies(2, timeout=60)
            last += await user.wait_quiet(0.5)
            texts = [m.text for m in user.history()]
            assert texts.count(in_flight) == 1, "the in-flight reply is sent once"
            assert last[0].text == in_flight  # in order: the first update's reply first
            for action in actions[k + 2 :]:
                last = await act(user, last, action)
            docs = [m for m in last if m.kind == "document"]
            assert len(docs) == 1
            text = " ".join(pdf_text(docs[0].document).split())
            assert str(answers["subject_full_name"]).split()[-1] in text
        finally:
            await stop_bot(bot)

    store = Store(f"sqlite:///{db}")
    try:
        done = {r.update_id: r for r in rows.rows(store)}
        for update_id in (first, second):
            assert done[update_id].status == rows.DONE
            assert done[update_id].payload == {} and done[update_id].outbound is None
        assert not rows.rows(store, [rows.NEW, rows.APPLIED])
    finally:
        store.dispose()
    log = (tmp_path / "bot.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]


# ----------------------------------------------------------------------------- webhook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_webhook(
    api: FakeBotAPI, db_url: str, port: int, public_url: str, folder: Path, name: str
) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{api.port}",
        DATABASE_URL=db_url,
        MOTCUA_LOG_LEVEL="INFO",
        MOTCUA_WEBHOOK_URL=public_url,
        MOTCUA_WEBHOOK_SECRET=SECRET,
        MOTCUA_WEBHOOK_LISTEN="127.0.0.1",
        MOTCUA_WEBHOOK_PORT=str(port),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "webhook"],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(folder / f"{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


async def post(url: str, body: dict, secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=headers) as response:
            return response.status


def test_webhook_settings_are_checked(tmp_path: Path) -> None:
    env = dict(os.environ, TELEGRAM_BOT_TOKEN=TOKEN, DATABASE_URL=f"sqlite:///{tmp_path}/m.db")
    env.pop("MOTCUA_WEBHOOK_SECRET", None)
    env["MOTCUA_WEBHOOK_URL"] = "https://bot.example.org/tg"
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "webhook"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "MOTCUA_WEBHOOK_SECRET" in run.stderr


async def test_two_webhook_processes_share_postgresql(tmp_path: Path) -> None:
    proc, answers, actions = sample_actions(PROC)
    with make_store("postgresql") as store:
        db_url = store.engine.url.render_as_string(hide_password=False)
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{p}/tg" for p in ports]
        async with FakeBotAPI(token=TOKEN) as api:
            api.webhook_backends = urls  # the load balancer in front of both processes
            bots = [
                start_webhook(api, db_url, port, urls[0], tmp_path, f"bot{n}")
                for n, port in enumerate(ports)
            ]
            try:
                await api.wait_for_call("setWebhook", 2, timeout=60)
                user = api.user(717171, first_name="Lan")

                # a wrong or missing secret: 403, nothing stored
                probe = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {}}}
                assert await post(urls[1], probe, "wrong") == 403
                assert await post(urls[0], probe, None) == 403
                api.webhook_secret = "not-the-secret"
                await user.send_command("/start", arg=PROC)
                while len(api.webhook_deliveries) < 3:
                    await asyncio.sleep(0.05)
                assert {status for _, _, status in api.webhook_deliveries} == {403}
                assert rows.rows(store) == []
                assert await user.wait_quiet(0.3) == []
                api.webhook_secret = None  # Telegram retries; now with the right secret

                last = await user.replies(1, timeout=30)
                last += await user.wait_quiet(1.5)
                labels = [(lb, d) for m in last for row in m.buttons for lb, d in row]
                consent = [d for lb, d in labels if "Đồng ý" in lb]
                if consent:
                    await user.press(consent[0])
                    last = await user.replies(1, timeout=30)
                    last += await user.wait_quiet(1.5)
                assert any("Bước 1/" in m.text for m in last)

                # each update goes to the other process than the one before
                half = len(actions) // 2
                start_id = api.last_update_id
                for action in actions[:half]:
                    api.webhook_duplicates = 1  # and every one is delivered twice
                    last = await act(user, last, action)
                delivered: dict[int, list[str]] = {}
                for update_id, url, status in api.webhook_deliveries:
                    if status == 200 and update_id > start_id:
                        delivered.setdefault(update_id, []).append(url)
                assert len(delivered) == half
                assert all(sorted(u) == sorted(urls) for u in delivered.values()), delivered
                texts = [m.text for m in user.history()]
                repeated = [a for a, b in zip(texts, texts[1:], strict=False) if a == b]
                assert not repeated, "a duplicate delivery was answered twice"

                # two answers typed at once, taken by the two processes
                k = next(
                    i
                    for i in range(half, len(actions) - 1)
                    if actions[i][0] == actions[i + 1][0] == "text"
                )
                for action in actions[half:k]:
                    last = await act(user, last, action)
                before = answers_of(store, user.user_id)
                await user.send_text(actions[k][1])
                await user.send_text(actions[k + 1][1])
                last = await user.replies(2, timeout=30)
                last += await user.wait_quiet(1.0)
                after = answers_of(store, user.user_id)
                assert len(after) == len(before) + 2, (sorted(before), sorted(after))
                for action in actions[k + 2 :]:
                    last = await act(user, last, action)
                docs = [m for m in last if m.kind == "document"]
                assert len(docs) == 1
                text = " ".join(pdf_text(docs[0].document).split())
                assert str(answers["subject_full_name"]).split()[-1] in text
                assert not rows.rows(store, [rows.NEW, rows.APPLIED])
                assert len({r.owner for r in rows.rows(store)}) == 2  # both took updates
            finally:
                for bot in bots:
                    await stop_bot(bot)
    for n in range(2):
        log = (tmp_path / f"bot{n}.log").read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in log, log[-3000:]
        assert SECRET not in log

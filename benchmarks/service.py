"""The conversation service in-process: CPU, statements and commits per update, by database.

Every planned script (benchmarks/scripts.py) is played by one thread through the bot's own
wiring (`bot.app.build_service`: reminders, the PDF worker) and the inbox rows, as the
Telegram transport does for one update: accept the update, apply it (the service marks the
inbox row in its own transaction), finish it. The bot batches the accepts of one
getUpdates and groups the finishes of the moment (bot/inbox.py), so its commits per update
are fewer than the three here. Nothing of Telegram runs: this is the part of the bot's CPU
that the database and the engine decide, measured without the other processes of a load
competing for the cores. The thread's CPU time is reported, so the PDF worker's share is
not in it.

    python -m benchmarks.service                      # SQLite and PostgreSQL, 2 rounds
    python -m benchmarks.service --db postgresql --rounds 3 --statements

PostgreSQL: MOTCUA_BENCH_PG_URL (a private schema, dropped afterwards).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import re
import tempfile
import time
from pathlib import Path

from sqlalchemy import event

from benchmarks import common
from benchmarks.scripts import Plan, Script, plan_scripts
from flows.types import AlreadyHandled, Command, Inbound, Press, Sender, Text
from storage.crypto import generate_key

LEASE = dt.timedelta(minutes=5)


class _Counter:
    def __init__(self, engine) -> None:
        self.statements = 0
        self.commits = 0
        self.by_statement: collections.Counter[str] = collections.Counter()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn, cursor, statement, params, context, executemany) -> None:
        self.statements += 1
        self.by_statement[re.sub(r"\s+", " ", statement)[:100]] += 1

    def _commit(self, conn) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.statements = self.commits = 0
        self.by_statement.clear()


class _Player:
    def __init__(self, svc) -> None:
        from bot.inbox import encode_outbound
        from storage import inbox as rows

        self.svc = svc
        self.rows = rows
        self.encode = encode_outbound
        self.update_id = 0

    def one(self, sender: Sender, ev) -> object:
        rows, store = self.rows, self.svc.store
        self.update_id += 1
        update_id = self.update_id
        now = dt.datetime.now(dt.UTC)
        received = [rows.Received(update_id, sender.external_id, {"update_id": update_id})]
        rows.accept(store, received, "bench", now, now + LEASE)

        def receipt(uow, out) -> None:
            if not rows.mark_applied(uow, update_id, self.encode(out), dt.datetime.now(dt.UTC)):
                raise AlreadyHandled(update_id)

        out = self.svc.handle(Inbound(sender, ev, receipt=receipt))
        rows.finish(store, [update_id], dt.datetime.now(dt.UTC))
        return out

    def play(self, script: Script, chat_id: int) -> int:
        sender = Sender("telegram", str(chat_id), "Nguyễn Văn An")
        last = None
        updates = 0
        for step in script.steps:
            for kind, value in step.events:
                if kind == "cmd":
                    name, _, arg = value.partition(" ")
                    ev = Command(name.lstrip("/"), arg)
                elif kind == "text":
                    ev = Text(value)
                else:
                    ev = Press(_button(last, value))
                out = self.one(sender, ev)
                updates += 1
                if any(r.buttons for r in out.replies):
                    last = out
        return updates


def _button(out, token: str) -> str:
    for reply in out.replies:
        for row in reply.buttons:
            for button in row:
                if button.data.split(".", 2)[-1] == token:
                    return button.data
    raise LookupError(token)


def measure(kind: str, plan: Plan, rounds: int) -> dict:
    """One database: the scripts played `rounds` times after one warm-up script."""
    from bot.app import build_service
    from bot.settings import load_settings
    from flows import pdfworker

    with (
        tempfile.TemporaryDirectory(prefix="motcua-bench-") as tmp,
        common.database(kind, Path(tmp)) as url,
    ):
        saved = dict(os.environ)
        os.environ.pop("MOTCUA_DATA_KEY_FILE", None)
        os.environ.update(DATABASE_URL=url, MOTCUA_DATA_KEYS=generate_key())  # throwaway
        try:
            svc = build_service(load_settings())
        finally:
            os.environ.clear()
            os.environ.update(saved)
        try:
            counter = _Counter(svc.store.engine)
            player = _Player(svc)
            player.play(plan.scripts[0], 1)  # warm-up: imports, caches, the PDF worker
            counter.reset()
            updates, chat_id = 0, 1
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for _ in range(rounds):
                for script in plan.scripts:
                    chat_id += 1
                    updates += player.play(script, chat_id)
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        finally:
            svc.store.dispose()
            pdfworker.shutdown()
    return {
        "db": kind,
        "updates": updates,
        "cpu_ms_per_update": round(cpu / updates * 1000, 2),
        "wall_ms_per_update": round(wall / updates * 1000, 2),
        "statements_per_update": round(counter.statements / updates, 2),
        "commits_per_update": round(counter.commits / updates, 2),
        "statements": {k: round(v / updates, 2) for k, v in counter.by_statement.most_common()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, help="sample answer sets per procedure")
    parser.add_argument("--statements", action="store_true", help="list them, per update")
    args = parser.parse_args(argv)
    plan = plan_scripts(per_procedure=args.samples)
    for kind in args.db or ["sqlite", "postgresql"]:
        r = measure(kind, plan, args.rounds)
        print(
            f"{kind}: {r['updates']} updates, CPU {r['cpu_ms_per_update']} ms/update "
            f"(wall {r['wall_ms_per_update']} ms), {r['statements_per_update']} statements "
            f"and {r['commits_per_update']} commits per update"
        )
        if args.statements:
            for text, n in r["statements"].items():
                print(f"  {n:6.2f}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

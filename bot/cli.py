"""`motcua` command line: run, chat, db upgrade, procedures check."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from bot import privacy_cli
from bot.privacy_cli import open_store
from bot.settings import SettingsError, load_settings
from storage.crypto import DataKeyError

TICK_SECONDS = 60  # how often unclaimed cases are checked for re-announcement


def _fail(message: str) -> int:
    print(f"motcua: {message}", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    """`motcua run` (long polling) and `motcua webhook` (args.webhook)."""
    from bot.app import build_service, configure_logging
    from bot.inbox import Inbox, default_owner
    from bot.pacing import Pacer
    from bot.telegram import build_application, run_polling

    settings = load_settings(require_token=True)
    hook = None
    if getattr(args, "webhook", False):
        from bot.webhook import load_webhook_settings

        hook = load_webhook_settings()
    configure_logging(settings.log_level, settings.log_format)
    service = build_service(settings)
    officers = service.officers
    # the durable inbox (bot/inbox.py): no update lost to a crash, duplicates applied once
    owner = default_owner(f"webhook:{hook.port}" if hook else "poll")
    inbox = Inbox(service.store, owner, ordered_across_processes=hook is not None)
    app = build_application(
        service,
        settings.telegram_bot_token,
        base_url=settings.base_url,
        base_file_url=settings.base_file_url,
        groups=officers.groups() if officers else frozenset(),
        tick_seconds=TICK_SECONDS,  # the retention purge; officers' re-announcements
        inbox=inbox,
        pacer=Pacer(
            private_interval=settings.pacing[0],
            group_interval=settings.pacing[1],
            per_second=settings.pacing[2],
        ),
        concurrent_updates=settings.concurrent_updates,
        worker_threads=settings.worker_threads or None,
    )
    if service.reminders is not None and settings.reminders.enabled:
        from bot.reminders import schedule

        schedule(app, service.reminders, settings.reminders.tick_seconds)
    if officers is not None and officers.broadcasts is not None:
        from bot.broadcast import schedule as schedule_broadcasts

        schedule_broadcasts(app, officers.broadcasts)
    if hook is not None:
        from bot.ops import ops_routes
        from bot.webhook import run_webhook

        run_webhook(app, hook, extra_routes=ops_routes(app, service.store))
        return 0
    if settings.metrics_port is not None:
        from bot.ops import serve_in_polling

        serve_in_polling(app, service.store, settings.metrics_host, settings.metrics_port)
    run_polling(app)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the SQLite database, safe while the bot runs."""
    from bot.ops import BackupError, backup_sqlite, sqlite_path

    settings = load_settings()
    try:
        written, size = backup_sqlite(
            sqlite_path(settings.database_url), Path(args.path), overwrite=args.force
        )
    except BackupError as exc:
        return _fail(f"backup not written: {exc}")
    print(f"motcua: backup written to {written} ({size / 1e6:.1f} MB)")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.app import build_service, configure_logging
    from bot.console import Console

    settings = load_settings()
    configure_logging("WARNING")
    service = build_service(settings)
    user = args.user or getpass.getuser() or "console"
    console = Console(service, user=user, out_dir=Path(args.out))
    return console.run(first="/start " + args.procedure if args.procedure else "/start")


def cmd_db(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = open_store(settings)
    store.upgrade()
    store.dispose()
    print(f"motcua: database schema is up to date ({store.dialect})")
    return 0


def cmd_procedures_check(args: argparse.Namespace) -> int:
    from flows.lint import lint_catalog
    from procedures.loader import load_catalog

    settings = load_settings()
    catalog = load_catalog(settings.procedures_dirs + tuple(Path(p) for p in args.dirs))
    report = lint_catalog(catalog)
    for line in report.lines:
        print(line)
    if report.problems:
        for p in report.problems:
            print(f"PROBLEM {p}", file=sys.stderr)
        return 1
    print(f"motcua: {len(catalog.procedures)} procedures checked, no problems")
    return 0


def cmd_procedures_graph(args: argparse.Namespace) -> int:
    from flows.lint import mermaid
    from procedures.loader import load_catalog

    settings = load_settings()
    catalog = load_catalog(settings.procedures_dirs)
    proc = catalog.get(args.procedure)
    if proc is None:
        return _fail(
            f"unknown procedure {args.procedure!r}; known: {', '.join(catalog.procedures)}"
        )
    print(mermaid(proc, catalog.ui["graph"]))
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    """The most frequent messages the bot did not understand (already redacted)."""
    from flows.intents import top_questions

    settings = load_settings()
    store = open_store(settings)
    store.upgrade()
    with store.unit_of_work() as uow:
        texts = [f.data.get("text", "") for f in uow.facts(kind="UnknownMessage")]
    store.dispose()
    for text, count in top_questions(texts, n=args.top):
        print(f"{count:5d}  {text}")
    if not texts:
        print("motcua: no unknown messages recorded")
    return 0


def cmd_reminders(args: argparse.Namespace) -> int:
    """Reminder rows for operators: planned ones (due ones marked), or all with --all."""
    import datetime as dt

    from flows.reminders import Reminders
    from procedures.loader import load_catalog

    settings = load_settings()
    store = open_store(settings)
    store.upgrade()
    reminders = Reminders(store, load_catalog(settings.procedures_dirs), config=settings.reminders)
    now = dt.datetime.now(dt.UTC)
    listed = reminders.listing(now, all_rows=args.all)
    store.dispose()
    for r in listed:
        due = "DUE " if r.status == "planned" and r.due_at <= now else "    "
        print(
            f"{due}{r.id:6d}  {r.due_at:%Y-%m-%d %H:%M}Z  {r.kind:6s} #{r.seq}  "
            f"citizen {r.citizen_id}  draft {r.draft_id}  {r.status} {r.note}".rstrip()
        )
    waiting = sum(1 for r in listed if r.status == "planned" and r.due_at <= now)
    print(f"motcua: {len(listed)} reminders listed, {waiting} due now")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="motcua", description="A commune's one-stop desk on Telegram")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the Telegram bot (long polling)").set_defaults(func=cmd_run)
    sub.add_parser(
        "webhook", help="run the Telegram bot as a webhook server (MOTCUA_WEBHOOK_*)"
    ).set_defaults(func=cmd_run, webhook=True)
    chat = sub.add_parser("chat", help="talk to the bot in this terminal (no token needed)")
    chat.add_argument("--user", help="who you are in the chat (default: your login name)")
    chat.add_argument("--out", default="motcua-out", help="folder for the PDF files")
    chat.add_argument("--procedure", help="start this procedure directly (its id)")
    chat.set_defaults(func=cmd_chat)
    db = sub.add_parser("db", help="database commands")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=cmd_db)
    questions = sub.add_parser("questions", help="most frequent messages not understood")
    questions.add_argument("--top", type=int, default=20)
    questions.set_defaults(func=cmd_questions)
    rem = sub.add_parser("reminders", help="list planned (and due) reminders")
    rem.add_argument("--all", action="store_true", help="also sent and cancelled ones")
    rem.set_defaults(func=cmd_reminders)
    backup = sub.add_parser("backup", help="copy the SQLite database (safe while the bot runs)")
    backup.add_argument("path", help="the copy's file name, or a folder for a dated file")
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    backup.set_defaults(func=cmd_backup)
    privacy_cli.add_parsers(sub)  # keys generate|rotate, purge
    procs = sub.add_parser("procedures", help="procedure commands")
    psub = procs.add_subparsers(dest="procedures_command", required=True)
    check = psub.add_parser("check", help="lint every procedure")
    check.add_argument("dirs", nargs="*", help="extra folders holding procedure folders")
    check.set_defaults(func=cmd_procedures_check)
    graph = psub.add_parser("graph", help="print a procedure's questions as a Mermaid diagram")
    graph.add_argument("procedure")
    graph.set_defaults(func=cmd_procedures_graph)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, DataKeyError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a procedure file or database that cannot be used
        from procedures.loader import ProcedureError

        if isinstance(exc, ProcedureError):
            return _fail(f"procedure error: {exc}")
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            return _fail(f"cannot use the database: {str(exc.orig).strip().splitlines()[0]}")
        raise


if __name__ == "__main__":
    sys.exit(main())

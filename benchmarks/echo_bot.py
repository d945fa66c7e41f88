"""The floor: a bare python-telegram-bot 22 echo bot on the same fake Bot API server.

It answers every update with one message carrying one inline button: a typed message or a
command gets its own text back, a button press gets its callback answered and "ok".
No database, no conversation. `--concurrent` turns on `concurrent_updates=True`.

    TELEGRAM_BOT_TOKEN=... TELEGRAM_API_BASE_URL=http://127.0.0.1:PORT \
        python -m benchmarks.echo_bot [--concurrent]
"""

from __future__ import annotations

import argparse
import logging
import os

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="echo.0.ok")]])


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or update.effective_chat is None:
        return
    await context.bot.send_message(
        chat_id=update.effective_chat.id, text=message.text or "?", reply_markup=KEYBOARD
    )


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None or update.effective_chat is None:
        return
    await query.answer()
    await context.bot.send_message(
        chat_id=update.effective_chat.id, text="ok", reply_markup=KEYBOARD
    )


def build(token: str, api_base: str, concurrent: bool) -> Application:
    base = api_base.rstrip("/")
    app = (
        Application.builder()
        .token(token)
        .base_url(base + "/bot")
        .base_file_url(base + "/file/bot")
        .concurrent_updates(concurrent)
        .build()
    )
    app.add_handler(MessageHandler(filters.ALL, on_message))
    app.add_handler(CallbackQueryHandler(on_press))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", action="store_true", help="concurrent_updates=True")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = build(
        os.environ["TELEGRAM_BOT_TOKEN"], os.environ["TELEGRAM_API_BASE_URL"], args.concurrent
    )
    app.run_polling(allowed_updates=Update.ALL_TYPES, timeout=30)


if __name__ == "__main__":
    main()

"""The terminal transport: `motcua chat`. Same service, same events as Telegram.

Buttons are shown numbered: type the number to press one (when the bot waits for a typed
answer, type `#2` to press button 2). Commands start with `/`. A PDF is written to a
folder and its path printed. The few console-only words come from ui.yaml `console`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from flows.service import ConversationService
from flows.types import Button, Command, Inbound, Other, Press, Reply, Sender, Text


def parse_line(line: str, buttons: list[Button], expect: str):
    """Turn a typed line into an event, given the buttons of the last message."""
    s = line.strip()
    if s.startswith("#") and s[1:].isdigit():
        n = int(s[1:])
        return Press(buttons[n - 1].data) if 1 <= n <= len(buttons) else Text(s)
    if s.isdigit() and expect != "text" and 1 <= int(s) <= len(buttons):
        return Press(buttons[int(s) - 1].data)
    if s.startswith("/") and len(s) > 1:
        name, _, arg = s[1:].partition(" ")
        return Command(name.split("@")[0].lower(), arg.strip())
    if s == "[sticker]":
        return Other("sticker")
    return Text(s)


class Console:
    def __init__(
        self,
        service: ConversationService,
        *,
        user: str,
        out_dir: Path,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        self.service = service
        self.sender = Sender(channel="console", external_id=user, display_name=user)
        self.out_dir = out_dir
        self.stdin = stdin
        self.stdout = stdout
        self.buttons: list[Button] = []
        self.expect = "none"
        self.labels = service.catalog.ui.get("console", {})

    def write(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def show(self, reply: Reply) -> None:
        if reply.attachment is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = (self.out_dir / reply.attachment.filename).resolve()
            path.write_bytes(reply.attachment.content)
            self.write(f"{self.labels.get('file', 'File')}: {path}")
        self.write(reply.text)
        if reply.buttons:
            self.buttons = [b for row in reply.buttons for b in row]
            self.expect = reply.expect
            for row_start, row in _numbered(reply.buttons):
                cells = [f"[{row_start + i}] {b.label}" for i, b in enumerate(row)]
                self.write("   " + "   ".join(cells))
        self.write("")

    def send(self, event) -> None:
        outbound = self.service.handle(Inbound(self.sender, event))
        for reply in outbound.replies:
            self.show(reply)
        for delivery in outbound.deliveries:  # messages for other chats (officers): one line
            if delivery.reply is not None and delivery.edit_message_id is None:
                first = delivery.reply.text.splitlines()[0] if delivery.reply.text else ""
                self.write(f"[-> {delivery.target.chat_id}] {first}")

    def run(self, first: str = "/start") -> int:
        self.write(self.labels.get("banner", ""))
        self.send(parse_line(first, [], "none"))
        while True:
            self.stdout.write("> ")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:
                self.write("")
                return 0
            if not line.strip():
                continue
            if line.strip() in ("/quit", "/exit", "/thoat"):
                return 0
            self.send(parse_line(line, self.buttons, self.expect))


def _numbered(rows):
    n = 1
    for row in rows:
        yield n, row
        n += len(row)

"""A person chatting with the real conversation service (real database, no Telegram).

`Chat.send("...")`, `.press("label")`, `.cmd("start")` go through `ConversationService.
handle` exactly like the transports do; every exchange is written to a transcript that
golden tests compare with `tests/golden/<name>.txt` (rewrite them after a reviewed change
with `pytest --update-golden`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flows.service import ConversationService
from flows.types import Button, Command, Inbound, Other, Outbound, Press, Reply, Sender, Text

GOLDEN_DIR = Path(__file__).parent / "golden"
FIXED_NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # 09:00 in Viet Nam


class Clock:
    def __init__(self, now: dt.datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += dt.timedelta(**kw)


class Chat:
    def __init__(self, service: ConversationService, user: str = "1001", name: str = "An"):
        self.service = service
        self.sender = Sender(channel="test", external_id=user, display_name=name)
        self.replies: list[Reply] = []
        self.history: list[Reply] = []
        self.transcript: list[str] = []
        self.last: Outbound | None = None

    # -- actions
    def _do(self, event, shown: str) -> list[Reply]:
        out = self.service.handle(Inbound(self.sender, event))
        self.last = out
        self.replies = out.replies
        self.history.extend(out.replies)
        self.transcript.append(f">>> {shown}")
        for r in out.replies:
            self.transcript.append(render_reply(r))
        return out.replies

    def send(self, text: str) -> list[Reply]:
        return self._do(Text(text), text)

    def cmd(self, name: str, arg: str = "") -> list[Reply]:
        return self._do(Command(name, arg), f"/{name} {arg}".strip())

    def other(self, kind: str = "sticker") -> list[Reply]:
        return self._do(Other(kind), f"[{kind}]")

    def press_data(self, data: str) -> list[Reply]:
        return self._do(Press(data), f"[press {data.split('.', 2)[-1]}]")

    def button(self, label: str) -> Button:
        for reply in reversed(self.replies):
            for row in reply.buttons:
                for b in row:
                    if b.label == label or b.label.endswith(" " + label) or label in b.label:
                        return b
        labels = [b.label for r in self.replies for row in r.buttons for b in row]
        raise AssertionError(f"no button {label!r}; buttons: {labels}")

    def press(self, label: str) -> list[Reply]:
        b = self.button(label)
        return self._do(Press(b.data), f"[{b.label}]")

    def press_token(self, token: str) -> list[Reply]:
        for reply in reversed(self.replies):
            for row in reply.buttons:
                for b in row:
                    if b.data.split(".", 2)[-1] == token:
                        return self._do(Press(b.data), f"[{b.label}]")
        raise AssertionError(f"no button with token {token!r}")

    # -- reading
    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    def labels(self) -> list[str]:
        return [b.label for r in self.replies for row in r.buttons for b in row]

    def attachments(self):
        return [r.attachment for r in self.replies if r.attachment is not None]

    def transcript_text(self) -> str:
        return "\n".join(self.transcript) + "\n"


def render_reply(r: Reply) -> str:
    lines = [r.text]
    if r.attachment is not None:
        lines.insert(0, f"[file {r.attachment.filename}]")
    for row in r.buttons:
        lines.append("  " + " | ".join(f"[{b.label}]" for b in row))
    return "\n".join(lines)


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN_DIR / f"{name}.txt"
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not update:
            raise AssertionError(f"golden {path.name} did not exist; written, review it")
        return
    expected = path.read_text(encoding="utf-8")
    if expected != text:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), text.splitlines(True), "golden", "now", n=2
            )
        )
        raise AssertionError(f"transcript differs from {path.name}:\n{diff[:6000]}")

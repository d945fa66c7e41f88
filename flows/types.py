"""Transport-neutral events in and replies out.

Every transport (Telegram, the terminal chat, the tests) turns what a person did into one
of the events below, hands it to the conversation service, and renders the replies it gets
back. Nothing here knows about python-telegram-bot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Sender:
    """Who sent an event, as the transport knows them."""

    channel: str  # "telegram", "console", "test"
    external_id: str  # the chat/user id in that channel, as text
    display_name: str = ""
    username: str = ""
    language: str = "vi"


@dataclass(frozen=True)
class Text:
    """Typed text (not a command)."""

    text: str


@dataclass(frozen=True)
class Press:
    """A button press. `data` is the raw callback data: `<draft>.<turn>.<token>`."""

    data: str


@dataclass(frozen=True)
class Command:
    """A slash command such as /start, /hoso, /huongdan, /canbo, /huy. `arg` is the rest."""

    name: str
    arg: str = ""


@dataclass(frozen=True)
class Other:
    """Anything that is not text: sticker, photo, voice, document, location..."""

    kind: str


Event = Text | Press | Command | Other


@dataclass(frozen=True)
class Inbound:
    sender: Sender
    event: Event


# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Button:
    label: str  # Vietnamese text shown to the person (from templates)
    data: str  # ASCII callback data, <= 64 bytes


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: str = "application/pdf"
    caption: str = ""


Expect = Literal["text", "choice", "none"]


@dataclass(frozen=True)
class Reply:
    """One message to send. `buttons` are rows of buttons (an inline keyboard)."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    expect: Expect = "none"
    attachment: Attachment | None = None

    def button_rows(self) -> list[list[Button]]:
        return [list(r) for r in self.buttons]


@dataclass
class Outbound:
    """What the service returns for one inbound event: replies to one chat."""

    replies: list[Reply] = field(default_factory=list)
    notice: str = ""  # short text for answering a callback query (toast), optional

    def texts(self) -> list[str]:
        return [r.text for r in self.replies]

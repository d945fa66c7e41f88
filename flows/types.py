"""Transport-neutral events in and replies out.

Every transport (Telegram, the terminal chat, the tests) turns what a person did into one
of the events below, hands it to the conversation service, and renders the replies it gets
back. Nothing here knows about python-telegram-bot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
class Origin:
    """Where an inbound message sits in its channel: what a relay, a copy or a reply to it
    needs. Transports fill what they know; the defaults mean "the sender's private chat"."""

    chat_id: str = ""  # the chat the event came from; "" = the sender's private chat
    group: bool = False  # sent in a group or supergroup (the officers' side)
    thread_id: int | None = None  # forum topic of the message, if any
    message_id: int | None = None  # the message (for a Press: the message with the button)
    reply_to_id: int | None = None  # the message this one answers, if any
    reply_to_text: str = ""  # that message's text or caption
    reply_to_user: str = ""  # that message's author (user id as text)
    reply_to_name: str = ""  # that author's display name
    caption: str = ""  # the caption of a photo, document...


@dataclass(frozen=True)
class Inbound:
    sender: Sender
    event: Event
    # Transport metadata, not part of what happened: two inbounds with the same sender and
    # event are equal whatever their origin.
    origin: Origin = field(default_factory=Origin, compare=False)
    # The transport's proof of receipt (its durable inbox): the service calls
    # `receipt(uow, outbound)` inside the unit of work that commits the event's effects,
    # so the event is marked handled in the same transaction. It raises AlreadyHandled
    # when the event was applied before (a duplicate delivery): nothing is committed.
    receipt: Callable[[Any, Outbound], None] | None = field(default=None, compare=False, repr=False)


class AlreadyHandled(Exception):
    """Raised by an Inbound's receipt: this event was applied already (a duplicate
    delivery); the transaction is rolled back and nothing is sent."""


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


@dataclass(frozen=True)
class Target:
    """Another chat than the sender's: a citizen's chat, an officers' group or its topic."""

    channel: str
    chat_id: str
    thread_id: int | None = None  # forum topic


@dataclass(frozen=True)
class Copy:
    """Copy a message (a photo, a document...) from one chat of the channel into another."""

    from_chat_id: str
    message_id: int
    caption: str | None = None  # None keeps the original caption


@dataclass(frozen=True)
class Delivery:
    """One message for another chat: a reply to send, a message to copy, or (with
    `edit_message_id`) a message of the bot's to edit into `reply`."""

    target: Target
    reply: Reply | None = None
    copy: Copy | None = None
    edit_message_id: int | None = None
    reply_to_id: int | None = None  # send as an answer to this message of the target chat
    new_topic: str = ""  # open a forum topic of this name first, when the chat has topics
    # Report the sent message back: the transport calls `record_sent(record, chat_id,
    # message_id, thread_id)` on the handler once it is sent ("" = no report).
    record: str = ""


@dataclass
class Outbound:
    """What the service returns for one inbound event: replies to the sender's chat, and
    deliveries to other chats (sent after the replies, in order)."""

    replies: list[Reply] = field(default_factory=list)
    notice: str = ""  # short text for answering a callback query (toast), optional
    deliveries: list[Delivery] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [r.text for r in self.replies]

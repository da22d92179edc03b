"""Telegram updates read as inbound messages: pure functions, no network."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType

from adapters.telegram.render import pressed
from conversations.fields import normalize_phone
from conversations.messages import Channel, Inbound, lang_hint


class UpdateKind(StrEnum):
    MESSAGE = "message"  # text, a command, a pressed button or a shared contact
    FILE = "file"  # a photo or a document, still to be downloaded
    UNSUPPORTED = "unsupported"  # voice, sticker, location...: answered with a polite reply
    IGNORED = "ignored"  # edits, groups, other bots, service messages


@dataclass(frozen=True, slots=True)
class IncomingFile:
    file_id: str
    size: int | None  # when Telegram already told it
    content_type: str | None  # what the sender's app declared, checked again after download
    filename: str


@dataclass(frozen=True, slots=True)
class ParsedUpdate:
    kind: UpdateKind
    update_id: int
    inbound: Inbound | None = None
    file: IncomingFile | None = None
    # A pressed inline button: the query to answer, and the message whose buttons go away.
    callback_query_id: str | None = None
    keyboard_chat_id: int | None = None
    keyboard_message_id: int | None = None
    # Why an update was ignored or is unsupported, for logs (never the content).
    reason: str = ""


# What each slash command means to the engine. "/lang" alone is resolved by the caller,
# which knows the conversation's language, into "lang:ar" or "lang:en".
COMMANDS = {"start": "start", "menu": "menu", "cancel": "cancel", "help": "help"}
LANGUAGE_COMMANDS = {"en": "lang:en", "english": "lang:en", "ar": "lang:ar", "arabic": "lang:ar"}
LANGUAGE_ARGUMENTS = {
    "en": "en",
    "english": "en",
    "انجليزي": "en",
    "الإنجليزية": "en",
    "ar": "ar",
    "arabic": "ar",
    "عربي": "ar",
    "العربية": "ar",
}
# Kinds of message the engine cannot read; the first one present names the reason.
UNSUPPORTED = (
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "sticker",
    "location",
    "venue",
    "poll",
    "dice",
    "game",
    "story",
    "paid_media",
)
MAX_START_PAYLOAD = 64


def parse_command(text: str) -> str | None:
    """The engine command a slash command means; None when the text is not one we know."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].strip().partition(" ")
    name = head.split("@", 1)[0].lower()
    argument = rest.strip()
    if name == "start":
        return f"start:{argument[:MAX_START_PAYLOAD]}" if argument else "start"
    if name in COMMANDS:
        return COMMANDS[name]
    if name in LANGUAGE_COMMANDS:
        return LANGUAGE_COMMANDS[name]
    if name == "lang":
        lang = LANGUAGE_ARGUMENTS.get(argument.lower())
        return f"lang:{lang}" if lang else "lang"
    return None


def contact_phone(raw: str) -> str | None:
    """A shared contact's number in E.164; Telegram sends it without the plus."""
    digits = raw.strip()
    if digits.isdigit() and not digits.startswith("0"):
        digits = "+" + digits
    return normalize_phone(digits)


def parse_update(update: Update, *, now: datetime | None = None) -> ParsedUpdate:
    """What an update means for the bot: a message to store, a file to fetch, or nothing."""
    if update.callback_query is not None:
        return _callback(update.update_id, update.callback_query, now or datetime.now(UTC))
    if update.message is not None:
        return _message(update.update_id, update.message)
    if update.edited_message is not None:
        # An edit must not re-run a form step that was already answered.
        return ParsedUpdate(UpdateKind.IGNORED, update.update_id, reason="edited")
    return ParsedUpdate(UpdateKind.IGNORED, update.update_id, reason="other")


def _message(update_id: int, msg: Message) -> ParsedUpdate:
    user = msg.from_user
    # The library reads a malformed update leniently: a message without its chat (or date)
    # is refused here rather than failing later.
    chat = getattr(msg, "chat", None)
    if chat is None or getattr(chat, "id", None) is None:
        return ParsedUpdate(UpdateKind.IGNORED, update_id, reason="no chat")
    if chat.type != ChatType.PRIVATE:
        return ParsedUpdate(UpdateKind.IGNORED, update_id, reason="group")
    if user is None or user.is_bot:
        return ParsedUpdate(UpdateKind.IGNORED, update_id, reason="bot")
    if not isinstance(msg.date, datetime):
        return ParsedUpdate(UpdateKind.IGNORED, update_id, reason="no date")
    received = msg.date if msg.date.tzinfo else msg.date.replace(tzinfo=UTC)
    base = Inbound(
        channel=Channel.TELEGRAM,
        sender_id=str(msg.chat.id),
        # The message's own id in its chat, never reused there; an update's id is not one to
        # remember (Telegram starts its ids afresh, at random, after a week without updates).
        channel_message_id=f"{msg.chat.id}:{msg.message_id}",
        received_at=received.astimezone(UTC),
        display_name=user.full_name,
        lang_hint=lang_hint(user.language_code),
    )

    def build(
        kind: UpdateKind, inbound: Inbound, file: IncomingFile | None = None, reason: str = ""
    ) -> ParsedUpdate:
        return ParsedUpdate(kind, update_id, inbound=inbound, file=file, reason=reason)

    caption = msg.caption or ""
    if msg.contact is not None:
        phone = contact_phone(msg.contact.phone_number)
        own = msg.contact.user_id is not None and msg.contact.user_id == user.id
        if own and phone:
            return build(UpdateKind.MESSAGE, replace(base, verified_phone=phone))
        # Someone else's card vouches for nothing; its number is read like typed text.
        text = phone or msg.contact.phone_number
        return build(UpdateKind.MESSAGE, replace(base, text=text))
    for name in UNSUPPORTED:
        if getattr(msg, name, None):
            return build(UpdateKind.UNSUPPORTED, replace(base, text=caption), reason=name)
    if msg.photo:
        largest = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        file = IncomingFile(largest.file_id, largest.file_size, "image/jpeg", "photo.jpg")
        return build(UpdateKind.FILE, replace(base, text=caption), file=file)
    if msg.document is not None:
        doc = msg.document
        file = IncomingFile(doc.file_id, doc.file_size, doc.mime_type, doc.file_name or "document")
        return build(UpdateKind.FILE, replace(base, text=caption), file=file)
    text = msg.text or ""
    if not text.strip():
        return ParsedUpdate(UpdateKind.IGNORED, update_id, reason="service")
    command = parse_command(text.strip())
    if command is not None:
        return build(UpdateKind.MESSAGE, replace(base, command=command))
    return build(UpdateKind.MESSAGE, replace(base, text=text))


def _callback(update_id: int, query: CallbackQuery, now: datetime) -> ParsedUpdate:
    message = query.message if isinstance(query.message, Message) else None
    if message is not None and getattr(message, "chat", None) is None:
        message = None  # a button's message without its chat: the press still counts
    if message is not None and message.chat.type != ChatType.PRIVATE:
        return ParsedUpdate(
            UpdateKind.IGNORED, update_id, callback_query_id=query.id, reason="group"
        )
    sender = getattr(query, "from_user", None)
    if sender is None or not sender.id:
        # A malformed query with no sender: nothing to answer, nobody to answer it to.
        return ParsedUpdate(
            UpdateKind.IGNORED, update_id, callback_query_id=query.id, reason="no sender"
        )
    # Telegram sends a string; a malformed update may carry anything.
    data = query.data if isinstance(query.data, str) else ""
    offer, value = pressed(data)
    label = button_label(message, data) if message is not None else None
    inbound = Inbound(
        channel=Channel.TELEGRAM,
        sender_id=str(query.from_user.id),
        # The label, as if typed: it reads naturally in the history and picks the same choice.
        text=label or value,
        offer=offer,
        channel_message_id=f"press:{query.id}",
        received_at=now,
        display_name=query.from_user.full_name,
        lang_hint=lang_hint(query.from_user.language_code),
    )
    return ParsedUpdate(
        UpdateKind.MESSAGE,
        update_id,
        inbound=inbound,
        callback_query_id=query.id,
        keyboard_chat_id=message.chat.id if message is not None else None,
        keyboard_message_id=message.message_id if message is not None else None,
    )


def button_label(message: Message, data: str) -> str | None:
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None

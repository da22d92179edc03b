"""A reply in Telegram's best form: buttons, a share-my-phone key, parts of at most 4096."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from conversations.messages import Ask, Choice, Reply

MAX_TEXT = 4096  # Telegram's limit for one message, counted in UTF-16 code units
MAX_CALLBACK_DATA = 64  # bytes
# Paragraphs first, then lines, then words; a single endless word is cut where it must be.
SEPARATORS = ("\n\n", "\n", " ")

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


@dataclass(frozen=True, slots=True)
class OutgoingText:
    text: str
    markup: Markup | None = None


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most ``limit`` units, cut on paragraph boundaries where possible."""
    text = text.strip()
    if not text:
        return []
    return [part for part in _pack(text, limit, SEPARATORS) if part]


def _pack(text: str, limit: int, separators: Sequence[str]) -> list[str]:
    if units(text) <= limit:
        return [text.strip()]
    if not separators:
        return _cut(text, limit)
    separator, finer = separators[0], separators[1:]
    chunks: list[str] = []
    current = ""
    for piece in text.split(separator):
        candidate = f"{current}{separator}{piece}" if current else piece
        if units(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            chunks.append(current.strip())
        if units(piece) <= limit:
            current = piece
        else:
            smaller = _pack(piece, limit, finer)
            chunks.extend(smaller[:-1])
            current = smaller[-1]
    if current.strip():
        chunks.append(current.strip())
    return chunks


def _cut(text: str, limit: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = units(char)
        if size + width > limit:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        chunks.append("".join(current))
    return chunks


def callback_data(choice: Choice, position: int, offer: int | None = None) -> str:
    """The choice's value (its number when the value is too long for a button's 64 bytes),
    after the number of the offer it belongs to: "7|yes"."""
    prefix = f"{offer}|" if offer is not None else ""
    if choice.value and len((prefix + choice.value).encode()) <= MAX_CALLBACK_DATA:
        return prefix + choice.value
    return prefix + str(position)


def pressed(data: str) -> tuple[int | None, str]:
    """The offer and the value a button's data carries (buttons sent before offers were
    numbered carry the value alone)."""
    number, bar, value = data.partition("|")
    if bar and number.isdigit():
        return int(number), value
    return None, data


def inline_keyboard(choices: Sequence[Choice], offer: int | None = None) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(choice.label, callback_data=callback_data(choice, n, offer))
        for n, choice in enumerate(choices, start=1)
    ]
    longest = max(units(choice.label) for choice in choices)
    # Short labels (ratings, yes/no) side by side; sentences one to a row, readable on a phone.
    per_row = 3 if longest <= 8 else 2 if longest <= 16 else 1
    rows = [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
    return InlineKeyboardMarkup(rows)


def phone_keyboard(share_label: str, choices: Sequence[Choice]) -> ReplyKeyboardMarkup:
    """A share-my-number key, and the other choices as keys that send their label as text."""
    rows = [[KeyboardButton(share_label, request_contact=True)]]
    rows += [[KeyboardButton(choice.label)] for choice in choices]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


def render(reply: Reply, *, share_phone_label: str, limit: int = MAX_TEXT) -> list[OutgoingText]:
    """The messages a reply becomes; its buttons ride on the last one."""
    parts = split_text(reply.text, limit)
    markup: Markup | None = None
    if reply.ask is Ask.PHONE:
        markup = phone_keyboard(share_phone_label, reply.choices)
    elif reply.choices:
        markup = inline_keyboard(reply.choices, reply.offer)
    if markup is not None and not parts:
        parts = ["…"]  # buttons need a message to sit on
    messages = [OutgoingText(part) for part in parts]
    if markup is not None:
        messages[-1] = OutgoingText(messages[-1].text, markup)
    return messages

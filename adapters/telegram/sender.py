"""Sending replies through the Bot API, at the pace Telegram allows, with its errors made ours.

TelegramError                      DeliveryError (ours)
├── RetryAfter (429)           ->  RateLimited(retry_after)
├── Forbidden (403: blocked)   ->  Unreachable
├── BadRequest "chat not found"->  Unreachable
└── NetworkError, TimedOut,    ->  DeliveryError (retried with backoff)
    other BadRequest, ...
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, ReplyKeyboardRemove
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from adapters.telegram.render import OutgoingText, render
from conversations.delivery import (
    Delivery,
    DeliveryError,
    RateLimited,
    Sent,
    Unreachable,
)
from conversations.messages import Ask, Attachment

# A chat that is gone for good answers 400 with one of these rather than 403.
GONE = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # The library is moving this attribute from int to timedelta; either is read.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def delivery_error(exc: TelegramError) -> DeliveryError:
    """Our error for the library's, saying what the outbox should do next."""
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_seconds(exc), "telegram flood control")
    if isinstance(exc, Forbidden):
        return Unreachable(f"forbidden: {exc.message}"[:200])
    if isinstance(exc, BadRequest):
        if any(marker in exc.message.lower() for marker in GONE):
            return Unreachable(f"gone: {exc.message}"[:200])
        return DeliveryError(f"bad request: {exc.message}"[:200])
    if isinstance(exc, InvalidToken):
        return DeliveryError("the bot token was rejected")  # the message may hold the token
    if isinstance(exc, TimedOut):
        return DeliveryError("timed out")
    if isinstance(exc, NetworkError):
        return DeliveryError(f"network error: {exc.message}"[:200])
    return DeliveryError(f"{type(exc).__name__}: {exc.message}"[:200])


class Pacer:
    """Telegram's limits as two leaky buckets: one per chat, one for the whole bot.

    A short burst per chat goes out at once. A wait up to ``max_wait`` seconds is slept;
    a longer one is handed back to the outbox as RateLimited, so one busy chat does not
    hold the others up.
    """

    def __init__(
        self,
        per_chat_per_second: float,
        overall_per_second: float,
        *,
        chat_burst: int = 3,
        max_wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chat_interval = 1.0 / per_chat_per_second
        self.overall_interval = 1.0 / overall_per_second
        self.chat_tolerance = (chat_burst - 1) * self.chat_interval
        self.max_wait = max_wait
        self.clock = clock
        self._chats: dict[int, float] = {}
        self._overall = 0.0

    def delay(self, chat_id: int) -> float:
        now = self.clock()
        chat_at = self._chats.get(chat_id, now) - self.chat_tolerance
        return max(0.0, chat_at - now, self._overall - now)

    def reserve(self, chat_id: int) -> float:
        """Take the next slot for this chat; how long to wait for it."""
        now = self.clock()
        wait = self.delay(chat_id)
        if wait > self.max_wait:
            raise RateLimited(wait, "paced: too many messages for this chat")
        at = now + wait
        self._chats[chat_id] = max(self._chats.get(chat_id, now), now) + self.chat_interval
        self._overall = max(self._overall, at) + self.overall_interval
        if len(self._chats) > 10_000:
            self._forget(now)
        return wait

    async def wait(self, chat_id: int) -> None:
        wait = self.reserve(chat_id)
        if wait > 0:
            await asyncio.sleep(wait)

    def _forget(self, now: float) -> None:
        self._chats = {chat: at for chat, at in self._chats.items() if at > now}


class TelegramSender:
    """The outbox's sender for Telegram."""

    def __init__(
        self,
        bot: Bot,
        *,
        share_phone_label: Mapping[str, str],
        attachment_path: Callable[[str], Path] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.bot = bot
        self.share_phone_label = share_phone_label
        self.attachment_path = attachment_path
        self.pacer = pacer or Pacer(1.0, 30.0)
        # Parts already delivered of a reply whose later part failed: a retry goes on from there.
        self._progress: dict[int, int] = {}
        # Chats showing the share-my-phone keyboard, to take it away with the next message.
        self._phone_keyboard: set[int] = set()

    async def send(self, delivery: Delivery) -> Sent:
        try:
            chat_id = int(delivery.address)
        except ValueError:
            raise Unreachable("not a Telegram chat id") from None
        reply = delivery.reply
        label = self.share_phone_label.get(delivery.lang) or next(
            iter(self.share_phone_label.values()), "📱"
        )
        messages = render(reply, share_phone_label=label)
        document = reply.attachment if self.attachment_path is not None else None
        done = self._progress.get(delivery.outbox_id, 0)
        last_id: int | None = None
        try:
            for index in range(done, len(messages)):
                last_id = await self._send_text(chat_id, messages[index], reply.ask)
                self._progress[delivery.outbox_id] = index + 1
            if document is not None and self.attachment_path is not None:
                last_id = await self._send_document(chat_id, document, self.attachment_path)
        except TelegramError as exc:
            error = delivery_error(exc)
            if isinstance(error, Unreachable):
                self._progress.pop(delivery.outbox_id, None)
            raise error from None
        self._progress.pop(delivery.outbox_id, None)
        parts = len(messages) + (1 if document is not None else 0)
        provider_id = f"{chat_id}:{last_id}" if last_id is not None else None
        return Sent(provider_id=provider_id, parts=max(parts, 1))

    async def _send_text(self, chat_id: int, message: OutgoingText, ask: Ask | None) -> int:
        markup = message.markup
        add_buttons: InlineKeyboardMarkup | None = None
        if ask is Ask.PHONE:
            self._phone_keyboard.add(chat_id)
        elif chat_id in self._phone_keyboard:
            # One message carries one keyboard: the phone key is taken away with this
            # message, and its inline buttons are put on it right after.
            if isinstance(markup, InlineKeyboardMarkup):
                add_buttons = markup
            markup = ReplyKeyboardRemove()
        await self.pacer.wait(chat_id)
        sent = await self.bot.send_message(chat_id, message.text, reply_markup=markup)
        if isinstance(markup, ReplyKeyboardRemove):
            self._phone_keyboard.discard(chat_id)
        if add_buttons is not None:
            await self.pacer.wait(chat_id)
            await self.bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=sent.message_id, reply_markup=add_buttons
            )
        return sent.message_id

    async def _send_document(
        self, chat_id: int, attachment: Attachment, path_of: Callable[[str], Path]
    ) -> int:
        try:
            path = path_of(attachment.ref)
            data = await asyncio.to_thread(path.read_bytes)
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"attachment unreadable: {type(exc).__name__}") from None
        await self.pacer.wait(chat_id)
        sent = await self.bot.send_document(
            chat_id, document=data, filename=attachment.filename or "document"
        )
        return sent.message_id

"""The Bot API as the rest of the system needs it; nothing outside this package sees the SDK."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from adapters.telegram.sender import Pacer, TelegramSender, retry_seconds
from adapters.telegram.updates import ParsedUpdate, UpdateKind, parse_update

# What the bot asks Telegram for; edits, reactions and the like are not needed.
ALLOWED_UPDATES = ("message", "callback_query")
COMMAND_NAMES = ("start", "menu", "cancel", "help", "lang")
POLL_TIMEOUT = 25  # seconds a getUpdates call is held open
POLL_READ_MARGIN = 10  # seconds more the answer to a held call may take
# getUpdates is asked for raw on purpose (see TelegramApi.updates), which the library
# otherwise warns against at every call.
warnings.filterwarnings("ignore", r"Please use 'Bot\.getUpdates'", PTBUserWarning)
UNREADABLE = "unreadable"  # the reason given for an update that could not be read


class FileTooLarge(Exception):
    def __init__(self, size: int | None) -> None:
        super().__init__("file too large")
        self.size = size


class FileUnavailable(Exception):
    """The file could not be fetched (network, or Telegram refused it)."""


class ApiFailed(Exception):
    """A call failed; ``retry_after`` is set when Telegram said how long to wait."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class BadUpdate(ValueError):
    """A webhook body that is not a Telegram update."""


@dataclass(frozen=True, slots=True)
class WebhookInfo:
    url: str
    pending_update_count: int
    last_error_message: str | None


def _failed(exc: TelegramError) -> ApiFailed:
    if isinstance(exc, RetryAfter):
        return ApiFailed("flood control", retry_seconds(exc))
    if isinstance(exc, InvalidToken):
        return ApiFailed("the bot token was rejected")  # the library's message holds the token
    if isinstance(exc, Conflict):
        return ApiFailed("conflict: a webhook is set, or another instance is polling")
    return ApiFailed(f"{type(exc).__name__}: {exc.message}"[:200])


class TelegramApi:
    def __init__(self, token: str, *, api_base_url: str, file_base_url: str) -> None:
        self.bot = Bot(
            token,
            base_url=api_base_url,
            base_file_url=file_base_url,
            request=HTTPXRequest(
                connection_pool_size=8,
                read_timeout=20,
                write_timeout=20,
                connect_timeout=10,
                pool_timeout=10,
                media_write_timeout=60,
            ),
            # The long poll has its own connection, so sending never waits behind it.
            get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10),
        )

    def sender(
        self,
        *,
        share_phone_label: Mapping[str, str],
        attachment_path: Callable[[str], Path] | None,
        per_chat_per_second: float,
        overall_per_second: float,
    ) -> TelegramSender:
        return TelegramSender(
            self.bot,
            share_phone_label=share_phone_label,
            attachment_path=attachment_path,
            pacer=Pacer(per_chat_per_second, overall_per_second),
        )

    async def start(self, commands: Mapping[str, Mapping[str, str]], *, polling: bool) -> str:
        """Check the token (getMe), publish the command menus; the bot's username."""
        try:
            await self.bot.initialize()
            await self.set_commands(commands)
            if polling:
                # getUpdates is refused while a webhook is set; polling is what was asked for.
                await self.bot.delete_webhook(drop_pending_updates=False)
        except TelegramError as exc:
            raise _failed(exc) from None
        return self.bot.username

    async def set_commands(self, descriptions: Mapping[str, Mapping[str, str]]) -> None:
        """The command menu per language; the first language is also the default."""
        default = True
        for lang, texts in descriptions.items():
            commands = [BotCommand(name, texts[name][:256]) for name in COMMAND_NAMES]
            if default:
                await self.bot.set_my_commands(commands)
                default = False
            await self.bot.set_my_commands(commands, language_code=lang)

    async def updates(self, offset: int | None, *, hold: int = POLL_TIMEOUT) -> list[ParsedUpdate]:
        """The next updates; Telegram holds the call up to ``hold`` seconds when there are none."""
        # Asked for raw, and read one by one: the library reads a batch whole, and one update it
        # cannot read (a kind newer than it, a malformed one) failed the batch, which was then
        # asked for again and again, and nobody on Telegram was answered.
        params: dict[str, Any] = {"timeout": hold, "allowed_updates": list(ALLOWED_UPDATES)}
        if offset is not None:
            params["offset"] = offset
        try:
            raw = await self.bot.do_api_request(
                "getUpdates", api_kwargs=params, read_timeout=hold + POLL_READ_MARGIN
            )
        except TelegramError as exc:
            raise _failed(exc) from None
        items = raw if isinstance(raw, list) else []
        return [self._read(item) for item in items if _update_id(item) is not None]

    def _read(self, data: Any) -> ParsedUpdate:
        try:
            return parse_update(Update.de_json(data, self.bot))
        except (KeyError, TypeError, ValueError, AttributeError):
            update_id = _update_id(data)
            assert update_id is not None
            return ParsedUpdate(UpdateKind.IGNORED, update_id, reason=UNREADABLE)

    def parse_json(self, data: Any) -> ParsedUpdate:
        """A webhook body as a parsed update."""
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise BadUpdate("not a Telegram update")
        try:
            update = Update.de_json(data, self.bot)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadUpdate(f"not a Telegram update: {type(exc).__name__}") from None
        return parse_update(update)

    async def fetch_file(self, file_id: str, *, max_bytes: int) -> bytes:
        """The file's bytes; refused before the download when Telegram says it is too large."""
        try:
            file = await self.bot.get_file(file_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise FileTooLarge(None) from None
            raise FileUnavailable(type(exc).__name__) from None
        except TelegramError as exc:
            raise FileUnavailable(type(exc).__name__) from None
        if file.file_size is not None and file.file_size > max_bytes:
            raise FileTooLarge(file.file_size)
        try:
            data = bytes(await file.download_as_bytearray())
        except (TelegramError, RuntimeError) as exc:
            raise FileUnavailable(type(exc).__name__) from None
        if len(data) > max_bytes:
            raise FileTooLarge(len(data))
        return data

    async def say(self, chat_id: int, text: str) -> None:
        """A plain message outside the outbox (announcements to a staff group)."""
        try:
            await self.bot.send_message(chat_id, text, disable_notification=False)
        except TelegramError as exc:
            raise _failed(exc) from None

    async def answer_callback(self, query_id: str) -> bool:
        """Stop the button's spinner; a query too old to answer is no harm."""
        try:
            return await self.bot.answer_callback_query(query_id)
        except TelegramError:
            return False

    async def remove_buttons(self, chat_id: int, message_id: int) -> bool:
        """Take a pressed keyboard away, so an old choice is not pressed again by mistake."""
        try:
            await self.bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=message_id, reply_markup=None
            )
        except TelegramError:
            return False
        return True

    async def set_webhook(
        self,
        url: str,
        *,
        secret_token: str,
        drop_pending_updates: bool = False,
        max_connections: int = 40,
    ) -> None:
        try:
            await self.bot.set_webhook(
                url,
                secret_token=secret_token,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=drop_pending_updates,
                max_connections=max_connections,
            )
        except TelegramError as exc:
            raise _failed(exc) from None

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        try:
            await self.bot.delete_webhook(drop_pending_updates=drop_pending_updates)
        except TelegramError as exc:
            raise _failed(exc) from None

    async def webhook_info(self) -> WebhookInfo:
        try:
            info = await self.bot.get_webhook_info()
        except TelegramError as exc:
            raise _failed(exc) from None
        return WebhookInfo(info.url, info.pending_update_count, info.last_error_message)

    async def close(self) -> None:
        await self.bot.shutdown()


def command_menu(
    describe: Callable[[str, str], str], languages: Sequence[str] = ("ar", "en")
) -> dict[str, dict[str, str]]:
    """Descriptions of the commands per language, from the message catalogue."""
    return {lang: {name: describe(lang, name) for name in COMMAND_NAMES} for lang in languages}


def _update_id(data: Any) -> int | None:
    value = data.get("update_id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None

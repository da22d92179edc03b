"""The Telegram channel: updates read as inbound messages, replies sent as Telegram shows them.

Only this package imports python-telegram-bot; the library's errors become ours here.
"""

from adapters.telegram.client import (
    ALLOWED_UPDATES,
    COMMAND_NAMES,
    POLL_TIMEOUT,
    UNREADABLE,
    ApiFailed,
    BadUpdate,
    FileTooLarge,
    FileUnavailable,
    TelegramApi,
    WebhookInfo,
    command_menu,
)
from adapters.telegram.render import OutgoingText, render, split_text
from adapters.telegram.sender import Pacer, TelegramSender, delivery_error
from adapters.telegram.updates import (
    IncomingFile,
    ParsedUpdate,
    UpdateKind,
    parse_command,
    parse_update,
)

__all__ = [
    "ALLOWED_UPDATES",
    "COMMAND_NAMES",
    "POLL_TIMEOUT",
    "UNREADABLE",
    "ApiFailed",
    "BadUpdate",
    "FileTooLarge",
    "FileUnavailable",
    "IncomingFile",
    "OutgoingText",
    "Pacer",
    "ParsedUpdate",
    "TelegramApi",
    "TelegramSender",
    "UpdateKind",
    "WebhookInfo",
    "command_menu",
    "delivery_error",
    "parse_command",
    "parse_update",
    "render",
    "split_text",
]

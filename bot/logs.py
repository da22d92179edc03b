"""Structured logs on stderr. Callers log ids and counts, never message text or addresses.

With ``logging.format = "json"`` every line on stderr is one JSON object: our own events,
the lines of the libraries that use the standard ``logging`` module (uvicorn among them) and
the notices a person starting the server reads (where the console is). Whatever is logged
while a message is processed or a reply delivered carries ``conversation_id``: the service
binds it in the log context, and the context is merged into every line, ours or a library's.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO, cast

import structlog

# Plain sentences for whoever starts the server; one JSON line each in json mode.
NOTICE_LOGGER = "tawasul.notice"

# Libraries that say too much at info level, or put URLs (with tokens in them) or what is
# sent in their lines: kept at warning whatever the level. At debug python-telegram-bot logs
# its API URL (the bot token is part of it) and every call's parameters (the text sent, the
# chat); httpx and httpcore the URLs; hpack the headers; the SQL loggers the values bound.
NOISY = (
    "sqlalchemy.engine",
    "aiosqlite",
    "alembic",
    "httpx",
    "httpcore",
    "hpack",
    "telegram",
    "twilio",
)

# A Telegram bot token (the bot's id, a colon, 35 characters) gives whoever reads it the bot
# itself. Should one still reach a line (a library's error, a URL in a traceback), it is
# replaced before the line is written.
BOT_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{30,}")
REDACTED = "[redacted]"


class RedactingStream:
    """A text stream that writes what it is given with any bot token replaced."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(BOT_TOKEN.sub(REDACTED, text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def _shared() -> list[structlog.types.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def setup_logging(level: str = "info", fmt: str = "console") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    stderr = cast(TextIO, RedactingStream(sys.stderr))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*_shared(), structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "tawasul", False)]:
        root.removeHandler(old)  # ours from an earlier call; others (a test's) stay
    handler = logging.StreamHandler(stderr)
    handler.tawasul = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[*_shared(), structlog.stdlib.add_logger_name],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))

    notices = logging.getLogger(NOTICE_LOGGER)
    notices.setLevel(logging.INFO)
    for old in list(notices.handlers):
        notices.removeHandler(old)
    if fmt == "json":
        notices.propagate = True
    else:
        plain = logging.StreamHandler(stderr)
        plain.setFormatter(logging.Formatter("%(message)s"))
        notices.addHandler(plain)
        notices.propagate = False


def notice(text: str) -> None:
    """A sentence for whoever starts the server (plain on a terminal, JSON in json mode)."""
    logging.getLogger(NOTICE_LOGGER).info(text)


def uvicorn_log_config(fmt: str) -> dict[str, Any] | None:
    """uvicorn's own logging setup, or in json mode none: its lines then go to the root
    handler above and come out as JSON like ours."""
    if fmt != "json":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }

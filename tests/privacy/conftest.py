"""Fixtures of the privacy tests: every log line of the process, and what must never be in it."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
import structlog
from sqlalchemy import select

from bot.service import Service
from storage.models import AuditEntry, OutboxItem
from tests.email.conftest import bot_setup, mail_server, running  # noqa: F401
from tests.telegram.conftest import fake_api, polling, tg_service  # noqa: F401
from tests.twilio.conftest import fake_twilio, twilio_setup  # noqa: F401

# Loggers of the test peers running in this process (aiosmtpd is the mail server), not ours.
PEERS = frozenset({"mail"})


class LogSink(logging.Handler):
    """Every stdlib record, formatted with its traceback, as the server's stderr would show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in PEERS:
            self.lines.append(self.format(record))


@dataclass
class Logs:
    structured: io.StringIO
    stdlib: LogSink
    records: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.structured.getvalue().splitlines(), *self.stdlib.lines]


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Structlog configured like `setup_logging(..., "json")` but at debug and into a buffer,
    and a handler on the root logger at info (the production level of third-party libraries)."""
    before = structlog.get_config()
    out = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    sink = LogSink()
    root = logging.getLogger()
    level = root.level
    root.addHandler(sink)
    root.setLevel(logging.INFO)
    try:
        yield Logs(out, sink)
    finally:
        root.removeHandler(sink)
        root.setLevel(level)
        structlog.configure(**before)


ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def phone_forms(e164: str) -> list[str]:
    """A Saudi mobile number in every way it may be written: +9665…, 9665…, 05…, 5…."""
    national = e164.removeprefix("+966")
    forms = [e164, e164[1:], "0" + national, national]
    return forms + [f.translate(ARABIC_DIGITS) for f in forms]


def secrets_in(texts: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, line) for every line holding one; digits are compared without separators."""
    found = []
    wanted = list(secrets)
    for text in texts:
        squeezed = re.sub(r"[\s\-‐()]", "", text)
        for secret in wanted:
            if secret in text or (secret.isdigit() and secret in squeezed):
                found.append((secret, text[:300]))
    return found


async def stored_errors(service: Service) -> list[str]:
    """What the database keeps about failures and actions outside the conversation itself."""
    async with service.db.session(write=False) as session:
        errors = [e for e in await session.scalars(select(OutboxItem.last_error)) if e]
        codes = [c for c in await session.scalars(select(OutboxItem.error_code)) if c]
        audit = [
            f"{a.action} {a.subject} {json.dumps(a.detail, ensure_ascii=False)}"
            for a in await session.scalars(select(AuditEntry))
        ]
    return [*errors, *codes, *audit]

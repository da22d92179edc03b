from __future__ import annotations

import asyncio
import html
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from bot.channels.email import EmailChannel
from bot.service import Service, run_workers
from storage.migrate import upgrade
from storage.models import Message, OutboxItem
from tests.conftest import make_config
from tests.email.mailserver import PASSWORD, MailServer, start_mail_server

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def with_headers(raw: bytes, **headers: str) -> bytes:
    """A recorded mail with some headers replaced (or added), its body untouched.

    Names use underscores for dashes: ``In_Reply_To="<...>"``.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for name, value in headers.items():
        header = name.replace("_", "-").encode()
        kept: list[bytes] = []
        skipping = False
        for line in lines:
            if line[:1] in (b" ", b"\t"):
                if not skipping:
                    kept.append(line)
                continue
            skipping = line.split(b":", 1)[0].lower() == header.lower()
            if not skipping:
                kept.append(line)
        lines = [*kept, header + b": " + value.encode()]
    return b"\r\n".join(lines) + sep + body


async def eventually(
    probe: Callable[[], Awaitable[T]], *, within: float = 15.0, interval: float = 0.1
) -> T:
    """The first truthy value ``probe`` gives, or AssertionError after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {within} s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def mail_server() -> Iterator[MailServer]:
    server = start_mail_server()
    try:
        yield server
    finally:
        server.stop()


def email_config(server: MailServer, bot: str, **extra: Any) -> dict[str, object]:
    values: dict[str, object] = {
        "address": bot,
        "username": bot,
        "password": PASSWORD,
        "imap_host": "127.0.0.1",
        "imap_port": server.imap_port,
        "imap_security": "none",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.smtp_port,
        "smtp_security": "none",
        "poll_seconds": 0.5,
    }
    values.update(extra)
    return values


class RunningBot:
    """The email channel and the service's workers in this event loop, as `serve` runs them."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.channel: EmailChannel | None = None

    async def start(self) -> EmailChannel:
        channel = EmailChannel(self.service)
        self.channel = channel
        self.stop_event = asyncio.Event()
        senders = {"email": channel.sender}
        self.tasks = [
            asyncio.create_task(run_workers(self.service, self.stop_event, senders)),
            asyncio.create_task(channel.reader.run(self.stop_event)),
        ]
        return channel

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)
        self.tasks = []


@pytest.fixture
async def bot_setup(
    tmp_path: Path, mail_server: MailServer
) -> AsyncIterator[tuple[Service, str, str]]:
    """A migrated service configured for a fresh bot mailbox, and a fresh beneficiary."""
    bot = mail_server.new_user("bot")
    person = mail_server.new_user("amal")
    config = make_config(
        tmp_path,
        email=email_config(mail_server, bot),
        outbox={"poll_seconds": 0.2, "base_delay_seconds": 0.2},
    )
    service = Service(config)
    await upgrade(service.db.engine)
    yield service, bot, person
    await service.close()


class Beneficiary:
    """Someone writing to the bot's mailbox, and reading the answers in their own."""

    def __init__(self, server: MailServer, service: Service, address: str, bot: str) -> None:
        self.server = server
        self.service = service
        self.address = address
        self.bot = bot
        self.seen = 0
        self.last_sent: bytes = b""

    async def send(self, raw: bytes) -> None:
        """A recorded mail, as if this person had sent it to the bot."""
        raw = with_headers(raw, From=f"Amal <{self.address}>", To=self.bot)
        raw = raw.replace(b"Return-Path:", b"X-Original-Return-Path:")
        self.last_sent = raw
        await asyncio.to_thread(self.server.deliver, raw, self.bot, self.address)

    async def write(self, text: str, subject: str = "استفسار") -> None:
        msg = EmailMessage()
        msg["From"] = self.address
        msg["To"] = self.bot
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="mail.example.test")
        msg.set_content(text)
        await self.send(msg.as_bytes(policy=SMTP))

    async def reply(self, text: str, *, files: tuple[tuple[str, bytes], ...] = ()) -> None:
        """A Gmail-shaped answer to the bot's last mail: the answer above the quoted mail."""
        last = (await asyncio.to_thread(self.server.messages, self.address))[-1]
        body = last.get_body(("plain",))
        quoted = "\n".join(f"> {line}" for line in (body.get_content() if body else "").split("\n"))
        msg = EmailMessage()
        msg["From"] = self.address
        msg["To"] = self.bot
        msg["Subject"] = "Re: " + str(last["Subject"]).removeprefix("Re: ")
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="mail.gmail.com")
        msg["In-Reply-To"] = str(last["Message-ID"])
        msg["References"] = f"{last['References'] or ''} {last['Message-ID']}".strip()
        attribution = (
            f"\u202bفي الأحد، 22 نوفمبر 2026 في 10:02 ص جمعية البر <{self.bot}> كتب:\u202c"
        )
        msg.set_content(f"{text}\n\n{attribution}\n\n{quoted}\n")
        msg.add_alternative(
            f'<div dir="rtl">{html.escape(text)}</div><div class="gmail_quote">'
            f'<div class="gmail_attr">{html.escape(attribution)}</div>'
            f"<blockquote>{html.escape(quoted)}</blockquote></div>",
            subtype="html",
        )
        for name, data in files:
            msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
        await self.send(msg.as_bytes(policy=SMTP))

    async def answers(self, *, at_least: int = 1, within: float = 15) -> list[EmailMessage]:
        """The bot's new mails, once it has sent everything it decided to send."""

        async def settled() -> list[EmailMessage]:
            # The mailbox first, then the outbox: a mail in the box was sent before the look.
            inbox = await asyncio.to_thread(self.server.messages, self.address)
            async with self.service.db.session(write=False) as session:
                pending = await session.scalar(
                    select(func.count()).where(OutboxItem.status == "pending")
                )
                sent_to = await session.scalars(
                    select(OutboxItem.address).where(OutboxItem.status == "sent")
                )
                sent = sum(1 for address in sent_to if address == self.address)
            if pending or len(inbox) != sent or len(inbox) < self.seen + at_least:
                return []
            return inbox

        inbox = await eventually(settled, within=within)
        new, self.seen = inbox[self.seen :], len(inbox)
        return new

    async def stored_texts(self) -> list[str]:
        async with self.service.db.session(write=False) as session:
            rows = await session.scalars(
                select(Message.text)
                .where(Message.direction == "in", Message.channel == "email")
                .order_by(Message.id)
            )
            return list(rows)


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    return body.get_content() if body is not None else ""


@pytest.fixture
async def running(
    bot_setup: tuple[Service, str, str], mail_server: MailServer
) -> AsyncIterator[tuple[RunningBot, Beneficiary]]:
    service, bot, person = bot_setup
    runner = RunningBot(service)
    await runner.start()
    yield runner, Beneficiary(mail_server, service, person, bot)
    if runner.tasks:
        await runner.stop()

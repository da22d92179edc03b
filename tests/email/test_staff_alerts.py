"""Queue alerts by email: one short mail per conversation entering the queue, sent through
the real SMTP server, never repeated after a restart, sent by one announcer at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from bot.channels import ChannelRuntime
from bot.channels.staff_alerts import install
from bot.service import Service
from staff.i18n import translator
from storage.migrate import upgrade
from storage.models import Conversation
from tests.conftest import WORKING_TIME, Chat, make_config
from tests.email.conftest import email_config, eventually, text_of
from tests.email.mailserver import MailServer


class Announcing:
    """The staff alerts as `serve` installs them, running in this event loop."""

    def __init__(self, service: Service) -> None:
        self.runtime = ChannelRuntime()
        install(service, self.runtime)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Announcing:
        self.tasks = [asyncio.create_task(task(self.stop)) for task in self.runtime.tasks]
        await asyncio.sleep(0.3)  # the first start sets its cursor ("from now on")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


async def make(tmp: Path, server: MailServer, duty: str, **staff: object) -> Service:
    bot = server.new_user("bot")
    config = make_config(
        tmp,
        email=email_config(server, bot),
        staff={"notify_emails": duty, **staff},
        outbox={"poll_seconds": 0.1},
    )
    service = Service(config)
    await upgrade(service.db.engine)
    return service


async def inbox(server: MailServer, address: str, count: int) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage]:
        mails = await asyncio.to_thread(server.messages, address)
        return mails if len(mails) >= count else []

    return await eventually(arrived)


async def queued_ids(service: Service) -> list[int]:
    async with service.db.session(write=False) as session:
        rows = await session.scalars(
            select(Conversation.id).where(Conversation.status == "queued").order_by(Conversation.id)
        )
        return list(rows)


async def test_a_conversation_entering_the_queue_is_mailed_once_without_personal_data(
    tmp_path: Path, mail_server: MailServer
) -> None:
    duty = mail_server.new_user("duty")
    service = await make(tmp_path, mail_server, duty, public_base_url="https://care.example.org/")
    try:
        async with Announcing(service):
            amal = Chat(service, sender="amal-0551234567", now=WORKING_TIME + timedelta(days=1))
            await amal.say("السلام عليكم، اسمي أمل")
            await amal.say("موظف")
            [queued] = await queued_ids(service)
            [mail] = await inbox(mail_server, duty, 1)
        body = text_of(mail)
        ar, en = translator("ar"), translator("en")
        assert ar("alert.waiting", conversation=queued) in body
        assert en("alert.waiting", conversation=queued) in body
        assert en("channel.console") in body and en("reason.asked") in body
        assert en("language.ar") in body
        assert f"https://care.example.org/staff/conversations/{queued}" in body
        assert en("channel.console") in str(mail["Subject"])
        assert str(mail["Auto-Submitted"]) == "auto-generated"
        # Nothing that names or reaches the beneficiary, nor what they wrote.
        for private in ("0551234567", "amal", "أمل", "السلام"):
            assert private not in body and private not in str(mail["Subject"])

        # Started again: the cursor in the database says it was told already.
        async with Announcing(service):
            other = Chat(service, sender="u2", now=WORKING_TIME + timedelta(days=1))
            await other.say("مرحبا")
            await other.say("موظف")
            mails = await inbox(mail_server, duty, 2)
        second = max(await queued_ids(service))
        assert len(mails) == 2
        assert f"conversations/{second}" in text_of(mails[1])
        assert f"conversations/{queued}" not in text_of(mails[1])
    finally:
        await service.close()


async def test_two_announcers_send_one_alert(tmp_path: Path, mail_server: MailServer) -> None:
    """Two instances installed side by side: the job runs in one of them only."""
    duty = mail_server.new_user("duty")
    service = await make(tmp_path, mail_server, duty)
    try:
        async with Announcing(service) as first, Announcing(service) as second:
            assert len(first.runtime.tasks) == len(second.runtime.tasks) == 1
            chat = Chat(service, sender="u3")
            await chat.say("مرحبا")
            await chat.say("موظف")
            await inbox(mail_server, duty, 1)
            await asyncio.sleep(1.0)  # room for a second mail, were one to be sent
        assert len(await asyncio.to_thread(mail_server.messages, duty)) == 1
        # No public address configured: no link, the rest is there.
        body = text_of((await asyncio.to_thread(mail_server.messages, duty))[0])
        assert "/staff/" not in body and translator("en")("reason.asked") in body
    finally:
        await service.close()


async def test_no_sink_without_smtp(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path, staff={"notify_emails": "duty@example.org"}))
    runtime = ChannelRuntime()
    install(service, runtime)
    assert runtime.staff_sinks == [] and runtime.tasks == []
    await service.close()


async def test_a_refused_address_does_not_hold_the_alerts_back(
    tmp_path: Path, mail_server: MailServer
) -> None:
    duty = mail_server.new_user("duty")
    # One address the server does not know: the others still get the alert.
    service = await make(tmp_path, mail_server, f"gone-{duty},{duty}")
    try:
        async with Announcing(service):
            for sender in ("u4", "u5"):
                chat = Chat(service, sender=sender)
                await chat.say("مرحبا")
                await chat.say("موظف")
            mails = await inbox(mail_server, duty, 2)
        assert len(mails) == 2
    finally:
        await service.close()

    # Every address refused: the alert is given up, the later ones are not stuck behind it.
    alone = tmp_path / "alone"
    alone.mkdir()
    service = await make(alone, mail_server, f"gone-{duty}")
    try:
        async with Announcing(service):
            chat = Chat(service, sender="u6")
            await chat.say("مرحبا")
            await chat.say("موظف")
            [queued] = await queued_ids(service)

            async def passed() -> bool:
                async with service.db.session(write=False) as session:
                    at = await session.scalar(
                        select(Conversation.queued_at).where(Conversation.id == queued)
                    )
                cursor = (await service.cursor("staff.queue_alerts.email")).get("since")
                return at is not None and cursor == at.isoformat()

            assert await eventually(passed)
    finally:
        await service.close()

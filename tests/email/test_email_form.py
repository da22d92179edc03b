"""A whole support request by email, one question per mail, the documents attached to a
reply, the summary and the declaration at the end: all in one thread."""

from __future__ import annotations

from sqlalchemy import select

from adapters.email.parse import parse_email
from storage.models import Document, Request
from tests.conftest import valid_national_id
from tests.email.conftest import Beneficiary, RunningBot, fixture, text_of

PDF = fixture("pdf_attachment.eml")


async def test_a_support_request_filled_by_email(running: tuple[RunningBot, Beneficiary]) -> None:
    runner, amal = running
    await amal.write("السلام عليكم", subject="طلب مساعدة")
    first = await amal.answers()
    thread = str(first[0]["References"]).split()[0]
    assert "٢. تقديم طلب دعم" in text_of(first[-1])

    async def answer(text: str, **kwargs: object) -> str:
        await amal.reply(text, **kwargs)  # type: ignore[arg-type]
        mails = await amal.answers()
        for mail in mails:
            assert mail["Subject"] == "Re: طلب مساعدة"
            assert str(mail["References"]).split()[0] == thread
            assert mail["In-Reply-To"] == parse_email(amal.last_sent).message_id
        return "\n".join(text_of(m) for m in mails)

    intro = await answer("٢")
    assert "الخصوصية" in intro or "سري" in intro  # the duties and privacy notice first
    await answer("١")
    await answer("محمد عبدالله القحطاني")
    await answer(valid_national_id())
    await answer("0551234567")
    await answer("الرياض")
    await answer("5")
    await answer("3000")
    await answer("إيجار")
    await answer("1500")
    await answer("١")
    asked = await answer("نحتاج مساعدة في دفع الإيجار المتأخر")
    assert runner.service.catalog.text("ar", "email.attach") in asked
    await answer("مرفق الهوية", files=(("هوية.pdf", parse_email(PDF).files[0].data),))
    summary = await answer("تم")
    assert "محمد عبدالله القحطاني" in summary
    assert "الإقرار" in await answer("تأكيد وإرسال")
    done = await answer("نعم")
    assert "SR-" in done

    async with runner.service.db.session(write=False) as session:
        request = await session.scalar(select(Request))
        documents = list(await session.scalars(select(Document)))
    assert request is not None and request.channel == "email"
    assert request.declaration_channel == "email"
    assert [d.filename for d in documents] == ["هوية.pdf"]
    assert runner.service.files.path(documents[0].ref).read_bytes().startswith(b"%PDF-1.4")

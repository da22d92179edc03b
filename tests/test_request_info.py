"""Staff ask for more information on a request; the beneficiary's answer lands on it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel
from conversations.ports import InfoAnswer, RequestStatus
from storage.followup import request_info
from storage.models import (
    Conversation,
    Document,
    Message,
    OutboxItem,
    Request,
    RequestStatusChange,
)
from storage.repository import Tx
from tests.conftest import Chat
from tests.test_engine import fill_support_request, pdf

ASKED = "أرسل صورة عقد الإيجار من فضلك"


async def request_row(service: Service, reference: str) -> Request:
    async with service.db.session(write=False) as session:
        row = await session.scalar(select(Request).where(Request.reference == reference))
    assert row is not None
    return row


async def told(service: Service) -> str:
    """What the beneficiary was last sent from the staff side (through the outbox)."""
    async with service.db.session(write=False) as session:
        rows = await session.scalars(
            select(Message.text)
            .join(OutboxItem, OutboxItem.message_id == Message.id)
            .order_by(Message.id.desc())
            .limit(2)
        )
        return "\n".join(reversed(list(rows)))


async def test_the_answer_to_needs_info_is_attached_to_the_request(
    service: Service, chat: Chat
) -> None:
    reference = await fill_support_request(chat)
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    sent = await told(service)
    status = service.catalog.text("ar", "status.name.needs_info")
    assert sent.endswith(
        service.catalog.text(
            "ar", "notify.needs_info", reference=reference, status=status, note=ASKED
        )
    )

    chat.now += timedelta(hours=1)
    contract = await pdf(service, "contract.pdf")
    await chat.say("هذا عقد الإيجار، والمبلغ المتأخر ١٥٠٠ ريال", attachments=[contract])
    assert chat.text == service.catalog.text("ar", "info.received", reference=reference)
    assert chat.choice_values() == ["more", "menu"]

    row = await request_row(service, reference)
    assert row.status == RequestStatus.UNDER_REVIEW
    async with service.db.session(write=False) as session:
        [item] = await request_info(session, row.id)
        history = list(
            await session.scalars(
                select(RequestStatusChange)
                .where(RequestStatusChange.request_id == row.id)
                .order_by(RequestStatusChange.id)
            )
        )
    assert item.info.text.startswith("هذا عقد الإيجار") and item.info.channel == "console"
    assert item.info.received_at == chat.now
    assert [d.filename for d in item.documents] == ["contract.pdf"]
    assert (history[-1].from_status, history[-1].to_status, history[-1].actor) == (
        "needs_info",
        "under_review",
        "beneficiary",
    )

    # "Send more", then a second piece: attached too, no second status change.
    await chat.say("١")
    assert chat.text == service.catalog.text("ar", "info.more")
    await chat.say("ورقم عقد الإيجار 12345")
    assert reference in chat.text
    async with service.db.session(write=False) as session:
        items = await request_info(session, row.id)
        changes = await session.scalars(
            select(RequestStatusChange.id).where(RequestStatusChange.request_id == row.id)
        )
        assert len(list(changes)) == len(history)
    assert [i.info.text for i in items][1] == "ورقم عقد الإيجار 12345"

    # Back to the menu: what follows is an ordinary message again.
    await chat.say("القائمة")
    assert "more" not in chat.choice_values()
    await chat.say("كيف أتواصل معكم")
    async with service.db.session(write=False) as session:
        assert len(await request_info(session, row.id)) == 2
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None and conversation.state.get("info_request") is None


async def test_a_decided_request_takes_no_more_information(service: Service, chat: Chat) -> None:
    reference = await fill_support_request(chat)
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    await service.change_request_status(
        reference, RequestStatus.REJECTED, actor="staff:supervisor@example.org"
    )
    await chat.say("هذا عقد الإيجار")
    assert "info.received" not in [r.key for r in chat.replies]
    row = await request_row(service, reference)
    assert row.status == RequestStatus.REJECTED
    async with service.db.session(write=False) as session:
        assert await request_info(session, row.id) == []
        assert await session.scalar(select(Document).where(Document.field.like("info:%"))) is None


async def test_someone_else_cannot_answer_for_the_request(service: Service, chat: Chat) -> None:
    reference = await fill_support_request(chat)
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    async with service.db.session() as session:
        tx = Tx(session)
        answer = InfoAnswer("ليس صاحب الطلب", (), Channel.CONSOLE, chat.now)
        row = await tx.request_by_reference(reference)
        assert not await tx.add_request_info(reference, row.beneficiary_id + 1, answer)
        assert await tx.add_request_info(reference, row.beneficiary_id, answer)


async def test_a_number_sent_when_asked_is_information_not_a_menu_pick(
    service: Service, chat: Chat
) -> None:
    reference = await fill_support_request(chat)
    await chat.say("القائمة")  # the menu is the last thing the beneficiary saw
    await service.change_request_status(
        reference,
        RequestStatus.NEEDS_INFO,
        actor="staff:agent@example.org",
        note="كم عدد أفراد الأسرة؟",
    )
    await chat.say("٢")
    assert chat.text == service.catalog.text("ar", "info.received", reference=reference)
    row = await request_row(service, reference)
    async with service.db.session(write=False) as session:
        [item] = await request_info(session, row.id)
    assert item.info.text == "٢" and item.documents == []


async def test_a_form_under_way_keeps_its_answers_when_more_is_asked(
    service: Service, chat: Chat
) -> None:
    """Asked for more while filling in another form: the next answers are the form's, the
    form's question comes again after the notice, and once the form is left what is sent is
    the information."""
    reference = await fill_support_request(chat)
    await chat.say("٦")  # a complaint or suggestion
    await chat.say("١")  # agreed: the form's first question
    asked = chat.replies[-1].text
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    assert (await told(service)).endswith(asked)  # the notice, then the question again
    await chat.say("اقتراح")  # the form's answer, not information on the request
    assert "(2/" in chat.text
    row = await request_row(service, reference)
    async with service.db.session(write=False) as session:
        assert await request_info(session, row.id) == []
    assert row.status == "needs_info"
    await chat.say("إلغاء")  # the form set aside: nothing else waits for an answer
    await chat.say(attachments=[await pdf(service, "عقد.pdf")])  # now it is the information
    async with service.db.session(write=False) as session:
        [item] = await request_info(session, row.id)
    assert [d.filename for d in item.documents] == ["عقد.pdf"]


async def test_information_sent_while_talking_to_staff_is_added_to_the_request(
    service: Service, chat: Chat
) -> None:
    reference = await fill_support_request(chat)
    await chat.say("موظف")
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    chat.now += timedelta(hours=1)
    contract = await pdf(service, "contract.pdf")
    replies = await chat.say("أرسلت العقد", attachments=[contract])
    assert replies == []  # the bot stays silent while staff have the conversation
    row = await request_row(service, reference)
    assert row.status == RequestStatus.UNDER_REVIEW
    async with service.db.session(write=False) as session:
        [item] = await request_info(session, row.id)
    assert item.info.text == "أرسلت العقد"
    assert [d.filename for d in item.documents] == ["contract.pdf"]


async def asked_for_more(service: Service, chat: Chat) -> str:
    reference = await fill_support_request(chat)
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:agent@example.org", note=ASKED
    )
    chat.now += timedelta(hours=1)
    return reference


async def info_texts(service: Service, reference: str) -> list[str]:
    row = await request_row(service, reference)
    async with service.db.session(write=False) as session:
        return [item.info.text for item in await request_info(session, row.id)]


@pytest.mark.parametrize(
    ("said", "handled"),
    [
        ("ابغى اكلم موظف", "handoff.queued"),
        ("I would like to talk to a person please", "handoff.queued"),
        ("وين وصل طلبي؟", "الحالة: بحاجة إلى معلومات إضافية"),  # the status list
        ("متى يفتح التسجيل للتطوع؟", "التطوع"),  # the knowledge base's answer
    ],
)
async def test_asking_for_something_else_is_not_taken_for_the_information(
    service: Service, said: str, handled: str
) -> None:
    """Asked for more, the beneficiary asks for a person, their request's status or a
    question: that is answered as anywhere else, and the request still waits for the
    information (what they send next is it)."""
    chat = Chat(service, sender=f"else-{len(said)}")
    reference = await asked_for_more(service, chat)
    await chat.say(said)
    keys = [r.key for r in chat.replies]
    assert "info.received" not in keys, chat.text
    assert handled in keys or handled in chat.text, chat.text
    assert (await request_row(service, reference)).status == RequestStatus.NEEDS_INFO
    assert await info_texts(service, reference) == []
    if handled == "handoff.queued":
        return
    await chat.say("هذا عقد الإيجار باسم المالك")
    assert [r.key for r in chat.replies] == ["info.received"]
    assert await info_texts(service, reference) == ["هذا عقد الإيجار باسم المالك"]


async def test_a_greeting_alone_is_reminded_what_staff_asked_for(
    service: Service, chat: Chat
) -> None:
    reference = await asked_for_more(service, chat)
    await chat.say("السلام عليكم")
    assert [r.key for r in chat.replies] == ["info.waiting"]
    assert reference in chat.text
    assert (await request_row(service, reference)).status == RequestStatus.NEEDS_INFO
    await chat.say("🙏🙏")
    assert [r.key for r in chat.replies] == ["info.waiting"]
    await chat.say("١")  # a number is still the information, not a button
    assert await info_texts(service, reference) == ["١"]


async def test_information_is_taken_shortly_after_or_after_send_more_only(
    service: Service, chat: Chat
) -> None:
    """Once the information came, what follows soon after (a second photo, the rest of the
    sentence) is added too; days later a question is a question, and the request takes
    nothing more unless the person chooses "send more"."""
    reference = await asked_for_more(service, chat)
    await chat.say("العقد مع المالك بجيبه بكرة")
    assert [r.key for r in chat.replies] == ["info.received"]
    chat.now += timedelta(minutes=5)
    await chat.say("والمالك اسمه سعد")
    assert [r.key for r in chat.replies] == ["info.received"]

    chat.now += timedelta(hours=2)  # later the same day: a new message, not more of it
    await chat.say("جزاكم الله خير تعبناكم معنا")
    assert "info.received" not in [r.key for r in chat.replies]
    await chat.say(attachments=[await pdf(service, "contract.pdf")])  # a file still is
    assert [r.key for r in chat.replies] == ["info.received"]
    await chat.say("١")  # send more
    chat.now += timedelta(hours=3)
    await chat.say("العقد ينتهي بعد شهرين")
    assert [r.key for r in chat.replies] == ["info.received"]

    chat.now += timedelta(days=3)
    await chat.say("السلام عليكم")
    assert "info" not in " ".join(str(r.key) for r in chat.replies)
    await chat.say("متى يفتح التسجيل للتطوع؟")
    assert "info.received" not in [r.key for r in chat.replies] and "التطوع" in chat.text
    await chat.say(attachments=[await pdf(service, "late.pdf")])
    assert chat.replies[0].key == "attachment.not_expected"
    assert await info_texts(service, reference) == [
        "العقد مع المالك بجيبه بكرة",
        "والمالك اسمه سعد",
        "",
        "العقد ينتهي بعد شهرين",
    ]
    async with service.db.session(write=False) as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None and conversation.state.get("info_request") is None


async def test_asking_for_a_person_while_waiting_for_staff_is_not_the_information(
    service: Service, chat: Chat
) -> None:
    reference = await asked_for_more(service, chat)
    await chat.say("موظف")
    assert await chat.say("وين وصل طلبي؟") == []
    assert (await request_row(service, reference)).status == RequestStatus.NEEDS_INFO
    assert await chat.say("هذا رقم عقد الإيجار ٤٤٥٥٦٦") == []
    assert await info_texts(service, reference) == ["هذا رقم عقد الإيجار ٤٤٥٥٦٦"]

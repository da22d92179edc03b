"""What a beneficiary sent when asked for more information follows their other data: in the
export, erased on anonymisation and by the retention run."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.service import Service
from conversations.ports import RequestStatus
from storage.followup import RequestInfo
from storage.models import Conversation, Request
from storage.retention import run_retention
from storage.staff import ConsoleTx
from tests.conftest import Chat
from tests.privacy.test_retention import LONG_AGO, NOW
from tests.test_engine import fill_support_request

SECRET = "رقم حسابي البنكي 123456789"


async def answered(service: Service) -> tuple[str, int]:
    chat = Chat(service, sender="info-1")
    reference = await fill_support_request(chat)
    await service.change_request_status(
        reference, RequestStatus.NEEDS_INFO, actor="staff:a@example.org", note="رقم الحساب؟"
    )
    await chat.say(SECRET)
    async with service.db.session(write=False) as session:
        request = await session.scalar(select(Request).where(Request.reference == reference))
    assert request is not None
    return reference, request.beneficiary_id


async def info_texts(service: Service) -> list[str]:
    async with service.db.session(write=False) as session:
        return list(await session.scalars(select(RequestInfo.text)))


async def test_export_and_anonymise(service: Service) -> None:
    reference, beneficiary = await answered(service)
    async with service.db.session() as session:
        exported = await ConsoleTx(session).export(beneficiary)
    [request] = [r for r in exported["requests"] if r["reference"] == reference]
    assert [i["text"] for i in request["information"]] == [SECRET]

    async with service.db.session() as session:
        await ConsoleTx(session).anonymise(beneficiary, "staff:s@example.org")
    assert await info_texts(service) == [""]


async def test_retention_removes_it_with_the_messages(service: Service) -> None:
    reference, _ = await answered(service)
    await service.change_request_status(reference, RequestStatus.CLOSED, actor="t")
    assert await info_texts(service) == [SECRET]
    async with service.db.session() as session:
        for model in (Conversation, Request):
            await session.execute(update(model).values(updated_at=LONG_AGO))
        await session.execute(update(Conversation).values(status="closed", closed_at=LONG_AGO))
    await run_retention(service.db, service.files, NOW, 24, dry_run=True)
    assert await info_texts(service) == [SECRET]  # a dry run changes nothing
    await run_retention(service.db, service.files, NOW, 24)
    assert await info_texts(service) == [""]

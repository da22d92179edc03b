"""Long polling when storing an update fails: nothing Telegram was told is handled is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import bot.channels.telegram.channel as channel_module
from bot.service import Service
from storage.files import AttachmentStore
from storage.models import Conversation, Message
from tests.telegram import payloads
from tests.telegram.conftest import PDF, Running, settle
from tests.telegram.fake_bot_api import FakeBotAPI


async def inbound(service: Service) -> list[Message]:
    async with service.db.session(write=False) as session:
        return list(await session.scalars(select(Message).where(Message.direction == "in")))


async def test_an_update_waits_as_long_as_the_database_fails(
    fake_api: FakeBotAPI, tg_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails for longer than the bot's own faults are given (a SQLite file
    locked by a backup, a PostgreSQL fail-over): the update is not passed before it is
    stored, then it is answered like any other."""
    monkeypatch.setattr(channel_module, "_backoff", lambda attempt: 0.02)
    real = Service.receive
    failures = list(range(3 * channel_module.MAX_UPDATE_FAILURES))

    async def on_a_bad_day(self: Service, msg: Any, **kw: Any) -> int | None:
        if failures:
            failures.pop()
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return await real(self, msg, **kw)

    monkeypatch.setattr(Service, "receive", on_a_bad_day)
    async with Running(tg_service):
        fake_api.push(payloads.text(7001, "السلام عليكم"))
        await settle(tg_service, fake_api)
    assert not failures
    assert [m.text for m in await inbound(tg_service)] == ["السلام عليكم"]
    assert fake_api.sent(7001), "the message was answered"
    assert tg_service.metrics.set_aside._value.get() == 0


async def test_an_update_the_bot_keeps_failing_on_goes_to_staff_without_its_file(
    fake_api: FakeBotAPI, tg_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the bot on an update's file, again and again: the update is set aside so
    that the chat's later messages go on, but not lost: its caption is stored, the
    conversation goes to the staff queue and the beneficiary is told a person will answer."""
    monkeypatch.setattr(channel_module, "_backoff", lambda attempt: 0.02)

    async def broken(self: AttachmentStore, data: bytes, **kw: Any) -> Any:
        raise RuntimeError("a bug in saving files")

    monkeypatch.setattr(AttachmentStore, "save_bytes", broken)
    fake_api.add_file("doc-1", PDF, "documents/doc-1.bin")
    update = payloads.document(7001, "doc-1", name="عقد.pdf", mime="application/pdf", size=None)
    update["message"]["caption"] = "عقد الإيجار"
    async with Running(tg_service):
        fake_api.push(update)
        fake_api.push(payloads.text(7001, "شكرا"))
        await settle(tg_service, fake_api)
        await asyncio.sleep(0.1)
    stored = await inbound(tg_service)
    assert [(m.text, m.payload["attachments"]) for m in stored] == [
        ("عقد الإيجار", []),
        ("شكرا", []),
    ]
    assert all(m.processed_at is not None for m in stored)
    async with tg_service.db.session(write=False) as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        assert (conversation.status, conversation.handoff_reason) == ("queued", "error")
    told = [s.text for s in fake_api.sent(7001)]
    assert tg_service.catalog.text("ar", "handoff.queued") in told
    assert tg_service.metrics.set_aside._value.get() == 1

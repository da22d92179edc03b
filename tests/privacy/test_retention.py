"""Old message texts and files go; the rows the reports count stay; dry runs change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from bot.service import Service
from conversations.delivery import Delivery, Sent
from conversations.messages import Channel
from conversations.ports import RequestStatus
from storage.models import Conversation, Document, Message, OutboxItem, Request
from storage.retention import months_before, run_retention
from tests.conftest import Chat, run_cli
from tests.test_engine import fill_support_request

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=800)


async def old_closed_request(service: Service) -> None:
    chat = Chat(service, sender="old-1")
    reference = await fill_support_request(chat)
    await service.change_request_status(reference, RequestStatus.CLOSED, actor="t", note="")
    async with service.db.session() as s:
        for model in (Conversation, Request):
            await s.execute(update(model).values(updated_at=LONG_AGO))
        await s.execute(update(Conversation).values(status="closed", closed_at=LONG_AGO))
        await s.execute(update(Message).values(created_at=LONG_AGO))


async def contents(service: Service) -> tuple[int, int, int, int]:
    async with service.db.session(write=False) as s:
        messages = await s.scalar(select(func.count()).select_from(Message))
        with_text = await s.scalar(select(func.count()).where(Message.text != ""))
        documents = await s.scalar(select(func.count()).select_from(Document))
        with_ref = await s.scalar(select(func.count()).where(Document.ref != ""))
    return int(messages or 0), int(with_text or 0), int(documents or 0), int(with_ref or 0)


def files(service: Service) -> list[str]:
    root = service.config.storage.attachments_dir
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_dry_run_then_run(service: Service) -> None:
    await old_closed_request(service)
    recent = Chat(service, sender="recent-1", now=NOW)
    await recent.say("السلام عليكم")
    before = await contents(service)
    stored = files(service)
    assert len(stored) == 1 and before[3] == 1

    preview = await run_retention(service.db, service.files, NOW, 24, dry_run=True)
    assert (preview.conversations, preview.documents, preview.files) == (1, 1, 1)
    assert preview.messages > 20 and preview.oldest_message is not None
    assert await contents(service) == before and files(service) == stored

    done = await run_retention(service.db, service.files, NOW, 24)
    assert (done.messages, done.documents, done.files) == (preview.messages, 1, 1)
    messages, with_text, documents, with_ref = await contents(service)
    assert (messages, documents, with_ref) == (before[0], 1, 0)  # rows kept, content gone
    assert 0 < with_text < before[1]
    async with service.db.session(write=False) as s:  # the recent conversation is intact
        kept = list(await s.scalars(select(Message.text).where(Message.direction == "in")))
    assert "السلام عليكم" in kept
    assert files(service) == []
    async with service.db.session(write=False) as s:
        old = list(await s.scalars(select(Message).where(Message.text == "")))
    assert old and all("redacted_at" in m.payload for m in old)

    again = await run_retention(service.db, service.files, NOW, 24)
    assert (again.messages, again.documents, again.files) == (0, 0, 0)


async def test_a_request_still_being_decided_keeps_its_documents(service: Service) -> None:
    await old_closed_request(service)
    async with service.db.session() as s:
        await s.execute(update(Request).values(status="under_review"))
    done = await run_retention(service.db, service.files, NOW, 24)
    assert done.messages > 0 and (done.documents, done.files) == (0, 0)
    assert len(files(service)) == 1


def test_months_before_keeps_the_calendar() -> None:
    assert months_before(datetime(2026, 3, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)


def test_the_command_shows_what_would_go(tmp_path: Path) -> None:
    tmp = tmp_path
    run_cli(tmp, "db", "upgrade")
    result = run_cli(tmp, "retention", "run", "--dry-run", "--json")
    assert '"dry_run": true' in result.stdout and '"messages": 0' in result.stdout


class ComingBack:
    """The service's database, with the beneficiary writing again right after retention
    chose the expired conversations and before it redacts them."""

    def __init__(self, db: Any, between: Callable[[], Awaitable[None]]) -> None:
        self.db, self.between, self.calls = db, between, 0

    @asynccontextmanager
    async def session(self, **kw: Any) -> AsyncIterator[Any]:
        async with self.db.session(**kw) as s:
            yield s
        self.calls += 1
        if self.calls == 1:
            await self.between()


class Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send(self, delivery: Delivery) -> Sent:
        self.texts.append(delivery.reply.text)
        return Sent(f"p-{len(self.texts)}")


async def test_a_beneficiary_coming_back_while_retention_runs_keeps_the_new_messages(
    service: Service,
) -> None:
    """A conversation silent for 13 months is chosen as expired; before it is redacted the
    beneficiary writes again and the bot answers: neither the new message nor the answers
    waiting in the outbox are redacted (they would go out empty)."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="55", now=NOW)
    await chat.say("مرحبا")
    recorder = Recorder()
    service.senders["telegram"] = recorder
    await service.deliver_due()
    async with service.db.session() as s:
        await s.execute(update(Conversation).values(updated_at=NOW - timedelta(days=400)))
        await s.execute(update(Message).values(created_at=NOW - timedelta(days=400)))
    recorder.texts.clear()

    async def comes_back() -> None:
        await chat.say("القائمة")

    await run_retention(ComingBack(service.db, comes_back), service.files, NOW, 12)
    assert chat.replies
    await service.deliver_due()
    assert recorder.texts == [r.text for r in chat.replies]
    async with service.db.session(write=False) as s:
        texts = list(await s.scalars(select(Message.text).where(Message.direction == "in")))
    assert texts == ["مرحبا", "القائمة"]


async def test_an_undelivered_reply_is_cancelled_as_it_is_redacted(service: Service) -> None:
    """Old replies never delivered (held for WhatsApp's window, failed, never shown on a web
    chat left) lose their text like the rest, and are cancelled: staff sending one again,
    or the visitor coming back, would get it empty. One being sent at that moment is left
    for the next run."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="56", now=NOW)
    await chat.say("مرحبا")
    await chat.say("القائمة")
    await chat.say("مساعدة")
    long_ago = NOW - timedelta(days=400)
    async with service.db.session() as s:
        items = list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        assert len(items) >= 4
        for item, status in zip(items, ["sending", "held", "failed", "pending"], strict=False):
            item.status = status
        for item in items[4:]:
            item.status = "sent"
        sending = items[0].message_id
        await s.execute(update(Conversation).values(updated_at=long_ago))
        await s.execute(update(Message).values(created_at=long_ago))
    await run_retention(service.db, service.files, NOW, 12)
    async with service.db.session(write=False) as s:
        texts = {m.id: m.text for m in await s.scalars(select(Message))}
        statuses = [i.status for i in await s.scalars(select(OutboxItem).order_by(OutboxItem.id))]
    assert [i for i, text in texts.items() if text] == [sending]
    assert statuses[:4] == ["sending", "cancelled", "cancelled", "cancelled"]

"""Old message texts and files go; the rows the reports count stay; dry runs change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bot.service import Service
from conversations.ports import RequestStatus
from storage.models import Conversation, Document, Message, Request
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

"""`tawasul serve` runs retention by itself every `[retention] run_hours`, on one instance at
a time, and notes when it last ran so a restart does not run it again early."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import storage.retention as retention
from bot.service import Service
from conversations.ports import RequestStatus
from storage.db import Database
from storage.files import AttachmentStore
from storage.locks import Job, singleton_task
from storage.migrate import upgrade
from storage.models import AuditEntry, Conversation, Message, Request
from storage.repository import Tx
from storage.retention import JOB, LAST_RUN, retention_job
from tests.conftest import Chat, make_config, serving
from tests.pg.fixtures import database_url, pg_cluster  # noqa: F401
from tests.privacy.test_retention import LONG_AGO, files
from tests.test_engine import fill_support_request

PERIOD_HOURS = 0.0005  # 1.8 seconds


async def closed_long_ago(service: Service, sender: str) -> int:
    """A submitted request (with its file) whose conversation closed 800 days ago."""
    chat = Chat(service, sender=sender)
    reference = await fill_support_request(chat)
    await service.change_request_status(reference, RequestStatus.CLOSED, actor="t", note="")
    async with service.db.session() as s:
        request = await s.scalar(select(Request).where(Request.reference == reference))
        assert request is not None and request.conversation_id is not None
        request.updated_at = LONG_AGO
        await s.execute(
            update(Conversation)
            .where(Conversation.id == request.conversation_id)
            .values(status="closed", closed_at=LONG_AGO, updated_at=LONG_AGO)
        )
        await s.execute(
            update(Message)
            .where(Message.conversation_id == request.conversation_id)
            .values(created_at=LONG_AGO)
        )
        return request.conversation_id


async def texts_left(service: Service, conversation_id: int) -> tuple[int, int]:
    """(messages, messages still holding text) of one conversation."""
    async with service.db.session(write=False) as s:
        total = await s.scalar(
            select(func.count()).where(Message.conversation_id == conversation_id)
        )
        with_text = await s.scalar(
            select(func.count()).where(
                Message.conversation_id == conversation_id, Message.text != ""
            )
        )
    return int(total or 0), int(with_text or 0)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError("retention did not run in time")


async def test_a_serving_process_removes_old_texts_and_files_on_schedule(tmp_path: Path) -> None:
    (tmp_path / "tawasul.toml").write_text(f"[retention]\nrun_hours = {PERIOD_HOURS}\n")
    service = Service(make_config(tmp_path))
    await upgrade(service.db.engine)
    try:
        first = await closed_long_ago(service, "old-1")
        total, _ = await texts_left(service, first)
        assert len(files(service)) == 1
        async with service.db.session(write=False) as s:
            requests = await s.scalar(select(func.count()).select_from(Request))

        # A run removes the texts, commits, then deletes the files: both are waited for.
        with serving(tmp_path):
            # Once after start ...
            async def first_gone() -> bool:
                return (await texts_left(service, first))[1] == 0 and files(service) == []

            await until(first_gone)
            # ... and again a period later, for what has expired since.
            second = await closed_long_ago(service, "old-2")
            assert len(files(service)) == 1

            async def second_gone() -> bool:
                return (await texts_left(service, second))[1] == 0 and files(service) == []

            await until(second_gone)

        # The rows the reports count are all still there.
        assert (await texts_left(service, first))[0] == total
        async with service.db.session(write=False) as s:
            assert await s.scalar(select(func.count()).select_from(Request)) == requests + 1
            runs = list(
                await s.scalars(select(AuditEntry).where(AuditEntry.action == "retention.run"))
            )
            last = (await Tx(s).cursor(LAST_RUN))["at"]
        assert len(runs) >= 2 and all(run.detail["messages"] > 0 for run in runs)
        assert set(runs[0].detail) == {
            "conversations",
            "messages",
            "documents",
            "files",
            "subjects",
        }
        assert datetime.now(UTC) - datetime.fromisoformat(last) < timedelta(minutes=5)
    finally:
        await service.close()


async def test_the_job_waits_for_its_period_across_restarts_and_runs_once(
    tmp_path: Path,
) -> None:
    service = Service(make_config(tmp_path))
    await upgrade(service.db.engine)
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    clock = [now]
    runs: list[datetime] = []

    async def count_runs() -> int:
        async with service.db.session(write=False) as s:
            cursor = await Tx(s).cursor(LAST_RUN)
        if cursor and (not runs or runs[-1].isoformat() != cursor["at"]):
            runs.append(datetime.fromisoformat(cursor["at"]))
        return len(runs)

    def job() -> Job:
        inner = retention_job(
            service.db, service.files, months=24, every=timedelta(hours=1), clock=lambda: clock[0]
        )
        return singleton_task(service.db, JOB, inner, retry_every=0.05)

    try:
        stop = asyncio.Event()
        # Started twice (two instances): it runs once.
        tasks = [asyncio.ensure_future(job()(stop)) for _ in range(2)]
        await until(lambda: at_least(count_runs, 1))
        await asyncio.sleep(0.5)
        assert await count_runs() == 1
        clock[0] = now + timedelta(minutes=30)  # not yet due: a restart does not run it
        stop.set()
        await asyncio.gather(*tasks)
        stop = asyncio.Event()
        task = asyncio.ensure_future(job()(stop))
        await asyncio.sleep(0.5)
        assert await count_runs() == 1
        stop.set()
        await task
        clock[0] = now + timedelta(minutes=61)
        stop = asyncio.Event()
        task = asyncio.ensure_future(job()(stop))
        await until(lambda: at_least(count_runs, 2))
        stop.set()
        await task
        assert runs == [now, now + timedelta(minutes=61)]
    finally:
        await service.close()


async def at_least(counter: Callable[[], Awaitable[int]], n: int) -> bool:
    return await counter() >= n


async def test_two_instances_starting_together_run_it_once(
    database_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[datetime] = []

    async def counted(db: Database, files: AttachmentStore, now: datetime, months: int) -> None:
        calls.append(now)
        await asyncio.sleep(0.3)  # long enough for the other instance to try meanwhile

    monkeypatch.setattr(retention, "run_retention", counted)
    databases = [Database(database_url) for _ in range(2)]  # as two servers open it
    await upgrade(databases[0].engine)
    stop = asyncio.Event()
    try:
        jobs = [
            singleton_task(
                db,
                JOB,
                retention_job(db, AttachmentStore(tmp_path), months=24, every=timedelta(hours=1)),
                retry_every=0.05,
            )
            for db in databases
        ]
        tasks = [asyncio.ensure_future(job(stop)) for job in jobs]
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for db in databases:
            await db.dispose()
    assert len(calls) == 1

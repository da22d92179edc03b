"""Two instances on PostgreSQL sending from one outbox, their clocks apart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import bot.service as service_module
import storage.repository as repository_module
from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import OutboxItem, utcnow
from storage.repository import Tx
from tests.conftest import Chat, make_config
from tests.pg.link import Link
from tests.test_outbox import HeldSender, IdSender


@pytest.fixture
async def two(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[Service, Service]]:
    a = Service(make_config(tmp_path / "a", database={"url": pg_url}))
    await upgrade(a.db.engine)
    b = Service(make_config(tmp_path / "b", database={"url": pg_url}))
    yield a, b
    await a.close()
    await b.close()


async def test_an_instance_whose_clock_runs_ahead_leaves_the_others_lease_alone(
    two: tuple[Service, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A is sending a reply, well inside its lease. Instance B's clock is 30 s
    ahead (NTP not yet synced after boot, a VM resumed): B must not judge A's lease over and
    send the same replies again."""
    a, b = two
    await Chat(a, channel=Channel.TELEGRAM, sender="900").say("مرحبا")
    held, other = HeldSender(), IdSender()
    a.senders["telegram"] = held
    b.senders["telegram"] = other
    a_pass = asyncio.create_task(a.deliver_due())
    await asyncio.wait_for(held.started.wait(), 10)

    def ahead() -> datetime:
        return utcnow() + timedelta(seconds=30)

    with monkeypatch.context() as skewed:
        skewed.setattr(service_module, "utcnow", ahead)
        skewed.setattr(repository_module, "utcnow", ahead)
        assert await b.deliver_due() == 0

    held.release.set()
    await asyncio.wait_for(a_pass, 10)
    assert not other.sent, f"outbox items sent by both instances: {other.sent}"


async def keep_passing(service: Service, stop: asyncio.Event) -> None:
    """The outbox worker of another instance: a pass every 50 ms, whatever fails."""
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await service.deliver_due()
        await asyncio.sleep(0.05)


async def test_a_send_whose_outcome_waits_to_be_written_keeps_its_lease(
    two: tuple[Service, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A's send went out; writing it down keeps failing for two leases while
    instance B, which has reached the database all along, goes on passing over the outbox.
    A renews its lease at each try: B never sends that reply again."""
    a, b = two
    lease = timedelta(seconds=2)
    a.outbox_lease = b.outbox_lease = lease
    monkeypatch.setattr(service_module, "RECORD_RETRY_FIRST", 0.05)
    b.senders["sms"] = IdSender()  # B's passes reach the database, with nothing to send
    stop = asyncio.Event()
    b_passes = asyncio.create_task(keep_passing(b, stop))
    await asyncio.sleep(lease.total_seconds() * 1.5)  # B may take ended leases over by now

    failing = asyncio.Event()
    failing.set()
    recorded = Tx.record_outbox

    async def refused(self: Tx, item: Any, values: dict[str, Any]) -> bool:
        if failing.is_set() and values.get("status") == "sent":
            raise OperationalError("UPDATE outbox", {}, ConnectionResetError("reset"))
        return await recorded(self, item, values)

    monkeypatch.setattr(Tx, "record_outbox", refused)
    await Chat(a, channel=Channel.TELEGRAM, sender="901").say("مرحبا")
    mine, other = IdSender(), IdSender()
    a.senders["telegram"] = mine
    a_pass = asyncio.create_task(a.deliver_due())
    await wait_for(lambda: bool(mine.sent))
    b.senders["telegram"] = other
    await asyncio.sleep(lease.total_seconds() * 2)
    failing.clear()
    await asyncio.wait_for(a_pass, 10)
    stop.set()
    await asyncio.wait_for(b_passes, 10)

    assert mine.sent[:1] and mine.sent[0] not in other.sent, (mine.sent, other.sent)
    assert await status_of(a, mine.sent[0]) == ("sent", f"other-{mine.sent[0]}")


async def test_after_an_outage_the_sender_writes_its_outcome_before_others_take_over(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is out of reach of both instances (a fail-over, the network) for two
    leases, while instance A's send has gone out and waits to be written down. When it comes
    back, instance B, which had reached it for a while before, must not end A's lease and
    send the reply again before A has written it."""
    link = await Link(pg_url).start()
    a = Service(make_config(tmp_path / "a", database={"url": link.url}))
    b = Service(make_config(tmp_path / "b", database={"url": link.url}))
    try:
        await upgrade(a.db.engine)
        lease = timedelta(seconds=3)
        a.outbox_lease = b.outbox_lease = lease
        monkeypatch.setattr(service_module, "RECORD_RETRY_FIRST", 0.05)
        b.senders["sms"] = IdSender()
        stop = asyncio.Event()
        b_passes = asyncio.create_task(keep_passing(b, stop))
        await asyncio.sleep(lease.total_seconds() * 1.5)

        await Chat(a, channel=Channel.TELEGRAM, sender="902").say("مرحبا")
        held, other = HeldSender(), IdSender()
        a.senders["telegram"] = held
        a_pass = asyncio.create_task(a.deliver_due())
        await asyncio.wait_for(held.started.wait(), 10)
        b.senders["telegram"] = other
        link.cut()
        held.release.set()
        await asyncio.sleep(lease.total_seconds() * 2)
        link.mend()
        await asyncio.wait_for(a_pass, 30)
        stop.set()
        await asyncio.wait_for(b_passes, 30)

        assert held.sent and held.sent[0] not in other.sent, (held.sent, other.sent)
        assert await status_of(a, held.sent[0]) == ("sent", f"held-{held.sent[0]}")
    finally:
        await a.close()
        await b.close()
        await link.close()


async def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def status_of(service: Service, outbox_id: int) -> tuple[str, str | None]:
    async with service.db.session(write=False) as session:
        item = await session.get(OutboxItem, outbox_id)
        assert item is not None
        return item.status, item.provider_id


async def test_replies_queued_by_an_instance_whose_clock_runs_ahead_are_due_at_once(
    two: tuple[Service, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance B's clock is 30 s ahead. The replies it queues (a step's, failed ones sent
    again) are due by the database's clock, so instance A sends them at once rather than
    30 s later."""
    a, b = two
    sent = IdSender()
    a.senders["telegram"] = sent

    def ahead() -> datetime:
        return utcnow() + timedelta(seconds=30)

    with monkeypatch.context() as skewed:
        skewed.setattr(service_module, "utcnow", ahead)
        skewed.setattr(repository_module, "utcnow", ahead)
        chat = Chat(b, channel=Channel.TELEGRAM, sender="903")
        await chat.say("مرحبا")
    assert chat.replies
    assert await a.deliver_due() == len(chat.replies)

    async with a.db.session() as session:
        await session.execute(update(OutboxItem).values(status="failed"))
    with monkeypatch.context() as skewed:
        skewed.setattr(service_module, "utcnow", ahead)
        skewed.setattr(repository_module, "utcnow", ahead)
        retried = await b.retry_outbox(None)
    assert retried and await a.deliver_due() == len(retried)
    assert len(sent.sent) == len(chat.replies) + len(retried)

"""Two instances on PostgreSQL sending from one outbox, their clocks apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import bot.service as service_module
import storage.repository as repository_module
from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import utcnow
from tests.conftest import Chat, make_config
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

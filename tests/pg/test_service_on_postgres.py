"""The engine dialogues, the outbox and identity tests, run again over PostgreSQL.

The test functions are the SQLite suite's own; only the ``service`` fixture differs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.migrate import upgrade
from storage.models import Conversation, Message
from tests.conftest import make_config
from tests.test_engine import *  # noqa: F403
from tests.test_identities import *  # noqa: F403
from tests.test_outbox import *  # noqa: F403


@pytest.fixture
async def service(tmp_path: Path, pg_url: str) -> AsyncIterator[Service]:
    svc = Service(make_config(tmp_path, database={"url": pg_url}))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()


# -- several instances on one database -------------------------------------------------------


async def _tell(service: Service, sender: str, count: int) -> list[int]:
    """``count`` stored, unprocessed messages from ``sender``; their ids in order."""
    ids = []
    for n in range(count):
        message_id = await service.receive(
            Inbound(Channel.TELEGRAM, sender, "مرحبا", channel_message_id=f"tg-{sender}-{n}")
        )
        assert message_id is not None
        ids.append(message_id)
    return ids


async def _processed(service: Service, ids: list[int]) -> list[datetime | None]:
    async with service.db.session(write=False) as s:
        rows = await s.execute(select(Message.id, Message.processed_at).where(Message.id.in_(ids)))
        found = {message_id: stamp for message_id, stamp in rows}
    return [found[i] for i in ids]


def _in_order(stamps: list[datetime | None]) -> bool:
    return all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(stamps))


async def test_a_pass_leaves_a_conversation_held_elsewhere_and_takes_the_rest(
    service: Service,
) -> None:
    """Another instance's step holds a conversation: a pass does the other conversations
    without waiting for it, and leaves all of the held one's messages, so that none is taken
    ahead of the one under way; they are taken once it is released."""
    held_ids = await _tell(service, "700", 3)
    free_ids = await _tell(service, "701", 3)
    async with service.db.session(write=False) as s:
        held = await s.scalar(select(Message.conversation_id).where(Message.id == held_ids[0]))
    async with service.db.session() as other_step:
        await other_step.execute(
            select(Conversation.id).where(Conversation.id == held).with_for_update()
        )
        taken = await asyncio.wait_for(service.process_pending(), timeout=10)
        assert taken == 3
        assert _in_order(await _processed(service, free_ids))
        assert await _processed(service, held_ids) == [None, None, None]
    assert await service.process_pending() == 3
    assert _in_order(await _processed(service, held_ids))
    assert await service.process_pending() == 0


async def test_two_instances_share_a_backlog_each_message_once_in_order(
    service: Service,
) -> None:
    other = Service(service.config)
    try:
        lines = [await _tell(service, str(800 + n), 4) for n in range(8)]
        counts = await asyncio.wait_for(
            asyncio.gather(service.process_pending(), other.process_pending()), timeout=30
        )
        assert sum(counts) == 32  # each message taken by exactly one of them
        for ids in lines:
            assert _in_order(await _processed(service, ids))
    finally:
        await other.close()

"""The engine dialogues, the outbox and identity tests, run again over PostgreSQL.

The test functions are the SQLite suite's own; only the ``service`` fixture differs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.models import Message
from storage.repository import Tx
from tests.test_engine import *  # noqa: F403
from tests.test_identities import *  # noqa: F403
from tests.test_outbox import *  # noqa: F403

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


@asynccontextmanager
async def _step_under_way(service: Service, message_id: int) -> AsyncIterator[None]:
    """Another instance's step on the message's conversation, holding it until the end."""
    async with service.db.session() as other:
        assert await Tx(other).claim_inbound(message_id) is not None
        yield


async def test_a_pass_leaves_a_conversation_held_elsewhere_and_takes_the_rest(
    service: Service,
) -> None:
    """Another instance's step holds a conversation: a pass does the other conversations
    without waiting for it, and leaves all of the held one's messages, so that none is taken
    ahead of the one under way; they are taken once it is released."""
    held_ids = await _tell(service, "700", 3)
    free_ids = await _tell(service, "701", 3)
    async with _step_under_way(service, held_ids[0]):
        taken = await asyncio.wait_for(service.process_pending(), timeout=10)
        assert taken == 3
        assert _in_order(await _processed(service, free_ids))
        assert await _processed(service, held_ids) == [None, None, None]
    assert await service.process_pending() == 3
    assert _in_order(await _processed(service, held_ids))
    assert await service.process_pending() == 0


async def test_a_held_conversations_backlog_does_not_hold_up_the_others(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.service.PENDING_PASS", 3)  # the held backlog fills a whole read
    held_ids = await _tell(service, "702", 5)
    free_ids = await _tell(service, "703", 1)
    async with _step_under_way(service, held_ids[0]):
        assert await asyncio.wait_for(service.process_pending(), timeout=10) == 1
        assert (await _processed(service, free_ids))[0] is not None


async def test_a_new_message_is_neither_held_up_by_a_step_nor_taken_for_one(
    service: Service,
) -> None:
    """A step holds its conversation against other steps only: a new message of the same
    conversation is stored (and acknowledged) at once, and a message being stored does not
    make its conversation look held to a pass."""
    first = await _tell(service, "704", 1)
    async with _step_under_way(service, first[0]):
        stored = service.receive(
            Inbound(Channel.TELEGRAM, "704", "مرحبا", channel_message_id="tg-704-new")
        )
        assert await asyncio.wait_for(stored, timeout=5) is not None
    waiting = await _tell(service, "705", 1)
    async with service.db.session() as arriving:  # a webhook's transaction, not yet committed
        await Tx(arriving).ingest(
            Inbound(Channel.TELEGRAM, "705", "مرحبا", channel_message_id="tg-705-new"), {}
        )
        assert await asyncio.wait_for(service.process_pending(), timeout=10) == 3
        assert (await _processed(service, waiting))[0] is not None


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


async def test_messages_of_one_conversation_stored_at_once_are_numbered_as_they_commit(
    service: Service,
) -> None:
    """Two webhooks of one sender on two instances: the second message is stored only once
    the first is committed, so a pass never sees the later one without the earlier."""
    await _tell(service, "706", 1)  # the conversation exists
    async with service.db.session() as first:
        earlier = await Tx(first).ingest(
            Inbound(Channel.TELEGRAM, "706", "مرحبا", channel_message_id="tg-706-a"), {}
        )
        assert earlier is not None
        second = asyncio.ensure_future(
            service.receive(
                Inbound(Channel.TELEGRAM, "706", "مرحبا", channel_message_id="tg-706-b")
            )
        )
        done, _ = await asyncio.wait([second], timeout=0.5)
        assert not done  # waits for the first to commit
    later = await asyncio.wait_for(second, timeout=5)
    assert later is not None and later > earlier.message_id

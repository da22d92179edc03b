"""One sender flooding is slowed, then ignored with one polite message; others carry on."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import FloodConfig
from bot.security import FloodGuard, FloodLimits, Verdict, flood_guard
from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.migrate import upgrade
from storage.models import Message
from tests.conftest import WORKING_TIME, make_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_thousand_messages_a_minute_are_slowed_then_ignored() -> None:
    clock = Clock()
    guard = FloodGuard(clock=clock)  # the shipped limits
    verdicts: Counter[Verdict] = Counter()
    waits = []
    for _ in range(1000):
        verdict, wait = guard.check("phone", "+966500000001")
        verdicts[verdict] += 1
        waits.append(wait)
        clock.now += 0.06
    limits = guard.limits
    assert verdicts[Verdict.PASS] == limits.slow_after
    assert 0 < verdicts[Verdict.SLOW] <= limits.max_wait / limits.slow_seconds + 1
    assert verdicts[Verdict.BLOCK] == 1  # told once
    assert verdicts[Verdict.IGNORE] == 1000 - sum(
        verdicts[v] for v in (Verdict.PASS, Verdict.SLOW, Verdict.BLOCK)
    )
    assert max(waits) <= limits.max_wait
    # Someone else meanwhile is untouched.
    assert guard.check("phone", "+966500000002") == (Verdict.PASS, 0.0)
    clock.now += limits.block_seconds
    assert guard.check("phone", "+966500000001") == (Verdict.PASS, 0.0)


def test_a_person_typing_fast_is_never_slowed() -> None:
    clock = Clock()
    guard = FloodGuard(clock=clock)
    for _ in range(300):  # one message every 2 s for 10 minutes
        assert guard.check("webchat", "s")[0] is Verdict.PASS
        clock.now += 2.0


def test_quiet_senders_are_forgotten_when_memory_is_full() -> None:
    import bot.security as security

    clock = Clock()
    guard = FloodGuard(FloodLimits(window=1.0), clock=clock)
    for i in range(security.FLOOD_TRACKED_SENDERS):
        guard.check("webchat", str(i))
    clock.now += 5
    guard.check("webchat", "new")
    assert len(guard._senders) == 1


def test_quiet_senders_are_forgotten_once_a_window_has_passed() -> None:
    clock = Clock()
    guard = FloodGuard(FloodLimits(window=60.0), clock=clock)
    for i in range(1000):
        guard.check("whatsapp", f"+9665{i:08d}")
        clock.now += 0.01
    clock.now += 55
    guard.check("whatsapp", "+966500000001")  # still writing
    assert len(guard._senders) == 1000
    clock.now += 6  # the others' last message is now more than a window old
    guard.check("whatsapp", "+966511111111")  # a new sender: the table is swept
    assert set(guard._senders) == {("whatsapp", "+966500000001"), ("whatsapp", "+966511111111")}


async def _count(service: Service, sender_direction: str, text: str | None = None) -> int:
    async with service.db.session(write=False) as session:
        texts = await session.scalars(
            select(Message.text).where(Message.direction == sender_direction)
        )
        return sum(1 for said in texts if text is None or text in said)


FAST: dict[str, object] = {
    "slow_after": 5,
    "slow_seconds": 0.1,
    "max_wait_seconds": 0.5,
    "block_after": 15,
    "block_minutes": 10,
}


@pytest.fixture
async def fast_limits(tmp_path: Path) -> AsyncIterator[Service]:
    """A service whose [flood] settings are small enough to reach in a test."""
    service = Service(make_config(tmp_path, flood=FAST))
    await upgrade(service.db.engine)
    yield service
    await service.close()


async def test_the_flood_settings_are_the_guards_limits(fast_limits: Service) -> None:
    limits = flood_guard(fast_limits).limits
    assert (limits.slow_after, limits.slow_seconds, limits.max_wait) == (5, 0.1, 0.5)
    assert (limits.block_after, limits.block_seconds, limits.window) == (15, 600, 60)
    assert FloodLimits() == FloodLimits.from_config(FloodConfig())  # one set of defaults


async def test_a_thousand_messages_from_one_sender_leave_others_answered_on_time(
    fast_limits: Service,
) -> None:
    service = fast_limits
    limits = flood_guard(service).limits

    def msg(sender: str, n: int) -> Inbound:
        return Inbound(
            Channel.WEBCHAT,
            sender,
            text=f"flood {n}",
            channel_message_id=f"{sender}-{n}",
            received_at=WORKING_TIME,
        )

    async def flood() -> None:
        for batch in range(0, 1000, 20):
            await asyncio.gather(
                *(
                    service.handle(msg("flooder-session-000000", n))
                    for n in range(batch, batch + 20)
                )
            )

    # Load the question index once (a cold start is not what is measured here).
    for n in range(2):
        warm = Inbound(
            Channel.WEBCHAT,
            f"warm-up-session-{n}000000",
            text="ما هي المستندات المطلوبة؟",
            channel_message_id=f"warm-{n}",
            received_at=WORKING_TIME,
        )
        assert await service.handle(warm)
    latencies: list[float] = []

    async def neighbour() -> None:
        await asyncio.sleep(0.05)
        for n in range(6):
            started = time.monotonic()
            delivered = await service.handle(
                Inbound(
                    Channel.WEBCHAT,
                    "neighbour-session-00000",
                    command="menu" if n else "start",
                    channel_message_id=f"neighbour-{n}",
                    received_at=WORKING_TIME,
                )
            )
            latencies.append(time.monotonic() - started)
            assert delivered, "the neighbour got no answer"
            await asyncio.sleep(0.02)

    await asyncio.wait_for(asyncio.gather(flood(), neighbour()), timeout=45)
    # The neighbour's first message may queue behind the few the flooder had admitted (well
    # within a webhook's 15 s); once the flooder is ignored, answers come at once.
    assert len(latencies) == 6 and max(latencies) < 10.0
    assert sorted(latencies)[3] < 1.0
    # Slowed first (more than the unslowed share got through), then ignored: the messages
    # past the limit were never stored, and the sender was told exactly once.
    stored = await _count(service, "in", "flood ")
    assert limits.slow_after < stored <= limits.block_after
    async with service.db.session(write=False) as session:
        said = list(await session.scalars(select(Message.text).where(Message.direction == "out")))
    polite = {
        service.catalog.text(lang, "security.flood", minutes=service.catalog.minutes(lang, 10))
        for lang in ("ar", "en")
    }
    assert sum(text in polite for text in said) == 1


async def test_an_ignored_sender_can_be_left_untold(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path, flood={**FAST, "notify_blocked": "false"}))
    await upgrade(service.db.engine)
    try:
        for n in range(40):
            await service.receive(
                Inbound(
                    Channel.WEBCHAT,
                    "quiet-flooder-session-00",
                    text=f"flood {n}",
                    channel_message_id=f"q-{n}",
                    received_at=WORKING_TIME,
                )
            )
        assert flood_guard(service).check("webchat", "quiet-flooder-session-00")[0] is (
            Verdict.IGNORE
        )
        assert await _count(service, "out") == 0
    finally:
        await service.close()


async def test_a_channels_retries_of_a_stored_message_do_not_count(fast_limits: Service) -> None:
    """A slowed sender's webhook can outlast the channel's patience: its retries of a message
    already stored are not counted again, so they do not push the sender into a block."""
    service = fast_limits
    limits = flood_guard(service).limits

    def msg(n: int) -> Inbound:
        return Inbound(
            Channel.WHATSAPP,
            "+966500000077",
            text=f"سؤال {n}",
            channel_message_id=f"SM-retry-{n}",
            received_at=WORKING_TIME,
        )

    for n in range(limits.slow_after):
        assert await service.receive(msg(n)) is not None
    for _ in range(limits.block_after):  # the channel sends the first one again and again
        assert await service.receive(msg(0)) is None
    assert await service.receive(msg(limits.slow_after)) is not None  # slowed, not blocked
    assert await _count(service, "in") == limits.slow_after + 1

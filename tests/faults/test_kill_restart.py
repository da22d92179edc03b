"""Kill -9 mid-stream and restart: nothing acknowledged is lost, nothing is done twice."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from bot.service import Service
from tests.faults.conftest import (
    TEXTS,
    FaultyTwilio,
    RoundRobin,
    Server,
    assert_once_in_order,
    beneficiary,
    crash,
    web_visitor,
)

NUMBERS = [f"+9665012300{i:02d}" for i in range(6)]
COUNT = 3 * len(TEXTS)  # messages per beneficiary


async def test_kill_nine_mid_stream_loses_nothing_and_repeats_nothing(
    server: Server, faulty_twilio: FaultyTwilio, observer: Service
) -> None:
    await server.start()
    targets = RoundRobin([server])
    acked: dict[str, list[str]] = defaultdict(list)
    web_sent: list[tuple[str, bool]] = []
    drivers = [
        asyncio.create_task(beneficiary(targets, number, acked[number], COUNT))
        for number in NUMBERS
    ] + [asyncio.create_task(web_visitor(targets, web_sent))]

    for pause in (1.2, 1.5, 1.5):
        await asyncio.sleep(pause)
        await crash([server], faulty_twilio, observer)
        await server.start()

    await asyncio.wait_for(asyncio.gather(*drivers), 30)
    assert all(len(acked[number]) == COUNT for number in NUMBERS)
    await assert_once_in_order(observer, faulty_twilio, acked, web_sent, settle_seconds=35)

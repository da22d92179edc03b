"""The live updates' streams against the database: a page leaving mid-read."""

from __future__ import annotations

import asyncio
import gc

import anyio
from sqlalchemy import text
from starlette.requests import Request

from bot.service import Service
from staff import events
from staff.events import event_stream

SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
    "SELECT count(*) FROM c"
)


def pending_closes() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and "_terminate_graceful_close" in repr(t.get_coro())
    ]


async def test_a_page_leaving_during_a_read_leaves_no_connection_half_closed(
    console_service: Service,
) -> None:
    """The server log said "Task was destroyed but it is pending! ... _terminate_graceful_close"
    when a browser left a live page while its stream was reading the database."""
    reading = asyncio.Event()

    async def signature() -> dict[str, str]:
        async with console_service.db.session(write=False) as session:
            reading.set()
            await session.execute(text(SLOW))
        return {"changed": "1"}

    request = Request({"type": "http", "method": "GET", "headers": []})
    stream = event_stream(request, signature, since={}, poll=0.01).body_iterator

    async def consume() -> None:
        async for _ in stream:
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(consume)
        await reading.wait()
        await asyncio.sleep(0.05)
        group.cancel_scope.cancel()  # the browser left, as Starlette sees it

    # The read was not cut short: no connection thrown away, no close left half done.
    assert not pending_closes()
    for _ in range(200):
        if not events._reading:
            break
        await asyncio.sleep(0.05)
    assert not events._reading
    gc.collect()
    assert not pending_closes()
    # The connection went back to the pool in working order.
    async with console_service.db.session(write=False) as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1

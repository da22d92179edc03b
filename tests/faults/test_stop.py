"""A polite stop (SIGTERM): no new work, what is under way finished or left whole, in time."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.service import Service
from storage.models import Message, OutboxItem
from tests.faults.conftest import FaultyTwilio, Server, post_twilio, settled, whatsapp

NUMBERS = ["+966501110001", "+966501110002", "+966501110003"]


async def say(http: httpx.AsyncClient, number: str, text: str) -> str:
    form = whatsapp(number, text, "SM" + secrets.token_hex(16))
    assert (await post_twilio(http, form)).status_code == 200
    return form["MessageSid"]


async def test_sigterm_finishes_or_leaves_whole_and_exits_in_time(
    server: Server, faulty_twilio: FaultyTwilio, observer: Service
) -> None:
    server.env["TAWASUL_SERVER_SHUTDOWN_SECONDS"] = "4"
    await server.start()
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as http:
        faulty_twilio.gate.clear()  # a send hangs in flight when the stop comes
        sids = [await say(http, number, "السلام عليكم") for number in NUMBERS]
        for _ in range(100):
            if faulty_twilio.in_flight:
                break
            await asyncio.sleep(0.05)
        assert faulty_twilio.in_flight
        started = time.monotonic()
        code = await server.terminate()
        took = time.monotonic() - started
    faulty_twilio.gate.set()
    # uvicorn raises the signal again once it has shut down, as a process stopped by it should.
    assert code in (0, -15)
    assert took < 4 + 2

    async with observer.db.session(write=False) as s:
        rows = list(await s.scalars(select(Message).where(Message.channel_message_id.in_(sids))))
        outbox = list(await s.scalars(select(OutboxItem)))
    assert len(rows) == len(sids)
    for row in rows:
        queued = [
            i for i in outbox if i.message_id > row.id and i.conversation_id == row.conversation_id
        ]
        # Processed means its replies are queued with it; unprocessed means none were.
        assert (row.processed_at is not None) == bool(queued)
    assert not faulty_twilio.messages  # the send caught in flight never completed

    # The next start takes up what was left and sends each reply once.
    await server.start()
    await settled(observer, 30)
    for number in NUMBERS:
        assert len({m["Body"] for m in faulty_twilio.to(number)}) == len(faulty_twilio.to(number))
        assert faulty_twilio.to(number)


async def test_sigterm_exits_in_time_while_another_process_holds_the_database(
    server: Server, faulty_twilio: FaultyTwilio, tmp_path: Path
) -> None:
    """A backup or a command holding SQLite's write lock when the stop comes: the message
    waiting for it is not acknowledged (its channel sends it again), and the server still
    exits within its time instead of waiting for the lock, twice, at every step of the stop."""
    server.env["TAWASUL_SERVER_SHUTDOWN_SECONDS"] = "4"
    await server.start()
    holder = sqlite3.connect(tmp_path / "tawasul.db", isolation_level=None)
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            await say(http, NUMBERS[0], "السلام عليكم")  # the server is up and writing
            holder.execute("BEGIN IMMEDIATE")
            form = whatsapp(NUMBERS[1], "السلام عليكم", "SM" + secrets.token_hex(16))
            waiting = asyncio.create_task(post_twilio(http, form))
            await asyncio.sleep(1)
            assert not waiting.done()  # waiting for the lock
            started = time.monotonic()
            code = await server.terminate()
            took = time.monotonic() - started
            with contextlib.suppress(httpx.HTTPError):
                answer = await waiting
                assert answer.status_code != 200
    finally:
        holder.rollback()
        holder.close()
    assert code in (0, -15)
    assert took < 4 + 2

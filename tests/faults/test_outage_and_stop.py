"""Twilio down for a while, a permanent refusal, and a polite stop (SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from bot.service import Service
from storage.models import Message, OutboxItem
from tests.conftest import run_cli
from tests.faults.conftest import FaultyTwilio, Server, post_twilio, settled, whatsapp
from tests.twilio.fake import FakeError

NUMBERS = ["+966501110001", "+966501110002", "+966501110003"]


async def say(http: httpx.AsyncClient, number: str, text: str) -> str:
    form = whatsapp(number, text, "SM" + secrets.token_hex(16))
    assert (await post_twilio(http, form)).status_code == 200
    return form["MessageSid"]


async def test_outage_then_recovery_delivers_once_in_order_and_refusals_end_failed(
    tmp_path: Path, server: Server, faulty_twilio: FaultyTwilio, observer: Service
) -> None:
    server.env["TAWASUL_OUTBOX_MAX_ATTEMPTS"] = "5"
    await server.start()
    faulty_twilio.unavailable = True
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as http:
        for text in ("السلام عليكم", "٣", "شكرا"):
            for number in NUMBERS:
                await say(http, number, text)
        await asyncio.sleep(1.0)
        faulty_twilio.unavailable = False
        faulty_twilio.gate.clear()  # then it hangs for a while before answering again
        await asyncio.sleep(1.0)
        faulty_twilio.gate.set()
        outbox = await settled(observer, 30)

        assert faulty_twilio.refused > 0
        sent = [i for i in outbox if i.channel == "whatsapp"]
        assert sent and all(i.status == "sent" for i in sent)
        assert any(i.attempts > 1 for i in sent)
        for number in NUMBERS:
            theirs = [m["sid"] for m in faulty_twilio.to(number)]
            ours = [i.provider_id for i in sent if i.address == number]
            assert theirs == ours and len(ours) >= 3

        # A permanent refusal: set aside after the configured attempts, then sent on request.
        faulty_twilio.errors += [FakeError(400, 21610 + 1, "Invalid parameter")] * 5
        refused = "+966501110009"
        await say(http, refused, "السلام عليكم")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            async with observer.db.session(write=False) as s:
                failed = list(
                    await s.scalars(select(OutboxItem).where(OutboxItem.status == "failed"))
                )
            if failed or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(failed) == 1 and failed[0].attempts == 5

        listing = await asyncio.to_thread(
            run_cli, tmp_path, "outbox", "failed", "--json", env=server.env
        )
        assert refused not in listing.stdout and "501110009" not in listing.stdout
        [row] = json.loads(listing.stdout)
        assert row["id"] == failed[0].id and row["attempts"] == 5
        assert row["channel"] == "whatsapp" and "400" in row["last_error"]
        assert row["address"].endswith("09")

        await asyncio.to_thread(run_cli, tmp_path, "outbox", "retry", "--all", env=server.env)
        after = [i for i in await settled(observer, 15) if i.address == refused]
        assert after and all(i.status == "sent" for i in after)
        # A reply set aside no longer holds up the ones after it, so only the set is compared.
        theirs = sorted(m["sid"] for m in faulty_twilio.to(refused))
        assert theirs == sorted(str(i.provider_id) for i in after)
        nothing = await asyncio.to_thread(run_cli, tmp_path, "outbox", "failed", env=server.env)
        assert "Nothing failed" in nothing.stdout


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

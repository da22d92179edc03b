"""Kill -9 mid-stream and restart: nothing acknowledged is lost, nothing is done twice."""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict

import httpx
from sqlalchemy import select

from bot.service import Service
from storage.models import Identity, Message, OutboxItem
from tests.faults.conftest import FaultyTwilio, Server, post_twilio, settled, whatsapp

NUMBERS = [f"+9665012300{i:02d}" for i in range(6)]
TEXTS = ["السلام عليكم", "٣", "ما أوقات الدوام؟", "القائمة", "كيف أسجل؟", "شكرا"]
ROUNDS = 3  # messages per beneficiary: TEXTS repeated


async def beneficiary(
    base: str, number: str, acked: list[str], stop_sending: asyncio.Event
) -> None:
    """Writes in order; a message not acknowledged (no 200) is sent again, as Twilio does."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        for n in range(ROUNDS * len(TEXTS)):
            form = whatsapp(number, TEXTS[n % len(TEXTS)], "SM" + secrets.token_hex(16))
            while True:
                try:
                    if (await post_twilio(http, form)).status_code == 200:
                        acked.append(form["MessageSid"])
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)
    del stop_sending


async def web_visitor(base: str, sent: list[tuple[str, bool]]) -> None:
    """Web chat has no resend: a message is either acknowledged or the visitor sees an error."""
    for _ in range(3):
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                if (await http.post("/api/webchat/start", json={"lang": "ar"})).status_code != 200:
                    raise httpx.HTTPError("start")
                for n in range(8):
                    text = f"سؤال رقم {secrets.token_hex(3)} {n}"
                    try:
                        ok = (
                            await http.post("/api/webchat/messages", json={"text": text})
                        ).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    sent.append((text, ok))
                    await asyncio.sleep(0.15)
            return
        except httpx.HTTPError:
            await asyncio.sleep(0.3)


async def recorded(observer: Service, fake: FaultyTwilio) -> None:
    """Wait until every message Twilio took has its outcome in our outbox."""
    for _ in range(100):
        async with observer.db.session(write=False) as s:
            known = set(await s.scalars(select(OutboxItem.provider_id)))
        if all(m["sid"] in known for m in fake.messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("sent messages were not recorded within 5 s")


async def test_kill_nine_mid_stream_loses_nothing_and_repeats_nothing(
    server: Server, faulty_twilio: FaultyTwilio, observer: Service
) -> None:
    await server.start()
    acked: dict[str, list[str]] = defaultdict(list)
    web_sent: list[tuple[str, bool]] = []
    stop = asyncio.Event()
    drivers = [
        asyncio.create_task(beneficiary(server.base, number, acked[number], stop))
        for number in NUMBERS
    ] + [asyncio.create_task(web_visitor(server.base, web_sent))]

    for pause in (1.2, 1.5, 1.5):
        await asyncio.sleep(pause)
        # Sends caught in flight never reach Twilio; those finished have had time to be
        # recorded, so any repeat below would be our fault, not the crash window's.
        faulty_twilio.gate.clear()
        await recorded(observer, faulty_twilio)
        await server.kill()
        await asyncio.sleep(0.2)  # the fake sees the dropped connections before it resumes
        faulty_twilio.gate.set()
        await server.start()

    await asyncio.wait_for(asyncio.gather(*drivers), 30)
    outbox = await settled(observer, 35)

    async with observer.db.session(write=False) as s:
        inbound = list(
            await s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        )
        identities = {i.id: i for i in await s.scalars(select(Identity))}

    # Every acknowledged message stored once, processed, in the order it was sent.
    by_sid = defaultdict(list)
    for row in inbound:
        by_sid[row.channel_message_id].append(row)
        assert row.processed_at is not None
    for number, sids in acked.items():
        assert len(sids) == ROUNDS * len(TEXTS)
        assert all(len(by_sid[sid]) == 1 for sid in sids), number
        stored = [r.channel_message_id for r in inbound if r.channel_message_id in set(sids)]
        assert stored == sids, f"order of {number}"
    web_rows = [r.text for r in inbound if r.channel == "webchat"]
    for text, ok in web_sent:
        assert web_rows.count(text) == (1 if ok else web_rows.count(text)) <= 1

    # Every reply delivered exactly once, in order, against Twilio's own record.
    whatsapp_items = [i for i in outbox if i.channel == "whatsapp"]
    assert whatsapp_items and all(i.status == "sent" for i in whatsapp_items)
    for number in NUMBERS:
        ours = [
            i.provider_id
            for i in whatsapp_items
            if identities[i.identity_id].address == number  # type: ignore[index]
        ]
        theirs = [m["sid"] for m in faulty_twilio.to(number)]
        assert theirs == ours, (
            f"replies to {number}",
            [(m["sid"], m.get("Body", "")[:30]) for m in faulty_twilio.to(number)],
            ours,
        )
        assert len(ours) >= ROUNDS * len(TEXTS)

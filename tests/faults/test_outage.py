"""The provider down for a while, then hanging, then back; and a permanent refusal.

The same test runs against the fake Twilio and the fake Telegram Bot API.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from itertools import accumulate
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.service import Service
from storage.models import OutboxItem
from tests.conftest import run_cli
from tests.faults.conftest import (
    FaultyBotAPI,
    FaultyTwilio,
    Server,
    post_twilio,
    samples,
    settled,
    telegram_env,
    twilio_env,
    whatsapp,
)
from tests.telegram import payloads
from tests.twilio.fake import FakeError

# Enough for the outage below to never use them all: its replies fail for about 2.5 s, and
# ten attempts span at least 3.7 s of backoff (0.2 s doubling up to 1 s, jitter 0.5-1).
# Five left some replies at their last attempt, and now and then one ran out.
MAX_ATTEMPTS = 10


class FaultSwitches:
    """What both fakes share: answer 503, hang, and count the sends they refused."""

    fake: FaultyTwilio | FaultyBotAPI

    def set_unavailable(self, down: bool) -> None:
        self.fake.unavailable = down

    def hang(self, hanging: bool) -> None:
        (self.fake.gate.clear if hanging else self.fake.gate.set)()

    @property
    def refused(self) -> int:
        return self.fake.refused


class TwilioPeer(FaultSwitches):
    fake: FaultyTwilio
    channel = "whatsapp"
    recipients = ("+966501110001", "+966501110002", "+966501110003")
    refused_recipient = "+966501110009"
    refusal = "400"  # how the refusal shows in the failed list
    link = "webhook"  # what /readyz says of the channel

    def __init__(self, fake: FaultyTwilio) -> None:
        self.fake = fake
        self.env = twilio_env(fake)

    def refuse_next(self, times: int) -> None:
        self.fake.errors += [FakeError(400, 21611, "Invalid parameter")] * times

    async def say(self, http: httpx.AsyncClient, who: str, text: str) -> None:
        form = whatsapp(who, text, "SM" + secrets.token_hex(16))
        assert (await post_twilio(http, form)).status_code == 200

    def assert_delivered(self, items: Sequence[OutboxItem], who: str, *, ordered: bool) -> None:
        theirs = [m["sid"] for m in self.fake.to(who)]
        ours = [str(i.provider_id) for i in items]
        assert (theirs if ordered else sorted(theirs)) == (ours if ordered else sorted(ours))


class TelegramPeer(FaultSwitches):
    fake: FaultyBotAPI
    channel = "telegram"
    recipients = ("700000001", "700000002", "700000003")
    refused_recipient = "700000009"
    refusal = "bad request"
    link = "connected"  # this instance polls

    def __init__(self, fake: FaultyBotAPI) -> None:
        self.fake = fake
        self.env = telegram_env(fake)

    def refuse_next(self, times: int) -> None:
        self.fake.fail("sendMessage", 400, "Bad Request: can't parse entities", times=times)

    async def say(self, http: httpx.AsyncClient, who: str, text: str) -> None:
        # Acknowledged when the bot's next getUpdates confirms it.
        update_id = self.fake.push(payloads.text(int(who), text))
        for _ in range(200):
            if all(u["update_id"] != update_id for u in list(self.fake.updates)):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the update was not taken")

    def assert_delivered(self, items: Sequence[OutboxItem], who: str, *, ordered: bool) -> None:
        # A reply may leave as several messages; its provider id names the last of them.
        theirs = [m.message_id for m in self.fake.sent(int(who))]
        assert len(theirs) == sum(i.parts for i in items), "a message sent twice, or missing"
        ends = [f"{who}:{theirs[n - 1]}" for n in accumulate(i.parts for i in items)]
        ours = [str(i.provider_id) for i in items]
        if ordered:
            assert ends == ours
        else:
            assert set(ours) <= {f"{who}:{m}" for m in theirs}


Peer = TwilioPeer | TelegramPeer


@pytest.fixture(params=["twilio", "telegram"])
async def peer(request: pytest.FixtureRequest, faulty_twilio: FaultyTwilio) -> AsyncIterator[Peer]:
    if request.param == "twilio":
        yield TwilioPeer(faulty_twilio)
        return
    fake = FaultyBotAPI().start()
    try:
        yield TelegramPeer(fake)
    finally:
        fake.stop()


@pytest.fixture
def server_env(peer: Peer) -> dict[str, str]:
    return peer.env | {"TAWASUL_OUTBOX_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}


async def test_outage_then_recovery_delivers_once_in_order_and_refusals_end_failed(
    tmp_path: Path, server: Server, peer: Peer, observer: Service
) -> None:
    await server.start()
    peer.set_unavailable(True)
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as http:
        for text in ("السلام عليكم", "٣", "شكرا"):
            for who in peer.recipients:
                await peer.say(http, who, text)
        await asyncio.sleep(1.0)
        peer.set_unavailable(False)
        peer.hang(True)  # then it hangs for a while before answering again
        await asyncio.sleep(1.0)
        peer.hang(False)
        outbox = await settled(observer, 30)

        assert peer.refused > 0
        sent = [i for i in outbox if i.channel == peer.channel]
        assert sent and all(i.status == "sent" for i in sent)
        assert any(i.attempts > 1 for i in sent)
        for who in peer.recipients:
            mine = [i for i in sent if i.address == who]
            assert len(mine) >= 3
            peer.assert_delivered(mine, who, ordered=True)

        # A permanent refusal: set aside after the configured attempts, then sent on request.
        peer.refuse_next(MAX_ATTEMPTS)
        refused = peer.refused_recipient
        await peer.say(http, refused, "السلام عليكم")
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
        assert len(failed) == 1 and failed[0].attempts == MAX_ATTEMPTS

        listing = await asyncio.to_thread(
            run_cli, tmp_path, "outbox", "failed", "--json", env=server.env
        )
        assert refused not in listing.stdout and refused[-9:] not in listing.stdout
        [row] = json.loads(listing.stdout)
        assert row["id"] == failed[0].id and row["attempts"] == MAX_ATTEMPTS
        assert row["channel"] == peer.channel and peer.refusal in row["last_error"]
        assert row["address"].endswith("09")
        assert row["created_at"].endswith("+03:00")  # the association's time, as elsewhere

        await asyncio.to_thread(run_cli, tmp_path, "outbox", "retry", "--all", env=server.env)
        after = [i for i in await settled(observer, 15) if i.address == refused]
        assert after and all(i.status == "sent" for i in after)
        # A reply set aside no longer holds up the ones after it, so only the set is compared.
        peer.assert_delivered(after, refused, ordered=False)
        nothing = await asyncio.to_thread(run_cli, tmp_path, "outbox", "failed", env=server.env)
        assert "Nothing failed" in nothing.stdout

        # What the operator sees of all this.
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["channels"][peer.channel] == peer.link
        got = samples((await http.get("/metrics")).text)
    channel = (("channel", peer.channel),)
    delivered = [i for i in await settled(observer, 5) if i.channel == peer.channel]
    assert got[("tawasul_messages_out_total", channel)] == len(delivered)
    assert got[("tawasul_delivery_seconds_count", channel)] == len(delivered)
    assert got[("tawasul_outbox_errors_total", (*channel, ("outcome", "failed")))] == 1
    assert got[("tawasul_outbox_errors_total", (*channel, ("outcome", "retry")))] >= 4
    assert got.get(("tawasul_outbox_items", (*channel, ("status", "failed"))), 0) == 0
    connected = got.get(("tawasul_channel_connected", channel))
    assert connected == (1 if peer.link == "connected" else None)

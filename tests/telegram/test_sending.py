"""Replies leaving through the outbox: long texts, Telegram's limits, its refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from adapters.telegram import TelegramApi
from adapters.telegram.sender import Pacer
from bot.service import Service
from conversations.delivery import Delivery, RateLimited
from conversations.messages import Channel, Reply
from storage.models import Conversation, Identity, OutboxItem
from storage.repository import Tx
from tests.telegram import payloads
from tests.telegram.conftest import PDF, Running, TelegramUser, settle
from tests.telegram.fake_bot_api import TOKEN, FakeBotAPI

# The library warns about its own retry_after type when it raises RetryAfter.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LONG_ANSWER = "\n\n".join(f"فقرة {n:02d}: " + "ن" * 490 for n in range(10))  # 5,008 characters


@pytest.fixture
async def api(fake_api: FakeBotAPI) -> AsyncIterator[TelegramApi]:
    client = TelegramApi(
        TOKEN, api_base_url=fake_api.base_url, file_base_url=fake_api.file_base_url
    )
    yield client
    await client.close()


async def outbox(service: Service) -> list[OutboxItem]:
    async with service.db.session(write=False) as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.channel == Channel.TELEGRAM.value)
            .order_by(OutboxItem.id)
        )
        return list(rows)


async def wait_until_settled_outbox(service: Service, seconds: float = 10) -> list[OutboxItem]:
    """Until no Telegram reply is pending any more (retries included)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        items = await outbox(service)
        if items and all(item.status not in ("pending", "sending") for item in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("replies still pending")


async def staff_says(service: Service, text: str) -> None:
    """A reply queued as a staff member's would be, into the latest conversation."""
    async with service.db.session() as session:
        conversation = await session.scalar(
            select(Conversation).order_by(Conversation.id.desc()).limit(1)
        )
        assert conversation is not None
        await Tx(session).queue_replies(conversation, [Reply(text)], author="staff", kind="staff")
    service.outbox_wakeup.set()


async def test_a_5000_character_answer_arrives_in_two_messages_split_between_paragraphs(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    assert len(LONG_ANSWER) > 5000
    user = TelegramUser(fake_api, tg_service)
    await user.say("السلام عليكم")
    before = len(fake_api.sent(user.id))
    await staff_says(tg_service, LONG_ANSWER)
    await settle(tg_service, fake_api)
    first, second = fake_api.sent(user.id)[before:]
    assert len(first.text) <= 4096 and len(second.text) <= 4096
    assert first.text + "\n\n" + second.text == LONG_ANSWER
    assert second.text.startswith("فقرة ")
    [item] = [i for i in await outbox(tg_service) if i.parts == 2]
    assert item.status == "sent" and item.provider_id == f"{user.id}:{second.message_id}"


async def test_on_429_the_outbox_waits_retry_after(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    fake_api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    user = TelegramUser(fake_api, tg_service)
    await user.send(payloads.text(user.id, "السلام عليكم"))
    items = await wait_until_settled_outbox(tg_service)
    assert [i.status for i in items] == ["sent", "sent"]
    assert items[0].attempts == 2
    calls = fake_api.calls_of("sendMessage")
    refused = calls[0]
    [accepted] = [c for c in calls[1:] if c.params["text"] == refused.params["text"]]
    assert accepted.at - refused.at >= 0.95  # it waited what Telegram asked


async def test_a_user_who_blocked_the_bot_is_marked_unreachable_and_not_retried(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    fake_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=10)
    user = TelegramUser(fake_api, tg_service)
    await user.send(payloads.text(user.id, "السلام عليكم"))
    items = await wait_until_settled_outbox(tg_service)
    await asyncio.sleep(0.6)  # longer than the retry backoff: nothing more is tried
    items = await outbox(tg_service)
    # The first reply learns the user blocked the bot; the second is not even tried.
    assert [(i.status, i.attempts) for i in items] == [("failed", 1), ("failed", 0)]
    assert all((i.last_error or "").startswith("unreachable") for i in items)
    assert len(fake_api.calls_of("sendMessage")) == 1
    async with tg_service.db.session(write=False) as session:
        identity = await session.scalar(select(Identity).where(Identity.kind == "telegram"))
    assert identity is not None and identity.unreachable


async def test_network_errors_are_retried_with_backoff(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    fake_api.fail("sendMessage", 502, "Bad Gateway")
    user = TelegramUser(fake_api, tg_service)
    await user.send(payloads.text(user.id, "السلام عليكم"))
    items = await wait_until_settled_outbox(tg_service)
    assert [i.status for i in items] == ["sent", "sent"]
    assert items[0].attempts == 2 and items[1].attempts == 1


async def test_a_retry_after_a_half_sent_reply_sends_only_the_rest(
    fake_api: FakeBotAPI, api: TelegramApi
) -> None:
    sender = api.sender(
        share_phone_label={"ar": "مشاركة"},
        attachment_path=None,
        per_chat_per_second=100,
        overall_per_second=100,
    )
    fake_api.fail("sendMessage", 429, "Too Many Requests", retry_after=3, after=1)
    delivery = Delivery(
        outbox_id=1, channel=Channel.TELEGRAM, address="7001", reply=Reply(LONG_ANSWER)
    )
    with pytest.raises(RateLimited) as raised:
        await sender.send(delivery)
    assert raised.value.retry_after == 3
    sent = await sender.send(delivery)
    assert sent.parts == 2
    texts = [m.text for m in fake_api.sent(7001)]
    assert len(texts) == 2 and "\n\n".join(texts) == LONG_ANSWER  # no part twice


class NotedPacer(Pacer):
    """The real pacer, noting the moment it lets each request go.

    The fake server's arrival times carry the client's own delays (the first request opens
    the connection; a busy machine schedules the threads late), which can shorten a
    measured gap by tens of milliseconds: the pacer is judged by when it lets a request go.
    """

    def __init__(self, per_chat_per_second: float, overall_per_second: float) -> None:
        super().__init__(per_chat_per_second, overall_per_second)
        self.released: list[float] = []

    async def wait(self, chat_id: int) -> None:
        await super().wait(chat_id)
        self.released.append(time.monotonic())


async def test_messages_are_paced_per_chat_and_overall(
    fake_api: FakeBotAPI, api: TelegramApi
) -> None:
    sender = api.sender(
        share_phone_label={"ar": "مشاركة"},
        attachment_path=None,
        per_chat_per_second=5,
        overall_per_second=1000,
    )
    sender.pacer = per_chat = NotedPacer(5, 1000)
    for n in range(5):
        await sender.send(Delivery(n, Channel.TELEGRAM, "7001", Reply(f"رسالة {n}")))
    assert [m.text for m in fake_api.sent(7001)] == [f"رسالة {n}" for n in range(5)]
    times = per_chat.released
    # A burst of three, then five a second (the burst itself is timed in test_parsing).
    assert times[3] - times[0] >= 0.18 and times[4] - times[0] >= 0.38

    overall = api.sender(
        share_phone_label={"ar": "مشاركة"},
        attachment_path=None,
        per_chat_per_second=100,
        overall_per_second=10,
    )
    overall.pacer = whole_bot = NotedPacer(100, 10)
    for n in range(5):
        await overall.send(Delivery(10 + n, Channel.TELEGRAM, str(8000 + n), Reply("مرحبا")))
    assert len([m for m in fake_api.sent() if m.chat_id >= 8000]) == 5
    times = whole_bot.released
    assert times[-1] - times[0] >= 0.38  # five chats, but 10 a second for the whole bot


async def test_a_document_reply_is_sent_as_a_file(
    fake_api: FakeBotAPI, api: TelegramApi, tg_service: Service
) -> None:
    stored = await tg_service.files.save_bytes(
        PDF, declared_type="application/pdf", filename="القرار.pdf", max_bytes=10_000
    )
    sender = api.sender(
        share_phone_label={"ar": "مشاركة"},
        attachment_path=tg_service.files.path,
        per_chat_per_second=100,
        overall_per_second=100,
    )
    reply = Reply("مرفق قرار اللجنة", attachment=stored)
    sent = await sender.send(Delivery(1, Channel.TELEGRAM, "7001", reply))
    text, document = fake_api.sent(7001)
    assert text.text == "مرفق قرار اللجنة"
    assert document.document == ("القرار.pdf", PDF)
    assert sent.parts == 2

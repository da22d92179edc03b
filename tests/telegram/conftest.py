from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.telegram.render import pressed
from bot.channels import ChannelRuntime
from bot.channels.staff_alerts import install as install_staff_alerts
from bot.channels.telegram import install
from bot.service import Service, run_workers
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import Message, OutboxItem
from tests.conftest import make_config
from tests.telegram import payloads
from tests.telegram.fake_bot_api import TOKEN, FakeBotAPI, Sent

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def fake_api() -> Iterator[FakeBotAPI]:
    fake = FakeBotAPI().start()
    yield fake
    fake.stop()


def telegram_settings(fake: FakeBotAPI, **extra: object) -> dict[str, object]:
    return {
        "token": TOKEN,
        "api_base_url": fake.base_url,
        "file_base_url": fake.file_base_url,
        # Fast enough for a test; the pacing itself has its own test.
        "per_chat_per_second": 200,
        "global_per_second": 1000,
        **extra,
    }


async def make_service(
    tmp: Path,
    fake: FakeBotAPI,
    *,
    storage: dict[str, object] | None = None,
    **telegram: object,
) -> Service:
    service = Service(
        make_config(
            tmp,
            telegram=telegram_settings(fake, **telegram),
            outbox={"base_delay_seconds": 0.2, "poll_seconds": 0.1},
            storage=storage or {},
        )
    )
    await upgrade(service.db.engine)
    return service


@pytest.fixture
async def tg_service(tmp_path: Path, fake_api: FakeBotAPI) -> AsyncIterator[Service]:
    service = await make_service(tmp_path, fake_api)
    yield service
    await service.close()


class Running:
    """The Telegram channel and the workers, as `tawasul serve` runs them."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.runtime = ChannelRuntime()
        install(service, self.runtime)
        install_staff_alerts(service, self.runtime)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Running:
        self.tasks.append(
            asyncio.create_task(run_workers(self.service, self.stop, self.runtime.senders))
        )
        self.tasks += [asyncio.create_task(task(self.stop)) for task in self.runtime.tasks]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)
        for close in self.runtime.closers:
            await close()


@pytest.fixture
async def polling(tg_service: Service) -> AsyncIterator[Running]:
    async with Running(tg_service) as running:
        yield running


async def idle(service: Service) -> bool:
    """Every stored message processed and every due reply handed to Telegram."""
    async with service.db.session(write=False) as session:
        waiting = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.direction == "in", Message.processed_at.is_(None))
        )
        due = await session.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(
                OutboxItem.channel == Channel.TELEGRAM.value,
                (OutboxItem.status == "sending")
                | (
                    (OutboxItem.status == "pending")
                    & (OutboxItem.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=0.5))
                ),
            )
        )
    return waiting == 0 and due == 0


async def settle(service: Service, fake: FakeBotAPI, seconds: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if fake.unconfirmed() == 0 and await idle(service):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the bot did not finish in time")


Transport = Callable[[dict[str, Any]], Awaitable[None]]


class TelegramUser:
    """A beneficiary in a private chat with the bot, through the fake Bot API."""

    def __init__(
        self,
        fake: FakeBotAPI,
        service: Service,
        user_id: int = 7001,
        transport: Transport | None = None,
    ) -> None:
        self.fake = fake
        self.service = service
        self.id = user_id
        self.transport = transport or self._poll
        self.seen = 0
        self.replies: list[Sent] = []

    async def _poll(self, update: dict[str, Any]) -> None:
        self.fake.push(update)

    async def send(self, update: dict[str, Any]) -> list[Sent]:
        await self.transport(update)
        await settle(self.service, self.fake)
        messages = self.fake.sent(self.id)
        self.replies = messages[self.seen :]
        self.seen = len(messages)
        return self.replies

    async def say(self, body: str) -> list[Sent]:
        return await self.send(payloads.text(self.id, body))

    async def press(self, label_or_value: str) -> list[Sent]:
        """Press the newest inline button with this label or value."""
        for sent in reversed(self.fake.sent(self.id)):
            for button in sent.buttons:
                value = pressed(button["callback_data"])[1]
                if label_or_value in (button["text"], button["callback_data"], value):
                    update = payloads.callback(
                        self.id, sent.as_update_message(), button["callback_data"]
                    )
                    return await self.send(update)
        raise AssertionError(f"no button {label_or_value!r} in the chat")

    async def upload(
        self, data: bytes, *, name: str, mime: str, file_id: str, tell_size: bool = True
    ) -> list[Sent]:
        self.fake.add_file(file_id, data, f"documents/{file_id}.bin")
        size = len(data) if tell_size else None
        return await self.send(payloads.document(self.id, file_id, name=name, mime=mime, size=size))

    async def start_request(self) -> list[Sent]:
        """/start, the support request from the menu, and its privacy notice agreed to."""
        await self.say("/start")
        await self.press("apply")
        return await self.press("yes")

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.replies)

    @property
    def last(self) -> Sent:
        assert self.replies, "the bot said nothing"
        return self.replies[-1]

    def button_values(self) -> list[str]:
        """The values of the last message's buttons (without the offer's number)."""
        return [pressed(b["callback_data"])[1] for b in self.last.buttons]

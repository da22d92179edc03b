"""What the Telegram channel tells about a message it cannot read goes out in the
conversation's order, after the answers to the messages before it."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select
from telegram import Update

from adapters.telegram.updates import parse_update
from bot.channels.telegram.channel import TelegramChannel
from bot.service import Service
from storage.models import Message
from tests.telegram import payloads


async def test_a_sticker_is_answered_after_the_greeting_before_it(tg_service: Service) -> None:
    channel = TelegramChannel(tg_service, cast(Any, None))  # no call to Telegram's API here
    user_id = 4242
    for update in (
        payloads.text(user_id, "السلام عليكم", update_id=1),
        payloads.sticker(user_id) | {"update_id": 2},
    ):
        await channel.handle(parse_update(Update.de_json(update, None)))
    # Both stored; the greeting's step has not run yet when the sticker arrives.
    await tg_service.process_pending()
    async with tg_service.db.session(write=False) as session:
        texts = list(
            await session.scalars(
                select(Message.text).where(Message.direction == "out").order_by(Message.id)
            )
        )
    unsupported = tg_service.catalog.text("ar", "channel.unsupported")
    assert len(texts) >= 2 and texts[0] != unsupported
    assert texts[-1] == unsupported
    async with tg_service.db.session(write=False) as session:
        incoming = await session.scalar(
            select(Message.id).where(Message.direction == "in", Message.processed_at.is_(None))
        )
    assert incoming is None  # both processed, the sticker too

"""Staff decisions told to the beneficiary while a step of the conversation is under way."""

from __future__ import annotations

import asyncio

import pytest

from bot.service import Service
from conversations.messages import Channel, Inbound
from conversations.ports import RequestStatus
from storage.models import Conversation
from storage.repository import Tx
from tests.conftest import Chat
from tests.test_engine import fill_support_request


@pytest.mark.parametrize("status", [RequestStatus.NEEDS_INFO, RequestStatus.CLOSED])
async def test_a_status_change_waits_for_a_step_under_way_and_keeps_what_it_saved(
    service: Service, status: RequestStatus
) -> None:
    """A researcher asks for more information (or closes the request, which asks for a
    rating) while the bot's step on the beneficiary's message holds the conversation (on
    PostgreSQL it embeds the question inside that transaction). The decision waits for the
    step and builds on the state it saved: the step's change (here, the language the
    beneficiary chose) is not overwritten by the state read before it."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="77")
    ref = await fill_support_request(chat)
    message_id = await service.receive(
        Inbound(Channel.TELEGRAM, "77", "English please", channel_message_id="tg-77-x")
    )
    assert message_id is not None
    async with service.db.session() as step:
        claimed = await Tx(step).claim_inbound(message_id)
        assert claimed is not None
        conversation_id = claimed.conversation.id
        before = dict(claimed.conversation.state or {})
        staff = asyncio.create_task(
            service.change_request_status(ref, status, actor="researcher", note="صورة العقد")
        )
        await asyncio.sleep(1.0)  # the decision has begun, and waits for the step
        assert not staff.done()
        await Tx(step).save_step(
            claimed,
            state={**before, "lang": "en"},
            status=claimed.conversation.status,
            replies=[],
        )
    await asyncio.wait_for(staff, 10)
    async with service.db.session(write=False) as s:
        conversation = await s.get(Conversation, conversation_id)
        assert conversation is not None
        state = conversation.state or {}
    assert before.get("lang") != "en"
    assert state.get("lang") == "en", "the step's saved state was overwritten"
    if status is RequestStatus.NEEDS_INFO:
        assert state.get("info_request") == ref  # and the decision's own change is there

"""Guessing the last four digits behind a request reference is limited per sender and per
reference across conversations, and every wrong answer is logged without the digits or the
reference in clear."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel
from storage.migrate import upgrade
from storage.models import Conversation
from storage.verification import StatusCheckFailure
from tests.conftest import WORKING_TIME, Chat, make_config, valid_national_id
from tests.test_engine import fill_support_request

NID = valid_national_id("112233445")
LIMITS = {
    "status_attempts": 3,
    "status_sender_attempts": 5,
    "status_reference_attempts": 8,
    "status_window_minutes": 60,
    "status_lock_minutes": 30,
}


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Service]:
    service = Service(make_config(tmp_path, engine=LIMITS))
    await upgrade(service.db.engine)
    yield service
    await service.close()


def locked_text(service: Service, minutes: int) -> str:
    return service.catalog.text(
        "ar", "status.locked", minutes=service.catalog.minutes("ar", minutes)
    )


async def ask(chat: Chat, reference: str, digits: str) -> str:
    """Ask for a request's status; everything the bot said from the reference on."""
    await chat.say("القائمة")
    await chat.say("٣")
    await chat.say(reference)
    said = chat.text
    await chat.say(digits)
    return said + "\n" + chat.text


async def close_open_conversations(service: Service) -> None:
    async with service.db.session(write=False) as session:
        ids = list(
            await session.scalars(
                # Those with staff or waiting for them: the bot's own are not "closed".
                select(Conversation.id).where(Conversation.status.in_(("queued", "staff")))
            )
        )
    for conversation_id in ids:
        await service.close_conversation(conversation_id, actor="test")


async def test_new_conversations_and_other_references_do_not_reset_the_count(
    guarded: Service,
) -> None:
    reference = await fill_support_request(Chat(guarded, sender="owner"), nid=NID)
    guesser = Chat(guarded, channel=Channel.WEBCHAT, sender="guesser-session-0000000")
    await guesser.say("مرحبا")
    for digits in ("0000", "1111", "2222"):  # three in one conversation: staff step in
        said = await ask(guesser, reference, digits)
    assert "سيتواصل معك أحد الموظفين" in said
    await close_open_conversations(guarded)
    # A new conversation, and another reference: the sender's count goes on.
    assert "تعذّر" in await ask(guesser, "SR-1447-09999", "3333")
    assert locked_text(guarded, 30) in await ask(guesser, reference, "4444")  # the fifth
    # Even the right digits are not checked now, on any reference.
    said = await ask(guesser, reference, NID[-4:])
    assert locked_text(guarded, 30) in said and "تم الاستلام" not in said
    said = await ask(guesser, "SR-1447-00002", NID[-4:])
    assert locked_text(guarded, 30) in said
    # The owner, on their own channel, is not affected.
    owner = Chat(guarded, sender="owner")
    await owner.say("القائمة")
    await owner.say("٣")
    assert reference in owner.text
    # Once the pause is over, the right answer is accepted again.
    later = Chat(
        guarded,
        channel=Channel.WEBCHAT,
        sender="guesser-session-0000000",
        now=WORKING_TIME + timedelta(minutes=31),
    )
    assert reference in await ask(later, reference, NID[-4:])


async def test_many_senders_guessing_one_reference_are_stopped(guarded: Service) -> None:
    reference = await fill_support_request(Chat(guarded, sender="owner"), nid=NID)
    for n in range(8):  # each sender stays under its own limit
        guesser = Chat(guarded, channel=Channel.WEBCHAT, sender=f"guesser-{n:02d}-session-0000")
        await guesser.say("مرحبا")
        await ask(guesser, reference, f"{n:04d}")
    fresh = Chat(guarded, channel=Channel.WEBCHAT, sender="one-more-session-0000000")
    await fresh.say("مرحبا")
    said = await ask(fresh, reference, NID[-4:])
    assert "تم الاستلام" not in said
    assert re.search(r"\d+ دقيقة", said)
    # Another reference is still checked for that sender.
    assert "تعذّر" in await ask(fresh, "SR-1447-09999", "1234")


async def test_each_wrong_answer_is_logged_without_digits_or_reference(guarded: Service) -> None:
    reference = await fill_support_request(Chat(guarded, sender="owner"), nid=NID)
    guesser = Chat(guarded, channel=Channel.WEBCHAT, sender="guesser-session-0000000")
    await guesser.say("مرحبا")
    with structlog.testing.capture_logs() as logs:
        await ask(guesser, reference, "9876")
        await ask(guesser, "SR-1447-09999", "5432")
    failures = [e for e in logs if e["event"] == "status.check_failed"]
    assert len(failures) == 2
    rendered = repr(logs)
    for secret in (reference, "9876", "5432", "SR-1447-09999", NID):
        assert secret not in rendered
    async with guarded.db.session(write=False) as session:
        rows = list(await session.scalars(select(StatusCheckFailure)))
    assert [r.request_id is not None for r in rows] == [True, False]  # the real one is known
    assert failures[0]["request_id"] == rows[0].request_id
    assert len({r.identity_id for r in rows}) == 1 and rows[0].identity_id > 0
    for row in rows:
        assert reference not in row.reference_hash and len(row.reference_hash) == 32

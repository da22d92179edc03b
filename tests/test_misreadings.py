"""What a beneficiary sends must not be read as something else: an old button as the current
answer, an ID as a reference, "3 thousand" as 3, "Good morning" as a rating."""

from __future__ import annotations

import os
from typing import Any

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.fields import Parsed, parse_integer
from conversations.messages import Channel, Inbound, Reply
from conversations.ports import RequestStatus
from storage.models import Conversation, SurveyAnswer
from tests.conftest import WORKING_TIME, Chat, valid_national_id
from tests.test_engine import closed_with_staff, fill_support_request, pdf, to_the_summary


async def press(chat: Chat, reply: Reply, value: str) -> list[Reply]:
    """A button of ``reply`` pressed (Telegram: its label as text, its offer's number)."""
    choice = next(c for c in reply.choices if c.value == value)
    assert reply.offer is not None
    msg = Inbound(
        channel=chat.channel,
        sender_id=chat.sender,
        text=choice.label,
        offer=reply.offer,
        channel_message_id=f"press-{os.urandom(4).hex()}",
        received_at=WORKING_TIME,
    )
    chat.replies = [d.reply for d in await chat.service.handle(msg)]
    return chat.replies


async def state(service: Service) -> dict[str, Any]:
    async with service.db.session(write=False) as s:
        found = await s.scalar(select(Conversation.state).order_by(Conversation.id.desc()))
    assert found is not None
    return dict(found)


async def three_answers_in(chat: Chat) -> None:
    await chat.say("السلام عليكم")
    await chat.say("٢")
    await chat.say("١")
    for answer in ("محمد عبدالله القحطاني", valid_national_id(), "0551234567"):
        await chat.say(answer)


# -- old buttons -----------------------------------------------------------------------------


async def test_a_second_tap_on_agree_is_not_the_name(service: Service) -> None:
    chat = Chat(service, channel=Channel.TELEGRAM, sender="tap-twice")
    await chat.say("السلام عليكم")
    await press(chat, chat.last, "apply")
    intro = chat.last
    await press(chat, intro, "yes")
    assert "(1/" in chat.last.text  # the name, asked with no button
    await press(chat, intro, "yes")
    assert chat.replies[0].key == "old_button"
    assert "full_name" not in (await state(service))["draft"]["answers"]


async def test_an_old_button_is_not_the_information_staff_asked_for(service: Service) -> None:
    chat = Chat(service, channel=Channel.TELEGRAM, sender="old-menu")
    ref = await fill_support_request(chat)
    await chat.say("القائمة")
    old_menu = chat.last
    await chat.say("ما هي المستندات المطلوبة للتقديم؟")
    await service.change_request_status(ref, RequestStatus.NEEDS_INFO, actor="staff", note="x")
    await press(chat, old_menu, "volunteer")
    assert [r.key for r in chat.replies] == ["old_button"]
    assert (await state(service))["info_request"] == ref  # still waiting for it


async def test_an_old_cancel_does_not_throw_the_form_away(service: Service) -> None:
    chat = Chat(service, channel=Channel.TELEGRAM, sender="old-cancel")
    await chat.say("السلام عليكم")
    await press(chat, chat.last, "apply")
    intro = chat.last
    await press(chat, intro, "yes")
    for answer in ("محمد عبدالله القحطاني", valid_national_id(), "0551234567"):
        await chat.say(answer)
    await press(chat, intro, "cancel")
    assert chat.replies[0].key == "old_button"
    assert (await state(service))["draft"] is not None


async def test_the_same_question_asked_again_keeps_its_buttons(service: Service) -> None:
    chat = Chat(service, channel=Channel.TELEGRAM, sender="reask")
    await chat.say("السلام عليكم")
    await press(chat, chat.last, "apply")
    intro = chat.last
    await chat.say("مساعدة")  # help: the introduction is shown again
    await press(chat, intro, "yes")  # the first copy's button, a little higher up
    assert "(1/" in chat.last.text


# -- forms -----------------------------------------------------------------------------------


async def test_the_switch_offer_outlives_an_aside(chat: Chat) -> None:
    await three_answers_in(chat)
    await chat.say("القائمة")
    await chat.say("٦")
    await chat.say("مساعدة")
    assert chat.last.key == "form.switch"


async def test_my_data_asks_before_a_half_filled_form_is_thrown_away(chat: Chat) -> None:
    await three_answers_in(chat)
    await chat.say("القائمة")
    await chat.say("بياناتي")
    assert chat.last.key == "form.switch"


async def test_a_file_kept_during_a_correction_stays_after_back(service: Service) -> None:
    chat = Chat(service, sender="keep")
    await to_the_summary(chat, housing="ملك")
    await chat.say("تعديل إجابة")
    await chat.say("السكن")
    await chat.say("إيجار", attachments=[await pdf(service, "lease.pdf")])
    assert "attachment.kept" in [r.key for r in chat.replies]
    await chat.say("رجوع")
    documents = (await state(service))["draft"]["answers"]["documents"]["value"]
    assert [d["filename"] for d in documents] == ["id.pdf", "lease.pdf"]


async def test_the_last_file_sent_with_done_is_kept(service: Service) -> None:
    chat = Chat(service, sender="caption-done")
    await three_answers_in(chat)
    for answer in ("الرياض", "٥", "٣٠٠٠", "ملك", "١", "نحتاج مساعدة"):
        await chat.say(answer)
    await chat.say(attachments=[await pdf(service, "a.pdf")])
    await chat.say("تم", attachments=[await pdf(service, "b.pdf")])
    draft = (await state(service))["draft"]
    assert [d["filename"] for d in draft["answers"]["documents"]["value"]] == ["a.pdf", "b.pdf"]
    assert draft["phase"] == "summary"


# -- numbers and references ------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["٣ آلاف ريال", "12 ألف سنويا", "الايجار السنوي 18000", "راتب تقاعدي من 2015"]
)
def test_a_number_whose_words_change_it_is_not_taken_alone(typed: str) -> None:
    assert not isinstance(parse_integer(typed, minimum=0, maximum=1_000_000), Parsed)


async def test_an_id_in_a_sentence_is_not_taken_for_a_reference(chat: Chat) -> None:
    await chat.say("hello")
    await chat.say("my id is 1412345678")
    assert chat.last.key != "status.ask_last4"


# -- the rating ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "rating"),
    [
        ("Good morning", None),
        ("ماكانت الخدمة ممتازة", None),
        ("مهي ممتازة", None),
        ("الخدمة جيدة جدا", 4),
        ("excellent service thanks", 5),
    ],
)
async def test_a_rating_in_a_sentence_is_read_word_by_word(
    service: Service, said: str, rating: int | None
) -> None:
    chat = await closed_with_staff(service, f"rated-{said}")
    await chat.say(said)
    async with service.db.session() as s:
        found = list(await s.scalars(select(SurveyAnswer.rating)))
    assert found == ([] if rating is None else [rating])


@pytest.mark.parametrize("thanks", ["ok thanks", "thank you", "Thanks!"])
async def test_a_thank_you_in_english_does_not_switch_an_arabic_conversation(
    service: Service, thanks: str
) -> None:
    chat = Chat(service, sender=f"thanks-{len(thanks)}")
    await chat.say("السلام عليكم")
    await chat.say("وش المستندات المطلوبة للتقديم؟")
    await chat.say(thanks)
    assert chat.last.lang == "ar" and "كيف يمكننا" in chat.text
    await chat.say("وش الشروط؟")
    assert chat.last.lang == "ar"


@pytest.mark.parametrize("emoji", ["🙏🙏", "👍", "🌹🌹🌹"])
async def test_emoji_alone_is_not_a_question_nobody_understood(
    service: Service, emoji: str
) -> None:
    """Two misses in a row hand the person over: an emoji between them is not one."""
    chat = Chat(service, sender=f"emoji-{emoji}")
    await chat.say("السلام عليكم")
    await chat.say("كيكي بوبو زززز")
    assert chat.last.key == "not_understood"
    await chat.say(emoji)
    assert [r.key for r in chat.replies] == ["menu.prompt"]
    async with service.db.session(write=False) as s:
        assert await s.scalar(select(Conversation.status)) == "bot"


async def test_no_income_in_words_answers_the_monthly_income(service: Service) -> None:
    chat = Chat(service, sender="no-income")
    for said in ["السلام عليكم", "٢", "١", "محمد عبدالله", valid_national_id(), "0551234567"]:
        await chat.say(said)
    await chat.say("الرياض")
    await chat.say("٥")
    await chat.say("ما عندي دخل")
    assert "(7/10)" in chat.text, chat.text  # on to the housing question

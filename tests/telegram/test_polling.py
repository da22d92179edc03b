"""Conversations over Telegram in long-polling mode, against the local Bot API server."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from sqlalchemy import func, select

from adapters.telegram.render import pressed
from bot.service import Service
from conversations.messages import Channel
from staff.i18n import translator
from storage.models import Conversation, Identity, Message, Request
from tests.conftest import Chat, valid_national_id
from tests.telegram import payloads
from tests.telegram.conftest import PDF, Running, TelegramUser, make_service, settle
from tests.telegram.fake_bot_api import FakeBotAPI


def attachment_files(service: Service) -> list[Path]:
    root = service.config.storage.attachments_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def count_inbound(service: Service) -> int:
    async with service.db.session(write=False) as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "in")
            )
            or 0
        )


async def test_commands_are_published_in_arabic_and_english(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    await user.say("/start")
    names = {lang: [c["command"] for c in cmds] for lang, cmds in fake_api.commands.items()}
    assert names["ar"] == names["en"] == names[""] == ["start", "menu", "cancel", "help", "lang"]
    described = {c["command"]: c["description"] for c in fake_api.commands["en"]}
    assert described["menu"] == "Main menu"
    assert fake_api.commands["ar"][1]["description"] == "القائمة الرئيسية"
    # Polling clears any webhook first, or getUpdates would be refused.
    assert fake_api.calls_of("deleteWebhook")


async def test_a_full_support_request_with_buttons_and_a_pdf(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    await user.say("/start")
    assert "apply" in user.button_values()
    await user.press("apply")
    assert "الخصوصية" in user.text
    await user.press("yes")
    await user.say("محمد عبدالله القحطاني")
    await user.say(valid_national_id())
    await user.say("0551234567")
    await user.say("الرياض")
    await user.say("5")
    await user.say("3000")
    await user.press("rent")
    await user.say("1500")
    await user.press(user.button_values()[0])  # the first kind of support
    await user.say("نحتاج مساعدة في دفع الإيجار المتأخر")
    # The form allows 10 MB a file: a bigger one is refused before it is downloaded.
    big = b"%PDF-1.4\n" + b"0" * (11 * 1024 * 1024)
    await user.upload(big, name="big.pdf", mime="application/pdf", file_id="big")
    # Told why, in one message with the documents question asked again.
    too_large = tg_service.catalog.text("ar", "channel.too_large", max="10")
    assert user.text.startswith(too_large) and "(11/11)" in user.text
    assert fake_api.calls_of("getFile") == []
    await user.upload(PDF, name="عقد الإيجار.pdf", mime="application/pdf", file_id="pdf-1")
    assert "done" in user.button_values()
    await user.press("done")
    assert "محمد عبدالله القحطاني" in user.text
    await user.press("تأكيد وإرسال")
    assert "الإقرار" in user.text
    await user.press("yes")
    assert "SR-" in user.text

    async with tg_service.db.session(write=False) as session:
        request = await session.scalar(select(Request))
    assert request is not None and request.reference in user.text
    stored = attachment_files(tg_service)
    assert len(stored) == 1 and stored[0].read_bytes() == PDF
    # Every press was answered (the spinner stops) and its buttons taken away.
    assert len(fake_api.calls_of("answerCallbackQuery")) == 7
    assert len(fake_api.calls_of("editMessageReplyMarkup")) >= 7


async def test_an_update_delivered_twice_is_handled_once(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    update = payloads.text(user.id, "السلام عليكم", update_id=fake_api.new_update_id())
    await user.send(update)
    first = len(fake_api.sent(user.id))
    assert first > 0
    await user.send(copy.deepcopy(update))
    assert len(fake_api.sent(user.id)) == first
    assert await count_inbound(tg_service) == 1


async def test_voice_sticker_and_location_get_a_polite_reply_and_the_form_waits(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    await user.start_request()
    question = user.last.text
    for update in (payloads.voice(user.id), payloads.sticker(user.id), payloads.location(user.id)):
        replies = await user.send(update)
        # Told, then asked again what the form waits for.
        unsupported = tg_service.catalog.text("ar", "channel.unsupported")
        assert [r.text for r in replies] == [unsupported, question]
    await user.say("محمد عبدالله القحطاني")  # the name step was still waiting
    assert "(2/" in user.text and user.text != question
    assert await count_inbound(tg_service) == 7  # nothing lost: the voice note is in the history


async def test_a_file_too_large_is_refused_and_nothing_is_kept(
    tmp_path: Path, fake_api: FakeBotAPI
) -> None:
    service = await make_service(tmp_path, fake_api, storage={"max_attachment_mb": 1})
    try:
        async with Running(service):
            user = TelegramUser(fake_api, service)
            await user.say("/start")
            big = b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024)
            too_large = service.catalog.text("ar", "channel.too_large", max="1")
            await user.upload(big, name="big.pdf", mime="application/pdf", file_id="big-1")
            assert user.text == too_large
            assert fake_api.calls_of("getFile") == []  # Telegram told the size: no download
            # Without a size in the update, the download itself is stopped at the limit.
            await user.upload(
                big, name="big.pdf", mime="application/pdf", file_id="big-2", tell_size=False
            )
            assert user.text == too_large
            await user.upload(
                b"MZ\x90\x00", name="setup.exe", mime="application/x-msdownload", file_id="x"
            )
            assert "PDF" in user.text
            assert attachment_files(service) == []
            assert await count_inbound(service) == 4  # each kept in the history, answered
    finally:
        await service.close()


async def test_a_button_of_an_earlier_question_does_not_answer_the_current_one(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    await user.start_request()
    for answer in ("محمد عبدالله القحطاني", valid_national_id(), "0551234567", "الرياض", "5"):
        await user.say(answer)
    await user.say("3000")
    await user.press("rent")
    await user.say("1500")
    kinds = user.last  # the kinds of support, as buttons
    message, buttons = kinds.as_update_message(), kinds.buttons
    data = buttons[0]["callback_data"]
    await user.send(payloads.callback(user.id, message, data))
    asked = user.text  # what the situation is, in the person's words
    # A second tap on the same button, before its keyboard went away: it must not become
    # the description of the family's situation.
    await user.send(payloads.callback(user.id, message, data))
    stale = tg_service.catalog.text("ar", "old_button")
    assert user.replies[0].text == stale and user.last.text == asked
    # An old keyboard further up the chat, pressed now: the same.
    await user.send(payloads.callback(user.id, message, buttons[1]["callback_data"]))
    assert user.replies[0].text == stale
    await user.say("نحتاج مساعدة في دفع الإيجار المتأخر")
    assert "(11/11)" in user.text  # on to the documents
    async with tg_service.db.session(write=False) as session:
        state = await session.scalar(select(Conversation.state).order_by(Conversation.id.desc()))
    answers = state["draft"]["answers"]
    assert [a["value"] for a in answers.values()].count("نحتاج مساعدة في دفع الإيجار المتأخر") == 1
    assert buttons[0]["text"] not in [a["value"] for a in answers.values()]


async def test_sharing_the_phone_joins_the_whatsapp_history(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    whatsapp = Chat(tg_service, channel=Channel.WHATSAPP, sender="+966501234567")
    await whatsapp.say("السلام عليكم")

    user = TelegramUser(fake_api, tg_service)
    await user.start_request()
    await user.say("محمد عبدالله القحطاني")
    await user.say(valid_national_id())
    asking = user.last
    keys = asking.markup["keyboard"]
    assert keys[0][0]["request_contact"] is True
    assert keys[0][0]["text"] == tg_service.catalog.text("ar", "channel.share_phone")

    await user.send(payloads.contact(user.id, "966501234567", owner=user.id))
    assert "(4/" in user.text  # the mobile step took the shared number
    # The phone key goes away with the next message; its own buttons are put on right after.
    assert user.replies[0].sent_markup == {"remove_keyboard": True}
    buttons = user.replies[0].buttons
    assert [(b["text"], pressed(b["callback_data"])[1]) for b in buttons] == [("رجوع", "back")]

    async with tg_service.db.session(write=False) as session:
        rows = await session.execute(select(Identity.kind, Identity.beneficiary_id))
        owners = {kind: beneficiary for kind, beneficiary in rows}
        histories = set(await session.scalars(select(Message.beneficiary_id)))
    assert owners["telegram"] == owners["phone"]
    assert histories == {owners["phone"]}  # one person, one history


async def test_edits_and_groups_are_ignored(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service)
    assert await user.send(payloads.edited(user.id, "تعديل")) == []
    assert await user.send(payloads.group_text(user.id, -1001, "مرحبا")) == []
    assert fake_api.sent() == []
    assert await count_inbound(tg_service) == 0


async def test_the_offset_survives_a_restart(tmp_path: Path, fake_api: FakeBotAPI) -> None:
    service = await make_service(tmp_path, fake_api)
    try:
        user = TelegramUser(fake_api, service)
        async with Running(service):
            await user.say("السلام عليكم")
        fake_api.push(payloads.text(user.id, "القائمة"))
        async with Running(service):
            await settle(service, fake_api)
        offsets = [int(c.params.get("offset") or 0) for c in fake_api.calls_of("getUpdates")]
        assert offsets[0] == 0 and min(offsets[1:]) > 0  # the second run began where it stopped
        assert await count_inbound(service) == 2
    finally:
        await service.close()


async def test_new_handoffs_are_announced_in_the_staff_group(
    tmp_path: Path, fake_api: FakeBotAPI
) -> None:
    group = -1005000
    service = await make_service(
        tmp_path, fake_api, staff_group_id=group, public_base_url="https://bot.example.org"
    )
    try:
        async with Running(service):
            user = TelegramUser(fake_api, service)
            await user.say("/start")
            assert fake_api.sent(group) == []
            await user.press("staff")
            for _ in range(100):
                if fake_api.sent(group):
                    break
                await asyncio.sleep(0.05)
            async with service.db.session(write=False) as session:
                queued = await session.scalar(
                    select(Conversation.id).where(Conversation.status == "queued")
                )
            [announcement] = fake_api.sent(group)
            for lang in ("ar", "en"):
                t = translator(lang)
                assert t("alert.waiting", conversation=queued) in announcement.text
                assert t("channel.telegram") in announcement.text
            assert f"https://bot.example.org/staff/conversations/{queued}" in announcement.text
            # What staff write in their group is not a beneficiary's message.
            assert await user.send(payloads.group_text(user.id, group, "سأتولاها")) == []
            assert fake_api.sent(group) == [announcement]
    finally:
        await service.close()


async def test_an_update_the_library_cannot_read_does_not_hold_the_others(
    fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    """A kind of update newer than the library (here a poll without a field it requires) used
    to fail the whole batch, fetched again and again: nobody on Telegram was answered."""
    user = TelegramUser(fake_api, tg_service)
    poll = {
        "id": "1",
        "question": "?",
        "options": [],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    }
    fake_api.push(payloads.message(user.id, poll=poll))
    replies = await user.say("السلام عليكم")
    assert replies  # answered, after the unreadable update
    assert await count_inbound(tg_service) == 1

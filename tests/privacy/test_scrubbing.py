"""Whole conversations on every channel, failures included: no log line and no stored error
holds a national ID, a phone number, an email address or the words the beneficiary wrote."""

from __future__ import annotations

from sqlalchemy import select

from bot.service import Service
from storage.models import OutboxItem
from tests.conftest import Chat, valid_national_id
from tests.email.conftest import Beneficiary, RunningBot
from tests.privacy.conftest import Logs, phone_forms, secrets_in, stored_errors
from tests.telegram import payloads
from tests.telegram.conftest import Running, TelegramUser
from tests.telegram.fake_bot_api import FakeBotAPI
from tests.test_engine import fill_support_request
from tests.twilio.conftest import Phone, TwilioSetup
from tests.twilio.fake import FakeError

NID = valid_national_id("112233445")
MOBILE = "+966551234567"
OTHER_MOBILE = "+966509876543"
EMAIL = "amal.alharbi@example.org"
NAME = "محمد عبدالله القحطاني"
DESCRIPTION = "نحتاج مساعدة في دفع الإيجار المتأخر"
QUESTION = "هل يمكن أن ترسلوا لي الرد على بريدي"


def forbidden(*extra: str) -> list[str]:
    return [
        NID,
        NID.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        *phone_forms(MOBILE),
        *phone_forms(OTHER_MOBILE),
        EMAIL,
        NAME,
        DESCRIPTION,
        QUESTION,
        *extra,
    ]


async def assert_nothing_leaked(logs: Logs, service: Service, *extra: str) -> None:
    lines = logs.lines()
    errors = await stored_errors(service)
    assert lines, "the scenario logged nothing: the capture is not working"
    assert secrets_in(lines, forbidden(*extra)) == []
    assert secrets_in(errors, forbidden(*extra)) == []


async def test_console_support_request_and_free_text(logs: Logs, service: Service) -> None:
    chat = Chat(service, sender="beneficiary-1")
    reference = await fill_support_request(chat, nid=NID)
    await chat.say(f"{QUESTION} {EMAIL} أو على جوالي ٠٥٠٩٨٧٦٥٤٣")
    await chat.say(command="menu")
    await chat.say("٣")  # request status: asks for the reference and the ID
    await chat.say(reference)
    await chat.say(NID[-4:])
    assert reference.startswith("SR-")
    await assert_nothing_leaked(logs, service)


async def test_whatsapp_support_request_with_a_retried_delivery(
    logs: Logs, twilio_setup: TwilioSetup
) -> None:
    setup, fake = twilio_setup, twilio_setup.fake
    fake.errors.append(FakeError(503, 20503, "Service Unavailable"))
    phone = Phone(setup, MOBILE)
    await phone.say("السلام عليكم")
    async with setup.service.db.session() as s:  # the failed reply is due again now
        for item in await s.scalars(select(OutboxItem).where(OutboxItem.status == "pending")):
            item.next_attempt_at = item.created_at
    await setup.run()
    for text in ("٢", "١", NAME, NID, OTHER_MOBILE, "الرياض", "٥", "٣٠٠٠", "إيجار", "١٥٠٠", "١"):
        await phone.say(text)
    await phone.say(DESCRIPTION)
    await phone.say(f"{QUESTION} {EMAIL}")
    outbox = await setup.outbox()
    assert any(item.attempts > 1 and item.status == "sent" for item in outbox)
    await assert_nothing_leaked(logs, setup.service)


async def test_twilio_error_texts_that_name_the_number_are_not_stored(
    logs: Logs, twilio_setup: TwilioSetup
) -> None:
    twilio_setup.fake.errors.append(
        FakeError(400, 21211, f"The 'To' number {MOBILE} is not a valid phone number.")
    )
    await Phone(twilio_setup, MOBILE, whatsapp=False).say("مرحبا")
    (item, *_) = await twilio_setup.outbox()
    assert item.status == "failed" and "21211" in (item.last_error or "")
    await assert_nothing_leaked(logs, twilio_setup.service)


async def test_telegram_with_a_shared_contact_and_a_blocked_bot(
    logs: Logs, fake_api: FakeBotAPI, polling: Running, tg_service: Service
) -> None:
    user = TelegramUser(fake_api, tg_service, user_id=7301)
    await user.say("/start")
    await user.press("apply")
    await user.press("yes")
    await user.say(NAME)
    await user.say(NID)
    await user.send(payloads.contact(user.id, MOBILE.removeprefix("+"), owner=user.id))
    await user.say(f"{QUESTION} {EMAIL} {OTHER_MOBILE}")
    fake_api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=3)
    await user.say(DESCRIPTION)
    await assert_nothing_leaked(logs, tg_service, str(user.id))


async def test_email_exchange(logs: Logs, running: tuple[RunningBot, Beneficiary]) -> None:
    runner, amal = running
    await amal.write(f"السلام عليكم\n{QUESTION}\nجوالي {MOBILE} وهويتي {NID}", subject=NAME)
    assert await amal.answers()
    await amal.reply(DESCRIPTION)
    assert await amal.answers()
    await assert_nothing_leaked(logs, runner.service, amal.address, amal.bot)

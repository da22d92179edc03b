"""WhatsApp and SMS end to end: signed webhooks in, the real twilio client out to a fake
Twilio REST server, through the real service and database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from adapters.twilio import sms_parts
from bot.app import create_app
from bot.channels.twilio import INBOUND_PATH, STATUS_PATH
from bot.service import Service
from conversations.delivery import Delivery, Sent
from conversations.messages import Channel, Inbound
from conversations.ports import RequestStatus
from storage.followup import request_info
from storage.models import Document, Identity, Message, OutboxItem, ProviderReport, Request
from tests.conftest import WORKING_TIME, Chat, valid_national_id
from tests.security.images import metadata_of
from tests.test_engine import fill_support_request
from tests.twilio.conftest import (
    ID_PHOTO,
    PUBLIC_URL,
    SMS_FROM,
    WHATSAPP_FROM,
    Phone,
    TwilioSetup,
    sign,
    twilio_form,
)
from tests.twilio.fake import ACCOUNT_SID, FakeError

NUMBER = "+966551234567"


async def count(setup: TwilioSetup, model: type) -> int:
    async with setup.service.db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def identity(setup: TwilioSetup, number: str = NUMBER) -> Identity:
    async with setup.service.db.session(write=False) as s:
        found = await s.scalar(select(Identity).where(Identity.lookup("phone", number)))
    assert found is not None
    return found


async def whatsapp_support_request(phone: Phone) -> str:
    """The support request of tests/test_engine.py, written on WhatsApp with a photo."""
    greeting = await phone.say("السلام عليكم")
    assert "\n2. تقديم طلب دعم" in "\n".join(m["Body"] for m in greeting)
    for text in ("٢", "١", "محمد عبدالله القحطاني"):
        await phone.say(text)
    await phone.say(valid_national_id().translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    for text in ("٠٥٥١٢٣٤٥٦٧", "الرياض", "٥", "٣٬٠٠٠ ريال", "إيجار", "١٥٠٠", "١"):
        await phone.say(text)
    await phone.say("نحتاج مساعدة في دفع الإيجار المتأخر")
    photo = phone.setup.fake.add_media(ID_PHOTO, "image/jpeg")
    await phone.say(media=[(photo, "image/jpeg")])
    await phone.say("تم")
    assert "محمد عبدالله القحطاني" in phone.text
    await phone.say("تأكيد وإرسال")
    await phone.say("نعم")
    refs = [w.rstrip(".،") for w in phone.text.split() if w.startswith("SR-")]
    assert refs, phone.text
    return refs[0]


async def test_support_request_on_whatsapp_then_status_by_sms(twilio_setup: TwilioSetup) -> None:
    setup, fake = twilio_setup, twilio_setup.fake
    ref = await whatsapp_support_request(Phone(setup, NUMBER))

    (media,) = fake.media.values()
    assert (media.hits, media.authorized_hits) == (1, 1)  # fetched once, with the credentials
    async with setup.service.db.session(write=False) as s:
        (document,) = list(await s.scalars(select(Document)))
    assert document.content_type == "image/jpeg"
    kept = setup.service.files.path(document.ref).read_bytes()
    assert kept.startswith(b"\xff\xd8\xff") and metadata_of(kept) == {}  # a clean copy

    sent = fake.to(NUMBER)
    assert all(m["From"] == WHATSAPP_FROM and m["To"] == "whatsapp:" + NUMBER for m in sent)
    assert all(m["StatusCallback"] == PUBLIC_URL + STATUS_PATH for m in sent)
    items = await setup.outbox()
    assert [i.status for i in items] == ["sent"] * len(sent)
    assert [i.provider_id for i in items] == [m["sid"] for m in sent]

    sms = Phone(setup, NUMBER, whatsapp=False)
    await sms.say("القائمة")
    await sms.say("٣")
    assert ref in sms.text  # the same person: their own request, no proof asked
    assert all(m["From"] == SMS_FROM and m["To"] == NUMBER for m in sms.received)
    assert await count(setup, Identity) == 1


async def test_forged_signatures_are_refused_and_nothing_is_stored(
    twilio_setup: TwilioSetup,
) -> None:
    setup = twilio_setup
    form = twilio_form("whatsapp:" + NUMBER, "مرحبا")
    tampered = {**form, "Body": "حوّل المبلغ"}
    attempts = [
        await setup.post(INBOUND_PATH, form, signature=""),
        await setup.post(INBOUND_PATH, form, signature=sign(PUBLIC_URL + INBOUND_PATH, form)[::-1]),
        await setup.post(INBOUND_PATH, form, signed_url="https://other.example.net" + INBOUND_PATH),
        # The URL the server sees behind its proxy is not the one Twilio signs.
        await setup.post(INBOUND_PATH, form, signed_url="http://testserver" + INBOUND_PATH),
        await setup.post(INBOUND_PATH, form, signature=sign(PUBLIC_URL + INBOUND_PATH, form, "x")),
        await setup.post(INBOUND_PATH, tampered, signature=sign(PUBLIC_URL + INBOUND_PATH, form)),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert await count(setup, Message) == 0 and await count(setup, Identity) == 0
    assert (await setup.post(INBOUND_PATH, form)).status_code == 200


async def test_malformed_forms_get_400_with_the_reason(twilio_setup: TwilioSetup) -> None:
    app = create_app(twilio_setup.service, workers=False)  # the real app, as `serve` builds it
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        twilio_setup.http = http
        no_sender = {k: v for k, v in twilio_form(NUMBER, "hi").items() if k != "From"}
        response = await twilio_setup.post(INBOUND_PATH, no_sender)
        assert response.status_code == 400
        assert response.json() == {
            "error": "bad_request",
            "message": "not a Twilio message: missing From",
        }
        bad_media = {**twilio_form(NUMBER, "hi"), "NumMedia": "lots"}
        response = await twilio_setup.post(INBOUND_PATH, bad_media)
        assert response.status_code == 400 and "NumMedia" in response.json()["message"]
        forged = await twilio_setup.post(INBOUND_PATH, twilio_form(NUMBER, "hi"), signature="AAAA")
        assert forged.status_code == 403 and forged.json()["error"] == "forbidden"
    assert await count(twilio_setup, Message) == 0


async def test_a_retried_webhook_is_handled_once(twilio_setup: TwilioSetup) -> None:
    phone = Phone(twilio_setup, NUMBER)
    first = await phone.say("مرحبا", sid="SM" + "1" * 32)
    again = await phone.say("مرحبا", sid="SM" + "1" * 32)
    assert first and again == []
    photo = twilio_setup.fake.add_media(ID_PHOTO, "image/jpeg")
    await phone.say(media=[(photo, "image/jpeg")], sid="MM" + "2" * 32)
    await phone.say(media=[(photo, "image/jpeg")], sid="MM" + "2" * 32)
    assert await count(twilio_setup, Message) - len(await twilio_setup.outbox()) == 2
    assert next(iter(twilio_setup.fake.media.values())).hits == 1  # no second download


async def test_failed_deliveries_and_status_callbacks(twilio_setup: TwilioSetup) -> None:
    setup, fake = twilio_setup, twilio_setup.fake
    fake.errors.append(FakeError(503, 20503, "Service Unavailable"))
    phone = Phone(setup, NUMBER)
    assert await phone.say("مرحبا") == []
    first = (await setup.outbox())[0]
    assert first.status == "pending" and first.attempts == 1 and "503" in (first.last_error or "")

    async with setup.service.db.session() as s:  # due again now
        item = await s.get(OutboxItem, first.id)
        assert item is not None
        item.next_attempt_at = item.created_at
    await setup.run()
    items = await setup.outbox()
    assert all(i.status == "sent" for i in items) and len(fake.to(NUMBER)) == len(items)

    status = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}
    delivered = {**status, "MessageSid": items[0].provider_id or "", "MessageStatus": "delivered"}
    assert (await setup.post(STATUS_PATH, delivered)).status_code == 204
    undelivered = {
        **status,
        "MessageSid": items[1].provider_id or "",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    forged = await setup.post(
        STATUS_PATH, undelivered, signed_url="https://evil.example" + STATUS_PATH
    )
    assert forged.status_code == 403
    assert (await setup.post(STATUS_PATH, undelivered)).status_code == 204
    first, second = (await setup.outbox())[:2]
    assert (first.status, first.provider_status) == ("sent", "delivered")
    assert (second.status, second.provider_status, second.error_code) == (
        "failed",
        "undelivered",
        "30003",
    )
    assert "30003" in (second.last_error or "")


async def test_an_undelivered_report_before_the_send_is_recorded_still_fails_it(
    twilio_setup: TwilioSetup,
) -> None:
    """Twilio answers the Messages API and may post "undelivered" (a number not on WhatsApp,
    error 63003) within milliseconds, before the send is written down (on SQLite it waits
    its turn for the writer). Twilio does not post a report again, so it is kept and applied
    once the send is recorded: the reply shows failed, and a later "sent" report does not
    clear it."""
    setup = twilio_setup
    real = setup.service.senders["whatsapp"]
    status = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01"}

    class EarlyReport:
        async def send(self, delivery: Delivery) -> Sent:
            outcome = await real.send(delivery)
            form = {
                **status,
                "MessageSid": outcome.provider_id or "",
                "MessageStatus": "undelivered",
                "ErrorCode": "63003",
            }
            assert (await setup.post(STATUS_PATH, form)).status_code == 204
            return outcome

    setup.service.senders["whatsapp"] = EarlyReport()
    await Phone(setup, NUMBER).say("مرحبا")
    items = await setup.outbox()
    assert items
    assert [(i.status, i.provider_status, i.error_code) for i in items] == [
        ("failed", "undelivered", "63003")
    ] * len(items)
    assert "63003" in (items[0].last_error or "")
    late = {**status, "MessageSid": items[0].provider_id or "", "MessageStatus": "sent"}
    assert (await setup.post(STATUS_PATH, late)).status_code == 204
    first = (await setup.outbox())[0]
    assert (first.status, first.provider_status) == ("failed", "undelivered")
    assert {i.id for i in await setup.service.failed_outbox()} == {i.id for i in items}
    assert await count(setup, ProviderReport) == 0


async def test_an_invalid_number_is_unreachable(twilio_setup: TwilioSetup) -> None:
    twilio_setup.fake.errors.append(FakeError(400, 21211, "The 'To' number is not valid."))
    phone = Phone(twilio_setup, NUMBER, whatsapp=False)
    await phone.say("hello")
    first = (await twilio_setup.outbox())[0]
    assert first.status == "failed" and "21211" in (first.last_error or "")
    assert (await identity(twilio_setup)).unreachable


async def test_rate_limit_waits(twilio_setup: TwilioSetup) -> None:
    twilio_setup.fake.errors.append(FakeError(429, 20429, "Too Many Requests"))
    await Phone(twilio_setup, NUMBER).say("hello")
    first = (await twilio_setup.outbox())[0]
    assert first.status == "pending"
    assert timedelta(seconds=5) < first.next_attempt_at - first.created_at < timedelta(seconds=15)


async def decision_after(
    setup: TwilioSetup, hours: float, status: RequestStatus = RequestStatus.UNDER_REVIEW
) -> list[OutboxItem]:
    """A request made on WhatsApp, then a decision ``hours`` after the person last wrote."""
    chat = Chat(setup.service, channel=Channel.WHATSAPP, sender=NUMBER, now=WORKING_TIME)
    ref = await fill_support_request(chat)
    setup.sender.clock = lambda: WORKING_TIME + timedelta(minutes=1)
    await setup.run()
    assert (await identity(setup)).last_inbound_at == WORKING_TIME
    sent_before = len(setup.fake.messages)
    await setup.service.change_request_status(ref, status, actor="x")
    setup.sender.clock = lambda: WORKING_TIME + timedelta(hours=hours)
    await setup.run()
    decisions = [i for i in await setup.outbox() if i.kind == "decision"]
    sent = [i for i in decisions if i.status == "sent"]
    assert len(setup.fake.messages) - sent_before == len(sent)
    return decisions


@pytest.mark.twilio_config(templates={"decision": "HX" + "d" * 32})
async def test_a_decision_after_25_hours_goes_as_a_template(twilio_setup: TwilioSetup) -> None:
    (decision,) = await decision_after(twilio_setup, 25)
    message = twilio_setup.fake.messages[-1]
    assert decision.status == "sent" and decision.provider_id == message["sid"]
    assert message["ContentSid"] == "HX" + "d" * 32 and "Body" not in message
    variables = json.loads(message["ContentVariables"])
    assert variables["reference"] == variables["1"] and variables["1"].startswith("SR-")
    assert variables["status"] == "قيد الدراسة لدى لجنة البحث"


@pytest.mark.twilio_config(templates={"decision": "HX" + "d" * 32})
async def test_a_decision_after_2_hours_is_free_form(twilio_setup: TwilioSetup) -> None:
    (decision,) = await decision_after(twilio_setup, 2)
    message = twilio_setup.fake.messages[-1]
    assert decision.status == "sent" and "ContentSid" not in message
    assert "قيد الدراسة لدى لجنة البحث" in message["Body"]


@pytest.mark.twilio_config(templates={"decision": "HX" + "d" * 32, "survey": "HX" + "5" * 32})
async def test_a_closed_request_outside_the_window_gets_its_survey_template(
    twilio_setup: TwilioSetup,
) -> None:
    decision, survey = await decision_after(twilio_setup, 72, RequestStatus.CLOSED)
    assert decision.status == survey.status == "sent"
    first, second = twilio_setup.fake.messages[-2:]
    assert (first["ContentSid"], second["ContentSid"]) == ("HX" + "d" * 32, "HX" + "5" * 32)
    assert json.loads(second["ContentVariables"])["reference"].startswith("SR-")


async def test_no_template_outside_the_window_holds_the_message(
    twilio_setup: TwilioSetup,
) -> None:
    (decision,) = await decision_after(twilio_setup, 25)
    assert decision.status == "held"
    assert decision.last_error == "whatsapp window closed; no template for decision"
    # The beneficiary writes again: the window is open, and the decision goes out.
    later = WORKING_TIME + timedelta(hours=26)
    chat = Chat(twilio_setup.service, channel=Channel.WHATSAPP, sender=NUMBER, now=later)
    await chat.say("السلام عليكم")
    twilio_setup.sender.clock = lambda: later + timedelta(minutes=1)
    await twilio_setup.run()
    (decision,) = [i for i in await twilio_setup.outbox() if i.kind == "decision"]
    assert decision.status == "sent"
    bodies = [m.get("Body", "") for m in twilio_setup.fake.messages]
    assert any("قيد الدراسة لدى لجنة البحث" in body for body in bodies)


async def test_an_arabic_sms_of_200_characters_goes_in_3_parts(twilio_setup: TwilioSetup) -> None:
    setup = twilio_setup
    ref = await fill_support_request(Chat(setup.service, channel=Channel.SMS, sender=NUMBER))
    await setup.run()
    catalog = setup.service.catalog
    base = catalog.text(
        "ar",
        "notify.status_note",
        reference=ref,
        status=catalog.text("ar", "status.name.under_review"),
        note="",
    )
    note = "سيتواصل معك الباحث الاجتماعي " + "ب" * 200
    note = note[: 200 - len(base)]
    await setup.service.change_request_status(ref, RequestStatus.UNDER_REVIEW, actor="x", note=note)
    await setup.run()
    message = setup.fake.messages[-1]
    assert len(message["Body"]) == 200 and message["To"] == NUMBER
    (decision,) = [i for i in await setup.outbox() if i.kind == "decision"]
    assert decision.parts == 3 == sms_parts(message["Body"])


async def test_a_question_is_sent_whole_on_sms(twilio_setup: TwilioSetup) -> None:
    """The support request's introduction (duties, privacy, then "I have read this, start")
    takes more than ``sms_max_parts``: it is a question to agree to, so it arrives whole,
    within Twilio's ten parts, with its choices."""
    phone = Phone(twilio_setup, NUMBER, whatsapp=False)
    await phone.say("مرحبا")
    intro = await phone.say("٢")
    (body,) = [m["Body"] for m in intro]
    assert 4 == twilio_setup.service.config.twilio.sms_max_parts < sms_parts(body) <= 10
    assert "…" not in body and body.splitlines()[-1].startswith("2 ")
    assert all(i.parts is not None and i.parts <= 10 for i in await twilio_setup.outbox())


async def test_stop_then_nothing_is_sent_until_start(twilio_setup: TwilioSetup) -> None:
    phone = Phone(twilio_setup, NUMBER)
    assert await phone.say("مرحبا")
    assert await phone.say("ما هي المستندات المطلوبة للتقديم؟")  # "2" there is "staff"
    assert await phone.say("STOP") == []
    assert (await identity(twilio_setup)).opted_out
    assert await phone.say("مرحبا") == []
    assert (await twilio_setup.outbox())[-1].status == "cancelled"
    confirmation, *greeting = await phone.say("تشغيل")
    catalog = twilio_setup.service.catalog
    assert confirmation["Body"] == catalog.text("ar", "channel.optin")
    # Greeted with the menu: a number typed next picks from it, not from older choices.
    assert greeting[0]["Body"] == catalog.text("ar", "greeting")
    assert "2. " + catalog.text("ar", "menu.apply") in greeting[-1]["Body"]
    assert not (await identity(twilio_setup)).opted_out
    (intro,) = await phone.say("2")
    assert "الخصوصية" in intro["Body"]  # the support request, as the menu says
    assert await phone.say("القائمة")
    greeting = await phone.say("START")  # not opted out: simply the greeting and the menu
    assert greeting[0]["Body"] == twilio_setup.service.catalog.text("ar", "greeting")


async def test_sms_opt_out_in_arabic_and_twilio_opt_in(twilio_setup: TwilioSetup) -> None:
    setup = twilio_setup
    sms = Phone(setup, NUMBER, whatsapp=False)
    assert await sms.say("إيقاف") == []  # a first message may be STOP: recorded all the same
    assert (await identity(setup)).opted_out
    assert await sms.say("hello") == []
    # Twilio's Advanced Opt-Out names the keyword it acted on, e.g. YES after STOP.
    form = {**twilio_form(NUMBER, "YES"), "OptOutType": "START"}
    assert (await setup.post(INBOUND_PATH, form)).status_code == 200
    await setup.run()
    assert not (await identity(setup)).opted_out
    bodies = [m["Body"] for m in setup.fake.to(NUMBER)]
    assert setup.service.catalog.text("en", "channel.optin") in bodies


async def test_unusable_files_are_explained(twilio_setup: TwilioSetup) -> None:
    setup, fake = twilio_setup, twilio_setup.fake
    phone = Phone(setup, NUMBER)
    await phone.say("مرحبا")
    voice = fake.add_media(b"OggS\x00\x02" + b"\x00" * 100, "audio/ogg")
    (notice,) = await phone.say(media=[(voice, "audio/ogg")])
    assert notice["Body"] == setup.service.catalog.text("ar", "channel.unsupported")
    assert fake.media[voice.rsplit("/", 1)[1]].hits == 0  # not even downloaded
    # A file of a kind not taken is told which kinds are, not "voice notes are not handled".
    wrong_type = setup.service.catalog.text("ar", "attachment.bad_type", types="JPEG, PNG, PDF")
    word = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    letter = fake.add_media(b"PK\x03\x04" + b"\x00" * 100, word)
    (notice,) = await phone.say(media=[(letter, word)])
    assert notice["Body"] == wrong_type
    disguised = fake.add_media(b"<html>not a photo</html>", "image/jpeg")
    (notice,) = await phone.say(media=[(disguised, "image/jpeg")])
    assert notice["Body"] == wrong_type
    assert not list(setup.service.files.root.rglob("*.*"))  # nothing kept on disk


async def test_a_location_or_a_contact_at_a_forms_question_asks_it_again(
    twilio_setup: TwilioSetup,
) -> None:
    """Shared by mistake while a form waits (a location, a contact card): the person is told
    it cannot be read, and the question is asked again rather than left above."""
    setup, fake = twilio_setup, twilio_setup.fake
    phone = Phone(setup, NUMBER)
    await phone.say("مرحبا")
    await phone.say("٢")
    await phone.say("١")
    question = (await phone.say("محمد عبدالله القحطاني"))[-1]["Body"]  # the national ID's
    unsupported = setup.service.catalog.text("ar", "channel.unsupported")
    location = {**twilio_form(phone.address, ""), "Latitude": "24.71", "Longitude": "46.67"}
    assert (await setup.post(INBOUND_PATH, location)).status_code == 200
    await setup.run()
    notice, again = setup.fake.to(NUMBER)[-2:]
    assert notice["Body"] == unsupported and again["Body"] == question
    card = fake.add_media(b"BEGIN:VCARD\nVERSION:3.0\nFN:Ali\nEND:VCARD\n", "text/vcard")
    notice, again = await phone.say(media=[(card, "text/vcard")])
    assert notice["Body"] == unsupported and again["Body"] == question
    assert fake.media[card.rsplit("/", 1)[1]].hits == 0  # a contact is not fetched


@pytest.mark.twilio_config(storage={"max_attachment_mb": 0.001})
async def test_too_large_files_are_refused(twilio_setup: TwilioSetup) -> None:
    phone = Phone(twilio_setup, NUMBER)
    await phone.say("مرحبا")
    photo = twilio_setup.fake.add_media(ID_PHOTO, "image/jpeg")
    received = await phone.say("هذه صورة الهوية", media=[(photo, "image/jpeg")])
    expected = twilio_setup.service.catalog.text("ar", "channel.too_large", max="0.001")
    assert received[0]["Body"] == expected and len(received) > 1  # the text is answered too
    assert await count(twilio_setup, Document) == 0


WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def told_wrong_type(setup: TwilioSetup) -> list[str]:
    wrong_type = setup.service.catalog.text("ar", "attachment.bad_type", types="JPEG, PNG, PDF")
    return [m["Body"] for m in setup.fake.to(NUMBER) if m["Body"] == wrong_type]


async def test_a_webhook_retried_after_a_failed_store_tells_about_the_file_once(
    twilio_setup: TwilioSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text and a Word file; storing the message fails (a locked database, a lost
    connection), Twilio gets a 500 and sends the webhook again: the message is stored once,
    and the beneficiary is told once that this kind of file is not taken."""
    setup = twilio_setup
    letter = setup.fake.add_media(b"PK\x03\x04" + b"\x00" * 100, WORD)
    form = twilio_form("whatsapp:" + NUMBER, "هذا العقد", media=[(letter, WORD)])
    receive = Service.receive
    failures = [OperationalError("INSERT", {}, Exception("database is locked"))]

    async def failing_once(self: Service, msg: Inbound, **kw: Any) -> int | None:
        if failures:
            raise failures.pop()
        return await receive(self, msg, **kw)

    monkeypatch.setattr(Service, "receive", failing_once)
    with pytest.raises(OperationalError):  # the server answers 500: Twilio sends it again
        await setup.post(INBOUND_PATH, form)
    assert (await setup.post(INBOUND_PATH, form)).status_code == 200
    await setup.run()
    assert await count(setup, Message) - len(setup.fake.to(NUMBER)) == 1  # one message in
    assert len(told_wrong_type(setup)) == 1


async def test_a_webhook_retried_while_the_first_is_in_hand_tells_about_the_file_once(
    twilio_setup: TwilioSetup,
) -> None:
    """Twilio sends the webhook again while the first is still fetching the files: both
    store the message, one succeeds, and the beneficiary is told once."""
    setup = twilio_setup
    letter = setup.fake.add_media(b"PK\x03\x04" + b"\x00" * 100, WORD)
    form = twilio_form("whatsapp:" + NUMBER, "هذا العقد", media=[(letter, WORD)])
    first, second = await asyncio.gather(
        setup.post(INBOUND_PATH, form), setup.post(INBOUND_PATH, form)
    )
    assert first.status_code == second.status_code == 200
    await setup.run()
    assert len(told_wrong_type(setup)) == 1


async def test_a_file_notice_goes_out_after_the_answer_to_an_earlier_message(
    twilio_setup: TwilioSetup,
) -> None:
    """'Hello', then a Word file, before the bot has answered: the greeting is answered
    first, then the beneficiary hears about the file."""
    setup = twilio_setup
    assert (await setup.post(INBOUND_PATH, twilio_form("whatsapp:" + NUMBER, "مرحبا"))).is_success
    letter = setup.fake.add_media(b"PK\x03\x04" + b"\x00" * 100, WORD)
    form = twilio_form("whatsapp:" + NUMBER, "", media=[(letter, WORD)])
    assert (await setup.post(INBOUND_PATH, form)).is_success
    await setup.run()
    bodies = [m["Body"] for m in setup.fake.to(NUMBER)]
    assert len(bodies) > 1 and bodies[-1:] == told_wrong_type(setup)


async def test_sms_uses_the_catalogue_short_variants(twilio_setup: TwilioSetup) -> None:
    catalog, fake = twilio_setup.service.catalog, twilio_setup.fake
    sms = Phone(twilio_setup, NUMBER, whatsapp=False)
    await sms.say("مرحبا")
    help_text, menu = await sms.say("مساعدة")
    assert help_text["Body"] == catalog.short("ar", "help") and sms_parts(help_text["Body"]) == 1
    assert menu["Body"].startswith(catalog.text("ar", "menu.prompt.sms") + "\n1 ")
    voice = fake.add_media(b"\x00" * 64, "audio/amr")
    (notice,) = await sms.say(media=[(voice, "audio/amr")])
    assert notice["Body"] == catalog.short("ar", "channel.unsupported")


async def test_needs_info_by_sms_sends_the_documents_to_whatsapp(
    twilio_setup: TwilioSetup,
) -> None:
    setup, catalog = twilio_setup, twilio_setup.service.catalog
    ref = await whatsapp_support_request(Phone(setup, NUMBER))
    sms = Phone(setup, NUMBER, whatsapp=False)
    await sms.say("شكرا")
    seen = len(setup.fake.to(NUMBER))
    asked = "نرجو إرسال صورة عقد الإيجار"
    await setup.service.change_request_status(
        ref, RequestStatus.NEEDS_INFO, actor="staff:a@example.org", note=asked
    )
    await setup.service.deliver_due()
    (notice,) = setup.fake.to(NUMBER)[seen:]
    status = catalog.text("ar", "status.name.needs_info")
    assert notice["To"] == NUMBER  # by SMS, where they last wrote
    assert notice["Body"] == catalog.short(
        "ar", "notify.needs_info", reference=ref, status=status, note=asked
    )
    assert "واتساب" in notice["Body"]  # not "send the documents here"

    await sms.say("العقد عند المالك")
    more = [c for c in sms.text.splitlines() if c.endswith(catalog.text("ar", "info.send_more"))]
    await sms.say(more[0].split()[0])
    assert sms.text == catalog.short("ar", "info.more")

    photo = setup.fake.add_media(ID_PHOTO, "image/jpeg")
    await Phone(setup, NUMBER).say(media=[(photo, "image/jpeg")])  # the same number on WhatsApp
    async with setup.service.db.session(write=False) as s:
        row = await s.scalar(select(Request).where(Request.reference == ref))
        assert row is not None
        items = await request_info(s, row.id)
    assert [(i.info.channel, len(i.documents)) for i in items] == [("sms", 0), ("whatsapp", 1)]


async def test_an_unclear_answer_at_the_documents_step_costs_two_sms_parts(
    twilio_setup: TwilioSetup,
) -> None:
    sms = Phone(twilio_setup, "+966551234500", whatsapp=False)
    for text in ("السلام عليكم", "٢", "١", "محمد عبدالله", valid_national_id(), "0551234567"):
        await sms.say(text)
    for text in ("الرياض", "5", "3000", "1", "1", "نحتاج مساعدة"):
        await sms.say(text)
    for text in ("ما عندي واتساب", "تم"):
        (again,) = await sms.say(text)  # not the 400-character question again
        assert sms_parts(again["Body"]) == 2, again["Body"]
        assert again["Body"].endswith("\n1 لا أستطيع، أكمل دونها\n2 رجوع")
    await sms.say("1")
    assert "المستندات: تُسلَّم لاحقًا" in sms.text

"""One person across channels: the same phone on WhatsApp and SMS, and a shared number."""

from __future__ import annotations

from sqlalchemy import select

from bot.service import Service
from conversations.delivery import Delivery, Sent
from conversations.messages import Channel, Inbound
from storage.models import Identity, OutboxItem
from tests.conftest import Chat
from tests.test_engine import fill_support_request


async def test_whatsapp_and_sms_from_one_number_are_one_beneficiary(service: Service) -> None:
    whatsapp = Chat(service, channel=Channel.WHATSAPP, sender="+966551234567")
    ref = await fill_support_request(whatsapp)
    sms = Chat(service, channel=Channel.SMS, sender="+966551234567")
    await sms.say("٣")
    assert ref in sms.text  # their own request, no verification needed


async def test_sharing_a_phone_number_joins_the_history(service: Service) -> None:
    whatsapp = Chat(service, channel=Channel.WHATSAPP, sender="+966501112223")
    ref = await fill_support_request(whatsapp)
    telegram = Chat(service, channel=Channel.TELEGRAM, sender="777")
    await telegram.say("مرحبا")
    await telegram.say("٣")
    assert ref not in telegram.text  # a stranger until proven otherwise
    await service.handle(
        Inbound(
            Channel.TELEGRAM,
            "777",
            "",
            verified_phone="+966501112223",
            channel_message_id="contact-1",
            received_at=telegram.now,
        )
    )
    await telegram.say("القائمة")
    await telegram.say("٣")
    assert ref in telegram.text
    async with service.db.session() as s:
        owners = set(await s.scalars(select(Identity.beneficiary_id)))
    assert len(owners) == 1


async def test_opted_out_numbers_get_nothing(service: Service) -> None:
    chat = Chat(service, channel=Channel.SMS, sender="+966559998887")
    await chat.say("hello")
    assert await service.set_opt_out("phone", "+966559998887", True)
    await chat.say("menu")
    async with service.db.session() as s:
        statuses = list(await s.scalars(select(OutboxItem.status).order_by(OutboxItem.id)))
    assert statuses[-1] == "cancelled"

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[Delivery] = []

        async def send(self, delivery: Delivery) -> Sent:
            self.sent.append(delivery)
            return Sent("SM1")

    recorder = Recorder()
    service.senders["sms"] = recorder
    await service.deliver_due()
    assert recorder.sent == []  # not even the replies queued before the STOP


async def test_provider_status_updates_the_outbox(service: Service) -> None:
    chat = Chat(service, channel=Channel.SMS, sender="+966553334445")
    await chat.say("hi")

    class Ok:
        count = 0

        async def send(self, delivery: Delivery) -> Sent:
            self.count += 1
            return Sent(f"SM{self.count}", parts=2)

    service.senders["sms"] = Ok()
    await service.deliver_due()
    assert await service.record_provider_status("SM1", "undelivered", "30003")
    assert not await service.record_provider_status("SM-unknown", "delivered")
    async with service.db.session() as s:
        first = await s.scalar(select(OutboxItem).where(OutboxItem.provider_id == "SM1"))
    assert first is not None
    assert (first.status, first.error_code, first.parts) == ("failed", "30003", 2)
    assert "undelivered" in (first.last_error or "")

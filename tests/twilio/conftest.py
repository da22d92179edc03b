from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from adapters.twilio import TwilioSender
from bot.channels import ChannelRuntime
from bot.channels.twilio import INBOUND_PATH, install
from bot.service import Service
from storage.migrate import upgrade
from storage.models import OutboxItem
from tests.conftest import make_config
from tests.security.images import photo
from tests.twilio.fake import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

PUBLIC_URL = "https://bot.example.org"
WHATSAPP_FROM = "whatsapp:+966112345678"
SMS_FROM = "+966112345679"
# A real photo of an ID card, with the GPS position and camera a phone writes into it.
ID_PHOTO = photo()


def sign(url: str, form: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.stop()


class TwilioSetup:
    """Our webhooks as an HTTP app, the service behind them, and the fake Twilio."""

    def __init__(self, service: Service, fake: FakeTwilio, http: httpx.AsyncClient) -> None:
        self.service = service
        self.fake = fake
        self.http = http

    @property
    def sender(self) -> TwilioSender:
        sender = self.service.senders["whatsapp"]
        assert isinstance(sender, TwilioSender)
        return sender

    async def post(
        self,
        path: str,
        form: dict[str, str],
        *,
        signature: str | None = None,
        signed_url: str | None = None,
    ) -> httpx.Response:
        """Post as Twilio does: form-encoded, signed for the public URL."""
        if signature is None:
            signature = sign(signed_url or PUBLIC_URL + path, form)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature:
            headers["X-Twilio-Signature"] = signature
        return await self.http.post(path, content=urlencode(form), headers=headers)

    async def run(self) -> None:
        """What the workers do: answer stored messages, then deliver the outbox."""
        await self.service.process_pending()
        await self.service.deliver_due()

    async def outbox(self) -> list[OutboxItem]:
        async with self.service.db.session(write=False) as s:
            return list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def twilio_form(
    sender: str, body: str = "", *, media: Sequence[tuple[str, str]] = (), sid: str | None = None
) -> dict[str, str]:
    """An inbound message webhook as Twilio posts it (WhatsApp when sender has the prefix)."""
    whatsapp = sender.startswith("whatsapp:")
    form = {
        "ToCountry": "SA",
        "SmsMessageSid": "",
        "NumMedia": str(len(media)),
        "Body": body,
        "To": WHATSAPP_FROM if whatsapp else SMS_FROM,
        "NumSegments": "1",
        "MessageSid": sid or ("SM" + secrets.token_hex(16)),
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    form["SmsMessageSid"] = form["MessageSid"]
    form["SmsSid"] = form["MessageSid"]
    form["SmsStatus"] = "received"
    if whatsapp:
        form.update(
            ProfileName="أبو محمد",
            WaId=sender.removeprefix("whatsapp:+"),
            MessageType="image" if media else "text",
        )
    else:
        form.update(FromCountry="SA", FromCity="RIYADH")
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


class Phone:
    """A beneficiary writing through signed webhooks and reading what Twilio was asked to send."""

    def __init__(self, setup: TwilioSetup, number: str, *, whatsapp: bool = True) -> None:
        self.setup = setup
        self.number = number
        self.address = ("whatsapp:" if whatsapp else "") + number
        self.received: list[dict[str, Any]] = []

    async def say(
        self, text: str = "", *, media: Sequence[tuple[str, str]] = (), sid: str | None = None
    ) -> list[dict[str, Any]]:
        seen = len(self.setup.fake.to(self.number))
        response = await self.setup.post(
            INBOUND_PATH, twilio_form(self.address, text, media=media, sid=sid)
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text.endswith("<Response/>")
        await self.setup.run()
        self.received = self.setup.fake.to(self.number)[seen:]
        return self.received

    @property
    def text(self) -> str:
        return "\n".join(m.get("Body", "") for m in self.received)


@pytest.fixture
async def twilio_setup(
    tmp_path: Path, fake_twilio: FakeTwilio, request: pytest.FixtureRequest
) -> AsyncIterator[TwilioSetup]:
    """Parametrise with ``@pytest.mark.twilio_config(key=value, ...)`` for other settings."""
    marker = request.node.get_closest_marker("twilio_config")
    extra: dict[str, Any] = dict(marker.kwargs) if marker else {}
    storage = extra.pop("storage", {})
    templates = extra.pop("templates", {})
    settings: dict[str, object] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "whatsapp_from": WHATSAPP_FROM,
        "sms_from": SMS_FROM,
        "public_base_url": PUBLIC_URL,
        "api_base_url": fake_twilio.base_url,
        "templates": json.dumps(templates),
        **extra,
    }
    service = Service(make_config(tmp_path, twilio=settings, storage=storage))
    await upgrade(service.db.engine)
    runtime = ChannelRuntime()
    install(service, runtime)
    service.senders.update(runtime.senders)
    app = FastAPI()
    for router in runtime.routers:
        app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield TwilioSetup(service, fake_twilio, http)
    for close in runtime.closers:
        await close()
    await service.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "twilio_config(**settings): [twilio] settings for a test")

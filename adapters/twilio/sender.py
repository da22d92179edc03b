"""Sending WhatsApp and SMS messages through Twilio's REST API, with the channels' rules.

The real client's async API is used (``messages.create_async`` over aiohttp); its errors
become ours here: 429 → RateLimited, 5xx and network trouble → DeliveryError, a number that
cannot be reached or has opted out → Unreachable, a closed WhatsApp window → Held.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from adapters.twilio.inbound import WHATSAPP_PREFIX
from adapters.twilio.render import render_sms, render_whatsapp, sms_budget, sms_parts
from conversations.delivery import (
    Delivery,
    DeliveryError,
    DeliveryKind,
    Held,
    RateLimited,
    Sent,
    Unreachable,
)
from conversations.messages import Channel, Reply

# Twilio error codes that mean this address will not be reached by trying again.
UNREACHABLE_CODES = frozenset(
    {
        21211,  # invalid 'To' number
        21214,  # 'To' number cannot be reached
        21217,  # number does not appear valid
        21610,  # the recipient replied STOP
        21612,  # no route to the 'To' number
        21614,  # 'To' is not a mobile number
        30003,  # unreachable handset
        30005,  # unknown handset
        30006,  # landline or unreachable carrier
        63003,  # no WhatsApp account for the 'To' address
        63024,  # invalid WhatsApp recipient
    }
)
# What to check, for the errors that come from the settings rather than the person: Twilio's
# own message is not kept (it can quote the phone number).
SETTINGS_ERRORS = {
    20003: "Twilio refused the credentials: check [twilio] account_sid and auth_token",
    20404: "not found at Twilio: check [twilio] account_sid and the sender",
    21212: "not a valid sender number: check [twilio] sms_from / whatsapp_from",
    21408: "this account may not send to this country: allow it in the Console's "
    "Messaging geographic permissions",
    21606: "this sender cannot send this kind of message: check [twilio] sms_from / whatsapp_from",
    21659: "this sender is not a number of the account: check [twilio] sms_from",
    63007: "no WhatsApp sender with this address on the account: check [twilio] whatsapp_from",
}
# Free-form WhatsApp outside the 24-hour window: a template would still reach the person.
WINDOW_CLOSED_CODE = 63016
RATE_LIMIT_WAIT = 10.0
KINDS = frozenset(kind.value for kind in DeliveryKind)
# Written by a person (a staff member's reply, a decision's note): never shortened to the bot's
# own budget.
WHOLE = frozenset({DeliveryKind.STAFF, DeliveryKind.DECISION})

# The library logs every request line and header at INFO; keep that for debugging only.
API_LOG = logging.getLogger("tawasul.twilio.api")
API_LOG.setLevel(logging.WARNING)


class BaseUrlHttpClient(AsyncTwilioHttpClient):
    """The library's async HTTP client, sending every call to ``base_url`` instead.

    Scheme and host (and a path prefix, if any) come from the base URL; the API path and
    query are kept. This serves a regional edge, a proxy, or a local test server.
    """

    def __init__(self, base_url: str, *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout, logger=API_LOG)
        self._base = urlsplit(base_url.rstrip("/"))

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(
            (
                self._base.scheme,
                self._base.netloc,
                self._base.path + parts.path,
                parts.query,
                "",
            )
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the library's signature)
        allow_redirects: bool = False,
    ) -> Response:
        if auth is not None:
            # The header itself, as aiohttp deprecates its ``auth`` argument.
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        body: Any = data
        if isinstance(data, Mapping):
            # The form encoded as aiohttp would encode the dict, without the multipart writer
            # (and its random boundary) aiohttp builds for every dict before finding it plain.
            body = urlencode(list(data.items()), doseq=True).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return await super().request(
            method,
            self.rewrite(url),
            params=params,
            data=body,
            headers=headers,
            auth=None,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    whatsapp_from: str = ""
    sms_from: str = ""
    api_base_url: str = "https://api.twilio.com"
    # Where Twilio reports delivery (empty: no status callbacks).
    status_callback_url: str = ""
    sms_max_parts: int = 4
    whatsapp_window: timedelta = timedelta(hours=24)
    # ContentSid of an approved template per delivery kind, for outside the window.
    templates: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0


def in_window(last_inbound_at: datetime | None, now: datetime, window: timedelta) -> bool:
    """Whether WhatsApp still allows a free-form message (the person wrote recently)."""
    return last_inbound_at is not None and now - last_inbound_at < window


def template_for(delivery: Delivery, templates: Mapping[str, str]) -> str | None:
    """The ContentSid for this message: by its catalogue key (``survey.ask_request``), by the
    kind its key's section names (a survey question sent with a decision), else by its kind."""
    key = delivery.reply.key or ""
    candidates = [key, key.split(".")[0] if key.split(".")[0] in KINDS else ""]
    candidates.append(delivery.kind.value)
    return next((templates[c] for c in candidates if c and templates.get(c)), None)


def template_variables(reply: Reply) -> str:
    """The reply's catalogue parameters as ContentVariables, by name and by position.

    Templates may use ``{{reference}}`` or ``{{1}}``; WhatsApp refuses empty values and
    line breaks inside a variable.
    """
    values: dict[str, str] = {}
    for position, (name, value) in enumerate(reply.params, start=1):
        clean = " ".join(value.split()) or "-"
        values[str(position)] = clean
        values[name] = clean
    return json.dumps(values, ensure_ascii=False)


def map_error(exc: TwilioRestException) -> DeliveryError:
    code = int(exc.code) if isinstance(exc.code, int | str) and str(exc.code).isdigit() else None
    # Twilio's message text can quote the phone number: keep only the status and the code.
    reason = f"twilio {exc.status}" + (f" error {code}" if code else "")
    if code in SETTINGS_ERRORS:
        reason = f"{reason}: {SETTINGS_ERRORS[code]}"
    if exc.status == 429 or code == 20429:
        return RateLimited(RATE_LIMIT_WAIT, reason)
    if code in UNREACHABLE_CODES:
        return Unreachable(reason)
    if code == WINDOW_CLOSED_CODE:
        return Held(reason)
    return DeliveryError(reason)


def _sender_fields(sender: str) -> dict[str, str]:
    """A Messaging Service SID (MG…) or a phone/WhatsApp sender."""
    if sender.startswith("MG"):
        return {"messaging_service_sid": sender}
    return {"from_": sender}


class TwilioSender:
    """One sender for both channels; ``delivery.channel`` says which."""

    def __init__(
        self, settings: TwilioSettings, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self._http: BaseUrlHttpClient | None = None
        self._client: Client | None = None

    def _twilio(self) -> Client:
        # aiohttp wants a running loop when its session is made, so not in __init__.
        if self._client is None:
            self._http = BaseUrlHttpClient(
                self.settings.api_base_url, timeout=self.settings.timeout
            )
            self._client = Client(
                self.settings.account_sid, self.settings.auth_token, http_client=self._http
            )
        return self._client

    def message_fields(self, delivery: Delivery) -> dict[str, Any]:
        """What to send for this delivery, or Held when WhatsApp will not take it now."""
        s = self.settings
        reply = delivery.reply
        if delivery.channel is Channel.SMS:
            if not s.sms_from:
                raise Held("twilio.sms_from is not set")
            return {
                "to": delivery.address,
                "body": render_sms(
                    reply, sms_budget(reply, s.sms_max_parts, whole=delivery.kind in WHOLE)
                ),
                **_sender_fields(s.sms_from),
            }
        if delivery.channel is not Channel.WHATSAPP:
            raise Held(f"twilio does not deliver on {delivery.channel.value}")
        if not s.whatsapp_from:
            raise Held("twilio.whatsapp_from is not set")
        sender = s.whatsapp_from
        if not sender.startswith(("MG", WHATSAPP_PREFIX)):
            sender = WHATSAPP_PREFIX + sender
        fields: dict[str, Any] = {"to": WHATSAPP_PREFIX + delivery.address}
        fields.update(_sender_fields(sender))
        if in_window(delivery.last_inbound_at, self.clock(), s.whatsapp_window):
            fields["body"] = render_whatsapp(reply)
            return fields
        content_sid = template_for(delivery, s.templates)
        if not content_sid:
            raise Held(f"whatsapp window closed; no template for {delivery.kind.value}")
        fields["content_sid"] = content_sid
        fields["content_variables"] = template_variables(reply)
        return fields

    async def send(self, delivery: Delivery) -> Sent:
        fields = self.message_fields(delivery)
        if self.settings.status_callback_url:
            fields["status_callback"] = self.settings.status_callback_url
        try:
            message = await self._twilio().messages.create_async(**fields)
        except TwilioRestException as exc:
            raise map_error(exc) from None
        except (TwilioException, aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"twilio unreachable: {type(exc).__name__}") from None
        return Sent(provider_id=message.sid, parts=self._parts(delivery, fields, message))

    @staticmethod
    def _parts(delivery: Delivery, fields: Mapping[str, Any], message: Any) -> int:
        if delivery.channel is not Channel.SMS:
            return 1
        reported = str(getattr(message, "num_segments", "") or "")
        if reported.isdigit() and int(reported) > 0:
            return int(reported)
        return sms_parts(str(fields["body"]))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None

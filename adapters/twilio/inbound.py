"""What Twilio posts to us: inbound WhatsApp and SMS messages, status callbacks, signatures."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from conversations.fields import normalize_phone
from conversations.messages import Channel, Inbound
from conversations.normalize import normalize_arabic

WHATSAPP_PREFIX = "whatsapp:"
# WhatsApp carries one file a message, MMS up to ten.
MAX_MEDIA = 10
# Twilio posts about 20 fields, and two more for each of up to ten files; a form with far
# more is not Twilio's, and is refused before it is split into values.
MAX_FORM_FIELDS = 200

# Twilio's own opt-out and opt-in words for SMS (Advanced Opt-Out defaults), and ours.
SMS_STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
# On WhatsApp Twilio does not act on keywords; "cancel" there means leaving a form.
WHATSAPP_STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "optout"})
ARABIC_STOP_WORDS = frozenset({normalize_arabic("إيقاف")})
START_WORDS = frozenset({"start", "unstop", normalize_arabic("تشغيل")})


class BadForm(ValueError):
    """A signed request whose form is not a Twilio message; the text says what is wrong."""


class OptChange(StrEnum):
    STOP = "stop"
    START = "start"


class FormData(Mapping[str, str]):
    """A form-encoded body with repeated keys kept (the signature covers every value)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    @classmethod
    def decode(cls, body: bytes) -> FormData:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadForm("the body is not UTF-8 form data") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            raise BadForm(f"more than {MAX_FORM_FIELDS} fields") from None
        return cls(pairs)

    def __getitem__(self, key: str) -> str:
        return self._values[key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, key: str) -> list[str]:
        return list(self._values.get(key, []))


def signature_valid(auth_token: str, url: str, form: FormData, signature: str) -> bool:
    """Whether ``signature`` is Twilio's for this exact URL and form, signed with the token."""
    if not auth_token or not signature:
        return False
    validator = RequestValidator(auth_token)
    # Twilio signs the URL it called, the one configured: one signature to compute. The
    # library's check computes two (the URL with its port written out and without) for the
    # rare proxy that shows Twilio another form of it; that is the way a mismatch goes on.
    expected = validator.compute_signature(url, form).encode()
    if hmac.compare_digest(expected, signature.encode()):
        return True
    return bool(validator.validate(url, form, signature))


@dataclass(frozen=True, slots=True)
class MediaRef:
    url: str
    content_type: str


# A contact shared on WhatsApp comes as a vCard file.
CONTACT_CARDS = frozenset({"text/vcard", "text/x-vcard", "text/directory"})


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """An inbound message before its files are fetched."""

    inbound: Inbound
    media: tuple[MediaRef, ...] = ()
    # Twilio's Advanced Opt-Out names the keyword it recognised (STOP, START, HELP).
    opt_out_type: str | None = None

    @property
    def empty(self) -> bool:
        """Nothing we can read: a location, a contact card, a reaction."""
        return not self.inbound.text.strip() and not self.media


def _required(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name, "").strip()
        if value:
            return value
    raise BadForm(f"missing {names[0]}")


def parse_twilio_form(form: Mapping[str, str], *, now: datetime | None = None) -> ParsedMessage:
    """Twilio's inbound message webhook as a channel-neutral message.

    ``From`` is ``whatsapp:+9665…`` on WhatsApp and ``+9665…`` on SMS; both become the same
    E.164 number, so one person is one beneficiary on both channels.
    """
    sid = _required(form, "MessageSid", "SmsMessageSid", "SmsSid")
    sender = _required(form, "From")
    channel = Channel.SMS
    if sender.lower().startswith(WHATSAPP_PREFIX):
        channel = Channel.WHATSAPP
        sender = sender[len(WHATSAPP_PREFIX) :]
    phone = normalize_phone(sender)
    if phone is None:
        raise BadForm("From is not a phone number")
    raw_count = form.get("NumMedia", "0").strip() or "0"
    # ASCII digits only: "²" is a digit to str.isdigit but not to int().
    if not (raw_count.isascii() and raw_count.isdigit()) or int(raw_count) > MAX_MEDIA:
        raise BadForm(f"NumMedia must be a number from 0 to {MAX_MEDIA}")
    media = []
    for index in range(int(raw_count)):
        url = form.get(f"MediaUrl{index}", "").strip()
        if not url.startswith(("https://", "http://")):
            raise BadForm(f"missing or invalid MediaUrl{index}")
        content_type = form.get(f"MediaContentType{index}", "").split(";")[0].strip().lower()
        if content_type in CONTACT_CARDS:
            continue  # a contact shared: not a document, and nothing the bot reads
        media.append(MediaRef(url, content_type))
    inbound = Inbound(
        channel=channel,
        sender_id=phone,
        text=form.get("Body", ""),
        channel_message_id=sid,
        received_at=now or datetime.now(UTC),
        verified_phone=phone,
        display_name=form.get("ProfileName", "")[:200],
    )
    opt_type = form.get("OptOutType", "").strip().upper() or None
    return ParsedMessage(inbound, tuple(media), opt_type)


def opt_change(message: ParsedMessage) -> OptChange | None:
    """STOP / إيقاف or START / تشغيل, as Twilio's Advanced Opt-Out or the words say."""
    if message.media:
        return None
    if message.opt_out_type == "STOP":
        return OptChange.STOP
    if message.opt_out_type == "START":
        return OptChange.START
    word = normalize_arabic(message.inbound.text)
    if not word:
        return None
    stop_words = SMS_STOP_WORDS if message.inbound.channel is Channel.SMS else WHATSAPP_STOP_WORDS
    if word in stop_words or word in ARABIC_STOP_WORDS:
        return OptChange.STOP
    if word in START_WORDS:
        return OptChange.START
    return None


@dataclass(frozen=True, slots=True)
class StatusReport:
    provider_id: str
    status: str
    error_code: str | None


def parse_status_form(form: Mapping[str, str]) -> StatusReport:
    """A status callback: queued, sent, delivered, read, failed, undelivered (+ ErrorCode)."""
    sid = _required(form, "MessageSid", "SmsSid")
    status = _required(form, "MessageStatus", "SmsStatus").lower()
    code = form.get("ErrorCode", "").strip()
    return StatusReport(sid, status, code or None)

"""Every parser of outside input, fed arbitrary and mutated input: a result or its own clear
error, never an unhandled exception. Budgets are fixed so the file stays fast in CI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hijridate import Gregorian
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.email.parse import MalformedEmail, ParsedEmail, parse_email
from adapters.telegram.client import BadUpdate, TelegramApi
from adapters.telegram.updates import ParsedUpdate, UpdateKind, parse_command
from adapters.twilio.inbound import BadForm, FormData, parse_status_form, parse_twilio_form
from conversations.fields import (
    Parsed,
    Rejected,
    format_dual_date,
    normalize_phone,
    parse_date,
    parse_integer,
    parse_national_id,
    parse_saudi_mobile,
    parse_text,
    parse_yesno,
    to_hijri,
)
from conversations.fields import parse_email as parse_email_address
from conversations.messages import Channel, Inbound
from conversations.normalize import normalize_arabic, script_language, to_latin_digits, tokens

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text the way beneficiaries type it: Arabic and Persian digits, Arabic letters and marks,
# Latin, punctuation, bidi controls and the odd surrogate-free oddity.
ARABIC = st.characters(min_codepoint=0x0600, max_codepoint=0x06FF)
MESSY = st.one_of(
    st.text(max_size=80),
    st.text(
        alphabet=st.one_of(ARABIC, st.sampled_from("0123456789+-() .٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹")),
        max_size=40,
    ),
    st.text(
        alphabet=st.sampled_from("\u200f\u200e\u202a\u202b\u202c\u00a0\ufeff\u0640 \t\n/"),
        max_size=20,
    ),
)


# -- fields -------------------------------------------------------------------------------------


@FAST
@given(MESSY)
def test_field_parsers_answer_every_text(raw: str) -> None:
    for parse in (parse_national_id, parse_saudi_mobile, parse_email_address, parse_yesno):
        result = parse(raw)
        assert isinstance(result, Parsed | Rejected)
    assert isinstance(parse_text(raw, max_length=50), Parsed | Rejected)
    assert isinstance(parse_integer(raw, minimum=0, maximum=10**9), Parsed | Rejected)


@FAST
@given(MESSY)
def test_national_id_accepts_only_ten_valid_digits(raw: str) -> None:
    result = parse_national_id(raw)
    if isinstance(result, Parsed):
        value = str(result.value)
        assert len(value) == 10 and value.isascii() and value.isdigit()
        assert value[0] in "12"


@FAST
@given(MESSY, st.sampled_from(["SA", "AE", "EG", "US", "ZZ", ""]))
def test_phone_is_e164_or_none(raw: str, region: str) -> None:
    phone = normalize_phone(raw, default_region=region)
    if phone is not None:
        assert phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16
        assert normalize_phone(phone) == phone
    mobile = parse_saudi_mobile(raw)
    if isinstance(mobile, Parsed):
        assert str(mobile.value).startswith("+9665")


@FAST
@given(MESSY)
def test_dates_never_raise(raw: str) -> None:
    today = date(2025, 3, 1)
    assert isinstance(parse_date(raw, today=today), Parsed | Rejected)


@FAST
@given(st.dates(min_value=date(1938, 1, 1), max_value=date(2076, 12, 31)))
def test_hijri_rendering_covers_the_supported_range(d: date) -> None:
    hijri = to_hijri(d)
    assert hijri and any(ch.isdigit() for ch in hijri)
    for lang in ("ar", "en"):
        assert format_dual_date(d, lang)


@FAST
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)))
def test_written_dates_read_back(d: date) -> None:
    result = parse_date(d.isoformat(), today=date(2031, 1, 1))
    if isinstance(result, Parsed):
        assert result.value == d.isoformat()


@FAST
@given(
    st.dates(min_value=date(1938, 1, 1), max_value=date(2076, 12, 31)),
    st.sampled_from(["-", "/", "."]),
)
def test_hijri_dates_read_back(d: date, sep: str) -> None:
    hijri = Gregorian(d.year, d.month, d.day).to_hijri()
    year_first = f"{hijri.year}{sep}{hijri.month}{sep}{hijri.day}"
    day_first = f"{hijri.day}{sep}{hijri.month}{sep}{hijri.year} هـ"
    for text in (year_first, day_first):
        result = parse_date(text, today=date(2077, 1, 1))
        assert isinstance(result, Parsed), text
        assert result.value == d.isoformat()


# -- Arabic normalisation ----------------------------------------------------------------------


@FAST
@given(st.text(max_size=200))
def test_normalisation_is_total_and_idempotent(raw: str) -> None:
    once = normalize_arabic(raw)
    assert normalize_arabic(once) == once
    assert all(t for t in tokens(raw))
    assert script_language(raw) in (None, "ar", "en")
    latin = to_latin_digits(raw)
    assert len(latin) == len(raw)


# -- Telegram ----------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
ANY = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.lists(JSONISH, max_size=2)
    | st.dictionaries(st.text(max_size=8), JSONISH, max_size=3)
)


def _field(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything at all otherwise."""
    return st.one_of(value, value, ANY)


USER = st.fixed_dictionaries(
    {
        "id": _field(st.integers(1, 2**40)),
        "is_bot": _field(st.booleans()),
        "first_name": _field(st.text(max_size=20)),
    },
    optional={"language_code": _field(st.sampled_from(["ar", "en", "fr"])), "last_name": ANY},
)
CHAT = st.fixed_dictionaries(
    {
        "id": _field(st.integers(-(2**40), 2**40)),
        "type": _field(st.sampled_from(["private", "group", "supergroup", "channel"])),
    }
)
MESSAGE = st.fixed_dictionaries(
    {
        "message_id": _field(st.integers(1, 2**31)),
        "date": _field(st.integers(0, 2**32)),
        "chat": _field(CHAT),
    },
    optional={
        "from": _field(USER),
        "text": _field(MESSY),
        "caption": ANY,
        "contact": _field(
            st.fixed_dictionaries(
                {"phone_number": _field(MESSY), "first_name": st.just("x")},
                optional={"user_id": ANY},
            )
        ),
        "photo": _field(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "file_id": st.text(max_size=5),
                        "file_unique_id": st.just("u"),
                        "width": _field(st.integers(0, 5000)),
                        "height": _field(st.integers(0, 5000)),
                    },
                    optional={"file_size": ANY},
                ),
                max_size=3,
            )
        ),
        "document": _field(
            st.fixed_dictionaries(
                {"file_id": st.text(max_size=5), "file_unique_id": st.just("u")},
                optional={"file_name": ANY, "mime_type": ANY, "file_size": ANY},
            )
        ),
        "voice": ANY,
        "sticker": ANY,
        "reply_markup": ANY,
    },
)
CALLBACK = st.fixed_dictionaries(
    {
        "id": _field(st.text(max_size=10)),
        "from": _field(USER),
        "chat_instance": _field(st.text(max_size=5)),
    },
    optional={"data": ANY, "message": _field(MESSAGE)},
)
UPDATE = st.fixed_dictionaries(
    {"update_id": _field(st.integers(0, 2**31))},
    optional={
        "message": _field(MESSAGE),
        "edited_message": ANY,
        "callback_query": _field(CALLBACK),
    },
)


@pytest.fixture(scope="module")
def telegram() -> TelegramApi:
    # Parsing never touches the network; the addresses are never called.
    return TelegramApi(
        "123:abc", api_base_url="http://127.0.0.1:9/bot", file_base_url="http://127.0.0.1:9/file"
    )


def _check_update(api: TelegramApi, data: Any) -> None:
    try:
        parsed = api.parse_json(data)
    except BadUpdate:
        return
    assert isinstance(parsed, ParsedUpdate)
    if parsed.kind in (UpdateKind.MESSAGE, UpdateKind.FILE, UpdateKind.UNSUPPORTED):
        assert isinstance(parsed.inbound, Inbound)
        assert parsed.inbound.channel is Channel.TELEGRAM and parsed.inbound.sender_id
        assert parsed.inbound.received_at.tzinfo is not None
    if parsed.kind is UpdateKind.FILE:
        assert parsed.file is not None


def test_telegram_callback_without_sender(telegram: TelegramApi) -> None:
    # Once answered with a 500 (and resent by Telegram forever): now ignored cleanly.
    _check_update(telegram, {"update_id": 1, "callback_query": {"id": "q", "chat_instance": "c"}})


def test_telegram_language_code_that_is_not_text(telegram: TelegramApi) -> None:
    # Found by the fuzzer below: an AttributeError (a 500) rather than no language hint.
    for code in (True, 7, ["en"]):
        sender = {"id": 1, "is_bot": False, "first_name": "x", "language_code": code}
        _check_update(
            telegram,
            {"update_id": 0, "callback_query": {"id": "q", "from": sender, "chat_instance": "c"}},
        )
        _check_update(
            telegram,
            {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": 1700000000,
                    "chat": {"id": 5, "type": "private"},
                    "from": sender,
                    "text": "hi",
                },
            },
        )


def test_telegram_message_without_chat_or_date(telegram: TelegramApi) -> None:
    # Found by the fuzzer below: read leniently by the library, then an AttributeError.
    bare = {"message_id": None, "date": None, "chat": None}
    _check_update(telegram, {"update_id": 0, "message": bare})
    _check_update(
        telegram,
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": None,
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "x"},
                "text": "hi",
            },
        },
    )


@SLOW
@given(UPDATE)
@example(  # a button press whose data is not text
    data={
        "update_id": 0,
        "callback_query": {
            "id": "",
            "from": {"id": 1, "is_bot": False, "first_name": ""},
            "chat_instance": "",
            "data": True,
        },
    }
)
def test_telegram_shaped_updates_parse_or_are_refused(
    telegram: TelegramApi, data: dict[str, Any]
) -> None:
    _check_update(telegram, data)


@SLOW
@given(JSONISH)
def test_telegram_arbitrary_json_is_refused_cleanly(telegram: TelegramApi, data: Any) -> None:
    _check_update(telegram, data)


@FAST
@given(MESSY)
def test_telegram_commands_are_known_or_none(text: str) -> None:
    command = parse_command("/" + text)
    assert command is None or command.split(":")[0] in {"start", "menu", "cancel", "help", "lang"}


# -- Twilio ------------------------------------------------------------------------------------

TWILIO_KEYS = st.sampled_from(
    [
        "MessageSid",
        "SmsSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "MediaUrl0",
        "MediaContentType0",
        "MediaUrl1",
        "ProfileName",
        "OptOutType",
        "MessageStatus",
        "ErrorCode",
        "AccountSid",
    ]
)
TWILIO_VALUES = st.one_of(
    MESSY,
    st.sampled_from(
        [
            "whatsapp:+966501234567",
            "+966501234567",
            "whatsapp:",
            "SM123",
            "1",
            "2",
            "11",
            "https://api.twilio.com/m/1",
            "ftp://x",
            "image/jpeg; charset=x",
            "STOP",
        ]
    ),
)


@FAST
@given(st.lists(st.tuples(st.one_of(TWILIO_KEYS, st.text(max_size=8)), TWILIO_VALUES), max_size=10))
def test_twilio_forms_parse_or_are_refused(pairs: list[tuple[str, str]]) -> None:
    form = FormData(pairs)
    try:
        parsed = parse_twilio_form(form, now=datetime(2025, 1, 1, tzinfo=UTC))
    except BadForm as exc:
        assert str(exc)
    else:
        assert parsed.inbound.sender_id.startswith("+")
        assert parsed.inbound.channel in (Channel.SMS, Channel.WHATSAPP)
        assert all(m.url.startswith(("https://", "http://")) for m in parsed.media)
    try:
        parse_status_form(form)
    except BadForm as exc:
        assert str(exc)


@FAST
@given(st.binary(max_size=300))
def test_twilio_raw_bodies_decode_or_are_refused(body: bytes) -> None:
    try:
        form = FormData.decode(body)
    except BadForm:
        return
    with pytest.raises(BadForm):
        if "MessageSid" in form or "SmsSid" in form or "SmsMessageSid" in form:
            raise BadForm("skip: may be a real message")
        parse_twilio_form(form)


# -- email -------------------------------------------------------------------------------------

FIXTURES = sorted((Path(__file__).parent.parent / "email" / "fixtures").glob("*.eml"))


def _check_mail(raw: bytes) -> None:
    try:
        parsed = parse_email(raw)
    except MalformedEmail as exc:
        assert str(exc)
        return
    assert isinstance(parsed, ParsedEmail)
    assert "@" in parsed.sender and parsed.message_id
    assert isinstance(parsed.text, str)


@SLOW
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_mail(raw: bytes) -> None:
    _check_mail(raw)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(FIXTURES)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "dup", "insert"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[at : at + draw(st.integers(1, 400))]
        elif op == "dup":
            raw[at:at] = raw[at : at + draw(st.integers(1, 200))]
        else:
            raw[at:at] = draw(
                st.sampled_from(
                    [
                        b"\r\n--",
                        b"\r\n\r\n",
                        b'Content-Type: multipart/mixed; boundary="',
                        b"=?utf-8?b?",
                        b"Content-Transfer-Encoding: base64\r\n",
                        b"\x00",
                        b"\xff\xfe",
                        b"=\r\n",
                        b": ;;",
                    ]
                )
            )
    return bytes(raw)


@SLOW
@given(mutated_fixture())
def test_mutated_real_mail(raw: bytes) -> None:
    _check_mail(raw)


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) >= 5

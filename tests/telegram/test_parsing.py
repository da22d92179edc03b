"""Updates read, replies rendered, errors mapped: the pure parts, on real payload shapes."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from adapters.telegram import Pacer, UpdateKind, parse_command, parse_update, render, split_text
from adapters.telegram.render import units
from adapters.telegram.sender import delivery_error
from conversations.delivery import DeliveryError, RateLimited, Unreachable
from conversations.messages import Ask, Channel, Choice, Reply
from tests.telegram import payloads
from tests.telegram.fake_bot_api import BOT_USER

USER = 7001


def parse(data: dict[str, Any], update_id: int = 900) -> Any:
    data.setdefault("update_id", update_id)
    return parse_update(Update.de_json(data, None))


def test_text_becomes_an_inbound_keyed_by_its_message_in_its_chat() -> None:
    data = payloads.text(USER, "السلام عليكم")
    parsed = parse(data, update_id=4242)
    assert parsed.kind is UpdateKind.MESSAGE
    inbound = parsed.inbound
    assert inbound.channel is Channel.TELEGRAM
    assert inbound.sender_id == str(USER)
    assert inbound.text == "السلام عليكم"
    assert inbound.channel_message_id == f"{USER}:{data['message']['message_id']}"
    assert inbound.received_at.tzinfo is not None
    assert inbound.display_name == "سارة العتيبي"
    assert inbound.lang_hint == "ar"


def test_update_ids_started_afresh_do_not_make_new_messages_repeats() -> None:
    """Telegram picks update ids anew after a week without updates: an id seen before may
    come again with another message, which must not be taken for the earlier one."""
    first = parse(payloads.text(USER, "السلام عليكم"), update_id=77)
    again = parse(payloads.text(USER, "متى الدوام؟"), update_id=77)
    assert first.inbound.channel_message_id != again.inbound.channel_message_id
    shown = payloads.text(USER, "القائمة")["message"]
    press = parse(payloads.callback(USER, shown, "menu"), update_id=77)
    assert press.inbound.channel_message_id.startswith("press:")
    assert press.inbound.channel_message_id not in (
        first.inbound.channel_message_id,
        again.inbound.channel_message_id,
    )


@pytest.mark.parametrize(
    ("code", "hint"), [("en-GB", "en"), ("EN", "en"), ("fr", None), (None, None)]
)
def test_the_users_language_setting_is_a_hint_the_catalogues_can_follow(
    code: str | None, hint: str | None
) -> None:
    update = payloads.text(USER, "/start")
    update["message"]["from"]["language_code"] = code
    assert parse(update).inbound.lang_hint == hint


@pytest.mark.parametrize(
    ("typed", "command"),
    [
        ("/start", "start"),
        ("/start status", "start:status"),
        ("/start@tawasul_bot", "start"),
        ("/menu", "menu"),
        ("/cancel", "cancel"),
        ("/help@tawasul_bot", "help"),
        ("/lang", "lang"),
        ("/lang en", "lang:en"),
        ("/lang عربي", "lang:ar"),
        ("/english", "lang:en"),
        ("/ar", "lang:ar"),
        ("/unknown", None),
        ("hello /start", None),
    ],
)
def test_slash_commands(typed: str, command: str | None) -> None:
    assert parse_command(typed) == command


def test_a_command_message_carries_no_text() -> None:
    parsed = parse(payloads.text(USER, "/start status"))
    assert parsed.inbound.command == "start:status"
    assert parsed.inbound.text == ""


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (payloads.voice(USER), "voice"),
        (payloads.sticker(USER), "sticker"),
        (payloads.location(USER), "location"),
    ],
)
def test_voice_sticker_and_location_are_unsupported(payload: dict[str, Any], reason: str) -> None:
    parsed = parse(payload)
    assert parsed.kind is UpdateKind.UNSUPPORTED
    assert parsed.reason == reason
    assert parsed.inbound is not None  # kept in the history and answered politely


def test_edits_groups_and_bots_are_ignored() -> None:
    assert parse(payloads.edited(USER, "تعديل")).kind is UpdateKind.IGNORED
    assert parse(payloads.group_text(USER, -100123, "مرحبا")).kind is UpdateKind.IGNORED
    from_bot = payloads.text(USER, "hi")
    from_bot["message"]["from"] = BOT_USER
    assert parse(from_bot).kind is UpdateKind.IGNORED


def test_own_contact_vouches_for_the_phone_and_another_card_does_not() -> None:
    own = parse(payloads.contact(USER, "966501234567", owner=USER))
    assert own.inbound.verified_phone == "+966501234567"
    assert own.inbound.text == ""
    other = parse(payloads.contact(USER, "+966551112222", owner=8888))
    assert other.inbound.verified_phone is None
    assert other.inbound.text == "+966551112222"
    no_owner = parse(payloads.contact(USER, "966551112222", owner=None))
    assert no_owner.inbound.verified_phone is None


def test_documents_and_the_largest_photo_are_files_to_fetch() -> None:
    doc = parse(payloads.document(USER, "f1", name="lease.pdf", mime="application/pdf", size=900))
    assert doc.kind is UpdateKind.FILE
    assert (doc.file.file_id, doc.file.size, doc.file.content_type, doc.file.filename) == (
        "f1",
        900,
        "application/pdf",
        "lease.pdf",
    )
    photo = parse(payloads.photo(USER, "p1", size=120_000))
    assert photo.file.file_id == "p1" and photo.file.content_type == "image/jpeg"
    assert photo.inbound.text == "صورة الهوية"  # the caption


def test_a_pressed_button_sends_its_label_and_names_the_keyboard() -> None:
    pressed = {
        "message_id": 55,
        "from": BOT_USER,
        "chat": payloads.private_chat(USER),
        "date": 1_700_000_000,
        "text": "اختر",
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "إيجار", "callback_data": "rent"}],
                [{"text": "ملك", "callback_data": "own"}],
            ]
        },
    }
    parsed = parse(payloads.callback(USER, pressed, "rent"))
    assert parsed.kind is UpdateKind.MESSAGE
    assert parsed.inbound.text == "إيجار"
    assert parsed.callback_query_id is not None
    assert (parsed.keyboard_chat_id, parsed.keyboard_message_id) == (USER, 55)


def paragraphs(count: int, size: int) -> str:
    return "\n\n".join(f"{n:02d} " + "ب" * (size - 3) for n in range(count))


def test_a_5000_character_answer_is_split_in_two_on_a_paragraph_boundary() -> None:
    text = paragraphs(10, 498)
    assert len(text) == 4998
    parts = split_text(text)
    assert len(parts) == 2
    assert all(units(p) <= 4096 for p in parts)
    assert "\n\n".join(parts) == text
    assert parts[1].startswith("0")  # a paragraph starts the second message


def test_a_paragraph_longer_than_a_message_is_cut_between_lines_then_words() -> None:
    lines = "\n".join("سطر " * 200 for _ in range(6))  # one paragraph of ~4,800 characters
    parts = split_text(lines)
    assert len(parts) == 2 and all(units(p) <= 4096 for p in parts)
    words = ("كلمة " * 2000).strip()
    assert all(units(p) <= 4096 for p in split_text(words))
    assert " ".join(split_text(words)) == words
    emoji = "😀" * 3000  # two UTF-16 units each: Telegram counts them so
    assert [units(p) for p in split_text(emoji)] == [4096, 1904]


def test_choices_become_inline_buttons_carrying_their_value() -> None:
    reply = Reply("اختر", choices=(Choice("نعم", "yes"), Choice("لا", "no")))
    [message] = render(reply, share_phone_label="مشاركة رقم جوالي")
    buttons = [b for row in message.markup.inline_keyboard for b in row]
    assert [(b.text, b.callback_data) for b in buttons] == [("نعم", "yes"), ("لا", "no")]
    long_value = Reply("x", choices=(Choice("أ", "v" * 80), Choice("ب", "short")))
    [message] = render(long_value, share_phone_label="-")
    data = [b.callback_data for row in message.markup.inline_keyboard for b in row]
    assert data == ["1", "short"]  # too long for Telegram: its number picks it


def test_asking_for_the_phone_offers_a_share_contact_key() -> None:
    reply = Reply("رقم جوالك؟", choices=(Choice("رجوع", "back"),), ask=Ask.PHONE)
    [message] = render(reply, share_phone_label="مشاركة رقم جوالي")
    keys = message.markup.keyboard
    assert keys[0][0].text == "مشاركة رقم جوالي" and keys[0][0].request_contact
    assert keys[1][0].text == "رجوع"
    assert message.markup.one_time_keyboard


def test_buttons_ride_on_the_last_part_of_a_long_reply() -> None:
    reply = Reply(paragraphs(10, 498), choices=(Choice("القائمة", "menu"),))
    first, second = render(reply, share_phone_label="-")
    assert first.markup is None and second.markup is not None


# The library warns about its own retry_after type when it builds the error.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_library_errors_become_ours() -> None:
    limited = delivery_error(RetryAfter(7))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7
    assert isinstance(
        delivery_error(Forbidden("Forbidden: bot was blocked by the user")), Unreachable
    )
    assert isinstance(delivery_error(BadRequest("Bad Request: chat not found")), Unreachable)
    for transient in (TimedOut(), NetworkError("connection reset"), BadRequest("can't parse")):
        error = delivery_error(transient)
        assert type(error) is DeliveryError


def test_the_pacer_allows_a_short_burst_then_one_a_second_per_chat() -> None:
    now = [100.0]
    pacer = Pacer(1.0, 30.0, chat_burst=3, max_wait=2.0, clock=lambda: now[0])
    waits = [pacer.reserve(1) for _ in range(3)]
    assert waits[0] == 0 and all(w < 0.1 for w in waits)  # the burst (30/s overall)
    assert pacer.reserve(1) == pytest.approx(1.0, abs=0.01)
    assert pacer.reserve(2) == pytest.approx(1.0 + 1 / 30, abs=0.01)  # waits its overall turn
    assert pacer.reserve(1) == pytest.approx(2.0, abs=0.01)
    with pytest.raises(RateLimited) as raised:
        pacer.reserve(1)  # three seconds out: the outbox comes back later instead
    assert raised.value.retry_after == pytest.approx(3.0, abs=0.01)
    now[0] += 10
    assert pacer.reserve(1) == 0

"""The Twilio adapter's pure parts (forms, keywords, SMS parts, rendering) and its sender
against the fake REST server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from adapters.twilio import (
    BadForm,
    BaseUrlHttpClient,
    FormData,
    OptChange,
    TwilioSender,
    TwilioSettings,
    map_error,
    opt_change,
    parse_status_form,
    parse_twilio_form,
    render_sms,
    render_whatsapp,
    signature_valid,
    sms_parts,
)
from adapters.twilio.render import sms_units
from adapters.twilio.sender import template_for, template_variables
from conversations.delivery import (
    Delivery,
    DeliveryError,
    DeliveryKind,
    Held,
    RateLimited,
    Unreachable,
)
from conversations.messages import Channel, Choice, Reply
from tests.conftest import free_port
from tests.twilio.conftest import PUBLIC_URL, sign, twilio_form
from tests.twilio.fake import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

NOW = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)

# -- inbound forms -------------------------------------------------------------------------


def test_whatsapp_form_with_a_photo() -> None:
    form = twilio_form(
        "whatsapp:+966551234567",
        "صورة الهوية",
        media=[
            ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg")
        ],
        sid="MM" + "a" * 32,
    )
    parsed = parse_twilio_form(form, now=NOW)
    msg = parsed.inbound
    assert (msg.channel, msg.sender_id, msg.verified_phone) == (
        Channel.WHATSAPP,
        "+966551234567",
        "+966551234567",
    )
    assert msg.channel_message_id == "MM" + "a" * 32 and msg.text == "صورة الهوية"
    assert msg.display_name == "أبو محمد" and msg.received_at == NOW
    assert [(m.url.rsplit("/", 1)[1], m.content_type) for m in parsed.media] == [
        ("ME1", "image/jpeg")
    ]


def test_sms_form_is_the_same_number_on_another_channel() -> None:
    parsed = parse_twilio_form(twilio_form("+966551234567", "hello"))
    assert parsed.inbound.channel is Channel.SMS and parsed.inbound.sender_id == "+966551234567"
    assert parsed.media == () and not parsed.empty


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"From": ""}, "missing From"),
        ({"MessageSid": "", "SmsMessageSid": "", "SmsSid": ""}, "missing MessageSid"),
        ({"From": "whatsapp:not-a-number"}, "From is not a phone number"),
        ({"NumMedia": "-1"}, "NumMedia"),
        ({"NumMedia": "1"}, "MediaUrl0"),
        ({"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"}, "MediaUrl0"),
    ],
)
def test_malformed_forms_say_what_is_wrong(change: dict[str, str], reason: str) -> None:
    with pytest.raises(BadForm, match=reason):
        parse_twilio_form({**twilio_form("+966551234567", "hi"), **change})


def test_a_location_is_an_empty_message() -> None:
    form = {**twilio_form("whatsapp:+966551234567"), "Latitude": "24.7", "Longitude": "46.6"}
    assert parse_twilio_form(form).empty


def test_signatures_cover_the_url_and_every_value() -> None:
    url = PUBLIC_URL + "/webhooks/twilio"
    pairs = [("Body", "a"), ("MediaUrl", "x"), ("MediaUrl", "y")]
    form = FormData(pairs)
    assert form.getlist("MediaUrl") == ["x", "y"] and form["MediaUrl"] == "x"
    good = sign(url, form)
    assert signature_valid(AUTH_TOKEN, url, form, good)
    assert not signature_valid(AUTH_TOKEN, url + "?x=1", form, good)
    assert not signature_valid(AUTH_TOKEN, url, FormData(pairs[:2]), good)
    assert not signature_valid("", url, form, good) and not signature_valid(
        AUTH_TOKEN, url, form, ""
    )
    assert not signature_valid(AUTH_TOKEN, url, form, "ش" + good[1:])  # not ASCII: no error


def test_a_valid_signature_costs_one_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature of the URL as configured is checked first; the URL with its default port
    written out (or left out), which Twilio may have signed instead, is still accepted."""
    url = PUBLIC_URL + "/webhooks/twilio"
    form = FormData([("Body", "a"), ("From", "+966551234567")])
    computed: list[str] = []
    compute = RequestValidator.compute_signature

    def counted(self: RequestValidator, uri: str, params: object, algorithm: object = None) -> str:
        computed.append(uri)
        return compute(self, uri, params, algorithm)

    with_port = PUBLIC_URL.replace(".org", ".org:443") + "/webhooks/twilio"
    assert with_port != url
    good, ported, other = sign(url, form), sign(with_port, form), sign(url + "x", form)
    monkeypatch.setattr(RequestValidator, "compute_signature", counted)
    assert signature_valid(AUTH_TOKEN, url, form, good)
    assert computed == [url]
    assert signature_valid(AUTH_TOKEN, url, form, ported)
    assert not signature_valid(AUTH_TOKEN, url, form, other)


def test_status_callback_form() -> None:
    report = parse_status_form(
        {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    assert (report.provider_id, report.status, report.error_code) == ("SM1", "undelivered", "30003")
    assert parse_status_form({"SmsSid": "SM2", "SmsStatus": "delivered"}).error_code is None
    with pytest.raises(BadForm):
        parse_status_form({"MessageSid": "SM3"})


@pytest.mark.parametrize(
    ("sender", "text", "expected"),
    [
        ("+966551234567", "STOP", OptChange.STOP),
        ("+966551234567", " stop. ", OptChange.STOP),
        ("+966551234567", "Cancel", OptChange.STOP),  # Twilio blocks the number on SMS anyway
        ("whatsapp:+966551234567", "cancel", None),  # on WhatsApp it leaves a form
        ("whatsapp:+966551234567", "Stop", OptChange.STOP),
        ("whatsapp:+966551234567", "إيقاف", OptChange.STOP),
        ("+966551234567", "ايقاف", OptChange.STOP),
        ("+966551234567", "START", OptChange.START),
        ("whatsapp:+966551234567", "تشغيل", OptChange.START),
        ("+966551234567", "please stop the form", None),
        ("+966551234567", "YES", None),  # only an opt-in when Twilio says so
    ],
)
def test_opt_out_and_in_words(sender: str, text: str, expected: OptChange | None) -> None:
    assert opt_change(parse_twilio_form(twilio_form(sender, text))) is expected


def test_twilio_advanced_opt_out_is_followed() -> None:
    form = {**twilio_form("+966551234567", "YES"), "OptOutType": "START"}
    assert opt_change(parse_twilio_form(form)) is OptChange.START


# -- SMS parts and rendering ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # two septets each
        ("€" * 81, 2),
        ("ب" * 70, 1),
        ("ب" * 71, 2),
        ("ب" * 134, 2),
        ("ب" * 135, 3),
        ("ب" * 200, 3),
        ("a" * 69 + "ب", 1),  # one Arabic letter makes the whole message UCS-2
        ("a" * 70 + "ب", 2),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("😀" * 36, 2),
    ],
)
def test_sms_parts(text: str, parts: int) -> None:
    assert sms_parts(text) == parts


MENU = Reply(
    "كيف يمكننا خدمتك؟ اختر رقم الخدمة أو اكتب سؤالك:",
    choices=(Choice("تقديم طلب دعم", "apply"), Choice("متابعة طلبي", "status")),
    short_text="اختر رقما:",
)


def test_whatsapp_has_numbered_lines() -> None:
    assert render_whatsapp(MENU) == (
        "كيف يمكننا خدمتك؟ اختر رقم الخدمة أو اكتب سؤالك:\n\n1. تقديم طلب دعم\n2. متابعة طلبي"
    )
    long = render_whatsapp(Reply("x" * 5000))
    assert len(long) == 1600 and long.endswith("…")
    # Shortened to Twilio's limit, a question keeps its numbered choices (the summary of a
    # long complaint lost "1. Confirm and send" and the rest).
    summary = render_whatsapp(Reply("تفاصيل " * 400, choices=MENU.choices))
    assert len(summary) <= 1600
    assert summary.endswith("…\n\n1. تقديم طلب دعم\n2. متابعة طلبي")


def test_sms_uses_the_short_variant_and_short_lines() -> None:
    assert render_sms(MENU, 4) == "اختر رقما:\n1 تقديم طلب دعم\n2 متابعة طلبي"


def test_a_label_that_begins_with_its_number_is_not_numbered_twice() -> None:
    rating = Reply(
        "كم تقيّم الخدمة من 1 إلى 5؟",
        choices=(Choice("1 ضعيف", "1"), Choice("2 مقبول", "2"), Choice("3", "3")),
    )
    assert render_sms(rating, 4).splitlines()[1:] == ["1 ضعيف", "2 مقبول", "3 3"]
    assert render_whatsapp(rating).splitlines()[-3:] == ["1. ضعيف", "2. مقبول", "3. 3"]


def test_sms_is_cut_to_the_limit_keeping_the_choices() -> None:
    words = " ".join(["كلمة"] * 100)
    body = render_sms(Reply(words, choices=MENU.choices), 2)
    assert sms_parts(body) <= 2 and body.endswith("1 تقديم طلب دعم\n2 متابعة طلبي")
    assert "كلمة…\n1" in body  # cut at a whole word
    latin = render_sms(Reply("word " * 200), 1)
    assert latin.endswith("...") and sms_parts(latin) == 1 and len(latin) <= 160


def test_english_sms_keeps_to_gsm7_where_only_typography_or_an_emoji_would_cost_ucs2() -> None:
    submitted = Reply("✅ Your request was received \u2014 reference SR-2026-00042. We’ll reply")
    body = render_sms(submitted, 4)
    assert body == "Your request was received - reference SR-2026-00042. We'll reply"
    assert sms_units(body)[1] == 160  # one GSM-7 part, where UCS-2 would have taken two
    assert render_sms(Reply("Done ✅. Thanks 🌿"), 1) == "Done. Thanks"
    # Arabic is UCS-2 anyway: nothing is taken from it, and a mixed message stays whole.
    arabic = Reply("✅ تم استلام طلبك — SR-2026-00042", choices=(Choice("Menu “1”", "menu"),))
    assert render_sms(arabic, 4) == "✅ تم استلام طلبك — SR-2026-00042\n1 Menu “1”"


def test_a_question_or_a_persons_message_may_take_ten_parts() -> None:
    from adapters.twilio.render import sms_budget

    question = Reply("نص " * 200, choices=MENU.choices)
    notice = Reply("نص " * 200)
    assert sms_budget(question, 4, whole=False) == 10
    assert sms_budget(notice, 4, whole=False) == 4
    assert sms_budget(notice, 4, whole=True) == 10
    assert sms_budget(notice, 12, whole=True) == 12


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=1, max_size=800),
    labels=st.lists(st.text(min_size=1, max_size=60), max_size=8),
    max_parts=st.integers(min_value=1, max_value=6),
)
def test_sms_never_exceeds_the_part_limit(text: str, labels: list[str], max_parts: int) -> None:
    reply = Reply(text, choices=tuple(Choice(label, str(i)) for i, label in enumerate(labels)))
    assert sms_parts(render_sms(reply, max_parts)) <= max_parts


# -- sending -------------------------------------------------------------------------------


def test_errors_become_ours() -> None:
    def error(status: int, code: int | None) -> DeliveryError:
        return map_error(TwilioRestException(status, "/Messages.json", "msg", code))

    assert isinstance(error(429, 20429), RateLimited)
    assert isinstance(error(400, 21610), Unreachable)  # the person sent STOP to Twilio
    assert isinstance(error(400, 21211), Unreachable)
    assert isinstance(error(400, 63016), Held)
    for status, code in [(500, None), (503, 20503), (401, 20003), (400, 21604)]:
        assert type(error(status, code)) is DeliveryError
    # What an operator reads in `tawasul outbox failed` says what to check.
    assert "auth_token" in str(error(401, 20003))
    assert "geographic permissions" in str(error(400, 21408))
    assert str(error(400, 21604)) == "twilio 400 error 21604"


def test_template_variables_by_name_and_position() -> None:
    reply = Reply("x", params=(("reference", "SR-1448-00001"), ("status", "مقبول"), ("note", "")))
    assert json.loads(template_variables(reply)) == {
        "1": "SR-1448-00001",
        "reference": "SR-1448-00001",
        "2": "مقبول",
        "status": "مقبول",
        "3": "-",
        "note": "-",
    }
    multi = Reply("x", params=(("note", "سطر\nآخر"),))
    assert json.loads(template_variables(multi))["note"] == "سطر آخر"


def delivery(channel: Channel, *, hours_ago: float | None, kind: DeliveryKind) -> Delivery:
    last = None if hours_ago is None else NOW - timedelta(hours=hours_ago)
    return Delivery(1, channel, "+966551234567", MENU, kind=kind, last_inbound_at=last)


def test_what_is_sent_depends_on_the_window() -> None:
    sender = TwilioSender(
        TwilioSettings(
            ACCOUNT_SID,
            AUTH_TOKEN,
            whatsapp_from="+966112345678",
            sms_from="MG" + "0" * 32,
            templates={"survey": "HX1"},
        ),
        clock=lambda: NOW,
    )
    inside = sender.message_fields(
        delivery(Channel.WHATSAPP, hours_ago=23.9, kind=DeliveryKind.SURVEY)
    )
    assert inside["from_"] == "whatsapp:+966112345678" and inside["to"] == "whatsapp:+966551234567"
    assert inside["body"].startswith("كيف") and "content_sid" not in inside
    outside = sender.message_fields(
        delivery(Channel.WHATSAPP, hours_ago=24.1, kind=DeliveryKind.SURVEY)
    )
    assert outside["content_sid"] == "HX1" and "body" not in outside
    with pytest.raises(Held, match="no template for reminder"):
        sender.message_fields(
            delivery(Channel.WHATSAPP, hours_ago=None, kind=DeliveryKind.REMINDER)
        )
    sms = sender.message_fields(delivery(Channel.SMS, hours_ago=None, kind=DeliveryKind.DECISION))
    assert sms["messaging_service_sid"] == "MG" + "0" * 32 and sms["body"].startswith("اختر")


def test_a_staff_members_long_sms_is_not_cut_to_the_bots_budget() -> None:
    sender = TwilioSender(
        TwilioSettings(ACCOUNT_SID, AUTH_TOKEN, sms_from="+966112345678", sms_max_parts=4),
        clock=lambda: NOW,
    )
    text = "نرجو إحضار المستندات الأصلية إلى مقر الجمعية قبل نهاية الأسبوع " * 6  # ~380 letters
    for kind, whole in ((DeliveryKind.STAFF, True), (DeliveryKind.NOTIFICATION, False)):
        fields = sender.message_fields(
            Delivery(1, Channel.SMS, "+966551234567", Reply(text), kind=kind)
        )
        assert (fields["body"] == text.strip()) is whole, kind
        assert sms_parts(fields["body"]) <= (10 if whole else 4)


async def test_the_client_is_pointed_at_the_configured_base() -> None:
    client = BaseUrlHttpClient("http://127.0.0.1:9/prefix/")
    try:
        rewritten = client.rewrite(
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?a=b"
        )
        assert rewritten == "http://127.0.0.1:9/prefix/2010-04-01/Accounts/AC1/Messages.json?a=b"
    finally:
        await client.close()


async def test_the_client_posts_the_form_as_twilio_reads_it() -> None:
    """The library hands the client a dict; it goes out as a form, lists as repeated fields,
    Arabic in UTF-8, with its content type."""
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    async def record(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append((request.content_type, [(k, str(v)) for k, v in form.items()]))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/x", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = BaseUrlHttpClient(f"http://127.0.0.1:{port}")
    try:
        data = {"Body": "مرحبا & أهلا = 100%", "MediaUrl": ["https://a/1", "https://a/2"]}
        response = await client.request("POST", "https://api.twilio.com/x", data=data)
        assert response.status_code == 200
    finally:
        await client.close()
        await runner.cleanup()
    assert seen == [
        (
            "application/x-www-form-urlencoded",
            [
                ("Body", "مرحبا & أهلا = 100%"),
                ("MediaUrl", "https://a/1"),
                ("MediaUrl", "https://a/2"),
            ],
        )
    ]


async def test_wrong_credentials_and_no_server_are_retried_errors(fake_twilio: FakeTwilio) -> None:
    wrong = TwilioSender(
        TwilioSettings(
            ACCOUNT_SID,
            "not-the-token",
            sms_from="+966112345679",
            api_base_url=fake_twilio.base_url,
        )
    )
    down = TwilioSender(
        TwilioSettings(
            ACCOUNT_SID,
            AUTH_TOKEN,
            sms_from="+966112345679",
            api_base_url=f"http://127.0.0.1:{free_port()}",
        )
    )
    right = TwilioSender(
        TwilioSettings(
            ACCOUNT_SID, AUTH_TOKEN, sms_from="+966112345679", api_base_url=fake_twilio.base_url
        )
    )
    try:
        sms = delivery(Channel.SMS, hours_ago=None, kind=DeliveryKind.REPLY)
        with pytest.raises(DeliveryError, match="20003") as refused:
            await wrong.send(sms)
        assert type(refused.value) is DeliveryError and fake_twilio.refused_auth == 1
        with pytest.raises(DeliveryError, match="twilio unreachable"):
            await down.send(sms)
        sent = await right.send(sms)
        assert sent.provider_id == fake_twilio.messages[-1]["sid"] and sent.parts == 1
        assert fake_twilio.messages[-1]["From"] == "+966112345679"
    finally:
        for sender in (wrong, down, right):
            await sender.close()


def test_templates_by_catalogue_key_then_kind() -> None:
    templates = {"decision": "HX-d", "survey": "HX-s", "survey.ask_conversation": "HX-c"}

    def chosen(key: str, kind: DeliveryKind) -> str | None:
        reply = Reply("x", key=key)
        return template_for(
            Delivery(1, Channel.WHATSAPP, "+966551234567", reply, kind=kind), templates
        )

    assert chosen("notify.status_changed", DeliveryKind.DECISION) == "HX-d"
    assert chosen("survey.ask_request", DeliveryKind.DECISION) == "HX-s"  # sent with a decision
    assert chosen("survey.ask_conversation", DeliveryKind.NOTIFICATION) == "HX-c"
    assert chosen("notify.closed", DeliveryKind.NOTIFICATION) is None


def test_no_sms_text_tells_a_beneficiary_to_type_an_opt_out_word() -> None:
    """On SMS Twilio blocks a number that sends CANCEL or QUIT: the help and the buttons
    offer "exit" (which leaves a form) instead, so that nobody opts out by following them."""
    import re

    from adapters.twilio.inbound import SMS_STOP_WORDS
    from conversations.catalog import default_catalog

    catalog = default_catalog()
    for lang in ("ar", "en"):
        help_words = set(re.findall(r"[a-z]+", catalog.text(lang, "help.sms").lower()))
        assert not help_words & SMS_STOP_WORDS, lang
        labels = {k: catalog.text(lang, k) for k in catalog.keys(lang) if k.startswith("choice.")}
        for key, label in labels.items():
            assert label.strip().lower() not in SMS_STOP_WORDS, (lang, key, label)
    assert "exit" in catalog.text("en", "words.cancel").split("|")

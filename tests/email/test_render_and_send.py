"""Replies as email (threading headers, plain + right-to-left HTML, numbered choices) and the
SMTP sender against a real SMTP server delivering into Dovecot."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default

import pytest

from adapters.email.parse import parse_email
from adapters.email.render import FilePart, Letterhead, render_reply, reply_subject
from adapters.email.smtp import SmtpSender, SmtpSettings
from conversations.delivery import Delivery, DeliveryError, DeliveryKind, Unreachable
from conversations.messages import Ask, Channel, Choice, Reply
from tests.conftest import free_port
from tests.email.mailserver import PASSWORD, MailServer

HEAD = Letterhead(
    address="bot@example.test",
    name="جمعية البر",
    domain="example.test",
    footer="هذه رسالة من خدمة المستفيدين.",
    choose_hint="للاختيار، اكتب رقم الخيار.",
    attach_hint="أرفق الملف بردّك.",
    default_subject="رد على رسالتك",
)


def delivery(
    reply: Reply, *, lang: str = "ar", kind: DeliveryKind = DeliveryKind.REPLY, to: str = ""
) -> Delivery:
    return Delivery(
        outbox_id=1,
        channel=Channel.EMAIL,
        address=to or "amal@example.test",
        reply=reply,
        kind=kind,
        lang=lang,
        in_reply_to="<CAJ8xq1t0kR6@mail.gmail.com>",
        thread_id="<first-1@example.test>",
    )


MENU = Reply(
    "حياك الله. كيف أخدمك؟",
    choices=(Choice("الأسئلة الشائعة", "faq"), Choice("تقديم طلب دعم", "apply")),
)


def test_an_arabic_reply_with_choices() -> None:
    msg = render_reply(delivery(MENU), HEAD, subject="Re: استفسار")
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["In-Reply-To"] == "<CAJ8xq1t0kR6@mail.gmail.com>"
    assert msg["References"] == "<first-1@example.test> <CAJ8xq1t0kR6@mail.gmail.com>"
    assert msg["Subject"] == "Re: استفسار"
    assert str(msg["Message-ID"]).endswith("@example.test>")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].addresses[0].display_name == "جمعية البر"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content()
    assert "١. الأسئلة الشائعة\n٢. تقديم طلب دعم" in text
    assert "للاختيار، اكتب رقم الخيار." in text
    markup = html.get_content()
    assert 'dir="rtl"' in markup and 'lang="ar"' in markup
    assert "١. الأسئلة الشائعة" in markup


def test_an_english_reply_is_left_to_right_with_latin_numbers() -> None:
    reply = Reply("How can I help?", choices=(Choice("FAQ", "faq"), Choice("Apply", "apply")))
    msg = render_reply(delivery(reply, lang="en"), HEAD, subject="Re: hello")
    html = msg.get_body(("html",))
    assert html is not None and 'dir="ltr"' in html.get_content()
    plain = msg.get_body(("plain",))
    assert plain is not None and "1. FAQ\n2. Apply" in plain.get_content()


def test_a_staff_message_is_not_marked_automatic_and_a_file_is_attached() -> None:
    reply = Reply("مرفق خطاب القرار", ask=Ask.ATTACHMENT)
    msg = render_reply(
        delivery(reply, kind=DeliveryKind.STAFF),
        HEAD,
        subject="Re: x",
        files=[FilePart("قرار.pdf", "application/pdf", b"%PDF-1.4 decision")],
    )
    assert msg["Auto-Submitted"] is None
    attached = list(msg.iter_attachments())
    assert [a.get_filename() for a in attached] == ["قرار.pdf"]
    assert attached[0].get_content() == b"%PDF-1.4 decision"
    plain = msg.get_body(("plain",))
    assert plain is not None and "أرفق الملف بردّك." in plain.get_content()


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("استفسار عن الدعم", "Re: استفسار عن الدعم"),
        ("Re: RE: question", "Re: question"),
        ("رد: طلب", "Re: طلب"),
        ("", "رد على رسالتك"),
        (None, "رد على رسالتك"),
    ],
)
def test_reply_subject(original: str | None, expected: str) -> None:
    assert reply_subject(original, "رد على رسالتك") == expected


def test_a_beneficiary_answering_our_mail_is_read_as_just_their_answer() -> None:
    ours = render_reply(delivery(MENU), HEAD, subject="Re: استفسار").get_body(("plain",))
    assert ours is not None
    quoted = "\n".join("> " + line for line in ours.get_content().splitlines())
    answer = EmailMessage()
    answer["From"] = "amal@example.test"
    answer["Subject"] = "Re: استفسار"
    attribution = "في الأحد 22 نوفمبر 2026، كتب جمعية البر <bot@example.test>:"
    answer.set_content(f"٢\n\n{attribution}\n{quoted}\n")
    assert parse_email(answer.as_bytes(policy=SMTP_POLICY)).text == "٢"


# -- the sender against the real SMTP server ------------------------------------------------------


def sender(server: MailServer, **changes: object) -> SmtpSender:
    settings = SmtpSettings(host="127.0.0.1", port=server.smtp_port, security="none", timeout=5)
    for key, value in changes.items():
        object.__setattr__(settings, key, value)

    async def compose(d: Delivery) -> EmailMessage:
        return render_reply(d, HEAD, subject="Re: استفسار")

    return SmtpSender(settings, compose)


async def test_sent_mail_arrives_in_the_beneficiary_mailbox(mail_server: MailServer) -> None:
    person = mail_server.new_user("amal")
    sent = await sender(mail_server).send(delivery(MENU, to=person))
    inbox = await asyncio.to_thread(mail_server.messages, person)
    assert [m["Message-ID"] for m in inbox] == [sent.provider_id]
    assert inbox[0]["In-Reply-To"] == "<CAJ8xq1t0kR6@mail.gmail.com>"
    body = inbox[0].get_body(("plain",))
    assert body is not None and "٢. تقديم طلب دعم" in body.get_content()


async def test_login_with_the_configured_account(mail_server: MailServer) -> None:
    bot, person = mail_server.new_user("bot"), mail_server.new_user("amal")
    await sender(mail_server, username=bot, password=PASSWORD).send(delivery(MENU, to=person))
    assert len(await asyncio.to_thread(mail_server.messages, person)) == 1
    with pytest.raises(DeliveryError, match="login refused"):
        await sender(mail_server, username=bot, password="wrong").send(delivery(MENU, to=person))


async def test_an_unknown_recipient_is_unreachable(mail_server: MailServer) -> None:
    with pytest.raises(Unreachable):
        await sender(mail_server).send(delivery(MENU, to="nobody-here@example.test"))


async def test_a_temporary_refusal_is_retried_later(mail_server: MailServer) -> None:
    person = mail_server.new_user("amal")
    mail_server.refuse_next_rcpt.append(450)
    with pytest.raises(DeliveryError) as caught:
        await sender(mail_server).send(delivery(MENU, to=person))
    assert not isinstance(caught.value, Unreachable)


async def test_no_server_is_a_delivery_error() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", timeout=2)

    async def compose(d: Delivery) -> EmailMessage:
        return render_reply(d, HEAD, subject="x")

    with pytest.raises(DeliveryError) as caught:
        await SmtpSender(settings, compose).send(delivery(MENU))
    assert not isinstance(caught.value, Unreachable)


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_starttls_and_implicit_tls(mail_server: MailServer, security: str) -> None:
    person = mail_server.new_user("amal")
    port = mail_server.smtp_port if security == "starttls" else mail_server.smtps_port
    await sender(
        mail_server, port=port, security=security, tls_context=mail_server.tls_context()
    ).send(delivery(MENU, to=person))
    inbox = await asyncio.to_thread(mail_server.messages, person)
    assert len(inbox) == 1
    received = message_from_bytes(inbox[0].as_bytes(), policy=default)
    assert received["Subject"] == "Re: استفسار"

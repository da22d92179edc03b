"""A reply as an email: plain text and HTML (right-to-left for Arabic), choices as a
numbered list the beneficiary answers with a number, and the headers that keep it in the
beneficiary's thread."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from conversations.delivery import Delivery, DeliveryKind
from conversations.messages import numbered_label

ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|رد)\s*:\s*", re.IGNORECASE)
MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Letterhead:
    """Who the mail is from and the texts every mail carries, in the reply's language."""

    address: str
    name: str
    domain: str  # for our Message-IDs
    footer: str  # under every mail
    choose_hint: str  # under a numbered list: answer with the number
    attach_hint: str  # when a file is asked for
    default_subject: str  # when there is no thread to answer in


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes


def reply_subject(original: str | None, fallback: str) -> str:
    """ "Re: <the beneficiary's subject>", never "Re: Re: ..."."""
    subject = " ".join((original or "").split())
    if not subject:
        return fallback
    while REPLY_PREFIX.match(subject):
        subject = REPLY_PREFIX.sub("", subject, count=1)
    return f"Re: {subject}" if subject else fallback


def number(n: int, lang: str) -> str:
    return str(n).translate(ARABIC_DIGITS) if lang == "ar" else str(n)


def references(delivery: Delivery) -> list[str]:
    ids: list[str] = []
    for value in (delivery.thread_id, delivery.in_reply_to):
        for found in MSG_ID.findall(value or ""):
            if found not in ids:
                ids.append(found)
    return ids


def render_reply(
    delivery: Delivery,
    head: Letterhead,
    *,
    subject: str,
    files: Sequence[FilePart] = (),
    now: datetime | None = None,
) -> EmailMessage:
    reply = delivery.reply
    lang = "ar" if delivery.lang == "ar" else "en"
    paragraphs = [p for p in reply.text.strip().split("\n\n") if p.strip()] or [""]
    choices = [
        f"{number(i, lang)}. {numbered_label(i, choice.label)}"
        for i, choice in enumerate(reply.choices, start=1)
    ]
    hints = []
    if choices:
        hints.append(head.choose_hint)
    if reply.ask is not None and reply.ask.value == "attachment":
        hints.append(head.attach_hint)

    plain = "\n\n".join(paragraphs)
    if choices:
        plain += "\n\n" + "\n".join(choices)
    for hint in hints:
        plain += "\n\n" + hint
    plain += "\n\n-- \n" + head.footer + "\n"

    msg = EmailMessage()
    msg["From"] = Address(display_name=head.name, addr_spec=head.address)
    msg["To"] = delivery.address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=head.domain)
    thread = references(delivery)
    if delivery.in_reply_to and MSG_ID.search(delivery.in_reply_to):
        msg["In-Reply-To"] = MSG_ID.findall(delivery.in_reply_to)[0]
    if thread:
        msg["References"] = " ".join(thread)
    if delivery.kind is not DeliveryKind.STAFF:
        # RFC 3834: other robots (out-of-office) must not answer the bot, or loops follow.
        msg["Auto-Submitted"] = (
            "auto-replied" if delivery.kind is DeliveryKind.REPLY else "auto-generated"
        )
    msg.set_content(plain, charset="utf-8")
    msg.add_alternative(_html(paragraphs, choices, hints, head.footer, lang), subtype="html")
    # After the body: setting the content clears Content-* headers.
    msg["Content-Language"] = lang
    for part in files:
        maintype, _, subtype = part.content_type.partition("/")
        msg.add_attachment(
            part.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=part.filename,
        )
    return msg


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.strip().split("\n"))


def _html(
    paragraphs: Sequence[str], choices: Sequence[str], hints: Sequence[str], footer: str, lang: str
) -> str:
    direction = "rtl" if lang == "ar" else "ltr"
    align = "right" if lang == "ar" else "left"
    body = [f'<p style="margin:0 0 1em">{_lines(p)}</p>' for p in paragraphs]
    if choices:
        items = "".join(f'<div style="margin:0 0 .4em">{html.escape(c)}</div>' for c in choices)
        body.append(f'<div style="margin:0 0 1em">{items}</div>')
    body += [f'<p style="margin:0 0 1em;color:#555">{html.escape(h)}</p>' for h in hints]
    body.append(
        '<p style="margin:1.5em 0 0;padding-top:.5em;border-top:1px solid #ddd;'
        f'color:#777;font-size:90%">{html.escape(footer)}</p>'
    )
    return (
        f'<!DOCTYPE html><html dir="{direction}" lang="{lang}"><head><meta charset="utf-8">'
        f'</head><body dir="{direction}" style="text-align:{align};'
        'font-family:Tahoma,Arial,sans-serif;font-size:15px;line-height:1.6">'
        f'<div dir="{direction}" lang="{lang}">{"".join(body)}</div></body></html>\n'
    )

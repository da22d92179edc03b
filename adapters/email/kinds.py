"""Whether a mail comes from a person: RFC 3834 auto-replies, lists and bulk mail, and
delivery reports (bounces) with the address that failed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum

from adapters.email.headers import first_id, header_text


class MailKind(StrEnum):
    PERSONAL = "personal"
    AUTO_REPLY = "auto_reply"  # out-of-office, vacation and other automatic answers
    LIST = "list"  # mailing lists, newsletters, bulk mail
    BOUNCE = "bounce"  # a delivery status notification about mail we sent


@dataclass(frozen=True, slots=True)
class Bounce:
    failed_recipients: tuple[str, ...]
    original_message_id: str | None
    status: str | None


ROBOT_SENDERS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}


def classify(msg: Message, sender: str) -> MailKind:
    """RFC 3834 and the headers robots add; people's mail is the rest."""
    local = sender.split("@", 1)[0]
    ctype = msg.get_content_type()
    report = str(msg.get_param("report-type", "") or "").lower()
    if (ctype == "multipart/report" and report == "delivery-status") or local in ROBOT_SENDERS:
        return MailKind.BOUNCE
    auto = header_text(msg, "Auto-Submitted").split(";")[0].strip().lower()
    precedence = header_text(msg, "Precedence").lower()
    return_path = header_text(msg, "Return-Path")
    if (
        (auto and auto != "no")
        or msg.get("X-Autoreply") is not None
        or msg.get("X-Autorespond") is not None
        or precedence == "auto_reply"
        or return_path.replace(" ", "") == "<>"
    ):
        return MailKind.AUTO_REPLY
    if msg.get("List-Id") is not None or precedence in ("bulk", "list", "junk"):
        return MailKind.LIST
    return MailKind.PERSONAL


def bounce_of(msg: Message) -> Bounce:
    failed: list[str] = []
    status: str | None = None
    original: str | None = None
    for value in msg.get_all("X-Failed-Recipients") or []:
        failed += [a.lower() for _, a in getaddresses([str(value)]) if "@" in a]
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in _status_blocks(part):
                action = str(block.get("Action", "")).strip().lower()
                recipient = str(
                    block.get("Final-Recipient") or block.get("Original-Recipient") or ""
                )
                code = str(block.get("Status", "")).strip()
                if action == "failed" or code.startswith("5"):
                    address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
                    if "@" in address:
                        failed.append(address)
                        status = status or code or None
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            original = original or _returned_id(part)
    return Bounce(tuple(dict.fromkeys(failed)), original, status)


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [message_from_bytes(b.encode(), policy=policy.default) for b in text.split("\n\n")]


def _returned_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return first_id(header_text(payload[0], "Message-ID"))
    if isinstance(payload, str):
        found = re.search(r"^message-id:\s*(<[^<>\s]+>)", payload, re.IGNORECASE | re.MULTILINE)
        return found.group(1) if found else None
    return None

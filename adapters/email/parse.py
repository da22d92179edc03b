"""One raw mail, read the way the engine needs it: who wrote, in which thread, what they
wrote (without quoted history or signature), which files came with it, and whether it is
a person at all (RFC 3834: auto-replies, bounces and lists get no answer).

``parse_email`` never raises for a damaged body: it reads what it can and lists the
problems. Only a mail without any sender address is refused (``MalformedEmail``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from adapters.email.headers import MSG_ID, first_id, header_text, repair
from adapters.email.kinds import Bounce, MailKind, bounce_of, classify
from adapters.email.text import html_to_text, is_forward_mark, own_words, tidy

__all__ = ["Bounce", "MailFile", "MailKind", "MalformedEmail", "ParsedEmail", "parse_email"]


class MalformedEmail(ValueError):
    """A mail with nothing to answer: no sender address could be read from it."""


@dataclass(frozen=True, slots=True)
class MailFile:
    """An attached file as it came; the caller stores it under its own rules."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    message_id: str
    sender: str  # lower-case address
    display_name: str
    subject: str
    text: str  # only what the sender wrote
    files: tuple[MailFile, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    kind: MailKind
    bounce: Bounce | None
    sent_at: datetime | None
    forwarded: bool
    # What was wrong with the MIME structure and was read around (defect names).
    problems: tuple[str, ...]
    # Attached files that could not be decoded (and so are not in ``files``).
    damaged_files: int = 0

    @property
    def thread_id(self) -> str:
        """The thread's first message: References' first id, else the one replied to."""
        if self.references:
            return self.references[0]
        return self.in_reply_to or self.message_id

    @property
    def is_reply(self) -> bool:
        return bool(self.in_reply_to or self.references)


FORWARD_SUBJECT = re.compile(
    r"^\s*(fwd?|fw|إعادة توجيه|إعادة إرسال|توجيه|تحويل)\s*:", re.IGNORECASE
)
ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
LATIN1_FAMILY = {"iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "us-ascii", "ascii"}
# Parts that are never the beneficiary's document: signatures, vCards, Outlook's TNEF,
# and the machine-readable parts of reports.
IGNORED_TYPES = {
    "application/ms-tnef",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pgp-signature",
    "application/pgp-keys",
    "text/vcard",
    "text/x-vcard",
    "text/calendar",
    "message/delivery-status",
    "message/disposition-notification",
    "text/rfc822-headers",
    "message/rfc822-headers",
}


def parse_email(raw: bytes) -> ParsedEmail:
    msg: Message = message_from_bytes(raw, policy=policy.default)
    problems: list[str] = [type(d).__name__ for d in msg.defects]
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        repaired = _with_found_boundary(raw)
        if repaired is not None:
            problems.append("multipart boundary taken from the body")
            msg = repaired
    sender, display_name = _sender(msg)
    if not sender:
        raise MalformedEmail("no sender address in From, Sender or Return-Path")
    subject = header_text(msg, "Subject")
    message_id = first_id(header_text(msg, "Message-ID"))
    if message_id is None:
        # Stable across reads, so a mail without an id is still stored once.
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id.invalid>"
    references = tuple(MSG_ID.findall(header_text(msg, "References")))
    in_reply_to = first_id(header_text(msg, "In-Reply-To"))

    kind = classify(msg, sender)
    bounce = bounce_of(msg) if kind is MailKind.BOUNCE else None
    try:
        text, forwarded, body_ids = _body(msg, subject, problems)
        files, damaged = _files(msg, body_ids, problems)
    except Exception as exc:  # the email package's own failures on a damaged structure
        problems.append(f"unreadable structure ({type(exc).__name__})")
        text, forwarded, files, damaged = _salvage(raw), False, [], 0
    return ParsedEmail(
        message_id=message_id,
        sender=sender,
        display_name=display_name,
        subject=subject,
        text=text,
        files=tuple(files),
        in_reply_to=in_reply_to,
        references=references,
        kind=kind,
        bounce=bounce,
        sent_at=_date(msg),
        forwarded=forwarded,
        problems=tuple(dict.fromkeys(problems)),
        damaged_files=damaged,
    )


# -- headers -----------------------------------------------------------------------------------


def _sender(msg: Message) -> tuple[str, str]:
    for name in ("From", "Sender", "Return-Path"):
        value = header_text(msg, name)
        if not value:
            continue
        pairs = getaddresses([value])
        for display, address in pairs or [parseaddr(value)]:
            address = address.strip().lower()
            if "@" in address and " " not in address:
                return address, display.strip().strip('"')
    return "", ""


def _date(msg: Message) -> datetime | None:
    value = header_text(msg, "Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


# -- the body ----------------------------------------------------------------------------------


def decode_part(part: Message, problems: list[str]) -> str:
    """A text part's characters, whatever its charset label says (or fails to say)."""
    problems.extend(type(d).__name__ for d in part.defects)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(part.get_payload()).encode("utf-8", "surrogateescape")
    declared = (part.get_content_charset() or "").lower()
    if declared in LATIN1_FAMILY and re.search(rb"[\x80-\xff]", data):
        # Arabic Windows mail mislabelled as Latin-1 is common; the letters tell.
        arabic = data.decode("windows-1256", "replace")
        non_ascii = [ch for ch in arabic if ord(ch) > 127]
        if non_ascii and sum(bool(ARABIC.match(ch)) for ch in non_ascii) > 0.6 * len(non_ascii):
            problems.append(f"charset {declared} read as windows-1256")
            return arabic
    for charset in (declared, "utf-8", "windows-1256"):
        if not charset:
            continue
        try:
            return data.decode(charset)
        except UnicodeDecodeError as exc:
            if exc.encoding.replace("_", "-") == "utf-8" and exc.start >= len(data) - 3:
                # A character cut in half at the end (a mail read only in part).
                return data[: exc.start].decode("utf-8", "replace")
            if charset == declared:
                problems.append(f"charset {declared} did not decode")
        except LookupError:
            problems.append(f"unknown charset {declared}")
    return data.decode("utf-8", "replace")


def _body(msg: Message, subject: str, problems: list[str]) -> tuple[str, bool, set[int]]:
    if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        # Declared multipart, but no boundary was found: the parts run together as text.
        problems.append("multipart without its boundary")
        return _strip_mime_lines(decode_part(msg, problems)), False, {id(msg)}
    assert isinstance(msg, EmailMessage)
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    forwarded = bool(FORWARD_SUBJECT.match(subject)) or any(
        p.get_content_type() == "message/rfc822" for p in msg.walk() if p is not msg
    )
    body_ids = {id(p) for p in (plain, html) if p is not None}
    text = ""
    if plain is not None:
        raw_text = decode_part(plain, problems)
        forwarded = forwarded or any(is_forward_mark(x) for x in raw_text.splitlines())
        text = own_words(raw_text, forwarded=forwarded)
    if not text and html is not None:
        markup = decode_part(html, problems)
        text = own_words(html_to_text(markup), forwarded=forwarded)
        if not text and forwarded:
            text = own_words(html_to_text(markup, keep_quotes=True), forwarded=True)
    if not text and forwarded:
        text = _attached_message_text(msg, problems)
    return text, forwarded, body_ids


def _attached_message_text(msg: Message, problems: list[str]) -> str:
    for part in msg.walk():
        if part.get_content_type() != "message/rfc822":
            continue
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
            body = inner[0].get_body(preferencelist=("plain", "html"))
            if body is None:
                continue
            content = decode_part(body, problems)
            if body.get_content_type() == "text/html":
                content = html_to_text(content)
            return own_words(content, forwarded=True)
    return ""


def _strip_mime_lines(text: str) -> str:
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith("--")
        and not re.match(r"^content-[\w-]+\s*:", line, re.IGNORECASE)
        and not re.match(r"^\s+(boundary|charset|name|filename)=", line, re.IGNORECASE)
    ]
    return own_words("\n".join(lines))


def _with_found_boundary(raw: bytes) -> Message | None:
    """The mail re-read with the boundary its body really uses, when the header's is wrong."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    found = re.search(rb"^--(\S{1,70}?)(--)?[ \t]*\r?$", body, re.MULTILINE)
    if not found:
        return None
    boundary = found.group(1).replace(b'"', b"")
    fixed, count = re.subn(
        rb'boundary\s*=\s*("[^"]*"|[^;\s]+)',
        b'boundary="' + boundary.replace(b"\\", b"\\\\") + b'"',
        head,
        count=1,
        flags=re.IGNORECASE,
    )
    if not count:
        return None
    msg = message_from_bytes(fixed + sep + body, policy=policy.default)
    return msg if msg.is_multipart() else None


def _salvage(raw: bytes) -> str:
    """The text after the header block, when the structure cannot be read at all."""
    _, _, rest = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    try:
        text = rest.decode("utf-8")
    except UnicodeDecodeError:
        text = rest.decode("windows-1256", "replace")
    return _strip_mime_lines(tidy(text))


# -- attached files ----------------------------------------------------------------------------


DECODING_DEFECTS = {
    "InvalidBase64PaddingDefect",
    "InvalidBase64CharactersDefect",
    "InvalidBase64LengthDefect",
}


def _files(msg: Message, body_ids: set[int], problems: list[str]) -> tuple[list[MailFile], int]:
    found: list[MailFile] = []
    damaged: list[str] = []
    _collect(msg, body_ids, problems, found, damaged, related=False)
    return found, len(damaged)


def _collect(
    part: Message,
    body_ids: set[int],
    problems: list[str],
    found: list[MailFile],
    damaged: list[str],
    *,
    related: bool,
) -> None:
    ctype = part.get_content_type()
    if part.is_multipart():
        inner = related or ctype == "multipart/related"
        children = part.get_payload()
        for child in children if isinstance(children, list) else []:
            if isinstance(child, Message):
                _collect(child, body_ids, problems, found, damaged, related=inner)
        return
    if id(part) in body_ids or ctype in IGNORED_TYPES:
        return
    disposition = part.get_content_disposition()
    filename = repair(part.get_filename() or "")
    if part.get_content_maintype() == "text" and disposition != "attachment":
        return  # another rendering of the text, not a document
    if part.get_content_maintype() == "image" and related and part.get("Content-ID"):
        return  # pictures inside the HTML: logos, signatures, pasted images
    data = part.get_payload(decode=True)
    defects = [type(d).__name__ for d in part.defects]
    problems.extend(defects)
    if DECODING_DEFECTS.intersection(defects):
        damaged.append(filename or ctype)
        return
    if not isinstance(data, bytes) or not data:
        return
    found.append(MailFile(filename or _default_name(ctype), ctype, data))


def _default_name(ctype: str) -> str:
    return "attachment." + ctype.rsplit("/", 1)[-1].split("+")[0]

"""Header values as people wrote them: RFC 2047 words decoded, raw 8-bit bytes read as
UTF-8 or windows-1256, message ids in their angle brackets."""

from __future__ import annotations

import re
from email.message import Message

MSG_ID = re.compile(r"<[^<>\s]+>")


def repair(value: str) -> str:
    """Raw 8-bit header bytes (not RFC 2047 encoded) come through as surrogate escapes."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    for charset in ("utf-8", "windows-1256"):
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def header_text(msg: Message, name: str) -> str:
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return ""
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        value: object = repair(raw)  # 8-bit bytes the policy would turn into U+FFFD
    else:
        try:
            value = msg.get(name)
        except Exception:  # a header the policy cannot parse: take it as written
            value = raw
    return " ".join(str(value).split())


def first_id(value: str) -> str | None:
    found = MSG_ID.search(value)
    if found:
        return found.group(0)
    token = value.strip()
    return f"<{token}>" if token and " " not in token else None

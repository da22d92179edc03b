"""A reply as WhatsApp or SMS text, and what an SMS costs in parts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from conversations.messages import Reply, numbered_label

# Twilio refuses longer bodies.
WHATSAPP_MAX_CHARS = 1600
# Twilio's advice for the most parts one SMS should take; text a beneficiary must read whole
# to answer (a question, a form's summary) or that a person wrote is allowed this many.
SMS_WHOLE_PARTS = 10

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# These take an escape character as well, so two septets each.
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


# Typography a phone shows as well in GSM-7 (what Twilio's "smart encoding" does too).
GSM7_LOOKALIKES = str.maketrans(
    {
        "—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "«": '"', "»": '"',
        "•": "-", "…": "...", "\u00a0": " ",
    }
)  # fmt: skip
# Emoji (with their joiners and variation selectors) and the space after them.
_PICTOGRAPHS = re.compile(
    r"[\u200d\ufe0f\u2600-\u27bf\U0001f000-\U0001faff]+ ?"
    r"| [\u200d\ufe0f\u2600-\u27bf\U0001f000-\U0001faff]+(?=[.,!?;:]|$)",
    re.MULTILINE,
)


def gsm7_if_it_can(*texts: str) -> tuple[str, ...]:
    """Latin text with a dash, curly quotes or an emoji costs UCS-2: 70 characters a part
    instead of 160. Such texts are given their GSM-7 look-alikes (emoji left out) when that
    makes all of them GSM-7; Arabic text, UCS-2 anyway, is left as it is."""
    if all(is_gsm7(text) for text in texts):
        return texts
    plain = tuple(
        _PICTOGRAPHS.sub("", unicodedata.normalize("NFC", text)).translate(GSM7_LOOKALIKES)
        for text in texts
    )
    return plain if all(is_gsm7(text) for text in plain) else texts


def sms_units(text: str) -> tuple[int, int, int]:
    """(length in the encoding's units, capacity of one part, capacity per part when split)."""
    if is_gsm7(text):
        return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text), 160, 153
    # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
    return len(text.encode("utf-16-le")) // 2, 70, 67


def sms_parts(text: str) -> int:
    """How many SMS parts Twilio bills for this body.

    GSM-7 text fits 160 characters in one part and 153 in each part of a longer one;
    a single character outside GSM-7 (any Arabic letter) makes the whole message UCS-2:
    70 in one part, 67 per part beyond.
    """
    length, single, per_part = sms_units(text)
    if length <= single:
        return 1
    return -(-length // per_part)


def numbered(reply: Reply, pattern: str) -> list[str]:
    return [
        pattern.format(n=n, label=numbered_label(n, c.label))
        for n, c in enumerate(reply.choices, start=1)
    ]


def render_whatsapp(reply: Reply) -> str:
    """WhatsApp has no free buttons outside approved templates: choices become numbered lines,
    kept whole when the text must be shortened to Twilio's limit."""
    text = reply.text.strip()
    lines = "\n".join(numbered(reply, "{n}. {label}"))
    body = text + ("\n\n" + lines if lines else "")
    if len(body) <= WHATSAPP_MAX_CHARS:
        return body
    room = WHATSAPP_MAX_CHARS - (len(lines) + 2 if lines else 0) - 1
    cut = text[: max(room, 0)].rstrip()
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > 0 and len(cut) - space <= 15:
        cut = cut[:space].rstrip()
    return cut + "…" + ("\n\n" + lines if lines else "")


def sms_budget(reply: Reply, max_parts: int, *, whole: bool) -> int:
    """The parts a reply may take: ``max_parts`` for what the bot says, at least
    ``SMS_WHOLE_PARTS`` for a question to answer (it has choices) or a person's message
    (``whole``), so that nobody answers or declares what they could not read."""
    return max(max_parts, SMS_WHOLE_PARTS) if whole or reply.choices else max_parts


def render_sms(reply: Reply, max_parts: int) -> str:
    """The catalogue's short variant where there is one, choices as short numbered lines,
    and never more than ``max_parts`` parts: the text is cut (choices kept) when needed."""
    head, tail = gsm7_if_it_can(
        (reply.short_text or reply.text).strip(), "\n".join(numbered(reply, "{n} {label}"))
    )
    body = _join(head, tail)
    if sms_parts(body) <= max_parts:
        return body
    ellipsis = "..." if is_gsm7(body) else "…"
    if tail and sms_parts(_join(ellipsis, tail)) <= max_parts:
        return _longest(head, lambda cut: _join(cut + ellipsis, tail), max_parts)
    return _longest(body, lambda cut: cut + ellipsis, max_parts)


def _join(head: str, tail: str) -> str:
    return f"{head}\n{tail}" if head and tail else head or tail


def _longest(text: str, build: Callable[[str], str], max_parts: int) -> str:
    """The longest prefix of ``text`` (ending at a word where possible) that fits."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if sms_parts(build(text[:middle].rstrip())) <= max_parts:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    if low < len(text) and not text[low].isspace():
        space = max(cut.rfind(" "), cut.rfind("\n"))
        # Back to the last whole word when that loses little; a long word is cut in place.
        if space > 0 and len(cut) - space <= 15:
            cut = cut[:space]
    return build(cut.rstrip())

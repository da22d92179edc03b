"""A request's reference as people type it, and as it is stored; and the other long numbers
a message may hold (personal ones, masked where staff read messages for another purpose)."""

from __future__ import annotations

import re

from conversations.normalize import to_latin_digits

NUMBER_MASK = "•••"

# The form's prefix, the Hijri year, a number (stored with at least five digits); people
# write it with spaces, other dashes, slashes or dots between the parts, or none of them, and
# a phone may put a tatweel or a direction mark in it (copied from a right-to-left message).
# Written with no separator after the year, the number is the stored one (five digits):
# "ID 1412345678" is a national ID, not a reference.
_BETWEEN = r"[\s\u0640\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069/._\-‐‑‒–—]"
_REFERENCE = re.compile(
    rf"(?<![A-Za-z0-9])([A-Za-z]{{2,8}}){_BETWEEN}*(1[34]\d\d)"
    rf"(?:{_BETWEEN}+(\d{{1,9}})|(\d{{5}}))(?!\d)"
)
_SPACES = re.compile(r"\s+")
# A run of seven digits or more (Latin, Arabic-Indic or Persian), spaces and dashes allowed
# between them: a national ID, an iqama or a phone number. Dates (1445-09-12) and references
# have that shape too, and are kept.
_DIGIT = "0-9\u0660-\u0669\u06f0-\u06f9"
_LONG_NUMBER = re.compile(rf"[{_DIGIT}](?:[\s\-]?[{_DIGIT}]){{6,}}")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{4}")
_DASHED = re.compile(r"[A-Za-z][\s\u061c\u200e\u200f]*[-‐‑‒–—]")
# Words that may stand beside a reference in a message that is only the reference.
_AROUND = 2


def _found(text: str) -> re.Match[str] | None:
    return _REFERENCE.search(to_latin_digits(text))


def canonical_reference(text: str) -> str:
    """The reference in the text as stored: upper case, Latin digits, the number padded
    (``sr-1448-1``, ``رقم طلبي SR 1448 12`` → ``SR-1448-00001``, ``SR-1448-00012``); text
    without one comes back tidied (spaces out, upper case), so looking it up finds nothing."""
    found = _found(text)
    if found is None:
        return _SPACES.sub("", to_latin_digits(text)).upper()
    prefix, year, apart, joined = found.groups()
    number = apart or joined
    return f"{prefix.upper()}-{year}-{int(number):05d}"


def has_reference(text: str) -> bool:
    """Whether a request's reference stands anywhere in the text."""
    return _found(text) is not None


def _around(text: str) -> tuple[str, str] | None:
    """What stands before and after the text's reference (Latin digits), or None."""
    plain = to_latin_digits(text)
    found = _REFERENCE.search(plain)
    return None if found is None else (plain[: found.start()], plain[found.end() :])


def without_reference(text: str) -> str:
    """The text with its reference taken out (what is asked about it, for the FAQ)."""
    around = _around(text)
    return text if around is None else "".join(around).strip()


def is_reference(text: str) -> bool:
    """Whether the message is a request's reference, alone or with a word or two around it
    ("ref SR-1448-12", "رقم طلبي SR-1448-12"), rather than a sentence that mentions one."""
    around = _around(text)
    return around is not None and len(" ".join(around).split()) <= _AROUND


def without_references(text: str) -> str:
    """The text with every reference in it replaced by a space (its letters are not words)."""
    plain = to_latin_digits(text)  # as long as the text: the spans match both
    spans = [m.span() for m in _REFERENCE.finditer(plain)]
    for start, end in reversed(spans):
        text = f"{text[:start]} {text[end:]}"
    return text


def mask_long_numbers(text: str) -> str:
    """The text with every long number (ID, phone) replaced by ``NUMBER_MASK``, dates and
    references kept: for text kept where people read it for another purpose (the questions
    the bot could not answer)."""
    plain = to_latin_digits(text)
    # Only a reference written with its dashes is kept: "ID 1412 345678" is a national ID.
    references = [m.span() for m in _REFERENCE.finditer(plain) if _DASHED.search(m.group())]

    def masked(found: re.Match[str]) -> str:
        start, end = found.span()
        if _DATE.fullmatch(plain[start:end]) or any(a <= start and end <= b for a, b in references):
            return found.group()
        return NUMBER_MASK

    return _LONG_NUMBER.sub(masked, text)

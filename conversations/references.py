"""A request's reference as people type it, and as it is stored."""

from __future__ import annotations

import re

from conversations.normalize import to_latin_digits

# The form's prefix, the Hijri year, a number (stored with at least five digits).
_REFERENCE = re.compile(r"([A-Z]{2,8})-(1[34]\d\d)-(\d{1,9})")
_SPACES = re.compile(r"\s+")


def canonical_reference(text: str) -> str:
    """The reference as stored: Latin digits, upper case, no spaces, the number padded
    (``sr-1448-1`` → ``SR-1448-00001``); text that is not a reference comes back tidied, so
    that looking it up finds nothing."""
    tidy = _SPACES.sub("", to_latin_digits(text)).upper()
    found = _REFERENCE.fullmatch(tidy)
    if found is None:
        return tidy
    prefix, year, number = found.groups()
    return f"{prefix}-{year}-{int(number):05d}"


def is_reference(text: str) -> bool:
    """Whether the whole text is a request's reference (pasted from the confirmation)."""
    return _REFERENCE.fullmatch(canonical_reference(text)) is not None

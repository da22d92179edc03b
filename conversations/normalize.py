"""Text normalisation for matching what beneficiaries type.

Pure functions: no I/O, and no state but a memo of how each character maps.
``normalize_arabic`` is meant for *matching* (keywords, menu labels, yes/no answers), never
for storing what the beneficiary wrote.
"""

from __future__ import annotations

import re
import string
import unicodedata

__all__ = [
    "normalize_arabic",
    "script_language",
    "to_latin_digits",
    "tokens",
]

# Arabic-Indic (U+0660-U+0669) and Eastern Arabic-Indic / Persian (U+06F0-U+06F9) digits,
# plus the Arabic decimal separator (U+066B). Every mapping is one character to one character.
_DIGITS: dict[int, str] = {
    **{0x0660 + i: str(i) for i in range(10)},
    **{0x06F0 + i: str(i) for i in range(10)},
    0x066B: ".",
}

# Harakat and other combining marks (U+064B-U+065F), superscript alef (U+0670), tatweel (U+0640).
_REMOVED: dict[int, None] = {
    **{cp: None for cp in range(0x064B, 0x0660)},
    0x0670: None,
    0x0640: None,
    0x0621: None,  # standalone hamza
}

_LETTERS: dict[int, str] = {
    ord("أ"): "ا",
    ord("إ"): "ا",
    ord("آ"): "ا",
    ord("ٱ"): "ا",
    ord("ى"): "ي",
    ord("ة"): "ه",
    ord("ؤ"): "و",
    ord("ئ"): "ي",
    ord("ی"): "ي",  # Persian yeh (U+06CC), common on some keyboards
    ord("ک"): "ك",  # keheh (U+06A9)
}

_ARABIC_PUNCTUATION = "،؛؟"
_ASCII_PUNCTUATION = frozenset(string.punctuation)

_REPEATED_LETTER = re.compile(r"([^\W\d_])\1{2,}")

_ARABIC_RANGES: tuple[tuple[int, int], ...] = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x08A0, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)


def to_latin_digits(s: str) -> str:
    """Turn Arabic-Indic and Persian digits into 0-9 and ٫ into '.'; the length is unchanged.

    The Arabic thousands separator (٬) is left alone; number parsers deal with it.
    """
    return s.translate(_DIGITS)


def _is_punctuation(ch: str) -> bool:
    return (
        ch in _ASCII_PUNCTUATION
        or ch in _ARABIC_PUNCTUATION
        or unicodedata.category(ch).startswith("P")
    )


def _one_character(ch: str) -> str:
    """What the character-by-character rules of ``normalize_arabic`` make of ``ch`` (already
    lowercased): digits, format characters, marks, letter forms and punctuation."""
    s = to_latin_digits(ch)
    s = "".join(c for c in s if unicodedata.category(c) != "Cf")
    s = s.translate(_REMOVED).translate(_LETTERS)
    return "".join(" " if _is_punctuation(c) else c for c in s)


class _Characters(dict[int, str]):
    """The character rules as a ``str.translate`` table, each code point worked out the
    first time it is seen (a few hundred in practice): the rules then cost one pass in C
    rather than a Python call a character."""

    def __missing__(self, codepoint: int) -> str:
        mapped = self[codepoint] = _one_character(chr(codepoint))
        return mapped


_CHARACTERS = _Characters()


def normalize_arabic(s: str) -> str:
    """Normalise text for matching; the result is a fixed point (normalising it again is a no-op).

    Rules, in order:
    - Arabic-Indic and Persian digits become 0-9 (``to_latin_digits``).
    - Letters are lowercased (Latin "YES" matches "yes").
    - Invisible format characters (RLM/LRM, zero-width joiners, BOM) are removed.
    - Tashkeel (U+064B-U+065F, U+0670), tatweel (U+0640) and standalone hamza (ء) are removed.
    - Alef forms أ إ آ ٱ become ا.
    - ى and ئ become ي; ؤ becomes و; ة becomes ه; Persian ی/ک become ي/ك.
    - Punctuation (Arabic ، ؛ ؟, ASCII and other Unicode punctuation) becomes a space.
    - A letter repeated three or more times becomes one ("شكرااااا" → "شكرا"); digits are kept.
    - Runs of whitespace become one space, and the ends are stripped.
    """
    # Lowercasing first: it may change a string's length, the other rules never do (and
    # no digit, mark or punctuation has a case). Each character is then mapped on its own.
    s = s.lower().translate(_CHARACTERS)
    s = _REPEATED_LETTER.sub(r"\1", s)
    return " ".join(s.split())


def tokens(s: str) -> list[str]:
    """The words of ``normalize_arabic(s)``."""
    return normalize_arabic(s).split()


def _is_arabic(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _ARABIC_RANGES)


def script_language(s: str) -> str | None:
    """Guess the language from the script of the letters.

    "ar" when Arabic letters outnumber Latin letters, "en" when Latin letters outnumber
    Arabic ones, None otherwise (no letters at all, e.g. digits or emoji only, or a tie).
    """
    arabic = latin = 0
    for ch in s:
        if not ch.isalpha():
            continue
        if _is_arabic(ch):
            arabic += 1
        elif unicodedata.name(ch, "").startswith("LATIN"):
            latin += 1
    if arabic > latin:
        return "ar"
    if latin > arabic:
        return "en"
    return None

"""Parsers for form answers.

Every parser takes the raw text the beneficiary typed and returns either ``Parsed`` (the
canonical stored value and how to show it back) or ``Rejected`` (a message-catalogue key and
its parameters). Parsers never build sentences and never do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import TypeAlias

import phonenumbers
from hijridate import Gregorian, Hijri

from conversations.normalize import normalize_arabic, to_latin_digits

__all__ = [
    "NO_WORDS",
    "YES_WORDS",
    "ParseResult",
    "Parsed",
    "Rejected",
    "format_dual_date",
    "luhn_valid",
    "match_choice",
    "national_id_check_digit",
    "normalize_phone",
    "number_word",
    "parse_date",
    "parse_email",
    "parse_integer",
    "parse_national_id",
    "parse_saudi_mobile",
    "parse_text",
    "parse_yesno",
    "to_hijri",
]


@dataclass(frozen=True, slots=True)
class Parsed:
    """An accepted answer: ``value`` is stored, ``display`` is shown back in a summary."""

    value: str
    display: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused answer: ``error`` is a message-catalogue key, ``params`` fill its placeholders."""

    error: str
    params: dict[str, str] = field(default_factory=dict)


ParseResult: TypeAlias = Parsed | Rejected

_REQUIRED = "error.required"

# --- text -------------------------------------------------------------------------------------


def parse_text(raw: str, *, min_length: int = 0, max_length: int = 2000) -> ParseResult:
    """Free text, stripped, with line endings unified; length counted in characters."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return Rejected(_REQUIRED)
    if len(text) < min_length:
        return Rejected("error.too_short", {"min": str(min_length)})
    if len(text) > max_length:
        return Rejected("error.too_long", {"max": str(max_length)})
    return Parsed(text, text)


# --- integers ---------------------------------------------------------------------------------

_CURRENCY = r"(?:ريالات|ريال|ر\s?\.?\s?س\.?|sar|riyals?)"
_CURRENCY_TRAILING = re.compile(rf"\s*{_CURRENCY}$", re.IGNORECASE)
_CURRENCY_LEADING = re.compile(rf"^{_CURRENCY}\s*", re.IGNORECASE)
# Optional sign, then either plain digits or 1-3 digits followed by groups of exactly three
# separated by one of "," "٬" "'" or whitespace.
_INTEGER = re.compile(r"([-+−]?)\s*([0-9]+|[0-9]{1,3}(?:(?:[,٬']|\s+)[0-9]{3})+)")
_MAX_INTEGER_DIGITS = 30
# "None at all" said in words, where a count or an amount is asked ("ما عندي دخل" at the
# monthly income): 0, which the field's bounds accept or refuse like the digit.
_NONE_WORDS = (
    "ما عندي دخل", "ماعندي دخل", "ما عندنا دخل", "ماعندنا دخل", "ما لي دخل", "مالي دخل",
    "ما فيه دخل", "مافيه دخل", "ما في دخل", "مافي دخل", "لا يوجد دخل", "لايوجد دخل",
    "لا يوجد لدي دخل", "ليس لدي دخل", "ليس لنا دخل", "لا دخل", "لا دخل لدي", "بدون دخل",
    "بلا دخل", "ما عندي راتب", "ماعندي راتب", "ما عندي اي دخل", "ماعندي اي دخل",
    "ما عندي شي", "ماعندي شي", "ولا شي", "ولا شيء", "لا شيء", "لا شي", "لا يوجد", "لايوجد",
    "ما في", "مافي", "ما فيه", "مافيه", "صفر", "ولا ريال",
    "no income", "none", "nothing", "zero", "nil", "i have no income", "we have no income",
    "no salary", "i have none",
)  # fmt: skip
NONE_WORDS = frozenset(normalize_arabic(w) for w in _NONE_WORDS)


def _bounds(minimum: int | None, maximum: int | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if minimum is not None:
        params["min"] = str(minimum)
    if maximum is not None:
        params["max"] = str(maximum)
    return params


# A number as people type it: digits, maybe grouped by spaces, dashes, commas or dots.
_NUMBER_RUN = re.compile(r"\+?\d(?:[\s\-‐‑‒–—.,٬٫]?\d)*")
# Words that may stand around the one number of an answer ("رقم هويتي", "ريال شهري").
_WORDS_AROUND = 4
# Words that change what the number means: a multiplier, another period, a year. With one of
# them around it, the number alone is not the answer ("٣ آلاف", "18000 سنويا", "من 2015").
_CHANGING_WORDS = frozenset(
    normalize_arabic(word)
    for word in """
    الف آلاف ألف الاف ألاف مليون ملايين k m thousand thousands million millions grand
    سنوي سنويا سنوية سنه سنة سنين سنوات عام اعوام يومي يوميا اسبوعي اسبوعيا
    year years yearly annual annually daily weekly من منذ since from في نص ونص ربع
    """.split()
)


# One to ten in words, as typed (normalised: ة as ه, أ as ا), for a count or a rating.
_NUMBER_WORDS = {
    word: n
    for n, words in enumerate(
        (
            "واحد واحده وحده one",
            "اثنين اثنان ثنين اثنتين ثنتين two",
            "ثلاث ثلاثه three",
            "اربع اربعه four",
            "خمس خمسه five",
            "ست سته six",
            "سبع سبعه seven",
            "ثمان ثماني ثمانيه ثمنيه eight",
            "تسع تسعه nine",
            "عشر عشره ten",
        ),
        start=1,
    )
    for word in words.split()
}


def number_word(raw: str) -> int | None:
    """One to ten written as a word ("خمسة", "five"), or None."""
    return _NUMBER_WORDS.get(normalize_arabic(raw.strip()).lower())


def in_a_few_words(raw: str, parse: Callable[[str], ParseResult]) -> ParseResult:
    """``parse`` of the answer; when that fails and the answer is one number among a few
    words, ``parse`` of that number (its own error if it is wrong: a length, a check digit)."""
    result = parse(raw)
    if isinstance(result, Parsed):
        return result
    text = to_latin_digits(raw)
    runs = list(_NUMBER_RUN.finditer(text))
    words = _NUMBER_RUN.sub(" ", text).split()
    if len(runs) != 1 or not words or len(words) > _WORDS_AROUND:
        return result
    start, end = runs[0].span()
    if any(ch.isalpha() for ch in text[max(start - 1, 0) : start] + text[end : end + 1]):
        return result  # "10k", "x2": the number is part of a word
    if not all(any(ch.isalpha() for ch in word) for word in words):
        return result  # "-1": a sign or a symbol is not a word around a number
    bare = {normalize_arabic(word.strip(".,،:؛!?؟")).lower() for word in words}
    bare |= {word.removeprefix("ال") for word in bare if len(word) > 4}
    if bare & _CHANGING_WORDS or any(word.startswith("سنو") for word in bare):
        return result
    return parse(runs[0].group())


def parse_integer(
    raw: str, *, minimum: int | None = None, maximum: int | None = None
) -> ParseResult:
    """A whole number, alone or in a few words ("٥ افراد", "1500 ريال شهري")."""
    return in_a_few_words(raw, lambda text: _parse_integer(text, minimum, maximum))


def _parse_integer(raw: str, minimum: int | None, maximum: int | None) -> ParseResult:
    """A whole number; thousands separators and a riyal/SAR word before or after are ignored.

    value is the plain decimal form ("1500"); display groups thousands ("1,500").
    Bound errors carry both "min" and "max" params when those bounds are set.
    """
    text = to_latin_digits(raw).strip()
    if not text:
        return Rejected(_REQUIRED)
    if (word := number_word(text)) is not None:
        text = str(word)
    if " ".join(normalize_arabic(text).lower().strip(" .!،,").split()) in NONE_WORDS:
        text = "0"
    text = _CURRENCY_TRAILING.sub("", text)
    text = _CURRENCY_LEADING.sub("", text).strip()
    match = _INTEGER.fullmatch(text)
    if match is None:
        return Rejected("error.integer")
    negative = match.group(1) in ("-", "−")
    digits = re.sub(r"\D", "", match.group(2)).lstrip("0") or "0"
    if len(digits) > _MAX_INTEGER_DIGITS:
        if negative and minimum is not None:
            return Rejected("error.integer_min", _bounds(minimum, maximum))
        if not negative and maximum is not None:
            return Rejected("error.integer_max", _bounds(minimum, maximum))
        return Rejected("error.integer")
    number = -int(digits) if negative else int(digits)
    if minimum is not None and number < minimum:
        return Rejected("error.integer_min", _bounds(minimum, maximum))
    if maximum is not None and number > maximum:
        return Rejected("error.integer_max", _bounds(minimum, maximum))
    return Parsed(str(number), f"{number:,}")


# --- yes / no ---------------------------------------------------------------------------------

_YES_WORDS = (
    "نعم", "ايوه", "ايوا", "ايه", "اي", "أجل", "اجل", "موافق", "أوافق", "موافقه", "صح",
    "اكيد", "تمام", "نعم موافق", "اوكي", "اوك",
    "yes", "y", "ok", "okay", "agree", "i agree", "yeah", "yep", "sure",
)  # fmt: skip
_NO_WORDS = (
    "لا", "لأ", "كلا", "غير موافق", "لا اوافق", "ما اوافق", "مو موافق", "لست موافقا",
    "لا شكرا",
    "no", "n", "nope", "disagree", "i disagree", "no thanks",
)  # fmt: skip
YES_WORDS = frozenset(normalize_arabic(w) for w in _YES_WORDS)
NO_WORDS = frozenset(normalize_arabic(w) for w in _NO_WORDS)


def parse_yesno(raw: str) -> ParseResult:
    """Yes or no in Arabic (including Saudi dialect) or English; digits are not accepted.

    value and display are "yes" or "no"; the summary renderer translates them.
    """
    if not raw.strip():
        return Rejected(_REQUIRED)
    text = normalize_arabic(raw)
    if text in YES_WORDS:
        return Parsed("yes", "yes")
    if text in NO_WORDS:
        return Parsed("no", "no")
    return Rejected("error.yesno")


# --- national ID / iqama ----------------------------------------------------------------------

_DIGIT_SEPARATORS = re.compile(r"[\s\-‐‑‒–—]+")


def luhn_valid(digits: str) -> bool:
    """The Luhn check over a string of ASCII digits.

    Every second digit counting leftwards from the one before the last is doubled (9 is
    subtracted when that exceeds 9), and the sum must be a multiple of 10. For the 10-digit
    national ID this doubles the digits at even 0-based indices.
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, ch in enumerate(reversed(digits)):
        n = int(ch)
        if position % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def national_id_check_digit(first9: str) -> str:
    """The last digit that makes ``first9`` + digit a Luhn-valid national ID or iqama number."""
    if len(first9) != 9 or not first9.isascii() or not first9.isdigit():
        raise ValueError("first9 must be exactly nine ASCII digits")
    for candidate in "0123456789":
        if luhn_valid(first9 + candidate):
            return candidate
    raise AssertionError("unreachable: one Luhn check digit always exists")


def parse_national_id(raw: str) -> ParseResult:
    """A national ID or iqama number, alone or in a few words ("رقم هويتي 1012345672")."""
    return in_a_few_words(raw, _parse_national_id)


def _parse_national_id(raw: str) -> ParseResult:
    """A Saudi national ID (starts with 1) or iqama number (starts with 2).

    value is the 10 ASCII digits; display masks all but the last four ("******1234").
    """
    text = _DIGIT_SEPARATORS.sub("", to_latin_digits(raw))
    if not text:
        return Rejected(_REQUIRED)
    if len(text) != 10 or not text.isascii() or not text.isdigit():
        return Rejected("error.national_id_length")
    if text[0] not in "12":
        return Rejected("error.national_id_prefix")
    if not luhn_valid(text):
        return Rejected("error.national_id_checksum")
    return Parsed(text, "*" * 6 + text[-4:])


# --- phone numbers ----------------------------------------------------------------------------

_PHONE_SEPARATORS = re.compile(r"[\s\-‐‑‒–—().]+")
_PHONE_SCHEMES = re.compile(r"^(?:whatsapp|tel|sms):", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"\+?[0-9]+")
_MAX_PHONE_DIGITS = 17


def _clean_phone(raw: str) -> str | None:
    text = _PHONE_SEPARATORS.sub("", to_latin_digits(raw).strip())
    text = _PHONE_SCHEMES.sub("", text)
    if not _PHONE_CHARS.fullmatch(text) or len(text) > _MAX_PHONE_DIGITS + 3:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    return text


def _parse_phone(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


@lru_cache(maxsize=16_384)  # every message of a channel addressed by phone parses its sender
def normalize_phone(raw: str, default_region: str = "SA") -> str | None:
    """E.164 form of any valid number, or None.

    Accepts national forms for ``default_region``, "+" or "00" international forms, bare
    international digits as WhatsApp senders arrive ("447911123456"), and a
    "whatsapp:"/"tel:"/"sms:" prefix.
    """
    text = _clean_phone(raw)
    if text is None:
        return None
    number = _parse_phone(text, default_region)
    if number is None and not text.startswith(("+", "0")):
        number = _parse_phone("+" + text, default_region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_saudi_mobile(raw: str) -> ParseResult:
    """A Saudi mobile number, alone or in a few words ("جوالي 0501234567")."""
    return in_a_few_words(raw, _parse_saudi_mobile)


def _parse_saudi_mobile(raw: str) -> ParseResult:
    """A Saudi mobile number: 05XXXXXXXX, 5XXXXXXXX, +9665…, 009665… or 9665….

    value is E.164 ("+966501234567"); display is the national format ("050 123 4567").
    """
    if not raw.strip():
        return Rejected(_REQUIRED)
    text = _clean_phone(raw)
    number = None if text is None else _parse_phone(text, "SA")
    if (
        number is None
        or number.country_code != 966
        or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE
    ):
        return Rejected("error.mobile")
    return Parsed(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
    )


# --- e-mail -----------------------------------------------------------------------------------

_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
_DOMAIN_LABEL = re.compile(r"(?!-)[^\W_](?:[\w-]*[^\W_])?", re.UNICODE)
_TLD = re.compile(r"[^\W\d_]{2,}|xn--[a-z0-9-]+", re.IGNORECASE)


def parse_email(raw: str) -> ParseResult:
    """An e-mail address: one "@", no spaces, a dotted domain; the domain is lowercased."""
    text = raw.strip()
    if not text:
        return Rejected(_REQUIRED)
    if text.count("@") != 1 or len(text) > 254:
        return Rejected("error.email")
    local, domain = text.split("@")
    domain = domain.lower()
    labels = domain.split(".")
    if (
        not _LOCAL_PART.fullmatch(local)
        or len(local) > 64
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) and len(label) <= 63 for label in labels)
        or not _TLD.fullmatch(labels[-1])
    ):
        return Rejected("error.email")
    address = f"{local}@{domain}"
    return Parsed(address, address)


# --- dates ------------------------------------------------------------------------------------

HIJRI_MONTHS_AR: tuple[str, ...] = (
    "محرم", "صفر", "ربيع الأول", "ربيع الآخر", "جمادى الأولى", "جمادى الآخرة",
    "رجب", "شعبان", "رمضان", "شوال", "ذو القعدة", "ذو الحجة",
)  # fmt: skip
HIJRI_MONTHS_EN: tuple[str, ...] = (
    "Muharram", "Safar", "Rabi' al-Awwal", "Rabi' al-Thani", "Jumada al-Ula",
    "Jumada al-Akhirah", "Rajab", "Sha'ban", "Ramadan", "Shawwal", "Dhu al-Qi'dah",
    "Dhu al-Hijjah",
)  # fmt: skip
GREGORIAN_MONTHS_AR: tuple[str, ...] = (
    "يناير", "فبراير", "مارس", "أبريل", "مايو", "يونيو",
    "يوليو", "أغسطس", "سبتمبر", "أكتوبر", "نوفمبر", "ديسمبر",
)  # fmt: skip
GREGORIAN_MONTHS_EN: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

_CALENDARS = ("any", "gregorian", "hijri")
_HIJRI_SUFFIX = r"(?:هـ+|ه|هجري|هجريه|هجرية|a\.?\s?h\.?)"
_GREGORIAN_SUFFIX = r"(?:م|ميلادي|ميلاديه|ميلادية|a\.?\s?d\.?|c\.?\s?e\.?)"
_DATE = re.compile(
    r"(?P<a>[0-9]{1,4})\s*(?P<sep>[/\-.])\s*(?P<b>[0-9]{1,2})\s*(?P=sep)\s*(?P<c>[0-9]{1,4})\s*"
    rf"(?:(?P<hijri>{_HIJRI_SUFFIX})|(?P<gregorian>{_GREGORIAN_SUFFIX}))?",
    re.IGNORECASE,
)
_HIJRI_YEAR_LIMIT = 1600


def _hijri_of(d: date) -> Hijri:
    try:
        return Gregorian(d.year, d.month, d.day).to_hijri()
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{d.isoformat()} is outside the supported Umm al-Qura range") from exc


def to_hijri(d: date) -> str:
    """The Umm al-Qura Hijri date as "YYYY-MM-DD"; ValueError outside 1343-1500 AH."""
    h = _hijri_of(d)
    return f"{h.year:04d}-{h.month:02d}-{h.day:02d}"


def format_dual_date(d: date, lang: str) -> str:
    """Hijri and Gregorian together, e.g. "24 شعبان 1445 هـ — 5 مارس 2024م" for Arabic and
    "24 Sha'ban 1445 AH (5 March 2024)" otherwise. Outside the Umm al-Qura range only the
    Gregorian part is given."""
    arabic = lang == "ar"
    if arabic:
        gregorian = f"{d.day} {GREGORIAN_MONTHS_AR[d.month - 1]} {d.year}م"
    else:
        gregorian = f"{d.day} {GREGORIAN_MONTHS_EN[d.month - 1]} {d.year}"
    try:
        h = _hijri_of(d)
    except ValueError:
        return gregorian
    if arabic:
        return f"{h.day} {HIJRI_MONTHS_AR[h.month - 1]} {h.year} هـ — {gregorian}"
    return f"{h.day} {HIJRI_MONTHS_EN[h.month - 1]} {h.year} AH ({gregorian})"


# Left-to-right isolate: digits and Latin text keep their order inside an Arabic sentence
# (a date 1995-03-14 would otherwise read 14-03-1995, a phone 055 123 4567 as 4567 123 055).
LTR_ISOLATE, POP_ISOLATE = "\u2066", "\u2069"


def left_to_right(text: str) -> str:
    return f"{LTR_ISOLATE}{text}{POP_ISOLATE}"


def display_date(d: date, lang: str = "ar", *, isolate: bool = False) -> str:
    """A Gregorian date with its Hijri date: "2024-03-05 (1445-08-24 هـ)"; ``isolate``:
    each date kept left to right, for Arabic text shown to a reader."""
    wrap = left_to_right if isolate else str
    try:
        hijri = to_hijri(d)
    except ValueError:
        return wrap(d.isoformat())
    era = "هـ" if lang == "ar" else "AH"
    return f"{wrap(d.isoformat())} ({wrap(hijri)} {era})"


def parse_date(
    raw: str,
    *,
    today: date,
    calendar: str = "any",
    allow_future: bool = True,
    allow_past: bool = True,
) -> ParseResult:
    """A Gregorian or Hijri (Umm al-Qura) date.

    Year first ("2024-03-05", "1445/08/24") or day first ("5/3/2024", "24/8/1445"), with
    "/", "-" or "." between parts and an optional suffix: "هـ"/"ه"/"AH" marks Hijri,
    "م"/"AD"/"CE" Gregorian. Without a suffix a year below 1600 is Hijri (Gregorian years
    below 1600 are refused). ``calendar``
    ("any", "gregorian" or "hijri") restricts which calendar is accepted.

    value is the ISO Gregorian date; display adds the Hijri date: "2024-03-05 (1445-08-24 هـ)".
    """
    if calendar not in _CALENDARS:
        raise ValueError(f"calendar must be one of {_CALENDARS}, got {calendar!r}")
    text = to_latin_digits(raw).strip()
    if not text:
        return Rejected(_REQUIRED)
    match = _DATE.fullmatch(text)
    if match is None:
        return Rejected("error.date")
    a, b, c = match.group("a"), match.group("b"), match.group("c")
    if len(a) == 4 and len(c) <= 2:
        year, month, day = int(a), int(b), int(c)
    elif len(c) == 4 and len(a) <= 2:
        year, month, day = int(c), int(b), int(a)
    else:
        return Rejected("error.date")
    if match.group("hijri"):
        is_hijri = True
    elif match.group("gregorian"):
        is_hijri = False
    else:
        is_hijri = year < _HIJRI_YEAR_LIMIT
    if (calendar == "gregorian" and is_hijri) or (calendar == "hijri" and not is_hijri):
        return Rejected("error.date")
    if not is_hijri and year < _HIJRI_YEAR_LIMIT:
        return Rejected("error.date")
    try:
        if is_hijri:
            g = Hijri(year, month, day).to_gregorian()
            value = date(g.year, g.month, g.day)
        else:
            value = date(year, month, day)
    except (ValueError, OverflowError):
        return Rejected("error.date")
    if not allow_future and value > today:
        return Rejected("error.date_future")
    if not allow_past and value < today:
        return Rejected("error.date_past")
    return Parsed(value.isoformat(), display_date(value))


# --- choices ----------------------------------------------------------------------------------

_MAX_CHOICE_DIGITS = 6


def match_choice(
    raw: str, options: Sequence[tuple[str, Sequence[str]]], *, by_first_word: bool = True
) -> str | None:
    """The value of the option the answer picks, or None.

    A 1-based number (Arabic-Indic digits too, "2." and "(2)" included) picks by position;
    otherwise the normalised answer must equal a normalised label or the normalised value,
    or (``by_first_word``) be the first word of one short label and of no other label.
    """
    text = normalize_arabic(raw)
    if not text:
        return None
    if text.isascii() and text.isdigit() and len(text) <= _MAX_CHOICE_DIGITS:
        index = int(text)
        if 1 <= index <= len(options):
            return options[index - 1][0]
    for value, labels in options:
        if text == _normal_label(value) or any(text == _normal_label(label) for label in labels):
            return value
    return _first_word(text, options) if by_first_word else None


@lru_cache(maxsize=4096)
def _normal_label(label: str) -> str:
    """A label or value as answers are compared with it: the same few, for every answer."""
    return normalize_arabic(label)


# A label this short reads as a button; its first word alone names it ("تأكيد" for
# "تأكيد وإرسال"). Longer labels (offered questions) must be answered in full or by number.
_BUTTON_WORDS = 3
_MIN_WORD = 3


def _first_word(text: str, options: Sequence[tuple[str, Sequence[str]]]) -> str | None:
    """The option whose short label begins with the one word typed, when no other label
    (short or long) begins with it."""
    if " " in text or len(text) < _MIN_WORD:
        return None
    found: set[str] = set()
    short = False
    for value, labels in options:
        for label in labels:
            words = _normal_label(label).split()
            if words and words[0] == text:
                found.add(value)
                short = short or len(words) <= _BUTTON_WORDS
    return found.pop() if len(found) == 1 and short else None

"""The console's own words: both languages say the same things, and counts agree in Arabic."""

from __future__ import annotations

import re
import string

import pytest

from staff.i18n import table, translator

PLURAL_FORMS = re.compile(r"\.(zero|one|two|few|many)$")


def _base_keys(lang: str) -> set[str]:
    return {k for k in table(lang) if not PLURAL_FORMS.search(k)}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_text_with_the_same_placeholders() -> None:
    assert _base_keys("ar") == _base_keys("en")
    for key in _base_keys("ar"):
        assert _fields(table("ar")[key]) == _fields(table("en")[key]), key
    for lang in ("ar", "en"):
        for key, text in table(lang).items():
            if PLURAL_FORMS.search(key):
                base = PLURAL_FORMS.sub("", key)
                assert base in table(lang), key
                assert _fields(text) <= _fields(table(lang)[base]), key


@pytest.mark.parametrize(
    ("n", "arabic", "english"),
    [
        (0, "لا رسائل", "0 items"),
        (1, "رسالة واحدة", "1 item"),
        (2, "رسالتان", "2 items"),
        (5, "5 رسائل", "5 items"),
        (11, "11 رسالة", "11 items"),
        (100, "100 رسالة", "100 items"),
    ],
)
def test_counts_take_the_number_each_language_wants(n: int, arabic: str, english: str) -> None:
    assert translator("ar").counted("outbox.count", n) == arabic
    assert translator("en").counted("outbox.count", n) == english


def test_arabic_numbers_are_not_written_after_a_hash() -> None:
    """ "محادثة #{id}" showed as "2# محادثة" in the right-to-left page: the sign and the
    number were laid out as Arabic text."""
    for key, text in table("ar").items():
        assert "#{" not in text, key

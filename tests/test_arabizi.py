"""Arabic written in Latin letters and digits: recognised, spelt in Arabic, answered in Arabic."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.arabizi import is_arabizi, language_of, matchable, to_arabic_letters
from tests.conftest import Chat


def test_arabizi_is_told_from_english_and_from_numbers() -> None:
    for text in (
        "abgha a3rf el awraq el matlooba",
        "wain maqarkom",
        "ana armala w 3indi 3 atfal",
        "fe jadeed 3la talabi?",
        "abi atkallam english",  # an English word in Arabizi is still Arabizi
    ):
        assert is_arabizi(text), text
    for text in (
        "how to upload my documents",
        "What documents do I need to apply?",
        "Is Al Rajhi open on the 3rd?",  # an ordinal is a number, not a letter
        "my flat is on the 2nd floor, 5kg of rice",
        "Mohammed Abdullah",
        "ok",
        "3",
        "0501234567",
        "ابغى اعرف wain",  # Arabic letters: not Arabizi, whatever else is there
    ):
        assert not is_arabizi(text), text


SPELT = {
    "wain maqarkom": "وين مقركم",
    # The digits are the letters Latin lacks; the article joins its word. Everyday words are
    # spelt as Arabic writes them; others are sounded out ("yebda": يبده).
    "3ndi shakwa 3la el mowathaf": "عندي شكوى على الموظف",
    "abgha a3rf el awraq": "ابغى اعرف الاوراق",
    "mata yebda el dawam?": "متى يبده الدوام?",
    "5alas, 7ag el 6alab 9a7": "خلس, حق الطلب صح",
    # With a pronoun ending: a word in ة takes it after its t; على's alef becomes ي.
    "7alati w talabkom": "حالتي و طلبكم",
    "7alatkom 3lay, el-talab": "حالتكم علي, الطلب",
    "shakwak fiy 3likom": "شكواك في عليكم",
}


def test_arabizi_is_spelt_in_arabic_letters() -> None:
    assert {text: to_arabic_letters(text) for text in SPELT} == SPELT
    assert all(language_of(text) == "ar" and matchable(text) == SPELT[text] for text in SPELT)


def test_other_text_keeps_its_language_and_its_letters() -> None:
    assert language_of("where is your office") == "en"
    assert language_of("وين مقركم") == "ar"
    assert matchable("where is your office") == "where is your office"


@given(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz23456789' ,?"), max_size=40))
def test_no_latin_letter_is_left_and_nothing_else_is_lost(text: str) -> None:
    spelt = to_arabic_letters(text)
    assert not re.search(r"[A-Za-z]", spelt)
    # Punctuation and spaces between words stay where they were.
    assert [p for p in re.findall(r"[,?]", spelt)] == re.findall(r"[,?]", text)


async def test_an_arabizi_question_gets_the_arabic_answer(chat: Chat) -> None:
    await chat.say("مرحبا")
    await chat.say("wain maqarkom")
    answer = chat.replies[0].text
    assert "المقر" in answer and "address" not in answer


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("رابط الفاتورة https://example.com/invoices/2026/11/abcdefghijklmnopqrstuvwxyz", "ar"),
        ("ارسلت الأوراق على ali.hassan@example.com", "ar"),
        ("وين وصل طلبي SR-1448-00012", "ar"),
        ("where is my request SR-1448-00012", "en"),
        ("see www.example.org please", "en"),
    ],
)
def test_links_addresses_and_references_do_not_decide_the_language(text: str, lang: str) -> None:
    assert language_of(text) == lang

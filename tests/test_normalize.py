from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.normalize import (
    normalize_arabic,
    script_language,
    to_latin_digits,
    tokens,
)
from conversations.references import mask_long_numbers

ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
TASHKEEL_OR_TATWEEL = re.compile("[\u064b-\u065f\u0670\u0640]")

# Text weighted towards the characters the rules care about, plus arbitrary Unicode.
arabicish = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.sampled_from(list("أإآٱىةؤئءـًٌٍَُِّْٰ،؛؟.,!?- \t\nAbZz09")),
        st.characters(),
    ),
    max_size=40,
)


# --- to_latin_digits --------------------------------------------------------------------------


def test_to_latin_digits_examples() -> None:
    assert to_latin_digits("٠١٢٣٤٥٦٧٨٩") == "0123456789"
    assert to_latin_digits("۰۱۲۳۴۵۶۷۸۹") == "0123456789"
    assert to_latin_digits("٣٫٥") == "3.5"
    assert to_latin_digits("١٬٠٠٠") == "1٬000"
    assert to_latin_digits("رقمي ٠٥٠") == "رقمي 050"


@given(st.text())
def test_to_latin_digits_keeps_length(s: str) -> None:
    assert len(to_latin_digits(s)) == len(s)


@given(st.text())
def test_to_latin_digits_leaves_no_arabic_digits(s: str) -> None:
    out = to_latin_digits(s)
    assert not any(ch in ARABIC_INDIC or ch in PERSIAN for ch in out)


@given(st.lists(st.integers(min_value=0, max_value=9), max_size=20))
def test_to_latin_digits_all_scripts_agree(digits: list[int]) -> None:
    latin = "".join(str(d) for d in digits)
    assert to_latin_digits("".join(ARABIC_INDIC[d] for d in digits)) == latin
    assert to_latin_digits("".join(PERSIAN[d] for d in digits)) == latin


@given(st.text(alphabet=st.characters(exclude_categories=["Nd"])))
def test_to_latin_digits_identity_without_digits(s: str) -> None:
    if "٫" not in s:
        assert to_latin_digits(s) == s


# --- normalize_arabic -------------------------------------------------------------------------


def test_normalize_arabic_rules() -> None:
    assert normalize_arabic("مَرْحَبًا") == "مرحبا"
    assert normalize_arabic("شكـــــرا") == "شكرا"
    assert normalize_arabic("أحمد إبراهيم آمنة ٱلله") == "احمد ابراهيم امنه الله"
    assert normalize_arabic("مستشفى") == "مستشفي"
    assert normalize_arabic("المطلوبة") == "المطلوبه"
    assert normalize_arabic("مسؤول") == "مسوول"
    assert normalize_arabic("رئيس") == "رييس"
    assert normalize_arabic("سماء") == "سما"
    assert normalize_arabic("شكرااااا") == "شكرا"
    assert normalize_arabic("YES!!!") == "yes"
    assert normalize_arabic("نعم، شكراً؛ كيف؟") == "نعم شكرا كيف"
    assert normalize_arabic("  كم   الرسوم\t\n؟ ") == "كم الرسوم"
    assert normalize_arabic("رقمي ١٠٠٠") == "رقمي 1000"
    assert normalize_arabic("\u200fنعم\u200e") == "نعم"
    assert normalize_arabic("") == ""


def test_normalize_arabic_keeps_repeated_digits() -> None:
    assert normalize_arabic("1000 ريال") == "1000 ريال"
    assert normalize_arabic("٥٥٥") == "555"


def test_normalize_arabic_two_letters_are_kept() -> None:
    assert normalize_arabic("الله") == "الله"
    assert normalize_arabic("good") == "good"


def test_dialect_and_formal_questions_share_tokens() -> None:
    dialect = set(tokens("السلام عليكم ابغى اعرف وش الاوراق المطلوبه"))
    formal = set(tokens("ما هي الأوراق المطلوبة"))
    assert {"الاوراق", "المطلوبه"} <= dialect & formal


@given(arabicish)
def test_normalize_arabic_is_idempotent(s: str) -> None:
    once = normalize_arabic(s)
    assert normalize_arabic(once) == once


@given(st.text())
def test_normalize_arabic_is_idempotent_on_any_text(s: str) -> None:
    once = normalize_arabic(s)
    assert normalize_arabic(once) == once


@given(arabicish)
def test_normalize_arabic_output_is_clean(s: str) -> None:
    out = normalize_arabic(s)
    assert not TASHKEEL_OR_TATWEEL.search(out)
    assert not any(ch in ARABIC_INDIC or ch in PERSIAN for ch in out)
    assert not any(ch in "أإآٱىةؤئء،؛؟" for ch in out)
    assert out == out.strip()
    assert "  " not in out
    assert not re.search(r"([^\W\d_])\1\1", out)


@given(arabicish)
def test_normalize_arabic_ignores_tashkeel_and_tatweel(s: str) -> None:
    decorated = "".join(ch + "\u064e\u0640" for ch in s)
    assert normalize_arabic(decorated) == normalize_arabic(s.replace("\u0640", ""))


@given(st.text(alphabet=st.sampled_from(list("ابتثجحخدذرسشصضطظعغفقكلمنهويabc ")), max_size=30))
def test_normalize_arabic_ignores_surrounding_punctuation(s: str) -> None:
    assert normalize_arabic(f"؟!{s}، .") == normalize_arabic(s)


# --- tokens -----------------------------------------------------------------------------------


def test_tokens() -> None:
    assert tokens("  وش   الأوراق؟ ") == ["وش", "الاوراق"]
    assert tokens("") == []
    assert tokens("...") == []


@given(arabicish)
def test_tokens_join_back_to_normalized(s: str) -> None:
    assert " ".join(tokens(s)) == normalize_arabic(s)
    assert all(t and not t.isspace() for t in tokens(s))


# --- script_language --------------------------------------------------------------------------


def test_script_language() -> None:
    assert script_language("السلام عليكم") == "ar"
    assert script_language("hello there") == "en"
    assert script_language("ابغى أعرف about the fees") == "en"
    assert script_language("ابغى اعرف عن الرسوم ok") == "ar"
    assert script_language("Café") == "en"
    assert script_language("١٢٣ 456") is None
    assert script_language("") is None
    assert script_language("👍🙏") is None
    assert script_language("ab اب") is None


@given(st.text(alphabet=st.characters(categories=("Nd", "P", "S", "Z"))))
def test_script_language_none_without_letters(s: str) -> None:
    assert script_language(s) is None


@given(
    st.text(alphabet=st.sampled_from(list("ابتثجحخدذرسشصضطظعغفقكلمنهوي")), min_size=1),
    st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz")), min_size=1),
)
def test_script_language_counts_letters(arabic: str, latin: str) -> None:
    expected = "ar" if len(arabic) > len(latin) else "en" if len(latin) > len(arabic) else None
    assert script_language(f"{arabic} 123 {latin}!") == expected


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("رقمي 1045236781 وش صار", "رقمي ••• وش صار"),
        ("جوالي ٠٥٥ ١٢٣ ٤٥٦٧", "جوالي •••"),
        ("050-123-4567", "•••"),
        ("دخلي 3000 ريال", "دخلي 3000 ريال"),
        ("موعدي 1445-09-12", "موعدي 1445-09-12"),
        ("12-05-2024", "12-05-2024"),
        ("طلبي SR-1448-00012", "طلبي SR-1448-00012"),
        ("طلبي SR-١٤٤٨-٠٠٠١٢٣٤", "طلبي SR-١٤٤٨-٠٠٠١٢٣٤"),
        ("ref sr-1448-1234567 and 1045236781", "ref sr-1448-1234567 and •••"),
        ("ID 1412 345678", "ID •••"),  # an ID after a word, not a reference
    ],
)
def test_long_numbers_are_masked_and_dates_and_references_kept(text: str, kept: str) -> None:
    assert mask_long_numbers(text) == kept

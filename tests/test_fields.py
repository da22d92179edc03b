from __future__ import annotations

from datetime import date, timedelta

import pytest
from hijridate import Gregorian, Hijri
from hypothesis import assume, given
from hypothesis import strategies as st

from conversations.fields import (
    Parsed,
    Rejected,
    format_dual_date,
    luhn_valid,
    match_choice,
    national_id_check_digit,
    normalize_phone,
    parse_date,
    parse_email,
    parse_integer,
    parse_national_id,
    parse_saudi_mobile,
    parse_text,
    parse_yesno,
    to_hijri,
)
from conversations.references import (
    canonical_reference,
    has_reference,
    is_reference,
    without_reference,
)

ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
TODAY = date(2024, 3, 5)


def arabic_digits(s: str) -> str:
    return "".join(ARABIC_INDIC[int(ch)] if ch.isdigit() else ch for ch in s)


def valid_id(first9: str) -> str:
    return first9 + national_id_check_digit(first9)


national_id_prefixes = st.builds(
    lambda lead, rest: lead + "".join(str(d) for d in rest),
    st.sampled_from(["1", "2"]),
    st.lists(st.integers(0, 9), min_size=8, max_size=8),
)
saudi_mobiles = st.builds(
    lambda second, rest: "5" + second + "".join(str(d) for d in rest),
    st.sampled_from(list("0345689")),
    st.lists(st.integers(0, 9), min_size=7, max_size=7),
)


# --- result types -----------------------------------------------------------------------------


def test_results_are_frozen() -> None:
    parsed = Parsed("a", "b")
    rejected = Rejected("error.required")
    assert rejected.params == {}
    with pytest.raises(AttributeError):
        parsed.value = "c"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        rejected.error = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "parser",
    [
        parse_text,
        parse_integer,
        parse_yesno,
        parse_national_id,
        parse_saudi_mobile,
        parse_email,
        lambda raw: parse_date(raw, today=TODAY),
    ],
)
@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_blank_is_required(parser: object, raw: str) -> None:
    assert callable(parser)
    assert parser(raw) == Rejected("error.required")


# --- parse_text -------------------------------------------------------------------------------


def test_parse_text() -> None:
    assert parse_text("  مرحبا بكم \n") == Parsed("مرحبا بكم", "مرحبا بكم")
    assert parse_text("line1\r\nline2") == Parsed("line1\nline2", "line1\nline2")
    assert parse_text("ab", min_length=3) == Rejected("error.too_short", {"min": "3"})
    assert parse_text("abc", min_length=3) == Parsed("abc", "abc")
    assert parse_text("abcd", max_length=3) == Rejected("error.too_long", {"max": "3"})
    assert parse_text("x" * 2001) == Rejected("error.too_long", {"max": "2000"})
    assert parse_text("x" * 2000) == Parsed("x" * 2000, "x" * 2000)


@given(st.text(min_size=1, max_size=50))
def test_parse_text_value_is_stripped(s: str) -> None:
    result = parse_text(s)
    if isinstance(result, Parsed):
        assert result.value == result.value.strip()
        assert result.value
    else:
        assert result.error == "error.required"


# --- parse_integer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("42", "42"),
        (" ٤٢ ", "42"),
        ("۴۲", "42"),
        ("1,500", "1500"),
        ("١٬٥٠٠", "1500"),
        ("1 500 000", "1500000"),
        ("3500 ريال", "3500"),
        ("3500ريال", "3500"),
        ("٣٥٠٠ ر.س", "3500"),
        ("3,500 SAR", "3500"),
        ("3500 sar", "3500"),
        ("3500 riyals", "3500"),
        ("1 riyal", "1"),
        ("SAR 200", "200"),
        ("007", "7"),
        ("0", "0"),
        ("-5", "-5"),
    ],
)
def test_parse_integer_accepts(raw: str, value: str) -> None:
    result = parse_integer(raw)
    assert isinstance(result, Parsed)
    assert result.value == value


@pytest.mark.parametrize(
    "raw",
    ["1.5", "٣٫٥", "1,5", "12 34", "10k", "1,50,000", "ريال", "5 5 5", "1e3"],
)
def test_parse_integer_rejects(raw: str) -> None:
    assert parse_integer(raw) == Rejected("error.integer")


@pytest.mark.parametrize(
    "raw", ["ما عندي دخل", "ماعندي دخل.", "لا يوجد دخل", "مافي", "صفر", "no income", "None"]
)
def test_no_income_in_words_is_zero(raw: str) -> None:
    assert parse_integer(raw, minimum=0, maximum=1000000) == Parsed("0", "0")
    # Where none is not an answer (the family's size), the bounds still refuse it.
    assert parse_integer(raw, minimum=1, maximum=30) == Rejected(
        "error.integer_min", {"min": "1", "max": "30"}
    )


def test_parse_integer_display_groups_thousands() -> None:
    assert parse_integer("1500000") == Parsed("1500000", "1,500,000")
    assert parse_integer("35") == Parsed("35", "35")


def test_parse_integer_bounds() -> None:
    assert parse_integer("0", minimum=1, maximum=20) == Rejected(
        "error.integer_min", {"min": "1", "max": "20"}
    )
    assert parse_integer("21", minimum=1, maximum=20) == Rejected(
        "error.integer_max", {"min": "1", "max": "20"}
    )
    assert parse_integer("21", minimum=None, maximum=20) == Rejected(
        "error.integer_max", {"max": "20"}
    )
    assert parse_integer("-1", minimum=0, maximum=None) == Rejected(
        "error.integer_min", {"min": "0"}
    )
    assert parse_integer("1", minimum=1, maximum=20) == Parsed("1", "1")
    assert parse_integer("20", minimum=1, maximum=20) == Parsed("20", "20")


def test_parse_integer_huge_numbers() -> None:
    assert parse_integer("9" * 5000, maximum=100) == Rejected("error.integer_max", {"max": "100"})
    assert parse_integer("9" * 5000) == Rejected("error.integer")


@given(st.integers(min_value=0, max_value=10**15))
def test_parse_integer_digit_forms_agree(n: int) -> None:
    plain = parse_integer(str(n))
    assert plain == Parsed(str(n), f"{n:,}")
    assert parse_integer(arabic_digits(str(n))) == plain
    assert parse_integer(f"{n:,}") == plain
    assert parse_integer(arabic_digits(f"{n:,}").replace(",", "٬")) == plain
    assert parse_integer(f"{n:,}".replace(",", " ") + " ريال") == plain


@given(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=-1000, max_value=1000),
)
def test_parse_integer_bounds_property(n: int, lo: int, hi: int) -> None:
    result = parse_integer(str(n), minimum=lo, maximum=hi)
    if n < lo:
        assert isinstance(result, Rejected)
        assert result.error == "error.integer_min"
    elif n > hi:
        assert isinstance(result, Rejected)
        assert result.error == "error.integer_max"
    else:
        assert result == Parsed(str(n), f"{n:,}")


# --- parse_yesno ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["نعم", "نَعَم", "ايوه", "إيوه", "ايه", "اي", "أجل", "موافق", "أوافق", "صح", "YES", "Yes!",
     "y", "OK", "agree", "نعم.", "  نعممممم  "],
)  # fmt: skip
def test_parse_yesno_yes(raw: str) -> None:
    assert parse_yesno(raw) == Parsed("yes", "yes")


@pytest.mark.parametrize(
    "raw", ["لا", "لأ", "كلا", "غير موافق", "غير مُوافِق", "no", "NO.", "n", "لا!"]
)
def test_parse_yesno_no(raw: str) -> None:
    assert parse_yesno(raw) == Parsed("no", "no")


@pytest.mark.parametrize("raw", ["1", "2", "١", "ربما", "maybe", "نعم لا", "yes no", "?"])
def test_parse_yesno_rejects(raw: str) -> None:
    assert parse_yesno(raw) == Rejected("error.yesno")


# --- national ID ------------------------------------------------------------------------------


def test_luhn_valid() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_valid("0")
    assert not luhn_valid("")
    assert not luhn_valid("12a4")
    assert not luhn_valid("١٢٣")


def test_national_id_check_digit() -> None:
    assert national_id_check_digit("100000000") == "8"
    assert luhn_valid("1000000008")
    with pytest.raises(ValueError):
        national_id_check_digit("12345678")
    with pytest.raises(ValueError):
        national_id_check_digit("12345678x")


def test_luhn_doubles_even_indices_for_ten_digits() -> None:
    def spec_luhn(digits: str) -> bool:
        total = 0
        for i, ch in enumerate(digits):
            n = int(ch) * (2 if i % 2 == 0 else 1)
            total += n - 9 if n > 9 else n
        return total % 10 == 0

    for n in range(0, 10**10, 9_876_543):
        digits = f"{n:010d}"
        assert luhn_valid(digits) == spec_luhn(digits)


def test_parse_national_id_examples() -> None:
    nid = valid_id("123456789")
    assert parse_national_id(nid) == Parsed(nid, "******" + nid[-4:])
    assert parse_national_id(f" {nid[:4]} {nid[4:7]}-{nid[7:]} ") == Parsed(
        nid, "******" + nid[-4:]
    )
    assert parse_national_id(arabic_digits(nid)) == Parsed(nid, "******" + nid[-4:])
    iqama = valid_id("234567890")
    assert parse_national_id(iqama) == Parsed(iqama, "******" + iqama[-4:])


def test_parse_national_id_errors() -> None:
    assert parse_national_id("12345") == Rejected("error.national_id_length")
    assert parse_national_id("12345678901") == Rejected("error.national_id_length")
    assert parse_national_id("12345abcde") == Rejected("error.national_id_length")
    assert parse_national_id(valid_id("323456789")) == Rejected("error.national_id_prefix")
    assert parse_national_id(valid_id("023456789")) == Rejected("error.national_id_prefix")
    nid = valid_id("123456789")
    broken = nid[:-1] + str((int(nid[-1]) + 1) % 10)
    assert parse_national_id(broken) == Rejected("error.national_id_checksum")


@given(national_id_prefixes)
def test_every_generated_id_parses(first9: str) -> None:
    nid = valid_id(first9)
    assert luhn_valid(nid)
    result = parse_national_id(nid)
    assert result == Parsed(nid, "******" + nid[-4:])
    assert parse_national_id(arabic_digits(nid)) == result
    assert parse_national_id("-".join([nid[:3], nid[3:6], nid[6:]])) == result


@given(national_id_prefixes, st.integers(0, 9), st.integers(1, 9))
def test_changing_one_digit_breaks_the_check(first9: str, position: int, delta: int) -> None:
    nid = valid_id(first9)
    changed = nid[:position] + str((int(nid[position]) + delta) % 10) + nid[position + 1 :]
    assert not luhn_valid(changed)
    expected = "error.national_id_checksum" if changed[0] in "12" else "error.national_id_prefix"
    assert parse_national_id(changed) == Rejected(expected)


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_parse_national_id_agrees_with_luhn(digits: str) -> None:
    result = parse_national_id(digits)
    if digits[0] not in "12":
        assert result == Rejected("error.national_id_prefix")
    elif luhn_valid(digits):
        assert isinstance(result, Parsed)
    else:
        assert result == Rejected("error.national_id_checksum")


# --- mobile numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "0501234567",
        "501234567",
        "+966501234567",
        "00966501234567",
        "966501234567",
        "050 123 4567",
        "050-123-4567",
        "+966 50 123 4567",
        "٠٥٠١٢٣٤٥٦٧",
        "+٩٦٦٥٠١٢٣٤٥٦٧",
        " (050) 123-4567 ",
    ],
)
def test_parse_saudi_mobile_accepts(raw: str) -> None:
    assert parse_saudi_mobile(raw) == Parsed("+966501234567", "050 123 4567")


@pytest.mark.parametrize(
    "raw",
    [
        "0112345678",  # Riyadh landline
        "+447911123456",  # UK mobile
        "05012345",
        "050123456789",
        "0521234567",
        "05O1234567",
        "not a number",
        "+",
    ],
)
def test_parse_saudi_mobile_rejects(raw: str) -> None:
    assert parse_saudi_mobile(raw) == Rejected("error.mobile")


@given(saudi_mobiles)
def test_saudi_mobile_forms_agree(national9: str) -> None:
    expected = parse_saudi_mobile("0" + national9)
    assert isinstance(expected, Parsed)
    assert expected.value == "+966" + national9
    for form in (
        national9,
        "+966" + national9,
        "00966" + national9,
        "966" + national9,
        arabic_digits("0" + national9),
        f"0{national9[:2]} {national9[2:5]} {national9[5:]}",
    ):
        assert parse_saudi_mobile(form) == expected


def test_normalize_phone() -> None:
    assert normalize_phone("0501234567") == "+966501234567"
    assert normalize_phone("966501234567") == "+966501234567"
    assert normalize_phone("whatsapp:+966501234567") == "+966501234567"
    assert normalize_phone("+44 7911 123456") == "+447911123456"
    assert normalize_phone("447911123456") == "+447911123456"
    assert normalize_phone("0112345678") == "+966112345678"
    assert normalize_phone("07911 123456", default_region="GB") == "+447911123456"
    assert normalize_phone("12") is None
    assert normalize_phone("") is None
    assert normalize_phone("hello") is None


@given(saudi_mobiles)
def test_normalize_phone_matches_mobile_parser(national9: str) -> None:
    parsed = parse_saudi_mobile(arabic_digits("0" + national9))
    assert isinstance(parsed, Parsed)
    assert normalize_phone("0" + national9) == parsed.value
    assert normalize_phone(parsed.value) == parsed.value


# --- e-mail -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("user@example.com", "user@example.com"),
        ("  First.Last+tag@Example.COM.SA ", "First.Last+tag@example.com.sa"),
        ("a_b-c@mail.charity.org.sa", "a_b-c@mail.charity.org.sa"),
    ],
)
def test_parse_email_accepts(raw: str, value: str) -> None:
    assert parse_email(raw) == Parsed(value, value)


@pytest.mark.parametrize(
    "raw",
    [
        "user",
        "user@",
        "@example.com",
        "user@example",
        "user@@example.com",
        "a@b@example.com",
        "user name@example.com",
        "user@exa mple.com",
        "user@example..com",
        "user@.example.com",
        "user@example.com.",
        "user@-example.com",
        "user@example.c",
        ".user@example.com",
        "us..er@example.com",
        "user@example.123",
    ],
)
def test_parse_email_rejects(raw: str) -> None:
    assert parse_email(raw) == Rejected("error.email")


# --- dates ------------------------------------------------------------------------------------


def test_known_hijri_fixed_points() -> None:
    assert to_hijri(date(2024, 3, 11)) == "1445-09-01"
    assert to_hijri(date(2024, 7, 7)) == "1446-01-01"
    assert parse_date("1445/09/01", today=TODAY) == Parsed(
        "2024-03-11", "2024-03-11 (1445-09-01 هـ)"
    )
    assert parse_date("1/1/1446", today=TODAY) == Parsed("2024-07-07", "2024-07-07 (1446-01-01 هـ)")


@pytest.mark.parametrize(
    "raw",
    [
        "2024-03-05",
        "2024/3/5",
        "5/3/2024",
        "05-03-2024",
        "5.3.2024",
        "٢٠٢٤-٠٣-٠٥",
        "٥/٣/٢٠٢٤",
        "5/3/2024م",
        "1445/08/24",
        "24/8/1445",
        "1445-08-24هـ",
        "24/8/1445 هـ",
        "24/8/1445 ه",
        "1445/8/24 AH",
        "٢٤/٨/١٤٤٥هـ",
    ],
)
def test_parse_date_accepts(raw: str) -> None:
    assert parse_date(raw, today=TODAY) == Parsed("2024-03-05", "2024-03-05 (1445-08-24 هـ)")


@pytest.mark.parametrize(
    "raw",
    [
        "2024-02-30",
        "2024-13-01",
        "1445/08/30",  # Sha'ban 1445 has 29 days
        "1300/01/01",  # before the Umm al-Qura table
        "1501/01/01",
        "24/8/45",
        "5/3",
        "tomorrow",
        "2024-03/05",
        "1445/08/24 م",  # year 1445 CE is not a usable date here
        "2024-03-05 هـ",  # no such Hijri year range
    ],
)
def test_parse_date_rejects(raw: str) -> None:
    assert parse_date(raw, today=TODAY) == Rejected("error.date")


def test_parse_date_calendar_restriction() -> None:
    assert parse_date("2024-03-05", today=TODAY, calendar="hijri") == Rejected("error.date")
    assert parse_date("1445/08/24", today=TODAY, calendar="gregorian") == Rejected("error.date")
    assert isinstance(parse_date("2024-03-05", today=TODAY, calendar="gregorian"), Parsed)
    assert isinstance(parse_date("1445/08/24", today=TODAY, calendar="hijri"), Parsed)
    with pytest.raises(ValueError):
        parse_date("2024-03-05", today=TODAY, calendar="julian")


def test_parse_date_future_and_past() -> None:
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    assert parse_date(tomorrow, today=TODAY, allow_future=False) == Rejected("error.date_future")
    assert parse_date(yesterday, today=TODAY, allow_past=False) == Rejected("error.date_past")
    assert isinstance(parse_date(TODAY.isoformat(), today=TODAY, allow_future=False), Parsed)
    assert isinstance(parse_date(TODAY.isoformat(), today=TODAY, allow_past=False), Parsed)
    assert isinstance(parse_date(tomorrow, today=TODAY, allow_past=False), Parsed)


def test_parse_date_outside_hijri_table_shows_gregorian_only() -> None:
    assert parse_date("1900-01-01", today=TODAY) == Parsed("1900-01-01", "1900-01-01")


def test_to_hijri_out_of_range() -> None:
    with pytest.raises(ValueError):
        to_hijri(date(1900, 1, 1))


def test_format_dual_date() -> None:
    d = date(2024, 3, 5)
    assert format_dual_date(d, "ar") == "24 شعبان 1445 هـ — 5 مارس 2024م"
    assert format_dual_date(d, "en") == "24 Sha'ban 1445 AH (5 March 2024)"
    assert format_dual_date(date(2024, 3, 11), "en") == "1 Ramadan 1445 AH (11 March 2024)"
    assert format_dual_date(date(2024, 7, 7), "ar") == "1 محرم 1446 هـ — 7 يوليو 2024م"
    assert format_dual_date(date(1900, 1, 1), "en") == "1 January 1900"


hijri_dates = st.builds(
    lambda y, m, d: (y, m, d),
    st.integers(1357, 1500),
    st.integers(1, 12),
    st.integers(1, 30),
)


@given(hijri_dates)
def test_hijri_gregorian_round_trip(ymd: tuple[int, int, int]) -> None:
    y, m, d = ymd
    assume(d <= Hijri(y, m, 1).month_length())
    g = Hijri(y, m, d).to_gregorian()
    gregorian = date(g.year, g.month, g.day)
    iso_hijri = f"{y:04d}-{m:02d}-{d:02d}"
    assert to_hijri(gregorian) == iso_hijri
    expected = Parsed(gregorian.isoformat(), f"{gregorian.isoformat()} ({iso_hijri} هـ)")
    assert parse_date(f"{y}/{m}/{d}", today=TODAY) == expected
    assert parse_date(f"{d}/{m}/{y} هـ", today=TODAY) == expected
    assert parse_date(arabic_digits(f"{d}-{m:02d}-{y}"), today=TODAY) == expected
    assert parse_date(gregorian.isoformat(), today=TODAY) == expected
    assert parse_date(f"{g.day}/{g.month}/{g.year}", today=TODAY) == expected


@given(st.dates(min_value=date(1937, 3, 14), max_value=date(2077, 11, 16)))
def test_gregorian_dates_parse_in_every_form(d: date) -> None:
    expected = parse_date(d.isoformat(), today=TODAY)
    assert isinstance(expected, Parsed)
    assert expected.value == d.isoformat()
    assert parse_date(arabic_digits(f"{d.day}/{d.month}/{d.year}"), today=TODAY) == expected
    hijri = Gregorian(d.year, d.month, d.day).to_hijri()
    assert parse_date(f"{hijri.day}/{hijri.month}/{hijri.year}", today=TODAY) == expected


# --- match_choice -----------------------------------------------------------------------------

OPTIONS: list[tuple[str, list[str]]] = [
    ("food", ["سلة غذائية", "Food basket"]),
    ("rent", ["مساعدة إيجار", "Rent help"]),
    ("other", ["أخرى", "Other"]),
]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", "food"),
        ("٢", "rent"),
        (" 3. ", "other"),
        ("سلة غذائيه", "food"),
        ("سلّة غذائية!", "food"),
        ("FOOD BASKET", "food"),
        ("مساعده ايجار", "rent"),
        ("اخرى", "other"),
        ("other", "other"),
        ("Rent", "rent"),
        ("سلة", "food"),  # a button's first word names it
        ("مساعده", "rent"),
    ],
)
def test_match_choice(raw: str, value: str) -> None:
    assert match_choice(raw, OPTIONS) == value


@pytest.mark.parametrize(
    "raw", ["0", "4", "٤", "", "  ", "غذائية", "basket", "food basket please", "9" * 5000]
)
def test_match_choice_no_match(raw: str) -> None:
    assert match_choice(raw, OPTIONS) is None


def test_a_first_word_picks_only_a_short_label_that_alone_begins_with_it() -> None:
    summary = [("confirm", ["تأكيد وإرسال"]), ("edit", ["تعديل إجابة"]), ("cancel", ["إلغاء"])]
    assert match_choice("تأكيد", summary) == "confirm"
    assert match_choice("تاكيد", summary) == "confirm"
    # Two labels begin with it: neither is guessed.
    twice = [("a", ["طلب دعم"]), ("b", ["طلب تطوع"])]
    assert match_choice("طلب", twice) is None
    # A longer label beginning with the same word makes it ambiguous too.
    mixed = [("complain", ["كيف أقدم شكوى؟"]), ("apply", ["كيف أقدم طلب دعم للأسرة؟"])]
    assert match_choice("كيف", mixed) is None
    # Only a short label is named by its first word, and only where asked for.
    assert match_choice("كيف", [("apply", ["كيف أقدم طلب دعم للأسرة؟"])]) is None
    assert match_choice("تأكيد", summary, by_first_word=False) is None


@given(st.integers(min_value=1, max_value=3))
def test_match_choice_number_forms_agree(n: int) -> None:
    assert match_choice(str(n), OPTIONS) == OPTIONS[n - 1][0]
    assert match_choice(arabic_digits(str(n)), OPTIONS) == OPTIONS[n - 1][0]


@pytest.mark.parametrize(
    ("typed", "stored", "alone"),
    [
        ("SR-1448-00012", "SR-1448-00012", True),
        (" sr-1448-12 ", "SR-1448-00012", True),
        ("SR - ١٤٤٨ - ١٢", "SR-1448-00012", True),
        ("SR 1448 12", "SR-1448-00012", True),
        ("SR–1448–12", "SR-1448-00012", True),
        ("cs-1447-123456", "CS-1447-123456", True),
        ("ref SR-1448-12", "SR-1448-00012", True),  # not REFSR-...
        ("رقم طلبي SR-1448-12", "SR-1448-00012", True),
        ("رقم طلبي SR-1448-12 وش صار عليه الحين", "SR-1448-00012", False),
        ("SR1448-00012", "SR-1448-00012", True),
        ("SR144800012", "SR-1448-00012", True),
        ("SR/1448/12", "SR-1448-00012", True),
        ("SR.1448.12", "SR-1448-00012", True),
        ("SR ـ ١٤٤٨ ـ ١٢", "SR-1448-00012", True),
        ("SR\u200f-1448-00012", "SR-1448-00012", True),  # copied from a right-to-left text
        ("0551234567", "0551234567", False),
        ("hello", "HELLO", False),
    ],
)
def test_a_reference_is_read_as_people_type_it(typed: str, stored: str, alone: bool) -> None:
    assert canonical_reference(typed) == stored
    assert is_reference(typed) is alone


def test_the_question_around_a_reference_is_kept_without_it() -> None:
    assert without_reference("وين وصل طلبي SR-1448-12 ؟") == "وين وصل طلبي  ؟"
    assert without_reference("no reference here") == "no reference here"
    assert has_reference("طلبي sr ١٤٤٨ ١٢") and not has_reference("0551234567")


@pytest.mark.parametrize(
    ("typed", "kind", "value"),
    [
        ("رقم هويتي ١٠١٢٣٤٥٦٧٢", "id", "1012345672"),
        ("هويتي: 1012345672 ", "id", "1012345672"),
        ("جوالي 0501234567", "mobile", "+966501234567"),
        ("0551234567 واتساب", "mobile", "+966551234567"),
        ("٥ افراد", "integer", "5"),
        ("1500 ريال شهري", "integer", "1500"),
        ("خمسة", "integer", "5"),
        ("Five", "integer", "5"),
    ],
)
def test_a_number_in_a_few_words_is_the_answer(typed: str, kind: str, value: str) -> None:
    parse = {"id": parse_national_id, "mobile": parse_saudi_mobile, "integer": parse_integer}
    result = parse[kind](typed)
    assert isinstance(result, Parsed) and result.value == value


def test_a_number_among_others_or_in_a_long_sentence_is_not_guessed() -> None:
    assert isinstance(parse_integer("عندي 3 عيال و 2 بنات"), Rejected)
    long = "والله يا اخوي الوضع صعب جدا ورقم هويتي 1012345672"
    assert parse_national_id(long) == Rejected("error.national_id_length")
    # The number's own error when it is the wrong one: its check digit, not its length.
    assert parse_national_id("رقم هويتي 1012345671") == Rejected("error.national_id_checksum")

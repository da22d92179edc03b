"""parse_email on mail shaped like what Gmail, Outlook and older Arabic Windows mail send."""

from __future__ import annotations

import base64

import pytest

from adapters.email.parse import MailKind, MalformedEmail, parse_email
from adapters.email.text import html_to_text, own_words
from tests.email.conftest import fixture


def test_gmail_reply_keeps_only_the_new_words_above_the_arabic_history() -> None:
    mail = parse_email(fixture("gmail_reply_ar.eml"))
    assert mail.text == "٢"
    assert mail.sender == "amal.alotaibi@example.test"
    assert mail.display_name == "أمل العتيبي"
    assert mail.subject == "Re: استفسار عن الدعم"
    assert mail.kind is MailKind.PERSONAL
    assert mail.message_id == "<CAJ8xq1t0kR6vU9y0Qb2sLmN3xPz7wEa4GhK1dF5@mail.gmail.com>"
    assert mail.in_reply_to == "<175.1795336010.tawasul@example.test>"
    assert mail.thread_id == "<174.1795336000.tawasul@example.test>"
    assert mail.files == () and mail.problems == ()


def test_outlook_reply_drops_the_from_sent_block_and_lowercases_the_sender() -> None:
    mail = parse_email(fixture("outlook_reply_en.eml"))
    assert mail.text == "Yes, I would like to apply for support."  # "Thanks, Ahmed" too
    assert mail.sender == "ahmed.h@example.test"
    assert mail.thread_id == "<180.1795336920.tawasul@example.test>"
    assert mail.message_id.startswith("<AM9PR07MB71054F2C")


def test_arabic_outlook_reply_in_windows_1256() -> None:
    mail = parse_email(fixture("outlook_reply_ar_1256.eml"))
    assert mail.text == "نعم"  # without "مع الشكر / خالد" under it
    assert mail.display_name == "خالد الشمري"
    assert mail.subject == "رد: رد على رسالتك"
    # Only In-Reply-To (no References): the thread is the mail answered.
    assert mail.thread_id == "<181.1795337000.tawasul@example.test>"


def test_windows_1256_eight_bit_body_and_encoded_headers() -> None:
    mail = parse_email(fixture("windows1256.eml"))
    assert mail.display_name == "سعد القحطاني"
    assert mail.subject == "استفسار عن الدوام"
    assert mail.text.startswith("السلام عليكم ورحمة الله\n\nأرغب في معرفة مواعيد الدوام")
    assert not mail.is_reply and mail.thread_id == mail.message_id


def test_iso_8859_6() -> None:
    mail = parse_email(fixture("iso8859_6.eml"))
    assert mail.subject == "تحديث بيانات"
    assert mail.text == "أريد تحديث رقم جوالي"


def test_arabic_mislabelled_as_latin_1_is_read_as_windows_1256() -> None:
    raw = (
        b"From: a@example.test\r\nSubject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "أريد التسجيل".encode("cp1256") + b"\r\n"
    )
    mail = parse_email(raw)
    assert mail.text == "أريد التسجيل"
    assert mail.problems  # noted, not silent


def test_raw_eight_bit_headers_are_read() -> None:
    raw = (
        b"From: " + "نورة".encode() + b" <noura@example.test>\r\n"
        b"Subject: " + "سؤال".encode("cp1256") + b"\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "نعم".encode() + b"\r\n"
    )
    mail = parse_email(raw)
    assert mail.display_name == "نورة" and mail.subject == "سؤال"
    assert mail.text == "نعم"


def test_html_only_mail_becomes_text_without_quoted_history() -> None:
    mail = parse_email(fixture("html_only.eml"))
    assert mail.text == (
        "السلام عليكم،\n\nأود الاستفسار عن شروط الحصول على السلة الغذائية.\nوشكرًا لكم."
    )
    assert "var x" not in mail.text and "Tahoma" not in mail.text


def test_forwarded_mail_without_a_note_keeps_the_forwarded_text() -> None:
    mail = parse_email(fixture("forwarded.eml"))
    assert mail.forwarded
    assert mail.text == (
        "Dear parent, the fees for the second term are 3,500 riyals, due by 1 December.\n"
        "Regards,\nSchool office"
    )


def test_forwarded_mail_with_a_note_keeps_the_note() -> None:
    raw = fixture("forwarded.eml").replace(
        b'Content-Type: text/plain; charset="UTF-8"\r\n\r\n',
        b'Content-Type: text/plain; charset="UTF-8"\r\n\r\nPlease see the fees below.\r\n',
    )
    assert parse_email(raw).text == "Please see the fees below."


def test_pdf_attachment_is_returned_and_the_inline_logo_ignored() -> None:
    mail = parse_email(fixture("pdf_attachment.eml"))
    assert mail.text == "مرفق صورة الهوية الوطنية كما طلبتم."  # signature after "-- " gone
    assert [(f.filename, f.content_type) for f in mail.files] == [("هوية.pdf", "application/pdf")]
    assert mail.files[0].data.startswith(b"%PDF-1.4")


def test_an_attached_photo_outside_the_html_is_a_file() -> None:
    photo = b"\xff\xd8\xff\xe0" + bytes(200)
    raw = (
        b'From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"'
        b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmy ID\r\n--b\r\n"
        b"Content-Type: image/jpeg\r\nContent-Disposition: inline; filename=IMG_0001.jpeg\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(photo) + b"--b--\r\n"
    )
    mail = parse_email(raw)
    assert [f.filename for f in mail.files] == ["IMG_0001.jpeg"]
    assert mail.files[0].data == photo


def test_out_of_office_is_an_auto_reply() -> None:
    mail = parse_email(fixture("out_of_office.eml"))
    assert mail.kind is MailKind.AUTO_REPLY


@pytest.mark.parametrize(
    "header",
    [
        b"Auto-Submitted: auto-generated",
        b"X-Autoreply: yes",
        b"X-Autorespond: On vacation",
        b"Precedence: auto_reply",
        b"Return-Path: <>",
    ],
)
def test_robot_headers_are_auto_replies(header: bytes) -> None:
    raw = b"From: a@example.test\r\n" + header + b"\r\nSubject: away\r\n\r\naway\r\n"
    assert parse_email(raw).kind is MailKind.AUTO_REPLY


def test_auto_submitted_no_is_a_person() -> None:
    raw = b"From: a@example.test\r\nAuto-Submitted: no\r\nSubject: hi\r\n\r\nhello\r\n"
    assert parse_email(raw).kind is MailKind.PERSONAL


@pytest.mark.parametrize("header", [b"Precedence: bulk", b"Precedence: list", b"Precedence: junk"])
def test_bulk_mail_is_a_list(header: bytes) -> None:
    raw = b"From: a@example.test\r\n" + header + b"\r\n\r\nnews\r\n"
    assert parse_email(raw).kind is MailKind.LIST


def test_newsletter_with_list_id_is_a_list() -> None:
    assert parse_email(fixture("newsletter.eml")).kind is MailKind.LIST


def test_bounce_names_the_failed_recipient_and_the_returned_message() -> None:
    mail = parse_email(fixture("bounce.eml"))
    assert mail.kind is MailKind.BOUNCE
    assert mail.bounce is not None
    assert mail.bounce.failed_recipients == ("gone.user@example.test",)
    assert mail.bounce.original_message_id == "<183.1795337400.tawasul@example.test>"
    assert mail.bounce.status == "5.1.1"


def test_a_delay_notice_is_a_bounce_without_a_failure() -> None:
    raw = fixture("bounce.eml").replace(b"Action: failed", b"Action: delayed")
    raw = raw.replace(b"Status: 5.1.1", b"Status: 4.4.1")
    mail = parse_email(raw)
    assert mail.kind is MailKind.BOUNCE
    assert mail.bounce is not None and mail.bounce.failed_recipients == ()


def test_broken_mime_is_read_around_and_the_damage_listed() -> None:
    mail = parse_email(fixture("broken_mime.eml"))
    assert mail.text == "أحتاج مساعدة في التسجيل"
    assert mail.damaged_files == 1 and mail.files == ()
    assert "StartBoundaryNotFoundDefect" in mail.problems


def test_a_body_that_cannot_be_structured_is_kept_as_text() -> None:
    raw = (
        b"From: a@example.test\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"no boundary anywhere, just words\r\n"
    )
    mail = parse_email(raw)
    assert mail.text == "no boundary anywhere, just words"
    assert mail.problems


def test_without_a_sender_the_mail_is_refused_clearly() -> None:
    with pytest.raises(MalformedEmail, match="no sender"):
        parse_email(b"Subject: who?\r\n\r\nhello\r\n")


def test_without_message_id_the_same_mail_gets_the_same_id() -> None:
    raw = b"From: a@example.test\r\nSubject: x\r\n\r\nhello\r\n"
    first, second = parse_email(raw), parse_email(raw)
    assert first.message_id == second.message_id
    assert first.message_id != parse_email(raw + b"again\r\n").message_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Gmail wraps a long attribution line.
        (
            "Yes please\n\nOn Sun, Nov 22, 2026 at 10:02 AM Al-Birr Association <\n"
            "bot@example.test> wrote:\n\n> How can I help?\n",
            "Yes please",
        ),
        ("نعم\n\nفي 22/11/2026 10:02 ص، كتب جمعية البر:\n> كيف أخدمك؟\n", "نعم"),
        (
            "موافق\n\nمن: جمعية البر <bot@example.test>\nتاريخ الإرسال: الأحد\n"
            "إلى: فهد\nالموضوع: طلب\n\nنص قديم\n",
            "موافق",
        ),
        ("1\n\nSent from my iPhone\n", "1"),
        ("تم\n\nأُرسلت من الـ iPhone\n", "تم"),
        ("ok\n-- \nFahad\n0551234567\n", "ok"),
        ("> quoted\nmine\n> quoted again\n", "mine"),
        # A closing and the name under it are not part of the answer.
        ("امل سعيد الزهراني\n\nمع التحية\nامل", "امل سعيد الزهراني"),
        ("1012345672\n\nمع الشكر\nامل\n", "1012345672"),
        ("0551234567\n\nRegards,\nAmal", "0551234567"),
        ("الرياض\nشكراً لكم", "الرياض"),
        (
            "Thanks for the help, the lease is attached.\nThanks,\nAmal Saeed",
            "Thanks for the help, the lease is attached.",
        ),
        # ... unless it is the whole message, or more than a name stands under it.
        ("شكرا", "شكرا"),
        ("مع التحية\nامل", "مع التحية\nامل"),
        ("السلام عليكم\n\nشكراً\nأمل أحمد السبيعي", "السلام عليكم\n\nشكراً\nأمل أحمد السبيعي"),
        (
            "Dear team,\nmy ID is below\nThanks\n1012345672",
            "Dear team,\nmy ID is below\nThanks\n1012345672",
        ),
        (
            "الوضع صعب\nشكرا\nوالله يا اخوي ما عندنا دخل من سنتين وننتظر ردكم الكريم",
            "الوضع صعب\nشكرا\nوالله يا اخوي ما عندنا دخل من سنتين وننتظر ردكم الكريم",
        ),
        ("نعم\nشكرا\nأحمد\nرقم الهوية 1012345672", "نعم\nشكرا\nأحمد\nرقم الهوية 1012345672"),
        (
            "أريد تحديث رقمي\nشكرا\nرقمي الجديد\n0551234567",
            "أريد تحديث رقمي\nشكرا\nرقمي الجديد\n0551234567",
        ),
        ("رقم هويتي\nشكرا\nأحمد\n1012345672", "رقم هويتي\nشكرا\nأحمد\n1012345672"),
        # A signature's contact lines under the name are not an answer either.
        ("٢\n\nمع الشكر\nأحمد الغامدي\n0551234567", "٢"),
        ("١\n\nمع الشكر\nأحمد الغامدي\n٠٥٥١٢٣٤٥٦٧", "١"),
        ("أحمد سعيد الغامدي\n\nمع الشكر\nأحمد الغامدي\n0551234567", "أحمد سعيد الغامدي"),
        ("السلام عليكم\n\nمع الشكر\nأحمد الغامدي\n0551234567", "السلام عليكم"),
        ("شكرا\nجوال 0551234567", "شكرا\nجوال 0551234567"),
        ("ابغى اكلم موظف\n\nمع الشكر\nأمل العتيبي\nجوال 0551234567", "ابغى اكلم موظف"),
        (
            "نعم\n\nمع خالص التحية\nأحمد الغامدي\nمدير المشاريع\nجمعية البر الخيرية\n"
            "ت: 0114567890\nج: ٠٥٥١٢٣٤٥٦٧\nahmed@albir.org.sa\nwww.albir.org.sa",
            "نعم",
        ),
        ("Yes\n\nBest regards,\nAmal Saeed\nMobile: +966 55 123 4567\nTel. 011 456 7890", "Yes"),
        ("نعم\n\nتحياتي\nهاتف: 0114567890\nموبايل 0551234567", "نعم"),
        ("نعم\n—\nأحمد\n0551234567", "نعم"),
        ("نعم\n___\nأحمد", "نعم"),
    ],
)
def test_own_words(text: str, expected: str) -> None:
    assert own_words(text) == expected


FORWARDED_BODY = (
    "\nمن: خالد <k@example.test>\nالتاريخ: الأحد، 22 نوفمبر 2026\nالموضوع: طلب\n"
    "إلى: <a@example.test>\n\nكيف اقدم طلب دعم؟\n"
)


@pytest.mark.parametrize(
    "mark",
    [
        "---------- Forwarded message ---------",
        "---------- الرسالة المعاد توجيهها ---------",
        "---------- الرسالة المُعاد توجيهها ---------",
        "---------- رسالة مُعاد توجيهها ---------",
        "---------- رسالة معاد توجيهها ---------",
        "-------- رسالة تمت إعادة توجيهها --------",
        "بداية الرسالة المُعاد توجيهها:",
    ],
)
def test_arabic_forward_marks_with_the_article_or_tashkeel(mark: str) -> None:
    raw = (
        "From: a@example.test\r\nSubject: طلب\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + mark
        + FORWARDED_BODY
    ).encode()
    mail = parse_email(raw)
    assert mail.forwarded
    assert mail.text == "كيف اقدم طلب دعم؟"  # not the third party's From/Date/To lines
    assert own_words("شوفوا هذا\n\n" + mark + FORWARDED_BODY) == "شوفوا هذا"


def test_outlook_arabic_header_block_with_sent_written_with_tashkeel() -> None:
    text = (
        "الرياض\n\nمن: تواصل <care@example.org>\nأُرسلت: الأحد، 22 نوفمبر 2026 10:00 ص\n"
        "إلى: أحمد\nالموضوع: رد: طلب دعم\n\nفي أي مدينة تسكن؟\n"
    )
    assert own_words(text) == "الرياض"


def test_html_only_outlook_mail_with_a_mobile_in_the_signature() -> None:
    html = (
        '<html><body dir="rtl"><p>السلام عليكم</p><p>ابغى اكلم موظف بخصوص طلبي</p>'
        "<p>مع الشكر<br>أمل العتيبي<br>جوال 0551234567</p></body></html>"
    )
    raw = (
        b"From: amal@example.test\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(html.encode())
    )
    assert parse_email(raw).text == "السلام عليكم\n\nابغى اكلم موظف بخصوص طلبي"


def test_a_hand_written_letter_with_from_and_subject_lines_is_kept() -> None:
    letter = "من: أحمد محمد\nإلى: جمعية البر\nالموضوع: طلب مساعدة\n\nأرجو مساعدتي في دفع الإيجار."
    assert own_words(letter) == letter


def test_html_lists_and_line_breaks() -> None:
    html = "<ul><li>one</li><li>two</li></ul><p>a<br>b</p><table><tr><td>x</td></tr></table>"
    assert html_to_text(html) == "- one\n- two\n\na\nb\n\nx"


def test_html_empty_line_between_divs_is_kept_as_a_paragraph_break() -> None:
    html = "<div>first</div>\n<div><br></div>\n<div>second</div>\n<div>third</div>"
    assert html_to_text(html) == "first\n\nsecond\nthird"

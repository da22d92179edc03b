"""The engine as dialogues: a beneficiary writes, the bot answers, through real storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.service import Service
from conversations.engine import MENU
from conversations.messages import Ask, Attachment, Channel
from conversations.ports import RequestStatus
from storage.models import (
    AuditEntry,
    Conversation,
    Document,
    Message,
    Request,
    RequestAnswer,
    SurveyAnswer,
    UnansweredQuestion,
)
from storage.repository import NotOpen
from storage.staff_models import Handling
from storage.verification import StatusCheckFailure
from tests.conftest import WORKING_TIME, Chat, take_conversation, valid_national_id

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def has_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def has_latin(text: str) -> bool:
    return any("a" <= ch.lower() <= "z" for ch in text)


async def pdf(service: Service, name: str = "id.pdf") -> Attachment:
    return await service.files.save_bytes(
        PDF, declared_type="application/pdf", filename=name, max_bytes=10_000_000
    )


async def fill_support_request(chat: Chat, *, nid: str | None = None) -> str:
    """A complete support request in Arabic with Arabic-Indic digits; returns the reference."""
    await to_the_summary(chat, nid=nid)
    await chat.say("تأكيد وإرسال")
    assert "الإقرار" in chat.text
    await chat.say("نعم")
    refs = [w for w in chat.text.split() if w.startswith("SR-")]
    assert refs, chat.text
    return refs[0]


async def to_the_summary(chat: Chat, *, nid: str | None = None, housing: str = "إيجار") -> None:
    """A support request answered up to its summary (one PDF among the documents)."""
    await chat.say("السلام عليكم")
    await chat.say("٢")
    assert "الخصوصية" in chat.text or "سري" in chat.text  # duties and privacy notice first
    await chat.say("١")
    await chat.say("محمد عبدالله القحطاني")
    nid = nid or valid_national_id()
    await chat.say(nid.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    await chat.say("٠٥٥١٢٣٤٥٦٧")
    await chat.say("الرياض")
    await chat.say("٥")
    await chat.say("٣٬٠٠٠ ريال")
    await chat.say(housing)
    if housing == "إيجار":
        await chat.say("١٥٠٠")
    await chat.say("١")
    await chat.say("نحتاج مساعدة في دفع الإيجار المتأخر")
    assert chat.last.ask is Ask.ATTACHMENT
    await chat.say(attachments=[await pdf(chat.service)])
    await chat.say("تم")
    assert "راجع" in chat.text and "محمد عبدالله القحطاني" in chat.text


async def test_greeting_and_menu_in_arabic(chat: Chat) -> None:
    await chat.say("السلام عليكم")
    assert has_arabic(chat.text)
    assert chat.choice_values() == list(MENU)


async def test_english_detected_from_script_and_switchable(chat: Chat) -> None:
    await chat.say("hello there")
    assert not has_arabic(chat.replies[0].text.replace("🌿", ""))
    await chat.say("عربي")
    assert has_arabic(chat.text)
    await chat.say("english")
    assert has_latin(chat.text) and not has_arabic(chat.last.text)


async def test_a_first_english_word_greets_in_english(chat: Chat) -> None:
    await chat.say("English")
    assert [r.key for r in chat.replies] == ["greeting", "menu.prompt"]
    assert all(r.lang == "en" and not has_arabic(r.text) for r in chat.replies)


async def test_a_new_conversation_starts_in_the_language_its_channel_says(
    service: Service,
) -> None:
    english = Chat(service, Channel.TELEGRAM, sender="hint-en")
    await english.say(command="start", lang_hint="en")
    assert english.replies[0].key == "greeting" and not has_arabic(english.text)
    # What the person writes tells more than the setting of their phone.
    arabic = Chat(service, Channel.TELEGRAM, sender="hint-ar")
    await arabic.say("السلام عليكم", lang_hint="en")
    assert has_arabic(arabic.text)
    # And the setting is only where a conversation starts: later it changes nothing.
    await english.say("عربي")
    await english.say(command="menu", lang_hint="en")
    assert has_arabic(english.text)


async def test_option_by_arabic_indic_number_latin_number_or_label(service: Service) -> None:
    for i, pick in enumerate(["٧", "7", "التحدث مع موظف"]):
        chat = Chat(service, sender=f"pick-{i}")
        await chat.say("مرحبا")
        await chat.say(pick)
        assert "موظف" in chat.text
        async with service.db.session() as s:
            statuses = list(await s.scalars(select(Conversation.status)))
        assert statuses.count("queued") == i + 1


async def test_full_support_request_is_stored_with_declaration_and_due_date(
    chat: Chat, service: Service
) -> None:
    ref = await fill_support_request(chat)
    assert "لجنة البحث" in chat.text and "14" in chat.text
    assert "هـ" in chat.text  # the due date also in Hijri
    async with service.db.session() as s:
        request = await s.scalar(select(Request).where(Request.reference == ref))
    assert request is not None
    assert request.status == RequestStatus.SUBMITTED
    assert request.declared_at == WORKING_TIME
    assert request.declaration_channel == "console"
    assert request.due_at == WORKING_TIME + timedelta(days=14)
    assert ref.startswith("SR-1448-")  # Hijri year of November 2026


async def test_wrong_answers_are_reasked_with_a_clear_message(chat: Chat) -> None:
    await chat.say("٢")
    await chat.say("١")
    await chat.say("م")  # too short
    assert "3 إلى 100" in chat.text and "(1/" in chat.last.text  # the form's own message
    await chat.say("محمد علي")
    bad = valid_national_id()[:-1] + str((int(valid_national_id()[-1]) + 1) % 10)
    await chat.say(bad)
    assert "رقم التحقق" in chat.text
    await chat.say("3" + valid_national_id()[1:])
    assert "يبدأ" in chat.text
    await chat.say("12345")
    assert "10 أرقام" in chat.text
    await chat.say(valid_national_id())
    await chat.say("0123")
    assert "الجوال" in chat.text
    await chat.say("0551234567")
    await chat.say("جدة")
    await chat.say("كثير")
    assert "رقمًا" in chat.text
    await chat.say("٤٠")
    assert "30" in chat.text
    await chat.say("4")
    await chat.say("0")
    await chat.say("قصر")
    assert "اختر" in chat.text


@pytest.mark.parametrize("agreed", ["تمام", "اوكي", "ايوا", "sure"])
async def test_an_everyday_yes_agrees_to_a_forms_introduction(chat: Chat, agreed: str) -> None:
    await chat.say("السلام عليكم")
    await chat.say("٢")
    await chat.say(agreed)
    assert "(1/" in chat.last.text


@pytest.mark.parametrize("about", ["موظف", "الموظف", "staff"])
async def test_a_complaint_about_a_staff_member_is_not_a_handover(
    service: Service, about: str
) -> None:
    chat = Chat(service, sender=f"complaint-{about}")
    await chat.say("السلام عليكم")
    await chat.say("٦")
    await chat.say("١")
    await chat.say("شكوى")
    await chat.say(about)  # "what is it about?": «تعامل أحد الموظفين»
    assert "(3/" in chat.last.text
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"
    await chat.say("موظف")  # anywhere else, the word still asks for a person
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "queued"


async def test_back_skip_and_correction_before_confirming(service: Service) -> None:
    chat = Chat(service)
    await chat.say("english")
    await chat.say("5")  # volunteer
    await chat.say("1")  # start
    await chat.say("Sara Ahmed")
    await chat.say("back")
    assert "(1/" in chat.last.text
    await chat.say("Sara Ahmad")
    await chat.say("0551234567")
    assert "skip" in chat.choice_values()  # email is optional
    await chat.say("skip")
    await chat.say("Riyadh")
    await chat.say("15/3/1420")  # a Hijri birth date
    await chat.say("teaching, first aid")
    await chat.say("flexible")
    await chat.say("yes")
    assert "Sara Ahmad" in chat.text and "1999-06-29" in chat.text
    await chat.say("Change an answer")
    await chat.say("1")
    await chat.say("Sara A. Ahmad")
    assert "Sara A. Ahmad" in chat.text and "Is everything correct" in chat.text
    await chat.say("Confirm and send")
    assert "VL-" in chat.text


async def test_backing_out_of_a_correction_keeps_the_answers_as_they_were(
    service: Service,
) -> None:
    chat = Chat(service)
    await to_the_summary(chat, housing="ملك")
    # The documents, picked to be changed, then "back": the file sent is still there.
    await chat.say("تعديل إجابة")
    await chat.say("المستندات")
    assert chat.last.ask is Ask.ATTACHMENT
    await chat.say("رجوع")
    assert "المستندات: ملف واحد" in chat.text or "المستندات: 1" in chat.text, chat.text
    # The housing changed to rented asks the rent; "back" then leaves it owned, not rented
    # without a rent.
    await chat.say("تعديل إجابة")
    await chat.say("السكن")
    await chat.say("إيجار")
    assert "الإيجار الشهري" in chat.text
    await chat.say("رجوع")
    assert "السكن: ملك" in chat.text and "الإيجار الشهري" not in chat.text
    await chat.say("تأكيد وإرسال")
    await chat.say("نعم")
    async with service.db.session() as s:
        rows = await s.execute(select(RequestAnswer.field, RequestAnswer.value))
        answers = {field: value for field, value in rows}
        documents = await s.scalar(select(func.count()).select_from(Document))
    assert answers["housing"] == "owned" and "monthly_rent" not in answers
    assert documents == 1


async def test_files_sent_where_words_are_asked_are_kept_with_the_documents(
    service: Service,
) -> None:
    chat = Chat(service)
    await chat.say("السلام عليكم")
    await chat.say("٢")
    await chat.say("١")
    await chat.say("محمد عبدالله القحطاني")
    # A photo of the ID card, captioned: kept for the documents; the caption is no ID.
    await chat.say("هذي صورة هويتي", attachments=[await pdf(service, "hawiya.pdf")])
    kept = service.catalog.text("ar", "attachment.kept", field="المستندات")
    assert chat.replies[0].text == kept and "(2/" in chat.last.text
    await chat.say(valid_national_id())
    for answer in ("٠٥٥١٢٣٤٥٦٧", "الرياض", "٥", "٣٠٠٠", "ملك", "١"):
        await chat.say(answer)
    # The situation told with a report attached: the words answer, the file is kept.
    await chat.say("هذا التقرير الطبي لابني", attachments=[await pdf(service, "report.pdf")])
    assert chat.replies[0].text == kept and chat.last.ask is Ask.ATTACHMENT
    await chat.say("تم")  # both files are already there
    assert "المستندات: ملفان" in chat.text and "هذا التقرير الطبي لابني" in chat.text
    # One more file at the summary (an album running late): kept, and the summary again.
    await chat.say(attachments=[await pdf(service, "lease.pdf")])
    assert chat.replies[0].text == kept and "المستندات: 3 ملفات" in chat.text
    await chat.say("تأكيد وإرسال")
    await chat.say("نعم")
    async with service.db.session() as s:
        names = set(await s.scalars(select(Document.filename)))
    assert names == {"hawiya.pdf", "report.pdf", "lease.pdf"}


async def test_done_with_no_file_where_none_is_needed_goes_on(chat: Chat) -> None:
    await chat.say("السلام عليكم")
    await chat.say("٤")  # update my data
    await chat.say("١")
    await chat.say(valid_national_id())
    await chat.say("الدخل")
    await chat.say("صار عندي راتب تقاعد")
    assert chat.last.ask is Ask.ATTACHMENT
    await chat.say("تم")
    assert "لم يصلني" not in chat.text and "راجع" in chat.text


async def test_a_question_sent_with_a_file_is_answered_and_the_file_said_unneeded(
    chat: Chat, service: Service
) -> None:
    await chat.say("السلام عليكم")
    await chat.say("ما هي المستندات المطلوبة للتقديم؟", attachments=[await pdf(service)])
    assert chat.replies[0].key == "attachment.not_expected" and "الهوية" in chat.text


async def test_another_form_from_the_menu_does_not_throw_a_half_filled_one_away(
    chat: Chat,
) -> None:
    await chat.say("السلام عليكم")
    await chat.say("٢")
    await chat.say("١")
    for answer in ("محمد عبدالله القحطاني", valid_national_id(), "0551234567"):
        await chat.say(answer)
    await chat.say("القائمة")
    await chat.say("٦")  # a complaint, meanwhile
    assert chat.last.key == "form.switch" and "«طلب دعم»" in chat.text
    await chat.say("نعم، أكمل")
    assert "(4/" in chat.last.text  # the city: where the request stopped
    await chat.say("القائمة")
    await chat.say("٦")
    await chat.say("لا")  # not continuing the request: the complaint, then
    assert chat.last.text.startswith("📝 شكوى أو اقتراح")
    await chat.say("القائمة")
    await chat.say("٢")
    assert chat.last.text.startswith("📝 طلب دعم")  # given up, as chosen: from the start


async def test_a_summary_keeps_numbers_in_order_and_follows_the_language(chat: Chat) -> None:
    """In Arabic the mobile and the dates are kept left to right (a date would otherwise
    read backwards); after a switch to English the choices read in English."""
    await chat.say("٥")  # volunteer
    await chat.say("١")
    for answer in ("سارة أحمد", "0551234567", "تخطي", "الرياض", "1999-06-29", "التعليم"):
        await chat.say(answer)
    await chat.say("أيام الأسبوع")
    await chat.say("نعم")
    summary = chat.text
    assert "\u2066055 123 4567\u2069" in summary
    assert "\u20661999-06-29\u2069 (\u20661420-03-15\u2069 هـ)" in summary
    assert "أيام الأسبوع" in summary and "سارة أحمد" in summary  # Arabic stays as it is
    await chat.say("english")
    summary = chat.text
    assert "Availability: Weekdays" in summary and "Previous volunteering: Yes" in summary
    assert "1999-06-29 (1420-03-15 AH)" in summary and "\u2066" not in summary


async def test_condition_on_earlier_answer_skips_a_field(service: Service) -> None:
    chat = Chat(service)
    await chat.say("٦")  # complaint or suggestion
    await chat.say("١")
    await chat.say("اقتراح")
    await chat.say("أخرى")
    await chat.say("أقترح إضافة خدمة الرسائل النصية للمتابعة")
    await chat.say("لا")  # no contact wanted: the mobile field is not asked
    assert "راجع" in chat.text
    await chat.say("تأكيد وإرسال")
    assert "CS-" in chat.text
    # No contact wanted: recorded for staff, not a live handover (whose queue then kept the
    # offered "main menu" from answering).
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"
    await chat.say("١")
    assert chat.choice_values() == list(MENU)


async def test_a_complaint_whose_author_wants_contact_is_handed_to_staff(
    service: Service,
) -> None:
    chat = Chat(service)
    for text in ("٦", "١", "شكوى", "أخرى", "تأخر الرد على طلبي ثلاثة أسابيع", "نعم"):
        await chat.say(text)
    await chat.say("0551234567")
    await chat.say("تأكيد وإرسال")
    assert "CS-" in chat.text
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "queued"


async def test_cancel_discards_the_form(chat: Chat) -> None:
    await chat.say("٢")
    await chat.say("١")
    await chat.say("محمد علي")
    await chat.say("إلغاء")
    assert "إلغاء" in chat.text
    assert chat.choice_values()[0] == "faq"
    await chat.say("٢")
    assert "(1/" not in chat.text  # starts again from the intro, nothing kept


async def test_help_in_a_form_asks_the_same_question_again(chat: Chat) -> None:
    """Help is an aside: the form's question comes again, and the next answer is the form's,
    not a question nobody understood (nor stored among the unanswered)."""
    await chat.say("٢")
    await chat.say("١")
    await chat.say("محمد علي")
    assert "(2/" in chat.text
    for word in ("مساعدة", "/help"):
        await chat.say(word)
        assert "(2/" in chat.replies[-1].text  # the national ID's question, again
        assert chat.choice_values() != list(MENU)
    await chat.say(valid_national_id())
    assert "(3/" in chat.text
    async with chat.service.db.session(write=False) as s:
        assert await s.scalar(select(func.count()).select_from(UnansweredQuestion)) == 0


async def test_an_introduction_is_never_passed_over(chat: Chat) -> None:
    """Changing language or asking for help before agreeing shows the introduction again;
    an answer that is neither choice says so."""
    await chat.say("٢")
    intro = chat.text
    assert "(1/" not in intro
    await chat.say("english")
    assert "(1/" not in chat.text and chat.choice_values() == ["yes", "cancel"]
    await chat.say("help")
    assert "(1/" not in chat.text and chat.choice_values() == ["yes", "cancel"]
    await chat.say("maybe later")
    assert "pick one of the options" in chat.replies[0].text
    assert chat.choice_values() == ["yes", "cancel"]
    await chat.say("1")
    assert "(1/" in chat.text


async def test_help_while_checking_a_request_asks_for_the_reference_again(chat: Chat) -> None:
    await chat.say("/en")
    await chat.say("3")
    asked = chat.replies[-1].text
    await chat.say("help")
    assert len(chat.replies) == 2 and chat.replies[-1].text == asked
    await chat.say("SR-1448-99999")
    assert "last four digits" in chat.text
    await chat.say("help")
    assert "last four digits" in chat.replies[-1].text  # the same question, again


async def test_unfinished_form_resumes_after_restart(service: Service, tmp_path) -> None:
    chat = Chat(service)
    await chat.say("٢")
    await chat.say("١")
    await chat.say("محمد علي")
    await service.close()

    restarted = Service(service.config)
    try:
        later = Chat(restarted, now=WORKING_TIME + timedelta(days=3))
        await later.say("السلام عليكم")
        assert "لم يكتمل" in later.text
        await later.say("نعم، أكمل")
        assert "(2/" in later.last.text  # the national ID, the name was kept
    finally:
        await restarted.close()


async def test_handoff_on_request_and_silence_while_queued(chat: Chat, service: Service) -> None:
    await chat.say("مرحبا")
    await chat.say("موظف")
    assert "موظف" in chat.text
    assert await chat.say("هل من أحد؟") == []  # the bot stays silent for staff
    await chat.say("إلغاء")
    assert "إلغاء" in chat.text
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"


@pytest.mark.parametrize("word", ["القائمة", "رجوع", "menu"])
async def test_the_menu_word_leaves_the_queue_before_anyone_answers(
    service: Service, word: str
) -> None:
    chat = Chat(service, sender=f"leaving-{word}")
    await chat.say("مرحبا")
    await chat.say("موظف")
    assert "«القائمة»" in chat.text  # said how to come back
    await chat.say(word)
    assert chat.last.key == "handoff.left_queue" and chat.last.choices
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"


async def test_handoff_after_two_misunderstood_messages(chat: Chat, service: Service) -> None:
    await chat.say("مرحبا")
    await chat.say("كيكي بوبو زززز")
    assert "لم أفهم" in chat.text
    await chat.say("قطوة فلفل بنفسجي")  # no word of it in the knowledge base
    assert "موظف" in chat.text
    async with service.db.session() as s:
        conv = await s.scalar(select(Conversation))
        unanswered = await s.scalar(select(func.count()).select_from(UnansweredQuestion))
    assert conv is not None and conv.status == "queued" and conv.handoff_reason == "misunderstood"
    assert unanswered == 2


async def test_an_unanswered_question_is_kept_without_its_numbers(
    chat: Chat, service: Service
) -> None:
    """Staff read the unanswered questions to teach the bot: an ID or a phone number typed
    in one is not kept there (amounts and short numbers are)."""
    nid = valid_national_id()
    await chat.say("مرحبا")
    await chat.say(f"كيكي بوبو {nid} زززز ٠٥٥ ١٢٣ ٤٥٦٧ و 3000")
    async with service.db.session() as s:
        kept = await s.scalar(select(UnansweredQuestion.text))
    assert kept == "كيكي بوبو ••• زززز ••• و 3000"


async def test_asking_in_words_for_a_person_hands_over(chat: Chat, service: Service) -> None:
    """An entry with an action does it rather than explain it: asked for a person in a
    sentence, the bot hands the conversation over, as the word «موظف» does."""
    await chat.say("مرحبا")
    await chat.say("ابغى اكلم موظف لو سمحت")
    async with service.db.session() as s:
        conv = await s.scalar(select(Conversation))
    assert conv is not None and conv.status == "queued" and conv.handoff_reason == "asked"


async def test_asking_in_words_about_ones_request_starts_the_check(chat: Chat) -> None:
    await chat.say("hello")
    await chat.say("where is my request?")
    assert "reference number" in chat.text and chat.choice_values() == ["menu"]
    await chat.say("SR-1448-00001")
    assert "last four digits" in chat.text


async def test_a_reference_in_a_question_about_it_is_taken_from_the_question(chat: Chat) -> None:
    await chat.say("hello")
    await chat.say("where is my request SR-1448-12 now?")
    assert "last four digits" in chat.text  # not asked for the reference again


async def test_a_reference_pasted_at_the_menu_is_checked(chat: Chat, service: Service) -> None:
    """Not a question nobody understood: the bot asks for the digits that prove it is theirs."""
    nid = valid_national_id()
    reference = await fill_support_request(chat, nid=nid)
    prefix, year, number = reference.split("-")
    relative = Chat(service, sender="relative")
    await relative.say("السلام عليكم")
    await relative.say(f" {prefix.lower()}-{year}-{int(number)} ")  # as short as people write it
    assert "آخر أربعة" in relative.text
    await relative.say(nid[-4:])
    assert reference in relative.text and "تم الاستلام" in relative.text
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(UnansweredQuestion)) == 0


async def test_the_applicants_own_reference_is_shown_without_the_digits(chat: Chat) -> None:
    """From the menu their requests are listed unasked: pasting the reference of one of
    them does not ask them to prove it is theirs."""
    reference = await fill_support_request(chat)
    await chat.say("القائمة")
    await chat.say(reference)
    assert "status.ask_last4" not in [r.key for r in chat.replies]
    assert reference in chat.text and "تم الاستلام" in chat.text


async def test_a_first_message_is_understood_like_any_other(service: Service) -> None:
    """A conversation's first message (on WhatsApp, SMS, email: no start command) is greeted,
    and then acted on as a later one would be."""
    asking = Chat(service, sender="first-1")
    await asking.say("ابغى اكلم موظف لو سمحت")
    outside = Chat(service, sender="first-2")
    await outside.say("متى ينزل حساب المواطن هالشهر")
    assert "لا تتولاه الجمعية" in outside.text
    checking = Chat(service, sender="first-3")
    await checking.say("رقم طلبي SR-1448-00001")
    assert "آخر أربعة" in checking.text
    async with service.db.session() as s:
        statuses = list(await s.scalars(select(Conversation.status).order_by(Conversation.id)))
        kept = list(await s.scalars(select(UnansweredQuestion.text)))
    assert statuses == ["queued", "bot", "bot"]
    assert kept == ["متى ينزل حساب المواطن هالشهر"]


async def test_an_out_of_scope_question_breaks_a_run_of_misses(
    chat: Chat, service: Service
) -> None:
    await chat.say("مرحبا")
    await chat.say("كيكي بوبو زززز")
    await chat.say("متى ينزل حساب المواطن هالشهر")
    await chat.say("قطوة فلفل بنفسجي")  # no word of it in the knowledge base
    assert "لم أفهم" in chat.text
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"


async def test_out_of_hours_handoff_says_when_staff_answer(service: Service) -> None:
    friday_evening = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # Friday 20:00 Riyadh
    chat = Chat(service, now=friday_evening)
    await chat.say("hi")
    await chat.say("agent")
    assert "outside working hours" in chat.text
    assert "29 November 2026" in chat.text and "08:00" in chat.text  # Sunday morning


async def test_waiting_in_the_queue_past_closing_time_is_not_met_with_silence(
    service: Service,
) -> None:
    """Handed over five minutes before closing on a Thursday, and nobody came (P16): told
    when staff will answer once the day is over, and now and then that the place is kept;
    not on every message, and never once a staff member has the conversation."""
    thursday = datetime(2026, 11, 26, 11, 55, tzinfo=UTC)  # 14:55 in Riyadh
    chat = Chat(service, now=thursday)
    await chat.say("السلام عليكم")
    await chat.say("موظف")
    assert [r.key for r in chat.replies] == ["handoff.queued"]
    chat.now += timedelta(minutes=2)
    assert await chat.say("احد موجود؟") == []  # just handed over, in working hours

    chat.now += timedelta(minutes=10)  # closed now
    await chat.say("متى بتردون علي؟")
    assert [r.key for r in chat.replies] == ["handoff.out_of_hours"]
    assert "29 نوفمبر 2026" in chat.text and "08:00" in chat.text  # Sunday morning
    chat.now += timedelta(minutes=5)
    assert await chat.say("طيب") == []  # said once for this closed period

    chat.now += timedelta(days=1)  # Friday, still nobody
    await chat.say("؟؟؟ احد موجود")
    assert [r.key for r in chat.replies] == ["handoff.still_waiting", "handoff.out_of_hours"]
    assert "«القائمة»" in chat.text
    chat.now += timedelta(minutes=30)
    assert await chat.say("السلام عليكم") == []

    chat.now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 10:00, in working hours
    await chat.say("السلام عليكم")
    assert [r.key for r in chat.replies] == ["handoff.still_waiting"]
    assert await chat.say("ننتظر") == []

    await take_conversation(service, "agent@example.org")
    chat.now += timedelta(days=1)
    assert await chat.say("السلام عليكم") == []  # a staff member has it: the bot is silent


async def test_faq_answer(chat: Chat) -> None:
    await chat.say("السلام عليكم")
    await chat.say("ما هي المستندات المطلوبة للتقديم؟")
    assert "الهوية" in chat.text


@pytest.mark.parametrize("thanks", ["تمام", "طيب", "اوكي", "ok thanks", "Okay"])
async def test_an_acknowledgement_after_an_answer_is_not_a_question(
    chat: Chat, thanks: str
) -> None:
    await chat.say("السلام عليكم")
    await chat.say("ما هي المستندات المطلوبة للتقديم؟")
    await chat.say(thanks)
    assert [r.key for r in chat.replies] == ["menu.prompt"]


async def test_how_to_apply_is_answered_with_the_button_that_starts_the_request(
    chat: Chat,
) -> None:
    await chat.say("السلام عليكم")
    await chat.say("ابي اقدم طلب مساعدة كيف")
    assert "«تقديم طلب دعم»" in chat.text
    assert chat.choice_values()[0] == "apply"
    await chat.say("تقديم طلب دعم")
    assert chat.last.text.startswith("📝 طلب دعم")


async def test_status_of_own_requests(service: Service) -> None:
    chat = Chat(service)
    ref = await fill_support_request(chat)
    await chat.say("القائمة")
    await chat.say("٣")
    assert ref in chat.text and "تم الاستلام" in chat.text


async def test_the_list_of_own_requests_answers_and_what_follows_is_not_a_reference(
    service: Service,
) -> None:
    chat = Chat(service)
    ref = await fill_support_request(chat)
    await chat.say("القائمة")
    await chat.say("٣")
    assert ref in chat.text
    await chat.say("السلام عليكم متى يصرف الدعم؟")
    assert "آخر أربعة" not in chat.text and "المرجعي" not in chat.text
    await chat.say("القائمة")
    await chat.say("٣")
    await chat.say("طلب آخر برقم مرجعي")
    assert "اكتب الرقم المرجعي" in chat.text


async def test_what_is_not_a_reference_is_not_checked_as_one(service: Service) -> None:
    nid = valid_national_id("112233446")
    ref = await fill_support_request(Chat(service), nid=nid)
    stranger = Chat(service, channel=Channel.WEBCHAT, sender="forgetful-session-token")
    await stranger.say("مرحبا")
    await stranger.say("٣")
    await stranger.say("٠٠٠١٢")
    assert stranger.text == service.catalog.text("ar", "status.bad_reference")
    await stranger.say("ما عندي الرقم نسيته")  # a sentence: answered, not a failed check
    assert "آخر أربعة" not in stranger.text and "تعذّر" not in stranger.text
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(StatusCheckFailure)) == 0
    # A wrong four digits, then the right ones typed again: for the same reference.
    await stranger.say("٣")
    await stranger.say(ref.replace("-", "/"))
    await stranger.say("0000")
    assert "تعذّر" in stranger.text
    await stranger.say(nid[-4:])
    assert ref in stranger.text and "تم الاستلام" in stranger.text


async def test_status_from_another_channel_needs_proof(service: Service) -> None:
    nid = valid_national_id("112233445")
    ref = await fill_support_request(Chat(service), nid=nid)
    stranger = Chat(service, channel=Channel.WEBCHAT, sender="someone-else-session-token")
    await stranger.say("مرحبا")
    await stranger.say("٣")
    await stranger.say(ref)
    assert "آخر أربعة" in stranger.text
    await stranger.say("0000")
    assert ref not in stranger.text and "تعذّر" in stranger.text
    await stranger.say(ref)
    await stranger.say(nid[-4:].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    assert ref in stranger.text and "تم الاستلام" in stranger.text


async def test_repeated_failed_verification_goes_to_staff(service: Service) -> None:
    stranger = Chat(service, sender="guesser")
    await stranger.say("مرحبا")
    await stranger.say("٣")
    for _ in range(3):
        await stranger.say("SR-1448-00001")
        await stranger.say("1234")
    assert "سرية" in stranger.text
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.handoff_reason)) == "status_verification"


async def test_a_sentence_at_the_last_four_digits_is_not_a_wrong_answer(
    service: Service,
) -> None:
    """A relative checking for the applicant writes a sentence instead of the digits: it is
    not a failed check (none counted towards the lock, no handoff on the third); a question
    is answered, anything else asked for the digits again."""
    owner = Chat(service, sender="applicant")
    nid = valid_national_id()
    ref = await fill_support_request(owner, nid=nid)
    relative = Chat(service, sender="relative")
    await relative.say(ref)
    assert [r.key for r in relative.replies][-1] == "status.ask_last4"
    await relative.say("لحظة اشوف الهوية")
    assert [r.key for r in relative.replies] == ["status.ask_last4"]
    await relative.say("ما لقيت الهوية، وش اسوي؟")
    assert "status.not_verified" not in [r.key for r in relative.replies]
    for _ in range(2):
        await relative.say(ref)
        await relative.say("لحظة اشوف الهوية")
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(StatusCheckFailure)) == 0
        assert await s.scalar(select(Conversation.status).order_by(Conversation.id.desc())) == (
            "bot"
        )
    await relative.say(nid[-4:])
    assert ref in relative.text and "تم الاستلام" in relative.text


async def test_duplicate_inbound_is_handled_once(chat: Chat, service: Service) -> None:
    first = await chat.say("مرحبا", message_id="same-id")
    again = await chat.say("مرحبا", message_id="same-id")
    assert first and again == first  # answered with what the first got, not stepped again
    async with service.db.session() as s:
        inbound = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
        replies = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "out")
        )
    assert inbound == 1 and replies == len(first)


async def test_a_message_sent_again_after_its_step_failed_is_stepped_then(
    chat: Chat, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step failed and the message waits for the inbox worker; the page's Retry sends
    it again: it is not stored twice, and its step is tried again at once."""
    handle = service.engine.handle
    broken = True

    async def flaky(msg: Any, ctx: Any, port: Any) -> Any:
        if broken:
            raise RuntimeError("a fault on this answer")
        return await handle(msg, ctx, port)

    monkeypatch.setattr(service.engine, "handle", flaky)
    with pytest.raises(RuntimeError):
        await chat.say("مرحبا", message_id="retried")
    broken = False
    answered = await chat.say("مرحبا", message_id="retried")
    assert answered
    async with service.db.session() as s:
        rows = list(await s.execute(select(Message.processed_at).where(Message.direction == "in")))
    assert len(rows) == 1 and rows[0].processed_at is not None
    assert await chat.say("مرحبا", message_id="retried") == answered  # and once more


async def test_survey_after_request_closed(service: Service) -> None:
    chat = Chat(service)
    ref = await fill_support_request(chat)
    await service.change_request_status(ref, RequestStatus.UNDER_REVIEW, actor="researcher")
    await service.change_request_status(
        ref, RequestStatus.APPROVED, actor="committee", note="سيتم التواصل معك"
    )
    await service.change_request_status(ref, RequestStatus.CLOSED, actor="committee")
    async with service.db.session() as s:
        outgoing = list(
            await s.scalars(
                select(Message.text)
                .where(Message.direction == "out")
                .order_by(Message.id.desc())
                .limit(4)
            )
        )
    assert any("1 إلى 5" in t for t in outgoing)
    assert any("تمت الموافقة" in t for t in outgoing)
    await chat.say("٥")
    await chat.say("خدمة ممتازة وسريعة")
    assert "شكرًا" in chat.text
    async with service.db.session() as s:
        survey = await s.scalar(select(SurveyAnswer))
    assert survey is not None
    assert (survey.rating, survey.comment, survey.request_reference) == (
        5,
        "خدمة ممتازة وسريعة",
        ref,
    )


async def test_a_question_at_the_surveys_comment_is_answered_not_kept_as_the_comment(
    service: Service,
) -> None:
    chat = Chat(service)
    ref = await fill_support_request(chat)
    await service.change_request_status(ref, RequestStatus.CLOSED, actor="committee")
    chat.now += timedelta(hours=1)
    await chat.say("٤")
    assert chat.last.key == "survey.ask_comment"
    await chat.say("وين وصل طلبي الثاني؟ قدمت طلب جديد امس")
    assert "survey.thanks" not in [r.key for r in chat.replies]
    assert chat.replies and chat.replies[-1].choices  # answered, with what to do next
    async with service.db.session() as s:
        survey = await s.scalar(select(SurveyAnswer))
    assert survey is not None and (survey.rating, survey.comment) == (4, None)


async def test_a_rating_due_during_a_form_is_asked_once_the_form_is_over(
    service: Service,
) -> None:
    chat = Chat(service)
    ref = await fill_support_request(chat)
    await chat.say("القائمة")
    await chat.say("٥")  # volunteering, meanwhile
    await chat.say("١")
    await service.change_request_status(ref, RequestStatus.CLOSED, actor="committee")
    await chat.say("سارة أحمد")  # the volunteer form's first answer: not a rating
    assert "(2/" in chat.last.text
    await chat.say("إلغاء")
    assert chat.last.key == "survey.ask_request" and ref in chat.last.text
    await chat.say("٥")
    assert chat.last.key == "survey.ask_comment"


async def test_survey_after_staff_conversation_closed(service: Service) -> None:
    chat = Chat(service)
    await chat.say("staff please")
    await chat.say("agent")
    conv_id = await take_conversation(service, "agent@example.org")
    await service.close_conversation(conv_id, actor="agent@example.org")
    await chat.say("4")
    assert "comment" in chat.text
    await chat.say("skip")
    async with service.db.session() as s:
        survey = await s.scalar(select(SurveyAnswer))
    assert survey is not None and survey.rating == 4 and survey.comment is None


async def closed_with_staff(service: Service, sender: str) -> Chat:
    """A conversation handed to staff and closed: the survey's rating question is asked."""
    chat = Chat(service, sender=sender)
    await chat.say("السلام عليكم")
    await chat.say("موظف")
    conv_id = await take_conversation(service, "agent@example.org")
    await service.close_conversation(conv_id, actor="agent@example.org")
    return chat


async def test_the_survey_reads_a_rating_in_a_sentence_and_lets_a_question_through(
    service: Service,
) -> None:
    worded = await closed_with_staff(service, "worded")
    await worded.say("خمسة")
    assert worded.last.key == "survey.ask_comment"
    await worded.say("تخطي")
    sentence = await closed_with_staff(service, "sentence")
    await sentence.say("الخدمة ممتازة جزاكم الله خير")
    assert sentence.replies[0].key == "survey.thanks"
    greeted = await closed_with_staff(service, "greeted")
    await greeted.say("السلام عليكم")  # asked again, with its choices
    assert greeted.last.key == "survey.bad_rating" and len(greeted.last.choices) == 6
    asking = await closed_with_staff(service, "asking")
    await asking.say("ما هي المستندات المطلوبة للتقديم؟")
    assert "الهوية" in asking.text and "1 إلى 5" not in asking.text
    await asking.say("٢")  # the menu's number now, not a rating
    assert asking.last.key != "survey.ask_comment"
    async with service.db.session() as s:
        rows = await s.execute(select(SurveyAnswer.rating, SurveyAnswer.comment))
        answers = sorted(rows.all(), key=lambda row: row[0])
    assert [tuple(row) for row in answers] == [(5, None), (5, "الخدمة ممتازة جزاكم الله خير")]


async def test_a_rating_may_be_given_in_words(service: Service) -> None:
    """ "ممتاز" (as a WhatsApp quick reply sends it) is 5, not "pick a number"."""
    chat = Chat(service)
    await chat.say("السلام عليكم")
    await chat.say("موظف")
    conv_id = await take_conversation(service, "agent@example.org")
    await service.close_conversation(conv_id, actor="agent@example.org")
    await chat.say("ممتاز")
    await chat.say("تخطي")
    async with service.db.session() as s:
        survey = await s.scalar(select(SurveyAnswer))
    assert survey is not None and survey.rating == 5


async def test_a_conversation_closed_while_queued_asks_no_rating(service: Service) -> None:
    """Nobody had answered it: the beneficiary is told the request for a person was closed,
    not thanked for a conversation with staff, and no survey follows."""
    chat = Chat(service)
    await chat.say("hello")
    await chat.say("agent")
    async with service.db.session() as s:
        conv_id = await s.scalar(select(Conversation.id))
    assert conv_id is not None
    assert await service.close_conversation(conv_id, actor="agent@example.org") is False
    async with service.db.session() as s:
        said = list(await s.scalars(select(Message.text).order_by(Message.id.desc()).limit(2)))
    assert "before a staff member could answer" in said[1]
    await chat.say("4")  # not a rating: the menu's fourth choice
    assert "comment" not in chat.text
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(SurveyAnswer)) == 0


async def test_closing_a_conversation_the_bot_has_sends_nothing(service: Service) -> None:
    """Closed twice (the console, then the command line), or never handed over: refused,
    and the beneficiary gets no second 'your conversation was closed' mid-form."""
    chat = Chat(service)
    await chat.say("hello")
    await chat.say("agent")
    conv_id = await take_conversation(service, "agent@example.org")
    assert await service.close_conversation(conv_id, actor="agent@example.org") is True
    async with service.db.session() as s:
        before = await s.scalar(select(func.count()).select_from(Message))
        # Closed from anywhere (here not the console), the staff member's turn ended with it.
        turns = list(await s.execute(select(Handling.outcome, Handling.ended_at)))
    assert [(outcome, ended is not None) for outcome, ended in turns] == [("closed", True)]
    with pytest.raises(NotOpen):
        await service.close_conversation(conv_id, actor="cli")
    async with service.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == before
        closes = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "conversation.closed")
        )
    assert closes == 1


async def test_a_conversation_taken_then_escalated_is_rated_when_closed(service: Service) -> None:
    """Back in the queue for a supervisor, but a staff member had answered: it is rated."""
    chat = Chat(service)
    await chat.say("hello")
    await chat.say("agent")
    conv_id = await take_conversation(
        service, "agent@example.org", reply="I am looking at it", escalate="supervisor"
    )
    assert await service.close_conversation(conv_id, actor="lead@example.org") is True
    await chat.say("help")  # an aside: the rating is asked for again
    assert chat.choice_values() == ["1", "2", "3", "4", "5", "skip"]
    await chat.say("4")
    assert "comment" in chat.text


async def test_attachment_rules(service: Service) -> None:
    chat = Chat(service)
    await chat.say("english")
    await chat.say("4")  # update my data
    await chat.say("1")
    await chat.say(valid_national_id())
    await chat.say("Income")
    await chat.say("my salary changed last month")
    assert chat.last.ask is Ask.ATTACHMENT
    png_as_text = Attachment(ref="2026/11/" + "a" * 32 + ".bin", content_type="text/plain", size=10)
    await chat.say(attachments=[png_as_text])
    assert "not accepted" in chat.text
    huge = Attachment(
        ref="2026/11/" + "b" * 32 + ".pdf", content_type="application/pdf", size=50 * 1024 * 1024
    )
    await chat.say(attachments=[huge])
    assert "larger than allowed" in chat.text
    await chat.say("skip")
    assert "Is everything correct" in chat.text


async def test_a_copy_or_deletion_of_personal_data_can_be_asked_from_anywhere(
    service: Service,
) -> None:
    chat = Chat(service, channel=Channel.WHATSAPP, sender="+966500000001")
    await chat.say("مرحبا")
    await chat.say("حذف بياناتي")
    assert "حذفها" in chat.text  # the intro of the data request
    await chat.say("١")
    await chat.say("حذف بياناتي")
    await chat.say("نعم")
    for _ in range(3):
        if "DR-" in chat.text:
            break
        await chat.say("تأكيد وإرسال")
    assert "DR-" in chat.text
    async with service.db.session() as s:
        request = await s.scalar(select(Request).where(Request.form_id == "data_request"))
    assert request is not None and request.due_at is not None


def test_short_replies_fold_into_one_message() -> None:
    from conversations.messages import Choice, Reply, combine_replies

    greeting = Reply("أهلًا")
    menu = Reply("اختر:", choices=(Choice("القائمة", "menu"),))
    answer = Reply("الجواب", choices=(Choice("موظف", "staff"),))
    folded = combine_replies([greeting, menu, answer])
    assert [r.text for r in folded] == ["أهلًا\n\nاختر:", "الجواب"]
    assert folded[0].choices == menu.choices and folded[1].choices == answer.choices
    assert combine_replies([greeting]) == [greeting]


async def test_every_reply_says_the_language_it_is_written_in(service: Service) -> None:
    """The web chat page follows a reply's language: a question asked in English in an Arabic
    conversation (in the FAQ, or a single word) is answered in English, buttons and all, and
    the reply says so."""
    from conversations.arabizi import language_of

    chat = Chat(service)
    await chat.say("السلام عليكم")
    await chat.say("اسأل سؤالًا")  # the FAQ
    for question in ("How can I contact the association?", "documents", "ما هي شروط الدعم؟"):
        await chat.say(question)
        for reply in chat.replies:
            assert reply.lang == language_of(reply.text), (question, reply.text)
            for choice in reply.choices:
                if language_of(choice.label):
                    assert language_of(choice.label) == reply.lang, (question, choice.label)


async def test_offered_questions_are_not_picked_by_their_first_word(service: Service) -> None:
    """'كيف' after the bot offered 'كيف أقدم شكوى؟' among others starts a new question; it
    does not pick that choice (a button's first word still names it)."""
    from types import SimpleNamespace

    from conversations.state import State

    offered = State(choices=[["كيف أقدم شكوى؟", "faq:complaint"], ["متى تعملون؟", "faq:hours"]])
    ctx: Any = SimpleNamespace(state=offered)
    assert service.engine.picked(ctx, "كيف") is None
    assert service.engine.picked(ctx, "1") == "faq:complaint"
    assert service.engine.picked(ctx, "متى تعملون") == "faq:hours"
    buttons: Any = SimpleNamespace(state=State(choices=[["تأكيد وإرسال", "confirm"]]))
    assert service.engine.picked(buttons, "تأكيد") == "confirm"


async def test_exit_leaves_a_form_as_cancel_does(service: Service) -> None:
    chat = Chat(service)
    await chat.say("english")
    await chat.say("5")  # volunteer
    await chat.say("exit")
    assert service.catalog.text("en", "form.cancelled") in chat.text


async def test_one_is_an_answer_to_a_number_question_not_back(service: Service) -> None:
    """A person living alone answers "1" (or "١") to the family-size question; "back" still
    goes back by its word."""
    chat = Chat(service)
    await chat.say("السلام عليكم")
    await chat.say("٢")
    await chat.say("١")
    await chat.say("سارة أحمد")
    await chat.say(valid_national_id())
    await chat.say("0551234567")
    await chat.say("جدة")
    assert chat.text.startswith("(5/")  # how many in the family, yourself included
    asked = chat.text
    await chat.say("١")
    assert chat.text.startswith("(6/")  # the income: answered, not back to the city
    await chat.say("رجوع")
    assert chat.text == asked


async def test_documents_asked_by_sms_are_sent_from_whatsapp_on_the_same_number(
    service: Service,
) -> None:
    """SMS carries no files here: the documents step says so, and the same number on WhatsApp
    carries the request on to the end."""
    number = "+966551234567"
    sms = Chat(service, Channel.SMS, sender=number)
    for text in ("السلام عليكم", "٢", "١", "سارة أحمد", valid_national_id(), "0551234567"):
        await sms.say(text)
    for text in ("جدة", "٣", "٢٠٠٠", "ملك", "١", "نحتاج مساعدة في الغذاء للأسرة"):
        await sms.say(text)
    assert sms.last.ask is Ask.ATTACHMENT
    assert service.catalog.text("ar", "attachment.by_sms") in sms.text
    whatsapp = Chat(service, Channel.WHATSAPP, sender=number)
    await whatsapp.say(attachments=[await pdf(service)])
    await whatsapp.say("تم")
    assert "راجع" in whatsapp.text and "سارة أحمد" in whatsapp.text
    assert service.catalog.text("ar", "attachment.by_sms") not in whatsapp.text


async def test_an_sms_applicant_without_whatsapp_sends_the_request_without_the_documents(
    service: Service,
) -> None:
    """On SMS the documents step is answered in one short line (the question is long and each
    part is paid); who cannot send files goes on without them, and a person arranges them."""
    catalog = service.catalog
    sms = Chat(service, Channel.SMS, sender="+966551234599")
    for text in ("السلام عليكم", "٢", "١", "سارة أحمد", valid_national_id(), "0551234567"):
        await sms.say(text)
    for text in ("جدة", "٣", "٢٠٠٠", "ملك", "١", "نحتاج مساعدة في الغذاء للأسرة"):
        await sms.say(text)
    assert sms.last.ask is Ask.ATTACHMENT and sms.choice_values() == ["later", "back"]
    await sms.say("ما عندي واتساب")
    assert [r.key for r in sms.replies] == ["attachment.expected"]  # not the question again
    assert sms.last.short_text == catalog.short("ar", "attachment.expected")
    assert sms.choice_values() == ["later", "back"]
    await sms.say("تم")
    assert [r.key for r in sms.replies] == ["attachment.none_yet"]
    await sms.say("١")
    later = catalog.text("ar", "attachment.later")
    assert f": {later}" in sms.text  # the summary says how the documents come
    await sms.say("تأكيد وإرسال")
    await sms.say("نعم")
    assert [r.key for r in sms.replies] == ["form.submitted_request", "handoff.queued"]
    async with service.db.session(write=False) as s:
        answer = await s.scalar(select(RequestAnswer).where(RequestAnswer.field == "documents"))
        conv = await s.scalar(select(Conversation))
    assert answer is not None and answer.display == later and answer.value is None
    assert conv is not None and conv.status == "queued" and conv.handoff_reason == "form"


async def test_going_on_without_documents_is_offered_only_on_sms(service: Service) -> None:
    whatsapp = Chat(service, Channel.WHATSAPP, sender="+966551234598")
    for text in ("السلام عليكم", "٢", "١", "سارة أحمد", valid_national_id(), "0551234567"):
        await whatsapp.say(text)
    for text in ("جدة", "٣", "٢٠٠٠", "ملك", "١", "نحتاج مساعدة في الغذاء للأسرة"):
        await whatsapp.say(text)
    assert whatsapp.last.ask is Ask.ATTACHMENT and whatsapp.choice_values() == ["back"]
    await whatsapp.say("ما عندي")
    keys = [r.key for r in whatsapp.replies]
    assert keys[0] == "attachment.expected" and whatsapp.last.ask is Ask.ATTACHMENT


async def test_a_first_message_that_is_a_command_word_does_what_it_says(service: Service) -> None:
    menu = Chat(service, sender="first-menu")
    await menu.say("القائمة")
    assert menu.choice_values() == list(MENU)
    assert "هل تقصد" not in menu.text  # not taken for a question
    helped = Chat(service, sender="first-help")
    await helped.say("help")
    assert service.catalog.text("en", "help") in helped.text
    assert helped.choice_values() == list(MENU)
    staff = Chat(service, sender="first-staff")
    await staff.say("موظف")
    async with service.db.session() as s:
        statuses = list(await s.scalars(select(Conversation.status)))
    assert "queued" in statuses

"""The administration pages over HTTP: staff accounts, the knowledge base, the settings, the
undelivered replies and the board report; each with and without its CSRF token, signed out,
and with a role too small."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.service import Service
from conversations.faq_index import Outcome
from staff.security import verify_password
from storage.models import AuditEntry, OutboxItem, UnansweredQuestion
from storage.staff import ConsoleTx
from storage.staff_reports import build_report
from tests.conftest import Chat
from tests.staff.conftest import ACCOUNTS, SECRET, World, audit_count

NONSENSE = "كيكي بوبو زززز"
ANSWER_AR = "نعم، نقبل تبرعات الكتب المستعملة في مقر الجمعية طوال أيام الدوام."


@pytest.fixture
def seed_dir(world_seed: tuple[Path, World]) -> Path:
    return world_seed[0]


async def add_miss(service: Service, text: str = NONSENSE, lang: str = "ar") -> int:
    async with service.db.session() as session:
        miss = UnansweredQuestion(text=text, lang=lang)
        session.add(miss)
        await session.flush()
        return miss.id


async def set_aside(service: Service, reason: str) -> int:
    """One of the world's replies, failed after its attempts."""
    async with service.db.session() as session:
        item = await session.scalar(select(OutboxItem).order_by(OutboxItem.id.desc()).limit(1))
        assert item is not None
        item.status, item.attempts, item.last_error = "failed", 8, reason
        return item.id


PAGES = [
    ("/staff/staff-members", "admin"),
    ("/staff/knowledge", "admin"),
    ("/staff/knowledge?q=%D8%AF%D9%88%D8%A7%D9%85", "admin"),
    ("/staff/knowledge/new", "admin"),
    ("/staff/knowledge/entries/working-hours", "admin"),
    ("/staff/knowledge/misses", "admin"),
    ("/staff/settings", "admin"),
    ("/staff/outbox", "supervisor"),
    ("/staff/reports/board", "supervisor"),
    ("/staff/reports/board?month=2026-11", "supervisor"),
]
FORMS: list[tuple[str, dict[str, str], str]] = [
    (
        "/staff/staff-members",
        {"email": "new@example.org", "name": "New", "role": "agent", "password": ""},
        "admin",
    ),
    ("/staff/staff-members/role", {"email": ACCOUNTS["agent2"], "role": "supervisor"}, "admin"),
    ("/staff/staff-members/active", {"email": ACCOUNTS["agent2"], "active": "0"}, "admin"),
    (
        "/staff/knowledge/entries",
        {
            "entry_id": "book-donations",
            "questions_ar": "هل تقبلون تبرعات الكتب؟",
            "answer_ar": ANSWER_AR,
        },
        "admin",
    ),
    ("/staff/knowledge/misses/{miss}/teach", {"entry_id": "working-hours"}, "admin"),
    ("/staff/outbox/retry", {"every": "1"}, "supervisor"),
]
SMALLER = {"supervisor": "agent", "admin": "supervisor"}


async def prepared(service: Service, path: str) -> str:
    if "{miss}" in path:
        path = path.replace("{miss}", str(await add_miss(service)))
    if path == "/staff/outbox/retry":
        await set_aside(service, "HTTP 400")
    return path


@pytest.mark.parametrize(("path", "role"), PAGES)
async def test_pages_need_their_role(
    path: str, role: str, world: World, browser_for: Any, console_service: Service
) -> None:
    anonymous = await browser_for()
    signed_out = await anonymous.get(path)
    assert signed_out.status_code == 303 and "/staff/login" in signed_out.headers["location"]
    for smaller in {"agent", SMALLER[role]}:
        member = await browser_for(smaller)
        refused = await member.get(path)
        assert refused.status_code == 403, (smaller, path)
        assert 'data-testid="error-page"' in refused.text
    allowed = await browser_for(role)
    shown = await allowed.get(path)
    assert shown.status_code == 200, shown.text
    assert shown.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(("path", "data", "role"), FORMS)
async def test_forms_need_the_token_and_the_role(
    path: str,
    data: dict[str, str],
    role: str,
    world: World,
    browser_for: Any,
    console_service: Service,
) -> None:
    path = await prepared(console_service, path)
    kb = console_service.config.knowledge.faq_path
    assert kb is not None
    before = await audit_count(console_service)

    anonymous = await browser_for()
    assert (await anonymous.post(path, data, csrf=False)).status_code == 303
    admin = await browser_for("admin")
    missing = await admin.post(path, data, csrf=False)
    assert missing.status_code == 403 and "انتهت صلاحية النموذج" in missing.text
    forged = await admin.post(path, {**data, "csrf": "forged"}, csrf=False)
    assert forged.status_code == 403
    for smaller in {"agent", SMALLER[role]}:
        member = await browser_for(smaller)
        assert (await member.post(path, data)).status_code == 403, smaller
    assert await audit_count(console_service) == before
    assert not kb.exists() or "book-donations" not in kb.read_text("utf-8")

    allowed = await browser_for(role)
    done = await allowed.post(path, data)
    assert done.status_code in (200, 303), done.text
    assert await audit_count(console_service) > before


async def test_each_role_sees_only_its_links_and_unknown_entries_are_missing(
    browser_for: Any,
) -> None:
    links = ("nav-outbox", "nav-knowledge", "nav-settings")
    expected = {
        "agent": set(),
        "supervisor": {"nav-outbox"},
        "admin": set(links),
    }
    for role, shown in expected.items():
        page = await (await browser_for(role)).get("/staff/")
        assert {link for link in links if f'data-testid="{link}"' in page.text} == shown, role
    admin = await browser_for("admin")
    assert (await admin.get("/staff/knowledge/entries/no-such-entry")).status_code == 404
    assert (
        await admin.post("/staff/knowledge/misses/999999/teach", {"entry_id": "x"})
    ).status_code == 404


# -- staff accounts ---------------------------------------------------------------------------


async def test_admin_adds_an_account_with_a_generated_password_shown_once(
    browser_for: Any, console_service: Service
) -> None:
    admin = await browser_for("admin")
    added = await admin.post(
        "/staff/staff-members",
        {"email": " Noura@Example.org ", "name": "نورة", "role": "supervisor", "password": ""},
    )
    assert added.status_code == 200
    assert 'data-testid="password-once"' in added.text
    shown = added.text.split('data-testid="password-once">', 1)[1].split("<", 1)[0]
    assert len(shown) >= 10
    async with console_service.db.session(write=False) as session:
        user = await ConsoleTx(session).staff_by_email("noura@example.org")
    assert user is not None and user.role == "supervisor" and user.name == "نورة"
    assert await verify_password(user.password_hash, shown)
    # The password is on that answer only.
    listing = await admin.get("/staff/staff-members")
    assert shown not in listing.text and "noura@example.org" in listing.text
    async with console_service.db.session(write=False) as session:
        entry = await session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "staff.added")
            .order_by(AuditEntry.id.desc())
        )
    assert entry is not None and entry.actor == f"staff:{ACCOUNTS['admin']}"
    assert shown not in str(entry.detail)


async def test_admin_adds_with_a_chosen_password_and_the_rules_refuse_bad_input(
    browser_for: Any, console_service: Service
) -> None:
    admin = await browser_for("admin")
    chosen = await admin.post(
        "/staff/staff-members",
        {"email": "sara@example.org", "role": "agent", "password": "a long password 1"},
    )
    assert chosen.status_code == 303 and chosen.headers["location"].endswith("done=staff_added")
    async with console_service.db.session(write=False) as session:
        user = await ConsoleTx(session).staff_by_email("sara@example.org")
    assert user is not None and await verify_password(user.password_hash, "a long password 1")
    for form, code in (
        ({"email": "sara@example.org", "role": "agent"}, "exists"),
        ({"email": "not-an-address", "role": "agent"}, "email"),
        ({"email": "x@example.org", "role": "boss"}, "role"),
        ({"email": "y@example.org", "role": "agent", "password": "short"}, "password"),
    ):
        refused = await admin.post("/staff/staff-members", form)
        assert refused.headers["location"].endswith(f"error={code}"), (form, refused.text)
    assert await audit_count(console_service, "staff.added") == 1 + len(ACCOUNTS)


async def test_admin_changes_a_role_but_not_their_own(
    browser_for: Any, console_service: Service
) -> None:
    admin = await browser_for("admin")
    agent = await browser_for("agent")
    assert (await agent.get("/staff/reports")).status_code == 403
    changed = await admin.post(
        "/staff/staff-members/role", {"email": ACCOUNTS["agent"], "role": "supervisor"}
    )
    assert changed.status_code == 303
    # The role is read on every request: the open session has the new rights at once.
    assert (await agent.get("/staff/reports")).status_code == 200
    assert await audit_count(console_service, "staff.role") == 1
    itself = await admin.post(
        "/staff/staff-members/role", {"email": ACCOUNTS["admin"], "role": "agent"}
    )
    assert itself.headers["location"].endswith("error=self")
    unknown = await admin.post(
        "/staff/staff-members/role", {"email": "nobody@example.org", "role": "agent"}
    )
    assert unknown.status_code == 404


# -- the knowledge base ---------------------------------------------------------------------------


async def test_admin_adds_an_entry_and_the_bot_answers_with_it_at_once(
    browser_for: Any, console_service: Service
) -> None:
    admin = await browser_for("admin")
    before = await Chat(console_service, sender="donor-1").say("هل تقبلون تبرعات الكتب؟")
    assert not any(ANSWER_AR in r.text for r in before)
    saved = await admin.post(
        "/staff/knowledge/entries",
        {
            "entry_id": "book-donations",
            "questions_ar": "هل تقبلون تبرعات الكتب؟\nابي اتبرع بكتب\n\nابي اتبرع بكتب",
            "questions_en": "Do you accept donated books?",
            "answer_ar": ANSWER_AR,
            "answer_en": "Yes, we accept used books at the office.",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/staff/knowledge/entries/book-donations?done=kb_saved"
    text = console_service.config.knowledge.faq_path.read_text("utf-8")  # type: ignore[union-attr]
    assert text.count("ابي اتبرع بكتب") == 1 and ANSWER_AR in text
    assert console_service.knowledge.entry("book-donations") is not None
    decision = console_service.knowledge.decide("ابي اتبرع بكتب")
    assert decision.outcome is Outcome.ANSWER and decision.entry is not None
    assert decision.entry.id == "book-donations"
    after = await Chat(console_service, sender="donor-2").say("ابي اتبرع بكتب")
    assert any(ANSWER_AR in r.text for r in after)
    assert await audit_count(console_service, "faq.added") == 1
    listing = await admin.get("/staff/knowledge", params={"q": "تبرعات الكتب"})
    assert 'data-id="book-donations"' in listing.text
    assert 'data-id="working-hours"' not in listing.text
    page = await admin.get("/staff/knowledge/entries/book-donations")
    assert ANSWER_AR in page.text


async def test_a_broken_entry_is_refused_with_the_reason_and_the_file_kept(
    browser_for: Any, console_service: Service
) -> None:
    admin = await browser_for("admin")
    page = await admin.get("/staff/knowledge/entries/working-hours")
    seen = page.text.split('name="seen" value="', 1)[1].split('"', 1)[0]
    edited = await admin.post(
        "/staff/knowledge/entries",
        {
            "entry_id": "working-hours",
            "original_id": "working-hours",
            "seen": seen,
            "questions_ar": "متى دوامكم؟",
            "answer_ar": "من الأحد إلى الخميس.",
        },
    )
    assert edited.status_code == 303
    path = console_service.config.knowledge.faq_path
    assert path is not None
    good = path.read_bytes()
    entry = console_service.knowledge.entry("working-hours")
    assert entry is not None and entry.questions["ar"] == ("متى دوامكم؟",)
    assert "en" not in entry.answers

    refusals = [
        (
            {"entry_id": "contact-channels", "questions_ar": "سؤال", "answer_ar": "جواب"},
            "duplicate",
        ),
        ({"entry_id": "empty-answer", "questions_ar": "سؤال", "answer_ar": ""}, "answer_ar"),
        ({"entry_id": "no-questions", "answer_ar": "جواب"}, "question"),
        ({"entry_id": "Bad Id!", "questions_ar": "سؤال", "answer_ar": "جواب"}, "id"),
        (
            {
                "entry_id": "working-hours",
                "original_id": "working-hours",
                "seen": seen,  # the file changed since this copy was read
                "questions_ar": "سؤال",
                "answer_ar": "جواب",
            },
            "changed",
        ),
    ]
    for form, reason in refusals:
        refused = await admin.post("/staff/knowledge/entries", form)
        assert refused.status_code == 400, form
        assert f'data-testid="kb-problem" data-code="{reason}"' in refused.text, reason
        # Why, in the console's language, without the parser's English.
        assert 'data-testid="kb-problem-reason"' in refused.text, reason
        assert "is required" not in refused.text and "duplicate id" not in refused.text
        # The page stands for the form's own page, not the POST (a reload does not post).
        page = "entries/working-hours" if form.get("original_id") else "new"
        assert f'data-replace-url="/staff/knowledge/{page}"' in refused.text
        assert path.read_bytes() == good
    assert await audit_count(console_service, "faq.saved") == 1
    assert not list(path.parent.glob(f".{path.name}.*.tmp"))


async def test_answers_typed_in_the_browser_are_saved_with_plain_line_ends(
    browser_for: Any, console_service: Service
) -> None:
    """Browsers send a textarea's lines with CR LF: the file and the bot's answer had a CR at
    the end of every line."""
    admin = await browser_for("admin")
    saved = await admin.post(
        "/staff/knowledge/entries",
        {
            "entry_id": "parking",
            "questions_ar": "هل يوجد موقف؟\r\nأين أوقف السيارة؟",
            "answer_ar": "نعم.\r\nخلف المبنى.",
            "answer_en": "Yes.\r\nBehind the building.",
        },
    )
    assert saved.status_code == 303
    path = console_service.config.knowledge.faq_path
    assert path is not None and "\r" not in path.read_text("utf-8")
    entry = console_service.knowledge.entry("parking")
    assert entry is not None and entry.answers["ar"] == "نعم.\nخلف المبنى."


async def test_admin_teaches_a_miss_to_an_entry_and_to_a_new_one(
    browser_for: Any, console_service: Service
) -> None:
    chat = Chat(console_service, sender="asker-1")
    await chat.say("مرحبا")
    await chat.say(NONSENSE)
    async with console_service.db.session(write=False) as session:
        misses = list(await session.scalars(select(UnansweredQuestion)))
    assert [m.text for m in misses] == [NONSENSE]
    admin = await browser_for("admin")
    page = await admin.get("/staff/knowledge/misses")
    assert NONSENSE in page.text and f'data-miss="{misses[0].id}"' in page.text
    unknown_entry = await admin.post(
        f"/staff/knowledge/misses/{misses[0].id}/teach", {"entry_id": "no-such-entry"}
    )
    assert unknown_entry.status_code == 400
    assert "لا يوجد سؤال بهذا المعرّف" in unknown_entry.text
    assert "no entry" not in unknown_entry.text  # the staff's language only
    # The id typed stays in its box, and the page stands for the list, not this POST.
    assert 'data-testid="kb-teach-entry" value="no-such-entry"' in unknown_entry.text
    assert 'data-replace-url="/staff/knowledge/misses#miss-' in unknown_entry.text
    taught = await admin.post(
        f"/staff/knowledge/misses/{misses[0].id}/teach", {"entry_id": "volunteering"}
    )
    assert taught.status_code == 303
    decision = console_service.knowledge.decide(NONSENSE)
    assert decision.entry is not None and decision.entry.id == "volunteering"
    assert await audit_count(console_service, "faq.taught") == 1
    again = await admin.post(
        f"/staff/knowledge/misses/{misses[0].id}/teach", {"entry_id": "volunteering"}
    )
    assert again.status_code == 404

    other = "زوزو ميمي قاقا"
    miss = await add_miss(console_service, other)
    # A number once listed is never another question's: a stale page or listing that teaches
    # it again is refused rather than teaching this one.
    assert miss != misses[0].id
    stale = await admin.post(
        f"/staff/knowledge/misses/{misses[0].id}/teach", {"entry_id": "volunteering"}
    )
    assert stale.status_code == 404
    new = await admin.post(
        f"/staff/knowledge/misses/{miss}/teach",
        {"new_id": "zozo", "answer_ar": "جواب زوزو", "answer_en": "Zozo's answer"},
    )
    assert new.status_code == 303
    entry = console_service.knowledge.entry("zozo")
    assert entry is not None and entry.questions["ar"] == (other,)
    assert entry.answers == {"ar": "جواب زوزو", "en": "Zozo's answer"}
    remaining = await admin.get("/staff/knowledge/misses")
    assert 'data-testid="kb-no-misses"' in remaining.text
    # Off the list to teach, still in the month's report: teaching does not rewrite history.
    async with console_service.db.session(write=False) as session:
        kept = list(await session.scalars(select(UnansweredQuestion)))
        assert sorted((m.text, m.taught_to) for m in kept) == sorted(
            [(NONSENSE, "volunteering"), (other, "zozo")]
        )
        now = datetime.now(UTC)
        report = await build_report(session, now - timedelta(days=1), now + timedelta(days=1))
    assert sorted(report.unanswered) == sorted([(NONSENSE, 1), (other, 1)])


async def test_a_miss_is_taught_as_staff_reworded_it_and_never_with_a_hidden_number(
    browser_for: Any, console_service: Service
) -> None:
    masked = "سجلت بهويتي ••• ولم يصلني رد عن طلب الدعم"
    miss = await add_miss(console_service, masked)
    admin = await browser_for("admin")
    page = await admin.get("/staff/knowledge/misses")
    # The form offers the question as it came, to be edited before it is kept.
    assert 'data-testid="kb-teach-question"' in page.text
    path = console_service.knowledge.config.faq_path
    assert path is not None
    refused = await admin.post(
        f"/staff/knowledge/misses/{miss}/teach",
        {"entry_id": "check-request-status", "question": masked},
    )
    assert refused.status_code == 400 and 'data-testid="kb-problem-reason"' in refused.text
    assert masked not in path.read_text("utf-8")
    reworded = "سجلت بهويتي ولم يصلني رد عن طلب الدعم"
    taught = await admin.post(
        f"/staff/knowledge/misses/{miss}/teach",
        {"entry_id": "check-request-status", "question": reworded},
    )
    assert taught.status_code == 303
    entry = console_service.knowledge.entry("check-request-status")
    assert entry is not None and reworded in entry.questions["ar"]
    assert masked not in path.read_text("utf-8")


# -- settings -----------------------------------------------------------------------------------


async def test_settings_show_sources_and_never_a_secret(
    browser_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAWASUL_STAFF_SECRET_KEY", SECRET)
    admin = await browser_for("admin")
    page = await admin.get("/staff/settings")
    assert page.status_code == 200
    assert SECRET not in page.text
    assert 'data-key="staff.secret_key" data-source="environment"' in page.text
    assert 'data-key="server.port" data-source="default"' in page.text
    assert 'data-key="telegram.token" data-source="default"' in page.text
    for section in ("server", "database", "knowledge", "outbox", "staff", "twilio"):
        assert f'data-section="{section}"' in page.text
    assert 'href="/staff/canned"' in page.text


# -- undelivered replies ------------------------------------------------------------------------


async def test_supervisor_sees_failed_replies_without_addresses_and_sends_them_again(
    browser_for: Any, console_service: Service
) -> None:
    phone = "+966512345678"
    item_id = await set_aside(console_service, f"HTTP 400: 21211 The 'To' number {phone} is bad")
    async with console_service.db.session() as session:
        item = await session.get(OutboxItem, item_id)
        assert item is not None
        item.address = phone
    supervisor = await browser_for("supervisor")
    page = await supervisor.get("/staff/outbox")
    assert f'data-item="{item_id}"' in page.text
    assert phone not in page.text and "512345678" not in page.text
    assert "21211" in page.text
    retried = await supervisor.post("/staff/outbox/retry", {"item_id": str(item_id)})
    assert retried.status_code == 303 and retried.headers["location"].endswith("outbox_retried")
    async with console_service.db.session(write=False) as session:
        item = await session.get(OutboxItem, item_id)
        assert item is not None and item.status == "pending" and item.attempts == 0
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "outbox.retried")
        )
    assert audit is not None and audit.subject == str(item_id)
    assert audit.actor == f"staff:{ACCOUNTS['supervisor']}"
    nothing = await supervisor.post("/staff/outbox/retry", {"item_id": str(item_id)})
    assert nothing.headers["location"].endswith("error=outbox_none")
    assert 'data-testid="outbox-empty"' in (await supervisor.get("/staff/outbox")).text


# -- the board's monthly report ----------------------------------------------------------------


async def test_board_report_names_the_month_in_both_calendars_and_compares(
    world: World, browser_for: Any
) -> None:
    supervisor = await browser_for("supervisor")
    november = await supervisor.get("/staff/reports/board", params={"month": "2026-11"})
    assert november.status_code == 200
    assert "نوفمبر 2026" in november.text and "جمادى" in november.text
    assert 'data-testid="board-figures"' in november.text
    messages_now = _figure(november.text, "board-messages")
    assert messages_now > 0
    december = await supervisor.get("/staff/reports/board", params={"month": "2026-12"})
    assert _figure(december.text, "board-messages") == 0
    # November is December's previous month: its figure shows beside, as a fall.
    row = december.text.split('data-testid="board-messages"', 1)[1].split("</tr>", 1)[0]
    assert f">{messages_now}<" in row and "trend-down" in row
    supervisor.client.cookies.set("tawasul_staff_lang", "en", domain="testserver.local")
    english = await supervisor.get("/staff/reports/board", params={"month": "2026-11"})
    assert "November 2026" in english.text and "Jumada" in english.text
    assert 'dir="ltr"' in english.text
    assert 'data-testid="flash-error"' not in english.text
    typo = await supervisor.get("/staff/reports/board", params={"month": "2026-13"})
    assert typo.status_code == 200 and 'data-testid="flash-error"' in typo.text
    for far_off in ("9999-12", "0001-01"):
        far = await supervisor.get("/staff/reports/board", params={"month": far_off})
        assert far.status_code == 200 and 'data-testid="flash-error"' in far.text


def _figure(html: str, testid: str) -> int:
    row = html.split(f'data-testid="{testid}"', 1)[1]
    return int(row.split('data-testid="now">', 1)[1].split("<", 1)[0])


async def test_disabling_an_account_asks_first_and_its_holder_is_told_why(
    browser_for: Any,
) -> None:
    admin = await browser_for("admin")
    page = (await admin.get("/staff/staff-members")).text
    assert 'data-confirm="تعطيل حساب Agent؟' in page  # as closing a conversation does
    agent = await browser_for("agent")
    await admin.post("/staff/staff-members/active", {"email": "agent@example.org", "active": "0"})
    ended = await agent.get("/staff/")
    assert ended.status_code == 303 and ended.headers["location"].endswith("&expired=1")
    login = (await agent.get(ended.headers["location"])).text
    assert "عطّل مدير النظام الحساب" in login

"""An administrator teaches the bot in Chromium against a real `tawasul serve`: a question the
web chat could not answer is taught as a new entry, another entry is written from scratch, and
the web chat answers both at once. The other administration pages are shown on the way (and
photographed for the README when TAWASUL_SCREENSHOT_DIR is set)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import run_cli, serving
from tests.staff.test_console_live import DESKTOP, PHONE, context, shot, sign_in

ADMIN = ("amal@example.org", "admin password 12")
MISS = "هل تعيرون الكراسي المتحركة؟"
MISS_ANSWER = "نعم، نعير الكراسي المتحركة للمستفيدين المسجلين مجانًا لمدة ثلاثة أشهر."
NEW_QUESTION = "هل عندكم دورات حاسب للأيتام؟"
NEW_ANSWER = "نعم، دورة الحاسب للأيتام تبدأ أول كل فصل دراسي، وسجّل عبر تقديم طلب."


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("admin")
    run_cli(tmp, "db", "upgrade")
    run_cli(tmp, "staff", "add", ADMIN[0], "--role", "admin", "--name", "أمل", input=ADMIN[1])
    with serving(tmp) as base:
        yield base, tmp


def ask(chat: Page, text: str) -> str:
    """Send a message in the web chat; the text of the bot's answer."""
    bots = chat.locator('[data-testid="message-bot"]')
    before = bots.count()
    field = chat.get_by_test_id("input")
    field.fill(text)
    field.press("Enter")
    _wait_for_reply(chat, before)
    return "\n".join(bots.all_inner_texts()[before:])


def _wait_for_reply(chat: Page, before: int) -> None:
    """Until the bot has said more than its ``before`` messages and is idle."""
    chat.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"message-bot\"]').length > n", arg=before
    )
    chat.wait_for_selector('body[data-busy="false"]', state="attached")


def test_admin_teaches_the_bot_and_the_web_chat_answers(
    browser: Browser, admin_server: tuple[str, Path]
) -> None:
    base, tmp = admin_server
    staff_ctx = context(browser, DESKTOP)
    chat_ctx = context(browser, PHONE, has_touch=True)
    try:
        chat = chat_ctx.new_page()
        chat.goto(base + "/")
        expect(chat.locator('[data-testid="message-bot"]').first).to_be_visible()
        chat.wait_for_selector('body[data-busy="false"]', state="attached")
        assert MISS_ANSWER not in ask(chat, MISS)
        # Offered the closest questions instead, the beneficiary says none of them fits:
        # either way the question is recorded as not answered.
        none_of_these = chat.locator('[data-testid="choice"][data-value="faq:none"]')
        if none_of_these.count():
            before = chat.locator('[data-testid="message-bot"]').count()
            none_of_these.last.click()
            _wait_for_reply(chat, before)

        admin = staff_ctx.new_page()
        sign_in(admin, base, ADMIN)
        admin.get_by_test_id("nav-knowledge").click()
        expect(admin.get_by_test_id("kb-entry").first).to_be_visible()
        admin.get_by_test_id("kb-search").fill("دوام")
        admin.get_by_test_id("kb-search").press("Enter")
        expect(admin.locator('[data-testid="kb-entry"][data-id="working-hours"]')).to_be_visible()
        shot(admin, "staff-knowledge-desktop.png")

        # The unanswered question, taught as a new entry in one step.
        admin.get_by_test_id("kb-misses-link").click()
        miss = admin.locator('[data-testid="kb-miss"]', has_text=MISS)
        expect(miss).to_have_count(1)
        miss.locator("summary").click()
        miss.get_by_test_id("kb-new-id").fill("wheelchair-loans")
        miss.get_by_test_id("kb-new-answer-ar").fill(MISS_ANSWER)
        shot(admin, "staff-knowledge-misses-desktop.png")
        miss.get_by_test_id("kb-teach-new").click()
        admin.wait_for_url(re.compile(r"/staff/knowledge/misses\?.*done=kb_taught"))
        expect(admin.get_by_test_id("flash")).to_be_visible()
        expect(admin.locator('[data-testid="kb-miss"]', has_text=MISS)).to_have_count(0)
        assert MISS_ANSWER in ask(chat, MISS)

        # A new entry written from scratch.
        admin.goto(f"{base}/staff/knowledge/new")
        admin.get_by_test_id("kb-id").fill("computer-courses")
        admin.get_by_test_id("kb-questions-ar").fill(f"{NEW_QUESTION}\nفيه دورات كمبيوتر؟")
        admin.get_by_test_id("kb-questions-en").fill("Do you run computer courses for orphans?")
        admin.get_by_test_id("kb-answer-ar").fill(NEW_ANSWER)
        admin.get_by_test_id("kb-answer-en").fill("Yes, each term; apply with a request.")
        admin.get_by_test_id("kb-save").click()
        admin.wait_for_url(re.compile(r"/staff/knowledge/entries/computer-courses\?done=kb_saved"))
        expect(admin.get_by_test_id("kb-answer-ar")).to_have_value(NEW_ANSWER)
        shot(admin, "staff-knowledge-entry-desktop.png")
        assert NEW_ANSWER in ask(chat, NEW_QUESTION)
        kb = (tmp / "faq.toml").read_text("utf-8")
        assert "computer-courses" in kb and "wheelchair-loans" in kb

        # The other administration pages on the way.
        admin.goto(f"{base}/staff/staff-members")
        admin.get_by_test_id("staff-email").fill("hind@example.org")
        admin.get_by_test_id("staff-name").fill("هند")
        admin.get_by_test_id("staff-add").click()
        expect(admin.get_by_test_id("password-once")).to_be_visible()
        expect(
            admin.locator('[data-testid="staff-row"][data-email="hind@example.org"]')
        ).to_be_visible()
        shot(admin, "staff-members-desktop.png")

        admin.get_by_test_id("nav-settings").click()
        expect(admin.locator('[data-testid="settings-section"]').first).to_be_visible()
        shot(admin, "staff-settings-desktop.png")

        with sqlite3.connect(tmp / "tawasul.db") as db:
            db.execute(
                "UPDATE outbox SET status = 'failed', attempts = 8, last_error = "
                "'HTTP 503 service unavailable' WHERE id = (SELECT MAX(id) FROM outbox)"
            )
        admin.get_by_test_id("nav-outbox").click()
        expect(admin.get_by_test_id("outbox-item")).to_have_count(1)
        shot(admin, "staff-outbox-desktop.png")
        admin.get_by_test_id("outbox-retry").click()
        expect(admin.get_by_test_id("outbox-empty")).to_be_visible()

        admin.goto(f"{base}/staff/reports/board")
        expect(admin.get_by_test_id("board-title")).to_contain_text("هـ")
        admin.get_by_test_id("board-month").fill("2026-11")
        admin.get_by_test_id("board-month").press("Enter")
        admin.wait_for_url(re.compile(r"month=2026-11"))
        admin.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        admin.emulate_media(media="print")
        expect(admin.locator(".topbar")).to_be_hidden()
        expect(admin.get_by_test_id("board")).to_be_visible()
        shot(admin, "staff-board-print.png")
        admin.emulate_media(media="screen")

        # On a phone, in English.
        phone = chat_ctx.new_page()
        chat_ctx.add_cookies(staff_ctx.cookies())
        phone.goto(f"{base}/staff/reports/board?month=2026-11")
        phone.get_by_test_id("lang-toggle").click()
        expect(phone.locator("html")).to_have_attribute("dir", "ltr")
        expect(phone.get_by_test_id("board-title")).to_contain_text("November 2026")
        expect(phone.get_by_test_id("board-title")).to_contain_text("AH")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        shot(phone, "staff-board-phone-en.png")

        # On a small phone, in both languages: no page wider than the screen, and every
        # section of the menu on screen (not behind a scroll nobody sees).
        narrow = 360
        phone.set_viewport_size({"width": narrow, "height": 740})
        for _ in ("en", "ar"):
            for path in ("/staff/settings", "/staff/reports/board?month=2026-11", "/staff/"):
                phone.goto(base + path)
                width = phone.evaluate("() => document.documentElement.scrollWidth")
                assert width <= narrow, (path, width)
            links = phone.locator(".nav a")
            assert links.count() >= 6
            for link in links.all():
                box = link.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= narrow
            phone.get_by_test_id("lang-toggle").click()
        shot(phone, "staff-home-phone-narrow.png")
    finally:
        staff_ctx.close()
        chat_ctx.close()

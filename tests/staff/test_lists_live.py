"""In Chromium against a real `tawasul serve`: what the queue cards show of the beneficiary
and of who holds the conversation, and finding a caller with the search."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, expect

from tests.staff.test_console_live import (
    AGENT,
    DESKTOP,
    context,
    shot,
    sign_in,
    staff_server,
    submit_request_over_the_web_chat,
)

__all__ = ["staff_server"]  # the module's own server, with its accounts

NATIONAL_ID = "1012345678"


def ask_for_staff_with_an_id(base: str) -> None:
    with httpx.Client(base_url=base, timeout=20) as chat:
        chat.post("/api/webchat/start", json={"lang": "ar"})
        for text in ("موظف", f"هويتي {NATIONAL_ID} وجوالي 0559876543"):
            assert chat.post("/api/webchat/messages", json={"text": text}).status_code == 200


def test_queue_cards_and_finding_a_caller(browser: Browser, staff_server: str) -> None:
    base = staff_server
    reference = submit_request_over_the_web_chat(base)
    ask_for_staff_with_an_id(base)
    desktop = context(browser, DESKTOP)
    try:
        page = desktop.new_page()
        sign_in(page, base, AGENT)
        card = page.locator('[data-testid="waiting"] [data-testid="queue-item"]').last
        expect(card).to_contain_text("هويتي ••• وجوالي •••")
        expect(card).not_to_contain_text(NATIONAL_ID)
        expect(card.get_by_test_id("wait")).to_contain_text("ينتظر منذ")
        card.get_by_test_id("claim").click()
        page.wait_for_url(re.compile(r"/staff/conversations/\d+$"))
        page.goto(f"{base}/staff/")
        mine = page.locator('[data-testid="mine"] [data-testid="queue-item"]').first
        expect(mine.get_by_test_id("wait")).to_have_text(re.compile(r"^لديك منذ "))
        expect(mine).not_to_contain_text(NATIONAL_ID)
        shot(page, "staff-queue-held-desktop.png")

        # A caller gives their mobile: the search finds them and their request.
        page.get_by_test_id("nav-search").click()
        page.wait_for_url(re.compile(r"/staff/search$"))
        page.get_by_test_id("search-q").fill("055 123 4567")
        page.get_by_test_id("search-go").click()
        person = page.get_by_test_id("found-person")
        expect(person).to_have_count(1)
        expect(person).to_contain_text("نورة سعد العتيبي")
        expect(person).to_contain_text("•••4567")
        assert "4567" not in page.url  # posted, not in the address
        expect(page.get_by_test_id("found-request")).to_contain_text(reference)
        shot(page, "staff-search-desktop.png")
        person.get_by_role("link").click()
        page.wait_for_url(re.compile(r"/staff/beneficiaries/\d+$"))
        expect(page.get_by_test_id("profile")).to_contain_text("نورة سعد العتيبي")

        # Or the reference, as read out.
        page.get_by_test_id("nav-search").click()
        page.get_by_test_id("search-q").fill(reference.lower().replace("-", " "))
        page.get_by_test_id("search-q").press("Enter")
        page.get_by_test_id("found-request").get_by_role("link", name=reference).click()
        page.wait_for_url(re.compile(rf"/staff/requests/{reference}$"))
    finally:
        desktop.close()

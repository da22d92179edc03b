"""The console against a real `tawasul serve`: server-sent events, and the whole handoff in
Chromium, from a beneficiary asking for staff to their rating showing in the report.

Assertions are about structure (``data-testid``) and about our own inputs, never about the
bot's sentences, which live in the catalogues.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import run_cli, serving, valid_national_id

PHONE = {"width": 390, "height": 844}
AGENT = ("hind@example.org", "agent password 1")
SUPERVISOR = ("majed@example.org", "supervisor password 1")
DESKTOP = {"width": 1366, "height": 900}
TIMEOUT_MS = 20_000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SINCE = re.compile(r'data-events="/staff/events/queue\?since=([^"]+)"')


@pytest.fixture(scope="module")
def staff_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console")
    run_cli(tmp, "db", "upgrade")
    run_cli(tmp, "staff", "add", AGENT[0], "--role", "agent", "--name", "هند", input=AGENT[1])
    run_cli(
        tmp,
        "staff",
        "add",
        SUPERVISOR[0],
        "--role",
        "supervisor",
        "--name",
        "ماجد",
        input=SUPERVISOR[1],
    )
    with serving(tmp) as base:
        yield base


def context(browser: Browser, viewport: dict[str, int], **extra: object) -> BrowserContext:
    made = browser.new_context(viewport=viewport, device_scale_factor=2, **extra)  # type: ignore[arg-type]
    made.set_default_timeout(TIMEOUT_MS)
    return made


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("TAWASUL_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def sign_in(page: Page, base: str, account: tuple[str, str]) -> None:
    page.goto(f"{base}/staff/login")
    page.get_by_test_id("email").fill(account[0])
    page.get_by_test_id("password").fill(account[1])
    page.get_by_test_id("login").click()
    page.wait_for_url(re.compile(r"/staff/$"))


def bot_texts(page: Page) -> list[str]:
    return page.locator(
        '[data-testid="message-bot"] [data-testid="message-text"]'
    ).all_inner_texts()


def test_handoff_from_web_chat_to_report(browser: Browser, staff_server: str) -> None:
    base = staff_server
    staff_ctx = context(browser, DESKTOP)
    chat_ctx = context(browser, PHONE, has_touch=True)
    try:
        agent = staff_ctx.new_page()
        sign_in(agent, base, AGENT)
        expect(agent.locator("html")).to_have_attribute("dir", "rtl")
        expect(agent.locator("#live-state")).to_have_attribute("data-live-state", "open")
        agent.evaluate("() => { window.__sameDocument = true; }")
        waiting = agent.locator('[data-testid="waiting"] [data-testid="queue-item"]')
        before = waiting.count()

        # The beneficiary asks for a staff member in the web chat.
        chat = chat_ctx.new_page()
        chat.goto(base + "/")
        expect(chat.locator('[data-testid="message-bot"]').first).to_be_visible()
        chat.wait_for_selector('body[data-busy="false"]', state="attached")
        field = chat.get_by_test_id("input")
        field.fill("موظف")
        field.press("Enter")
        chat.wait_for_selector('body[data-busy="false"]', state="attached")

        # It appears in the agent's queue without a reload.
        expect(waiting).to_have_count(before + 1)
        item = waiting.last
        expect(item).to_contain_text("موظف")
        assert agent.evaluate("() => window.__sameDocument") is True
        expect(agent).to_have_title(re.compile(r"^\(\d+\) "))
        shot(agent, "staff-queue-desktop.png")

        item.get_by_test_id("claim").click()
        agent.wait_for_url(re.compile(r"/staff/conversations/\d+$"))
        expect(agent.get_by_test_id("conversation-status")).to_be_visible()
        reply = "أهلًا بك، أنا هند من خدمة المستفيدين. كيف أساعدك؟"
        agent.get_by_test_id("reply-text").fill(reply)
        agent.get_by_test_id("send-reply").click()
        agent.wait_for_load_state()
        staff_message = agent.locator('[data-testid="message-staff"]').last
        expect(staff_message).to_contain_text(reply)
        agent.get_by_test_id("reply-text").fill("طلب المساعدة في الإيجار")
        agent.get_by_test_id("add-note").click()
        agent.wait_for_load_state()
        expect(agent.locator('[data-testid="note"]').last).to_contain_text("الإيجار")

        # The beneficiary's page polls and shows the reply, never the note.
        expect(chat.locator('[data-testid="message-bot"]').last).to_contain_text(reply)
        assert not any("الإيجار" in text for text in bot_texts(chat))
        # Once shown, the reply counts as delivered; the agent sees it without reloading.
        expect(agent.locator('[data-testid="message-staff"] [data-delivery="sent"]')).to_have_count(
            1
        )
        shot(agent, "staff-conversation-desktop.png")

        agent.once("dialog", lambda dialog: dialog.accept())
        agent.get_by_test_id("close").click()
        agent.wait_for_url(re.compile(r"/staff/\?done=closed$"))
        expect(agent.get_by_test_id("flash")).to_be_visible()

        # The survey arrives in the chat; the beneficiary rates and comments.
        five = chat.locator('[data-testid="choice"]', has_text="5")
        expect(five.last).to_be_enabled()
        bots = chat.locator('[data-testid="message-bot"]').count()
        five.last.click()
        chat.wait_for_function(
            "n => document.querySelectorAll('[data-testid=\"message-bot\"]').length > n",
            arg=bots,
        )
        chat.wait_for_selector('body[data-busy="false"]', state="attached")
        bots = chat.locator('[data-testid="message-bot"]').count()
        field.fill("شكرًا على سرعة الرد")
        field.press("Enter")
        chat.wait_for_function(
            "n => document.querySelectorAll('[data-testid=\"message-bot\"]').length > n",
            arg=bots,
        )

        # The supervisor's report shows the rating and the comment.
        supervisor = staff_ctx.new_page()
        staff_ctx.clear_cookies()
        sign_in(supervisor, base, SUPERVISOR)
        supervisor.get_by_test_id("nav-reports").click()
        expect(supervisor.get_by_test_id("kpi-satisfaction")).to_have_text("5.0")
        expect(supervisor.get_by_test_id("comments")).to_contain_text("شكرًا على سرعة الرد")
        # Colleagues by name; the address stays on hover.
        expect(supervisor.get_by_test_id("per-staff")).to_contain_text("هند")
        expect(supervisor.get_by_test_id("per-staff").locator("bdi")).to_have_attribute(
            "title", AGENT[0]
        )
        shot(supervisor, "staff-reports-desktop.png")
    finally:
        staff_ctx.close()
        chat_ctx.close()


def test_queue_events_announce_a_new_handoff(staff_server: str) -> None:
    with httpx.Client(base_url=staff_server, timeout=httpx.Timeout(15.0)) as staff:
        page = staff.get("/staff/login")
        token = CSRF.search(page.text)
        assert token
        staff.post(
            "/staff/login",
            data={"email": AGENT[0], "password": AGENT[1], "csrf": token.group(1)},
        )
        with httpx.Client(base_url=staff_server, timeout=10) as beneficiary:
            beneficiary.post("/api/webchat/start", json={"lang": "ar"})
            queue = staff.get("/staff/")
            since = SINCE.search(queue.text)
            assert since, "the queue page names its event stream"
            waiting = queue.text.count('data-testid="queue-item"')

            with staff.stream(
                "GET", "/staff/events/queue", params={"since": since.group(1)}
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                beneficiary.post("/api/webchat/messages", json={"text": "موظف"})
                events = []
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
                        break
        assert events == ["changed"]
        rows = staff.get("/staff/queue/rows")
        assert rows.text.count('data-testid="queue-item"') == waiting + 1

        anonymous = httpx.get(f"{staff_server}/staff/events/queue", timeout=5)
        assert anonymous.status_code == 303 or anonymous.url.path == "/staff/login"


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def submit_request_over_the_web_chat(base: str) -> str:
    """A support request through the web chat's API, as the page would send it."""
    answers = [
        "السلام عليكم",
        "٢",
        "١",
        "نورة سعد العتيبي",
        valid_national_id("112233445"),
        "0551234567",
        "جدة",
        "٤",
        "٢٥٠٠",
        "إيجار",
        "١٨٠٠",
        "١",
        "أرملة وأعول أربعة أبناء، وتأخر سداد الإيجار ثلاثة أشهر.",
    ]
    with httpx.Client(base_url=base, timeout=20) as chat:
        chat.post("/api/webchat/start", json={"lang": "ar"})
        for text in answers:
            assert chat.post("/api/webchat/messages", json={"text": text}).status_code == 200
        uploaded = chat.post(
            "/api/webchat/upload", files={"file": ("عقد الإيجار.pdf", PDF, "application/pdf")}
        )
        assert uploaded.status_code == 200, uploaded.text
        for text in ("تم", "تأكيد وإرسال", "نعم"):
            last = chat.post("/api/webchat/messages", json={"text": text})
        found = re.search(r"SR-\d{4}-\d{5}", last.text)
        assert found, last.text
        return found.group(0)


def test_requests_and_the_phone_layout(browser: Browser, staff_server: str) -> None:
    reference = submit_request_over_the_web_chat(staff_server)
    desktop = context(browser, DESKTOP)
    phone = context(browser, PHONE, has_touch=True)
    try:
        page = desktop.new_page()
        sign_in(page, staff_server, SUPERVISOR)
        page.goto(f"{staff_server}/staff/requests")
        expect(page.get_by_test_id("request-row").first).to_contain_text(reference)
        shot(page, "staff-requests-desktop.png")
        page.get_by_role("link", name=reference).click()
        expect(page.get_by_test_id("answers")).to_contain_text("نورة سعد العتيبي")
        expect(page.get_by_test_id("document")).to_have_count(1)
        shot(page, "staff-request-desktop.png")
        with page.expect_popup() as popup:
            page.get_by_test_id("document").click()
        document = popup.value
        document.wait_for_load_state()
        assert "/staff/documents/" in document.url
        document.close()
        page.get_by_test_id("new-status").select_option("under_review")
        page.get_by_test_id("set-status").click()
        expect(page.get_by_test_id("request-status")).to_have_text(re.compile(r"\S"))
        expect(page.get_by_test_id("status-history").locator("li")).to_have_count(2)

        mobile = phone.new_page()
        sign_in(mobile, staff_server, SUPERVISOR)
        assert mobile.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shot(mobile, "staff-queue-phone.png")
        mobile.get_by_test_id("open").first.click()
        mobile.wait_for_url(re.compile(r"/staff/conversations/\d+$"))
        assert mobile.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shot(mobile, "staff-conversation-phone.png")
        mobile.goto(f"{staff_server}/staff/reports")
        assert mobile.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shot(mobile, "staff-reports-phone.png")
        mobile.get_by_test_id("lang-toggle").click()
        expect(mobile.locator("html")).to_have_attribute("dir", "ltr")
        expect(mobile.locator("html")).to_have_attribute("lang", "en")
        expect(mobile.get_by_test_id("nav-reports")).to_have_text("Reports")
        shot(mobile, "staff-reports-phone-en.png")
    finally:
        desktop.close()
        phone.close()


def beneficiary_asking_for_staff(base: str) -> None:
    with httpx.Client(base_url=base, timeout=20) as chat:
        chat.post("/api/webchat/start", json={"lang": "ar"})
        assert chat.post("/api/webchat/messages", json={"text": "موظف"}).status_code == 200


def test_a_reply_typed_as_the_session_ends_is_kept_through_sign_in(
    browser: Browser, staff_server: str
) -> None:
    """The reply was being typed when the session ended: sending it leads to the sign-in
    form, which says so, and back to the conversation with the text still in the box; once
    sent, it is not offered again."""
    base = staff_server
    beneficiary_asking_for_staff(base)
    staff_ctx = context(browser, DESKTOP)
    try:
        page = staff_ctx.new_page()
        sign_in(page, base, AGENT)
        page.locator('[data-testid="waiting"] [data-testid="queue-item"]').last.get_by_test_id(
            "claim"
        ).click()
        page.wait_for_url(re.compile(r"/staff/conversations/\d+$"))
        conversation = page.url
        typed = "سأراجع طلبك الآن وأعود إليك خلال دقائق"
        page.get_by_test_id("reply-text").fill(typed)
        session = next(c for c in staff_ctx.cookies() if c["name"] == "tawasul_staff")
        staff_ctx.add_cookies([{**session, "value": session["value"][:-4] + "AAAA"}])  # type: ignore[list-item]
        page.get_by_test_id("send-reply").click()
        page.wait_for_url(re.compile(r"/staff/login\?next=.*&expired=1$"))
        expect(page.get_by_test_id("login-notice")).to_be_visible()
        page.get_by_test_id("email").fill(AGENT[0])
        page.get_by_test_id("password").fill(AGENT[1])
        page.get_by_test_id("login").click()
        page.wait_for_url(conversation)
        expect(page.get_by_test_id("reply-text")).to_have_value(typed)
        page.get_by_test_id("send-reply").click()
        expect(page.locator('[data-testid="message-staff"]').last).to_contain_text(typed)
        expect(page.get_by_test_id("reply-text")).to_have_value("")
        page.reload()
        expect(page.get_by_test_id("reply-text")).to_have_value("")
    finally:
        staff_ctx.close()


def test_a_supervisor_takes_over_from_the_conversation_page(
    browser: Browser, staff_server: str
) -> None:
    base = staff_server
    chat = httpx.Client(base_url=base, timeout=20)
    chat.post("/api/webchat/start", json={"lang": "ar"})
    assert chat.post("/api/webchat/messages", json={"text": "موظف"}).status_code == 200
    agent_ctx, supervisor_ctx = context(browser, DESKTOP), context(browser, DESKTOP)
    try:
        agent = agent_ctx.new_page()
        sign_in(agent, base, AGENT)
        agent.locator('[data-testid="waiting"] [data-testid="queue-item"]').last.get_by_test_id(
            "claim"
        ).click()
        agent.wait_for_url(re.compile(r"/staff/conversations/\d+$"))

        supervisor = supervisor_ctx.new_page()
        sign_in(supervisor, base, SUPERVISOR)
        supervisor.goto(agent.url)
        expect(supervisor.get_by_test_id("conversation-assigned")).to_contain_text("هند")
        expect(supervisor.get_by_test_id("reply-text")).to_have_count(0)
        supervisor.get_by_test_id("take-over").click()
        supervisor.wait_for_url(agent.url)
        expect(supervisor.get_by_test_id("conversation-assigned")).to_contain_text("ماجد")
        supervisor.get_by_test_id("reply-text").fill("أنا ماجد، أتابع معك")
        supervisor.get_by_test_id("send-reply").click()
        expect(supervisor.locator('[data-testid="message-staff"]').last).to_contain_text("ماجد")
        # The empty box's placeholder is laid out as the Arabic page; typed text follows its
        # own direction.
        box = supervisor.get_by_test_id("reply-text")
        expect(box).to_have_attribute("dir", "rtl")
        box.fill("Hello, this is Majed")
        expect(box).to_have_attribute("dir", "auto")
        box.fill("")
        expect(box).to_have_attribute("dir", "rtl")

        # The beneficiary writes: the message is added to the history without a reload, and
        # what was there is not redrawn (a live region reads out what is added, not the
        # whole history again).
        supervisor.evaluate("() => { window.__first = document.querySelector('#history li'); }")
        chat.post("/api/webchat/messages", json={"text": "شكرًا لك يا ماجد"})
        expect(supervisor.locator('[data-testid="message-in"]').last).to_contain_text("شكرًا لك")
        assert supervisor.evaluate("() => window.__first.isConnected") is True
    finally:
        chat.close()
        agent_ctx.close()
        supervisor_ctx.close()

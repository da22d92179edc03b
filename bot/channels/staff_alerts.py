"""Telling staff that a conversation entered the queue, outside the console.

One announcer, on one instance at a time, reads the conversations newly queued and hands
each to every configured sink (the Telegram staff group, the duty mailboxes). Each sink
keeps its own cursor in the database, so a restart neither repeats nor skips an alert,
and a sink that is down does not hold the other one back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog
from sqlalchemy import select

from bot.channels.staff_mail import StaffMailer, console_link
from bot.service import Service
from conversations.delivery import DeliveryError, Unreachable
from staff.i18n import LANGS, translator
from storage.locks import singleton_task
from storage.models import Conversation, utcnow
from storage.repository import Tx

if TYPE_CHECKING:
    from bot.channels import ChannelRuntime

log = structlog.get_logger("tawasul.staff_alerts")

JOB = "staff.queue_alerts"
BATCH = 20


@dataclass(frozen=True, slots=True)
class Handoff:
    """A conversation that entered the queue; nothing in it identifies the beneficiary."""

    conversation_id: int
    channel: str
    lang: str
    reason: str
    queued_at: datetime


class SinkFailed(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Sink(Protocol):
    """Somewhere staff are told; ``announce`` raises ``SinkFailed`` to be tried again."""

    @property
    def cursor(self) -> str: ...

    @property
    def pause(self) -> float:
        """Seconds between two alerts (a Telegram group takes about 20 a minute)."""
        ...

    async def announce(self, handoff: Handoff, text: str) -> None: ...


def alert_text(service: Service, handoff: Handoff, now: datetime) -> str:
    """The alert in Arabic, then in English, with a link to the conversation when known."""
    zone = service.hours.zone
    since = handoff.queued_at.astimezone(zone).strftime("%H:%M")
    minutes = max(0, int((now - handoff.queued_at).total_seconds() // 60))
    blocks = []
    for lang in LANGS:
        t = translator(lang)
        lines = [
            t("alert.waiting", conversation=handoff.conversation_id),
            t(
                "alert.details",
                channel=t.maybe("channel", handoff.channel),
                language=t.maybe("language", handoff.lang),
                reason=t.maybe("reason", handoff.reason),
            ),
            t("alert.since", since=since, minutes=minutes),
        ]
        blocks.append("\n".join(lines))
    link = console_link(service.config, f"conversations/{handoff.conversation_id}")
    if link:
        blocks.append(link)
    return "\n\n".join(blocks)


def alert_subject(handoff: Handoff) -> str:
    texts = [translator(lang) for lang in LANGS]
    return " · ".join(
        t("alert.subject", channel=t.maybe("channel", handoff.channel)) for t in texts
    )


class EmailSink:
    """One short mail per conversation to the addresses in ``staff.notify_emails``."""

    cursor = "staff.queue_alerts.email"
    pause = 0.0

    def __init__(self, mailer: StaffMailer, recipients: Sequence[str]) -> None:
        self.mailer = mailer
        self.recipients = list(recipients)

    async def announce(self, handoff: Handoff, text: str) -> None:
        try:
            await self.mailer.send(self.recipients, alert_subject(handoff), text)
        except Unreachable as exc:
            # Every address refused: trying again would stop all later alerts behind this one.
            log.error("staff_alert.refused", reason=exc.reason)
        except DeliveryError as exc:
            raise SinkFailed(exc.reason) from None


class QueueAnnouncer:
    def __init__(self, service: Service, sinks: Sequence[Sink]) -> None:
        self.service = service
        self.sinks = list(sinks)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._feed(sink, stop) for sink in self.sinks))

    async def _feed(self, sink: Sink, stop: asyncio.Event) -> None:
        since = (await self.service.cursor(sink.cursor)).get("since")
        if since is None:  # the first start announces from now on, not the whole backlog
            since = await self._save(sink, utcnow().isoformat())
        while not stop.is_set():
            try:
                since = await self.announce_new(sink, since, stop)
            except Exception:
                log.exception("staff_alert.error", sink=sink.cursor)
            await _sleep(stop, self.service.config.outbox.poll_seconds)

    async def announce_new(self, sink: Sink, since: str, stop: asyncio.Event) -> str:
        """Announce what was queued after ``since``; returns how far it got."""
        for handoff in await self.newly_queued(since):
            if stop.is_set():
                break
            try:
                await sink.announce(handoff, alert_text(self.service, handoff, utcnow()))
            except SinkFailed as exc:
                log.warning("staff_alert.failed", sink=sink.cursor, reason=exc.reason)
                await _sleep(stop, exc.retry_after or 5.0)
                break
            since = await self._save(sink, handoff.queued_at.isoformat())
            log.info("staff_alert.sent", sink=sink.cursor, conversation_id=handoff.conversation_id)
            if sink.pause:
                await _sleep(stop, sink.pause)
        return since

    async def _save(self, sink: Sink, since: str) -> str:
        async with self.service.db.session() as session:
            await Tx(session).set_cursor(sink.cursor, {"since": since})
        return since

    async def newly_queued(self, since: str) -> list[Handoff]:
        after = datetime.fromisoformat(since)
        async with self.service.db.session(write=False) as session:
            rows = await session.scalars(
                select(Conversation)
                .where(Conversation.status == "queued", Conversation.queued_at > after)
                .order_by(Conversation.queued_at, Conversation.id)
                .limit(BATCH)
            )
            return [
                Handoff(
                    conversation_id=c.id,
                    channel=c.last_channel or "",
                    lang=str((c.state or {}).get("lang") or "ar"),
                    reason=c.handoff_reason or "",
                    queued_at=c.queued_at or datetime.now(UTC),
                )
                for c in rows
            ]


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def install(service: Service, runtime: ChannelRuntime) -> None:
    """The queue alerts, when a sink is configured; runs after the channels' installers."""
    recipients = service.config.staff.notify_emails
    if recipients:
        mailer = StaffMailer.from_config(service.config)
        if mailer is None:
            log.error("staff_alert.no_smtp")  # notify_emails needs [email] smtp_host and address
        else:
            runtime.staff_sinks.append(EmailSink(mailer, recipients))
    if runtime.staff_sinks:
        announcer = QueueAnnouncer(service, runtime.staff_sinks)
        runtime.tasks.append(singleton_task(service.db, JOB, announcer.run))

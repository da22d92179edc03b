"""Removing what beneficiaries wrote and sent once it has been kept long enough.

Rows stay (the reports count messages per channel and day, requests per status), only the
content goes: message texts and payloads, attachment files, the documents' file
references, and the subjects kept of the email threads (storage.threads). Conversations
with staff and requests still being decided are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.files import AttachmentStore
from storage.followup import RequestInfo
from storage.locks import Job
from storage.models import (
    AuditEntry,
    ChannelCursor,
    Conversation,
    Document,
    Message,
    OutboxItem,
    Request,
)
from storage.repository import Tx
from storage.threads import SUBJECT_PREFIX, forget_subjects, thread_ids

log = structlog.get_logger("tawasul.retention")

DECIDED = ("approved", "rejected", "closed")
# A reply not delivered (waiting, held for WhatsApp's window, failed, or never shown on a
# web chat left): its text is what would go out, so it is cancelled as it is redacted.
UNSENT = ("pending", "held", "failed")
EXPIRED = "expired: its text was removed by retention"
BATCH = 200  # conversations per transaction: SQLite has one writer, keep its turns short


@dataclass(frozen=True)
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    conversations: int = 0
    messages: int = 0
    documents: int = 0
    files: int = 0
    subjects: int = 0
    oldest_message: datetime | None = None
    oldest_document_request: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "conversations": self.conversations,
            "messages": self.messages,
            "documents": self.documents,
            "files": self.files,
            "subjects": self.subjects,
            "oldest_message": self.oldest_message.isoformat() if self.oldest_message else None,
            "oldest_document_request": self.oldest_document_request.isoformat()
            if self.oldest_document_request
            else None,
        }


def months_before(when: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the 31st becomes the last)."""
    total = when.year * 12 + (when.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    for day in range(when.day, 27, -1):
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return when.replace(year=year, month=month, day=min(when.day, 28))


def expired_conversations(cutoff: datetime) -> Any:
    """Closed before the cutoff, or left with the bot and silent since before it."""
    return select(Conversation.id).where(
        or_(
            and_(Conversation.status == "closed", Conversation.closed_at < cutoff),
            and_(Conversation.status == "bot", Conversation.updated_at < cutoff),
        )
    )


def attachment_refs(payload: dict[str, Any]) -> set[str]:
    """The files a message's payload points to (what was sent, and a reply's file)."""
    refs = {str(a.get("ref")) for a in payload.get("attachments") or [] if isinstance(a, dict)}
    single = payload.get("attachment")
    if isinstance(single, dict) and single.get("ref"):
        refs.add(str(single["ref"]))
    return {r for r in refs if r}


@dataclass
class _Tally:
    conversations: int = 0
    messages: int = 0
    documents: int = 0
    oldest_message: datetime | None = None
    oldest_request: datetime | None = None
    subjects: int = 0
    document_ids: list[int] = field(default_factory=list)


def _older(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or candidate < current else current


async def run_retention(
    db: Database,
    files: AttachmentStore,
    now: datetime,
    months: int,
    *,
    dry_run: bool = False,
) -> RetentionReport:
    """Redact what expired ``months`` before ``now``; with ``dry_run`` only count it.

    The server calls this once a day; it is safe to run again (redacted content is skipped)
    and to interrupt (each batch commits on its own).
    """
    cutoff = months_before(now, months)
    async with db.session(write=False) as session:
        ids = list(await session.scalars(expired_conversations(cutoff).order_by(Conversation.id)))
    tally = _Tally()
    doomed: set[str] = set()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        async with db.session(write=not dry_run) as session:
            doomed |= await _batch(session, chunk, cutoff, now, tally, dry_run=dry_run)
    if doomed:
        async with db.session(write=False) as session:
            # A file a kept document still points to (a request being decided) stays.
            kept = await session.scalars(
                select(Document.ref).where(
                    Document.ref.in_(sorted(doomed)), Document.id.not_in(tally.document_ids)
                )
            )
            doomed -= set(kept)
    removed = len(doomed) if dry_run else await asyncio.to_thread(_delete_files, files, doomed)
    # A subject no mail of its thread has renewed since the cutoff: its messages went (or
    # were redacted before subjects were tied to them, so nothing else would find it).
    stale = (
        ChannelCursor.name.startswith(SUBJECT_PREFIX, autoescape=True),
        ChannelCursor.updated_at < cutoff,
    )
    async with db.session(write=not dry_run) as session:
        if dry_run:
            tally.subjects += int(
                await session.scalar(select(func.count()).select_from(ChannelCursor).where(*stale))
                or 0
            )
        else:
            result = await session.execute(delete(ChannelCursor).where(*stale))
            tally.subjects += int(getattr(result, "rowcount", 0) or 0)
    report = RetentionReport(
        cutoff=cutoff,
        dry_run=dry_run,
        conversations=tally.conversations,
        messages=tally.messages,
        documents=tally.documents,
        files=removed,
        subjects=tally.subjects,
        oldest_message=tally.oldest_message,
        oldest_document_request=tally.oldest_request,
    )
    if not dry_run and (tally.messages or tally.documents or removed or tally.subjects):
        async with db.session() as session:
            session.add(
                AuditEntry(
                    actor="system",
                    action="retention.run",
                    subject=cutoff.date().isoformat(),
                    detail={
                        "conversations": tally.conversations,
                        "messages": tally.messages,
                        "documents": tally.documents,
                        "files": removed,
                        "subjects": tally.subjects,
                    },
                )
            )
    log.info(
        "retention",
        dry_run=dry_run,
        conversations=tally.conversations,
        messages=tally.messages,
        documents=tally.documents,
        files=removed,
        subjects=tally.subjects,
    )
    return report


async def _batch(
    session: AsyncSession,
    chunk: list[int],
    cutoff: datetime,
    now: datetime,
    tally: _Tally,
    *,
    dry_run: bool,
) -> set[str]:
    doomed: set[str] = set()
    # Chosen in an earlier transaction: a beneficiary may have come back since.
    chunk = list(
        await session.scalars(expired_conversations(cutoff).where(Conversation.id.in_(chunk)))
    )
    if not chunk:
        return doomed
    rows = (
        await session.execute(
            select(
                Message.id,
                Message.beneficiary_id,
                Message.text,
                Message.payload,
                Message.created_at,
            ).where(
                Message.conversation_id.in_(chunk),
                # Written since the cutoff (by a step that began while this ran): not expired.
                Message.created_at < cutoff,
                # An inbound message still waiting for the inbox worker is not history yet.
                or_(Message.direction != "in", Message.processed_at.is_not(None)),
                ~_sending(),
            )
        )
    ).all()
    pending = [r for r in rows if r.text or "redacted_at" not in (r.payload or {})]
    touched = {
        c
        for (c,) in (
            await session.execute(
                select(Message.conversation_id)
                .where(Message.id.in_([r.id for r in pending]))
                .distinct()
            )
        ).all()
    }
    for row in pending:
        doomed |= attachment_refs(row.payload or {})
        tally.oldest_message = _older(tally.oldest_message, row.created_at)
    documents = (
        await session.execute(
            select(Document.id, Document.ref, Request.submitted_at, Request.conversation_id)
            .join(Request, Request.id == Document.request_id)
            .where(
                Request.conversation_id.in_(chunk),
                Request.status.in_(DECIDED),
                Request.updated_at < cutoff,
                Document.ref != "",
            )
        )
    ).all()
    for doc in documents:
        doomed.add(doc.ref)
        touched.add(doc.conversation_id)
        tally.oldest_request = _older(tally.oldest_request, doc.submitted_at)
    tally.messages += len(pending)
    tally.documents += len(documents)
    tally.document_ids += [d.id for d in documents]
    tally.conversations += len(touched)
    # The subjects of the email threads these messages were in, unless a message kept (a
    # conversation still with staff, or newer) is in the same thread.
    threads = thread_ids(r.payload for r in pending)
    if threads:
        kept = await session.scalars(
            select(Message.payload).where(
                Message.beneficiary_id.in_({r.beneficiary_id for r in pending}),
                Message.conversation_id.not_in(chunk),
                Message.channel == "email",
                Message.direction == "in",
            )
        )
        threads -= thread_ids(kept)
    if dry_run:
        tally.subjects += len(threads)
    else:
        tally.subjects += await forget_subjects(session, threads)
        if pending:
            ids = [r.id for r in pending]
            # Cancelled first: on PostgreSQL a reply claimed meanwhile is skipped here (it is
            # "sending") and then by the redaction, which reads the outbox again.
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.message_id.in_(ids), OutboxItem.status.in_(UNSENT))
                .values(status="cancelled", last_error=EXPIRED)
            )
            await session.execute(
                update(Message)
                .where(Message.id.in_(ids), ~_sending())
                .values(text="", payload={"redacted_at": now.isoformat()})
            )
        if documents:
            await session.execute(
                update(Document).where(Document.id.in_([d.id for d in documents])).values(ref="")
            )
        # What beneficiaries sent when asked for more goes with the rest of their messages.
        await session.execute(
            update(RequestInfo)
            .where(
                RequestInfo.request_id.in_(
                    select(Request.id).where(
                        Request.conversation_id.in_(chunk),
                        Request.status.in_(DECIDED),
                        Request.updated_at < cutoff,
                    )
                ),
                RequestInfo.text != "",
            )
            .values(text="")
        )
    return doomed


def _sending() -> Any:
    """The message is a reply being sent at this moment: it is kept for the next run."""
    return exists().where(OutboxItem.message_id == Message.id, OutboxItem.status == "sending")


def _delete_files(files: AttachmentStore, refs: set[str]) -> int:
    removed = 0
    for ref in refs:
        try:
            path = files.path(ref)
        except ValueError:
            continue  # not one of ours: never follow a stored string to a path
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


# The job's name for the one-instance lock, and where it notes its last run.
JOB = "retention"
LAST_RUN = "retention.last_run"


def retention_job(
    db: Database,
    files: AttachmentStore,
    *,
    months: int,
    every: timedelta,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Job:
    """Run retention every ``every``, for ``storage.locks.singleton_task``.

    The time of the last run is kept in the database, so a restart or another instance
    taking the job over does not run it again before it is due.
    """

    async def job(stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = every.total_seconds()
            try:
                async with db.session(write=False) as session:
                    last = (await Tx(session).cursor(LAST_RUN)).get("at")
                now = clock()
                due = datetime.fromisoformat(last) + every if last else now
                if due <= now:
                    await run_retention(db, files, now, months)
                    async with db.session() as session:
                        await Tx(session).set_cursor(LAST_RUN, {"at": now.isoformat()})
                else:
                    wait = min(wait, (due - now).total_seconds())
            except Exception:
                log.exception("retention.error")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.1))

    return job

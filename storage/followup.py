"""Following a request up after it was submitted: the information a beneficiary sends when
staff ask for more, and the due-date reminders sent to staff.

The tables share ``storage.models.Base``'s metadata; migration 0004 creates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conversations.ports import InfoAnswer, RequestStatus
from storage.crypto import EncryptedText
from storage.models import Base, Document, Id, Request, RequestStatusChange, utcnow
from storage.staff_models import RequestVerification, StaffUser

if TYPE_CHECKING:
    from storage.repository import Tx

OPEN_REQUESTS = ("submitted", "under_review", "needs_info")
# A request takes information while it waits for it, and while staff review what came.
TAKES_INFO = (RequestStatus.NEEDS_INFO.value, RequestStatus.UNDER_REVIEW.value)


class RequestInfo(Base):
    """A message the beneficiary sent in answer to "needs more information"."""

    __tablename__ = "request_info"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(EncryptedText(), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequestReminder(Base):
    """A due-date reminder decided for a request: at most one per stage (due soon, late)."""

    __tablename__ = "request_reminders"
    __table_args__ = (UniqueConstraint("request_id", "stage"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipients: Mapped[str] = mapped_column(Text, default="")
    emailed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def info_field(info_id: int) -> str:
    """The ``documents.field`` of a file that came with a piece of information."""
    return f"info:{info_id}"


# -- information from the beneficiary -----------------------------------------------------------


async def add_request_info(tx: Tx, reference: str, beneficiary_id: int, answer: InfoAnswer) -> bool:
    session = tx.session
    request = await session.scalar(
        select(Request).where(Request.reference == reference).with_for_update()
    )
    if request is None or request.beneficiary_id != beneficiary_id:
        return False
    if request.status not in TAKES_INFO:
        return False
    info = RequestInfo(
        request_id=request.id,
        channel=answer.channel.value,
        text=answer.text[:10000],
        received_at=answer.received_at,
    )
    session.add(info)
    await session.flush()
    for attachment in answer.attachments:
        session.add(
            Document(
                request_id=request.id,
                field=info_field(info.id),
                ref=attachment.ref,
                content_type=attachment.content_type,
                size=attachment.size,
                filename=attachment.filename or "",
            )
        )
    if request.status == RequestStatus.NEEDS_INFO.value:
        await tx.change_status(request, RequestStatus.UNDER_REVIEW, actor="beneficiary")
    else:
        request.updated_at = utcnow()
    await tx.audit("beneficiary", "request.info_added", reference, files=len(answer.attachments))
    return True


@dataclass(frozen=True, slots=True)
class InfoItem:
    info: RequestInfo
    documents: list[Document]


async def request_info(session: AsyncSession, request_id: int) -> list[InfoItem]:
    """What the beneficiary sent on a request, oldest first, with its files."""
    rows = list(
        await session.scalars(
            select(RequestInfo).where(RequestInfo.request_id == request_id).order_by(RequestInfo.id)
        )
    )
    documents = list(
        await session.scalars(
            select(Document)
            .where(Document.request_id == request_id, Document.field.like("info:%"))
            .order_by(Document.id)
        )
    )
    return [InfoItem(row, [d for d in documents if d.field == info_field(row.id)]) for row in rows]


# -- due-date reminders ---------------------------------------------------------------------------


async def open_requests_due(session: AsyncSession, until: datetime) -> list[Request]:
    return list(
        await session.scalars(
            select(Request)
            .where(
                Request.status.in_(OPEN_REQUESTS),
                Request.due_at.is_not(None),
                Request.due_at <= until,
            )
            .order_by(Request.due_at, Request.id)
        )
    )


async def reminded(session: AsyncSession, request_ids: list[int]) -> set[tuple[int, str]]:
    rows = await session.execute(
        select(RequestReminder.request_id, RequestReminder.stage).where(
            RequestReminder.request_id.in_(request_ids)
        )
    )
    return {(int(request_id), str(stage)) for request_id, stage in rows}


async def assignee(session: AsyncSession, request_id: int) -> str | None:
    """The staff member handling a request: the last one who moved it, else who verified it."""
    actor = await session.scalar(
        select(RequestStatusChange.actor)
        .where(
            RequestStatusChange.request_id == request_id,
            RequestStatusChange.actor.like("staff:%"),
        )
        .order_by(RequestStatusChange.id.desc())
        .limit(1)
    )
    if actor:
        return str(actor).removeprefix("staff:")
    verified_by = await session.scalar(
        select(RequestVerification.verified_by).where(RequestVerification.request_id == request_id)
    )
    return str(verified_by) if verified_by else None


async def active_staff(session: AsyncSession, emails: list[str]) -> list[str]:
    """Those of ``emails`` that are active accounts."""
    if not emails:
        return []
    rows = await session.scalars(
        select(StaffUser.email).where(StaffUser.email.in_(emails), StaffUser.active.is_(True))
    )
    return sorted(rows)


async def supervisors(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(StaffUser.email)
        .where(StaffUser.role == "supervisor", StaffUser.active.is_(True))
        .order_by(StaffUser.email)
    )
    return list(rows)


async def unsent_reminders(
    session: AsyncSession, max_attempts: int, after: int, limit: int
) -> list[RequestReminder]:
    return list(
        await session.scalars(
            select(RequestReminder)
            .where(
                RequestReminder.emailed_at.is_(None),
                RequestReminder.attempts < max_attempts,
                RequestReminder.id > after,
            )
            .order_by(RequestReminder.id)
            .limit(limit)
        )
    )


async def give_up_unsent(session: AsyncSession, max_attempts: int, reason: str) -> None:
    """Nothing can mail them: they stay listed in the console only."""
    await session.execute(
        update(RequestReminder)
        .where(RequestReminder.emailed_at.is_(None), RequestReminder.attempts < max_attempts)
        .values(attempts=max_attempts, last_error=reason)
    )


@dataclass(frozen=True, slots=True)
class ReminderNotice:
    """The latest reminder of a request still open, for the console's list."""

    reminder: RequestReminder
    request: Request
    assignee: str | None


async def reminder_notices(session: AsyncSession, limit: int = 50) -> list[ReminderNotice]:
    rows = await session.execute(
        select(RequestReminder, Request)
        .join(Request, Request.id == RequestReminder.request_id)
        .where(Request.status.in_(OPEN_REQUESTS))
        .order_by(RequestReminder.id.desc())
    )
    latest: dict[int, tuple[RequestReminder, Request]] = {}
    for reminder, request in rows:
        latest.setdefault(request.id, (reminder, request))
    chosen = sorted(latest.values(), key=lambda pair: (pair[1].due_at or utcnow(), pair[1].id))
    return [
        ReminderNotice(reminder, request, await assignee(session, request.id))
        for reminder, request in chosen[:limit]
    ]

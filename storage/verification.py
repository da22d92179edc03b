"""Wrong answers to the request-status check, counted per sender and per reference.

Counting in the database rather than in the conversation means a new conversation, another
reference number or another server process does not start the count again. Rows hold the
sender's identity id, the request id when the reference exists, and a hash of the reference
as typed: never the reference or the digits in clear.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Index, Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conversations.ports import FailedChecks, Sender
from storage.models import Base, Id, Identity, Request, UTCDateTime

log = structlog.get_logger("tawasul.verification")

# Rows older than this are of no use to any limit and are removed as new ones come.
KEEP = timedelta(days=7)


class StatusCheckFailure(Base):
    __tablename__ = "status_check_failures"
    __table_args__ = (
        Index("ix_status_check_failures_identity", "identity_id", "failed_at"),
        Index("ix_status_check_failures_reference", "reference_hash", "failed_at"),
        Index("ix_status_check_failures_failed_at", "failed_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identity_id: Mapped[int] = mapped_column(Integer)
    reference_hash: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))


def reference_hash(reference: str) -> str:
    normalised = reference.strip().upper().replace(" ", "")
    return hashlib.blake2b(
        normalised.encode(), digest_size=16, person=b"tawasul-status"
    ).hexdigest()


async def _identity_id(session: AsyncSession, sender: Sender) -> int:
    kind, address = sender
    found = await session.scalar(select(Identity.id).where(Identity.lookup(kind, address)))
    return int(found) if found is not None else 0


async def failed_checks(
    session: AsyncSession, sender: Sender, reference: str, since: datetime
) -> FailedChecks:
    """Wrong answers since ``since`` by this sender (any reference) and about this reference
    (from anyone), with the time of the latest of each."""
    identity_id = await _identity_id(session, sender)
    by_sender = (
        await session.execute(
            select(func.count(), func.max(StatusCheckFailure.failed_at)).where(
                StatusCheckFailure.identity_id == identity_id,
                StatusCheckFailure.failed_at >= since,
            )
        )
    ).one()
    by_reference = (
        await session.execute(
            select(func.count(), func.max(StatusCheckFailure.failed_at)).where(
                StatusCheckFailure.reference_hash == reference_hash(reference),
                StatusCheckFailure.failed_at >= since,
            )
        )
    ).one()
    return FailedChecks(
        by_sender=int(by_sender[0] or 0),
        sender_last=by_sender[1],
        by_reference=int(by_reference[0] or 0),
        reference_last=by_reference[1],
    )


async def record_failed_check(
    session: AsyncSession, sender: Sender, reference: str, at: datetime
) -> None:
    identity_id = await _identity_id(session, sender)
    request_id = await session.scalar(select(Request.id).where(Request.reference == reference))
    hashed = reference_hash(reference)
    await session.execute(
        delete(StatusCheckFailure).where(StatusCheckFailure.failed_at < at - KEEP)
    )
    session.add(
        StatusCheckFailure(
            identity_id=identity_id, reference_hash=hashed, request_id=request_id, failed_at=at
        )
    )
    await session.flush()
    log.warning(
        "status.check_failed",
        identity_id=identity_id,
        request_id=request_id,
        reference_hash=hashed[:12],
    )

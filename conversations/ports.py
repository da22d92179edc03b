"""What the engine needs from the outside world, as a protocol storage implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from conversations.messages import Attachment, Channel


class RequestStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REJECTED = "rejected"
    CLOSED = "closed"


# Which status may follow which (P7); every change is recorded.
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.DRAFT: frozenset({RequestStatus.SUBMITTED, RequestStatus.CLOSED}),
    RequestStatus.SUBMITTED: frozenset(
        {
            RequestStatus.UNDER_REVIEW,
            RequestStatus.NEEDS_INFO,
            RequestStatus.APPROVED,
            RequestStatus.REJECTED,
            RequestStatus.CLOSED,
        }
    ),
    RequestStatus.UNDER_REVIEW: frozenset(
        {
            RequestStatus.NEEDS_INFO,
            RequestStatus.APPROVED,
            RequestStatus.REJECTED,
            RequestStatus.CLOSED,
        }
    ),
    RequestStatus.NEEDS_INFO: frozenset(
        {
            RequestStatus.UNDER_REVIEW,
            RequestStatus.APPROVED,
            RequestStatus.REJECTED,
            RequestStatus.CLOSED,
        }
    ),
    RequestStatus.APPROVED: frozenset({RequestStatus.CLOSED}),
    RequestStatus.REJECTED: frozenset({RequestStatus.CLOSED}),
    RequestStatus.CLOSED: frozenset(),
}


class HandoffReason(StrEnum):
    ASKED = "asked"
    MISUNDERSTOOD = "misunderstood"
    FORM = "form"
    STATUS_VERIFICATION = "status_verification"
    ERROR = "error"  # the bot failed on a message again and again: a person takes over


@dataclass(frozen=True, slots=True)
class RequestSummary:
    reference: str
    form_id: str
    status: RequestStatus
    submitted_at: datetime
    due_at: datetime | None


# Who is writing, as storage knows them: (identity kind, address).
Sender = tuple[str, str]


@dataclass(frozen=True, slots=True)
class FailedChecks:
    """Recent wrong answers to the status check, by one sender and about one reference."""

    by_sender: int = 0
    sender_last: datetime | None = None
    by_reference: int = 0
    reference_last: datetime | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    beneficiary_id: int
    conversation_id: int
    form_id: str
    kind: str
    reference_prefix: str
    answers: dict[str, dict[str, object]]
    lang: str
    channel: Channel
    declared_at: datetime | None
    submitted_at: datetime
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class InfoAnswer:
    """What a beneficiary sent after being asked for more information on a request."""

    text: str
    attachments: tuple[Attachment, ...]
    channel: Channel
    received_at: datetime


class EnginePort(Protocol):
    """The engine's view of storage, inside one transaction."""

    async def requests_of(self, beneficiary_id: int) -> list[RequestSummary]: ...

    async def verify_request(self, reference: str, last4: str) -> RequestSummary | None:
        """The request with this reference if ``last4`` matches its national ID or mobile."""
        ...

    async def failed_checks(self, sender: Sender, reference: str, since: datetime) -> FailedChecks:
        """Wrong answers to the status check since ``since``, kept across conversations."""
        ...

    async def record_failed_check(self, sender: Sender, reference: str, at: datetime) -> None:
        """Count one wrong answer by ``sender`` about ``reference``."""
        ...

    async def submit(self, submission: Submission) -> str:
        """Store a completed form as a request; return its reference number."""
        ...

    async def handoff(self, conversation_id: int, reason: HandoffReason) -> None: ...

    async def leave_queue(self, conversation_id: int) -> None: ...

    async def record_survey(
        self,
        beneficiary_id: int,
        conversation_id: int,
        request_reference: str | None,
        rating: int,
        comment: str | None,
    ) -> None: ...

    async def record_unanswered(self, text: str, lang: str) -> None: ...

    async def add_request_info(
        self, reference: str, beneficiary_id: int, answer: InfoAnswer
    ) -> bool:
        """Attach the answer to the beneficiary's request, which goes back under review;
        False when the request is not theirs or no longer waits for anything."""
        ...

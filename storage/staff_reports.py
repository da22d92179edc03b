"""Figures for the console's reports over a period [start, end)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.normalize import normalize_arabic
from storage.models import (
    AuditEntry,
    Message,
    Request,
    RequestStatusChange,
    SurveyAnswer,
    UnansweredQuestion,
)
from storage.staff_models import Handling

DECIDED = ("approved", "rejected")


@dataclass(frozen=True, slots=True)
class StaffFigures:
    staff: str
    conversations: int
    replies: int
    closed: int
    median_first_response_minutes: float | None
    request_changes: int


@dataclass(frozen=True, slots=True)
class Report:
    start: datetime
    end: datetime
    messages_in: dict[str, int] = field(default_factory=dict)
    messages_out: dict[str, int] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    requests_by_status: dict[str, int] = field(default_factory=dict)
    decided: int = 0
    decided_on_time: int = 0
    open_late: int = 0
    median_first_response_minutes: float | None = None
    ratings: dict[int, int] = field(default_factory=dict)
    comments: list[tuple[datetime, int, str]] = field(default_factory=list)
    unanswered: list[tuple[str, int]] = field(default_factory=list)
    per_staff: list[StaffFigures] = field(default_factory=list)

    @property
    def on_time_share(self) -> float | None:
        return self.decided_on_time / self.decided if self.decided else None

    @property
    def surveys(self) -> int:
        return sum(self.ratings.values())

    @property
    def rating_average(self) -> float | None:
        if not self.surveys:
            return None
        return sum(r * n for r, n in self.ratings.items()) / self.surveys


def _by_staff(rows: Sequence[Row[str, int]]) -> dict[str, int]:
    """Counts by actor (``staff:<email>``), by staff address; other actors left out."""
    return {a.removeprefix("staff:"): n for a, n in rows if a.startswith("staff:")}


def _minutes(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


async def build_report(session: AsyncSession, start: datetime, end: datetime) -> Report:
    in_period = (Message.created_at >= start, Message.created_at < end)
    messages = await session.execute(
        select(Message.channel, Message.direction, func.count())
        .where(*in_period, Message.direction.in_(("in", "out")))
        .group_by(Message.channel, Message.direction)
    )
    messages_in: dict[str, int] = {}
    messages_out: dict[str, int] = {}
    for channel, direction, count in messages.all():
        (messages_in if direction == "in" else messages_out)[channel] = count
    conversations = await session.execute(
        select(Message.channel, func.count(func.distinct(Message.conversation_id)))
        .where(*in_period, Message.direction == "in")
        .group_by(Message.channel)
    )

    requests = list(
        await session.scalars(
            select(Request).where(
                Request.submitted_at >= start,
                Request.submitted_at < end,
                Request.status != "draft",
            )
        )
    )
    by_status = Counter(r.status for r in requests)
    decisions = await session.execute(
        select(RequestStatusChange.request_id, func.min(RequestStatusChange.at))
        .where(
            RequestStatusChange.request_id.in_([r.id for r in requests]),
            RequestStatusChange.to_status.in_(DECIDED),
        )
        .group_by(RequestStatusChange.request_id)
    )
    decided_at = {r[0]: r[1] for r in decisions}
    on_time = sum(
        1
        for r in requests
        if r.id in decided_at and (r.due_at is None or decided_at[r.id] <= r.due_at)
    )
    open_late = sum(
        1
        for r in requests
        if r.status in ("submitted", "under_review", "needs_info")
        and r.due_at is not None
        and r.due_at < end
        and r.id not in decided_at
    )

    surveys = list(
        await session.scalars(
            select(SurveyAnswer)
            .where(SurveyAnswer.created_at >= start, SurveyAnswer.created_at < end)
            .order_by(SurveyAnswer.created_at.desc())
        )
    )
    ratings = Counter(s.rating for s in surveys if 1 <= s.rating <= 5)
    comments = [(s.created_at, s.rating, s.comment) for s in surveys if s.comment][:50]

    questions = await session.scalars(
        select(UnansweredQuestion.text).where(
            UnansweredQuestion.created_at >= start, UnansweredQuestion.created_at < end
        )
    )
    grouped: dict[str, list[str]] = defaultdict(list)
    for text in questions:
        key = " ".join(normalize_arabic(text).lower().split())
        if key:
            grouped[key].append(text.strip())
    unanswered = sorted(
        ((Counter(texts).most_common(1)[0][0], len(texts)) for texts in grouped.values()),
        key=lambda item: (-item[1], item[0]),
    )[:10]

    handlings = list(
        await session.scalars(
            select(Handling).where(Handling.claimed_at >= start, Handling.claimed_at < end)
        )
    )
    firsts = [
        (h.first_reply_at - h.queued_at).total_seconds() / 60
        for h in handlings
        if h.first_reply_at and h.queued_at
    ]
    changes = await session.execute(
        select(RequestStatusChange.actor, func.count())
        .where(RequestStatusChange.at >= start, RequestStatusChange.at < end)
        .group_by(RequestStatusChange.actor)
    )
    changes_by = _by_staff(changes.all())
    # Replies and closures are counted for whoever wrote or closed, not for the colleague
    # who held the conversation then.
    replies = await session.execute(
        select(Message.author, func.count())
        .where(*in_period, Message.direction == "out", Message.author.startswith("staff:"))
        .group_by(Message.author)
    )
    replies_by = _by_staff(replies.all())
    closures = await session.execute(
        select(AuditEntry.actor, func.count())
        .where(
            AuditEntry.at >= start,
            AuditEntry.at < end,
            AuditEntry.action == "conversation.closed",
            AuditEntry.actor.startswith("staff:"),
        )
        .group_by(AuditEntry.actor)
    )
    closed_by = _by_staff(closures.all())
    per_staff = []
    everyone = {h.staff for h in handlings} | set(changes_by) | set(replies_by) | set(closed_by)
    for email in sorted(everyone):
        mine = [h for h in handlings if h.staff == email]
        per_staff.append(
            StaffFigures(
                staff=email,
                conversations=len({h.conversation_id for h in mine}),
                replies=replies_by.get(email, 0),
                closed=closed_by.get(email, 0),
                median_first_response_minutes=_minutes(
                    [
                        (h.first_reply_at - h.queued_at).total_seconds() / 60
                        for h in mine
                        if h.first_reply_at and h.queued_at
                    ]
                ),
                request_changes=changes_by.get(email, 0),
            )
        )
    return Report(
        start=start,
        end=end,
        messages_in=messages_in,
        messages_out=messages_out,
        conversations={r[0]: r[1] for r in conversations},
        requests_by_status=dict(by_status),
        decided=len(decided_at),
        decided_on_time=on_time,
        open_late=open_late,
        median_first_response_minutes=_minutes(firsts),
        ratings=dict(ratings),
        comments=[(at, rating, text or "") for at, rating, text in comments],
        unanswered=unanswered,
        per_staff=per_staff,
    )

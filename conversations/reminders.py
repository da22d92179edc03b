"""When a request's due date calls for a reminder to staff (P6)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ReminderStage(StrEnum):
    DUE_SOON = "due_soon"
    LATE = "late"


def reminder_stage(due_at: datetime, now: datetime, lead: timedelta) -> ReminderStage | None:
    """The reminder a request open at ``now`` has earned: late once its due date has passed,
    due soon within ``lead`` of it, none before."""
    if now >= due_at:
        return ReminderStage.LATE
    if now >= due_at - lead:
        return ReminderStage.DUE_SOON
    return None

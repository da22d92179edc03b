"""Working hours in Asia/Riyadh: when staff can answer (P16)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

# Python weekday numbers: Monday 0 ... Sunday 6. The Saudi week runs Sunday to Thursday.
SAUDI_WORKDAYS = frozenset({6, 0, 1, 2, 3})


@dataclass(frozen=True, slots=True)
class WorkingHours:
    timezone: str = "Asia/Riyadh"
    workdays: frozenset[int] = SAUDI_WORKDAYS
    opens: time = time(8, 0)
    closes: time = time(15, 0)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return local.weekday() in self.workdays and self.opens <= local.time() < self.closes

    def next_opening(self, at: datetime) -> datetime:
        """The next moment staff are at work, in local time (``at`` itself when open)."""
        local = at.astimezone(self.zone)
        if self.is_open(local):
            return local
        day = local.date()
        if local.weekday() in self.workdays and local.time() < self.opens:
            return datetime.combine(day, self.opens, self.zone)
        for offset in range(1, 8):
            candidate = day + timedelta(days=offset)
            if candidate.weekday() in self.workdays:
                return datetime.combine(candidate, self.opens, self.zone)
        raise ValueError("working hours have no working day")

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

    @property
    def overnight(self) -> bool:
        """A shift that closes after midnight (Ramadan's night hours, 22:00 to 02:00): it
        belongs to the working day it opens on."""
        return self.closes <= self.opens

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        day, now = local.weekday(), local.time()
        if not self.overnight:
            return day in self.workdays and self.opens <= now < self.closes
        yesterday = (day - 1) % 7
        return (day in self.workdays and now >= self.opens) or (
            yesterday in self.workdays and now < self.closes
        )

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

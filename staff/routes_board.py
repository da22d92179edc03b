"""The monthly report for the board: one printable A4 page for a chosen month, compared with
the month before, with the month named in both calendars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from conversations.fields import (
    GREGORIAN_MONTHS_AR,
    GREGORIAN_MONTHS_EN,
    HIJRI_MONTHS_AR,
    HIJRI_MONTHS_EN,
    to_hijri,
)
from staff.console import PREFIX, Console, route_class
from staff.deps import ReportsViewer
from staff.i18n import Translator, translator
from staff.routes_reports import report_between
from storage.staff_reports import Report


def month_bounds(value: str, today: date) -> tuple[date, date, bool]:
    """The first and last day of ``YYYY-MM``, by default the month before ``today``'s (the
    board meets on the month that ended); and whether ``value`` was given but not a month."""
    try:
        year, month = (int(part) for part in value.split("-"))
        first, bad = date(year, month, 1), False
        following = (first + timedelta(days=32)).replace(day=1)
        previous_month(first)  # compared with the month before, which must exist too
    except (ValueError, OverflowError):
        first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        following = today.replace(day=1)
        bad = bool(value)
    return first, following - timedelta(days=1), bad


def previous_month(first: date) -> tuple[date, date]:
    last = first - timedelta(days=1)
    return last.replace(day=1), last


def month_name(first: date, last: date, lang: str) -> str:
    """ "نوفمبر 2026 — جمادى الأولى – جمادى الآخرة 1448 هـ" or its English."""
    gregorian = (GREGORIAN_MONTHS_AR if lang == "ar" else GREGORIAN_MONTHS_EN)[first.month - 1]
    names = HIJRI_MONTHS_AR if lang == "ar" else HIJRI_MONTHS_EN
    try:
        start = [int(p) for p in to_hijri(first).split("-")]
        end = [int(p) for p in to_hijri(last).split("-")]
    except ValueError:
        return f"{gregorian} {first.year}"
    if start[:2] == end[:2]:
        hijri = f"{names[start[1] - 1]} {start[0]}"
    elif start[0] == end[0]:
        hijri = f"{names[start[1] - 1]} – {names[end[1] - 1]} {end[0]}"
    else:
        hijri = f"{names[start[1] - 1]} {start[0]} – {names[end[1] - 1]} {end[0]}"
    suffix = " هـ" if lang == "ar" else " AH"
    return f"{gregorian} {first.year} — {hijri}{suffix}"


@dataclass(frozen=True, slots=True)
class Compared:
    label: str
    now: str
    before: str
    change: str
    trend: str  # "up", "down" or "same"
    testid: str = ""


def _count_change(now: float, before: float, *, points: bool = False) -> tuple[str, str]:
    diff = now - before
    if abs(diff) < 1e-9:
        return "=", "same"
    sign = "+" if diff > 0 else "−"
    if points:
        text = f"{sign}{abs(diff):.0f} pt"
    elif before:
        text = f"{sign}{abs(diff):g} ({sign}{abs(diff) / before:.0%})"
    else:
        text = f"{sign}{abs(diff):g}"
    return text, "up" if diff > 0 else "down"


def compare(report: Report, before: Report, t: Translator) -> list[Compared]:
    rows: list[Compared] = []

    def counts(key: str, now: int, then: int, testid: str = "") -> None:
        change, trend = _count_change(now, then)
        rows.append(Compared(t(key), str(now), str(then), change, trend, testid))

    def optional(
        key: str, now: float | None, then: float | None, fmt: str, points: bool = False
    ) -> None:
        shown_now = fmt.format(now) if now is not None else "—"
        shown_then = fmt.format(then) if then is not None else "—"
        if now is None or then is None:
            rows.append(Compared(t(key), shown_now, shown_then, "—", "same"))
            return
        change, trend = _count_change(round(now, 1), round(then, 1), points=points)
        rows.append(Compared(t(key), shown_now, shown_then, change, trend))

    counts(
        "reports.messages_in",
        sum(report.messages_in.values()),
        sum(before.messages_in.values()),
        "board-messages",
    )
    counts(
        "board.messages_out", sum(report.messages_out.values()), sum(before.messages_out.values())
    )
    counts(
        "reports.conversations",
        sum(report.conversations.values()),
        sum(before.conversations.values()),
    )
    counts(
        "reports.requests",
        sum(report.requests_by_status.values()),
        sum(before.requests_by_status.values()),
        "board-requests",
    )
    counts("board.decided", report.decided, before.decided)
    share = report.on_time_share
    share_before = before.on_time_share
    optional(
        "reports.on_time",
        share * 100 if share is not None else None,
        share_before * 100 if share_before is not None else None,
        "{:.0f}%",
        points=True,
    )
    counts("board.open_late", report.open_late, before.open_late)
    optional(
        "board.first_response_minutes",
        report.median_first_response_minutes,
        before.median_first_response_minutes,
        "{:g}",
    )
    counts("board.surveys", report.surveys, before.surveys)
    optional("board.satisfaction", report.rating_average, before.rating_average, "{:.1f}")
    return rows


def side_by_side(
    now: dict[str, int], before: dict[str, int], t: Translator, prefix: str
) -> list[tuple[str, int, int]]:
    keys = sorted(set(now) | set(before), key=lambda k: (-now.get(k, 0), k))
    return [(t.maybe(prefix, k), now.get(k, 0), before.get(k, 0)) for k in keys]


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    @router.get("/reports/board", include_in_schema=False)
    async def board_page(request: Request, staff: ReportsViewer, month: str = "") -> Response:
        t = translator(console.lang_of(request))
        today = console.local(datetime.now(UTC)).date()
        first, last, bad = month_bounds(month, today)
        before_first, before_last = previous_month(first)
        report = await report_between(console, first, last)
        before = await report_between(console, before_first, before_last)
        return console.render(
            request,
            staff,
            "board.html",
            error="month" if bad else "",
            month=f"{first.year:04d}-{first.month:02d}",
            title=month_name(first, last, t.lang),
            before_title=month_name(before_first, before_last, t.lang),
            first=first,
            last=last,
            report=report,
            rows=compare(report, before, t),
            channels=side_by_side(report.conversations, before.conversations, t, "channel"),
            statuses=side_by_side(
                report.requests_by_status, before.requests_by_status, t, "status"
            ),
        )

    return router

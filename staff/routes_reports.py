"""Reports for a period (P9, P14): on the page with bars, and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from staff.console import PREFIX, Console, route_class
from staff.deps import ReportsViewer
from staff.i18n import Translator, translator
from storage.staff_reports import Report, build_report


def period(console: Console, start: str, end: str) -> tuple[date, date, bool]:
    """The chosen days (local), by default the current month up to today; and whether a
    day given was not a date (its default is used, and the page says so)."""
    today = console.local(datetime.now(UTC)).date()
    bad = False
    try:
        first = date.fromisoformat(start) if start else today.replace(day=1)
    except ValueError:
        first, bad = today.replace(day=1), True
    try:
        last = date.fromisoformat(end) if end else today
    except ValueError:
        last, bad = today, True
    if last < first:
        first, last = last, first
    # A day at either end of the calendar has no neighbour in UTC or after it.
    if first <= date.min + timedelta(days=1) or last >= date.max - timedelta(days=1):
        first, last, bad = today.replace(day=1), today, True
    return first, last, bad


def bars(values: dict[str, int], t: Translator, prefix: str) -> list[dict[str, object]]:
    """Rows for a horizontal bar chart drawn as SVG on the server."""
    top = max(values.values(), default=0) or 1
    return [
        {"label": t.maybe(prefix, key), "value": value, "share": value / top}
        for key, value in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


# What makes a spreadsheet read a cell as a formula (OWASP's list, and the full-width signs
# some spreadsheets take as the same), after any leading spaces.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: object) -> object:
    """A text cell as data, never a formula: one that starts like a formula gets a leading
    ' (a question typed as =HYPERLINK(...) would otherwise run in the supervisor's
    spreadsheet). Numbers are written as they are."""
    if isinstance(value, str) and value.lstrip(" \n\u00a0").startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: list[list[object]]) -> str:
    """The rows as CSV text, every text cell through ``safe_cell``: what the console exports
    as CSV goes through here."""
    out = io.StringIO()
    csv.writer(out).writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue()


def csv_rows(report: Report, console: Console) -> list[list[object]]:
    rows: list[list[object]] = [["section", "key", "value"]]
    # The days covered, both included, in the association's calendar.
    rows += [
        ["period", "from", console.local(report.start).date().isoformat()],
        ["period", "to", (console.local(report.end) - timedelta(days=1)).date().isoformat()],
    ]
    rows += [["messages_in", k, v] for k, v in sorted(report.messages_in.items())]
    rows += [["messages_out", k, v] for k, v in sorted(report.messages_out.items())]
    rows += [["conversations", k, v] for k, v in sorted(report.conversations.items())]
    rows += [["requests", k, v] for k, v in sorted(report.requests_by_status.items())]
    rows += [
        ["requests", "decided", report.decided],
        ["requests", "decided_on_time", report.decided_on_time],
        ["requests", "open_late", report.open_late],
        ["staff", "median_first_response_minutes", report.median_first_response_minutes or ""],
        ["satisfaction", "answers", report.surveys],
        [
            "satisfaction",
            "average",
            f"{report.rating_average:.2f}" if report.rating_average is not None else "",
        ],
    ]
    rows += [["satisfaction", f"rating_{r}", report.ratings.get(r, 0)] for r in range(1, 6)]
    rows += [["unanswered", text, n] for text, n in report.unanswered]
    for s in report.per_staff:
        rows += [
            [f"staff:{s.staff}", "conversations", s.conversations],
            [f"staff:{s.staff}", "replies", s.replies],
            [f"staff:{s.staff}", "closed", s.closed],
            [
                f"staff:{s.staff}",
                "median_first_response_minutes",
                s.median_first_response_minutes or "",
            ],
            [f"staff:{s.staff}", "request_changes", s.request_changes],
        ]
    return rows


async def report_between(console: Console, first: date, last: date) -> Report:
    """The figures of the local days ``first`` to ``last``, both included."""
    start = datetime.combine(first, time.min, console.zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, console.zone).astimezone(UTC)
    async with console.db.session(write=False) as session:
        return await build_report(session, start, end)


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    @router.get("/reports", include_in_schema=False)
    async def report_page(
        request: Request,
        staff: ReportsViewer,
        start: str = "",
        end: str = "",
    ) -> Response:
        first, last, bad = period(console, start, end)
        report = await report_between(console, first, last)
        t = translator(console.lang_of(request))
        channels = sorted(set(report.messages_in) | set(report.messages_out))
        return console.render(
            request,
            staff,
            "reports.html",
            error="period" if bad else request.query_params.get("error", ""),
            report=report,
            first=first,
            last=last,
            channels=channels,
            conversation_bars=bars(report.conversations, t, "channel"),
            status_bars=bars(report.requests_by_status, t, "status"),
            rating_bars=[
                {
                    "label": str(r),
                    "value": report.ratings.get(r, 0),
                    "share": report.ratings.get(r, 0)
                    / (max(report.ratings.values(), default=0) or 1),
                }
                for r in range(5, 0, -1)
            ],
        )

    @router.get("/reports.csv", include_in_schema=False)
    async def report_csv(staff: ReportsViewer, start: str = "", end: str = "") -> Response:
        first, last, bad = period(console, start, end)
        if bad:
            return Response("start and end are days, YYYY-MM-DD\n", status_code=400)
        report = await report_between(console, first, last)
        return Response(
            "\ufeff" + write_csv(csv_rows(report, console)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="tawasul-{first}-{last}.csv"'},
        )

    return router

"""The installation as staff see it: the effective settings (administrators) and the replies
set aside as failed or held, with a button to send them again (supervisors)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from staff.console import PREFIX, Console, route_class
from staff.deps import FormRowId, OutboxRetrier, OutboxViewer, SettingsViewer
from storage.models import OutboxItem
from storage.staff import ConsoleTx

# A provider's error code (HTTP status, Twilio or SMTP code); longer digit runs (a phone
# number) are never shown.
_CODE = re.compile(r"(?<!\d)(\d{3,5})(?!\d)")


def error_kind(item: OutboxItem) -> tuple[str, str]:
    """What went wrong, as a kind the page translates and the provider's codes, without the
    provider's text (which may quote an address)."""
    reason = item.last_error or ""
    if item.status == "held":
        kind = "held"
    elif reason.startswith("unreachable"):
        kind = "unreachable"
    elif "rate" in reason.lower() or "429" in reason:
        kind = "rate_limited"
    elif "timeout" in reason.lower() or "timed out" in reason.lower():
        kind = "timeout"
    else:
        kind = "failed"
    codes = [item.error_code] if item.error_code else []
    codes += [c for c in _CODE.findall(reason) if c not in codes]
    return kind, " ".join(codes[:3])


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))
    backend = console.backend

    @router.get("/settings", include_in_schema=False)
    async def settings_page(request: Request, staff: SettingsViewer) -> Response:
        return console.render(
            request, staff, "settings.html", sections=backend.effective_settings()
        )

    @router.get("/outbox", include_in_schema=False)
    async def outbox_page(request: Request, staff: OutboxViewer) -> Response:
        items = [(item, *error_kind(item)) for item in await backend.failed_outbox()]
        return console.render(request, staff, "outbox.html", items=items)

    @router.post("/outbox/retry", include_in_schema=False)
    async def outbox_retry(
        staff: OutboxRetrier,
        item_id: FormRowId = None,
        every: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        if item_id is None and every != "1":
            return console.back(f"{PREFIX}/outbox?error=outbox_none")
        retried = await backend.retry_outbox(None if every == "1" else [item_id or 0])
        if not retried:
            return console.back(f"{PREFIX}/outbox?error=outbox_none")
        async with console.db.session() as session:
            await ConsoleTx(session).audit(
                staff.actor, "outbox.retried", ",".join(str(i) for i in retried)
            )
        return console.back(f"{PREFIX}/outbox", "outbox_retried")

    return router

"""Requests: the list by status and due date, one request's page, decisions (P3, P6, P7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, Response

from conversations.ports import TRANSITIONS, RequestStatus
from conversations.references import canonical_reference
from staff.console import PREFIX, Console, Denied, Missing, route_class
from staff.deps import BeneficiaryViewer, RequestsViewer, Reviewer, RowId
from staff.permissions import Staff, may_open_attachment, may_set_status
from staff.routes_conversations import view_of
from storage.followup import reminder_notices, request_info
from storage.models import Message
from storage.repository import InvalidTransition, NotFound
from storage.staff import ConsoleTx, is_late

log = structlog.get_logger("tawasul.staff")

INLINE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"}
LISTED = [s for s in RequestStatus if s is not RequestStatus.DRAFT]


def next_statuses(staff: Staff, current: str) -> list[RequestStatus]:
    return [
        s for s in LISTED if s in TRANSITIONS[RequestStatus(current)] and may_set_status(staff, s)
    ]


def _page_number(text: str) -> int:
    """The page asked for in the address; the first for anything else."""
    return int(text) if text.isdecimal() and len(text) <= 6 else 1


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    @router.get("/requests", include_in_schema=False)
    async def request_list(
        request: Request, staff: RequestsViewer, status: str = "", page: str = "1"
    ) -> Response:
        chosen = status if status in {s.value for s in LISTED} else ""
        async with console.db.session(write=False) as session:
            listed = await ConsoleTx(session).request_list(
                chosen or None, datetime.now(UTC), page=_page_number(page)
            )
            reminders = await reminder_notices(session)
        return console.render(
            request,
            staff,
            "requests.html",
            rows=listed.rows,
            listed=listed,
            statuses=LISTED,
            chosen=chosen,
            reminders=reminders,
        )

    def page_of(reference: str) -> str:
        return f"{PREFIX}/requests/{reference}"

    @router.get("/requests/{reference}", include_in_schema=False)
    async def request_page(
        request: Request,
        reference: str,
        staff: RequestsViewer,
        done: str = "",
        error: str = "",
        status: str = "",
    ) -> Response:
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                row = await tx.request_by_reference(canonical_reference(reference))
            except NotFound:
                raise Missing from None
            details = await tx.request_details(row)
            info = await request_info(session, row.id)
            verification = await tx.verification(row.id)
            person = await tx.beneficiary(row.beneficiary_id)
            others = [
                r for r in await tx.requests_of_beneficiary(row.beneficiary_id) if r.id != row.id
            ]
            await tx.audit(staff.actor, "request.viewed", row.reference)
        return console.render(
            request,
            staff,
            "request.html",
            req=row,
            late=is_late(row, datetime.now(UTC)),
            details=details,
            info=info,
            verification=verification,
            person=person,
            others=others,
            next_statuses=next_statuses(staff, row.status),
            chosen_status=status,
            done=done,
            error=error,
        )

    @router.get("/documents/{document_id}", include_in_schema=False)
    async def document(document_id: RowId, staff: RequestsViewer) -> Response:
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                row, owner = await tx.document(document_id)
            except NotFound:
                raise Missing from None
            await tx.audit(staff.actor, "document.viewed", owner.reference, document=row.id)
        return serve_file(row.ref, row.content_type, row.filename)

    @router.get("/messages/{message_id}/attachments/{index}", include_in_schema=False)
    async def message_attachment(
        message_id: RowId,
        index: RowId,
        staff: BeneficiaryViewer,
    ) -> Response:
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            message = await session.get(Message, message_id)
            if message is None:
                raise Missing
            attachments = (message.payload or {}).get("attachments", [])
            item = attachments[index] if 0 <= index < len(attachments) else {}
            ref = str(item.get("ref", ""))
            # The rule of the pages that show the file, before anything about the file is
            # told: a member who may not open the conversation learns nothing by trying ids.
            conversations = await tx.conversations_of(message.beneficiary_id)
            of_request = bool(ref) and await tx.is_document_of(message.beneficiary_id, ref)
            if not may_open_attachment(
                staff, [view_of(c) for c in conversations], of_request=of_request
            ):
                raise Denied
            if not item:
                raise Missing
            await tx.audit(staff.actor, "attachment.viewed", str(message_id), index=index)
        return serve_file(
            ref,
            str(item.get("content_type", "")),
            str(item.get("filename", "")),
        )

    def serve_file(ref: str, content_type: str, filename: str) -> Response:
        try:
            path = console.backend.files.path(ref)
        except ValueError:
            raise Missing from None
        if not path.is_file():
            raise Missing
        inline = content_type in INLINE_TYPES
        return FileResponse(
            path,
            media_type=content_type if inline else "application/octet-stream",
            content_disposition_type="inline" if inline else "attachment",
            filename=filename or path.name,
            headers={
                # Shown, never run: the browser's PDF viewer needs no sandbox flag, images
                # get the strictest policy.
                "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                "object-src 'self'; style-src 'unsafe-inline'"
                if content_type == "application/pdf"
                else "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
                "Cache-Control": "private, no-store",
            },
        )

    @router.post("/requests/{reference}/status", include_in_schema=False)
    async def set_status(
        reference: str,
        staff: Reviewer,
        status: Annotated[str, Form(max_length=32)] = "",
        message: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        reference = canonical_reference(reference)
        try:
            new = RequestStatus(status)
        except ValueError:
            return console.back(page_of(reference) + "?error=status")
        if not may_set_status(staff, new):
            raise Denied
        if new is RequestStatus.NEEDS_INFO and not message.strip():
            # The beneficiary would be told only that something is missing, not what.
            return console.back(page_of(reference) + "?error=info_message&status=needs_info")
        try:
            await console.backend.change_request_status(
                reference, new, actor=staff.actor, note=message.strip()
            )
        except NotFound:
            raise Missing from None
        except InvalidTransition:
            return console.back(page_of(reference) + "?error=transition")
        log.info("staff.request_status", status=new.value)
        return console.back(page_of(reference), "status")

    @router.post("/requests/{reference}/verify", include_in_schema=False)
    async def verify(
        reference: str,
        staff: Reviewer,
        note: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        reference = canonical_reference(reference)
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                row = await tx.request_by_reference(reference)
            except NotFound:
                raise Missing from None
            await tx.verify(row, staff.email, note.strip())
        return console.back(page_of(reference), "verified")

    return router

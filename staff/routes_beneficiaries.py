"""A beneficiary's profile, contacts logged by staff, export and anonymisation (P1, P13, P19)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from staff.console import PREFIX, Console, Missing, route_class
from staff.deps import Anonymiser, BeneficiaryViewer, ContactLogger, Exporter, RowId
from storage.repository import NotFound
from storage.staff import ConsoleTx
from storage.staff_people import CONTACT_KINDS

# A contact logged a few minutes ahead is a clock's difference, not a typo.
CLOCK_SLACK = timedelta(minutes=10)

log = structlog.get_logger("tawasul.staff")


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    def page_of(beneficiary_id: int) -> str:
        return f"{PREFIX}/beneficiaries/{beneficiary_id}"

    @router.get("/beneficiaries/{beneficiary_id}", include_in_schema=False)
    async def profile(
        request: Request,
        beneficiary_id: RowId,
        staff: BeneficiaryViewer,
        done: str = "",
        error: str = "",
    ) -> Response:
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                person = await tx.beneficiary(beneficiary_id)
            except NotFound:
                raise Missing from None
            context: dict[str, Any] = {
                "person": person,
                "identities": await tx.identities(beneficiary_id),
                "requests": await tx.requests_of_beneficiary(beneficiary_id),
                "contacts": await tx.contact_logs(beneficiary_id),
                "surveys": await tx.surveys_of(beneficiary_id),
            }
            await tx.audit(staff.actor, "beneficiary.viewed", str(beneficiary_id))
        return console.render(
            request,
            staff,
            "beneficiary.html",
            kinds=CONTACT_KINDS,
            today=console.local(datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M"),
            done=done,
            error=error,
            **context,
        )

    @router.post("/beneficiaries/{beneficiary_id}/contacts", include_in_schema=False)
    async def log_contact(
        beneficiary_id: RowId,
        staff: ContactLogger,
        kind: Annotated[str, Form(max_length=16)] = "",
        note: Annotated[str, Form(max_length=4000)] = "",
        happened_at: Annotated[str, Form(max_length=32)] = "",
    ) -> Response:
        try:
            moment = datetime.fromisoformat(happened_at) if happened_at else None
        except ValueError:
            moment = None
        if kind not in CONTACT_KINDS or not note.strip() or moment is None:
            return console.back(page_of(beneficiary_id) + "?error=contact")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=console.zone)
        if moment > datetime.now(UTC) + CLOCK_SLACK:
            # A visit or call is logged after it happened: a future date is a typo.
            return console.back(page_of(beneficiary_id) + "?error=contact_future")
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                await tx.beneficiary(beneficiary_id)
            except NotFound:
                raise Missing from None
            await tx.add_contact(beneficiary_id, kind, note.strip(), moment, staff.email)
        return console.back(page_of(beneficiary_id), "contact")

    @router.get("/beneficiaries/{beneficiary_id}/export.json", include_in_schema=False)
    async def export(beneficiary_id: RowId, staff: Exporter) -> Response:
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            try:
                data = await tx.export(beneficiary_id)
            except NotFound:
                raise Missing from None
            await tx.audit(staff.actor, "beneficiary.exported", str(beneficiary_id))
        return Response(
            json.dumps(data, ensure_ascii=False, indent=2),
            media_type="application/json; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="beneficiary-{beneficiary_id}.json"'
            },
        )

    @router.post("/beneficiaries/{beneficiary_id}/anonymise", include_in_schema=False)
    async def anonymise(
        beneficiary_id: RowId,
        staff: Anonymiser,
        confirm: Annotated[str, Form(max_length=32)] = "",
    ) -> Response:
        if confirm.strip() != str(beneficiary_id):
            return console.back(page_of(beneficiary_id) + "?error=confirm")
        async with console.db.session() as session:
            try:
                refs = await ConsoleTx(session).anonymise(beneficiary_id, staff.actor)
            except NotFound:
                raise Missing from None
        for ref in refs:
            try:
                console.backend.files.path(ref).unlink(missing_ok=True)
            except (ValueError, OSError):
                log.warning("staff.document_not_removed")
        log.info("staff.anonymised", beneficiary_id=beneficiary_id, documents=len(refs))
        return console.back(page_of(beneficiary_id), "anonymised")

    return router

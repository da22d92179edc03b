"""Canned answers (P15) and the staff accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from staff.accounts import ROLES, AccountError, add_account, change_role, set_active
from staff.canned import PLACEHOLDERS, stray_braces
from staff.console import PREFIX, Console, Missing, route_class
from staff.deps import CannedManager, CannedViewer, FormRowId, StaffAdmin, StaffManager
from staff.permissions import Staff
from storage.repository import NotFound
from storage.staff import ConsoleTx
from storage.staff_models import StaffUser


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    async def canned_render(
        request: Request,
        staff: Staff,
        *,
        status: int = 200,
        stray: list[str] | None = None,
        kept: dict[str, object] | None = None,
    ) -> Response:
        async with console.db.session(write=False) as session:
            rows = await ConsoleTx(session).canned(active_only=False)
        return console.render(
            request,
            staff,
            "canned.html",
            status=status,
            rows=rows,
            placeholders=PLACEHOLDERS,
            stray=stray or [],
            kept=kept or {},
        )

    @router.get("/canned", include_in_schema=False)
    async def canned_page(request: Request, staff: CannedViewer) -> Response:
        return await canned_render(request, staff)

    @router.post("/canned", include_in_schema=False)
    async def canned_save(
        request: Request,
        staff: CannedManager,
        canned_id: FormRowId = None,
        title: Annotated[str, Form(max_length=200)] = "",
        text_ar: Annotated[str, Form(max_length=4000)] = "",
        text_en: Annotated[str, Form(max_length=4000)] = "",
        active: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        if not title.strip() or not (text_ar.strip() or text_en.strip()):
            return console.back(f"{PREFIX}/canned?error=canned")
        stray = stray_braces(text_ar) + stray_braces(text_en)
        if stray:
            # Refused with the form as typed: a misspelt placeholder would reach the
            # beneficiary as written.
            kept: dict[str, object] = {
                "id": canned_id,
                "title": title,
                "text_ar": text_ar,
                "text_en": text_en,
                "active": bool(active),
            }
            return await canned_render(request, staff, status=400, stray=stray, kept=kept)
        async with console.db.session() as session:
            try:
                await ConsoleTx(session).save_canned(
                    canned_id,
                    title=title.strip(),
                    text_ar=text_ar.strip(),
                    text_en=text_en.strip(),
                    active=bool(active) or canned_id is None,
                    staff=staff.email,
                )
            except NotFound:
                raise Missing from None
        return console.back(f"{PREFIX}/canned", "canned")

    async def staff_rows() -> list[StaffUser]:
        async with console.db.session(write=False) as session:
            return await ConsoleTx(session).staff_list()

    @router.get("/staff-members", include_in_schema=False)
    async def staff_page(request: Request, staff: StaffManager) -> Response:
        return console.render(request, staff, "staff.html", rows=await staff_rows(), roles=ROLES)

    @router.post("/staff-members", include_in_schema=False)
    async def staff_add(
        request: Request,
        staff: StaffAdmin,
        email: Annotated[str, Form(max_length=320)] = "",
        name: Annotated[str, Form(max_length=200)] = "",
        role: Annotated[str, Form(max_length=16)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        try:
            added = await add_account(
                console.db, email, role, actor=staff.actor, name=name, password=password or None
            )
        except AccountError as exc:
            return console.back(f"{PREFIX}/staff-members?error={exc.code}")
        console.names_changed()
        if added.generated_password is None:
            return console.back(f"{PREFIX}/staff-members", "staff_added")
        # Shown on this answer only (never in a URL or a log); a reload does not add again.
        return console.render(
            request,
            staff,
            "staff.html",
            rows=await staff_rows(),
            roles=ROLES,
            added=added,
            done="staff_added",
        )

    @router.post("/staff-members/role", include_in_schema=False)
    async def staff_role(
        staff: StaffAdmin,
        email: Annotated[str, Form(max_length=320)] = "",
        role: Annotated[str, Form(max_length=16)] = "",
    ) -> Response:
        try:
            await change_role(console.db, email, role, actor=staff.actor)
        except AccountError as exc:
            if exc.code == "unknown":
                raise Missing from None
            return console.back(f"{PREFIX}/staff-members?error={exc.code}")
        return console.back(f"{PREFIX}/staff-members", "saved")

    @router.post("/staff-members/active", include_in_schema=False)
    async def staff_active(
        staff: StaffAdmin,
        email: Annotated[str, Form(max_length=320)] = "",
        active: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        try:
            requeued = await set_active(console.db, email, active == "1", actor=staff.actor)
        except AccountError as exc:
            if exc.code == "unknown":
                raise Missing from None
            return console.back(f"{PREFIX}/staff-members?error={exc.code}")
        return console.back(f"{PREFIX}/staff-members", "requeued" if requeued else "saved")

    return router

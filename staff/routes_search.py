"""Finding a beneficiary or a request: by reference, national ID, phone number or name (P1)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from staff.console import PREFIX, Console, actor, route_class
from staff.deps import BeneficiaryViewer
from staff.permissions import Perm, Staff, can
from storage.staff import ConsoleTx
from storage.staff_people import SEARCH_LIMIT, Found

# Longer than any name, number or reference anyone types.
QUERY_MAX = 200

# The search is a form posted, not an address: a national ID or a mobile typed in it stays
# out of the browser's history, of bookmarks and of a proxy's access log.
Searcher = Annotated[Staff, Depends(actor(Perm.BENEFICIARY))]


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    def page(request: Request, staff: Staff, query: str, found: Found) -> Response:
        return console.render(
            request,
            staff,
            "search.html",
            q=query,
            found=found,
            requests=found.requests if can(staff, Perm.REQUESTS) else [],
            limit=SEARCH_LIMIT,
        )

    @router.get("/search", include_in_schema=False)
    async def search_page(request: Request, staff: BeneficiaryViewer) -> Response:
        return page(request, staff, "", Found(""))

    @router.post("/search", include_in_schema=False)
    async def search(request: Request, staff: Searcher, q: Annotated[str, Form()] = "") -> Response:
        query = q.strip()[:QUERY_MAX]
        found = Found("")
        if query:
            async with console.db.session() as session:
                tx = ConsoleTx(session)
                found = await tx.search(query)
                # Who looked for someone, and how; never what was typed (an ID, a phone).
                await tx.audit(
                    staff.actor, "beneficiary.searched", found.kind, found=len(found.people)
                )
        return page(request, staff, query, found)

    return router

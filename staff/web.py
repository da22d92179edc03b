"""The staff console as one router: ``build_staff_router(service)`` and its static files."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from staff import (
    routes_admin,
    routes_auth,
    routes_beneficiaries,
    routes_board,
    routes_conversations,
    routes_knowledge,
    routes_reports,
    routes_requests,
    routes_search,
    routes_system,
)
from staff.backend import Backend
from staff.console import PREFIX, Console
from storage.staff import ConsoleTx

log = structlog.get_logger("tawasul.staff")

STAFF_STATIC = Path(__file__).parent / "static"


async def startup_notice(backend: Backend) -> str:
    """What to tell whoever starts the server: where the console is, and how to create the
    first account when there is none yet."""
    server = backend.config.server
    url = f"http://{server.host}:{server.port}{PREFIX}/"
    async with backend.db.session(write=False) as session:
        count = await ConsoleTx(session).count_staff()
    if count:
        return f"Staff console: {url}"
    return (
        f"Staff console: {url}  (no staff account yet; create the first administrator with\n"
        f"  {tawasul_command()} staff add you@example.org --role admin )"
    )


def tawasul_command(argv0: str | None = None, found: str | None = None) -> str:
    """How to run `tawasul` here: by name when the shell finds it, else as this server was
    started (`make run` starts .venv/bin/tawasul, which is not on the PATH)."""
    import shutil
    import sys

    argv0 = sys.argv[0] if argv0 is None else argv0
    found = shutil.which("tawasul") if found is None else found
    if not found and Path(argv0).name == "tawasul":
        return argv0
    return "tawasul"


def build_staff_router(backend: Backend, *, poll_seconds: float = 1.0) -> APIRouter:
    console = Console(backend, poll_seconds=poll_seconds)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            # Plain on a terminal, one JSON line when the logs are JSON.
            logging.getLogger("tawasul.notice").info(await startup_notice(backend))
        except SQLAlchemyError:
            log.warning("staff.notice_failed")
        yield

    router = APIRouter(lifespan=lifespan)
    for module in (
        routes_auth,
        routes_conversations,
        routes_requests,
        routes_beneficiaries,
        routes_admin,
        routes_reports,
        routes_board,
        routes_knowledge,
        routes_system,
        routes_search,
    ):
        router.include_router(module.routes(console))
    return router

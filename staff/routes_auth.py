"""Signing in and out, and the language of the console."""

from __future__ import annotations

import secrets
from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from staff.console import (
    LANG_COOKIE,
    PREFIX,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    BadForm,
    Console,
    route_class,
    safe_next,
)
from staff.deps import AnyActor
from staff.security import SESSION_LIFETIME, token_hash, verify_password
from storage.staff import ConsoleTx

log = structlog.get_logger("tawasul.staff")


def routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=route_class(console))

    async def login_page(
        request: Request,
        next_path: str,
        *,
        error: str | None = None,
        status: int = 200,
        email: str = "",
        notice: str | None = None,
    ) -> Response:
        """The sign-in form; after a refusal, with the address typed (not the password)."""
        anchor = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = console.render(
            request,
            None,
            "login.html",
            status=status,
            csrf=await console.keys.csrf(f"pre:{anchor}"),
            next_path=safe_next(next_path),
            login_error=error,
            login_notice=notice,
            email=email,
        )
        if request.cookies.get(PRELOGIN_COOKIE) != anchor:
            response.set_cookie(
                PRELOGIN_COOKIE,
                anchor,
                max_age=3600,
                path=PREFIX,
                httponly=True,
                samesite="lax",
                secure=console.cookie_secure(request),
            )
        return response

    @router.get("/login", include_in_schema=False)
    async def login_form(request: Request, next: str = "", expired: str = "") -> Response:
        if await console.who(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return await login_page(request, next, notice="login.expired" if expired else None)

    @router.post("/login", include_in_schema=False)
    async def login(
        request: Request,
        email: Annotated[str, Form(max_length=320)] = "",
        password: Annotated[str, Form(max_length=1024)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        anchor = request.cookies.get(PRELOGIN_COOKIE)
        if not await console.keys.csrf_ok(f"pre:{anchor}" if anchor else None, csrf):
            raise BadForm
        email = email.strip().lower()
        ip = request.client.host if request.client else "unknown"
        limits = console.backend.config.staff
        # The attempt is counted before the (slow) password check, so that attempts sent in
        # parallel cannot all pass the count before any of them is written.
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            attempt = await tx.reserve_login(
                email,
                ip,
                per_account=limits.login_attempts_per_minute,
                per_address=limits.login_attempts_per_address_per_minute,
            )
            user = await tx.staff_by_email(email) if attempt is not None else None
        if attempt is None:
            log.warning("staff.login_limited")
            return await login_page(request, next, error="login.too_many", status=429, email=email)
        usable = user is not None and user.active
        ok = await verify_password(user.password_hash if usable and user else None, password)
        if not ok:
            log.info("staff.login_failed")
            return await login_page(request, next, error="login.failed", status=401, email=email)
        token = secrets.token_urlsafe(32)
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            await tx.login_succeeded(attempt)
            fresh = await tx.staff_by_email(email)
            assert fresh is not None
            await tx.open_session(fresh, token_hash(token), SESSION_LIFETIME)
            await tx.audit(f"staff:{email}", "staff.login", email)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            await console.keys.session_cookie(token),
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=console.cookie_secure(request),
        )
        response.delete_cookie(PRELOGIN_COOKIE, path=PREFIX)
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request, staff: AnyActor) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        token = await console.keys.session_token(cookie)
        async with console.db.session() as session:
            tx = ConsoleTx(session)
            if token:
                await tx.close_session(token_hash(token))
            await tx.audit(staff.actor, "staff.logout", staff.email)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get("/lang/{lang}", include_in_schema=False)
    async def language(request: Request, lang: str, next: str = "") -> Response:
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            LANG_COOKIE,
            "en" if lang == "en" else "ar",
            max_age=365 * 24 * 3600,
            path=PREFIX,
            samesite="lax",
            secure=console.cookie_secure(request),
        )
        return response

    return router

"""The HTTP application: web chat, health, and (later) webhooks and the staff console."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.webchat import ChatItem, build_router
from adapters.webchat.api import STATIC, SessionRefused, UploadRejected
from bot.channels import build_channels
from bot.ops import METRICS_CONTENT_TYPE, channel_states, readiness
from bot.security import scheduled_retention
from bot.service import Service, run_workers
from bot.webchat_sessions import NewSessions, SessionTokens, new_session_limits
from conversations.messages import Attachment, Channel, Inbound, Reply, file_kinds, identity_kind
from staff.security import Keys
from staff.web import STAFF_STATIC, build_staff_router
from storage.files import TooLarge, UnreadableImage
from storage.models import Identity
from storage.repository import Tx

log = structlog.get_logger("tawasul.http")

UPLOAD_TYPES = ("image/jpeg", "image/png", "application/pdf")
# How [server] shutdown_seconds is shared out when the server stops: the requests under way
# (uvicorn's graceful shutdown), then the workers' work in hand, then closing.
STOP_SHARES = {"requests": 0.4, "workers": 0.4, "close": 0.2}
# How long the event loop's thread may keep Python's lock once another thread asks for it
# (Python's default: 5 ms). SQLite's commits run in a thread of their own, which needs the
# lock to start a commit and again to hand its result back to the loop: on a busy server
# each commit waited up to twice the default for it, and every acknowledgement waits for a
# commit.
SWITCH_INTERVAL_SECONDS = 0.001


class BodyLimit:
    """Refuse request bodies over the limit with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        body = (
            b'{"error":"too_large","message":"request body larger than '
            + str(self.max_bytes).encode()
            + b' bytes"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class WebchatBridge:
    """The web-chat adapter's view of the service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.tokens = SessionTokens(Keys(service.config.staff.secret_key, service.db))
        per_address = service.config.webchat.new_sessions_per_address
        self.new_sessions = NewSessions(new_session_limits(per_address))

    async def new_session(self, network: str) -> str:
        if not await self.new_sessions.admit(network):
            log.warning("webchat.sessions_refused")  # not the address: it is personal data
            minutes = self.new_sessions.block_minutes
            raise SessionRefused(
                429, "too_many_sessions", self._text("", "security.sessions", minutes=minutes)
            )
        return await self.tokens.issue()

    async def known_session(self, token: str) -> bool:
        if await self.tokens.signed(token):
            return True
        # A session begun before tokens were signed goes on while the database knows it.
        async with self.service.db.session(write=False) as db:
            found = await db.scalar(
                Identity.__table__.select()
                .with_only_columns(Identity.id)
                .where(Identity.lookup(identity_kind(Channel.WEBCHAT), token))
            )
        return found is not None

    async def history(self, session: str, after: int, *, bot_only: bool) -> Sequence[ChatItem]:
        async with self.service.db.session(write=False) as db:
            identity = await db.scalar(
                Identity.__table__.select()
                .with_only_columns(Identity.beneficiary_id)
                .where(Identity.lookup(identity_kind(Channel.WEBCHAT), session))
            )
            if identity is None:
                return []
            rows = await Tx(db).messages_of(
                identity, after=after, direction="out" if bot_only else None
            )
        items = []
        for row in rows:
            if row.direction == "note" or (
                row.direction == "in"
                and not row.text
                and not (row.payload or {}).get("attachments")
            ):
                continue
            reply = Reply.from_dict(row.payload) if row.direction == "out" else Reply(row.text)
            items.append(
                ChatItem(row.id, "bot" if row.direction == "out" else "user", reply, row.created_at)
            )
        await self.service.mark_sent([i.id for i in items if i.sender == "bot"])
        return items

    async def send(self, msg: Inbound) -> Sequence[ChatItem]:
        delivered = await self.service.handle(msg)
        await self.service.mark_sent([d.message_id for d in delivered])
        return [ChatItem(d.message_id, "bot", d.reply, d.at) for d in delivered]

    async def save_upload(
        self, session: str, chunks: AsyncIterator[bytes], content_type: str, filename: str
    ) -> Attachment:
        limit = int(self.service.config.storage.max_attachment_mb * 1024 * 1024)
        try:
            attachment = await self.service.files.save(
                chunks, declared_type=content_type, filename=filename, max_bytes=limit
            )
        except TooLarge:
            raise UploadRejected(
                413,
                "too_large",
                self._text(
                    session,
                    "attachment.too_big",
                    max=f"{self.service.config.storage.max_attachment_mb:g}",
                ),
            ) from None
        except UnreadableImage:
            raise UploadRejected(
                422, "unreadable_image", self._text(session, "attachment.unreadable")
            ) from None
        if attachment.content_type not in UPLOAD_TYPES:
            self.service.files.path(attachment.ref).unlink(missing_ok=True)
            raise UploadRejected(
                415,
                "unsupported_type",
                self._text(session, "attachment.bad_type", types=file_kinds(UPLOAD_TYPES)),
            )
        return attachment

    def _text(
        self, session: str, key: str, *, minutes: int | None = None, **params: object
    ) -> dict[str, str]:
        catalog = self.service.catalog

        def said(lang: str) -> dict[str, object]:
            return (
                params if minutes is None else {**params, "minutes": catalog.minutes(lang, minutes)}
            )

        return {lang: catalog.text(lang, key, **said(lang)) for lang in ("ar", "en")}

    def page_meta(self) -> dict[str, str]:
        org = self.service.config.organization
        return {"tawasul-org-ar": org.name_ar, "tawasul-org-en": org.name_en}


async def watch_knowledge(service: Service, stop: asyncio.Event) -> None:
    """Reload the knowledge base when its file changes; a broken file leaves the old in use."""
    knowledge = service.knowledge
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), knowledge.config.reload_seconds)
        if stop.is_set() or not knowledge.changed():
            continue
        try:
            await asyncio.to_thread(knowledge.reload)
        except (OSError, ValueError) as exc:
            knowledge.loaded_signature = knowledge.signature()  # report each bad version once
            log.error("faq.reload_refused", reason=str(exc))


def create_app(service: Service, *, workers: bool = True) -> FastAPI:
    channels = build_channels(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks: list[tuple[str, asyncio.Task[None]]] = []
        if workers:
            tasks.append(
                ("workers", asyncio.create_task(run_workers(service, stop, channels.senders)))
            )
            tasks += [
                (getattr(task, "__qualname__", "channel"), asyncio.create_task(task(stop)))
                for task in channels.tasks
            ]
            tasks.append(("knowledge", asyncio.create_task(watch_knowledge(service, stop))))
            tasks.append(("retention", asyncio.create_task(scheduled_retention(service)(stop))))
        app.state.tasks = tasks
        # What is loaded by now (modules, the knowledge base and its index) lives as long as
        # the server: leaving it out of the collector's full passes keeps those short (they
        # took about 55 ms, a pause every request in flight waited for).
        gc.collect()
        gc.freeze()
        log.info("server.started", channels=["webchat", *channels.enabled])
        try:
            yield
        finally:
            gc.unfreeze()
            stop.set()
            seconds = service.config.server.shutdown_seconds
            await _finish(tasks, seconds * STOP_SHARES["workers"])
            try:
                # Closing waits for the writes in hand, which may wait for another
                # process's lock on SQLite: cut short, they roll back and are not lost.
                await asyncio.wait_for(
                    _close(channels.closers, service), max(0.5, seconds * STOP_SHARES["close"])
                )
            except TimeoutError:
                log.warning("server.close_cut_short")
            log.info("server.stopped")

    app = FastAPI(
        title="Tawasul",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _code(exc.status_code), "message": str(exc.detail)},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"error": "invalid_request", "message": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.error", path=request.url.path)
        return JSONResponse(
            {"error": "internal", "message": "internal error; nothing was lost, please try again"},
            status_code=500,
        )

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    served = (["webchat"] if service.config.webchat.enabled else []) + channels.enabled

    @app.get("/readyz", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        state = await readiness(
            service.db,
            getattr(request.app.state, "tasks", []),
            channels=channel_states(service.metrics, served),
        )
        return JSONResponse(state.as_dict(), status_code=200 if state.ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        try:
            await service.metrics.refresh(service.db)
        except Exception:  # the counters are still worth serving
            log.exception("metrics.refresh_failed")
        return Response(service.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    # The channels' webhooks first: a route is found by trying each in turn, and these are
    # the busiest (every message of WhatsApp, SMS and Telegram comes through one).
    for router in channels.routers:
        app.include_router(router)
    if service.config.webchat.enabled:
        bridge = WebchatBridge(service)
        app.include_router(build_router(bridge, cookie_secure=service.config.webchat.cookie_secure))
        app.mount("/static/webchat", StaticFiles(directory=STATIC), name="webchat-static")
    app.include_router(build_staff_router(service))
    app.mount("/staff/static", StaticFiles(directory=STAFF_STATIC), name="staff-static")

    max_bytes = int(service.config.server.max_body_mb * 1024 * 1024)
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    from bot.security import SecurityHeaders  # outermost, so refusals carry the headers too

    app.add_middleware(SecurityHeaders)
    return app


async def _close(closers: Sequence[Callable[[], Awaitable[None]]], service: Service) -> None:
    for close in closers:
        await close()
    await service.close()


async def _finish(tasks: list[tuple[str, asyncio.Task[None]]], seconds: float) -> None:
    """Let the workers finish what is in hand; cut them off at the configured time.

    A cancelled worker rolls back its transaction, so a message is either processed
    and its replies queued, or left as it was for the next start.
    """
    pending = [task for _, task in tasks]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=seconds * 0.8)
    for task in late:
        task.cancel()
    if late:
        log.warning("server.stop_cut_short", tasks=len(late))
        await asyncio.wait(late, timeout=seconds * 0.2)


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "no_session",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_type",
        422: "invalid_request",
    }.get(status, "error")

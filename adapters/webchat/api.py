"""JSON endpoints the web-chat page talks to; the session lives in an HttpOnly cookie."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Protocol

from fastapi import (
    APIRouter,
    Cookie,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from conversations.messages import Attachment, Channel, Inbound, Reply

COOKIE = "tawasul_chat"
SESSION_PATTERN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
# The page's own id for a message it sends (a UUID; a random one where the browser has no
# crypto.randomUUID), the same when it sends the message again after a failed request.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
STATIC = Path(__file__).parent / "static"
# Message ids are BIGINT: a cursor beyond is refused (422) rather than handed to the
# database driver, which fails on it. A negative one reads from the start, as it always has.
MAX_CURSOR = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ChatItem:
    id: int
    sender: Literal["bot", "user"]
    reply: Reply
    at: datetime


class UploadRejected(Exception):
    """An upload refused, with what the beneficiary reads, in each language."""

    def __init__(self, status: int, code: str, messages: dict[str, str]) -> None:
        super().__init__(messages.get("en") or next(iter(messages.values()), code))
        self.status, self.code, self.messages = status, code, messages

    def body(self) -> dict[str, object]:
        # ``message`` in every language for a plain client; the page picks its own.
        return {
            "error": self.code,
            "message": "\n".join(self.messages.values()),
            "messages": self.messages,
        }


class SessionRefused(UploadRejected):
    """No new session for this browser now (too many opened from its network)."""


class WebchatBackend(Protocol):
    async def new_session(self, network: str) -> str:
        """A session token the server issues; raise SessionRefused to open none."""
        ...

    async def known_session(self, token: str) -> bool:
        """Whether the token is a session the server issued (not one a browser made up)."""
        ...

    async def history(self, session: str, after: int, *, bot_only: bool) -> Sequence[ChatItem]: ...

    async def send(self, msg: Inbound) -> Sequence[ChatItem]:
        """The replies to the message; to one sent before (its ``channel_message_id``), the
        replies it got, without taking it again."""
        ...

    async def save_upload(
        self, session: str, chunks: AsyncIterator[bytes], content_type: str, filename: str
    ) -> Attachment:
        """Store an uploaded file; raise UploadRejected with a message for the beneficiary."""
        ...

    def page_meta(self) -> dict[str, str]: ...


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lang: Literal["ar", "en"] | None = None


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=4000)
    command: Literal["start", "menu", "cancel", "help", "lang:ar", "lang:en"] | None = None
    # Absent from pages cached before it was sent: each such request is a new message.
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)


def message_key(session: str, client_id: str | None) -> str:
    """The channel's id of a message the page sent with its own id ("" without one): the
    store refuses a second message with it, so a request sent again after its answer was
    lost is not taken twice. Scoped to the session, which is kept only as a digest: the
    session is what lets a browser into its chat, and these ids are stored in clear."""
    if not client_id:
        return ""
    digest = hashlib.sha256(session.encode("ascii")).hexdigest()[:32]
    return f"webchat:{digest}:{client_id}"


class ChoiceOut(BaseModel):
    label: str
    value: str


class AttachmentOut(BaseModel):
    url: str
    filename: str
    content_type: str


class MessageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    sender: Literal["bot", "user"] = Field(alias="from")
    text: str
    choices: list[ChoiceOut]
    ask: Literal["attachment", "phone"] | None
    attachment: AttachmentOut | None
    # The language the bot wrote it in (the page follows the conversation's language).
    lang: Literal["ar", "en"] | None = None
    at: datetime


class Messages(BaseModel):
    messages: list[MessageOut]
    cursor: int


def render(items: Sequence[ChatItem], cursor: int) -> Messages:
    out = []
    for item in items:
        att = item.reply.attachment
        out.append(
            MessageOut(
                id=item.id,
                sender=item.sender,
                text=item.reply.text,
                choices=[ChoiceOut(label=c.label, value=c.value) for c in item.reply.choices],
                ask=item.reply.ask.value if item.reply.ask else None,
                attachment=AttachmentOut(
                    url=f"/api/webchat/files/{att.ref}",
                    filename=att.filename,
                    content_type=att.content_type,
                )
                if att
                else None,
                lang=item.reply.lang if item.reply.lang in ("ar", "en") else None,
                at=item.at,
            )
        )
    newest = max([cursor, *(i.id for i in items)])
    return Messages(messages=out, cursor=newest)


def build_router(backend: WebchatBackend, *, cookie_secure: bool = False) -> APIRouter:
    router = APIRouter()

    async def known(token: str | None) -> bool:
        return bool(token and SESSION_PATTERN.match(token) and await backend.known_session(token))

    async def session_of(
        token: str | None, request: Request, response: Response
    ) -> tuple[str, bool]:
        if token and await known(token):
            return token, False
        token = await backend.new_session(request.client.host if request.client else "")
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="lax",
            # Secure over HTTPS, as the app decides HSTS: the scheme, which the server takes
            # from the trusted reverse proxy's X-Forwarded-Proto.
            secure=cookie_secure or request.url.scheme == "https",
            max_age=60 * 60 * 24 * 180,
            path="/",
        )
        return token, True

    async def existing(token: str | None) -> str:
        if not token or not await known(token):
            raise HTTPException(401, detail="no chat session; call /api/webchat/start first")
        return token

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        page = (STATIC / "index.html").read_text("utf-8")
        for key, value in backend.page_meta().items():
            # The page carries defaults; the association's own values replace them.
            tag = f'<meta name="{key}" content="'
            start = page.find(tag)
            if start >= 0:
                start += len(tag)
                end = page.index('"', start)
                page = page[:start] + html.escape(value, quote=True) + page[end:]
        return HTMLResponse(page)

    @router.post("/api/webchat/start", response_model=Messages)
    async def start(
        body: StartBody,
        request: Request,
        response: Response,
        tawasul_chat: Annotated[str | None, Cookie()] = None,
    ) -> Response | Messages:
        try:
            session, new = await session_of(tawasul_chat, request, response)
        except SessionRefused as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        items = list(await backend.history(session, 0, bot_only=False))
        if new or not items:
            await backend.send(
                Inbound(Channel.WEBCHAT, session, command="start", lang_hint=body.lang)
            )
            items = list(await backend.history(session, 0, bot_only=False))
        return render(items, 0)

    @router.post("/api/webchat/messages", response_model=Messages)
    async def send(
        body: MessageBody,
        tawasul_chat: Annotated[str | None, Cookie()] = None,
    ) -> Messages:
        session = await existing(tawasul_chat)
        if not body.text.strip() and body.command is None:
            raise HTTPException(422, detail="text or command is required")
        items = await backend.send(
            Inbound(
                Channel.WEBCHAT,
                session,
                text=body.text,
                command=body.command,
                channel_message_id=message_key(session, body.client_id),
            )
        )
        return render(items, 0)

    @router.get("/api/webchat/messages", response_model=Messages)
    async def poll(
        after: Annotated[int, Query(ge=-MAX_CURSOR, le=MAX_CURSOR)] = 0,
        tawasul_chat: Annotated[str | None, Cookie()] = None,
    ) -> Messages:
        session = await existing(tawasul_chat)
        return render(await backend.history(session, max(after, 0), bot_only=True), after)

    @router.post("/api/webchat/upload", response_model=Messages)
    async def upload(
        file: Annotated[UploadFile, File()],
        text: Annotated[str, Form(max_length=4000)] = "",
        client_id: Annotated[str | None, Form(pattern=CLIENT_ID_PATTERN)] = None,
        tawasul_chat: Annotated[str | None, Cookie()] = None,
    ) -> Response | Messages:
        session = await existing(tawasul_chat)

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await file.read(64 * 1024):
                yield chunk

        try:
            attachment = await backend.save_upload(
                session, chunks(), file.content_type or "", file.filename or "file"
            )
        except UploadRejected as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        items = await backend.send(
            Inbound(
                Channel.WEBCHAT,
                session,
                text=text,
                attachments=(attachment,),
                channel_message_id=message_key(session, client_id),
            )
        )
        return render(items, 0)

    return router

"""WhatsApp and SMS through Twilio: signed webhooks on `tawasul serve`, and the outbox senders.

A webhook stores the message (with its files) and answers at once with empty TwiML; the
inbox worker answers it and the outbox sends the replies through the REST API. Twilio's
retries carry the same MessageSid and are stored once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select

from adapters.twilio import (
    BadForm,
    FormData,
    MediaFetcher,
    MediaProblem,
    MediaRejected,
    OptChange,
    ParsedMessage,
    TwilioSender,
    TwilioSettings,
    opt_change,
    parse_status_form,
    parse_twilio_form,
    problem_of_type,
    signature_valid,
)
from bot.service import Service, inbound_payload
from conversations.messages import (
    Attachment,
    Channel,
    Inbound,
    Notice,
    file_kinds,
    identity_kind,
    notice,
)
from storage.files import TooLarge, UnreadableImage
from storage.models import Identity, Message, utcnow
from storage.repository import Tx

if TYPE_CHECKING:
    from bot.channels import ChannelRuntime

log = structlog.get_logger("tawasul.twilio")

INBOUND_PATH = "/webhooks/twilio"
STATUS_PATH = "/webhooks/twilio/status"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# What Twilio posts is a few kilobytes (an MMS with ten files and 1,600 characters of Arabic
# stays under 16 KB). A larger body is not Twilio's: it is refused before it is read in full,
# let alone parsed, whatever the server's own limit for uploads.
MAX_FORM_BYTES = 64 * 1024
MEDIA_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}
NOTICES = {
    MediaProblem.TOO_LARGE: "channel.too_large",
    MediaProblem.UNSUPPORTED: "channel.unsupported",
    MediaProblem.FAILED: "channel.file_failed",
    MediaProblem.UNREADABLE: "attachment.unreadable",
    MediaProblem.WRONG_TYPE: "attachment.bad_type",
}


def install(service: Service, runtime: ChannelRuntime) -> None:
    cfg = service.config.twilio
    if not cfg.enabled:
        return
    base = cfg.public_base_url.rstrip("/")
    if not base:
        log.warning("twilio.no_public_base_url")  # no webhook can be verified without it
    sender = TwilioSender(
        TwilioSettings(
            account_sid=cfg.account_sid,
            auth_token=cfg.auth_token,
            whatsapp_from=cfg.whatsapp_from,
            sms_from=cfg.sms_from,
            api_base_url=cfg.api_base_url,
            status_callback_url=base + STATUS_PATH if base else "",
            sms_max_parts=cfg.sms_max_parts,
            whatsapp_window=timedelta(hours=cfg.whatsapp_window_hours),
            templates=dict(cfg.templates),
        )
    )
    fetcher = MediaFetcher(
        cfg.account_sid,
        cfg.auth_token,
        max_bytes=int(service.config.storage.max_attachment_mb * 1024 * 1024),
        allowed_types=MEDIA_TYPES,
    )
    runtime.senders[Channel.WHATSAPP.value] = sender
    runtime.senders[Channel.SMS.value] = sender
    runtime.routers.append(TwilioWebhooks(service, fetcher).router())
    runtime.closers += [sender.close, fetcher.close]
    runtime.enabled += [Channel.WHATSAPP.value, Channel.SMS.value]


def twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


async def limited_body(request: Request, path: str) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``MAX_FORM_BYTES``:
    by its declared length before any of it is read, else while it streams in."""
    too_large = HTTPException(413, f"a Twilio webhook body is at most {MAX_FORM_BYTES} bytes")
    length = request.headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        raise HTTPException(400, "the Content-Length is not a number")
    if length is not None and int(length) > MAX_FORM_BYTES:
        log.warning("twilio.body_too_large", path=path)
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            log.warning("twilio.body_too_large", path=path)
            raise too_large
    return bytes(body)


class TwilioWebhooks:
    def __init__(self, service: Service, fetcher: MediaFetcher) -> None:
        self.service = service
        self.fetcher = fetcher

    def router(self) -> APIRouter:
        # Plain routes: the handlers read the request themselves, so FastAPI's per-request
        # dependency solving and response handling around them would be work for nothing.
        router = APIRouter()
        router.add_route(INBOUND_PATH, self.inbound, methods=["POST"], include_in_schema=False)
        router.add_route(STATUS_PATH, self.status, methods=["POST"], include_in_schema=False)
        return router

    async def signed_form(self, request: Request, path: str) -> FormData:
        """The form, once its X-Twilio-Signature matches the public URL Twilio called."""
        cfg = self.service.config.twilio
        signature = request.headers.get("x-twilio-signature", "")
        if not signature:
            log.warning("twilio.unsigned", path=path)
            raise HTTPException(403, "missing X-Twilio-Signature")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise HTTPException(400, "expected an application/x-www-form-urlencoded body")
        try:
            form = FormData.decode(await limited_body(request, path))
        except BadForm as exc:
            raise HTTPException(400, str(exc)) from None
        # Behind a proxy the URL Twilio signed is not the one we see: it is configured.
        base = cfg.public_base_url.rstrip("/")
        url = base + path + (f"?{request.url.query}" if request.url.query else "")
        if not base or not signature_valid(cfg.auth_token, url, form, signature):
            log.warning("twilio.bad_signature", path=path)
            raise HTTPException(403, "the X-Twilio-Signature does not match this request")
        return form

    async def inbound(self, request: Request) -> Response:
        form = await self.signed_form(request, INBOUND_PATH)
        try:
            message = parse_twilio_form(form)
        except BadForm as exc:
            raise HTTPException(400, f"not a Twilio message: {exc}") from None
        inbound = message.inbound
        log_ctx = {"channel": inbound.channel.value, "message_sid": inbound.channel_message_id}
        # A retried message is refused by the store itself (one atomic check); it is looked up
        # first only when it has files, so that they are not fetched again.
        if message.media and await self.service.received(
            inbound.channel, inbound.channel_message_id
        ):
            log.info("twilio.repeat", **log_ctx)
            return twiml()
        change = opt_change(message)
        if change is OptChange.STOP:
            await self._record(inbound, opted_out=True)
            log.info("twilio.opt_out", **log_ctx)
            return twiml()
        # What the sender is told about the message, before the answer, by the step that
        # answers it: stored with the message, so that a retried webhook changes nothing and
        # it goes out in the order of the conversation's replies.
        notices: list[Notice] = []
        if change is OptChange.START:
            if await self._opted_out(inbound):
                # Back in: told so, then greeted with the menu (or offered the form left
                # half-way), so that a number typed next picks from what is on screen.
                async with self.service.db.session() as session:
                    kind = identity_kind(inbound.channel)
                    await Tx(session).set_opt_out(kind, inbound.sender_id, False)
                notices.append(notice("channel.optin"))
                log.info("twilio.opt_in", **log_ctx)
            inbound = replace(inbound, command="start")
        problems: list[MediaProblem] = []
        if message.empty:
            notices.append(notice("channel.unsupported"))
        else:
            attachments, problems = await self._fetch(message)
            inbound = replace(inbound, attachments=tuple(attachments))
            if problems:
                notices.append(self._notice_for(problems[0]))
        inbound = replace(inbound, notices=tuple(notices))
        stored = await self.service.receive(inbound) is not None
        log.info(
            "twilio.received" if stored else "twilio.not_stored",
            files=len(inbound.attachments),
            rejected=len(problems),
            **log_ctx,
        )
        return twiml()

    async def status(self, request: Request) -> Response:
        form = await self.signed_form(request, STATUS_PATH)
        try:
            report = parse_status_form(form)
        except BadForm as exc:
            raise HTTPException(400, f"not a Twilio status callback: {exc}") from None
        known = await self.service.record_provider_status(
            report.provider_id, report.status, report.error_code
        )
        log.info(
            "twilio.status",
            message_sid=report.provider_id,
            status=report.status,
            error_code=report.error_code,
            known=known,
        )
        return Response(status_code=204)

    # -- storage -------------------------------------------------------------------------------

    async def _opted_out(self, inbound: Inbound) -> bool:
        async with self.service.db.session(write=False) as session:
            opted_out = await session.scalar(
                select(Identity.opted_out).where(
                    Identity.lookup(identity_kind(inbound.channel), inbound.sender_id)
                )
            )
        return bool(opted_out)

    async def _record(self, inbound: Inbound, *, opted_out: bool) -> None:
        """Keep a STOP in the history, with the opt-out, in one transaction; a repeat changes
        nothing. The engine does not answer it."""
        async with self.service.db.session() as session:
            tx = Tx(session)
            ingested = await tx.ingest(inbound, inbound_payload(inbound), stepped=False)
            if ingested is None:
                return
            row = await session.get(Message, ingested.message_id)
            if row is not None:
                row.processed_at = utcnow()
            await tx.set_opt_out(identity_kind(inbound.channel), inbound.sender_id, opted_out)

    # -- files ---------------------------------------------------------------------------------

    async def _fetch(self, message: ParsedMessage) -> tuple[list[Attachment], list[MediaProblem]]:
        attachments: list[Attachment] = []
        problems: list[MediaProblem] = []
        sid = message.inbound.channel_message_id
        for index, media in enumerate(message.media, start=1):
            name = f"{message.inbound.channel.value}-{sid[-8:]}-{index}"
            name += MEDIA_TYPES.get(media.content_type, "")

            async def save(chunks: AsyncIterator[bytes], declared: str, name: str = name) -> Any:
                return await self._save(chunks, declared, name)

            try:
                attachments.append(await self.fetcher.fetch(media, save))
            except MediaRejected as exc:
                problems.append(exc.problem)
                log.warning("twilio.media_rejected", message_sid=sid, problem=exc.problem.value)
        return attachments, problems

    async def _save(
        self, chunks: AsyncIterator[bytes], declared_type: str, filename: str
    ) -> Attachment:
        files = self.service.files
        try:
            attachment = await files.save(
                chunks,
                declared_type=declared_type,
                filename=filename,
                max_bytes=self.fetcher.max_bytes,
            )
        except TooLarge:
            raise MediaRejected(MediaProblem.TOO_LARGE) from None
        except UnreadableImage:
            raise MediaRejected(MediaProblem.UNREADABLE) from None
        # The bytes decide, not the declared type.
        if attachment.content_type not in MEDIA_TYPES:
            files.path(attachment.ref).unlink(missing_ok=True)
            raise MediaRejected(problem_of_type(attachment.content_type))
        return attachment

    def _notice_for(self, problem: MediaProblem) -> Notice:
        if problem is MediaProblem.TOO_LARGE:
            max_mb = f"{self.service.config.storage.max_attachment_mb:g}"
            return notice(NOTICES[problem], max=max_mb)
        if problem is MediaProblem.WRONG_TYPE:
            return notice(NOTICES[problem], types=file_kinds(MEDIA_TYPES))
        return notice(NOTICES[problem])

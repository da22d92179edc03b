"""The Telegram channel at work: long polling, one update at a time, the staff group."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog
from sqlalchemy import select

from adapters.telegram import (
    UNREADABLE,
    ApiFailed,
    FileTooLarge,
    FileUnavailable,
    IncomingFile,
    ParsedUpdate,
    TelegramApi,
    UpdateKind,
    command_menu,
)
from bot.channels.staff_alerts import Handoff, SinkFailed
from bot.ops import CONNECTED, FAILING
from bot.service import Service, transient
from conversations.forms import DEFAULT_TYPES, FieldType
from conversations.messages import Channel, Inbound, file_kinds, notice
from storage.files import UnreadableImage
from storage.models import Conversation, Identity
from storage.repository import Tx

log = structlog.get_logger("tawasul.telegram")

CURSOR = "telegram"
# An update the bot keeps failing on is set aside after this many tries, so it cannot stop the
# rest; a failure of the database or the network does not count.
MAX_UPDATE_FAILURES = 5
T = TypeVar("T")


class StaffGroupSink:
    """Queue alerts as messages in the staff's Telegram group."""

    cursor = "telegram.staff_group"
    pause = 3.0  # Telegram allows about 20 messages a minute in a group

    def __init__(self, api: TelegramApi, group: int) -> None:
        self.api = api
        self.group = group

    async def announce(self, handoff: Handoff, text: str) -> None:
        try:
            await self.api.say(self.group, text)
        except ApiFailed as exc:
            raise SinkFailed(exc.reason, exc.retry_after) from None


class TelegramChannel:
    def __init__(self, service: Service, api: TelegramApi) -> None:
        self.service = service
        self.api = api
        self._failing = Failing(0)

    # -- starting ---------------------------------------------------------------------------

    async def _start(self, stop: asyncio.Event, *, polling: bool) -> bool:
        """getMe and the command menus, retried until they work or the server stops."""
        catalog = self.service.catalog
        menus = command_menu(lambda lang, name: catalog.text(lang, f"commands.{name}"))
        attempt = 0
        while not stop.is_set():
            try:
                await self.api.start(menus, polling=polling)
            except ApiFailed as exc:
                attempt += 1
                log.warning("telegram.start_failed", reason=exc.reason, attempt=attempt)
                await _sleep(stop, exc.retry_after or _backoff(attempt))
                continue
            log.info("telegram.started", mode="polling" if polling else "webhook")
            return True
        return False

    async def publish_commands(self, stop: asyncio.Event) -> None:
        """Webhook mode: updates arrive over HTTP; this only publishes the command menus."""
        await self._start(stop, polling=False)

    # -- long polling -------------------------------------------------------------------------

    async def poll(self, stop: asyncio.Event) -> None:
        if not await self._start(stop, polling=True):
            return
        offset = (await self.service.cursor(CURSOR)).get("offset")
        attempt = 0
        while not stop.is_set():
            try:
                batch = await _unless_stopped(self.api.updates(offset), stop)
            except ApiFailed as exc:
                attempt += 1
                self.service.metrics.link("telegram", FAILING)
                log.warning("telegram.poll_failed", reason=exc.reason, attempt=attempt)
                await _sleep(stop, exc.retry_after or _backoff(attempt))
                continue
            except Exception:
                attempt += 1
                self.service.metrics.link("telegram", FAILING)
                log.exception("telegram.poll_error", attempt=attempt)
                await _sleep(stop, _backoff(attempt))
                continue
            if batch is None:
                return
            attempt = 0
            self.service.metrics.link("telegram", CONNECTED)
            start, stalled = offset, False
            for parsed in batch:
                if not await self._handle_polled(parsed):
                    stalled = True
                    break
                offset = parsed.update_id + 1
            if offset != start:
                async with self.service.db.session() as session:
                    await Tx(session).set_cursor(CURSOR, {"offset": offset})
            if stalled:
                await _sleep(stop, _backoff(self._failing.tries))

    async def _handle_polled(self, parsed: ParsedUpdate) -> bool:
        """Handle one update; False to fetch it again later (nothing is lost).

        Telegram keeps an update until the offset moves past it, so an update is only passed
        once it is stored, or set aside (``_set_aside``) when the bot itself keeps failing
        on it. A failure of the database or the network (a locked SQLite file, a PostgreSQL
        fail-over) is not the update's fault: it is retried, with backoff, as long as it lasts.
        """
        try:
            await self.handle(parsed)
        except Exception as error:
            if not self._counts_against(parsed.update_id, error):
                return False
            try:
                await self._set_aside(parsed, error)
            except Exception as failure:
                if transient(failure):
                    log.warning("telegram.set_aside_failed", update_id=parsed.update_id)
                    return False
                # Nothing of it could be stored: staff are told by the log and the counter.
                log.exception("telegram.update_dropped", update_id=parsed.update_id)
                self.service.metrics.set_aside.inc()
        return True

    def _counts_against(self, update_id: int, error: Exception) -> bool:
        """Count a failure on the update; whether it is time to set it aside."""
        failing = self._failing
        if failing.update_id != update_id:
            failing = self._failing = Failing(update_id)
        failing.tries += 1
        if transient(error):
            log.warning(
                "telegram.update_waits",
                update_id=update_id,
                attempt=failing.tries,
                error=type(error).__name__,
            )
            return False
        failing.faults += 1
        log.exception("telegram.update_failed", update_id=update_id, attempt=failing.faults)
        return failing.faults >= MAX_UPDATE_FAILURES

    async def _set_aside(self, parsed: ParsedUpdate, error: Exception) -> None:
        """An update the bot keeps failing on: its message is stored without its files (what
        failed may be in them) and its conversation handed to staff, as the inbox does with
        a message whose step keeps failing; the beneficiary is told a person will answer."""
        inbound = parsed.inbound
        message_id = None
        if parsed.kind is not UpdateKind.IGNORED and inbound is not None:
            message_id = await self.service.receive(replace(inbound, attachments=()))
        if message_id is not None:
            await self.service.set_aside(message_id, error)
        log.error("telegram.update_set_aside", update_id=parsed.update_id, message_id=message_id)

    # -- one update ---------------------------------------------------------------------------

    async def handle(self, parsed: ParsedUpdate) -> None:
        inbound = parsed.inbound
        if parsed.kind is UpdateKind.IGNORED or inbound is None:
            # An update that could not be read at all is passed so that the others are not
            # held behind it; the operator should know of it.
            level = log.warning if parsed.reason == UNREADABLE else log.debug
            level("telegram.ignored", update_id=parsed.update_id, reason=parsed.reason)
        elif await self.service.received(Channel.TELEGRAM, inbound.channel_message_id):
            log.info("telegram.duplicate", update_id=parsed.update_id)
        elif parsed.kind is UpdateKind.UNSUPPORTED:
            log.info("telegram.unsupported", update_id=parsed.update_id, kind=parsed.reason)
            await self._notice(parsed, "channel.unsupported")
        elif parsed.kind is UpdateKind.FILE and parsed.file is not None:
            await self._file(parsed, parsed.file)
        else:
            await self.service.receive(await self._resolve_language(inbound))
        if parsed.callback_query_id:
            await self.api.answer_callback(parsed.callback_query_id)
        if parsed.keyboard_chat_id is not None and parsed.keyboard_message_id is not None:
            await self.api.remove_buttons(parsed.keyboard_chat_id, parsed.keyboard_message_id)

    async def _file(self, parsed: ParsedUpdate, file: IncomingFile) -> None:
        assert parsed.inbound is not None
        state = await self._state(parsed.inbound.sender_id)
        allowed, max_bytes = self._attachment_rules(state)
        max_mb = f"{max_bytes / (1024 * 1024):g}"
        types = file_kinds(allowed)
        declared = file.content_type or "application/octet-stream"
        # Some apps declare every file as octet-stream: those are judged by their bytes.
        if declared != "application/octet-stream" and declared not in allowed:
            await self._notice(parsed, "attachment.bad_type", types=types)
            return
        if file.size is not None and file.size > max_bytes:
            await self._notice(parsed, "channel.too_large", max=max_mb)
            return
        try:
            data = await self.api.fetch_file(file.file_id, max_bytes=max_bytes)
        except FileTooLarge:
            await self._notice(parsed, "channel.too_large", max=max_mb)
            return
        except FileUnavailable as exc:
            log.warning("telegram.file_failed", update_id=parsed.update_id, reason=str(exc))
            await self._notice(parsed, "channel.file_failed")
            return
        files = self.service.files
        try:
            attachment = await files.save_bytes(
                data, declared_type=declared, filename=file.filename, max_bytes=max_bytes
            )
        except UnreadableImage:
            await self._notice(parsed, "attachment.unreadable")
            return
        if attachment.content_type not in allowed:
            files.path(attachment.ref).unlink(missing_ok=True)
            await self._notice(parsed, "attachment.bad_type", types=types)
            return
        inbound = replace(parsed.inbound, attachments=(attachment,))
        if await self.service.receive(inbound) is None:
            files.path(attachment.ref).unlink(missing_ok=True)  # the same update, twice at once
        log.info("telegram.file_received", update_id=parsed.update_id, size=attachment.size)

    def _attachment_rules(self, state: dict[str, Any]) -> tuple[tuple[str, ...], int]:
        """The current form step's rules when it asks for files, else the widest ones."""
        overall = int(self.service.config.storage.max_attachment_mb * 1024 * 1024)
        forms = self.service.knowledge.forms
        draft = state.get("draft") or {}
        form = forms.get(str(draft.get("form_id")))
        if form is not None and draft.get("current"):
            with suppress(KeyError):
                field = form.field(str(draft["current"]))
                if field.type is FieldType.ATTACHMENT:
                    return field.allowed_types, min(field.max_size_bytes, overall)
        allowed = {
            t
            for f in forms.values()
            for field in f.fields
            if field.type is FieldType.ATTACHMENT
            for t in field.allowed_types
        }
        return tuple(sorted(allowed or DEFAULT_TYPES)), overall

    async def _resolve_language(self, inbound: Inbound) -> Inbound:
        """A bare /lang switches to the other language."""
        if inbound.command != "lang":
            return inbound
        current = (await self._state(inbound.sender_id)).get("lang")
        return replace(inbound, command="lang:ar" if current == "en" else "lang:en")

    async def _state(self, sender_id: str) -> dict[str, Any]:
        """The conversation state of this chat's beneficiary (empty for a newcomer)."""
        async with self.service.db.session(write=False) as session:
            beneficiary = await session.scalar(
                select(Identity.beneficiary_id).where(
                    Identity.lookup(Channel.TELEGRAM.value, sender_id)
                )
            )
            if beneficiary is None:
                return {}
            state = await session.scalar(
                select(Conversation.state)
                .where(Conversation.beneficiary_id == beneficiary)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
        return dict(state or {})

    async def _notice(self, parsed: ParsedUpdate, key: str, **params: object) -> None:
        """Keep the message in the history with what the sender is told about it (a file not
        kept, a kind of message the bot cannot read): the step that answers it tells them, in
        the conversation's order, and asks again the question waiting, if one does."""
        assert parsed.inbound is not None
        await self.service.receive(replace(parsed.inbound, notices=(notice(key, **params),)))


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Failing:
    """The update long polling is stuck on."""

    update_id: int
    tries: int = 0  # every failure: the wait before the next try grows with them
    faults: int = 0  # the bot's own, not the database's or the network's


def _backoff(attempt: int) -> float:
    return float(min(60, 2 ** max(attempt - 1, 0)))


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of ``work``, or None when ``stop`` is set first (the work is cancelled)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopper.cancel()
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task
    return None

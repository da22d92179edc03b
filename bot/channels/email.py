"""The email channel wired to the service: the mailbox reader stores each mail, the outbox
sends the answers over SMTP in the beneficiary's thread.

What is stored: mail from people. Auto-replies (out-of-office), mailing lists and bounces
are not beneficiary messages: they get no answer and are not stored; they stay in the
mailbox, marked read, for anyone who wants to look. A bounce marks the address it names
unreachable and the reply it returns as failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select

from adapters.email.imap import Cursor, ImapSettings, Mail, MailboxReader, Outcome
from adapters.email.parse import MailKind, MalformedEmail, ParsedEmail, parse_email
from adapters.email.render import FilePart, Letterhead, render_reply, reply_subject
from adapters.email.smtp import SmtpSender
from bot.channels.staff_mail import bot_address, smtp_settings
from bot.config import Config, ConfigError
from bot.ops import linked
from bot.security import admit
from bot.service import Service, inbound_payload, transient
from conversations.delivery import Delivery
from conversations.messages import Attachment, Channel, Inbound, Notice, file_kinds, notice
from storage.files import TooLarge, UnreadableImage, safe_filename, sniff
from storage.locks import singleton_task
from storage.models import Identity
from storage.repository import Tx
from storage.threads import load_subject, save_subject
from storage.threads import subject_key as subject_key  # where a thread's subject is kept

if TYPE_CHECKING:
    from bot.channels import ChannelRuntime

log = structlog.get_logger("tawasul.email")

MB = 1024 * 1024
# What the other channels keep (web chat, WhatsApp, SMS), judged by the bytes: a script, an
# HTML page or a program attached to a mail is never kept, whatever its name or type says.
KEPT_TYPES = ("image/jpeg", "image/png", "application/pdf")
# Tries of a mail that fails on its own before it is left unread for a person.
MAIL_ATTEMPTS = 3
# The refused files a notice names; more are summed up as "…".
NAMED_REFUSALS = 10


@dataclass(slots=True)
class SavedFiles:
    """The files of one mail: those kept, and how many of the others were refused, why."""

    kept: list[Attachment] = field(default_factory=list)
    too_large: int = 0
    unreadable: int = 0
    wrong_type: list[str] = field(default_factory=list)  # their names, as the sender sees them

    @property
    def refused(self) -> int:
        return self.too_large + self.unreadable + len(self.wrong_type)


def config_problems(config: Config) -> list[str]:
    """Settings the channel cannot start with (none when email is off); `tawasul config
    check` and `tawasul serve` say them before anything starts."""
    cfg = config.email
    if cfg.enabled and "@" not in bot_address(cfg):
        return [
            "email.address: the bot's email address is needed (name@domain) once "
            "email.imap_host is set; set it (TAWASUL_EMAIL_ADDRESS), or leave imap_host empty "
            "to keep email off"
        ]
    return []


class EmailChannel:
    def __init__(self, service: Service) -> None:
        cfg = service.config.email
        self.service = service
        self.address = bot_address(cfg)
        problems = config_problems(service.config)
        if problems:
            raise ConfigError("\n".join(problems))
        self.domain = self.address.rsplit("@", 1)[1]
        self.max_bytes = int(service.config.storage.max_attachment_mb * MB)
        self.cursor_name = f"email:{self.address}:{cfg.imap_folder}"
        login = cfg.username or self.address
        self.reader = MailboxReader(
            ImapSettings(
                host=cfg.imap_host,
                port=cfg.imap_port,
                security=cfg.imap_security,
                username=login,
                password=cfg.password,
                folder=cfg.imap_folder,
                processed_folder=cfg.processed_folder,
                poll_seconds=cfg.poll_seconds,
                # Room for a few files at the size limit, base64-encoded.
                max_fetch_bytes=int(self.max_bytes * 2.75) + MB,
            ),
            self.on_mail,
            self.load_cursor,
            self.save_cursor,
        )
        self.sender = SmtpSender(smtp_settings(cfg), self.compose)
        self._failures: dict[int, int] = {}  # mail that failed on its own, by UID

    # -- reading --------------------------------------------------------------------------------

    async def load_cursor(self) -> Cursor | None:
        value = await self.service.cursor(self.cursor_name)
        if not value:
            return None
        return Cursor(int(value["uidvalidity"]), int(value["last_uid"]))

    async def save_cursor(self, cursor: Cursor) -> None:
        async with self.service.db.session() as session:
            await Tx(session).set_cursor(
                self.cursor_name, {"uidvalidity": cursor.uidvalidity, "last_uid": cursor.last_uid}
            )

    async def on_mail(self, mail: Mail) -> Outcome:
        """Store one mail; returns once it is safely in the database (or deliberately not).

        A mail that fails for a reason of its own (not the database's nor the network's, which
        are waited out) is tried ``MAIL_ATTEMPTS`` times, then left unread in the mailbox for a
        person to look at: the reader takes mail in order, and every mail behind it waited."""
        try:
            outcome = await self._take(mail)
        except Exception as error:
            if transient(error):
                raise
            failures = self._failures.pop(mail.uid, 0) + 1
            if failures < MAIL_ATTEMPTS:
                self._failures[mail.uid] = failures
                raise
            log.exception("email.set_aside", uid=mail.uid, attempts=failures)
            return Outcome.KEEP
        self._failures.pop(mail.uid, None)
        return outcome

    async def _take(self, mail: Mail) -> Outcome:
        try:
            parsed = await asyncio.to_thread(parse_email, mail.raw)
        except MalformedEmail:
            log.error("email.unreadable", uid=mail.uid, size=mail.size)
            return Outcome.KEEP
        if parsed.problems:
            log.warning("email.damaged", uid=mail.uid, problems=list(parsed.problems))
        if parsed.sender == self.address:
            return Outcome.DONE  # our own mail come back (a copy, a loop): never answered
        if parsed.kind is MailKind.BOUNCE:
            await self._bounced(parsed)
            return Outcome.DONE
        if parsed.kind is not MailKind.PERSONAL:
            log.info("email.not_answered", uid=mail.uid, kind=parsed.kind.value)
            return Outcome.DONE
        if await self.service.received(Channel.EMAIL, parsed.message_id):
            return Outcome.DONE
        if not await self._admitted(parsed):
            log.warning("email.flood", uid=mail.uid)
            return Outcome.DONE
        files = await self._save_files(parsed)
        attachments = files.kept
        notices: list[Notice] = []
        if files.wrong_type:
            names = files.wrong_type[:NAMED_REFUSALS]
            if len(files.wrong_type) > NAMED_REFUSALS:
                names.append("…")
            listed = "\n".join(f"- {name}" for name in names)
            notices.append(notice("email.not_kept", files=listed, types=file_kinds(KEPT_TYPES)))
        if files.unreadable:
            notices.append(notice("attachment.unreadable"))
        if files.too_large or mail.truncated:
            max_mb = f"{self.service.config.storage.max_attachment_mb:g}"
            notices.append(notice("channel.too_large", max=max_mb))
        if parsed.damaged_files:
            notices.append(notice("channel.file_failed"))
        text = parsed.text
        if not text and not parsed.is_reply:
            text = parsed.subject  # a question written only in the subject line
        inbound = Inbound(
            channel=Channel.EMAIL,
            sender_id=parsed.sender,
            text=text,
            attachments=tuple(attachments),
            channel_message_id=parsed.message_id,
            received_at=datetime.now(UTC),
            thread_id=parsed.thread_id,
            reply_to=parsed.in_reply_to,
            display_name=parsed.display_name,
            # Told by the step that answers the mail, before its answer and in the
            # conversation's order.
            notices=tuple(notices),
        )
        stored = await self._store(inbound, parsed.subject)
        if stored is None:  # stored already (another reader, a moment ago): not this copy
            for attachment in attachments:
                self.service.files.path(attachment.ref).unlink(missing_ok=True)
        log.info(
            "email.received",
            uid=mail.uid,
            message_id=stored,
            files=len(attachments),
            refused_files=files.refused,
            wrong_type=len(files.wrong_type),
        )
        return Outcome.DONE

    async def _admitted(self, parsed: ParsedEmail) -> bool:
        """The [flood] limits, as on the other channels: a sender (a script, a loop with a
        mailer that does not say it is automatic) writing too much is told once, then its
        mail is not stored for a while; it stays in the mailbox, marked read."""
        sender = Inbound(Channel.EMAIL, parsed.sender, channel_message_id=parsed.message_id)
        return await admit(self.service, sender, wait=False)

    async def _save_files(self, parsed: ParsedEmail) -> SavedFiles:
        """Keep the files of the types the other channels keep, as their bytes show; the
        others are never written to disk."""
        files = SavedFiles()
        store = self.service.files
        for part in parsed.files:
            if sniff(part.data[:16], part.content_type) not in KEPT_TYPES:
                files.wrong_type.append(safe_filename(part.filename))
                continue
            try:
                attachment = await store.save_bytes(
                    part.data,
                    declared_type=part.content_type,
                    filename=part.filename,
                    max_bytes=self.max_bytes,
                )
            except TooLarge:
                files.too_large += 1
                continue
            except UnreadableImage:
                files.unreadable += 1
                continue
            if attachment.content_type not in KEPT_TYPES:  # the store judged otherwise
                store.path(attachment.ref).unlink(missing_ok=True)
                files.wrong_type.append(attachment.filename)
                continue
            files.kept.append(attachment)
        return files

    async def _store(self, inbound: Inbound, subject: str) -> int | None:
        """The message and its thread's subject, in one transaction."""
        async with self.service.db.session() as session:
            tx = Tx(session)
            ingested = await tx.ingest(inbound, inbound_payload(inbound))
            if ingested is None:
                return None
            if inbound.thread_id:
                await save_subject(session, inbound.thread_id, subject)
            identity = await tx.identity("email", inbound.sender_id)
            identity.unreachable = False  # they just wrote from it
        self.service.inbox_wakeup.set()
        return ingested.message_id

    async def _bounced(self, parsed: ParsedEmail) -> None:
        bounce = parsed.bounce
        if bounce is None:
            return
        marked = 0
        async with self.service.db.session() as session:
            for address in bounce.failed_recipients:
                identity = await session.scalar(
                    select(Identity).where(Identity.lookup("email", address))
                )
                if identity is not None:
                    identity.unreachable = True
                    marked += 1
            if bounce.original_message_id:
                await Tx(session).record_provider_status(
                    bounce.original_message_id, "failed", bounce.status
                )
        log.info("email.bounce", recipients=len(bounce.failed_recipients), marked=marked)

    # -- sending --------------------------------------------------------------------------------

    async def compose(self, delivery: Delivery) -> EmailMessage:
        lang = "en" if delivery.lang == "en" else "ar"
        catalog = self.service.catalog
        org = self.service.config.organization
        original = None
        if delivery.thread_id:
            async with self.service.db.session(write=False) as session:
                original = await load_subject(session, delivery.thread_id)
        head = Letterhead(
            address=self.address,
            name=org.name_ar if lang == "ar" else org.name_en,
            domain=self.domain,
            footer=catalog.text(lang, "channel.email_footer"),
            choose_hint=catalog.text(lang, "email.choose"),
            attach_hint=catalog.text(lang, "email.attach"),
            default_subject=catalog.text(lang, "channel.email_subject"),
        )
        files: list[FilePart] = []
        attachment = delivery.reply.attachment
        if attachment is not None:
            path = self.service.files.path(attachment.ref)
            data = await asyncio.to_thread(path.read_bytes)
            files.append(FilePart(attachment.filename or path.name, attachment.content_type, data))
        return render_reply(
            delivery, head, subject=reply_subject(original, head.default_subject), files=files
        )


def install(service: Service, runtime: ChannelRuntime) -> None:
    cfg = service.config.email
    if not cfg.enabled:
        return
    channel = EmailChannel(service)
    # Several instances may share the database; only one reads the mailbox at a time, and
    # another takes over within seconds of it stopping.
    link = service.metrics.link("email")
    link.failing = lambda: channel.reader.failures > 0
    runtime.tasks.append(
        singleton_task(service.db, channel.cursor_name, linked(link, channel.reader.run))
    )
    if cfg.smtp_host:
        runtime.senders[Channel.EMAIL.value] = channel.sender
    runtime.enabled.append("email")

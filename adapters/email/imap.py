"""Reading the association's mailbox: every new mail handed over once, in order.

Progress is the mailbox's UIDVALIDITY and the last UID handed over, kept by the caller
(``load_cursor``/``save_cursor``), so a restart neither reads a mail twice nor skips one.
A mail is flagged ``\\Seen`` (or moved to the processed folder) only after ``on_mail`` has
returned, that is after the caller stored it. IDLE where the server offers it, polling
otherwise; after any network error the reader reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from enum import StrEnum

import structlog

from adapters.email.wire import ImapConnection, ImapError, Security

log = structlog.get_logger("tawasul.email")

# Servers end IDLE after 30 minutes and NATs forget quiet connections sooner; renewing
# IDLE every few minutes also finds a dead connection.
IDLE_RENEW_SECONDS = 240.0
# When a mail is bigger than the limit, only this much of its first part is read.
TRUNCATED_PART_BYTES = 256 * 1024


class LoginRefused(ImapError):
    """The server refused the user name or the password."""


def what_to_check(exc: BaseException) -> str:
    """For the operator reading the log: which setting a connection error points at."""
    if isinstance(exc, LoginRefused):
        return "the user name and password (Gmail and Workspace want an app password)"
    if isinstance(exc, ssl.SSLError):
        return "the security setting against the port (993: ssl, 143: starttls) and the certificate"
    if isinstance(exc, socket.gaierror):
        return "the IMAP host name"
    if isinstance(exc, ConnectionRefusedError):
        return "the IMAP host and port"
    if isinstance(exc, TimeoutError):
        return "the IMAP host and port, and any firewall on the way"
    if isinstance(exc, ImapError):
        return "the folder names, and the server's answer in reason"
    return "the network"


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str
    port: int
    security: Security
    username: str
    password: str
    folder: str = "INBOX"
    processed_folder: str = ""
    poll_seconds: float = 60.0
    timeout: float = 60.0
    # Mails larger than this are not downloaded whole: their headers and the start of
    # their text are, and ``Mail.truncated`` is set.
    max_fetch_bytes: int = 40 * 1024 * 1024
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    idle_renew_seconds: float = IDLE_RENEW_SECONDS
    tls_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class Mail:
    uid: int
    raw: bytes
    size: int
    truncated: bool = False


class Outcome(StrEnum):
    DONE = "done"  # stored (or deliberately not): flag it \Seen or move it
    KEEP = "keep"  # leave it unread in the mailbox for a person to look at


OnMail = Callable[[Mail], Awaitable[Outcome]]
LoadCursor = Callable[[], Awaitable[Cursor | None]]
SaveCursor = Callable[[Cursor], Awaitable[None]]


class MailboxReader:
    def __init__(
        self,
        settings: ImapSettings,
        on_mail: OnMail,
        load_cursor: LoadCursor,
        save_cursor: SaveCursor,
    ) -> None:
        self.settings = settings
        self.on_mail = on_mail
        self.load_cursor = load_cursor
        self.save_cursor = save_cursor
        self.failures = 0
        # Set each time the reader has caught up with the mailbox (tests and health checks).
        self.caught_up = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set; never gives up on errors, waits longer instead."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except (OSError, TimeoutError, ImapError, ssl.SSLError) as exc:
                cfg = self.settings
                log.warning(
                    "email.imap_error",
                    host=cfg.host,
                    port=cfg.port,
                    error=type(exc).__name__,
                    reason=str(exc)[:200],
                    check=what_to_check(exc),
                    failures=self.failures,
                )
            except Exception:
                log.exception("email.reader_error", failures=self.failures)
            if stop.is_set():
                return
            self.failures += 1
            await _sleep(stop, self.backoff(self.failures))

    def backoff(self, failures: int) -> float:
        cfg = self.settings
        delay = min(cfg.backoff_max, cfg.backoff_base * 2.0 ** max(failures - 1, 0))
        return delay * random.uniform(0.5, 1.0)

    async def _session(self, stop: asyncio.Event) -> None:
        cfg = self.settings
        conn = await ImapConnection.open(
            cfg.host, cfg.port, cfg.security, patience=cfg.timeout, tls_context=cfg.tls_context
        )
        try:
            try:
                await conn.login(cfg.username, cfg.password)
            except ImapError as exc:
                raise LoginRefused(str(exc)) from None
            box = await conn.select(cfg.folder)
            if cfg.processed_folder:
                await conn.create(cfg.processed_folder)
            self.failures = 0
            log.info("email.connected", idle="IDLE" in conn.capabilities, messages=box.exists)
            cursor = await self.load_cursor()
            if cursor is None or cursor.uidvalidity != box.uidvalidity:
                cursor = await self._first_pass(conn, box.uidvalidity, box.uidnext, stop)
            while not stop.is_set():
                # A NOOP lets the server show mail that arrived since the last command.
                conn.mail_announced = False
                await conn.noop()
                cursor = await self._catch_up(conn, cursor, stop)
                if stop.is_set():
                    break
                if conn.mail_announced:
                    continue  # mail came in while we were busy: IDLE would not repeat it
                self.caught_up.set()
                if "IDLE" in conn.capabilities:
                    await conn.idle(stop, cfg.idle_renew_seconds)
                else:
                    await _sleep(stop, cfg.poll_seconds)
                self.caught_up.clear()
        finally:
            if stop.is_set():
                await conn.close()
            else:
                conn.abort()

    async def _first_pass(
        self, conn: ImapConnection, uidvalidity: int, uidnext: int, stop: asyncio.Event
    ) -> Cursor:
        """A mailbox never read (or recreated, new UIDVALIDITY): its unread mail is new.

        Mail already read by a person is left alone; anything handed over before under the
        old UIDVALIDITY is recognised by its Message-ID downstream.
        """
        highest = uidnext - 1
        if highest < 0:  # a server that does not report UIDNEXT
            highest = max(await conn.uid_search("ALL"), default=0)
        for uid in await conn.uid_search("UNSEEN"):
            if stop.is_set():
                break
            await self._hand_over(conn, uid)
            highest = max(highest, uid)
        cursor = Cursor(uidvalidity, highest)
        if not stop.is_set():
            await self.save_cursor(cursor)
        return cursor

    async def _catch_up(self, conn: ImapConnection, cursor: Cursor, stop: asyncio.Event) -> Cursor:
        uids = await conn.uid_search(f"UID {cursor.last_uid + 1}:*")
        for uid in uids:
            # "n:*" always matches the last message, even below n.
            if uid <= cursor.last_uid or stop.is_set():
                continue
            await self._hand_over(conn, uid)
            cursor = Cursor(cursor.uidvalidity, uid)
            await self.save_cursor(cursor)
        return cursor

    async def _hand_over(self, conn: ImapConnection, uid: int) -> None:
        mail = await self._fetch(conn, uid)
        if mail is None:
            return  # expunged by someone else meanwhile
        outcome = await self.on_mail(mail)
        if outcome is Outcome.KEEP:
            return
        if self.settings.processed_folder:
            await conn.uid_move(uid, self.settings.processed_folder)
        else:
            await conn.uid_store_flags(uid, "\\Seen")

    async def _fetch(self, conn: ImapConnection, uid: int) -> Mail | None:
        head = await conn.uid_fetch(uid, "UID RFC822.SIZE")
        if head is None:
            return None
        if head.size <= self.settings.max_fetch_bytes:
            whole = await conn.uid_fetch(uid, "UID BODY.PEEK[]")
            if whole is None:
                return None
            return Mail(uid, whole.sections.get("BODY[]", b""), head.size)
        return await self._fetch_start(conn, uid, head.size)

    async def _fetch_start(self, conn: ImapConnection, uid: int, size: int) -> Mail | None:
        """The headers and the beginning of the first part of a mail too big to download:
        enough to answer its sender (and tell them why their files did not come through)."""
        header = await conn.uid_fetch(uid, "UID BODY.PEEK[HEADER]")
        if header is None:
            return None
        head = header.sections.get("BODY[HEADER]", b"")
        parsed = BytesHeaderParser().parsebytes(head)
        limit = TRUNCATED_PART_BYTES
        if parsed.get_content_maintype() != "multipart":
            text = await conn.uid_fetch(uid, f"UID BODY.PEEK[TEXT]<0.{limit}>")
            body = text.sections.get("BODY[TEXT]", b"") if text else b""
            return Mail(uid, head + body, size, truncated=True)
        first = await conn.uid_fetch(uid, f"UID BODY.PEEK[1.MIME] BODY.PEEK[1]<0.{limit}>")
        sections = first.sections if first else {}
        boundary = b"tawasul-cut-" + str(uid).encode()
        kept = _unfolded_without(head, b"content-type")
        top = kept + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
        raw = (
            top
            + b"--"
            + boundary
            + b"\r\n"
            + sections.get("BODY[1.MIME]", b"\r\n")
            + sections.get("BODY[1]", b"")
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
        return Mail(uid, raw, size, truncated=True)


def _unfolded_without(head: bytes, name: bytes) -> bytes:
    """The header block without the named header (and its folded continuation lines)."""
    out: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        skipping = line.split(b":", 1)[0].strip().lower() == name
        if not skipping:
            out.append(line)
    return b"\r\n".join(out) + b"\r\n"


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

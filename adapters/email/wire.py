"""The few IMAP4rev1 commands the mailbox reader needs (RFC 3501, IDLE from RFC 2177,
MOVE from RFC 6851), over asyncio streams.

Written here rather than taken from an IMAP library: the asyncio one on PyPI is GPL, and
the reader needs little: log in, select, search by UID, fetch, flag or move, and wait.

Exceptions:
ImapError            the server answered NO or BAD (the connection is still usable)
ConnectionError      the connection is gone (``ImapClosed``) or could not be made
TimeoutError         the server did not answer in time; the connection is dropped
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from dataclasses import dataclass
from typing import Literal

Security = Literal["none", "starttls", "tls"]

LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
UNTAGGED_STATUS = re.compile(rb"^\* (OK|NO|BAD|BYE|PREAUTH)\b")
CODE = re.compile(rb"\[([A-Z-]+)(?: ([^\]]*))?\]")
NUMBER_RESPONSE = re.compile(rb"^\* (\d+) (EXISTS|RECENT|EXPUNGE|FETCH)\b")
LINE_LIMIT = 1 << 20


class ImapError(Exception):
    """The server refused a command (NO or BAD)."""


class ImapClosed(ConnectionError):
    """The server closed the connection (or said BYE)."""


@dataclass(frozen=True, slots=True)
class Response:
    """One server response: its text (literals left out) and the literals in order."""

    text: bytes
    literals: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Selected:
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    size: int
    sections: dict[str, bytes]


def quote(value: str) -> str | bytes:
    """An IMAP string: quoted when it can be, else the raw bytes for a literal."""
    if value.isascii() and value.isprintable():
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value.encode("utf-8")


def encode_mailbox(name: str) -> str:
    """Mailbox names in modified UTF-7 (RFC 3501 5.1.3), so Arabic folder names work."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


class ImapConnection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        # Set when the server announced new mail (EXISTS) in answer to any command: the
        # announcement is not repeated, so the reader must look again before it idles.
        self.mail_announced = False
        self.exists = 0
        self._tag = 0

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        security: Security,
        *,
        patience: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> ImapConnection:
        """Connect and read the greeting; ``patience`` bounds every wait for the server."""
        context = tls_context or ssl.create_default_context()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context if security == "tls" else None,
                server_hostname=host if security == "tls" else None,
                limit=LINE_LIMIT,
            ),
            patience,
        )
        conn = cls(reader, writer, patience)
        try:
            greeting = await conn._read()
            if greeting.text.startswith(b"* BYE"):
                raise ImapClosed("the server refused the connection")
            conn._note_capabilities(greeting.text)
            if security == "starttls":
                await conn.command("STARTTLS")
                await asyncio.wait_for(writer.start_tls(context, server_hostname=host), patience)
                conn.capabilities = frozenset()
            if not conn.capabilities:
                await conn.refresh_capabilities()
        except BaseException:
            conn.abort()
            raise
        return conn

    def abort(self) -> None:
        self._writer.close()

    async def close(self) -> None:
        """Log out politely; the connection is closed whatever the server says."""
        try:
            await self.command("LOGOUT")
        except (ImapError, ConnectionError, TimeoutError, ssl.SSLError):
            pass
        finally:
            self._writer.close()

    # -- the commands -----------------------------------------------------------------------

    async def login(self, user: str, password: str) -> None:
        _, done = await self.command("LOGIN", quote(user), quote(password))
        if not self._note_capabilities(done.text):
            await self.refresh_capabilities()

    async def refresh_capabilities(self) -> None:
        untagged, _ = await self.command("CAPABILITY")
        for response in untagged:
            if response.text.startswith(b"* CAPABILITY "):
                words = response.text[len(b"* CAPABILITY ") :].decode("ascii", "replace")
                self.capabilities = frozenset(w.upper() for w in words.split())

    async def select(self, mailbox: str) -> Selected:
        untagged, _ = await self.command("SELECT", quote(encode_mailbox(mailbox)))
        uidvalidity = uidnext = exists = 0
        for response in untagged:
            for name, value in CODE.findall(response.text):
                if name == b"UIDVALIDITY":
                    uidvalidity = int(value)
                elif name == b"UIDNEXT":
                    uidnext = int(value)
            found = NUMBER_RESPONSE.match(response.text)
            if found and found.group(2) == b"EXISTS":
                exists = int(found.group(1))
        self.exists = exists
        return Selected(uidvalidity, uidnext, exists)

    async def create(self, mailbox: str) -> None:
        """Create a folder; one that already exists is fine."""
        try:
            await self.command("CREATE", quote(encode_mailbox(mailbox)))
        except ImapError as exc:
            if "ALREADYEXISTS" not in str(exc).upper() and "EXISTS" not in str(exc).upper():
                raise

    async def noop(self) -> None:
        await self.command("NOOP")

    async def uid_search(self, criteria: str) -> list[int]:
        untagged, _ = await self.command(f"UID SEARCH {criteria}")
        uids: list[int] = []
        for response in untagged:
            if response.text.startswith(b"* SEARCH"):
                uids += [int(x) for x in response.text[len(b"* SEARCH") :].split()]
        return sorted(set(uids))

    async def uid_fetch(self, uid: int, items: str) -> Fetched | None:
        """One message's items; None when it is gone (expunged meanwhile)."""
        untagged, _ = await self.command(f"UID FETCH {uid} ({items})")
        for response in untagged:
            if not re.match(rb"^\* \d+ FETCH ", response.text):
                continue
            found_uid = re.search(rb"\bUID (\d+)", response.text)
            if found_uid is None or int(found_uid.group(1)) != uid:
                continue  # an unsolicited flag update for another message
            size = re.search(rb"\bRFC822\.SIZE (\d+)", response.text)
            return Fetched(uid, int(size.group(1)) if size else 0, _sections(response))
        return None

    async def uid_store_flags(self, uid: int, flags: str) -> None:
        await self.command(f"UID STORE {uid} +FLAGS.SILENT ({flags})")

    async def uid_move(self, uid: int, mailbox: str) -> None:
        target = quote(encode_mailbox(mailbox))
        if "MOVE" in self.capabilities:
            await self.command(f"UID MOVE {uid}", target)
            return
        await self.command(f"UID COPY {uid}", target)
        await self.uid_store_flags(uid, "\\Seen \\Deleted")
        if "UIDPLUS" in self.capabilities:
            await self.command(f"UID EXPUNGE {uid}")
        # Without UIDPLUS the message stays, read and flagged \Deleted, for the next EXPUNGE
        # by a mail program; a bare EXPUNGE here could remove what someone else flagged.

    async def idle(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait for the server to announce new mail; True if it did.

        Returns when mail arrives, when ``stop`` is set or after ``seconds``
        (servers drop idle connections after about 30 minutes; NATs sooner).
        """
        tag = self._next_tag()
        await self._send(f"{tag} IDLE".encode())
        arrived = False
        while True:
            response = await self._read()
            if response.text.startswith(b"+"):
                break
            if response.text.startswith(tag.encode() + b" "):
                raise ImapError(response.text.decode("utf-8", "replace"))
            arrived = self._track(response.text) or arrived
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        pending: asyncio.Task[Response] | None = None
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not arrived and not stop.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                pending = pending or asyncio.ensure_future(self._read(first_line=None))
                done, _ = await asyncio.wait(
                    {pending, stopping}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if pending in done:
                    response = pending.result()
                    pending = None
                    arrived = self._track(response.text) or arrived
                    if response.text.startswith(b"* BYE"):
                        raise ImapClosed("the server said BYE")
            await self._send(b"DONE")
            while True:
                if pending is not None:
                    response = await asyncio.wait_for(pending, self.timeout)
                else:
                    response = await self._read()
                pending = None
                if response.text.startswith(tag.encode() + b" "):
                    _check(response, tag)
                    return arrived
                arrived = self._track(response.text) or arrived
        finally:
            stopping.cancel()
            if pending is not None:
                pending.cancel()

    # -- the protocol -----------------------------------------------------------------------

    def _next_tag(self) -> str:
        self._tag += 1
        return f"T{self._tag:04d}"

    async def command(self, name: str, *args: str | bytes) -> tuple[list[Response], Response]:
        """Send one command; the untagged responses and the tagged completion."""
        tag = self._next_tag()
        line = f"{tag} {name}".encode()
        for arg in args:
            if isinstance(arg, bytes):
                # A synchronising literal: wait for the server's go-ahead before the data.
                await self._send(line + b" {%d}" % len(arg))
                while not (await self._read()).text.startswith(b"+"):
                    pass
                line = arg
            else:
                line += b" " + arg.encode()
        await self._send(line)
        untagged: list[Response] = []
        while True:
            response = await self._read()
            if response.text.startswith(tag.encode() + b" "):
                _check(response, tag)
                return untagged, response
            if response.text.startswith(b"* BYE") and name != "LOGOUT":
                raise ImapClosed(response.text.decode("utf-8", "replace"))
            self._track(response.text)
            untagged.append(response)

    def _track(self, text: bytes) -> bool:
        """Follow the mailbox's message count; True when it grew (new mail).

        Some servers repeat an unchanged count; only a larger one is news."""
        found = NUMBER_RESPONSE.match(text)
        if found is None:
            return False
        kind, number = found.group(2), int(found.group(1))
        if kind == b"EXPUNGE":
            self.exists = max(self.exists - 1, 0)
        elif kind == b"EXISTS":
            grew = number > self.exists
            self.exists = number
            self.mail_announced = self.mail_announced or grew
            return grew
        return False

    def _note_capabilities(self, text: bytes) -> bool:
        for name, value in CODE.findall(text):
            if name == b"CAPABILITY":
                self.capabilities = frozenset(value.decode("ascii", "replace").upper().split())
                return True
        return False

    async def _send(self, line: bytes) -> None:
        self._writer.write(line + b"\r\n")
        await asyncio.wait_for(self._writer.drain(), self.timeout)

    _DEFAULT: float = -1.0

    async def _read(self, *, first_line: float | None = _DEFAULT) -> Response:
        """One response with its literals. Each read must make progress within the timeout
        (a big message on a slow line takes long in all, never long between chunks);
        ``first_line=None`` waits for the first line as long as it takes (IDLE)."""
        text = b""
        literals: list[bytes] = []
        wait: float | None = self.timeout if first_line == self._DEFAULT else first_line
        while True:
            try:
                line = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), wait)
            except asyncio.IncompleteReadError:
                raise ImapClosed("the server closed the connection") from None
            except asyncio.LimitOverrunError:
                raise ImapClosed("a response line too long") from None
            wait = self.timeout
            found = LITERAL.search(line)
            if found is None:
                return Response(text + line[:-2], tuple(literals))
            size = int(found.group(1))
            text += line[: found.start()] + b"{%d}" % len(literals)
            chunks: list[bytes] = []
            while size > 0:
                step = min(size, 1 << 20)
                try:
                    chunks.append(
                        await asyncio.wait_for(self._reader.readexactly(step), self.timeout)
                    )
                except asyncio.IncompleteReadError:
                    raise ImapClosed("the connection closed inside a message") from None
                size -= step
            literals.append(b"".join(chunks))


def _check(response: Response, tag: str) -> None:
    status = response.text[len(tag) + 1 :].split(b" ", 1)[0]
    if status != b"OK":
        raise ImapError(response.text.decode("utf-8", "replace"))


SECTION = re.compile(rb"(BODY\[[^\]]*\](?:<\d+>)?) (?:\{(\d+)\}|(NIL)|\"((?:[^\"\\]|\\.)*)\")")


def _sections(response: Response) -> dict[str, bytes]:
    """``BODY[...]`` items of a FETCH response, by name (as the server wrote it)."""
    sections: dict[str, bytes] = {}
    for name, index, nil, quoted in SECTION.findall(response.text):
        key = re.sub(rb"<\d+>$", b"", name).decode("ascii")
        if index:
            sections[key] = response.literals[int(index)]
        elif nil:
            sections[key] = b""
        else:
            sections[key] = re.sub(rb"\\(.)", rb"\1", quoted)
    return sections

"""The mailbox reader against a real Dovecot: order, once-only, flags after storing, IDLE,
polling, restarts, a dropped connection, UIDVALIDITY, oversized mail."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.email.imap import Cursor, ImapSettings, Mail, MailboxReader, Outcome
from adapters.email.parse import parse_email
from tests.email.conftest import eventually
from tests.email.mailserver import NO_IDLE_HOST, PASSWORD, MailServer


def mail(n: int, to: str, *, attachment: bytes = b"") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Amal <amal@example.test>"
    msg["To"] = to
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}-{time.monotonic_ns()}@example.test>"
    msg.set_content(f"body {n}")
    if attachment:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="a.pdf")
    return msg.as_bytes(policy=SMTP)


@dataclass
class Store:
    """What the bot layer does with the reader's callbacks, kept in memory."""

    server: MailServer
    user: str
    cursor: Cursor | None = None
    bodies: list[str] = field(default_factory=list)
    seen_when_handed: list[bool] = field(default_factory=list)
    fail_next: int = 0
    truncated: list[bool] = field(default_factory=list)

    async def on_mail(self, m: Mail) -> Outcome:
        flags = await asyncio.to_thread(self.server.flags, self.user)
        self.seen_when_handed.append("\\Seen" in flags.get(m.uid, ""))
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the database is away")
        self.bodies.append(parse_email(m.raw).text)
        self.truncated.append(m.truncated)
        return Outcome.DONE

    async def load(self) -> Cursor | None:
        return self.cursor

    async def save(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def reader(self, settings: ImapSettings) -> MailboxReader:
        return MailboxReader(settings, self.on_mail, self.load, self.save)


def settings(server: MailServer, user: str, **changes: object) -> ImapSettings:
    base = ImapSettings(
        host="127.0.0.1",
        port=server.imap_port,
        security="none",
        username=user,
        password=PASSWORD,
        poll_seconds=60,
        timeout=5,
        backoff_base=0.1,
        backoff_max=0.5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class Running:
    def __init__(self, reader: MailboxReader) -> None:
        self.reader = reader
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(reader.run(self.stop))

    async def caught_up(self) -> None:
        await asyncio.wait_for(self.reader.caught_up.wait(), 10)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


async def deliver(server: MailServer, raw: bytes, to: str) -> None:
    await asyncio.to_thread(server.deliver, raw, to)


async def test_mail_is_handed_over_once_in_order_and_marked_read_only_after(
    mail_server: MailServer,
) -> None:
    user = mail_server.new_user("reader")
    store = Store(mail_server, user)
    for n in (1, 2, 3):
        await deliver(mail_server, mail(n, user), user)
    running = Running(store.reader(settings(mail_server, user)))
    await running.caught_up()
    await running.close()

    assert store.bodies == ["body 1", "body 2", "body 3"]
    assert store.seen_when_handed == [False, False, False]
    flags = await asyncio.to_thread(mail_server.flags, user)
    assert all("\\Seen" in f for f in flags.values()) and len(flags) == 3
    assert store.cursor is not None and store.cursor.last_uid == max(flags)


async def test_idle_brings_new_mail_at_once(mail_server: MailServer) -> None:
    user = mail_server.new_user("idle")
    store = Store(mail_server, user)
    # Polling every 60 s: only IDLE can bring the mail within the few seconds allowed.
    running = Running(store.reader(settings(mail_server, user, poll_seconds=60)))
    await running.caught_up()
    started = time.monotonic()
    await deliver(mail_server, mail(1, user), user)

    async def arrived() -> bool:
        return store.bodies == ["body 1"]

    await eventually(arrived, within=5)
    assert time.monotonic() - started < 5
    await running.close()


async def test_without_idle_the_reader_polls_and_moves_without_move(
    mail_server: MailServer,
) -> None:
    user = mail_server.new_user("poll")
    store = Store(mail_server, user)
    # On this address Dovecot offers neither IDLE nor MOVE.
    running = Running(
        store.reader(
            settings(
                mail_server, user, host=NO_IDLE_HOST, poll_seconds=0.3, processed_folder="Tawasul"
            )
        )
    )
    await running.caught_up()
    await deliver(mail_server, mail(1, user), user)

    async def arrived() -> bool:
        return store.bodies == ["body 1"]

    await eventually(arrived, within=5)
    await running.close()
    inbox = await asyncio.to_thread(mail_server.messages, user)
    moved = await asyncio.to_thread(mail_server.messages, user, "Tawasul")
    assert inbox == [] and [m["Subject"] for m in moved] == ["message 1"]


async def test_a_restart_neither_rereads_nor_skips(mail_server: MailServer) -> None:
    user = mail_server.new_user("restart")
    store = Store(mail_server, user)
    await deliver(mail_server, mail(1, user), user)
    running = Running(store.reader(settings(mail_server, user)))
    await running.caught_up()
    await running.close()

    # While the bot is down: two mails, one of them opened by a person in webmail.
    await deliver(mail_server, mail(2, user), user)
    await deliver(mail_server, mail(3, user), user)

    def open_the_last() -> None:
        conn = mail_server.imap(user)
        conn.select("INBOX")
        _, data = conn.uid("SEARCH", "ALL")
        conn.uid("STORE", data[0].split()[-1], "+FLAGS", "(\\Seen)")
        conn.logout()

    await asyncio.to_thread(open_the_last)
    running = Running(store.reader(settings(mail_server, user)))
    await running.caught_up()
    await running.close()
    assert store.bodies == ["body 1", "body 2", "body 3"]


async def test_first_start_takes_the_unread_mail_only(mail_server: MailServer) -> None:
    user = mail_server.new_user("first")
    await deliver(mail_server, mail(1, user), user)
    await deliver(mail_server, mail(2, user), user)

    def read_the_first() -> None:
        conn = mail_server.imap(user)
        conn.select("INBOX")
        conn.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        conn.logout()

    await asyncio.to_thread(read_the_first)
    store = Store(mail_server, user)
    running = Running(store.reader(settings(mail_server, user)))
    await running.caught_up()
    await deliver(mail_server, mail(3, user), user)

    async def third() -> bool:
        return len(store.bodies) == 2

    await eventually(third)
    await running.close()
    assert store.bodies == ["body 2", "body 3"]


async def test_a_new_uidvalidity_reads_the_unread_mail_again(mail_server: MailServer) -> None:
    user = mail_server.new_user("validity")
    await deliver(mail_server, mail(1, user), user)
    # A cursor from a mailbox that was since recreated (another UIDVALIDITY).
    store = Store(mail_server, user, cursor=Cursor(uidvalidity=1, last_uid=50))
    running = Running(store.reader(settings(mail_server, user)))
    await running.caught_up()
    await running.close()
    assert store.bodies == ["body 1"]
    assert store.cursor is not None and store.cursor.uidvalidity != 1


async def test_connection_dropped_mid_idle_loses_nothing_and_repeats_nothing(
    mail_server: MailServer,
) -> None:
    user = mail_server.new_user("drop")
    store = Store(mail_server, user)
    reader = store.reader(settings(mail_server, user, backoff_base=0.3))
    running = Running(reader)
    await deliver(mail_server, mail(1, user), user)
    await running.caught_up()
    await asyncio.sleep(0.2)  # inside IDLE now

    assert mail_server.kill_imap_sessions() >= 1
    # Mail arriving while the reader is disconnected.
    await deliver(mail_server, mail(2, user), user)
    await deliver(mail_server, mail(3, user), user)

    async def all_there() -> bool:
        return len(store.bodies) >= 3 and reader.caught_up.is_set()

    await eventually(all_there)
    await deliver(mail_server, mail(4, user), user)

    async def fourth() -> bool:
        return len(store.bodies) >= 4

    await eventually(fourth)
    await running.close()
    assert store.bodies == ["body 1", "body 2", "body 3", "body 4"]


async def test_a_failed_store_leaves_the_mail_unread_and_it_comes_again(
    mail_server: MailServer,
) -> None:
    user = mail_server.new_user("retry")
    store = Store(mail_server, user, fail_next=1)
    await deliver(mail_server, mail(1, user), user)
    running = Running(store.reader(settings(mail_server, user)))

    async def stored() -> bool:
        return store.bodies == ["body 1"]

    await eventually(stored)
    await running.caught_up()
    await running.close()
    # Handed over twice (the first time the store failed), unread both times.
    assert store.seen_when_handed == [False, False]
    flags = await asyncio.to_thread(mail_server.flags, user)
    assert list(flags.values()) == ["\\Seen"]


async def test_a_mail_too_big_to_download_gives_its_text_only(mail_server: MailServer) -> None:
    user = mail_server.new_user("big")
    store = Store(mail_server, user)
    await deliver(mail_server, mail(1, user, attachment=b"%PDF-1.4\n" + b"x" * 400_000), user)
    running = Running(store.reader(settings(mail_server, user, max_fetch_bytes=100_000)))
    await running.caught_up()
    await running.close()
    assert store.bodies == ["body 1"] and store.truncated == [True]


async def failing(reader: MailboxReader, failures: int) -> tuple[float, dict[str, Any]]:
    """Run ``reader`` until it has failed ``failures`` times in a row, then stop it; how long
    stopping took, and the first failure's log line."""
    with capture_logs() as logs:
        running = Running(reader)

        async def retried() -> bool:
            return reader.failures >= failures

        await eventually(retried, within=10)
        started = time.monotonic()
        await running.close()
    return time.monotonic() - started, next(e for e in logs if e["event"] == "email.imap_error")


async def test_a_wrong_password_is_retried_without_end_and_stops_on_request(
    mail_server: MailServer,
) -> None:
    user = mail_server.new_user("password")
    reader = Store(mail_server, user).reader(
        settings(mail_server, user, password="wrong", backoff_base=0.05)
    )
    stopping, error = await failing(reader, 2)
    assert stopping < 2
    assert not reader.caught_up.is_set()
    # The log says where, and what to check.
    assert error["host"] == "127.0.0.1" and error["port"] == mail_server.imap_port
    assert error["error"] == "LoginRefused" and "password" in error["check"]


async def test_an_unknown_host_is_named_in_the_log(mail_server: MailServer) -> None:
    user = mail_server.new_user("nohost")
    reader = Store(mail_server, user).reader(
        settings(mail_server, user, host="imap.invalid", backoff_base=0.05)
    )
    _, error = await failing(reader, 1)
    assert error["host"] == "imap.invalid" and error["check"] == "the IMAP host name"


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_tls_and_starttls(mail_server: MailServer, security: str) -> None:
    user = mail_server.new_user("tls")
    store = Store(mail_server, user)
    await deliver(mail_server, mail(1, user), user)
    port = mail_server.imaps_port if security == "tls" else mail_server.imap_port
    running = Running(
        store.reader(
            settings(
                mail_server,
                user,
                port=port,
                security=security,
                tls_context=mail_server.tls_context(),
            )
        )
    )
    await running.caught_up()
    await running.close()
    assert store.bodies == ["body 1"]


async def test_a_long_single_part_mail_gives_its_beginning(mail_server: MailServer) -> None:
    user = mail_server.new_user("long")
    store = Store(mail_server, user)
    msg = EmailMessage()
    msg["From"] = "amal@example.test"
    msg["Subject"] = "long"
    msg.set_content("أول سطر\n" + "كلام كثير " * 30_000)
    await deliver(mail_server, msg.as_bytes(policy=SMTP), user)
    running = Running(store.reader(settings(mail_server, user, max_fetch_bytes=100_000)))
    await running.caught_up()
    await running.close()
    assert store.truncated == [True] and store.bodies[0].startswith("أول سطر\nكلام كثير")


async def test_an_arabic_processed_folder(mail_server: MailServer) -> None:
    user = mail_server.new_user("folder")
    store = Store(mail_server, user)
    await deliver(mail_server, mail(1, user), user)
    running = Running(store.reader(settings(mail_server, user, processed_folder="تمت المعالجة")))
    await running.caught_up()
    await running.close()

    def folders() -> dict[str, str]:
        conn = mail_server.imap(user)
        _, listed = conn.list()
        conn.logout()
        lines = [line for line in listed if isinstance(line, bytes)]
        names = [line.decode().rsplit(' "." ', 1)[-1].strip('"') for line in lines]
        # Modified UTF-7 read back with the standard UTF-7 codec.
        return {
            n.replace("&-", "\0").replace("&", "+").replace(",", "/").encode().decode("utf-7"): n
            for n in names
        }

    found = await asyncio.to_thread(folders)
    assert "تمت المعالجة" in found
    moved = await asyncio.to_thread(mail_server.messages, user, f'"{found["تمت المعالجة"]}"')
    assert [m["Subject"] for m in moved] == ["message 1"]
    assert await asyncio.to_thread(mail_server.messages, user) == []

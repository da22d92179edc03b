"""Real mail servers on 127.0.0.1 for the email tests.

Dovecot serves IMAP (plain with STARTTLS, implicit TLS, and on 127.0.0.2 a variant that
offers neither IDLE nor MOVE) and takes delivery over LMTP. aiosmtpd is the SMTP server the
bot sends through: it refuses unknown recipients with 550, checks logins, and hands
every accepted mail to Dovecot's LMTP, so whatever the bot sends can be read back over IMAP.
"""

from __future__ import annotations

import contextlib
import email
import imaplib
import itertools
import os
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port

DOMAIN = "example.test"
PASSWORD = "s3cret-pass"
NO_IDLE_HOST = "127.0.0.2"


def _dovecot() -> str:
    found = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(found).exists():
        raise RuntimeError(
            "Dovecot is needed for the email tests: apt-get install dovecot-imapd dovecot-lmtpd"
        )
    return found


def _config(root: Path, imap: int, imaps: int, lmtp: int) -> str:
    # Mail is never stored as root.
    uid = 65534 if os.geteuid() == 0 else os.getuid()
    if os.geteuid() == 0:
        users = (
            "default_internal_user = dovecot\n"
            "default_internal_group = dovecot\n"
            "default_login_user = dovenull\n"
        )
        chroot = ""
    else:
        me = pwd.getpwuid(os.getuid()).pw_name
        users = (
            f"default_internal_user = {me}\n"
            f"default_internal_group = {me}\n"
            f"default_login_user = {me}\n"
        )
        chroot = "  chroot =\n"
    return f"""
instance_name = tawasul-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1, {NO_IDLE_HOST}
{users}
first_valid_uid = 1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
# Any address is a mailbox with the one test password: tests make mailboxes freely
# (a passwd-file is re-read at most once a second, too slow for them).
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/mail/%u
}}
service imap-login {{
{chroot}  inet_listener imap {{
    address = 127.0.0.1, {NO_IDLE_HOST}
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
local {NO_IDLE_HOST} {{
  protocol imap {{
    imap_capability = IMAP4rev1 LITERAL+ UIDPLUS
  }}
}}
"""


def _self_signed(root: Path) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
            "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (root / "key.pem").chmod(0o644)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Dovecot stopped:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("Dovecot did not open its ports")


class _Relay:
    """aiosmtpd handler: accept known recipients, hand the mail to Dovecot over LMTP."""

    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.server.refuse_next_rcpt:
            code = self.server.refuse_next_rcpt.pop(0)
            return f"{code} 4.3.0 try again later" if code < 500 else f"{code} 5.7.1 refused"
        if address.lower() not in self.server.users:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        lmtp = smtplib.LMTP("127.0.0.1", self.server.lmtp_port)
        try:
            lmtp.sendmail(envelope.mail_from or "", envelope.rcpt_tos, content)
        finally:
            lmtp.quit()
        self.server.accepted.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 2.0.0 OK: queued"


@dataclass
class MailServer:
    root: Path
    imap_port: int
    imaps_port: int
    lmtp_port: int
    smtp_port: int = 0
    smtps_port: int = 0
    users: set[str] = field(default_factory=set)
    accepted: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse_next_rcpt: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    controllers: list[Controller] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cafile(self) -> str:
        return str(self.root / "cert.pem")

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def new_user(self, name: str) -> str:
        """A fresh mailbox (each test gets its own, the server is shared)."""
        with self._lock:
            address = f"{name}-{next(self._ids)}@{DOMAIN}"
            self.users.add(address)
        return address

    # -- driving it from tests (blocking: call through asyncio.to_thread) -----------------

    def deliver(self, raw: bytes, to: str, sender: str = "someone@example.test") -> None:
        """A mail arriving from outside, through the SMTP server."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port) as smtp:
            smtp.sendmail(sender, [to], raw)

    def imap(self, user: str, host: str = "127.0.0.1") -> imaplib.IMAP4:
        conn = imaplib.IMAP4(host, self.imap_port)
        conn.login(user, PASSWORD)
        return conn

    def messages(self, user: str, folder: str = "INBOX") -> list[EmailMessage]:
        """Every mail in a mailbox, oldest first, read without changing flags."""
        conn = self.imap(user)
        try:
            conn.select(folder, readonly=True)
            _, data = conn.uid("SEARCH", "ALL")
            found: list[EmailMessage] = []
            for uid in data[0].split():
                _, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = parts[0][1] if isinstance(parts[0], tuple) else b""
                found.append(email.message_from_bytes(raw, policy=default_policy))
            return found
        finally:
            conn.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, str]:
        conn = self.imap(user)
        try:
            conn.select(folder, readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
            result: dict[int, str] = {}
            for item in data:
                if not item:
                    continue
                text = item.decode() if isinstance(item, bytes) else str(item)
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                result[uid] = text.split("FLAGS (")[1].split(")")[0]
            return result
        finally:
            conn.logout()

    def kill_imap_sessions(self) -> int:
        """Kill Dovecot's IMAP processes: every client connection drops at once."""
        assert self.proc is not None
        killed = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if int(stat[1]) == self.proc.pid and title.endswith(b"/imap"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
        return killed

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        _self_signed(self.root)
        (self.root / "mail").mkdir(mode=0o1777)
        (self.root / "mail").chmod(0o1777)
        conf = self.root / "dovecot.conf"
        conf.write_text(_config(self.root, self.imap_port, self.imaps_port, self.lmtp_port))
        log = self.root / "dovecot.log"
        self.proc = subprocess.Popen(
            [_dovecot(), "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "dovecot.err").open("wb"),
            start_new_session=True,
        )
        _wait_port(self.imap_port, self.proc, log)
        _wait_port(self.lmtp_port, self.proc, log)
        relay = _Relay(self)
        options: dict[str, Any] = {
            "data_size_limit": 96 * 1024 * 1024,
            "auth_require_tls": False,
            "authenticator": self._authenticate,
        }
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.root / "cert.pem", self.root / "key.pem")
        plain = Controller(
            relay,
            hostname="127.0.0.1",
            port=free_port(),
            tls_context=tls,
            server_hostname="localhost",
            **options,
        )
        implicit = Controller(
            relay,
            hostname="127.0.0.1",
            port=free_port(),
            ssl_context=tls,
            server_hostname="localhost",
            **options,
        )
        for controller in (plain, implicit):
            controller.start()
            self.controllers.append(controller)
        self.smtp_port, self.smtps_port = plain.port, implicit.port

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user = data.login.decode()
            if user in self.users and data.password.decode() == PASSWORD:
                return AuthResult(success=True)
        # handled=False: aiosmtpd answers 535 itself.
        return AuthResult(success=False, handled=False)

    def stop(self) -> None:
        for controller in self.controllers:
            with contextlib.suppress(Exception):
                controller.stop()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=1.5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def start_mail_server() -> MailServer:
    # Dovecot's unprivileged processes must traverse the folder: pytest's tmp_path has
    # 0700 parents, a folder of our own under /tmp does not.
    root = Path(tempfile.mkdtemp(prefix="tawasul-mail-", dir="/tmp"))
    root.chmod(0o755)
    server = MailServer(root, imap_port=free_port(), imaps_port=free_port(), lmtp_port=free_port())
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Config, load_config
from bot.service import Service
from conversations.fields import national_id_check_digit
from conversations.messages import Attachment, Channel, Inbound, Reply
from storage.crypto import Keyring, install
from storage.migrate import upgrade
from storage.models import Conversation
from storage.staff import ConsoleTx

# Property-based tests explore new inputs on every local run; in CI they replay a fixed set,
# so a green main stays green.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A Sunday, 10:00 in Riyadh: within working hours.
WORKING_TIME = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


@contextmanager
def statements_seen(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile, in order (whichever way they ran)."""
    seen: list[str] = []

    def listener(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)


def valid_national_id(first9: str = "108765432") -> str:
    return first9 + national_id_check_digit(first9)


# The keys personal data is encrypted with in tests (config and CLI alike); also the process
# default, for tests that open a storage.db.Database themselves.
TEST_DATA_KEY = "3wrBeazgmHEaQ6gULc8f8Q43LFnDtecxABiFzked07g="
TEST_LOOKUP_KEY = "E2cWfGLyxmscQqW5zc8fWb8lMfRXBTmrSWwm0eCnFps="
TEST_KEYRING = Keyring([TEST_DATA_KEY], TEST_LOOKUP_KEY)
install(TEST_KEYRING)

# Sentence embeddings of the knowledge base, shared by all tests (keyed by text hash).
EMBEDDING_CACHE = Path(tempfile.gettempdir()) / "tawasul-test-embeddings"


def make_config(tmp: Path, **sections: dict[str, object]) -> Config:
    tmp.mkdir(parents=True, exist_ok=True)  # the database's folder must exist
    env = {
        "TAWASUL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'tawasul.db'}",
        "TAWASUL_STORAGE_ATTACHMENTS_DIR": str(tmp / "attachments"),
        "TAWASUL_KNOWLEDGE_FAQ_PATH": str(tmp / "faq.toml"),
        "TAWASUL_KNOWLEDGE_CACHE_DIR": str(EMBEDDING_CACHE),
        "TAWASUL_SECURITY_DATA_KEYS": TEST_DATA_KEY,
        "TAWASUL_SECURITY_LOOKUP_KEY": TEST_LOOKUP_KEY,
    }
    for section, values in sections.items():
        for key, value in values.items():
            env[f"TAWASUL_{section}_{key}".upper()] = str(value)
    return load_config(None, env)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    svc = Service(make_config(tmp_path))
    await upgrade(svc.db.engine)
    yield svc
    await svc.close()


class Chat:
    """A beneficiary talking to the engine through the real pipeline and database."""

    def __init__(
        self,
        service: Service,
        channel: Channel = Channel.CONSOLE,
        sender: str = "u1",
        now: datetime = WORKING_TIME,
    ) -> None:
        self.service = service
        self.channel = channel
        self.sender = sender
        self.now = now
        self.replies: list[Reply] = []
        self._count = 0

    async def say(
        self,
        text: str = "",
        *,
        command: str | None = None,
        attachments: Sequence[Attachment] = (),
        message_id: str | None = None,
        at: datetime | None = None,
        lang_hint: str | None = None,
    ) -> list[Reply]:
        self._count += 1
        msg = Inbound(
            channel=self.channel,
            sender_id=self.sender,
            text=text,
            command=command,
            attachments=tuple(attachments),
            channel_message_id=message_id or f"{self.sender}-{self._count}-{os.urandom(4).hex()}",
            received_at=at or self.now,
            lang_hint=lang_hint,
        )
        delivered = await self.service.handle(msg)
        self.replies = [d.reply for d in delivered]
        return self.replies

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.replies)

    @property
    def last(self) -> Reply:
        assert self.replies, "the bot said nothing"
        return self.replies[-1]

    def choice_values(self) -> list[str]:
        return [c.value for c in self.last.choices]


@pytest.fixture
def chat(service: Service) -> Chat:
    return Chat(service)


# -- a real server and the real CLI --------------------------------------------------------------

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

TAWASUL = [sys.executable, "-m", "bot"]


async def take_conversation(
    service: Service, staff: str, *, reply: str = "", escalate: str = ""
) -> int:
    """A staff member claims the conversation waiting in the queue (the newest, or the
    only one), maybe answers it and sends it back to the queue for a supervisor; its id."""
    async with service.db.session() as session:
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.status == "queued")
            .order_by(Conversation.id.desc())
        ) or await session.scalar(select(Conversation))
        assert conversation is not None
        tx = ConsoleTx(session)
        await tx.claim(conversation, staff)
        if reply:
            await tx.staff_reply(conversation, staff, reply)
        if escalate:
            await tx.escalate(conversation, staff, escalate)
        return conversation.id


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAWASUL_")}
    env.update(
        TAWASUL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'tawasul.db'}",
        TAWASUL_STORAGE_ATTACHMENTS_DIR=str(tmp / "attachments"),
        TAWASUL_KNOWLEDGE_FAQ_PATH=str(tmp / "faq.toml"),
        TAWASUL_KNOWLEDGE_CACHE_DIR=str(EMBEDDING_CACHE),
        TAWASUL_SECURITY_DATA_KEYS=TEST_DATA_KEY,
        TAWASUL_SECURITY_LOOKUP_KEY=TEST_LOOKUP_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)  # may replace the defaults above, the database URL for one
    return env


def run_cli(
    tmp: Path,
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*TAWASUL, *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env or cli_env(tmp),
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"tawasul {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(tmp: Path, *, startup_seconds: float = 60) -> Iterator[str]:
    """`tawasul serve` in its own process on a free port; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*TAWASUL, "serve", "--port", str(port)],
        cwd=tmp,
        env=cli_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            output = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"tawasul serve did not start:\n{output}")
        time.sleep(0.1)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server over a fresh database."""
    tmp = tmp_path_factory.mktemp("server")
    run_cli(tmp, "db", "upgrade")
    with serving(tmp) as base:
        yield base


# -- a real browser ------------------------------------------------------------------------------

CHROMIUM = os.environ.get("TAWASUL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (scripts/ensure-test-peers installs it)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: run scripts/ensure-test-peers")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()

"""The console in process (httpx over ASGI) with real accounts, sessions and conversations."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.app import create_app
from bot.service import Service
from conversations.messages import Channel
from staff.console import SESSION_COOKIE
from staff.security import SESSION_LIFETIME, Keys, hash_password, token_hash
from storage.migrate import upgrade
from storage.models import AuditEntry, Conversation, Document, Message, Request
from storage.staff import ConsoleTx
from tests.conftest import Chat, make_config
from tests.test_engine import fill_support_request

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

ACCOUNTS = {
    "agent": "agent@example.org",
    "agent2": "agent2@example.org",
    "supervisor": "supervisor@example.org",
    "admin": "admin@example.org",
}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


SECRET = "test-secret-key-0123456789"


async def _seed(tmp: Path) -> None:
    svc = Service(make_config(tmp, staff={"secret_key": SECRET}))
    await upgrade(svc.db.engine)
    password_hash = await hash_password(PASSWORD)
    async with svc.db.session() as session:
        tx = ConsoleTx(session)
        for key, email in ACCOUNTS.items():
            role = "agent" if key.startswith("agent") else key
            await tx.add_staff(email, role, password_hash, name=key.title())
    await svc.close()


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the four accounts, made once (argon2 is slow on purpose)."""
    folder = tmp_path_factory.mktemp("seeded")
    asyncio.run(_seed(folder))
    return folder


@pytest.fixture
def seed_dir(seeded: Path) -> Path:
    """The database each test starts from (a module may seed a richer one)."""
    return seeded


def seed_copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)


def build_seed(source: Path, target: Path, fill: Callable[[Service], Awaitable[None]]) -> None:
    """Another template: the accounts' database plus what ``fill`` adds, made once."""
    seed_copy(source, target)

    async def run() -> None:
        svc = Service(make_config(target, staff={"secret_key": SECRET}))
        try:
            await fill(svc)
        finally:
            await svc.close()

    asyncio.run(run())


@pytest.fixture
async def console_service(seed_dir: Path, tmp_path: Path) -> AsyncIterator[Service]:
    seed_copy(seed_dir, tmp_path)
    svc = Service(make_config(tmp_path, staff={"secret_key": SECRET}))
    yield svc
    await svc.close()


class Browser:
    """An httpx client with the console's cookies, and helpers to sign in and post forms."""

    def __init__(self, client: httpx.AsyncClient, service: Service) -> None:
        self.client = client
        self.service = service
        self.csrf = ""

    async def sign_in(self, who: str) -> None:
        """A session as the login form makes it, without paying argon2 in every test."""
        token = secrets.token_urlsafe(32)
        async with self.service.db.session() as session:
            tx = ConsoleTx(session)
            user = await tx.staff_by_email(ACCOUNTS[who])
            assert user is not None
            await tx.open_session(user, token_hash(token), SESSION_LIFETIME)
        cookie = await Keys(SECRET, self.service.db).session_cookie(token)
        self.client.cookies.set(SESSION_COOKIE, cookie, domain="testserver.local", path="/staff")
        queue = await self.client.get("/staff/")
        assert queue.status_code == 200, queue.text
        self.csrf = csrf_of(queue.text)

    async def login(self, who: str) -> None:
        """Through the real login form."""
        page = await self.client.get("/staff/login")
        response = await self.client.post(
            "/staff/login",
            data={"email": ACCOUNTS[who], "password": PASSWORD, "csrf": csrf_of(page.text)},
        )
        assert response.status_code == 303, response.text
        queue = await self.client.get("/staff/")
        assert queue.status_code == 200
        self.csrf = csrf_of(queue.text)

    async def get(self, url: str, **kwargs: object) -> httpx.Response:
        return await self.client.get(url, **kwargs)  # type: ignore[arg-type]

    async def post(
        self, url: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf
        return await self.client.post(url, data=form)


@pytest.fixture
async def browser_for(console_service: Service) -> AsyncIterator[object]:
    """A factory: ``await browser_for("agent")`` is a signed-in client of its own."""
    app = create_app(console_service, workers=False)
    clients: list[httpx.AsyncClient] = []

    async def make(who: str | None = None) -> Browser:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        browser = Browser(client, console_service)
        if who:
            await browser.sign_in(who)
        return browser

    yield make
    for client in clients:
        await client.aclose()


async def queued(service: Service, sender: str = "web-session-0001-abcdefgh") -> int:
    """A beneficiary in the web chat who asked for a staff member; the conversation id."""
    chat = Chat(service, Channel.WEBCHAT, sender=sender)
    await chat.say("السلام عليكم")
    await chat.say("موظف")
    async with service.db.session(write=False) as session:
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.status == "queued")
            .order_by(Conversation.id.desc())
        )
    assert conversation is not None
    return conversation.id


async def audit_count(service: Service, action: str | None = None) -> int:
    """Audit entries of this action (of any action when None)."""
    stmt = select(func.count()).select_from(AuditEntry)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    async with service.db.session(write=False) as session:
        count = await session.scalar(stmt)
    return int(count or 0)


@dataclass(frozen=True)
class World:
    conversation: int
    reference: str
    document: int
    message: int
    beneficiary: int


async def make_world(service: Service) -> World:
    conversation = await queued(service)
    reference = await fill_support_request(
        Chat(service, Channel.WEBCHAT, sender="web-session-applicant-0001")
    )
    async with service.db.session(write=False) as session:
        request = await session.scalar(select(Request).where(Request.reference == reference))
        document = await session.scalar(select(Document))
        with_file = [
            m
            for m in await session.scalars(select(Message).where(Message.direction == "in"))
            if (m.payload or {}).get("attachments")
        ]
    assert request is not None and document is not None and with_file
    return World(conversation, reference, document.id, with_file[0].id, request.beneficiary_id)


@pytest.fixture(scope="session")
def world_seed(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, World]:
    folder = tmp_path_factory.mktemp("world")
    made: list[World] = []

    async def fill(service: Service) -> None:
        made.append(await make_world(service))

    build_seed(seeded, folder, fill)
    return folder, made[0]


@pytest.fixture
def world(world_seed: tuple[Path, World]) -> World:
    return world_seed[1]

"""The web chat takes only session tokens the server issued. A script that made up a new
cookie for every message (to start each with a clean slate in the flood guard) gets 401;
new sessions come only from /api/webchat/start, where one network can open only so many;
a session begun before tokens were signed goes on."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

import bot.webchat_sessions as sessions
from bot.app import create_app
from bot.security import FloodLimits
from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.models import Identity
from tests.security.test_attachments import PDF

COOKIE = "tawasul_chat"


def browser(app: FastAPI, network: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(network, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=20)


async def webchat_identities(service: Service) -> int:
    async with service.db.session(write=False) as session:
        count = await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.kind == "webchat")
        )
    return int(count or 0)


async def refused_everywhere(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/webchat/messages"),
        await client.post("/api/webchat/messages", json={"text": "hello"}),
        await client.post("/api/webchat/upload", files={"file": ("a.pdf", PDF, "application/pdf")}),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "no_session"


async def test_an_issued_session_works_and_is_signed(app: FastAPI) -> None:
    async with browser(app) as alice:
        started = await alice.post("/api/webchat/start", json={"lang": "ar"})
        assert started.status_code == 200
        token = alice.cookies[COOKIE]
        assert len(token) == sessions.TOKEN_CHARS
        said = await alice.post("/api/webchat/messages", json={"text": "السلام عليكم"})
        assert said.status_code == 200 and said.json()["messages"]
        again = await alice.post("/api/webchat/start", json={})
        assert again.status_code == 200 and "set-cookie" not in again.headers


@pytest.mark.parametrize(
    "made_up",
    [
        "qda70JdtXdd7ORYGESESCWkUw__jhlCo",  # the shape the server used to issue
        "ApvOL-L56_LoIU84or10cG3P7mvx3w1pnzMglVngTpwG",  # the length of a signed one
        "a" * 64,
    ],
    ids=["old-shape", "signed-length", "longest"],
)
async def test_a_made_up_session_is_no_session(
    app: FastAPI, service: Service, made_up: str
) -> None:
    async with browser(app) as mallory:
        mallory.cookies.set(COOKIE, made_up)
        await refused_everywhere(mallory)
        assert await webchat_identities(service) == 0  # nothing was stored for it
        # /start gives it a session of the server's own instead.
        started = await mallory.post("/api/webchat/start", json={"lang": "ar"})
        assert started.status_code == 200
        issued = started.cookies[COOKIE]
        assert issued != made_up and len(issued) == sessions.TOKEN_CHARS
        mallory.cookies.clear()
        mallory.cookies.set(COOKIE, issued)
        assert (await mallory.get("/api/webchat/messages")).status_code == 200


async def test_a_tampered_signature_is_no_session(app: FastAPI) -> None:
    async with browser(app) as alice, browser(app) as mallory:
        await alice.post("/api/webchat/start", json={"lang": "ar"})
        token = alice.cookies[COOKIE]
        last = "A" if token[-1] != "A" else "B"
        for forged in (token[:-1] + last, token[:21] + "x" + token[22:], token[:43]):
            mallory.cookies.set(COOKIE, forged)
            await refused_everywhere(mallory)


async def test_rotating_cookies_does_not_escape_the_flood_guard(app: FastAPI) -> None:
    """A new cookie on every message used to be a new sender every time."""
    async with browser(app) as flooder:
        for _ in range(50):
            flooder.cookies.set(COOKIE, secrets.token_urlsafe(24))
            answer = await flooder.post("/api/webchat/messages", json={"text": "spam"})
            assert answer.status_code == 401


async def test_a_session_from_before_signing_goes_on(app: FastAPI, service: Service) -> None:
    old = secrets.token_urlsafe(24)
    await service.handle(Inbound(Channel.WEBCHAT, old, command="start"))
    async with browser(app) as amal:
        amal.cookies.set(COOKIE, old)
        history = await amal.get("/api/webchat/messages")
        assert history.status_code == 200 and history.json()["messages"]
        said = await amal.post("/api/webchat/messages", json={"text": "ما أوقات الدوام؟"})
        assert said.status_code == 200
        started = await amal.post("/api/webchat/start", json={})
        assert started.status_code == 200 and "set-cookie" not in started.headers
        assert amal.cookies[COOKIE] == old


async def test_another_server_process_takes_the_session(service: Service) -> None:
    """The key is the installation's: a second process (or instance) over the same
    database accepts what the first issued."""
    first, second = create_app(service, workers=False), create_app(service, workers=False)
    async with browser(first) as on_first, browser(second) as on_second:
        await on_first.post("/api/webchat/start", json={"lang": "ar"})
        on_second.cookies.set(COOKIE, on_first.cookies[COOKIE])
        assert (await on_second.get("/api/webchat/messages")).status_code == 200


async def test_one_network_opens_only_so_many_sessions(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = FloodLimits(
        window=600, slow_after=3, slow_seconds=0.01, max_wait=0.05, block_after=6,
        block_seconds=600, notify=False,
    )  # fmt: skip
    per_address = service.config.webchat.new_sessions_per_address
    assert sessions.new_session_limits(per_address).block_after == 2 * per_address
    monkeypatch.setattr("bot.app.new_session_limits", lambda _: limits)
    app = create_app(service, workers=False)
    statuses = []
    for _ in range(10):
        async with browser(app, "198.51.100.9") as visitor:
            started = await visitor.post("/api/webchat/start", json={"lang": "en"})
            statuses.append(started.status_code)
    assert statuses[:3] == [200] * 3 and statuses[-1] == 429
    refusal = started.json()
    assert refusal["error"] == "too_many_sessions"
    assert refusal["messages"] == {
        lang: service.catalog.text(
            lang, "security.sessions", minutes=service.catalog.minutes(lang, 10)
        )
        for lang in ("ar", "en")
    }
    assert "set-cookie" not in started.headers
    # The server's own machine (a reverse proxy whose forwarded address is not trusted)
    # is not held back: that would hold back every visitor at once.
    for _ in range(10):
        async with browser(app, "127.0.0.1") as behind_the_proxy:
            started = await behind_the_proxy.post("/api/webchat/start", json={"lang": "ar"})
            assert started.status_code == 200
    # Another network, and the sessions already open, carry on.
    async with browser(app, "192.0.2.44") as neighbour:
        assert (await neighbour.post("/api/webchat/start", json={})).status_code == 200
        assert (await neighbour.post("/api/webchat/messages", json={"text": "hi"})).is_success
